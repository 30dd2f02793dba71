package congestion

import (
	"math"
	"testing"
	"time"
)

const cubicTestRTT = 100 * time.Millisecond

func newTestCubic() *Cubic {
	return NewCubic(Config{MSS: mss, InitialWindowSegments: 10})
}

// cubicAfterLoss returns a controller that has just come out of a loss at
// wSeg segments, at engine time 1 s.
func cubicAfterLoss(wSeg int) *Cubic {
	c := newTestCubic()
	c.cwndBytes = float64(wSeg * mss)
	c.ssthreshBytes = wSeg * mss
	c.OnLoss(time.Second, wSeg*mss)
	c.OnRecoveryEnd(time.Second)
	return c
}

// ackRounds simulates ACK clocking with the window always full: each round
// of rtt acknowledges one cwnd of bytes in full segments (and a last
// partial one), evenly spaced. It returns the time after the last round.
func ackRounds(c *Cubic, now, rtt time.Duration, rounds int) time.Duration {
	for range rounds {
		w := c.CongestionWindow()
		n := (w + mss - 1) / mss
		for i := range n {
			c.OnAck(now+time.Duration(i)*rtt/time.Duration(n), min(mss, w-i*mss), c.CongestionWindow(), rtt)
		}
		now += rtt
	}
	return now
}

// acks feeds n full-segment ACKs at now with the window full.
func acks(c *Cubic, now time.Duration, n int) {
	for range n {
		c.OnAck(now, mss, c.CongestionWindow(), cubicTestRTT)
	}
}

func segs(c *Cubic) float64 { return c.cwndBytes / mss }

// wCubic is RFC 9438 equation 1 written out independently of the code.
func wCubic(tSec, kSec, wMax float64) float64 { return 0.4*math.Pow(tSec-kSec, 3) + wMax }

func TestCubicConstantsRFC9438(t *testing.T) {
	if cubicC != 0.4 || cubicBeta != 0.7 {
		t.Fatalf("C %v β %v", cubicC, cubicBeta)
	}
	// RFC 9438 §4.3: α = 3(1-β)/(1+β) = 0.9/1.7.
	if math.Abs(cubicAlpha-0.9/1.7) > 1e-15 {
		t.Fatalf("α = %v", cubicAlpha)
	}
}

// RFC 9438 §4.2 equation 2: K = cbrt((W_max - cwnd_epoch)/C); right after a
// loss cwnd_epoch = β·W_max, so K = cbrt(W_max(1-β)/C).
func TestCubicK(t *testing.T) {
	for _, tc := range []struct {
		wMax, cwndEpoch, want float64
	}{
		{100, 70, math.Cbrt(75)},    // 4.2172 s
		{1000, 700, math.Cbrt(750)}, // 9.0856 s
		{10, 7, math.Cbrt(7.5)},
		{40, 39.6, 1}, // 0.4 segments short: exactly one second
		{50, 46.8, 2}, // 3.2 = 0.4·2³
		{10, 10, 0},   // on the plateau
		{10, 12, 0},   // above W_max: K = 0
	} {
		if got := cubicK(tc.wMax, tc.cwndEpoch); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("K(W_max %v, cwnd_epoch %v) = %v, want %v", tc.wMax, tc.cwndEpoch, got, tc.want)
		}
	}
	// The first ACK after a loss at 100 segments starts the epoch with that K.
	c := cubicAfterLoss(100)
	c.OnAck(2*time.Second, mss, c.CongestionWindow(), cubicTestRTT)
	if !c.curve.inEpoch || c.curve.epochStart != 2*time.Second || math.Abs(c.curve.kSec-math.Cbrt(75)) > 1e-12 {
		t.Fatalf("epoch %v at %v K %v", c.curve.inEpoch, c.curve.epochStart, c.curve.kSec)
	}
	if w := c.curve.window(0); math.Abs(w-70) > 1e-9 {
		t.Fatalf("W_cubic(0) = %v, want cwnd_epoch 70", w)
	}
}

// RFC 9438 §4.6: ssthresh = max(β·cwnd, 2 SMSS), cwnd = ssthresh, W_max =
// cwnd before the reduction; once per loss episode.
func TestCubicLossMultiplicativeDecrease(t *testing.T) {
	for _, tc := range []struct {
		cwndBytes, wantBytes int
		wantWMax             float64
	}{
		{100 * mss, 70 * mss, 100},
		{10 * mss, 7 * mss, 10},
		{1000 * mss, 700 * mss, 1000},
		{12345, 8641, 12.345}, // floor(0.7·12345)
		{2 * mss, 2 * mss, 2}, // floor of 2 SMSS
		{mss, 2 * mss, 1},
	} {
		c := newTestCubic()
		c.cwndBytes = float64(tc.cwndBytes)
		c.OnLoss(0, tc.cwndBytes)
		if c.ssthreshBytes != tc.wantBytes || c.CongestionWindow() != tc.wantBytes {
			t.Errorf("cwnd %d: after loss ssthresh %d cwnd %d, want %d", tc.cwndBytes, c.ssthreshBytes, c.CongestionWindow(), tc.wantBytes)
		}
		if math.Abs(c.curve.wMaxSeg-tc.wantWMax) > 1e-9 {
			t.Errorf("cwnd %d: W_max %v, want %v", tc.cwndBytes, c.curve.wMaxSeg, tc.wantWMax)
		}
		// A second loss signal in the same episode does not reduce again.
		c.OnLoss(0, tc.cwndBytes)
		if c.CongestionWindow() != tc.wantBytes {
			t.Errorf("cwnd %d: second OnLoss in one episode reduced to %d", tc.cwndBytes, c.CongestionWindow())
		}
	}
}

// RFC 9438 §4.2: with ACK clocking, cwnd follows W_cubic(t) = C(t-K)³ +
// W_max; the target W_cubic(t+RTT) makes up for the one-RTT lag of
// per-ACK growth. Checked each RTT for two K's, through the concave
// region, the plateau and into the convex region.
func TestCubicGrowthFollowsCurve(t *testing.T) {
	c := cubicAfterLoss(1000)
	start := 2 * time.Second
	k := math.Cbrt(750)
	now := start
	for round := 1; round <= 180; round++ {
		now = ackRounds(c, now, cubicTestRTT, 1)
		tSec := (now - start).Seconds()
		want := wCubic(tSec, k, 1000)
		if d := segs(c) - want; math.Abs(d) > 1 {
			t.Fatalf("t = %.1f s: cwnd %.2f segments, W_cubic %.2f (off by %.2f)", tSec, segs(c), want, d)
		}
	}
	if segs(c) < 1250 { // W_cubic(18 s) = 1282
		t.Fatalf("convex region did not grow: cwnd %.1f after 2K", segs(c))
	}
}

// RFC 9438 §4.2: the target is bounded to [cwnd, 1.5 cwnd], so one window
// of ACKs adds at most half a window, and a curve below cwnd adds nothing.
func TestCubicTargetBounds(t *testing.T) {
	for _, tc := range []struct {
		name                string
		wMax, k, tSec, want float64
	}{
		{"far above: 1.5 cwnd", 100, 0, 10, 15},       // W_cubic = 500
		{"within bounds", 12, 0, 0.9, 10 + 2 + 0.4*1}, // W_cubic(t+RTT = 1 s) = 12.4
		{"below cwnd: no change", 8, 0, 0, 10},
	} {
		cv := cubicCurve{wMaxSeg: tc.wMax, kSec: tc.k, wEstSeg: 1, cwndPriorSeg: 10, inEpoch: true}
		// Ten segments ACKed at cwnd 10: the whole gap to the target.
		if got := cv.grow(tc.tSec, 0.1, 10, 10); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: cwnd %v, want %v", tc.name, got, tc.want)
		}
	}
}

// RFC 9438 §4.4/§4.5: growth slows toward W_max (concave), stays near it
// around t = K, and speeds up beyond it (convex).
func TestCubicPlateauConcaveThenConvex(t *testing.T) {
	c := cubicAfterLoss(1000)
	start := 2 * time.Second
	k := math.Cbrt(750)
	now := start
	var incs []float64
	var times []float64
	prev := segs(c)
	for range 180 {
		now = ackRounds(c, now, cubicTestRTT, 1)
		incs = append(incs, segs(c)-prev)
		times = append(times, (now - start).Seconds())
		prev = segs(c)
		if tSec := (now - start).Seconds(); math.Abs(tSec-k) < 0.05 {
			if math.Abs(segs(c)-1000) > 1 {
				t.Fatalf("at t = K cwnd %.2f, want W_max 1000 within a segment", segs(c))
			}
		}
	}
	for i := 1; i < len(incs); i++ {
		switch {
		case times[i] < k-0.2 && incs[i] > incs[i-1]+1e-9:
			t.Fatalf("concave region: growth rose at t = %.1f (%.3f after %.3f)", times[i], incs[i], incs[i-1])
		case times[i-1] > k+0.2 && incs[i] < incs[i-1]-1e-9:
			t.Fatalf("convex region: growth fell at t = %.1f (%.3f after %.3f)", times[i], incs[i], incs[i-1])
		}
	}
	// The plateau: within a second either side of K cwnd stays within
	// half a percent of W_max.
	for i, ts := range times {
		if math.Abs(ts-k) < 1 {
			w := 700 + sum(incs[:i+1])
			if math.Abs(w-1000) > 5 {
				t.Fatalf("t = %.1f (K %.2f): cwnd %.1f strays from the plateau", ts, k, w)
			}
		}
	}
}

func sum(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}

// RFC 9438 §4.7: a loss below the previous W_max sets W_max = cwnd(1+β)/2;
// at or above it, W_max = cwnd.
func TestCubicFastConvergence(t *testing.T) {
	for _, tc := range []struct {
		name            string
		firstSeg, atSeg int
		wantWMax        float64
	}{
		{"below previous W_max", 100, 80, 80 * 0.85},
		{"above previous W_max", 100, 120, 120},
		{"equal to previous W_max", 100, 100, 100},
	} {
		c := cubicAfterLoss(tc.firstSeg)
		c.cwndBytes = float64(tc.atSeg * mss)
		c.OnLoss(5*time.Second, tc.atSeg*mss)
		if math.Abs(c.curve.wMaxSeg-tc.wantWMax) > 1e-9 {
			t.Errorf("%s: W_max %v, want %v", tc.name, c.curve.wMaxSeg, tc.wantWMax)
		}
		if c.CongestionWindow() != int(float64(tc.atSeg*mss)*0.7) {
			t.Errorf("%s: cwnd %d", tc.name, c.CongestionWindow())
		}
	}
}

// RFC 9438 §4.3: at a small BDP the Reno estimate W_est (α = 3(1-β)/(1+β)
// per RTT up to cwnd_prior, then 1) outgrows the cubic curve, and cwnd
// follows W_est.
func TestCubicRenoFriendlyRegionAtSmallBDP(t *testing.T) {
	const rtt = 10 * time.Millisecond
	c := cubicAfterLoss(20)
	start := 2 * time.Second
	k := math.Cbrt(20 * 0.3 / 0.4)
	now := start
	west := 14.0
	for round := 1; round <= 100; round++ {
		now = ackRounds(c, now, rtt, 1)
		if west < 20 {
			west += 3 * 0.3 / 1.7
		} else {
			west++
		}
		tSec := (now - start).Seconds()
		if math.Abs(segs(c)-west) > 1 {
			t.Fatalf("round %d: cwnd %.2f, Reno estimate %.2f", round, segs(c), west)
		}
		if round > 10 && segs(c) <= wCubic(tSec, k, 20) {
			t.Fatalf("round %d: cwnd %.2f not above W_cubic %.2f", round, segs(c), wCubic(tSec, k, 20))
		}
	}
	// And at a large BDP the curve dominates: after 1 s at 100 ms RTT
	// from W_max 1000, cwnd is far above what Reno's estimate gives.
	big := cubicAfterLoss(1000)
	ackRounds(big, start, cubicTestRTT, 10)
	if segs(big) < 700+10*1 || segs(big) < big.curve.wEstSeg+50 {
		t.Fatalf("large BDP: cwnd %.1f, W_est %.1f", segs(big), big.curve.wEstSeg)
	}
}

// RFC 9438 §4.8: on RTO ssthresh from β, cwnd = 1 SMSS, and the next
// congestion-avoidance stage starts with K = 0 and W_max = W_est = its
// starting window. A backed-off second RTO keeps ssthresh.
func TestCubicRTOResponse(t *testing.T) {
	c := newTestCubic()
	c.cwndBytes, c.ssthreshBytes = 100*mss, 100*mss
	c.OnRTO(time.Second, 100*mss)
	if c.ssthreshBytes != 70*mss || c.CongestionWindow() != mss {
		t.Fatalf("after RTO ssthresh %d cwnd %d", c.ssthreshBytes, c.CongestionWindow())
	}
	c.OnRTO(2*time.Second, 100*mss)
	if c.ssthreshBytes != 70*mss || c.CongestionWindow() != mss {
		t.Fatalf("after a second RTO ssthresh %d cwnd %d", c.ssthreshBytes, c.CongestionWindow())
	}
	// Slow start back to ssthresh, exactly, then the curve from there.
	now := ackRounds(c, 3*time.Second, cubicTestRTT, 6) // 1→2→4→…→64
	acks(c, now, 6)
	if c.CongestionWindow() != 70*mss {
		t.Fatalf("slow start ended at %d, want ssthresh", c.CongestionWindow())
	}
	c.OnAck(now, mss, c.CongestionWindow(), cubicTestRTT)
	if !c.curve.inEpoch || c.curve.kSec != 0 || c.curve.wMaxSeg != 70 || math.Abs(c.curve.wEstSeg-70) > 0.02 {
		t.Fatalf("stage after RTO: K %v W_max %v W_est %v", c.curve.kSec, c.curve.wMaxSeg, c.curve.wEstSeg)
	}
	// Convex from the start: the first rounds grow slowly, then faster.
	before := segs(c)
	ackRounds(c, now, cubicTestRTT, 10) // t = 1 s: C·1³ = 0.4 segments from the curve
	if g := segs(c) - before; g > 10*1+1 {
		t.Fatalf("first second after RTO grew %.1f segments", g)
	}
}

// RFC 5681 §3.1 with RFC 3465 L=1: slow start adds the bytes acknowledged,
// at most one SMSS per ACK, and stops at ssthresh.
func TestCubicSlowStartByteCounting(t *testing.T) {
	c := newTestCubic()
	c.iw.SlowStartLimitSegments = 1
	c.OnAck(0, 3*mss, c.CongestionWindow(), 0)
	if c.CongestionWindow() != 11*mss {
		t.Fatalf("stretch ACK: cwnd %d, want 11 SMSS", c.CongestionWindow())
	}
	c.OnAck(0, 500, c.CongestionWindow(), 0)
	if c.CongestionWindow() != 11*mss+500 {
		t.Fatalf("partial ACK: cwnd %d", c.CongestionWindow())
	}
	c.ssthreshBytes = 12 * mss
	c.OnAck(0, mss, c.CongestionWindow(), 0)
	if c.CongestionWindow() != 12*mss {
		t.Fatalf("slow start passed ssthresh: cwnd %d", c.CongestionWindow())
	}
}

// RFC 9438 §5.8 / RFC 7661: an application-limited sender neither grows
// cwnd nor W_est, and the time it spent so does not count on the curve.
func TestCubicApplicationLimitedNoGrowth(t *testing.T) {
	c := cubicAfterLoss(100)
	now := ackRounds(c, 2*time.Second, cubicTestRTT, 5)
	w, west := c.cwndBytes, c.curve.wEstSeg
	for i := range 500 { // 5 s of ACKs with half the window in flight
		c.OnAck(now+time.Duration(i)*10*time.Millisecond, mss, 50*mss, cubicTestRTT)
	}
	if c.cwndBytes != w || c.curve.wEstSeg != west {
		t.Fatalf("grew while application limited: cwnd %v→%v W_est %v→%v", w, c.cwndBytes, west, c.curve.wEstSeg)
	}
	// In slow start too.
	s := newTestCubic()
	s.OnAck(0, mss, 5*mss, 0)
	if s.CongestionWindow() != 10*mss {
		t.Fatalf("slow start grew to %d with half the window in flight", s.CongestionWindow())
	}
	// Less than one SMSS free counts as a full window: the engine does not
	// send a runt to fill it.
	s.cwndBytes = 10*mss + 400
	s.OnAck(0, mss, 10*mss, 0)
	if s.CongestionWindow() != 11*mss+400 {
		t.Fatalf("cwnd %d: a window with 400 bytes free was treated as unused", s.CongestionWindow())
	}
}

// The epoch skips application-limited time (Linux bictcp_cwnd_event):
// after 5 s limited, the window is where an always-busy sender's was after
// the same busy time, not 5 s further along the curve.
func TestCubicApplicationLimitedTimeNotCounted(t *testing.T) {
	busy := cubicAfterLoss(100)
	ackRounds(busy, 2*time.Second, cubicTestRTT, 20)

	c := cubicAfterLoss(100)
	now := ackRounds(c, 2*time.Second, cubicTestRTT, 10)
	for i := range 500 {
		c.OnAck(now+time.Duration(i)*10*time.Millisecond, mss, 50*mss, cubicTestRTT)
	}
	ackRounds(c, now+5*time.Second, cubicTestRTT, 10)
	if d := segs(c) - segs(busy); math.Abs(d) > 1 {
		t.Fatalf("after an app-limited pause cwnd %.2f, busy sender %.2f", segs(c), segs(busy))
	}
}

// An idle period does not make a burst of growth: with no restart (Linux
// tcp_slow_start_after_idle = 0) the epoch is shifted over the idle time;
// with RFC 5681 §4.1's restart the window drops to IW and the next stage
// climbs back concavely toward W_max, not along the old curve.
func TestCubicIdleRestartNoBurst(t *testing.T) {
	busy := cubicAfterLoss(100)
	ackRounds(busy, 2*time.Second, cubicTestRTT, 20)

	for _, tc := range []struct {
		name string
		last func(c *Cubic, now time.Duration)
	}{
		// The window's last segment is acknowledged with little in flight.
		{"trailing ACK", func(c *Cubic, now time.Duration) { c.OnAck(now, mss, mss, cubicTestRTT) }},
		// One cumulative ACK covers the whole (full) window.
		{"whole-window ACK", func(c *Cubic, now time.Duration) {
			c.OnAck(now, c.CongestionWindow(), c.CongestionWindow(), cubicTestRTT)
		}},
	} {
		c := cubicAfterLoss(100)
		now := ackRounds(c, 2*time.Second, cubicTestRTT, 10)
		tc.last(c, now)
		w := segs(c)
		// 10 s idle, then the sender fills the window again.
		ackRounds(c, now+10*time.Second, cubicTestRTT, 10)
		if d := segs(c) - segs(busy); math.Abs(d) > 1.5 {
			t.Fatalf("%s: after idle cwnd %.2f (from %.2f), busy sender %.2f", tc.name, segs(c), w, segs(busy))
		}
	}

	r := cubicAfterLoss(100)
	now := ackRounds(r, 2*time.Second, cubicTestRTT, 30) // past K: cwnd ≈ 100+
	r.OnAck(now, mss, mss, cubicTestRTT)
	wMax := r.curve.wMaxSeg
	now += 10 * time.Second
	r.OnIdleRestart(now, 10*time.Second, time.Second)
	if r.CongestionWindow() != 10*mss || r.curve.inEpoch {
		t.Fatalf("restart: cwnd %d epoch %v", r.CongestionWindow(), r.curve.inEpoch)
	}
	now = ackRounds(r, now, cubicTestRTT, 2) // slow start 10→20→40
	acks(r, now, 30)
	if r.CongestionWindow() != 70*mss {
		t.Fatalf("slow start after restart ended at %d", r.CongestionWindow())
	}
	prev := segs(r)
	for range 10 {
		now = ackRounds(r, now, cubicTestRTT, 1)
		if g := segs(r) - prev; g > 0.2*prev {
			t.Fatalf("burst after restart: cwnd %.1f → %.1f in one RTT", prev, segs(r))
		}
		prev = segs(r)
	}
	if r.curve.wMaxSeg != wMax || segs(r) > wMax+1 {
		t.Fatalf("after restart W_max %v, cwnd %.1f", r.curve.wMaxSeg, segs(r))
	}
}

// RFC 9438 §4.9: a spurious congestion event is undone: cwnd, ssthresh and
// the curve (W_max, K, epoch, W_est) return to their values before it, and
// growth continues as if it had not happened.
func TestCubicUndo(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reduce func(c *Cubic, now time.Duration)
	}{
		{"loss", func(c *Cubic, now time.Duration) { c.OnLoss(now, c.CongestionWindow()) }},
		{"RTO", func(c *Cubic, now time.Duration) { c.OnRTO(now, c.CongestionWindow()) }},
		{"RTO backed off", func(c *Cubic, now time.Duration) {
			c.OnRTO(now, c.CongestionWindow())
			c.OnRTO(now, 80*mss)
		}},
	} {
		ref := cubicAfterLoss(100)
		now := ackRounds(ref, 2*time.Second, cubicTestRTT, 10)
		c := cubicAfterLoss(100)
		ackRounds(c, 2*time.Second, cubicTestRTT, 10)
		cwnd, ssthresh, curve := c.cwndBytes, c.ssthreshBytes, c.curve
		tc.reduce(c, now)
		c.Undo(now)
		if c.cwndBytes != cwnd || c.ssthreshBytes != ssthresh || c.curve != curve {
			t.Errorf("%s: undo gave cwnd %v ssthresh %d curve %+v, want %v %d %+v", tc.name, c.cwndBytes, c.ssthreshBytes, c.curve, cwnd, ssthresh, curve)
			continue
		}
		ackRounds(ref, now, cubicTestRTT, 5)
		ackRounds(c, now, cubicTestRTT, 5)
		if ref.cwndBytes != c.cwndBytes {
			t.Errorf("%s: after undo growth differs: %v vs %v", tc.name, c.cwndBytes, ref.cwndBytes)
		}
		// Undo is one-shot.
		c.Undo(now)
		if ref.cwndBytes != c.cwndBytes {
			t.Errorf("%s: second undo changed cwnd", tc.name)
		}
	}
	// Nothing to undo: no change.
	c := newTestCubic()
	c.Undo(0)
	if c.CongestionWindow() != 10*mss || c.ssthreshBytes != 1<<30 {
		t.Fatalf("undo without a reduction: cwnd %d ssthresh %d", c.CongestionWindow(), c.ssthreshBytes)
	}
}

// A new loss episode starts once the flight at the last reduction has been
// acknowledged, or when recovery ends.
func TestCubicNewEpisodeAfterRecoveryPoint(t *testing.T) {
	c := newTestCubic()
	c.cwndBytes = 100 * mss
	c.OnRTO(0, 100*mss)
	for range 99 {
		c.OnAck(time.Second, mss, c.CongestionWindow(), cubicTestRTT)
	}
	c.OnRTO(2*time.Second, 90*mss)
	if c.ssthreshBytes != 70*mss {
		t.Fatalf("RTO before the recovery point reduced ssthresh to %d", c.ssthreshBytes)
	}
	for range 2 {
		c.OnAck(3*time.Second, mss, c.CongestionWindow(), cubicTestRTT)
	}
	c.cwndBytes = 50 * mss
	c.OnLoss(4*time.Second, 50*mss)
	if c.ssthreshBytes != 35*mss {
		t.Fatalf("loss after the recovery point: ssthresh %d, want 35 SMSS", c.ssthreshBytes)
	}
}

// SetMSS keeps cwnd's bytes and rescales W_max to the same bytes.
func TestCubicSetMSS(t *testing.T) {
	c := cubicAfterLoss(100)
	c.SetMSS(500)
	if c.CongestionWindow() != 70*mss || c.curve.wMaxSeg != 200 || c.curve.inEpoch {
		t.Fatalf("after SetMSS cwnd %d W_max %v epoch %v", c.CongestionWindow(), c.curve.wMaxSeg, c.curve.inEpoch)
	}
	c.OnAck(time.Second, 500, c.CongestionWindow(), cubicTestRTT)
	if want := math.Cbrt((200 - 140) / 0.4); math.Abs(c.curve.kSec-want) > 1e-9 {
		t.Fatalf("K after SetMSS %v, want %v", c.curve.kSec, want)
	}
}

func TestNewCubic(t *testing.T) {
	c, err := New("cubic", Config{MSS: 1460})
	if err != nil || c.Name() != "cubic" || c.CongestionWindow() != 3*1460 {
		t.Fatalf("New(cubic) = %v, %v", c, err)
	}
}

func BenchmarkCubicOnAck(b *testing.B) {
	c := cubicAfterLoss(1000)
	now := 2 * time.Second
	b.ReportAllocs()
	for b.Loop() {
		now += 100 * time.Microsecond
		c.OnAck(now, mss, c.CongestionWindow(), cubicTestRTT)
	}
}
