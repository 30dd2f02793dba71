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
