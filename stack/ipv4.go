package stack

import (
	"encoding/binary"

	"tunstack/netif"
	"tunstack/tcpcore"
	"tunstack/wire"
)

// ipTTL is the TTL of the IPv4 packets we originate, Linux's default.
const ipTTL = 64

// ICMPv4 Destination Unreachable (RFC 792) and its Fragmentation Needed
// code (RFC 1191 §4, which puts the next-hop MTU in bytes 6 and 7).
const (
	icmpDestUnreachable = 3
	icmpFragNeeded      = 4
)

// input4 takes one IPv4 packet: TCP to the engine, ICMP echo answered,
// ICMP errors about our segments to the engine, the rest dropped and
// counted. m is what the link said of the packet (a TSO packet of many
// segments, a checksum it vouches for): a GSO packet is TCP or nothing.
// The caller holds s.mu.
func (s *Stack) input4(now tcpcore.Time, pkt wire.IPv4, m tcpcore.InputMeta, rp *replies) {
	st := &s.ipStats
	if pkt.Valid() != nil {
		st.malformed.Add(1)
		return
	}
	if pkt.IsFragment() {
		st.fragments.Add(1)
		return
	}
	if pkt.DstAddr() != s.addr {
		// A relay frontend takes TCP and UDP to the addresses it
		// intercepts (intercept.go).
		if s.front == nil || !s.front.covers(pkt.DstAddr()) || !s.front.input(now, pkt.Upper(), pkt, m, rp) {
			st.notForUs.Add(1)
		}
		return
	}
	switch p := pkt.Protocol(); {
	case p == wire.ProtoTCP:
		if s.grp != nil && s.passOn(pkt, segmentFlow(pkt.SrcAddr(), pkt.DstAddr(), pkt.Payload()), true, m) {
			return // to the shard that has its connection (shards.go)
		}
		st.tcpIn.Add(1)
		s.e.InputGRO(now, pkt.SrcAddr(), pkt.DstAddr(), pkt.Payload(), m)
		s.settleClaim()
		return
	case m.SegSize > 0:
		// A GSO packet that is not TCP: not one the kernel's TCP built.
	case p == wire.ProtoICMP:
		// Only an echo request goes to netif.EchoReply: for any other
		// message it would check the IPv4 header and the ICMP checksum
		// again just to refuse it.
		msg := wire.ICMPv4(pkt.Payload())
		if !msg.Valid() {
			break
		}
		switch msg.Type() {
		case wire.ICMPEchoRequest:
			if out := rp.buf(); out != nil {
				if m, ok := netif.EchoReply(pkt, out); ok {
					rp.add(m, echoReply4)
					return
				}
			}
		case icmpDestUnreachable:
			// RFC 792: the body quotes our IP header and 8 bytes of
			// its data.
			m := tcpcore.ICMPMessage{Kind: tcpcore.ICMPUnreachable, Code: msg.Code(), Quote: msg[8:]}
			if msg.Code() == icmpFragNeeded {
				m.Kind, m.MTU = tcpcore.ICMPFragNeeded, uint32(binary.BigEndian.Uint16(msg[6:]))
			}
			if s.grp != nil && s.passOn(pkt, quotedFlow(m.Quote), false, tcpcore.InputMeta{}) {
				return
			}
			st.icmpErrorsIn.Add(1)
			s.e.ICMPError(now, m)
			return
		}
	}
	st.otherProto.Add(1)
}

// frame4 writes the IPv4 header of an IPv4 segment.
func (w *ipWriter) frame4(p *tcpcore.Packet) []byte {
	b := p.WithHeader(wire.IPv4HeaderLen)
	id := w.id + 1
	// A chunk's segments take the ids after the first, as the kernel
	// numbers the segments it cuts (inet_gso_segment).
	w.id += uint16(p.Segments())
	wire.PutIPv4Header(b, wire.IPv4Fields{
		Src: p.Src.As4(), Dst: p.Dst.As4(),
		Protocol: wire.ProtoTCP, TTL: ipTTL, ID: id,
		// DF: we never fragment; the engine sizes segments to the path
		// MTU (RFC 1191).
		DontFrag: true,
	}, len(b)-wire.IPv4HeaderLen+p.TailLen())
	return b
}
