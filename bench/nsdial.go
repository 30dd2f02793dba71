package bench

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync"
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
// The maker also turns each socket into a *net.TCPConn (net.FileConn:
// a duplicate descriptor registered with Go's poller, and the original
// closed) before a dial takes it, so that a dial does what net.Dialer's
// does between the SYN and the connection (connect, then SO_ERROR and
// getpeername once writable) and none of that duplication's eight or so
// system calls: they are the benchmark's way into the namespace, not
// work of the relay or of either stack, and they were on the path from
// the client's SYN to the relay's SYN-ACK.
type nsDialer struct {
	socks  [2]chan madeSocket // IPv4, IPv6; made in the namespace, unconnected
	refill chan struct{}      // wakes the maker (buffered: a wake is never lost)
	stop   chan struct{}
	wg     sync.WaitGroup
}

type madeSocket struct {
	c   *net.TCPConn
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

// makeSocket makes an unconnected TCP socket of family i (0 IPv4, 1
// IPv6) in the calling thread's namespace, with the run's congestion
// control, as a *net.TCPConn on Go's poller.
func makeSocket(i int) madeSocket {
	domain := unix.AF_INET
	if i == 1 {
		domain = unix.AF_INET6
	}
	// Blocking until net.FileConn's duplicate is made non-blocking, so
	// that os.NewFile does not register the original with the poller
	// only for Close to remove it.
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return madeSocket{nil, os.NewSyscallError("socket", err)}
	}
	if err := setCongestion(uintptr(fd)); err != nil {
		unix.Close(fd)
		return madeSocket{nil, os.NewSyscallError("setsockopt TCP_CONGESTION", err)}
	}
	f := os.NewFile(uintptr(fd), "relay-outbound")
	c, err := net.FileConn(f) // a non-blocking duplicate on the poller
	f.Close()
	if err != nil {
		return madeSocket{nil, err}
	}
	return madeSocket{c.(*net.TCPConn), nil}
}

// take returns a socket of family i, waiting for the maker if none is
// ready.
func (d *nsDialer) take(ctx context.Context, i int) (*net.TCPConn, error) {
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
	return s.c, s.err
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
	return &outConn{TCPConn: c, raddr: net.TCPAddrFromAddrPort(ap)}, nil
}

// outConn is a dialled connection: the made socket, whose addresses
// net.FileConn took before it was bound or connected, with the
// destination's address and the local one asked for when needed.
type outConn struct {
	*net.TCPConn
	raddr *net.TCPAddr
}

func (c *outConn) RemoteAddr() net.Addr { return c.raddr }

func (c *outConn) LocalAddr() net.Addr {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	var a net.Addr
	rc.Control(func(fd uintptr) {
		sa, err := unix.Getsockname(int(fd))
		if err != nil {
			return
		}
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			a = &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
		case *unix.SockaddrInet6:
			a = &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
		}
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
				s.c.Close()
			}
		}
	}
}
