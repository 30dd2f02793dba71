package congestion

import "time"

// CUBIC's congestion avoidance as Linux's tcp_cubic computes it
// (Config.CubicLinuxGrowth): in whole segments and fixed-point integers,
// time in jiffies, where RFC 9438 states the curve in real numbers. The
// two differ by up to a segment per round trip: Linux floors C·(K-t)³
// before subtracting it from W_max, counts t from the epoch start plus the
// minimum RTT (not plus the smoothed RTT), grows cwnd by one segment per
// cnt = cwnd/(target-cwnd) acknowledged segments with the remainder
// carried over, and keeps its Reno-friendly estimate in integer counters.

const (
	// linuxHZ is the kernel tick rate the conformance scripts were
	// measured with (CONFIG_HZ=250): jiffies are 4 ms.
	linuxHZ = 250
	// linuxInitialJiffies: Linux starts jiffies 300 s before wrapping
	// (INITIAL_JIFFIES), so a jiffy count of 0 is no real instant early
	// in a connection, and 0 can mean "no epoch".
	linuxInitialJiffies = uint32(1<<32 - 300*linuxHZ)

	bictcpBetaScale = 1024 // β's scale
	bictcpBeta      = 717  // β = 717/1024 ≈ 0.7
	bictcpHZ        = 10   // time on the curve in 1/1024 s
	bicScale        = 41   // C = 41·10/1024 ≈ 0.4
	// cubeRTTScale is 1024·C.
	cubeRTTScale = bicScale * 10
	// cubeFactor is 2^40/(1024·C): K = cbrt(cubeFactor·(W_max-cwnd)) in
	// 1/1024 s.
	cubeFactor = uint64(1) << (10 + 3*bictcpHZ) / (bicScale * 10)
	// betaScale turns acknowledged segments into the Reno-friendly
	// estimate's growth: 8·(1+β)/(3·(1-β)) in Linux's integer steps, the
	// estimate gaining one segment per cwnd·betaScale/8 segments acked
	// (RFC 9438 §4.3's α = 3(1-β)/(1+β)).
	betaScale = 8 * (bictcpBetaScale + bictcpBeta) / 3 / (bictcpBetaScale - bictcpBeta)
)

// jiffies is Linux's tcp_jiffies32 at engine time now.
func jiffies(now time.Duration) uint32 {
	return uint32(int64(now/(time.Second/linuxHZ))) + linuxInitialJiffies
}

// usecsToJiffies rounds up, as Linux's usecs_to_jiffies.
func usecsToJiffies(d time.Duration) uint32 {
	const tick = time.Second / linuxHZ
	us := d / time.Microsecond
	return uint32((us + tick/time.Microsecond - 1) / (tick / time.Microsecond))
}

// bictcp is Linux's per-connection CUBIC state (struct bictcp) with the
// socket's snd_cwnd_cnt, all in segments and jiffies.
type bictcp struct {
	cnt         uint32 // cwnd grows by one per cnt segments acknowledged
	lastMaxCwnd uint32 // W_max, 0 before any loss and after an RTO
	lastCwnd    uint32 // cwnd when cnt was last computed
	lastTime    uint32 // jiffies then
	originPoint uint32 // the curve's plateau
	k           uint32 // K, 1/1024 s
	epochStart  uint32 // jiffies; 0: no epoch (set again on the next ACK)
	ackCnt      uint32 // segments acknowledged, for the Reno estimate
	tcpCwnd     uint32 // the Reno-friendly estimate, segments
	cwndCnt     uint32 // Linux's snd_cwnd_cnt: acknowledged segments toward the next +1
}

// cubicRoot is Linux's cubic_root: a table gives the cube root of the
// top bits, then one Newton-Raphson step; about 0.2% off the real root.
func cubicRoot(a uint64) uint32 {
	// cbrt(x<<18)-1 for x in [0, 63], hand-tuned in Linux (cubic_root).
	v := [64]uint8{
		0, 54, 54, 54, 118, 118, 118, 118,
		123, 129, 134, 138, 143, 147, 151, 156,
		157, 161, 164, 168, 170, 173, 176, 179,
		181, 185, 187, 190, 192, 194, 197, 199,
		200, 202, 204, 206, 209, 211, 213, 215,
		217, 219, 221, 222, 224, 225, 227, 229,
		231, 232, 234, 236, 237, 239, 240, 242,
		244, 245, 246, 248, 250, 251, 252, 254,
	}
	b := uint32(0)
	for x := a; x != 0; x >>= 1 {
		b++ // fls64
	}
	if b < 7 {
		return (uint32(v[a]) + 35) >> 6
	}
	b = (b*84)>>8 - 1
	shift := a >> (b * 3)
	x := (uint32(v[shift]) + 10) << b >> 6
	// x = (2x + a/x²)/3, with x·(x-1) for x² and 341/1024 for 1/3.
	x = 2*x + uint32(a/(uint64(x)*uint64(x-1)))
	return x * 341 >> 10
}

// linuxAvoid is Linux's cubictcp_cong_avoid past slow start for an ACK of
// ackedSeg segments at now, with delayMin the smallest RTT seen: it
// returns the new cwnd in segments.
func (b *bictcp) avoid(now uint32, cwnd, ackedSeg uint32, delayMin time.Duration) uint32 {
	b.update(now, cwnd, ackedSeg, delayMin)
	// Linux behaviour: tcp_cong_avoid_ai, one segment per cnt acked, the
	// count carried across ACKs; credit earned at a larger cnt is paid
	// out once, gently, when cnt shrinks.
	if b.cwndCnt >= b.cnt {
		b.cwndCnt = 0
		cwnd++
	}
	b.cwndCnt += ackedSeg
	if b.cwndCnt >= b.cnt {
		d := b.cwndCnt / b.cnt
		b.cwndCnt -= d * b.cnt
		cwnd += d
	}
	return cwnd
}

// update computes cnt. Linux behaviour: bictcp_update.
func (b *bictcp) update(now uint32, cwnd, acked uint32, delayMin time.Duration) {
	b.ackCnt += acked
	// Linux behaviour: bictcp_update recomputes at most every HZ/32 while
	// cwnd stays put, and the curve at most once per jiffy.
	if b.lastCwnd == cwnd && int32(now-b.lastTime) <= linuxHZ/32 {
		return
	}
	if b.epochStart == 0 || now != b.lastTime {
		b.curve(now, cwnd, acked, delayMin)
	}
	// Linux behaviour: bictcp_update's TCP friendliness. The estimate
	// gains one segment per cwnd·betaScale/8 segments acknowledged; if it
	// is ahead of cwnd, cwnd grows at least by one per cwnd/(ahead by).
	delta := cwnd * betaScale >> 3
	for b.ackCnt > delta {
		b.ackCnt -= delta
		b.tcpCwnd++
	}
	if b.tcpCwnd > cwnd {
		if maxCnt := cwnd / (b.tcpCwnd - cwnd); b.cnt > maxCnt {
			b.cnt = maxCnt
		}
	}
	// Linux behaviour: at most one segment per two acknowledged (1.5·cwnd
	// per round trip, RFC 9438 §4.2's bound on the target).
	b.cnt = max(b.cnt, 2)
}

// curve is the cubic part of bictcp_update: the epoch, K, and cnt from
// the target W_max ± C·(t-K)³.
func (b *bictcp) curve(now uint32, cwnd, acked uint32, delayMin time.Duration) {
	b.lastCwnd, b.lastTime = cwnd, now
	if b.epochStart == 0 {
		// Linux behaviour: a new epoch starts on the first ACK of
		// congestion avoidance; the Reno estimate starts at cwnd.
		b.epochStart = now
		b.ackCnt = acked
		b.tcpCwnd = cwnd
		if b.lastMaxCwnd <= cwnd {
			b.k, b.originPoint = 0, cwnd
		} else {
			// RFC 9438 §4.2 equation 2, in 1/1024 s: K = cbrt((W_max-cwnd)/C).
			b.k = cubicRoot(cubeFactor * uint64(b.lastMaxCwnd-cwnd))
			b.originPoint = b.lastMaxCwnd
		}
	}
	// Linux behaviour: bictcp_update's t is the time since the epoch
	// start plus the minimum RTT (the target one RTT ahead, RFC 9438
	// §4.2), in jiffies, then in 1/1024 s.
	t := uint64(int64(int32(now-b.epochStart))) + uint64(usecsToJiffies(delayMin))
	t = t << bictcpHZ / linuxHZ
	var offs uint64
	if t < uint64(b.k) {
		offs = uint64(b.k) - t
	} else {
		offs = t - uint64(b.k)
	}
	// C·|t-K|³ in segments, floored.
	delta := uint32(cubeRTTScale * offs * offs * offs >> (10 + 3*bictcpHZ))
	target := b.originPoint + delta
	if t < uint64(b.k) {
		target = b.originPoint - delta // below the plateau (concave region)
	}
	if target > cwnd {
		b.cnt = cwnd / (target - cwnd)
	} else {
		b.cnt = 100 * cwnd // at or above the target: almost no growth
	}
	if b.lastMaxCwnd == 0 && b.cnt > 20 {
		// Linux behaviour: before any loss, at least 5% per round trip.
		b.cnt = 20
	}
}

// txStart is Linux's cubictcp_cwnd_event(CA_EVENT_TX_START): data goes
// out with nothing in flight, last sent at lastSend; the epoch moves
// forward by the time since, but not past now, so the idle time does not
// count on the curve.
func (b *bictcp) txStart(now, lastSend uint32) {
	if delta := int32(now - lastSend); b.epochStart != 0 && delta > 0 {
		b.epochStart += uint32(delta)
		if int32(b.epochStart-now) > 0 {
			b.epochStart = now
		}
	}
}

// recalcSsthresh is Linux's cubictcp_recalc_ssthresh for cwnd segments:
// the epoch ends, W_max is set (with fast convergence, RFC 9438 §4.7, at
// (1+β)/2 in Linux's integers), and ssthresh = max(β·cwnd, 2) segments.
func (b *bictcp) recalcSsthresh(cwnd uint32) uint32 {
	b.epochStart = 0
	if cwnd < b.lastMaxCwnd {
		b.lastMaxCwnd = cwnd * (bictcpBetaScale + bictcpBeta) / (2 * bictcpBetaScale)
	} else {
		b.lastMaxCwnd = cwnd
	}
	// Linux behaviour: tcp_init_cwnd_reduction and tcp_enter_loss clear
	// snd_cwnd_cnt.
	b.cwndCnt = 0
	return max(cwnd*bictcpBeta/bictcpBetaScale, 2)
}

// OnTxStart is the engine's report that data is sent with nothing in
// flight (TxStartObserver). Only the Linux arithmetic uses it; RFC 9438's
// curve skips application-limited time as OnAck sees it.
func (c *Cubic) OnTxStart(now, lastSend time.Duration) {
	if c.iw.CubicLinuxGrowth {
		c.bic.txStart(jiffies(now), jiffies(lastSend))
	}
}

// linuxAvoid is congestion avoidance by Linux's arithmetic for an ACK of
// ackedBytes (whole segments are what Linux counts: a short one is one).
func (c *Cubic) linuxAvoid(now time.Duration, ackedBytes int) {
	cwnd := uint32(c.CongestionWindow() / c.iw.MSS)
	acked := uint32((ackedBytes + c.iw.MSS - 1) / c.iw.MSS)
	if acked == 0 {
		return
	}
	next := c.bic.avoid(jiffies(now), cwnd, acked, c.hy.delayMin)
	c.cwndBytes = float64(int(next) * c.iw.MSS)
}

// epochAge is how long the current congestion-avoidance epoch has run, and
// whether one runs.
func (c *Cubic) epochAge(now time.Duration) (time.Duration, bool) {
	if c.iw.CubicLinuxGrowth {
		if c.bic.epochStart == 0 {
			return 0, false
		}
		return time.Duration(int32(jiffies(now)-c.bic.epochStart)) * (time.Second / linuxHZ), true
	}
	return now - c.curve.epochStart, c.curve.inEpoch
}
