package tcpcore

// Zero-copy chunks (Config.ZeroCopyChunks). A chunk's payload is not
// copied out of the send ring: the Packet carries the spans of the ring
// it occupies (Packet.Tail) and the driver writes them behind the header,
// as Linux's TSO packets carry the send queue's pages as fragments
// instead of a copy (tcp_sendmsg_locked puts the user's bytes in page
// fragments once; tcp_write_xmit and the device read them from there).
//
// The lifetime rule. The spans hold sequence space [pinSeq, pinSeq+len)
// of the connection, all of it between SND.UNA and SND.NXT when the chunk
// is made. The driver writes the packet after Output, outside the
// engine's owner's critical section (stack's unlockFlush), while input
// and the application go on using the engine; the bytes must stay as they
// are until Release. What could change them:
//
//   - An ACK covering them moves the ring's head past them (the peer may
//     acknowledge a retransmission's bytes through the original, or
//     acknowledge anything up to SND.NXT, which already counts them), and
//     a Write then fills the space the head left, wrapping onto them.
//     Write therefore does not write into the bytes behind the head that
//     a pinned chunk still holds (sndPins), and Release wakes the
//     connection's writer when it unpins such bytes.
//   - The ring grows: the bytes are copied to a new buffer and the old
//     one would go back to the engine's ring pool for another connection.
//     The chunk's spans keep the old buffer alive, so it is only kept out
//     of the pool (sndRingPool).
//   - The connection ends and its ring is freed to the pool: kept out of
//     the pool the same way.
//
// Nothing else writes to a send ring's buffer: retransmissions and new
// segments read it, and only Write stores into it.

// pin records p, a zero-copy chunk of c whose payload starts at seq, as
// holding its spans until Release.
func (e *Engine) pin(p *Packet, c *Conn, seq Seq) {
	p.owner, p.pinSeq, p.pinIdx = c, seq, len(e.pins)
	e.pins = append(e.pins, p)
}

// unpin lets go of p's spans. If the connection's head has moved past
// them, a Write may have been held back by them (sndPins): the writer is
// woken to try again.
func (e *Engine) unpin(p *Packet) {
	last := len(e.pins) - 1
	e.pins[p.pinIdx] = e.pins[last]
	e.pins[p.pinIdx].pinIdx = p.pinIdx
	e.pins[last] = nil
	e.pins = e.pins[:last]
	if c := p.owner; c.state != Closed && c.sndBufSeq.GT(p.pinSeq) {
		c.wake()
	}
	p.owner, p.tail = nil, [2][]byte{}
}

// sndPins reports whether a zero-copy chunk not yet released holds bytes
// of c's send ring, and how many bytes just behind the ring's head (ACKed,
// so no longer stored) such chunks still hold there, which a Write must
// not overwrite. A few chunks are pinned at a time (a driver's batch), so
// the walk is short.
func (c *Conn) sndPins() (pinned bool, behind int) {
	for _, p := range c.e.pins {
		if p.owner != c {
			continue
		}
		pinned = true
		if d := c.sndBufSeq.Sub(p.pinSeq); d > behind {
			behind = d
		}
	}
	return pinned, behind
}

// sndRingPool is the pool c's send ring may give its buffer back to: none
// while a zero-copy chunk holds bytes of it (the buffer must not serve
// another connection before the chunk is written).
func (c *Conn) sndRingPool() *ringPool {
	if len(c.e.pins) > 0 {
		if pinned, _ := c.sndPins(); pinned {
			return nil
		}
	}
	return &c.e.rings
}

// appendTail adds the ring spans a and b (b may be empty) to p's payload:
// a span that continues the last one in the same buffer extends it. It
// returns false, leaving p as it was, when they would need a third span.
func (p *Packet) appendTail(a, b []byte) bool {
	t := p.tail
	for _, s := range [2][]byte{a, b} {
		if len(s) == 0 {
			continue
		}
		switch {
		case t[1] != nil:
			if !continues(t[1], s) {
				return false
			}
			t[1] = t[1][:len(t[1])+len(s)]
		case t[0] != nil && continues(t[0], s):
			t[0] = t[0][:len(t[0])+len(s)]
		case t[0] != nil:
			t[1] = s
		default:
			t[0] = s
		}
	}
	p.tail = t
	return true
}

// continues reports whether s starts where span ends, in the same buffer.
func continues(span, s []byte) bool {
	return cap(span) >= len(span)+len(s) && &span[:len(span)+1][len(span)] == &s[0]
}
