package netif

import (
	"encoding/binary"

	"tunstack/wire"
)

// Segmentation offload on the TUN's write path.
//
// With IFF_VNET_HDR every packet crossing the device is preceded by a
// struct virtio_net_hdr (include/uapi/linux/virtio_net.h, 10 bytes in the
// legacy layout TUNSETVNETHDRSZ selects). On a write, tun_get_user hands the
// header to virtio_net_hdr_to_skb, which turns gso_type/gso_size into an skb
// the kernel treats like a GRO-merged one: delivered locally it reaches TCP
// whole (tcp_v4_rcv takes CHECKSUM_PARTIAL as verified and reads the
// segment size from gso_size), forwarded it is cut by tcp_gso_segment. That
// path does not consult the device's offload features: TUNSETOFFLOAD only
// decides what the kernel may hand us on a read (see gsoSplit, below).
//
// When the kernel segments such a packet it copies the first segment's IP
// and TCP headers, options included, into every segment, fixes seq, IP id,
// lengths and checksums, and clears PSH and FIN on all but the last (CWR on
// all but the first). So a run is merged only when that copy reproduces each
// original packet exactly: see gsoRun.

// virtio_net_hdr fields (include/uapi/linux/virtio_net.h).
const (
	vnetHdrLen = 10 // struct virtio_net_hdr, without num_buffers

	vnetFlagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	vnetFlagDataValid = 2 // VIRTIO_NET_HDR_F_DATA_VALID

	vnetGSONone  = 0 // VIRTIO_NET_HDR_GSO_NONE
	vnetGSOTCPv4 = 1 // VIRTIO_NET_HDR_GSO_TCPV4
)

// Limits of one coalesced packet.
const (
	// gsoMaxBytes is the largest IPv4 packet: its total length is 16 bits.
	gsoMaxBytes = 0xffff
	// gsoMaxSegs bounds the segments (and so the iovecs) of one write; 44
	// full 1460-byte segments already reach gsoMaxBytes.
	gsoMaxSegs = 64
	// gsoMaxHdr is the longest IPv4 (no options) plus TCP header.
	gsoMaxHdr = wire.IPv4HeaderLen + 60
)

// vnetHdr is struct virtio_net_hdr. The legacy header is in the host's byte
// order (tun's tun16_to_cpu without IFF_VNET_LE).
type vnetHdr struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16 // bytes of IP + TCP header
	gsoSize    uint16 // payload bytes per segment
	csumStart  uint16 // offset of the TCP header
	csumOffset uint16 // offset of the checksum field within it
}

func (h vnetHdr) put(b []byte) {
	_ = b[vnetHdrLen-1]
	b[0], b[1] = h.flags, h.gsoType
	binary.NativeEndian.PutUint16(b[2:], h.hdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.gsoSize)
	binary.NativeEndian.PutUint16(b[6:], h.csumStart)
	binary.NativeEndian.PutUint16(b[8:], h.csumOffset)
}

func parseVnetHdr(b []byte) vnetHdr {
	_ = b[vnetHdrLen-1]
	return vnetHdr{
		flags: b[0], gsoType: b[1],
		hdrLen:     binary.NativeEndian.Uint16(b[2:]),
		gsoSize:    binary.NativeEndian.Uint16(b[4:]),
		csumStart:  binary.NativeEndian.Uint16(b[6:]),
		csumOffset: binary.NativeEndian.Uint16(b[8:]),
	}
}

// gsoSegment returns the header length (IP + TCP) and payload length of p
// if it may be part of a coalesced run: IPv4 without options, not a
// fragment, TCP with ACK and payload, none of SYN, FIN, RST, URG or CWR,
// and a total length that matches the slice. ok is false otherwise.
func gsoSegment(p []byte) (hdrLen, payloadLen int, ok bool) {
	if len(p) < wire.IPv4HeaderLen+wire.TCPHeaderLen || p[0] != 0x45 || p[9] != wire.ProtoTCP {
		return 0, 0, false
	}
	ip := wire.IPv4(p)
	if int(ip.TotalLen()) != len(p) || ip.IsFragment() {
		return 0, 0, false
	}
	tcp := wire.TCP(p[wire.IPv4HeaderLen:])
	doff := tcp.DataOffset()
	if doff < wire.TCPHeaderLen || wire.IPv4HeaderLen+doff >= len(p) {
		return 0, 0, false // bad offset, or no payload
	}
	if f := tcp.Flags(); f&wire.FlagACK == 0 || f&(wire.FlagFIN|wire.FlagSYN|wire.FlagRST|wire.FlagURG|wire.FlagCWR) != 0 {
		return 0, 0, false
	}
	hdrLen = wire.IPv4HeaderLen + doff
	return hdrLen, len(p) - hdrLen, true
}

// gsoRun returns how many packets from the start of pkts can be written as
// one TCPv4 GSO packet: 1 when the first cannot be merged with the next.
// The packets of a run belong to one flow and have contiguous sequence
// numbers; their IP and TCP headers, options included, are identical but
// for the IP total length, id and checksum, the sequence number, the TCP
// checksum and PSH, which only the last may carry; every payload but the
// last is exactly as long as the first, and the last is no longer. These
// are the headers the kernel rebuilds when it splits the packet.
func gsoRun(pkts [][]byte) int {
	if len(pkts) < 2 {
		return len(pkts)
	}
	first := pkts[0]
	hdrLen, segLen, ok := gsoSegment(first)
	if !ok || wire.TCP(first[wire.IPv4HeaderLen:]).Flags()&wire.FlagPSH != 0 {
		return 1
	}
	total := len(first)
	nextSeq := wire.TCP(first[wire.IPv4HeaderLen:]).Seq() + uint32(segLen)
	n := 1
	for n < len(pkts) && n < gsoMaxSegs {
		p := pkts[n]
		h, l, ok := gsoSegment(p)
		if !ok || h != hdrLen || l > segLen || total+l > gsoMaxBytes || !sameRunHeader(first, p, hdrLen) {
			break
		}
		tcp := wire.TCP(p[wire.IPv4HeaderLen:])
		// Sequence numbers compared for equality only: wrap-around is
		// no concern.
		if tcp.Seq() != nextSeq {
			break
		}
		n++
		total += l
		nextSeq += uint32(l)
		if l < segLen || tcp.Flags()&wire.FlagPSH != 0 {
			break // a short segment or PSH ends the run
		}
	}
	return n
}

// sameRunHeader reports whether p's headers equal first's in every byte the
// kernel copies from the first segment into the others.
func sameRunHeader(first, p []byte, hdrLen int) bool {
	const ip = wire.IPv4HeaderLen
	// IPv4: version/IHL and TOS; flags, TTL and protocol; addresses.
	// Skipped: total length [2:4], id [4:6], checksum [10:12].
	if first[1] != p[1] || string(first[6:10]) != string(p[6:10]) || string(first[12:20]) != string(p[12:20]) {
		return false
	}
	// TCP: ports; ack, data offset, flags but PSH, window; urgent pointer
	// and options. Skipped: seq [4:8], checksum [16:18].
	if string(first[ip:ip+4]) != string(p[ip:ip+4]) || string(first[ip+8:ip+13]) != string(p[ip+8:ip+13]) {
		return false
	}
	if first[ip+13]&^wire.FlagPSH != p[ip+13]&^wire.FlagPSH || string(first[ip+14:ip+16]) != string(p[ip+14:ip+16]) {
		return false
	}
	return string(first[ip+18:hdrLen]) == string(p[ip+18:hdrLen])
}

// putGSOHeader writes into dst the virtio header and the IP and TCP headers
// of the packet that carries run (from gsoRun, two or more packets) as one
// GSO packet, and returns how many bytes it wrote; the payloads follow it
// on the wire. The headers are the first packet's with the total length
// and IP checksum of the whole, PSH from the last packet, and in the TCP
// checksum field the folded pseudo-header sum over the whole TCP length,
// not complemented: with NEEDS_CSUM the kernel (or whoever segments the
// packet, adjusting it per segment) finishes the sum from csum_start.
func putGSOHeader(dst []byte, run [][]byte) int {
	first := run[0]
	hdrLen := wire.IPv4HeaderLen + wire.TCP(first[wire.IPv4HeaderLen:]).DataOffset()
	total := hdrLen
	for _, p := range run {
		total += len(p) - hdrLen
	}
	vnetHdr{
		flags:      vnetFlagNeedsCsum,
		gsoType:    vnetGSOTCPv4,
		hdrLen:     uint16(hdrLen),
		gsoSize:    uint16(len(first) - hdrLen),
		csumStart:  wire.IPv4HeaderLen,
		csumOffset: 16, // offsetof(struct tcphdr, check)
	}.put(dst)
	h := dst[vnetHdrLen : vnetHdrLen+hdrLen]
	copy(h, first[:hdrLen])
	binary.BigEndian.PutUint16(h[2:], uint16(total))
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:], wire.Fold(wire.Checksum(h[:wire.IPv4HeaderLen], 0)))
	last := run[len(run)-1]
	h[wire.IPv4HeaderLen+13] |= last[wire.IPv4HeaderLen+13] & wire.FlagPSH
	ip := wire.IPv4(h)
	// Fold complements; the partial sum is stored uncomplemented.
	wire.TCP(h[wire.IPv4HeaderLen:]).SetChecksum(^wire.Fold(wire.PseudoHeaderSum(ip.Src(), ip.Dst(), wire.ProtoTCP, total-wire.IPv4HeaderLen)))
	return vnetHdrLen + hdrLen
}

// finishReadPacket checks the virtio header the kernel put before packet p
// (not a GSO packet: those go through gsoSplit) and completes a checksum it
// left partial. It reports false for a packet the stack cannot use.
func finishReadPacket(h vnetHdr, p []byte) bool {
	if h.gsoType != vnetGSONone {
		return false
	}
	if h.flags&vnetFlagNeedsCsum != 0 {
		start, field := int(h.csumStart), int(h.csumStart)+int(h.csumOffset)
		if field+2 > len(p) {
			return false
		}
		// The field holds the pseudo-header sum; the sum from csum_start
		// to the end, complemented, is the checksum.
		sum := wire.Fold(wire.Checksum(p[start:], 0))
		if sum == 0 && len(p) > wire.IPv4HeaderLen && p[0]>>4 == 4 && p[9] == wire.ProtoUDP {
			sum = 0xffff // RFC 768: a computed zero is sent as all ones
		}
		binary.BigEndian.PutUint16(p[field:], sum)
	}
	return true
}

// Segmentation offload on the read path.
//
// With TUNSETOFFLOAD TUN_F_CSUM|TUN_F_TSO4 the device advertises TSO, so the
// kernel's TCP sends it whole TSO packets (up to 64 KiB: one IP and TCP
// header, then the payload of many segments) and a read returns one of them
// behind a virtio header with gso_type TCPV4 and gso_size the segment size.
// One read(2) then brings what took dozens, which is most of what receiving
// costs (docs/perf: 54% of the CPU of bulk-up went to one read per packet).
// The stack wants the segments the wire would have carried, so gsoSplit cuts
// the packet as the kernel's tcp_gso_segment would have: each segment gets
// the first header with its own sequence number, IP total length and an IP
// id counting up from the first, FIN and PSH only on the last, CWR only on
// the first, and complete checksums.

// gsoSplit holds a GSO packet read from the device and hands it out one
// segment at a time.
type gsoSplit struct {
	pkt           []byte // IP header, TCP header, payload of every segment
	ipLen, hdrLen int    // IP header; IP and TCP headers
	segSize       int    // payload bytes per segment (the last may be shorter)
	off           int    // payload offset of the next segment
	idx           int    // index of the next segment
	seq           uint32 // sequence number of the first payload byte
	id            uint16 // IP id of the first segment
	src, dst      [4]byte
}

// start takes pkt (which it keeps until the last segment is out) as the GSO
// packet described by h. It reports false, taking nothing, for a packet it
// cannot split: not TCP over IPv4, headers that do not parse, no payload.
func (g *gsoSplit) start(h vnetHdr, pkt []byte) bool {
	g.pkt = nil
	if h.gsoType != vnetGSOTCPv4 || h.gsoSize == 0 || len(pkt) < wire.IPv4HeaderLen || pkt[0]>>4 != 4 {
		return false
	}
	ip := wire.IPv4(pkt)
	ipLen := int(pkt[0]&0x0f) * 4
	if ipLen < wire.IPv4HeaderLen || ip.Protocol() != wire.ProtoTCP || ip.IsFragment() ||
		int(ip.TotalLen()) != len(pkt) || len(pkt) < ipLen+wire.TCPHeaderLen {
		return false
	}
	tcp := wire.TCP(pkt[ipLen:])
	hdrLen := ipLen + tcp.DataOffset()
	if tcp.DataOffset() < wire.TCPHeaderLen || hdrLen >= len(pkt) {
		return false
	}
	*g = gsoSplit{pkt: pkt, ipLen: ipLen, hdrLen: hdrLen, segSize: int(h.gsoSize),
		seq: tcp.Seq(), id: ip.ID(), src: ip.Src(), dst: ip.Dst()}
	return true
}

// pending reports whether segments remain.
func (g *gsoSplit) pending() bool { return g.pkt != nil }

// drop forgets what remains of the packet.
func (g *gsoSplit) drop() { g.pkt = nil }

// next writes the next segment into dst and returns its length; false if
// dst cannot hold it (the segment is then lost, with the rest: the caller
// drops the packet).
func (g *gsoSplit) next(dst []byte) (int, bool) {
	payload := len(g.pkt) - g.hdrLen
	n := min(g.segSize, payload-g.off)
	size := g.hdrLen + n
	if size > len(dst) {
		return 0, false
	}
	copy(dst, g.pkt[:g.hdrLen])
	copy(dst[g.hdrLen:size], g.pkt[g.hdrLen+g.off:])
	ip := dst[:g.ipLen]
	binary.BigEndian.PutUint16(ip[2:], uint16(size))
	binary.BigEndian.PutUint16(ip[4:], g.id+uint16(g.idx))
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], wire.Fold(wire.Checksum(ip, 0)))
	tcp := wire.TCP(dst[g.ipLen:size])
	binary.BigEndian.PutUint32(tcp[4:], g.seq+uint32(g.off))
	last := g.off+n == payload
	if !last {
		tcp[13] &^= wire.FlagFIN | wire.FlagPSH
	}
	if g.idx > 0 {
		tcp[13] &^= wire.FlagCWR
	}
	tcp.ComputeChecksum(g.src, g.dst)
	g.off += n
	g.idx++
	if last {
		g.pkt = nil
	}
	return size, true
}
