package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"tunstack/wire"
)

// ipv6Seeds are real packets (what Linux wrote to a TUN device) and
// packets built to reach each rule of the walk.
func ipv6Seeds(f *testing.F) {
	for _, kp := range kernelPackets(f) {
		f.Add(kp.b)
	}
	seg := tcpSegment6(dst6, "seed")
	for _, exts := range [][]ext{
		{hopByHop(5, 2, 0, 0, 1, 0), destOptions(0x1e, 2, 1, 2, 1, 0), routingHeader(0, 0), fragmentHeader(0, false, 1)},
		{routingHeader(4, 1)},
		{fragmentHeader(0, true, 2)},
		{fragmentHeader(0, false, 3), fragmentHeader(10, false, 3)},
		{destOptions(0x80, 0, 1, 2, 0, 0)},
		{destOptions(0xc0, 0, 1, 2, 0, 0)},
		{destOptions(0x40, 0, 1, 2, 0, 0)},
		{destOptions(0, 0, 0, 0, 0, 0)},
		{destOptions(1, 4, 0, 0, 1, 0)},
		{destOptions(1, 4, 0, 0, 0, 0), hopByHop(1, 4, 0, 0, 0, 0)},
	} {
		f.Add(packet6(dst6, wire.ProtoTCP, seg, exts...))
		f.Add(packet6(mcast6, wire.ProtoTCP, seg, exts...))
	}
	f.Add(packet6(dst6, wire.ProtoUDP, []byte("udp")))
	f.Add(packet6(dst6, wire.ProtoNoNextHeader, nil))
	f.Add(packet6(dst6, wire.ProtoDestOpts, nil))
	f.Add(echoRequest6(src6, dst6, 1, 2, "echo"))
	f.Add(echoRequest6(src6, mcast6, 1, 2, "echo to all nodes"))
	f.Add([]byte{})
	f.Add(make([]byte, 40))
}

func FuzzIPv6Header(f *testing.F) {
	ipv6Seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p := wire.IPv6(data)
		if err := p.Valid(); err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(p.Payload()) != int(p.PayloadLen()) || len(p.Packet()) != wire.IPv6HeaderLen+len(p.Payload()) ||
			len(p.Packet()) > len(data) || p.FlowLabel() > 0xfffff {
			t.Fatalf("payload %d bytes, packet %d, Payload Length %d, flow label %#x", len(p.Payload()), len(p.Packet()), p.PayloadLen(), p.FlowLabel())
		}
		// What the accessors read, PutIPv6Header writes back identically.
		b := make([]byte, wire.IPv6HeaderLen)
		wire.PutIPv6Header(b, wire.IPv6Fields{Src: p.Src(), Dst: p.Dst(), NextHeader: p.NextHeader(), HopLimit: p.HopLimit(),
			TrafficClass: p.TrafficClass(), FlowLabel: p.FlowLabel()}, int(p.PayloadLen()))
		if !bytes.Equal(b, data[:wire.IPv6HeaderLen]) {
			t.Fatalf("rebuilt header\n% x\nfrom\n% x", b, data[:wire.IPv6HeaderLen])
		}
		if p.SrcAddr().As16() != p.Src() || p.DstAddr().As16() != p.Dst() {
			t.Fatal("netip addresses differ from the bytes")
		}
	})
}

func FuzzIPv6ExtensionHeaders(f *testing.F) {
	ipv6Seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p := wire.IPv6(data)
		c, err := p.WalkExtensionHeaders()
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) || c.Action != wire.IPv6Discard {
				t.Fatalf("error %v with action %v", err, c.Action)
			}
			return
		}
		end := wire.IPv6HeaderLen + int(p.PayloadLen())
		if c.ExtHeaders < 0 || c.ExtHeaders > wire.IPv6MaxExtHeaders {
			t.Fatalf("%d extension headers", c.ExtHeaders)
		}
		if c.Offset < wire.IPv6HeaderLen+8*c.ExtHeaders || c.Offset > end {
			t.Fatalf("upper layer at %d, outside [%d, %d]", c.Offset, wire.IPv6HeaderLen+8*c.ExtHeaders, end)
		}
		if c.ProtoField != 6 && (c.ProtoField < wire.IPv6HeaderLen || c.ProtoField+8 > c.Offset) || data[c.ProtoField] != c.Proto {
			t.Fatalf("Next Header field at %d (holding %d) for protocol %d at %d", c.ProtoField, data[c.ProtoField], c.Proto, c.Offset)
		}
		if (c.ProtoField == 6) != (c.ExtHeaders == 0) {
			t.Fatalf("Next Header field at %d after %d extension headers", c.ProtoField, c.ExtHeaders)
		}
		switch c.Action {
		case wire.IPv6Deliver:
			if c.Proto != wire.ProtoTCP && c.Proto != wire.ProtoICMPv6 && c.Proto != wire.ProtoNoNextHeader {
				t.Fatalf("delivered to protocol %d", c.Proto)
			}
			u := c.Upper(p)
			if len(u.Data) != end-c.Offset || u.Proto != c.Proto || u.Src != p.SrcAddr() || u.Dst != p.DstAddr() {
				t.Fatalf("upper %+v", u)
			}
		case wire.IPv6DropFragment:
			f := c.ProtoField
			if f < wire.IPv6HeaderLen || c.Offset != f+8 || binary.BigEndian.Uint16(data[f+2:])&0xfff9 == 0 {
				t.Fatalf("fragment at %d: % x", f, data[f:c.Offset])
			}
		case wire.IPv6Discard:
		case wire.IPv6ParameterProblem:
			if int(c.Pointer) >= end {
				t.Fatalf("pointer %d past the packet's %d bytes", c.Pointer, end)
			}
			switch c.Code {
			case wire.ICMPv6UnrecognizedNextHeader:
				if c.Pointer != uint32(c.ProtoField) || c.Offset > end {
					t.Fatalf("code 1 pointing at %d, the field is at %d", c.Pointer, c.ProtoField)
				}
			case wire.ICMPv6UnrecognizedOption:
				if data[c.Pointer]>>6 < 2 || int(c.Pointer) < c.Offset+2 || (c.Proto != wire.ProtoHopByHop && c.Proto != wire.ProtoDestOpts) {
					t.Fatalf("code 2 pointing at %d, option type %#x", c.Pointer, data[c.Pointer])
				}
			case wire.ICMPv6ErroneousHeaderField:
				if int(c.Pointer) < c.Offset || (c.Proto != wire.ProtoRouting && c.Proto != wire.ProtoFragment) {
					t.Fatalf("code 0 pointing at %d, outside the %d header at %d", c.Pointer, c.Proto, c.Offset)
				}
			default:
				t.Fatalf("code %d", c.Code)
			}
			// The error the walk asks for can be built, or is refused
			// for one of RFC 4443 §2.4(e)'s reasons.
			out := make([]byte, wire.IPv6MinMTU)
			n, err := wire.PutICMPv6ParameterProblem(out, p.Dst(), 64, p, c.Code, c.Pointer)
			if err == nil {
				checkICMPv6Error(t, out[:n], p)
			}
		default:
			t.Fatalf("action %v", c.Action)
		}
	})
}

// checkICMPv6Error checks an error we built about inv: at most 1280 bytes,
// a valid packet to inv's source that walks to a message with a valid
// checksum, quoting the start of inv.
func checkICMPv6Error(t *testing.T, b []byte, inv wire.IPv6) {
	t.Helper()
	if len(b) > wire.IPv6MinMTU {
		t.Fatalf("error of %d bytes", len(b))
	}
	e := wire.IPv6(b)
	c, err := e.WalkExtensionHeaders()
	if err != nil || c.Action != wire.IPv6Deliver || c.Proto != wire.ProtoICMPv6 || e.Dst() != inv.Src() {
		t.Fatalf("error packet walks to %+v, %v", c, err)
	}
	m := wire.ICMPv6(c.Upper(e).Data)
	if m.Valid() != nil || !m.IsError() || !m.ChecksumValid(e.Src(), e.Dst()) || !bytes.HasPrefix(inv.Packet(), m.Body()) {
		t.Fatalf("error message % x", m)
	}
}

func FuzzICMPv6(f *testing.F) {
	ipv6Seeds(f)
	local := netip.MustParseAddr("fd00::9")
	f.Fuzz(func(t *testing.T, data []byte) {
		// The message views on whatever follows a fixed header.
		if len(data) >= wire.IPv6HeaderLen {
			m := wire.ICMPv6(data[wire.IPv6HeaderLen:])
			if m.Valid() == nil {
				_ = m.Type() + m.Code() + uint8(m.Checksum()+m.Identifier()+m.Sequence()) + uint8(m.MTU()+m.Pointer())
				_ = m.IsError() || m.IsNeighborDiscoveryOrMLD() || m.ChecksumValid(src6, dst6)
				if len(m.Body()) != len(m)-wire.ICMPv6HeaderLen {
					t.Fatalf("body of %d bytes in a %d-byte message", len(m.Body()), len(m))
				}
			}
		}
		p := wire.IPv6(data)
		out := make([]byte, 1<<16+wire.IPv6HeaderLen)
		if n, err := wire.PutICMPv6EchoReply(out, p, local, 64); err == nil {
			if n > len(p.Packet()) {
				t.Fatalf("reply of %d bytes to a %d-byte request", n, len(p.Packet()))
			}
			r := wire.IPv6(out[:n])
			c, err := r.WalkExtensionHeaders()
			if err != nil || c.Action != wire.IPv6Deliver || c.Proto != wire.ProtoICMPv6 || c.ExtHeaders != 0 || r.Dst() != p.Src() {
				t.Fatalf("reply walks to %+v, %v", c, err)
			}
			m := wire.ICMPv6(c.Upper(r).Data)
			pc, _ := p.WalkExtensionHeaders()
			req := wire.ICMPv6(pc.Upper(p).Data)
			if m.Type() != wire.ICMPv6EchoReply || !m.ChecksumValid(r.Src(), r.Dst()) || !bytes.Equal(m[4:], req[4:]) {
				t.Fatalf("reply % x to request % x", m, req)
			}
		}
		for _, f := range []wire.ICMPv6ErrorFields{
			{Src: dst6, HopLimit: 64, Type: wire.ICMPv6PacketTooBig, Param: 1280},
			{Src: dst6, HopLimit: 64, Type: wire.ICMPv6DestUnreachable, Code: wire.ICMPv6PortUnreachable},
		} {
			if n, err := wire.PutICMPv6Error(out[:wire.IPv6MinMTU], f, p); err == nil {
				checkICMPv6Error(t, out[:n], p)
			}
		}
	})
}
