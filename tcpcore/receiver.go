package tcpcore

import (
	"time"

	"tunstack/wire"
)

// receiver is the receive half of a connection (RFC 9293 §3.3.1, Figure
// 4): the receive sequence space, the receive buffer with its reassembly,
// the window we advertise and its auto-tuning, and the ACK policy's state
// (receiver_ack.go). Conn embeds it.
//
// Invariants:
//   - rcvBuf holds the rcvBuf.Len() in-order bytes below RCV.NXT that the
//     application has not read, then out-of-order bytes at their offsets
//     beyond; ooo names the out-of-order ranges, all above RCV.NXT.
//   - rcvAdv, the right edge we advertised, never moves left while the
//     peer has not used it, and never lies beyond the buffer's end, RCV.NXT
//   - rcvFree() (advertiseWindow).
//   - rcvSsthresh <= rcvBufMax.
type receiver struct {
	// The fields are ordered for packing (conn.go): the 4-byte ones in
	// pairs, the flags together.
	irs           Seq
	rcvNxt        Seq
	rcvAdv        Seq  // right edge of the window we advertised (never moves left)
	finPendingSeq Seq  // where a FIN beyond a gap is (finPending)
	rcvSsthresh   int  // cap on the advertised window, grown as data arrives (Linux rcv_ssthresh)
	rcvBuf        ring // in-order bytes not yet read, then out-of-order bytes by offset
	rcvBufMax     int  // SO_RCVBUF, bytes
	rcvMSS        int  // estimate of the peer's segment size, bytes (for ACK pacing)

	rcvBufLocked bool // SO_RCVBUF set by the application: no auto-tuning
	finRcvd      bool // peer's FIN consumed (rcvNxt is past it)
	finPending   bool // a FIN arrived beyond a gap
	rdShut       bool // application will not read any more
	ackNow       bool // send an ACK at the next output (receiver_ack.go)
	dsackPending bool // the next ACK reports a duplicate (RFC 2883)
	pingpong     bool // delayed-ACK mode: quick ACKs suspended (TCP_QUICKACK 0, Linux pingpong)
	ackBatched   bool // an ACK for in-order data is owed at the end of the input batch

	// Auto-tuning (Linux tcp_rcv_space_adjust).
	rcvSpaceAt    Time          // start of the current auto-tuning measurement
	rcvSpaceBytes int           // bytes read by the application since rcvSpaceAt
	rcvSpace      int           // most bytes read in one RTT so far
	rcvRTT        time.Duration // receiver-side RTT estimate (timestamps)
	lastEcr       uint32        // TSecr of the last segment (receiver RTT samples)
	lastAckSent   Seq           // RFC 7323 §4.3 Last.ACK.sent

	// ACK policy (receiver_ack.go).
	dsackRange   seqRange      // the duplicate to report
	unackedBytes int32         // in-order bytes received since our last ACK (at most a receive window)
	quickAcks    int32         // remaining segments to ACK at once (Linux quick-ACK mode)
	lastOOWAck   Time          // last challenge/out-of-window ACK (rate limit)
	ackBatchedAt Time          // when it became owed
	ato          time.Duration // adaptive delayed-ACK timeout (Linux icsk_ack.ato)
	lastDataRecv Time          // arrival of the last in-order data segment
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
	c.rcvBuf.ensure(c.rcvBuf.Len()+off+len(data), c.rcvRingLimit(), &c.e.rings)
	c.rcvMSS = max(c.rcvMSS, min(len(s.payload), c.linkMSS))
	if off > 0 {
		c.queueOutOfOrder(seq, off, data)
		return
	}
	c.deliverInOrder(data)
	c.updateATO(now)
	c.growRcvSsthresh(len(s.payload))
	if s.has(wire.FlagFIN) && c.e.prof.PingPongOnFin && c.state == Established {
		// Linux tcp_fin: the peer is done sending, so ACKs wait on the bet
		// that our answer will carry them (delayed-ACK mode). Entered here,
		// before this data's ACK is decided, as Linux decides it after
		// tcp_fin; receiveFin does the same for a bare FIN.
		c.pingpong = true
	}
	c.scheduleAck(now, len(data))
	if c.finPending && c.finPendingSeq == c.rcvNxt {
		c.receiveFin(now, c.finPendingSeq)
	}
	c.wake()
}

// oooEmpty reports whether no out-of-order data is held (rareState.ooo).
func (c *Conn) oooEmpty() bool { return c.rare == nil || c.rare.ooo.empty() }

// rcvRewind moves an emptied receive ring's head back to the start of its
// buffer, so that the data arriving next is written where the data just
// read was, memory the cache still holds, instead of further on around a
// buffer of megabytes that the cache cannot hold. Not while data waits out
// of order: its place is counted from the head. (Peek lends only unread
// bytes, so no span is out while the ring is empty.)
func (c *Conn) rcvRewind() {
	if c.rcvBuf.n == 0 && c.oooEmpty() {
		c.rcvBuf.head = 0
	}
}

// queueOutOfOrder parks data that starts off bytes beyond RCV.NXT at its
// place in the buffer and remembers the range (reassembly.go), or reports
// it as a duplicate (RFC 2883 §4.1.2). Either way the segment is
// acknowledged at once (RFC 5681 §4.2).
func (c *Conn) queueOutOfOrder(seq Seq, off int, data []byte) {
	c.ackNow = true
	r := c.rareW()
	r.rcvOOOPack++ // Linux tcp_data_queue_ofo counts duplicates too
	if r.ooo.contains(seq, seq.Add(len(data))) {
		c.setDSACK(seq, seq.Add(len(data)))
		return
	}
	if r.ooo.add(seq, seq.Add(len(data)), c.e.prof.OOOMaxSegments) {
		c.rcvBuf.writeAt(data, c.rcvBuf.Len()+off)
		r.OutOfOrderSegs++
	}
}

// deliverInOrder appends data at RCV.NXT and takes in the out-of-order
// bytes it joins up with; a segment that fills a gap is acknowledged at
// once (RFC 5681 §4.2). Data arriving after shutdown(SHUT_RD) is queued
// too: Linux behaviour (tcp_data_queue does not look at the receive
// shutdown), so a read returns it before reporting end of file.
func (c *Conn) deliverInOrder(data []byte) {
	c.rcvBuf.write(data)
	c.rcvNxt = c.rcvNxt.Add(len(data))
	c.info.BytesReceived += uint64(len(data))
	if c.oooEmpty() {
		return
	}
	nxt := c.rare.ooo.advance(c.rcvNxt)
	if c.finPending && nxt.GT(c.finPendingSeq) {
		nxt = c.finPendingSeq // the FIN's block holds no byte (receiveFin)
	}
	if filled := nxt.Sub(c.rcvNxt); filled > 0 {
		c.rcvBuf.extend(filled)
		c.info.BytesReceived += uint64(filled)
		c.rcvNxt = nxt
	}
	c.ackNow = true
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
			// A FIN beyond a gap is an out-of-order segment: held, and
			// acknowledged at once (RFC 5681 §4.2) with a SACK block that
			// covers it, as Linux's out-of-order queue holds the FIN's
			// sequence number with the data before it (tcp_data_queue_ofo).
			// Its place in the reassembly list is no byte: deliverInOrder
			// stops short of it, and the FIN is taken when RCV.NXT gets
			// there.
			c.finPending, c.finPendingSeq = true, seq
			c.rareW().ooo.add(seq, seq.Add(1), c.e.prof.OOOMaxSegments)
			c.ackNow = true
		}
		return
	}
	c.finPending = false
	c.finRcvd = true
	c.rcvNxt = c.rcvNxt.Add(1)
	switch {
	case c.state == Established && c.e.prof.PingPongOnFin:
		// Linux tcp_fin, then __tcp_ack_snd_check: the FIN puts the
		// receiver in delayed-ACK (pingpong) mode (for a FIN with data,
		// receiveData did), so its ACK is decided as data's is, quick-ACK
		// mode aside: the delayed-ACK timer, unless an ACK is owed at once
		// anyway. The timer's timeout is the ATO: 0 until data has been
		// received, and Linux's timer then fires at the next tick, so the
		// ACK is sent at once here; 40 ms or more after, and the
		// application's close or answer, coming sooner, carries the ACK
		// (conformance/scripts/close/bare-fin-after-data-ack-delayed.pkt).
		c.pingpong = true
		if c.ato == 0 {
			c.ackNow = true
		} else if !c.ackNow {
			c.scheduleAck(now, 0)
		}
	case !c.pingpong || c.delackAt == noDeadline || c.ackNow:
		// In delayed-ACK mode (TCP_QUICKACK 0) a delayed ACK already
		// scheduled stands; otherwise the FIN is ACKed at once.
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
//
// Like Linux's __tcp_select_window, it also ends quick-ACK mode when the
// free space is under half the buffer: a receiver that falls behind stops
// acknowledging every segment at once, its ACKs then carrying the window
// reading reopens rather than the one that is closing.
func (c *Conn) offerWindow() int {
	free, full := c.rcvFree(), c.rcvBufMax
	if free < full/2 {
		c.quickAcks = 0
		free &^= 1<<c.rcvWscale - 1
		if free < full/16 || free < min(c.rcvMSS, full) {
			return 0
		}
	}
	return min(free, c.rcvSsthresh)
}

// afterRead follows the application's taking n bytes off the receive
// buffer (Read, or Consume after Peek): an emptied ring starts again at
// its buffer's start (rcvRewind), the bytes count for receive-buffer
// autotuning, and an ACK goes when reading made one worth sending (Linux
// tcp_cleanup_rbuf): a window update when the window we advertised had
// fallen to half the buffer or less and can now at least double, and the
// every-second-segment ACK that ackSecondSegment held back while the
// window was not growing, now that reading has grown it. Without the
// latter, a reader that lags a little behind the segments leaves every
// such ACK to the delayed-ACK timer: TestHTTPBulkLoss5Percent took 448 s
// instead of 46 s.
func (c *Conn) afterRead(now Time, n int) {
	c.rcvRewind()
	c.rcvSpaceBytes += n
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
	heldBack := c.delackAt != noDeadline && int(c.unackedBytes) >= 2*c.rcvMSS
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

// rcvRingLimit is the capacity the receive ring may double up to: the
// profile's maximum while auto-tuning may raise rcvBufMax to it, the
// application's SO_RCVBUF once set. The window (rcvFree) keeps what the
// ring holds within rcvBufMax whatever its capacity.
func (c *Conn) rcvRingLimit() int {
	if c.rcvBufLocked {
		return c.rcvBufMax
	}
	return max(c.rcvBufMax, c.e.prof.RcvBufMax)
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
