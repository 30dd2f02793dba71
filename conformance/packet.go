package conformance

import (
	"fmt"
	"net/netip"

	"tunstack/wire"
)

// defaultInboundWindow is the window of an inbound packet whose line has no
// "win": packetdrill scripts nearly always write one.
const defaultInboundWindow = 65535

// inboundSpec is what the runner resolves before building a packet.
type inboundSpec struct {
	src, dst         netip.Addr // both IPv4 or both IPv6: the packet's family
	srcPort, dstPort uint16
	ipID             uint16
	localISN         uint32 // added to ack and to SACK blocks (stack's sequence space)
	mapEcr           func(uint32) uint32
}

// buildInbound encodes a script packet as an IPv4 or IPv6 packet, of the
// family of its addresses.
func buildInbound(p *Packet, s inboundSpec) ([]byte, error) {
	opt := make([]byte, 0, wire.TCPMaxOptionLen)
	for _, o := range p.Opts {
		var w wire.TCPOption
		switch o.Kind {
		case OptKindNOP:
			w = wire.TCPOption{Kind: wire.OptNOP}
		case OptKindEOL:
			w = wire.TCPOption{Kind: wire.OptEOL}
		case OptKindMSS:
			w = wire.MSSOption(uint16(o.Value))
		case OptKindWScale:
			w = wire.WindowScaleOption(uint8(o.Value))
		case OptKindSACKOK:
			w = wire.SACKPermittedOption()
		case OptKindTS:
			w = wire.TimestampsOption(o.TSVal, s.mapEcr(o.TSEcr))
		case OptKindSACK:
			blocks := make([]wire.SACKBlock, len(o.Blocks))
			for i, blk := range o.Blocks {
				blocks[i] = wire.SACKBlock{Left: blk[0] + s.localISN, Right: blk[1] + s.localISN}
			}
			w = wire.SACKOption(blocks...)
		default:
			continue
		}
		if opt = wire.AppendTCPOption(opt, w); len(opt) > wire.TCPMaxOptionLen {
			return nil, fmt.Errorf("options need more than %d bytes", wire.TCPMaxOptionLen)
		}
	}
	for len(opt)%4 != 0 { // pad to the data-offset unit with end-of-list
		opt = append(opt, wire.OptEOL)
	}
	n := len(opt)
	tcpLen := wire.TCPHeaderLen + n + p.Len
	hl := ipHeaderLen(s.src)
	pkt := make([]byte, hl+tcpLen)
	putIPHeader(pkt, ipFields{src: s.src, dst: s.dst, tos: p.IP.inboundTOS(), ttl: p.IP.inboundTTL(),
		flowLabel: p.IP.FlowLabel, ipID: s.ipID}, tcpLen)
	t := wire.TCP(pkt[hl:])
	win := uint16(defaultInboundWindow)
	if p.HasWin {
		win = p.Win
	}
	var ack uint32
	if p.HasAck {
		ack = p.Ack + s.localISN
	}
	wire.PutTCPHeader(t, wire.TCPFields{SrcPort: s.srcPort, DstPort: s.dstPort, Seq: p.Start, Ack: ack,
		Flags: p.Flags, Window: win, Urgent: p.Urg}, n)
	copy(t[wire.TCPHeaderLen:], opt[:n])
	// The payload is zeros; its bytes are not part of what scripts check.
	t.ComputeChecksumAddr(s.src, s.dst)
	return pkt, nil
}
