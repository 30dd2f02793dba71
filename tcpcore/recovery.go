package tcpcore

import (
	"time"

	"tunstack/congestion"
	"tunstack/wire"
)

// Loss recovery: which bytes are lost, what to retransmit next, how fast.
//
// With SACK the sender follows RFC 6675 (IsLost, pipe, NextSeg, rescue
// retransmission); without it, NewReno (RFC 6582) with Linux's trick of
// counting duplicate ACKs as SACKed segments. In fast recovery the sending
// rate follows Proportional Rate Reduction (RFC 6937). After a
// retransmission timeout everything outstanding is deemed lost and
// retransmitted in order as slow start allows, skipping what the peer
// SACKed. The congestion controller only sets the window: it hears OnLoss
// when recovery starts, OnRecoveryEnd when it ends, and OnRTO.

type recoveryState uint8

const (
	recoveryNone recoveryState = iota
	recoveryFast               // fast retransmit / fast recovery (RFC 5681 §3.2, RFC 6675 §5)
	recoveryLoss               // after an RTO: retransmit everything outstanding
)

// recoveryControl is the loss-recovery state of a connection: the SACK
// scoreboard, the recovery episode (RFC 6675 RecoveryPoint, HighRxt, the
// loss boundary), Proportional Rate Reduction (RFC 6937), the watch on
// retransmissions (lostrtx.go) and the undo of spurious reductions (RFC
// 3522, RFC 2883 with Linux's undo). Conn embeds it.
//
// Invariants: outside recovery (recovery == recoveryNone) lostPoint is
// SND.UNA and the retransmission watch is empty; in recovery SND.UNA <=
// HighRxt <= SND.MAX and lostPoint <= SND.MAX; the scoreboard holds only
// ranges within (SND.UNA, SND.MAX].
type recoveryControl struct {
	sb                    scoreboard    // what the peer SACKed above SND.UNA
	rtx                   rtxTrack      // fast recovery's retransmissions, watched for loss
	recovery              recoveryState // open, fast recovery or loss (after RTO)
	lossRecovery          lossRecovery  // the strategy, chosen when established
	dupAcks               int           // duplicate ACKs since the last new ACK (RFC 5681 §2)
	recoveryPoint         Seq           // RFC 6582/6675 RecoveryPoint: SND.MAX at entry
	lostPoint             Seq           // unSACKed bytes below this are deemed lost
	lossEvidence          Seq           // with SACK: unSACKed bytes below this are lost by evidence, not only as the head
	rackHigh              Seq           // SND.MAX when the latest delivered retransmission went (lostrtx.go)
	highRxt               Seq           // RFC 6675 HighRxt: retransmitted up to here
	dupThresh             int           // RFC 6675 DupThresh, raised on reordering
	renoSacked            int           // without SACK: segments duplicate ACKs stand for
	rescueDone            bool          // RFC 6675 rescue retransmission made this episode
	rescueArmed           bool          // an ACK came after the one that started fast recovery
	fastRetransmitPending bool          // the first retransmission of fast recovery is due
	recoverFS             int           // RFC 6937 RecoverFS, bytes
	prrDelivered          int           // RFC 6937 prr_delivered, bytes
	prrOut                int           // RFC 6937 prr_out, bytes
	sndAllowance          int           // bytes PRR allows now
	undoMarker            Seq           // SND.UNA when the episode began
	undoRetrans           int           // retransmissions not yet shown spurious by D-SACK
	undoPossible          bool
	retransTS             uint32 // TSval of the episode's first retransmission (Eifel, RFC 3522)
}

// lossRecovery is the strategy a connection recovers from loss with,
// chosen once when it is established (chooseLossRecovery) from what its
// congestion controller is defined with and whether SACK was negotiated.
// The rest of the recovery code asks the strategy, never the controller's
// name.
type lossRecovery uint8

const (
	// sackRecovery is RFC 6675 with PRR (RFC 6937): the scoreboard says
	// what is lost.
	sackRecovery lossRecovery = iota
	// newRenoRecovery is RFC 6582: without SACK, duplicate ACKs stand for
	// delivered segments and partial ACKs keep recovery going.
	newRenoRecovery
	// renoRecovery is RFC 5681 §3.2: without SACK, the first ACK of new
	// data ends recovery.
	renoRecovery
	// tahoeRecovery has no fast recovery: the fast retransmission is
	// followed by slow start from one segment, like a timeout without the
	// backoff.
	tahoeRecovery
)

func chooseLossRecovery(r congestion.Recovery, sackOK bool) lossRecovery {
	switch {
	case r == congestion.NoFastRecovery:
		return tahoeRecovery
	case sackOK:
		return sackRecovery
	case r == congestion.FastRecoveryFirstAck:
		return renoRecovery
	}
	return newRenoRecovery
}

func (l lossRecovery) String() string {
	return [...]string{"sack", "newreno", "reno", "tahoe"}[l]
}

func (r recoveryState) String() string {
	switch r {
	case recoveryFast:
		return "recovery"
	case recoveryLoss:
		return "loss"
	}
	return "open"
}

// outstandingEnd is the end of what we sent (SND.MAX).
func (c *Conn) outstanding() int { return c.sndMax.Sub(c.sndUna) }

// sacked returns the bytes the peer holds above SND.UNA by SACK, or, on a
// connection without SACK, the segments its duplicate ACKs stand for.
func (c *Conn) sacked() int {
	if c.sackOK {
		return c.sb.sackedBytes
	}
	return min(c.renoSacked*c.sndMSS, max(c.outstanding()-c.sndMSS, 0))
}

// pipe is RFC 6675's estimate of the bytes in the network: outstanding,
// less SACKed, less lost, plus lost bytes already retransmitted.
func (c *Conn) pipe() int {
	if c.recovery == recoveryNone {
		return max(c.outstanding()-c.sacked(), 0)
	}
	una, lost := c.sndUna, MaxSeq(c.lostPoint, c.sndUna)
	if lost.GT(c.sndMax) {
		lost = c.sndMax
	}
	p := c.sndMax.Sub(lost) // not lost
	rx := MinSeq(MaxSeq(c.highRxt, una), lost)
	p += rx.Sub(una) // lost and retransmitted
	if c.sackOK {
		p -= c.sb.sackedIn(lost, c.sndMax) + c.sb.sackedIn(una, rx)
	} else {
		p -= c.sacked()
	}
	return max(p, 0)
}

// processSACK reads the SACK blocks of an ACK (RFC 2018 §4): a first block
// below SEG.ACK or inside the second is a D-SACK (RFC 2883 §4); the others
// go into the scoreboard. It returns the bytes newly SACKed.
func (c *Conn) processSACK(now Time, s *segment) int {
	o := s.opts
	if !c.sackOK || o.NumSACK == 0 {
		return 0
	}
	first := 0
	b0 := seqRange{Seq(o.SACK[0].Left), Seq(o.SACK[0].Right)}
	isDSACK := b0.start.LT(b0.end) && (b0.end.LE(s.ack) ||
		(o.NumSACK > 1 && Seq(o.SACK[1].Left).LE(b0.start) && b0.end.LE(Seq(o.SACK[1].Right))))
	if isDSACK {
		first = 1
		c.onDSACK(now, b0)
	}
	added := 0
	for i := first; i < o.NumSACK; i++ {
		l, r := Seq(o.SACK[i].Left), Seq(o.SACK[i].Right)
		// Only blocks within what we sent and above the cumulative ACK
		// mean anything; a peer inventing others is ignored.
		l = MaxSeq(l, MaxSeq(s.ack, c.sndUna))
		r = MinSeq(r, c.sndMax)
		if l.LT(r) {
			added += c.sb.add(l, r)
		}
	}
	return added
}

// onDSACK handles a duplicate report: our retransmission (or the original)
// was unnecessary. Each one that covers a retransmission made in the
// current episode takes one off undoRetrans; when none remain the window
// reduction was spurious (RFC 3708, as Linux's tcp_try_undo_dsack does).
// Reordering is the usual cause, so the duplicate threshold rises.
func (c *Conn) onDSACK(now Time, b seqRange) {
	c.info.DSACKsReceived++
	c.countDSACKDups(b)
	// Only a duplicate of data we retransmitted in this episode says a
	// retransmission was unnecessary; the network duplicating a segment
	// says nothing about our window.
	if c.undoRetrans > 0 && b.start.GE(c.undoMarker) && b.end.LE(c.highRxt) {
		c.undoRetrans--
	}
	c.trace(now, "dsack")
	if c.undoPossible && c.undoRetrans == 0 && c.recovery != recoveryNone {
		// Every retransmission was spurious: the "loss" was reordering.
		// Raise DupThresh (RFC 6675 §5 allows adjusting it; Linux raises
		// tp->reordering) so the same reordering does not fool us again.
		c.dupThresh = min(c.dupThresh+1, c.e.prof.MaxReordering)
		c.reordSeen++ // Linux tp->reord_seen
		c.undo(now)
	}
}

// lossCheck runs on every ACK that acknowledges nothing new: limited
// transmit for the first duplicates (RFC 3042), and entry into fast
// recovery once loss is evident (RFC 5681 §3.2, RFC 6675 §5). delivered
// is the data the ACK newly SACKed.
func (c *Conn) lossCheck(now Time, isDup bool, delivered int) {
	if c.recovery != recoveryNone || c.outstanding() == 0 {
		return
	}
	if isDup {
		c.dupAcks++
		c.info.DupAcksIn++
		if !c.sackOK {
			c.renoSacked++
		}
	}
	lost := c.dupAcks >= c.dupThresh
	if c.sackOK && !lost {
		lost = c.sb.lossBoundary(c.sndUna, c.dupThresh, c.sndMSS).GT(c.sndUna)
	}
	// RFC 6582 §3.2 step 1: without SACK, no new recovery until the last
	// one's data is acknowledged (duplicate ACKs then may be echoes of our
	// own retransmissions). With SACK the scoreboard says what is really
	// missing, and RFC 6675 has no such guard.
	if !lost || (!c.sackOK && c.sndUna.LT(c.recoveryPoint)) {
		return
	}
	if !c.sackOK {
		delivered = c.sndMSS // the duplicate ACK stands for one segment
	}
	c.enterFastRecovery(now, delivered)
}

// enterFastRecovery is RFC 6675 §5 step 4 / RFC 5681 §3.2 steps 2-4, for
// an ACK that delivered delivered bytes.
func (c *Conn) enterFastRecovery(now Time, delivered int) {
	// RFC 5681 §3.2 step 2: FlightSize is the data outstanding, not less
	// what duplicate ACKs or SACK say has arrived.
	flight := c.outstanding()
	c.startUndoEpisode()
	c.recoveryPoint = c.sndMax
	c.highRxt = c.sndUna
	c.rackHigh = c.sndUna
	c.rescueDone, c.rescueArmed = false, false
	c.rtx.reset()
	if c.lossRecovery == tahoeRecovery {
		// No fast recovery: retransmit and slow-start from one segment,
		// like a timeout without the backoff.
		c.cc.OnLoss(time.Duration(now), flight)
		c.recovery = recoveryLoss
		c.lostPoint = c.sndMax
		c.sb.reset()
		c.trace(now, "fast-retransmit")
		return
	}
	c.cc.OnLoss(time.Duration(now), flight)
	c.recovery = recoveryFast
	c.info.FastRecoveries++
	if c.sackOK {
		c.info.SACKRecoveries++
	}
	c.updateLostPoint()
	// RFC 6937: PRR starts from the flight at the time loss was detected.
	c.recoverFS = max(c.outstanding(), 1)
	c.prrDelivered, c.prrOut = 0, 0
	// RFC 6937 §3 counts the ACK that starts recovery like the others
	// (Linux's tcp_cwnd_reduction runs on it too): what it delivered may
	// let more than the retransmission go, so that more than one ACK can
	// come back; with only the retransmission out, losing its ACK left
	// the RTO as the only way on. RFC 5681 §3.2 step 3 / RFC 6675 §5 step
	// 4.2: the first lost segment goes out at once, whatever PRR says.
	c.prrAnswer(delivered)
	c.fastRetransmitPending = true
	c.trace(now, "fast-retransmit")
}

// updateLostPoint recomputes which bytes are deemed lost in fast recovery.
// The first unacknowledged segment always is (RFC 5681 §3.2 step 2 on
// entry, RFC 6582 §3.2 step 5 after a partial ACK; Linux's
// tcp_mark_head_lost marks at least one whole packet); with SACK, so is
// everything below RFC 6675's loss boundary, and everything sent before a
// retransmission that was delivered (rackHigh, lostrtx.go). The head is a
// whole segment, not its first byte: a one-byte head made each partial ACK
// draw a one-byte retransmission, which the peer answers with a delayed
// ACK one byte further on (TestPartialAckRetransmitsWholeHeadSegment).
func (c *Conn) updateLostPoint() {
	if c.sackOK {
		c.lossEvidence = MaxSeq(c.sb.lossBoundary(c.sndUna, c.dupThresh, c.sndMSS), c.rackHigh)
		c.lostPoint = MaxSeq(c.lossEvidence, c.sndUna.Add(c.sndMSS))
	} else {
		// NewReno: the first unacknowledged segment is the one lost
		// (RFC 6582 §3.2 step 3 and partial ACKs).
		c.lostPoint = c.sndUna.Add(c.sndMSS)
	}
}

// recoveryAck is called for every ACK while in recovery, after SND.UNA and
// the scoreboard were updated. delivered is DeliveredData of RFC 6937:
// bytes newly acknowledged cumulatively or by SACK.
func (c *Conn) recoveryAck(now Time, newlyAcked, delivered int) {
	if c.sndUna.GE(c.recoveryPoint) {
		c.exitRecovery(now)
		return
	}
	if c.recovery == recoveryLoss {
		return // cwnd (slow start) governs; NextSeg retransmits in order
	}
	c.rescueArmed = true
	if newlyAcked > 0 {
		// A partial ACK (RFC 6582 §3.2 step 5).
		if c.lossRecovery == renoRecovery {
			// RFC 5681 §3.2 step 6: recovery ends on the first new ACK.
			c.exitRecovery(now)
			return
		}
		if !c.sackOK {
			c.renoSacked = max(c.renoSacked-(newlyAcked/c.sndMSS-1), 0)
			c.highRxt = c.sndUna
		}
		c.trace(now, "partial-ack")
	} else if !c.sackOK {
		delivered = c.sndMSS // a duplicate ACK stands for one segment delivered
	}
	c.detectLostRetransmits(now)
	c.updateLostPoint()
	c.prrAnswer(delivered)
}

// prrAnswer is RFC 6937 §3 for one ACK in fast recovery, the one that
// starts it included: how much may be sent in answer, given the data it
// delivered (newly acknowledged or SACKed).
func (c *Conn) prrAnswer(delivered int) {
	c.prrDelivered += delivered
	pipe := c.pipe()
	ssthresh := c.cc.SlowStartThreshold()
	var sndcnt int
	if pipe > ssthresh {
		sndcnt = (c.prrDelivered*ssthresh+c.recoverFS-1)/c.recoverFS - c.prrOut
	} else {
		// PRR-SSRB: grow back toward ssthresh like slow start.
		sndcnt = min(ssthresh-pipe, max(c.prrDelivered-c.prrOut, delivered)+c.sndMSS)
	}
	c.sndAllowance = max(sndcnt, 0)
}

// exitRecovery ends fast or loss recovery (RFC 5681 §3.2 step 6).
func (c *Conn) exitRecovery(now Time) {
	if c.recovery == recoveryFast {
		c.cc.OnRecoveryEnd(time.Duration(now))
	}
	c.recovery = recoveryNone
	c.dupAcks, c.renoSacked = 0, 0
	c.lostPoint = c.sndUna
	c.fastRetransmitPending = false
	c.rtx.reset()
	c.trace(now, "recovery-end")
}

// enterLossRecovery is the RTO response (RFC 6298 §5.4, RFC 5681 §3.1,
// RFC 6675 §5.1): the window collapses, everything outstanding is deemed
// lost, and the scoreboard is cleared in case the peer reneged.
func (c *Conn) enterLossRecovery(now Time) {
	if c.recovery == recoveryNone || c.retries == 1 {
		c.startUndoEpisode()
	}
	c.cc.OnRTO(time.Duration(now), c.outstanding())
	// A timeout is evidence of loss, not reordering: fall back to the
	// configured threshold (as Linux does in tcp_enter_loss).
	c.dupThresh = min(c.dupThresh, c.e.prof.DupThresh)
	c.recovery = recoveryLoss
	c.recoveryPoint = c.sndMax
	c.lostPoint = c.sndMax
	c.highRxt = c.sndUna
	c.rtx.reset()
	c.sb.reset()
	c.dupAcks, c.renoSacked = 0, 0
	c.fastRetransmitPending = false
	c.trace(now, "rto")
}

func (c *Conn) startUndoEpisode() {
	c.undoMarker = c.sndUna
	c.undoRetrans = 0
	c.undoPossible = true
	c.retransTS = 0
}

// undo restores the window after a reduction shown spurious.
func (c *Conn) undo(now Time) {
	c.cc.Undo(time.Duration(now))
	c.info.SpuriousUndos++
	c.undoPossible = false
	c.recovery = recoveryNone
	c.recoveryPoint = c.sndUna // the episode is over: later losses start anew
	c.dupAcks, c.renoSacked = 0, 0
	c.lostPoint = c.sndUna
	c.fastRetransmitPending = false
	c.trace(now, "undo")
}

// eifelCheck is RFC 3522's detection with timestamps: if the first ACK of
// new data after we retransmitted echoes a TSval older than that
// retransmission, the original arrived and the retransmission was spurious.
func (c *Conn) eifelCheck(now Time, s *segment) {
	if !c.tsOK || !c.undoPossible || c.retransTS == 0 || !s.opts.HasTS || s.opts.TSEcr == 0 {
		return
	}
	if int32(s.opts.TSEcr-c.retransTS) < 0 && c.recovery != recoveryNone {
		c.undo(now)
	}
}

// nextRetransmit is RFC 6675 NextSeg rules 1 and 3/4: the first lost,
// unSACKed range above HighRxt, else (fast recovery with SACK, once) a
// rescue retransmission of the highest unSACKed segment. fin reports that
// the range ends with our FIN.
func (c *Conn) nextRetransmit() (seq Seq, n int, fin bool, kind rtxKind, ok bool) {
	kind = rtxFast
	if c.recovery == recoveryLoss {
		kind = rtxRTO
	}
	if c.recovery == recoveryNone {
		return 0, 0, false, kind, false
	}
	if seq, n, fin, ok := c.nextRelost(); ok {
		return seq, n, fin, rtxLost, ok
	}
	if start, end, ok := c.unsackedRange(MaxSeq(c.highRxt, c.sndUna), MinSeq(c.lostPoint, c.sndMax)); ok {
		seq, n, fin, ok := c.rangeToSend(start, end)
		return seq, n, fin, kind, ok
	}
	// Not in answer to the ACK that started recovery: the tail may still
	// be on its way, and that ACK may let more than the fast retransmission
	// go (prrAnswer).
	if c.recovery == recoveryFast && c.sackOK && c.rescueArmed && !c.rescueDone && !c.hasNewData() {
		// RFC 6675 NextSeg rule 4: one segment ending at the highest
		// unSACKed byte, so a lost tail does not wait for the RTO.
		hi := c.sndMax
		if k := len(c.sb.blocks); k > 0 && c.sb.blocks[k-1].end == c.sndMax {
			hi = c.sb.blocks[k-1].start
		}
		// Data below HighRxt went again already; sending it once more
		// would not recover a lost tail.
		if hi.GT(c.sndUna) && hi.GT(c.highRxt) {
			seq, n, fin, ok := c.rangeToSend(MaxSeq(c.sndUna, hi.Add(-c.segSize())), hi)
			return seq, n, fin, rtxRescue, ok
		}
	}
	return 0, 0, false, kind, false
}

// unsackedRange is NextSeg's walk: the first range in [seq, limit) that
// the peer has not SACKed, at most one segment long.
func (c *Conn) unsackedRange(seq, limit Seq) (start, end Seq, ok bool) {
	for seq.LT(limit) {
		if in, e := c.sb.isSacked(seq); in && c.sackOK {
			seq = e
			continue
		}
		return seq, MinSeq(c.sb.nextSacked(seq, limit), seq.Add(c.segSize())), true
	}
	return seq, seq, false
}

// rangeToSend turns [seq, end) of sequence space into data bytes and a FIN
// flag (our FIN occupies the last sequence number).
func (c *Conn) rangeToSend(seq, end Seq) (Seq, int, bool, bool) {
	fin := false
	if c.finSent && end.GT(c.finSeq()) {
		end = c.finSeq()
		fin = true
	}
	n := end.Sub(seq)
	if n < 0 {
		n = 0
	}
	return seq, n, fin, n > 0 || fin
}

func (c *Conn) hasNewData() bool {
	return c.sndBuf.Len()-c.sndNxt.Sub(c.sndBufSeq) > 0
}

// resendFlags are the flags of a segment that sends [seq, seq+n) of the
// buffer again, and the offset of its data: ACK, FIN if it ends with ours,
// PSH if it ends the buffer.
func (c *Conn) resendFlags(seq Seq, n int, fin bool) (flags uint8, off int) {
	flags = wire.FlagACK
	if fin {
		flags |= wire.FlagFIN
	}
	off = seq.Sub(c.sndBufSeq)
	if n > 0 && off+n == c.sndBuf.Len() {
		flags |= wire.FlagPSH
	}
	return flags, off
}

// retransmit sends [seq, seq+n) (and FIN) again. A rescue retransmission
// (RFC 6675 NextSeg rule 4) is made once per recovery and does not move
// HighRxt: the holes below it that become lost later still go, by rule 1.
func (c *Conn) retransmit(now Time, seq Seq, n int, fin bool, kind rtxKind) {
	flags, off := c.resendFlags(seq, n, fin)
	if c.tsOK && c.retransTS == 0 {
		c.retransTS = c.tsNow(now)
	}
	c.emitData(now, seq, flags, off, n)
	c.noteRetransmitted(now, seq, n)
	end := seq.Add(n)
	if fin {
		end = end.Add(1)
	}
	if kind == rtxRescue {
		c.rescueDone = true
	} else if end.GT(c.highRxt) {
		c.highRxt = end
	}
	c.relostSent(seq, end.Sub(seq))
	c.noteRetransmit(now, seq, end)
	c.countRetransmit(now, kind)
	c.undoRetrans++
	if c.rttTiming && c.rttSeq.GE(seq) && c.rttSeq.LT(end) {
		c.rttTiming = false // Karn's rule
	}
	if c.rtoAt == noDeadline {
		c.rtoAt = now.Add(c.rtt.backedOff(c.backoff))
	}
}
