package bench

import (
	"context"
	"io"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tunstack/netif"
	"tunstack/stack"
	"tunstack/wire"
)

// tcpPacket builds an IPv4 packet holding a TCP segment with optLen bytes
// of (zero) options and payloadLen bytes of payload.
func tcpPacket(flags uint8, optLen, payloadLen int) []byte {
	tcpLen := wire.TCPHeaderLen + optLen + payloadLen
	b := make([]byte, wire.IPv4HeaderLen+tcpLen)
	wire.PutIPv4Header(b, wire.IPv4Fields{Src: [4]byte{198, 18, 0, 2}, Dst: [4]byte{198, 18, 0, 1}, Protocol: wire.ProtoTCP, TTL: 64}, tcpLen)
	wire.PutTCPHeader(b[wire.IPv4HeaderLen:], wire.TCPFields{SrcPort: 5001, DstPort: 40000, Seq: 1, Ack: 2, Flags: flags, Window: 1000}, optLen)
	return b
}

// tcpPacket6 is tcpPacket over IPv6, TCP right after the fixed header.
func tcpPacket6(flags uint8, optLen, payloadLen int) []byte {
	tcpLen := wire.TCPHeaderLen + optLen + payloadLen
	b := make([]byte, wire.IPv6HeaderLen+tcpLen)
	wire.PutIPv6Header(b, wire.IPv6Fields{Src: serverAddr6.As16(), Dst: peerAddr6.As16(), NextHeader: wire.ProtoTCP, HopLimit: 64}, tcpLen)
	wire.PutTCPHeader(b[wire.IPv6HeaderLen:], wire.TCPFields{SrcPort: 5001, DstPort: 40000, Seq: 1, Ack: 2, Flags: flags, Window: 1000}, optLen)
	return b
}

func TestClassifyTellsPureACKsFromDataAndControl(t *testing.T) {
	ack, psh := wire.FlagACK, wire.FlagPSH
	fragment := tcpPacket(ack, 0, 100)
	fragment[6] = 0x20 // more fragments
	udp := tcpPacket(ack, 0, 0)
	udp[9] = wire.ProtoUDP
	badOffset := tcpPacket(ack, 0, 0)
	badOffset[wire.IPv4HeaderLen+12] = 0xf0 // 60-byte header in a 20-byte segment
	ipv6HopByHop := make([]byte, 60)
	ipv6HopByHop[0] = 0x60
	ipv6Lying := tcpPacket6(ack, 0, 0)
	ipv6Lying[5] = 200 // Payload Length past the packet
	ipv6ICMP := tcpPacket6(ack, 0, 0)
	ipv6ICMP[6] = wire.ProtoICMPv6
	cases := []struct {
		name string
		pkt  []byte
		want segmentKind
	}{
		{"pure ACK", tcpPacket(ack, 0, 0), segPureAck},
		{"pure ACK with timestamps", tcpPacket(ack, 12, 0), segPureAck},
		{"pure ACK with SACK blocks", tcpPacket(ack, 40, 0), segPureAck},
		{"window update with ECE", tcpPacket(ack|wire.FlagECE, 0, 0), segPureAck},
		{"data", tcpPacket(ack|psh, 12, 1448), segData},
		{"one byte of data", tcpPacket(ack, 0, 1), segData},
		{"data with FIN", tcpPacket(ack|wire.FlagFIN, 0, 10), segData},
		{"SYN", tcpPacket(wire.FlagSYN, 20, 0), segOther},
		{"SYN-ACK", tcpPacket(wire.FlagSYN|ack, 20, 0), segOther},
		{"FIN-ACK", tcpPacket(wire.FlagFIN|ack, 0, 0), segOther},
		{"RST-ACK", tcpPacket(wire.FlagRST|ack, 0, 0), segOther},
		{"no ACK flag", tcpPacket(0, 0, 0), segOther},
		{"UDP", udp, segOther},
		{"fragment", fragment, segOther},
		{"data offset past the segment", badOffset, segOther},
		{"truncated", tcpPacket(ack, 0, 100)[:30], segOther},
		{"IPv6 pure ACK", tcpPacket6(ack, 12, 0), segPureAck},
		{"IPv6 data", tcpPacket6(ack|psh, 12, 1428), segData},
		{"IPv6 SYN-ACK", tcpPacket6(wire.FlagSYN|ack, 20, 0), segOther},
		{"IPv6 behind a hop-by-hop header", ipv6HopByHop, segOther},
		{"IPv6 Payload Length past the packet", ipv6Lying, segOther},
		{"ICMPv6", ipv6ICMP, segOther},
		{"IPv6 truncated", tcpPacket6(ack, 0, 0)[:50], segOther},
		{"empty", nil, segOther},
	}
	for _, c := range cases {
		if got := classify(c.pkt); got != c.want {
			t.Errorf("%s: kind %d, want %d", c.name, got, c.want)
		}
	}
}

func TestCountingLinkCountsWrittenACKsAndReadData(t *testing.T) {
	stackEnd, peerEnd := netif.NewPipe(1500)
	defer stackEnd.Close()
	cl := &countingLink{Link: stackEnd}
	out := [][]byte{
		tcpPacket(wire.FlagACK, 12, 0), tcpPacket(wire.FlagACK, 12, 0),
		tcpPacket(wire.FlagACK|wire.FlagPSH, 12, 500), tcpPacket(wire.FlagFIN|wire.FlagACK, 12, 0),
		tcpPacket(wire.FlagACK, 0, 0),
	}
	if n, err := cl.WritePackets(out); n != len(out) || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	in := [][]byte{
		tcpPacket(wire.FlagACK, 12, 1448), tcpPacket(wire.FlagACK, 12, 1448), tcpPacket(wire.FlagACK, 12, 0),
		tcpPacket(wire.FlagSYN, 20, 0), tcpPacket(wire.FlagACK|wire.FlagPSH, 12, 7),
	}
	if _, err := peerEnd.WritePackets(in); err != nil {
		t.Fatal(err)
	}
	bufs, sizes := [][]byte{make([]byte, 1500), make([]byte, 1500), make([]byte, 1500)}, make([]int, 3)
	read := 0
	for read < len(in) {
		n, err := cl.ReadPackets(bufs, sizes)
		if err != nil {
			t.Fatal(err)
		}
		read += n
	}
	want := segCounts{pureAcksOut: 3, dataSegsIn: 3}
	if got := cl.counts(); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	before := cl.counts()
	cl.WritePackets([][]byte{tcpPacket(wire.FlagACK, 0, 0)})
	if d := cl.counts().sub(before); d != (segCounts{pureAcksOut: 1}) {
		t.Errorf("difference over one more ACK: %+v", d)
	}
	// Packets a closed link refuses were not sent and do not count.
	peerEnd.Close()
	cl.WritePackets([][]byte{tcpPacket(wire.FlagACK, 0, 0)})
	if d := cl.counts().sub(before); d.pureAcksOut != 1 {
		t.Errorf("an ACK the closed link refused was counted: %+v", d)
	}
}

// TestCountingLinkSeesEveryACKOfARealTransfer puts tunstack on a counting
// link over a pipe and sends it 2 MiB from a second tunstack. Once both are
// closed, every packet the receiver wrote is accounted for: the pure ACKs
// the wrapper counted plus the control segments an observer on the pipe
// saw (the SYN-ACK, and any FIN or RST), nothing else, since the receiver
// sends no data. The data segments it read carry the 2 MiB, so there are
// at least 2 MiB / MSS of them.
func TestCountingLinkSeesEveryACKOfARealTransfer(t *testing.T) {
	const total = 2 << 20
	rcvEnd, sndEnd := netif.NewPipe(1500)
	var ctlOut atomic.Uint64
	rcvEnd.SetDrop(func(pkt []byte) bool {
		if len(pkt) < wire.IPv4HeaderLen+wire.TCPHeaderLen {
			return false
		}
		if f := pkt[wire.IPv4HeaderLen+13]; f&(wire.FlagSYN|wire.FlagFIN|wire.FlagRST) != 0 {
			ctlOut.Add(1)
		}
		return false
	})
	cl := &countingLink{Link: rcvEnd}
	rcv, err := stack.New(cl, stack.Config{Addr: netip.MustParseAddr("198.18.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	snd, err := stack.New(sndEnd, stack.Config{Addr: netip.MustParseAddr("198.18.0.1")})
	if err != nil {
		rcv.Close()
		t.Fatal(err)
	}
	ln, err := rcv.Listen("198.18.0.2:5001", 4)
	if err != nil {
		t.Fatal(err)
	}
	var got int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		got, _ = io.Copy(io.Discard, c)
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := snd.Dial(ctx, "tcp4", "198.18.0.2:5001")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(make([]byte, total)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	wg.Wait()
	snd.Close()
	rcv.Close()
	if got != total {
		t.Fatalf("receiver read %d bytes, want %d", got, total)
	}
	n := cl.counts()
	written := rcvEnd.Stats().WrittenPackets
	if n.pureAcksOut == 0 || n.pureAcksOut+ctlOut.Load() != written {
		t.Errorf("receiver wrote %d packets: %d pure ACKs counted + %d control segments seen", written, n.pureAcksOut, ctlOut.Load())
	}
	if minSegs := uint64(total / 1460); n.dataSegsIn < minSegs || n.dataSegsIn > sndEnd.Stats().ReadPackets {
		t.Errorf("%d data segments read, want between %d and the %d packets the receiver read", n.dataSegsIn, minSegs, sndEnd.Stats().ReadPackets)
	}
	t.Logf("%d pure ACKs for %d data segments", n.pureAcksOut, n.dataSegsIn)
}

// BenchmarkClassify is the counting link's cost per packet.
func BenchmarkClassify(b *testing.B) {
	pkts := [][]byte{tcpPacket(wire.FlagACK, 12, 0), tcpPacket(wire.FlagACK|wire.FlagPSH, 12, 1448)}
	n := 0
	for i := 0; b.Loop(); i++ {
		if classify(pkts[i&1]) == segPureAck {
			n++
		}
	}
	if n == 0 {
		b.Fatal("no ACK seen")
	}
}

func TestImpairmentSeedAdvancesPerRun(t *testing.T) {
	im, err := parseImpairment("loss=1%,seed=7")
	if err != nil {
		t.Fatal(err)
	}
	if s1, s3 := im.forRun(1).spec.Seed, im.forRun(3).spec.Seed; s1 != 7 || s3 != 9 || im.spec.Seed != 7 {
		t.Errorf("run 1 seed %d, run 3 seed %d, spec's seed now %d; want 7, 9, 7", s1, s3, im.spec.Seed)
	}
	other := im.forRun(2).spec
	other.Seed = im.spec.Seed
	if !reflect.DeepEqual(other, im.spec) {
		t.Errorf("forRun changed more than the seed: %+v, was %+v", other, im.spec)
	}
	var none *impairment
	if none.forRun(2) != nil {
		t.Error("no impairment must stay none")
	}
}
