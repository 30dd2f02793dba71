package netif

import (
	"bytes"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"tunstack/wire"
)

// echoRequest builds an IPv4 ICMP packet with gopacket, an encoder
// independent of ours.
func echoRequest(t *testing.T, typeCode layers.ICMPv4TypeCode, dst net.IP, payload []byte, mutate func(*layers.IPv4)) []byte {
	t.Helper()
	ip := &layers.IPv4{
		Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, Id: 0x1234, TOS: 0x10,
		SrcIP: net.IPv4(198, 18, 0, 1), DstIP: dst,
	}
	if mutate != nil {
		mutate(ip)
	}
	icmp := &layers.ICMPv4{TypeCode: typeCode, Id: 0xbeef, Seq: 7}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ip, icmp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var stackAddr = net.IPv4(198, 18, 0, 2)

func TestEchoReplyAnswersEchoRequestWithSwappedAddressesAndSameData(t *testing.T) {
	payload := []byte("0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ")
	req := echoRequest(t, layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), stackAddr, payload, nil)
	out := make([]byte, 1500)
	n, ok := EchoReply(wire.IPv4(req), out)
	if !ok {
		t.Fatal("EchoReply refused a valid echo request")
	}
	if n != len(req) {
		t.Fatalf("reply length %d, want %d (same as the request)", n, len(req))
	}
	if err := wire.IPv4(out[:n]).Valid(); err != nil {
		t.Fatalf("reply IPv4 header invalid: %v", err)
	}
	pkt := gopacket.NewPacket(out[:n], layers.LayerTypeIPv4, gopacket.Default)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	icmp, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip == nil || icmp == nil {
		t.Fatalf("gopacket could not decode the reply: %v", pkt)
	}
	if !ip.SrcIP.Equal(stackAddr) || !ip.DstIP.Equal(net.IPv4(198, 18, 0, 1)) {
		t.Errorf("reply %v -> %v, want 198.18.0.2 -> 198.18.0.1", ip.SrcIP, ip.DstIP)
	}
	if ip.Protocol != layers.IPProtocolICMPv4 || ip.TTL != echoReplyTTL {
		t.Errorf("reply protocol %v TTL %d", ip.Protocol, ip.TTL)
	}
	if icmp.TypeCode.Type() != layers.ICMPv4TypeEchoReply || icmp.TypeCode.Code() != 0 {
		t.Errorf("reply type %v, want echo reply", icmp.TypeCode)
	}
	if icmp.Id != 0xbeef || icmp.Seq != 7 || !bytes.Equal(icmp.Payload, payload) {
		t.Errorf("reply id %#x seq %d payload %q; want the request's", icmp.Id, icmp.Seq, icmp.Payload)
	}
	if !wire.ICMPv4(out[wire.IPv4HeaderLen:n]).Valid() {
		t.Error("reply ICMP checksum invalid")
	}
}

func TestEchoReplyRefusesEverythingButAValidUnicastEchoRequest(t *testing.T) {
	echo := layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0)
	valid := echoRequest(t, echo, stackAddr, []byte("ping"), nil)
	badICMPChecksum := bytes.Clone(valid)
	badICMPChecksum[len(badICMPChecksum)-1] ^= 0xff
	badIPChecksum := bytes.Clone(valid)
	badIPChecksum[8]-- // TTL changed, header checksum not
	cases := []struct {
		name string
		pkt  []byte
	}{
		{"echo reply", echoRequest(t, layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0), stackAddr, nil, nil)},
		{"destination unreachable", echoRequest(t, layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, 3), stackAddr, nil, nil)},
		{"echo request with nonzero code", echoRequest(t, layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 1), stackAddr, nil, nil)},
		{"bad ICMP checksum", badICMPChecksum},
		{"bad IPv4 checksum", badIPChecksum},
		{"truncated", valid[:len(valid)-2]},
		{"fragment", echoRequest(t, echo, stackAddr, []byte("ping"), func(ip *layers.IPv4) { ip.Flags = layers.IPv4MoreFragments })},
		{"multicast destination", echoRequest(t, echo, net.IPv4(224, 0, 0, 1), nil, nil)},
		{"broadcast destination", echoRequest(t, echo, net.IPv4(255, 255, 255, 255), nil, nil)},
		{"not ICMP", echoRequest(t, echo, stackAddr, nil, func(ip *layers.IPv4) { ip.Protocol = layers.IPProtocolUDP })},
		{"empty", nil},
	}
	out := make([]byte, 1500)
	for _, c := range cases {
		if n, ok := EchoReply(wire.IPv4(c.pkt), out); ok {
			t.Errorf("%s: EchoReply answered with %d bytes, want refusal", c.name, n)
		}
	}
	if _, ok := EchoReply(wire.IPv4(valid), out[:len(valid)-1]); ok {
		t.Error("EchoReply wrote into a buffer too small for the reply")
	}
	if _, ok := EchoReply(wire.IPv4(valid), out); !ok {
		t.Error("EchoReply refused the valid request the cases were built from")
	}
}

func TestEchoReplyDoesNotAllocate(t *testing.T) {
	req := echoRequest(t, layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), stackAddr, make([]byte, 56), nil)
	out := make([]byte, 1500)
	if a := testing.AllocsPerRun(100, func() { EchoReply(wire.IPv4(req), out) }); a != 0 {
		t.Fatalf("EchoReply allocates %.1f times per call, want 0", a)
	}
}
