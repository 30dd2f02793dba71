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
	k, _ := classifyHdr(pkt)
	return k
}

// classifyHdr is classify, and for a segment with data the length of its
// IP and TCP headers.
func classifyHdr(pkt []byte) (segmentKind, int) {
	var tcp wire.TCP
	var hl int
	switch {
	case len(pkt) >= wire.IPv4HeaderLen && pkt[0]>>4 == 4:
		ip := wire.IPv4(pkt)
		tl := int(ip.TotalLen())
		hl = ip.HeaderLen()
		if ip.Protocol() != wire.ProtoTCP || ip.IsFragment() || hl < wire.IPv4HeaderLen || tl > len(pkt) || tl < hl+wire.TCPHeaderLen {
			return segOther, 0
		}
		tcp = wire.TCP(pkt[hl:tl])
	case len(pkt) >= wire.IPv6HeaderLen && pkt[0]>>4 == 6:
		ip := wire.IPv6(pkt)
		tl := wire.IPv6HeaderLen + int(ip.PayloadLen())
		hl = wire.IPv6HeaderLen
		if ip.NextHeader() != wire.ProtoTCP || tl > len(pkt) || tl < wire.IPv6HeaderLen+wire.TCPHeaderLen {
			return segOther, 0
		}
		tcp = wire.TCP(pkt[wire.IPv6HeaderLen:tl])
	default:
		return segOther, 0
	}
	off := tcp.DataOffset()
	if off < wire.TCPHeaderLen || off > len(tcp) {
		return segOther, 0
	}
	if len(tcp) > off {
		return segData, hl + off
	}
	if f := tcp.Flags(); f&wire.FlagACK != 0 && f&(wire.FlagSYN|wire.FlagFIN|wire.FlagRST) == 0 {
		return segPureAck, 0
	}
	return segOther, 0
}

// countingLink counts, between a link and the stack on it, the pure ACKs
// the stack writes and the data segments it reads. Each batch costs one
// pass over its packets' headers and at most one atomic add per counter.
type countingLink struct {
	netif.Link
	dr          netif.DescReader // the link's, made on first use by the reader
	dw          netif.DescWriter // the link's, made on first use by the writer
	pureAcksOut atomic.Uint64
	dataSegsIn  atomic.Uint64
}

func (l *countingLink) WritePackets(pkts [][]byte) (int, error) {
	n, err := l.Link.WritePackets(pkts)
	l.countWrite(pkts, n)
	return n, err
}

// WriteDescs passes descriptors through, as ReadDescs does, so that the
// stack leaves checksums to the device.
func (l *countingLink) WriteDescs(pkts [][]byte, descs []netif.Desc) (int, error) {
	if l.dw == nil { // the stack's one writer at a time is the only caller
		l.dw = netif.NewDescWriter(l.Link)
	}
	n, err := l.dw.WriteDescs(pkts, descs)
	l.countWrite(pkts, n)
	return n, err
}

// WritesGSO passes the link's answer through, so that the stack above
// hands the device chunks of segments as it does without this link. A GSO
// packet carries data, never a pure ACK.
func (l *countingLink) WritesGSO() bool {
	if l.dw == nil { // called by the stack before its writer starts
		l.dw = netif.NewDescWriter(l.Link)
	}
	return netif.WritesGSO(l.dw)
}

// countWrite counts the pure ACKs among the first n of pkts.
func (l *countingLink) countWrite(pkts [][]byte, n int) {
	var acks uint64
	for _, p := range pkts[:max(n, 0)] {
		if classify(p) == segPureAck {
			acks++
		}
	}
	if acks > 0 {
		l.pureAcksOut.Add(acks)
	}
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

// DescRoom and ReadDescs pass the link's descriptors through, so that a
// stack above keeps taking TSO packets whole; a GSO packet counts as the
// segments it carries.
func (l *countingLink) DescRoom() int { return l.descReader().DescRoom() }

func (l *countingLink) ReadDescs(arena []byte, pkts [][]byte, descs []netif.Desc) (int, error) {
	n, err := l.descReader().ReadDescs(arena, pkts, descs)
	var data uint64
	for i := range max(n, 0) {
		if k, hdr := classifyHdr(pkts[i]); k == segData {
			data += uint64(descs[i].Segments(hdr, len(pkts[i])))
		}
	}
	if data > 0 {
		l.dataSegsIn.Add(data)
	}
	return n, err
}

// descReader is used by the link's one reader only.
func (l *countingLink) descReader() netif.DescReader {
	if l.dr == nil {
		l.dr = netif.NewDescReader(l.Link)
	}
	return l.dr
}

func (l *countingLink) counts() segCounts {
	return segCounts{pureAcksOut: l.pureAcksOut.Load(), dataSegsIn: l.dataSegsIn.Load()}
}
