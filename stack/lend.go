package stack

import (
	"net"
	"os"

	"tunstack/tcpcore"
)

// Lending the send buffer (tcpcore.Conn.Lend): a program that forwards
// what it reads from another socket into a connection, such as the relay
// package reading its outbound socket for the client, reads it straight
// into the stack's send buffer and saves the copy that Write would make.

// Lend waits, as Write does, until the send buffer has room, then lends up
// to max bytes of that room in up to two spans, which the caller fills
// from their start and hands over with Commit. Only the room the send
// buffer has is lent (the same limit as Write's), so a peer that does not
// read holds the caller back as it holds a Write. The spans stay valid
// outside the stack's lock while the connection carries on, and if it
// closes (the bytes written then go nowhere). Lend lends nothing, without
// an error and without waiting, while the send buffer is its small first
// one (a connection that has not queued more than 4 KiB at once): the
// caller writes with Write instead, and a connection that carries little
// keeps its small buffer. It fails as Write does when the connection is closed, reset or
// shut down for writing, or the write deadline passes. Between Lend and
// Commit, Write and another Lend fail (tcpcore.ErrLent inside the
// net.OpError): one goroutine writes a connection at a time.
func (c *Conn) Lend(max int) (a, b []byte, err error) {
	s := c.s
	s.mu.Lock()
	for {
		if c.closed {
			s.unlockFlush()
			return nil, nil, c.opError("write", net.ErrClosed)
		}
		if c.writeExpired() {
			s.unlockFlush()
			return nil, nil, c.opError("write", os.ErrDeadlineExceeded)
		}
		a, b, err = c.tc.Lend(max)
		switch {
		case err == nil:
			// Growing the buffer sent nothing: no flush needed.
			s.mu.Unlock()
			return a, b, nil
		case err != tcpcore.ErrWouldBlock:
			s.unlockFlush()
			return nil, nil, c.ioError("write", err)
		}
		wake, gen := c.n.wait()
		s.unlockFlush()
		select {
		case <-wake:
		case <-c.writeDeadline():
		}
		s.mu.Lock()
		c.n.done(gen)
	}
}

// Commit queues the first n bytes of the spans Lend lent, which the
// caller filled, as a Write of them would, and sends what the windows
// allow; n may be 0 (nothing to send) and must be at most what was lent.
// It fails, the bytes dropped, if the connection was closed, reset or shut
// down for writing since Lend.
func (c *Conn) Commit(n int) error {
	s := c.s
	s.mu.Lock()
	if c.closed {
		s.mu.Unlock()
		return c.opError("write", net.ErrClosed)
	}
	err := c.tc.Commit(s.now(), n)
	s.unlockFlush()
	if err != nil {
		return c.ioError("write", err)
	}
	return nil
}
