package conformance

import (
	"fmt"
	"strconv"
)

// This file holds the parts of packetdrill's grammar that are specific to
// a few system calls and to the IP header of a packet line:
//
//   - the msghdr expression of sendmsg and recvmsg:
//     {msg_name(...)=..., msg_iov(N)=[{..., LEN}, ...], msg_flags=F
//     [, msg_control=[...]]}
//   - the IP information before a packet's flags: (tos 0xNN), [ect0],
//     [ect1], [ce], [noecn], [ect01], (ttl N), (flowlabel 0xN), and a TOS
//     or ECN form followed by ", flowlabel 0xN"; round brackets and square
//     brackets mean the same.
//
// The other call arguments (iovecs {..., LEN}, epoll events {events=E,
// fd=N}, poll entries, linger) are ordinary structures to the expression
// parser; the dispatcher reads their fields.

// msghdrName tags the structure a msghdr expression parses into: a struct
// whose fields are msg_name, msg_iov (a list of iovecs), msg_iovlen,
// msg_flags and, when written, msg_control.
const msghdrName = "msghdr"

// specialTerm parses the expression forms that start like a structure but
// are not one (a msghdr). It reports false, consuming nothing, when the
// tokens ahead are something else.
func (p *parser) specialTerm() (Expr, bool, error) {
	if !p.isPunct("{") || p.peekN(1).Kind != tokIdent || p.peekN(1).Text != "msg_name" {
		return Expr{}, false, nil
	}
	e, err := p.msghdr()
	return e, true, err
}

// msghdr parses {msg_name(...)=..., msg_iov(N)=[...], msg_flags=F
// [, msg_control=[...]]}, in that order, as packetdrill does.
func (p *parser) msghdr() (Expr, error) {
	open := p.next() // {
	m := Expr{Kind: ExprStruct, Name: msghdrName}
	// msg_name(...)=...: the address is always the script's peer.
	p.next() // msg_name
	for _, want := range []string{"(", "...", ")", "=", "..."} {
		if err := p.msghdrToken(want, "msg_name(...)=..."); err != nil {
			return m, err
		}
	}
	m.Fields = append(m.Fields, Field{"msg_name", Expr{Kind: ExprEllipsis}})
	if err := p.msghdrToken(",", "msg_iov(N)=[...] after msg_name"); err != nil {
		return m, err
	}
	if !p.isWord("msg_iov") {
		return m, p.expected("msg_iov(N)=[{..., LEN}, ...] after msg_name(...)=...")
	}
	p.next()
	if err := p.msghdrToken("(", "msg_iov(N)"); err != nil {
		return m, err
	}
	t := p.peek()
	if t.Kind != tokNumber {
		return m, p.expected("the iovec count N in msg_iov(N)")
	}
	p.next()
	n, err := strconv.ParseInt(t.Text, 10, 32)
	if err != nil || n < 0 {
		return m, p.errf(t.Line, "msg_iov(N): expected a decimal count, found %s", t)
	}
	for _, want := range []string{")", "="} {
		if err := p.msghdrToken(want, "msg_iov(N)=[...]"); err != nil {
			return m, err
		}
	}
	if !p.isPunct("[") {
		return m, p.expected("the iovec list [{..., LEN}, ...] after msg_iov(N)=")
	}
	iov, err := p.term()
	if err != nil {
		return m, err
	}
	if len(iov.Items) != int(n) {
		return m, p.errf(open.Line, "msg_iov(%d) lists %d iovec(s)", n, len(iov.Items))
	}
	m.Fields = append(m.Fields, Field{"msg_iov", iov}, Field{"msg_iovlen", Expr{Kind: ExprInt, Int: n}})
	if err := p.msghdrToken(",", "msg_flags=F after msg_iov"); err != nil {
		return m, err
	}
	if !p.isWord("msg_flags") {
		return m, p.expected("msg_flags=F after msg_iov(N)=[...]")
	}
	p.next()
	if err := p.msghdrToken("=", "msg_flags=F"); err != nil {
		return m, err
	}
	flags, err := p.expr()
	if err != nil {
		return m, err
	}
	m.Fields = append(m.Fields, Field{"msg_flags", flags})
	if p.isPunct(",") {
		p.next()
		if !p.isWord("msg_control") {
			return m, p.expected("msg_control=[...] or } after msg_flags")
		}
		p.next()
		if err := p.msghdrToken("=", "msg_control=[...]"); err != nil {
			return m, err
		}
		if !p.isPunct("[") {
			return m, p.expected("a list [...] after msg_control=")
		}
		ctl, err := p.term()
		if err != nil {
			return m, err
		}
		m.Fields = append(m.Fields, Field{"msg_control", ctl})
	}
	if err := p.msghdrToken("}", "the end of the msghdr"); err != nil {
		return m, err
	}
	return m, nil
}

// msghdrToken consumes the punctuation or "..." want, or fails naming the
// part of the msghdr being read.
func (p *parser) msghdrToken(want, part string) error {
	t := p.peek()
	if want == "..." && t.Kind == tokEllip || want != "..." && t.Kind == tokPunct && t.Text == want {
		p.next()
		return nil
	}
	return p.expected(fmt.Sprintf("%q in %s", want, part))
}

// Msghdr is a decoded msghdr expression.
type Msghdr struct {
	IOV      []int // iovec lengths
	Flags    Expr  // msg_flags as written
	Controls int   // msg_control entries
}

// MsghdrValue decodes a msghdr expression.
func MsghdrValue(e Expr) (Msghdr, error) {
	if e.Kind != ExprStruct || e.Name != msghdrName {
		return Msghdr{}, fmt.Errorf("expected a msghdr {msg_name(...)=..., msg_iov(N)=[...], msg_flags=F}, found %s", e)
	}
	var m Msghdr
	iov, _ := StructField(e, "msg_iov")
	lens, err := IovecLengths(iov)
	if err != nil {
		return m, err
	}
	m.IOV = lens
	m.Flags, _ = StructField(e, "msg_flags")
	if c, ok := StructField(e, "msg_control"); ok {
		m.Controls = len(c.Items)
	}
	return m, nil
}

// IovecLengths decodes an iovec array [{..., LEN}, ...] into its lengths.
func IovecLengths(e Expr) ([]int, error) {
	if e.Kind != ExprList {
		return nil, fmt.Errorf("expected an iovec array [{..., LEN}, ...], found %s", e)
	}
	lens := make([]int, 0, len(e.Items))
	for _, it := range e.Items {
		if it.Kind != ExprStruct || len(it.Fields) != 0 || len(it.Items) != 2 || it.Items[0].Kind != ExprEllipsis {
			return nil, fmt.Errorf("expected an iovec {..., LEN}, found %s", it)
		}
		n, err := IntValue(it.Items[1])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("iovec length: expected a byte count, found %s", it.Items[1])
		}
		lens = append(lens, int(n))
	}
	return lens, nil
}

// TOSCheck says what a packet line checks of an outbound packet's TOS
// byte (and sets in an inbound one).
type TOSCheck uint8

const (
	TOSNone  TOSCheck = iota // nothing written
	TOSECN                   // [ect0], [ect1], [ce], [noecn]: the two ECN bits
	TOSECT01                 // [ect01]: either ECT codepoint (outbound only)
	TOSByte                  // (tos 0xNN): the whole byte
)

// IPInfo is the IP information written before a packet's flags.
type IPInfo struct {
	Check TOSCheck
	TOS   uint8 // the byte for TOSByte, the ECN codepoint for TOSECN
	TTL   uint8 // (ttl N); 0 when not written
	// FlowLabel is IPv6's (flowLabels says how an outbound one is
	// checked); an IPv4 packet has none, and the runner ignores it, as
	// packetdrill does for IPv4.
	FlowLabel    uint32
	HasFlowLabel bool
}

// The ECN codepoints (RFC 3168 §5), the low two bits of the TOS byte.
const (
	ecnNotECT = 0
	ecnECT1   = 1
	ecnECT0   = 2
	ecnCE     = 3
	ecnMask   = 3
)

var ecnWords = map[string]uint8{"noecn": ecnNotECT, "ect0": ecnECT0, "ect1": ecnECT1, "ce": ecnCE}

// ipInfo parses the optional IP information after a packet's direction.
// It consumes nothing when the next tokens are not one of its forms.
func (p *parser) ipInfo(pk *Packet) error {
	open := p.peek()
	if open.Kind != tokPunct || open.Text != "(" && open.Text != "[" {
		return nil
	}
	w := p.peekN(1)
	if w.Kind != tokIdent {
		return nil
	}
	switch w.Text {
	case "tos", "ttl", "flowlabel", "ect01", "ect0", "ect1", "ce", "noecn":
	default:
		return nil
	}
	p.next()
	closer := ")"
	if open.Text == "[" {
		closer = "]"
	}
	info := &pk.IP
	first := true
	for {
		t := p.next()
		ecn, isECN := ecnWords[t.Text]
		switch {
		case t.Kind == tokIdent && t.Text == "tos" && first:
			v, err := p.ipInfoHex("tos", 0xff)
			if err != nil {
				return err
			}
			info.Check, info.TOS = TOSByte, uint8(v)
		case t.Kind == tokIdent && t.Text == "ect01" && first:
			if pk.Dir != Outbound {
				return p.errf(t.Line, "[ect01] can only be used with outbound packets")
			}
			info.Check = TOSECT01
		case t.Kind == tokIdent && isECN && first:
			info.Check, info.TOS = TOSECN, ecn
		case t.Kind == tokIdent && t.Text == "ttl" && first:
			n := p.peek()
			if n.Kind != tokNumber {
				return p.expected("a TTL after ttl")
			}
			p.next()
			v, err := strconv.ParseUint(n.Text, 0, 8)
			if err != nil || v == 0 {
				return p.errf(n.Line, "ttl: expected 1 to 255, found %s", n)
			}
			info.TTL = uint8(v)
			return p.punct(closer)
		case t.Kind == tokIdent && t.Text == "flowlabel":
			v, err := p.ipInfoHex("flowlabel", 0xfffff)
			if err != nil {
				return err
			}
			info.FlowLabel, info.HasFlowLabel = uint32(v), true
			return p.punct(closer)
		default:
			return p.errf(t.Line, "expected tos 0xNN, ect0, ect1, ce, noecn, ect01, ttl N or flowlabel 0xN in the IP information, found %s", t)
		}
		first = false
		if p.isPunct(",") && p.peekN(1).Kind == tokIdent && p.peekN(1).Text == "flowlabel" {
			p.next()
			continue
		}
		return p.punct(closer)
	}
}

// ipInfoHex reads the hexadecimal value after tos or flowlabel.
func (p *parser) ipInfoHex(what string, max uint64) (uint64, error) {
	t := p.peek()
	if t.Kind != tokNumber || len(t.Text) < 3 || t.Text[0] != '0' || (t.Text[1] != 'x' && t.Text[1] != 'X') {
		return 0, p.expected(fmt.Sprintf("a hexadecimal value (0x...) after %s", what))
	}
	p.next()
	v, err := strconv.ParseUint(t.Text[2:], 16, 32)
	if err != nil || v > max {
		return 0, p.errf(t.Line, "%s %s out of range (at most %#x)", what, t.Text, max)
	}
	return v, nil
}

// inboundTOS is the TOS byte of an inbound packet.
func (i IPInfo) inboundTOS() uint8 { return i.TOS }

// inboundTTL is the TTL of an inbound packet: the one written, else 64.
func (i IPInfo) inboundTTL() uint8 {
	if i.TTL != 0 {
		return i.TTL
	}
	return 64
}

// ipMismatch compares an outbound packet's IP header with what the line
// wrote; "" when it matches.
func ipMismatch(want IPInfo, ip ipHdr) string {
	tos := ip.tos
	switch want.Check {
	case TOSByte:
		if tos != want.TOS {
			return fmt.Sprintf("tos %#02x, expected %#02x", tos, want.TOS)
		}
	case TOSECN:
		if tos&ecnMask != want.TOS {
			return fmt.Sprintf("ECN codepoint %s, expected %s", ecnName(tos&ecnMask), ecnName(want.TOS))
		}
	case TOSECT01:
		if e := tos & ecnMask; e != ecnECT0 && e != ecnECT1 {
			return fmt.Sprintf("ECN codepoint %s, expected ect0 or ect1", ecnName(e))
		}
	}
	if want.TTL != 0 && ip.ttl != want.TTL {
		return fmt.Sprintf("ttl %d, expected %d", ip.ttl, want.TTL)
	}
	return ""
}

func ecnName(e uint8) string {
	for k, v := range ecnWords {
		if v == e {
			return k
		}
	}
	return fmt.Sprintf("%d", e)
}

// String renders the IP information as a script writes it, with a
// trailing space, or "" when there is none.
func (i IPInfo) String() string {
	var s string
	switch i.Check {
	case TOSByte:
		s = fmt.Sprintf("tos %#02x", i.TOS)
	case TOSECN:
		s = ecnName(i.TOS)
	case TOSECT01:
		s = "ect01"
	}
	if i.TTL != 0 {
		s = fmt.Sprintf("ttl %d", i.TTL)
	}
	if i.HasFlowLabel {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("flowlabel %#x", i.FlowLabel)
	}
	if s == "" {
		return ""
	}
	return "(" + s + ") "
}
