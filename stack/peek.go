package stack

import (
	"net"

	"tunstack/tcpcore"
)

// Lending the receive buffer (tcpcore.Conn.Peek): a program that forwards
// what a connection receives, such as the relay package writing a client's
// bytes to its outbound socket, writes them from the stack's buffer and
// saves copying them out first.

// Peek lends up to max of the bytes received and not yet read, in up to
// two spans, without consuming them: they stay unread (the window stays
// closed by them) until Consume, and the spans stay valid and unchanged
// until then, outside the stack's lock, whatever arrives meanwhile or if
// the connection closes. It lends nothing (no span) when a Read is what
// the caller needs: nothing has arrived yet, the peer's FIN or an error is
// next, the read deadline has passed, the connection is closed, or the
// bytes sit in the small first buffer that the engine recycles (a
// connection that never had more than 4 KiB unread at once). Between
// Peek and Consume the caller must not Read.
func (c *Conn) Peek(max int) (a, b []byte) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed || c.readExpired() {
		return nil, nil
	}
	a, b, _ = c.tc.Peek(max)
	return a, b
}

// Consume drops the first n bytes Peek lent, as a Read of them would: the
// window update, if the window has opened enough, goes at once.
func (c *Conn) Consume(n int) error {
	s := c.s
	s.mu.Lock()
	if c.closed {
		s.mu.Unlock()
		return c.opError("read", net.ErrClosed)
	}
	err := c.tc.Consume(s.now(), n)
	s.unlockFlush()
	if err == tcpcore.ErrClosed {
		return c.opError("read", net.ErrClosed)
	}
	return err
}
