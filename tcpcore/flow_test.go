package tcpcore

import (
	"errors"
	"testing"
	"time"

	"tunstack/wire"
)

// zeroWindowConn returns a connection whose peer advertised a zero window
// after taking the first segment, with more data queued.
func zeroWindowConn(t *testing.T, p *peer) (*Conn, Seq) {
	t.Helper()
	c, iss := p.listenAndAccept(plainSyn)
	c.SetNoDelay(p.now, true)
	c.Write(p.now, make([]byte, 3000))
	p.collectAll()
	// The peer acknowledges everything sent and closes its window; then
	// the application writes more.
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: c.sndMax, wnd: 0})
	c.Write(p.now, make([]byte, 3000))
	p.collectAll()
	if c.sndWnd != 0 || c.sndBuf.Len() == 0 {
		t.Fatalf("setup: window %d, queued %d", c.sndWnd, c.sndBuf.Len())
	}
	return c, iss
}

// RFC 9293 §3.8.6.1 / RFC 1122 §4.2.2.17: with a zero window and data
// queued the persist timer sends probes at RTO, 2*RTO, 4*RTO... (Linux
// form: SND.UNA-1, no data), and as long as they are answered the
// connection stays.
func TestZeroWindowProbeInstantsAndBackoff(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := zeroWindowConn(t, p)
	rto := c.rtt.rto
	start := p.now
	var at []time.Duration
	for i := 0; i < 5; i++ {
		p.step()
		pr := p.next()
		if pr.seq != c.sndUna-1 || len(pr.payload) != 0 {
			t.Fatalf("probe %v, want SND.UNA-1 with no data", pr)
		}
		at = append(at, pr.at.Sub(start))
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: c.sndUna, wnd: 0}) // answered, still zero
	}
	want := time.Duration(0)
	for i := range at {
		want += rto << i
		if at[i] != want {
			t.Fatalf("probes at %v, want cumulative RTO doubling from %v", at, rto)
		}
	}
	if c.State() != Established || c.Info().Counters.ZeroWindowProbes != 5 {
		t.Fatalf("state %v probes %d", c.State(), c.Info().Counters.ZeroWindowProbes)
	}
	// The window reopens: the queued data goes at once.
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: c.sndUna, wnd: 65535})
	if s := p.next(); len(s.payload) == 0 {
		t.Fatalf("no data after the window opened: %v", s)
	}
}

// The rfc profile probes with one byte of new data (RFC 9293 §3.8.6.1).
func TestZeroWindowProbeWithNewByte(t *testing.T) {
	prof := testProfile()
	prof.ProbeNewByte = true
	p := newPeer(t, prof)
	c, _ := zeroWindowConn(t, p)
	p.step()
	pr := p.next()
	if pr.seq != c.sndUna || len(pr.payload) != 1 {
		t.Fatalf("probe %v, want one new byte at SND.UNA", pr)
	}
}

// Some stacks give up after a few zero-window probes with the window still
// zero (policy.MaxZeroWindowProbes): RST, then ETIMEDOUT.
func TestZeroWindowProbeLimitResets(t *testing.T) {
	prof := testProfile()
	prof.MaxZeroWindowProbes = 3
	p := newPeer(t, prof)
	c, _ := zeroWindowConn(t, p)
	for i := 0; i < 3; i++ {
		p.step()
		p.next()
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: c.sndUna, wnd: 0})
	}
	p.step()
	r := p.next()
	if r.flags&fR == 0 {
		t.Fatalf("got %v, want RST after three probes", r)
	}
	if !errors.Is(c.HardErr(), ErrTimedOut) {
		t.Fatalf("err %v", c.HardErr())
	}
}

// Linux: unanswered probes end the connection after tcp_retries2, with
// ETIMEDOUT and no RST.
func TestZeroWindowUnansweredProbesTimeOut(t *testing.T) {
	prof := testProfile()
	prof.Retries2 = 4
	p := newPeer(t, prof)
	c, _ := zeroWindowConn(t, p)
	for i := 0; i < 4; i++ {
		p.step()
		p.next()
	}
	p.step()
	p.expectNone()
	if !errors.Is(c.HardErr(), ErrTimedOut) {
		t.Fatalf("err %v after unanswered probes", c.HardErr())
	}
}

// We answer a peer's zero-window probe with an ACK carrying our window.
func TestAnswerPeerZeroWindowProbe(t *testing.T) {
	p := newPeer(t, nil)
	_, iss := p.listenAndAcceptWith(plainSyn, SockOpts{RcvBuf: 4096})
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 4096)})
	p.collectAll()
	p.send(tseg{flags: fA, seq: peerISN + 4096, ack: iss + 1, wnd: 65535})
	a := p.expect(fA, iss+1, peerISN+4097)
	if a.wnd != 0 {
		t.Fatalf("answer to a probe advertises %d, want 0 (buffer full)", a.wnd)
	}
}

// RFC 1122 §4.2.3.2 / RFC 5681 §4.2: after quick-ACK mode, an ACK goes out
// for every second full-sized segment, and a lone segment is ACKed when
// the delayed-ACK timer (40 ms in the linux profile) fires.
func TestDelayedAckEverySecondSegmentAndTimer(t *testing.T) {
	prof := testProfile()
	prof.QuickAcks = 0
	p := newPeer(t, prof)
	_, iss := p.listenAndAccept(plainSyn)
	seq := peerISN + 1
	seg := func() {
		p.send(tseg{flags: fA, seq: seq, ack: iss + 1, wnd: 65535, payload: make([]byte, 1460)})
		seq += 1460
	}
	seg()
	p.expectNone()
	seg()
	p.expect(fA, iss+1, seq)
	seg()
	p.expectNone()
	sent := p.now
	p.advance(time.Second)
	a := p.expect(fA, iss+1, seq)
	if a.at.Sub(sent) != prof.DelAckMin {
		t.Fatalf("delayed ACK after %v, want %v", a.at.Sub(sent), prof.DelAckMin)
	}
}

// The adaptive timeout follows sparse arrivals but stays within
// [DelAckMin, DelAckMax].
func TestDelayedAckTimeoutBounds(t *testing.T) {
	prof := testProfile()
	prof.QuickAcks = 0
	p := newPeer(t, prof)
	c, iss := p.listenAndAccept(plainSyn)
	seq := peerISN + 1
	for i := 0; i < 6; i++ {
		p.send(tseg{flags: fA, seq: seq, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
		seq += 100
		p.advance(150 * time.Millisecond)
		p.collectAll()
		if c.ato < prof.DelAckMin || c.ato > prof.DelAckMax {
			t.Fatalf("ato %v outside [%v, %v]", c.ato, prof.DelAckMin, prof.DelAckMax)
		}
	}
	if c.ato <= prof.DelAckMin {
		t.Fatalf("ato %v did not adapt to 150 ms arrivals", c.ato)
	}
}

// RFC 5681 §4.2: an ACK is immediate for out-of-order data and FIN, and
// quick-ACK mode ACKs the first segments at once.
func TestImmediateAckCases(t *testing.T) {
	p := newPeer(t, nil)
	_, iss := p.listenAndAccept(plainSyn)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
	p.expect(fA, iss+1, peerISN+101) // quick-ACK mode at the start
	p.send(tseg{flags: fA, seq: peerISN + 501, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
	p.expect(fA, iss+1, peerISN+101) // out of order
	p.send(tseg{flags: fFA, seq: peerISN + 101, ack: iss + 1, wnd: 65535, payload: make([]byte, 400)})
	p.expect(fA, iss+1, peerISN+601) // fills the gap; the FIN at 601 waited for it
	p.expectNone()
}

// RFC 896 Nagle: a small write while data is unacknowledged waits for the
// ACK; TCP_NODELAY sends it at once.
func TestNagleHoldsSmallSegmentUntilAck(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.Write(p.now, []byte("a"))
	p.expect(fPA, iss+1, peerISN+1)
	c.Write(p.now, []byte("b"))
	c.Write(p.now, []byte("c"))
	p.expectNone()
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 2, wnd: 65535})
	s := p.expect(fPA, iss+2, peerISN+1)
	if string(s.payload) != "bc" {
		t.Fatalf("released %q, want the coalesced \"bc\"", s.payload)
	}
	c.SetNoDelay(p.now, true)
	c.Write(p.now, []byte("d"))
	p.expect(fPA, iss+4, peerISN+1)
}

// TCP_CORK holds a partial segment for at most 200 ms (Linux), and full
// segments go at once.
func TestCorkHoldsPartialSegmentUpTo200ms(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.SetCork(p.now, true)
	c.Write(p.now, []byte("partial"))
	p.expectNone()
	start := p.now
	p.advance(time.Second)
	s := p.expect(fPA, iss+1, peerISN+1)
	if s.at.Sub(start) != p.e.prof.CorkLimit {
		t.Fatalf("corked data left after %v, want %v", s.at.Sub(start), p.e.prof.CorkLimit)
	}
}

// RFC 1122 §4.2.3.4 sender SWS avoidance: a window smaller than both a
// segment and half the largest window seen is not used until the persist
// timer forces it.
func TestSenderSWSAvoidance(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.SetNoDelay(p.now, true)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 100})
	c.Write(p.now, make([]byte, 1000))
	p.expectNone()
	p.step() // the override (persist) timer
	s := p.next()
	if len(s.payload) != 100 {
		t.Fatalf("override sent %d bytes, want the 100-byte window", len(s.payload))
	}
}

// RFC 1122 §4.2.3.3 receiver SWS avoidance: the window is not reopened by
// less than min(buffer/2, MSS).
func TestReceiverSWSAvoidance(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAcceptWith(plainSyn, SockOpts{RcvBuf: 8192})
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 8192)})
	// A segment that fills the buffer ends quick-ACK mode (as Linux's
	// __tcp_select_window does): the delayed-ACK timer acknowledges it.
	p.expectNone()
	p.step()
	if a := p.expect(fA, iss+1, peerISN+8193); a.wnd != 0 {
		t.Fatalf("window %d with the buffer full, want 0", a.wnd)
	}
	buf := make([]byte, 100)
	c.Read(p.now, buf) // frees 100 bytes: not worth advertising
	p.expectNone()
	p.send(tseg{flags: fA, seq: peerISN + 8192, ack: iss + 1, wnd: 65535}) // a probe
	a := p.expect(fA, iss+1, peerISN+8193)
	if a.wnd != 0 {
		t.Fatalf("window %d after freeing 100 bytes, want still 0", a.wnd)
	}
	big := make([]byte, 8192)
	c.Read(p.now, big)
	a = p.expect(fA, iss+1, peerISN+8193)
	if int(a.wnd)<<c.rcvWscale < 4096 {
		t.Fatalf("window update %d after draining, want the buffer reopened", a.wnd)
	}
}

// Receive-buffer auto-tuning grows the buffer with what the application
// reads per RTT, up to the profile maximum, and not when SO_RCVBUF is set.
func TestReceiveBufferAutotuning(t *testing.T) {
	s := newSim(t, nil, 20*time.Millisecond, 0, 5)
	transfer(t, s, 16<<20)
	if s.lastRcvBuf <= s.a.prof.RcvBuf {
		t.Fatalf("receive buffer stayed at %d after 16 MiB over a 40 ms RTT", s.lastRcvBuf)
	}
	p := newPeer(t, nil)
	c, _ := p.listenAndAcceptWith(wire.TCPOptions{HasMSS: true, MSS: 1460}, SockOpts{RcvBuf: 8192})
	c.autotune(p.now)
	if c.rcvBufMax != 8192 {
		t.Fatalf("locked buffer changed to %d", c.rcvBufMax)
	}
}

// While auto-tuning raises the buffers' limits a few segments at a time,
// the rings under them double (ring.ensure): a ring sized to each new limit
// would copy all it holds at every step. Each ring ends at its first size
// times a power of two, or at the profile's maximum.
func TestRingsDoubleWhileAutotuningRaisesTheirLimits(t *testing.T) {
	s := newSim(t, nil, 20*time.Millisecond, 0, 5)
	transfer(t, s, 16<<20)
	if s.lastRcvBuf <= s.a.prof.RcvBuf {
		t.Fatalf("receive buffer stayed at %d: auto-tuning did not raise it", s.lastRcvBuf)
	}
	doubled := func(c, max int) bool {
		if c == max {
			return true
		}
		for n := ringMinBytes; n <= c; n *= 2 {
			if n == c {
				return true
			}
		}
		return false
	}
	if c := s.lastRcvRing; !doubled(c, s.b.prof.RcvBufMax) {
		t.Errorf("receive ring of %d bytes under a limit of %d: want %d times a power of two or %d", c, s.lastRcvBuf, ringMinBytes, s.b.prof.RcvBufMax)
	}
	if c := s.lastSndRing; !doubled(c, s.a.prof.SndBufMax) {
		t.Errorf("send ring of %d bytes: want %d times a power of two or %d", c, ringMinBytes, s.a.prof.SndBufMax)
	}
}

// In-order segments that reach the engine in one batch (the driver feeds
// them all before collecting Output) are acknowledged by one ACK, as
// Linux's GRO acknowledges the segments it merged; segments fed one at a
// time still get an ACK for every second one (RFC 1122 §4.2.3.2).
func TestOneAckPerInputBatch(t *testing.T) {
	prof := testProfile()
	prof.QuickAcks = 0 // not in quick-ACK mode, which ACKs every segment
	p := newPeer(t, prof)
	_, iss := p.listenAndAccept(plainSyn)
	seq := peerISN + 1
	for range 10 {
		s := tseg{flags: fA, seq: seq, ack: iss + 1, wnd: 65535, payload: make([]byte, 1460)}
		p.e.Input(p.now, remoteIP, localIP, s.encode(remote, local))
		seq += 1460
	}
	acks := p.collectAll()
	if len(acks) != 1 || acks[0].ack != seq {
		t.Fatalf("batch of 10 segments drew %v, want one ACK of %d", acks, seq-peerISN)
	}
	// One at a time: an ACK for every second segment.
	for i := range 4 {
		p.send(tseg{flags: fA, seq: seq, ack: iss + 1, wnd: 65535, payload: make([]byte, 1460)})
		seq += 1460
		if got := len(p.collectAll()); got != i%2 {
			t.Fatalf("segment %d drew %d ACKs, want %d", i+1, got, i%2)
		}
	}
}

// Linux sets PSH at the end of each TSO/GSO chunk, sized by rate
// (tcp_tso_autosize): on a 10 ms path with ten segments of window a chunk
// is two segments, so every second segment of a long write carries PSH;
// on a path under half a millisecond a chunk is 64 KiB, but a packet
// holds at most half the congestion window (tcp_cwnd_test), so the first
// window goes as 5+5 segments, PSH on the fifth and the tenth.
func TestPSHFollowsLinuxGSOChunkSize(t *testing.T) {
	for _, tc := range []struct {
		rtt      time.Duration
		wantPSHs int // among the first ten segments of a 100-segment write
	}{{10 * time.Millisecond, 5}, {100 * time.Microsecond, 2}} {
		p := newPeer(t, nil)
		c, iss := p.listenAndAccept(plainSyn)
		c.Write(p.now, []byte("x")) // one RTT sample of tc.rtt
		p.next()
		p.advance(tc.rtt)
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 2, wnd: 65535})
		c.Write(p.now, make([]byte, 100*c.MSS()))
		segs := p.collectAll()
		if len(segs) != 10 {
			t.Fatalf("rtt %v: %d segments in the first window, want 10", tc.rtt, len(segs))
		}
		pshs := 0
		for _, s := range segs {
			if s.has(fP) {
				pshs++
			}
		}
		if pshs != tc.wantPSHs {
			t.Errorf("rtt %v: %d of the first 10 segments carry PSH, want %d", tc.rtt, pshs, tc.wantPSHs)
		}
	}
}

// Buffers follow use: a connection that exchanges a small request and
// reply holds a few KiB of ring, not the profile's whole window (128 KiB
// to receive), while a bulk transfer still gets the full window.
func TestBuffersGrowWithUse(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
	c.Write(p.now, make([]byte, 200))
	if r, s := c.rcvBuf.Cap(), c.sndBuf.Cap(); r > ringMinBytes || s > ringMinBytes {
		t.Fatalf("after a 100-byte request and a 200-byte reply the rings hold %d and %d bytes, want at most %d", r, s, ringMinBytes)
	}
	// The advertised window is still the whole buffer.
	if w := c.Info().RcvWndBytes; w < 60000 {
		t.Fatalf("advertised window %d, want the profile's (about 64 KiB before scaling grows it)", w)
	}
	// Out-of-order data far into the window is placed correctly.
	seq := peerISN + 101
	p.send(tseg{flags: fA, seq: seq + 20000, ack: iss + 201, wnd: 65535, payload: []byte("late")})
	p.send(tseg{flags: fA, seq: seq, ack: iss + 201, wnd: 65535, payload: make([]byte, 20000)})
	buf := make([]byte, 30000)
	n, _ := c.Read(p.now, buf)
	m, _ := c.Read(p.now, buf[n:])
	if got := string(buf[n+m-4 : n+m]); n+m != 100+20004 || got != "late" {
		t.Fatalf("read %d bytes ending %q, want %d ending \"late\"", n+m, got, 100+20004)
	}
}
