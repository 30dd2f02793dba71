package tcpcore

import (
	"tunstack/wire"
)

// output sends what the state, the windows and the send policy allow:
// new or retransmitted data, a FIN, and a pending ACK if no data segment
// carried it.
func (c *Conn) output(now Time) {
	switch c.state {
	case Established, CloseWait, FinWait1, Closing, LastAck:
		for c.sendOne(now) {
		}
		c.armPersist(now)
	case SynSent, SynReceived, Closed, Listen:
		return
	}
	if c.ackNow {
		c.sendAck(now)
	}
}

// sendOne sends at most one segment and reports whether it did.
func (c *Conn) sendOne(now Time) bool {
	if c.cc != nil && c.e.prof.SlowStartAfterIdle && c.sndUna == c.sndMax &&
		c.lastSend != 0 && now.Sub(c.lastSend) > c.rtt.rto {
		// RFC 5681 §4.1: restart from at most the initial window after an
		// idle period longer than the RTO.
		c.cc.OnIdleRestart(now.Sub(0))
		c.lastSend = now
	}
	off := c.sndNxt.Sub(c.sndBufSeq) // offset of SND.NXT in the send buffer
	avail := c.sndBuf.Len() - off    // bytes written, never sent (or rewound)
	if avail < 0 {
		avail = 0 // SND.NXT is past the FIN
	}
	if c.recovery != recoveryNone {
		if seq, n, fin, kind, ok := c.nextRetransmit(); ok {
			if !c.mayRetransmit() {
				return false
			}
			c.fastRetransmitPending = false
			c.retransmit(now, seq, n, fin, kind)
			c.chargeSend(n)
			return true
		}
	}
	wndLeft := c.sndUna.Add(c.sndWnd).Sub(c.sndNxt)
	// The congestion limit: cwnd less what is in the network (RFC 6675
	// pipe; SACKed or duplicate-ACKed segments count as delivered, which is
	// also RFC 3042's limited transmit), or in fast recovery what PRR allows.
	cwndLeft := c.cc.CongestionWindow() - c.pipe()
	if c.recovery == recoveryFast {
		cwndLeft = c.sndAllowance
	}
	mss := c.segSize()
	n := min(avail, mss, wndLeft, cwndLeft)
	if n < 0 {
		n = 0
	}
	finReady := c.finQueued && c.sndNxt.Add(n) == c.finSeq()
	if n < mss && n > 0 {
		if n < avail {
			// Window or cwnd limited to less than a segment. RFC 1122
			// §4.2.3.4 sender SWS avoidance: send only if it is at least
			// half the largest window the peer offered; otherwise wait
			// for the window to open (the persist timer overrides).
			if n < c.maxSndWnd/2 || n < cwndLeft && cwndLeft < mss {
				return false
			}
		} else if !c.finQueued && c.cork && !c.corkExpired {
			// TCP_CORK holds a partial segment, for at most CorkLimit.
			if c.corkAt == noDeadline {
				c.corkAt = now.Add(c.e.prof.CorkLimit)
			}
			return false
		} else if !c.finQueued && !c.cork && !c.noDelay && c.sndSml.GT(c.sndUna) {
			// RFC 896 / RFC 1122 §4.2.3.4 Nagle, in Minshall's form as
			// Linux has it: hold a partial segment while an earlier partial
			// segment is unacknowledged.
			return false
		}
	}
	// A FIN occupies one sequence number and needs room in the window
	// (Linux tcp_snd_wnd_test counts it).
	fin := finReady && wndLeft > n
	if n == 0 && !fin {
		return false
	}
	c.sendData(now, n, mss, fin)
	c.chargeSend(n)
	if n < mss {
		c.corkExpired, c.corkAt = false, noDeadline
	}
	return true
}

// mayRetransmit says whether congestion control lets a retransmission go.
func (c *Conn) mayRetransmit() bool {
	switch {
	case c.fastRetransmitPending:
		return true // RFC 5681 §3.2 step 2: fast retransmit goes at once
	case c.recovery == recoveryFast:
		return c.sndAllowance > 0
	default:
		return c.cc.CongestionWindow()-c.pipe() > 0
	}
}

// chargeSend counts bytes sent during fast recovery against PRR.
func (c *Conn) chargeSend(n int) {
	if c.recovery == recoveryFast {
		c.sndAllowance -= max(n, 1)
		c.prrOut += n
	}
}

// setDSACK arranges for the next ACK to report [start, end) as a
// duplicate (RFC 2883), when D-SACK is on and SACK was negotiated.
func (c *Conn) setDSACK(start, end Seq) {
	if !c.sackOK || !c.e.prof.DSACK || !start.LT(end) {
		return
	}
	c.dsackPending, c.dsackRange = true, seqRange{start, end}
}

// sendData transmits n new bytes from SND.NXT, with FIN if fin; mss is the
// full segment size (segSize) the caller measured n against. SND.NXT is
// SND.MAX here: nothing rewinds it, and every retransmission goes through
// retransmit (or the SYN and probe paths), each counted by its kind.
func (c *Conn) sendData(now Time, n, mss int, fin bool) {
	seq := c.sndNxt
	off := seq.Sub(c.sndBufSeq)
	flags := wire.FlagACK
	if c.segsSincePush++; c.segsSincePush == 1 {
		// A new GSO-sized chunk: size it once, at its first segment, as
		// Linux sizes each skb when it builds it.
		c.pushEvery = c.gsoChunkSegments()
	}
	if n > 0 && (off+n == c.sndBuf.Len() || (c.pushEvery > 0 && c.segsSincePush >= c.pushEvery)) {
		// PSH on the segment that empties the send queue, and (Linux) at
		// the end of each GSO-sized chunk.
		flags |= wire.FlagPSH
		c.segsSincePush = 0
	}
	if fin {
		flags |= wire.FlagFIN
	}
	c.emitData(now, seq, flags, off, n)
	c.sndNxt = seq.Add(n)
	if fin {
		c.sndNxt = c.sndNxt.Add(1)
		c.finSent = true
	}
	if c.sndNxt.GT(c.sndMax) {
		c.sndMax = c.sndNxt
		c.noteFlight()
	}
	if n < mss {
		c.sndSml = c.sndNxt
	}
	if !c.rttTiming && n > 0 {
		c.rttTiming, c.rttSeq, c.rttTime = true, seq, now
	}
	if c.rtoAt == noDeadline {
		// RFC 6298 §5.1: start the timer when sending data with none running.
		c.rtoAt = now.Add(c.rtt.backedOff(c.backoff))
	}
	c.armTLP(now)
	c.persistAt = noDeadline
	c.lastSend = now
}

// emitData builds a data (or FIN) segment carrying the current ACK.
func (c *Conn) emitData(now Time, seq Seq, flags uint8, off, n int) {
	var o wire.TCPOptions
	c.ackOptions(now, &o)
	c.emit(now, seq, c.rcvNxt, flags, c.advertiseWindow(), &o, off, n)
}

// sendAck sends a segment with no data that carries our ACK and window.
func (c *Conn) sendAck(now Time) {
	var o wire.TCPOptions
	c.ackOptions(now, &o)
	c.emit(now, c.sndNxt, c.rcvNxt, wire.FlagACK, c.advertiseWindow(), &o, 0, 0)
}

// sendOutOfWindowAck answers an unacceptable segment with an ACK (RFC
// 9293 §3.10.7.4), rate limited like Linux's tcp_invalid_ratelimit so a
// peer cannot make us send without bound.
func (c *Conn) sendOutOfWindowAck(now Time) {
	if c.lastOOWAck != 0 && now.Sub(c.lastOOWAck) < c.e.prof.InvalidRateLimit {
		return
	}
	c.lastOOWAck = now
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
		c.info.DSACKsSent++
		if !c.ooo.empty() {
			c.sackBlocks(o, maxBlocks)
		}
		return
	}
	if c.sackOK && !c.ooo.empty() {
		c.sackBlocks(o, maxBlocks)
	}
}

// sackBlocks reports the out-of-order ranges, the most recently changed
// first (RFC 2018 §4), never one the cumulative ACK covers.
func (c *Conn) sackBlocks(o *wire.TCPOptions, maxBlocks int) {
	bl := c.ooo.blocks
	r := c.ooo.recent
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

// emit builds and queues one segment. Payload, if any, comes from the send
// buffer at offset off.
func (c *Conn) emit(now Time, seq, ack Seq, flags uint8, wnd uint16, o *wire.TCPOptions, off, n int) {
	e := c.e
	p := e.newPacket(c.key.local, c.key.remote)
	b := p.buf[Headroom:]
	optLen := 0
	if o != nil {
		optLen = wire.EncodeTCPOptions(b[wire.TCPHeaderLen:], o)
	}
	wire.PutTCPHeader(b, wire.TCPFields{
		SrcPort: c.key.local.Port(), DstPort: c.key.remote.Port(),
		Seq: uint32(seq), Ack: uint32(ack), Flags: flags, Window: wnd,
	}, optLen)
	hl := wire.TCPHeaderLen + optLen
	if n > 0 {
		c.sndBuf.peek(b[hl:hl+n], off)
	}
	e.finishPacket(p, hl+n)
	c.info.SegsOut++
	if flags&wire.FlagACK != 0 {
		c.ackSent(ack)
	}
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

// advertiseWindow returns the window field for a non-SYN segment and moves
// the advertised right edge (RCV.NXT + RCV.WND), as Linux's
// tcp_select_window does:
//
//   - The edge never moves left (RFC 9293 §3.8.6.2.2): what was offered
//     stays offered until the peer uses it.
//   - It moves right only to space the buffer can take (offerWindow) and
//     only by a worthwhile amount, min(buffer/2, MSS) (RFC 1122 §4.2.3.3,
//     receiver SWS avoidance).
//   - The field is in units of the window scale. It is rounded up, so a
//     small window is not scaled away to zero (Linux's ALIGN), unless the
//     rounded-up edge would promise bytes beyond the buffer; then down.
//
// So a receiver whose application stops reading offers less and less, then
// 0 once the peer has filled what was promised, and holds 0 through the
// peer's zero-window probes (TestFullBufferOffersZeroWindow).
func (c *Conn) advertiseWindow() uint16 {
	if c.rcvAdv.LT(c.rcvNxt) {
		// The peer sent past the edge we offered and we had room for it.
		c.rcvAdv = c.rcvNxt
	}
	cur := c.rcvAdv.Sub(c.rcvNxt)
	wnd := c.offerWindow()
	if wnd < cur || wnd-cur < min(c.rcvBufMax/2, c.rcvMSS) {
		wnd = cur
	}
	unit := 1 << c.rcvWscale
	scaled := (wnd + unit - 1) >> c.rcvWscale
	if scaled<<c.rcvWscale > c.rcvFree() {
		scaled = wnd >> c.rcvWscale
	}
	scaled = min(scaled, 65535)
	if edge := c.rcvNxt.Add(scaled << c.rcvWscale); edge.GT(c.rcvAdv) {
		c.rcvAdv = edge
	}
	return uint16(scaled)
}

// rcvFree is the room left in the receive buffer past RCV.NXT: the buffer
// less the in-order bytes the application has not read. Out-of-order bytes
// sit in that room, at their offsets, so it is the most any window may
// reach. Reads move its end right; only a smaller SO_RCVBUF moves it left.
func (c *Conn) rcvFree() int {
	return max(c.rcvBufMax-c.rcvBuf.Len(), 0)
}

// offerWindow is the window the free space justifies now, before the rule
// that an offered window never shrinks (Linux __tcp_select_window). Once
// the free space is under half the buffer it is rounded down to the window
// scale's unit, and it is 0 if that leaves less than one MSS or less than a
// sixteenth of the buffer: a receiver that stops reading closes its window
// rather than offer slivers (RFC 1122 §4.2.3.3, RFC 9293 §3.8.6.2.2). The
// window also grows no faster than rcvSsthresh allows.
func (c *Conn) offerWindow() int {
	free, full := c.rcvFree(), c.rcvBufMax
	if free < full/2 {
		free &^= 1<<c.rcvWscale - 1
		if free < full/16 || free < min(c.rcvMSS, full) {
			return 0
		}
	}
	return min(free, c.rcvSsthresh)
}

// afterRead sends an ACK when reading made one worth sending (Linux
// tcp_cleanup_rbuf): a window update when the window we advertised had
// fallen to half the buffer or less and can now at least double, and the
// every-second-segment ACK that ackSecondSegment held back while the
// window was not growing, now that reading has grown it. Without the
// latter, a reader that lags a little behind the segments leaves every
// such ACK to the delayed-ACK timer: TestHTTPBulkLoss5Percent took 448 s
// instead of 46 s.
func (c *Conn) afterRead(now Time) {
	switch c.state {
	case Established, FinWait1, FinWait2:
	default:
		return
	}
	cur := c.rcvAdv.Sub(c.rcvNxt)
	if cur < 0 {
		cur = 0
	}
	c.autotune(now)
	newWnd := c.offerWindow()
	heldBack := c.delackAt != noDeadline && c.unackedBytes >= 2*c.rcvMSS
	if heldBack || 2*cur <= c.rcvBufMax && newWnd > 0 && newWnd >= 2*cur && newWnd-cur >= min(c.rcvBufMax/2, c.rcvMSS) {
		c.ackNow = true
		c.output(now)
		c.updateDeadline()
	}
}

// autotune grows the receive buffer with what the application actually
// consumes per round trip, as Linux's tcp_rcv_space_adjust does (dynamic
// right-sizing): a window of twice the bytes read in one RTT lets the
// sender keep a full pipe while the reader keeps up. It never shrinks,
// stops at the profile's RcvBufMax, and is off once the application set
// SO_RCVBUF.
func (c *Conn) autotune(now Time) {
	if c.rcvBufLocked {
		return
	}
	rtt := c.rcvRTT
	if c.rtt.hasSample && (rtt == 0 || c.rtt.srtt < rtt) {
		rtt = c.rtt.srtt
	}
	if rtt == 0 {
		return
	}
	if c.rcvSpaceAt == 0 {
		c.rcvSpaceAt = now
		return
	}
	if now.Sub(c.rcvSpaceAt) < rtt {
		return
	}
	copied := c.rcvSpaceBytes
	c.rcvSpaceAt, c.rcvSpaceBytes = now, 0
	if copied <= c.rcvSpace {
		return
	}
	c.rcvSpace = copied
	want := min(2*copied+16*c.rcvMSS, c.e.prof.RcvBufMax)
	if want > c.rcvBufMax {
		c.rcvBufMax = want // the ring follows as data arrives
	}
}

// expandSndBuf grows the send buffer with the congestion window (Linux
// tcp_sndbuf_expand): twice cwnd keeps a full window in flight while the
// next one is written. Grow-only, bounded by the profile's SndBufMax, and
// off once the application set SO_SNDBUF.
func (c *Conn) expandSndBuf() {
	if c.sndBufLocked {
		return
	}
	if want := min(2*c.cc.CongestionWindow(), c.e.prof.SndBufMax); want > c.sndBufMax {
		c.sndBufMax = want
		c.wake() // more room to write
	}
}

// growRcvSsthresh raises the cap on our advertised window by two segments
// for each data segment of useful size (Linux tcp_grow_window), so the
// window opens with the flow rather than all at once.
func (c *Conn) growRcvSsthresh(n int) {
	const minGrowSegment = 128 // bytes; Linux ignores smaller segments
	if n >= minGrowSegment && c.rcvSsthresh < c.rcvBufMax {
		c.rcvSsthresh = min(c.rcvSsthresh+2*c.advertisedMSS(), c.rcvBufMax)
	}
}

// segSize is the payload that fits in the next segment: the send MSS (the
// peer's MSS less the timestamp option) less the SACK blocks the segment
// will carry. RFC 6691: options count against the MSS; Linux's
// tcp_current_mss does the same, so data segments that carry SACK or
// D-SACK blocks shrink rather than overflow the path.
//
// Like Linux (tcp_bound_to_half_wnd), a segment is also no larger than
// half the largest window the peer has offered, so that a peer with a
// small window gets at least two segments per window and can ACK every
// other one; it is never cut below 68 bytes less the TCP header.
func (c *Conn) segSize() int {
	n := c.sndMSS
	if c.sackOK {
		blocks := len(c.ooo.blocks)
		if c.dsackPending {
			blocks++
		}
		if blocks > 0 {
			maxBlocks := wire.MaxSACKBlocks
			if c.tsOK {
				maxBlocks = 3
			}
			n -= 4 + 8*min(blocks, maxBlocks)
		}
	}
	cutoff := c.maxSndWnd
	if cutoff > 536 {
		cutoff /= 2
	}
	if cutoff > 0 && n > cutoff {
		hdr := 20 // TCP header; timestamps add 12
		if c.tsOK {
			hdr += 12
		}
		n = max(cutoff, 68-hdr) // Linux: 68 - tcp_header_len
	}
	return n
}

// gsoChunkSegments is how many segments Linux puts in one TSO/GSO chunk
// at the connection's present rate (tcp_tso_autosize), and so how often
// it sets PSH in a long write: about a millisecond of data at the pacing
// rate (sk_pacing_shift 10), which is cwnd/SRTT times 2 in slow start and
// 1.2 after (tcp_update_pacing_rate), plus up to a whole 64 KiB chunk
// when the minimum RTT is below half a millisecond (tcp_tso_rtt_log 9);
// never fewer than PushEverySegments (tcp_min_tso_segs) nor more than 64
// KiB. On a 10 ms path with ten segments in flight that is two segments,
// which is what packetdrill scripts see; on a TUN next door it is 44.
func (c *Conn) gsoChunkSegments() int {
	const gsoMaxBytes = 65536
	minSegs := c.e.prof.PushEverySegments
	if minSegs == 0 || !c.rtt.hasSample || c.rtt.srtt <= 0 || c.cc == nil {
		return minSegs
	}
	cwnd := c.cc.CongestionWindow()
	ratio := 1.2
	if cwnd < c.cc.SlowStartThreshold()/2 {
		ratio = 2
	}
	rate := float64(max(cwnd, c.outstanding())) / c.rtt.srtt.Seconds() * ratio
	bytes := int(rate) >> 10
	if r := c.rtt.minRTT.Microseconds() >> 9; r < 32 {
		bytes += gsoMaxBytes >> r
	}
	bytes = min(bytes, gsoMaxBytes)
	return max(bytes/max(c.sndMSS, 1), minSegs)
}
