package conformance

import (
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"tunstack/wire"
)

// ParseError names the file, the line and what the parser expected.
type ParseError struct {
	File string
	Line int // 0 when the error is not on a line (a command-line option)
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ParseFile reads and parses a script; cmdline are the command line's
// packetdrill options, which override the script's option lines.
func ParseFile(path string, cmdline ...Option) (*Script, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, string(b), cmdline...)
}

// Parse parses the text of a script as packetdrill's grammar defines it:
//
//	script: options, then an optional `init command`, then events, then
//	        an optional `cleanup command`
//	event:  time action, where action is a packet, a system call, a
//	        `shell command` or a %{ code block }%
//
// and rejects what packetdrill rejects, with the line and what was
// expected. name is used in messages; cmdline are the command line's
// options (they are part of parsing: their -D definitions change how the
// events read).
func Parse(name, src string, cmdline ...Option) (*Script, error) {
	toks, err := lex(src)
	if err != nil {
		le := err.(*lexError)
		return nil, &ParseError{name, le.Line, le.Msg}
	}
	p := &parser{file: name, toks: toks}
	s := &Script{Path: name}
	if s.Options, err = p.options(); err != nil {
		return nil, err
	}
	// packetdrill configures the run once the options are read: the
	// script's, then the command line's, which override them.
	s.Config = DefaultConfig()
	for _, o := range s.Options {
		if err := s.Config.Apply(o); err != nil {
			return nil, &ParseError{name, o.Line, err.Error()}
		}
	}
	for _, o := range cmdline {
		if err := s.Config.Apply(o); err != nil {
			return nil, &ParseError{name, 0, "Command Line: " + err.Error()}
		}
	}
	if err := s.Config.finish(); err != nil {
		return nil, &ParseError{name, 0, err.Error()}
	}
	// The definitions are known once the options are: every WORD after
	// them is looked up, except the very first token, which packetdrill
	// has already read (to see that the options ended) when it learns
	// them.
	p.define(s.Config.Defines)
	if t := p.peek(); t.Kind == tokShell {
		p.next()
		s.Init = &Shell{Command: t.Text, Line: t.Line}
	}
	for {
		t := p.peek()
		if t.Kind == tokEOF {
			break
		}
		if t.Kind == tokShell && len(s.Events) > 0 && p.peekN(1).Kind == tokEOF {
			p.next()
			s.Cleanup = &Shell{Command: t.Text, Line: t.Line}
			break
		}
		ev, err := p.event()
		if err != nil {
			return nil, err
		}
		s.Events = append(s.Events, ev)
	}
	if len(s.Events) == 0 {
		return nil, p.expected("an event (a time, then a packet, a system call, a `shell command` or a %{ code block }%)")
	}
	return s, nil
}

type parser struct {
	file string
	toks []token
	pos  int
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) peekN(n int) token {
	if p.pos+n < len(p.toks) {
		return p.toks[p.pos+n]
	}
	return p.toks[len(p.toks)-1]
}
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.Kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *parser) errf(line int, format string, args ...any) error {
	return &ParseError{p.file, line, fmt.Sprintf(format, args...)}
}

// expected reports what was wanted and what was found at the current token.
func (p *parser) expected(what string) error {
	t := p.peek()
	return p.errf(t.Line, "expected %s, found %s", what, t)
}

func (p *parser) isPunct(s string) bool {
	t := p.peek()
	return t.Kind == tokPunct && t.Text == s
}

func (p *parser) punct(s string) error {
	if !p.isPunct(s) {
		return p.expected(fmt.Sprintf("%q", s))
	}
	p.next()
	return nil
}

// isWord reports whether the next token is the word or keyword s.
func (p *parser) isWord(s string) bool {
	t := p.peek()
	return t.Kind == tokIdent && t.Text == s
}

// keyword consumes the reserved word s.
func (p *parser) keyword(s string) error {
	if !p.isWord(s) {
		return p.expected(s)
	}
	p.next()
	return nil
}

// options reads the --name[=value] lines at the top. A value is an
// integer, a word, a "string", an address, ipv4/ipv6, or NAME=word,
// NAME="string" or NAME=`command` (for --define); anything else (a float,
// a hex number, a path) is not a value to packetdrill unless quoted.
func (p *parser) options() ([]Option, error) {
	var opts []Option
	for p.peek().Kind == tokOption {
		t := p.next()
		o := Option{Line: t.Line, Name: t.Text}
		if p.isPunct("=") {
			p.next()
			o.HasValue = true
			v := p.peek()
			switch {
			case v.isInt(), v.Kind == tokIPv4, v.Kind == tokIPv6, v.Kind == tokString, v.is("ipv4"), v.is("ipv6"):
				p.next()
				o.Value = v.Text
			case v.isWord():
				p.next()
				o.Value = v.Text
				if p.isPunct("=") {
					p.next()
					switch r := p.next(); {
					case r.isWord():
						o.Value += "=" + r.Text
					case r.Kind == tokString:
						o.Value += "=\"" + r.Text + "\""
					case r.Kind == tokShell:
						o.Value += "=`" + r.Text + "`"
					default:
						p.pos--
						return nil, p.expected(fmt.Sprintf("a word, a \"string\" or a `command` after %s=", v.Text))
					}
				}
			default:
				return nil, p.expected(fmt.Sprintf("a value for --%s (an integer, a word, a \"string\" or an address)", t.Text))
			}
		}
		opts = append(opts, o)
	}
	return opts, nil
}

// define replaces, after the current token, every WORD that names a
// definition by its value: "text" becomes a string, `text` a command, an
// integer (as C's strtol reads one, in full) a number, anything else a
// word.
func (p *parser) define(defs map[string]string) {
	if len(defs) == 0 {
		return
	}
	for i := p.pos + 1; i < len(p.toks); i++ {
		t := &p.toks[i]
		if !t.isWord() {
			continue
		}
		v, ok := defs[t.Text]
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(v, `"`):
			t.Kind, t.Text = tokString, unquote(v)
		case strings.HasPrefix(v, "`"):
			t.Kind, t.Text = tokShell, unquote(v)
		default:
			if n, ok := strtolFull(v); ok {
				t.Kind, t.Num, t.Text = tokNumber, numInt, strconv.FormatInt(n, 10)
			} else {
				t.Text = v
			}
		}
	}
}

// unquote drops the first and last bytes of a definition's "value".
func unquote(v string) string {
	if len(v) < 2 {
		return ""
	}
	return v[1 : len(v)-1]
}

// strtolFull reads v as C's strtol(v, &end, 0) does and reports whether it
// consumed all of v: leading blanks, a sign, then 0x hex, 0 octal or
// decimal digits. An empty v reads as 0.
func strtolFull(v string) (int64, bool) {
	s := strings.TrimLeft(v, " \t\n\v\f\r")
	if s == "" {
		return 0, v == ""
	}
	neg := false
	if s[0] == '+' || s[0] == '-' {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := 10
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && isHex(s[2]):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" || strings.ContainsAny(s, "_+-") {
		return 0, false
	}
	n, err := strconv.ParseUint(s, base, 64)
	if err != nil || n >= math.MaxInt64 {
		return 0, false
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

func (p *parser) event() (*Event, error) {
	t := p.peek()
	switch t.Kind {
	case tokOption:
		return nil, p.errf(t.Line, "option %s must come before everything else in the script", t)
	case tokShell:
		return nil, p.errf(t.Line, "a shell command without a time may only be the first thing after the options (the init command) or the last thing in the script (the cleanup command); give it a time, as in +0 `%s`", t.Text)
	case tokCode:
		return nil, p.errf(t.Line, "a %%{ code block }%% needs a time before it, as in +0 %%{ ... }%%")
	}
	ev := &Event{Line: t.Line}
	var err error
	if ev.Time, err = p.eventTime(); err != nil {
		return nil, err
	}
	t = p.peek()
	switch {
	case t.Kind == tokEllip:
		p.next()
		end, err := p.time("the end time of a blocking call after ...")
		if err != nil {
			return nil, err
		}
		if !p.peek().isWord() {
			return nil, p.expected("a system call after the end time")
		}
		sc, err := p.syscall()
		if err != nil {
			return nil, err
		}
		sc.EndTime, sc.HasEnd = end, true
		ev.Syscall = sc
	case t.Kind == tokPunct && (t.Text == "<" || t.Text == ">"):
		pk, err := p.packet()
		if err != nil {
			return nil, err
		}
		ev.Packet = pk
	case t.Kind == tokShell:
		p.next()
		ev.Shell = &Shell{Command: t.Text, Line: t.Line}
	case t.Kind == tokCode:
		p.next()
		ev.Code = &CodeBlock{Code: t.Text}
	case t.isWord():
		sc, err := p.syscall()
		if err != nil {
			return nil, err
		}
		ev.Syscall = sc
	default:
		return nil, p.expected("a packet (< or >), a system call, a `shell command` or a %{ code block }% after the time")
	}
	// packetdrill's rules for times that are not a plain instant.
	outbound := ev.Packet != nil && ev.Packet.Dir == Outbound
	switch {
	case ev.Time.Kind == TimeAny && !outbound:
		return nil, p.errf(ev.Line, "event time <star> can only be used with outbound packets")
	case ev.Time.HasRange && !outbound:
		return nil, p.errf(ev.Line, "event time range can only be used with outbound packets")
	}
	return ev, nil
}

// eventTime parses "0.1", "+0.1", "*", "a~b" and "+a~+b".
func (p *parser) eventTime() (EventTime, error) {
	var et EventTime
	if p.isPunct("*") {
		p.next()
		et.Kind = TimeAny
		return et, nil
	}
	rel := p.isPunct("+")
	if rel {
		p.next()
		et.Kind = TimeRelative
	}
	start, err := p.time("an event time (0.100, +0.1 or *)")
	if err != nil {
		return et, err
	}
	et.Start = start
	if !p.isPunct("~") {
		return et, nil
	}
	tilde := p.next()
	if rel {
		if !p.isPunct("+") {
			return et, p.expected("+ before the end of a relative time range (+a~+b)")
		}
		p.next()
	}
	end, err := p.time("the end of a time range after ~")
	if err != nil {
		return et, err
	}
	if end < start {
		return et, p.errf(tilde.Line, "time range is backwards")
	}
	et.End, et.HasRange = end, true
	return et, nil
}

// time reads a time in seconds, an integer or a float, as packetdrill
// does: a float's microseconds are truncated, not rounded.
func (p *parser) time(what string) (time.Duration, error) {
	t := p.peek()
	if t.Kind != tokNumber || t.Num == numHex {
		return 0, p.expected(what)
	}
	p.next()
	f, err := strconv.ParseFloat(t.Text, 64)
	if err != nil || f > 1e9 {
		return 0, p.errf(t.Line, "expected %s, found %s", what, t)
	}
	if f < 0 {
		return 0, p.errf(t.Line, "negative time")
	}
	return time.Duration(int64(f*1e6)) * time.Microsecond, nil
}

var flagBits = map[byte]uint8{
	'S': wire.FlagSYN, 'F': wire.FlagFIN, 'R': wire.FlagRST, 'P': wire.FlagPSH,
	'.': wire.FlagACK, 'U': wire.FlagURG, 'E': wire.FlagECE, 'W': wire.FlagCWR,
}

// packet parses a packet line after its time:
//
//	< or >, [(ip info)], then a TCP packet:
//	    [SRC>DST] FLAGS START:END(LEN) [ack N] [win N] [urg N] [<options>]
//	or  udp [SRC>DST] (LEN)
//	or  icmp TYPE [CODE] [mtu N] [id N] [[START:END(LEN)] | [udp (LEN)] | [raw (LEN)]]
func (p *parser) packet() (*Packet, error) {
	dir := p.next()
	pk := &Packet{Dir: Inbound}
	if dir.Text == ">" {
		pk.Dir = Outbound
	}
	if t := p.peek(); t.Kind == tokIdent && t.Keyword {
		switch t.Text {
		case "ipv4", "ipv6", "gre", "GREv0", "mpls":
			return nil, p.errf(t.Line, "encapsulated packets (%s ... :) are not supported by this parser", t.Text)
		}
	}
	if err := p.ipInfo(pk); err != nil {
		return nil, err
	}
	switch {
	case p.isWord("udp"):
		return pk, p.udpPacket(pk)
	case p.isWord("icmp"):
		return pk, p.icmpPacket(pk)
	case p.isWord("encap"):
		return nil, p.errf(p.peek().Line, "encapsulated packets (encap psp ...) are not supported by this parser")
	}
	if err := p.portInfo(pk); err != nil {
		return nil, err
	}
	if err := p.flags(pk, dir.Line); err != nil {
		return nil, err
	}
	start, err := p.u32("a sequence range START:END(LEN)", "TCP start sequence number out of range")
	if err != nil {
		return nil, err
	}
	if err := p.punct(":"); err != nil {
		return nil, err
	}
	end, err := p.u32("the end of the sequence range START:END(LEN)", "TCP end sequence number out of range")
	if err != nil {
		return nil, err
	}
	if err := p.punct("("); err != nil {
		return nil, err
	}
	ln, err := p.uint("the payload length in START:END(LEN)", 0xffff, "TCP payload size out of range")
	if err != nil {
		return nil, err
	}
	if err := p.punct(")"); err != nil {
		return nil, err
	}
	// Sequence arithmetic does not wrap here: END must be START+LEN.
	if int64(end) != int64(start)+int64(ln) {
		return nil, p.errf(dir.Line, "inconsistent TCP sequence numbers and payload size")
	}
	pk.Start, pk.End, pk.Len = start, end, int(ln)
	// ack, win, urg and the options, in this order, each optional.
	if p.isWord("ack") {
		p.next()
		if pk.Ack, err = p.u32("an acknowledgment number after ack", "TCP ack sequence number out of range"); err != nil {
			return nil, err
		}
		pk.HasAck = true
	}
	if p.isWord("win") {
		p.next()
		v, err := p.uint("a window after win", 0xffff, "TCP window value out of range")
		if err != nil {
			return nil, err
		}
		pk.HasWin, pk.Win = true, uint16(v)
	}
	if p.isWord("urg") {
		p.next()
		v, err := p.uint("an urgent pointer after urg", 0xffff, "urg_ptr value out of range")
		if err != nil {
			return nil, err
		}
		pk.HasUrg, pk.Urg = true, uint16(v)
	}
	optBytes := 0
	if p.isPunct("<") {
		if optBytes, err = p.tcpOptions(pk); err != nil {
			return nil, err
		}
	}
	// The checks packetdrill makes of a whole TCP packet line.
	switch {
	case pk.OptionsAny && pk.Dir == Inbound:
		return nil, p.errf(dir.Line, "<...> for TCP options can only be used with outbound packets")
	case optBytes%4 != 0:
		// The options must fill whole 32-bit words (RFC 9293 §3.1, Data
		// Offset); packetdrill does not pad them, so neither may a script.
		return nil, p.errf(dir.Line, "TCP options are not padded correctly to ensure TCP header is a multiple of 4 bytes: %d excess bytes", optBytes%4)
	case wire.IPv4HeaderLen+wire.TCPHeaderLen+optBytes+pk.Len > 64*1024:
		return nil, p.errf(dir.Line, "TCP segment too large")
	case !pk.HasWin && pk.Dir == Inbound:
		return nil, p.errf(dir.Line, "window must be specified for inbound packets")
	}
	return pk, nil
}

// portInfo parses the optional explicit ports SRC>DST before the flags.
// The runner uses its own ports, so a line with explicit ones cannot run.
func (p *parser) portInfo(pk *Packet) error {
	if !p.peek().isInt() || !p.peekN(1).is(">") {
		return nil
	}
	if _, err := p.uint("a source port", 0xffff, "src port out of range"); err != nil {
		return err
	}
	p.next() // >
	if _, err := p.uint("a destination port after >", 0xffff, "dst port out of range"); err != nil {
		return err
	}
	pk.unsupported("explicit port numbers")
	return nil
}

// flags parses a packet's flags: a word of flag letters with an optional
// trailing '.', '.' alone, or '-' for none; packetdrill's letters are
// . F S R P E W A U and the digits 0 to 7 (AccECN's ACE field).
func (p *parser) flags(pk *Packet, line int) error {
	var fs string
	switch t := p.peek(); {
	case t.isWord():
		p.next()
		fs = t.Text
		if n := p.peek(); n.Kind == tokNumber && n.Num == numFloat {
			p.next()
			fs += n.Text
		} else if p.isPunct(".") {
			p.next()
			fs += "."
		}
	case t.Kind == tokNumber && t.Num == numFloat:
		p.next()
		fs = t.Text
	case t.is("."):
		p.next()
		fs = "."
	case t.is("-"):
		p.next()
		pk.FlagStr = "-"
		return nil
	default:
		return p.expected("TCP flags (S, S., ., P., F., R, -, ...)")
	}
	pk.FlagStr = fs
	ecn, ace := false, false
	for i := 0; i < len(fs); i++ {
		c := fs[i]
		if !strings.ContainsRune(".FSRPEWAU01234567", rune(c)) {
			return p.errf(line, "Invalid TCP flag: '%c'", c)
		}
		isACE := c >= '0' && c <= '7'
		isECN := c == 'E' || c == 'W' || c == 'A'
		if isECN && ace || isACE && (ecn || ace) {
			return p.errf(line, "Conflicting TCP flag: '%c'", c)
		}
		ecn, ace = ecn || isECN, ace || isACE
		if b, ok := flagBits[c]; ok {
			pk.Flags |= b
		} else if pk.Unsupported == "" {
			pk.Unsupported = "AccECN flags (A and the ACE digits)"
		}
	}
	return nil
}

// u32 reads a decimal integer that must fit 32 bits unsigned; outOfRange
// is packetdrill's message when it does not.
func (p *parser) u32(what, outOfRange string) (uint32, error) {
	v, err := p.uint(what, math.MaxUint32, outOfRange)
	return uint32(v), err
}

// uint reads a decimal integer in [0, max].
func (p *parser) uint(what string, max uint64, outOfRange string) (uint64, error) {
	t := p.peek()
	if !t.isInt() {
		return 0, p.expected(what)
	}
	p.next()
	v, err := strconv.ParseInt(t.Text, 10, 64)
	if err != nil || v < 0 || uint64(v) > max {
		return 0, p.errf(t.Line, "%s", outOfRange)
	}
	return uint64(v), nil
}

// udpPacket parses "udp [SRC>DST] (LEN)"; the runner cannot run it.
func (p *parser) udpPacket(pk *Packet) error {
	p.next() // udp
	pk.Unsupported = "udp packets"
	if err := p.portInfo(pk); err != nil {
		return err
	}
	pk.Unsupported = "udp packets"
	if err := p.punct("("); err != nil {
		return err
	}
	if _, err := p.uint("the UDP payload length", 0xffff, "UDP payload size out of range"); err != nil {
		return err
	}
	return p.punct(")")
}

// icmpPacket parses "icmp TYPE [CODE] [mtu N] [id N] [ECHOED]"; the
// runner cannot run it.
func (p *parser) icmpPacket(pk *Packet) error {
	p.next() // icmp
	pk.Unsupported = "icmp packets"
	if !p.peek().isWord() {
		return p.expected("an ICMP type after icmp")
	}
	p.next()
	if p.peek().isWord() {
		p.next()
	}
	if p.isWord("mtu") {
		p.next()
		if !p.peek().isInt() {
			return p.expected("an MTU after mtu")
		}
		p.next()
	}
	if p.isWord("id") {
		p.next()
		if !p.peek().isInt() {
			return p.expected("an echo id after id")
		}
		p.next()
	}
	if !p.isPunct("[") {
		return nil
	}
	p.next()
	switch {
	case p.isWord("udp"), p.isWord("raw"):
		p.next()
		if err := p.punct("("); err != nil {
			return err
		}
		if !p.peek().isInt() {
			return p.expected("a payload length")
		}
		p.next()
		if err := p.punct(")"); err != nil {
			return err
		}
	default:
		for _, part := range []string{"int", ":", "int", "(", "int", ")"} {
			if part == "int" {
				if !p.peek().isInt() {
					return p.expected("START:END(LEN) of the packet the ICMP message quotes")
				}
				p.next()
			} else if err := p.punct(part); err != nil {
				return err
			}
		}
	}
	return p.punct("]")
}

// tcpOptions parses "<...>" or "<option, option, ...>" and returns the
// number of bytes the options take on the wire.
func (p *parser) tcpOptions(pk *Packet) (int, error) {
	p.next() // <
	if p.peek().Kind == tokEllip {
		p.next()
		pk.OptionsAny = true
		return 0, p.punct(">")
	}
	total := 0
	for {
		t := p.peek()
		if t.Kind != tokIdent || !t.Keyword {
			return 0, p.expected("a TCP option (nop, eol, mss N, wscale N, sackOK, sack A:B ..., TS val N ecr N, md5 HEX, FO [HEX], FOEXP [HEX], ECN ...)")
		}
		p.next()
		var o TCPOpt
		size, keep := 0, true
		switch t.Text {
		case "nop":
			o.Kind, size = OptKindNOP, 1
		case "eol":
			o.Kind, size = OptKindEOL, 1
		case "sackOK":
			o.Kind, size = OptKindSACKOK, 2
		case "mss":
			v, err := p.uint("an MSS value after mss", 0xffff, "mss value out of range")
			if err != nil {
				return 0, err
			}
			o.Kind, o.Value, size = OptKindMSS, uint32(v), 4
		case "wscale":
			v, err := p.uint("a shift count after wscale", 0xff, "window scale shift count out of range")
			if err != nil {
				return 0, err
			}
			o.Kind, o.Value, size = OptKindWScale, uint32(v), 3
		case "TS":
			if err := p.keyword("val"); err != nil {
				return 0, err
			}
			v, err := p.u32("a timestamp after TS val", "ts val out of range")
			if err != nil {
				return 0, err
			}
			if err := p.keyword("ecr"); err != nil {
				return 0, err
			}
			e, err := p.u32("a timestamp after ecr", "ecr val out of range")
			if err != nil {
				return 0, err
			}
			o.Kind, o.TSVal, o.TSEcr, size = OptKindTS, v, e, 10
		case "sack":
			o.Kind, size = OptKindSACK, 2
			for {
				a, err := p.u32("a SACK block A:B after sack", "TCP SACK left sequence number out of range")
				if err != nil {
					return 0, err
				}
				if err := p.punct(":"); err != nil {
					return 0, err
				}
				b, err := p.u32("the right edge of a SACK block A:B", "TCP SACK right sequence number out of range")
				if err != nil {
					return 0, err
				}
				o.Blocks = append(o.Blocks, [2]uint32{a, b})
				size += 8
				if !p.peek().isInt() {
					break
				}
			}
		case "md5":
			n, err := p.hexBlob(t.Line, true, "an MD5 digest (hex) after md5", func(n int) string {
				if n > 16 {
					return "TCP MD5 digest longer than 16 bytes"
				}
				return ""
			}, "TCP MD5 digest is not a valid hex string")
			if err != nil {
				return 0, err
			}
			size, keep = 2+n, false
			pk.unsupported("TCP MD5 signature options")
		case "FO", "FOEXP":
			base, max := 2, 38
			if t.Text == "FOEXP" {
				base, max = 4, 36
			}
			n, err := p.hexBlob(t.Line, false, "", func(n int) string {
				if n > max {
					return fmt.Sprintf("TCP fast open cookie of %d bytes exceeds maximum cookie length of %d bytes", n, max)
				}
				return ""
			}, "TCP fast open cookie is not a valid hex string")
			if err != nil {
				return 0, err
			}
			size, keep = base+n, false
			pk.unsupported("TCP Fast Open options")
		case "ECN":
			n, err := p.accECN()
			if err != nil {
				return 0, err
			}
			size, keep = 2+3*n, false
			pk.unsupported("AccECN options")
		default:
			p.pos--
			return 0, p.expected("a TCP option")
		}
		// The option area holds 40 bytes (RFC 9293 §3.1: Data Offset is
		// at most 15 words, 5 of them the fixed header).
		if total+size > 40 {
			return 0, p.errf(t.Line, "TCP option list too long")
		}
		total += size
		if keep {
			pk.Opts = append(pk.Opts, o)
		}
		if p.isPunct(",") {
			p.next()
			continue
		}
		return total, p.punct(">")
	}
}

// unsupported records the first thing on the line the runner cannot run.
func (pk *Packet) unsupported(what string) {
	if pk.Unsupported == "" {
		pk.Unsupported = what
	}
}

// hexBlob reads a hex string written as a word or an integer, as the
// md5, FO and FOEXP options take it, and returns its length in bytes.
// With required false it may be absent (an empty FO cookie).
func (p *parser) hexBlob(line int, required bool, what string, tooLong func(int) string, invalid string) (int, error) {
	t := p.peek()
	if !t.isWord() && !t.isInt() {
		if required {
			return 0, p.expected(what)
		}
		return 0, nil
	}
	p.next()
	s := t.Text
	if !required && len(s)%2 == 1 {
		return 0, p.errf(line, "TCP fast open cookie has an odd number of digits")
	}
	if msg := tooLong(len(s) / 2); msg != "" {
		return 0, p.errf(line, "%s", msg)
	}
	if _, err := hex.DecodeString(s[:len(s)/2*2]); err != nil || len(s)%2 == 1 {
		return 0, p.errf(line, "%s", invalid)
	}
	return len(s) / 2, nil
}

// accECN reads the fields of an AccECN option after ECN: e0b N [ceb N
// [e1b N]] or e1b N [ceb N [e0b N]], each N 24 bits; it returns how many
// fields the option carries.
func (p *parser) accECN() (int, error) {
	first := p.peek()
	if !first.is("e0b") && !first.is("e1b") {
		return 0, p.expected("e0b N or e1b N after ECN")
	}
	last := "e1b"
	if first.Text == "e1b" {
		last = "e0b"
	}
	n := 0
	for _, name := range []string{first.Text, "ceb", last} {
		if n > 0 && !p.isWord(name) {
			break
		}
		p.next()
		if _, err := p.uint("a counter after "+name, 0xffffff, "TCP AccECN field value out of range"); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

func (p *parser) syscall() (*Syscall, error) {
	name := p.next()
	sc := &Syscall{Name: name.Text}
	if err := p.punct("("); err != nil {
		return nil, p.errf(name.Line, "expected ( after system call name %q, found %s", name.Text, p.peek())
	}
	if !p.isPunct(")") {
		for {
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			sc.Args = append(sc.Args, e)
			if p.isPunct(",") {
				p.next()
				continue
			}
			break
		}
	}
	if err := p.punct(")"); err != nil {
		return nil, err
	}
	if !p.isPunct("=") {
		return nil, p.expected("= result after " + name.Text + "(...)")
	}
	p.next()
	resLine := p.peek().Line
	r, err := p.expr()
	if err != nil {
		return nil, err
	}
	// packetdrill takes the expected result as a plain integer: a
	// symbolic one (O_RDWR|O_NONBLOCK, ...) fails the line. The symbolic
	// form goes in a note after the number instead.
	if r.Kind != ExprInt && !(r.Kind == ExprCall && r.Name == "inet_addr") {
		return nil, p.errf(resLine, "the result of %s must be an integer, not %s (packetdrill fails such a line: Bad type; actual: %s expected: integer); write the number and, if useful, the names in a note: = 0x802 (flags O_RDWR O_NONBLOCK)", name.Text, r, exprTypeName(r))
	}
	if r.Int > math.MaxUint32 || r.Int < math.MinInt32 {
		return nil, p.errf(resLine, "Value out of range for 32-bit integer: %d", r.Int)
	}
	sc.Result = r
	// ERRNO (text), then an optional (note).
	if t := p.peek(); t.isWord() {
		p.next()
		sc.Errno = t.Text
		if !p.isPunct("(") {
			return nil, p.expected(fmt.Sprintf("(text) after the errno %s, as in %s (Connection refused)", t.Text, t.Text))
		}
		if sc.ErrnoText, err = p.note(); err != nil {
			return nil, err
		}
	}
	if p.isPunct("(") {
		if sc.Note, err = p.note(); err != nil {
			return nil, err
		}
	}
	return sc, nil
}

// note reads "(words ...)": words only (the first may be "flags"), no
// numbers or punctuation, as packetdrill's grammar has it.
func (p *parser) note() (string, error) {
	p.next() // (
	var words []string
	for !p.isPunct(")") {
		t := p.peek()
		if !t.isWord() && !(len(words) == 0 && (t.Text == "flags" || t.Text == "Flags")) {
			return "", p.expected("a word or ) in the note (notes hold words only, such as (Connection refused) or (flags O_RDWR O_NONBLOCK))")
		}
		p.next()
		words = append(words, t.Text)
	}
	if len(words) == 0 {
		return "", p.expected("a word in the note")
	}
	p.next() // )
	return strings.Join(words, " "), nil
}

// exprTypeName names an expression's kind as packetdrill's messages do.
func exprTypeName(e Expr) string {
	switch e.Kind {
	case ExprInt:
		return "integer"
	case ExprIdent:
		return "word"
	case ExprOr, ExprAssign:
		return "binary_expression"
	case ExprEllipsis:
		return "ellipsis"
	case ExprString:
		return "string"
	case ExprList:
		return "list"
	}
	return "structure"
}

// expr parses an argument. packetdrill's expressions are: ..., integers,
// words, "strings" (adjacent ones joined; one may end in ...), A|B, NAME=
// value, [lists], inet_addr("a.b.c.d"), inet6_addr("..."), and the forms
// in braces (braced).
func (p *parser) expr() (Expr, error) {
	e, err := p.term()
	if err != nil || !p.isPunct("|") {
		return e, err
	}
	or := Expr{Kind: ExprOr, Items: []Expr{e}}
	for p.isPunct("|") {
		p.next()
		e, err := p.term()
		if err != nil {
			return e, err
		}
		or.Items = append(or.Items, e)
	}
	return or, nil
}

func (p *parser) term() (Expr, error) {
	if e, ok, err := p.specialTerm(); ok {
		return e, err
	}
	t := p.peek()
	switch {
	case t.Kind == tokEllip:
		p.next()
		return Expr{Kind: ExprEllipsis}, nil
	case t.Kind == tokNumber && t.Num != numFloat:
		p.next()
		return p.intExpr(t)
	case t.Kind == tokString:
		p.next()
		s, err := p.decodeString(t)
		if err != nil {
			return s, err
		}
		if p.peek().Kind == tokEllip {
			p.next()
			s.Prefix = true
			return s, nil
		}
		for p.peek().Kind == tokString {
			n := p.next()
			more, err := p.decodeString(n)
			if err != nil {
				return s, err
			}
			s.Name += more.Name
		}
		return s, nil
	case t.isWord():
		p.next()
		if p.isPunct("=") {
			p.next()
			v, err := p.expr()
			return Expr{Kind: ExprAssign, Name: t.Text, Items: []Expr{v}}, err
		}
		return Expr{Kind: ExprIdent, Name: t.Text}, nil
	case t.is("inet_addr"), t.is("inet6_addr"):
		p.next()
		return p.addrCall(t)
	case t.is("["):
		p.next()
		l := Expr{Kind: ExprList}
		if p.isPunct("]") {
			p.next()
			return l, nil
		}
		for {
			e, err := p.expr()
			if err != nil {
				return e, err
			}
			l.Items = append(l.Items, e)
			if p.isPunct(",") {
				p.next()
				continue
			}
			return l, p.punct("]")
		}
	case t.is("{"):
		return p.braced()
	}
	return Expr{}, p.expected("an argument (an integer, a NAME, A|B, ..., a \"string\", a [list] or a {structure})")
}

// intExpr converts an integer token; a hex one is read as C's strtol
// reads it (saturating).
func (p *parser) intExpr(t token) (Expr, error) {
	if t.Num == numHex {
		v, err := strconv.ParseUint(t.Text[2:], 16, 64)
		if err != nil || v > math.MaxInt64 {
			v = math.MaxInt64
		}
		return Expr{Kind: ExprInt, Int: int64(v)}, nil
	}
	v, err := strconv.ParseInt(t.Text, 10, 64)
	if err != nil {
		return Expr{}, p.errf(t.Line, "integer %s out of range", t.Text)
	}
	return Expr{Kind: ExprInt, Int: v}, nil
}

// decodeString undoes a string's escapes as packetdrill does when it
// passes the string to a call: \f \n \r \t \v and \xHH. Behaviour of
// packetdrill kept here: \\ and \" also give a form feed, and any other
// escape is an error.
func (p *parser) decodeString(t token) (Expr, error) {
	var b strings.Builder
	s := t.Text
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return Expr{}, p.errf(t.Line, "unsupported escape code: '\\' at the end of the string")
		}
		switch s[i] {
		case '\\', '"', 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case 'x':
			if i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
				v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
				b.WriteByte(byte(v))
				i += 2
				continue
			}
			return Expr{}, p.errf(t.Line, "invalid hex escape (\\xhh): '\\x%s'", s[i+1:])
		default:
			return Expr{}, p.errf(t.Line, "unsupported escape code: '%c'", s[i])
		}
	}
	return Expr{Kind: ExprString, Name: b.String()}, nil
}

// addrCall parses inet_addr("a.b.c.d") or inet6_addr("...").
func (p *parser) addrCall(fn token) (Expr, error) {
	if err := p.punct("("); err != nil {
		return Expr{}, err
	}
	s := p.peek()
	if s.Kind != tokString {
		return Expr{}, p.expected("an address in quotes")
	}
	p.next()
	if err := p.punct(")"); err != nil {
		return Expr{}, err
	}
	if a, err := netip.ParseAddr(s.Text); fn.Text == "inet6_addr" && (err != nil || !a.Is6()) {
		return Expr{}, p.errf(s.Line, "cannot parse in6_addr")
	}
	return Expr{Kind: ExprCall, Name: fn.Text, Items: []Expr{{Kind: ExprString, Name: s.Text}}}, nil
}

// braced parses an expression in braces. packetdrill tells its structure
// forms apart by the word after '{': fd (a pollfd), onoff (a linger),
// sa_family (a sockaddr), scm_sec, cmsg_level and ee_errno each begin a
// form with fixed fields in a fixed order; anything else is a list of
// expressions, NAME=value ones becoming fields.
func (p *parser) braced() (Expr, error) {
	open := p.next() // {
	switch t := p.peek(); {
	case t.is("fd"):
		return p.fixedStruct(open, []fieldSpec{{"fd", fieldExpr}, {"events", fieldExpr}, {"revents", fieldExpr | fieldOptional}})
	case t.is("onoff"):
		return p.fixedStruct(open, []fieldSpec{{"onoff", fieldInt}, {"linger", fieldInt}})
	case t.is("scm_sec"):
		return p.fixedStruct(open, []fieldSpec{{"scm_sec", fieldInt}, {"scm_nsec", fieldInt}})
	case t.is("cmsg_level"):
		return p.fixedStruct(open, []fieldSpec{{"cmsg_level", fieldExpr}, {"cmsg_type", fieldExpr}, {"cmsg_data", fieldExpr}})
	case t.is("ee_errno"):
		return p.fixedStruct(open, []fieldSpec{{"ee_errno", fieldExpr}, {"ee_origin", fieldExpr}, {"ee_type", fieldExpr},
			{"ee_code", fieldExpr}, {"ee_info", fieldExpr}, {"ee_data", fieldExpr}})
	case t.is("sa_family"):
		return p.sockaddr(open)
	case t.is("events"):
		// epoll_event {events=E, fd|ptr|u32|u64=N}: read as a structure
		// whose field names may be reserved words.
		return p.structure(open, true)
	case t.is("("), t.is("flags"):
		return Expr{}, p.errf(t.Line, "MPLS label stacks and GRE headers are not supported by this parser")
	case t.is("}"):
		// An empty label stack, to packetdrill.
		p.next()
		return Expr{Kind: ExprStruct}, nil
	}
	return p.structure(open, false)
}

// structure parses "expr, expr, ...}" after '{': NAME=value items become
// fields, the others items. With keywordNames, a reserved word may name
// a field too.
func (p *parser) structure(open token, keywordNames bool) (Expr, error) {
	s := Expr{Kind: ExprStruct}
	for {
		var e Expr
		var err error
		if t := p.peek(); keywordNames && t.Kind == tokIdent && t.Keyword && p.peekN(1).is("=") {
			p.next()
			p.next()
			v, err := p.expr()
			if err != nil {
				return v, err
			}
			e = Expr{Kind: ExprAssign, Name: t.Text, Items: []Expr{v}}
		} else if e, err = p.expr(); err != nil {
			return e, err
		}
		if e.Kind == ExprAssign {
			s.Fields = append(s.Fields, Field{e.Name, e.Items[0]})
		} else {
			s.Items = append(s.Items, e)
		}
		if p.isPunct(",") {
			p.next()
			continue
		}
		if !p.isPunct("}") {
			return s, p.expected(fmt.Sprintf(", or } in the structure opened on line %d", open.Line))
		}
		p.next()
		return s, nil
	}
}

type fieldKind int

const (
	fieldExpr     fieldKind = 1 << iota // any expression
	fieldInt                            // a decimal integer only
	fieldOptional                       // may be left out (the last field only)
)

type fieldSpec struct {
	name string
	kind fieldKind
}

// fixedStruct parses "{f1=v1, f2=v2, ...}" with exactly the fields given,
// in order, after '{'.
func (p *parser) fixedStruct(open token, fields []fieldSpec) (Expr, error) {
	s := Expr{Kind: ExprStruct}
	for i, f := range fields {
		if i > 0 {
			if f.kind&fieldOptional != 0 && p.isPunct("}") {
				break
			}
			if err := p.punct(","); err != nil {
				return s, err
			}
		}
		if err := p.keyword(f.name); err != nil {
			return s, err
		}
		if err := p.punct("="); err != nil {
			return s, err
		}
		var v Expr
		var err error
		if f.kind&fieldInt != 0 {
			t := p.peek()
			if !t.isInt() {
				return s, p.expected(fmt.Sprintf("an integer after %s=", f.name))
			}
			p.next()
			v, err = p.intExpr(t)
		} else {
			v, err = p.expr()
		}
		if err != nil {
			return s, err
		}
		s.Fields = append(s.Fields, Field{f.name, v})
	}
	if !p.isPunct("}") {
		return s, p.expected(fmt.Sprintf("} to close the structure opened on line %d", open.Line))
	}
	p.next()
	return s, nil
}

// sockaddr parses {sa_family=AF_INET, sin_port=htons(N),
// sin_addr=inet_addr("a.b.c.d")} after '{' (AF_INET6 with an IPv6
// address).
func (p *parser) sockaddr(open token) (Expr, error) {
	s := Expr{Kind: ExprStruct}
	steps := []string{"sa_family", "=", "", ",", "sin_port", "=", "htons", "(", "#", ")", ",", "sin_addr", "=", "inet_addr", "(", "\"", ")", "}"}
	var family, addr string
	var port int64
	for _, want := range steps {
		t := p.peek()
		switch want {
		case "":
			if !t.isWord() {
				return s, p.expected("AF_INET or AF_INET6 after sa_family=")
			}
			family = t.Text
		case "#":
			if !t.isInt() {
				return s, p.expected("a port number in htons(...)")
			}
			port, _ = strconv.ParseInt(t.Text, 10, 64)
		case "\"":
			if t.Kind != tokString {
				return s, p.expected("an address in quotes in inet_addr(...)")
			}
			addr = t.Text
		default:
			if !t.is(want) {
				return s, p.expected(want + " in {sa_family=..., sin_port=htons(N), sin_addr=inet_addr(\"...\")}")
			}
		}
		p.next()
	}
	a, err := netip.ParseAddr(addr)
	switch {
	case family == "AF_INET" && (err != nil || !a.Is4()):
		return s, p.errf(open.Line, "invalid IPv4 address")
	case family == "AF_INET6" && (err != nil || !a.Is6()):
		return s, p.errf(open.Line, "invalid IPv6 address")
	case family != "AF_INET" && family != "AF_INET6":
		return s, p.errf(open.Line, "sa_family must be AF_INET or AF_INET6, not %s", family)
	}
	s.Fields = []Field{
		{"sa_family", Expr{Kind: ExprIdent, Name: family}},
		{"sin_port", Expr{Kind: ExprCall, Name: "htons", Items: []Expr{{Kind: ExprInt, Int: port}}}},
		{"sin_addr", Expr{Kind: ExprCall, Name: "inet_addr", Items: []Expr{{Kind: ExprString, Name: addr}}}},
	}
	return s, nil
}

// String renders an expression as a script would write it.
func (e Expr) String() string {
	list := func(items []Expr) string {
		var s []string
		for _, i := range items {
			s = append(s, i.String())
		}
		return strings.Join(s, ", ")
	}
	switch e.Kind {
	case ExprInt:
		return strconv.FormatInt(e.Int, 10)
	case ExprIdent:
		return e.Name
	case ExprEllipsis:
		return "..."
	case ExprString:
		if e.Prefix {
			return strconv.Quote(e.Name) + "..."
		}
		return strconv.Quote(e.Name)
	case ExprOr:
		var s []string
		for _, i := range e.Items {
			s = append(s, i.String())
		}
		return strings.Join(s, "|")
	case ExprList:
		return "[" + list(e.Items) + "]"
	case ExprStruct:
		var s []string
		for _, f := range e.Fields {
			s = append(s, f.Name+"="+f.Value.String())
		}
		for _, i := range e.Items {
			s = append(s, i.String())
		}
		return "{" + strings.Join(s, ", ") + "}"
	case ExprCall:
		return e.Name + "(" + list(e.Items) + ")"
	case ExprAssign:
		return e.Name + "=" + list(e.Items)
	}
	return "?"
}
