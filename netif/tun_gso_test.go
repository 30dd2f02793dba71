package netif

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
	"tunstack/internal/testtools"

	"github.com/google/gopacket/pcapgo"

	"tunstack/lab/netns"
	"tunstack/wire"
)

const tsOptLen = 12 // NOP, NOP, timestamps

// gsoFamily is one address family of the offload tests: the stack's and the
// kernel's addresses on the test link, and how the family shows on the
// wire. Every offload test runs once per family.
type gsoFamily struct {
	name     string
	src, dst netip.Addr // the stack's side, the kernel's side
	bits     int        // the link's prefix length
	ipLen    int        // IP header bytes (no options, no extension headers)
	gsoType  uint8      // virtio gso_type of the family's TCP
}

var (
	gsoV4       = gsoFamily{"IPv4", netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.1"), 24, wire.IPv4HeaderLen, vnetGSOTCPv4}
	gsoV6       = gsoFamily{"IPv6", netip.MustParseAddr("fd00:7475:6e73::2"), netip.MustParseAddr("fd00:7475:6e73::1"), 64, wire.IPv6HeaderLen, vnetGSOTCPv6}
	gsoFamilies = []gsoFamily{gsoV4, gsoV6}
)

// hdr is the header length of the data segments the tests build: IP, TCP,
// timestamps.
func (f gsoFamily) hdr() int { return f.ipLen + wire.TCPHeaderLen + tsOptLen }

// tunConfig opens a device named dev with the kernel's address of f.
func (f gsoFamily) tunConfig(dev string) TUNConfig {
	cfg := TUNConfig{Name: dev, Offload: true}
	if f.dst.Is4() {
		cfg.HostAddr = netip.PrefixFrom(f.dst, f.bits)
	} else {
		cfg.HostAddr6 = netip.PrefixFrom(f.dst, f.bits)
	}
	return cfg
}

// listen listens for TCP on the kernel's address of f, port 5001.
func (f gsoFamily) listen() (net.Listener, error) {
	return net.Listen("tcp", netip.AddrPortFrom(f.dst, 5001).String())
}

// parse returns the TCP segment in p if p is a valid packet of f carrying
// TCP right behind its fixed header, and the IP length field's view of its
// size.
func (f gsoFamily) parse(p []byte) (tcp wire.TCP, ipSize int, ok bool) {
	if f.ipLen == wire.IPv6HeaderLen {
		ip := wire.IPv6(p)
		if ip.Valid() != nil || ip.NextHeader() != wire.ProtoTCP {
			return nil, 0, false
		}
		return wire.TCP(ip.Payload()), wire.IPv6HeaderLen + int(ip.PayloadLen()), true
	}
	ip := wire.IPv4(p)
	if ip.Valid() != nil || ip.Protocol() != wire.ProtoTCP {
		return nil, 0, false
	}
	return wire.TCP(ip.Payload()), int(ip.TotalLen()), true
}

// checksumOK checks a TCP segment of f coming from the kernel.
func (f gsoFamily) checksumOK(tcp wire.TCP) bool { return tcp.ChecksumValidAddr(f.dst, f.src) }

// segment describes one TCP packet of the tests, from the stack's address
// to the kernel's.
type segment struct {
	fam      gsoFamily // the zero value means gsoV4
	id       uint16    // IPv4 id
	seq, ack uint32
	flags    uint8
	payload  []byte
	tsVal    uint32
	tsEcr    uint32 // 0 means 7
	window   uint16 // 0 means 502
	dstPort  uint16 // 0 means 5001
	syn      bool   // the options of a client SYN instead: MSS, NOP, NOP, timestamps
}

// build makes the packet, checksums and all: the stack's shape, IPv4 with
// DF and no options or IPv6 with no extension headers, TCP with NOP, NOP,
// timestamps (a SYN's options with syn).
func (s segment) build() []byte {
	f := s.fam
	if f.name == "" {
		f = gsoV4
	}
	dport, ecr, win := cmp.Or(s.dstPort, 5001), cmp.Or(s.tsEcr, 7), cmp.Or(s.window, 502)
	var opts []byte
	if s.syn {
		opts = wire.AppendTCPOption(opts, wire.MSSOption(uint16(1500-f.ipLen-wire.TCPHeaderLen)))
	}
	opts = append(opts, wire.OptNOP, wire.OptNOP)
	opts = wire.AppendTCPOption(opts, wire.TimestampsOption(s.tsVal, ecr))
	if s.syn {
		opts = binary.BigEndian.AppendUint32(opts[:len(opts)-4], 0) // TSecr of a SYN
	}
	tcpLen := wire.TCPHeaderLen + len(opts) + len(s.payload)
	p := make([]byte, f.ipLen+tcpLen)
	if f.ipLen == wire.IPv6HeaderLen {
		wire.PutIPv6Header(p, wire.IPv6Fields{Src: f.src.As16(), Dst: f.dst.As16(), NextHeader: wire.ProtoTCP, HopLimit: 64}, tcpLen)
	} else {
		wire.PutIPv4Header(p, wire.IPv4Fields{Src: f.src.As4(), Dst: f.dst.As4(), Protocol: wire.ProtoTCP, TTL: 64, ID: s.id, DontFrag: true}, tcpLen)
	}
	tcp := wire.TCP(p[f.ipLen:])
	wire.PutTCPHeader(tcp, wire.TCPFields{SrcPort: 40000, DstPort: dport, Seq: s.seq, Ack: s.ack, Flags: s.flags, Window: win}, len(opts))
	copy(tcp[wire.TCPHeaderLen:], opts)
	copy(tcp[wire.TCPHeaderLen+len(opts):], s.payload)
	tcp.ComputeChecksumAddr(f.src, f.dst)
	return p
}

// pattern is n bytes that differ with their stream offset.
func pattern(off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((off + i) * 7 / 3)
	}
	return b
}

// flight builds n consecutive segments of f of sizes[i] bytes, with
// consecutive IPv4 ids and the given flags (ACK on all, PSH on the last if
// lastPSH).
func (f gsoFamily) flight(seq uint32, sizes []int, lastPSH bool) [][]byte {
	var pkts [][]byte
	off := 0
	for i, n := range sizes {
		fl := wire.FlagACK
		if lastPSH && i == len(sizes)-1 {
			fl |= wire.FlagPSH
		}
		pkts = append(pkts, segment{fam: f, id: uint16(100 + i), seq: seq + uint32(off), ack: 9000, flags: fl, payload: pattern(off, n), tsVal: 55}.build())
		off += n
	}
	return pkts
}

// mss is the payload of a full data segment on a 1500-byte link: 1448
// bytes over IPv4, 1428 over IPv6.
func (f gsoFamily) mss() int { return 1500 - f.hdr() }

// full is n full-sized segments' sizes.
func (f gsoFamily) full(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = f.mss()
	}
	return s
}

// gsoPacket is what WritePackets writes for pkts, a run: the virtio header,
// the merged headers and every payload.
func gsoPacket(t *testing.T, pkts [][]byte) []byte {
	t.Helper()
	buf := make([]byte, vnetHdrLen+gsoMaxHdr)
	hn := putGSOHeader(buf, pkts)
	gso := bytes.Clone(buf[:hn])
	hdr := hn - vnetHdrLen
	for _, p := range pkts {
		gso = append(gso, p[hdr:]...)
	}
	return gso
}

// splitGSO cuts a GSO packet (virtio header, headers, payload) into 1500-byte
// buffers with gsoSplit, the read path's splitter, which cuts as the
// kernel's tcp_gso_segment does (TestKernelSocketExchangesSegmentsIntactThroughGSO
// checks it against the kernel's own TSO packets).
func splitGSO(t *testing.T, gso []byte) [][]byte {
	t.Helper()
	var g gsoSplit
	if !g.start(parseVnetHdr(gso), gso[vnetHdrLen:]) {
		t.Fatalf("gsoSplit refused the packet")
	}
	var out [][]byte
	for g.pending() {
		buf := make([]byte, 1500)
		n, ok := g.next(buf)
		if !ok {
			t.Fatalf("segment %d does not fit 1500 bytes", len(out))
		}
		out = append(out, buf[:n])
	}
	return out
}

// forFamilies runs test once per address family, as a subtest.
func forFamilies(t *testing.T, test func(t *testing.T, f gsoFamily)) {
	for _, f := range gsoFamilies {
		t.Run(f.name, func(t *testing.T) { test(t, f) })
	}
}

func TestGSORunMergesSegmentsTheKernelSplitsBackExactly(t *testing.T) {
	forFamilies(t, func(t *testing.T, f gsoFamily) {
		pkts := f.flight(1000, append(f.full(5), 300), true)
		if n := gsoRun(pkts); n != 6 {
			t.Fatalf("gsoRun = %d, want 6", n)
		}
		gso := gsoPacket(t, pkts)
		got := parseVnetHdr(gso)
		want := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: f.gsoType, hdrLen: uint16(f.hdr()), gsoSize: uint16(f.mss()), csumStart: uint16(f.ipLen), csumOffset: 16}
		if got != want {
			t.Fatalf("virtio header %+v, want %+v", got, want)
		}
		merged := gso[vnetHdrLen:]
		wantLen := f.hdr() + 5*f.mss() + 300
		if len(merged) != wantLen {
			t.Fatalf("merged packet of %d bytes, want %d", len(merged), wantLen)
		}
		tcp, size, ok := f.parse(merged)
		if !ok || size != wantLen {
			t.Fatalf("merged %s header does not parse, or says %d bytes for %d", f.name, size, wantLen)
		}
		if f.ipLen == wire.IPv4HeaderLen && wire.IPv4(merged).ID() != 100 {
			t.Errorf("merged IPv4 id %d, want the first segment's, 100", wire.IPv4(merged).ID())
		}
		if tcp.Seq() != 1000 || tcp.Flags() != wire.FlagACK|wire.FlagPSH {
			t.Errorf("merged seq %d flags %#x, want 1000 and ACK|PSH", tcp.Seq(), tcp.Flags())
		}
		// CHECKSUM_PARTIAL: the field holds the pseudo-header sum, so
		// summing from csum_start completes the checksum of the whole
		// segment over the family's pseudo-header.
		partial := wire.Fold(wire.Checksum(tcp, 0))
		whole := bytes.Clone(tcp)
		wire.TCP(whole).ComputeChecksumAddr(f.src, f.dst)
		if partial != wire.TCP(whole).Checksum() {
			t.Errorf("completed checksum %#04x, want %#04x", partial, wire.TCP(whole).Checksum())
		}
		split := splitGSO(t, gso)
		if len(split) != len(pkts) {
			t.Fatalf("split into %d segments, want %d", len(split), len(pkts))
		}
		for i := range pkts {
			if !bytes.Equal(split[i], pkts[i]) {
				t.Errorf("segment %d after splitting differs:\n got % x\nwant % x", i, split[i][:f.hdr()], pkts[i][:f.hdr()])
			}
		}
	})
}

// The flags the kernel's tcp_gso_segment leaves on each segment of a TSO
// packet: FIN and PSH only on the last, CWR only on the first.
func TestGSOSplitKeepsFINAndPSHForTheLastSegmentAndCWRForTheFirst(t *testing.T) {
	forFamilies(t, func(t *testing.T, f gsoFamily) {
		pkts := f.flight(5000, append(f.full(3), 100), false)
		gso := gsoPacket(t, pkts)
		gso[vnetHdrLen+f.ipLen+13] |= wire.FlagFIN | wire.FlagPSH | wire.FlagCWR
		split := splitGSO(t, gso)
		want := []uint8{wire.FlagACK | wire.FlagCWR, wire.FlagACK, wire.FlagACK, wire.FlagACK | wire.FlagFIN | wire.FlagPSH}
		if len(split) != len(want) {
			t.Fatalf("split into %d segments, want %d", len(split), len(want))
		}
		for i, p := range split {
			tcp, size, ok := f.parse(p)
			if !ok || size != len(p) || tcp.Flags() != want[i] || !tcp.ChecksumValidAddr(f.src, f.dst) {
				t.Errorf("segment %d: parses %v, IP length %d of %d, flags %#x (want %#x), TCP checksum valid %v",
					i, ok, size, len(p), tcp.Flags(), want[i], ok && tcp.ChecksumValidAddr(f.src, f.dst))
			}
		}

		// A segment that does not fit the buffer is refused, not truncated.
		var g gsoSplit
		if !g.start(parseVnetHdr(gso), gso[vnetHdrLen:]) {
			t.Fatal("gsoSplit refused the packet")
		}
		if _, ok := g.next(make([]byte, 1000)); ok {
			t.Errorf("next wrote a %d-byte segment into 1000 bytes", f.hdr()+f.mss())
		}
		// Neither is a packet that is not TCP taken, nor one whose
		// gso_type names the other family or UDP, which we never ask for.
		udp := bytes.Clone(gso[vnetHdrLen:])
		if f.ipLen == wire.IPv6HeaderLen {
			udp[6] = wire.ProtoUDP
		} else {
			udp[9] = wire.ProtoUDP
		}
		if g.start(parseVnetHdr(gso), udp) {
			t.Error("gsoSplit took a UDP packet")
		}
		other := vnetGSOTCPv6
		if f.gsoType == vnetGSOTCPv6 {
			other = vnetGSOTCPv4
		}
		for _, typ := range []uint8{uint8(other), vnetGSOUDP} {
			if g.start(vnetHdr{gsoType: typ, gsoSize: uint16(f.mss())}, gso[vnetHdrLen:]) {
				t.Errorf("gsoSplit took an %s packet with gso_type %d", f.name, typ)
			}
		}
	})
}

func TestGSORunStopsWhereTheKernelCouldNotRebuildTheHeaders(t *testing.T) {
	type runCase struct {
		name string
		pkts [][]byte
		want int
	}
	mod := func(pkts [][]byte, i int, fn func(p []byte)) [][]byte {
		fn(pkts[i])
		return pkts
	}
	// Cases of the IP header, per family.
	ipCases := map[string]func(f gsoFamily) []runCase{
		"IPv4": func(f gsoFamily) []runCase {
			return []runCase{
				{"IP ids need not be consecutive", mod(f.flight(1, f.full(3), false), 1, func(p []byte) { p[4] = 0x77 }), 3},
				{"other TTL", mod(f.flight(1, f.full(3), false), 1, func(p []byte) { p[8]-- }), 1},
				{"other TOS", mod(f.flight(1, f.full(3), false), 1, func(p []byte) { p[1] = 0x10 }), 1},
				{"other address", mod(f.flight(1, f.full(3), false), 1, func(p []byte) { p[19]++ }), 1},
				{"fragment", mod(f.flight(1, f.full(3), false), 0, func(p []byte) { p[6] |= 0x20 }), 1},
				{"IP options", mod(f.flight(1, f.full(3), false), 0, func(p []byte) { p[0] = 0x46 }), 1},
				{"not TCP", mod(f.flight(1, f.full(3), false), 0, func(p []byte) { p[9] = wire.ProtoUDP }), 1},
				{"total length not the slice's", mod(f.flight(1, f.full(3), false), 0, func(p []byte) { p[3]-- }), 1},
				{"an IPv6 segment after IPv4 ones", append(f.flight(1, f.full(2), false), gsoV6.flight(uint32(1+2*f.mss()), gsoV6.full(1), false)...), 2},
			}
		},
		"IPv6": func(f gsoFamily) []runCase {
			return []runCase{
				{"other flow label", mod(f.flight(1, f.full(3), false), 1, func(p []byte) { p[3]++ }), 1},
				{"other traffic class", mod(f.flight(1, f.full(3), false), 1, func(p []byte) { p[1] ^= 0x40 }), 1},
				{"other hop limit", mod(f.flight(1, f.full(3), false), 1, func(p []byte) { p[7]-- }), 1},
				{"other source", mod(f.flight(1, f.full(3), false), 2, func(p []byte) { p[23]++ }), 2},
				{"other destination", mod(f.flight(1, f.full(3), false), 1, func(p []byte) { p[39]++ }), 1},
				{"an extension header", mod(f.flight(1, f.full(3), false), 0, func(p []byte) { p[6] = wire.ProtoDestOpts }), 1},
				{"not TCP", mod(f.flight(1, f.full(3), false), 0, func(p []byte) { p[6] = wire.ProtoUDP }), 1},
				{"payload length not the slice's", mod(f.flight(1, f.full(3), false), 0, func(p []byte) { p[5]-- }), 1},
				{"an IPv4 segment after IPv6 ones", append(f.flight(1, f.full(2), false), gsoV4.flight(uint32(1+2*f.mss()), gsoV4.full(1), false)...), 2},
			}
		},
	}
	forFamilies(t, func(t *testing.T, f gsoFamily) {
		tcp := f.ipLen
		cases := []runCase{
			{"full run", f.flight(1, f.full(4), false), 4},
			{"single packet", f.flight(1, f.full(1), false), 1},
			{"short segment ends the run", f.flight(1, []int{f.mss(), 500, f.mss()}, false), 2},
			{"longer second segment", f.flight(1, []int{1000, 1200}, false), 1},
			{"PSH on the first", mod(f.flight(1, f.full(3), false), 0, func(p []byte) { p[tcp+13] |= wire.FlagPSH }), 1},
			{"PSH in the middle ends the run", mod(f.flight(1, f.full(4), false), 1, func(p []byte) { p[tcp+13] |= wire.FlagPSH }), 2},
			{"FIN on the second", mod(f.flight(1, f.full(3), false), 1, func(p []byte) { p[tcp+13] |= wire.FlagFIN }), 1},
			{"FIN on the first", mod(f.flight(1, f.full(3), false), 0, func(p []byte) { p[tcp+13] |= wire.FlagFIN }), 1},
			{"SYN", mod(f.flight(1, f.full(3), false), 0, func(p []byte) { p[tcp+13] |= wire.FlagSYN }), 1},
			{"RST", mod(f.flight(1, f.full(3), false), 0, func(p []byte) { p[tcp+13] |= wire.FlagRST }), 1},
			{"URG", mod(f.flight(1, f.full(3), false), 0, func(p []byte) { p[tcp+13] |= wire.FlagURG }), 1},
			{"CWR", mod(f.flight(1, f.full(3), false), 0, func(p []byte) { p[tcp+13] |= wire.FlagCWR }), 1},
			{"ECE on one only", mod(f.flight(1, f.full(3), false), 1, func(p []byte) { p[tcp+13] |= wire.FlagECE }), 1},
			{"sequence gap", mod(f.flight(1, f.full(3), false), 1, func(p []byte) { p[tcp+7]++ }), 1},
			{"other ack", mod(f.flight(1, f.full(3), false), 2, func(p []byte) { p[tcp+11]++ }), 2},
			{"other window", mod(f.flight(1, f.full(3), false), 1, func(p []byte) { p[tcp+15]++ }), 1},
			{"other TSval", mod(f.flight(1, f.full(3), false), 1, func(p []byte) { p[tcp+27]++ }), 1},
			{"other TSecr", mod(f.flight(1, f.full(3), false), 1, func(p []byte) { p[tcp+31]++ }), 1},
			{"other port", mod(f.flight(1, f.full(3), false), 1, func(p []byte) { p[tcp+3]++ }), 1},
			{"no payload", [][]byte{segment{fam: f, seq: 1, ack: 9000, flags: wire.FlagACK, tsVal: 55}.build(), segment{fam: f, seq: 1, ack: 9000, flags: wire.FlagACK, tsVal: 55}.build()}, 1},
			{"64 KiB at most", f.flight(1, f.full(50), false), (gsoMaxBytes - f.hdr()) / f.mss()},
			{"at most gsoMaxSegs segments", f.flight(1, make100(100), false), gsoMaxSegs},
		}
		for _, c := range append(cases, ipCases[f.name](f)...) {
			if got := gsoRun(c.pkts); got != c.want {
				t.Errorf("%s: gsoRun = %d, want %d", c.name, got, c.want)
			}
		}
		// A different header length (no options) against the stack's shape.
		a := f.flight(1, f.full(1), false)[0]
		b := bytes.Clone(a[:f.ipLen+wire.TCPHeaderLen])
		b = append(b, a[f.hdr():]...)
		b[tcp+12] = wire.TCPHeaderLen / 4 << 4
		binary.BigEndian.PutUint32(b[tcp+4:], uint32(1+f.mss()))
		if f.ipLen == wire.IPv6HeaderLen {
			binary.BigEndian.PutUint16(b[4:], uint16(len(b)-wire.IPv6HeaderLen))
		} else {
			binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
		}
		if got := gsoRun([][]byte{a, b}); got != 1 {
			t.Errorf("different TCP header length: gsoRun = %d, want 1", got)
		}
	})
}

func make100(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 100
	}
	return s
}

func TestFinishReadPacketCompletesPartialChecksumAndRefusesGSO(t *testing.T) {
	forFamilies(t, func(t *testing.T, f gsoFamily) {
		p := f.flight(1, []int{333}, false)[0]
		tcp := wire.TCP(p[f.ipLen:])
		want := tcp.Checksum()
		tcp.SetChecksum(^wire.Fold(wire.PseudoHeaderSumAddr(f.src, f.dst, wire.ProtoTCP, len(tcp))))
		if !finishReadPacket(vnetHdr{flags: vnetFlagNeedsCsum, csumStart: uint16(f.ipLen), csumOffset: 16}, p) {
			t.Fatal("finishReadPacket refused a NEEDS_CSUM packet")
		}
		if got := tcp.Checksum(); got != want {
			t.Errorf("completed checksum %#04x, want %#04x", got, want)
		}
		before := bytes.Clone(p)
		if !finishReadPacket(vnetHdr{flags: vnetFlagDataValid}, p) || !bytes.Equal(p, before) {
			t.Error("a DATA_VALID packet was refused or changed")
		}
		if finishReadPacket(vnetHdr{gsoType: f.gsoType, gsoSize: 1448}, p) {
			t.Error("finishReadPacket accepted a GSO packet")
		}
	})
}

// A UDP checksum that comes out zero is sent as all ones (RFC 768, RFC 8200
// §8.1): zero would mean "no checksum", which IPv6 does not allow.
func TestFinishReadPacketSendsAZeroUDPChecksumAsAllOnes(t *testing.T) {
	forFamilies(t, func(t *testing.T, f gsoFamily) {
		udpLen := 8 + 6
		p := make([]byte, f.ipLen+udpLen)
		if f.ipLen == wire.IPv6HeaderLen {
			wire.PutIPv6Header(p, wire.IPv6Fields{Src: f.dst.As16(), Dst: f.src.As16(), NextHeader: wire.ProtoUDP, HopLimit: 64}, udpLen)
		} else {
			wire.PutIPv4Header(p, wire.IPv4Fields{Src: f.dst.As4(), Dst: f.src.As4(), Protocol: wire.ProtoUDP, TTL: 64}, udpLen)
		}
		udp := p[f.ipLen:]
		binary.BigEndian.PutUint16(udp[0:], 5000)
		binary.BigEndian.PutUint16(udp[2:], 9)
		binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
		binary.BigEndian.PutUint16(udp[6:], ^wire.Fold(wire.PseudoHeaderSumAddr(f.dst, f.src, wire.ProtoUDP, udpLen)))
		copy(udp[8:], "abcd")
		// The last two bytes make the whole sum 0xffff, so the checksum
		// computes to zero.
		binary.BigEndian.PutUint16(udp[12:], wire.Fold(wire.Checksum(udp[:12], 0)))
		if !finishReadPacket(vnetHdr{flags: vnetFlagNeedsCsum, csumStart: uint16(f.ipLen), csumOffset: udpCsumOffset}, p) {
			t.Fatal("finishReadPacket refused a NEEDS_CSUM UDP packet")
		}
		if got := binary.BigEndian.Uint16(udp[6:]); got != 0xffff {
			t.Errorf("UDP checksum %#04x, want 0xffff", got)
		}
		if s := wire.Fold(wire.Checksum(udp, wire.PseudoHeaderSumAddr(f.dst, f.src, wire.ProtoUDP, udpLen))); s != 0 {
			t.Errorf("the completed UDP checksum does not verify (%#04x)", s)
		}
	})
}

// openKernelPeer opens an offload TUN named dev in a new namespace with the
// kernel's address of f, and a kernel listener on it. With IPv4 the
// device's IPv6 is turned off, so that its router solicitations do not
// cross the test.
func openKernelPeer(t *testing.T, f gsoFamily, dev string, wholeTSO bool) (*TUN, net.Listener) {
	t.Helper()
	return openKernelPeerWith(t, f, dev, func(cfg *TUNConfig) { cfg.WholeTSO = wholeTSO })
}

// openKernelPeerWith is openKernelPeer with the device's configuration
// changed by edit; it needs offload only if the configuration asks for it.
func openKernelPeerWith(t *testing.T, f gsoFamily, dev string, edit func(*TUNConfig)) (*TUN, net.Listener) {
	t.Helper()
	testtools.Need(t, "sysctl")
	netns.RequireRoot(t)
	ns, err := netns.New("gso")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	var tun *TUN
	var ln net.Listener
	var wantOffload bool
	err = ns.Do(func() (err error) {
		cfg := f.tunConfig(dev)
		edit(&cfg)
		wantOffload = cfg.Offload
		if tun, err = OpenTUN(cfg); err != nil {
			return err
		}
		ln, err = f.listen()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tun.Close(); ln.Close() })
	if wantOffload && !tun.Offload() {
		t.Fatal("the kernel refused IFF_VNET_HDR: this test needs offload")
	}
	if f.ipLen == wire.IPv4HeaderLen {
		ns.Command("sysctl", "-qw", "net.ipv6.conf."+dev+".disable_ipv6=1").Run()
	}
	// Fail rather than hang if the kernel stops answering.
	timer := time.AfterFunc(20*time.Second, func() { tun.Close(); ln.Close() })
	t.Cleanup(func() { timer.Stop() })
	return tun, ln
}

// kernelDownload shakes hands by hand with the kernel listener ln through
// tun (a SYN with timestamps, the SYN-ACK, the ACK), has the accepted
// socket write size bytes, and reads them back: read returns the next TCP
// packet of f from the kernel and what the test knows of it, check looks
// at each packet that carries data, and each is acknowledged with a 64 KiB
// window (no window scale was offered), echoing its TSval. It fails the
// test unless the packets carry every byte the socket wrote, in order,
// with no reset.
func kernelDownload[M any](t *testing.T, tun *TUN, ln net.Listener, f gsoFamily, size int, read func() (wire.TCP, M), check func(wire.TCP, M)) {
	t.Helper()
	const iss = 91000
	ack := func(rcvNxt, tsVal uint32) []byte {
		return segment{fam: f, id: 7, seq: iss + 1, ack: rcvNxt, flags: wire.FlagACK, tsVal: 60, tsEcr: tsVal, window: 0xffff}.build()
	}
	syn := segment{fam: f, seq: iss, flags: wire.FlagSYN, tsVal: 50, syn: true}.build()
	if _, err := tun.WritePackets([][]byte{syn}); err != nil {
		t.Fatal(err)
	}
	synAck, _ := read()
	if synAck.Flags() != wire.FlagSYN|wire.FlagACK {
		t.Fatalf("got flags %#x, want SYN|ACK", synAck.Flags())
	}
	kernelSeq := synAck.Seq() + 1
	if _, err := tun.WritePackets([][]byte{ack(kernelSeq, tsValOf(synAck))}); err != nil {
		t.Fatal(err)
	}
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	want := pattern(0, size)
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(want)
		werr <- err
	}()
	rcvNxt := kernelSeq
	var recv []byte
	for len(recv) < size {
		tcp, m := read()
		payload := tcp.Payload()
		if tcp.Flags()&wire.FlagRST != 0 {
			t.Fatal("the kernel reset the connection")
		}
		if len(payload) == 0 {
			continue
		}
		if tcp.Seq() != rcvNxt {
			t.Fatalf("packet at seq %d, want %d", tcp.Seq(), rcvNxt)
		}
		check(tcp, m)
		recv = append(recv, payload...)
		rcvNxt += uint32(len(payload))
		if _, err := tun.WritePackets([][]byte{ack(rcvNxt, tsValOf(tcp))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-werr; err != nil {
		t.Fatalf("the kernel socket's write: %v", err)
	}
	if !bytes.Equal(recv, want) {
		t.Fatal("the packets read carry different bytes from those the socket wrote")
	}
}

// tsValOf is the TSval of tcp's timestamp option.
func tsValOf(tcp wire.TCP) uint32 {
	var o wire.TCPOptions
	wire.ParseTCPOptions(tcp.Options(), &o)
	return o.TSVal
}

// TestKernelSocketExchangesSegmentsIntactThroughGSO shakes hands by hand
// with a kernel listener through an offload TUN, then writes one batch of a
// pure ACK and 30 data segments with timestamps: the TUN sends the segments
// as GSO packets, the kernel acknowledges every byte, and the accepted
// socket reads them intact. Then the socket sends 1 MiB: the kernel hands
// the TUN TSO packets, and ReadPackets returns them as segments with valid
// checksums and contiguous sequence numbers that carry every byte. Over
// IPv4 and over IPv6.
func TestKernelSocketExchangesSegmentsIntactThroughGSO(t *testing.T) {
	forFamilies(t, func(t *testing.T, f gsoFamily) {
		tun, ln := openKernelPeer(t, f, "gso0", false)

		// readTCP returns the next TCP packet of f from the kernel,
		// skipping others (IPv6 router solicitations and MLD reports).
		bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
		readTCP := func() wire.TCP {
			t.Helper()
			for {
				n, err := tun.ReadPackets(bufs, sizes)
				if err != nil {
					t.Fatal(err)
				}
				if n != 1 {
					continue
				}
				if tcp, size, ok := f.parse(bufs[0][:sizes[0]]); ok {
					if size != sizes[0] || !f.checksumOK(tcp) {
						t.Fatalf("the kernel's segment has a bad length or checksum: % x", bufs[0][:sizes[0]])
					}
					return tcp
				}
			}
		}

		const iss = 77000
		syn := segment{fam: f, seq: iss, flags: wire.FlagSYN, tsVal: 50, syn: true}.build()
		if _, err := tun.WritePackets([][]byte{syn}); err != nil {
			t.Fatal(err)
		}
		synAck := readTCP()
		if synAck.Flags() != wire.FlagSYN|wire.FlagACK || synAck.Ack() != iss+1 {
			t.Fatalf("got flags %#x ack %d, want SYN|ACK acking %d", synAck.Flags(), synAck.Ack(), iss+1)
		}
		var opts wire.TCPOptions
		if err := wire.ParseTCPOptions(synAck.Options(), &opts); err != nil || !opts.HasTS {
			t.Fatalf("SYN-ACK options %+v (%v), want timestamps", opts, err)
		}
		kernelSeq := synAck.Seq() + 1

		// The pure ACK, then 30 data segments echoing the kernel's TSval.
		pkts := [][]byte{segment{fam: f, id: 99, seq: iss + 1, ack: kernelSeq, flags: wire.FlagACK, tsVal: 55, tsEcr: opts.TSVal}.build()}
		var sent []byte
		off := 0
		for i, n := range append(f.full(29), 700) {
			fl := wire.FlagACK
			if i == 29 {
				fl |= wire.FlagPSH
			}
			pkts = append(pkts, segment{fam: f, id: uint16(100 + i), seq: iss + 1 + uint32(off), ack: kernelSeq, flags: fl,
				payload: pattern(off, n), tsVal: 55, tsEcr: opts.TSVal}.build())
			sent = append(sent, pattern(off, n)...)
			off += n
		}
		// Through a pcap tap, as serve stacks them: the capture above the
		// TUN shows the segments as the stack made them, not the GSO
		// packets.
		var capture bytes.Buffer
		tap, err := NewPcapTap(tun, &capture)
		if err != nil {
			t.Fatal(err)
		}
		n, err := tap.WritePackets(pkts)
		if err != nil || n != len(pkts) {
			t.Fatalf("WritePackets = %d, %v; want %d", n, err, len(pkts))
		}
		r, err := pcapgo.NewReader(&capture)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			rec, _, err := r.ReadPacketData()
			if err == io.EOF {
				if i != len(pkts) {
					t.Fatalf("capture has %d packets, want %d", i, len(pkts))
				}
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if i >= len(pkts) || !bytes.Equal(rec, pkts[i]) {
				t.Fatalf("capture record %d (%d bytes) is not the segment written", i, len(rec))
			}
		}
		data := len(pkts) - 1
		gsoPkts, gsoSegs := tun.GSOStats()
		if gsoPkts == 0 || gsoSegs != uint64(data) {
			t.Fatalf("GSO writes: %d packets carrying %d segments, want the %d data segments coalesced", gsoPkts, gsoSegs, data)
		}

		conn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		got := make([]byte, len(sent))
		if _, err := io.ReadFull(conn, got); err != nil {
			t.Fatalf("reading what the kernel received: %v", err)
		}
		if !bytes.Equal(got, sent) {
			t.Fatal("the kernel socket read different bytes from those written")
		}
		end := iss + 1 + uint32(len(sent))
		for {
			ack := readTCP()
			if ack.Flags()&wire.FlagRST != 0 {
				t.Fatalf("the kernel reset the connection")
			}
			if ack.Ack() == end {
				break
			}
		}

		// The other way: the kernel sends, we acknowledge every segment
		// with a 64 KiB window (no window scale was offered) and collect
		// the bytes.
		const download = 1 << 20
		want := pattern(0, download)
		werr := make(chan error, 1)
		go func() {
			_, err := conn.Write(want)
			werr <- err
		}()
		rcvNxt := kernelSeq
		var recv []byte
		retransmitted := 0
		for len(recv) < download {
			tcp := readTCP()
			if tcp.Flags()&wire.FlagRST != 0 {
				t.Fatal("the kernel reset the connection")
			}
			payload := tcp.Payload()
			if len(payload) == 0 {
				continue
			}
			// Nothing is lost between the kernel and us, so a segment
			// beyond RCV.NXT means a piece of a TSO packet went missing.
			// One before it is the kernel retransmitting after its timer
			// ran out while this test was kept off the CPU (a starved
			// receiver's ACKs come late): as a receiver does, keep only
			// what is new in it and acknowledge again.
			if d := int32(tcp.Seq() - rcvNxt); d > 0 {
				t.Fatalf("segment at seq %d, want %d: a segment cut from a TSO packet is missing or misplaced", tcp.Seq(), rcvNxt)
			} else if d < 0 {
				retransmitted++
				payload = payload[min(-int(d), len(payload)):]
			}
			recv = append(recv, payload...)
			rcvNxt += uint32(len(payload))
			ack := segment{fam: f, id: 200, seq: end, ack: rcvNxt, flags: wire.FlagACK, tsVal: 60, tsEcr: tsValOf(tcp), window: 0xffff}.build()
			if _, err := tun.WritePackets([][]byte{ack}); err != nil {
				t.Fatal(err)
			}
		}
		if err := <-werr; err != nil {
			t.Fatalf("the kernel socket's write: %v", err)
		}
		if !bytes.Equal(recv, want) {
			t.Fatal("the segments read carry different bytes from those the kernel socket wrote")
		}
		reads, segs := tun.GSOReadStats()
		t.Logf("1 MiB from the kernel over %s: %d TSO packets read, cut into %d segments; %d segments the kernel retransmitted", f.name, reads, segs, retransmitted)
		if reads == 0 || segs <= reads {
			t.Errorf("GSOReadStats = %d packets, %d segments: the kernel sent no TSO packets to a device that offers TSO", reads, segs)
		}
		if d := tun.GSODrops(); d != 0 {
			t.Errorf("%d packets read from the kernel could not be used", d)
		}
	})
}

// WriteDescs takes a GSO packet (one header, the payloads of 30 segments,
// the checksum partial over the whole, as tcpcore's chunks come) and the
// kernel socket behind the TUN reads every byte intact, after a pure ACK
// in the same batch: handed to the kernel whole with offload, cut into
// segments by the TUN once the kernel has refused a GSO write
// (coalesce off), and cut and written one by one without offload (where
// WritesGSO says no, so that a stack makes no chunks for it). The same
// with the payload given apart from the headers, in two spans (Desc.Tail,
// as a zero-copy chunk wrapping its send ring comes), and the last segment
// then a packet of its own with such a tail. Over IPv4 and IPv6.
func TestWriteDescsTakesGSOPackets(t *testing.T) {
	modes := []struct {
		name      string
		offload   bool
		coalesce  bool
		wantWhole bool
		tail      bool
	}{
		{"offload", true, true, true, false},
		{"refused", true, false, false, false},
		{"no-offload", false, false, false, false},
		{"offload-tail", true, true, true, true},
		{"refused-tail", true, false, false, true},
		{"no-offload-tail", false, false, false, true},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			forFamilies(t, func(t *testing.T, f gsoFamily) {
				tun, ln := openKernelPeerWith(t, f, "gsow0", func(cfg *TUNConfig) { cfg.Offload = m.offload })
				tun.coalesce = m.coalesce
				if WritesGSO(tun) != m.offload {
					t.Fatalf("WritesGSO %v on a TUN with offload %v", WritesGSO(tun), m.offload)
				}
				const iss = 66000
				bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
				var synAck wire.TCP
				if _, err := tun.WritePackets([][]byte{segment{fam: f, seq: iss, flags: wire.FlagSYN, tsVal: 50, syn: true}.build()}); err != nil {
					t.Fatal(err)
				}
				for synAck == nil {
					if n, err := tun.ReadPackets(bufs, sizes); err != nil {
						t.Fatal(err)
					} else if n == 1 {
						if tcp, _, ok := f.parse(bufs[0][:sizes[0]]); ok && tcp.Flags()&wire.FlagSYN != 0 {
							synAck = tcp
						}
					}
				}
				kernelSeq, tsEcr := synAck.Seq()+1, tsValOf(synAck)
				var run [][]byte
				var sent []byte
				off := 0
				for i, n := range append(f.full(29), 700) {
					fl := wire.FlagACK
					if i == 29 {
						fl |= wire.FlagPSH
					}
					run = append(run, segment{fam: f, id: uint16(100 + i), seq: iss + 1 + uint32(off), ack: kernelSeq, flags: fl,
						payload: pattern(off, n), tsVal: 55, tsEcr: tsEcr}.build())
					sent = append(sent, pattern(off, n)...)
					off += n
				}
				inGSO := len(run)
				if m.tail {
					inGSO-- // the last segment goes on its own, with a tail
				}
				gso := gsoPacket(t, run[:inGSO])[vnetHdrLen:] // headers, the partial sum, the payloads
				pure := segment{fam: f, id: 99, seq: iss + 1, ack: kernelSeq, flags: wire.FlagACK, tsVal: 55, tsEcr: tsEcr}.build()
				gsoType := GSOTCPv4
				if f.ipLen == wire.IPv6HeaderLen {
					gsoType = GSOTCPv6
				}
				descs := []Desc{{}, {GSO: gsoType, GSOSize: f.mss(), Csum: CsumPartial, CsumStart: f.ipLen}}
				var lone []byte
				if m.tail {
					// A segment of one packet with its payload in a
					// tail of two spans (a zero-copy chunk of one
					// segment), its checksum complete.
					last := run[len(run)-1]
					hl := f.ipLen + wire.TCP(last[f.ipLen:]).DataOffset()
					lone = bytes.Clone(last[:hl])
					descs = append(descs, Desc{Tail: [2][]byte{bytes.Clone(last[hl : hl+100]), bytes.Clone(last[hl+100:])}})
				}
				if m.tail {
					// The headers alone, the payload in two spans of
					// their own cut inside a segment.
					hdrLen := f.ipLen + wire.TCP(gso[f.ipLen:]).DataOffset()
					cut := hdrLen + 5*f.mss() + 333
					descs[1].Tail = [2][]byte{bytes.Clone(gso[hdrLen:cut]), bytes.Clone(gso[cut:])}
					gso = bytes.Clone(gso[:hdrLen])
				}
				pkts := [][]byte{pure, gso}
				if lone != nil {
					pkts = append(pkts, lone)
				}
				if n, err := tun.WriteDescs(pkts, descs); err != nil || n != len(pkts) {
					t.Fatalf("WriteDescs = %d, %v; want %d", n, err, len(pkts))
				}
				gsoPkts, gsoSegs := tun.GSOStats()
				if m.wantWhole && (gsoPkts != 1 || gsoSegs != uint64(inGSO)) {
					t.Fatalf("GSO writes: %d packets carrying %d segments, want the one of %d", gsoPkts, gsoSegs, inGSO)
				}
				if !m.wantWhole && gsoPkts != 0 {
					t.Fatalf("GSO writes: %d, want the packet cut into segments", gsoPkts)
				}
				conn, err := ln.Accept()
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(20 * time.Second))
				got := make([]byte, len(sent))
				if _, err := io.ReadFull(conn, got); err != nil {
					t.Fatalf("reading what the kernel received: %v", err)
				}
				if !bytes.Equal(got, sent) {
					t.Fatal("the kernel socket read other bytes than the GSO packet carried")
				}
			})
		})
	}
}

// Desc.Unpacked counts a GSO packet as its segments, each with the
// headers, and any other packet as it is.
func TestDescUnpackedCountsTheSegmentsOfAGSOPacket(t *testing.T) {
	forFamilies(t, func(t *testing.T, f gsoFamily) {
		run := f.flight(1000, append(f.full(4), 100), true)
		gso := gsoPacket(t, run)[vnetHdrLen:]
		gsoType := GSOTCPv4
		if f.ipLen == wire.IPv6HeaderLen {
			gsoType = GSOTCPv6
		}
		d := Desc{GSO: gsoType, GSOSize: f.mss(), Csum: CsumPartial, CsumStart: f.ipLen}
		want := 0
		for _, p := range run {
			want += len(p)
		}
		if segs, n := d.Unpacked(gso); segs != 5 || n != want {
			t.Fatalf("Unpacked = %d segments, %d bytes; want 5, %d", segs, n, want)
		}
		// The same packet with its payload in Tail.
		hdrLen := f.ipLen + wire.TCP(gso[f.ipLen:]).DataOffset()
		d.Tail = [2][]byte{gso[hdrLen : hdrLen+1000], gso[hdrLen+1000:]}
		if segs, n := d.Unpacked(gso[:hdrLen]); segs != 5 || n != want {
			t.Fatalf("Unpacked with a tail = %d segments, %d bytes; want 5, %d", segs, n, want)
		}
		if segs, n := (Desc{}).Unpacked(run[0]); segs != 1 || n != len(run[0]) {
			t.Fatalf("Unpacked of a plain packet = %d, %d; want 1, %d", segs, n, len(run[0]))
		}
	})
}
