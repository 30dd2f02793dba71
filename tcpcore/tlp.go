package tcpcore

import (
	"time"
)

// Tail loss probe (RFC 8985 §7). When the last segments of a flight are
// lost no duplicate ACKs come back and only the RTO would notice. A probe
// sent about two round trips after the last transmission (new data if there
// is some, else the last segment again) draws an ACK whose SACK blocks start
// fast recovery instead. Like Linux, only on SACK connections.

// tlpMinTimeout is the floor Linux adds when several segments are in
// flight (TCP_TIMEOUT_MIN).
const tlpMinTimeout = 2 * time.Millisecond

// armTLP schedules the probe timeout (RFC 8985 §7.2) if a probe may be
// sent: as Linux's tcp_schedule_loss_probe, only while the connection is
// open, neither in recovery nor in disorder (SACKed, lost or retransmitted
// data outstanding), where RACK's reordering timer or the RTO watch the
// tail. The timer slot is left alone while it holds RACK's reordering
// timer.
func (c *Conn) armTLP(now Time) {
	if c.rack.reoTimer && c.tlpAt != noDeadline {
		return
	}
	c.rack.reoTimer = false
	p := c.e.prof
	if !p.TailLossProbe || !c.sackOK || c.recovery != recoveryNone || c.disorder || !c.rtt.hasSample ||
		c.tlpHighSeq.GT(c.sndUna) || c.sndUna == c.sndMax {
		c.tlpAt = noDeadline
		return
	}
	pto := 2 * c.rtt.srtt
	if c.outstanding() <= c.sndMSS {
		pto += p.TLPDelAckAllowance // the peer may be delaying its ACK
	} else {
		pto += tlpMinTimeout
	}
	at := now.Add(pto)
	if c.rtoAt != noDeadline && c.rtoAt < at {
		at = c.rtoAt // never later than the RTO
	}
	c.tlpAt = at
}

// onTLP sends the probe (RFC 8985 §7.3) and re-arms the RTO, or runs
// RACK's reordering timer when the slot held that.
func (c *Conn) onTLP(now Time) {
	if c.rack.reoTimer {
		c.onReoTimeout(now)
		return
	}
	if c.recovery != recoveryNone || c.sndUna == c.sndMax {
		return
	}
	wndLeft := c.sndUna.Add(c.sndWnd).Sub(c.sndNxt)
	avail := c.sndBuf.Len() - c.sndNxt.Sub(c.sndBufSeq)
	newData := avail > 0 && wndLeft > 0
	if !newData && c.inHost > 0 {
		// Linux behaviour (tcp_send_loss_probe, skb_still_in_host_queue):
		// the segment a probe would resend has not left the host yet (the
		// driver has not written the packet the engine made for it, as
		// when the goroutine writing to the TUN waits for a CPU), so its
		// ACK cannot have come back: no probe, counted as
		// TCPSpuriousRtxHostQueues, and the RTO, armed since the
		// segment's sending, watches the tail instead.
		c.e.stats.RtxHostQueues++
		c.tlpAt = noDeadline
		return
	}
	c.counters().TailLossProbes++
	c.e.stats.LossProbes++ // TCPLossProbes: Linux tcp_send_loss_probe
	if newData {
		mss := c.segSize()
		c.sendData(now, min(avail, wndLeft, mss), mss, false, 0)
		c.tlpRetrans = false
	} else {
		seq, n, fin, ok := c.rangeToSend(MaxSeq(c.sndUna, c.sndMax.Add(-c.segSize())), c.sndMax)
		if !ok {
			return
		}
		flags, off := c.resendFlags(seq, n, fin)
		c.emitData(now, seq, flags, off, n)
		// Linux behaviour (tcp_send_loss_probe calls __tcp_retransmit_skb,
		// not tcp_retransmit_skb): the probe counts as retransmitted bytes
		// but does not start retrans_stamp, the clock of TCP_USER_TIMEOUT
		// and tcp_retries2; the first RTO retransmission does.
		c.rareW().bytesRetrans += uint64(n)
		c.noteProbeResent(now, seq, c.sndMax)
		c.countRetransmit(now, rtxTLP)
		if c.rttTiming && c.rttSeq.GE(seq) {
			c.rttTiming = false // Karn's rule
		}
		c.tlpRetrans = true
	}
	c.tlpHighSeq, c.tlpOpen = c.sndMax, true
	c.tlpAt = noDeadline
	// RFC 8985 §7.3: after the probe the RTO is armed afresh.
	c.rtoAt = now.Add(c.rtt.backedOff(c.backoff))
}

// tlpAck reads an ACK for the outcome of the last probe (RFC 8985 §7.4,
// as Linux's tcp_process_tlp_ack), before loss recovery reads it; acked is
// what it newly acknowledged, flight what was outstanding before it. An
// ACK below the probe's SND.MAX says
// nothing yet. A probe of new data needs no answer. A probe that resent
// the last segment repaired a loss, unless both copies arrived: a D-SACK
// of the probe, or a pure duplicate ACK at its SND.MAX, shows that; an
// ACK beyond it without one shows the loss, and the window is reduced as
// a fast recovery would have reduced it (RFC 8985 §7.4.2), at once.
func (c *Conn) tlpAck(now Time, s *segment, acked, flight int) {
	if !c.tlpOpen {
		return
	}
	if c.recovery != recoveryNone {
		// Linux behaviour: entering recovery ends the episode
		// (tcp_init_cwnd_reduction, tcp_enter_loss); recovery answers
		// for the window from then on.
		c.tlpOpen = false
		return
	}
	if s.ack.LT(c.tlpHighSeq) {
		return
	}
	nwin := int(s.wnd) << c.sndWscale
	mayUpdateWindow := acked > 0 || s.seq.GT(c.sndWl1) || s.seq == c.sndWl1 && (nwin > c.sndWnd || nwin == 0)
	switch {
	case !c.tlpRetrans, c.tlpDSACK(s):
		c.tlpOpen = false
	case s.ack.GT(c.tlpHighSeq):
		// Only the probe's copy arrived: the last segment was lost, and
		// the probe repaired it. Linux behaviour: ssthresh from the
		// controller and cwnd = ssthresh (tcp_init_cwnd_reduction and
		// tcp_end_cwnd_reduction in CWR), here from the flight when the
		// ACK showed the loss (RFC 5681 §3.2 step 2).
		c.tlpOpen = false
		c.e.stats.LossProbeRecovery++ // TCPLossProbeRecovery: Linux tcp_process_tlp_ack, the ACK goes beyond the probe
		c.ccw().OnLoss(time.Duration(now), flight)
		c.ccw().OnRecoveryEnd(time.Duration(now))
		c.trace(now, "tlp-loss")
	case len(s.payload) == 0 && !mayUpdateWindow && !c.ev.dataSacked:
		// A pure duplicate ACK at the probe's SND.MAX: the original and
		// the probe both arrived.
		c.tlpOpen = false
	}
}

// tlpDSACK reports whether s reports the probe's copy as a duplicate: a
// D-SACK (RFC 2883) of at most one segment that ends at the probe's
// SND.MAX (Linux tcp_dsack_seen's FLAG_DSACK_TLP).
func (c *Conn) tlpDSACK(s *segment) bool {
	b, ok := dsackBlock(s)
	n := b.end.Sub(b.start)
	return ok && n <= c.sndMSS && n <= c.maxSndWnd && b.end == c.tlpHighSeq
}
