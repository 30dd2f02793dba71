package bench

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"tunstack/lab/netns"
)

// nsDialer dials kernel TCP connections from a namespace, with the
// benchmark's congestion control: the relay's outbound connections, so
// that the relay's outbound leg runs over the veth to the server, and
// crr's client connections from the peer's namespace (runCRR).
//
// `tunstack relay` dials from its own namespace, on whatever thread the
// dialing goroutine runs. A socket belongs to the namespace of the thread
// that made it and stays there wherever it is used after, so here one
// goroutine, locked to a thread that entered the namespace once, makes
// sockets ahead of need (socketsAhead per family), and each dial takes
// one and connects it on its own goroutine, as `tunstack relay` would: no
// dial hands its work to a thread in the namespace and waits for it back,
// which costs a switch to and from that locked thread per connection (and
// on a loaded machine the wait for that one thread to be scheduled).
//
// The maker makes each socket non-blocking with the options net.Dialer
// gives a connection (TCP_NODELAY, keepalive) and puts it on Go's poller
// as it is (os.NewFile), so that a dial does what net.Dialer's does
// between the SYN and the connection (connect, then SO_ERROR and
// getpeername once writable) and the socket costs what net.Dialer's does
// to make. net.FileConn, which turned each into a *net.TCPConn before
// (2026-12-04), duplicated the descriptor and asked it its type and
// addresses, eight more system calls a socket: two sockets a relay-crr
// connection (the client's and the relay's outbound one), 85 µs of CPU
// per connection measured in a runtime trace, which ran beside both
// relays on the machine's CPUs and slowed the connections it overlapped
// (367 µs on average against 269 for the others).
type nsDialer struct {
	socks  [2]chan madeSocket // IPv4, IPv6; made in the namespace, unconnected
	refill chan struct{}      // wakes the maker (buffered: a wake is never lost)
	stop   chan struct{}
	wg     sync.WaitGroup
}

type madeSocket struct {
	f   *os.File
	err error
}

// socketsAhead is how many sockets of each family wait made; the maker
// is woken to top them up once half are taken.
const socketsAhead = 32

func newNSDialer(ns *netns.NS) *nsDialer {
	d := &nsDialer{refill: make(chan struct{}, 1), stop: make(chan struct{})}
	for i := range d.socks {
		d.socks[i] = make(chan madeSocket, socketsAhead)
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		ns.Do(func() error {
			for {
				for i, ch := range d.socks {
					for len(ch) < cap(ch) {
						ch <- makeSocket(i)
					}
				}
				select {
				case <-d.refill:
				case <-d.stop:
					return nil
				}
			}
		})
	}()
	return d
}

// makeSocket makes an unconnected, non-blocking TCP socket of family i
// (0 IPv4, 1 IPv6) in the calling thread's namespace, with the run's
// congestion control and net.Dialer's options, on Go's poller.
func makeSocket(i int) madeSocket {
	domain := unix.AF_INET
	if i == 1 {
		domain = unix.AF_INET6
	}
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return madeSocket{nil, os.NewSyscallError("socket", err)}
	}
	if err := setCongestion(uintptr(fd)); err != nil {
		unix.Close(fd)
		return madeSocket{nil, os.NewSyscallError("setsockopt TCP_CONGESTION", err)}
	}
	if err := setDialerOptions(fd); err != nil {
		unix.Close(fd)
		return madeSocket{nil, err}
	}
	// Non-blocking: a pollable file, registered with the poller.
	return madeSocket{os.NewFile(uintptr(fd), "tcp"), nil}
}

// setDialerOptions sets what net.Dialer sets on a TCP connection by
// default: TCP_NODELAY, and keepalive at 15 s idle, 15 s between probes,
// 9 probes.
func setDialerOptions(fd int) error {
	for _, o := range []struct {
		level, opt, v int
		name          string
	}{
		{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1, "TCP_NODELAY"},
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1, "SO_KEEPALIVE"},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15, "TCP_KEEPIDLE"},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15, "TCP_KEEPINTVL"},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9, "TCP_KEEPCNT"},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			return os.NewSyscallError("setsockopt "+o.name, err)
		}
	}
	return nil
}

// take returns a socket of family i, waiting for the maker if none is
// ready.
func (d *nsDialer) take(ctx context.Context, i int) (*os.File, error) {
	var s madeSocket
	select {
	case s = <-d.socks[i]:
	default:
		d.wake()
		select {
		case s = <-d.socks[i]:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if len(d.socks[i]) < socketsAhead/2 {
		d.wake()
	}
	return s.f, s.err
}

func (d *nsDialer) wake() {
	select {
	case d.refill <- struct{}{}:
	default:
	}
}

// dial is relay.Config.Dial: a non-blocking connect of a made socket,
// waited on through Go's poller until it completes, fails, or ctx ends.
func (d *nsDialer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	var fam int
	var sa unix.Sockaddr
	if ap.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	} else {
		fam, sa = 1, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: network, Addr: net.TCPAddrFromAddrPort(ap), Err: err}
	}
	if err := ctx.Err(); err != nil {
		return nil, opErr(err)
	}
	c, err := d.take(ctx, fam)
	if err != nil {
		return nil, opErr(err)
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	if dl, has := ctx.Deadline(); has {
		c.SetWriteDeadline(dl)
	}
	// A cancelled ctx ends the wait as its deadline would.
	stop := context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Unix(1, 0)) })
	rc, err := c.SyscallConn()
	if err != nil {
		stop()
		return nil, opErr(err)
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = unix.Connect(int(fd), sa) }); err != nil {
		stop()
		return nil, opErr(err)
	}
	if cerr == unix.EINPROGRESS {
		cerr = nil
		werr := rc.Write(func(fd uintptr) bool {
			// Writable once the handshake is over either way:
			// SO_ERROR says how; a socket with a peer is connected.
			v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
			switch {
			case err != nil:
				cerr = os.NewSyscallError("getsockopt", err)
			case v != 0:
				cerr = os.NewSyscallError("connect", unix.Errno(v))
			default:
				if _, err := unix.Getpeername(int(fd)); err != nil {
					return false // still connecting: wait for writability
				}
			}
			return true
		})
		if werr != nil && cerr == nil {
			cerr = werr // the deadline, or ctx cancelled
		}
	} else if cerr != nil {
		cerr = os.NewSyscallError("connect", cerr)
	}
	if !stop() && cerr == nil {
		// ctx ended while the connect completed: its function may set
		// the past deadline at any time now, so the connection is not
		// usable, and the dial fails as ctx says.
		cerr = ctx.Err()
	}
	if cerr != nil {
		return nil, opErr(cerr)
	}
	// The connect's deadline is not the connection's.
	c.SetWriteDeadline(time.Time{})
	ok = true
	return &sockConn{f: c, raddr: net.TCPAddrFromAddrPort(ap)}, nil
}

// sockConn is a dialled connection: the made socket as net.Conn, with the
// half-close and linger of *net.TCPConn that the relay uses (CloseWrite,
// SetLinger), its SyscallConn for the relay's reads, the destination's
// address, and the local one asked for when needed. Its reads and writes
// go through Go's poller as a *net.TCPConn's do.
type sockConn struct {
	f     *os.File
	raddr *net.TCPAddr
}

func (c *sockConn) Read(b []byte) (int, error)  { return c.f.Read(b) }
func (c *sockConn) Write(b []byte) (int, error) { return c.f.Write(b) }
func (c *sockConn) Close() error                { return c.f.Close() }
func (c *sockConn) RemoteAddr() net.Addr        { return c.raddr }

func (c *sockConn) SetDeadline(t time.Time) error      { return c.f.SetDeadline(t) }
func (c *sockConn) SetReadDeadline(t time.Time) error  { return c.f.SetReadDeadline(t) }
func (c *sockConn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }

func (c *sockConn) SyscallConn() (syscall.RawConn, error) { return c.f.SyscallConn() }

// CloseWrite shuts the sending side down: the peer reads EOF.
func (c *sockConn) CloseWrite() error {
	return c.control("shutdown", func(fd int) error { return unix.Shutdown(fd, unix.SHUT_WR) })
}

// SetLinger is *net.TCPConn's: 0 makes Close reset the connection.
func (c *sockConn) SetLinger(sec int) error {
	l := &unix.Linger{}
	if sec >= 0 {
		l.Onoff, l.Linger = 1, int32(sec)
	}
	return c.control("setsockopt SO_LINGER", func(fd int) error { return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, l) })
}

func (c *sockConn) control(op string, f func(fd int) error) error {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return os.NewSyscallError(op, ferr)
}

func (c *sockConn) LocalAddr() net.Addr {
	var a net.Addr
	c.control("getsockname", func(fd int) error {
		sa, err := unix.Getsockname(fd)
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			a = &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
		case *unix.SockaddrInet6:
			a = &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
		}
		return err
	})
	return a
}

// close stops the maker and closes the sockets it made and no dial took.
func (d *nsDialer) close() {
	close(d.stop)
	d.wg.Wait()
	for _, ch := range d.socks {
		for len(ch) > 0 {
			if s := <-ch; s.err == nil {
				s.f.Close()
			}
		}
	}
}
