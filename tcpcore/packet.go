package tcpcore

import "net/netip"

// Headroom is the space every outgoing Packet keeps in front of its TCP
// segment, enough for an IPv4 header with options or an IPv6 header, so the
// driver can prepend its network header without copying the segment.
const Headroom = 60

// Packet is an outgoing TCP segment built by the engine. The driver owns it
// from Output until it hands it back with Release.
type Packet struct {
	Src, Dst netip.Addr
	buf      []byte // Headroom + segment capacity
	end      int    // segment is buf[Headroom:end]
	partial  bool   // the checksum field holds the pseudo-header sum only
	// A chunk (Config.SegmentOffload) has segs > 0: it carries segs
	// segments of segSize payload bytes (the last may be shorter).
	segs, segSize int
	// With Config.ZeroCopyChunks a chunk's payload is not copied: tail
	// holds the one or two spans of its connection's send ring that it
	// occupies (two where it wraps the ring, or where the ring grew while
	// the chunk was open), which follow Segment() on the wire. owner and
	// pinSeq pin those bytes (pin.go) from the chunk's making until
	// Release; pinIdx is its place in Engine.pins.
	tail   [2][]byte
	owner  *Conn
	pinSeq Seq
	pinIdx int
	// from is the connection whose sequence space (data, SYN or FIN)
	// the packet carries, from its making until Release: while it is
	// set the segment has not left the host (Conn.inHost).
	from *Conn
}

// Limits of a chunk (Config.SegmentOffload). MaxChunkBytes keeps the TCP
// length under what an IPv6 Payload Length, or an IPv4 Total Length with
// its header, can say; MaxChunkSegments bounds the segments of one, which
// full segments of any MSS above 1,000 bytes never reach.
const (
	MaxChunkBytes    = 0xffff - 40
	MaxChunkSegments = 64
)

// SegmentSize returns the payload bytes of each segment a chunk carries
// (all but the last are that long), or 0 for a packet of one segment,
// which is all packets without Config.SegmentOffload. The segments are
// what cutting the packet as Linux's tcp_gso_segment does gives: each
// with the header, its own sequence number, PSH only on the last.
func (p *Packet) SegmentSize() int {
	if p.segs > 1 {
		return p.segSize
	}
	return 0
}

// Segments returns how many segments the packet carries.
func (p *Packet) Segments() int { return max(p.segs, 1) }

// Segment returns the TCP segment: header, options and payload, with its
// checksum computed, or with Config.ChecksumOffload left partial. A chunk
// (SegmentSize not 0) is one header and the payloads of its segments;
// with Config.ZeroCopyChunks a chunk's payload is not here but in Tail.
func (p *Packet) Segment() []byte { return p.buf[Headroom:p.end] }

// Tail returns the payload that follows Segment on the wire, in one or two
// spans, for a chunk made with Config.ZeroCopyChunks; both are nil for
// any other packet. The spans are the connection's send buffer itself:
// the engine keeps those bytes as they are until the packet is Released,
// and the driver must not write to them.
func (p *Packet) Tail() (a, b []byte) { return p.tail[0], p.tail[1] }

// TailLen is the length of Tail's spans together.
func (p *Packet) TailLen() int { return len(p.tail[0]) + len(p.tail[1]) }

// ChecksumPartial reports whether the segment's checksum field holds only
// the pseudo-header sum (Config.ChecksumOffload) for the link to finish.
func (p *Packet) ChecksumPartial() bool { return p.partial }

// WithHeader returns the segment with n bytes of headroom in front of it,
// for the driver to fill with a network header. n must not exceed Headroom.
func (p *Packet) WithHeader(n int) []byte { return p.buf[Headroom-n : p.end] }

// packetPool recycles Packets within one engine. It needs no lock: the
// engine and its buffers have one owner at a time.
type packetPool struct {
	freeList[*Packet]
	size int // segment capacity of each buffer
}

func (pp *packetPool) get() *Packet {
	if p, ok := pp.pop(); ok {
		return p
	}
	return &Packet{buf: make([]byte, Headroom+pp.size)}
}

func (pp *packetPool) put(p *Packet) {
	if cap(p.buf) != Headroom+pp.size {
		return // a buffer from before an MTU change
	}
	p.end, p.segs, p.segSize = 0, 0, 0
	p.tail = [2][]byte{}
	pp.push(p)
}
