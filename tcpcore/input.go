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
// checks, each its own method below.
func (c *Conn) input(now Time, s *segment) {
	c.touch()
	c.info.SegsIn++
	if len(s.payload) > 0 {
		c.dataSegsIn++ // Linux data_segs_in
	}
	if c.state == SynSent {
		c.inputSynSent(now, s)
		c.after(now)
		return
	}
	if c.handshakeRepeat(now, s) {
		return
	}
	if !c.checkSequence(now, s) { // first
		return
	}
	if s.has(wire.FlagRST) { // second
		c.checkReset(now, s)
		return
	}
	// Third, security: there is no IP security compartment to check.
	if s.has(wire.FlagSYN) { // fourth
		c.checkSyn(now, s)
		return
	}
	if !c.checkAck(now, s) { // fifth
		return
	}
	// Sixth, URG: the urgent pointer is not implemented (RFC 6093 advises
	// new applications against it); urgent data is read as ordinary data.
	if !c.checkText(now, s) { // seventh
		return
	}
	if s.has(wire.FlagFIN) { // eighth
		c.receiveFin(now, s.seq.Add(len(s.payload)))
	}
	c.after(now)
}

// handshakeRepeat takes the segments that repeat part of a handshake
// before the RFC's checks see them: a SYN reaching TIME-WAIT (which may
// open a new connection), a retransmitted SYN in SYN-RECEIVED, and the
// peer's SYN-ACK of a simultaneous open. It reports whether the segment was
// consumed.
func (c *Conn) handshakeRepeat(now Time, s *segment) bool {
	if c.state == TimeWait && c.timeWaitSyn(now, s) {
		return true
	}
	if c.state == SynReceived && s.has(wire.FlagSYN) && !s.has(wire.FlagACK|wire.FlagRST) && s.seq == c.irs {
		// A retransmitted SYN: the SYN-ACK was lost. Answer it again
		// without disturbing the retransmission timer (Linux tcp_check_req).
		c.countRetransmit(now, rtxSYN)
		c.sendSyn(now)
		return true
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
	return false
}

// checkSequence is the first check: PAWS (RFC 7323 §5.3 R1, before the
// sequence test), then sequence-number acceptability, answering what fails
// (rejectSegment). An acceptable segment's timestamp is noted (RFC 7323
// §4.3). It reports whether the segment is acceptable.
func (c *Conn) checkSequence(now Time, s *segment) bool {
	if c.tsOK && s.opts.HasTS && !s.has(wire.FlagRST) && c.pawsReject(now, s.opts.TSVal, pawsWindow) && !c.disorderedAck(s) {
		c.e.stats.PAWSDrops++
		c.sendOutOfWindowAck(now, s)
		return false
	}
	if !c.acceptable(s) {
		c.rejectSegment(now, s)
		return false
	}
	if c.tsOK && s.opts.HasTS {
		c.lastEcr = s.opts.TSEcr
		// RFC 7323 §4.3 (2): remember the peer's timestamp if this
		// segment covers Last.ACK.sent.
		// Linux behaviour (tcp_replace_ts_recent: tcp_paws_check with no
		// window): not older is (s32)(TS.Recent - TSval) <= 0.
		if s.seq.LE(c.lastAckSent) && int32(c.tsRecent-s.opts.TSVal) <= 0 {
			c.tsRecent, c.tsRecentAt = s.opts.TSVal, now
		}
	}
	return true
}

// rejectSegment answers a segment that failed the acceptability test (RFC
// 9293 §3.10.7.4, first check): an RST is dropped; a FIN repeated into
// TIME-WAIT is acknowledged and restarts the 2 MSL timer; anything else is
// answered by sendOutOfWindowAck, an old duplicate's data reported with a
// D-SACK.
func (c *Conn) rejectSegment(now Time, s *segment) {
	c.e.stats.OutOfWindowDrops++
	switch {
	case s.has(wire.FlagRST):
	case c.state == TimeWait && (s.has(wire.FlagFIN) || len(s.payload) > 0):
		c.timeWaitAnswer(now, s)
		c.after(now)
	default:
		if len(s.payload) > 0 && s.seq.Add(s.segLen()).LE(c.rcvNxt) && c.state != TimeWait {
			// An old duplicate (a retransmission we already have):
			// report it (RFC 2883 §4.1.1) with the ACK.
			c.setDSACK(s.seq, s.seq.Add(len(s.payload)))
		}
		c.sendOutOfWindowAck(now, s)
	}
}

// timeWaitAnswer answers a segment with data or FIN that reached TIME-WAIT,
// as Linux's tcp_timewait_state_process does with anything but a bare ACK
// or RST at RCV.NXT: with an ACK of our FIN and theirs, at once (data and
// FIN are never rate limited, tcp_oow_rate_limited: they are no part of an
// ACK loop), and, when the segment has ACK set, a fresh 2 MSL (RFC 9293
// §3.10.7.4 restarts it for a retransmitted FIN).
func (c *Conn) timeWaitAnswer(now Time, s *segment) {
	if s.has(wire.FlagACK) {
		c.closeAt = now.Add(c.e.prof.TimeWaitLen)
	}
	c.ackNow = true
}

// checkReset is the second check (RFC 5961 §3.2): only an RST at exactly
// RCV.NXT resets; any other in-window RST draws a challenge ACK.
func (c *Conn) checkReset(now Time, s *segment) {
	if s.seq != c.rcvNxt {
		c.sendChallengeAck(now)
		return
	}
	c.onReset(now)
}

// checkSyn is the fourth check: a SYN in a synchronized state draws a
// challenge ACK, whatever its sequence number (RFC 5961 §4.2, RFC 9293
// §3.10.7.4). An embryonic connection a new SYN falls into is reset
// instead (Linux tcp_check_req).
func (c *Conn) checkSyn(now Time, s *segment) {
	if c.state == SynReceived && c.parent != nil {
		c.e.stats.AttemptFails++ // AttemptFails: Linux tcp_check_req, SYN to a request in the SYN queue
		c.e.resetFor(now, s)
		c.closeWith(nil)
		return
	}
	c.sendChallengeAck(now)
}

// checkAck is the fifth check: a segment without ACK is dropped; in
// SYN-RECEIVED the ACK completes the handshake; then processAck. It reports
// whether processing goes on to the segment's text and FIN.
func (c *Conn) checkAck(now Time, s *segment) bool {
	if !s.has(wire.FlagACK) {
		return false
	}
	if c.state == SynReceived && !c.completeHandshake(now, s) {
		return false
	}
	if !c.processAck(now, s) {
		c.after(now)
		return false
	}
	if c.state == Closed {
		return false
	}
	c.armKeepalive(now)
	return true
}

// completeHandshake takes the ACK that ends a passive open (RFC 9293
// §3.10.7.4, fifth check, SYN-RECEIVED): an unacceptable one draws
// <SEQ=SEG.ACK><CTL=RST>, a full accept queue applies the listener's
// overflow rule, and otherwise the connection is established with the
// ACK's window, scaled from here on (RFC 7323 §2.2). It reports whether
// the connection was established.
func (c *Conn) completeHandshake(now Time, s *segment) bool {
	if !(c.sndUna.LT(s.ack) && s.ack.LE(c.sndMax)) {
		c.e.sendReset(c.key.local(), c.key.remote(), s.ack, 0, wire.FlagRST)
		return false
	}
	// established may hand the connection out and clear its parent (an
	// Interceptor's), so whether it is a passive open is taken first.
	passive := c.parent != nil
	if passive && !c.parent.established(c) {
		c.acceptOverflow(now, s)
		return false
	}
	c.sndWnd = int(s.wnd) << c.sndWscale
	c.sndWl1, c.sndWl2 = s.seq, s.ack
	// The largest window starts from this ACK's, not the SYN's unscaled
	// one (Linux builds the socket from the final ACK).
	c.maxSndWnd = c.sndWnd
	if passive {
		c.e.stats.PassiveEstablished++ // PassiveOpens: Linux tcp_create_openreq_child, the child made at the final ACK
	}
	c.becomeEstablished(now)
	return true
}

// checkText is the seventh check: data in ESTABLISHED and FIN-WAIT goes to
// the receiver. New data in FIN-WAIT for a connection that shut down
// reading (closed, or shutdown(SHUT_RDWR)) is answered with RST, since no
// one will read it: RFC 1122 §4.2.2.13 and Linux's tcp_rcv_state_process
// (TCPAbortOnData), which reports ECONNRESET. It reports whether
// processing goes on to the FIN.
func (c *Conn) checkText(now Time, s *segment) bool {
	if len(s.payload) == 0 {
		return true
	}
	switch c.state {
	case Established, FinWait1, FinWait2:
	case TimeWait:
		// RFC 9293 §3.10.7.4 ignores text after the peer's FIN; Linux
		// (tcp_timewait_state_process) answers it with an ACK of the FIN.
		c.timeWaitAnswer(now, s)
		return true
	default:
		return true
	}
	if c.rdShut && c.state != Established && s.seq.Add(len(s.payload)).GT(c.rcvNxt) {
		c.e.stats.AbortOnData++ // TCPAbortOnData: Linux tcp_rcv_state_process, data after close
		c.e.sendReset(c.key.local(), c.key.remote(), s.ack, 0, wire.FlagRST)
		c.closeWith(ErrConnReset)
		return false
	}
	c.receiveData(now, s)
	return true
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

// pawsWindow is Linux's TCP_PAWS_WINDOW: on a synchronized connection a
// TSval up to this much behind TS.Recent still passes PAWS
// (tcp_paws_discard).
const pawsWindow = 1

// pawsReject is RFC 7323 §5.3 R1: a segment whose TSval is older than
// TS.Recent (by more than win) is a duplicate from an earlier incarnation
// of the sequence space.
func (c *Conn) pawsReject(now Time, tsval uint32, win int32) bool {
	// Linux behaviour (tcp_paws_check): older means (s32)(TS.Recent -
	// TSval) > win, so a TSval exactly 2^31 ahead counts as newer.
	if int32(c.tsRecent-tsval) <= win {
		return false
	}
	// Linux behaviour (tcp_paws_check): stale from 24 days on, not after.
	if now.Sub(c.tsRecentAt) >= pawsIdleLimit {
		// RFC 7323 §5.5: TS.Recent is stale; accept and resynchronize.
		c.tsRecent, c.tsRecentAt = tsval, now
		return false
	}
	return true
}

// disorderedAck is Linux's exemption from PAWS (tcp_disordered_ack): a
// pure ACK at RCV.NXT that acknowledges nothing new and would not update
// the send window, whose TSval is behind TS.Recent by no more than the RTO
// counted in ticks of a 1200 Hz clock (the fastest timestamp clock Linux
// expects of a peer, RFC 7323 §5.4 allowing 1 ms to 1 s per tick), is an
// ACK that the network reordered behind a later segment, not an old
// duplicate. It is taken silently (and changes nothing) rather than
// answered as a PAWS failure.
func (c *Conn) disorderedAck(s *segment) bool {
	if !s.has(wire.FlagACK) || s.segLen() != 0 || s.seq != c.rcvNxt || s.ack != c.sndUna {
		return false
	}
	// Would not update the window (Linux tcp_may_update_window, RFC 9293
	// §3.10.7.4's SND.WL1 test).
	wnd := int(s.wnd) << c.sndWscale
	if s.seq.GT(c.sndWl1) || s.seq == c.sndWl1 && (wnd > c.sndWnd || wnd == 0) {
		return false
	}
	replay := c.rtt.backedOff(c.backoff) * 1200 / time.Second
	return int64(int32(c.tsRecent-s.opts.TSVal)) <= int64(replay)
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
				c.e.sendReset(c.key.local(), c.key.remote(), s.ack, 0, wire.FlagRST)
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
	if c.tsInherited && s.opts.HasTS && c.pawsReject(now, s.opts.TSVal, 0) {
		// Linux behaviour (tcp_rcv_synsent_state_process): a SYN without
		// ACK is checked against the TS.Recent a connection taken over
		// from TIME-WAIT inherited (RFC 7323 §5.8), so the old
		// incarnation's SYN cannot start a simultaneous open.
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
	c.noteAcked()
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
	l := c.e.listenerFor(c.key.local(), c.key.remote())
	if !newer || l == nil {
		return false
	}
	c.e.stats.TimeWaitRecycled++
	// Linux behaviour (tcp_timewait_state_process): the new incarnation's
	// ISN is the old SND.NXT plus 65535 + 2, beyond anything the old
	// connection could have sent, so no old duplicate can be taken for new
	// data (RFC 9293 §3.4.1 asks only that ISNs not repeat within the
	// segment lifetime; Linux's choice also makes the ISN predictable).
	isn := c.sndNxt.Add(65535 + 2)
	if isn == 0 {
		isn = 1
	}
	c.closeWith(nil)
	c.e.twISN = isn
	l.input(now, s)
	c.e.twISN = 0
	return true
}

// onReset handles an acceptable RST (RFC 9293 §3.10.7.4, second check).
func (c *Conn) onReset(now Time) {
	switch c.state {
	case SynReceived:
		if c.parent != nil {
			// Passive open: return to LISTEN, i.e. forget this attempt.
			c.e.stats.AttemptFails++ // AttemptFails: Linux tcp_check_req, RST to a request in the SYN queue
			c.closeWith(nil)
			return
		}
		c.e.stats.AttemptFails++
		c.closeWith(ErrConnRefused)
	case Established, FinWait1, FinWait2:
		c.closeWith(ErrConnReset)
	case CloseWait:
		// The peer already closed its side, so the reset ends a stream the
		// application has read to EOF: Linux (tcp_reset) reports EPIPE
		// there, not ECONNRESET, and so do we.
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
// again later, or with tcp_abort_on_overflow answers RST (the backlog
// experiment in docs/experiments.md shows both).
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
		c.e.sendReset(c.key.local(), c.key.remote(), s.ack, 0, wire.FlagRST)
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
	if r := c.rare; r != nil {
		r.probes = 0
	}
	c.lastAckIn = now // Linux tp->rcv_tstamp
	wasZeroWnd := c.sndWnd == 0
	if c.quietRepeat(s) {
		// Linux tcp_ack: with nothing outstanding (prior_packets == 0)
		// an ACK that acknowledges nothing new skips the loss and
		// congestion machinery (goto no_queue); the window update is
		// all it can still bring. This one also repeats what the segment
		// before it, processed in full, brought.
		c.updateSendWindow(s, wasZeroWnd)
		return c.ackOfFin(now)
	}
	if s.ack.LT(c.sndUna) {
		// An old ACK: only its SACK blocks count (recovery.go, oldAck).
		c.oldAck(now, s)
		c.updateSendWindow(s, wasZeroWnd)
		return c.ackOfFin(now)
	}
	wasRecovering := c.recovery != recoveryNone
	c.startAck(s)
	c.processSACK(now, s)
	oldUna := c.sndUna
	flightBefore := c.outstanding()
	var rtt time.Duration
	if s.ack.GT(c.sndUna) {
		rtt = c.ackNewData(now, s)
	}
	acked := c.sndUna.Sub(oldUna)
	c.sb.trim(c.sndUna)
	c.freeUnits()
	// The probe's outcome first, as Linux's tcp_ack reads it before
	// tcp_fastretrans_alert (tlp.go).
	c.tlpAck(now, s, acked, flightBefore)
	c.ackLossSignals(now, s, acked)
	if c.recovery != recoveryLoss {
		c.frto = false // F-RTO watches one timeout's recovery (frto.go)
	}
	if acked > 0 && c.hasCC() && c.recovery != recoveryFast {
		// The window grows once loss recovery has read the ACK (Linux
		// tcp_cong_control after tcp_fastretrans_alert): not in fast
		// recovery, where PRR sets the pace, but on the ACK that ends it.
		// The ACK of our SYN reaches no controller, as it gives
		// ackSample no RTT sample: Linux initialises the controller
		// after it (tcp_init_transfer), so the connection starts with
		// one as new (startCongestionControl builds it only at its
		// first use). Nothing is sent before the SYN is acknowledged,
		// so that ACK acknowledges the SYN alone.
		if oldUna != c.iss {
			c.ccw().OnAck(time.Duration(now), c.growthBytes(acked), c.validatedFlight(flightBefore), rtt)
		}
		c.expandSndBuf()
	}
	c.settleRetransStamp()
	// RFC 8985 §7.2: the probe timer is (re)armed after an ACK of new
	// data, in the state the ACK leaves, as Linux does at the end of
	// tcp_ack (tcp_set_xmit_timer): an ACK that ends recovery, or undoes
	// it, arms the probe for what is still outstanding. Armed before the
	// recovery state was updated it found recovery on and stayed off, and
	// a lost tail of what recovery sent waited for the RTO. Not when RACK
	// armed its reordering timer, or reneging set the RTO, on this ACK.
	if (acked > 0 || (wasRecovering && c.recovery == recoveryNone)) && !c.ev.reoArmed && !c.ev.keepTimer {
		c.rack.reoTimer = false
		c.armTLP(now)
	}
	c.updateSendWindow(s, wasZeroWnd)
	return c.ackOfFin(now)
}

// quietRepeat reports whether s is a GRO unit's later segment (its ACK,
// window and options those of the segment before it, which this
// connection processed in full) whose ACK finds nothing outstanding (no
// record in the transmit queue: Linux's prior_packets, as ackLossSignals
// reads it), acknowledges nothing new, and meets no recovery and no tail
// loss probe open: the segment before it left the loss and congestion
// state as this ACK would, so processAck need only update the window. A
// unit's segments are cut from one packet, so a SACK block (a D-SACK
// among them) would repeat too: one with any goes the full way.
func (c *Conn) quietRepeat(s *segment) bool {
	return s.repeat && c.txq.len() == 0 && s.ack == c.sndUna &&
		s.opts.NumSACK == 0 && c.recovery == recoveryNone && !c.tlpOpen
}

// updateSendWindow is the window update of RFC 9293 §3.10.7.4: only from
// a segment newer than the last update (SND.WL1, SND.WL2). A window that
// reopens stops the zero-window probes.
func (c *Conn) updateSendWindow(s *segment, wasZeroWnd bool) {
	if !(c.sndWl1.LT(s.seq) || (c.sndWl1 == s.seq && c.sndWl2.LE(s.ack))) {
		return
	}
	c.sndWnd = int(s.wnd) << c.sndWscale
	c.sndWl1, c.sndWl2 = s.seq, s.ack
	c.maxSndWnd = max(c.maxSndWnd, c.sndWnd)
	if wasZeroWnd && c.sndWnd > 0 {
		c.persistAt = noDeadline
		if r := c.rare; r != nil {
			r.probes, r.persistBackoff = 0, 0
			r.probesStamp = 0
		}
	}
}

// ackOfFin moves the closing states on when the ACK covers our FIN (RFC
// 9293 §3.10.7.4, fifth check): FIN-WAIT-1 to FIN-WAIT-2 (bounded by
// tcp_fin_timeout once the application is gone), CLOSING to TIME-WAIT,
// LAST-ACK to CLOSED. It reports false when the connection closed.
func (c *Conn) ackOfFin(now Time) bool {
	if !c.finAcked() {
		return true
	}
	switch c.state {
	case FinWait1:
		c.setState(FinWait2)
		if c.appClosed {
			c.closeAt = now.Add(c.e.prof.FinTimeout)
		}
	case Closing:
		c.enterTimeWait(now)
	case LastAck:
		c.closeWith(nil)
		if c.appClosed {
			c.destroy()
		}
		return false
	}
	return true
}

// finSeq is the sequence number our FIN occupies (valid once queued).
func (c *Conn) finSeq() Seq { return c.sndBufSeq.Add(c.sndBuf.Len()) }

// finAcked reports whether the peer acknowledged our FIN.
func (c *Conn) finAcked() bool { return c.finSent && c.sndUna.GT(c.finSeq()) }

// ackNewData handles SND.UNA < SEG.ACK =< SND.MAX and returns the RTT
// sample it took (0 if none).
func (c *Conn) ackNewData(now Time, s *segment) time.Duration {
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
		// RFC 6298 §5 (Karn's algorithm) and Linux's tcp_ack_update_rtt:
		// the backed-off RTO is kept until a valid RTT sample, which
		// recomputes it (RFC 6298 §2); an ACK of retransmitted data alone
		// does not collapse it.
		c.backoff = 0
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
	c.noteAcked()
	// New data acknowledged ends the count of retransmissions of the head
	// segment (Linux tcp_ack: icsk_retransmits = 0); the backoff waits for
	// an RTT sample (above).
	c.endRTOEpisode(now)
	c.retries = 0
	if c.hasCC() {
		c.ackSample(now, s.ack.Add(-acked), rtt)
	}
	// RFC 6298 §5.2 / §5.3: stop the timer when everything is acknowledged,
	// otherwise restart it.
	// The tail loss probe is armed by processAck, once the ACK has been
	// taken in whole.
	if c.sndUna == c.sndMax {
		c.rtoAt, c.tlpAt = noDeadline, noDeadline
	} else {
		// With the RTO as it stands, backed off until an RTT sample
		// (Linux tcp_rearm_rto uses icsk_rto, which keeps the doublings).
		c.rtoAt = now.Add(c.rtt.backedOff(c.backoff))
	}
	if r := c.rare; r != nil {
		r.probes = 0
	}
	c.wake()
	return rtt
}

// enterTimeWait starts the 2*MSL wait (RFC 9293 §3.6).
func (c *Conn) enterTimeWait(now Time) {
	c.setState(TimeWait)
	c.uncount() // TIME-WAIT is not held against MaxConns (listen.go)
	c.timeWaitAt = now
	c.rtoAt, c.persistAt, c.keepaliveAt, c.tlpAt = noDeadline, noDeadline, noDeadline, noDeadline
	c.closeAt = now.Add(c.e.prof.TimeWaitLen)
	// Linux behaviour: tcp_time_wait(): the socket gives way to a small
	// timewait socket and its buffers are freed. Our FIN is acknowledged,
	// so the send buffer is empty; the receive buffer goes too once the
	// application has read it all. Both go back to the engine's pool for
	// the next connection instead of waiting out the 2*MSL.
	if c.sndBuf.Len() == 0 {
		c.sndBuf.free(c.sndRingPool())
	}
	if c.rcvBuf.Len() == 0 {
		c.rcvBuf.free(&c.e.rings)
	}
}
