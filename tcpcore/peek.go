package tcpcore

// Lending the receive buffer: a program that forwards what it receives
// (a relay writing the client's bytes to another socket) can write them
// from the engine's own buffer instead of copying them out first. Peek
// lends the unread bytes, Consume gives back what was forwarded, as Read
// would have read it.

// Peek returns the received in-order bytes the application has not read,
// at most max of them, in up to two spans (the second when they wrap
// around the end of the buffer), without consuming them: they count as
// unread, and so keep the window closed, until Consume.
//
// The spans stay valid and unchanged outside the engine's owner's lock,
// until Consume, while the engine goes on: new data is appended after the
// unread bytes and out-of-order data placed beyond them, never over them;
// a buffer that grows is copied into a new one; and the engine reuses
// only buffers of ringMinBytes (ringPool keeps first buffers, no other),
// so a larger one, replaced or freed with the connection, is left to the
// garbage collector while a span still points into it. Peek therefore
// lends nothing from a buffer of ringMinBytes (ok false): the caller
// reads with Read instead, as it does when nothing is there. Between Peek
// and Consume the caller must not Read.
func (c *Conn) Peek(max int) (a, b []byte, ok bool) {
	r := &c.rcvBuf
	if c.appClosed || r.n == 0 || max <= 0 || len(r.buf) <= ringMinBytes {
		return nil, nil, false
	}
	a, b = r.spans(0, min(int(r.n), max))
	return a, b, true
}

// Consume drops the first n of the bytes Peek lent, as Read reading them
// would: they leave the buffer, count for receive-buffer autotuning, and
// a window update goes if the window has opened enough (afterRead). It
// returns ErrClosed once the application has closed the connection.
func (c *Conn) Consume(now Time, n int) error {
	if c.appClosed {
		return ErrClosed
	}
	n = min(n, c.rcvBuf.Len())
	if n <= 0 {
		return nil
	}
	c.rcvBuf.discard(n)
	c.afterRead(now, n)
	return nil
}
