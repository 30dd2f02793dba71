package lab

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"tunstack/netif"
)

// These tests need no root: they check the harness's own logic on made-up
// input.

func TestRunRejectsUnknownExperimentListingTheKnownOnes(t *testing.T) {
	_, err := Run(context.Background(), "nosuch", Options{Stack: "tunstack"})
	var ue *UnknownExperimentError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want UnknownExperimentError", err)
	}
	for _, n := range []string{"backlog", "synack", "listener-close"} {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("%q does not name %s", err, n)
		}
	}
}

// tcpPacket builds an IPv4/TCP packet for the synthetic captures.
type seg struct {
	at       time.Duration
	toServer bool
	port     uint16
	flags    string // letters of S, A, R, F, P
	seq, ack uint32
	payload  string
}

func buildCapture(t *testing.T, start time.Time, segs []seg) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriterNanos(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP,
			SrcIP: clientAddr.AsSlice(), DstIP: serverAddr.AsSlice()}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(s.port), DstPort: serverPort, Seq: s.seq, Ack: s.ack, Window: 65535,
			SYN: strings.Contains(s.flags, "S"), ACK: strings.Contains(s.flags, "A"),
			RST: strings.Contains(s.flags, "R"), FIN: strings.Contains(s.flags, "F"), PSH: strings.Contains(s.flags, "P")}
		if !s.toServer {
			ip.SrcIP, ip.DstIP = ip.DstIP, ip.SrcIP
			tcp.SrcPort, tcp.DstPort = tcp.DstPort, tcp.SrcPort
		}
		tcp.SetNetworkLayerForChecksum(ip)
		sb := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			ip, tcp, gopacket.Payload(s.payload)); err != nil {
			t.Fatal(err)
		}
		data := sb.Bytes()
		ci := gopacket.CaptureInfo{Timestamp: start.Add(s.at), CaptureLength: len(data), Length: len(data)}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	return &buf
}

func TestParseCaptureMarksRetransmissionsAndDuplicateAcks(t *testing.T) {
	start := time.Now()
	const cISN, sISN = 1000, 5000
	segs := []seg{
		{0, true, 40000, "S", cISN, 0, ""},
		{1 * time.Millisecond, false, 40000, "SA", sISN, cISN + 1, ""},
		{2 * time.Millisecond, true, 40000, "A", cISN + 1, sISN + 1, ""},           // final ACK (dropped by a full queue)
		{3 * time.Millisecond, true, 40000, "PA", cISN + 1, sISN + 1, "ping"},      // data
		{200 * time.Millisecond, true, 40000, "PA", cISN + 1, sISN + 1, "ping"},    // data again
		{time.Second, false, 40000, "SA", sISN, cISN + 1, ""},                      // SYN-ACK again
		{time.Second + time.Millisecond, true, 40000, "A", cISN + 5, sISN + 1, ""}, // repeats the final ACK's number, as in the synack capture
		{time.Second + 2*time.Millisecond, true, 40000, "A", cISN + 5, sISN + 1, ""},
		{3 * time.Second, false, 40000, "SA", sISN, cISN + 1, ""},
		{4 * time.Second, false, 40000, "R", sISN + 1, 0, ""},
		{4 * time.Second, false, 41000, "SA", 1, 2, ""}, // another port: unknown client
	}
	c, err := parseCapture(buildCapture(t, start, segs), netip.AddrPortFrom(serverAddr, serverPort), map[uint16]int{40000: 7}, start)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Packets) != len(segs) {
		t.Fatalf("%d packets, want %d", len(c.Packets), len(segs))
	}
	want := []struct {
		kind    string
		retrans int
		dup     bool
		seq     uint32
	}{
		{"SYN", 0, false, 0}, {"SYN-ACK", 0, false, 0}, {"ACK", 0, false, 1}, {"data", 0, false, 1},
		{"data", 1, false, 1}, {"SYN-ACK", 1, false, 0}, {"ACK", 0, true, 5}, {"ACK", 0, true, 5},
		{"SYN-ACK", 2, false, 0}, {"RST", 0, false, 1},
	}
	for i, w := range want {
		p := c.Packets[i]
		if p.Kind() != w.kind || p.Retrans != w.retrans || p.DupAck != w.dup || p.Seq != w.seq || p.Client != 7 {
			t.Errorf("packet %d = %s (client %d, seq %d, retrans %d, dup %v), want %s seq %d retrans %d dup %v",
				i, p.String(), p.Client, p.Seq, p.Retrans, p.DupAck, w.kind, w.seq, w.retrans, w.dup)
		}
	}
	if p := c.Packets[10]; p.Client != 0 || !strings.Contains(p.String(), "port 41000") {
		t.Errorf("unknown port: %s", p.String())
	}
	if got := c.SynAckTimes(7); len(got) != 3 || got[1] != time.Second {
		t.Errorf("SynAckTimes = %v", got)
	}
	if c.SynAckRetransmissions() != 2 {
		t.Errorf("SynAckRetransmissions = %d, want 2", c.SynAckRetransmissions())
	}
}

func TestGapsMatchAllowsTenPercent(t *testing.T) {
	s := time.Second
	ok := []time.Duration{s + 90*time.Millisecond, 2 * s, 4 * s, 8*s - 700*time.Millisecond, 16 * s}
	if !GapsMatch(ok, expectedSynAckGaps, 0.10) {
		t.Error("gaps within 10% rejected")
	}
	bad := []time.Duration{s, 2 * s, 4 * s, 8 * s, 18 * s}
	if GapsMatch(bad, expectedSynAckGaps, 0.10) {
		t.Error("a gap 12.5% off accepted")
	}
	if GapsMatch(ok[:4], expectedSynAckGaps, 0.10) {
		t.Error("four gaps accepted for five")
	}
}

func TestShapeIgnoresExactTimesAndClientOrder(t *testing.T) {
	hold := 20 * time.Second
	mk := func(took, accepted time.Duration, ok bool) *ClientRecord {
		return &ClientRecord{Connected: true, ConnectCalled: 0, ConnectDone: took, Accepted: ok, AcceptedAt: accepted}
	}
	a := &Result{Marks: map[string]time.Duration{"hold": hold}, Clients: []*ClientRecord{
		mk(5*time.Millisecond, hold+time.Millisecond, true),
		mk(6*time.Millisecond, 25*time.Second, true),
		mk(31*time.Second, 31*time.Second, true),
	}}
	b := &Result{Marks: map[string]time.Duration{"hold": hold + 2*time.Millisecond}, Clients: []*ClientRecord{
		mk(30*time.Second, 32*time.Second, true),
		mk(9*time.Millisecond, hold+200*time.Millisecond, true),
		mk(7*time.Millisecond, 27*time.Second, true),
	}}
	if a.Shape() != b.Shape() {
		t.Errorf("shapes differ:\n%s\n%s", a.Shape(), b.Shape())
	}
	b.Clients[0].Accepted = false
	if a.Shape() == b.Shape() {
		t.Error("a never-accepted client did not change the shape")
	}
}

func TestDelayClientsDelaysReadsInOrderAndPassesWrites(t *testing.T) {
	a, b := netif.NewPipe(1500)
	const d = 30 * time.Millisecond
	dl, err := delayClients(b, d)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	defer a.Close()
	sent := time.Now()
	if _, err := a.WritePackets([][]byte{{1}, {2}, {3}}); err != nil {
		t.Fatal(err)
	}
	bufs := [][]byte{make([]byte, 1500), make([]byte, 1500), make([]byte, 1500), make([]byte, 1500)}
	sizes := make([]int, len(bufs))
	var got []byte
	for len(got) < 3 {
		n, err := dl.ReadPackets(bufs, sizes)
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(sent); el < d {
			t.Fatalf("packet delivered after %v, before the %v delay", el, d)
		}
		for i := range n {
			got = append(got, bufs[i][:sizes[i]]...)
		}
	}
	if !bytes.Equal(got, []byte{1, 2, 3}) {
		t.Fatalf("got %v, want [1 2 3] in order", got)
	}
	// The other direction is not delayed.
	if _, err := dl.WritePackets([][]byte{{9}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := a.ReadPackets(bufs, sizes)
	if err != nil || n != 1 || bufs[0][0] != 9 || time.Since(start) > d/2 {
		t.Fatalf("write path: n=%d err=%v after %v", n, err, time.Since(start))
	}
	dl.Close()
	if _, err := dl.ReadPackets(bufs, sizes); err == nil {
		t.Fatal("read after Close succeeded")
	}
}
