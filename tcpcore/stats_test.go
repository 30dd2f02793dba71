package tcpcore

import (
	"testing"
	"time"
)

// The engine-wide counters that mirror Linux's nstat counters: each test
// drives the event in virtual time and checks the counter moves by exactly
// one at the instant the event happens, and not before.

// stats is the engine's counters.
func (p *peer) stats() Stats { return p.e.Stats() }

func TestStatsPassiveOpensCountCompletedHandshakesNotSYNs(t *testing.T) {
	p := newPeer(t, nil)
	if _, err := p.e.Listen(p.now, local, 16, SockOpts{}); err != nil {
		t.Fatal(err)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa := p.next()
	if st := p.stats(); st.PassiveEstablished != 0 || st.PassiveOpens != 1 {
		t.Fatalf("after the SYN: PassiveEstablished %d, PassiveOpens %d; want 0 and 1", st.PassiveEstablished, st.PassiveOpens)
	}
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535})
	if st := p.stats(); st.PassiveEstablished != 1 {
		t.Fatalf("after the final ACK: PassiveEstablished %d, want 1", st.PassiveEstablished)
	}
}

func TestStatsRSTToSynQueueIsAnAttemptFail(t *testing.T) {
	p := newPeer(t, nil)
	if _, err := p.e.Listen(p.now, local, 16, SockOpts{}); err != nil {
		t.Fatal(err)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	p.next()
	p.send(tseg{flags: fR, seq: peerISN + 1})
	if st := p.stats(); st.AttemptFails != 1 || st.EstabResets != 0 {
		t.Fatalf("AttemptFails %d, EstabResets %d; want 1 and 0", st.AttemptFails, st.EstabResets)
	}
}

func TestStatsEstabResetsOnlyFromEstablishedAndCloseWait(t *testing.T) {
	p := newPeer(t, nil)
	_, iss := p.listenAndAccept(plainSyn)
	p.send(tseg{flags: fR, seq: peerISN + 1, ack: iss + 1})
	if n := p.stats().EstabResets; n != 1 {
		t.Fatalf("RST in ESTABLISHED: EstabResets %d, want 1", n)
	}

	// FIN-WAIT-1 to CLOSED is no established reset for Linux.
	p = newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.Close(p.now)
	p.expect(fFA, iss+1, peerISN+1)
	p.send(tseg{flags: fR, seq: peerISN + 1, ack: iss + 1})
	if c.State() != Closed {
		t.Fatalf("state %v, want CLOSED", c.State())
	}
	if n := p.stats().EstabResets; n != 0 {
		t.Fatalf("RST in FIN-WAIT-1: EstabResets %d, want 0", n)
	}
}

func TestStatsTimeoutsAndAbortOnTimeoutAtTheGiveUp(t *testing.T) {
	prof := testProfile()
	prof.Retries2 = 3
	p := newPeer(t, prof)
	c, iss := p.listenAndAccept(plainSyn)
	c.Write(p.now, []byte("hello"))
	p.expect(fPA, iss+1, peerISN+1)
	for i := 1; i <= prof.Retries2; i++ {
		p.step()
		p.expect(fPA, iss+1, peerISN+1)
		if st := p.stats(); st.Timeouts != uint64(i) || st.AbortOnTimeout != 0 {
			t.Fatalf("after timeout %d: Timeouts %d, AbortOnTimeout %d", i, st.Timeouts, st.AbortOnTimeout)
		}
	}
	p.step() // gives up: counted as a timeout too, as Linux does
	st := p.stats()
	if c.State() != Closed || st.Timeouts != uint64(prof.Retries2+1) || st.AbortOnTimeout != 1 || st.EstabResets != 1 {
		t.Fatalf("after the give-up: state %v, Timeouts %d, AbortOnTimeout %d, EstabResets %d; want CLOSED, %d, 1, 1",
			c.State(), st.Timeouts, st.AbortOnTimeout, st.EstabResets, prof.Retries2+1)
	}
}

func TestStatsSynTimeoutsAndSynRetrans(t *testing.T) {
	p := newPeer(t, nil)
	if _, err := p.e.Connect(p.now, local, remote, SockOpts{}); err != nil {
		t.Fatal(err)
	}
	syn := p.next()
	if st := p.stats(); st.Timeouts != 0 || st.SynRetrans != 0 || st.RetransSegs != 0 {
		t.Fatalf("after the first SYN: Timeouts %d, SynRetrans %d, RetransSegs %d; want 0", st.Timeouts, st.SynRetrans, st.RetransSegs)
	}
	p.step()
	p.expect(fS, syn.seq, 0)
	if st := p.stats(); st.Timeouts != 1 || st.SynRetrans != 1 || st.RetransSegs != 1 || st.FastRetrans != 0 {
		t.Fatalf("after one SYN timeout: Timeouts %d, SynRetrans %d, RetransSegs %d, FastRetrans %d; want 1, 1, 1, 0",
			st.Timeouts, st.SynRetrans, st.RetransSegs, st.FastRetrans)
	}
}

func TestStatsDSACKOldSentForADuplicateBelowRcvNxt(t *testing.T) {
	p := newPeer(t, nil)
	synOpts := plainSyn
	synOpts.SACKPermitted = true
	_, iss := p.listenAndAccept(synOpts)
	data := tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)}
	p.send(data)
	p.advance(time.Second)
	p.expect(fA, iss+1, peerISN+101)
	if st := p.stats(); st.DSACKOldSent != 0 {
		t.Fatalf("before the duplicate: DSACKOldSent %d, want 0", st.DSACKOldSent)
	}
	p.send(data)
	a := p.expect(fA, iss+1, peerISN+101)
	if a.opts.NumSACK != 1 {
		t.Fatalf("the duplicate's ACK has %d SACK blocks, want the D-SACK", a.opts.NumSACK)
	}
	if st := p.stats(); st.DSACKOldSent != 1 || st.DSACKOfoSent != 0 {
		t.Fatalf("after the duplicate: DSACKOldSent %d, DSACKOfoSent %d; want 1, 0", st.DSACKOldSent, st.DSACKOfoSent)
	}
}

func TestStatsDelayedACKsCountTheTimersACK(t *testing.T) {
	prof := testProfile()
	prof.QuickAcks = 0
	p := newPeer(t, prof)
	_, iss := p.listenAndAccept(plainSyn)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
	p.expectNone()
	if n := p.stats().DelayedACKs; n != 0 {
		t.Fatalf("before the timer: DelayedACKs %d, want 0", n)
	}
	p.advance(time.Second)
	p.expect(fA, iss+1, peerISN+101)
	if n := p.stats().DelayedACKs; n != 1 {
		t.Fatalf("after the timer's ACK: DelayedACKs %d, want 1", n)
	}
}

func TestStatsTimeWaitExpired(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.timeWaitConn()
	if n := p.stats().TimeWaitExpired; n != 0 {
		t.Fatalf("in TIME-WAIT: TimeWaitExpired %d, want 0", n)
	}
	p.advance(p.e.prof.TimeWaitLen - time.Nanosecond)
	if c.State() != TimeWait || p.stats().TimeWaitExpired != 0 {
		t.Fatalf("just before the timer: state %v, TimeWaitExpired %d", c.State(), p.stats().TimeWaitExpired)
	}
	p.advance(time.Nanosecond)
	if c.State() != Closed || p.stats().TimeWaitExpired != 1 {
		t.Fatalf("at the timer: state %v, TimeWaitExpired %d; want CLOSED, 1", c.State(), p.stats().TimeWaitExpired)
	}
}

func TestStatsAbortOnCloseWithUnreadDataAndOnDataWithZeroLinger(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: []byte("unread")})
	c.Close(p.now)
	if st := p.stats(); st.AbortOnClose != 1 || st.AbortOnData != 0 || st.EstabResets != 1 {
		t.Fatalf("close with unread data: AbortOnClose %d, AbortOnData %d, EstabResets %d; want 1, 0, 1", st.AbortOnClose, st.AbortOnData, st.EstabResets)
	}

	p = newPeer(t, nil)
	c, _ = p.listenAndAcceptWith(plainSyn, SockOpts{LingerOn: true})
	c.Close(p.now)
	if st := p.stats(); st.AbortOnClose != 0 || st.AbortOnData != 1 {
		t.Fatalf("close with SO_LINGER 0: AbortOnClose %d, AbortOnData %d; want 0, 1", st.AbortOnClose, st.AbortOnData)
	}
}

func TestStatsKeepAlivesAndWinProbes(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.SetKeepAlive(p.now, true, 10*time.Second, 2*time.Second, 3)
	p.advance(10*time.Second - time.Nanosecond)
	if n := p.stats().KeepAlives; n != 0 {
		t.Fatalf("before the idle time: KeepAlives %d, want 0", n)
	}
	p.advance(time.Nanosecond)
	p.expect(fA, iss, peerISN+1)
	if n := p.stats().KeepAlives; n != 1 {
		t.Fatalf("after the first probe: KeepAlives %d, want 1", n)
	}

	p = newPeer(t, nil)
	c, iss = p.listenAndAccept(plainSyn)
	c.Write(p.now, []byte("x"))
	p.expect(fPA, iss+1, peerISN+1)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 2, wnd: 0})
	c.Write(p.now, []byte("y"))
	p.expectNone()
	if n := p.stats().WinProbes; n != 0 {
		t.Fatalf("before the persist timer: WinProbes %d, want 0", n)
	}
	p.step()
	p.next()
	if n := p.stats().WinProbes; n != 1 {
		t.Fatalf("after the first zero-window probe: WinProbes %d, want 1", n)
	}
}
