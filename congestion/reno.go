package congestion

import "time"

// Style selects the Reno family member. The window arithmetic is shared;
// they differ in what a detected loss does to cwnd.
type Style int

const (
	RenoStyle    Style = iota // RFC 5681: fast recovery halves cwnd
	NewRenoStyle              // RFC 6582: as Reno; partial ACKs handled by the engine's recovery
	TahoeStyle                // no fast recovery: every loss restarts slow start
)

// Reno implements RFC 5681 slow start and congestion avoidance with
// appropriate byte counting (RFC 3465).
type Reno struct {
	style         Style
	mss           int    // bytes
	iw            Config // initial-window rule, for the restart window
	cwndBytes     int
	ssthreshBytes int
	// bytesAcked accumulates acknowledged bytes during congestion avoidance
	// (RFC 3465 §2.1) until a full cwnd's worth has been acknowledged.
	bytesAcked int
	// priorCwnd and priorSsthresh hold the values before the last
	// reduction, for Undo.
	priorCwnd, priorSsthresh int
	// timedOut is set by a timeout and cleared by the next ACK of new data:
	// a second timeout before it is the same segment timing out again.
	timedOut bool
	// inRecovery is set from OnLoss to OnRecoveryEnd: a timeout then keeps
	// the ssthresh fast recovery chose (Linux tcp_enter_loss).
	inRecovery bool
}

// NewReno returns a Reno-family controller in its initial state.
func NewReno(cfg Config, style Style) *Reno {
	return &Reno{
		style:         style,
		mss:           cfg.MSS,
		iw:            cfg,
		cwndBytes:     cfg.InitialWindow(),
		ssthreshBytes: InitialSSThresh,
	}
}

func (r *Reno) Name() string {
	switch r.style {
	case NewRenoStyle:
		return "newreno"
	case TahoeStyle:
		return "tahoe"
	}
	return "reno"
}

// Recovery: Tahoe has no fast recovery; Reno leaves it on the first new
// ACK; NewReno stays through partial ACKs.
func (r *Reno) Recovery() Recovery {
	switch r.style {
	case NewRenoStyle:
		return FastRecoveryPartialAcks
	case TahoeStyle:
		return NoFastRecovery
	}
	return FastRecoveryFirstAck
}

func (r *Reno) CongestionWindow() int   { return r.cwndBytes }
func (r *Reno) SlowStartThreshold() int { return r.ssthreshBytes }
func (r *Reno) SetMSS(mss int)          { r.mss, r.iw.MSS = mss, mss }

// OnAck grows cwnd: by the bytes acknowledged (at most L segments per ACK,
// RFC 3465) in slow start, by about one SMSS per RTT in congestion
// avoidance.
func (r *Reno) OnAck(now time.Duration, ackedBytes, flightBytes int, rtt time.Duration) {
	// RFC 5681 §3.1 / RFC 7661: do not grow a window the sender is not
	// using. A sender of full segments cannot fill the last partial one
	// (cwnd = ssthresh after recovery may be 33.5 segments), so less than
	// one SMSS free counts as used; otherwise cwnd would never grow again.
	r.timedOut = false
	if flightBytes+r.mss <= r.cwndBytes {
		return
	}
	if r.cwndBytes < r.ssthreshBytes {
		// RFC 5681 §3.1 equation 2, with RFC 3465's limit L; slow start
		// ends at ssthresh, and what the ACK acknowledged beyond that
		// counts toward congestion avoidance (Linux tcp_slow_start). A
		// cumulative ACK after loss recovery can cover hundreds of
		// segments; without the cap it would blow cwnd far past ssthresh.
		inc := r.iw.slowStartIncrease(ackedBytes)
		room := r.ssthreshBytes - r.cwndBytes
		if inc <= room {
			r.cwndBytes += inc
			return
		}
		r.cwndBytes = r.ssthreshBytes
		ackedBytes = inc - room
	}
	// RFC 3465 §2.1: byte counting in congestion avoidance.
	r.bytesAcked += ackedBytes
	if r.bytesAcked >= r.cwndBytes {
		r.bytesAcked -= r.cwndBytes
		r.cwndBytes += r.mss
	}
}

func (r *Reno) remember() {
	r.priorCwnd, r.priorSsthresh = r.cwndBytes, r.ssthreshBytes
}

// lossThreshold is RFC 5681 §3.1 equation 4: max(FlightSize/2, 2*SMSS).
func (r *Reno) lossThreshold(flightBytes int) int {
	return max(flightBytes/2, 2*r.mss)
}

// OnLoss enters fast recovery (RFC 5681 §3.2 steps 2 and 3), or for Tahoe
// restarts slow start.
func (r *Reno) OnLoss(now time.Duration, flightBytes int) {
	r.remember()
	r.ssthreshBytes = r.lossThreshold(flightBytes)
	r.bytesAcked = 0
	r.inRecovery = true
	if r.style == TahoeStyle {
		r.cwndBytes = r.mss
		return
	}
	// RFC 5681 §3.2 step 3: cwnd = ssthresh + 3*SMSS; the engine inflates
	// further per duplicate ACK through its own recovery accounting.
	r.cwndBytes = r.ssthreshBytes + 3*r.mss
}

// OnRecoveryEnd deflates the window (RFC 5681 §3.2 step 6).
func (r *Reno) OnRecoveryEnd(now time.Duration) {
	r.inRecovery = false
	if r.style != TahoeStyle {
		r.cwndBytes = r.ssthreshBytes
	}
}

// OnRTO applies RFC 5681 §3.1: ssthresh per equation 4, cwnd = 1 SMSS (the
// loss window).
func (r *Reno) OnRTO(now time.Duration, flightBytes int) {
	// RFC 5681 §3.1: ssthresh is set when a segment times out for the
	// first time, not again when its retransmission times out too; and,
	// as Linux does, not when the timeout ends a fast recovery that has
	// already set it from the flight at the loss (the flight now also
	// counts what the peer SACKed since, and would raise it).
	if !r.timedOut && !r.inRecovery {
		r.remember()
		r.ssthreshBytes = r.lossThreshold(flightBytes)
	}
	r.timedOut, r.inRecovery = true, false
	r.cwndBytes = r.mss
	r.bytesAcked = 0
}

// OnIdleRestart applies RFC 5681 §4.1, cwnd = min(RW, cwnd) with the
// initial window as RW, or Linux's halving per RTO of idleness (Config's
// IdleRestartHalving).
func (r *Reno) OnIdleRestart(now, idle, rto time.Duration) {
	r.cwndBytes, r.ssthreshBytes = r.iw.restart(r.cwndBytes, r.ssthreshBytes, idle, rto)
}

// Undo restores the window from before the last reduction.
func (r *Reno) Undo(now time.Duration) {
	if r.priorCwnd == 0 {
		return
	}
	r.cwndBytes = max(r.cwndBytes, r.priorCwnd)
	r.ssthreshBytes = max(r.ssthreshBytes, r.priorSsthresh)
	r.priorCwnd = 0
}
