package conformance

import (
	"fmt"
	"strings"

	"tunstack/wire"
)

// seen is an outbound packet decoded for matching.
type seen struct {
	raw      []byte
	ip       ipHdr
	tcp      wire.TCP
	opts     []TCPOpt // in wire order, nop and eol included
	optErr   error
	payload  int
	srcPort  uint16
	dstPort  uint16
	flags    uint8
	seq, ack uint32
}

// decodeOutbound parses an IPv4 or IPv6 TCP packet; ok is false for
// anything else.
func decodeOutbound(b []byte) (*seen, bool) {
	ip, t, ok := ipTCP(b)
	if !ok {
		return nil, false
	}
	s := &seen{raw: b, ip: ip, tcp: t, payload: len(t.Payload()), srcPort: t.SrcPort(),
		dstPort: t.DstPort(), flags: t.Flags(), seq: t.Seq(), ack: t.Ack()}
	s.opts, s.optErr = optionList(t.Options())
	return s, true
}

// optionList decodes options in wire order, keeping nop and eol, so that
// they compare and print as a script writes them. An option of a known kind
// with the wrong length is listed as an unknown one ("optK len L").
func optionList(b []byte) ([]TCPOpt, error) {
	var out []TCPOpt
	r := wire.NewTCPOptionReader(b)
	for {
		o, ok := r.Next()
		if !ok {
			return out, r.Err()
		}
		out = append(out, scriptOption(o))
	}
}

// scriptOption is o in the form a script writes.
func scriptOption(o wire.TCPOption) TCPOpt {
	if o.WellFormed() {
		switch o.Kind {
		case wire.OptEOL:
			return TCPOpt{Kind: OptKindEOL}
		case wire.OptNOP:
			return TCPOpt{Kind: OptKindNOP}
		case wire.OptMSS:
			return TCPOpt{Kind: OptKindMSS, Value: uint32(o.MSS())}
		case wire.OptWindowScale:
			return TCPOpt{Kind: OptKindWScale, Value: uint32(o.WindowScale())}
		case wire.OptSACKPermitted:
			return TCPOpt{Kind: OptKindSACKOK}
		case wire.OptTimestamps:
			val, ecr := o.Timestamps()
			return TCPOpt{Kind: OptKindTS, TSVal: val, TSEcr: ecr}
		case wire.OptSACK:
			t := TCPOpt{Kind: OptKindSACK}
			for i := range o.NumSACKBlocks() {
				blk := o.SACKBlock(i)
				t.Blocks = append(t.Blocks, [2]uint32{blk.Left, blk.Right})
			}
			return t
		}
	}
	return TCPOpt{Kind: TCPOptKind(-int(o.Kind) - 1), Value: uint32(o.Len())}
}

// FlagString renders flags the way scripts write them (S, F, R, P, U, E, W,
// then . for ACK; - for none).
func FlagString(f uint8) string {
	var b strings.Builder
	for _, x := range []struct {
		bit uint8
		c   byte
	}{{wire.FlagSYN, 'S'}, {wire.FlagFIN, 'F'}, {wire.FlagRST, 'R'}, {wire.FlagPSH, 'P'},
		{wire.FlagURG, 'U'}, {wire.FlagECE, 'E'}, {wire.FlagCWR, 'W'}, {wire.FlagACK, '.'}} {
		if f&x.bit != 0 {
			b.WriteByte(x.c)
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

func optString(o TCPOpt) string {
	switch o.Kind {
	case OptKindNOP:
		return "nop"
	case OptKindEOL:
		return "eol"
	case OptKindMSS:
		return fmt.Sprintf("mss %d", o.Value)
	case OptKindWScale:
		return fmt.Sprintf("wscale %d", o.Value)
	case OptKindSACKOK:
		return "sackOK"
	case OptKindTS:
		return fmt.Sprintf("TS val %d ecr %d", o.TSVal, o.TSEcr)
	case OptKindSACK:
		var s []string
		for _, b := range o.Blocks {
			s = append(s, fmt.Sprintf("%d:%d", b[0], b[1]))
		}
		return "sack " + strings.Join(s, " ")
	}
	return fmt.Sprintf("opt%d len %d", -int(o.Kind)-1, o.Value)
}

func optsString(opts []TCPOpt) string {
	var s []string
	for _, o := range opts {
		s = append(s, optString(o))
	}
	return "<" + strings.Join(s, ",") + ">"
}

// PacketString renders a script packet in packetdrill notation.
func PacketString(p *Packet) string {
	if p.Unsupported != "" {
		return p.Unsupported + " ..."
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s %d:%d(%d)", p.IP, p.FlagStr, p.Start, p.End, p.Len)
	if p.HasAck {
		fmt.Fprintf(&b, " ack %d", p.Ack)
	}
	if p.HasWin {
		fmt.Fprintf(&b, " win %d", p.Win)
	}
	if p.HasUrg {
		fmt.Fprintf(&b, " urg %d", p.Urg)
	}
	if p.OptionsAny {
		b.WriteString(" <...>")
	} else if len(p.Opts) > 0 {
		b.WriteString(" " + optsString(p.Opts))
	}
	return b.String()
}

// String renders an actual packet in packetdrill notation with sequence
// numbers relative to the stack's ISN (localISN) and acks as sent.
func (s *seen) String(localISN uint32) string {
	var b strings.Builder
	rel := s.seq - localISN
	fmt.Fprintf(&b, "%s %d:%d(%d)", FlagString(s.flags), rel, rel+uint32(s.payload), s.payload)
	if s.flags&wire.FlagACK != 0 {
		fmt.Fprintf(&b, " ack %d", s.ack)
	}
	fmt.Fprintf(&b, " win %d", s.tcp.Window())
	if s.tcp.Urgent() != 0 || s.flags&wire.FlagURG != 0 {
		fmt.Fprintf(&b, " urg %d", s.tcp.Urgent())
	}
	if len(s.opts) > 0 {
		b.WriteString(" " + optsString(s.opts))
	}
	return b.String()
}

// mismatch compares an outbound packet with the script's expectation and
// returns what differs ("" when it matches). tsVal, when not nil, checks
// the TS val the stack sent against the one the script wrote and returns
// what differs; without it TS val is not compared.
func mismatch(want *Packet, got *seen, localISN uint32, tsVal func(script, actual uint32) string, flows *flowLabels) string {
	var diffs []string
	if want.Flags != got.flags {
		diffs = append(diffs, fmt.Sprintf("flags %s, expected %s", FlagString(got.flags), want.FlagStr))
	}
	if rel := got.seq - localISN; rel != want.Start {
		diffs = append(diffs, fmt.Sprintf("sequence %d, expected %d", rel, want.Start))
	}
	if got.payload != want.Len {
		diffs = append(diffs, fmt.Sprintf("payload length %d, expected %d", got.payload, want.Len))
	}
	if want.HasAck && got.ack != want.Ack {
		diffs = append(diffs, fmt.Sprintf("ack %d, expected %d", got.ack, want.Ack))
	}
	if want.HasWin && got.tcp.Window() != want.Win {
		diffs = append(diffs, fmt.Sprintf("window %d, expected %d", got.tcp.Window(), want.Win))
	}
	if want.HasUrg && got.tcp.Urgent() != want.Urg {
		diffs = append(diffs, fmt.Sprintf("urgent pointer %d, expected %d", got.tcp.Urgent(), want.Urg))
	}
	if d := ipMismatch(want.IP, got.ip); d != "" {
		diffs = append(diffs, d)
	}
	if want.IP.HasFlowLabel && want.IP.FlowLabel != 0 && got.ip.v6 {
		if d := flows.check(want.IP.FlowLabel, got.ip.flowLabel); d != "" {
			diffs = append(diffs, d)
		}
	}
	if !want.OptionsAny {
		if d := optionsMismatch(want.Opts, got.opts, tsVal); d != "" {
			diffs = append(diffs, d)
		}
	}
	return strings.Join(diffs, "; ")
}

func optionsMismatch(want, got []TCPOpt, tsVal func(script, actual uint32) string) string {
	if len(want) != len(got) {
		return fmt.Sprintf("options %s, expected %s", optsString(got), optsString(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		bad := w.Kind != g.Kind
		if !bad {
			switch w.Kind {
			case OptKindMSS, OptKindWScale:
				bad = w.Value != g.Value
			case OptKindTS:
				if w.TSEcr != g.TSEcr {
					return fmt.Sprintf("TS ecr %d, expected %d", g.TSEcr, w.TSEcr)
				}
				if tsVal != nil {
					if d := tsVal(w.TSVal, g.TSVal); d != "" {
						return d
					}
				}
			case OptKindSACK:
				if len(w.Blocks) != len(g.Blocks) {
					bad = true
				}
				for j := 0; !bad && j < len(w.Blocks); j++ {
					bad = w.Blocks[j] != g.Blocks[j]
				}
			}
		}
		if bad {
			return fmt.Sprintf("option %d is %s, expected %s (options %s)", i+1, optString(g), optString(w), optsString(got))
		}
	}
	return ""
}
