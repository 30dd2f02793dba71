package tcpcore

import (
	"time"

	"tunstack/wire"
)

// pawsIdleLimit is RFC 7323 §5.5's bound: TS.Recent older than 24 days is
// no longer trusted for PAWS.
const pawsIdleLimit = 24 * 24 * time.Hour

// input processes a segment for this connection: RFC 9293 §3.10.7.3
// (SYN-SENT) and §3.10.7.4 (every other state), in the RFC's order of
// checks.
func (c *Conn) input(now Time, s *segment) {
	c.info.SegsIn++
	if c.state == SynSent {
		c.inputSynSent(now, s)
		c.after(now)
		return
	}
	if c.state == TimeWait && c.timeWaitSyn(now, s) {
		return
	}
	if c.state == SynReceived && s.has(wire.FlagSYN) && !s.has(wire.FlagACK|wire.FlagRST) && s.seq == c.irs {
		// A retransmitted SYN: the SYN-ACK was lost. Answer it again
		// without disturbing the retransmission timer (Linux tcp_check_req).
		c.countRetransmit(now, rtxSYN)
		c.sendSyn(now)
		return
	}

	if c.state == SynReceived && c.parent == nil && s.flags&(wire.FlagSYN|wire.FlagACK|wire.FlagRST) == wire.FlagSYN|wire.FlagACK &&
		s.seq.Add(1) == c.rcvNxt && s.ack == c.sndNxt && len(s.payload) == 0 {
		// Simultaneous open (RFC 9293 §3.5 Figure 8): the peer's SYN-ACK
		// acknowledges our SYN; its SYN we already have. Treat it as the
		// handshake's ACK, as Linux does, and acknowledge it (Figure 8,
		// line 7), reporting the repeated SYN as a duplicate (RFC 2883;
		// Linux tcp_data_queue's D-SACK for a segment below RCV.NXT).
		s.flags &^= wire.FlagSYN
		s.seq = c.rcvNxt
		c.setDSACK(c.irs, c.irs.Add(1))
		c.ackNow = true
	}

	// RFC 7323 §5.3 R1: PAWS, before the sequence check.
	if c.tsOK && s.opts.HasTS && !s.has(wire.FlagRST) && c.pawsReject(now, s.opts.TSVal) {
		c.e.stats.PAWSDrops++
		c.sendOutOfWindowAck(now)
		return
	}

	// First: sequence number acceptability.
	if !c.acceptable(s) {
		c.e.stats.OutOfWindowDrops++
		if s.has(wire.FlagRST) {
			return // RFC 9293 §3.10.7.4: an unacceptable RST is dropped
		}
		if c.state == TimeWait && s.has(wire.FlagFIN) {
			// RFC 9293 §3.10.7.4 eighth check, TIME-WAIT: a retransmitted
			// FIN is acknowledged and the 2 MSL timeout restarted.
			c.closeAt = now.Add(c.e.prof.TimeWaitLen)
			c.sendAck(now)
			c.updateDeadline()
			return
		}
		if s.seq.Add(s.segLen()).LE(c.rcvNxt) && c.state != TimeWait && s.segLen() > 0 {
			// An old duplicate (a retransmission we already have): ACK at
			// once so the sender learns where we are (Linux tcp_data_queue),
			// reporting the duplicate (RFC 2883 §4.1.1).
			if len(s.payload) > 0 {
				c.setDSACK(s.seq, s.seq.Add(len(s.payload)))
			}
			c.sendAck(now)
			c.updateDeadline()
			return
		}
		// A segment that occupies no sequence space (a zero-window probe
		// at RCV.NXT-1, a stray ACK) gets the rate-limited answer.
		c.sendOutOfWindowAck(now)
		return
	}

	if c.tsOK && s.opts.HasTS {
		c.lastEcr = s.opts.TSEcr
	}
	// RFC 7323 §4.3 (2): remember the peer's timestamp if this segment
	// covers Last.ACK.sent.
	if c.tsOK && s.opts.HasTS && s.seq.LE(c.lastAckSent) && int32(s.opts.TSVal-c.tsRecent) >= 0 {
		c.tsRecent, c.tsRecentAt = s.opts.TSVal, now
	}

	// Second: RST (RFC 5961 §3.2: only an exact match resets; any other
	// in-window RST draws a challenge ACK).
	if s.has(wire.FlagRST) {
		if s.seq != c.rcvNxt {
			c.sendChallengeAck(now)
			return
		}
		c.onReset(now)
		return
	}

	// Fourth: SYN in a synchronized state (RFC 5961 §4.2 / RFC 9293
	// §3.10.7.4): challenge ACK, whatever its sequence number.
	if s.has(wire.FlagSYN) {
		if c.state == SynReceived && c.parent != nil {
			// Linux tcp_check_req: a new SYN in the window of an embryonic
			// connection resets it.
			c.e.resetFor(now, s)
			c.closeWith(nil)
			return
		}
		c.sendChallengeAck(now)
		return
	}

	// Fifth: the ACK field. Segments without ACK are dropped.
	if !s.has(wire.FlagACK) {
		return
	}
	if c.state == SynReceived {
		if !(c.sndUna.LT(s.ack) && s.ack.LE(c.sndMax)) {
			// RFC 9293 §3.10.7.4: unacceptable ACK in SYN-RECEIVED:
			// <SEQ=SEG.ACK><CTL=RST>.
			c.e.sendReset(c.key.local, c.key.remote, s.ack, 0, wire.FlagRST)
			return
		}
		if c.parent != nil && !c.parent.established(c) {
			c.acceptOverflow(now, s)
			return
		}
		// RFC 7323 §2.2: windows from here on are scaled.
		c.sndWnd = int(s.wnd) << c.sndWscale
		c.sndWl1, c.sndWl2 = s.seq, s.ack
		// The largest window starts from this ACK's, not the SYN's
		// unscaled one (Linux builds the socket from the final ACK).
		c.maxSndWnd = c.sndWnd
		c.becomeEstablished(now)
	}
	if !c.processAck(now, s) {
		c.after(now)
		return
	}
	if c.state == Closed {
		return
	}
	c.armKeepalive(now)

	// Seventh: segment text.
	if len(s.payload) > 0 {
		switch c.state {
		case Established, FinWait1, FinWait2:
			if c.appClosed && s.seq.Add(len(s.payload)).GT(c.rcvNxt) {
				// New data for a connection the application closed: no one
				// will read it. Linux answers with RST (TCPAbortOnData).
				c.e.sendReset(c.key.local, c.key.remote, s.ack, 0, wire.FlagRST)
				c.closeWith(nil)
				return
			}
			c.receiveData(now, s)
		}
	}

	// Eighth: FIN.
	if s.has(wire.FlagFIN) {
		c.receiveFin(now, s.seq.Add(len(s.payload)))
	}
	c.after(now)
}

// after runs the send path and re-arms timers after any event.
func (c *Conn) after(now Time) {
	if c.state != Closed {
		c.output(now)
	}
	c.updateDeadline()
}

// acceptable is the four-case test of RFC 9293 §3.10.7.4 with RCV.WND the
// window we last advertised. A zero window still admits a segment at
// exactly RCV.NXT, so its ACK and RST are processed (the RFC's "special
// allowance"); its payload is then trimmed away.
func (c *Conn) acceptable(s *segment) bool {
	wnd := c.rcvAdv.Sub(c.rcvNxt)
	if wnd < 0 {
		wnd = 0
	}
	n := s.segLen()
	switch {
	case n == 0 && wnd == 0:
		return s.seq == c.rcvNxt
	case n == 0:
		return s.seq.InWindow(c.rcvNxt, wnd)
	case wnd == 0:
		return s.seq == c.rcvNxt
	default:
		return s.seq.InWindow(c.rcvNxt, wnd) || s.seq.Add(n-1).InWindow(c.rcvNxt, wnd)
	}
}

// pawsReject is RFC 7323 §5.3 R1: a segment whose TSval is older than
// TS.Recent is a duplicate from an earlier incarnation of the sequence space.
func (c *Conn) pawsReject(now Time, tsval uint32) bool {
	if int32(tsval-c.tsRecent) >= 0 {
		return false
	}
	if now.Sub(c.tsRecentAt) > pawsIdleLimit {
		// RFC 7323 §5.5: TS.Recent is stale; accept and resynchronize.
		c.tsRecent, c.tsRecentAt = tsval, now
		return false
	}
	return true
}

// synSentQuickRetry is Linux's TCP_TIMEOUT_MIN (2 jiffies; 2 ms at HZ=1000).
const synSentQuickRetry = 2 * time.Millisecond

// inputSynSent is RFC 9293 §3.10.7.3.
func (c *Conn) inputSynSent(now Time, s *segment) {
	ackOK := false
	if s.has(wire.FlagACK) {
		// First: the ACK must acknowledge our SYN.
		if s.ack.LE(c.iss) || s.ack.GT(c.sndMax) {
			if !s.has(wire.FlagRST) {
				c.e.sendReset(c.key.local, c.key.remote, s.ack, 0, wire.FlagRST)
			}
			// Linux: the segment may be the peer's answer to an older
			// connection whose RST or FIN our SYN crossed; resend the SYN
			// almost at once rather than after the whole initial RTO
			// (tcp_rcv_synsent_state_process, TCP_TIMEOUT_MIN).
			if c.retries == 0 {
				c.rtoAt = now.Add(synSentQuickRetry)
				c.updateDeadline()
			}
			return
		}
		ackOK = true
	}
	// Second: RST. Acceptable only with an acceptable ACK (RFC 5961 §3.2
	// reduces to this in SYN-SENT).
	if s.has(wire.FlagRST) {
		if ackOK {
			c.e.stats.AttemptFails++
			c.closeWith(ErrConnRefused)
		}
		return
	}
	// Fourth: SYN.
	if !s.has(wire.FlagSYN) {
		return
	}
	c.irs = s.seq
	c.rcvNxt = s.seq.Add(1)
	// Our SYN offered min(buffer, 65535) bytes, unscaled (RFC 7323 §2.2);
	// the window's right edge could not be known before IRS.
	c.rcvAdv = c.rcvNxt.Add(c.rcvSsthresh)
	c.learnSynOptions(now, s, true)
	if !ackOK {
		// Simultaneous open (RFC 9293 §3.5, Figure 8): SYN-RECEIVED, and
		// our SYN goes out again as a SYN-ACK.
		c.sndWnd = int(s.wnd)
		c.sndWl1, c.sndWl2 = s.seq, c.iss
		c.state = SynReceived
		c.rtoAt = noDeadline
		c.countRetransmit(now, rtxSYN) // our SYN's sequence number goes again
		c.sendSyn(now)
		return
	}
	c.ackedSyn(now, s)
	c.sndWnd = int(s.wnd) // RFC 7323 §2.2: a SYN's window is not scaled
	c.sndWl1, c.sndWl2 = s.seq, s.ack
	c.maxSndWnd = c.sndWnd
	c.becomeEstablished(now)
	c.ackNow = true
	if len(s.payload) > 0 {
		s.seq = s.seq.Add(1)
		c.receiveData(now, s)
	}
	if s.has(wire.FlagFIN) {
		c.receiveFin(now, c.irs.Add(1+len(s.payload)))
	}
}

// ackedSyn takes the RTT sample of the SYN exchange and moves SND.UNA.
func (c *Conn) ackedSyn(now Time, s *segment) {
	if c.rttTiming && c.retries == 0 {
		c.rtt.sample(now.Sub(c.rttTime))
	}
	c.rttTiming = false
	c.sndUna = s.ack
	if c.sndNxt.LT(c.sndUna) {
		c.sndNxt = c.sndUna
	}
}

// timeWaitSyn handles a SYN that reaches a connection in TIME-WAIT. As in
// Linux (and RFC 6191 with timestamps), a SYN whose sequence number is
// beyond the old connection's may reopen the port: the old connection is
// dropped and the SYN goes to the listener. It reports whether it consumed
// the segment.
func (c *Conn) timeWaitSyn(now Time, s *segment) bool {
	if !s.has(wire.FlagSYN) || s.has(wire.FlagACK|wire.FlagRST) {
		return false
	}
	newer := s.seq.GT(c.rcvNxt)
	if c.tsOK && s.opts.HasTS {
		newer = int32(s.opts.TSVal-c.tsRecent) > 0 || (newer && s.opts.TSVal == c.tsRecent)
	}
	l := c.e.listenerFor(c.key.local)
	if !newer || l == nil {
		return false
	}
	c.e.stats.TimeWaitRecycled++
	c.closeWith(nil)
	l.input(now, s)
	return true
}

// onReset handles an acceptable RST (RFC 9293 §3.10.7.4, second check).
func (c *Conn) onReset(now Time) {
	switch c.state {
	case SynReceived:
		if c.parent != nil {
			// Passive open: return to LISTEN, i.e. forget this attempt.
			c.closeWith(nil)
			return
		}
		c.e.stats.AttemptFails++
		c.closeWith(ErrConnRefused)
	case Established, FinWait1, FinWait2:
		c.e.stats.EstabResets++
		c.closeWith(ErrConnReset)
	case CloseWait:
		// The peer already closed its side, so the reset ends a stream the
		// application has read to EOF: Linux (tcp_reset) reports EPIPE
		// there, not ECONNRESET, and so do we.
		c.e.stats.EstabResets++
		c.closeWith(ErrPipe)
	default: // CLOSING, LAST-ACK, TIME-WAIT
		c.closeWith(nil)
	}
	if c.appClosed {
		c.destroy()
	}
}

// acceptOverflow handles the final ACK of a handshake when the accept
// queue is full: Linux drops it and lets the SYN-ACK retransmission try
// again later, or with tcp_abort_on_overflow answers RST (seed 000).
func (c *Conn) acceptOverflow(now Time, s *segment) {
	l := c.parent
	l.stats.Overflows++
	l.stats.Drops++
	c.e.stats.ListenOverflows++
	c.e.stats.ListenDrops++
	if c.e.prof.AbortOnOverflow {
		// tcp_abort_on_overflow: the ACK is answered as RFC 9293
		// §3.10.7.1 answers a segment with ACK, <SEQ=SEG.ACK><CTL=RST>
		// (Linux tcp_check_req's embryonic reset).
		c.e.sendReset(c.key.local, c.key.remote, s.ack, 0, wire.FlagRST)
		c.closeWith(nil)
	}
}

// processAck is the fifth check for synchronized states (RFC 9293
// §3.10.7.4, RFC 5961 §5.2). It returns false when the segment must be
// dropped.
func (c *Conn) processAck(now Time, s *segment) bool {
	if s.ack.GT(c.sndMax) {
		// Acknowledges something not yet sent: ACK and drop (RFC 5961 §5.2
		// makes it a challenge ACK, rate limited).
		c.sendChallengeAck(now)
		return false
	}
	if s.ack.LT(c.sndUna.Add(-c.maxSndWnd)) {
		// RFC 5961 §5.2: too old to be legitimate.
		c.sendChallengeAck(now)
		return false
	}
	// Any acceptable ACK answers our zero-window probes (Linux resets
	// icsk_probes_out in tcp_ack): the connection lives while they are
	// answered, however long the window stays shut.
	c.probes = 0
	wasZeroWnd := c.sndWnd == 0
	wasRecovering := c.recovery != recoveryNone
	newlySacked := c.processSACK(now, s)
	oldUna := c.sndUna
	if s.ack.GT(c.sndUna) {
		c.ackNewData(now, s)
	}
	acked := c.sndUna.Sub(oldUna)
	c.sb.trim(c.sndUna)
	switch {
	case c.recovery != recoveryNone:
		if acked > 0 {
			c.eifelCheck(now, s)
		}
		if c.recovery != recoveryNone {
			c.recoveryAck(now, acked, acked+newlySacked)
		}
	case acked == 0:
		// RFC 5681 §2: a duplicate ACK carries no data, no SYN/FIN,
		// acknowledges nothing new while data is outstanding, and leaves
		// the window alone. RFC 6675 §2: with SACK it must also SACK new
		// data, so an ACK that only reports a duplicate (D-SACK) or that
		// the network itself duplicated is not evidence of loss.
		isDup := s.ack == c.sndUna && len(s.payload) == 0 && !s.has(wire.FlagFIN|wire.FlagSYN)
		if c.sackOK {
			isDup = isDup && newlySacked > 0
		} else {
			isDup = isDup && int(s.wnd)<<c.sndWscale == c.sndWnd
		}
		c.lossCheck(now, isDup, newlySacked)
	default:
		c.dupAcks, c.renoSacked = 0, 0
	}
	// RFC 8985 §7.2: the probe timer is (re)armed after an ACK of new
	// data, in the state the ACK leaves, as Linux does at the end of
	// tcp_ack (tcp_set_xmit_timer): an ACK that ends recovery, or undoes
	// it, arms the probe for what is still outstanding. Armed before the
	// recovery state was updated it found recovery on and stayed off, and
	// a lost tail of what recovery sent waited for the RTO.
	if acked > 0 || (wasRecovering && c.recovery == recoveryNone) {
		c.armTLP(now)
	}
	// Window update (RFC 9293 §3.10.7.4): only from a segment newer than
	// the last update.
	if c.sndWl1.LT(s.seq) || (c.sndWl1 == s.seq && c.sndWl2.LE(s.ack)) {
		c.sndWnd = int(s.wnd) << c.sndWscale
		c.sndWl1, c.sndWl2 = s.seq, s.ack
		c.maxSndWnd = max(c.maxSndWnd, c.sndWnd)
		if wasZeroWnd && c.sndWnd > 0 {
			// The window reopened: stop probing and send at once.
			c.persistAt, c.probes, c.persistBackoff = noDeadline, 0, 0
		}
	}

	switch c.state {
	case FinWait1:
		if c.finAcked() {
			c.setState(FinWait2)
			if c.appClosed {
				c.closeAt = now.Add(c.e.prof.FinTimeout)
			}
		}
	case Closing:
		if c.finAcked() {
			c.enterTimeWait(now)
		}
	case LastAck:
		if c.finAcked() {
			c.closeWith(nil)
			if c.appClosed {
				c.destroy()
			}
			return false
		}
	}
	return true
}

// finSeq is the sequence number our FIN occupies (valid once queued).
func (c *Conn) finSeq() Seq { return c.sndBufSeq.Add(c.sndBuf.Len()) }

// finAcked reports whether the peer acknowledged our FIN.
func (c *Conn) finAcked() bool { return c.finSent && c.sndUna.GT(c.finSeq()) }

// ackNewData handles SND.UNA < SEG.ACK =< SND.MAX.
func (c *Conn) ackNewData(now Time, s *segment) {
	flightBefore := c.sndMax.Sub(c.sndUna)
	acked := s.ack.Sub(c.sndUna)
	// RTT: time one segment at a time (RFC 6298 §3 with Karn's rule); with
	// timestamps an echoed TSval measures even retransmitted data
	// (RFC 7323 §4.1).
	var rtt time.Duration
	if c.rttTiming && s.ack.GT(c.rttSeq) {
		rtt = now.Sub(c.rttTime)
		c.rttTiming = false
	} else if c.tsOK && s.opts.HasTS && s.opts.TSEcr != 0 && c.retries > 0 {
		if ms := int32(c.tsNow(now) - s.opts.TSEcr); ms >= 0 {
			rtt = time.Duration(ms) * time.Millisecond
		}
	}
	if rtt > 0 {
		c.rtt.sample(rtt)
	}
	if s.ack.GT(c.sndBufSeq) {
		n := min(s.ack.Sub(c.sndBufSeq), c.sndBuf.Len())
		c.sndBuf.discard(n)
		c.sndBufSeq = c.sndBufSeq.Add(n)
		c.info.BytesAcked += uint64(n)
	}
	c.sndUna = s.ack
	if c.sndNxt.LT(c.sndUna) {
		c.sndNxt = c.sndUna
	}
	// RFC 6298 §5.7 and Linux: new data acknowledged ends the backoff.
	c.retries, c.backoff = 0, 0
	if c.cc != nil && c.recovery != recoveryFast {
		// In fast recovery PRR sets the pace; the window grows again once
		// recovery ends.
		c.cc.OnAck(time.Duration(now), acked, c.validatedFlight(flightBefore), rtt)
		c.expandSndBuf()
	}
	// RFC 6298 §5.2 / §5.3: stop the timer when everything is acknowledged,
	// otherwise restart it.
	// The tail loss probe is armed by processAck, once the ACK has been
	// taken in whole.
	if c.sndUna == c.sndMax {
		c.rtoAt, c.tlpAt = noDeadline, noDeadline
	} else {
		c.rtoAt = now.Add(c.rtt.rto)
	}
	c.probes = 0
	c.wake()
}

// receiveData is the seventh check: place payload in the receive buffer
// (in order) or the reassembly map (out of order), trimmed to the window.
func (c *Conn) receiveData(now Time, s *segment) {
	seq, data := s.seq, s.payload
	if d := c.rcvNxt.Sub(seq); d > 0 {
		if d >= len(data) {
			c.ackNow = true // entirely old: a retransmission
			c.setDSACK(seq, seq.Add(len(data)))
			return
		}
		// RFC 2883 §4.1.1: report the part we already had.
		c.setDSACK(seq, c.rcvNxt)
		data, seq = data[d:], c.rcvNxt
	}
	if c.rcvAdv.Sub(c.rcvNxt) <= 0 {
		// A zero window takes the segment's ACK but none of its data
		// (RFC 9293 §3.10.7.4; Linux drops it as TCPZeroWindowDrop), even
		// when the buffer has a sliver of room: the window said 0.
		c.e.stats.ZeroWindowDrops++
		c.ackNow = true
		return
	}
	off := seq.Sub(c.rcvNxt)
	room := c.rcvBufMax - c.rcvBuf.Len() - off
	if room <= 0 {
		c.ackNow = true // beyond our buffer (zero window probe or a shrunk window)
		return
	}
	if len(data) > room {
		data = data[:room]
	}
	c.rcvBuf.ensure(c.rcvBuf.Len()+off+len(data), c.rcvBufMax)
	c.rcvMSS = max(c.rcvMSS, min(len(s.payload), c.e.ourMSS))
	if off > 0 {
		// Out of order: park the bytes at their place and remember the range.
		if c.ooo.contains(seq, seq.Add(len(data))) {
			// RFC 2883 §4.1.2: a duplicate of out-of-order data.
			c.setDSACK(seq, seq.Add(len(data)))
			c.ackNow = true
			return
		}
		if c.ooo.add(seq, seq.Add(len(data)), c.e.prof.OOOMaxSegments) {
			c.rcvBuf.writeAt(data, c.rcvBuf.Len()+off)
			c.info.OutOfOrderSegs++
		}
		// RFC 5681 §4.2: an out-of-order segment is acknowledged at once.
		c.ackNow = true
		return
	}
	if c.rdShut {
		// shutdown(SHUT_RD): acknowledge and discard.
		c.rcvNxt = c.rcvNxt.Add(len(data))
	} else {
		c.rcvBuf.write(data)
		c.rcvNxt = c.rcvNxt.Add(len(data))
	}
	c.info.BytesReceived += uint64(len(data))
	if !c.ooo.empty() {
		nxt := c.ooo.advance(c.rcvNxt)
		if filled := nxt.Sub(c.rcvNxt); filled > 0 {
			c.rcvBuf.extend(filled)
			c.info.BytesReceived += uint64(filled)
			c.rcvNxt = nxt
		}
		// RFC 5681 §4.2: a segment that fills a gap is acknowledged at once.
		c.ackNow = true
	}
	c.updateATO(now)
	c.growRcvSsthresh(len(s.payload))
	if s.has(wire.FlagFIN) && c.e.prof.PingPongOnFin && c.state == Established {
		// Linux tcp_fin: the peer is done sending, so ACKs wait on the bet
		// that our answer will carry them (delayed-ACK mode). Entered here,
		// before this data's ACK is decided, as Linux decides it after
		// tcp_fin; a bare FIN has no ACK scheduled and receiveFin sends
		// one at once, so only a FIN with data is delayed.
		c.pingpong = true
	}
	c.scheduleAck(now, len(data))
	if c.finPending && c.finPendingSeq == c.rcvNxt {
		c.receiveFin(now, c.finPendingSeq)
	}
	c.wake()
}

// scheduleAck decides between an immediate and a delayed ACK for in-order
// data (RFC 1122 §4.2.3.2, RFC 5681 §4.2): ACK at least every second
// full-sized segment, and within the delayed-ACK timeout otherwise.
func (c *Conn) scheduleAck(now Time, n int) {
	c.unackedBytes += n
	p := c.e.prof
	if !p.DelayedAck || (c.quickAcks > 0 && !c.pingpong) || c.ackSecondSegment() {
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
func (c *Conn) ackSecondSegment() bool {
	if c.unackedBytes < 2*c.rcvMSS {
		return false
	}
	return !c.e.prof.AckSecondOnlyIfWindowGrows || c.offerWindow() >= c.rcvAdv.Sub(c.lastAckSent)
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
	c.quickAcks = max(c.quickAcks, min(n, p.QuickAcks))
}

// receiveFin is the eighth check: a FIN at seq. One beyond RCV.NXT waits
// until the data before it arrives.
func (c *Conn) receiveFin(now Time, seq Seq) {
	if c.finRcvd {
		if c.state == TimeWait {
			c.closeAt = now.Add(c.e.prof.TimeWaitLen)
			c.ackNow = true
		}
		return
	}
	if seq != c.rcvNxt {
		if seq.GT(c.rcvNxt) {
			c.finPending, c.finPendingSeq = true, seq
		}
		return
	}
	c.finPending = false
	c.finRcvd = true
	c.rcvNxt = c.rcvNxt.Add(1)
	// In delayed-ACK mode a delayed ACK already scheduled for the FIN's
	// data stands (see receiveData); otherwise the FIN is ACKed at once.
	if !c.pingpong || c.delackAt == noDeadline || c.ackNow {
		c.ackNow = true // RFC 9293 §3.10.7.4: acknowledge the FIN
	}
	switch c.state {
	case SynReceived, Established:
		c.setState(CloseWait)
	case FinWait1:
		if c.finAcked() {
			c.enterTimeWait(now)
		} else {
			c.setState(Closing)
		}
	case FinWait2:
		c.enterTimeWait(now)
	}
	c.wake()
}

// enterTimeWait starts the 2*MSL wait (RFC 9293 §3.6).
func (c *Conn) enterTimeWait(now Time) {
	c.setState(TimeWait)
	c.rtoAt, c.persistAt, c.keepaliveAt, c.tlpAt = noDeadline, noDeadline, noDeadline, noDeadline
	c.closeAt = now.Add(c.e.prof.TimeWaitLen)
}

// validatedFlight is the flight a congestion controller judges cwnd by
// (RFC 7661 §4; Linux tcp_is_cwnd_limited): the largest flight of the
// last round trip, not just the flight at this ACK, and in slow start
// twice that, so a window the application nearly fills still grows the
// way Linux grows it.
func (c *Conn) validatedFlight(flight int) int {
	f := max(flight, c.maxFlight)
	if c.cc.CongestionWindow() < c.cc.SlowStartThreshold() {
		f *= 2
	}
	return f
}

// noteFlight records the flight after sending new data: the round trip's
// largest, restarted once the previous one's data is acknowledged (Linux
// tcp_cwnd_validate's max_packets_out and cwnd_usage_seq).
func (c *Conn) noteFlight() {
	flight := c.sndMax.Sub(c.sndUna)
	if c.sndUna.GE(c.flightRoundEnd) || flight > c.maxFlight {
		c.maxFlight = flight
		c.flightRoundEnd = c.sndNxt
	}
}
