package tcpcore

// Lending the send buffer's free space, the mirror of Peek and Consume: a
// program that forwards what it reads from another socket (a relay
// reading its outbound connection for the client) reads it straight into
// the engine's send buffer instead of into a buffer of its own that Write
// would then copy.

// Lend makes room in the send buffer for up to max bytes, as Write would
// for a write of max bytes (the same checks and errors: ErrWouldBlock
// while the buffer is full, ErrPipe after CloseWrite, the connection's
// error after a reset), and lends that room, at most max bytes, in up to
// two spans (the second where it wraps around the end of the buffer). The
// caller fills the spans from their start, outside the engine's owner's
// lock if it likes, then gives the count to Commit, which queues those
// bytes as Write would have; until then Write and Lend return ErrLent.
//
// The spans stay valid while the engine goes on: acknowledgments free
// bytes at the head, never the lent space beyond the tail; only Write and
// Lend grow the buffer, and they are refused while it is lent; the bytes a
// zero-copy chunk holds behind the head are left out of the room, as
// Write leaves them (sndMakeRoom). Lend lends nothing (no span, no error)
// while the buffer is its first one of ringMinBytes, or none yet, and
// does not grow it then: that buffer goes back to the engine's pool when
// the connection ends, and a span into it would then write into another
// connection's buffer, whereas larger buffers are left to the garbage
// collector, so that a span into one of a connection closed meanwhile
// writes into memory no one reads; and a connection that carries little
// keeps its small buffer, as Write keeps it. The caller writes with Write
// instead, which grows the buffer as a write needs; once it has grown,
// Lend grows it further as Write would for a write of max bytes.
func (c *Conn) Lend(max int) (a, b []byte, err error) {
	if c.appClosed {
		return nil, nil, ErrClosed
	}
	if c.rareR().sndLent > 0 {
		return nil, nil, ErrLent
	}
	if len(c.sndBuf.buf) <= ringMinBytes {
		return nil, nil, nil
	}
	n, err := c.sndMakeRoom(max)
	if err != nil || n <= 0 {
		return nil, nil, err
	}
	a, b = c.sndBuf.freeSpans(n)
	c.rareW().sndLent = n
	return a, b, nil
}

// Commit ends a Lend: the first n bytes of the lent spans, which the
// caller filled, join the send buffer as a write of them would (n may be
// 0: nothing read), and go out as the windows allow. n must be at most
// what Lend lent. It returns ErrClosed once the application has closed
// the connection, the connection's error or ErrPipe if it was reset or
// shut down for writing since Lend (the n bytes are dropped, as a write
// would have failed), and ErrInvalid without a Lend before it or for an n
// larger than what Lend lent.
func (c *Conn) Commit(now Time, n int) error {
	lent := c.rareR().sndLent
	if lent > 0 {
		c.rare.sndLent = 0
	}
	if c.appClosed {
		return ErrClosed
	}
	if lent == 0 || n < 0 {
		return ErrInvalid
	}
	if n == 0 {
		return nil
	}
	if err := c.writeErr(); err != nil {
		return err
	}
	// At most what Lend lent, not the ring's room worked out again: if
	// Lend grew the ring while zero-copy chunks held bytes of the old
	// one, those bytes are not in this ring, and taking them off its room
	// (as sndMakeRoom does for a ring it did not grow) would refuse bytes
	// already read into the spans. Nothing can have taken the lent room
	// since: only Write and Lend add to the ring, and both are refused
	// while it is lent.
	if n > lent {
		return ErrInvalid
	}
	c.sndBuf.extend(n)
	c.sndQueued(now, n)
	return nil
}
