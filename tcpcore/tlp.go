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
	c.info.TailLossProbes++
	wndLeft := c.sndUna.Add(c.sndWnd).Sub(c.sndNxt)
	avail := c.sndBuf.Len() - c.sndNxt.Sub(c.sndBufSeq)
	if avail > 0 && wndLeft > 0 {
		mss := c.segSize()
		c.sendData(now, min(avail, wndLeft, mss), mss, false, 0)
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
		c.bytesRetrans += uint64(n)
		c.noteProbeResent(now, seq, c.sndMax)
		c.countRetransmit(now, rtxTLP)
		if c.rttTiming && c.rttSeq.GE(seq) {
			c.rttTiming = false // Karn's rule
		}
	}
	c.tlpHighSeq = c.sndMax
	c.tlpAt = noDeadline
	// RFC 8985 §7.3: after the probe the RTO is armed afresh.
	c.rtoAt = now.Add(c.rtt.backedOff(c.backoff))
}
