package tcpcore

import "time"

// RACK (RFC 8985 §6), as Linux implements it (tcp_recovery.c): a segment
// is lost once a segment sent after it has been delivered (ACKed or
// SACKed) and the reordering window has passed since: time, not a count of
// duplicate ACKs, decides. It applies to retransmissions as well, so a
// lost retransmission is found without a timeout. The reordering window is
// zero while no reordering has been seen and recovery is under way, or
// DupThresh segments are SACKed; otherwise a quarter of the minimum RTT,
// waited out on a timer. The timer shares the probe timer's slot (tlpAt),
// as Linux keeps RTO, probe and reordering timeouts in one.

// rackState is RFC 8985's RACK.xmit_ts, RACK.end_seq and RACK.rtt, with
// Linux's adaptive reordering window (tcp_rack_update_reo_wnd).
type rackState struct {
	xmitAt Time          // the latest transmission among the delivered segments
	xmitNo uint32        // its transmission number (txRec.sendNo)
	endSeq Seq           // and its end
	rtt    time.Duration // its RTT when it was delivered

	stepAt Time // when the window last widened
	// The window is reoWndSteps quarters of the minimum RTT (at most
	// 0xff, as Linux's u8 rack.reo_wnd_steps), and is kept for
	// reoWndPersist recoveries (at most rackRecoveryThresh).
	reoWndSteps   uint8
	reoWndPersist uint8

	valid     bool // a segment was delivered since the connection began
	advanced  bool // a delivery since the last loss detection
	dsackSeen bool // a D-SACK since the window was last widened
	reoTimer  bool // tlpAt holds the reordering timer, not a probe
}

// sentAfter is RFC 8985 §6.2's RACK_sent_after: transmission 1 (time t1,
// number n1, end s1) went after transmission 2. The RFC, and Linux's
// tcp_skb_sent_after, break a tie of times by sequence number, which
// orders the segments of one burst. But a driver hands the engine a
// batch of ACKs at one instant, so new data sent on one ACK of a batch
// and a retransmission made on a later one share their time, and by
// sequence the new data, sent first, would count as sent after: its SACK
// would deem the retransmission lost, and the hole would go twice. Linux
// behaviour (tcp_rcv_established calls tcp_mstamp_refresh for each ACK,
// so the packets each ACK releases have their own timestamp):
// transmissions are ordered as they were made. Here the transmission
// numbers order them within one instant, and the sequence number only
// between the halves of a split record, which share both.
func sentAfter(t1 Time, n1 uint32, s1 Seq, t2 Time, n2 uint32, s2 Seq) bool {
	if t1 != t2 {
		return t1 > t2
	}
	if n1 != n2 {
		return int32(n1-n2) > 0
	}
	return s1.GT(s2)
}

// minRTTOrMax is the smallest RTT seen, or the largest duration before
// any sample (Linux tcp_min_rtt's ~0U).
func (c *Conn) minRTTOrMax() time.Duration {
	if !c.rtt.hasSample {
		return time.Duration(1<<63 - 1)
	}
	return c.rtt.minRTT
}

// rackAdvance is RFC 8985 §6.2 step 2 (Linux tcp_rack_advance) for a
// delivered record r: RACK moves to the most recently sent segment
// delivered. A retransmitted segment delivered sooner than the minimum
// RTT after it went was most likely the original's delivery (or an
// earlier copy's), and says nothing.
func (c *Conn) rackAdvance(now Time, r *txRec) {
	rtt := now.Sub(r.sentAt)
	if r.flags&(txRetrans|txEverRetrans) != 0 && rtt < c.minRTTOrMax() {
		return
	}
	c.rack.advanced = true
	c.rack.rtt = rtt
	if !c.rack.valid || sentAfter(r.sentAt, r.sendNo, r.end, c.rack.xmitAt, c.rack.xmitNo, c.rack.endSeq) {
		c.rack.xmitAt, c.rack.xmitNo, c.rack.endSeq, c.rack.valid = r.sentAt, r.sendNo, r.end, true
	}
}

// rackReoWnd is RFC 8985 §6.2 step 4 as Linux's tcp_rack_reo_wnd: no
// window while no reordering has been seen and either recovery is under
// way or DupThresh segments are SACKed (the classic rule then applies at
// once); else a quarter of the minimum RTT per step, at most SRTT.
func (c *Conn) rackReoWnd() time.Duration {
	if c.rareR().reordSeen == 0 {
		if c.recovery != recoveryNone || c.txq.sacked.segs >= int(c.dupThresh) {
			return 0
		}
	}
	if !c.rtt.hasSample {
		return 0
	}
	steps := max(c.rack.reoWndSteps, 1) // Linux starts at one step
	return min(c.rtt.minRTT/4*time.Duration(steps), c.rtt.srtt)
}

// rackDetectLoss is RFC 8985 §6.2 step 5 (Linux tcp_rack_detect_loss):
// every segment sent before RACK's and not delivered is lost once RACK.rtt
// plus the reordering window has passed since it was sent; for the others
// it returns the longest wait left (0 when none). Records are in sequence
// order, and new data goes out in sequence order, so the walk stops at
// the first never-retransmitted record that was not sent before RACK's:
// everything above it went later.
func (c *Conn) rackDetectLoss(now Time) (wait time.Duration) {
	if !c.rack.valid {
		return 0
	}
	reo := c.rackReoWnd()
	q := &c.txq
	for i := 0; i < q.len(); i++ {
		r := q.at(i)
		if r.flags&txSacked != 0 || r.flags&(txLost|txRetrans) == txLost {
			continue // delivered, or lost and not yet resent
		}
		if !sentAfter(c.rack.xmitAt, c.rack.xmitNo, c.rack.endSeq, r.sentAt, r.sendNo, r.end) {
			if r.flags&txEverRetrans == 0 {
				break
			}
			continue
		}
		if left := c.rack.rtt + reo - now.Sub(r.sentAt); left > 0 {
			wait = max(wait, left)
			continue
		}
		c.markLost(r)
	}
	return wait
}

// rackMarkLost runs loss detection after a delivery (Linux
// tcp_rack_mark_lost) and arms the reordering timer for what may still be
// lost: the longest wait plus TCP_TIMEOUT_MIN (tlpMinTimeout).
func (c *Conn) rackMarkLost(now Time) {
	if !c.rack.advanced {
		return
	}
	c.rack.advanced = false
	if wait := c.rackDetectLoss(now); wait > 0 {
		c.tlpAt = now.Add(wait + tlpMinTimeout)
		c.rack.reoTimer = true
		c.ev.reoArmed = true
	}
}

// onReoTimeout is the reordering timer (RFC 8985 §6.3, Linux
// tcp_rack_reo_timeout): what has waited out the window is lost; if that
// changed the flight, recovery starts, PRR counting one segment
// delivered, and the lost segments go as it allows.
func (c *Conn) onReoTimeout(now Time) {
	c.rack.reoTimer = false
	if c.state == Closed || c.sndUna == c.sndMax {
		return
	}
	*c.ev = ackEvent{priorUna: c.sndUna}
	c.rtxRunEnd = c.sndUna - 1
	before := c.inflightSegs()
	c.rackDetectLoss(now)
	if c.inflightSegs() == before {
		return
	}
	if c.recovery == recoveryNone {
		c.enterFastRecovery(now)
		c.prrUpdate(1, c.ev.newlyLost, false)
	}
}

// markLost is Linux's tcp_mark_skb_lost: a record not yet lost becomes
// lost; a lost one whose retransmission is in flight has lost that
// retransmission too, and is to be sent again. That second rule is for
// the callers that judge the retransmission itself: RACK by its send time,
// the retransmission timer, a path MTU below its size. RFC 6675's IsLost
// judges only the original transmission, so dupThreshMarkLost and
// markHeadLost never pass a record already lost.
func (c *Conn) markLost(r *txRec) {
	if r.flags&txSacked != 0 {
		return
	}
	q := &c.txq
	if r.flags&txLost != 0 {
		if r.flags&txRetrans == 0 {
			return
		}
		q.clear(r, txRetrans)
		r.flags |= txRelost
		c.ev.lostRetrans = true
	} else {
		q.set(r, txLost)
	}
	c.ev.newlyLost++
	if r.start.LT(c.lostPoint) {
		c.lostPoint = r.start
	}
}

// rackOnDSACK notes a D-SACK for the reordering window's adaptation.
func (c *Conn) rackOnDSACK() { c.rack.dsackSeen = true }

// rackUpdateReoWnd is Linux's tcp_rack_update_reo_wnd, run on every ACK
// that delivered data: a D-SACK widens the window by one step, at most
// once per round trip (data sent before the last widening does not
// count), and the widened window is kept for 16 recoveries; otherwise it
// falls back to one step.
func (c *Conn) rackUpdateReoWnd(now Time) {
	if !c.ev.deliveredAny {
		return
	}
	if c.ev.deliveredSentAt < c.rack.stepAt {
		c.rack.dsackSeen = false
	}
	switch {
	case c.rack.dsackSeen:
		if c.rack.reoWndSteps < 0xff {
			c.rack.reoWndSteps++
		}
		c.rack.dsackSeen = false
		c.rack.stepAt = now
		c.rack.reoWndPersist = rackRecoveryThresh
	case c.rack.reoWndPersist == 0:
		c.rack.reoWndSteps = 1
	}
}

// rackRecoveryThresh is Linux's TCP_RACK_RECOVERY_THRESH.
const rackRecoveryThresh = 16
