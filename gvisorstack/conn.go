package gvisorstack

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Conn is a TCP connection on a gVisor stack: gonet's net.Conn (which has
// CloseRead and CloseWrite) plus the socket options of *net.TCPConn that
// gVisor supports. Errors are *net.OpError wrapping syscall errnos where
// gVisor's error has one, so errors.Is(err, syscall.ECONNRESET) works.
type Conn struct {
	*gonet.TCPConn
	ep     tcpip.Endpoint
	st     *Stack
	closed atomic.Bool
}

// Read implements net.Conn.
func (c *Conn) Read(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, c.opError("read", net.ErrClosed)
	}
	n, err := c.TCPConn.Read(b)
	return n, c.fixError(err)
}

// Write implements net.Conn.
func (c *Conn) Write(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, c.opError("write", net.ErrClosed)
	}
	n, err := c.TCPConn.Write(b)
	return n, c.fixError(err)
}

// Close implements net.Conn: an orderly close (FIN), or RST with
// SetLinger(0). It does not wait for unsent data.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return c.opError("close", net.ErrClosed)
	}
	c.st.untrack(c)
	return c.TCPConn.Close()
}

// abort resets the connection; the stack uses it on Close.
func (c *Conn) abort() {
	c.closed.Store(true)
	c.ep.Abort()
}

// CloseWrite shuts down the sending side (FIN).
func (c *Conn) CloseWrite() error {
	return c.fixError(c.TCPConn.CloseWrite())
}

// CloseRead shuts down the receiving side.
func (c *Conn) CloseRead() error {
	return c.fixError(c.TCPConn.CloseRead())
}

// SetNoDelay turns Nagle's algorithm off (true) or on (false), as
// *net.TCPConn.SetNoDelay.
func (c *Conn) SetNoDelay(noDelay bool) error {
	c.ep.SocketOptions().SetDelayOption(!noDelay)
	return nil
}

// SetLinger follows *net.TCPConn.SetLinger: sec < 0 is the default
// (orderly close), sec == 0 makes Close send RST and discard unsent data.
// For sec > 0 gVisor's netstack records the value but, as with Go's own
// Close, nothing blocks: Close behaves as with sec < 0.
func (c *Conn) SetLinger(sec int) error {
	lo := tcpip.LingerOption{}
	if sec >= 0 {
		lo.Enabled = true
		lo.Timeout = time.Duration(sec) * time.Second
	}
	c.ep.SocketOptions().SetLinger(lo)
	return nil
}

// SetKeepAlive turns TCP keepalive probes on or off.
func (c *Conn) SetKeepAlive(on bool) error {
	c.ep.SocketOptions().SetKeepAlive(on)
	return nil
}

// SetKeepAlivePeriod sets both the idle time before the first probe and
// the interval between probes, as *net.TCPConn.SetKeepAlivePeriod does.
func (c *Conn) SetKeepAlivePeriod(d time.Duration) error {
	idle := tcpip.KeepaliveIdleOption(d)
	if err := c.ep.SetSockOpt(&idle); err != nil {
		return c.opError("set", errnoOf(err))
	}
	intvl := tcpip.KeepaliveIntervalOption(d)
	if err := c.ep.SetSockOpt(&intvl); err != nil {
		return c.opError("set", errnoOf(err))
	}
	return nil
}

// SetReadBuffer sets the receive buffer size in bytes (SO_RCVBUF); gVisor
// clamps it to the stack's receive-buffer range.
func (c *Conn) SetReadBuffer(bytes int) error {
	c.ep.SocketOptions().SetReceiveBufferSize(int64(bytes), true)
	return nil
}

// SetWriteBuffer sets the send buffer size in bytes (SO_SNDBUF); gVisor
// clamps it to the stack's send-buffer range.
func (c *Conn) SetWriteBuffer(bytes int) error {
	c.ep.SocketOptions().SetSendBufferSize(int64(bytes), true)
	return nil
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// fixError replaces the text-only error gonet makes of a tcpip.Error by
// the matching errno, keeping the *net.OpError around it.
func (c *Conn) fixError(err error) error {
	var oe *net.OpError
	if err == nil || !errors.As(err, &oe) || oe.Err == nil {
		return err
	}
	if errno, ok := errnoByText[oe.Err.Error()]; ok {
		oe.Err = errno
	}
	return err
}

// errnoByText maps the text of the tcpip.Errors gonet flattens to strings
// back to errnos. The texts come from the error types themselves, so a
// change in gVisor's wording cannot make the map stale.
var errnoByText = func() map[string]syscall.Errno {
	m := make(map[string]syscall.Errno)
	for _, e := range errnoTable {
		m[e.err.String()] = e.errno
	}
	return m
}()

var errnoTable = []struct {
	err   tcpip.Error
	errno syscall.Errno
}{
	{&tcpip.ErrConnectionRefused{}, syscall.ECONNREFUSED},
	{&tcpip.ErrConnectionReset{}, syscall.ECONNRESET},
	{&tcpip.ErrConnectionAborted{}, syscall.ECONNABORTED},
	{&tcpip.ErrTimeout{}, syscall.ETIMEDOUT},
	{&tcpip.ErrClosedForSend{}, syscall.EPIPE},
	{&tcpip.ErrPortInUse{}, syscall.EADDRINUSE},
	{&tcpip.ErrNoPortAvailable{}, syscall.EAGAIN}, // gVisor's sentry: EAGAIN where Linux's connect gives EADDRNOTAVAIL
	{&tcpip.ErrBadLocalAddress{}, syscall.EADDRNOTAVAIL},
	{&tcpip.ErrHostUnreachable{}, syscall.EHOSTUNREACH},
	{&tcpip.ErrHostDown{}, syscall.EHOSTDOWN},
	{&tcpip.ErrNetworkUnreachable{}, syscall.ENETUNREACH},
	{&tcpip.ErrNotConnected{}, syscall.ENOTCONN},
	{&tcpip.ErrAlreadyConnected{}, syscall.EISCONN},
	{&tcpip.ErrAlreadyConnecting{}, syscall.EALREADY},
	{&tcpip.ErrInvalidEndpointState{}, syscall.EINVAL},
	{&tcpip.ErrNoBufferSpace{}, syscall.ENOBUFS},
	{&tcpip.ErrMessageTooLong{}, syscall.EMSGSIZE},
	{&tcpip.ErrAborted{}, syscall.EPIPE},
}

// errnoOf returns the errno for a tcpip.Error, or an error with its text.
func errnoOf(err tcpip.Error) error {
	if errno, ok := errnoByText[err.String()]; ok {
		return errno
	}
	return errors.New(err.String())
}

// listener is a net.Listener on a gVisor listening endpoint. It is not
// gonet.TCPListener because the Conns it returns need the endpoint for
// socket options, and Accept after Close must report net.ErrClosed.
type listener struct {
	st    *Stack
	ep    tcpip.Endpoint
	wq    *waiter.Queue
	proto tcpip.NetworkProtocolNumber // the endpoint's: IPv6 for [::], dual-stack or not
	// keepAlive is ListenConfig.KeepAlive, set on each accepted endpoint
	// (gVisor's accepted endpoints do not inherit the listener's).
	keepAlive net.KeepAliveConfig

	closeOnce sync.Once
	done      chan struct{}
}

// setKeepAlive turns keepalive on for ep with idle, intvl and count; a
// zero one keeps gVisor's default, which is Linux's.
func setKeepAlive(ep tcpip.Endpoint, idle, intvl time.Duration, count int) tcpip.Error {
	if idle > 0 {
		o := tcpip.KeepaliveIdleOption(idle)
		if err := ep.SetSockOpt(&o); err != nil {
			return err
		}
	}
	if intvl > 0 {
		o := tcpip.KeepaliveIntervalOption(intvl)
		if err := ep.SetSockOpt(&o); err != nil {
			return err
		}
	}
	if count > 0 {
		if err := ep.SetSockOptInt(tcpip.KeepaliveCountOption, count); err != nil {
			return err
		}
	}
	ep.SocketOptions().SetKeepAlive(true)
	return nil
}

// Accept implements net.Listener.
func (l *listener) Accept() (net.Conn, error) {
	entry, notify := waiter.NewChannelEntry(waiter.ReadableEvents)
	l.wq.EventRegister(&entry)
	defer l.wq.EventUnregister(&entry)
	for {
		select {
		case <-l.done:
			return nil, l.opError(net.ErrClosed)
		default:
		}
		n, wq, err := l.ep.Accept(nil)
		if err == nil && l.keepAlive.Enable {
			if err = setKeepAlive(n, l.keepAlive.Idle, l.keepAlive.Interval, l.keepAlive.Count); err != nil {
				n.Abort()
				return nil, l.opError(errnoOf(err))
			}
		}
		if err == nil {
			c, terr := l.st.track(n, wq)
			if terr != nil {
				return nil, l.opError(net.ErrClosed)
			}
			return c, nil
		}
		if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
			select {
			case <-l.done:
				return nil, l.opError(net.ErrClosed)
			default:
			}
			return nil, l.opError(errnoOf(err))
		}
		select {
		case <-l.done:
			return nil, l.opError(net.ErrClosed)
		case <-notify:
		}
	}
}

// Close implements net.Listener. Connections not yet accepted are reset.
func (l *listener) Close() error {
	if !l.shutdown() {
		return l.opError(net.ErrClosed)
	}
	l.st.untrackListener(l)
	return nil
}

// shutdown closes the endpoint once; it reports whether this call did it.
func (l *listener) shutdown() bool {
	did := false
	l.closeOnce.Do(func() {
		did = true
		close(l.done)
		l.ep.Close()
	})
	return did
}

// Addr implements net.Listener.
func (l *listener) Addr() net.Addr {
	a, err := l.ep.GetLocalAddress()
	if err != nil {
		return tcpAddr(tcpip.FullAddress{}, l.proto)
	}
	return tcpAddr(a, l.proto)
}

func (l *listener) opError(err error) error {
	return &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: err}
}
