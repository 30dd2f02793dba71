package netif

import (
	"errors"
	"fmt"

	"tunstack/wire"
)

// The descriptor seam. Link moves bare packets, which loses what each
// side knew: that a packet the kernel handed over is a TSO packet of many
// segments, or that its checksum was never computed because it never left
// the host. A DescReader hands each packet over with a Desc saying so, so
// that the stack can take a TSO packet as one unit (tcpcore.InputGRO) and
// skip verifying a checksum the kernel vouches for, with no copy of the
// packet and no checksum computed per segment on the way.

// GSOType is the segmentation offload a packet carries.
type GSOType uint8

const (
	GSONone  GSOType = iota // one packet, one segment
	GSOTCPv4                // an IPv4 TCP packet carrying consecutive segments of GSOSize payload bytes
	GSOTCPv6                // the same over IPv6
)

// CsumState says what is known of a packet's transport checksum.
type CsumState uint8

const (
	// CsumNone: the checksum is in the packet, complete and unverified;
	// the receiver verifies it.
	CsumNone CsumState = iota
	// CsumVerified: the device verified it (virtio's DATA_VALID).
	CsumVerified
	// CsumPartial: the packet was built on this host and its TCP
	// checksum field holds only the pseudo-header sum (virtio's
	// NEEDS_CSUM); the data did not cross a wire, so there is nothing to
	// verify. Only TCP packets are handed over this way: a DescReader
	// completes any other protocol's partial checksum.
	CsumPartial
)

// Desc describes one packet a DescReader read or a DescWriter is to
// write.
type Desc struct {
	GSO     GSOType
	GSOSize int // payload bytes per segment, with GSO
	Csum    CsumState
	// CsumStart is the offset of the TCP header, from which a partial
	// checksum is summed; set by a writer of CsumPartial packets.
	CsumStart int
	// Tail, for a DescWriter whose WritesGSO reports true, is payload
	// that follows the packet on the wire, in up to two spans written
	// behind it without being copied together first (a zero-copy chunk
	// of tcpcore, whose payload stays in the send buffer): the packet's
	// IP length fields and its partial checksum count it. The writer
	// reads the spans during WriteDescs only. Readers never set it.
	Tail [2][]byte
}

// TailLen is the length of d.Tail's spans together.
func (d Desc) TailLen() int { return len(d.Tail[0]) + len(d.Tail[1]) }

// Segments is how many segments a packet of hdrLen header bytes and n
// bytes in all carries under d.
func (d Desc) Segments(hdrLen, n int) int {
	if d.GSO == GSONone || d.GSOSize <= 0 || n-hdrLen <= d.GSOSize {
		return 1
	}
	return (n - hdrLen + d.GSOSize - 1) / d.GSOSize
}

// Unpacked returns how many segments packet p, which d describes, carries
// and how many bytes they make as packets of their own: a GSO packet's
// segments each with the headers (up to the end of the TCP header, which
// CsumStart locates), any other packet as it is.
func (d Desc) Unpacked(p []byte) (segs, bytes int) {
	n := len(p) + d.TailLen()
	if d.GSO == GSONone || d.CsumStart < 0 || d.CsumStart+wire.TCPHeaderLen > len(p) {
		return 1, n
	}
	hdrLen := d.CsumStart + wire.TCP(p[d.CsumStart:]).DataOffset()
	segs = d.Segments(hdrLen, n)
	return segs, n + (segs-1)*hdrLen
}

// DescReader reads packets with their descriptors.
//
// ReadDescs blocks until at least one packet is available, then reads
// packets one after another into arena, pkts[i] the part of arena packet
// i fills and descs[i] its descriptor, until pkts or descs are full, the
// device has no more, or less than DescRoom bytes of arena remain; a call
// that found the device empty and waited may return with the packet that
// woke it alone (a TUN does: TUN.endsBatch says why). It
// returns how many it read; after Close, net.ErrClosed. An arena shorter
// than DescRoom is refused. The packets stay valid until the next call.
//
// DescRoom is the arena space one read may fill: the MTU, or on a TUN
// with offload the largest TSO packet.
type DescReader interface {
	ReadDescs(arena []byte, pkts [][]byte, descs []Desc) (int, error)
	DescRoom() int
}

// DescWriter writes packets with their descriptors: WriteDescs is
// WritePackets where descs[i] says what pkts[i] is. A packet with
// CsumPartial holds in its TCP checksum field only the pseudo-header sum,
// folded and not complemented (tcpcore's Config.ChecksumOffload), and the
// link finishes it, in software or by handing it to the kernel as
// NEEDS_CSUM. A link whose WritesGSO (GSOWriter) reports true also takes
// GSO packets: one IP and TCP header and the payloads of consecutive
// segments of GSOSize bytes (the last may be shorter), described with
// GSOTCPv4 or GSOTCPv6, CsumPartial over the whole TCP length and
// CsumStart; it delivers the segments the kernel's tcp_gso_segment would
// cut from the packet (the header with each one's sequence number, the
// IPv4 id counting up, PSH and FIN only on the last, CWR only on the
// first). Such a link also takes packets whose payload follows them in
// Desc.Tail, GSO or not. Other links take no GSO descriptors and no
// tails; a TUN also coalesces runs of plain segments itself.
type DescWriter interface {
	WriteDescs(pkts [][]byte, descs []Desc) (int, error)
}

// GSOWriter is implemented by a DescWriter that may take GSO packets;
// WritesGSO reports whether it does (a wrapper asks the link it wraps).
type GSOWriter interface {
	WritesGSO() bool
}

// WritesGSO reports whether w takes GSO packets (GSOWriter).
func WritesGSO(w DescWriter) bool {
	g, ok := w.(GSOWriter)
	return ok && g.WritesGSO()
}

// NewDescWriter returns l itself if it is a DescWriter, else one that
// finishes partial checksums in place and writes through WritePackets.
func NewDescWriter(l Link) DescWriter {
	if d, ok := l.(DescWriter); ok {
		return d
	}
	return plainDescWriter{l}
}

type plainDescWriter struct{ l Link }

func (w plainDescWriter) WriteDescs(pkts [][]byte, descs []Desc) (int, error) {
	for i, p := range pkts {
		if descs[i].TailLen() > 0 {
			return i, fmt.Errorf("netif: packet %d has a tail of %d bytes, which only a link that takes GSO packets writes: give this link whole packets", i, descs[i].TailLen())
		}
		if !finishPartial(p, descs[i]) {
			return i, fmt.Errorf("netif: packet %d of %d bytes has its partial checksum at %d: the TCP header must lie inside the packet", i, len(p), descs[i].CsumStart)
		}
	}
	return w.l.WritePackets(pkts)
}

// finishPartial completes a CsumPartial packet's TCP checksum in place;
// false if its TCP header does not fit the packet. Other packets are left
// alone.
func finishPartial(p []byte, d Desc) bool {
	if d.Csum != CsumPartial {
		return true
	}
	if d.CsumStart < 0 || d.CsumStart+wire.TCPHeaderLen > len(p) {
		return false
	}
	// The field holds the pseudo-header sum: the sum over the segment,
	// field included, complemented, is the checksum (RFC 1071).
	tcp := wire.TCP(p[d.CsumStart:])
	tcp.SetChecksum(wire.Fold(wire.Checksum(tcp, 0)))
	return true
}

// ErrArenaTooSmall is returned by ReadDescs for an arena that cannot hold
// one read.
var ErrArenaTooSmall = errors.New("netif: ReadDescs arena is smaller than DescRoom: allocate at least DescRoom bytes")

// NewDescReader returns l itself if it is a DescReader, else one that
// reads l through ReadPackets, each packet with the zero Desc (one
// segment, checksum unverified). A link wrapper that sees every packet
// (a counter) can implement DescReader over the link it wraps this way.
func NewDescReader(l Link) DescReader {
	if d, ok := l.(DescReader); ok {
		return d
	}
	return &plainDescReader{l: l}
}

// plainDescReader is a DescReader over a Link without descriptors. It is
// used by one reader at a time, as a Link's ReadPackets is.
type plainDescReader struct {
	l     Link
	bufs  [][]byte
	sizes []int
}

func (r *plainDescReader) DescRoom() int { return r.l.MTU() }

func (r *plainDescReader) ReadDescs(arena []byte, pkts [][]byte, descs []Desc) (int, error) {
	room := r.l.MTU()
	if len(arena) < room {
		return 0, fmt.Errorf("%w (%d < %d)", ErrArenaTooSmall, len(arena), room)
	}
	k := min(len(pkts), len(descs), len(arena)/room)
	if cap(r.bufs) < k {
		r.bufs, r.sizes = make([][]byte, k), make([]int, k)
	}
	bufs, sizes := r.bufs[:k], r.sizes[:k]
	for i := range bufs {
		bufs[i] = arena[i*room : (i+1)*room]
	}
	n, err := r.l.ReadPackets(bufs, sizes)
	for i := range n {
		pkts[i] = bufs[i][:sizes[i]]
		descs[i] = Desc{}
	}
	clear(bufs) // do not keep the arena reachable
	return n, err
}
