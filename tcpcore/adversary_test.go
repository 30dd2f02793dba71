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
