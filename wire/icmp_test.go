package wire_test

import (
	"bytes"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"tunstack/wire"
)

// udpDatagram4 is an IPv4 packet from srcAddr to dstAddr carrying a UDP
// header and n bytes of data (the UDP checksum is left zero, which IPv4
// allows); tail bytes past the Total Length follow, as a link's padding.
func udpDatagram4(n, tail int) []byte {
	p := make([]byte, wire.IPv4HeaderLen+8+n, wire.IPv4HeaderLen+8+n+tail)
	wire.PutIPv4Header(p, wire.IPv4Fields{Src: srcAddr, Dst: dstAddr, Protocol: wire.ProtoUDP, TTL: 64, ID: 77}, 8+n)
	u := p[wire.IPv4HeaderLen:]
	u[0], u[1], u[2], u[3] = 0x9c, 0x40, 0, 53 // ports 40000 -> 53
	u[4], u[5] = byte((8+n)>>8), byte(8+n)
	for i := range n {
		u[8+i] = byte(i)
	}
	for range tail {
		p = append(p, 0xee)
	}
	return p
}

// TestICMPv4DestUnreachableDecodesWithGopacket: the error goes from the
// given source to the invoking datagram's source with the TTL given, and
// gopacket reads a Destination Unreachable of the code given, its unused
// word zero, its checksum right, quoting the invoking datagram up to its
// Total Length (not the link's padding past it) and within 576 bytes.
func TestICMPv4DestUnreachableDecodesWithGopacket(t *testing.T) {
	for _, tc := range []struct {
		name      string
		data, pad int
		wantQuote int
	}{
		{"small datagram quoted whole, padding left out", 12, 6, wire.IPv4HeaderLen + 8 + 12},
		{"large datagram cut to keep the error within 576 bytes", 1000, 0, 576 - wire.IPv4HeaderLen - wire.ICMPv4HeaderLen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := udpDatagram4(tc.data, tc.pad)
			out := make([]byte, 1500)
			from := [4]byte{203, 0, 113, 9}
			n, err := wire.PutICMPv4DestUnreachable(out, from, 61, wire.IPv4(inv), wire.ICMPPortUnreachable)
			if err != nil {
				t.Fatal(err)
			}
			if want := wire.IPv4HeaderLen + wire.ICMPv4HeaderLen + tc.wantQuote; n != want || n > 576 {
				t.Fatalf("error of %d bytes, want %d (at most 576)", n, want)
			}
			pkt := gopacket.NewPacket(out[:n], layers.LayerTypeIPv4, gopacket.DecodeOptions{})
			ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			icmp, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			if ip == nil || icmp == nil {
				t.Fatalf("gopacket found no IPv4 and ICMPv4 layers in % x", out[:n])
			}
			if int(ip.Length) != n || ip.TTL != 61 || ip.Protocol != layers.IPProtocolICMPv4 ||
				!bytes.Equal(ip.SrcIP, from[:]) || !bytes.Equal(ip.DstIP, srcAddr[:]) {
				t.Errorf("IPv4 header: length %d of %d, TTL %d, protocol %v, %v -> %v", ip.Length, n, ip.TTL, ip.Protocol, ip.SrcIP, ip.DstIP)
			}
			if icmp.TypeCode != layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort) ||
				icmp.Id != 0 || icmp.Seq != 0 {
				t.Errorf("ICMP %v, unused word %d %d", icmp.TypeCode, icmp.Id, icmp.Seq)
			}
			if !bytes.Equal(icmp.Payload, inv[:tc.wantQuote]) {
				t.Errorf("quote of %d bytes, want the first %d of the invoking datagram", len(icmp.Payload), tc.wantQuote)
			}
			if !wire.ICMPv4(out[wire.IPv4HeaderLen:n]).Valid() {
				t.Error("our view finds the ICMP checksum bad")
			}
			re := &layers.ICMPv4{TypeCode: icmp.TypeCode, Id: icmp.Id, Seq: icmp.Seq}
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, re, gopacket.Payload(icmp.Payload)); err != nil {
				t.Fatal(err)
			}
			if re.Checksum != icmp.Checksum {
				t.Errorf("ICMP checksum %#x, gopacket computes %#x", icmp.Checksum, re.Checksum)
			}
		})
	}
}

// TestICMPv4DestUnreachableRefusals: an invoking packet shorter than an
// IPv4 header, or an out that cannot hold the whole error, writes nothing.
func TestICMPv4DestUnreachableRefusals(t *testing.T) {
	inv := udpDatagram4(12, 0)
	out := make([]byte, len(inv)+wire.IPv4HeaderLen+wire.ICMPv4HeaderLen)
	if _, err := wire.PutICMPv4DestUnreachable(out, dstAddr, 64, wire.IPv4(inv[:wire.IPv4HeaderLen-1]), wire.ICMPHostUnreachable); err != wire.ErrMalformed {
		t.Errorf("19-byte invoking packet: %v, want ErrMalformed", err)
	}
	short := out[:len(out)-1]
	clear(out)
	if n, err := wire.PutICMPv4DestUnreachable(short, dstAddr, 64, wire.IPv4(inv), wire.ICMPHostUnreachable); n != 0 || err != wire.ErrICMPShortBuffer {
		t.Errorf("buffer one byte short: %d, %v, want ErrICMPShortBuffer", n, err)
	}
	if !bytes.Equal(out, make([]byte, len(out))) {
		t.Error("a refused error wrote into out")
	}
	if n, err := wire.PutICMPv4DestUnreachable(out, dstAddr, 64, wire.IPv4(inv), wire.ICMPHostUnreachable); n != len(out) || err != nil {
		t.Errorf("buffer of exactly the error's size: %d, %v", n, err)
	}
}
