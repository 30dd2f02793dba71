package tcpcore

import (
	"time"

	"tunstack/policy"
	"tunstack/wire"
)

// timers holds a connection's timers and what drives them: the
// retransmission timer's RTT estimate and backoff (RFC 6298), the probe
// counts of the persist and keepalive timers, and the one deadline that
// keys the connection in the engine's heap. Each timer is an instant,
// noDeadline when off. Conn embeds it.
//
// Invariant: deadline is the earliest of the timers (updateDeadline keeps
// it so after every event), and heapIdx is the connection's place in the
// engine's heap, -1 when it has no timer armed.
type timers struct {
	rtoAt       Time // retransmission, SYN and SYN-ACK retransmission
	persistAt   Time // zero-window probe
	delackAt    Time // delayed ACK
	keepaliveAt Time // keepalive probe
	closeAt     Time // TIME-WAIT end, FIN-WAIT-2 timeout
	tlpAt       Time // tail loss probe (RFC 8985 §7)
	tlpHighSeq  Seq  // SND.MAX when the last probe went out
	tlpOpen     bool // that probe awaits its outcome (Linux tlp_high_seq != 0)
	tlpRetrans  bool // that probe resent data rather than sending new (Linux tlp_retrans)
	frto        bool // F-RTO watches the present timeout's loss recovery (frto.go; Linux tp->frto)
	frtoNewData bool // F-RTO step 2b: this ACK is answered with new data (Linux REXMIT_NEW)
	lingerAt    Time // SO_LINGER deadline (driver waits on it too)
	corkAt      Time // TCP_CORK's bound on holding a partial segment
	deadline    Time // min of the above, the heap key

	rtt     rttEstimator
	backoff int  // consecutive RTO expirations
	retries int  // retransmissions of the current head segment
	rttTime Time // when rttSeq was sent
	rttSeq  Seq  // segment being timed when timestamps are off
	// heapIdx is the connection's place in the timer heap, -1 when out
	// of it (4 bytes: the heap holds far fewer than 2^31 connections).
	heapIdx   int32
	kaProbes  int32 // unanswered keepalive probes
	rttTiming bool
	synStart  Time // when an active open sent its first SYN
}

func newTimers() timers {
	return timers{heapIdx: -1, rtoAt: noDeadline, persistAt: noDeadline, delackAt: noDeadline,
		keepaliveAt: noDeadline, closeAt: noDeadline, tlpAt: noDeadline, lingerAt: noDeadline, corkAt: noDeadline,
		deadline: noDeadline}
}

// disarm turns off every protocol timer. The SO_LINGER deadline is the
// application's and stays.
func (t *timers) disarm() {
	t.rtoAt, t.persistAt, t.delackAt, t.keepaliveAt, t.closeAt, t.tlpAt, t.corkAt =
		noDeadline, noDeadline, noDeadline, noDeadline, noDeadline, noDeadline, noDeadline
}

// updateDeadline recomputes the connection's earliest timer and moves it in
// the engine's heap.
func (c *Conn) updateDeadline() {
	d := min(c.rtoAt, c.persistAt, c.delackAt, c.keepaliveAt, c.closeAt, c.lingerAt, c.corkAt, c.tlpAt)
	if c.state == Closed && c.e.conns[c.key] != c {
		d = noDeadline
	}
	if d != c.deadline || (d != noDeadline && c.heapIdx < 0) {
		c.deadline = d
		c.e.timers.schedule(c)
	}
}

// onTimers runs every timer of c that is due. Each handler disarms or
// re-arms its own timer in the future, so Advance always makes progress.
func (c *Conn) onTimers(now Time) {
	c.touch()
	if expire(&c.closeAt, now) {
		c.onCloseTimer(now)
	}
	// The probe timer stands in for the RTO while armed (Linux keeps them
	// in one slot): when both are due the probe goes, and re-arms the RTO.
	if c.tlpAt <= c.rtoAt && expire(&c.tlpAt, now) {
		c.onTLP(now)
	}
	if expire(&c.rtoAt, now) {
		c.tlpAt = noDeadline
		c.onRTO(now)
	}
	if expire(&c.persistAt, now) {
		c.onPersist(now)
	}
	if expire(&c.delackAt, now) {
		c.onDelack()
	}
	if expire(&c.keepaliveAt, now) {
		c.onKeepalive(now)
	}
	if expire(&c.lingerAt, now) {
		c.wake()
	}
	if expire(&c.corkAt, now) {
		// TCP_CORK holds a partial segment at most CorkLimit (Linux 200 ms).
		c.corkExpired = true
	}
	if c.state != Closed {
		c.output(now)
	}
	if c.deadline <= now || c.state == Closed {
		c.updateDeadline()
		if c.deadline <= now {
			// A handler left a timer in the past: disarm everything rather
			// than spin. This is a bug guard, not a protocol rule.
			c.disarm()
			c.lingerAt = noDeadline
		}
	}
	c.updateDeadline()
}

// expire reports whether the timer at *t is due at now, and if so disarms
// it, for its handler to re-arm as it sees fit.
func expire(t *Time, now Time) bool {
	if *t > now {
		return false
	}
	*t = noDeadline
	return true
}

// onCloseTimer ends TIME-WAIT (RFC 9293 §3.10.8) or an orphaned FIN-WAIT-2.
func (c *Conn) onCloseTimer(now Time) {
	switch c.state {
	case TimeWait, FinWait2:
		// Linux lets an orphaned FIN-WAIT-2 expire silently when
		// tcp_fin_timeout does not exceed the TIME-WAIT length.
		if c.state == TimeWait {
			c.e.stats.TimeWaitExpired++ // TW: Linux tw_timer_handler, the TIME-WAIT timer ran out
		}
		c.closeWith(nil)
		if c.appClosed {
			c.destroy()
		}
	}
}

// onRTO is the retransmission timer (RFC 6298 §5.4-5.7), also driving SYN
// and SYN-ACK retransmission with exponential backoff.
func (c *Conn) onRTO(now Time) {
	p := c.e.prof
	switch c.state {
	case SynSent:
		// TCPTimeouts: Linux tcp_retransmit_timer counts every expiry,
		// the one that gives up too.
		c.e.stats.Timeouts++
		// RFC 9293 §3.8.3 (R2 for a SYN). Linux gives up after
		// SynRetries+SynLinearTimeouts retransmissions, or once the time
		// since the first SYN reaches what SynRetries doubling backoffs
		// would take (tcp_write_timeout), whichever comes first.
		if c.retries >= p.SynRetries+p.SynLinearTimeouts || c.synTimedOut(now) {
			c.e.stats.AttemptFails++
			c.closeWith(ErrTimedOut)
			return
		}
		// Linux 6.x: the first SynLinearTimeouts retransmissions keep the
		// initial RTO; exponential backoff only after them.
		c.noteRTO(now)
		c.resendSyn(now, c.retries+1 > p.SynLinearTimeouts)
		return
	case SynReceived:
		// TCPTimeouts: Linux tcp_syn_ack_timeout (a request in the SYN
		// queue) and tcp_retransmit_timer count every expiry.
		c.e.stats.Timeouts++
		if c.retries >= p.SynAckRetries {
			// Half-open entry expires (Linux: dropped silently).
			if c.parent != nil {
				c.closeWith(nil)
				return
			}
			c.e.stats.AttemptFails++
			c.closeWith(ErrTimedOut)
			return
		}
		c.resendSyn(now, true)
		return
	case Established, CloseWait, FinWait1, Closing, LastAck:
	default:
		return
	}
	if c.sndUna == c.sndMax {
		return // nothing outstanding
	}
	c.e.stats.Timeouts++ // TCPTimeouts: Linux tcp_retransmit_timer, before tcp_write_timeout may give up
	if c.retransmitsTimedOut(now) {
		// RFC 9293 §3.8.3 R2 (or RFC 5482's user timeout): give up. Linux
		// reports ETIMEDOUT without RST.
		c.closeWith(ErrTimedOut)
		if c.appClosed {
			c.destroy()
		}
		return
	}
	c.noteRTO(now)
	// RFC 5682 §2.1 step 1 (Linux tcp_enter_loss): F-RTO watches a
	// timeout that comes outside loss recovery, or repeats one on the
	// same SND.UNA; not one that ends a fast recovery or strikes during
	// a timeout's recovery after partial ACKs.
	c.frto = c.e.prof.FRTO && (c.recovery == recoveryNone || c.retries > 0)
	c.frtoNewData = false
	c.retries++
	c.backoff++
	c.counters().Timeouts++
	// RFC 6298 §5.4: retransmit the earliest unacknowledged segment; the
	// rest follow as the window allows (recovery.go, loss state). A probe
	// still awaiting its outcome has none now (Linux tcp_enter_loss).
	c.tlpOpen = false
	c.enterLossRecovery(now)
	c.rttTiming = false
	// RFC 6298 §5.5-5.6: back off and restart the timer, never beyond
	// the user timeout (Linux tcp_clamp_rto_to_user_timeout).
	c.rtoAt = now.Add(c.clampRTO(now, c.rareR().retransStamp, c.rtt.backedOff(c.backoff)))
}

// idleRestart restarts the congestion window before new data goes out
// after an idle period longer than the RTO (RFC 5681 §4.1), when nothing
// is in flight. As Linux (tcp_slow_start_after_idle_check): the idle time
// counts from the last data segment sent, a retransmission or probe too,
// and the RTO is the one in force, backed off if it is; the controller
// may halve cwnd per RTO of it (policy IdleRestartHalving).
func (c *Conn) idleRestart(now Time) {
	if !c.hasCC() || !c.e.prof.SlowStartAfterIdle || c.sndUna != c.sndMax || c.lastSend == 0 {
		return
	}
	rto := c.rtt.backedOff(c.backoff)
	if idle := now.Sub(c.lastSend); idle > rto {
		c.ccw().OnIdleRestart(now.Sub(0), idle, rto)
		c.lastSend = now // once per idle period, even if nothing can go now
	}
}

// resendSyn retransmits our SYN (or SYN-ACK) on timeout, backing the
// timer off if backoff, and never times the retransmission (Karn).
func (c *Conn) resendSyn(now Time, backoff bool) {
	c.retries++
	if backoff {
		c.backoff++
	}
	c.rttTiming = false
	c.countRetransmit(now, rtxSYN)
	rto := c.rtt.backedOff(c.backoff)
	if c.state == SynSent {
		rto = c.clampRTO(now, c.synStart, rto) // Linux: retrans_stamp is the first SYN's
	}
	c.rtoAt = now.Add(rto)
	c.sendSyn(now)
}

// armPersist starts the persist timer when data waits on a closed window
// and nothing is in flight to bring an ACK (RFC 9293 §3.8.6.1).
func (c *Conn) armPersist(now Time) {
	if c.persistAt != noDeadline || c.rtoAt != noDeadline || c.sndUna != c.sndMax {
		return
	}
	off := c.sndNxt.Sub(c.sndBufSeq)
	pending := c.sndBuf.Len() - off
	finWaiting := c.finQueued && !c.finSent
	if pending <= 0 && !finWaiting {
		return
	}
	if c.sndUna.Add(c.sndWnd).Sub(c.sndNxt) > 0 && c.sndWnd >= c.sndMSS {
		return
	}
	c.persistAt = now.Add(c.rtt.backedOff(c.rareR().persistBackoff))
}

// onPersist sends a zero-window probe, or, when the window is open but
// too small for the SWS rules, forces out what fits (RFC 1122 §4.2.3.4's
// override timeout).
func (c *Conn) onPersist(now Time) {
	wndLeft := c.sndUna.Add(c.sndWnd).Sub(c.sndNxt)
	off := c.sndNxt.Sub(c.sndBufSeq)
	pending := c.sndBuf.Len() - off
	if wndLeft > 0 && pending > 0 {
		mss := c.segSize()
		c.sendData(now, min(wndLeft, pending, mss), mss, false, 0)
		if r := c.rare; r != nil {
			r.probesStamp = 0 // data in flight: no zero-window probing (Linux tcp_send_probe0)
		}
		return
	}
	if c.probeTimedOut(now) {
		// RFC 5482 with Linux's tcp_probe_timer: the window stayed shut
		// for the user timeout. ETIMEDOUT without RST.
		c.closeWith(ErrTimedOut)
		return
	}
	p := c.e.prof
	if p.MaxZeroWindowProbes > 0 && c.rareR().persistBackoff >= p.MaxZeroWindowProbes {
		// policy.MaxZeroWindowProbes: some stacks give up when the window is still zero
		// after a few probes, answered or not: RST, then ETIMEDOUT.
		c.abort(now, ErrTimedOut)
		return
	}
	if c.rareR().probes >= p.Retries2 {
		// Linux tcp_probe_timer: the retry limit ends it, without RST.
		c.closeWith(ErrTimedOut)
		return
	}
	r := c.rareW()
	r.probes++
	r.persistBackoff++
	r.ZeroWindowProbes++
	c.e.stats.WinProbes++ // TCPWinProbe: Linux tcp_send_probe0 through tcp_write_wakeup
	if c.e.prof.ProbeNewByte && pending > 0 {
		// RFC 9293 §3.8.6.1: probe with one byte of new data.
		c.sendData(now, 1, c.segSize(), false, 0)
		c.rtoAt = noDeadline
	} else {
		// Linux tcp_xmit_probe_skb: SND.UNA-1, no data; the peer answers
		// with its current window.
		c.emitProbe(now)
	}
	// Never beyond the user timeout (Linux tcp_clamp_probe0_to_user_timeout).
	c.persistAt = now.Add(c.clampProbe(now, c.rtt.backedOff(c.rareR().persistBackoff)))
}

// emitProbe sends a segment the peer must answer with an ACK: sequence
// number SND.UNA-1 and no data (keepalive and Linux zero-window probes).
func (c *Conn) emitProbe(now Time) {
	var o wire.TCPOptions
	c.ackOptions(now, &o)
	c.emit(now, c.sndUna.Add(-1), c.rcvNxt, wire.FlagACK, c.advertiseWindow(), &o, 0, 0)
}

// armKeepalive (re)starts the idle timer after activity.
func (c *Conn) armKeepalive(now Time) {
	if !c.keepAlive || (c.state != Established && c.state != CloseWait) {
		c.keepaliveAt = noDeadline
		return
	}
	c.kaProbes = 0
	c.keepaliveAt = now.Add(c.kaIdle)
}

// onKeepalive sends a keepalive probe (RFC 1122 §4.2.3.6) or gives up.
func (c *Conn) onKeepalive(now Time) {
	if !c.keepAlive || (c.state != Established && c.state != CloseWait) {
		return
	}
	if c.sndUna != c.sndMax || c.sndBuf.Len() > 0 {
		// Data outstanding: the retransmission timer watches the peer.
		c.keepaliveAt = now.Add(c.kaIdle)
		return
	}
	if c.keepaliveTimedOut(now) {
		// Linux tcp_keepalive_timer: RST, then ETIMEDOUT (with
		// TCP_USER_TIMEOUT too, RFC 5482).
		c.abort(now, ErrTimedOut)
		return
	}
	c.kaProbes++
	c.info.KeepAlivesSent++
	c.e.stats.KeepAlives++ // TCPKeepAlive: Linux tcp_keepalive_timer through tcp_write_wakeup
	c.emitProbe(now)
	c.keepaliveAt = now.Add(c.kaIntvl)
}

// synGiveUpTime is how long an active open keeps retransmitting its SYN:
// the time SynRetries exponentially backed-off retransmissions take from
// InitialRTO, (2^(n+1) - 1) * InitialRTO, with each backoff capped at
// RTOMax (Linux tcp_model_timeout). With SynLinearTimeouts, retransmissions
// come sooner, but the time bound stays the same.
func synGiveUpTime(p *policy.Profile) time.Duration {
	var total time.Duration
	rto := p.InitialRTO
	for range p.SynRetries + 1 {
		total += rto
		rto = min(2*rto, p.RTOMax)
	}
	return total
}
