package bench

import (
	"sync/atomic"

	"tunstack/netif"
	"tunstack/wire"
)

// segCounts are TCP segments counted on the stack under test's side of the
// link since it was built.
type segCounts struct {
	pureAcksOut uint64 // sent by the stack: ACK set, no payload, no SYN, FIN or RST
	dataSegsIn  uint64 // received by the stack: carrying payload
}

func (c segCounts) sub(o segCounts) segCounts {
	return segCounts{c.pureAcksOut - o.pureAcksOut, c.dataSegsIn - o.dataSegsIn}
}

// segmentKind is what a packet is, as far as the ACK count goes.
type segmentKind uint8

const (
	segOther   segmentKind = iota // not TCP, malformed, or a control segment (SYN, FIN, RST)
	segPureAck                    // ACK without payload
	segData                       // carries payload
)

// classify looks at one IPv4 or IPv6 packet. It trusts the lengths only as
// far as the slice goes and verifies no checksum: the stack's own output and
// the kernel's are well formed, and a malformed packet counts as neither.
// An IPv6 packet counts only if TCP follows the fixed header directly: no
// stack here sends TCP behind extension headers.
func classify(pkt []byte) segmentKind {
	var tcp wire.TCP
	switch {
	case len(pkt) >= wire.IPv4HeaderLen && pkt[0]>>4 == 4:
		ip := wire.IPv4(pkt)
		hl, tl := ip.HeaderLen(), int(ip.TotalLen())
		if ip.Protocol() != wire.ProtoTCP || ip.IsFragment() || hl < wire.IPv4HeaderLen || tl > len(pkt) || tl < hl+wire.TCPHeaderLen {
			return segOther
		}
		tcp = wire.TCP(pkt[hl:tl])
	case len(pkt) >= wire.IPv6HeaderLen && pkt[0]>>4 == 6:
		ip := wire.IPv6(pkt)
		tl := wire.IPv6HeaderLen + int(ip.PayloadLen())
		if ip.NextHeader() != wire.ProtoTCP || tl > len(pkt) || tl < wire.IPv6HeaderLen+wire.TCPHeaderLen {
			return segOther
		}
		tcp = wire.TCP(pkt[wire.IPv6HeaderLen:tl])
	default:
		return segOther
	}
	off := tcp.DataOffset()
	if off < wire.TCPHeaderLen || off > len(tcp) {
		return segOther
	}
	if len(tcp) > off {
		return segData
	}
	if f := tcp.Flags(); f&wire.FlagACK != 0 && f&(wire.FlagSYN|wire.FlagFIN|wire.FlagRST) == 0 {
		return segPureAck
	}
	return segOther
}

// countingLink counts, between a link and the stack on it, the pure ACKs
// the stack writes and the data segments it reads. Each batch costs one
// pass over its packets' headers and at most one atomic add per counter.
type countingLink struct {
	netif.Link
	pureAcksOut atomic.Uint64
	dataSegsIn  atomic.Uint64
}

func (l *countingLink) WritePackets(pkts [][]byte) (int, error) {
	n, err := l.Link.WritePackets(pkts)
	var acks uint64
	for _, p := range pkts[:max(n, 0)] {
		if classify(p) == segPureAck {
			acks++
		}
	}
	if acks > 0 {
		l.pureAcksOut.Add(acks)
	}
	return n, err
}

func (l *countingLink) ReadPackets(bufs [][]byte, sizes []int) (int, error) {
	n, err := l.Link.ReadPackets(bufs, sizes)
	var data uint64
	for i := range max(n, 0) {
		if classify(bufs[i][:min(sizes[i], len(bufs[i]))]) == segData {
			data++
		}
	}
	if data > 0 {
		l.dataSegsIn.Add(data)
	}
	return n, err
}

func (l *countingLink) counts() segCounts {
	return segCounts{pureAcksOut: l.pureAcksOut.Load(), dataSegsIn: l.dataSegsIn.Load()}
}
