package wire_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"tunstack/wire"
)

// ipv4Real are IPv4 packets as Linux writes them, checksums zeroed
// (ipv4Seed fills in the header's and ICMP's): a SYN with Linux's options, its SYN-ACK, a ping
// with Linux's 56-byte payload, an IGMPv2 report with the Router Alert
// option, and the first fragment of a large UDP datagram.
var ipv4Real = []string{
	// SYN 198.18.0.1:45678 -> 198.18.0.2:80: MSS 1460, SACK permitted,
	// timestamps, window scale 7; DF, TTL 64.
	"4500003c1c46400040060000c6120001c6120002b26e00508f1d2c3b00000000a002faf000000000020405b40402080a0001e2400000000001030307",
	// SYN-ACK back.
	"4500003c0000400040060000c6120002c61200010050b26e5a3f02118f1d2c3ca012ffcb00000000020405b40402080a77a1c0e80001e24001030307",
	// Echo Request, id 0x1f2e, sequence 1, timestamp and pattern payload.
	"45000054a1b2400040010000c6120001c6120002080000001f2e00011c4e5f6700000000d8ec0e0000000000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637",
	// IGMPv2 membership report for 239.1.2.3, Router Alert, TTL 1.
	"46c000200000400001020000c6120001ef0102039404000016000000ef010203",
	// First fragment (More Fragments) of a UDP datagram, cut to the UDP
	// header and 8 bytes.
	"4500002422b2200040110000c6120001c61200023039003505c800000000000000000000",
}

func ipv4Seed(tb testing.TB, h string) []byte {
	b, err := hex.DecodeString(h)
	if err != nil {
		tb.Fatal(err)
	}
	p := wire.IPv4(b)
	hl := p.HeaderLen()
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], wire.Fold(wire.Checksum(b[:hl], 0)))
	if p.Protocol() == wire.ProtoICMP {
		wire.ICMPv4(b[hl:]).SetChecksum()
	}
	return b
}

// ipv4Seeds adds the real packets, each also cut short, and an ICMP
// Fragmentation Needed that quotes the SYN.
func ipv4Seeds(f *testing.F) [][]byte {
	var out [][]byte
	for _, h := range ipv4Real {
		b := ipv4Seed(f, h)
		out = append(out, b, b[:len(b)-1], b[:wire.IPv4HeaderLen])
	}
	syn := ipv4Seed(f, ipv4Real[0])
	icmp := append([]byte{wire.ICMPDestUnreachable, 4, 0, 0, 0, 0, 0x05, 0x00}, syn[:wire.IPv4HeaderLen+8]...)
	wire.ICMPv4(icmp).SetChecksum()
	pkt := make([]byte, wire.IPv4HeaderLen+len(icmp))
	wire.PutIPv4Header(pkt, wire.IPv4Fields{Src: [4]byte{198, 18, 0, 254}, Dst: [4]byte{198, 18, 0, 1}, Protocol: wire.ProtoICMP, TTL: 64}, len(icmp))
	copy(pkt[wire.IPv4HeaderLen:], icmp)
	out = append(out, pkt, []byte{}, []byte{0x45})
	for _, b := range out {
		f.Add(b)
	}
	return out
}

func TestIPv4SeedsAreValidPackets(t *testing.T) {
	for i, h := range ipv4Real {
		if err := wire.IPv4(ipv4Seed(t, h)).Valid(); err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
	}
}

// FuzzIPv4Header: Valid accepts only a packet whose header the accessors
// can read in full, and what they read of an option-less header
// PutIPv4Header writes back identically; QuotedUpper reads the same
// addresses and upper-layer data from any packet it accepts.
func FuzzIPv4Header(f *testing.F) {
	ipv4Seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if u, ok := wire.QuotedUpper(data); ok && data[0]>>4 == 4 {
			hl := wire.IPv4(data).HeaderLen()
			if u.Src.As4() != [4]byte(data[12:16]) || u.Dst.As4() != [4]byte(data[16:20]) || u.Proto != data[9] ||
				len(u.Data) < 8 || !bytes.Equal(u.Data, data[hl:]) {
				t.Fatalf("quote read as %+v from % x", u, data)
			}
		}
		p := wire.IPv4(data)
		if err := p.Valid(); err != nil {
			return
		}
		hl, tl := p.HeaderLen(), int(p.TotalLen())
		if hl < wire.IPv4HeaderLen || hl > 60 || tl > len(data) || len(p.Payload()) != tl-hl {
			t.Fatalf("header %d bytes, total %d, payload %d, of %d bytes", hl, tl, len(p.Payload()), len(data))
		}
		if p.IsFragment() != (p.FlagsFrag()&0x3fff != 0) {
			t.Fatalf("IsFragment %v with flags and offset %#x", p.IsFragment(), p.FlagsFrag())
		}
		if p.SrcAddr().As4() != p.Src() || p.DstAddr().As4() != p.Dst() {
			t.Fatal("netip addresses differ from the bytes")
		}
		if hl != wire.IPv4HeaderLen || p.FlagsFrag()&^0x4000 != 0 {
			return // options, fragments and the reserved bit PutIPv4Header does not write
		}
		b := make([]byte, wire.IPv4HeaderLen)
		wire.PutIPv4Header(b, wire.IPv4Fields{Src: p.Src(), Dst: p.Dst(), Protocol: p.Protocol(), TTL: p.TTL(),
			ID: p.ID(), TOS: p.TOS(), DontFrag: p.FlagsFrag() != 0}, tl-hl)
		// The checksum may differ in its representation of zero only
		// (0x0000 and 0xffff are the same ones' complement number).
		if !bytes.Equal(b[:10], data[:10]) || !bytes.Equal(b[12:20], data[12:20]) {
			t.Fatalf("rebuilt header\n% x\nfrom\n% x", b, data[:wire.IPv4HeaderLen])
		}
		if wire.Fold(wire.Checksum(b, 0)) != 0 {
			t.Fatalf("rebuilt header % x fails its checksum", b)
		}
	})
}

// FuzzICMPv4: SetChecksum makes any message of at least 8 bytes Valid and
// changes nothing but the checksum, which for a message already Valid
// stays the same number; the quote of an error parses without panicking.
func FuzzICMPv4(f *testing.F) {
	for _, b := range ipv4Seeds(f) {
		if p := wire.IPv4(b); p.Valid() == nil && p.Protocol() == wire.ProtoICMP {
			f.Add(p.Payload())
		}
	}
	f.Add([]byte{wire.ICMPEchoReply, 0, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		m := wire.ICMPv4(data)
		if m.Valid() && m.Type() == wire.ICMPDestUnreachable {
			wire.QuotedUpper(data[8:])
		}
		if len(data) < 4 {
			return
		}
		was := m.Valid()
		c := wire.ICMPv4(bytes.Clone(data))
		c.SetChecksum()
		if c.Valid() != (len(c) >= 8) {
			t.Fatalf("after SetChecksum Valid is %v for %d bytes", c.Valid(), len(c))
		}
		if c.Type() != m.Type() || c.Code() != m.Code() || !bytes.Equal(c[4:], data[4:]) {
			t.Fatal("SetChecksum changed more than the checksum")
		}
		old, now := binary.BigEndian.Uint16(data[2:]), binary.BigEndian.Uint16(c[2:])
		if was && old != now && old^now != 0xffff {
			t.Fatalf("a valid checksum %#04x recomputed as %#04x", old, now)
		}
	})
}
