package conformance

import (
	"crypto/rand"
	"errors"
	"io"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"tunstack/tcpcore"
	"tunstack/wire"
)

// The tunstack target runs a script against our engine in-process, in
// virtual time: the engine is driven directly (no TUN, no goroutines), time
// jumps from event to event, and a blocking system call stays pending until
// an injected packet or a timer makes it complete. Runs are deterministic
// and take milliseconds however long the script's timeouts are.

func init() { RegisterTarget("tunstack", newTunstackTarget) }

// engineEpoch offsets virtual time so that no engine instant is zero.
const engineEpoch = tcpcore.Time(time.Second)

type tunstackTarget struct {
	cfg     TargetConfig
	e       *tcpcore.Engine
	now     tcpcore.Time
	out     []outbound
	calls   *dispatcher[*vsock]
	readBuf []byte // what reads read into; scripts do not check the data
}

type outbound struct {
	pkt []byte
	at  time.Duration
}

// vsock is one socket: a listener, a connection, or not yet either.
type vsock struct {
	bound     bool
	opts      tcpcore.SockOpts
	rcvbufSet int // what SO_RCVBUF was set to, for getsockopt
	sndbufSet int
	keepalive bool
	l         *tcpcore.Listener
	c         *tcpcore.Conn
	connErr   error // a connect that failed, for SO_ERROR
	connected bool  // connect completed (EISCONN on a second call)
}

func newTunstackTarget(cfg TargetConfig) (Target, error) {
	var secret [32]byte
	rand.Read(secret[:])
	e, err := tcpcore.NewEngine(tcpcore.Config{Profile: cfg.Profile, MTU: cfg.MTU, Secret: secret})
	if err != nil {
		return nil, err
	}
	t := &tunstackTarget{cfg: cfg, e: e, now: engineEpoch}
	t.calls = newDispatcher[*vsock]("tunstack", tunstackOps{t})
	return t, nil
}

func (t *tunstackTarget) Name() string       { return "tunstack" }
func (t *tunstackTarget) Now() time.Duration { return t.now.Sub(engineEpoch) }

func (t *tunstackTarget) Inject(pkt []byte) error {
	ip, err := inboundTCP(pkt)
	if err != nil {
		return err
	}
	t.e.Input(t.now, ip.SrcAddr(), ip.DstAddr(), ip.Payload())
	t.settle()
	return nil
}

func (t *tunstackTarget) Outbound(deadline time.Duration) ([]byte, time.Duration, bool, error) {
	limit := engineEpoch.Add(deadline)
	for {
		if len(t.out) > 0 {
			o := t.out[0]
			t.out = t.out[1:]
			return o.pkt, o.at, true, nil
		}
		next := limit
		if dl, ok := t.e.NextDeadline(); ok && dl < next {
			next = dl
		}
		if dl, ok := t.calls.nextDeadline(t.Now()); ok && engineEpoch.Add(dl) < next {
			next = engineEpoch.Add(dl)
		}
		if next > t.now {
			t.now = next
		}
		t.e.Advance(t.now)
		t.settle()
		if len(t.out) == 0 && t.now >= limit {
			return nil, 0, false, nil
		}
	}
}

// settle collects the engine's output and completes blocked calls whose
// condition now holds (which may produce more output).
func (t *tunstackTarget) settle() {
	for {
		t.collect()
		if !t.calls.complete() {
			t.collect()
			return
		}
	}
}

func (t *tunstackTarget) collect() {
	pkts := t.e.Output()
	for _, p := range pkts {
		b := p.WithHeader(wire.IPv4HeaderLen)
		wire.PutIPv4Header(b, wire.IPv4Fields{Src: p.Src.As4(), Dst: p.Dst.As4(), Protocol: wire.ProtoTCP,
			TTL: 64, DontFrag: true}, len(p.Segment()))
		t.out = append(t.out, outbound{append([]byte(nil), b...), t.Now()})
	}
	t.e.Release(pkts)
	for _, w := range t.e.Wakeups() {
		w.Wake()
	}
}

func (t *tunstackTarget) Shell(string, string) error { return ErrNoShell }

func (t *tunstackTarget) Close() error {
	t.calls.close(nil)
	return nil
}

func (t *tunstackTarget) Syscall(c *Call) <-chan CallResult { return t.calls.Syscall(c, t.settle) }

// tunstackOps are the target's socket operations (socketOps): calls into
// the engine.
type tunstackOps struct{ *tunstackTarget }

// engineErr is the error a call fails with for an engine error: its errno,
// EBADF for a connection the engine has already closed, or the error itself
// when it has no errno.
func engineErr(err error) error {
	var en syscall.Errno
	if err != nil && !errors.As(err, &en) && errors.Is(err, tcpcore.ErrClosed) {
		return syscall.EBADF
	}
	return err
}

func (o tunstackOps) Socket() (*vsock, error) { return &vsock{}, nil }

// Bind only marks the socket: the engine binds when it listens or connects.
func (o tunstackOps) Bind(s *vsock) error {
	s.bound = true
	return nil
}

func (o tunstackOps) Listen(s *vsock, backlog int) error {
	if s.l != nil {
		s.l.SetBacklog(backlog)
		return nil
	}
	l, err := o.e.Listen(o.now, netip.AddrPortFrom(o.cfg.LocalIP, o.cfg.BindPort), backlog, s.opts)
	if err != nil {
		return engineErr(err)
	}
	s.l = l
	return nil
}

func (o tunstackOps) Accept(s *vsock) (*vsock, error) {
	if s.l == nil {
		return nil, syscall.EINVAL
	}
	conn, err := s.l.Accept(o.now)
	if errors.Is(err, tcpcore.ErrWouldBlock) {
		return nil, errWouldBlock
	}
	if err != nil {
		return nil, engineErr(err)
	}
	return &vsock{c: conn, connected: true, opts: s.opts}, nil
}

// Connect fails with EALREADY, never waits, while an earlier connect is
// under way.
func (o tunstackOps) Connect(s *vsock) error {
	if s.c != nil {
		if s.connected || s.c.Connected() {
			return syscall.EISCONN
		}
		return syscall.EALREADY
	}
	local := netip.AddrPortFrom(o.cfg.LocalIP, 0)
	if s.bound {
		local = netip.AddrPortFrom(o.cfg.LocalIP, o.cfg.BindPort)
	}
	conn, err := o.e.Connect(o.now, local, netip.AddrPortFrom(o.cfg.RemoteIP, o.cfg.ConnectPort), s.opts)
	if err != nil {
		return engineErr(err)
	}
	s.c = conn
	return errInProgress
}

func (o tunstackOps) ConnectResult(s *vsock) error {
	conn := s.c
	if !conn.Connected() {
		return errWouldBlock
	}
	if err := conn.HardErr(); err != nil && conn.State() == tcpcore.Closed {
		conn.Err()
		s.connErr = err
		return engineErr(err)
	}
	s.connected = true
	return nil
}

func (o tunstackOps) Read(s *vsock, n, _ int) (int, error) {
	if s.c == nil {
		return 0, syscall.ENOTCONN
	}
	if cap(o.readBuf) < n {
		o.readBuf = make([]byte, n)
	}
	m, err := s.c.Read(o.now, o.readBuf[:n])
	switch {
	case m > 0:
		return m, nil
	case err == io.EOF:
		return 0, io.EOF
	case errors.Is(err, tcpcore.ErrWouldBlock):
		return 0, errWouldBlock
	}
	return 0, engineErr(err)
}

func (o tunstackOps) Write(s *vsock, b []byte, _ int) (int, error) {
	if s.c == nil {
		return 0, syscall.EPIPE
	}
	if len(b) == 0 {
		return 0, nil
	}
	m, err := s.c.Write(o.now, b)
	if errors.Is(err, tcpcore.ErrWouldBlock) {
		return m, errWouldBlock
	}
	return m, engineErr(err)
}

// Shutdown ignores a how other than SHUT_RD, SHUT_WR and SHUT_RDWR.
func (o tunstackOps) Shutdown(s *vsock, how int) error {
	if s.c == nil {
		return syscall.ENOTCONN
	}
	if how == unix.SHUT_RD || how == unix.SHUT_RDWR {
		s.c.CloseRead(o.now)
	}
	if how == unix.SHUT_WR || how == unix.SHUT_RDWR {
		if err := s.c.CloseWrite(o.now); err != nil {
			return engineErr(err)
		}
	}
	return nil
}

func (o tunstackOps) Close(s *vsock) time.Duration {
	switch {
	case s.l != nil:
		s.l.Close(o.now)
	case s.c != nil:
		s.c.Close(o.now)
		if s.opts.LingerOn && s.opts.Linger > 0 {
			return s.c.LingerDeadline().Sub(engineEpoch)
		}
	}
	return 0
}

func (o tunstackOps) Lingering(s *vsock) bool { return !s.c.LingerDone(o.now) }

// Poll bits that x/sys/unix does not name on every architecture (Linux values).
const (
	pollRdNorm int16 = 0x40
	pollWrNorm int16 = 0x100
	pollRdHup  int16 = 0x2000
)

// Revents is what Linux's tcp_poll would report for the socket.
func (o tunstackOps) Revents(s *vsock, mask int16) int16 {
	var ev int16
	switch {
	case s.l != nil:
		if s.l.Pending() {
			ev |= unix.POLLIN | pollRdNorm
		}
	case s.c != nil:
		c := s.c
		st := c.State()
		if c.HardErr() != nil {
			ev |= unix.POLLERR
		}
		if st == tcpcore.Closed && c.Connected() {
			ev |= unix.POLLHUP
		}
		if c.Readable() && st != tcpcore.SynSent && st != tcpcore.SynReceived {
			ev |= unix.POLLIN | pollRdNorm
		}
		if st == tcpcore.CloseWait || st == tcpcore.LastAck || st == tcpcore.Closing || st == tcpcore.TimeWait {
			ev |= pollRdHup
		}
		if c.Connected() && c.Writable() && st != tcpcore.Closed {
			ev |= unix.POLLOUT | pollWrNorm
		}
	default:
		ev |= unix.POLLOUT | unix.POLLHUP // an unconnected socket
	}
	return ev & mask
}

func (o tunstackOps) SetLinger(s *vsock, on bool, timeout time.Duration) error {
	s.opts.LingerOn, s.opts.Linger = on, timeout
	if s.c != nil {
		s.c.SetLinger(on, timeout)
	}
	return nil
}

func (o tunstackOps) SetSockopt(s *vsock, level, opt, v int) error {
	c := s.c
	switch {
	case level == unix.SOL_SOCKET && (opt == unix.SO_REUSEADDR || opt == unix.SO_REUSEPORT):
	case level == unix.SOL_SOCKET && opt == unix.SO_RCVBUF:
		s.rcvbufSet, s.opts.RcvBuf = v, v
		if c != nil {
			c.SetReadBuffer(v)
		}
	case level == unix.SOL_SOCKET && opt == unix.SO_SNDBUF:
		s.sndbufSet, s.opts.SndBuf = v, v
		if c != nil {
			c.SetWriteBuffer(v)
		}
	case level == unix.SOL_SOCKET && opt == unix.SO_KEEPALIVE:
		s.keepalive, s.opts.KeepAlive = v != 0, v != 0
		if c != nil {
			c.SetKeepAlive(o.now, v != 0, 0, 0, 0)
		}
	case level == unix.IPPROTO_TCP && opt == unix.TCP_NODELAY:
		s.opts.NoDelay = v != 0
		if c != nil {
			c.SetNoDelay(o.now, v != 0)
		}
	case level == unix.IPPROTO_TCP && opt == unix.TCP_CORK:
		if c != nil {
			c.SetCork(o.now, v != 0)
		}
	case level == unix.IPPROTO_TCP && opt == unix.TCP_QUICKACK:
		if c != nil {
			c.SetQuickAck(o.now, v != 0)
		}
	case level == unix.IPPROTO_TCP && opt == unix.TCP_MAXSEG:
		s.opts.MaxSeg = v
	case level == unix.IPPROTO_TCP && (opt == unix.TCP_KEEPIDLE || opt == unix.TCP_KEEPINTVL || opt == unix.TCP_KEEPCNT):
		d := time.Duration(v) * time.Second
		switch opt {
		case unix.TCP_KEEPIDLE:
			s.opts.KeepIdle = d
		case unix.TCP_KEEPINTVL:
			s.opts.KeepIntvl = d
		default:
			s.opts.KeepCount = v
		}
		if c != nil {
			c.SetKeepAlive(o.now, s.keepalive, s.opts.KeepIdle, s.opts.KeepIntvl, s.opts.KeepCount)
		}
	default:
		return errNoOption
	}
	return nil
}

func (o tunstackOps) GetSockopt(s *vsock, level, opt int) (int, error) {
	c := s.c
	switch {
	case level == unix.SOL_SOCKET && opt == unix.SO_ERROR:
		var err error
		if s.connErr != nil {
			err, s.connErr = s.connErr, nil
		} else if c != nil {
			err = c.Err()
		}
		if err == nil {
			return 0, nil
		}
		var en syscall.Errno
		if errors.As(err, &en) {
			return int(en), nil
		}
		return int(unix.EIO), nil
	case level == unix.SOL_SOCKET && opt == unix.SO_RCVBUF:
		// Linux doubles the value set, to account for its overhead.
		if s.rcvbufSet > 0 {
			return 2 * s.rcvbufSet, nil
		}
		if c != nil {
			return c.ReadBuffer(), nil
		}
		return o.cfg.Profile.RcvBuf, nil
	case level == unix.SOL_SOCKET && opt == unix.SO_SNDBUF:
		if s.sndbufSet > 0 {
			return 2 * s.sndbufSet, nil
		}
		if c != nil {
			return c.WriteBuffer(), nil
		}
		return o.cfg.Profile.SndBuf, nil
	case level == unix.SOL_SOCKET && opt == unix.SO_KEEPALIVE:
		return boolInt(s.keepalive), nil
	case level == unix.SOL_SOCKET && opt == unix.SO_TYPE:
		return unix.SOCK_STREAM, nil
	case level == unix.IPPROTO_TCP && opt == unix.TCP_NODELAY:
		if c != nil {
			return boolInt(c.NoDelay()), nil
		}
		return boolInt(s.opts.NoDelay), nil
	case level == unix.IPPROTO_TCP && opt == unix.TCP_MAXSEG:
		if c != nil && c.Connected() {
			return c.MSS(), nil
		}
		return 536, nil
	}
	return 0, errNoOption
}
