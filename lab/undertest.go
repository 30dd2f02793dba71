package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"tunstack/gvisorstack"
	"tunstack/stack"
	"tunstack/tcpcore"
)

// underTest is the stack under test in the roles the timewait lab needs
// beyond the server interface: a client that dials out, listeners with
// SO_REUSEADDR or SO_REUSEPORT, and the number of its connections in
// TIME-WAIT. Ours and gVisor's are driven through their Go APIs, Linux
// through raw sockets in the server's namespace.
type underTest interface {
	// dial connects to to, waiting at most timeout, and returns the
	// connection and the local port it got.
	dial(to netip.AddrPort, timeout time.Duration) (serverConn, uint16, error)
	// listenWith listens on port of the stack's address with the given
	// backlog and SO_REUSEADDR / SO_REUSEPORT.
	listenWith(port uint16, backlog int, reuseAddr, reusePort bool) (listener, error)
	// timeWait counts the stack's connections in TIME-WAIT (-1 when it
	// cannot tell).
	timeWait() int
}

// newUnderTest returns the stack under test of t in those roles.
func newUnderTest(ctx context.Context, t *topology) (underTest, error) {
	switch {
	case t.tunstack != nil:
		return &tunstackUnderTest{ctx: ctx, s: t.tunstack}, nil
	case t.gvisor != nil:
		return &gvisorUnderTest{ctx: ctx, s: t.gvisor}, nil
	}
	k, ok := t.srv.(*kernelServer)
	if !ok {
		return nil, fmt.Errorf("lab: no stack under test in this topology")
	}
	return &kernelUnderTest{k: k}, nil
}

// kernelUnderTest is Linux in the server namespace.
type kernelUnderTest struct{ k *kernelServer }

func (u *kernelUnderTest) dial(to netip.AddrPort, timeout time.Duration) (serverConn, uint16, error) {
	var fd int
	err := u.k.ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("socket: %w", err)
	}
	f, err := newSockFile(u.k.ctx, fd, "client")
	if err != nil {
		return nil, 0, err
	}
	f.control(func(fd int) {
		err = unix.Connect(fd, &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()})
	})
	if err != nil && err != unix.EINPROGRESS {
		f.close()
		return nil, 0, os.NewSyscallError("connect", err)
	}
	var port uint16
	f.control(func(fd int) {
		if sa, err := unix.Getsockname(fd); err == nil {
			if in, ok := sa.(*unix.SockaddrInet4); ok {
				port = uint16(in.Port)
			}
		}
	})
	if err := f.waitConnected(timeout); err != nil {
		f.close()
		return nil, port, err
	}
	return &kernelConn{f: f, port: to.Port()}, port, nil
}

func (u *kernelUnderTest) listenWith(port uint16, backlog int, reuseAddr, reusePort bool) (listener, error) {
	return u.k.listenWith(port, backlog, reuseAddr, reusePort)
}

func (u *kernelUnderTest) timeWait() int {
	n := -1
	u.k.ns.Do(func() error {
		n = countState("/proc/thread-self/net/tcp", 0, tcpStateTimeWait)
		return nil
	})
	return n
}

// gvisorUnderTest is gVisor's netstack through gvisorstack.
type gvisorUnderTest struct {
	ctx context.Context
	s   *gvisorstack.Stack
}

func (u *gvisorUnderTest) dial(to netip.AddrPort, timeout time.Duration) (serverConn, uint16, error) {
	return dialUser(u.ctx, u.s.Dial, to, timeout)
}

func (u *gvisorUnderTest) listenWith(port uint16, backlog int, reuseAddr, reusePort bool) (listener, error) {
	return listenUser(u.ctx, u.s.ListenWith, port, backlog, reuseAddr, reusePort)
}

func (u *gvisorUnderTest) timeWait() int { return countTimeWait(u.s) }

// tunstackUnderTest is our stack.
type tunstackUnderTest struct {
	ctx context.Context
	s   *stack.Stack
}

func (u *tunstackUnderTest) listenWith(port uint16, backlog int, reuseAddr, reusePort bool) (listener, error) {
	return listenUser(u.ctx, u.s.ListenWith, port, backlog, reuseAddr, reusePort)
}

func (u *tunstackUnderTest) timeWait() int { return countTimeWait(u.s) }

// countTimeWait counts a user-space stack's sockets in TIME-WAIT.
func countTimeWait(in stack.Inspector) int {
	n := 0
	for _, s := range in.Sockets() {
		if s.State == tcpcore.TimeWait {
			n++
		}
	}
	return n
}

// listenUser listens with a user-space stack's ListenWith.
func listenUser(ctx context.Context, listen func(context.Context, stack.ListenConfig, string, string) (net.Listener, error), port uint16, backlog int, reuseAddr, reusePort bool) (listener, error) {
	lc := stack.ListenConfig{ReuseAddr: reuseAddr, ReusePort: reusePort, Backlog: backlog}
	l, err := listen(ctx, lc, "tcp4", fmt.Sprintf(":%d", port))
	if err != nil {
		return nil, err
	}
	return &userListener{l: l, backlog: backlog}, nil
}

func (u *tunstackUnderTest) dial(to netip.AddrPort, timeout time.Duration) (serverConn, uint16, error) {
	return dialUser(u.ctx, u.s.Dial, to, timeout)
}

// dialUser dials with a user-space stack's Dial and returns the
// connection with its local port.
func dialUser(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), to netip.AddrPort, timeout time.Duration) (serverConn, uint16, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := dial(ctx, "tcp4", to.String())
	if err != nil {
		return nil, 0, err
	}
	var port uint16
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		port = uint16(a.Port)
	}
	return &userConn{c: c}, port, nil
}
