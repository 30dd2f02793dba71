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
