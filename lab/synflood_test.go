package lab

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"tunstack/wire"
)

// gopacket decodes the forged SYN independently of the wire package that
// built it, checksums included.
func TestPutSYNDecodesAsALinuxLikeSYNWithGoodChecksums(t *testing.T) {
	src := netip.MustParseAddrPort("198.19.3.4:4321")
	dst := netip.MustParseAddrPort("198.18.0.2:80")
	b := make([]byte, 64)
	n := PutSYN(b, src, dst, 0xdeadbeef, 12345, 77)
	if n != 60 {
		t.Fatalf("PutSYN wrote %d bytes, want 60", n)
	}
	pkt := gopacket.NewPacket(b[:n], layers.LayerTypeIPv4, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip.SrcIP.String() != "198.19.3.4" || ip.DstIP.String() != "198.18.0.2" || ip.Protocol != layers.IPProtocolTCP || ip.Length != 60 || ip.Id != 77 {
		t.Errorf("IPv4 header: src %v dst %v proto %v len %d id %d", ip.SrcIP, ip.DstIP, ip.Protocol, ip.Length, ip.Id)
	}
	if sum := wire.Fold(wire.Checksum(b[:wire.IPv4HeaderLen], 0)); sum != 0 {
		t.Errorf("IPv4 header checksum does not verify (folded sum %#04x)", sum)
	}
	if !wire.TCP(b[wire.IPv4HeaderLen:n]).ChecksumValid(src.Addr().As4(), dst.Addr().As4()) {
		t.Errorf("TCP checksum does not verify")
	}
	if tcp.SrcPort != 4321 || tcp.DstPort != 80 || tcp.Seq != 0xdeadbeef || tcp.Ack != 0 {
		t.Errorf("TCP ports %d->%d seq %#x ack %d", tcp.SrcPort, tcp.DstPort, tcp.Seq, tcp.Ack)
	}
	if !tcp.SYN || tcp.ACK || tcp.RST || tcp.FIN || tcp.PSH {
		t.Errorf("flags SYN=%v ACK=%v RST=%v FIN=%v PSH=%v, want only SYN", tcp.SYN, tcp.ACK, tcp.RST, tcp.FIN, tcp.PSH)
	}
	var o wire.TCPOptions
	if err := wire.ParseTCPOptions(wire.TCP(b[wire.IPv4HeaderLen:n]).Options(), &o); err != nil {
		t.Fatal(err)
	}
	if !o.HasMSS || o.MSS != 1460 || !o.SACKPermitted || !o.HasTS || o.TSVal != 12345 || o.TSEcr != 0 || !o.HasWScale || o.WScale != 7 {
		t.Errorf("options %+v, want MSS 1460, SACK-permitted, TSval 12345 TSecr 0, wscale 7", o)
	}
}

func TestSYNSourceNeverRepeatsAndStaysInsideThePrefix(t *testing.T) {
	for _, tt := range []struct {
		prefix string
		n      uint64
	}{
		{"198.19.0.0/16", 70000}, // past the 65534 hosts: the second port begins
		{"10.1.2.0/30", 1000},    // two hosts, so the port turns every other SYN
	} {
		p := netip.MustParsePrefix(tt.prefix)
		network := p.Addr()
		bcast := p.Addr().As4()
		for i := range 4 {
			bcast[i] |= ^byte(0) >> min(8, max(0, p.Bits()-8*i))
		}
		seen := make(map[netip.AddrPort]bool, tt.n)
		for i := range tt.n {
			s := SYNSource(p, i)
			if !p.Contains(s.Addr()) || s.Addr() == network || s.Addr() == netip.AddrFrom4(bcast) || s.Port() < 1024 {
				t.Fatalf("%s: source %d is %s: outside the prefix, its network or broadcast address, or a port below 1024", p, i, s)
			}
			if seen[s] {
				t.Fatalf("%s: source %d (%s) repeats an earlier one", p, i, s)
			}
			seen[s] = true
		}
	}
}

// The IPv6 SYN: gopacket decodes it, its checksum verifies over the IPv6
// pseudo-header, and its MSS is a 1500-byte link's over IPv6.
func TestPutSYNOverIPv6(t *testing.T) {
	src := netip.MustParseAddrPort("[fd00:7475:6e73::1:4]:4321")
	dst := netip.MustParseAddrPort("[fd00:7475:6e73::2]:80")
	b := make([]byte, 80)
	n := PutSYN(b, src, dst, 0xdeadbeef, 12345, 77)
	if n != 80 {
		t.Fatalf("PutSYN wrote %d bytes, want 80", n)
	}
	pkt := gopacket.NewPacket(b[:n], layers.LayerTypeIPv6, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	tcp := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip.SrcIP.String() != "fd00:7475:6e73::1:4" || ip.DstIP.String() != "fd00:7475:6e73::2" || ip.NextHeader != layers.IPProtocolTCP || ip.Length != 40 || ip.HopLimit != 64 {
		t.Errorf("IPv6 header: src %v dst %v next %v len %d hop limit %d", ip.SrcIP, ip.DstIP, ip.NextHeader, ip.Length, ip.HopLimit)
	}
	seg := wire.TCP(b[wire.IPv6HeaderLen:n])
	if !seg.ChecksumValid6(src.Addr().As16(), dst.Addr().As16()) {
		t.Errorf("TCP checksum does not verify over the IPv6 pseudo-header")
	}
	if !tcp.SYN || tcp.ACK || tcp.SrcPort != 4321 || tcp.DstPort != 80 || tcp.Seq != 0xdeadbeef {
		t.Errorf("TCP ports %d->%d seq %#x SYN=%v ACK=%v", tcp.SrcPort, tcp.DstPort, tcp.Seq, tcp.SYN, tcp.ACK)
	}
	var o wire.TCPOptions
	if err := wire.ParseTCPOptions(seg.Options(), &o); err != nil {
		t.Fatal(err)
	}
	if !o.HasMSS || o.MSS != 1440 || !o.SACKPermitted || !o.HasTS || !o.HasWScale {
		t.Errorf("options %+v, want MSS 1440, SACK-permitted, timestamps, wscale", o)
	}
	if m := PutSYN(b, src, netip.MustParseAddrPort("198.18.0.2:80"), 1, 2, 3); m != 0 {
		t.Errorf("PutSYN from IPv6 to IPv4 wrote %d bytes, want 0", m)
	}
}

func TestSYNSourceOverIPv6StaysInsideThePrefix(t *testing.T) {
	p := netip.MustParsePrefix("fd00:7475:6e73::1:0/112")
	ones := netip.MustParseAddr("fd00:7475:6e73::1:ffff")
	seen := map[netip.AddrPort]bool{}
	for i := range uint64(70000) { // past the 65534 hosts: the second port begins
		s := SYNSource(p, i)
		if !p.Contains(s.Addr()) || s.Addr() == p.Addr() || s.Addr() == ones || s.Port() < 1024 {
			t.Fatalf("source %d is %s: outside %s, its all-zeros or all-ones address, or a port below 1024", i, s, p)
		}
		if seen[s] {
			t.Fatalf("source %d (%s) repeats an earlier one", i, s)
		}
		seen[s] = true
	}
	if SYNSource(p, 0).Port() != 1024 || SYNSource(p, 65534).Port() != 1025 {
		t.Errorf("sources 0 and 65534 have ports %d and %d, want 1024 and 1025", SYNSource(p, 0).Port(), SYNSource(p, 65534).Port())
	}
	for _, bad := range []string{"fd00::/64", "fd00::/127", "198.18.0.0/31"} {
		if err := checkSYNSources(netip.MustParseAddr("fd00::2"), netip.MustParsePrefix(bad)); err == nil {
			t.Errorf("checkSYNSources(fd00::2, %s) accepted it", bad)
		}
	}
}
