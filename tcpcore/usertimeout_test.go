package tcpcore

import (
	"errors"
	"testing"
	"time"

	"tunstack/wire"
)

// untilClosed runs timers one at a time and returns the segments sent
// until the connection closes, failing if it is still open at limit.
func untilClosed(t *testing.T, p *peer, c *Conn, limit Time) []tseg {
	t.Helper()
	var out []tseg
	for c.State() != Closed {
		if dl, ok := p.e.NextDeadline(); !ok || dl > limit {
			t.Fatalf("still %v at %v", c.State(), time.Duration(p.now))
		}
		p.step()
		out = append(out, p.collectAll()...)
	}
	return out
}

// shortRTOPeer is a peer whose engine starts from a 200 ms RTO, so that
// the schedules below read in round numbers.
func shortRTOPeer(t *testing.T) *peer {
	prof := testProfile()
	prof.InitialRTO = 200 * time.Millisecond
	return newPeer(t, prof)
}

// RFC 5482 with Linux's rules: the retransmissions back off as usual and
// the connection gives up when the timer finds the user timeout passed
// since the first retransmission; the timer is clamped to reach that
// instant exactly. ETIMEDOUT, no RST. Without the option the same
// connection is still retransmitting then (tcp_retries2).
func TestUserTimeoutEndsRetransmission(t *testing.T) {
	for _, ut := range []time.Duration{0, 3 * time.Second} {
		p := shortRTOPeer(t)
		c, iss := p.listenAndAccept(plainSyn)
		if err := c.SetUserTimeout(p.now, ut); err != nil {
			t.Fatal(err)
		}
		rto := c.rtt.rto
		start := p.now
		c.Write(p.now, make([]byte, 100))
		p.expect(fPA, iss+1, peerISN+1)
		if ut == 0 {
			p.advance(rto + 3*time.Second)
			if c.State() != Established || c.retries != 4 {
				t.Fatalf("without a user timeout: %v after %d retransmissions", c.State(), c.retries)
			}
			continue
		}
		out := untilClosed(t, p, c, start.Add(time.Minute))
		// Retransmissions at 200 ms, then 400, 800, 1600 ms later; the
		// next, 3200 ms later, is clamped to the user timeout after the
		// first.
		want := []time.Duration{rto, 3 * rto, 7 * rto, 15 * rto}
		if len(out) != len(want) {
			t.Fatalf("sent %v, want retransmissions at %v", out, want)
		}
		for i, s := range out {
			if s.at.Sub(start) != want[i] || s.seq != iss+1 {
				t.Fatalf("segment %d: %v, want a retransmission at %v", i, s, want[i])
			}
		}
		if got := p.now.Sub(start); got != rto+ut {
			t.Fatalf("gave up at %v, want %v", got, rto+ut)
		}
		if !errors.Is(c.Err(), ErrTimedOut) {
			t.Fatalf("error %v, want ETIMEDOUT", c.HardErr())
		}
	}
}

// Linux retransmits_timed_out never gives up at a timeout that finds no
// retransmission yet: with a user timeout shorter than the RTO the first
// timeout still retransmits, and the clamped timer ends it the user
// timeout later.
func TestUserTimeoutShorterThanRTO(t *testing.T) {
	p := shortRTOPeer(t)
	c, iss := p.listenAndAccept(plainSyn)
	c.SetUserTimeout(p.now, 50*time.Millisecond)
	rto := c.rtt.rto
	start := p.now
	c.Write(p.now, make([]byte, 100))
	p.expect(fPA, iss+1, peerISN+1)
	out := untilClosed(t, p, c, start.Add(time.Minute))
	if len(out) != 1 || out[0].at.Sub(start) != rto {
		t.Fatalf("sent %v, want one retransmission at %v", out, rto)
	}
	if got := p.now.Sub(start); got != rto+50*time.Millisecond || !errors.Is(c.HardErr(), ErrTimedOut) {
		t.Fatalf("closed at %v with %v, want RTO + 50 ms, ETIMEDOUT", got, c.HardErr())
	}
}

// An ACK of new data restarts the clock from the next retransmission.
func TestUserTimeoutRestartsAfterProgress(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.SetUserTimeout(p.now, time.Second)
	c.SetNoDelay(p.now, true)
	c.Write(p.now, make([]byte, 100))
	p.expect(fPA, iss+1, peerISN+1)
	p.advance(900 * time.Millisecond) // retransmissions at 200 and 600 ms
	p.collectAll()
	c.Write(p.now, make([]byte, 100))
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 101, wnd: 65535})
	p.collectAll()
	restart := p.now
	untilClosed(t, p, c, restart.Add(time.Minute))
	// The second segment's first retransmission comes one RTO after the
	// ACK re-armed the timer (the handshake's RTT sample left 200 ms); one
	// user timeout after that the connection ends.
	if got := p.now.Sub(restart); got != c.rtt.rto+time.Second {
		t.Fatalf("gave up %v after the ACK, want RTO + 1 s = %v", got, c.rtt.rto+time.Second)
	}
}

// SYN-SENT: the time since the first SYN counts once a SYN was
// retransmitted (Linux's linear SYN timeouts: 1 s apart).
func TestUserTimeoutEndsConnect(t *testing.T) {
	p := newPeer(t, nil)
	c, err := p.e.Connect(p.now, local, remote, SockOpts{UserTimeout: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := p.now
	p.next()
	out := untilClosed(t, p, c, start.Add(time.Minute))
	if len(out) != 1 || !out[0].has(fS) || out[0].at.Sub(start) != time.Second {
		t.Fatalf("sent %v, want one SYN retransmission at 1 s", out)
	}
	if got := p.now.Sub(start); got != 1500*time.Millisecond || !errors.Is(c.HardErr(), ErrTimedOut) {
		t.Fatalf("gave up at %v with %v, want 1.5 s, ETIMEDOUT", got, c.HardErr())
	}
}

// Zero window: the user timeout runs from the first probe timer expiry,
// and ends the connection even though every probe is answered (Linux
// tcp_probe_timer); the probe timer is clamped to that instant. Without
// the option answered probes keep it open (RFC 1122 §4.2.2.17).
func TestUserTimeoutEndsZeroWindowProbing(t *testing.T) {
	for _, ut := range []time.Duration{0, 1000 * time.Millisecond} {
		p := shortRTOPeer(t)
		c, _ := zeroWindowConn(t, p)
		c.SetUserTimeout(p.now, ut)
		rto := c.rtt.rto // 200 ms: the persist interval starts there and doubles
		start := p.now
		var probes []time.Duration
		for c.State() != Closed && p.now.Sub(start) < 10*time.Second {
			p.step()
			for _, s := range p.collectAll() {
				probes = append(probes, s.at.Sub(start))
				p.send(tseg{flags: fA, seq: peerISN + 1, ack: c.sndUna, wnd: 0}) // answered, still shut
			}
		}
		if ut == 0 {
			if c.State() != Established {
				t.Fatalf("without a user timeout: %v", c.State())
			}
			continue
		}
		// Probes one and three RTOs in; the clock started at the first, so
		// the timer after the second, due four RTOs later, is clamped to
		// the user timeout after the first.
		want := []time.Duration{rto, 3 * rto}
		if len(probes) != len(want) || probes[0] != want[0] || probes[1] != want[1] {
			t.Fatalf("probes at %v, want %v", probes, want)
		}
		if got := p.now.Sub(start); got != rto+ut || !errors.Is(c.HardErr(), ErrTimedOut) {
			t.Fatalf("gave up at %v with %v, want %v, ETIMEDOUT", got, c.HardErr(), rto+ut)
		}
	}
}

// A window that opens stops the clock: a later zero window starts anew.
func TestUserTimeoutZeroWindowClockResetsWhenWindowOpens(t *testing.T) {
	p := shortRTOPeer(t)
	c, _ := zeroWindowConn(t, p)
	c.SetUserTimeout(p.now, time.Second)
	p.step() // first probe: the clock starts
	p.collectAll()
	p.advance(900 * time.Millisecond)
	p.collectAll()
	// The window opens for one segment, which goes; then shuts again.
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: c.sndUna, wnd: uint16(c.MSS())})
	d := p.next()
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ackFor(d), wnd: 0})
	reopened := p.now
	// The old clock would end it at the first probe of the new zero
	// window, 100 ms past its user timeout.
	p.advance(time.Second + 100*time.Millisecond)
	if c.State() != Established {
		t.Fatalf("%v 1.1 s after the window shut again", c.State())
	}
	untilClosed(t, p, c, p.now.Add(time.Minute))
	if got := p.now.Sub(reopened); got != c.rtt.rto+time.Second {
		t.Fatalf("gave up %v after the window shut again, want RTO + 1 s", got)
	}
}

// Keepalive with a user timeout (Linux tcp_keepalive_timer): the probe
// count no longer decides; a timer expiry that finds a probe unanswered
// and nothing received for the user timeout resets the connection.
func TestUserTimeoutWithKeepalive(t *testing.T) {
	cases := []struct {
		ut     time.Duration
		count  int
		probes int           // sent before the end
		end    time.Duration // from the last segment received
	}{
		{0, 2, 2, 20 * time.Second},                 // the count: probes at 10, 15 s; reset at 20 s
		{12 * time.Second, 9, 1, 15 * time.Second},  // first expiry after 12 s with a probe out
		{30 * time.Second, 2, 4, 30 * time.Second},  // past the count: probes at 10, 15, 20, 25 s
		{5 * time.Second, 9, 1, 15 * time.Second},   // no probe out at 10 s: one goes first
		{22 * time.Second, 1, 3, 25 * time.Second},  // count 1 ignored
		{10 * time.Second, 9, 1, 15 * time.Second},  // 10 s: the probe goes at 10 s, not yet out
		{15 * time.Second, 9, 1, 15 * time.Second},  // exactly at an expiry
		{16 * time.Second, 9, 2, 20 * time.Second},  // just after one
		{40 * time.Second, 99, 6, 40 * time.Second}, // probes at 10..35 s
	}
	for _, tc := range cases {
		p := newPeer(t, nil)
		c, iss := p.listenAndAccept(plainSyn)
		start := p.now
		c.SetUserTimeout(p.now, tc.ut)
		c.SetKeepAlive(p.now, true, 10*time.Second, 5*time.Second, tc.count)
		out := untilClosed(t, p, c, start.Add(time.Hour))
		if len(out) != tc.probes+1 {
			t.Fatalf("ut %v count %d: sent %v, want %d probes then RST", tc.ut, tc.count, out, tc.probes)
		}
		rst := out[len(out)-1]
		if rst.flags != fRA || rst.seq != iss+1 || rst.at.Sub(start) != tc.end {
			t.Fatalf("ut %v count %d: ended with %v, want RST at %v", tc.ut, tc.count, rst, tc.end)
		}
		if !errors.Is(c.HardErr(), ErrTimedOut) {
			t.Fatalf("error %v", c.HardErr())
		}
	}
}

// An answered keepalive probe restarts the idle time the user timeout is
// measured against.
func TestUserTimeoutKeepaliveAnswered(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.SetUserTimeout(p.now, 12*time.Second)
	c.SetKeepAlive(p.now, true, 10*time.Second, 5*time.Second, 9)
	p.advance(10 * time.Second)
	p.expect(fA, iss, peerISN+1)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
	answered := p.now
	out := untilClosed(t, p, c, p.now.Add(time.Hour))
	if got := p.now.Sub(answered); got != 15*time.Second || len(out) != 2 {
		t.Fatalf("reset %v after the answer with %v, want 15 s, one probe then RST", got, out)
	}
}

// The option's value: whole milliseconds, negative is EINVAL, a listener's
// is inherited.
func TestUserTimeoutOption(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.listenAndAcceptWith(plainSyn, SockOpts{UserTimeout: 2500 * time.Millisecond})
	if c.UserTimeout() != 2500*time.Millisecond {
		t.Fatalf("inherited %v", c.UserTimeout())
	}
	if err := c.SetUserTimeout(p.now, -time.Millisecond); !errors.Is(err, ErrInvalid) || c.UserTimeout() != 2500*time.Millisecond {
		t.Fatalf("negative: %v, value now %v", err, c.UserTimeout())
	}
	c.SetUserTimeout(p.now, 1234567*time.Microsecond)
	if c.UserTimeout() != 1234*time.Millisecond {
		t.Fatalf("got %v, want 1.234 s", c.UserTimeout())
	}
	c.SetUserTimeout(p.now, 0)
	if c.UserTimeout() != 0 {
		t.Fatalf("off: %v", c.UserTimeout())
	}
}

// Linux's tail loss probe (tcp_send_loss_probe, __tcp_retransmit_skb) does
// not start retrans_stamp: the user timeout counts from the first
// retransmission by the RTO, so a probe sent before it does not bring the
// abort forward.
func TestUserTimeoutCountsFromTheRTORetransmissionNotTheProbe(t *testing.T) {
	p := newPeer(t, testProfile())
	// The probe needs SACK (Linux tcp_schedule_loss_probe).
	c, iss := p.listenAndAccept(wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true})
	// One RTT sample of 10 ms arms the tail loss probe.
	c.Write(p.now, make([]byte, 10))
	p.expect(fPA, iss+1, peerISN+1)
	p.advance(10 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 11, wnd: 65535})
	const ut = time.Second
	if err := c.SetUserTimeout(p.now, ut); err != nil {
		t.Fatal(err)
	}
	start := p.now
	c.Write(p.now, make([]byte, 100))
	p.expect(fPA, iss+11, peerISN+1)
	out := untilClosed(t, p, c, start.Add(time.Minute))
	if len(out) < 2 {
		t.Fatalf("sent %v, want a probe and an RTO retransmission", out)
	}
	probe, rto := out[0], out[1]
	// The probe goes at 2*SRTT plus the delayed-ACK allowance, well
	// before the RTO (200 ms at least), which then backs off.
	if probe.seq != iss+11 || rto.seq != iss+11 || probe.at.Sub(start) >= 230*time.Millisecond || c.Counters().TLPRetransmits != 1 {
		t.Fatalf("sent %v (written at %v, %d probe(s)), want the probe then the RTO retransmission of the same data", out, start, c.Counters().TLPRetransmits)
	}
	if got := p.now.Sub(rto.at); got != ut {
		t.Errorf("gave up %v after the RTO retransmission (%v after the probe), want the user timeout %v after the former", got, p.now.Sub(probe.at), ut)
	}
	if !errors.Is(c.Err(), ErrTimedOut) {
		t.Errorf("error %v, want ETIMEDOUT", c.Err())
	}
}
