package tcpcore

import (
	"testing"
	"time"
)

// Linux behaviour (tcp_clean_rtx_queue's ca_rtt_us to the congestion
// control's pkts_acked; CUBIC's HyStart delay test): every ACK of new data
// gives CUBIC the time since the newest segment it acknowledges was sent,
// so a round trip 25 ms slower than the first (more than the 12.5 ms
// margin of a 100 ms minimum) ends slow start at its ninth ACK, with
// ssthresh = cwnd. The engine's own RTT estimator times one segment per
// round trip; HyStart needs the per-ACK samples.
func TestHyStartEndsSlowStartOnPerAckDelaySamples(t *testing.T) {
	p := newPeer(t, nil) // linux profile: CUBIC, IW10
	c, iss := p.listenAndAcceptWith(plainSyn, SockOpts{SndBuf: 1 << 20})
	mss := c.MSS()
	c.SetNoDelay(p.now, true)
	c.Write(p.now, make([]byte, 100*mss))
	una := iss + 1
	ackTwo := func() {
		una += Seq(2 * mss)
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: una, wnd: 65535})
		p.collect()
		p.out = p.out[:0]
	}
	p.collect()
	p.out = p.out[:0]
	p.advance(100 * time.Millisecond)
	for i := 0; i < 5; i++ { // first round: 100 ms, cwnd 10 -> 20
		ackTwo()
	}
	if in := c.Info(); in.CwndBytes != 20*mss || in.SSThreshBytes < 1<<29 {
		t.Fatalf("after the first round: cwnd %d ssthresh %d, want 20 segments in slow start", in.CwndBytes/mss, in.SSThreshBytes)
	}
	p.advance(125 * time.Millisecond)
	for i := 1; i <= 8; i++ {
		ackTwo()
	}
	if in := c.Info(); in.CwndBytes != 36*mss || in.SSThreshBytes < 1<<29 {
		t.Fatalf("after 8 ACKs of the slower round: cwnd %d ssthresh %d, want 36 segments, still in slow start", in.CwndBytes/mss, in.SSThreshBytes)
	}
	ackTwo()
	in := c.Info()
	if in.SSThreshBytes != 36*mss || in.CwndBytes >= 37*mss {
		t.Fatalf("after the ninth ACK: cwnd %d ssthresh %d bytes, want slow start ended at 36 segments (%d)", in.CwndBytes, in.SSThreshBytes, 36*mss)
	}
}
