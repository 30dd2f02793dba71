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
		// Linux builds each TSO packet within one transmission pass
		// (tcp_write_xmit): a packet never spans two.
		c.segsSincePush = 0
		for c.sendRun(now) || c.sendOne(now) {
		}
		if c.frtoNewData {
			c.frtoSentNewData(now) // frto.go
		}
		c.segsSincePush = 0
		c.splitUnitAt(c.sndNxt) // the send stopped here (sndbuf.go)
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
	off := c.sndNxt.Sub(c.sndBufSeq) // offset of SND.NXT in the send buffer
	avail := c.sndBuf.Len() - off    // bytes written, never sent (or rewound)
	if avail < 0 {
		avail = 0 // SND.NXT is past the FIN
	}
	if avail > 0 {
		c.idleRestart(now)
	}
	// F-RTO's step 2b answers this ACK with new data only (frto.go).
	if c.recovery != recoveryNone && !c.frtoNewData {
		if i, kind, ok := c.nextRetransmit(); ok {
			if !c.mayRetransmit() {
				return false
			}
			c.retransmit(now, i, kind)
			c.chargeSend()
			return true
		}
	}
	wndLeft := c.sndUna.Add(c.sndWnd).Sub(c.sndNxt)
	// The congestion limit: cwnd less what is in the network (RFC 6675
	// pipe; SACKed or duplicate-ACKed segments count as delivered, which is
	// also RFC 3042's limited transmit), or in fast recovery what PRR allows
	// (RFC 6937), in whole segments as Linux counts its window.
	cwndLeft := c.cwnd() - c.pipe()
	if c.recovery == recoveryFast {
		cwndLeft = max(c.prrRoom(), 0) * c.sndMSS
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
		} else if !c.finQueued && (c.cork || c.writeMore) && !c.corkExpired && !c.pushQueued {
			// TCP_CORK holds a partial segment, for at most CorkLimit;
			// so does a write with MSG_MORE, for that write only
			// (Linux's tcp_push corks the push of a MSG_MORE write).
			// Setting TCP_NODELAY pushes what was queued before it
			// (pushQueued).
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
	// (RFC 9293 §3.8.6: nothing beyond it is sent; Linux's
	// tcp_snd_wnd_test counts it) when it goes alone or on a chunk of one
	// segment. Linux behaviour: the window test of a chunk of several
	// segments (a TSO buffer, which tcp_grow_skb fills from the following
	// ones) looks at its first segment only, so a FIN on the last segment
	// of such a chunk goes with it even when the data reaches the window's
	// edge. Profiles without GSO chunks (PushEverySegments 0) keep the
	// RFC rule.
	fin := finReady && (wndLeft > n || n > 0 && c.segsSincePush > 0 && c.e.prof.PushEverySegments > 0)
	if n == 0 && !fin {
		return false
	}
	c.sendData(now, n, mss, fin, cwndLeft)
	c.chargeSend()
	if n < mss {
		c.corkExpired, c.corkAt = false, noDeadline
	}
	return true
}

// sendRun sends at once the full-sized segments that continue the packet
// the previous segment of this pass opened (an open chunk, emitChunk), up
// to the segment before the one that ends the packet or the send queue,
// and reports whether it sent any. Each is the segment sendOne would send
// next, with the same header but for its sequence number and the same
// bookkeeping (the retransmission queue's record, the delivery record,
// the counters), so the wire and the state are what sendOne's would be,
// one segment at a time; what is the same for every segment of the run
// (the options, the window, the timers) is worked out once, as Linux
// builds one TSO packet for many segments (tcp_write_xmit). Anything
// unusual (recovery, a FIN, a D-SACK to report, a segment of another size,
// room for less than a full segment) leaves the segment to sendOne.
func (c *Conn) sendRun(now Time) bool {
	ch := &c.e.chunk
	p := ch.pkt
	if p == nil || ch.conn != c || ch.next != c.sndNxt || c.sndNxt != c.sndMax || c.segsSincePush == 0 ||
		c.pushEvery > 0 && c.segsSincePush+1 >= c.pushEvery ||
		c.recovery != recoveryNone || c.finQueued || c.dsackPending || !ch.hasOpts {
		return false
	}
	mss := c.segSize()
	if mss != p.segSize || mss <= 0 {
		return false
	}
	off := c.sndNxt.Sub(c.sndBufSeq)
	avail := c.sndBuf.Len() - off
	wndLeft := c.sndUna.Add(c.sndWnd).Sub(c.sndNxt)
	cwndLeft := c.cwnd() - c.pipe()
	// Full segments, none of them the one that empties the send queue
	// (PSH) or that ends the packet (pushEvery), within the chunk's
	// bounds.
	k := min((avail-1)/mss, wndLeft/mss, cwndLeft/mss, MaxChunkSegments-p.segs,
		(MaxChunkBytes-(p.end-Headroom+p.TailLen()))/mss)
	if c.pushEvery > 0 {
		k = min(k, c.pushEvery-c.segsSincePush-1)
	}
	if k < 1 {
		return false
	}
	var o wire.TCPOptions
	c.ackOptions(now, &o) // no D-SACK pending: nothing to consume
	if c.rcvNxt != ch.ack || c.advertiseWindow() != ch.wnd || !o.EncodesAs(&ch.opts) {
		return false
	}
	n := k * mss
	if p.owner == nil {
		c.sndBuf.peek(p.buf[p.end:p.end+n], off)
		p.end += n
	} else if !p.appendTail(c.sndBuf.spans(off, n)) {
		return false
	}
	p.segs += k
	ch.next = ch.next.Add(n)
	c.e.stats.SegsOut += uint64(k)
	c.emittedSegs(now, ch.ack, wire.FlagACK, k, n)
	c.segsSincePush += k
	seq := c.sndNxt
	for end := seq; k > 0; k-- {
		start := end
		end = end.Add(mss)
		c.noteSent(now, end)
		c.noteSentRecord(now, start, end, false)
	}
	c.sndNxt = c.sndNxt.Add(n)
	c.sndMax = c.sndNxt
	c.noteFlight()
	c.timeSend(now, seq)
	return true
}

// sendData transmits n new bytes from SND.NXT, with FIN if fin; mss is the
// full segment size (segSize) the caller measured n against, and room what
// the congestion window lets go now, this segment included (0 for a probe,
// which goes whatever the window says). SND.NXT is SND.MAX here: nothing
// rewinds it, and every retransmission goes through retransmit (or the SYN
// and probe paths), each counted by its kind.
func (c *Conn) sendData(now Time, n, mss int, fin bool, room int) {
	seq := c.sndNxt
	off := seq.Sub(c.sndBufSeq)
	flags := wire.FlagACK
	endsPacket := false
	if n > 0 {
		if c.segsSincePush == 0 {
			// A new packet: size it once, at its first segment, as
			// Linux sizes each TSO packet when it builds it.
			c.pushEvery = c.packetSegments(mss, room)
		}
		c.segsSincePush++
		endsPacket = c.pushEvery > 0 && c.segsSincePush >= c.pushEvery
	}
	if n > 0 && (off+n == c.sndBuf.Len() || endsPacket && c.segsSincePush > 1) {
		// PSH on the segment that empties the send queue, and on the
		// last segment of a packet of several (Linux tcp_transmit_skb
		// sets it on every TSO packet); a packet of one segment that
		// the window or cwnd cuts short has none.
		flags |= wire.FlagPSH
		endsPacket = true
	}
	if endsPacket {
		c.segsSincePush = 0
		c.splitUnitAt(seq.Add(n)) // a packet ends here (sndbuf.go)
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
		c.noteSent(now, c.sndNxt)
		c.noteSentRecord(now, seq, c.sndNxt, flags&wire.FlagPSH != 0)
	}
	if n < mss {
		c.sndSml = c.sndNxt
	}
	if n > 0 {
		c.timeSend(now, seq)
	} else {
		c.armSendTimers(now)
	}
}

// timeSend starts an RTT measurement at seq if none is running (one
// segment timed at a time, RFC 6298 §3), then arms the send timers: data
// that starts at seq has just gone out.
func (c *Conn) timeSend(now Time, seq Seq) {
	if !c.rttTiming {
		c.rttTiming, c.rttSeq, c.rttTime = true, seq, now
	}
	c.armSendTimers(now)
}

// armSendTimers arms what a segment of new sequence space sets off: the
// retransmission timer if none runs, the tail loss probe; the persist
// timer stops, data being in flight.
func (c *Conn) armSendTimers(now Time) {
	if c.rtoAt == noDeadline {
		// RFC 6298 §5.1: start the timer when sending data with none running.
		c.rtoAt = now.Add(c.rtt.backedOff(c.backoff))
	}
	c.armTLP(now)
	c.persistAt = noDeadline
}

// emitData builds a data (or FIN) segment carrying the current ACK.
func (c *Conn) emitData(now Time, seq Seq, flags uint8, off, n int) {
	var o wire.TCPOptions
	c.ackOptions(now, &o)
	c.emit(now, seq, c.rcvNxt, flags, c.advertiseWindow(), &o, off, n)
}

// emit builds and queues one segment. Payload, if any, comes from the send
// buffer at offset off. With Config.SegmentOffload a data segment that
// continues the chunk the previous one opened goes into that packet
// instead (emitChunk).
func (c *Conn) emit(now Time, seq, ack Seq, flags uint8, wnd uint16, o *wire.TCPOptions, off, n int) {
	e := c.e
	if e.cfg.SegmentOffload && n > 0 && flags&^(wire.FlagACK|wire.FlagPSH) == 0 && flags&wire.FlagACK != 0 {
		c.emitChunk(now, seq, ack, flags, wnd, o, off, n)
		return
	}
	p := e.newPacket(c.key.local(), c.key.remote())
	e.finishPacket(p, c.putSegment(p.buf[Headroom:], seq, ack, flags, wnd, o, off, n))
	c.emitted(now, ack, flags, n)
}

// putSegment writes the connection's TCP header (with options o, if any)
// at the start of b and n bytes of the send buffer from offset off behind
// it, and returns the segment's length.
func (c *Conn) putSegment(b []byte, seq, ack Seq, flags uint8, wnd uint16, o *wire.TCPOptions, off, n int) int {
	optLen := 0
	if o != nil {
		optLen = wire.EncodeTCPOptions(b[wire.TCPHeaderLen:], o)
	}
	wire.PutTCPHeader(b, wire.TCPFields{
		SrcPort: c.key.lp, DstPort: c.key.rp,
		Seq: uint32(seq), Ack: uint32(ack), Flags: flags, Window: wnd,
	}, optLen)
	hl := wire.TCPHeaderLen + optLen
	if n > 0 {
		c.sndBuf.peek(b[hl:hl+n], off)
	}
	return hl + n
}

// markInHost records that the packet queued last, the one c's segment
// just went into (a packet of its own, or the open chunk it continued,
// which is last since queueing any other packet closes it), carries c's
// sequence space and has not left the host until Release.
func (e *Engine) markInHost(c *Conn) {
	if p := e.out[len(e.out)-1]; p.from == nil {
		p.from = c
		c.inHost++
	}
}

// emitted books a segment just queued.
func (c *Conn) emitted(now Time, ack Seq, flags uint8, n int) { c.emittedSegs(now, ack, flags, 1, n) }

// emittedSegs books segs segments just queued, n bytes of payload in all,
// with the same flags and acknowledgment (a run: sendRun).
func (c *Conn) emittedSegs(now Time, ack Seq, flags uint8, segs, n int) {
	if n > 0 || flags&(wire.FlagSYN|wire.FlagFIN) != 0 {
		c.e.markInHost(c)
	}
	c.touch()
	c.info.SegsOut += uint64(segs)
	c.noteEmitted(now, segs, n)
	if n > 0 {
		// Any segment with data, new or retransmitted (a tail loss probe
		// too), ends an idle period (Linux tcp_event_data_sent sets
		// lsndtime for every data segment).
		c.txStart(now)
		c.lastSend = now
	}
	if flags&wire.FlagACK != 0 {
		c.ackSent(ack)
	}
}

// emitChunk queues a data segment (ACK, maybe PSH, nothing else) under
// Config.SegmentOffload. Linux builds a TSO packet of many segments behind
// one header and lets the device cut it (tcp_write_xmit, tcp_gso_segment);
// here a segment whose header would be the open chunk's but for its
// sequence number (the same connection, acknowledgment, window and
// options, from which the header is encoded), which continues the chunk's
// bytes, and whose payload is no longer than the chunk's segment size, is
// appended to the chunk's packet: one header for all, the payloads
// contiguous, the checksum left partial over the whole. The link cuts it
// as the kernel's tcp_gso_segment does (each segment gets the header with
// its own sequence number; PSH only on the last), which gives back exactly
// the segments emitted, so the engine's bookkeeping stays per segment. A
// segment with PSH, or shorter than the chunk's segments, ends the chunk.
func (c *Conn) emitChunk(now Time, seq, ack Seq, flags uint8, wnd uint16, o *wire.TCPOptions, off, n int) {
	e := c.e
	ch := &e.chunk
	if p := ch.pkt; p != nil && ch.conn == c && seq == ch.next && ack == ch.ack && wnd == ch.wnd &&
		(o == nil) == !ch.hasOpts && (o == nil || o.EncodesAs(&ch.opts)) &&
		n <= p.segSize && p.segs < MaxChunkSegments && p.end-Headroom+p.TailLen()+n <= MaxChunkBytes &&
		(p.owner == nil || p.appendTail(c.sndBuf.spans(off, n))) {
		if p.owner == nil {
			c.sndBuf.peek(p.buf[p.end:p.end+n], off)
			p.end += n
		}
		p.segs++
		p.buf[Headroom+13] |= flags & wire.FlagPSH
		e.stats.SegsOut++
		ch.next = seq.Add(n)
		if flags&wire.FlagPSH != 0 || n < p.segSize {
			e.closeChunk()
		}
		c.emitted(now, ack, flags, n)
		return
	}
	var p *Packet
	open := flags&wire.FlagPSH == 0
	zeroCopy := open && e.cfg.ZeroCopyChunks
	switch {
	case zeroCopy:
		// The header alone in a segment's buffer; the payload stays in
		// the ring, pinned until Release (pin.go).
		p = e.newPacket(c.key.local(), c.key.remote())
		p.appendTail(c.sndBuf.spans(off, n))
		e.pin(p, c, seq)
	case open:
		p = e.chunkPool.get()
		p.Src, p.Dst = c.key.local().Addr(), c.key.remote().Addr()
	default:
		p = e.newPacket(c.key.local(), c.key.remote())
	}
	if zeroCopy {
		e.finishPacket(p, c.putSegment(p.buf[Headroom:], seq, ack, flags, wnd, o, off, 0)) // closes any open chunk
	} else {
		e.finishPacket(p, c.putSegment(p.buf[Headroom:], seq, ack, flags, wnd, o, off, n)) // closes any open chunk
	}
	if open {
		p.segSize, p.segs = n, 1
		*ch = openChunk{pkt: p, conn: c, next: seq.Add(n), ack: ack, wnd: wnd, hasOpts: o != nil}
		if o != nil {
			ch.opts = *o
		}
	}
	c.emitted(now, ack, flags, n)
}
