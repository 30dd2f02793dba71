package conformance

import (
	"fmt"
	"strings"
)

// tokKind classifies a token.
type tokKind int

const (
	tokEOF    tokKind = iota
	tokNumber         // 12, 0.100, .1, 0x10
	tokIdent          // letters, digits, _ (starting with a letter or _)
	tokPunct          // < > : ( ) , [ ] { } = | + * ~ . - /
	tokEllip          // ...
	tokString         // "text" (Text holds the contents)
	tokShell          // `command` (Text holds the command)
	tokCode           // %{ code }% (Text holds the code)
	tokOption         // --name[=value] (Text holds name=value without dashes)
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
	}
	return "token"
}

type token struct {
	Kind tokKind
	Text string
	Line int
	// Space reports whitespace (or a comment) right before the token; flag
	// words such as "S." are runs of tokens with no space between them.
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

// lexError carries the position of a lexical error.
type lexError struct {
	Line int
	Msg  string
}

func (e *lexError) Error() string { return fmt.Sprintf("%d: %s", e.Line, e.Msg) }

// lex splits src into tokens. Newlines are not significant to packetdrill's
// grammar, so they only advance the line count.
func lex(src string) ([]token, error) {
	var toks []token
	line := 1
	space := true
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\n':
			line++
			space = true
			i++
			continue
		case c == ' ' || c == '\t' || c == '\r' || c == '\f':
			space = true
			i++
			continue
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
			space = true
			continue
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, &lexError{line, "unterminated /* comment: expected */"}
			}
			line += strings.Count(src[i:i+2+end], "\n")
			i += 2 + end + 2
			space = true
			continue
		}
		t := token{Line: line, Space: space}
		space = false
		switch {
		case strings.HasPrefix(src[i:], "%{"):
			end := strings.Index(src[i+2:], "}%")
			if end < 0 {
				return nil, &lexError{line, "unterminated %{ code block: expected }%"}
			}
			t.Kind, t.Text = tokCode, strings.TrimSpace(src[i+2:i+2+end])
			line += strings.Count(src[i:i+2+end], "\n")
			i += 2 + end + 2
		case c == '`':
			end := strings.IndexByte(src[i+1:], '`')
			if end < 0 {
				return nil, &lexError{line, "unterminated shell command: expected a closing backquote"}
			}
			t.Kind, t.Text = tokShell, strings.TrimSpace(src[i+1:i+1+end])
			line += strings.Count(src[i:i+1+end], "\n")
			i += 1 + end + 1
		case c == '"':
			j := i + 1
			var b strings.Builder
			for j < len(src) && src[j] != '"' {
				if src[j] == '\n' {
					return nil, &lexError{line, "unterminated string: expected a closing \""}
				}
				if src[j] == '\\' && j+1 < len(src) {
					j++
					switch src[j] {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					default:
						b.WriteByte(src[j])
					}
					j++
					continue
				}
				b.WriteByte(src[j])
				j++
			}
			if j >= len(src) {
				return nil, &lexError{line, "unterminated string: expected a closing \""}
			}
			t.Kind, t.Text = tokString, b.String()
			i = j + 1
		case strings.HasPrefix(src[i:], "--") && t.Space && i+2 < len(src) && isIdentStart(src[i+2]):
			j := i + 2
			for j < len(src) && src[j] != ' ' && src[j] != '\t' && src[j] != '\n' && src[j] != '\r' {
				j++
			}
			t.Kind, t.Text = tokOption, src[i+2:j]
			i = j
		case strings.HasPrefix(src[i:], "..."):
			t.Kind, t.Text = tokEllip, "..."
			i += 3
		case isDigit(c) || (c == '.' && i+1 < len(src) && isDigit(src[i+1])):
			j := i
			if c == '0' && i+1 < len(src) && (src[i+1] == 'x' || src[i+1] == 'X') {
				j += 2
				for j < len(src) && isHex(src[j]) {
					j++
				}
			} else {
				for j < len(src) && isDigit(src[j]) {
					j++
				}
				// A fraction, but not the start of "..." (as in "0.1...0.3").
				if j < len(src) && src[j] == '.' && !strings.HasPrefix(src[j:], "...") {
					j++
					for j < len(src) && isDigit(src[j]) {
						j++
					}
				}
			}
			t.Kind, t.Text = tokNumber, src[i:j]
			i = j
		case isIdentStart(c):
			j := i
			for j < len(src) && (isIdentStart(src[j]) || isDigit(src[j])) {
				j++
			}
			t.Kind, t.Text = tokIdent, src[i:j]
			i = j
		case strings.ContainsRune("<>:(),[]{}=|+*~.-/!&;", rune(c)):
			t.Kind, t.Text = tokPunct, string(c)
			i++
		default:
			return nil, &lexError{line, fmt.Sprintf("unexpected character %q", c)}
		}
		toks = append(toks, t)
	}
	toks = append(toks, token{Kind: tokEOF, Line: line, Space: true})
	return toks, nil
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isHex(c byte) bool        { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') }
func isIdentStart(c byte) bool { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
