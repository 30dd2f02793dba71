package tcpcore

// Lost retransmissions. RFC 6675 retransmits each hole once per recovery
// episode; if the retransmission is lost too, only the RTO recovers it,
// collapsing cwnd to one segment. Linux detects such losses (RACK, and
// before it tcp_mark_lost_retrans): a retransmission is lost when data
// sent after it is SACKed while it is not, since without reordering it
// would have arrived first. We keep the retransmissions of the current
// fast recovery, oldest first, with SND.NXT as it was when each went out;
// when the peer SACKs data above that mark and the retransmission is still
// missing, it is queued to go again.

// rtxRecord is one retransmission: [start, end) of sequence space, when it
// went out, and sentHigh, the highest sequence number ever sent (SND.MAX)
// then: only data above it was certainly sent after the retransmission,
// and all data below it that was not retransmitted since went before.
// (SND.NXT is not that mark: after a timeout rewinds it, SACKed data
// between it and SND.MAX went out before, and taking it as later would
// find every retransmission lost, again on each ACK.) hole says
// the range was lost by the evidence when it went (below RFC 6675's loss
// boundary or RACK's mark), so a SACK for it can only come from this
// retransmission; the original of a rescue retransmission, or of the head
// segment retransmitted after a partial ACK only because it is the head,
// may still be on its way, and its arrival says nothing about what was
// sent after it.
type rtxRecord struct {
	start, end, sentHigh Seq
	sentAt               Time
	hole                 bool
}

// rtxTrackMax bounds the records kept (a recovery in a window of several
// hundred segments retransmits hundreds); a retransmission beyond it is
// not watched and, if lost, waits for the RTO.
const rtxTrackMax = 512

// rtxTrack is a ring of rtxRecords, allocated at a connection's first fast
// recovery (an idle or loss-free connection pays nothing) and reused.
type rtxTrack struct {
	recs      []rtxRecord
	head, n   int
	relost    rtxRecord // a retransmission found lost, to send again first
	hasRelost bool
}

func (t *rtxTrack) reset() { t.head, t.n, t.hasRelost = 0, 0, false }

func (t *rtxTrack) push(r rtxRecord) {
	if t.n == rtxTrackMax {
		return
	}
	if t.recs == nil {
		t.recs = make([]rtxRecord, rtxTrackMax)
	}
	t.recs[(t.head+t.n)%rtxTrackMax] = r
	t.n++
}

func (t *rtxTrack) pop() {
	t.head = (t.head + 1) % rtxTrackMax
	t.n--
}

// noteRetransmit records a retransmission made in fast recovery with SACK.
func (c *Conn) noteRetransmit(now Time, start, end Seq) {
	if c.recovery != recoveryFast || !c.sackOK {
		return
	}
	c.rtx.push(rtxRecord{start: start, end: end, sentHigh: c.sndMax, sentAt: now, hole: end.LE(c.lossEvidence)})
}

// detectLostRetransmits runs on each ACK in fast recovery, after the
// scoreboard was updated. It finds at most one lost retransmission at a
// time: the oldest, since retransmissions go out in sequence order.
func (c *Conn) detectLostRetransmits(now Time) {
	if c.recovery != recoveryFast || !c.sackOK || c.rtx.hasRelost {
		return
	}
	k := len(c.sb.blocks)
	for c.rtx.n > 0 {
		r := c.rtx.recs[c.rtx.head]
		if r.end.LE(c.sndUna) || c.sb.sackedIn(MaxSeq(r.start, c.sndUna), r.end) == r.end.Sub(MaxSeq(r.start, c.sndUna)) {
			c.retransmitDelivered(now, r)
			c.rtx.pop() // it arrived
			continue
		}
		if k == 0 {
			return // nothing SACKed: no evidence of a loss
		}
		if !c.sb.blocks[k-1].end.GT(r.sentHigh) && !c.laterRetransmitSacked() {
			return // nothing sent after it has arrived yet
		}
		c.rtx.pop()
		c.rtx.relost = rtxRecord{start: MaxSeq(r.start, c.sndUna), end: r.end}
		c.rtx.hasRelost = true
		return
	}
}

// retransmitDelivered is RACK's rule (RFC 8985 §6.2) for a retransmission
// of a hole that reached the peer: everything sent before it and still
// neither acknowledged nor SACKed is lost, without waiting for DupThresh
// SACKed segments above each hole or for the RTO. Linux's RACK allows no
// reordering window during recovery while the path has shown no
// reordering (tcp_rack_reo_wnd), and neither do we: once a D-SACK undo
// raised DupThresh, the rule is off. A delivery sooner than the smallest
// RTT after the retransmission was the original's (Linux tcp_rack_advance)
// and says nothing. updateLostPoint moves the lost point up to rackHigh.
func (c *Conn) retransmitDelivered(now Time, r rtxRecord) {
	if !r.hole || c.dupThresh > c.e.prof.DupThresh || now.Sub(r.sentAt) < c.rtt.minRTT {
		return
	}
	c.rackHigh = MaxSeq(c.rackHigh, r.sentHigh)
}

// nextRelost returns the part of a retransmission found lost that still
// needs sending, if any.
func (c *Conn) nextRelost() (seq Seq, n int, fin bool, ok bool) {
	if !c.rtx.hasRelost {
		return 0, 0, false, false
	}
	r := &c.rtx.relost
	start, end, ok := c.unsackedRange(MaxSeq(r.start, c.sndUna), r.end)
	if !ok {
		c.rtx.hasRelost = false
		return 0, 0, false, false
	}
	r.start = start
	return c.rangeToSend(start, end)
}

// relostSent moves the lost retransmission's start past what was just
// sent again.
func (c *Conn) relostSent(seq Seq, n int) {
	if c.rtx.hasRelost && seq == c.rtx.relost.start {
		c.rtx.relost.start = seq.Add(max(n, 1))
		if !c.rtx.relost.start.LT(c.rtx.relost.end) {
			c.rtx.hasRelost = false
		}
	}
}

// laterRetransmitSacked reports whether a retransmission of a hole made
// after the oldest watched one has been SACKed in full: it went out later, so the
// oldest, still missing, was lost (the same evidence as new data sent
// after it, for the common case where recovery sends no new data).
func (c *Conn) laterRetransmitSacked() bool {
	for i := 1; i < c.rtx.n; i++ {
		r := c.rtx.recs[(c.rtx.head+i)%rtxTrackMax]
		start := MaxSeq(r.start, c.sndUna)
		if r.hole && start.LT(r.end) && c.sb.sackedIn(start, r.end) == r.end.Sub(start) {
			return true
		}
	}
	return false
}
