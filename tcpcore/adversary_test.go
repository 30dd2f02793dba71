package tcpcore

import (
	"testing"
	"time"

	"tunstack/wire"
)

// Hostile peers against the engine: each test names the rule that
// protects the connection and fails if the line that implements it goes.

// RFC 9293 §3.10.7.4 and RFC 5961 §5.2: an ACK of data not yet sent
// (SEG.ACK > SND.MAX) is dropped and answered with an ACK, rate limited as
// Linux's tcp_oow_rate_limited (tcp_invalid_ratelimit, 500 ms); SND.UNA,
// the send buffer and cwnd stay where they were. An ACK older than
// SND.UNA - MAX.SND.WND is dropped and answered the same way.
// Protection: processAck, `if s.ack.GT(c.sndMax)` (without it SND.UNA
// moves past SND.MAX) and `if s.ack.LT(c.sndUna.Add(-c.maxSndWnd))`
// (without it the too-old ACK draws no challenge ACK); the rate limit is
// sendChallengeAck's `now.Sub(c.lastOOWAck) < InvalidRateLimit` test.
func TestOptimisticAckBeyondSndMaxIsDroppedAndChallenged(t *testing.T) {
	p := newPeer(t, nil)
	conn, _ := sackConn10ms(p)
	mss := conn.MSS()
	conn.Write(p.now, make([]byte, 4*mss))
	if got := len(p.collectAll()); got != 4 {
		t.Fatalf("%d segments sent, want 4", got)
	}
	una, max := conn.sndUna, conn.sndMax
	cwnd := conn.cc.CongestionWindow()
	buffered := conn.sndBuf.Len()
	challenges := p.e.stats.ChallengeACKs

	p.advance(time.Millisecond)
	p.ackTo(max+Seq(10*mss), wire.TCPOptions{})
	a := p.expect(fA, max, peerISN+1)
	if len(a.payload) != 0 {
		t.Fatalf("challenge ACK carries %d bytes", len(a.payload))
	}
	p.expectNone()
	if conn.sndUna != una || conn.sndMax != max || conn.cc.CongestionWindow() != cwnd || conn.sndBuf.Len() != buffered {
		t.Fatalf("after an ACK beyond SND.MAX: SND.UNA %d SND.MAX %d cwnd %d buffered %d, want %d %d %d %d",
			conn.sndUna, conn.sndMax, conn.cc.CongestionWindow(), conn.sndBuf.Len(), una, max, cwnd, buffered)
	}
	if got := p.e.stats.ChallengeACKs - challenges; got != 1 {
		t.Fatalf("%d challenge ACKs counted, want 1", got)
	}

	// A second one 499 ms later is dropped without an answer; at 500 ms
	// it is answered again.
	p.advance(499 * time.Millisecond)
	p.collectAll() // the tail loss probe and retransmissions are not under test
	p.ackTo(max+1, wire.TCPOptions{})
	p.expectNone()
	p.advance(time.Millisecond)
	p.collectAll()
	p.ackTo(max+1, wire.TCPOptions{})
	p.expect(fA, conn.sndNxt, peerISN+1)
	if conn.sndUna != una {
		t.Fatalf("SND.UNA moved to %d", conn.sndUna)
	}

	// RFC 5961 §5.2: an ACK below SND.UNA - MAX.SND.WND.
	p.advance(500 * time.Millisecond)
	p.collectAll()
	p.ackTo(una.Add(-conn.maxSndWnd-1), wire.TCPOptions{})
	p.expect(fA, conn.sndNxt, peerISN+1)
	p.expectNone()
	if conn.sndUna != una {
		t.Fatalf("SND.UNA moved to %d", conn.sndUna)
	}
}

// ACK division (Savage et al.): the peer acknowledges one full-sized
// segment in many ACKs of a few bytes each. RFC 3465 §2.1 counts the bytes
// acknowledged, so the split cannot grow cwnd by more than the segment's
// worth. Linux (tcp_slow_start via tcp_cong_control) adds delivered
// packets, and a segment counts as delivered only when its last byte is
// acknowledged (tcp_clean_rtx_queue trims a partly acknowledged skb and
// counts nothing), so it grows by one segment. Without SACK the engine
// counts the bytes (growthBytes returns acked); with SACK it counts the
// segments delivered (noteDelivered in ackRecords, whole records only),
// so either way the 146 ACKs of 10 bytes grow cwnd by at most one MSS.
// Protection: Cubic.OnAck's slow start grows by slowStartIncrease(acked
// bytes); made to add one MSS per ACK (`slowStartIncrease(c.mss)` in
// linuxOnAck) the test fails: cwnd 80 segments instead of at most 11.
func TestAckDivisionGrowsSlowStartByBytesNotAcks(t *testing.T) {
	for _, sack := range []bool{false, true} {
		p := newPeer(t, nil)
		var conn *Conn
		var iss Seq
		if sack {
			conn, iss = sackConn10ms(p)
		} else {
			conn, iss = p.listenAndAcceptWith(plainSyn, SockOpts{SndBuf: 1 << 20})
		}
		mss := conn.MSS()
		cwnd := conn.cc.CongestionWindow()
		if cwnd != 10*mss {
			t.Fatalf("sack %v: initial cwnd %d, want %d", sack, cwnd, 10*mss)
		}
		conn.Write(p.now, make([]byte, 40*mss))
		if got := len(p.collectAll()); got != 10 {
			t.Fatalf("sack %v: %d segments sent, want 10", sack, got)
		}
		p.advance(10 * time.Millisecond)
		const piece = 10
		ack := iss + 1
		for n := 0; n < mss; n += piece {
			ack += Seq(min(piece, mss-n))
			p.send(tseg{flags: fA, seq: peerISN + 1, ack: ack, wnd: 512})
		}
		if ack != iss+1+Seq(mss) {
			t.Fatalf("acknowledged up to %d, want %d", ack, iss+1+Seq(mss))
		}
		got := conn.cc.CongestionWindow()
		if got > cwnd+mss {
			t.Errorf("sack %v: cwnd %d bytes (%d segments) after one segment acknowledged in %d ACKs, want at most %d",
				sack, got, got/mss, (mss+piece-1)/piece, cwnd+mss)
		}
		if got < cwnd {
			t.Errorf("sack %v: cwnd shrank to %d", sack, got)
		}
		t.Logf("sack %v: cwnd %d -> %d bytes", sack, cwnd, got)
	}
}

// Duplicate-ACK spoofing: a peer that sends far more duplicate ACKs than
// segments are in flight cannot make the engine send faster than one
// segment per duplicate, nor believe more delivered than is outstanding.
// Without SACK each duplicate stands for one segment delivered, but never
// more than the flight less the hole (Linux tcp_add_reno_sack and
// tcp_limit_reno_sacked, which also takes the excess for reordering,
// tcp_check_reno_reordering); PRR (RFC 6937 §3.2, Linux
// tcp_cwnd_reduction, prrUpdate) sends no more than is delivered, and
// ssthresh/RecoverFS of it while more than ssthresh is in flight.
// The peer's window holds the flight at 10 segments: of 100 duplicates
// the first 9 count, the fast retransmission goes on the third (RFC 5681
// §3.2, the limited transmit of RFC 3042 finds the window full), and
// nothing else is sent. With SACK a duplicate ACK without SACK blocks
// delivers nothing and deems nothing lost (Linux counts delivered and
// sacked_out from the scoreboard, and RACK marks losses only from it), so
// no recovery starts and nothing is sent.
// Protection: addRenoSack's c.limitRenoSacked(0); without it the 100
// spoofed duplicates count as 100 segments delivered of 10 and the test
// fails.
func TestDupAckSpoofingCountsNoMoreThanTheFlight(t *testing.T) {
	for _, sack := range []bool{false, true} {
		p := newPeer(t, nil)
		var conn *Conn
		var iss Seq
		if sack {
			conn, iss = sackConn10ms(p)
		} else {
			conn, iss = p.listenAndAcceptWith(plainSyn, SockOpts{SndBuf: 1 << 20})
		}
		mss := conn.MSS()
		wnd := uint16(10 * mss) // unscaled: ten segments
		if sack {
			wnd = uint16((10*mss + 127) >> 7) // scaled by 7: ten segments and 120 bytes
		}
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: wnd})
		conn.Write(p.now, make([]byte, 40*mss))
		if got := len(p.collectAll()); got != 10 {
			t.Fatalf("sack %v: %d segments sent, want 10", sack, got)
		}
		p.advance(10 * time.Millisecond)
		var sent []tseg
		for i := 1; i <= 100; i++ {
			p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: wnd})
			sent = append(sent, p.collectAll()...)
			if conn.renoSacked > conn.txq.len()-1 {
				t.Fatalf("sack %v: after %d duplicates %d segments counted delivered of %d outstanding",
					sack, i, conn.renoSacked, conn.txq.len())
			}
		}
		if sack {
			if len(sent) != 0 || conn.recovery != recoveryNone {
				t.Errorf("duplicate ACKs without SACK blocks drew %v, recovery %v", sent, conn.recovery)
			}
			continue
		}
		if len(sent) != 1 || sent[0].seq != iss+1 || len(sent[0].payload) != mss {
			t.Fatalf("100 duplicate ACKs drew %v, want the fast retransmission of %d alone", sent, iss+1)
		}
		if conn.renoSacked != 9 || conn.recovery != recoveryFast {
			t.Errorf("%d segments counted delivered, recovery %v, want 9 and fast recovery", conn.renoSacked, conn.recovery)
		}
		if ssthresh := conn.cc.SlowStartThreshold() / mss; ssthresh != 7 {
			t.Errorf("ssthresh %d segments, want 7", ssthresh)
		}
	}
}

// With the window open, each duplicate ACK lets at most one segment go:
// limited transmit (RFC 3042) on the first two, then PRR, which sends no
// more than is delivered (prr_out ≤ prr_delivered, RFC 6937 §3.2) and
// ssthresh/RecoverFS of it while the flight exceeds ssthresh: after 100
// duplicates no more than 100 + 1 (the fast retransmission goes on the
// third beside what PRR allows) have left, and prr_out never passes
// ceil(ssthresh × prr_delivered / RecoverFS) before the flight falls to
// ssthresh.
// Protection: prrUpdate's proportional branch
// `(ssthresh*c.prrDelivered+c.priorCwnd-1)/c.priorCwnd - c.prrOut`;
// made `c.prrDelivered - c.prrOut + 1` the test fails (4 segments on 3
// duplicates).
func TestDupAckSpoofingSendsOneSegmentPerDuplicateAtMost(t *testing.T) {
	p := newPeer(t, nil)
	conn, iss := p.listenAndAcceptWith(plainSyn, SockOpts{SndBuf: 1 << 20})
	mss := conn.MSS()
	conn.Write(p.now, make([]byte, 400*mss))
	if got := len(p.collectAll()); got != 10 {
		t.Fatalf("%d segments sent, want 10", got)
	}
	p.advance(10 * time.Millisecond)
	sent := 0
	for i := 1; i <= 100; i++ {
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
		sent += len(p.collectAll())
		if sent > i {
			t.Fatalf("%d segments sent on %d duplicate ACKs", sent, i)
		}
		if conn.recovery == recoveryFast && conn.inflightSegs() > 7 {
			if bound := (7*conn.prrDelivered + 9) / 10; conn.prrOut > bound {
				t.Fatalf("duplicate %d: PRR sent %d for %d delivered, want at most %d", i, conn.prrOut, conn.prrDelivered, bound)
			}
		}
	}
	if conn.recovery != recoveryFast || conn.priorCwnd != 10 {
		t.Fatalf("recovery %v from cwnd %d, want fast recovery from 10", conn.recovery, conn.priorCwnd)
	}
}
