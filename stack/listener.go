package stack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
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
	// keepAlive is ListenConfig.KeepAlive.Enable, which the accepted
	// connections inherit.
	keepAlive bool

	// group is the listener of a stack of shards this is one part of
	// (shards.go), nil on a stack of one engine; the engine then wakes
	// the group instead of n.
	group *groupListener

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
// of the stack (reported as [::]:80, dual-stack, as the net package would
// on Linux, when the stack has an IPv6 address; as 0.0.0.0:80 when it has
// none), "198.18.0.2:80", "[fd00::2]:80", or "[::]:80" (IPv6 and IPv4). backlog bounds the accept queue as listen(2) does.
// The returned net.Listener is a Listener. A port another socket holds
// fails with EADDRINUSE (tcpcore's bind rules); ListenWith sets
// SO_REUSEADDR or SO_REUSEPORT.
func (s *Stack) Listen(address string, backlog int) (net.Listener, error) {
	return s.listen("tcp", address, backlog, ListenConfig{})
}

// ListenConfig holds what a Go program sets on a kernel socket through
// net.ListenConfig's Control before bind(2), for ListenWith.
type ListenConfig struct {
	// ReuseAddr is SO_REUSEADDR: the listener may bind a port that
	// connections hold (TIME-WAIT ones included) when their sockets had
	// it too, as a restarted server's accepted connections do if the
	// server set it; never a port another listener holds.
	ReuseAddr bool
	// ReusePort is SO_REUSEPORT: listeners that all set it share one
	// address and port, each with its own queues; each new connection
	// goes to the one its 4-tuple's hash picks, and a listener that
	// closes leaves the rest to share.
	ReusePort bool
	// Backlog is listen(2)'s backlog; 0 is the profile's somaxconn, as
	// the net package passes the kernel's.
	Backlog int
	// V6Only is IPV6_V6ONLY: a listener on [::] takes IPv6 only, and
	// leaves the port's IPv4 side to others. Without it a listener on
	// [::] is dual-stack (Linux's default), takes IPv4 too, and its
	// IPv4 connections report IPv4-mapped addresses (::ffff:a.b.c.d).
	V6Only bool
	// KeepAlive is SO_KEEPALIVE with TCP_KEEPIDLE, TCP_KEEPINTVL and
	// TCP_KEEPCNT set on the listener, which the connections it accepts
	// inherit from their handshake on, as on Linux: with Enable, an
	// accepted connection idle for Idle sends a probe every Interval and
	// is aborted (ETIMEDOUT, with an RST) after Count unanswered ones,
	// so a peer that vanished without a word (its RST lost, its host
	// gone) does not hold a connection forever. Idle, Interval or Count
	// 0 is the profile's (Linux's 7200 s, 75 s and 9); negative ones are
	// refused. Go's net.Listen turns keepalive on for every accepted
	// connection with 15 s, 15 s and 9 (net.KeepAliveConfig); the zero
	// value here leaves it off, as Linux's listen(2) does.
	KeepAlive net.KeepAliveConfig
}

// ListenWith is Listen with lc's options: network is "tcp", "tcp4" or
// "tcp6" (parseAddrPort says how each reads address);
// ctx is checked before the listener opens and does not bound its life,
// as with net.ListenConfig.Listen.
func (s *Stack) ListenWith(ctx context.Context, lc ListenConfig, network, address string) (net.Listener, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	backlog := lc.Backlog
	if backlog == 0 {
		backlog = s.e.Profile().Somaxconn
	}
	return s.listen(network, address, backlog, lc)
}

func (s *Stack) listen(network, address string, backlog int, lc ListenConfig) (net.Listener, error) {
	if !tcpNetwork(network) {
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	ap, err := s.parseAddrPort(network, address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	laddr := tcpAddr(ap)
	if !ap.Addr().IsUnspecified() && !s.ownAddr(ap.Addr()) {
		return nil, newOpError("listen", nil, laddr, syscall.EADDRNOTAVAIL)
	}
	// Go's net package turns Nagle off on every TCP connection, accepted
	// ones included; accepted connections inherit the listener's options.
	ka := lc.KeepAlive
	if ka.Idle < 0 || ka.Interval < 0 || ka.Count < 0 {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: laddr, Err: fmt.Errorf("keepalive %+v has a negative field: give 0 for the profile's", ka)}
	}
	opts := tcpcore.SockOpts{NoDelay: true, ReuseAddr: lc.ReuseAddr, ReusePort: lc.ReusePort, V6Only: lc.V6Only,
		KeepAlive: ka.Enable, KeepIdle: ka.Idle, KeepIntvl: ka.Interval, KeepCount: ka.Count}
	if s.grp != nil {
		return s.grp.listen(ap, laddr, backlog, opts)
	}
	l, err := s.listenOn(ap, laddr, backlog, opts, nil)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// listenOn opens the engine's listener; group, if not nil, is the
// listener of a stack of shards it is a part of.
func (s *Stack) listenOn(ap netip.AddrPort, laddr *net.TCPAddr, backlog int, opts tcpcore.SockOpts, group *groupListener) (*listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, newOpError("listen", nil, laddr, err)
	}
	tl, err := s.e.Listen(s.now(), ap, backlog, opts)
	if err != nil {
		return nil, newOpError("listen", nil, laddr, err)
	}
	l := &listener{s: s, tl: tl, addr: tcpAddr(tl.Addr()), keepAlive: opts.KeepAlive, group: group}
	if group != nil {
		tl.SetWaker(group)
	} else {
		tl.SetWaker(&l.n)
	}
	s.lsns[l] = struct{}{}
	return l, nil
}

// Accept waits for a connection that finished its handshake. After Close
// it returns net.ErrClosed.
func (l *listener) Accept() (net.Conn, error) {
	s := l.s
	s.mu.Lock()
	for {
		c, err := l.acceptLocked()
		if err != tcpcore.ErrWouldBlock {
			s.mu.Unlock()
			return c, err
		}
		wake, gen := l.n.wait()
		s.mu.Unlock()
		<-wake
		s.mu.Lock()
		l.n.done(gen)
	}
}

// acceptLocked takes one connection from the accept queue: the Conn,
// net.ErrClosed once Close has run, tcpcore.ErrWouldBlock if none is
// ready, or another error as the Accept call returns it. The caller holds
// l.s.mu.
func (l *listener) acceptLocked() (net.Conn, error) {
	s := l.s
	if l.closed {
		return nil, l.opError(net.ErrClosed)
	}
	tc, err := l.tl.Accept(s.now())
	if err == tcpcore.ErrWouldBlock {
		return nil, err
	}
	if err != nil {
		return nil, l.opError(err)
	}
	c := s.newConn(tc)
	c.keepAlive = l.keepAlive
	// Data or a FIN may have arrived before the waker was set; the
	// application's first Read checks the state, so nothing is missed.
	return c, nil
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
