package tcpcore

// F-RTO (RFC 5682), as Linux runs it with tcp_frto (tcp_enter_loss,
// tcp_process_loss, tcp_xmit_recovery): detection of spurious
// retransmission timeouts. A timeout is often spurious: the path's delay
// grew past the RTO and nothing was lost. After the timeout the first
// segment is resent as usual (step 1). When an ACK then advances SND.UNA
// without covering everything that was outstanding, the next segments go
// out as new data instead of retransmissions (step 2b): if the timeout was
// spurious, the ACKs of the originals keep coming, and one that covers
// data never retransmitted proves it (step 3b): the window reduction is
// undone and the connection goes on from where it was. A duplicate ACK or
// a SACK of new data after step 2b shows the loss was real (step 3a), and
// recovery goes on conventionally. The timer sets c.frto (timers.go,
// onRTO); the recovery state machine calls frtoLossAck for each ACK in
// loss recovery (recovery.go).

// frtoLossAck is F-RTO's reading of an ACK in a timeout's loss recovery,
// dup the duplicate ACKs it counts for. It may undo the timeout (recovery
// then ends) or make this ACK's answer new data (frtoNewData).
func (c *Conn) frtoLossAck(now Time, dup int) {
	if !c.frto {
		return
	}
	ev := c.ev
	if ev.origAcked {
		// RFC 5682 §3.1 step 3b (Linux tcp_try_undo_loss with
		// frto_undo): data sent once, before the timeout, was
		// acknowledged or SACKed: the timeout was spurious.
		c.frto = false
		c.retries = 0
		c.undo(now)
		c.trace(now, "frto-undo")
		return
	}
	if c.sndMax.GT(c.recoveryPoint) {
		// New data went out at step 2b. RFC 5682 §3.1 step 3a: a
		// duplicate ACK, or a SACK of anything, says the loss was real.
		if dup > 0 || ev.dataSacked {
			c.frto = false
		}
		return
	}
	if ev.unaAdvanced && c.sndUna.LT(c.recoveryPoint) {
		// RFC 5682 §3.1 step 2b: the retransmission was acknowledged
		// and some of what was outstanding is not: send new data, if
		// there is some and the peer's window takes it, and wait for
		// the ACKs of the originals. RecoveryPoint moves to SND.MAX, so
		// that only data sent before counts for step 3b.
		c.recoveryPoint = c.sndMax
		if c.hasNewData() && c.sndUna.Add(c.sndWnd).GT(c.sndNxt) {
			c.frtoNewData = true
			return
		}
		c.frto = false // RFC 5682 §3.1 step 2b, last case: resend conventionally
	}
}

// frtoSentNewData ends the pass that answers an ACK with new data (Linux
// tcp_xmit_recovery with REXMIT_NEW): if no new data could go after all,
// F-RTO gives up and the lost data is resent in the same pass.
func (c *Conn) frtoSentNewData(now Time) {
	c.frtoNewData = false
	if c.recovery == recoveryLoss && !c.sndMax.GT(c.recoveryPoint) {
		c.frto = false
		for c.sendOne(now) {
		}
	}
}
