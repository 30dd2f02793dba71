package conformance

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"tunstack/wire"
)

// ParseError names the file, the line and what the parser expected.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// ParseFile reads and parses a script.
func ParseFile(path string) (*Script, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, string(b))
}

// Parse parses the text of a script; name is used in error messages.
func Parse(name, src string) (*Script, error) {
	toks, err := lex(src)
	if err != nil {
		le := err.(*lexError)
		return nil, &ParseError{name, le.Line, le.Msg}
	}
	p := &parser{file: name, toks: toks}
	s := &Script{Path: name}
	for p.peek().Kind == tokOption {
		t := p.next()
		o := Option{Line: t.Line, Name: t.Text}
		if k, v, ok := strings.Cut(t.Text, "="); ok {
			o.Name, o.Value = k, v
		}
		s.Options = append(s.Options, o)
	}
	for p.peek().Kind != tokEOF {
		ev, err := p.event()
		if err != nil {
			return nil, err
		}
		s.Events = append(s.Events, ev)
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

func (p *parser) isWord(s string) bool {
	t := p.peek()
	return t.Kind == tokIdent && t.Text == s
}

func (p *parser) event() (*Event, error) {
	t := p.peek()
	if t.Kind == tokOption {
		return nil, p.errf(t.Line, "option %s must come before the first event", t)
	}
	ev := &Event{Line: t.Line}
	// Shell lines and code blocks may be written without a time (as in
	// packetdrill's own suite); they then run right after the previous event.
	if t.Kind == tokShell || t.Kind == tokCode {
		ev.Time = EventTime{Kind: TimeRelative}
	} else {
		var err error
		if ev.Time, err = p.eventTime(); err != nil {
			return nil, err
		}
	}
	t = p.peek()
	ev.Line = t.Line
	switch {
	case t.Kind == tokEllip:
		p.next()
		end, err := p.endTime(ev.Time)
		if err != nil {
			return nil, err
		}
		if p.peek().Kind != tokIdent {
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
		ev.Shell = &Shell{Command: t.Text}
	case t.Kind == tokCode:
		p.next()
		ev.Code = &CodeBlock{Code: t.Text}
	case t.Kind == tokIdent:
		sc, err := p.syscall()
		if err != nil {
			return nil, err
		}
		ev.Syscall = sc
	default:
		return nil, p.expected("a packet (< or >), a system call, a `shell command` or a %{ code block }%")
	}
	return ev, nil
}

// eventTime parses "0.1", "+0.1", "*", "a~b", "+a~+b".
func (p *parser) eventTime() (EventTime, error) {
	var et EventTime
	if p.isPunct("*") {
		p.next()
		et.Kind = TimeAny
		return et, nil
	}
	rel, d, err := p.timeValue("an event time (0.100, +0.1 or *)")
	if err != nil {
		return et, err
	}
	et.Start = d
	if rel {
		et.Kind = TimeRelative
	}
	if p.isPunct("~") {
		p.next()
		rel2, d2, err := p.timeValue("the end of a time range after ~")
		if err != nil {
			return et, err
		}
		if rel2 != rel {
			return et, p.errf(p.peek().Line, "both ends of a time range must be relative (+a~+b) or absolute (a~b)")
		}
		if d2 < d {
			return et, p.errf(p.peek().Line, "time range ends before it starts")
		}
		et.End, et.HasRange = d2, true
	}
	return et, nil
}

// endTime parses the time after "..." of a blocking system call.
func (p *parser) endTime(start EventTime) (time.Duration, error) {
	_, d, err := p.timeValue("the end time of a blocking call after ...")
	if err != nil {
		return 0, err
	}
	if start.Kind == TimeAny {
		return 0, p.errf(p.peek().Line, "a blocking call needs a start time, not *")
	}
	if d < start.Start {
		return 0, p.errf(p.peek().Line, "a blocking call's end time comes before its start")
	}
	return d, nil
}

func (p *parser) timeValue(what string) (rel bool, d time.Duration, err error) {
	if p.isPunct("+") {
		p.next()
		rel = true
	}
	t := p.peek()
	if t.Kind != tokNumber {
		return false, 0, p.expected(what)
	}
	p.next()
	f, perr := strconv.ParseFloat(t.Text, 64)
	if perr != nil || f < 0 || f > 1e6 {
		return false, 0, p.errf(t.Line, "expected %s, found %s", what, t)
	}
	return rel, time.Duration(math.Round(f*1e6)) * time.Microsecond, nil
}

var flagBits = map[byte]uint8{
	'S': wire.FlagSYN, 'F': wire.FlagFIN, 'R': wire.FlagRST, 'P': wire.FlagPSH,
	'.': wire.FlagACK, 'U': wire.FlagURG, 'E': wire.FlagECE, 'W': wire.FlagCWR,
}

func (p *parser) packet() (*Packet, error) {
	dir := p.next()
	pk := &Packet{Dir: Inbound}
	if dir.Text == ">" {
		pk.Dir = Outbound
	}
	if err := p.ipInfo(pk); err != nil {
		return nil, err
	}
	// Other protocols: recognised so that the runner can name the line.
	if t := p.peek(); t.Kind == tokIdent && (t.Text == "icmp" || t.Text == "udp" || t.Text == "ect0" || t.Text == "ect1" || t.Text == "ce" || t.Text == "ect01" || t.Text == "[") {
		pk.Unsupported = t.Text
		line := t.Line
		for p.peek().Kind != tokEOF && p.peek().Line == line {
			p.next()
		}
		return pk, nil
	}
	// Flags: a run of letters, dots and dashes written without spaces.
	var flags strings.Builder
	first := true
	for {
		t := p.peek()
		if !first && t.Space {
			break
		}
		if t.Kind == tokIdent || (t.Kind == tokPunct && (t.Text == "." || t.Text == "-")) {
			flags.WriteString(t.Text)
			p.next()
			first = false
			continue
		}
		if t.Kind == tokEllip { // "..." cannot be flags
			break
		}
		break
	}
	fs := flags.String()
	if fs == "" {
		return nil, p.expected("TCP flags (S, ., P., F., R, -, ...)")
	}
	pk.FlagStr = fs
	if fs != "-" {
		for i := 0; i < len(fs); i++ {
			b, ok := flagBits[fs[i]]
			if !ok {
				return nil, p.errf(dir.Line, "bad TCP flags %q: expected letters from S F R P U E W and '.' (or '-' for none)", fs)
			}
			pk.Flags |= b
		}
	}
	// start:end(len)
	start, err := p.u32("a sequence range start:end(len)")
	if err != nil {
		return nil, err
	}
	if err := p.punct(":"); err != nil {
		return nil, err
	}
	end, err := p.u32("the end of the sequence range start:end(len)")
	if err != nil {
		return nil, err
	}
	if err := p.punct("("); err != nil {
		return nil, err
	}
	ln, err := p.u32("the payload length in start:end(len)")
	if err != nil {
		return nil, err
	}
	if err := p.punct(")"); err != nil {
		return nil, err
	}
	if end-start != ln {
		return nil, p.errf(dir.Line, "sequence range %d:%d does not match length %d", start, end, ln)
	}
	pk.Start, pk.End, pk.Len = start, end, int(ln)
	for {
		t := p.peek()
		switch {
		case t.Kind == tokIdent && t.Text == "ack":
			p.next()
			v, err := p.u32("an acknowledgment number after ack")
			if err != nil {
				return nil, err
			}
			pk.HasAck, pk.Ack = true, v
		case t.Kind == tokIdent && t.Text == "win":
			p.next()
			v, err := p.u32("a window after win")
			if err != nil {
				return nil, err
			}
			if v > 65535 {
				return nil, p.errf(t.Line, "window %d does not fit the 16-bit field", v)
			}
			pk.HasWin, pk.Win = true, uint16(v)
		case t.Kind == tokIdent && t.Text == "urg":
			p.next()
			v, err := p.u32("an urgent pointer after urg")
			if err != nil {
				return nil, err
			}
			if v > 65535 {
				return nil, p.errf(t.Line, "urgent pointer %d does not fit the 16-bit field", v)
			}
			pk.HasUrg, pk.Urg = true, uint16(v)
		case t.Kind == tokPunct && t.Text == "<":
			if err := p.options(pk); err != nil {
				return nil, err
			}
			return pk, nil
		default:
			return pk, nil
		}
	}
}

func (p *parser) options(pk *Packet) error {
	p.next() // <
	if p.peek().Kind == tokEllip {
		p.next()
		pk.OptionsAny = true
		return p.punct(">")
	}
	if p.isPunct(">") {
		p.next()
		return nil
	}
	for {
		t := p.peek()
		if t.Kind != tokIdent {
			return p.expected("a TCP option (mss N, sackOK, sack a:b, TS val X ecr Y, wscale N, nop, eol)")
		}
		p.next()
		var o TCPOpt
		switch t.Text {
		case "nop":
			o.Kind = OptKindNOP
		case "eol":
			o.Kind = OptKindEOL
		case "sackOK":
			o.Kind = OptKindSACKOK
		case "mss":
			v, err := p.u32("an MSS value after mss")
			if err != nil {
				return err
			}
			if v > 65535 {
				return p.errf(t.Line, "mss %d does not fit 16 bits", v)
			}
			o.Kind, o.Value = OptKindMSS, v
		case "wscale":
			v, err := p.u32("a shift count after wscale")
			if err != nil {
				return err
			}
			if v > 255 {
				return p.errf(t.Line, "wscale %d does not fit 8 bits", v)
			}
			o.Kind, o.Value = OptKindWScale, v
		case "TS":
			if !p.isWord("val") {
				return p.expected("val after TS")
			}
			p.next()
			v, err := p.u32("a timestamp after TS val")
			if err != nil {
				return err
			}
			if !p.isWord("ecr") {
				return p.expected("ecr after TS val N")
			}
			p.next()
			e, err := p.u32("a timestamp after ecr")
			if err != nil {
				return err
			}
			o.Kind, o.TSVal, o.TSEcr = OptKindTS, v, e
		case "sack":
			o.Kind = OptKindSACK
			for p.peek().Kind == tokNumber {
				a, _ := p.u32("")
				if err := p.punct(":"); err != nil {
					return err
				}
				b, err := p.u32("the right edge of a SACK block a:b")
				if err != nil {
					return err
				}
				o.Blocks = append(o.Blocks, [2]uint32{a, b})
			}
			if len(o.Blocks) == 0 {
				return p.expected("SACK blocks a:b after sack")
			}
		default:
			return p.errf(t.Line, "unknown TCP option %q: expected mss, sackOK, sack, TS, wscale, nop or eol", t.Text)
		}
		pk.Opts = append(pk.Opts, o)
		if p.isPunct(",") {
			p.next()
			continue
		}
		return p.punct(">")
	}
}

func (p *parser) u32(what string) (uint32, error) {
	t := p.peek()
	if t.Kind != tokNumber {
		return 0, p.expected(what)
	}
	v, err := strconv.ParseUint(t.Text, 0, 32)
	if err != nil {
		return 0, p.errf(t.Line, "expected %s, found %s (not a 32-bit unsigned integer)", what, t)
	}
	p.next()
	return uint32(v), nil
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
	r, err := p.expr()
	if err != nil {
		return nil, err
	}
	sc.Result = r
	// ERRNO (text), on the same line.
	if t := p.peek(); t.Kind == tokIdent && t.Line == name.Line && strings.HasPrefix(t.Text, "E") {
		p.next()
		sc.Errno = t.Text
		if p.isPunct("(") && p.peek().Line == name.Line {
			open := p.next()
			depth := 1
			var words []string
			for depth > 0 {
				t := p.next()
				if t.Kind == tokEOF {
					return nil, p.errf(open.Line, "unterminated errno text: expected )")
				}
				if t.Kind == tokPunct && t.Text == "(" {
					depth++
				}
				if t.Kind == tokPunct && t.Text == ")" {
					depth--
					if depth == 0 {
						break
					}
				}
				words = append(words, t.Text)
			}
			sc.Note = strings.Join(words, " ")
		}
	}
	return sc, nil
}

// expr parses an argument: ints, names joined by |, ..., strings, [list],
// {struct}, name(args).
func (p *parser) expr() (Expr, error) {
	e, err := p.term()
	if err != nil {
		return e, err
	}
	if !p.isPunct("|") {
		return e, nil
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
	case t.Kind == tokNumber:
		p.next()
		v, err := strconv.ParseInt(t.Text, 0, 64)
		if err != nil {
			return Expr{}, p.errf(t.Line, "expected an integer, found %s", t)
		}
		return Expr{Kind: ExprInt, Int: v}, nil
	case t.Kind == tokPunct && t.Text == "-" && p.peekN(1).Kind == tokNumber && !p.peekN(1).Space:
		p.next()
		n := p.next()
		v, err := strconv.ParseInt(n.Text, 0, 64)
		if err != nil {
			return Expr{}, p.errf(t.Line, "expected an integer, found -%s", n.Text)
		}
		return Expr{Kind: ExprInt, Int: -v}, nil
	case t.Kind == tokString:
		p.next()
		return Expr{Kind: ExprString, Name: t.Text}, nil
	case t.Kind == tokIdent:
		p.next()
		if p.isPunct("(") && !p.peek().Space {
			p.next()
			c := Expr{Kind: ExprCall, Name: t.Text}
			for !p.isPunct(")") {
				e, err := p.expr()
				if err != nil {
					return e, err
				}
				c.Items = append(c.Items, e)
				if p.isPunct(",") {
					p.next()
				} else if !p.isPunct(")") {
					return c, p.expected(", or ) in " + t.Text + "(...)")
				}
			}
			p.next()
			return c, nil
		}
		return Expr{Kind: ExprIdent, Name: t.Text}, nil
	case t.Kind == tokPunct && t.Text == "[":
		p.next()
		l := Expr{Kind: ExprList}
		for !p.isPunct("]") {
			e, err := p.expr()
			if err != nil {
				return e, err
			}
			l.Items = append(l.Items, e)
			if p.isPunct(",") {
				p.next()
			} else if !p.isPunct("]") {
				return l, p.expected(", or ] in a list")
			}
		}
		p.next()
		return l, nil
	case t.Kind == tokPunct && t.Text == "{":
		p.next()
		s := Expr{Kind: ExprStruct}
		for !p.isPunct("}") {
			if p.peek().Kind == tokIdent && p.peekN(1).Kind == tokPunct && p.peekN(1).Text == "=" {
				n := p.next()
				p.next()
				e, err := p.expr()
				if err != nil {
					return e, err
				}
				s.Fields = append(s.Fields, Field{n.Text, e})
			} else {
				e, err := p.expr()
				if err != nil {
					return e, err
				}
				s.Items = append(s.Items, e)
			}
			if p.isPunct(",") {
				p.next()
			} else if !p.isPunct("}") {
				return s, p.expected(", or } in a structure")
			}
		}
		p.next()
		return s, nil
	}
	return Expr{}, p.expected("an argument (integer, NAME, NAME|NAME, ..., \"string\", [list] or {field=value})")
}

// String renders an expression as a script would write it.
func (e Expr) String() string {
	switch e.Kind {
	case ExprInt:
		return strconv.FormatInt(e.Int, 10)
	case ExprIdent:
		return e.Name
	case ExprEllipsis:
		return "..."
	case ExprString:
		return strconv.Quote(e.Name)
	case ExprOr:
		var s []string
		for _, i := range e.Items {
			s = append(s, i.String())
		}
		return strings.Join(s, "|")
	case ExprList:
		var s []string
		for _, i := range e.Items {
			s = append(s, i.String())
		}
		return "[" + strings.Join(s, ", ") + "]"
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
		var s []string
		for _, i := range e.Items {
			s = append(s, i.String())
		}
		return e.Name + "(" + strings.Join(s, ", ") + ")"
	}
	return "?"
}
