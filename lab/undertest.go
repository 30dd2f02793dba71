package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

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
		return &userUnderTest{ctx: ctx, s: t.tunstack, addr: t.addrs.server}, nil
	case t.gvisor != nil:
		return &userUnderTest{ctx: ctx, s: t.gvisor, addr: t.addrs.server}, nil
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
		fd, err = unix.Socket(socketDomain(to.Addr()), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
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
		err = unix.Connect(fd, sockaddrOf(to))
	})
	if err != nil && err != unix.EINPROGRESS {
		f.close()
		return nil, 0, os.NewSyscallError("connect", err)
	}
	var port uint16
	f.control(func(fd int) {
		if sa, err := unix.Getsockname(fd); err == nil {
			port = sockaddrPort(sa)
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

// userStack is what ours (stack.Stack) and gVisor's (gvisorstack.Stack)
// both offer, with the same signatures.
type userStack interface {
	Dial(ctx context.Context, network, address string) (net.Conn, error)
	ListenWith(ctx context.Context, lc stack.ListenConfig, network, address string) (net.Listener, error)
	stack.Inspector
}

// userUnderTest is a user-space stack, ours or gVisor's, through its Go API.
type userUnderTest struct {
	ctx  context.Context
	s    userStack
	addr netip.Addr // the stack's own address in the experiment's family
}

func (u *userUnderTest) dial(to netip.AddrPort, timeout time.Duration) (serverConn, uint16, error) {
	ctx, cancel := context.WithTimeout(u.ctx, timeout)
	defer cancel()
	c, err := u.s.Dial(ctx, tcpNetwork(to.Addr()), to.String())
	if err != nil {
		return nil, 0, err
	}
	var port uint16
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		port = uint16(a.Port)
	}
	return &userConn{c: c}, port, nil
}

func (u *userUnderTest) listenWith(port uint16, backlog int, reuseAddr, reusePort bool) (listener, error) {
	lc := stack.ListenConfig{ReuseAddr: reuseAddr, ReusePort: reusePort, Backlog: backlog}
	l, err := u.s.ListenWith(u.ctx, lc, tcpNetwork(u.addr), fmt.Sprintf(":%d", port))
	if err != nil {
		return nil, err
	}
	return &userListener{l: l, backlog: backlog}, nil
}

// timeWait counts the stack's sockets in TIME-WAIT.
func (u *userUnderTest) timeWait() int {
	n := 0
	for _, s := range u.s.Sockets() {
		if s.State == tcpcore.TimeWait {
			n++
		}
	}
	return n
}
