package conformance

import (
	"bytes"
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
	readBuf []byte   // what reads read into; scripts do not check the data
	tos     tosTable // IP_TOS of the sockets, for the IP headers
	// burst merges the engine's segments into the packets Linux would
	// hand a TUN with TSO (burst.go); nil with TargetConfig.NoTSO.
	burst *burstCoalescer
	conns map[flowKey]*tcpcore.Conn // connections burst asked about
}

type outbound struct {
	pkt []byte
	at  time.Duration
}

// vsock is one socket: a listener, a connection, or not yet either.
type vsock struct {
	bound     bool             // bind() succeeded: the port is the application's
	b         *tcpcore.Binding // bound, neither listening nor connected
	opts      tcpcore.SockOpts
	rcvbufSet int // what SO_RCVBUF was set to, for getsockopt
	sndbufSet int
	keepalive bool
	l         *tcpcore.Listener
	c         *tcpcore.Conn
	connected bool  // connect completed (EISCONN on a second call)
	tos       uint8 // IP_TOS
}

func newTunstackTarget(cfg TargetConfig) (Target, error) {
	var secret [32]byte
	rand.Read(secret[:])
	e, err := tcpcore.NewEngine(tcpcore.Config{Profile: cfg.Profile, MTU: cfg.MTU, Secret: secret})
	if err != nil {
		return nil, err
	}
	t := &tunstackTarget{cfg: cfg, e: e, now: engineEpoch, tos: tosTable{}}
	t.calls = newDispatcher[*vsock]("tunstack", cfg.SocketFamily6, tunstackOps{t})
	if !cfg.NoTSO {
		t.burst = newBurstCoalescer(t.burstInfo)
		t.conns = map[flowKey]*tcpcore.Conn{}
	}
	return t, nil
}

func (t *tunstackTarget) Name() string       { return "tunstack" }
func (t *tunstackTarget) Now() time.Duration { return t.now.Sub(engineEpoch) }

func (t *tunstackTarget) Inject(pkt []byte) error {
	ip, seg, err := inboundTCP(pkt)
	if err != nil {
		return err
	}
	if t.burst != nil {
		t.burst.inbound(pkt)
	}
	t.e.Input(t.now, ip.src, ip.dst, seg)
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
func (t *tunstackTarget) settle() { t.settleAfter(false) }

// settleAfter is settle after a step that was a system call (byCall) or
// not; what blocked calls produce as they complete counts as a call's.
func (t *tunstackTarget) settleAfter(byCall bool) {
	for {
		t.collect(byCall)
		if !t.calls.complete() {
			t.collect(true)
			return
		}
		byCall = true
	}
}

// collect takes what the engine sent since the last call as one batch,
// merged into TSO packets unless NoTSO.
func (t *tunstackTarget) collect(byCall bool) {
	pkts := t.e.Output(nil)
	batch := make([]outbound, 0, len(pkts))
	for _, p := range pkts {
		b := p.WithHeader(ipHeaderLen(p.Src))
		// Linux behaviour: the IPv4 TTL and the IPv6 Hop Limit both
		// default to 64 (sysctls ip_default_ttl, hop_limit); the IPv6
		// flow label is 0 here, as tunstack sets none.
		putIPHeader(b, ipFields{src: p.Src, dst: p.Dst, tos: t.tos.of(p), ttl: 64}, len(p.Segment()))
		batch = append(batch, outbound{append([]byte(nil), b...), t.Now()})
	}
	if t.burst != nil {
		batch = t.burst.batch(batch, byCall)
	}
	t.out = append(t.out, batch...)
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

func (t *tunstackTarget) Syscall(c *Call) <-chan CallResult {
	return t.calls.Syscall(c, func() { t.settleAfter(true) })
}

// burstInfo tells the coalescer the connection's congestion window. The
// engine ends each of its GSO-sized chunks with PSH (tcpcore's
// gsoChunkSegments sizes them as Linux's tcp_tso_autosize does), so
// TSOSegs stays 0: a packet ends at a PSH.
func (t *tunstackTarget) burstInfo(k flowKey, _ int) burstInfo {
	c := t.conns[k]
	if c == nil {
		for _, f := range t.calls.fds {
			if s := f.sock; s.c != nil && s.c.LocalAddr() == k.local && s.c.RemoteAddr() == k.remote {
				c = s.c
				t.conns[k] = c
				break
			}
		}
	}
	if c == nil {
		return burstInfo{}
	}
	in := c.Info()
	if in.SndMSS <= 0 {
		return burstInfo{}
	}
	return burstInfo{Cwnd: in.CwndBytes / in.SndMSS}
}

// TCPInfo reads a socket's struct tcp_info (tcpInfoTarget).
func (t *tunstackTarget) TCPInfo(fd int) (map[string]uint64, error) { return t.calls.tcpInfo(fd) }

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

// Bind binds the socket to the script's local address and port under the
// engine's bind rules: EADDRINUSE when another socket holds the port and
// SO_REUSEADDR / SO_REUSEPORT do not let them share it; EINVAL on a
// socket already bound, listening or connected, as Linux's inet_bind.
func (o tunstackOps) Bind(s *vsock) error {
	if s.bound || s.l != nil || s.c != nil {
		return syscall.EINVAL
	}
	b, err := o.e.Bind(o.now, netip.AddrPortFrom(o.cfg.BindIP, o.cfg.BindPort), s.opts)
	if err != nil {
		return engineErr(err)
	}
	s.b, s.bound = b, true
	return nil
}

// Listen listens on the bound port (checked again in LISTEN: EADDRINUSE
// next to another listener without SO_REUSEPORT on both); a socket
// listen() finds unbound listens on the script's port.
func (o tunstackOps) Listen(s *vsock, backlog int) error {
	if s.l != nil {
		s.l.SetBacklog(backlog)
		return nil
	}
	if s.c != nil {
		return syscall.EINVAL
	}
	local := netip.AddrPortFrom(o.cfg.BindIP, o.cfg.BindPort)
	var l *tcpcore.Listener
	var err error
	if s.b != nil {
		l, err = s.b.Listen(o.now, backlog, s.opts)
	} else {
		l, err = o.e.Listen(o.now, local, backlog, s.opts)
	}
	if err != nil {
		return engineErr(err)
	}
	s.l, s.b = l, nil
	o.tos.setListener(local, s.tos)
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
	// Linux: the accepted socket inherits the listener's options,
	// TCP_USER_TIMEOUT and IP_TOS among them.
	if conn.UserTimeout() != s.opts.UserTimeout {
		conn.SetUserTimeout(o.now, s.opts.UserTimeout)
	}
	o.tos.setConn(conn, s.tos)
	return &vsock{c: conn, connected: true, opts: s.opts, tos: s.tos}, nil
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
	remote := netip.AddrPortFrom(o.cfg.ConnectIP, o.cfg.ConnectPort)
	var conn *tcpcore.Conn
	var err error
	if s.b != nil {
		// From the bound port: EADDRNOTAVAIL when the 4-tuple is taken.
		conn, err = s.b.Connect(o.now, remote, s.opts)
	} else {
		// An ephemeral port: EADDRNOTAVAIL when none is left toward
		// remote.
		conn, err = o.e.Connect(o.now, netip.AddrPortFrom(o.cfg.BindIP, 0), remote, s.opts)
	}
	if err != nil {
		return engineErr(err)
	}
	s.c, s.b = conn, nil
	o.tos.setConn(conn, s.tos) // before the SYN is collected
	return errInProgress
}

// ConnectResult reports a failed connect's error and, as Linux's
// __inet_stream_connect does (sock_error), consumes it: SO_ERROR then
// reads 0.
func (o tunstackOps) ConnectResult(s *vsock) error {
	conn := s.c
	if !conn.Connected() {
		return errWouldBlock
	}
	if err := conn.HardErr(); err != nil && conn.State() == tcpcore.Closed {
		conn.Err()
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

func (o tunstackOps) Write(s *vsock, b []byte, flags int) (int, error) {
	if s.c == nil {
		return 0, syscall.EPIPE
	}
	if len(b) == 0 {
		return 0, nil
	}
	write := s.c.Write
	if flags&unix.MSG_MORE != 0 {
		write = s.c.WriteMore
	}
	m, err := write(o.now, b)
	if errors.Is(err, tcpcore.ErrWouldBlock) {
		return m, errWouldBlock
	}
	return m, engineErr(err)
}

// KeepError puts back the connection's error that a write took after
// queueing data earlier in the same call (errorKeeper).
func (o tunstackOps) KeepError(s *vsock, err error) {
	if s.c != nil {
		s.c.KeepErr(err)
	}
}

// Shutdown ignores a how other than SHUT_RD, SHUT_WR and SHUT_RDWR. On a
// listener it does what Linux's inet_shutdown does (RFC 9293 defines no
// shutdown of a listener): SHUT_WR changes nothing; a shutdown that
// includes reading disconnects the socket (tcp_disconnect): it stops
// listening, so a SYN to its port meets no listener and accept fails
// with EINVAL, and listen may open it again. A socket neither listening
// nor connected fails with ENOTCONN.
func (o tunstackOps) Shutdown(s *vsock, how int) error {
	if s.l != nil {
		if how == unix.SHUT_RD || how == unix.SHUT_RDWR {
			if s.bound {
				// Linux: a port the application bound stays bound
				// (SOCK_BINDPORT_LOCK).
				s.b = s.l.Unlisten(o.now)
			} else {
				s.l.Close(o.now)
			}
			s.l = nil
		}
		return nil
	}
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
	case s.b != nil:
		s.b.Close()
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
	case level == unix.SOL_SOCKET && opt == unix.SO_REUSEADDR:
		// Read by the bind rules at the next bind, listen or connect.
		s.opts.ReuseAddr = v != 0
	case level == unix.SOL_SOCKET && opt == unix.SO_REUSEPORT:
		s.opts.ReusePort = v != 0
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
		// Linux: 0 or TCP_MIN_MSS (88) to MAX_TCP_WINDOW (32767).
		if v != 0 && (v < 88 || v > 32767) {
			return syscall.EINVAL
		}
		s.opts.MaxSeg = v
	case level == unix.IPPROTO_TCP && opt == unix.TCP_USER_TIMEOUT:
		if v < 0 {
			return syscall.EINVAL // Linux: a negative timeout is EINVAL
		}
		s.opts.UserTimeout = time.Duration(v) * time.Millisecond
		if c != nil {
			return engineErr(c.SetUserTimeout(o.now, s.opts.UserTimeout))
		}
	case level == unix.IPPROTO_IP && opt == unix.IP_TOS:
		// Linux (__ip_sock_set_tos): on a TCP socket the two ECN bits of
		// the value are ignored; the stack owns them.
		s.tos = uint8(v) &^ 3
		switch {
		case c != nil:
			o.tos.setConn(c, s.tos)
		case s.l != nil:
			o.tos.setListener(netip.AddrPortFrom(o.cfg.BindIP, o.cfg.BindPort), s.tos)
		}
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
		if c != nil {
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
	case level == unix.SOL_SOCKET && opt == unix.SO_REUSEADDR:
		return boolInt(s.opts.ReuseAddr), nil
	case level == unix.SOL_SOCKET && opt == unix.SO_REUSEPORT:
		return boolInt(s.opts.ReusePort), nil
	case level == unix.SOL_SOCKET && opt == unix.SO_TYPE:
		return unix.SOCK_STREAM, nil
	case level == unix.IPPROTO_TCP && opt == unix.TCP_NODELAY:
		if c != nil {
			return boolInt(c.NoDelay()), nil
		}
		return boolInt(s.opts.NoDelay), nil
	case level == unix.IPPROTO_TCP && opt == unix.TCP_MAXSEG:
		return o.maxSeg(s), nil
	case level == unix.IPPROTO_TCP && opt == unix.TCP_USER_TIMEOUT:
		if c != nil {
			return int(c.UserTimeout() / time.Millisecond), nil
		}
		return int(s.opts.UserTimeout / time.Millisecond), nil
	case level == unix.IPPROTO_IP && opt == unix.IP_TOS:
		return int(s.tos), nil
	}
	return 0, errNoOption
}

// tcpCANameMax is Linux's TCP_CA_NAME_MAX: the size of a congestion
// control's name with its NUL.
const tcpCANameMax = 16

// SetSockoptBytes is TCP_CONGESTION as Linux's do_tcp_setsockopt reads it:
// EINVAL for optlen < 1, else the name is the bytes up to the first NUL
// within min(optlen, TCP_CA_NAME_MAX-1); a name the engine has no
// controller for fails with ENOENT (tcp_set_congestion_control).
func (o tunstackOps) SetSockoptBytes(s *vsock, level, opt int, v []byte) error {
	if level != unix.IPPROTO_TCP || opt != unix.TCP_CONGESTION {
		return errNoOption
	}
	if len(v) < 1 {
		return syscall.EINVAL
	}
	name := v[:min(len(v), tcpCANameMax-1)]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	var err error
	switch {
	case s.c != nil:
		err = s.c.SetCongestion(string(name))
	case s.l != nil:
		err = s.l.SetCongestion(string(name))
	default:
		err = tcpcore.CheckCongestion(string(name))
	}
	if err != nil {
		return engineErr(err)
	}
	s.opts.Congestion = string(name)
	return nil
}

// GetSockoptBytes is getsockopt TCP_CONGESTION as Linux answers it: the
// name, NUL-padded to TCP_CA_NAME_MAX, cut to optlen.
func (o tunstackOps) GetSockoptBytes(s *vsock, level, opt, optlen int) ([]byte, error) {
	if level != unix.IPPROTO_TCP || opt != unix.TCP_CONGESTION {
		return nil, errNoOption
	}
	name := s.opts.Congestion
	if s.c != nil {
		name = s.c.Congestion()
	} else if name == "" {
		name = o.cfg.Profile.Congestion
	}
	b := make([]byte, tcpCANameMax)
	copy(b, name)
	return b[:min(optlen, tcpCANameMax)], nil
}

// maxSeg is getsockopt TCP_MAXSEG as Linux answers it: the value set
// (user_mss) while the socket is closed or listening, else the MSS in use
// (mss_cache), which is 536 (TCP_MSS_DEFAULT) until a connection sizes it.
func (o tunstackOps) maxSeg(s *vsock) int {
	c := s.c
	closed := c == nil || c.State() == tcpcore.Closed
	if s.opts.MaxSeg > 0 && closed {
		return s.opts.MaxSeg
	}
	switch {
	case c == nil:
		return 536
	case c.State() == tcpcore.SynSent:
		// tcp_connect_init sizes mss_cache for the SYN: the link's MSS,
		// capped by mss_clamp (the value set, else until the peer
		// announces its MSS TCP_MSS_DEFAULT, 536, for IPv4 and
		// IPV6_MIN_MTU - 60, 1220, for IPv6 as tcp_v6_connect sets it),
		// less the timestamp option when it will be offered.
		linkMSS := o.cfg.MTU - ipHeaderLen(o.cfg.RemoteIP) - wire.TCPHeaderLen
		clamp := 536
		if o.cfg.RemoteIP.Is6() {
			clamp = wire.IPv6MinMTU - wire.IPv6HeaderLen - wire.TCPHeaderLen
		}
		m := min(linkMSS, clamp)
		if s.opts.MaxSeg > 0 {
			m = min(linkMSS, s.opts.MaxSeg)
		}
		if o.cfg.Profile.Timestamps {
			m -= 12
		}
		return m
	}
	return c.MSS()
}

// Ioctl answers as Linux's tcp_ioctl: EINVAL on a listener, 0 before the
// handshake completes, SIOCINQ the in-order bytes not yet read (a FIN not
// counted), SIOCOUTQ write_seq - snd_una: the bytes not yet acknowledged,
// sent or not, and the FIN until it is acknowledged.
func (o tunstackOps) Ioctl(s *vsock, req int) (int, error) {
	if req != unix.SIOCINQ && req != unix.SIOCOUTQ {
		return 0, errNoOption
	}
	c := s.c
	switch {
	case s.l != nil:
		return 0, syscall.EINVAL
	case c == nil, c.State() == tcpcore.SynSent, c.State() == tcpcore.SynReceived:
		return 0, nil
	case req == unix.SIOCINQ:
		return c.Buffered(), nil
	}
	n := c.Unsent()
	switch c.State() {
	case tcpcore.FinWait1, tcpcore.Closing, tcpcore.LastAck:
		n++ // the FIN, queued or sent, not yet acknowledged
	}
	return n, nil
}

// WriteFault is a write from a bad pointer: the engine's own checks (a
// pending error, EPIPE after shutdown, a handshake still under way) come
// first, as in Linux's tcp_sendmsg, which fails with EFAULT only when it
// goes to copy the data.
func (o tunstackOps) WriteFault(s *vsock) error {
	if s.c == nil {
		return syscall.EPIPE
	}
	if !s.c.Writable() {
		return errWouldBlock
	}
	if _, err := s.c.Write(o.now, nil); err != nil {
		if errors.Is(err, tcpcore.ErrWouldBlock) {
			return errWouldBlock
		}
		return engineErr(err)
	}
	return syscall.EFAULT
}

// ReadFault is a read into a bad pointer: EFAULT when there is data to
// copy (Linux leaves it queued), otherwise what a read finds.
func (o tunstackOps) ReadFault(s *vsock, n, flags int) error {
	if s.c != nil && s.c.Buffered() > 0 {
		return syscall.EFAULT
	}
	_, err := o.Read(s, n, flags)
	return err
}

// TCPInfo is the engine's struct tcp_info for a connection; a listener or
// an unconnected socket has only its state.
func (o tunstackOps) TCPInfo(s *vsock) (map[string]uint64, error) {
	switch {
	case s.c != nil:
		info := s.c.TCPInfo(o.now)
		return tcpInfoVars(info.Bytes()), nil
	case s.l != nil:
		return map[string]uint64{"tcpi_state": linuxListen}, nil
	}
	return map[string]uint64{"tcpi_state": linuxClose}, nil
}

// tosTable is the IP layer's knowledge of IP_TOS: the engine builds TCP
// segments and the target writes their IP headers, so the target puts on
// each packet the TOS of the socket it belongs to: its connection's, else
// (a SYN-ACK, or a connection not accepted yet) its listener's, else 0. A
// connection keeps its entry after close, as Linux's orphaned sockets and
// TIME-WAIT keep their TOS.
type tosTable map[[2]netip.AddrPort]uint8

// unmapped is ap with an IPv4-mapped address as the IPv4 one it maps: a
// dual-stack socket's addresses as its packets carry them.
func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (t tosTable) setConn(c *tcpcore.Conn, tos uint8) {
	t[[2]netip.AddrPort{unmapped(c.LocalAddr()), unmapped(c.RemoteAddr())}] = tos
}

func (t tosTable) setListener(local netip.AddrPort, tos uint8) {
	t[[2]netip.AddrPort{unmapped(local), {}}] = tos
}

// of is the TOS byte of p. Linux behaviour (ipv6_setsockopt passes
// SOL_IP to ip_setsockopt; inet6_csk_xmit takes the Traffic Class from
// IPV6_TCLASS): IP_TOS sets the TOS of a socket's IPv4 packets, those of
// an IPv6 socket reaching an IPv4-mapped peer included, and never an
// IPv6 packet's Traffic Class, which stays 0 here.
func (t tosTable) of(p *tcpcore.Packet) uint8 {
	if !p.Src.Is4() {
		return 0
	}
	seg := wire.TCP(p.Segment())
	local := netip.AddrPortFrom(p.Src, seg.SrcPort())
	if v, ok := t[[2]netip.AddrPort{local, netip.AddrPortFrom(p.Dst, seg.DstPort())}]; ok {
		return v
	}
	return t[[2]netip.AddrPort{local, {}}]
}
