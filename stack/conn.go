package stack

import (
	"math"
	"net"
	"os"
	"sync/atomic"
	"time"

	"tunstack/tcpcore"
)

// Conn is a TCP connection of the stack. It implements net.Conn and the
// socket options of *net.TCPConn, with the same blocking, deadline and error
// behaviour.
//
// Every method takes the stack's lock around its engine calls. A call that
// must wait registers with the socket's notifier under the lock, flushes,
// and sleeps on the notifier's channel and its deadline; the engine's
// wakeup for the socket sends it a token. Nothing polls.
type Conn struct {
	s  *Stack
	tc *tcpcore.Conn
	// dl holds the read and write deadlines, made by the first call that
	// sets one (deadlines): a connection without deadlines
	// saves their 64 bytes, which keeps Conn in the 96-byte size class
	// (TestConnFitsItsSizeClass). The addresses are the engine
	// connection's, fixed before newConn and made *net.TCPAddr only when
	// asked for.
	dl atomic.Pointer[deadlines]

	// Guarded by s.mu.
	n         notifier
	wk        connWaker // the engine's Waker: n, and retiring once closed
	closed    bool      // Close was called
	retired   bool      // over for the stack too; counters in s.finished (connstats.go)
	keepAlive bool      // SO_KEEPALIVE as last set (the engine does not report it)
	armed     bool      // ArmRead is waiting for readability (notify.go)
	// lingerSec is SO_LINGER as net.TCPConn.SetLinger takes it, <0 off,
	// at most math.MaxInt32 as Linux's l_linger (an int); 4 bytes beside
	// the flags keep the Conn in a smaller size class.
	lingerSec int32
	created   tcpcore.Time             // when newConn made it: Metrics.Lifetime starts here
	traced    *tcpcore.CongestionState // the congestion state last traced (trace.go), only with Config.Trace; nil before the first record
}

var _ net.Conn = (*Conn)(nil)

// newConn wraps an engine connection and registers it. The caller holds
// s.mu.
func (s *Stack) newConn(tc *tcpcore.Conn) *Conn {
	c := &Conn{
		s:         s,
		tc:        tc,
		lingerSec: -1,
		created:   s.now(),
	}
	c.wk.c = c
	tc.SetWaker(&c.wk)
	s.conns[c] = struct{}{}
	if s.byKey != nil {
		s.byKey[flow{tc.LocalAddr(), tc.RemoteAddr()}] = c
	}
	return c
}

// Read reads what is there, waiting until at least one byte, the peer's FIN
// (io.EOF), an error, the read deadline or Close.
func (c *Conn) Read(b []byte) (int, error) {
	s := c.s
	s.mu.Lock()
	for {
		if c.closed {
			s.mu.Unlock()
			return 0, c.opError("read", net.ErrClosed)
		}
		// As in the net package, an expired deadline fails the call even
		// when data is waiting.
		if c.readExpired() {
			s.mu.Unlock()
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		if len(b) == 0 {
			s.mu.Unlock()
			return 0, nil
		}
		n, err := c.tc.Read(s.now(), b)
		if err != tcpcore.ErrWouldBlock {
			s.unlockFlush() // reading may open the window: a window update
			if err != nil {
				return n, c.ioError("read", err)
			}
			return n, nil
		}
		wake, gen := c.n.wait()
		s.mu.Unlock() // a read that would block produced no output
		select {
		case <-wake:
		case <-c.readDeadline():
		}
		s.mu.Lock()
		c.n.done(gen)
	}
}

// WaitRead blocks until a Read would not block: data has arrived, or the
// peer's FIN or an error, which Read then reports. It holds no buffer
// while it waits, so a program that relays many mostly idle connections
// (the relay package) need not keep one per connection. It fails as Read
// does when the connection is closed or the read deadline passes.
func (c *Conn) WaitRead() error {
	s := c.s
	s.mu.Lock()
	for {
		if c.closed {
			s.mu.Unlock()
			return c.opError("read", net.ErrClosed)
		}
		if c.readExpired() {
			s.mu.Unlock()
			return c.opError("read", os.ErrDeadlineExceeded)
		}
		if c.tc.Readable() {
			s.mu.Unlock()
			return nil
		}
		wake, gen := c.n.wait()
		s.mu.Unlock()
		select {
		case <-wake:
		case <-c.readDeadline():
		}
		s.mu.Lock()
		c.n.done(gen)
	}
}

// Write queues all of b, waiting for room in the send buffer as often as it
// takes; it returns less than len(b) only with an error (io.Writer).
func (c *Conn) Write(b []byte) (int, error) {
	s := c.s
	s.mu.Lock()
	total := 0
	for {
		if c.closed {
			s.unlockFlush()
			return total, c.opError("write", net.ErrClosed)
		}
		if total > 0 && total == len(b) {
			s.unlockFlush()
			return total, nil
		}
		if c.writeExpired() {
			s.unlockFlush()
			return total, c.opError("write", os.ErrDeadlineExceeded)
		}
		if len(b) == 0 {
			s.unlockFlush()
			return 0, nil
		}
		n, err := c.tc.Write(s.now(), b[total:])
		total += n
		switch {
		case err == nil:
			continue
		case err != tcpcore.ErrWouldBlock:
			s.unlockFlush()
			return total, c.ioError("write", err)
		}
		wake, gen := c.n.wait()
		s.unlockFlush() // send what is queued before sleeping on the ACKs
		select {
		case <-wake:
		case <-c.writeDeadline():
		}
		s.mu.Lock()
		c.n.done(gen)
	}
}

// Close closes the connection: a FIN after the queued data, or an RST if
// received data was left unread or SetLinger(0) was called. After
// SetLinger(n > 0) it waits until the peer has acknowledged everything or n
// seconds pass. Blocked Reads and Writes return net.ErrClosed.
func (c *Conn) Close() error {
	s := c.s
	s.mu.Lock()
	if c.closed {
		s.mu.Unlock()
		return c.opError("close", net.ErrClosed)
	}
	c.closed = true
	now := s.now()
	c.tc.Close(now)
	c.fireReadable() // before closedByApp, which may retire c and forget its function
	s.closedByApp(c)
	c.n.Wake()
	if c.lingerSec > 0 {
		c.lingerWait(now.Add(time.Duration(c.lingerSec) * time.Second))
	}
	s.unlockFlush()
	if d := c.dl.Load(); d != nil {
		d.rd.stop()
		d.wd.stop()
	}
	return nil
}

// lingerWait blocks a lingering Close until tcpcore says it may return or
// until the linger time passes. The deadline is computed here as well as
// kept by the engine, so that Close returns on time whatever the engine
// reports after its own linger timer fires. The caller holds s.mu, which is
// held again on return.
func (c *Conn) lingerWait(until tcpcore.Time) {
	s := c.s
	timer := time.NewTimer(s.durationUntil(until))
	defer timer.Stop()
	for {
		now := s.now()
		if c.tc.LingerDone(now) || now >= until || s.closed {
			return
		}
		wake, gen := c.n.wait()
		s.unlockFlush()
		select {
		case <-wake:
		case <-timer.C:
		case <-s.done:
		}
		s.mu.Lock()
		c.n.done(gen)
	}
}

// CloseWrite shuts down the sending side (shutdown(SHUT_WR)): the peer
// reads io.EOF after the queued data; this side can still read.
func (c *Conn) CloseWrite() error {
	return c.call("close", func(now tcpcore.Time) error { return c.tc.CloseWrite(now) })
}

// CloseRead shuts down the receiving side (shutdown(SHUT_RD)): Read
// returns io.EOF instead of blocking, once it has returned the data
// queued, which as on Linux includes data that arrives later.
func (c *Conn) CloseRead() error {
	return c.call("close", func(now tcpcore.Time) error { return c.tc.CloseRead(now) })
}

// SetNoDelay turns Nagle's algorithm off (true, Go's default for TCP) or on.
func (c *Conn) SetNoDelay(noDelay bool) error {
	return c.call("set", func(now tcpcore.Time) error { c.tc.SetNoDelay(now, noDelay); return nil })
}

// SetLinger sets SO_LINGER as net.TCPConn.SetLinger does: sec < 0 is the
// default (Close returns at once, data is sent in the background); 0 makes
// Close abort with RST; sec > 0 makes Close wait up to sec seconds for the
// peer to acknowledge the data.
func (c *Conn) SetLinger(sec int) error {
	return c.call("set", func(tcpcore.Time) error {
		c.lingerSec = int32(max(min(sec, math.MaxInt32), -1)) // any negative is off
		c.tc.SetLinger(sec >= 0, time.Duration(max(sec, 0))*time.Second)
		return nil
	})
}

// SetKeepAlive turns keepalive probes on or off.
func (c *Conn) SetKeepAlive(on bool) error {
	return c.call("set", func(now tcpcore.Time) error {
		c.keepAlive = on
		c.tc.SetKeepAlive(now, on, 0, 0, 0)
		return nil
	})
}

// SetKeepAlivePeriod sets the idle time before the first probe and the
// interval between probes, as the net package does on Linux; it does not
// turn keepalives on.
func (c *Conn) SetKeepAlivePeriod(d time.Duration) error {
	return c.call("set", func(now tcpcore.Time) error {
		c.tc.SetKeepAlive(now, c.keepAlive, d, d, 0)
		return nil
	})
}

// SetReadBuffer sets SO_RCVBUF in bytes (bounded by the profile).
func (c *Conn) SetReadBuffer(bytes int) error {
	return c.call("set", func(tcpcore.Time) error { c.tc.SetReadBuffer(bytes); return nil })
}

// SetWriteBuffer sets SO_SNDBUF in bytes (bounded by the profile).
func (c *Conn) SetWriteBuffer(bytes int) error {
	return c.call("set", func(tcpcore.Time) error { c.tc.SetWriteBuffer(bytes); return nil })
}

// call runs one non-blocking engine call under the lock, flushes what it
// produced and shapes its error.
func (c *Conn) call(op string, f func(now tcpcore.Time) error) error {
	s := c.s
	s.mu.Lock()
	if c.closed {
		s.mu.Unlock()
		return c.opError(op, net.ErrClosed)
	}
	err := f(s.now())
	s.unlockFlush()
	if err != nil {
		return c.opError(op, err)
	}
	return nil
}

// SetUserTimeout sets TCP_USER_TIMEOUT: how long sent data or a
// zero-window probe may go unacknowledged before the connection is aborted
// with ETIMEDOUT (0 = off, the default; negative is EINVAL; kept in whole
// milliseconds, as on Linux).
func (c *Conn) SetUserTimeout(d time.Duration) error {
	return c.call("set", func(now tcpcore.Time) error { return c.tc.SetUserTimeout(now, d) })
}

// UserTimeout returns TCP_USER_TIMEOUT, 0 when off.
func (c *Conn) UserTimeout() time.Duration {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.tc.UserTimeout()
}

// TCPInfo returns the connection's Linux struct tcp_info at this instant
// of the stack's clock (getsockopt TCP_INFO).
func (c *Conn) TCPInfo() tcpcore.TCPInfo {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.tc.TCPInfo(c.s.now())
}

// Info returns a TCP_INFO-like snapshot of the connection.
func (c *Conn) Info() tcpcore.Info {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.tc.Info()
}

// LocalAddr returns the local address, a *net.TCPAddr.
func (c *Conn) LocalAddr() net.Addr { return tcpAddr(c.tc.LocalAddr()) }

// RemoteAddr returns the peer's address, a *net.TCPAddr.
func (c *Conn) RemoteAddr() net.Addr { return tcpAddr(c.tc.RemoteAddr()) }

// SetDeadline sets both the read and the write deadline.
func (c *Conn) SetDeadline(t time.Time) error {
	d := c.deadlines()
	d.rd.set(t)
	d.wd.set(t)
	return nil
}

// SetReadDeadline sets the read deadline; it applies to a Read already
// blocked too. The zero time means none.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.deadlines().rd.set(t)
	return nil
}

// SetWriteDeadline sets the write deadline; it applies to a Write already
// blocked too. The zero time means none.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.deadlines().wd.set(t)
	return nil
}
