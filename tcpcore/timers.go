package tcpcore

import (
	"time"

	"tunstack/policy"
	"tunstack/wire"
)

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
	if c.closeAt <= now {
		c.closeAt = noDeadline
		c.onCloseTimer(now)
	}
	// The probe timer stands in for the RTO while armed (Linux keeps them
	// in one slot): when both are due the probe goes, and re-arms the RTO.
	if c.tlpAt <= now && c.tlpAt <= c.rtoAt {
		c.tlpAt = noDeadline
		c.onTLP(now)
	}
	if c.rtoAt <= now {
		c.rtoAt, c.tlpAt = noDeadline, noDeadline
		c.onRTO(now)
	}
	if c.persistAt <= now {
		c.persistAt = noDeadline
		c.onPersist(now)
	}
	if c.delackAt <= now {
		// The delayed ACK found nothing to ride on: inflate the timeout
		// (Linux tcp_delack_timer_handler), within DelAckMax.
		c.delackAt = noDeadline
		c.ackNow = true
		if c.pingpong {
			// Delayed-ACK mode guessed wrong: leave it and deflate the
			// timeout (Linux tcp_delack_timer_handler).
			c.pingpong = false
			c.ato = c.e.prof.DelAckMin
		} else {
			c.ato = min(2*max(c.ato, c.e.prof.DelAckMin), c.e.prof.DelAckMax)
		}
	}
	if c.keepaliveAt <= now {
		c.keepaliveAt = noDeadline
		c.onKeepalive(now)
	}
	if c.lingerAt <= now {
		c.lingerAt = noDeadline
		c.wake()
	}
	if c.corkAt <= now {
		// TCP_CORK holds a partial segment at most CorkLimit (Linux 200 ms).
		c.corkAt = noDeadline
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
			c.rtoAt, c.persistAt, c.delackAt, c.keepaliveAt, c.closeAt, c.lingerAt, c.corkAt, c.tlpAt =
				noDeadline, noDeadline, noDeadline, noDeadline, noDeadline, noDeadline, noDeadline, noDeadline
		}
	}
	c.updateDeadline()
}

// onCloseTimer ends TIME-WAIT (RFC 9293 §3.10.8) or an orphaned FIN-WAIT-2.
func (c *Conn) onCloseTimer(now Time) {
	switch c.state {
	case TimeWait, FinWait2:
		// Linux lets an orphaned FIN-WAIT-2 expire silently when
		// tcp_fin_timeout does not exceed the TIME-WAIT length.
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
		// RFC 9293 §3.8.3 (R2 for a SYN). Linux gives up after
		// SynRetries+SynLinearTimeouts retransmissions, or once the time
		// since the first SYN reaches what SynRetries doubling backoffs
		// would take (tcp_write_timeout), whichever comes first.
		if c.retries >= p.SynRetries+p.SynLinearTimeouts || now.Sub(c.synStart) >= synGiveUpTime(p) {
			c.e.stats.AttemptFails++
			c.closeWith(ErrTimedOut)
			return
		}
		c.retries++
		if c.retries > p.SynLinearTimeouts {
			// Linux 6.x: the first SynLinearTimeouts retransmissions keep
			// the initial RTO; exponential backoff only after them.
			c.backoff++
		}
		c.rttTiming = false
		c.countRetransmit(now, rtxSYN)
		c.rtoAt = now.Add(c.rtt.backedOff(c.backoff))
		c.sendSyn(now)
		return
	case SynReceived:
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
		c.retries++
		c.backoff++
		c.rttTiming = false
		c.countRetransmit(now, rtxSYN)
		c.rtoAt = now.Add(c.rtt.backedOff(c.backoff))
		c.sendSyn(now)
		return
	case Established, CloseWait, FinWait1, Closing, LastAck:
	default:
		return
	}
	if c.sndUna == c.sndMax {
		return // nothing outstanding
	}
	if c.retries >= p.Retries2 {
		// RFC 9293 §3.8.3 R2: give up. Linux reports ETIMEDOUT without RST.
		c.closeWith(ErrTimedOut)
		if c.appClosed {
			c.destroy()
		}
		return
	}
	c.retries++
	c.backoff++
	c.info.Timeouts++
	// RFC 6298 §5.4: retransmit the earliest unacknowledged segment; the
	// rest follow as the window allows (recovery.go, loss state).
	c.enterLossRecovery(now)
	c.rttTiming = false
	// RFC 6298 §5.5-5.6: back off and restart the timer.
	c.rtoAt = now.Add(c.rtt.backedOff(c.backoff))
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
	c.persistAt = now.Add(c.rtt.backedOff(c.persistBackoff))
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
		c.sendData(now, min(wndLeft, pending, mss), mss, false)
		return
	}
	p := c.e.prof
	if p.MaxZeroWindowProbes > 0 && c.persistBackoff >= p.MaxZeroWindowProbes {
		// Seed 002: some stacks give up when the window is still zero
		// after a few probes, answered or not: RST, then ETIMEDOUT.
		c.abort(now, ErrTimedOut)
		return
	}
	if c.probes >= p.Retries2 {
		// Linux tcp_probe_timer: the retry limit ends it, without RST.
		c.closeWith(ErrTimedOut)
		return
	}
	c.probes++
	c.persistBackoff++
	c.info.ZeroWindowProbes++
	if c.e.prof.ProbeNewByte && pending > 0 {
		// RFC 9293 §3.8.6.1: probe with one byte of new data.
		c.sendData(now, 1, c.segSize(), false)
		c.rtoAt = noDeadline
	} else {
		// Linux tcp_xmit_probe_skb: SND.UNA-1, no data; the peer answers
		// with its current window.
		c.emitProbe(now)
	}
	c.persistAt = now.Add(c.rtt.backedOff(c.persistBackoff))
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
	if c.kaProbes >= c.kaCount {
		// Linux tcp_keepalive_timer: RST, then ETIMEDOUT.
		c.abort(now, ErrTimedOut)
		return
	}
	c.kaProbes++
	c.info.KeepAlivesSent++
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
