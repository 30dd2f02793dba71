package wire_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"tunstack/wire"
)

var (
	src6   = netip.MustParseAddr("fd00::1").As16()
	dst6   = netip.MustParseAddr("fd00::2").As16()
	mcast6 = netip.MustParseAddr("ff02::1").As16()
)

// kernelPacket is one packet of testdata/ipv6-kernel-packets.txt, which
// Linux wrote to a TUN device.
type kernelPacket struct {
	name, desc string
	b          []byte
}

func kernelPackets(tb testing.TB) []kernelPacket {
	tb.Helper()
	f, err := os.Open("testdata/ipv6-kernel-packets.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var pkts []kernelPacket
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var name, desc string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#") || line == "":
		case name == "":
			var ok bool
			if name, desc, ok = strings.Cut(line, ": "); !ok {
				tb.Fatalf("testdata line %q: want NAME: DESCRIPTION", line)
			}
		default:
			b, err := hex.DecodeString(line)
			if err != nil {
				tb.Fatalf("testdata packet %s: %v", name, err)
			}
			pkts = append(pkts, kernelPacket{name, desc, b})
			name = ""
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(pkts) == 0 || name != "" {
		tb.Fatalf("testdata: %d packets, %q without its hex", len(pkts), name)
	}
	return pkts
}

func kernelPacketNamed(tb testing.TB, name string) []byte {
	tb.Helper()
	for _, p := range kernelPackets(tb) {
		if p.name == name {
			return p.b
		}
	}
	tb.Fatalf("testdata has no packet %q", name)
	return nil
}

// ext is an extension header for packet6: its protocol number and its
// bytes, whose first byte (Next Header) packet6 fills in.
type ext struct {
	proto uint8
	b     []byte
}

// optsHeader is a hop-by-hop or destination options header carrying the
// given option bytes, which must make it a multiple of 8 bytes long.
func optsHeader(proto uint8, tlvs ...byte) ext {
	n := 2 + len(tlvs)
	if n%8 != 0 {
		panic("options header of a length that is not a multiple of 8")
	}
	return ext{proto, append([]byte{0, byte(n/8 - 1)}, tlvs...)}
}

func hopByHop(tlvs ...byte) ext    { return optsHeader(wire.ProtoHopByHop, tlvs...) }
func destOptions(tlvs ...byte) ext { return optsHeader(wire.ProtoDestOpts, tlvs...) }

// routingHeader is a routing header of the given type and Segments Left
// with one address (24 bytes, Hdr Ext Len 2).
func routingHeader(typ, segmentsLeft uint8) ext {
	b := make([]byte, 24)
	b[1], b[2], b[3] = 2, typ, segmentsLeft
	copy(b[8:], dst6[:])
	return ext{wire.ProtoRouting, b}
}

// fragmentHeader is a fragment header with the given offset (in 8-byte
// units), M flag and identification (RFC 8200 §4.5).
func fragmentHeader(offset uint16, more bool, id uint32) ext {
	b := make([]byte, 8)
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	binary.BigEndian.PutUint32(b[4:], id)
	return ext{wire.ProtoFragment, b}
}

// packet6 builds a packet from src6 to dst carrying the extension headers
// in order, then upper bytes of protocol proto.
func packet6(dst [16]byte, proto uint8, upper []byte, exts ...ext) []byte {
	var payload []byte
	for i, e := range exts {
		h := bytes.Clone(e.b)
		h[0] = proto
		if i+1 < len(exts) {
			h[0] = exts[i+1].proto
		}
		payload = append(payload, h...)
	}
	payload = append(payload, upper...)
	first := proto
	if len(exts) > 0 {
		first = exts[0].proto
	}
	b := make([]byte, wire.IPv6HeaderLen+len(payload))
	wire.PutIPv6Header(b, wire.IPv6Fields{Src: src6, Dst: dst, NextHeader: first, HopLimit: 64}, len(payload))
	copy(b[wire.IPv6HeaderLen:], payload)
	return b
}

// tcpSegment6 is a checksummed TCP segment from src6 to dst.
func tcpSegment6(dst [16]byte, payload string) []byte {
	seg := make(wire.TCP, wire.TCPHeaderLen+len(payload))
	wire.PutTCPHeader(seg, wire.TCPFields{SrcPort: 40000, DstPort: 80, Seq: 1, Ack: 2, Flags: wire.FlagACK | wire.FlagPSH, Window: 1000}, 0)
	copy(seg.Payload(), payload)
	seg.ComputeChecksum6(src6, dst)
	return seg
}

func walk(t *testing.T, b []byte) wire.IPv6Chain {
	t.Helper()
	c, err := wire.IPv6(b).WalkExtensionHeaders()
	if err != nil {
		t.Fatalf("WalkExtensionHeaders: %v", err)
	}
	return c
}

func TestIPv6HeaderDecodesIdenticallyWithGopacket(t *testing.T) {
	f := wire.IPv6Fields{Src: src6, Dst: dst6, NextHeader: wire.ProtoTCP, HopLimit: 255, TrafficClass: 0xb9, FlowLabel: 0xfedcb}
	seg := tcpSegment6(dst6, "hello")
	b := make([]byte, wire.IPv6HeaderLen+len(seg))
	wire.PutIPv6Header(b, f, len(seg))
	copy(b[wire.IPv6HeaderLen:], seg)

	pkt := gopacket.NewPacket(b, layers.LayerTypeIPv6, gopacket.DecodeOptions{})
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if ip.Version != 6 || ip.TrafficClass != f.TrafficClass || ip.FlowLabel != f.FlowLabel || int(ip.Length) != len(seg) ||
		uint8(ip.NextHeader) != f.NextHeader || ip.HopLimit != f.HopLimit ||
		!ip.SrcIP.Equal(net.IP(src6[:])) || !ip.DstIP.Equal(net.IP(dst6[:])) {
		t.Errorf("gopacket decoded %+v, we wrote %+v", ip, f)
	}
	// And the other way: what gopacket writes, our view reads.
	ip2 := &layers.IPv6{Version: 6, TrafficClass: 0x2e, FlowLabel: 0x12345, NextHeader: layers.IPProtocolICMPv6, HopLimit: 1,
		SrcIP: net.IP(dst6[:]), DstIP: net.IP(mcast6[:])}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ip2, gopacket.Payload("0123456789")); err != nil {
		t.Fatal(err)
	}
	p := wire.IPv6(buf.Bytes())
	if err := p.Valid(); err != nil {
		t.Fatalf("Valid: %v", err)
	}
	if p.TrafficClass() != 0x2e || p.FlowLabel() != 0x12345 || p.PayloadLen() != 10 || p.NextHeader() != wire.ProtoICMPv6 ||
		p.HopLimit() != 1 || p.Src() != dst6 || p.Dst() != mcast6 || p.SrcAddr() != netip.AddrFrom16(dst6) ||
		!p.DstAddr().IsMulticast() || string(p.Payload()) != "0123456789" {
		t.Errorf("our view disagrees with gopacket's %+v", ip2)
	}
	// PutIPv6Header keeps only 20 bits of flow label.
	wire.PutIPv6Header(b, wire.IPv6Fields{FlowLabel: 0xfff00001, TrafficClass: 0xff}, 0)
	if p := wire.IPv6(b); p.FlowLabel() != 0x00001 || p.TrafficClass() != 0xff || b[0]>>4 != 6 {
		t.Errorf("flow label %#x traffic class %#x version %d", p.FlowLabel(), p.TrafficClass(), b[0]>>4)
	}
}

func TestIPv6ValidChecksVersionLengthAndPayloadLength(t *testing.T) {
	good := packet6(dst6, wire.ProtoNoNextHeader, []byte{1, 2, 3, 4})
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"well formed", good, nil},
		{"trailing bytes beyond the payload length are allowed", append(bytes.Clone(good), 0, 0, 0), nil},
		{"empty", nil, wire.ErrIPv6Short},
		{"shorter than the fixed header", good[:39], wire.ErrIPv6Short},
		{"version 4", func() []byte { b := bytes.Clone(good); b[0] = 0x45; return b }(), wire.ErrIPv6Version},
		{"payload length past the end", good[:len(good)-1], wire.ErrIPv6Truncated},
	}
	for _, c := range cases {
		err := wire.IPv6(c.b).Valid()
		if err != c.want {
			t.Errorf("%s: Valid = %v, want %v", c.name, err, c.want)
		}
		if err != nil && !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: %v does not wrap ErrMalformed", c.name, err)
		}
	}
}

// TestIPv6PayloadTrimsBytesBeyondPayloadLength: as Linux trims a packet to
// its Payload Length, Payload, Packet and the walk ignore what follows.
func TestIPv6PayloadTrimsBytesBeyondPayloadLength(t *testing.T) {
	seg := tcpSegment6(dst6, "data")
	b := append(packet6(dst6, wire.ProtoTCP, seg), 0xde, 0xad, 0xbe, 0xef)
	p := wire.IPv6(b)
	if err := p.Valid(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Payload(), seg) || len(p.Packet()) != len(b)-4 {
		t.Fatalf("payload %x packet of %d bytes; want the segment and %d bytes", p.Payload(), len(p.Packet()), len(b)-4)
	}
	c := walk(t, b)
	u := c.Upper(p)
	if !bytes.Equal(u.Data, seg) || !wire.TCP(u.Data).ChecksumValidSum(u.PseudoHeaderSum()) {
		t.Fatalf("upper layer %x, want the segment with a valid checksum", u.Data)
	}
}

// TestTCPChecksumOverIPv6PseudoHeader holds our IPv6 checksum against
// gopacket's, with and without extension headers between the fixed header
// and TCP (the pseudo-header's length is the TCP length, not the Payload
// Length, RFC 8200 §8.1).
func TestTCPChecksumOverIPv6PseudoHeader(t *testing.T) {
	payloads := []string{"", "x", "an odd-length payload.", strings.Repeat("0123456789abcdef", 80)}
	for _, withExt := range []bool{false, true} {
		for _, pl := range payloads {
			ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolTCP, HopLimit: 64, SrcIP: net.IP(src6[:]), DstIP: net.IP(dst6[:])}
			tcp := &layers.TCP{SrcPort: 443, DstPort: 50000, Seq: 0xfffffff0, Ack: 77, ACK: true, PSH: true, Window: 512}
			tcp.SetNetworkLayerForChecksum(ip)
			ls := []gopacket.SerializableLayer{ip}
			if withExt {
				ip.NextHeader = layers.IPProtocolIPv6Destination
				dst := &layers.IPv6Destination{Options: []*layers.IPv6DestinationOption{{OptionType: 0x1e, OptionData: []byte{1, 2, 3, 4}}}}
				dst.NextHeader = layers.IPProtocolTCP
				ls = append(ls, dst)
			}
			ls = append(ls, tcp, gopacket.Payload(pl))
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
				t.Fatal(err)
			}
			p := wire.IPv6(buf.Bytes())
			c := walk(t, p)
			if c.Action != wire.IPv6Deliver || c.Proto != wire.ProtoTCP || (c.ExtHeaders == 1) != withExt {
				t.Fatalf("walk %+v", c)
			}
			u := c.Upper(p)
			seg := wire.TCP(u.Data)
			if err := seg.Valid(); err != nil || string(seg.Payload()) != pl {
				t.Fatalf("segment: %v, payload of %d bytes", err, len(seg.Payload()))
			}
			if !seg.ChecksumValid6(p.Src(), p.Dst()) || !seg.ChecksumValidAddr(p.SrcAddr(), p.DstAddr()) ||
				!seg.ChecksumValidSum(u.PseudoHeaderSum()) {
				t.Errorf("ext %v, %d bytes: gopacket's checksum %#x does not verify", withExt, len(pl), seg.Checksum())
			}
			want := seg.Checksum()
			seg.ComputeChecksum6(p.Src(), p.Dst())
			if seg.Checksum() != want {
				t.Errorf("ComputeChecksum6 %#x, gopacket %#x", seg.Checksum(), want)
			}
			seg.ComputeChecksumAddr(p.SrcAddr(), p.DstAddr())
			if seg.Checksum() != want {
				t.Errorf("ComputeChecksumAddr %#x, gopacket %#x", seg.Checksum(), want)
			}
			seg.ComputeChecksumSum(u.PseudoHeaderSum())
			if seg.Checksum() != want {
				t.Errorf("ComputeChecksumSum %#x, gopacket %#x", seg.Checksum(), want)
			}
			// Each address byte is covered, as is the length.
			for _, i := range []int{8, 23, 24, 39} {
				q := bytes.Clone(p)
				q[i] ^= 0x40
				if wire.TCP(c.Upper(q).Data).ChecksumValid6(wire.IPv6(q).Src(), wire.IPv6(q).Dst()) {
					t.Errorf("checksum still valid with byte %d of the addresses changed", i)
				}
			}
			if seg.ChecksumValidSum(wire.PseudoHeaderSum6(p.Src(), p.Dst(), wire.ProtoTCP, len(seg)+1)) {
				t.Error("checksum valid with the wrong length in the pseudo-header")
			}
		}
	}
}

// TestTCPChecksumOurIPv6SegmentsDecodeWithGopacket: a segment we checksum,
// gopacket re-serialises with its own checksum to the same bytes.
func TestTCPChecksumOurIPv6SegmentsDecodeWithGopacket(t *testing.T) {
	for _, pl := range []string{"", "odd", "even"} {
		b := packet6(dst6, wire.ProtoTCP, tcpSegment6(dst6, pl))
		pkt := gopacket.NewPacket(b, layers.LayerTypeIPv6, gopacket.DecodeOptions{})
		if el := pkt.ErrorLayer(); el != nil {
			t.Fatalf("gopacket: %v", el.Error())
		}
		ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		tcp := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		tcp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
			ip, tcp, gopacket.Payload(tcp.Payload)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), b) {
			t.Errorf("gopacket's re-encoding differs:\nours     % x\ngopacket % x", b, buf.Bytes())
		}
	}
}

// TestChecksumAddrPicksTheFamily: the netip.Addr forms use the IPv4
// pseudo-header for two IPv4 addresses and the IPv6 one otherwise,
// IPv4-mapped IPv6 addresses included.
func TestChecksumAddrPicksTheFamily(t *testing.T) {
	s4, d4 := netip.AddrFrom4(srcAddr), netip.AddrFrom4(dstAddr)
	if wire.PseudoHeaderSumAddr(s4, d4, wire.ProtoTCP, 100) != wire.PseudoHeaderSum(srcAddr, dstAddr, wire.ProtoTCP, 100) {
		t.Error("IPv4 addresses: not the IPv4 pseudo-header")
	}
	m4, n4 := netip.AddrFrom16(netip.AddrFrom4(srcAddr).As16()), netip.AddrFrom16(netip.AddrFrom4(dstAddr).As16())
	if !m4.Is4In6() || wire.PseudoHeaderSumAddr(m4, n4, wire.ProtoTCP, 100) != wire.PseudoHeaderSum6(m4.As16(), n4.As16(), wire.ProtoTCP, 100) {
		t.Error("IPv4-mapped addresses: not the IPv6 pseudo-header")
	}
	if wire.PseudoHeaderSumAddr(netip.AddrFrom16(src6), netip.AddrFrom16(dst6), 58, 70000) != wire.PseudoHeaderSum6(src6, dst6, 58, 70000) {
		t.Error("IPv6 addresses: not the IPv6 pseudo-header")
	}
	// The IPv4 API is unchanged: the same segment verifies both ways.
	seg := make(wire.TCP, wire.TCPHeaderLen+3)
	wire.PutTCPHeader(seg, wire.TCPFields{SrcPort: 1, DstPort: 2, Flags: wire.FlagSYN}, 0)
	seg.ComputeChecksum(srcAddr, dstAddr)
	if !seg.ChecksumValidAddr(s4, d4) || !seg.ChecksumValid(srcAddr, dstAddr) {
		t.Error("IPv4 segment: ChecksumValidAddr disagrees with ChecksumValid")
	}
	// ::ffff:0:0/96 adds 0xffff twice, which is zero in one's complement:
	// the same segment verifies between the mapped addresses too.
	if !seg.ChecksumValidAddr(m4, n4) {
		t.Error("IPv4-mapped addresses: the pseudo-header sum is not checksum-neutral")
	}
	v4 := make([]byte, wire.IPv4HeaderLen+len(seg))
	wire.PutIPv4Header(v4, wire.IPv4Fields{Src: srcAddr, Dst: dstAddr, Protocol: wire.ProtoTCP, TTL: 64}, len(seg))
	copy(v4[wire.IPv4HeaderLen:], seg)
	u := wire.IPv4(v4).Upper()
	if u.Src != s4 || u.Dst != d4 || u.Proto != wire.ProtoTCP || !wire.TCP(u.Data).ChecksumValidSum(u.PseudoHeaderSum()) {
		t.Errorf("IPv4 Upper %+v", u)
	}
}

// TestIPv6ExtensionHeadersSkipHopByHopAndDestinationOptions: options
// headers whose options are all known or skippable are passed over, and the
// walk reports where TCP starts and which field names it.
func TestIPv6ExtensionHeadersSkipDestinationOptions(t *testing.T) {
	seg := tcpSegment6(dst6, "x")
	cases := []struct {
		name             string
		exts             []ext
		offset, field, n int
	}{
		{"no extension headers", nil, 40, 6, 0},
		{"destination options with PadN", []ext{destOptions(1, 4, 0, 0, 0, 0)}, 48, 40, 1},
		{"destination options with Pad1 and a skippable option", []ext{destOptions(0, 0x3e, 1, 7, 0, 0)}, 48, 40, 1},
		{"hop-by-hop with Router Alert", []ext{hopByHop(5, 2, 0, 0, 1, 0)}, 48, 40, 1},
		{"hop-by-hop, destination options, routing (Segments Left 0), destination options",
			[]ext{hopByHop(1, 4, 0, 0, 0, 0), destOptions(1, 4, 0, 0, 0, 0), routingHeader(0, 0), destOptions(bigOptions(14)...)},
			40 + 8 + 8 + 24 + 16, 40 + 8 + 8 + 24, 4},
		{"a 2048-byte destination options header", []ext{destOptions(bigOptions(2046)...)}, 40 + 2048, 40, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := packet6(dst6, wire.ProtoTCP, seg, c.exts...)
			got := walk(t, b)
			want := wire.IPv6Chain{Action: wire.IPv6Deliver, Proto: wire.ProtoTCP, Offset: c.offset, ProtoField: c.field, ExtHeaders: c.n}
			if got != want {
				t.Fatalf("walk %+v, want %+v", got, want)
			}
			if !bytes.Equal(got.Upper(wire.IPv6(b)).Data, seg) {
				t.Fatal("upper layer is not the segment")
			}
		})
	}
}

// bigOptions is n bytes of skippable options, as few as fit.
func bigOptions(n int) []byte {
	var b []byte
	for n > 0 {
		l := min(n, 256)
		b = append(append(b, 0x1e, byte(l-2)), make([]byte, l-2)...)
		n -= l
	}
	return b
}

// TestIPv6NoNextHeaderEndsTheWalk: RFC 8200 §4.7, nothing follows.
func TestIPv6NoNextHeaderEndsTheWalk(t *testing.T) {
	got := walk(t, packet6(dst6, wire.ProtoNoNextHeader, []byte("ignored"), destOptions(1, 4, 0, 0, 0, 0)))
	if want := (wire.IPv6Chain{Proto: wire.ProtoNoNextHeader, Offset: 48, ProtoField: 40, ExtHeaders: 1}); got != want {
		t.Fatalf("walk %+v, want %+v", got, want)
	}
}

// TestIPv6UnknownNextHeaderPointsAtField: RFC 8200 §4 and RFC 4443 §3.4,
// Parameter Problem code 1 pointing at the Next Header field that holds
// the value.
func TestIPv6UnknownNextHeaderPointsAtField(t *testing.T) {
	cases := []struct {
		name          string
		proto         uint8
		exts          []ext
		field, offset int
	}{
		{"UDP in the fixed header", wire.ProtoUDP, nil, 6, 40},
		{"unassigned 253 after destination options", 253, []ext{destOptions(1, 4, 0, 0, 0, 0)}, 40, 48},
		{"ESP after a routing header", 50, []ext{hopByHop(1, 4, 0, 0, 0, 0), routingHeader(4, 0)}, 48, 72},
		{"ICMP for IPv4 after an atomic fragment", wire.ProtoICMP, []ext{fragmentHeader(0, false, 9)}, 40, 48},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := packet6(dst6, c.proto, make([]byte, 8), c.exts...)
			got := walk(t, b)
			want := wire.IPv6Chain{Action: wire.IPv6ParameterProblem, Proto: c.proto, Offset: c.offset, ProtoField: c.field,
				ExtHeaders: len(c.exts), Code: wire.ICMPv6UnrecognizedNextHeader, Pointer: uint32(c.field)}
			if got != want {
				t.Fatalf("walk %+v, want %+v", got, want)
			}
			if b[got.Pointer] != c.proto {
				t.Fatalf("pointer %d holds %d, not the Next Header value %d", got.Pointer, b[got.Pointer], c.proto)
			}
		})
	}
}

// TestIPv6HopByHopOnlyAfterTheFixedHeader: RFC 8200 §4.1; anywhere else,
// Next Header 0 is not understood (as in Linux).
func TestIPv6HopByHopOnlyAfterTheFixedHeader(t *testing.T) {
	b := packet6(dst6, wire.ProtoTCP, tcpSegment6(dst6, ""), destOptions(1, 4, 0, 0, 0, 0), hopByHop(1, 4, 0, 0, 0, 0))
	got := walk(t, b)
	want := wire.IPv6Chain{Action: wire.IPv6ParameterProblem, Proto: wire.ProtoHopByHop, Offset: 48, ProtoField: 40, ExtHeaders: 1,
		Code: wire.ICMPv6UnrecognizedNextHeader, Pointer: 40}
	if got != want {
		t.Fatalf("walk %+v, want %+v", got, want)
	}
}

// TestIPv6RoutingHeaderSegmentsLeftZeroIsSkipped: RFC 8200 §4.4, whatever
// the routing type.
func TestIPv6RoutingHeaderSegmentsLeftZeroIsSkipped(t *testing.T) {
	for _, typ := range []uint8{0, 2, 3, 4, 200} {
		got := walk(t, packet6(dst6, wire.ProtoTCP, tcpSegment6(dst6, ""), routingHeader(typ, 0)))
		if got.Action != wire.IPv6Deliver || got.Offset != 64 || got.ProtoField != 40 {
			t.Errorf("type %d: walk %+v, want TCP at 64", typ, got)
		}
	}
}

// TestIPv6RoutingHeaderSegmentsLeftNonZeroIsParameterProblem: RFC 8200
// §4.4, an unrecognised routing type with Segments Left non-zero is
// Parameter Problem code 0 pointing at Segments Left.
func TestIPv6RoutingHeaderSegmentsLeftNonZeroIsParameterProblem(t *testing.T) {
	for _, c := range []struct {
		typ, left uint8
		exts      []ext
		at        int
	}{
		{0, 1, nil, 40}, {2, 1, nil, 40}, {4, 255, nil, 40}, {253, 3, []ext{hopByHop(1, 4, 0, 0, 0, 0)}, 48},
	} {
		b := packet6(dst6, wire.ProtoTCP, tcpSegment6(dst6, ""), append(c.exts, routingHeader(c.typ, c.left))...)
		got := walk(t, b)
		if got.Action != wire.IPv6ParameterProblem || got.Code != wire.ICMPv6ErroneousHeaderField || got.Pointer != uint32(c.at+3) {
			t.Errorf("type %d, segments left %d: walk %+v, want Parameter Problem code 0 at %d", c.typ, c.left, got, c.at+3)
		} else if b[got.Pointer] != c.left {
			t.Errorf("pointer %d holds %d, not Segments Left", got.Pointer, b[got.Pointer])
		}
	}
}

// TestIPv6FragmentHeaderIsReportedAsFragment: any fragment but an atomic
// one (RFC 6946 §4) ends the walk as a fragment, whatever follows it.
func TestIPv6FragmentHeaderIsReportedAsFragment(t *testing.T) {
	seg := tcpSegment6(dst6, "payload")
	for _, c := range []struct {
		name   string
		offset uint16
		more   bool
	}{
		{"first", 0, true}, {"middle", 100, true}, {"last", 8191, false},
	} {
		b := packet6(dst6, wire.ProtoTCP, seg, destOptions(1, 4, 0, 0, 0, 0), fragmentHeader(c.offset, c.more, 0xabcdef))
		got := walk(t, b)
		want := wire.IPv6Chain{Action: wire.IPv6DropFragment, Proto: wire.ProtoTCP, Offset: 56, ProtoField: 48, ExtHeaders: 2}
		if got != want {
			t.Errorf("%s fragment: walk %+v, want %+v", c.name, got, want)
		}
	}
	// A later fragment's data is no header: an unknown value after it
	// is no Parameter Problem.
	got := walk(t, packet6(dst6, 253, []byte("later data"), fragmentHeader(5, false, 1)))
	if got.Action != wire.IPv6DropFragment || got.Proto != 253 {
		t.Errorf("later fragment with Next Header 253: walk %+v, want a fragment", got)
	}
	// An atomic fragment is the whole packet.
	b := packet6(dst6, wire.ProtoTCP, seg, fragmentHeader(0, false, 7))
	got = walk(t, b)
	if want := (wire.IPv6Chain{Proto: wire.ProtoTCP, Offset: 48, ProtoField: 40, ExtHeaders: 1}); got != want {
		t.Errorf("atomic fragment: walk %+v, want %+v", got, want)
	}
	// A second fragment header after an atomic one: Linux's Parameter
	// Problem code 0 pointing at it.
	got = walk(t, packet6(dst6, wire.ProtoTCP, seg, fragmentHeader(0, false, 7), fragmentHeader(0, true, 8)))
	if got.Action != wire.IPv6ParameterProblem || got.Code != wire.ICMPv6ErroneousHeaderField || got.Pointer != 48 {
		t.Errorf("second fragment header: walk %+v, want Parameter Problem code 0 at 48", got)
	}
}

// TestIPv6UnknownOptionActsOnItsHighOrderBits: RFC 8200 §4.2, the two
// high-order bits of an unrecognised option's type: 00 skip, 01 discard,
// 10 discard and Parameter Problem code 2, 11 the same unless the
// destination is multicast. The pointer is at the option's type.
func TestIPv6UnknownOptionActsOnItsHighOrderBits(t *testing.T) {
	for _, hdr := range []func(...byte) ext{hopByHop, destOptions} {
		for _, c := range []struct {
			typ  uint8
			dst  [16]byte
			want wire.IPv6Action
		}{
			{0x3f, dst6, wire.IPv6Deliver}, {0x3f, mcast6, wire.IPv6Deliver},
			{0x7f, dst6, wire.IPv6Discard}, {0x41, mcast6, wire.IPv6Discard},
			{0x80, dst6, wire.IPv6ParameterProblem}, {0xbf, mcast6, wire.IPv6ParameterProblem},
			{0xc2, dst6, wire.IPv6ParameterProblem}, {0xff, mcast6, wire.IPv6Discard},
		} {
			// A skippable option first, so the pointer is not at the
			// header's start: Pad1, option 0x1e (4 bytes), then the one
			// under test (2 bytes of data).
			e := hdr(0, 0x1e, 2, 9, 9, c.typ, 2, 0xaa, 0xbb, 1, 3, 0, 0, 0)
			b := packet6(c.dst, wire.ProtoTCP, tcpSegment6(c.dst, ""), e)
			got := walk(t, b)
			if got.Action != c.want {
				t.Errorf("header %d, option %#x to %v: %v, want %v", e.proto, c.typ, netip.AddrFrom16(c.dst), got.Action, c.want)
				continue
			}
			switch c.want {
			case wire.IPv6ParameterProblem:
				if got.Code != wire.ICMPv6UnrecognizedOption || got.Pointer != 47 || b[got.Pointer] != c.typ {
					t.Errorf("option %#x: code %d pointer %d, want code 2 at 47", c.typ, got.Code, got.Pointer)
				}
			case wire.IPv6Deliver:
				if got.Offset != 56 {
					t.Errorf("option %#x: TCP at %d, want 56", c.typ, got.Offset)
				}
			}
		}
	}
}

// TestIPv6OptionPaddingAndCountLimits: Linux's ip6_parse_tlv() limits:
// at most 7 bytes of padding in a row, PadN data zero, at most 8 options
// besides padding; and every option within its header.
func TestIPv6OptionPaddingAndCountLimits(t *testing.T) {
	eight := []byte{}
	for range 8 {
		eight = append(eight, 0x1e, 0) // 8 empty skippable options
	}
	cases := []struct {
		name string
		e    ext
		want error
	}{
		{"seven Pad1", destOptions(0, 0, 0, 0, 0, 0, 0, 0x1e, 0, 0, 0, 0, 0, 0), nil},
		{"eight Pad1", destOptions(0, 0, 0, 0, 0, 0, 0, 0, 0x1e, 0, 0, 0, 0, 0), wire.ErrIPv6Padding},
		{"PadN of 7", destOptions(1, 5, 0, 0, 0, 0, 0, 0x1e, 0, 0, 0, 0, 0, 0), nil},
		{"PadN of 6 then two Pad1", destOptions(1, 4, 0, 0, 0, 0, 0, 0, 0x1e, 0, 0, 0, 0, 0), wire.ErrIPv6Padding},
		{"padding counts again after an option", destOptions(1, 4, 0, 0, 0, 0, 0x1e, 0, 1, 4, 0, 0, 0, 0), nil},
		{"PadN with data", destOptions(1, 4, 0, 0, 1, 0), wire.ErrIPv6PadNData},
		{"eight options", destOptions(append(bytes.Clone(eight), 1, 4, 0, 0, 0, 0)...), nil},
		{"nine options", destOptions(append(bytes.Clone(eight), 0x1e, 0, 1, 2, 0, 0)...), wire.ErrIPv6TooManyOptions},
		{"option length past the header", hopByHop(1, 2, 0, 0, 0x1e, 1), wire.ErrIPv6BadOption},
		{"option type without its length", hopByHop(1, 3, 0, 0, 0, 0x1e), wire.ErrIPv6BadOption},
	}
	for _, c := range cases {
		_, err := wire.IPv6(packet6(dst6, wire.ProtoTCP, tcpSegment6(dst6, ""), c.e)).WalkExtensionHeaders()
		if err != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// TestIPv6ExtensionHeaderChainIsBounded: a chain longer than the Payload
// Length, or than IPv6MaxExtHeaders, is an error, never a panic.
func TestIPv6ExtensionHeaderChainIsBounded(t *testing.T) {
	pad := destOptions(1, 4, 0, 0, 0, 0)
	chain := func(n int) []ext {
		var es []ext
		for range n {
			es = append(es, pad)
		}
		return es
	}
	if got := walk(t, packet6(dst6, wire.ProtoTCP, tcpSegment6(dst6, ""), chain(wire.IPv6MaxExtHeaders)...)); got.Action != wire.IPv6Deliver || got.ExtHeaders != wire.IPv6MaxExtHeaders {
		t.Errorf("%d headers: %+v, want delivered", wire.IPv6MaxExtHeaders, got)
	}
	if _, err := wire.IPv6(packet6(dst6, wire.ProtoTCP, tcpSegment6(dst6, ""), chain(wire.IPv6MaxExtHeaders+1)...)).WalkExtensionHeaders(); err != wire.ErrIPv6TooManyExtHeaders {
		t.Errorf("%d headers: %v, want ErrIPv6TooManyExtHeaders", wire.IPv6MaxExtHeaders+1, err)
	}
	// Hdr Ext Len past the end; the header cut short; the last header
	// naming another that is not there.
	long := packet6(dst6, wire.ProtoTCP, nil, destOptions(1, 4, 0, 0, 0, 0))
	long[41] = 1
	cut := packet6(dst6, wire.ProtoTCP, nil, destOptions(1, 4, 0, 0, 0, 0))
	binary.BigEndian.PutUint16(cut[4:], 5)
	dangling := packet6(dst6, wire.ProtoDestOpts, nil, destOptions(1, 4, 0, 0, 0, 0))
	// The chain is read within the Payload Length even when the buffer
	// holds more (trailing bytes are not the packet's).
	trailing := append(packet6(dst6, wire.ProtoFragment, nil), make([]byte, 8)...)
	for name, b := range map[string][]byte{"hdr ext len": long, "cut": cut, "dangling": dangling, "trailing": trailing} {
		if _, err := wire.IPv6(b).WalkExtensionHeaders(); err != wire.ErrIPv6ExtTruncated {
			t.Errorf("%s: %v, want ErrIPv6ExtTruncated", name, err)
		}
	}
	if c, err := wire.IPv6(make([]byte, 40)).WalkExtensionHeaders(); err != wire.ErrIPv6Version || c.Action != wire.IPv6Discard {
		t.Errorf("not IPv6: %+v, %v", c, err)
	}
}

// TestIPv6KernelPacketsWalk: the packets Linux wrote to a TUN device walk
// to what gopacket finds, and their checksums verify.
func TestIPv6KernelPacketsWalk(t *testing.T) {
	want := map[string]wire.IPv6Chain{
		"mldv2-report":             {Proto: wire.ProtoICMPv6, Offset: 48, ProtoField: 40, ExtHeaders: 1},
		"router-solicitation":      {Proto: wire.ProtoICMPv6, Offset: 40, ProtoField: 6},
		"mldv2-report-two-records": {Proto: wire.ProtoICMPv6, Offset: 48, ProtoField: 40, ExtHeaders: 1},
		"echo-request":             {Proto: wire.ProtoICMPv6, Offset: 40, ProtoField: 6},
		"fragment-first":           {Action: wire.IPv6DropFragment, Proto: wire.ProtoICMPv6, Offset: 48, ProtoField: 40, ExtHeaders: 1},
		"fragment-last":            {Action: wire.IPv6DropFragment, Proto: wire.ProtoICMPv6, Offset: 48, ProtoField: 40, ExtHeaders: 1},
		"tcp-syn-destopts":         {Proto: wire.ProtoTCP, Offset: 48, ProtoField: 40, ExtHeaders: 1},
		"udp-hopbyhop":             {Action: wire.IPv6ParameterProblem, Proto: wire.ProtoUDP, Offset: 48, ProtoField: 40, ExtHeaders: 1, Code: wire.ICMPv6UnrecognizedNextHeader, Pointer: 40},
		"tcp-syn":                  {Proto: wire.ProtoTCP, Offset: 40, ProtoField: 6},
	}
	pkts := kernelPackets(t)
	if len(pkts) != len(want) {
		t.Fatalf("%d packets in testdata, %d expected here", len(pkts), len(want))
	}
	for _, kp := range pkts {
		t.Run(kp.name, func(t *testing.T) {
			p := wire.IPv6(kp.b)
			got := walk(t, p)
			if got != want[kp.name] {
				t.Fatalf("walk %+v, want %+v", got, want[kp.name])
			}
			// gopacket's decoding: the layer after the extension
			// headers starts where ours does.
			pkt := gopacket.NewPacket(kp.b, layers.LayerTypeIPv6, gopacket.DecodeOptions{})
			var upper gopacket.Layer
			switch got.Proto {
			case wire.ProtoTCP:
				upper = pkt.Layer(layers.LayerTypeTCP)
			case wire.ProtoICMPv6:
				upper = pkt.Layer(layers.LayerTypeICMPv6)
			case wire.ProtoUDP:
				upper = pkt.Layer(layers.LayerTypeUDP)
			}
			if got.Action != wire.IPv6DropFragment {
				if upper == nil {
					t.Fatalf("gopacket found no layer for protocol %d: %v", got.Proto, pkt)
				}
				if off := len(kp.b) - len(upper.LayerContents()) - len(upper.LayerPayload()); off != got.Offset {
					t.Errorf("gopacket's upper layer starts at %d, ours at %d", off, got.Offset)
				}
			}
			u := got.Upper(p)
			switch {
			case got.Action != wire.IPv6Deliver:
			case got.Proto == wire.ProtoTCP:
				if !wire.TCP(u.Data).ChecksumValid6(p.Src(), p.Dst()) {
					t.Error("TCP checksum does not verify")
				}
			case got.Proto == wire.ProtoICMPv6:
				m := wire.ICMPv6(u.Data)
				if m.Valid() != nil || !m.ChecksumValid(p.Src(), p.Dst()) {
					t.Error("ICMPv6 message does not verify")
				}
				if m.IsNeighborDiscoveryOrMLD() != (kp.name != "echo-request") {
					t.Errorf("type %d: IsNeighborDiscoveryOrMLD %v", m.Type(), m.IsNeighborDiscoveryOrMLD())
				}
			}
		})
	}
}

// TestIPv6WalkAllocatesNothing: the header views, the walk, the checksums
// and the ICMPv6 builders allocate nothing.
func TestIPv6WalkAllocatesNothing(t *testing.T) {
	b := packet6(dst6, wire.ProtoTCP, tcpSegment6(dst6, "abc"), hopByHop(5, 2, 0, 0, 1, 0), destOptions(0x1e, 2, 1, 2, 1, 0), routingHeader(0, 0))
	mld := kernelPacketNamed(t, "mldv2-report")
	ping := kernelPacketNamed(t, "echo-request")
	out := make([]byte, wire.IPv6MinMTU)
	var sink int
	allocs := testing.AllocsPerRun(100, func() {
		p := wire.IPv6(b)
		if p.Valid() != nil {
			panic("invalid")
		}
		c, err := p.WalkExtensionHeaders()
		if err != nil || c.Action != wire.IPv6Deliver {
			panic("not delivered")
		}
		u := c.Upper(p)
		if !wire.TCP(u.Data).ChecksumValidSum(u.PseudoHeaderSum()) || !wire.TCP(u.Data).ChecksumValidAddr(u.Src, u.Dst) {
			panic("checksum")
		}
		sink += int(p.TrafficClass()) + int(p.FlowLabel()) + int(p.HopLimit()) + len(p.Payload()) + len(p.Packet())
		q := wire.IPv6(mld)
		c, _ = q.WalkExtensionHeaders()
		m := wire.ICMPv6(c.Upper(q).Data)
		if m.Valid() != nil || !m.ChecksumValid(q.Src(), q.Dst()) || !m.IsNeighborDiscoveryOrMLD() {
			panic("mld")
		}
		_, err = wire.IPv6(b[:30]).WalkExtensionHeaders()
		if err == nil {
			panic("short packet walked")
		}
		n, err := wire.PutICMPv6EchoReply(out, wire.IPv6(ping), netip.Addr{}, 64)
		if err != nil {
			panic(err)
		}
		sink += n
		n, err = wire.PutICMPv6PacketTooBig(out, dst6, 64, p, 1280)
		if err != nil {
			panic(err)
		}
		sink += n
		if _, err := wire.PutICMPv6DestUnreachable(out, dst6, 64, wire.IPv6(mld), 0); err == nil {
			panic("error about a packet to multicast")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run, want 0", allocs)
	}
	_ = sink
}

// TestSetLengthMatchesAHeaderWrittenForThatLength: a header written for
// one payload and then given another length is the header written for
// that length (IPv4: its checksum too).
func TestSetLengthMatchesAHeaderWrittenForThatLength(t *testing.T) {
	f4 := wire.IPv4Fields{Src: [4]byte{192, 0, 2, 1}, Dst: [4]byte{198, 51, 100, 7}, Protocol: wire.ProtoTCP, TTL: 64, ID: 0x1234, TOS: 0x28, DontFrag: true}
	got4, want4 := make([]byte, wire.IPv4HeaderLen), make([]byte, wire.IPv4HeaderLen)
	wire.PutIPv4Header(got4, f4, 20)
	wire.PutIPv4Header(want4, f4, 2880)
	wire.IPv4(got4).SetTotalLen(wire.IPv4HeaderLen + 2880)
	if !bytes.Equal(got4, want4) {
		t.Errorf("IPv4 SetTotalLen: % x, want % x", got4, want4)
	}
	if wire.Fold(wire.Checksum(got4, 0)) != 0 {
		t.Error("IPv4 SetTotalLen left a wrong header checksum")
	}
	f6 := wire.IPv6Fields{Src: [16]byte{0: 0xfd, 15: 2}, Dst: [16]byte{0: 0x20, 1: 0x01, 15: 1}, NextHeader: wire.ProtoTCP, HopLimit: 64, TrafficClass: 0x28, FlowLabel: 0x12345}
	got6, want6 := make([]byte, wire.IPv6HeaderLen), make([]byte, wire.IPv6HeaderLen)
	wire.PutIPv6Header(got6, f6, 20)
	wire.PutIPv6Header(want6, f6, 2880)
	wire.IPv6(got6).SetPayloadLen(2880)
	if !bytes.Equal(got6, want6) {
		t.Errorf("IPv6 SetPayloadLen: % x, want % x", got6, want6)
	}
}
