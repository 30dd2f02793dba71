package congestion

import (
	"math"
	"testing"
	"time"
)

func newLinuxCubic() *Cubic {
	return NewCubic(Config{MSS: mss, InitialWindowSegments: 10, HyStart: true, CubicLinuxGrowth: true})
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// Linux behaviour: bictcp_update after a loss at cwnd 10 on a 100 ms path,
// each round trip draining the pipe before the next flight goes. The
// target is W_max - floor(C·(K-t)³) with t counted from the epoch start
// plus the minimum RTT (1024ths of a second, jiffies of 4 ms): 10 -
// floor(2.56) = 8 one round trip in, where RFC 9438's real-valued curve
// gives 7.44. Each transmission start after the drain moves the epoch by
// the time since the last send (CA_EVENT_TX_START), so the target stays 8
// and the integer Reno-friendly estimate takes cwnd to 10 four round trips
// in (the snd_cwnd_cnt credit pays out +1 first, then the ACK's +1).
// Linux 6.18 sends flights of 7, 8, 8, 8, 10, 10 segments here.
func TestCubicLinuxBictcpUpdateAfterLoss(t *testing.T) {
	c := newLinuxCubic()
	c.OnAckSample(ms(200), ms(100), 0, 0) // delay_min = 100 ms
	c.OnLoss(ms(200), 10*mss)
	if c.CongestionWindow() != 7*mss || c.SlowStartThreshold() != 7*mss || c.bic.lastMaxCwnd != 10 {
		t.Fatalf("after loss: cwnd %d ssthresh %d W_max %d, want 7, 7, 10 segments",
			c.CongestionWindow()/mss, c.SlowStartThreshold()/mss, c.bic.lastMaxCwnd)
	}
	c.OnRecoveryEnd(ms(300))
	// The ACK that ends recovery acknowledges the retransmission: the
	// epoch starts, cnt = 7/(8-7) = 7, one segment of credit.
	c.OnAck(ms(300), mss, 10*mss, ms(100))
	if c.CongestionWindow() != 7*mss || c.bic.cnt != 7 || c.bic.cwndCnt != 1 {
		t.Fatalf("recovery end: cwnd %d cnt %d credit %d, want 7, 7, 1", c.CongestionWindow()/mss, c.bic.cnt, c.bic.cwndCnt)
	}
	lastSend := ms(200)
	want := []int{8, 8, 8, 10, 10}
	for i, now := 0, ms(300); i < len(want); i++ {
		flight := c.CongestionWindow()
		c.OnTxStart(now, lastSend)
		lastSend = now
		now += ms(100)
		c.OnAck(now, flight, flight, ms(100))
		if got := c.CongestionWindow(); got != want[i]*mss {
			t.Errorf("round %d (ACK at %v of %d segments): cwnd %d segments, want %d", i+1, now, flight/mss, got/mss, want[i])
		}
	}
}

// Linux behaviour: tcp_cong_avoid_ai. cwnd grows by one per cnt segments
// acknowledged, the count carried across ACKs; what an ACK leaves over
// counts toward the next segment.
func TestCubicLinuxOnePerCntAcked(t *testing.T) {
	c := newLinuxCubic()
	c.OnAckSample(0, ms(100), 0, 0)
	c.cwndBytes = 20 * mss
	c.OnLoss(0, 20*mss) // cwnd 14, W_max 20
	c.OnRecoveryEnd(0)
	// t = 0 + 100 ms = 102/1024 s, K = cbrt(6/0.4) ≈ 2.47 s: the
	// target is 20 - floor(410·(K-102)³/2^40) = 20 - 5 = 15, cnt = 14.
	now := ms(1000)
	for i := 1; i <= 14; i++ {
		c.OnAck(now, mss, c.CongestionWindow(), ms(100))
		wantCwnd := 14
		if i == 14 {
			wantCwnd = 15
		}
		if c.CongestionWindow() != wantCwnd*mss {
			t.Fatalf("ACK %d: cwnd %d, want %d", i, c.CongestionWindow()/mss, wantCwnd)
		}
	}
	if c.bic.cnt != 14 || c.bic.cwndCnt != 0 {
		t.Errorf("cnt %d credit %d, want 14 and 0", c.bic.cnt, c.bic.cwndCnt)
	}
}

// Linux behaviour: cubictcp_recalc_ssthresh in whole segments, β =
// 717/1024, and fast convergence to cwnd·(1024+717)/2048 when the loss
// comes below W_max: at cwnd 7 after W_max 10, W_max 5 and ssthresh 4
// (RFC 9438's real numbers give 5.95 and 4.9).
func TestCubicLinuxRecalcSsthreshIntegers(t *testing.T) {
	for _, tc := range []struct{ cwnd, lastMax, wantSsthresh, wantMax uint32 }{
		{10, 0, 7, 10},
		{7, 10, 4, 5},
		{100, 0, 70, 100},
		{100, 120, 70, 85},
		{3, 0, 2, 3},
		{2, 0, 2, 2},
	} {
		c := newLinuxCubic()
		c.bic.lastMaxCwnd = tc.lastMax
		c.bic.cwndCnt = 5
		c.cwndBytes = float64(tc.cwnd * mss)
		c.OnLoss(0, int(tc.cwnd)*mss)
		if c.SlowStartThreshold() != int(tc.wantSsthresh)*mss || c.bic.lastMaxCwnd != tc.wantMax || c.bic.cwndCnt != 0 || c.bic.epochStart != 0 {
			t.Errorf("cwnd %d W_max %d: ssthresh %d W_max %d credit %d epoch %d, want %d, %d, 0, 0", tc.cwnd, tc.lastMax,
				c.SlowStartThreshold()/mss, c.bic.lastMaxCwnd, c.bic.cwndCnt, c.bic.epochStart, tc.wantSsthresh, tc.wantMax)
		}
	}
}

// Linux behaviour: cubictcp_cwnd_event(CA_EVENT_TX_START) moves the epoch
// start by the time since the last send, never past now.
func TestCubicLinuxTxStartShiftsEpoch(t *testing.T) {
	c := newLinuxCubic()
	c.OnTxStart(ms(500), ms(100)) // no epoch: nothing to move
	if c.bic.epochStart != 0 {
		t.Fatalf("epoch %d set with no epoch running", c.bic.epochStart)
	}
	c.bic.epochStart = jiffies(ms(1000))
	c.OnTxStart(ms(1500), ms(1200))
	if c.bic.epochStart != jiffies(ms(1300)) {
		t.Errorf("epoch at jiffy %d, want %d (1.3 s)", c.bic.epochStart, jiffies(ms(1300)))
	}
	c.OnTxStart(ms(2000), ms(1000))
	if c.bic.epochStart != jiffies(ms(2000)) {
		t.Errorf("epoch at jiffy %d, want now %d", c.bic.epochStart, jiffies(ms(2000)))
	}
	// The RFC curve does not use the event.
	r := newTestCubic()
	r.curve.inEpoch, r.curve.epochStart = true, ms(1000)
	r.OnTxStart(ms(1500), ms(1200))
	if r.curve.epochStart != ms(1000) || r.bic.epochStart != 0 {
		t.Errorf("RFC curve moved by OnTxStart: %v %d", r.curve.epochStart, r.bic.epochStart)
	}
}

// Linux behaviour: tcp_slow_start returns the segments an ACK acknowledged
// past ssthresh, and cubictcp_cong_avoid counts them in congestion
// avoidance: the epoch starts on that ACK. Before any loss cnt is at most
// 20 (5% per round trip).
func TestCubicLinuxSlowStartLeftover(t *testing.T) {
	c := newLinuxCubic()
	c.cwndBytes, c.ssthreshBytes = 9*mss, 10*mss
	c.OnAck(ms(100), 3*mss, 9*mss, ms(100))
	if c.CongestionWindow() != 10*mss || c.bic.epochStart != jiffies(ms(100)) || c.bic.cwndCnt != 2 || c.bic.cnt != 20 {
		t.Errorf("cwnd %d epoch %d credit %d cnt %d, want 10, jiffy %d, 2, 20",
			c.CongestionWindow()/mss, c.bic.epochStart, c.bic.cwndCnt, c.bic.cnt, jiffies(ms(100)))
	}
}

// Linux behaviour: an RTO resets tcp_cubic's state (bictcp_reset on
// TCP_CA_Loss), W_max and the minimum RTT included; an undo restores cwnd
// and ssthresh only (tcp_reno_undo_cwnd).
func TestCubicLinuxRTOResetAndUndo(t *testing.T) {
	c := newLinuxCubic()
	c.OnAckSample(0, ms(100), 0, 0)
	c.OnRTO(ms(1000), 10*mss)
	if c.bic != (bictcp{}) || c.hy.delayMin != 0 || c.SlowStartThreshold() != 7*mss || c.CongestionWindow() != mss {
		t.Errorf("after RTO: %+v delay_min %v ssthresh %d cwnd %d", c.bic, c.hy.delayMin, c.SlowStartThreshold()/mss, c.CongestionWindow()/mss)
	}
	u := newLinuxCubic()
	u.OnLoss(0, 10*mss)
	u.Undo(ms(100))
	if u.CongestionWindow() != 10*mss || u.bic.lastMaxCwnd != 10 || u.bic.epochStart != 0 {
		t.Errorf("after undo: cwnd %d W_max %d epoch %d, want 10, 10, 0", u.CongestionWindow()/mss, u.bic.lastMaxCwnd, u.bic.epochStart)
	}
}

// Linux behaviour: cubic_root is within about 0.2% of the cube root over
// the range K is computed on, and exact enough on small values.
func TestCubicLinuxCubicRoot(t *testing.T) {
	for _, a := range []uint64{1, 8, 27, 63, 64, 1000, 1 << 20, cubeFactor, 3 * cubeFactor, 100 * cubeFactor, 100000 * cubeFactor} {
		got, real := float64(cubicRoot(a)), math.Cbrt(float64(a))
		if math.Abs(got-real) > 1+real*0.005 {
			t.Errorf("cubicRoot(%d) = %v, cube root %v", a, got, real)
		}
	}
	// K for W_max - cwnd = 3 is cbrt(3/0.4) ≈ 1.957 s ≈ 2004/1024.
	if k := cubicRoot(3 * cubeFactor); k < 2000 || k > 2008 {
		t.Errorf("K = %d/1024 s, want about 2004", k)
	}
}

// The rfc profile's curve is untouched by the Linux arithmetic: off by
// default, the window after a loss grows by the real-valued target.
func TestCubicLinuxGrowthOffByDefault(t *testing.T) {
	c := cubicAfterLoss(10)
	if c.iw.CubicLinuxGrowth {
		t.Fatal("CubicLinuxGrowth on by default")
	}
	c.OnAck(ms(1100), mss, c.CongestionWindow(), ms(100))
	if c.bic.epochStart != 0 || !c.curve.inEpoch {
		t.Errorf("RFC controller ran the Linux arithmetic: bic epoch %d, curve epoch %v", c.bic.epochStart, c.curve.inEpoch)
	}
}
