package conformance

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"tunstack/lab/netns"
	"tunstack/wire"
)

var (
	burstLocal  = netip.MustParseAddrPort("192.168.0.1:8080")
	burstRemote = netip.MustParseAddrPort("192.0.2.1:40000")
)

// burstSeg builds an outbound segment of the test connection: seq relative
// to 1000, n bytes of payload (bytes counting up from the sequence number),
// ACK 5 plus flags, window 502.
func burstSeg(seq uint32, n int, flags uint8) outbound {
	payload := make([]byte, n)
	for i := range payload {
		payload[i] = byte(1000 + seq + uint32(i))
	}
	tcpLen := wire.TCPHeaderLen + n
	b := make([]byte, wire.IPv4HeaderLen+tcpLen)
	wire.PutIPv4Header(b, wire.IPv4Fields{Src: burstLocal.Addr().As4(), Dst: burstRemote.Addr().As4(),
		Protocol: wire.ProtoTCP, TTL: 64, DontFrag: true}, tcpLen)
	t := wire.TCP(b[wire.IPv4HeaderLen:])
	wire.PutTCPHeader(t, wire.TCPFields{SrcPort: burstLocal.Port(), DstPort: burstRemote.Port(),
		Seq: 1000 + seq, Ack: 5, Flags: wire.FlagACK | flags, Window: 502}, 0)
	copy(t.Payload(), payload)
	t.ComputeChecksum(burstLocal.Addr().As4(), burstRemote.Addr().As4())
	return outbound{b, 10 * time.Millisecond}
}

// burstFlight is n full segments of mss bytes from seq 0, with PSH where
// psh says (segment index -> true).
func burstFlight(n, mss int, psh map[int]bool) []outbound {
	var out []outbound
	for i := range n {
		var f uint8
		if psh[i] {
			f = wire.FlagPSH
		}
		out = append(out, burstSeg(uint32(i*mss), mss, f))
	}
	return out
}

// burstACK is the peer's ACK of everything below seq (relative), window
// win unscaled.
func burstACK(seq uint32, win uint16) []byte {
	b := make([]byte, wire.IPv4HeaderLen+wire.TCPHeaderLen)
	wire.PutIPv4Header(b, wire.IPv4Fields{Src: burstRemote.Addr().As4(), Dst: burstLocal.Addr().As4(),
		Protocol: wire.ProtoTCP, TTL: 64}, wire.TCPHeaderLen)
	t := wire.TCP(b[wire.IPv4HeaderLen:])
	wire.PutTCPHeader(t, wire.TCPFields{SrcPort: burstRemote.Port(), DstPort: burstLocal.Port(),
		Seq: 5, Ack: 1000 + seq, Flags: wire.FlagACK, Window: win}, 0)
	t.ComputeChecksum(burstRemote.Addr().As4(), burstLocal.Addr().As4())
	return b
}

// shape renders packets as "flags start:end" (sequence relative to 1000),
// checking each is a valid packet whose payload is the bytes the segments
// carried.
func shape(t *testing.T, pkts []outbound) string {
	t.Helper()
	var s []string
	for _, p := range pkts {
		ip := wire.IPv4(p.pkt)
		if err := ip.Valid(); err != nil || int(ip.TotalLen()) != len(p.pkt) {
			t.Fatalf("invalid IP packet (%v), total length %d of %d bytes", err, ip.TotalLen(), len(p.pkt))
		}
		if wire.Fold(wire.Checksum(p.pkt[:wire.IPv4HeaderLen], 0)) != 0 {
			t.Fatalf("bad IP header checksum")
		}
		tcp := wire.TCP(ip.Payload())
		if !tcp.ChecksumValid(ip.Src(), ip.Dst()) {
			t.Fatalf("bad TCP checksum")
		}
		for i, c := range tcp.Payload() {
			if c != byte(tcp.Seq()+uint32(i)) {
				t.Fatalf("payload byte %d of the packet at %d is wrong", i, tcp.Seq()-1000)
			}
		}
		start := tcp.Seq() - 1000
		end := start + uint32(len(tcp.Payload()))
		s = append(s, FlagString(tcp.Flags())+" "+strconv.Itoa(int(start))+":"+strconv.Itoa(int(end)))
	}
	return strings.Join(s, " | ")
}

// coalescer returns a coalescer whose stack reports info for every
// connection, after the handshake: the peer's window 64 KiB.
func coalescer(info burstInfo) *burstCoalescer {
	c := newBurstCoalescer(func(flowKey, int) burstInfo { return info })
	c.inbound(burstACK(0, 0xffff))
	return c
}

// Ten segments at tso_segs 2 (a 10 ms path) and cwnd 10 go out as five
// two-segment packets, each with PSH, as packetdrill sees Linux send them.
func TestBurstTenSegmentsAtTwoPerPacket(t *testing.T) {
	c := coalescer(burstInfo{Cwnd: 10, TSOSegs: 2})
	got := shape(t, c.batch(burstFlight(10, 1460, nil), false))
	want := "P. 0:2920 | P. 2920:5840 | P. 5840:8760 | P. 8760:11680 | P. 11680:14600"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// With tso_segs 44 (a path under half a millisecond) an initial window of
// ten still goes out as 5+5: Linux keeps at least two packets in flight
// (cwnd/2 per packet).
func TestBurstHalfTheWindowPerPacket(t *testing.T) {
	c := coalescer(burstInfo{Cwnd: 10, TSOSegs: 44})
	got := shape(t, c.batch(burstFlight(10, 1000, nil), false))
	if want := "P. 0:5000 | P. 5000:10000"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Later, with 8 of cwnd 12 in flight, room for four: one packet.
	c = coalescer(burstInfo{Cwnd: 12, TSOSegs: 44})
	c.batch(burstFlight(10, 1000, nil), false)
	c.inbound(burstACK(2000, 0xffff))
	got = shape(t, c.batch([]outbound{burstSeg(10000, 1000, 0), burstSeg(11000, 1000, 0), burstSeg(12000, 1000, 0),
		burstSeg(13000, 1000, 0)}, false))
	if want := "P. 10000:14000"; got != want {
		t.Errorf("after the ACK: got %s, want %s", got, want)
	}
}

// A stack that marks its own chunks (TSOSegs 0): a packet ends at each
// PSH; segments not closed by a PSH stay segments, since a Linux packet of
// more than one segment always carries PSH.
func TestBurstPSHEndsTheStacksChunks(t *testing.T) {
	c := coalescer(burstInfo{Cwnd: 10})
	pkts := burstFlight(5, 1460, map[int]bool{1: true, 3: true})
	got := shape(t, c.batch(pkts, false))
	if want := "P. 0:2920 | P. 2920:5840 | . 5840:7300"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	c = coalescer(burstInfo{Cwnd: 10})
	got = shape(t, c.batch(burstFlight(2, 1460, nil), false))
	if want := ". 0:1460 | . 1460:2920"; got != want {
		t.Errorf("without PSH: got %s, want %s", got, want)
	}
}

// A short last segment joins; a short segment in the middle ends the
// packet; FIN on the last segment stays on the packet.
func TestBurstShortAndFINSegments(t *testing.T) {
	c := coalescer(burstInfo{Cwnd: 10, TSOSegs: 2})
	got := shape(t, c.batch([]outbound{burstSeg(0, 536, 0), burstSeg(536, 464, wire.FlagPSH|wire.FlagFIN)}, false))
	if want := "FP. 0:1000"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	c = coalescer(burstInfo{Cwnd: 10, TSOSegs: 4})
	got = shape(t, c.batch([]outbound{burstSeg(0, 1000, 0), burstSeg(1000, 500, 0), burstSeg(1500, 1000, 0)}, false))
	if want := "P. 0:1500 | . 1500:2500"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// Retransmissions are never merged; neither are segments of different
// instants, different headers, or gaps.
func TestBurstMergesOnlyNewContiguousEqualSegments(t *testing.T) {
	c := coalescer(burstInfo{Cwnd: 10, TSOSegs: 2})
	c.batch(burstFlight(4, 1000, nil), false)
	got := shape(t, c.batch(burstFlight(2, 1000, nil), false))
	if want := ". 0:1000 | . 1000:2000"; got != want {
		t.Errorf("retransmission: got %s, want %s", got, want)
	}

	c = coalescer(burstInfo{Cwnd: 10, TSOSegs: 2})
	later := burstSeg(1000, 1000, 0)
	later.at += time.Millisecond
	if got := shape(t, c.batch([]outbound{burstSeg(0, 1000, 0), later}, false)); got != ". 0:1000 | . 1000:2000" {
		t.Errorf("two instants: got %s", got)
	}

	c = coalescer(burstInfo{Cwnd: 10, TSOSegs: 2})
	other := burstSeg(1000, 1000, 0)
	tcp := wire.TCP(other.pkt[wire.IPv4HeaderLen:])
	tcp[15]++ // another window
	tcp.ComputeChecksum(burstLocal.Addr().As4(), burstRemote.Addr().As4())
	if got := shape(t, c.batch([]outbound{burstSeg(0, 1000, 0), other}, false)); got != ". 0:1000 | . 1000:2000" {
		t.Errorf("different windows: got %s", got)
	}

	c = coalescer(burstInfo{Cwnd: 10, TSOSegs: 2})
	if got := shape(t, c.batch([]outbound{burstSeg(0, 1000, 0), burstSeg(2000, 1000, 0)}, false)); got != ". 0:1000 | . 2000:3000" {
		t.Errorf("a gap: got %s", got)
	}
}

// With a peer window of 4000 bytes Linux's buffers hold one segment each
// and a write sends each as it fills; what goes out later on an ACK may
// take the next buffer too.
func TestBurstSmallWindowWrite(t *testing.T) {
	c := newBurstCoalescer(func(flowKey, int) burstInfo { return burstInfo{Cwnd: 10, TSOSegs: 2} })
	c.inbound(burstACK(0, 4000))
	got := shape(t, c.batch([]outbound{burstSeg(0, 1460, 0), burstSeg(1460, 1460, wire.FlagPSH)}, true))
	if want := ". 0:1460 | P. 1460:2920"; got != want {
		t.Errorf("during the write: got %s, want %s", got, want)
	}
	c.inbound(burstACK(2920, 4000))
	got = shape(t, c.batch([]outbound{burstSeg(2920, 1460, 0), burstSeg(4380, 620, wire.FlagPSH)}, false))
	if want := "P. 2920:5000"; got != want {
		t.Errorf("on the ACK: got %s, want %s", got, want)
	}
}

// The window scale of the SYNs applies to the peer's window.
func TestBurstScaledWindow(t *testing.T) {
	c := newBurstCoalescer(func(flowKey, int) burstInfo { return burstInfo{} })
	f := c.flow(flowKey{burstLocal, burstRemote})
	f.peerWS, f.ourWS = 7, 7 // as the SYNs would have set them
	c.inbound(burstACK(0, 512))
	if f.maxWnd != 512<<7 {
		t.Errorf("max window %d, want %d", f.maxWnd, 512<<7)
	}
	if g := sizeGoalSegs(f.maxWnd, 1460); g != 22 {
		t.Errorf("size goal %d segments, want 22", g)
	}
	if g := sizeGoalSegs(4000, 1460); g != 1 {
		t.Errorf("size goal for a 4000-byte window: %d segments, want 1", g)
	}
}

// tcp_tso_segs: two segments on a 10 ms path with cwnd 10 (what packetdrill
// scripts see), 44 with no RTT to speak of, and the congestion-avoidance
// ratio.
func TestLinuxTSOSegs(t *testing.T) {
	const inf = 1 << 30
	cases := []struct {
		mss, cwnd, ssthresh int
		srtt, minRTT        time.Duration
		want                int
	}{
		{1460, 10, inf, 10 * time.Millisecond, 10 * time.Millisecond, 2},
		{1460, 10, inf, 50 * time.Microsecond, 50 * time.Microsecond, 44},
		{1460, 10, inf, 0, 0, 44}, // no sample: unlimited pacing rate
		// 1 ms path: pacing 1460*10*2/1ms = 29.2 MB/s -> 28515 bytes per
		// 1/1024 s, plus 64 KiB >> 1: 61283 -> 41 segments.
		{1460, 10, inf, time.Millisecond, time.Millisecond, 41},
		// Congestion avoidance (cwnd >= ssthresh/2): ratio 1.2; 2 ms, cwnd
		// 40: 1460*40*1.2/2ms = 35.04 MB/s -> 34218 + 64 KiB >> 3 (8192)
		// = 42410 bytes -> 29 segments.
		{1460, 40, 40, 2 * time.Millisecond, 2 * time.Millisecond, 29},
	}
	for _, tc := range cases {
		if got := linuxTSOSegs(tc.mss, tc.cwnd, tc.ssthresh, 0, tc.srtt, tc.minRTT, 2); got != tc.want {
			t.Errorf("mss %d cwnd %d ssthresh %d srtt %v: %d segments, want %d", tc.mss, tc.cwnd, tc.ssthresh, tc.srtt, got, tc.want)
		}
	}
}

// packetdrill's aggregation: packets that continue the first make up the
// payload a line expects; a packet that does not continue it is refused.
func TestAggregate(t *testing.T) {
	dec := func(o outbound) *seen {
		s, ok := decodeOutbound(o.pkt)
		if !ok {
			t.Fatal("not a TCP packet")
		}
		return s
	}
	a, b, c := dec(burstSeg(0, 1460, 0)), dec(burstSeg(1460, 1460, wire.FlagPSH)), dec(burstSeg(2920, 620, wire.FlagPSH))
	m, why := aggregate(a, a.payload, b, 2920-1460)
	if why != "" {
		t.Fatalf("refused: %s", why)
	}
	if m.seq != 1000 || m.payload != 2920 || m.flags != wire.FlagACK|wire.FlagPSH {
		t.Errorf("aggregate seq %d payload %d flags %s, want 1000, 2920, P.", m.seq, m.payload, FlagString(m.flags))
	}
	// A last packet shorter than the ones before is fine...
	if _, why := aggregate(m, b.payload, c, 620); why != "" {
		t.Errorf("short last packet refused: %s", why)
	}
	// ...one that is not the last must be as long as the one before.
	if _, why := aggregate(m, b.payload, c, 5000); why == "" {
		t.Error("a short packet in the middle was accepted")
	}
	if _, why := aggregate(a, a.payload, c, 5000); why == "" || !strings.Contains(why, "sequence") {
		t.Errorf("a gap was accepted (%q)", why)
	}
	rst := dec(burstSeg(1460, 1460, wire.FlagRST))
	if _, why := aggregate(a, a.payload, rst, 1460); why == "" {
		t.Error("a packet with other flags was accepted")
	}
}

// A burst of two segments, as a script for the segment view and as one
// for the burst view: with TSO (the default) Linux and tunstack send the
// two as one packet, so the segment view fails as it fails under the real
// packetdrill, and the burst view passes; with NoTSO both pass, the burst
// view by aggregation.
//
// The round trip is 100 ms, not packetdrill's usual 10 ms: on linux the
// kernel's tail loss probe (RFC 8985 §7) retransmits the burst's last
// segment 2 SRTT after it went, and with a 10 ms round trip an ACK that the
// runner injected 50 ms late (it was once, make test sharing 2 cores with
// benchmarks) came after that probe, which then showed as an unexpected
// packet. What the test checks, how a burst is seen, does not depend on the
// round trip: Linux's tso_segs is its minimum of 2 segments at either.
func TestBurstViewAndSegmentView(t *testing.T) {
	const head = `0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460,sackOK,nop,nop,nop,wscale 7>
+0 > S. 0:0(0) ack 1 <...>
+.1 < . 1:1(0) ack 1 win 512
+0 accept(3, ..., ...) = 4
+0 write(4, ..., 2920) = 2920
`
	const tail = "+.1 < . 1:1(0) ack 2921 win 512\n"
	segments := head + "+0 > . 1:1461(1460) ack 1\n+0 > P. 1461:2921(1460) ack 1\n" + tail
	burst := head + "+0 > P. 1:2921(2920) ack 1\n" + tail
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	segPath, burstPath := write("segments.pkt", segments), write("burst.pkt", burst)
	for _, stack := range []string{"tunstack", "linux"} {
		t.Run(stack, func(t *testing.T) {
			if stack == "linux" {
				netns.RequireRoot(t)
			}
			run := func(path string, noTSO bool) *Result {
				return Run(path, Options{Stack: stack, ToleranceUsecs: suiteToleranceUsecs, NoTSO: noTSO})
			}
			r := run(segPath, false)
			if r.Status != Fail || r.Failure == nil || !strings.Contains(r.Failure.Message, "payload length 2920, expected 1460") {
				t.Errorf("segment view with TSO: %s %+v, want a FAIL for a 2920-byte packet", r.Status, r.Failure)
			}
			for _, c := range []struct {
				path  string
				noTSO bool
			}{{burstPath, false}, {segPath, true}, {burstPath, true}} {
				if r := run(c.path, c.noTSO); r.Status != Pass {
					var b strings.Builder
					r.Print(&b, true)
					t.Errorf("%s with NoTSO %v: %s", filepath.Base(c.path), c.noTSO, b.String())
				}
			}
		})
	}
}
