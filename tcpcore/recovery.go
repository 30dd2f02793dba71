package tcpcore

import (
	"math"
	"time"

	"tunstack/congestion"
	"tunstack/wire"
)

// Loss recovery: which segments are lost, what to retransmit next, how
// fast, following Linux (tcp_fastretrans_alert and its helpers).
//
// Every segment in flight has a record (rack_queue.go): SACKed, deemed
// lost, retransmitted. With SACK, RACK (RFC 8985, rack.go) decides what is
// lost by time; with the profile's RACK off, RFC 6675's IsLost by
// DupThresh, with its rescue retransmission. Without SACK, NewReno (RFC
// 6582) counts duplicate ACKs as delivered segments and deems the head
// lost. Fast recovery starts once something is deemed lost; the sending
// rate then follows Proportional Rate Reduction (RFC 6937) in segments, as
// Linux's tcp_cwnd_reduction, which sets the window PRR allows (prr.cwnd)
// from the segments each ACK delivered. After a retransmission timeout
// everything outstanding is deemed lost and retransmitted in order as slow
// start allows, skipping what the peer SACKed. The congestion controller
// only sets the window: it hears OnLoss when recovery starts,
// OnRecoveryEnd when it ends, and OnRTO.

type recoveryState uint8

const (
	recoveryNone recoveryState = iota
	recoveryFast               // fast retransmit / fast recovery (RFC 5681 §3.2, RFC 6675 §5)
	recoveryLoss               // after an RTO: retransmit everything outstanding
)

// recoveryControl is the loss-recovery state of a connection: the SACK
// scoreboard and the record of segments in flight, RACK, the recovery
// episode (RFC 6675 RecoveryPoint), Proportional Rate Reduction (RFC
// 6937) and the undo of spurious reductions (RFC 3522, RFC 2883 with
// Linux's undo). Conn embeds it.
//
// Invariants: the scoreboard holds only ranges within (SND.UNA, SND.MAX];
// no record deemed lost and not yet retransmitted starts below lostPoint;
// outside recovery prr.cwnd is unused.
type recoveryControl struct {
	sb   scoreboard // what the peer SACKed above SND.UNA
	txq  txQueue    // the segments in flight (rack_queue.go)
	rack rackState  // RFC 8985 RACK (rack.go)
	// ev is what the ACK (or reordering timeout) being processed did: the
	// engine's one record (Engine.ev), since an event is read and written
	// within one call into the engine and every event starts it afresh
	// (startAck, onReoTimeout). Kept in each connection it cost 88 bytes
	// of every idle one.
	ev            *ackEvent
	recovery      recoveryState // open, fast recovery or loss (after RTO)
	lossRecovery  lossRecovery  // the strategy, chosen when established
	disorder      bool          // Linux TCP_CA_Disorder: open, with SACKed, lost or retransmitted data out
	rescueDone    bool          // RFC 6675 rescue retransmission made this episode
	rescueArmed   bool          // an ACK came after the one that started fast recovery
	undoPossible  bool
	retransTS     uint32 // TSval of the episode's first retransmission (Eifel, RFC 3522)
	recoveryPoint Seq    // RFC 6582/6675 RecoveryPoint: SND.MAX at entry (Linux high_seq)
	lostPoint     Seq    // where to look for lost data to resend (Linux retransmit_skb_hint)
	undoMarker    Seq    // SND.UNA when the episode began
	rtxRunEnd     Seq    // end of the last retransmission in answer to the present event
	undoRetrans   int32  // retransmissions not yet shown spurious by D-SACK; -1: none made
	dupAcks       int32  // duplicate ACKs since the last new ACK (RFC 5681 §2)
	dupThresh     int32  // RFC 6675 DupThresh (Linux tp->reordering), raised on reordering, at most MaxReordering
	renoSacked    int    // without SACK: segments duplicate ACKs stand for (Linux sacked_out)
}

// ackEvent is what one ACK did, as Linux's tcp_ack flags and counters
// carry it through loss recovery.
type ackEvent struct {
	priorUna        Seq
	fack            Seq  // the highest SACKed sequence number, as the ACK is read
	priorFack       Seq  // the same before the ACK
	sackReord       Seq  // the lowest never-retransmitted segment newly SACKed below fack
	ackReord        Seq  // the lowest never-retransmitted segment newly ACKed cumulatively
	origAcked       bool // FLAG_ORIG_SACK_ACKED: a segment never retransmitted, below RecoveryPoint, newly ACKed or SACKed
	unaAdvanced     bool // FLAG_SND_UNA_ADVANCED
	dataSacked      bool // FLAG_DATA_SACKED
	dsack           bool // FLAG_DSACKING_ACK
	reneging        bool // FLAG_SACK_RENEGING: SND.UNA stops at a SACKed segment
	lostRetrans     bool // FLAG_LOST_RETRANS
	reoArmed        bool // RACK armed its reordering timer (no probe or RTO re-arm)
	keepTimer       bool // the retransmission timer was set for reneging
	delivered       int  // segments newly ACKed or SACKed (Linux newly_acked_sacked)
	deliveredAny    bool
	deliveredBytes  int    // their bytes
	deliveredSentAt Time   // the latest transmission among them
	ackedSegs       int    // records cumulatively acknowledged
	newlyLost       int    // segments newly deemed lost
	tsEcr           uint32 // the ACK's TSecr, 0 without one
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

// recoveryRule is the strategy in force: with the profile's RACK (Linux's
// recovery) a connection without SACK recovers by NewReno whatever its
// controller says, as Linux's recovery belongs to the stack and its reno
// module only sets the window.
func (c *Conn) recoveryRule() lossRecovery {
	if c.lossRecovery == renoRecovery && c.e.prof.RACK {
		return newRenoRecovery
	}
	return c.lossRecovery
}

// outstanding is what we sent and the peer has not acknowledged.
func (c *Conn) outstanding() int { return c.sndMax.Sub(c.sndUna) }

// sacked returns the bytes the peer holds above SND.UNA by SACK, or, on a
// connection without SACK, the segments its duplicate ACKs stand for.
func (c *Conn) sacked() int {
	if c.sackOK {
		return c.txq.sacked.bytes
	}
	return min(c.renoSacked*c.sndMSS, max(c.outstanding()-c.sndMSS, 0))
}

// pipe is RFC 6675's estimate of the bytes in the network: outstanding,
// less SACKed, less deemed lost, plus retransmissions in flight (Linux's
// tcp_packets_in_flight, in bytes).
func (c *Conn) pipe() int {
	return max(c.outstanding()-c.sacked()-c.txq.lost.bytes+c.txq.retrans.bytes, 0)
}

// inflightSegs is pipe in segments, as Linux counts it for PRR:
// packets_out - (sacked_out + lost_out) + retrans_out.
func (c *Conn) inflightSegs() int {
	q := &c.txq
	sacked := q.sacked.segs
	if !c.sackOK {
		sacked = c.renoSacked
	}
	return max(q.len()-sacked-q.lost.segs+q.retrans.segs, 0)
}

// startAck opens the record of what the ACK s does.
func (c *Conn) startAck(s *segment) {
	fack := c.fack()
	*c.ev = ackEvent{priorUna: c.sndUna, fack: fack, priorFack: fack, sackReord: c.sndMax, ackReord: c.sndMax}
	c.rtxRunEnd = c.sndUna - 1 // a new event: no retransmission yet
	if c.tsOK && s.opts.HasTS {
		c.ev.tsEcr = s.opts.TSEcr
	}
}

// fack is the highest sequence number the peer SACKed, SND.UNA if none
// (Linux tcp_highest_sack_seq).
func (c *Conn) fack() Seq {
	if !c.sackOK || c.txq.sacked.segs == 0 {
		return c.sndUna
	}
	return c.sb.highest(c.sndUna)
}

// processSACK reads the SACK blocks of an ACK (RFC 2018 §4): a first block
// below SEG.ACK or inside the second is a D-SACK (RFC 2883 §4, as Linux's
// tcp_check_dsack tells it); every block within what is outstanding goes
// into the scoreboard, lowest first (Linux sorts them), and marks the
// records it covers.
func (c *Conn) processSACK(now Time, s *segment) {
	o := s.opts
	if !c.sackOK || o.NumSACK == 0 {
		return
	}
	if b0, ok := dsackBlock(s); ok {
		c.onDSACK(now, b0)
	}
	var bl [wire.MaxSACKBlocks]seqRange
	n := 0
	una := MaxSeq(s.ack, c.sndUna)
	for i := 0; i < o.NumSACK; i++ {
		// RFC 2018 §3: a block reports data above the cumulative ACK,
		// within what was sent. Linux behaviour (tcp_is_sackblock_valid):
		// one reaching past SND.NXT, reversed, or not starting above
		// SND.UNA is discarded whole, not clipped (a D-SACK below SND.UNA
		// was read above).
		l, r := Seq(o.SACK[i].Left), Seq(o.SACK[i].Right)
		if r.GT(c.sndMax) || !l.LT(r) || !l.GT(una) {
			continue
		}
		k := n
		for k > 0 && bl[k-1].start.GT(l) {
			bl[k] = bl[k-1]
			k--
		}
		bl[k] = seqRange{l, r}
		n++
	}
	for _, b := range bl[:n] {
		c.sackRange(now, b.start, b.end)
	}
	// Linux tcp_sacktag_write_queue: data SACKed below data already SACKed,
	// never retransmitted, arrived out of order.
	if c.recovery != recoveryLoss || c.undoPossible {
		c.checkReordering(c.ev.sackReord)
	}
}

// dsackBlock returns the first SACK block of s if it is a D-SACK (RFC
// 2883 §4, as Linux's tcp_check_dsack tells it): a non-empty block that
// starts below SEG.ACK or lies inside the second block.
func dsackBlock(s *segment) (seqRange, bool) {
	o := s.opts
	if o.NumSACK == 0 {
		return seqRange{}, false
	}
	b0 := seqRange{Seq(o.SACK[0].Left), Seq(o.SACK[0].Right)}
	return b0, b0.start.LT(b0.end) && (b0.start.LT(s.ack) ||
		(o.NumSACK > 1 && Seq(o.SACK[1].Left).LE(b0.start) && b0.end.LE(Seq(o.SACK[1].Right))))
}

// sackRange takes in one SACK block: the records it newly covers in full
// are SACKed. Only the gaps the scoreboard did not cover yet are walked,
// so a block repeated ACK after ACK costs a search, not a walk.
func (c *Conn) sackRange(now Time, l, r Seq) {
	nr, ok := c.sb.span(l, r)
	if !ok {
		return
	}
	for cur := l; ; {
		gap, found := c.sb.nextGap(cur, r)
		if !found {
			break
		}
		q := &c.txq
		for i := q.find(gap.start); i < q.len(); i++ {
			rec := q.at(i)
			if !rec.start.LT(gap.end) {
				break
			}
			if rec.flags&txSacked == 0 && rec.start.GE(nr.start) && rec.end.LE(nr.end) {
				c.sackOne(now, rec)
			}
		}
		cur = gap.end
	}
	if _, dropped := c.sb.add(l, r); dropped.start.LT(dropped.end) {
		// The scoreboard forgot its lowest block to stay bounded: so do
		// the records (recovery only gets more conservative).
		q := &c.txq
		for i := q.find(dropped.start); i < q.len() && q.at(i).start.LT(dropped.end); i++ {
			q.clear(q.at(i), txSacked)
		}
	}
}

// sackOne marks a record newly SACKed (Linux tcp_sacktag_one): RACK
// advances; a lost segment whose retransmission arrived, or that was only
// late, is no longer lost; one never retransmitted that arrives below data
// already SACKed shows reordering.
func (c *Conn) sackOne(now Time, r *txRec) {
	q := &c.txq
	c.rackAdvance(now, r)
	if r.flags&txRetrans != 0 {
		if r.flags&txLost != 0 {
			q.clear(r, txLost)
			q.clear(r, txRetrans)
		}
		// Not deemed lost: the retransmission is still in flight.
	} else {
		if r.flags&txEverRetrans == 0 && r.start.LT(c.ev.fack) && r.start.LT(c.ev.sackReord) {
			c.ev.sackReord = r.start
		}
		if r.flags&txEverRetrans == 0 && !r.end.GT(c.recoveryPoint) {
			c.ev.origAcked = true
		}
		q.clear(r, txLost)
	}
	q.set(r, txSacked)
	c.ev.dataSacked = true
	c.noteDelivered(r)
	c.ev.fack = MaxSeq(c.ev.fack, r.end)
}

// noteDelivered counts a segment newly ACKed or SACKed.
func (c *Conn) noteDelivered(r *txRec) {
	c.ev.delivered++
	c.ev.deliveredBytes += r.end.Sub(r.start)
	if !c.ev.deliveredAny || r.sentAt > c.ev.deliveredSentAt {
		c.ev.deliveredSentAt = r.sentAt
	}
	c.ev.deliveredAny = true
}

// onDSACK handles a duplicate report (RFC 2883): our retransmission (or
// the original) was unnecessary. As Linux's tcp_check_dsack and
// tcp_sacktag_one: a block longer than the largest window, or reporting
// more duplicates than we ever retransmitted, is dubious and ignored; each
// duplicate of a retransmission made since the episode began takes one
// off undoRetrans (when none remain the reduction was spurious, RFC 3708);
// a retransmission reported duplicate is no longer in flight.
func (c *Conn) onDSACK(now Time, b seqRange) {
	segs := b.end.Sub(b.start)
	if segs > c.maxSndWnd {
		return
	}
	segs = max((segs+c.sndMSS-1)/max(c.sndMSS, 1), 1)
	c.counters().DSACKsReceived++
	c.countDSACKDups(b)
	if c.rareR().dsackDups > c.rareR().Retransmits {
		return // the peer reports duplicates we never sent
	}
	c.ev.dsack = true
	c.trace(now, "dsack")
	if c.rareR().reordSeen > 0 {
		c.rackOnDSACK()
	}
	if !b.end.GT(c.ev.priorUna) {
		// Duplicates of data already acknowledged.
		if c.undoPossible && c.undoRetrans > 0 && b.end.GT(c.undoMarker) {
			c.undoRetrans = int32(max(int(c.undoRetrans)-segs, 0))
		}
		return
	}
	q := &c.txq
	for i := q.find(b.start); i < q.len(); i++ {
		r := q.at(i)
		if !r.start.LT(b.end) {
			break
		}
		if r.flags&(txRetrans|txEverRetrans) == 0 {
			continue
		}
		if c.undoPossible && c.undoRetrans > 0 && r.end.GT(c.undoMarker) {
			c.undoRetrans--
		}
		if r.flags&txSacked != 0 && r.start.LT(c.ev.sackReord) {
			c.ev.sackReord = r.start
		}
		q.clear(r, txRetrans)
	}
}

// checkReordering is Linux's tcp_check_sack_reordering: data delivered
// below the highest SACKed sequence number that was never retransmitted
// arrived out of order. The reordering degree (DupThresh, Linux
// tp->reordering) grows to the distance in segments, and RACK keeps a
// reordering window from then on.
func (c *Conn) checkReordering(low Seq) {
	fack := c.fack()
	if !low.LT(fack) {
		return
	}
	if metric, mss := fack.Sub(low), max(c.sndMSS, 1); metric > int(c.dupThresh)*mss {
		c.dupThresh = int32(min((metric+mss-1)/mss, c.e.prof.MaxReordering))
	}
	c.rareW().reordSeen++
}

// ackRecords drops the records the cumulative ACK covers (Linux
// tcp_clean_rtx_queue): each one not SACKed before is delivered and
// advances RACK, unless timestamps show a retransmission acknowledged for
// its original; a never-retransmitted one filling a hole below SACKed data
// shows reordering; a SACKed segment left at SND.UNA shows the peer
// reneging (RFC 2018 §8).
func (c *Conn) ackRecords(now Time, s *segment) {
	q := &c.txq
	retransAcked := false
	for q.len() > 0 {
		r := q.at(0)
		if r.end.GT(c.sndUna) {
			q.trimFirst(c.sndUna)
			break
		}
		if r.flags&(txRetrans|txEverRetrans) != 0 {
			retransAcked = true
		} else if r.flags&txSacked == 0 && !r.end.GT(c.recoveryPoint) {
			c.ev.origAcked = true
		}
		if r.flags&(txRetrans|txEverRetrans) == 0 && r.flags&txSacked == 0 && r.start.LT(c.ev.ackReord) {
			c.ev.ackReord = r.start
		}
		if r.flags&txSacked == 0 && c.sackOK {
			c.noteDelivered(r)
			// RFC 3465 §2.1: slow start grows by the bytes acknowledged.
			// A segment acknowledged in pieces counts whole once its
			// last piece comes, as Linux counts it then
			// (tcp_clean_rtx_queue counts the packet when it is freed,
			// not the trims before): the earlier pieces grow nothing, so
			// ACK division gains nothing, and the segment loses nothing.
			c.ev.deliveredBytes += int(q.headTrimmed)
			if !c.spuriousRetrans(r, s) {
				c.rackAdvance(now, r)
			}
		}
		c.ev.ackedSegs++
		q.popFirst()
	}
	if c.lostPoint.LT(c.sndUna) {
		c.lostPoint = c.sndUna
	}
	if q.len() > 0 && q.at(0).flags&txSacked != 0 {
		c.ev.reneging = true
	}
	if c.ev.ackedSegs == 0 {
		return
	}
	if !c.sackOK && retransAcked {
		// Linux behaviour (tcp_clean_rtx_queue): without SACK a cumulative
		// ACK that also covers retransmitted data cannot show that the
		// originals arrived.
		c.ev.origAcked = false
	}
	if !c.sackOK {
		c.removeRenoSacks(c.ev.ackedSegs)
	} else if c.ev.ackReord.LT(c.ev.priorFack) {
		c.checkReordering(c.ev.ackReord)
	}
}

// spuriousRetrans is Linux's tcp_skb_spurious_retrans: a retransmitted
// segment whose ACK echoes a timestamp older than the retransmission was
// acknowledged for its original.
func (c *Conn) spuriousRetrans(r *txRec, s *segment) bool {
	return r.flags&(txRetrans|txEverRetrans) != 0 && c.tsOK && s.opts.HasTS && s.opts.TSEcr != 0 &&
		int32(s.opts.TSEcr-c.tsNow(r.sentAt)) < 0
}

// addRenoSack counts duplicate ACKs, without SACK, as segments delivered
// (Linux tcp_add_reno_sack), never so many that no hole is left.
func (c *Conn) addRenoSack(n int) {
	if n == 0 {
		return
	}
	prior := c.renoSacked
	c.renoSacked += n
	c.limitRenoSacked(0)
	if d := c.renoSacked - prior; d > 0 {
		c.ev.delivered += d
	}
}

// removeRenoSacks is Linux's tcp_remove_reno_sacks for a cumulative ACK
// of acked segments without SACK: one of them filled the hole, the others
// had each drawn a duplicate ACK.
func (c *Conn) removeRenoSacks(acked int) {
	c.ev.delivered += max(acked-c.renoSacked, 1)
	c.renoSacked = max(c.renoSacked-(acked-1), 0)
	c.limitRenoSacked(acked)
}

// limitRenoSacked keeps the segments duplicate ACKs stand for below what
// is outstanding less one hole; needing to means the duplicates came from
// reordering, which raises the reordering degree (Linux
// tcp_check_reno_reordering).
func (c *Conn) limitRenoSacked(addend int) {
	out := c.txq.len()
	holes := min(max(c.txq.lost.segs, 1), out)
	if c.renoSacked+holes <= out {
		return
	}
	c.renoSacked = max(out-holes, 0)
	c.dupThresh = int32(min(out+addend, c.e.prof.MaxReordering))
	c.rareW().reordSeen++
}

// ackLossSignals reads an ACK for loss recovery once SND.UNA and the
// scoreboard took it in, as the middle of Linux's tcp_ack: the records it
// acknowledged, then, for an ACK that is a duplicate, SACKs or D-SACKs
// something, or comes while recovery or disorder is under way (Linux
// tcp_ack_is_dubious), the recovery state machine; then PRR's answer.
func (c *Conn) ackLossSignals(now Time, s *segment, acked int) {
	ev := c.ev
	prior := c.txq.len()
	ev.unaAdvanced = acked > 0
	c.ackRecords(now, s)
	if prior == 0 && acked == 0 {
		// Nothing was outstanding: only a D-SACK may still undo.
		if ev.dsack {
			c.fastRetransAlert(now, 0)
		}
		return
	}
	if c.sackOK {
		c.rackUpdateReoWnd(now)
	}
	// RFC 5681 §2 as Linux counts it: an ACK that carries no data,
	// acknowledges nothing new, leaves the window alone and reports no
	// duplicate is a duplicate ACK.
	dup := 0
	if acked == 0 && s.ack == c.sndUna && len(s.payload) == 0 && !s.has(wire.FlagFIN|wire.FlagSYN) &&
		!ev.dsack && int(s.wnd)<<c.sndWscale == c.sndWnd {
		dup = 1
	}
	if dup > 0 || ev.dataSacked || ev.dsack || c.recovery != recoveryNone || c.disorder {
		c.fastRetransAlert(now, dup)
	} else if acked > 0 {
		c.dupAcks = 0
	}
	if c.recovery == recoveryFast {
		c.prrUpdate(ev.delivered, ev.newlyLost, ev.unaAdvanced)
	}
}

// growthBytes is what an ACK of acked new bytes lets the congestion
// window grow by. Linux's tcp_cong_control grows it by the segments the
// ACK newly delivered, ACKed or SACKed: data SACKed before was counted
// when it was SACKed, and is not again when the cumulative ACK covers it.
// Without SACK, the bytes acknowledged.
func (c *Conn) growthBytes(acked int) int {
	if !c.sackOK {
		return acked
	}
	return c.ev.deliveredBytes
}

// oldAck takes in an ACK below SND.UNA. Linux behaviour (tcp_ack,
// old_ack): RFC 9293 §3.10.7.4 lets it be ignored, and it is, unless it
// carries SACK blocks; those are processed (RFC 6675 §5 takes SACK
// information from every ACK) with the recovery they drive, but PRR gives
// no answer to it: what may be sent is what the last ACK allowed.
func (c *Conn) oldAck(now Time, s *segment) {
	if !c.sackOK || s.opts.NumSACK == 0 || c.txq.len() == 0 {
		return
	}
	c.startAck(s)
	c.processSACK(now, s)
	c.fastRetransAlert(now, 0)
}

// fastRetransAlert is the recovery state machine (Linux
// tcp_fastretrans_alert): reneging, the end of recovery, undo, loss
// detection, and the start of fast recovery once something is deemed
// lost.
func (c *Conn) fastRetransAlert(now Time, dup int) {
	ev := c.ev
	if ev.reneging && ev.unaAdvanced {
		// RFC 2018 §8 and Linux behaviour (tcp_check_sack_reneging): an
		// ACK that stops at a SACKed segment suggests the peer dropped
		// what it SACKed. Rather than trust the scoreboard, fire the
		// retransmission timer soon (max(SRTT/2, 10 ms), in case more
		// ACKs restore sense); the timeout then forgets the SACKs.
		c.rtoAt = now.Add(max(c.rtt.srtt/2, renegingDelay))
		ev.keepTimer = true
		return
	}
	if c.recovery == recoveryFast && !c.sndUna.LT(c.recoveryPoint) {
		if !c.sackOK {
			c.renoSacked = 0
		}
		if c.tryUndoRecovery(now) {
			return
		}
	}
	switch c.recovery {
	case recoveryFast:
		if !ev.unaAdvanced {
			if !c.sackOK {
				c.addRenoSack(dup)
			}
		} else {
			if c.recoveryRule() == renoRecovery {
				// RFC 5681 §3.2 step 6: recovery ends on the first new ACK.
				c.exitRecovery(now)
				return
			}
			c.trace(now, "partial-ack")
			if c.tryUndoPartial(now) {
				return
			}
		}
		c.rescueArmed = true
		if c.tryUndoDSACK(now) {
			c.tryKeepOpen()
		}
		c.identifyLoss(now)
		if c.recovery != recoveryFast {
			if !c.timeToRecover() {
				return
			}
			c.enterFastRecovery(now)
		}
		return
	case recoveryLoss:
		if ev.unaAdvanced {
			c.eifelCheck(now)
		}
		if c.recovery == recoveryLoss {
			c.frtoLossAck(now, dup) // frto.go
		}
		if c.recovery == recoveryLoss && !c.sndUna.LT(c.recoveryPoint) {
			c.exitRecovery(now)
		}
		if c.recovery == recoveryLoss {
			// RACK finds retransmissions lost again: they go again, in
			// order, as the window allows.
			if c.sackOK && c.e.prof.RACK {
				c.rackMarkLost(now)
			}
			return
		}
	}
	c.openAlert(now, dup)
}

// openAlert is the state machine outside recovery: duplicate ACKs counted,
// a D-SACK undo, loss detection, and fast recovery once something is
// deemed lost.
func (c *Conn) openAlert(now Time, dup int) {
	ev := c.ev
	if ev.unaAdvanced {
		c.dupAcks = 0
	}
	if dup > 0 && (!c.sackOK || ev.dataSacked) {
		// RFC 6675 §2: with SACK a duplicate ACK also SACKs new data.
		c.dupAcks++
		c.counters().DupAcksIn++
	}
	if !c.sackOK {
		if ev.unaAdvanced {
			c.renoSacked = 0
		}
		c.addRenoSack(dup)
	}
	c.tryUndoDSACK(now)
	c.identifyLoss(now)
	if !c.timeToRecover() {
		c.tryKeepOpen()
		return
	}
	c.enterFastRecovery(now)
}

// renegingDelay is the least wait before the timeout that follows a
// suspected reneging (Linux: 10 ms).
const renegingDelay = 10 * time.Millisecond

// identifyLoss deems segments lost: without SACK the head, by NewReno's
// rule; with RACK by time; else by RFC 6675's IsLost.
func (c *Conn) identifyLoss(now Time) {
	if c.txq.len() == 0 {
		return
	}
	switch {
	case !c.sackOK:
		c.newRenoMarkLost()
	case c.e.prof.RACK:
		c.rackMarkLost(now)
	default:
		c.dupThreshMarkLost()
	}
}

// newRenoMarkLost is Linux's tcp_newreno_mark_lost: without SACK the
// first unacknowledged segment is deemed lost when DupThresh duplicate
// ACKs arrived (RFC 5681 §3.2 step 2) and after each partial ACK in
// recovery (RFC 6582 §3.2 step 5).
func (c *Conn) newRenoMarkLost() {
	if (c.recovery == recoveryNone && c.renoSacked >= int(c.dupThresh)) || (c.recovery == recoveryFast && c.ev.unaAdvanced) {
		c.markHeadLost()
	}
}

// markHeadLost deems the first unacknowledged segment lost, one segment of
// it at most (Linux tcp_fragment).
func (c *Conn) markHeadLost() {
	q := &c.txq
	if q.len() == 0 {
		return
	}
	r := q.at(0)
	if r.flags&(txLost|txSacked) != 0 {
		return
	}
	if end := r.start.Add(c.sndMSS); r.end.GT(end) && c.sndMSS > 0 {
		q.split(0, end)
		r = q.at(0)
	}
	c.markLost(r)
}

// dupThreshMarkLost is RFC 6675 §4's IsLost as a boundary: every segment
// with DupThresh segments' worth of SACKed data above it is lost; in fast
// recovery so is the first unacknowledged segment (RFC 5681 §3.2 step 2 on
// entry, RFC 6582 §3.2 after a partial ACK).
func (c *Conn) dupThreshMarkLost() {
	q := &c.txq
	boundary := c.sb.lossBoundary(c.sndUna, int(c.dupThresh), c.sndMSS)
	for i := 0; i < q.len(); i++ {
		r := q.at(i)
		if !r.start.LT(boundary) {
			break
		}
		// IsLost speaks of the original transmission only: a segment
		// deemed lost before keeps its retransmission, which the SACKs
		// of segments sent before it say nothing about (RFC 6675 §4
		// NextSeg rule 1 sends each lost segment once, above HighRxt;
		// Linux behaviour: tcp_mark_head_lost() hands tcp_mark_skb_lost()
		// only a segment not already LOST). Marking it again would take
		// its retransmission for lost and send it on every ACK of the
		// recovery: markLost's rule for a lost record is for the callers
		// that judge the retransmission itself.
		if r.flags&txLost != 0 {
			continue
		}
		c.markLost(r)
	}
	if c.recovery == recoveryFast {
		c.markHeadLost()
	}
}

// timeToRecover is Linux's tcp_time_to_recover: something is deemed lost;
// with RFC 6675 (RACK off) also DupThresh duplicate ACKs.
func (c *Conn) timeToRecover() bool {
	if c.txq.lost.segs > 0 {
		return true
	}
	return c.sackOK && !c.e.prof.RACK && c.dupAcks >= c.dupThresh
}

// tryKeepOpen leaves recovery for open or disorder (Linux
// tcp_try_keep_open): disorder while SACKed, lost or retransmitted data is
// outstanding.
func (c *Conn) tryKeepOpen() {
	q := &c.txq
	c.recovery = recoveryNone
	c.disorder = q.sacked.segs > 0 || q.lost.segs > 0 || c.renoSacked > 0 || q.retrans.segs > 0 || q.headEverRetrans()
}

// enterFastRecovery is RFC 6675 §5 step 4 / RFC 5681 §3.2 steps 2-4 (Linux
// tcp_enter_recovery): the window is reduced once and PRR starts from the
// window before (RecoverFS, Linux prior_cwnd).
func (c *Conn) enterFastRecovery(now Time) {
	// RFC 5681 §3.2 step 2: FlightSize is the data outstanding, not less
	// what duplicate ACKs or SACK say has arrived.
	flight := c.outstanding()
	c.startUndoEpisode()
	c.recoveryPoint = c.sndMax
	c.rescueDone, c.rescueArmed = false, false
	mss := max(c.sndMSS, 1)
	p := &c.rareW().prr
	p.priorCwnd = max(c.ccw().CongestionWindow()/mss, 1)
	p.cwnd = p.priorCwnd // until an ACK's answer sets it
	p.delivered, p.out = 0, 0
	c.ccw().OnLoss(time.Duration(now), flight)
	c.trace(now, "fast-retransmit")
	if c.recoveryRule() == tahoeRecovery {
		// No fast recovery: retransmit and slow-start from one segment,
		// like a timeout without the backoff.
		c.recovery = recoveryLoss
		c.markAllLost(now, true)
		return
	}
	c.recovery = recoveryFast
	c.disorder = false
	c.counters().FastRecoveries++
	if c.sackOK {
		c.counters().SACKRecoveries++
		if !c.e.prof.RACK {
			c.markHeadLost()
		}
	}
}

// prrUpdate is RFC 6937 §3.2 as Linux's tcp_cwnd_reduction, in segments,
// for an ACK in fast recovery (the one that starts it included) that
// delivered segments and deemed newlyLost lost: while more than ssthresh
// is in flight the sending rate is ssthresh/RecoverFS of what is
// delivered; below, as much as is delivered (the conservative bound),
// plus one when SND.UNA advanced and nothing new was lost (the slow start
// reduction bound, as Linux applies it), up to ssthresh. The first answer
// lets at least the fast retransmission go.
func (c *Conn) prrUpdate(delivered, newlyLost int, unaAdvanced bool) {
	if delivered <= 0 {
		return
	}
	mss := max(c.sndMSS, 1)
	p := &c.rareW().prr
	p.delivered += delivered
	inflight := c.inflightSegs()
	ssthresh := c.ccw().SlowStartThreshold() / mss
	var sndcnt int
	if delta := ssthresh - inflight; delta < 0 {
		sndcnt = (ssthresh*p.delivered+p.priorCwnd-1)/p.priorCwnd - p.out
	} else {
		sndcnt = max(p.delivered-p.out, delivered)
		if unaAdvanced && newlyLost == 0 {
			sndcnt++
		}
		sndcnt = min(delta, sndcnt)
	}
	if p.out == 0 {
		sndcnt = max(sndcnt, 1)
	}
	p.cwnd = inflight + sndcnt
}

// prrRoom is how many segments PRR lets go now.
func (c *Conn) prrRoom() int { return c.rareR().prr.cwnd - c.inflightSegs() }

// prrState is RFC 6937's state for one fast recovery, in segments: made
// with rareState when the first one starts (enterFastRecovery).
type prrState struct {
	priorCwnd int // RecoverFS: cwnd at entry (Linux prior_cwnd)
	delivered int // prr_delivered
	out       int // prr_out
	cwnd      int // the window PRR allows (Linux snd_cwnd in recovery)
}

// tryUndoRecovery runs when the ACK reaches the recovery point (Linux
// tcp_try_undo_recovery): the reduction is undone if every retransmission
// proved unnecessary, and recovery ends (RFC 6582 §3.2 step 5). Linux
// behaviour, with the profile's RACK: without SACK recovery holds until
// something above the recovery point is acknowledged
// (tcp_is_non_sack_preventing_reopen; RFC 6582 §3.2 step 1's concern:
// duplicate ACKs may be echoes of our own retransmissions). It reports
// the hold.
func (c *Conn) tryUndoRecovery(now Time) bool {
	if c.mayUndo() {
		c.undoCwnd(now, false)
	} else if c.rack.reoWndPersist > 0 {
		c.rack.reoWndPersist--
	}
	if !c.sackOK && c.e.prof.RACK && c.sndUna == c.recoveryPoint {
		return true
	}
	if c.undoPossible {
		c.ccw().OnRecoveryEnd(time.Duration(now))
	}
	c.recovery = recoveryNone
	c.trace(now, "recovery-end")
	return false
}

// tryUndoPartial is Linux's tcp_try_undo_partial for a partial ACK: when
// timestamps show the hole was filled by the original, the reordering
// degree rises and, with no retransmission left in flight, the reduction
// is undone. It reports that nothing more may be retransmitted on this
// ACK.
func (c *Conn) tryUndoPartial(now Time) bool {
	if !c.undoPossible || !c.packetDelayed() {
		return false
	}
	c.checkReordering(c.ev.priorUna)
	if c.txq.retrans.segs > 0 {
		return true
	}
	c.undoCwnd(now, true)
	c.tryKeepOpen()
	return false
}

// tryUndoDSACK undoes the reduction once D-SACKs reported every
// retransmission of the episode duplicate (Linux tcp_try_undo_dsack).
func (c *Conn) tryUndoDSACK(now Time) bool {
	if !c.undoPossible || c.undoRetrans != 0 {
		return false
	}
	c.rack.reoWndPersist = min(rackRecoveryThresh, c.rack.reoWndPersist+1)
	c.undoCwnd(now, false)
	return true
}

// mayUndo is Linux's tcp_may_undo: every retransmission was reported
// duplicate, or timestamps show the originals arrived.
func (c *Conn) mayUndo() bool {
	return c.undoPossible && (c.undoRetrans == 0 || c.packetDelayed())
}

// packetDelayed is Linux's tcp_packet_delayed with timestamps (RFC 3522):
// the ACK echoes a TSval older than the episode's first retransmission.
func (c *Conn) packetDelayed() bool {
	return c.tsOK && c.retransTS != 0 && c.ev.tsEcr != 0 && int32(c.ev.tsEcr-c.retransTS) < 0
}

// undoCwnd restores the window from before a reduction shown spurious
// (Linux tcp_undo_cwnd_reduction); with unmark, nothing stays deemed lost.
func (c *Conn) undoCwnd(now Time, unmark bool) {
	if unmark {
		q := &c.txq
		for i := 0; i < q.len(); i++ {
			q.clear(q.at(i), txLost)
		}
	}
	c.ccw().Undo(time.Duration(now))
	c.counters().SpuriousUndos++
	c.undoPossible = false
	c.rack.advanced = true // look at the losses again
	c.trace(now, "undo")
}

// exitRecovery ends fast or loss recovery (RFC 5681 §3.2 step 6).
func (c *Conn) exitRecovery(now Time) {
	if c.recovery == recoveryFast {
		c.ccw().OnRecoveryEnd(time.Duration(now))
	}
	c.recovery = recoveryNone
	c.dupAcks, c.renoSacked = 0, 0
	c.trace(now, "recovery-end")
}

// enterLossRecovery is the RTO response (RFC 6298 §5.4, RFC 5681 §3.1,
// RFC 6675 §5.1): the window collapses and what is outstanding is deemed
// lost.
func (c *Conn) enterLossRecovery(now Time) {
	// A new undo episode unless this timeout repeats one on the same
	// SND.UNA (Linux tcp_enter_loss: icsk_retransmits still 0): the
	// backoff outlives the ACKs that end an episode, the count does not.
	if c.recovery == recoveryNone || c.retries == 1 {
		c.startUndoEpisode()
	}
	c.ccw().OnRTO(time.Duration(now), c.outstanding())
	// A timeout is evidence of loss, not reordering: fall back to the
	// configured threshold (as Linux does in tcp_enter_loss).
	c.dupThresh = int32(min(int(c.dupThresh), c.e.prof.DupThresh))
	c.recovery = recoveryLoss
	c.disorder = false
	c.rtxRunEnd = c.sndUna - 1
	c.recoveryPoint = c.sndMax
	c.markAllLost(now, !c.e.prof.RACK)
	c.dupAcks, c.renoSacked = 0, 0
	c.trace(now, "rto")
}

// markAllLost deems everything outstanding lost after a timeout (Linux
// tcp_timeout_mark_lost): what the peer SACKed stays SACKed unless it
// seems to have reneged (SND.UNA at a SACKed segment) or forget says so
// (RFC 6675 §5.1 clears the scoreboard); with RACK, segments sent less
// than RACK.rtt ago, the first apart, are not lost yet.
func (c *Conn) markAllLost(now Time, forget bool) {
	q := &c.txq
	if q.len() > 0 && q.at(0).flags&txSacked != 0 {
		forget = true
	}
	c.renoSacked = 0 // without SACK, the duplicate ACKs counted so far no longer stand for anything
	if forget {
		c.sb.reset()
	}
	for i := 0; i < q.len(); i++ {
		r := q.at(i)
		r.flags &^= txRelost
		if forget {
			q.clear(r, txSacked)
		}
		if i > 0 && !forget && c.e.prof.RACK && c.rack.valid && c.rack.rtt-now.Sub(r.sentAt) > 0 {
			continue
		}
		c.markLost(r)
	}
	c.lostPoint = c.sndUna
}

func (c *Conn) startUndoEpisode() {
	c.undoMarker = c.sndUna
	// Retransmissions still in flight may be reported duplicate later
	// (Linux tcp_init_undo); -1 says none was made, so that no D-SACK
	// state can undo yet.
	c.undoRetrans = int32(min(c.txq.retrans.segs, math.MaxInt32))
	if c.undoRetrans == 0 {
		c.undoRetrans = -1
	}
	c.undoPossible = true
	c.retransTS = 0
}

// undo restores the window after a timeout shown spurious and ends loss
// recovery.
func (c *Conn) undo(now Time) {
	c.undoCwnd(now, true)
	c.recovery = recoveryNone
	c.recoveryPoint = c.sndUna // the episode is over: later losses start anew
	c.dupAcks, c.renoSacked = 0, 0
}

// eifelCheck is RFC 3522's detection with timestamps in loss recovery: if
// the first ACK of new data after we retransmitted echoes a TSval older
// than that retransmission, the original arrived and the retransmission
// was spurious.
func (c *Conn) eifelCheck(now Time) {
	if c.packetDelayed() && c.undoPossible && c.recovery != recoveryNone {
		c.undo(now)
	}
}

// nextRetransmit chooses what to retransmit (Linux
// tcp_xmit_retransmit_queue, RFC 6675 NextSeg rule 1): the first record
// deemed lost that is neither SACKed nor already retransmitted; with RFC
// 6675's rules (RACK off), once per fast recovery, the rescue
// retransmission of NextSeg rule 4.
func (c *Conn) nextRetransmit() (i int, kind rtxKind, ok bool) {
	switch c.recovery {
	case recoveryNone:
		return 0, 0, false
	case recoveryLoss:
		kind = rtxRTO
	default:
		kind = rtxFast
	}
	q := &c.txq
	if q.retrans.segs < q.lost.segs {
		for i = q.find(c.lostPoint); i < q.len(); i++ {
			r := q.at(i)
			if r.flags&(txLost|txSacked|txRetrans) == txLost {
				c.lostPoint = r.start
				if r.flags&txRelost != 0 && c.recovery == recoveryFast {
					kind = rtxLost
				}
				return i, kind, true
			}
		}
		c.lostPoint = c.sndMax
	}
	// Not in answer to the ACK that started recovery: the tail may still
	// be on its way.
	if c.recovery == recoveryFast && c.sackOK && !c.e.prof.RACK && c.rescueArmed && !c.rescueDone && !c.hasNewData() {
		// RFC 6675 NextSeg rule 4: the highest segment not SACKed, so a
		// lost tail does not wait for the RTO; one already sent again
		// would not recover it.
		for i = q.len() - 1; i >= 0; i-- {
			r := q.at(i)
			if r.flags&txSacked != 0 {
				continue
			}
			if r.flags&(txRetrans|txLost) != 0 {
				break
			}
			return i, rtxRescue, true
		}
	}
	return 0, kind, false
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

// retransmit sends record i again, cut to one segment if it grew larger
// than one (Linux tcp_fragment). A rescue retransmission (RFC 6675 NextSeg
// rule 4) is made once per recovery and is not counted in flight twice.
func (c *Conn) retransmit(now Time, i int, kind rtxKind) {
	q := &c.txq
	r := q.at(i)
	if mss := c.segSize(); r.end.Sub(r.start) > mss && mss > 0 {
		q.split(i, r.start.Add(mss))
		r = q.at(i)
	}
	seq, n, fin, _ := c.rangeToSend(r.start, r.end)
	flags, off := c.resendFlags(seq, n, fin)
	if r.flags&txChunkEnd != 0 && r.start == c.rtxRunEnd && i > 0 && q.at(i-1).flags&txChunkEnd == 0 {
		// Linux retransmits what it sent as one GSO chunk as one again,
		// and a packet of more than one segment carries PSH
		// (tcp_transmit_skb): so does the end of a chunk retransmitted
		// in one go with the segment before it.
		flags |= wire.FlagPSH
	}
	if c.tsOK && c.retransTS == 0 {
		c.retransTS = c.tsNow(now)
	}
	c.emitData(now, seq, flags, off, n)
	c.noteRetransmitted(now, seq, n)
	q.stamp(r, now)
	r.flags = (r.flags | txEverRetrans) &^ txRelost
	c.rtxRunEnd = r.end
	if kind == rtxRescue {
		c.rescueDone = true
	} else {
		q.set(r, txRetrans)
		c.lostPoint = r.end
	}
	c.countRetransmit(now, kind)
	if c.undoRetrans < 0 {
		c.undoRetrans = 0
	}
	c.undoRetrans++
	if c.rttTiming && c.rttSeq.GE(r.start) && c.rttSeq.LT(r.end) {
		c.rttTiming = false // Karn's rule
	}
	if c.rtoAt == noDeadline || (i == 0 && c.recovery == recoveryFast && !c.rack.reoTimer) {
		// Linux tcp_xmit_retransmit_queue: retransmitting the first
		// unacknowledged segment restarts the retransmission timer.
		c.rtoAt = now.Add(c.rtt.backedOff(c.backoff))
	}
}

// noteSentRecord records a newly sent segment [seq, end) (FIN included)
// and whether it carried PSH.
func (c *Conn) noteSentRecord(now Time, seq, end Seq, psh bool) {
	var f uint8
	if psh {
		f = txChunkEnd
	}
	c.txq.push(seq, end, now, f)
}

// noteProbeResent records that the tail loss probe sent [seq, end) again:
// its records were sent now, and twice (Linux's probe sets
// TCPCB_EVER_RETRANS without counting a retransmission in flight).
func (c *Conn) noteProbeResent(now Time, seq, end Seq) {
	q := &c.txq
	for i := q.find(seq); i < q.len() && q.at(i).start.LT(end); i++ {
		r := q.at(i)
		q.stamp(r, now)
		r.flags |= txEverRetrans
	}
}

// chargeSend counts a segment sent in fast recovery (RFC 6937 prr_out).
func (c *Conn) chargeSend() {
	if c.recovery == recoveryFast {
		c.rareW().prr.out++
	}
}

// mayRetransmit says whether congestion control lets a retransmission
// go: in fast recovery PRR's window, else cwnd less the pipe.
func (c *Conn) mayRetransmit() bool {
	if c.recovery == recoveryFast {
		return c.prrRoom() > 0
	}
	return c.cwnd()-c.pipe() > 0
}
