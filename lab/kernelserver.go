package lab

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"tunstack/lab/netns"
)

// kernelServer is Linux's own TCP in the server namespace. Its listener is
// a raw socket: listen(2) gets exactly the backlog asked for, and accept(2)
// is called only when the experiment says so (Go's net.Listen would pick
// its own backlog).
type kernelServer struct {
	ns   *netns.NS
	addr netip.Addr
	ctx  context.Context // cancels every wait on the server's sockets
}

func (k *kernelServer) listen(port uint16, backlog int) (listener, error) {
	return k.listenWith(port, backlog, true, false)
}

// listenWith is listen with SO_REUSEADDR and SO_REUSEPORT as given; bind
// and listen errors keep their errno (os.SyscallError).
func (k *kernelServer) listenWith(port uint16, backlog int, reuseAddr, reusePort bool) (listener, error) {
	var fd int
	err := k.ns.Do(func() error {
		var err error
		fd, err = unix.Socket(socketDomain(k.addr), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, boolInt(reuseAddr))
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, boolInt(reusePort))
		if err := unix.Bind(fd, sockaddrOf(netip.AddrPortFrom(k.addr, port))); err != nil {
			unix.Close(fd)
			return os.NewSyscallError("bind", err)
		}
		if err := unix.Listen(fd, backlog); err != nil {
			unix.Close(fd)
			return os.NewSyscallError("listen", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	f, err := newSockFile(k.ctx, fd, "listener")
	if err != nil {
		return nil, err
	}
	return &kernelListener{ns: k.ns, f: f, port: port}, nil
}

// counters reads the namespace's TcpExt and Tcp counters, which Linux
// keeps per network namespace, as nstat shows them.
func (k *kernelServer) counters() []Counter {
	c, err := k.ns.TCPCounters()
	if err != nil {
		return nil
	}
	var cs []Counter
	for _, n := range []string{"ListenOverflows", "ListenDrops", "SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed", "TCPReqQFullDoCookies", "TCPReqQFullDrop"} {
		cs = append(cs, Counter{n, c.TcpExt[n]})
	}
	return append(cs, Counter{"RetransSegs", c.Tcp["RetransSegs"]})
}

type kernelListener struct {
	ns   *netns.NS
	port uint16
	f    *sockFile

	mu     sync.Mutex
	closed bool
}

func (l *kernelListener) accept(timeout time.Duration) (serverConn, error) {
	var (
		nfd int
		sa  unix.Sockaddr
	)
	err := l.f.waitRead(timeout, func(fd int) error {
		var err error
		nfd, sa, err = unix.Accept4(fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return err
	})
	if err != nil {
		return nil, err
	}
	port := sockaddrPort(sa)
	f, err := newSockFile(l.f.ctx, nfd, "accepted")
	if err != nil {
		return nil, err
	}
	return &kernelConn{f: f, port: port}, nil
}

// queue reads Recv-Q and Send-Q as ss does, from TCP_INFO on the
// listening socket (tcpi_unacked is the accept queue's length, tcpi_sacked
// the backlog), and counts SYN-RECV entries in /proc/net/tcp.
func (l *kernelListener) queue() Queue {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := Queue{AcceptQueue: -1, Backlog: -1, SynQueue: -1}
	if l.closed {
		return q
	}
	l.f.control(func(fd int) {
		if ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			q.AcceptQueue, q.Backlog = int(ti.Unacked), int(ti.Sacked)
		}
	})
	l.ns.Do(func() error {
		q.SynQueue = countState("/proc/thread-self/net/tcp", l.port, tcpStateSynRecv)
		return nil
	})
	return q
}

// The states of /proc/net/tcp's "st" column (Linux's TCP_* numbering).
const (
	tcpStateSynRecv  = "03"
	tcpStateTimeWait = "06"
)

// countState counts the sockets of /proc/net/tcp in state (one of the
// tcpState constants) on local port, or on any port when port is 0.
func countState(path string, port uint16, state string) int {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	n := 0
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && (port == 0 || strings.HasSuffix(fields[1], want)) && fields[3] == state {
			n++
		}
	}
	return n
}

func (l *kernelListener) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.f.close()
}

type kernelConn struct {
	f    *sockFile
	port uint16
}

func (c *kernelConn) remotePort() uint16 { return c.port }

func (c *kernelConn) read(p []byte, timeout time.Duration) (int, error) {
	return c.f.read(p, timeout)
}

func (c *kernelConn) write(p []byte, timeout time.Duration) (int, error) {
	return sockWriteAll(c.f, p, timeout)
}

func (c *kernelConn) setNoDelay(on bool) error {
	var err error
	c.f.control(func(fd int) { err = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, boolInt(on)) })
	return err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (c *kernelConn) close() error { return c.f.close() }
