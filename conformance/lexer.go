package conformance

import (
	"fmt"
	"net/netip"
	"strings"
)

// tokKind classifies a token.
type tokKind int

const (
	tokEOF    tokKind = iota
	tokNumber         // an integer (12, -1), a hex integer (0x10) or a float (0.100, .1); Num says which
	tokIdent          // a word: [A-Za-z0-9_]+ that is not a number; Keyword marks the reserved ones
	tokPunct          // any other single character (the grammar uses = + * ~ < > : ( ) [ ] { } , . - |)
	tokEllip          // ...
	tokString         // "text" (Text holds the contents as written, quotes removed)
	tokShell          // `command` (Text holds the command as written)
	tokCode           // %{ code }% (Text holds the code, blanks and tabs trimmed at both ends)
	tokOption         // --name (Text holds the name; '=' and the value are tokens of their own)
	tokIPv4           // 192.0.2.1
	tokIPv6           // 2001:db8::1
)

func (k tokKind) String() string {
	switch k {
	case tokEOF:
		return "end of file"
	case tokNumber:
		return "number"
	case tokIdent:
		return "word"
	case tokPunct:
		return "punctuation"
	case tokEllip:
		return "..."
	case tokString:
		return "string"
	case tokShell:
		return "shell command"
	case tokCode:
		return "code block"
	case tokOption:
		return "option"
	case tokIPv4, tokIPv6:
		return "address"
	}
	return "token"
}

// numKind says how a number was written; packetdrill's grammar takes
// different ones in different places (a time is an integer or a float, a
// TOS byte only hex, a sequence number only a decimal integer).
type numKind int

const (
	numInt   numKind = iota // -?[0-9]+
	numHex                  // 0x[0-9a-fA-F]+
	numFloat                // -?[0-9]*.[0-9]+
)

type token struct {
	Kind tokKind
	Text string
	Line int
	Num  numKind // for tokNumber
	// Keyword marks a word packetdrill reserves (mss, ack, win, fd, ...):
	// it is not a WORD to the grammar, so it cannot name a system call, a
	// constant, an errno or a structure field.
	Keyword bool
	// Space reports white space (or a comment) right before the token.
	Space bool
}

func (t token) String() string {
	switch t.Kind {
	case tokEOF:
		return "end of file"
	case tokString:
		return fmt.Sprintf("%q", t.Text)
	case tokShell:
		return "`" + t.Text + "`"
	case tokCode:
		return "%{ ... }%"
	case tokOption:
		return "--" + t.Text
	}
	return fmt.Sprintf("%q", t.Text)
}

// is reports whether t is the word or punctuation s.
func (t token) is(s string) bool {
	return (t.Kind == tokIdent || t.Kind == tokPunct) && t.Text == s
}

// isWord reports whether t is a WORD to the grammar: a word that is not
// reserved.
func (t token) isWord() bool { return t.Kind == tokIdent && !t.Keyword }

// isInt reports whether t is a decimal integer (INTEGER to the grammar).
func (t token) isInt() bool { return t.Kind == tokNumber && t.Num == numInt }

// keywords are the words packetdrill's lexer reserves. A reserved word is
// a token of its own kind, never a WORD: "mss" in "win mss" is the MSS
// keyword, and a system call or constant cannot be named "ack".
var keywords = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`sa_family sin_port sin_addr msg_name msg_iov msg_flags msg_control
		cmsg_data cmsg_level cmsg_type ee_errno ee_origin ee_type ee_code ee_info ee_data scm_sec scm_nsec
		fd u32 u64 ptr events revents onoff linger htons ipv4 ipv6 icmp udp GREv0 gre raw sum off key seq
		none checksum sequence# present encap psp spi mpls label tc ttl inet_addr inet6_addr ack eol ecr mss
		mtu nop sack sackOK md5 TS FO FOEXP ECN e0b e1b ceb tos flowlabel flags Flags val win urg wscale
		ect01 ect0 ect1 noecn ce id`) {
		keywords[k] = true
	}
}

// lexError carries the position of a lexical error.
type lexError struct {
	Line int
	Msg  string
}

func (e *lexError) Error() string { return fmt.Sprintf("%d: %s", e.Line, e.Msg) }

// Token rules, in the order that breaks a tie between two rules matching
// the same length: packetdrill's lexer takes the longest match at each
// point, and of equally long ones the rule listed first.
const (
	ruleKeyword = iota
	ruleEllipsis
	ruleOption
	ruleFloat
	ruleInt
	ruleHex
	ruleWord
	ruleString
	ruleShell
	ruleChar
	ruleSpace
	ruleLineComment
	ruleBlockComment
	ruleCode
	ruleIPv4
	ruleIPv6
	numRules
)

// lex splits src into tokens as packetdrill's lexer does. White space is
// blanks, tabs and newlines only (a carriage return is a character of its
// own, which no rule of the grammar takes).
func lex(src string) ([]token, error) {
	var toks []token
	line := 1
	space := true
	i := 0
	for i < len(src) {
		var n [numRules]int
		matchAt(src, i, &n)
		best := ruleChar
		for r := numRules - 1; r >= 0; r-- {
			if n[r] >= n[best] && n[r] > 0 {
				best = r
			}
		}
		// Constructs whose opening was seen but that do not close: the
		// opening is then only punctuation, which no rule takes; say what
		// is missing instead.
		if best == ruleChar {
			if msg := unterminated(src[i:]); msg != "" {
				return nil, &lexError{line, msg}
			}
		}
		text := src[i : i+n[best]]
		t := token{Line: line, Space: space, Text: text}
		line += strings.Count(text, "\n")
		i += n[best]
		space = false
		switch best {
		case ruleSpace, ruleLineComment, ruleBlockComment:
			space = true
			continue
		case ruleKeyword:
			t.Kind, t.Keyword = tokIdent, true
		case ruleWord:
			t.Kind = tokIdent
		case ruleEllipsis:
			t.Kind = tokEllip
		case ruleOption:
			t.Kind, t.Text = tokOption, text[2:]
		case ruleFloat:
			t.Kind, t.Num = tokNumber, numFloat
		case ruleInt:
			t.Kind, t.Num = tokNumber, numInt
		case ruleHex:
			t.Kind, t.Num = tokNumber, numHex
		case ruleString:
			t.Kind, t.Text = tokString, text[1:len(text)-1]
		case ruleShell:
			t.Kind, t.Text = tokShell, text[1:len(text)-1]
		case ruleCode:
			t.Kind, t.Text = tokCode, strings.Trim(text[2:len(text)-2], " \t")
		case ruleIPv4:
			t.Kind = tokIPv4
		case ruleIPv6:
			t.Kind = tokIPv6
		default:
			t.Kind = tokPunct
		}
		toks = append(toks, t)
	}
	toks = append(toks, token{Kind: tokEOF, Line: line, Space: true})
	return toks, nil
}

// matchAt fills n with the length each rule matches at src[i:] (0: none).
func matchAt(src string, i int, n *[numRules]int) {
	s := src[i:]
	c := s[0]
	if c == ' ' || c == '\t' || c == '\n' {
		j := 0
		for j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n') {
			j++
		}
		n[ruleSpace] = j
		return
	}
	n[ruleChar] = 1
	w := wordLen(s)
	if w > 0 {
		if keywords[s[:w]] {
			n[ruleKeyword] = w
		} else {
			n[ruleWord] = w
		}
	}
	if strings.HasPrefix(s, "sequence#") {
		n[ruleKeyword] = len("sequence#")
	}
	if strings.HasPrefix(s, "...") {
		n[ruleEllipsis] = 3
	}
	if strings.HasPrefix(s, "--") {
		if w := wordLen(s[2:]); w > 0 {
			n[ruleOption] = 2 + w
		}
	}
	n[ruleFloat] = floatLen(s)
	n[ruleInt] = intLen(s)
	if strings.HasPrefix(s, "0x") {
		if h := hexLen(s[2:]); h > 0 {
			n[ruleHex] = 2 + h
		}
	}
	switch c {
	case '"':
		n[ruleString] = quotedLen(s, '"')
	case '`':
		n[ruleShell] = quotedLen(s, '`')
	case '/':
		if strings.HasPrefix(s, "//") {
			if end := strings.IndexByte(s, '\n'); end >= 0 {
				n[ruleLineComment] = end + 1
			}
		}
		if strings.HasPrefix(s, "/*") {
			n[ruleBlockComment] = delimitedLen(s, '*', '/')
		}
	case '%':
		if strings.HasPrefix(s, "%{") {
			n[ruleCode] = delimitedLen(s, '}', '%')
		}
	}
	n[ruleIPv4] = ipv4Len(s)
	n[ruleIPv6] = ipv6Len(s)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') }
func isWordByte(c byte) bool {
	return c == '_' || isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}
func isIdentStart(c byte) bool { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func wordLen(s string) int {
	j := 0
	for j < len(s) && isWordByte(s[j]) {
		j++
	}
	return j
}

func digitsLen(s string) int {
	j := 0
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	return j
}

func hexLen(s string) int {
	j := 0
	for j < len(s) && isHex(s[j]) {
		j++
	}
	return j
}

// intLen matches -?[0-9]+.
func intLen(s string) int {
	j := 0
	if j < len(s) && s[j] == '-' {
		j++
	}
	d := digitsLen(s[j:])
	if d == 0 {
		return 0
	}
	return j + d
}

// floatLen matches -?[0-9]*\.[0-9]+.
func floatLen(s string) int {
	j := 0
	if j < len(s) && s[j] == '-' {
		j++
	}
	j += digitsLen(s[j:])
	if j >= len(s) || s[j] != '.' {
		return 0
	}
	d := digitsLen(s[j+1:])
	if d == 0 {
		return 0
	}
	return j + 1 + d
}

// ipv4Len matches [0-9]+.[0-9]+.[0-9]+.[0-9]+.
func ipv4Len(s string) int {
	j := 0
	for part := 0; part < 4; part++ {
		if part > 0 {
			if j >= len(s) || s[j] != '.' {
				return 0
			}
			j++
		}
		d := digitsLen(s[j:])
		if d == 0 {
			return 0
		}
		j += d
	}
	return j
}

// ipv6Len matches an IPv6 address: the longest run of hex digits, colons
// and dots that parses as one and is written with "::" or eight groups
// (so that a sequence range such as 1:1001 never reads as an address).
func ipv6Len(s string) int {
	j := 0
	for j < len(s) && (isHex(s[j]) || s[j] == ':' || s[j] == '.') {
		j++
	}
	for ; j > 2; j-- {
		a := s[:j]
		if !strings.Contains(a, "::") && strings.Count(a, ":") != 7 {
			continue
		}
		if ip, err := netip.ParseAddr(a); err == nil && ip.Is6() {
			return j
		}
	}
	return 0
}

// quotedLen matches q(\\.|[^q])*q, as long as possible: a quote inside
// must follow a backslash, and the string ends at the last quote it can.
func quotedLen(s string, q byte) int {
	end := 0
	for j := 1; j < len(s); j++ {
		if s[j] != q {
			continue
		}
		end = j + 1
		if s[j-1] != '\\' {
			break
		}
	}
	return end
}

// delimitedLen matches an opening of two bytes, then a body, then the
// closing pair a b, where the body may hold a only when followed by a byte
// other than b: packetdrill's rule for /* comments */ (a='*', b='/') and
// %{ code }% (a='}', b='%'). At each a the choice is forced: "a b" closes,
// "a x" is body, so the first closing pair found this way ends the match.
func delimitedLen(s string, a, b byte) int {
	for j := 2; j < len(s); j++ {
		if s[j] != a {
			continue
		}
		if j+1 >= len(s) {
			return 0
		}
		if s[j+1] == b {
			return j + 2
		}
		j++ // a and the byte after it are body
	}
	return 0
}

// unterminated names what does not close at the start of s: a string, a
// command, a comment or a code block, each of which would otherwise
// leave a lone punctuation character that no rule of the grammar takes.
func unterminated(s string) string {
	switch {
	case s[0] == '"':
		return "unterminated string: expected a closing \""
	case s[0] == '`':
		return "unterminated shell command: expected a closing backquote"
	case strings.HasPrefix(s, "/*"):
		return "unterminated /* comment: expected */"
	case strings.HasPrefix(s, "%{"):
		return "unterminated %{ code block: expected }%"
	case strings.HasPrefix(s, "//"):
		return "a // comment must end with a newline; packetdrill does not accept one on the last line of a file without it"
	}
	return ""
}
