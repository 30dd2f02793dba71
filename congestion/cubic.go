package congestion

import (
	"math"
	"time"
)

// CUBIC (RFC 9438) as Linux runs it by default. The file has two parts: the
// window function and its Reno-friendly estimate (cubicCurve, in segments
// and seconds, no policy), and the sender (Cubic, in bytes) that decides
// when the curve is consulted, reduced, reset or shifted.
//
// With Config.CubicLinuxGrowth (the linux profile) congestion avoidance,
// the reductions and the epoch follow Linux's integer arithmetic instead
// (cubic_linux.go); slow start, HyStart and the loss episode stay here.

const (
	// cubicC is C, the curve's aggressiveness, in segments per second³
	// (RFC 9438 §5.1 and Linux's default).
	cubicC = 0.4
	// cubicBeta is β_cubic, the multiplicative decrease factor (RFC 9438 §4.6).
	cubicBeta = 0.7
	// cubicAlpha is α_cubic, the Reno-friendly additive increase in segments
	// per RTT that matches Reno's average rate at β_cubic (RFC 9438 §4.3).
	cubicAlpha = 3 * (1 - cubicBeta) / (1 + cubicBeta)
	// cubicFastConvergence is the factor W_max is lowered by when a loss
	// comes below the previous W_max (RFC 9438 §4.7): (1+β)/2.
	cubicFastConvergence = (1 + cubicBeta) / 2
	// cubicMaxTargetRatio bounds the target to 1.5 cwnd (RFC 9438 §4.2).
	cubicMaxTargetRatio = 1.5
)

// cubicK is K, the time in seconds the curve takes from cwnd_epoch to
// W_max (RFC 9438 §4.2, equation 2): cbrt((W_max - cwnd_epoch)/C). Right
// after a loss cwnd_epoch = β·W_max, which gives cbrt(W_max·(1-β)/C).
func cubicK(wMaxSeg, cwndEpochSeg float64) float64 {
	if wMaxSeg <= cwndEpochSeg {
		return 0
	}
	return math.Cbrt((wMaxSeg - cwndEpochSeg) / cubicC)
}

// cubicCurve is the state of one congestion-avoidance stage: the window
// function W_cubic(t) = C·(t-K)³ + W_max (RFC 9438 §4.2, equation 1) and
// the Reno-friendly estimate W_est (§4.3). Windows are in segments.
type cubicCurve struct {
	// wMaxSeg is W_max, segments: the window just before the last
	// reduction, lowered by fast convergence; 0 when unknown (before any
	// loss, or after an RTO, RFC 9438 §4.8), and then the next stage takes
	// its own starting window.
	wMaxSeg float64
	// cwndPriorSeg is cwnd_prior, segments: the window before the last
	// reduction; W_est reaching it switches α to 1 (RFC 9438 §4.3).
	cwndPriorSeg float64
	// inEpoch says a congestion-avoidance stage is running; epochStart is
	// the engine time it began, shifted forward over application-limited
	// time so t counts only time the window was used.
	inEpoch    bool
	epochStart time.Duration
	kSec       float64 // K, seconds
	wEstSeg    float64 // W_est, segments
}

// start begins a congestion-avoidance stage at now with cwnd_epoch segments.
func (c *cubicCurve) start(now time.Duration, cwndEpochSeg float64) {
	if c.wMaxSeg < cwndEpochSeg {
		// No loss yet, or after an RTO (RFC 9438 §4.8) or slow start past
		// the old W_max: the curve starts on its plateau, K = 0.
		c.wMaxSeg = cwndEpochSeg
	}
	c.kSec = cubicK(c.wMaxSeg, cwndEpochSeg)
	// RFC 9438 §4.3: W_est starts at cwnd_epoch.
	c.wEstSeg = cwndEpochSeg
	c.epochStart = now
	c.inEpoch = true
}

// window is W_cubic(t) in segments, t seconds after the epoch start.
func (c *cubicCurve) window(tSec float64) float64 {
	d := tSec - c.kSec
	return cubicC*d*d*d + c.wMaxSeg
}

// reduce records a congestion event at cwnd segments: W_max with fast
// convergence (RFC 9438 §4.7), cwnd_prior, and the end of the epoch.
func (c *cubicCurve) reduce(cwndSeg float64) {
	if cwndSeg < c.wMaxSeg {
		// RFC 9438 §4.7: a loss below the previous W_max means the path's
		// share is shrinking; release bandwidth to newer flows.
		c.wMaxSeg = cwndSeg * cubicFastConvergence
	} else {
		c.wMaxSeg = cwndSeg // RFC 9438 §4.6
	}
	c.cwndPriorSeg = cwndSeg
	c.inEpoch = false
}

// grow returns the window after ackedSeg segments are acknowledged at t
// seconds into the epoch, with cwnd segments now and an RTT of rttSec.
func (c *cubicCurve) grow(tSec, rttSec, cwndSeg, ackedSeg float64) float64 {
	// RFC 9438 §4.3: W_est grows α per window acknowledged; once it passes
	// cwnd_prior, Reno's own rate of one segment per window applies.
	alpha := cubicAlpha
	if c.wEstSeg >= c.cwndPriorSeg {
		alpha = 1
	}
	c.wEstSeg += alpha * ackedSeg / cwndSeg
	if c.window(tSec) < c.wEstSeg {
		// RFC 9438 §4.3: Reno-friendly region, cwnd follows W_est.
		return max(cwndSeg, c.wEstSeg)
	}
	// RFC 9438 §4.2: target = W_cubic(t+RTT), bounded to [cwnd, 1.5 cwnd].
	target := min(max(c.window(tSec+rttSec), cwndSeg), cubicMaxTargetRatio*cwndSeg)
	// RFC 9438 §4.4, §4.5: concave and convex regions alike add
	// (target-cwnd)/cwnd per acknowledged segment.
	return cwndSeg + (target-cwndSeg)/cwndSeg*ackedSeg
}

// cubicSnapshot is what Undo restores (RFC 9438 §4.9).
type cubicSnapshot struct {
	cwndBytes     float64
	ssthreshBytes int
	curve         cubicCurve
}

// Cubic is the RFC 9438 sender: slow start as RFC 5681 with RFC 3465 byte
// counting (L = 1 SMSS), congestion avoidance on the cubic curve, β = 0.7
// reductions.
type Cubic struct {
	iw Config // initial-window rule, for the restart window; iw.MSS is the segment size
	// cwndBytes is cwnd in bytes, with the fraction of a byte the curve's
	// per-ACK growth leaves; CongestionWindow floors it.
	cwndBytes     float64
	ssthreshBytes int
	srtt          time.Duration // smoothed RTT (RFC 6298 gains), the RTT in W_cubic(t+RTT)
	curve         cubicCurve
	// reduced says a reduction is in force for the current loss episode;
	// recoverBytes is what must still be acknowledged (the flight at the
	// reduction) before a new loss is a new episode, like Linux's high_seq.
	// (The flags are together, after prior, so that they leave no padding.)
	recoverBytes int
	// appLimited says the window has not been fully used since
	// appLimitedSince; the epoch is shifted by that time when it is used
	// again, so idle or application-limited time does not count in t.
	appLimitedSince time.Duration
	lastAckAt       time.Duration
	// prior is the state before the last reduction, for Undo while
	// hasPrior: made at the first reduction, so that a controller that
	// never reduced (every idle connection's) fits in 240 bytes
	// (TestCubicFitsItsSizeClass).
	prior      *cubicSnapshot
	reduced    bool
	appLimited bool
	hasPrior   bool
	hy         hystart // slow start's exit search (cubic_hystart.go)
	// bic is the state of Linux's integer arithmetic (cubic_linux.go),
	// used instead of curve when Config.CubicLinuxGrowth.
	bic bictcp
}

var (
	_ Controller = (*Cubic)(nil)
	_ AckSampler = (*Cubic)(nil)

	_ TxStartObserver = (*Cubic)(nil)
)

// NewCubic returns a CUBIC controller in its initial state.
func NewCubic(cfg Config) *Cubic {
	return &Cubic{
		iw:            cfg,
		cwndBytes:     float64(cfg.InitialWindow()),
		ssthreshBytes: InitialSSThresh,
	}
}

func (c *Cubic) Name() string            { return "cubic" }
func (c *Cubic) Recovery() Recovery      { return FastRecoveryPartialAcks }
func (c *Cubic) CongestionWindow() int   { return int(c.cwndBytes) }
func (c *Cubic) SlowStartThreshold() int { return c.ssthreshBytes }

// SetMSS changes the segment size. cwnd and ssthresh keep their bytes; the
// curve's segment counts are rescaled to the same bytes and the epoch
// restarts, so K is recomputed in the new unit.
func (c *Cubic) SetMSS(mss int) {
	if mss <= 0 || mss == c.iw.MSS {
		return
	}
	scale := float64(c.iw.MSS) / float64(mss)
	c.curve.wMaxSeg *= scale
	c.curve.cwndPriorSeg *= scale
	c.curve.inEpoch = false
	// Linux's state is in segments: a new epoch recomputes K from them.
	c.bic.epochStart = 0
	c.iw.MSS = mss
}

func (c *Cubic) cwndSeg() float64 { return c.cwndBytes / float64(c.iw.MSS) }

// OnAck grows cwnd: slow start below ssthresh, the cubic curve above it.
func (c *Cubic) OnAck(now time.Duration, ackedBytes, flightBytes int, rtt time.Duration) {
	if rtt > 0 {
		if c.srtt == 0 {
			c.srtt = rtt
		} else {
			c.srtt += (rtt - c.srtt) / 8 // RFC 6298 §2.3, α = 1/8
		}
	}
	c.lastAckAt = now
	if c.reduced {
		if c.recoverBytes -= ackedBytes; c.recoverBytes <= 0 {
			c.reduced = false
		}
	}
	drained := flightBytes <= ackedBytes
	// RFC 9438 §5.8 / RFC 7661: do not grow a window the sender is not
	// using. The engine does not send a runt to fill the last partial
	// segment, so a window with less than one SMSS free counts as used.
	if flightBytes+c.iw.MSS <= c.CongestionWindow() {
		c.markAppLimited(now)
		return
	}
	if c.iw.CubicLinuxGrowth {
		c.linuxOnAck(now, ackedBytes)
		return
	}
	if c.appLimited {
		c.appLimited = false
		if c.curve.inEpoch {
			// Linux bictcp_cwnd_event: shift the epoch over the time the
			// window was not used, so growth stays on the curve.
			c.curve.epochStart = min(c.curve.epochStart+(now-c.appLimitedSince), now)
		}
	}
	if c.CongestionWindow() < c.ssthreshBytes {
		// RFC 5681 §3.1 equation 2 with RFC 3465's limit L, stopping at
		// ssthresh where congestion avoidance takes over.
		c.cwndBytes = min(c.cwndBytes+float64(c.iw.slowStartIncrease(ackedBytes)), float64(c.ssthreshBytes))
	} else {
		c.avoid(now, ackedBytes)
	}
	if drained {
		// Nothing is left in flight: the sender may go idle from here.
		c.markAppLimited(now)
	}
}

// linuxOnAck grows a window in use as Linux's cubictcp_cong_avoid: slow
// start up to ssthresh, and what of the ACK slow start did not use goes to
// congestion avoidance (tcp_slow_start returns it). Idle time leaves the
// curve through OnTxStart, not here.
func (c *Cubic) linuxOnAck(now time.Duration, ackedBytes int) {
	if c.CongestionWindow() < c.ssthreshBytes {
		before := c.CongestionWindow()
		c.cwndBytes = min(c.cwndBytes+float64(c.iw.slowStartIncrease(ackedBytes)), float64(c.ssthreshBytes))
		// Linux behaviour: tcp_slow_start, the segments past ssthresh
		// count toward congestion avoidance on the same ACK.
		if ackedBytes -= c.CongestionWindow() - before; ackedBytes <= 0 || c.CongestionWindow() < c.ssthreshBytes {
			return
		}
	}
	c.linuxAvoid(now, ackedBytes)
}

// avoid is congestion avoidance on the cubic curve (RFC 9438 §4.2-§4.5).
func (c *Cubic) avoid(now time.Duration, ackedBytes int) {
	cwnd := c.cwndSeg()
	if !c.curve.inEpoch {
		// RFC 9438 §4.2: t counts from the start of this stage.
		c.curve.start(now, cwnd)
	}
	t := (now - c.curve.epochStart).Seconds()
	next := c.curve.grow(t, c.srtt.Seconds(), cwnd, float64(ackedBytes)/float64(c.iw.MSS))
	c.cwndBytes = next * float64(c.iw.MSS)
}

// markAppLimited notes that the window has not been used since t.
func (c *Cubic) markAppLimited(t time.Duration) {
	if !c.appLimited {
		c.appLimited, c.appLimitedSince = true, t
	}
}

// reduce saves the state for Undo and sets ssthresh = max(β·cwnd, 2 SMSS)
// (RFC 9438 §4.6, with cwnd in place of FlightSize as Linux does).
func (c *Cubic) reduce(flightBytes int) {
	if c.prior == nil {
		c.prior = new(cubicSnapshot)
	}
	*c.prior = cubicSnapshot{cwndBytes: c.cwndBytes, ssthreshBytes: c.ssthreshBytes, curve: c.curve}
	c.hasPrior = true
	if c.iw.CubicLinuxGrowth {
		// Linux behaviour: cubictcp_recalc_ssthresh, in whole segments.
		c.ssthreshBytes = int(c.bic.recalcSsthresh(uint32(c.CongestionWindow()/c.iw.MSS))) * c.iw.MSS
	} else {
		c.curve.reduce(c.cwndSeg())
		c.ssthreshBytes = max(int(c.cwndBytes*cubicBeta), 2*c.iw.MSS)
	}
	c.reduced, c.recoverBytes = true, flightBytes
}

// OnLoss is the multiplicative decrease on a loss detected by duplicate
// ACKs or SACK (RFC 9438 §4.6): cwnd = ssthresh = max(β·cwnd, 2 SMSS), once
// per loss episode.
func (c *Cubic) OnLoss(now time.Duration, flightBytes int) {
	if c.reduced {
		return // RFC 9438 §4.6: one reduction per congestion event
	}
	c.reduce(flightBytes)
	c.cwndBytes = float64(c.ssthreshBytes)
}

// OnRecoveryEnd ends the loss episode. cwnd is already ssthresh (OnLoss
// set it and no ACK grows it during recovery); the next ACK starts a new
// epoch from there.
func (c *Cubic) OnRecoveryEnd(now time.Duration) {
	c.reduced, c.recoverBytes = false, 0
}

// OnRTO is RFC 9438 §4.8: ssthresh from β as on a loss, cwnd = 1 SMSS, and
// the next congestion-avoidance stage starts with K = 0 and W_max = W_est =
// its starting window. A further RTO in the same episode (a backed-off
// retransmission) only resets cwnd, so ssthresh and Undo's state survive.
func (c *Cubic) OnRTO(now time.Duration, flightBytes int) {
	if !c.reduced {
		c.reduce(flightBytes)
	}
	c.curve.wMaxSeg = 0
	c.curve.inEpoch = false
	c.cwndBytes = float64(c.iw.MSS)
	// Linux behaviour (cubictcp_state on TCP_CA_Loss): HyStart starts
	// over, its minimum delay forgotten, for the slow start that follows.
	c.hy = hystart{}
	// Linux behaviour: so does the rest of its state (bictcp_reset on
	// TCP_CA_Loss, W_max included), and snd_cwnd_cnt (tcp_enter_loss).
	c.bic = bictcp{}
}

// OnIdleRestart applies RFC 5681 §4.1, cwnd = min(RW, cwnd) with the
// initial window as RW, or Linux's halving per RTO of idleness (Config's
// IdleRestartHalving). If that cuts the window, the epoch ends, so the
// next stage climbs back toward W_max from ssthresh instead of resuming a
// curve that assumed the old window; otherwise the idle time is skipped
// like any application-limited time.
func (c *Cubic) OnIdleRestart(now, idle, rto time.Duration) {
	c.markAppLimited(c.lastAckAt)
	cwnd, ssthresh := c.iw.restart(c.CongestionWindow(), c.ssthreshBytes, idle, rto)
	c.ssthreshBytes = ssthresh
	if rw := float64(cwnd); c.cwndBytes > rw {
		c.cwndBytes = rw
		// The RFC curve's epoch ends here. Linux's tcp_cubic ignores the
		// restart (CA_EVENT_CWND_RESTART), so with CubicLinuxGrowth its
		// epoch (bic) goes on, moved forward over the idle time by
		// OnTxStart.
		c.curve.inEpoch = false
	}
}

// Undo restores cwnd, ssthresh and the curve (W_max, K, epoch, W_est,
// cwnd_prior) from before the last reduction, once it is shown spurious
// (RFC 9438 §4.9).
func (c *Cubic) Undo(now time.Duration) {
	if !c.hasPrior {
		return
	}
	c.cwndBytes = max(c.cwndBytes, c.prior.cwndBytes)
	c.ssthreshBytes = max(c.ssthreshBytes, c.prior.ssthreshBytes)
	// RFC 9438 §4.9 restores the curve. Linux behaviour: tcp_cubic undoes
	// with tcp_reno_undo_cwnd, cwnd and ssthresh only, so with
	// CubicLinuxGrowth its state (bic) keeps the W_max the reduction set,
	// and a new epoch starts on the next ACK.
	c.curve = c.prior.curve
	c.hasPrior = false
	c.reduced, c.recoverBytes = false, 0
}
