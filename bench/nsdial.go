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

// nsDialer dials the relay's outbound connections: kernel TCP sockets of
// a namespace, with the benchmark's congestion control, so that the
// relay's outbound leg runs over the veth to the server.
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
type nsDialer struct {
	socks  [2]chan madeSocket // IPv4, IPv6; made in the namespace, unconnected
	refill chan struct{}      // wakes the maker (buffered: a wake is never lost)
	stop   chan struct{}
	wg     sync.WaitGroup
}

type madeSocket struct {
	fd  int
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

// makeSocket makes a non-blocking TCP socket of family i (0 IPv4, 1
// IPv6) in the calling thread's namespace, with the run's congestion
// control.
func makeSocket(i int) madeSocket {
	domain := unix.AF_INET
	if i == 1 {
		domain = unix.AF_INET6
	}
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return madeSocket{-1, os.NewSyscallError("socket", err)}
	}
	if err := setCongestion(uintptr(fd)); err != nil {
		unix.Close(fd)
		return madeSocket{-1, os.NewSyscallError("setsockopt TCP_CONGESTION", err)}
	}
	return madeSocket{fd, nil}
}

// take returns a socket of family i, waiting for the maker if none is
// ready.
func (d *nsDialer) take(ctx context.Context, i int) (int, error) {
	var s madeSocket
	select {
	case s = <-d.socks[i]:
	default:
		d.wake()
		select {
		case s = <-d.socks[i]:
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}
	if len(d.socks[i]) < socketsAhead/2 {
		d.wake()
	}
	return s.fd, s.err
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
	fd, err := d.take(ctx, fam)
	if err != nil {
		return nil, opErr(err)
	}
	f := os.NewFile(uintptr(fd), "relay-outbound") // non-blocking: on Go's poller
	defer f.Close()                                // net.FileConn keeps a duplicate
	if dl, ok := ctx.Deadline(); ok {
		f.SetWriteDeadline(dl)
	}
	// A cancelled ctx ends the wait as its deadline would.
	defer context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, opErr(err)
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = unix.Connect(int(fd), sa) }); err != nil {
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
	if cerr != nil {
		return nil, opErr(cerr)
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, opErr(err)
	}
	return c, nil
}

// close stops the maker and closes the sockets it made and no dial took.
func (d *nsDialer) close() {
	close(d.stop)
	d.wg.Wait()
	for _, ch := range d.socks {
		for len(ch) > 0 {
			if s := <-ch; s.err == nil {
				unix.Close(s.fd)
			}
		}
	}
}
