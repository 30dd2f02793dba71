package tcpcore

import (
	"errors"
	"testing"
	"time"

	"tunstack/policy"
)

// RFC 9293 §3.10.4: CLOSE in SYN-SENT deletes the TCB without sending
// anything; a SYN-ACK that arrives later finds no connection and is
// answered by <SEQ=SEG.ACK><CTL=RST> (§3.10.7.1).
func TestCloseInSynSentDeletesTheConnection(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.e.Connect(p.now, local, remote, SockOpts{})
	syn := p.next()
	p.advance(10 * time.Millisecond)
	c.Close(p.now)
	if c.State() != Closed || p.e.ConnCount() != 0 {
		t.Fatalf("after Close in SYN-SENT: state %v, %d connections; want CLOSED and none", c.State(), p.e.ConnCount())
	}
	p.expectNone()
	p.send(tseg{flags: fSA, seq: peerISN, ack: syn.seq + 1, wnd: 65535})
	p.expect(fR, syn.seq+1, 0)
}

// An RST in CLOSE-WAIT: the peer had already finished sending, and Linux
// (tcp_reset) reports EPIPE to the application, not ECONNRESET.
func TestRSTInCloseWaitReportsEPIPE(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	p.send(tseg{flags: fFA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
	p.expect(fA, iss+1, peerISN+2)
	p.send(tseg{flags: fR, seq: peerISN + 2})
	if c.State() != Closed || !errors.Is(c.HardErr(), ErrPipe) {
		t.Fatalf("state %v err %v, want CLOSED/EPIPE", c.State(), c.HardErr())
	}
	if _, err := c.Write(p.now, []byte("x")); !errors.Is(err, ErrPipe) {
		t.Fatalf("Write after the reset = %v, want EPIPE", err)
	}
}

// TCP_QUICKACK 0 enters delayed-ACK mode even in the quick-ACK phase at
// the start of a connection: one small segment is acknowledged by the
// delayed-ACK timer (DelAckMin, 40 ms), and the timer firing leaves the
// mode (Linux pingpong).
func TestQuickAckOffDelaysEvenTheFirstSegments(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.SetQuickAck(p.now, false)
	start := p.now
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
	p.expectNone()
	p.step()
	a := p.next()
	if a.ack != peerISN+101 || a.at.Sub(start) != 40*time.Millisecond {
		t.Fatalf("ACK %v at +%v, want ack %v at +40ms", a, a.at.Sub(start), peerISN+101)
	}
	// The timer fired: back in quick-ACK mode, the next segment is ACKed at once.
	p.send(tseg{flags: fPA, seq: peerISN + 101, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
	if b := p.next(); b.ack != peerISN+201 || b.at != p.now {
		t.Fatalf("second ACK %v at %v, want ack %v at once (%v)", b, b.at, peerISN+201, p.now)
	}
}

// RFC 1122 §4.2.3.2: in delayed-ACK mode the second full-sized segment is
// still acknowledged at once.
func TestQuickAckOffStillAcksEverySecondFullSegment(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.SetQuickAck(p.now, false)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 1460)})
	p.expectNone()
	p.advance(5 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1461, ack: iss + 1, wnd: 65535, payload: make([]byte, 1460)})
	if a := p.next(); a.ack != peerISN+2921 || a.at != p.now {
		t.Fatalf("ACK %v at %v, want ack %v at once (%v)", a, a.at, peerISN+2921, p.now)
	}
}

// Linux tcp_fin: a FIN that carries data puts the receiver in delayed-ACK
// mode, so the ACK waits for the delayed-ACK timer (our reply might carry
// it). The rfc profile acknowledges every FIN at once (RFC 9293
// §3.10.7.4).
func TestFinWithDataAckIsDelayedLikeLinux(t *testing.T) {
	for _, tc := range []struct {
		prof *policy.Profile
		want time.Duration
	}{{policy.Linux(), 40 * time.Millisecond}, {policy.RFC(), 0}} {
		p := newPeer(t, tc.prof)
		_, iss := p.listenAndAccept(plainSyn)
		start := p.now
		p.send(tseg{flags: fFA | fP, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
		if len(p.out) == 0 {
			p.step() // nothing at once: run the delayed-ACK timer
		}
		a := p.next()
		if a.ack != peerISN+102 || a.at.Sub(start) != tc.want {
			t.Errorf("%s: ACK %v at +%v, want ack %v at +%v", tc.prof.Name, a, a.at.Sub(start), peerISN+102, tc.want)
		}
	}
}

// Linux tcp_fin: a bare FIN after data puts the receiver in delayed-ACK
// mode too, so its ACK waits for the delayed-ACK timer, 40 ms (the ATO
// once data has arrived), and a close before then sends one segment, our
// FIN carrying the ACK, with no bare ACK before it (relayed and served
// request/response connections each save a segment). A bare FIN before
// any data (ATO 0) is acknowledged at once: TestPassiveCloseThroughLastAck.
func TestBareFinAfterDataAckIsDelayedLikeLinux(t *testing.T) {
	request := func(p *peer) (*Conn, Seq) {
		c, iss := p.listenAndAccept(plainSyn)
		p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
		p.expect(fA, iss+1, peerISN+101) // quick-ACK mode
		if n, err := c.Read(p.now, make([]byte, 200)); n != 100 || err != nil {
			t.Fatalf("read %d, %v; want the 100 bytes", n, err)
		}
		p.advance(10 * time.Millisecond)
		p.send(tseg{flags: fFA, seq: peerISN + 101, ack: iss + 1, wnd: 65535})
		return c, iss
	}
	// Nobody answers: the timer sends the ACK 40 ms after the FIN.
	p := newPeer(t, nil)
	_, iss := request(p)
	start := p.now
	p.expectNone()
	p.step()
	if a := p.next(); a.flags != fA || a.ack != peerISN+102 || a.at.Sub(start) != 40*time.Millisecond {
		t.Fatalf("ACK %v at +%v, want a bare ACK of %v at +40ms", a, a.at.Sub(start), peerISN+102)
	}
	// The application closes 10 ms after the FIN: one segment, FIN and ACK.
	p = newPeer(t, nil)
	c, iss := request(p)
	p.expectNone()
	p.advance(10 * time.Millisecond)
	c.Close(p.now)
	p.expect(fFA, iss+1, peerISN+102)
	p.expectNone()
}

// Linux tcp_bound_to_half_wnd (RFC 1122 §4.2.3.4 allows it): with a
// 2000-byte peer window, segments are cut to half the largest window seen,
// 1000 bytes, so the peer still gets two segments per window. The largest
// window starts from the final ACK's, not the SYN's.
func TestSegmentsBoundToHalfTheLargestWindow(t *testing.T) {
	p := newPeer(t, nil)
	l, err := p.e.Listen(p.now, local, 8, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa := p.next()
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 2000})
	c, err := l.Accept(p.now)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(p.now, make([]byte, 3000))
	for i := range 2 {
		if s := p.next(); len(s.payload) != 1000 {
			t.Fatalf("segment %d carries %d bytes, want 1000 (half the 2000-byte window)", i, len(s.payload))
		}
	}
	p.expectNone() // the window is full
}

// RFC 7661 window validation as Linux applies it in slow start
// (tcp_is_cwnd_limited: cwnd < 2 * the round trip's largest flight): seven
// segments in flight under a ten-segment window still grow it, by all
// seven acknowledged (no per-ACK limit, tcp_slow_start).
func TestSlowStartGrowsAWindowHalfUsed(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	mss := c.MSS()
	c.Write(p.now, make([]byte, 7*mss))
	p.collectAll()
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1 + Seq(7*mss), wnd: 65535})
	if got := c.Info().CwndBytes; got != 17*mss {
		t.Fatalf("cwnd %d bytes (%d segments), want 17 segments", got, got/mss)
	}
}

// Linux: an unacceptable ACK in SYN-SENT (answered by RST when it is not
// one itself) also brings the SYN's retransmission forward to 2 ms, since
// it may answer an older connection whose RST our SYN crossed.
func TestBadAckInSynSentResendsSynSoon(t *testing.T) {
	for _, flags := range []uint8{fSA, fRA} {
		p := newPeer(t, nil)
		c, _ := p.e.Connect(p.now, local, remote, SockOpts{})
		syn := p.next()
		p.advance(10 * time.Millisecond)
		p.send(tseg{flags: flags, seq: peerISN, ack: syn.seq + 1000, wnd: 100})
		if flags == fSA {
			p.expect(fR, syn.seq+1000, 0)
		}
		p.expectNone()
		sent := p.now
		p.step()
		again := p.expect(fS, syn.seq, 0)
		if d := again.at.Sub(sent); d != 2*time.Millisecond {
			t.Errorf("%v: SYN resent %v after the bad ACK, want 2ms", tseg{flags: flags}, d)
		}
		if c.State() != SynSent {
			t.Errorf("state %v, want SYN-SENT", c.State())
		}
	}
}

// In TIME-WAIT an old duplicate SYN is answered by an ACK, rate limited
// like every out-of-window ACK (Linux tcp_timewait_check_oow_rate_limit,
// tcp_invalid_ratelimit 500 ms), so a peer cannot make us send at will.
func TestTimeWaitOldSynAckIsRateLimited(t *testing.T) {
	p := newPeer(t, nil)
	_, iss := p.timeWaitConn()
	oldSyn := tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn}
	p.advance(600 * time.Millisecond)
	p.send(oldSyn)
	p.expect(fA, iss+2, peerISN+2)
	p.advance(100 * time.Millisecond)
	p.send(oldSyn)
	p.expectNone() // within 500 ms of the last one
	p.advance(500 * time.Millisecond)
	p.send(oldSyn)
	p.expect(fA, iss+2, peerISN+2)
}

// The delayed-ACK timeout inflates each time the timer fires with nothing
// to ride on, but (Linux tcp_send_delayed_ack) never beyond the smoothed
// RTT, at least DelAckMin: on a short path request/response traffic keeps
// 40 ms delayed ACKs instead of 80, 160, 200 ms ones.
func TestDelayedAckTimeoutBoundedBySRTT(t *testing.T) {
	prof := testProfile()
	prof.QuickAcks = 0
	p := newPeer(t, prof)
	c, iss := p.listenAndAccept(plainSyn)
	// One RTT sample of 10 ms.
	c.Write(p.now, make([]byte, 10))
	p.next()
	p.advance(10 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 11, wnd: 65535})
	seq := peerISN + 1
	for i := range 4 {
		start := p.now
		p.send(tseg{flags: fPA, seq: seq, ack: iss + 11, wnd: 65535, payload: make([]byte, 10)})
		seq += 10
		p.expectNone()
		p.step()
		a := p.next()
		if a.ack != seq || a.at.Sub(start) != 40*time.Millisecond {
			t.Fatalf("request %d: ACK %v after %v, want ack %d after 40ms (srtt %v)", i, a, a.at.Sub(start), seq-peerISN, c.rtt.srtt)
		}
		p.advance(time.Second)
	}
}

// A SYN beyond the old connection's sequence space reopens a connection in
// TIME-WAIT, and the new incarnation's ISN is the old SND.NXT plus 65537, as
// Linux chooses it (tcp_timewait_state_process), not a fresh clock-based one.
func TestTimeWaitReopenTakesOldSndNxtPlus65537AsISN(t *testing.T) {
	p := newPeer(t, nil)
	_, iss := p.timeWaitConn()
	p.advance(100 * time.Millisecond)
	p.send(tseg{flags: fS, seq: peerISN + 100000, wnd: 65535, opts: plainSyn})
	synAck := p.next()
	if synAck.flags != fSA || synAck.ack != peerISN+100001 {
		t.Fatalf("got %v, want a SYN-ACK of the new SYN", synAck)
	}
	if want := iss + 2 + 65537; synAck.seq != want {
		t.Errorf("new ISN %d, want old SND.NXT (ISS+2) + 65537 = %d", synAck.seq, want)
	}
	if got := p.e.Stats().TimeWaitRecycled; got != 1 {
		t.Errorf("TimeWaitRecycled %d, want 1", got)
	}
	if p.e.twISN != 0 {
		t.Errorf("the reopening ISN %d is still pending for the next passive open", p.e.twISN)
	}
}
