package tcpcore

import (
	"testing"
	"time"

	"tunstack/wire"
)

// Tests of the congestion window's and the retransmission timer's rules
// as Linux applies them: backoff, idle restart, the cwnd reaction to tail
// loss probes, cwnd validation, F-RTO and where PSH ends a packet.

// sackConn10ms opens a passive SACK connection (window scale 7, as the
// conformance scripts' peer offers) whose handshake took 10 ms, so SRTT
// is 10 ms and the RTO 210 ms (SRTT + the 200 ms floor). Its send buffer
// (SO_SNDBUF 1 MiB) takes every write these tests make whole.
func sackConn10ms(p *peer) (*Conn, Seq) {
	p.t.Helper()
	return sackConn(p, 10*time.Millisecond)
}

// sackConnSent is sackConn10ms with n full segments written and sent, and
// one RTT (10 ms) passed since: the first window waits for its ACKs.
func sackConnSent(p *peer, n int) (*Conn, Seq) {
	p.t.Helper()
	c, iss := sackConn10ms(p)
	c.Write(p.now, make([]byte, n*c.MSS()))
	p.collectAll()
	p.advance(10 * time.Millisecond)
	return c, iss
}

// sackConn is sackConn10ms with a handshake of rtt.
func sackConn(p *peer, rtt time.Duration) (*Conn, Seq) {
	p.t.Helper()
	l, err := p.e.Listen(p.now, local, 4, SockOpts{SndBuf: 1 << 20})
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535,
		opts: wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true, HasWScale: true, WScale: 7}})
	sa := p.next()
	p.advance(rtt)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 512})
	c, err := l.Accept(p.now)
	if err != nil {
		p.t.Fatal(err)
	}
	return c, sa.seq
}

// ackTo sends the peer's pure ACK of everything below ack (window 512 <<
// 7, as in sackConn10ms).
func (p *peer) ackTo(ack Seq, opts wire.TCPOptions) {
	p.t.Helper()
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ack, wnd: 512, opts: opts})
}

// Linux behaviour (tcp_is_cwnd_limited): in slow start cwnd grows while
// it is below twice the largest flight of the round trip. A sender that
// keeps half of its window of 10 in flight (5 segments a round trip) does
// not grow it; one that keeps 6 in flight grows it by the 6 acknowledged,
// once: 16 is more than twice 6.
func TestSlowStartGrowsOnlyBelowTwiceTheFlight(t *testing.T) {
	for _, c := range []struct{ perRound, want int }{{5, 10}, {6, 16}} {
		p := newPeer(t, nil)
		conn, iss := sackConn10ms(p)
		mss := conn.MSS()
		next := iss + 1
		for range 3 {
			conn.Write(p.now, make([]byte, c.perRound*mss))
			p.collectAll()
			next += Seq(c.perRound * mss)
			p.advance(10 * time.Millisecond)
			p.ackTo(next, wire.TCPOptions{})
		}
		if got := conn.ccw().CongestionWindow() / mss; got != c.want {
			t.Errorf("%d segments a round trip: cwnd %d after three rounds, want %d", c.perRound, got, c.want)
		}
	}
}

// pshPattern is which of segs carry PSH, as a string of P and -.
func pshPattern(segs []tseg) string {
	b := make([]byte, len(segs))
	for i, s := range segs {
		b[i] = '-'
		if s.has(fP) {
			b[i] = 'P'
		}
	}
	return string(b)
}

// Linux behaviour (tcp_write_xmit, tcp_cwnd_test, tcp_transmit_skb): each
// transmission pass builds its own TSO packets, each at most tso_segs
// (two on a 10 ms path), half the congestion window and the room left in
// it; every packet of more than one segment ends with PSH, one of a single
// segment has none unless it ends the data written. A window of 5 goes as
// 2+2+1; the ACK of two segments then lets 4 go, as 2+2 counted afresh. A
// window of 3 goes one segment to a packet; grown to 5, with one segment
// in flight, it sends 2+2.
func TestPSHEndsEachPacketOfAPass(t *testing.T) {
	for _, c := range []struct {
		iw          int
		first, next string
	}{{5, "-P-P-", "-P-P"}, {3, "---", "-P-P"}} {
		prof := testProfile()
		prof.Congestion = "reno"
		prof.InitialCwndSegments = c.iw
		p := newPeer(t, prof)
		conn, iss := sackConn10ms(p)
		mss := conn.MSS()
		conn.Write(p.now, make([]byte, 30*mss))
		if got := pshPattern(p.collectAll()); got != c.first {
			t.Errorf("initial window %d: PSH %q, want %q", c.iw, got, c.first)
		}
		p.advance(10 * time.Millisecond)
		p.ackTo(iss+1+Seq(2*mss), wire.TCPOptions{})
		if got := pshPattern(p.collectAll()); got != c.next {
			t.Errorf("initial window %d, after an ACK of two: PSH %q, want %q", c.iw, got, c.next)
		}
	}
}

// RFC 6298 §5 with Karn's algorithm, as Linux (tcp_ack_update_rtt resets
// icsk_backoff only with an RTT sample): after two timeouts the RTO is 4 x
// 210 ms, and the ACK of the retransmission, which gives no sample, leaves
// it so. The next lost segment is probed at 2*SRTT + 200 ms and resent 840
// ms after the probe. An ACK of data sent once is a sample, and the RTO is
// 210 ms again.
func TestBackedOffRTOKeptUntilRTTSample(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := sackConn10ms(p)
	// resends writes one segment at seq and returns when the next n
	// transmissions of it came, counted from the first.
	resends := func(seq Seq, n int) []time.Duration {
		t.Helper()
		c.Write(p.now, make([]byte, 1000))
		orig := p.expect(fPA, seq, peerISN+1)
		var at []time.Duration
		for i := 0; i < n; i++ {
			p.step()
			r := p.expect(fPA, seq, peerISN+1)
			at = append(at, r.at.Sub(orig.at))
		}
		return at
	}
	ms := func(d ...time.Duration) []time.Duration {
		for i := range d {
			d[i] *= time.Millisecond
		}
		return d
	}
	same := func(a, b []time.Duration) bool {
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return len(a) == len(b)
	}
	// The probe at 210 ms (the PTO of 220 ms capped by the RTO), the RTO
	// 210 ms after it, then the second timeout 420 ms later.
	if at := resends(iss+1, 3); !same(at, ms(210, 420, 840)) || c.backoff != 2 {
		t.Fatalf("first episode: resends at %v, backoff %d", at, c.backoff)
	}
	p.advance(10 * time.Millisecond)
	p.ackTo(iss+1001, wire.TCPOptions{})
	if c.backoff != 2 {
		t.Fatalf("the ACK of a retransmission reset the backoff to %d", c.backoff)
	}
	// Still backed off: the probe at 220 ms, the RTO 4 x 210 ms after it.
	if at := resends(iss+1001, 2); !same(at, ms(220, 220+840)) {
		t.Fatalf("backed off: resends at %v, want 220ms and 1.06s", at)
	}
	p.advance(10 * time.Millisecond)
	p.ackTo(iss+2001, wire.TCPOptions{})
	// A valid sample: data sent once, acknowledged 10 ms later.
	c.Write(p.now, make([]byte, 1000))
	p.expect(fPA, iss+2001, peerISN+1)
	p.advance(10 * time.Millisecond)
	p.ackTo(iss+3001, wire.TCPOptions{})
	if c.backoff != 0 {
		t.Fatalf("backoff %d after an RTT sample", c.backoff)
	}
	if at := resends(iss+3001, 2); !same(at, ms(210, 420)) {
		t.Fatalf("collapsed: resends at %v, want 210ms and 420ms", at)
	}
}

// sentBytes is the payload of segs.
func sentBytes(segs []tseg) int {
	n := 0
	for _, s := range segs {
		n += len(s.payload)
	}
	return n
}

// RFC 2861 §3 as Linux restarts an idle connection (tcp_cwnd_restart): cwnd
// halves once for each RTO of idleness beyond the first, not below the
// initial window. cwnd 40, idle 450 ms with an RTO of 300 ms: the next
// write sends 20 segments. RFC 5681 §4.1 alone restarts from the initial
// window, 10.
func TestIdleRestartHalvesCwndPerRTO(t *testing.T) {
	for _, halving := range []bool{true, false} {
		prof := testProfile()
		prof.Congestion = "reno"
		prof.IdleRestartHalving = halving
		p := newPeer(t, prof)
		c, iss := sackConn(p, 100*time.Millisecond)
		mss := c.MSS()
		c.Write(p.now, make([]byte, 30*mss))
		p.collectAll()
		p.advance(100 * time.Millisecond)
		p.ackTo(iss+1+Seq(10*mss), wire.TCPOptions{})
		p.collectAll()
		p.advance(100 * time.Millisecond)
		p.ackTo(iss+1+Seq(30*mss), wire.TCPOptions{})
		if got := c.ccw().CongestionWindow() / mss; got != 40 || c.rtt.rto != 300*time.Millisecond {
			t.Fatalf("cwnd %d, RTO %v before the idle period, want 40 and 300ms", got, c.rtt.rto)
		}
		p.advance(350 * time.Millisecond) // 450 ms since the last segment went
		c.Write(p.now, make([]byte, 30*mss))
		want := 20
		if !halving {
			want = 10
		}
		if got := sentBytes(p.collectAll()) / mss; got != want {
			t.Errorf("halving %v: %d segments after the idle period, want %d", halving, got, want)
		}
	}
}

// Linux behaviour (tcp_event_data_sent sets lsndtime for every data
// segment): a tail loss probe that resends the last segment ends an idle
// period like new data. A write 10 ms after the probe's ACK finds the
// window of 20 that slow start built, not a restart to 10, although the
// last new data went out more than an RTO earlier.
func TestTailLossProbeEndsIdlePeriod(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := sackConnSent(p, 10)
	mss := c.MSS()
	p.ackTo(iss+1+Seq(9*mss), wire.TCPOptions{})
	p.step() // the probe resends the last segment
	p.expect(fPA, iss+1+Seq(9*mss), peerISN+1)
	p.advance(10 * time.Millisecond)
	p.ackTo(iss+1+Seq(10*mss), wire.TCPOptions{})
	c.Write(p.now, make([]byte, 30*mss))
	if got := sentBytes(p.collectAll()) / mss; got != 20 {
		t.Fatalf("%d segments after the probe, want 20", got)
	}
}

// Linux behaviour (tcp_enter_loss): a timeout starts a new undo episode
// unless it repeats one on the same SND.UNA. After a partial ACK in loss
// recovery the next timeout is a new one, although the backoff (kept, as
// the ACK gave no RTT sample) says two timeouts ran.
func TestTimeoutAfterPartialAckStartsNewUndoEpisode(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	segs := sendSegments(t, p, c, 4)
	p.step() // the RTO resends the first segment
	p.expect(fA, iss+1, peerISN+1)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ackFor(segs[0]), wnd: 65535})
	p.collectAll()
	if c.recovery != recoveryLoss || c.backoff != 1 || c.undoMarker != iss+1 {
		t.Fatalf("after the partial ACK: %v, backoff %d, undo marker %d", c.recovery, c.backoff, c.undoMarker-iss)
	}
	p.step() // a second timeout, on the new SND.UNA
	p.collectAll()
	if c.backoff != 2 || c.undoMarker != ackFor(segs[0]) {
		t.Fatalf("second timeout: backoff %d, undo marker %d, want 2 and %d", c.backoff, c.undoMarker-iss, ackFor(segs[0])-iss)
	}
}

// RFC 8985 §7.4 as Linux's tcp_process_tlp_ack: the last segment of a
// flight is lost and the probe resends it. The ACK of the probe alone
// (SND.UNA at the probe's SND.MAX) cannot tell a repaired loss from a late
// ACK; the next ACK can. Beyond the probe with no D-SACK: the loss was
// real, and cwnd is reduced as fast recovery would (Reno: 20 -> 10), so
// an ACK of one segment with 20 in flight sends nothing. With a D-SACK of
// the probe, or a pure duplicate ACK, in between: both copies arrived, no
// reduction, and slow start sends two.
func TestTailLossProbeOutcomeSetsCwnd(t *testing.T) {
	for _, c := range []struct {
		name     string
		between  func(p *peer, probeEnd Seq)
		cwnd     int
		segsSent int
	}{
		{"loss", func(*peer, Seq) {}, 10, 0},
		{"dsack", func(p *peer, end Seq) {
			var o wire.TCPOptions
			o.NumSACK = 1
			o.SACK[0] = wire.SACKBlock{Left: uint32(end) - 1460, Right: uint32(end)}
			p.ackTo(end, o)
		}, 21, 2},
		{"dupack", func(p *peer, end Seq) { p.ackTo(end, wire.TCPOptions{}) }, 21, 2},
	} {
		prof := testProfile()
		prof.Congestion = "reno"
		p := newPeer(t, prof)
		conn, iss := sackConnSent(p, 10)
		mss := conn.MSS()
		p.ackTo(iss+1+Seq(9*mss), wire.TCPOptions{})
		p.step() // the probe resends the last segment
		p.expect(fPA, iss+1+Seq(9*mss), peerISN+1)
		p.advance(10 * time.Millisecond)
		end := iss + 1 + Seq(10*mss)
		p.ackTo(end, wire.TCPOptions{})
		c.between(p, end)
		conn.Write(p.now, make([]byte, 30*mss))
		if got := sentBytes(p.collectAll()) / mss; got != 20 {
			t.Fatalf("%s: %d segments after the probe's ACK, want 20", c.name, got)
		}
		p.advance(10 * time.Millisecond)
		p.ackTo(end+Seq(mss), wire.TCPOptions{})
		got := sentBytes(p.collectAll()) / mss
		if cwnd := conn.ccw().CongestionWindow() / mss; cwnd != c.cwnd || got != c.segsSent {
			t.Errorf("%s: after the next ACK cwnd %d and %d segments sent, want %d and %d", c.name, cwnd, got, c.cwnd, c.segsSent)
		}
	}
}

// frtoSetup runs the opening of the F-RTO scenarios on a 10 ms path: a
// write of 30 segments sends 10, the tail loss probe sends the eleventh,
// and the timeout resends the first, whose ACK then comes. It returns the
// segments that ACK drew.
func frtoSetup(t *testing.T, frto bool) (*peer, *Conn, Seq, []tseg) {
	t.Helper()
	prof := testProfile()
	prof.Congestion = "reno"
	prof.FRTO = frto
	p := newPeer(t, prof)
	c, iss := sackConn10ms(p)
	mss := c.MSS()
	c.Write(p.now, make([]byte, 30*mss))
	if got := len(p.collectAll()); got != 10 {
		t.Fatalf("%d segments in the initial window", got)
	}
	p.step() // the probe: new data
	p.expect(fA, iss+1+Seq(10*mss), peerISN+1)
	p.step() // the timeout
	p.expect(fA, iss+1, peerISN+1)
	if c.recovery != recoveryLoss || c.frto != frto {
		t.Fatalf("after the timeout: %v, frto %v", c.recovery, c.frto)
	}
	p.advance(10 * time.Millisecond)
	p.ackTo(iss+1+Seq(mss), wire.TCPOptions{})
	return p, c, iss, p.collectAll()
}

// RFC 5682 §3.1 as Linux runs it (tcp_process_loss with tcp_frto): the
// ACK of the timeout's retransmission makes the sender send two new
// segments (slow start from one) instead of resending the second and
// third (step 2b). The next ACK covers segments sent once, before the
// timeout: it was spurious (step 3b), the window reduction is undone, and
// slow start sends the 17 remaining segments at once.
func TestFRTOUndoesSpuriousTimeout(t *testing.T) {
	p, c, iss, segs := frtoSetup(t, true)
	mss := c.MSS()
	if len(segs) != 2 || segs[0].seq != iss+1+Seq(11*mss) || segs[1].seq != iss+1+Seq(12*mss) {
		t.Fatalf("step 2b sent %v, want the 12th and 13th segments", segs)
	}
	p.advance(10 * time.Millisecond)
	p.ackTo(iss+1+Seq(11*mss), wire.TCPOptions{})
	segs = p.collectAll()
	if c.recovery != recoveryNone || c.Info().Counters.SpuriousUndos != 1 {
		t.Fatalf("after the ACK of data sent once: %v, %d undos", c.recovery, c.Info().Counters.SpuriousUndos)
	}
	if sentBytes(segs) != 17*mss || segs[0].seq != iss+1+Seq(13*mss) {
		t.Fatalf("after the undo: %d bytes from %d, want the 17 remaining segments", sentBytes(segs), segs[0].seq-iss)
	}
}

// RFC 5682 §3.1 step 3a: after the new data of step 2b, an ACK that SACKs
// it while the second segment is still missing shows the loss was real:
// F-RTO gives up and the lost segments are resent. Without F-RTO (Linux
// tcp_frto=0, RFC 5681 §3.1) the ACK of the retransmission resends the
// second and third segments at once.
func TestFRTOFallsBackOnRealLoss(t *testing.T) {
	p, c, iss, _ := frtoSetup(t, true)
	mss := c.MSS()
	var o wire.TCPOptions
	o.NumSACK = 1
	o.SACK[0] = wire.SACKBlock{Left: uint32(iss + 1 + Seq(11*mss)), Right: uint32(iss + 1 + Seq(12*mss))}
	p.advance(10 * time.Millisecond)
	p.ackTo(iss+1+Seq(mss), o)
	if c.frto || c.recovery != recoveryLoss {
		t.Fatalf("after a SACK of the new data: frto %v, %v", c.frto, c.recovery)
	}
	if segs := p.collectAll(); len(segs) == 0 || segs[0].seq != iss+1+Seq(mss) {
		t.Fatalf("after a SACK of the new data sent %v, want the second segment again", segs)
	}

	_, c, iss, segs := frtoSetup(t, false)
	if len(segs) != 2 || segs[0].seq != iss+1+Seq(mss) || segs[1].seq != iss+1+Seq(2*mss) {
		t.Fatalf("without F-RTO the ACK of the retransmission sent %v, want the second and third segments", segs)
	}
}
