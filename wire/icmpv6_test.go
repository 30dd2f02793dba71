package wire_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"tunstack/wire"
)

// decodeICMPv6 decodes an IPv6 packet carrying ICMPv6 right after the fixed
// header with gopacket, and checks its checksum independently of ours:
// gopacket re-serialising the message with its own checksum must give the
// same bytes.
func decodeICMPv6(t *testing.T, b []byte) (*layers.IPv6, *layers.ICMPv6) {
	t.Helper()
	pkt := gopacket.NewPacket(b, layers.LayerTypeIPv6, gopacket.DecodeOptions{})
	ip, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	icmp, _ := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	if ip == nil || icmp == nil {
		t.Fatalf("gopacket found no IPv6 and ICMPv6 layers in % x", b)
	}
	if int(ip.Length) != len(b)-wire.IPv6HeaderLen {
		t.Errorf("payload length %d, packet of %d bytes", ip.Length, len(b))
	}
	re := &layers.ICMPv6{TypeCode: icmp.TypeCode}
	re.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, re, gopacket.Payload(icmp.Payload)); err != nil {
		t.Fatal(err)
	}
	if re.Checksum != icmp.Checksum {
		t.Errorf("ICMPv6 checksum %#x, gopacket computes %#x", icmp.Checksum, re.Checksum)
	}
	return ip, icmp
}

// echoRequest6 is a checksummed echo request packet from src to dst.
func echoRequest6(src, dst [16]byte, id, seq uint16, data string) []byte {
	msg := make(wire.ICMPv6, wire.ICMPv6HeaderLen+len(data))
	wire.PutICMPv6Echo(msg, wire.ICMPv6EchoRequest, id, seq)
	copy(msg.Body(), data)
	msg.ComputeChecksum(src, dst)
	b := make([]byte, wire.IPv6HeaderLen+len(msg))
	wire.PutIPv6Header(b, wire.IPv6Fields{Src: src, Dst: dst, NextHeader: wire.ProtoICMPv6, HopLimit: 64, TrafficClass: 0x28}, len(msg))
	copy(b[wire.IPv6HeaderLen:], msg)
	return b
}

func TestICMPv6ChecksumAgreesWithGopacket(t *testing.T) {
	for _, data := range []string{"", "a", "ping data!", string(bytes.Repeat([]byte{0xff}, 1001))} {
		ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 64, SrcIP: net.IP(src6[:]), DstIP: net.IP(dst6[:])}
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
		icmp.SetNetworkLayerForChecksum(ip)
		echo := &layers.ICMPv6Echo{Identifier: 0x1234, SeqNumber: 0xfffe}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
			ip, icmp, echo, gopacket.Payload(data)); err != nil {
			t.Fatal(err)
		}
		p := wire.IPv6(buf.Bytes())
		c := walk(t, p)
		m := wire.ICMPv6(c.Upper(p).Data)
		if m.Valid() != nil || m.Type() != wire.ICMPv6EchoRequest || m.Code() != 0 || m.Identifier() != 0x1234 ||
			m.Sequence() != 0xfffe || string(m.Body()) != data || m.IsError() || m.IsNeighborDiscoveryOrMLD() {
			t.Errorf("our view of gopacket's echo request: type %d id %#x seq %#x", m.Type(), m.Identifier(), m.Sequence())
		}
		if !m.ChecksumValid(p.Src(), p.Dst()) {
			t.Errorf("%d bytes of data: gopacket's checksum %#x does not verify", len(data), m.Checksum())
		}
		want := m.Checksum()
		m.ComputeChecksum(p.Src(), p.Dst())
		if m.Checksum() != want {
			t.Errorf("ComputeChecksum %#x, gopacket %#x", m.Checksum(), want)
		}
		m[len(m)-1] ^= 1
		if m.ChecksumValid(p.Src(), p.Dst()) {
			t.Error("checksum still valid after corrupting the message")
		}
		if m.ChecksumValid(p.Dst(), mcast6) {
			t.Error("checksum valid with other addresses")
		}
	}
	if wire.ICMPv6(make([]byte, 7)).Valid() != wire.ErrICMPv6Short {
		t.Error("a 7-byte message is valid")
	}
}

// TestICMPv6EchoReplyAnswersEchoRequest: RFC 4443 §4.2, the reply carries
// the request's identifier, sequence number and data, back to its source.
func TestICMPv6EchoReplyAnswersEchoRequest(t *testing.T) {
	reqs := map[string][]byte{
		"ours":   echoRequest6(src6, dst6, 7, 9, "0123456789"),
		"ping":   kernelPacketNamed(t, "echo-request"),
		"padded": append(echoRequest6(src6, dst6, 1, 2, "odd"), 0, 0, 0, 0),
		// Extension headers in the request are not reflected.
		"with destination options": packet6(dst6, wire.ProtoICMPv6, echoRequest6(src6, dst6, 3, 4, "x")[40:], destOptions(1, 4, 0, 0, 0, 0)),
	}
	for name, req := range reqs {
		t.Run(name, func(t *testing.T) {
			rp := wire.IPv6(req)
			c := walk(t, rp)
			rm := wire.ICMPv6(c.Upper(rp).Data)
			out := make([]byte, 1500)
			n, err := wire.PutICMPv6EchoReply(out, rp, netip.Addr{}, 64)
			if err != nil {
				t.Fatal(err)
			}
			if n != wire.IPv6HeaderLen+len(rm) || n > len(req) {
				t.Fatalf("reply of %d bytes to a request of %d with a %d-byte message", n, len(req), len(rm))
			}
			ip, icmp := decodeICMPv6(t, out[:n])
			if !ip.SrcIP.Equal(net.IP(rp.DstAddr().AsSlice())) || !ip.DstIP.Equal(net.IP(rp.SrcAddr().AsSlice())) ||
				ip.HopLimit != 64 || ip.TrafficClass != rp.TrafficClass() || ip.NextHeader != layers.IPProtocolICMPv6 {
				t.Errorf("reply header %+v", ip)
			}
			if icmp.TypeCode != layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoReply, 0) || !bytes.Equal(icmp.Payload, rm[4:]) {
				t.Errorf("reply %v with % x, request had % x", icmp.TypeCode, icmp.Payload, rm[4:])
			}
		})
	}
}

func TestICMPv6EchoReplyRefusals(t *testing.T) {
	local := netip.MustParseAddr("fd00::2")
	bad := echoRequest6(src6, dst6, 1, 1, "x")
	bad[len(bad)-1] ^= 1
	reply := echoRequest6(src6, dst6, 1, 1, "x")
	reply[40] = wire.ICMPv6EchoReply
	wire.ICMPv6(reply[40:]).ComputeChecksum(src6, dst6)
	cases := []struct {
		name  string
		req   []byte
		local netip.Addr
		out   int
		want  error
	}{
		{"bad checksum", bad, local, 1500, wire.ErrICMPv6Checksum},
		{"not a request", reply, local, 1500, wire.ErrICMPv6NotEchoRequest},
		{"not ICMPv6", packet6(dst6, wire.ProtoTCP, tcpSegment6(dst6, "")), local, 1500, wire.ErrICMPv6NotEchoRequest},
		{"a fragment", packet6(dst6, wire.ProtoICMPv6, echoRequest6(src6, dst6, 1, 1, "x")[40:], fragmentHeader(0, true, 1)), local, 1500, wire.ErrICMPv6NotEchoRequest},
		{"from the unspecified address", echoRequest6([16]byte{}, dst6, 1, 1, "x"), local, 1500, wire.ErrICMPv6BadSource},
		{"from a multicast address", echoRequest6(mcast6, dst6, 1, 1, "x"), local, 1500, wire.ErrICMPv6BadSource},
		{"to multicast without a local address", echoRequest6(src6, mcast6, 1, 1, "x"), netip.Addr{}, 1500, wire.ErrICMPv6NoLocal},
		{"to multicast with an IPv4 local address", echoRequest6(src6, mcast6, 1, 1, "x"), netip.MustParseAddr("192.0.2.1"), 1500, wire.ErrICMPv6NoLocal},
		{"to multicast with a multicast local address", echoRequest6(src6, mcast6, 1, 1, "x"), netip.AddrFrom16(mcast6), 1500, wire.ErrICMPv6NoLocal},
		{"output too small", echoRequest6(src6, dst6, 1, 1, "x"), local, 48, wire.ErrICMPv6ShortBuffer},
		{"message too short", packet6(dst6, wire.ProtoICMPv6, []byte{128, 0, 0, 0}), local, 1500, wire.ErrICMPv6Short},
		{"not IPv6", make([]byte, 48), local, 1500, wire.ErrIPv6Version},
	}
	for _, c := range cases {
		if _, err := wire.PutICMPv6EchoReply(make([]byte, c.out), wire.IPv6(c.req), c.local, 64); err != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// To a multicast address, with a local unicast address: answered from it.
	out := make([]byte, 1500)
	n, err := wire.PutICMPv6EchoReply(out, wire.IPv6(echoRequest6(src6, mcast6, 5, 6, "all nodes")), local, 64)
	if err != nil {
		t.Fatal(err)
	}
	if ip, _ := decodeICMPv6(t, out[:n]); !ip.SrcIP.Equal(net.IP(local.AsSlice())) || !ip.DstIP.Equal(net.IP(src6[:])) {
		t.Errorf("reply to multicast from %v to %v, want from %v", ip.SrcIP, ip.DstIP, local)
	}
}

// TestICMPv6PacketTooBigQuotesAtMost1280Bytes: RFC 4443 §3.2 and §2.4(c),
// the error quotes as much of the invoking packet as fits in the minimum
// MTU, and carries the MTU.
func TestICMPv6PacketTooBigQuotesAtMost1280Bytes(t *testing.T) {
	for _, size := range []int{0, 1, 1232 - 40, 1232 - 39, 1460, 65000} {
		inv := packet6(dst6, wire.ProtoTCP, tcpSegment6(dst6, string(make([]byte, size))))
		inv = append(inv, 1, 2, 3) // link padding, not quoted
		out := make([]byte, 1500)
		n, err := wire.PutICMPv6PacketTooBig(out, dst6, 64, wire.IPv6(inv), 1280)
		if err != nil {
			t.Fatal(err)
		}
		quote := min(len(inv)-3, 1280-48)
		if n != 48+quote || n > wire.IPv6MinMTU {
			t.Errorf("invoking packet of %d bytes: error of %d, want %d", len(inv), n, 48+quote)
		}
		ip, icmp := decodeICMPv6(t, out[:n])
		if !ip.SrcIP.Equal(net.IP(dst6[:])) || !ip.DstIP.Equal(net.IP(src6[:])) || ip.HopLimit != 64 ||
			icmp.TypeCode != layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0) {
			t.Errorf("error header %+v %v", ip, icmp.TypeCode)
		}
		m := wire.ICMPv6(out[40:n])
		if m.MTU() != 1280 || !m.IsError() || !bytes.Equal(m.Body(), inv[:quote]) {
			t.Errorf("MTU %d, quote of %d bytes not the invoking packet's first %d", m.MTU(), len(m.Body()), quote)
		}
	}
	// A smaller output buffer quotes less, never overruns.
	inv := packet6(dst6, wire.ProtoTCP, tcpSegment6(dst6, string(make([]byte, 1400))))
	out := make([]byte, 100)
	if n, err := wire.PutICMPv6PacketTooBig(out, dst6, 64, wire.IPv6(inv), 1400); err != nil || n != 100 {
		t.Errorf("100-byte buffer: %d, %v", n, err)
	}
	if _, err := wire.PutICMPv6PacketTooBig(make([]byte, 47), dst6, 64, wire.IPv6(inv), 1400); err != wire.ErrICMPv6ShortBuffer {
		t.Errorf("47-byte buffer: %v", err)
	}
}

func TestICMPv6DestUnreachableAndParameterProblemDecodeWithGopacket(t *testing.T) {
	inv := packet6(dst6, wire.ProtoUDP, make([]byte, 16), destOptions(1, 4, 0, 0, 0, 0))
	c := walk(t, inv)
	out := make([]byte, 1280)
	n, err := wire.PutICMPv6ParameterProblem(out, dst6, 255, wire.IPv6(inv), c.Code, c.Pointer)
	if err != nil {
		t.Fatal(err)
	}
	ip, icmp := decodeICMPv6(t, out[:n])
	if icmp.TypeCode != layers.CreateICMPv6TypeCode(layers.ICMPv6TypeParameterProblem, layers.ICMPv6CodeUnrecognizedNextHeader) ||
		binary.BigEndian.Uint32(icmp.Payload) != 40 || ip.HopLimit != 255 || !bytes.Equal(icmp.Payload[4:], inv) {
		t.Errorf("parameter problem %v pointer %d", icmp.TypeCode, binary.BigEndian.Uint32(icmp.Payload))
	}
	if m := wire.ICMPv6(out[40:n]); m.Pointer() != 40 || m.Code() != wire.ICMPv6UnrecognizedNextHeader {
		t.Errorf("our view: pointer %d code %d", m.Pointer(), m.Code())
	}
	n, err = wire.PutICMPv6DestUnreachable(out, dst6, 64, wire.IPv6(inv), wire.ICMPv6PortUnreachable)
	if err != nil {
		t.Fatal(err)
	}
	_, icmp = decodeICMPv6(t, out[:n])
	if icmp.TypeCode != layers.CreateICMPv6TypeCode(layers.ICMPv6TypeDestinationUnreachable, layers.ICMPv6CodePortUnreachable) ||
		binary.BigEndian.Uint32(icmp.Payload) != 0 || !bytes.Equal(icmp.Payload[4:], inv) {
		t.Errorf("destination unreachable %v, unused word %#x", icmp.TypeCode, binary.BigEndian.Uint32(icmp.Payload))
	}
}

// TestICMPv6ErrorsFollowRFC4443Section2_4e: no error about an ICMPv6 error
// or a redirect, none about a packet to multicast but the two exceptions,
// none to a source that names no single node.
func TestICMPv6ErrorsFollowRFC4443Section2_4e(t *testing.T) {
	errMsg := func(typ uint8) []byte {
		m := make(wire.ICMPv6, 16)
		wire.PutICMPv6Header(m, typ, 0, 0)
		m.ComputeChecksum(src6, dst6)
		return m
	}
	optPkt := func(dst [16]byte, typ uint8) []byte {
		return packet6(dst, wire.ProtoTCP, tcpSegment6(dst, ""), destOptions(typ, 0, 1, 2, 0, 0))
	}
	pp := wire.ICMPv6ErrorFields{Src: dst6, HopLimit: 64, Type: wire.ICMPv6ParameterProblem, Code: wire.ICMPv6UnrecognizedOption, Param: 42}
	du := wire.ICMPv6ErrorFields{Src: dst6, HopLimit: 64, Type: wire.ICMPv6DestUnreachable, Code: wire.ICMPv6PortUnreachable}
	ptb := wire.ICMPv6ErrorFields{Src: dst6, HopLimit: 64, Type: wire.ICMPv6PacketTooBig, Param: 1280}
	cases := []struct {
		name string
		f    wire.ICMPv6ErrorFields
		inv  []byte
		want error
	}{
		{"about an echo request", du, echoRequest6(src6, dst6, 1, 1, "x"), nil},
		{"about a TCP segment", du, packet6(dst6, wire.ProtoTCP, tcpSegment6(dst6, "")), nil},
		{"about a destination unreachable", du, packet6(dst6, wire.ProtoICMPv6, errMsg(wire.ICMPv6DestUnreachable)), wire.ErrICMPv6ToError},
		{"about a parameter problem after extension headers", du,
			packet6(dst6, wire.ProtoICMPv6, errMsg(wire.ICMPv6ParameterProblem), hopByHop(1, 4, 0, 0, 0, 0), routingHeader(0, 0)), wire.ErrICMPv6ToError},
		{"about a redirect", du, packet6(dst6, wire.ProtoICMPv6, errMsg(wire.ICMPv6Redirect)), wire.ErrICMPv6ToError},
		{"about ICMPv6 whose header is missing", du, packet6(dst6, wire.ProtoICMPv6, nil), wire.ErrICMPv6ToError},
		{"about a later fragment of ICMPv6", du, packet6(dst6, wire.ProtoICMPv6, nil, fragmentHeader(9, false, 1)), nil},
		{"about a first fragment of an ICMPv6 error", du, packet6(dst6, wire.ProtoICMPv6, errMsg(1), fragmentHeader(0, true, 1)), wire.ErrICMPv6ToError},
		{"about a chain it cannot read through", du, packet6(dst6, wire.ProtoDestOpts, nil), nil},
		{"about a later fragment of ICMPv6 with data", du, packet6(dst6, wire.ProtoICMPv6, errMsg(1), fragmentHeader(9, false, 1)), nil},
		{"about a first fragment cut before the ICMPv6 header", du, packet6(dst6, wire.ProtoICMPv6, nil, fragmentHeader(0, true, 1)), nil},
		{"unreachable about a packet to multicast", du, packet6(mcast6, wire.ProtoTCP, tcpSegment6(mcast6, "")), wire.ErrICMPv6ToMulticast},
		{"packet too big about a packet to multicast", ptb, packet6(mcast6, wire.ProtoTCP, tcpSegment6(mcast6, "")), nil},
		{"code 2 for a 10 option about a packet to multicast", pp, optPkt(mcast6, 0x80), nil},
		{"code 2 for an 11 option about a packet to multicast", pp, optPkt(mcast6, 0xc0), wire.ErrICMPv6ToMulticast},
		{"code 2 for an 11 option about a packet to unicast", pp, optPkt(dst6, 0xc0), nil},
		{"code 2 pointing past the packet to multicast", wire.ICMPv6ErrorFields{Type: wire.ICMPv6ParameterProblem, Code: 2, Param: 1 << 20}, optPkt(mcast6, 0x80), wire.ErrICMPv6ToMulticast},
		{"code 0 about a packet to multicast", wire.ICMPv6ErrorFields{Type: wire.ICMPv6ParameterProblem, Param: 42}, optPkt(mcast6, 0x80), wire.ErrICMPv6ToMulticast},
		{"from the unspecified address", du, func() []byte { b := packet6(dst6, wire.ProtoTCP, nil); clear(b[8:24]); return b }(), wire.ErrICMPv6BadSource},
		{"from a multicast address", du, func() []byte { b := packet6(dst6, wire.ProtoTCP, nil); copy(b[8:24], mcast6[:]); return b }(), wire.ErrICMPv6BadSource},
		{"about a malformed packet", du, make([]byte, 39), wire.ErrIPv6Short},
	}
	for _, c := range cases {
		out := make([]byte, 1280)
		n, err := wire.PutICMPv6Error(out, c.f, wire.IPv6(c.inv))
		if err != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
			continue
		}
		if err != nil {
			if n != 0 || !bytes.Equal(out, make([]byte, 1280)) {
				t.Errorf("%s: refused, yet wrote %d bytes", c.name, n)
			}
			continue
		}
		if m := wire.ICMPv6(out[40:n]); m.Type() != c.f.Type || m.Code() != c.f.Code || binary.BigEndian.Uint32(m[4:]) != c.f.Param {
			t.Errorf("%s: type %d code %d word %d", c.name, m.Type(), m.Code(), binary.BigEndian.Uint32(m[4:]))
		}
	}
}

// TestICMPv6RecognisesNeighborDiscoveryAndMLD: the messages the kernel
// sends on a TUN device by itself, which the caller ignores and counts:
// Router Solicitation and MLDv2 reports as Linux wrote them, Neighbor
// Solicitation and Advertisement as gopacket writes them.
func TestICMPv6RecognisesNeighborDiscoveryAndMLD(t *testing.T) {
	msgs := map[string][]byte{}
	for _, name := range []string{"router-solicitation", "mldv2-report", "mldv2-report-two-records"} {
		p := wire.IPv6(kernelPacketNamed(t, name))
		msgs[name] = walk(t, p).Upper(p).Data
	}
	target := net.IP(dst6[:])
	for name, l := range map[string]gopacket.SerializableLayer{
		"neighbor solicitation":  &layers.ICMPv6NeighborSolicitation{TargetAddress: target},
		"neighbor advertisement": &layers.ICMPv6NeighborAdvertisement{TargetAddress: target, Flags: 0x60},
	} {
		typ := uint8(layers.ICMPv6TypeNeighborSolicitation)
		if _, ok := l.(*layers.ICMPv6NeighborAdvertisement); ok {
			typ = layers.ICMPv6TypeNeighborAdvertisement
		}
		ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: net.IP(src6[:]), DstIP: net.IP(mcast6[:])}
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
		icmp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ip, icmp, l); err != nil {
			t.Fatal(err)
		}
		p := wire.IPv6(buf.Bytes())
		m := wire.ICMPv6(walk(t, p).Upper(p).Data)
		if !m.ChecksumValid(p.Src(), p.Dst()) {
			t.Errorf("%s: checksum does not verify", name)
		}
		msgs[name] = m
	}
	for name, b := range msgs {
		if m := wire.ICMPv6(b); m.Valid() != nil || !m.IsNeighborDiscoveryOrMLD() || m.IsError() {
			t.Errorf("%s (type %d): not recognised", name, m.Type())
		}
	}
	for _, typ := range []uint8{wire.ICMPv6EchoRequest, wire.ICMPv6EchoReply, 130, 131, 134, wire.ICMPv6Redirect, wire.ICMPv6PacketTooBig} {
		if wire.ICMPv6([]byte{typ, 0, 0, 0, 0, 0, 0, 0}).IsNeighborDiscoveryOrMLD() {
			t.Errorf("type %d taken for one the kernel sends by itself", typ)
		}
	}
}
