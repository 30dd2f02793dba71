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
// whole (tcp_v4_rcv and tcp_v6_rcv take CHECKSUM_PARTIAL as verified and
// read the segment size from gso_size), forwarded it is cut by
// tcp_gso_segment. gso_type TCPV4 or TCPV6 says the family. That
// path does not consult the device's offload features: TUNSETOFFLOAD only
// decides what the kernel may hand us on a read (see gsoSplit, below).
//
// When the kernel segments such a packet it copies the first segment's IP
// and TCP headers, options included, into every segment, fixes seq, the
// IPv4 id, lengths and checksums, and clears PSH and FIN on all but the last (CWR on
// all but the first). So a run is merged only when that copy reproduces each
// original packet exactly: see gsoRun.

// virtio_net_hdr fields (include/uapi/linux/virtio_net.h).
const (
	vnetHdrLen = 10 // struct virtio_net_hdr, without num_buffers

	vnetFlagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	vnetFlagDataValid = 2 // VIRTIO_NET_HDR_F_DATA_VALID

	vnetGSONone  = 0    // VIRTIO_NET_HDR_GSO_NONE
	vnetGSOTCPv4 = 1    // VIRTIO_NET_HDR_GSO_TCPV4
	vnetGSOUDP   = 3    // VIRTIO_NET_HDR_GSO_UDP, never asked for
	vnetGSOTCPv6 = 4    // VIRTIO_NET_HDR_GSO_TCPV6
	vnetGSOECN   = 0x80 // VIRTIO_NET_HDR_GSO_ECN: the TSO packet has CWR set, on its first segment only

	udpCsumOffset = 6  // offsetof(struct udphdr, check)
	tcpCsumOffset = 16 // offsetof(struct tcphdr, check)
)

// Limits of one coalesced packet.
const (
	// gsoMaxBytes is the largest packet WritePackets builds, of either
	// family: an IPv4 packet's total length is 16 bits. (An IPv6 packet's
	// Payload Length is, so it could be 40 bytes longer; the one bound
	// keeps both under what any GSO path takes.)
	gsoMaxBytes = 0xffff
	// gsoMaxRead is the largest TSO packet a read takes: an IPv6 header
	// and the largest Payload Length. The kernel's stay under 64 KiB
	// (tcp_tso_autosize() bounds them by the device's gso_max_size,
	// 65536, less room for headers), so this only leaves room.
	gsoMaxRead = wire.IPv6HeaderLen + 0xffff
	// gsoMaxSegs bounds the segments (and so the iovecs) of one write; 44
	// full 1460-byte segments already reach gsoMaxBytes.
	gsoMaxSegs = 64
	// gsoMaxHdr is the longest IP header we coalesce behind (IPv6, no
	// extension headers; IPv4 without options is shorter) plus the
	// longest TCP header.
	gsoMaxHdr = wire.IPv6HeaderLen + 60
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

// gsoSegment returns the IP header length, the header length (IP + TCP)
// and the payload length of p if it may be part of a coalesced run: IPv4
// without options and not a fragment, or IPv6 with TCP right behind the
// fixed header (no extension headers, as the stack sends none); TCP with
// ACK and payload, none of SYN, FIN, RST, URG or CWR; and a length in the
// IP header that matches the slice. ok is false otherwise.
func gsoSegment(p []byte) (ipLen, hdrLen, payloadLen int, ok bool) {
	if len(p) == 0 {
		return 0, 0, 0, false
	}
	switch p[0] >> 4 {
	case 4:
		if len(p) < wire.IPv4HeaderLen+wire.TCPHeaderLen || p[0] != 0x45 || p[9] != wire.ProtoTCP {
			return 0, 0, 0, false
		}
		ip := wire.IPv4(p)
		if int(ip.TotalLen()) != len(p) || ip.IsFragment() {
			return 0, 0, 0, false
		}
		ipLen = wire.IPv4HeaderLen
	case 6:
		if len(p) < wire.IPv6HeaderLen+wire.TCPHeaderLen || p[6] != wire.ProtoTCP ||
			wire.IPv6HeaderLen+int(wire.IPv6(p).PayloadLen()) != len(p) {
			return 0, 0, 0, false
		}
		ipLen = wire.IPv6HeaderLen
	default:
		return 0, 0, 0, false
	}
	tcp := wire.TCP(p[ipLen:])
	doff := tcp.DataOffset()
	if doff < wire.TCPHeaderLen || ipLen+doff >= len(p) {
		return 0, 0, 0, false // bad offset, or no payload
	}
	if f := tcp.Flags(); f&wire.FlagACK == 0 || f&(wire.FlagFIN|wire.FlagSYN|wire.FlagRST|wire.FlagURG|wire.FlagCWR) != 0 {
		return 0, 0, 0, false
	}
	hdrLen = ipLen + doff
	return ipLen, hdrLen, len(p) - hdrLen, true
}

// gsoRun returns how many packets from the start of pkts can be written as
// one GSO packet (TCPV4 or TCPV6): 1 when the first cannot be merged with
// the next. The packets of a run belong to one flow and have contiguous
// sequence numbers; their IP and TCP headers, options included, are
// identical but for the IP length fields, the IPv4 id and checksum, the
// sequence number, the TCP checksum and PSH, which only the last may carry;
// every payload but the last is exactly as long as the first, and the last
// is no longer. These are the headers the kernel rebuilds when it splits
// the packet.
func gsoRun(pkts [][]byte) int {
	if len(pkts) < 2 {
		return len(pkts)
	}
	first := pkts[0]
	ipLen, hdrLen, segLen, ok := gsoSegment(first)
	if !ok || wire.TCP(first[ipLen:]).Flags()&wire.FlagPSH != 0 {
		return 1
	}
	total := len(first)
	nextSeq := wire.TCP(first[ipLen:]).Seq() + uint32(segLen)
	n := 1
	for n < len(pkts) && n < gsoMaxSegs {
		p := pkts[n]
		// Equal header lengths and identical headers (sameRunHeader
		// compares the version) put p in first's family.
		_, h, l, ok := gsoSegment(p)
		if !ok || h != hdrLen || l > segLen || total+l > gsoMaxBytes || !sameRunHeader(first, p, ipLen, hdrLen) {
			break
		}
		tcp := wire.TCP(p[ipLen:])
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
// kernel copies from the first segment into the others. ipLen is first's
// IP header length, which tells its family.
func sameRunHeader(first, p []byte, ipLen, hdrLen int) bool {
	if ipLen == wire.IPv6HeaderLen {
		// IPv6: version, traffic class and flow label; next header, hop
		// limit and addresses. Skipped: payload length [4:6], which
		// ipv6_gso_segment() rewrites per segment.
		if string(first[0:4]) != string(p[0:4]) || string(first[6:40]) != string(p[6:40]) {
			return false
		}
	} else if first[0] != p[0] || first[1] != p[1] || string(first[6:10]) != string(p[6:10]) || string(first[12:20]) != string(p[12:20]) {
		// IPv4: version/IHL and TOS; flags, TTL and protocol; addresses.
		// Skipped: total length [2:4], id [4:6], checksum [10:12].
		return false
	}
	// TCP: ports; ack, data offset, flags but PSH, window; urgent pointer
	// and options. Skipped: seq [4:8], checksum [16:18].
	ip := ipLen
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
// on the wire. The headers are the first packet's with the length of the
// whole (and, for IPv4, its header checksum), PSH from the last packet,
// and in the TCP checksum field the folded pseudo-header sum over the
// whole TCP length, not complemented: with NEEDS_CSUM the kernel (or
// whoever segments the packet, adjusting it per segment) finishes the sum
// from csum_start.
func putGSOHeader(dst []byte, run [][]byte) int {
	first := run[0]
	ipLen, gsoType := wire.IPv4HeaderLen, uint8(vnetGSOTCPv4)
	if first[0]>>4 == 6 {
		ipLen, gsoType = wire.IPv6HeaderLen, vnetGSOTCPv6
	}
	hdrLen := ipLen + wire.TCP(first[ipLen:]).DataOffset()
	total := hdrLen
	for _, p := range run {
		total += len(p) - hdrLen
	}
	vnetHdr{
		flags:      vnetFlagNeedsCsum,
		gsoType:    gsoType,
		hdrLen:     uint16(hdrLen),
		gsoSize:    uint16(len(first) - hdrLen),
		csumStart:  uint16(ipLen),
		csumOffset: 16, // offsetof(struct tcphdr, check)
	}.put(dst)
	h := dst[vnetHdrLen : vnetHdrLen+hdrLen]
	copy(h, first[:hdrLen])
	var pseudo uint32
	if ipLen == wire.IPv6HeaderLen {
		binary.BigEndian.PutUint16(h[4:], uint16(total-wire.IPv6HeaderLen))
		ip := wire.IPv6(h)
		pseudo = wire.PseudoHeaderSum6(ip.Src(), ip.Dst(), wire.ProtoTCP, total-wire.IPv6HeaderLen)
	} else {
		binary.BigEndian.PutUint16(h[2:], uint16(total))
		h[10], h[11] = 0, 0
		binary.BigEndian.PutUint16(h[10:], wire.Fold(wire.Checksum(h[:wire.IPv4HeaderLen], 0)))
		ip := wire.IPv4(h)
		pseudo = wire.PseudoHeaderSum(ip.Src(), ip.Dst(), wire.ProtoTCP, total-wire.IPv4HeaderLen)
	}
	last := run[len(run)-1]
	h[ipLen+13] |= last[ipLen+13] & wire.FlagPSH
	// Fold complements; the partial sum is stored uncomplemented.
	wire.TCP(h[ipLen:]).SetChecksum(^wire.Fold(pseudo))
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
		if sum == 0 && h.csumOffset == udpCsumOffset {
			// RFC 768 (and RFC 8200 §8.1 for IPv6): a computed zero is
			// sent as all ones. UDP is the only protocol whose partial
			// checksum field sits there (TCP's is at 16, ICMP's at 2),
			// whatever extension headers come before it.
			sum = 0xffff
		}
		binary.BigEndian.PutUint16(p[field:], sum)
	}
	return true
}

// Segmentation offload on the read path.
//
// With TUNSETOFFLOAD TUN_F_CSUM|TUN_F_TSO4|TUN_F_TSO6 the device advertises
// TSO for both families, so the kernel's TCP sends it whole TSO packets (up
// to 64 KiB: one IP and TCP header, then the payload of many segments) and
// a read returns one of them behind a virtio header with gso_type TCPV4 or
// TCPV6 and gso_size the segment size. One read(2) then brings what took
// dozens, which is most of what receiving costs (docs/perf: 54% of the CPU
// of bulk-up went to one read per packet). The stack wants the segments the
// wire would have carried, so gsoSplit cuts the packet as the kernel's
// tcp_gso_segment would have: each segment gets the first header with its
// own sequence number and IP length (IPv4's total length, with an IP id
// counting up from the first and the header checksum; IPv6's Payload
// Length, as ipv6_gso_segment() sets it), FIN and PSH only on the last, CWR
// only on the first, and complete checksums over its family's
// pseudo-header.

// gsoSplit holds a GSO packet read from the device and hands it out one
// segment at a time.
type gsoSplit struct {
	pkt           []byte // IP header, TCP header, payload of every segment
	ipLen, hdrLen int    // IP header (IPv6: with its extension headers); IP and TCP headers
	v6            bool
	segSize       int    // payload bytes per segment (the last may be shorter)
	off           int    // payload offset of the next segment
	idx           int    // index of the next segment
	seq           uint32 // sequence number of the first payload byte
	id            uint16 // IPv4 id of the first segment
	// addrSum is the pseudo-header's sum over the addresses and protocol,
	// the same for every segment; each adds its own TCP length.
	addrSum uint32
}

// start takes pkt (which it keeps until the last segment is out) as the GSO
// packet described by h. It reports false, taking nothing, for a packet it
// cannot split: not TCP over the family gso_type says, headers that do not
// parse, a fragment, no payload.
func (g *gsoSplit) start(h vnetHdr, pkt []byte) bool {
	g.pkt = nil
	if h.gsoSize == 0 || len(pkt) == 0 {
		return false
	}
	var ipLen int
	var id uint16
	var addrSum uint32
	switch {
	case h.gsoType == vnetGSOTCPv4 && pkt[0]>>4 == 4 && len(pkt) >= wire.IPv4HeaderLen:
		ip := wire.IPv4(pkt)
		ipLen = ip.HeaderLen()
		if ipLen < wire.IPv4HeaderLen || ip.Protocol() != wire.ProtoTCP || ip.IsFragment() ||
			int(ip.TotalLen()) != len(pkt) || len(pkt) < ipLen+wire.TCPHeaderLen {
			return false
		}
		id = ip.ID()
		addrSum = wire.PseudoHeaderSum(ip.Src(), ip.Dst(), wire.ProtoTCP, 0)
	case h.gsoType == vnetGSOTCPv6 && pkt[0]>>4 == 6:
		ip := wire.IPv6(pkt)
		// The kernel's own TCP sends no extension headers unless a socket
		// asks for them; if there are, they are copied into every segment
		// as ipv6_gso_segment() copies them. The walk checks Valid first.
		c, err := ip.WalkExtensionHeaders()
		if err != nil || wire.IPv6HeaderLen+int(ip.PayloadLen()) != len(pkt) ||
			c.Action != wire.IPv6Deliver || c.Proto != wire.ProtoTCP || len(pkt) < c.Offset+wire.TCPHeaderLen {
			return false
		}
		ipLen = c.Offset
		addrSum = wire.PseudoHeaderSum6(ip.Src(), ip.Dst(), wire.ProtoTCP, 0)
	default:
		return false
	}
	tcp := wire.TCP(pkt[ipLen:])
	hdrLen := ipLen + tcp.DataOffset()
	if tcp.DataOffset() < wire.TCPHeaderLen || hdrLen >= len(pkt) {
		return false
	}
	*g = gsoSplit{pkt: pkt, ipLen: ipLen, hdrLen: hdrLen, v6: h.gsoType == vnetGSOTCPv6, segSize: int(h.gsoSize),
		seq: tcp.Seq(), id: id, addrSum: addrSum}
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
	if g.v6 {
		binary.BigEndian.PutUint16(ip[4:], uint16(size-wire.IPv6HeaderLen))
	} else {
		binary.BigEndian.PutUint16(ip[2:], uint16(size))
		binary.BigEndian.PutUint16(ip[4:], g.id+uint16(g.idx))
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], wire.Fold(wire.Checksum(ip, 0)))
	}
	tcp := wire.TCP(dst[g.ipLen:size])
	binary.BigEndian.PutUint32(tcp[4:], g.seq+uint32(g.off))
	last := g.off+n == payload
	if !last {
		tcp[13] &^= wire.FlagFIN | wire.FlagPSH
	}
	if g.idx > 0 {
		tcp[13] &^= wire.FlagCWR
	}
	// A segment's TCP length is under 64 KiB, so IPv6's 32-bit length
	// field adds it as IPv4's 16-bit one does.
	tcp.ComputeChecksumSum(g.addrSum + uint32(len(tcp)))
	g.off += n
	g.idx++
	if last {
		g.pkt = nil
	}
	return size, true
}
