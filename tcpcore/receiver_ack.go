package tcpcore

import (
	"time"

	"tunstack/wire"
)

// The receiver's ACK policy: when to acknowledge (at once, for every
// second full segment, or by the delayed-ACK timer: RFC 1122 §4.2.3.2,
// RFC 5681 §4.2, and Linux's quick-ACK and pingpong modes), what an ACK
// carries (window, timestamps, SACK and D-SACK blocks: RFC 7323, RFC 2018,
// RFC 2883), and the rate limit on ACKs that answer unacceptable segments
// (RFC 5961 §§3-5, Linux tcp_invalid_ratelimit). The state lives in
// receiver (receiver.go).

// scheduleAck decides between an immediate and a delayed ACK for in-order
// data (RFC 1122 §4.2.3.2, RFC 5681 §4.2): ACK at least every second
// full-sized segment, and within the delayed-ACK timeout otherwise.
func (c *Conn) scheduleAck(now Time, n int) {
	c.unackedBytes += int32(n)
	p := c.e.prof
	// Linux behaviour (__tcp_ack_snd_check): the every-second-segment
	// test, which chooses the window, comes before the quick-ACK test, so
	// a segment that leaves the buffer more than half full ends quick-ACK
	// mode (offerWindow) before it could be acknowledged at once.
	second := c.ackSecondSegment()
	if !p.DelayedAck || (c.quickAcks > 0 && !c.pingpong) || second {
		// Due now, but in-order data may keep arriving in the same batch:
		// owe one ACK for all of it, sent when the driver collects output
		// unless data going out carries it first.
		if !c.ackBatched {
			c.ackBatched, c.ackBatchedAt = true, now
			c.e.ackLater = append(c.e.ackLater, c)
		}
		return
	}
	if c.delackAt == noDeadline {
		c.delackAt = now.Add(c.delackTimeout())
	}
}

// ackSecondSegment is RFC 1122 §4.2.3.2's rule, an ACK at least every
// second full-sized segment; with the profile's AckSecondOnlyIfWindowGrows
// only while the window it would offer is at least the one last announced
// (Linux __tcp_ack_snd_check), so that a receiver whose application stopped
// reading lets the delayed-ACK timer answer.
//
// Whenever more than one segment's worth is unacknowledged it chooses the
// window (offerWindow), as Linux's test (rcv_nxt - rcv_wup > rcv_mss)
// calls __tcp_select_window, even when the ACK is not yet due.
func (c *Conn) ackSecondSegment() bool {
	if int(c.unackedBytes) <= c.rcvMSS {
		return false
	}
	grows := c.offerWindow() >= c.rcvAdv.Sub(c.lastAckSent)
	if int(c.unackedBytes) < 2*c.rcvMSS {
		return false
	}
	return !c.e.prof.AckSecondOnlyIfWindowGrows || grows
}

// delackTimeout is the delayed-ACK timer's length: the adaptive ATO, but
// once it has grown beyond DelAckMin, no longer than the smoothed RTT
// (at least DelAckMin), so a connection that once waited long does not
// keep every later ACK waiting (Linux tcp_send_delayed_ack).
func (c *Conn) delackTimeout() time.Duration {
	p := c.e.prof
	ato := c.ato
	if ato > p.DelAckMin && c.rtt.hasSample {
		ato = min(ato, max(c.rtt.srtt, p.DelAckMin))
	}
	return ato
}

// updateATO adapts the delayed-ACK timeout to the data's inter-arrival
// time as Linux's tcp_event_data_recv does: closely spaced segments pull it
// toward DelAckMin, sparse ones toward their spacing, bounded by
// [DelAckMin, DelAckMax]; a gap longer than the RTO re-enters quick-ACK mode.
func (c *Conn) updateATO(now Time) {
	p := c.e.prof
	if c.ato == 0 {
		// The first data segment starts the delayed-ACK engine in
		// quick-ACK mode (Linux tcp_event_data_recv).
		c.ato = p.DelAckMin
		c.incrQuickAcks()
	}
	if c.lastDataRecv != 0 {
		m := now.Sub(c.lastDataRecv)
		switch {
		case m <= p.DelAckMin/2:
			c.ato = c.ato/2 + p.DelAckMin/2
		case m < c.ato:
			c.ato = c.ato/2 + m
		case m > c.rtt.rto:
			c.incrQuickAcks()
		}
		c.ato = min(max(c.ato, p.DelAckMin), p.DelAckMax)
	}
	c.lastDataRecv = now
	if c.tsOK && c.sndUna == c.sndMax {
		// A receiver-side RTT sample for auto-tuning (Linux
		// tcp_rcv_rtt_measure_ts), when the echoed TSval is ours.
		if ms := int32(c.tsNow(now) - c.lastEcr); c.lastEcr != 0 && ms >= 0 {
			c.rcvRTT = max(time.Duration(ms)*time.Millisecond, time.Millisecond)
		}
	}
}

// incrQuickAcks enters or extends quick-ACK mode as Linux's
// tcp_incr_quickack does: up to the profile's QuickAcks segments, but no
// more than half the window we last announced counts in the peer's
// segments (at least 2), so that a small window is not answered segment by
// segment. With an SO_RCVBUF of 8192 (a 7300-byte window) and 1000-byte
// segments that is 3 (conformance/scripts/flow/zero-window-full-buffer.pkt).
func (c *Conn) incrQuickAcks() {
	p := c.e.prof
	if p.QuickAcks == 0 {
		return
	}
	n := c.rcvAdv.Sub(c.lastAckSent) / (2 * max(c.rcvMSS, 1))
	if n <= 0 {
		n = 2
	}
	c.quickAcks = int32(max(int(c.quickAcks), min(n, p.QuickAcks)))
}

// setDSACK arranges for the next ACK to report [start, end) as a
// duplicate (RFC 2883), when D-SACK is on and SACK was negotiated.
func (c *Conn) setDSACK(start, end Seq) {
	if !c.sackOK || !c.e.prof.DSACK || !start.LT(end) {
		return
	}
	c.dsackPending, c.dsackRange = true, seqRange{start, end}
	// Linux tcp_dsack_set counts the D-SACK when it is decided, by where
	// the duplicate lies.
	if start.LT(c.rcvNxt) {
		c.e.stats.DSACKOldSent++ // TCPDSACKOldSent
	} else {
		c.e.stats.DSACKOfoSent++ // TCPDSACKOfoSent
	}
}

// sendAck sends a segment with no data that carries our ACK and window.
func (c *Conn) sendAck(now Time) {
	var o wire.TCPOptions
	c.ackOptions(now, &o)
	c.emit(now, c.acceptableSeq(), c.rcvNxt, wire.FlagACK, c.advertiseWindow(), &o, 0, 0)
}

// acceptableSeq is the sequence number of a segment without data: SND.NXT,
// unless the peer shrank its window below it (RFC 1122 §4.2.2.16 allows a
// shrinking window, RFC 9293 §3.10.7.4 has the peer accept a segment only
// inside its window); then the window's right edge, SND.UNA + SND.WND, the
// first sequence number the peer no longer accepts data at, which it
// still takes for a segment without data. Linux behaviour
// (tcp_acceptable_seq, for ACKs and for the RST of an abort), including
// its tolerance: SND.NXT stays when it lies beyond the edge by less than
// one unit of window scale, the unit being our receive shift (Linux's
// rcv_wscale) as in Linux's code.
func (c *Conn) acceptableSeq() Seq {
	edge := c.sndUna.Add(c.sndWnd)
	if !edge.LT(c.sndNxt) || c.wsOK && c.sndNxt.Sub(edge) < 1<<c.rcvWscale {
		return c.sndNxt
	}
	return edge
}

// sendOutOfWindowAck answers an unacceptable segment s with an ACK (RFC
// 9293 §3.10.7.4). As in Linux's tcp_oow_rate_limited, a segment that
// occupies no sequence space (a zero-window probe at RCV.NXT-1, a stray
// ACK), or one with SYN, gets at most one answer per InvalidRateLimit,
// so two stacks cannot ACK each other without bound; one with data or FIN
// is always answered, since it is no part of such a loop and its sender
// needs to learn where we are.
func (c *Conn) sendOutOfWindowAck(now Time, s *segment) {
	if s.segLen() == 0 || s.has(wire.FlagSYN) {
		if c.lastOOWAck != 0 && now.Sub(c.lastOOWAck) < c.e.prof.InvalidRateLimit {
			return
		}
		c.lastOOWAck = now
	}
	c.sendAck(now)
	c.updateDeadline()
}

// sendChallengeAck is RFC 5961 §3.2/§4.2/§5.2's challenge ACK: our
// current ACK, asking a peer that really lost state to reset exactly.
func (c *Conn) sendChallengeAck(now Time) {
	if c.lastOOWAck != 0 && now.Sub(c.lastOOWAck) < c.e.prof.InvalidRateLimit {
		return
	}
	c.e.stats.ChallengeACKs++
	c.lastOOWAck = now
	c.sendAck(now)
	c.updateDeadline()
}

// ackOptions fills the options of a non-SYN segment: timestamps (RFC 7323
// §3.2) and SACK blocks (RFC 2018 §4) when negotiated.
func (c *Conn) ackOptions(now Time, o *wire.TCPOptions) {
	*o = wire.TCPOptions{}
	maxBlocks := 4
	if c.tsOK {
		o.HasTS, o.TSVal, o.TSEcr = true, c.tsNow(now), c.tsRecent
		maxBlocks = 3 // RFC 2018 §3: three blocks fit beside timestamps
	}
	if c.dsackPending {
		// RFC 2883 §4: the D-SACK block goes first, then the usual ones.
		o.SACK[0] = wire.SACKBlock{Left: uint32(c.dsackRange.start), Right: uint32(c.dsackRange.end)}
		o.NumSACK = 1
		c.dsackPending = false
		c.counters().DSACKsSent++
		if !c.oooEmpty() {
			c.sackBlocks(o, maxBlocks)
		}
		return
	}
	if c.sackOK && !c.oooEmpty() {
		c.sackBlocks(o, maxBlocks)
	}
}

// sackBlocks reports the out-of-order ranges, the most recently changed
// first (RFC 2018 §4), never one the cumulative ACK covers.
func (c *Conn) sackBlocks(o *wire.TCPOptions, maxBlocks int) {
	bl := c.rare.ooo.blocks // called only with some (oooEmpty)
	r := c.rare.ooo.recent
	if r >= len(bl) {
		r = 0
	}
	n := o.NumSACK // a D-SACK block may already be first
	o.SACK[n] = wire.SACKBlock{Left: uint32(bl[r].start), Right: uint32(bl[r].end)}
	n++
	for i := len(bl) - 1; i >= 0 && n < maxBlocks; i-- {
		if i == r {
			continue
		}
		o.SACK[n] = wire.SACKBlock{Left: uint32(bl[i].start), Right: uint32(bl[i].end)}
		n++
	}
	o.NumSACK = n
}

// ackSent records that an ACK for ack went out: pending and delayed ACKs
// are satisfied.
func (c *Conn) ackSent(ack Seq) {
	c.lastAckSent = ack
	c.ackNow = false
	c.ackBatched = false
	c.delackAt = noDeadline
	if c.unackedBytes > 0 && c.quickAcks > 0 {
		c.quickAcks--
	}
	c.unackedBytes = 0
}

// onDelack runs when the delayed-ACK timer fires: the ACK goes, and since
// it found nothing to ride on, the timeout inflates within DelAckMax; in
// delayed-ACK (pingpong) mode the bet on a reply was wrong, so the mode
// ends and the timeout deflates (Linux tcp_delack_timer_handler).
func (c *Conn) onDelack() {
	c.ackNow = true
	c.e.stats.DelayedACKs++ // DelayedACKs: Linux tcp_delack_timer_handler, an ACK owed and sent by the timer
	if c.pingpong {
		c.pingpong = false
		c.ato = c.e.prof.DelAckMin
		return
	}
	c.ato = min(2*max(c.ato, c.e.prof.DelAckMin), c.e.prof.DelAckMax)
}
