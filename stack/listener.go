package stack

import (
	"net"
	"syscall"

	"tunstack/tcpcore"
)

// listener is a net.Listener on an engine listener. Accept blocks on the
// listener's notifier, which the engine wakes when a connection completes
// its handshake or the listener closes.
type listener struct {
	s    *Stack
	tl   *tcpcore.Listener
	addr *net.TCPAddr

	// Guarded by s.mu.
	n      notifier
	closed bool
}

// Listener is what Listen returns: a net.Listener with the engine's queue
// statistics.
type Listener interface {
	net.Listener
	// Stats returns the accept and SYN queue lengths and drop counters.
	Stats() tcpcore.ListenerStats
}

var _ Listener = (*listener)(nil)

// Listen opens a TCP listener on address: ":80" listens on every address
// of the stack (reported as 0.0.0.0:80, as the net package would), or
// "198.18.0.2:80". backlog bounds the accept queue as listen(2) does.
// The returned net.Listener is a Listener.
func (s *Stack) Listen(address string, backlog int) (net.Listener, error) {
	ap, err := parseAddrPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: err}
	}
	laddr := tcpAddr(ap)
	if !ap.Addr().IsUnspecified() && ap.Addr() != s.addr {
		return nil, newOpError("listen", nil, laddr, syscall.EADDRNOTAVAIL)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, newOpError("listen", nil, laddr, err)
	}
	// Go's net package turns Nagle off on every TCP connection, accepted
	// ones included; accepted connections inherit the listener's options.
	tl, err := s.e.Listen(s.now(), ap, backlog, tcpcore.SockOpts{NoDelay: true})
	if err != nil {
		return nil, newOpError("listen", nil, laddr, err)
	}
	l := &listener{s: s, tl: tl, addr: tcpAddr(tl.Addr())}
	tl.SetWaker(&l.n)
	s.lsns[l] = struct{}{}
	return l, nil
}

// Accept waits for a connection that finished its handshake. After Close
// it returns net.ErrClosed.
func (l *listener) Accept() (net.Conn, error) {
	s := l.s
	s.mu.Lock()
	for {
		if l.closed {
			s.mu.Unlock()
			return nil, l.opError(net.ErrClosed)
		}
		tc, err := l.tl.Accept(s.now())
		if err == nil {
			c := s.newConn(tc)
			// Data or a FIN may have arrived before the waker was set; the
			// application's first Read checks the state, so nothing is
			// missed.
			s.mu.Unlock()
			return c, nil
		}
		if err != tcpcore.ErrWouldBlock {
			s.mu.Unlock()
			return nil, l.opError(err)
		}
		wake := l.n.wait()
		s.mu.Unlock()
		<-wake
		s.mu.Lock()
	}
}

// Close stops listening. Connections that completed the handshake but were
// not accepted are reset; a blocked Accept returns net.ErrClosed.
func (l *listener) Close() error {
	s := l.s
	s.mu.Lock()
	if l.closed {
		s.mu.Unlock()
		return l.opError(net.ErrClosed)
	}
	l.closed = true
	delete(s.lsns, l)
	l.tl.Close(s.now())
	l.n.Wake()
	s.unlockFlush() // the RSTs for the accept queue
	return nil
}

// Addr returns the listening address, a *net.TCPAddr.
func (l *listener) Addr() net.Addr { return l.addr }

// Stats returns the engine's queue statistics for this listener.
func (l *listener) Stats() tcpcore.ListenerStats {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.tl.Stats()
}

func (l *listener) opError(err error) error {
	return newOpError("accept", nil, l.addr, err)
}
