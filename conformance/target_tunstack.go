package conformance

import (
	"crypto/rand"
	"errors"
	"fmt"
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
	socks   map[int]*vsock
	pending []*vcall
}

type outbound struct {
	pkt []byte
	at  time.Duration
}

// vsock is one descriptor of the script.
type vsock struct {
	nonblock  bool
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

type vcall struct {
	call *Call
	ch   chan CallResult
	// try runs the call; done false means it would block.
	try func() (CallResult, bool)
	// deadline for calls that give up by themselves (poll's timeout,
	// SO_LINGER); zero when none.
	deadline  tcpcore.Time
	onTimeout func() CallResult
}

func newTunstackTarget(cfg TargetConfig) (Target, error) {
	var secret [32]byte
	rand.Read(secret[:])
	e, err := tcpcore.NewEngine(tcpcore.Config{Profile: cfg.Profile, MTU: cfg.MTU, Secret: secret})
	if err != nil {
		return nil, err
	}
	return &tunstackTarget{cfg: cfg, e: e, now: engineEpoch, socks: map[int]*vsock{}}, nil
}

func (t *tunstackTarget) Name() string       { return "tunstack" }
func (t *tunstackTarget) Now() time.Duration { return t.now.Sub(engineEpoch) }

func (t *tunstackTarget) Inject(pkt []byte) error {
	ip := wire.IPv4(pkt)
	if err := ip.Valid(); err != nil {
		return fmt.Errorf("inject: %w", err)
	}
	if ip.Protocol() != wire.ProtoTCP {
		return fmt.Errorf("inject: only TCP packets are supported")
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
		for _, p := range t.pending {
			if p.deadline != 0 && p.deadline < next {
				next = p.deadline
			}
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

// settle collects the engine's output and completes pending calls whose
// condition now holds (which may produce more output).
func (t *tunstackTarget) settle() {
	for {
		t.collect()
		progressed := false
		kept := t.pending[:0]
		for _, p := range t.pending {
			if res, done := p.try(); done {
				t.finish(p, res)
				progressed = true
				continue
			}
			if p.deadline != 0 && t.now >= p.deadline {
				t.finish(p, p.onTimeout())
				progressed = true
				continue
			}
			kept = append(kept, p)
		}
		t.pending = kept
		if !progressed {
			t.collect()
			return
		}
	}
}

func (t *tunstackTarget) finish(p *vcall, res CallResult) {
	res.At = t.Now()
	p.ch <- res
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
	for _, p := range t.pending {
		t.finish(p, CallResult{Err: errors.New("target closed while the call was blocked")})
	}
	t.pending = nil
	return nil
}

func (t *tunstackTarget) Syscall(c *Call) <-chan CallResult {
	ch := make(chan CallResult, 1)
	p := &vcall{call: c, ch: ch}
	res, done := t.start(p)
	if done {
		t.settle()
		t.finish(p, res)
		return ch
	}
	t.pending = append(t.pending, p)
	t.settle()
	return ch
}

// errnoOf names the errno behind an engine error.
func errnoOf(err error) CallResult {
	var en syscall.Errno
	if errors.As(err, &en) {
		return CallResult{Ret: -1, Errno: canonicalErrno(unix.ErrnoName(en))}
	}
	if errors.Is(err, tcpcore.ErrClosed) {
		return CallResult{Ret: -1, Errno: "EBADF"}
	}
	return CallResult{Err: err}
}

func fail(name string) CallResult { return CallResult{Ret: -1, Errno: name} }

// start begins a call: it returns the result at once, or sets p.try (and
// maybe a deadline) and reports false when the call blocks.
func (t *tunstackTarget) start(p *vcall) (CallResult, bool) {
	c := p.call
	a := c.Args
	intArg := func(i int) (int, error) {
		if i >= len(a) {
			return 0, fmt.Errorf("%s: missing argument %d", c.Name, i+1)
		}
		v, err := IntValue(a[i])
		return int(v), err
	}
	sock := func() (*vsock, bool) {
		fd, err := intArg(0)
		if err != nil {
			return nil, false
		}
		s, ok := t.socks[fd]
		return s, ok
	}
	switch c.Name {
	case "socket":
		typ, err := intArg(1)
		if err != nil {
			return unsupported("socket type: %v", err), true
		}
		if typ&^(unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC) != unix.SOCK_STREAM {
			return unsupported("only SOCK_STREAM sockets are supported"), true
		}
		fd := c.WantFD
		if fd < 0 {
			fd = 3
			for t.socks[fd] != nil {
				fd++
			}
		}
		t.socks[fd] = &vsock{nonblock: typ&unix.SOCK_NONBLOCK != 0}
		return CallResult{Ret: int64(fd)}, true
	case "bind":
		s, ok := sock()
		if !ok {
			return fail("EBADF"), true
		}
		s.bound = true
		return CallResult{}, true
	case "listen":
		s, ok := sock()
		if !ok {
			return fail("EBADF"), true
		}
		backlog, err := intArg(1)
		if err != nil {
			return unsupported("listen backlog: %v", err), true
		}
		if s.l != nil {
			s.l.SetBacklog(backlog)
			return CallResult{}, true
		}
		l, lerr := t.e.Listen(t.now, netip.AddrPortFrom(t.cfg.LocalIP, t.cfg.BindPort), backlog, s.opts)
		if lerr != nil {
			return errnoOf(lerr), true
		}
		s.l = l
		return CallResult{}, true
	case "accept", "accept4":
		s, ok := sock()
		if !ok {
			return fail("EBADF"), true
		}
		if s.l == nil {
			return fail("EINVAL"), true
		}
		flags := 0
		if len(a) == 4 {
			flags, _ = intArg(3)
		}
		p.try = func() (CallResult, bool) {
			conn, err := s.l.Accept(t.now)
			if errors.Is(err, tcpcore.ErrWouldBlock) {
				return CallResult{}, false
			}
			if err != nil {
				return errnoOf(err), true
			}
			fd := c.WantFD
			if fd < 0 {
				fd = 3
				for t.socks[fd] != nil {
					fd++
				}
			}
			t.socks[fd] = &vsock{c: conn, connected: true, nonblock: flags&unix.SOCK_NONBLOCK != 0, opts: s.opts}
			return CallResult{Ret: int64(fd)}, true
		}
		return t.blocking(p, s.nonblock)
	case "connect":
		s, ok := sock()
		if !ok {
			return fail("EBADF"), true
		}
		if s.c != nil {
			if s.connected || s.c.Connected() {
				return fail("EISCONN"), true
			}
			return fail("EALREADY"), true
		}
		local := netip.AddrPortFrom(t.cfg.LocalIP, 0)
		if s.bound {
			local = netip.AddrPortFrom(t.cfg.LocalIP, t.cfg.BindPort)
		}
		conn, err := t.e.Connect(t.now, local, netip.AddrPortFrom(t.cfg.RemoteIP, t.cfg.ConnectPort), s.opts)
		if err != nil {
			return errnoOf(err), true
		}
		s.c = conn
		if s.nonblock {
			return fail("EINPROGRESS"), true
		}
		p.try = func() (CallResult, bool) {
			if !conn.Connected() {
				return CallResult{}, false
			}
			if err := conn.HardErr(); err != nil && conn.State() == tcpcore.Closed {
				conn.Err()
				s.connErr = err
				return errnoOf(err), true
			}
			s.connected = true
			return CallResult{}, true
		}
		return p.try()
	case "read", "recv":
		s, ok := sock()
		if !ok || s.c == nil {
			if ok {
				return fail("ENOTCONN"), true
			}
			return fail("EBADF"), true
		}
		n, err := intArg(2)
		if err != nil {
			return unsupported("%s length: %v", c.Name, err), true
		}
		flags := 0
		if c.Name == "recv" && len(a) == 4 {
			flags, _ = intArg(3)
		}
		buf := make([]byte, n)
		p.try = func() (CallResult, bool) {
			m, err := s.c.Read(t.now, buf)
			switch {
			case m > 0:
				return CallResult{Ret: int64(m)}, true
			case err == io.EOF:
				return CallResult{Ret: 0}, true
			case errors.Is(err, tcpcore.ErrWouldBlock):
				return CallResult{}, false
			case err != nil:
				return errnoOf(err), true
			}
			return CallResult{Ret: 0}, true
		}
		return t.blocking(p, s.nonblock || flags&unix.MSG_DONTWAIT != 0)
	case "write", "send":
		s, ok := sock()
		if !ok || s.c == nil {
			if ok {
				return fail("EPIPE"), true
			}
			return fail("EBADF"), true
		}
		n, err := intArg(2)
		if err != nil {
			return unsupported("%s length: %v", c.Name, err), true
		}
		flags := 0
		if c.Name == "send" && len(a) == 4 {
			flags, _ = intArg(3)
		}
		buf := make([]byte, n)
		if len(a) > 1 && a[1].Kind == ExprString {
			copy(buf, a[1].Name)
		}
		written := 0
		nonblock := s.nonblock || flags&unix.MSG_DONTWAIT != 0
		p.try = func() (CallResult, bool) {
			for written < n {
				m, err := s.c.Write(t.now, buf[written:])
				written += m
				if errors.Is(err, tcpcore.ErrWouldBlock) {
					if nonblock && written > 0 {
						return CallResult{Ret: int64(written)}, true
					}
					return CallResult{}, false
				}
				if err != nil {
					if written > 0 {
						return CallResult{Ret: int64(written)}, true
					}
					return errnoOf(err), true
				}
			}
			return CallResult{Ret: int64(written)}, true
		}
		return t.blocking(p, nonblock)
	case "close":
		fd, err := intArg(0)
		if err != nil {
			return unsupported("close: %v", err), true
		}
		s, ok := t.socks[fd]
		if !ok {
			return fail("EBADF"), true
		}
		delete(t.socks, fd)
		switch {
		case s.l != nil:
			s.l.Close(t.now)
		case s.c != nil:
			s.c.Close(t.now)
			if s.opts.LingerOn && s.opts.Linger > 0 && !s.nonblock {
				conn := s.c
				p.try = func() (CallResult, bool) { return CallResult{}, conn.LingerDone(t.now) }
				p.deadline = conn.LingerDeadline()
				p.onTimeout = func() CallResult { return CallResult{} }
				return p.try()
			}
		}
		return CallResult{}, true
	case "shutdown":
		s, ok := sock()
		if !ok {
			return fail("EBADF"), true
		}
		how, err := intArg(1)
		if err != nil {
			return unsupported("shutdown how: %v", err), true
		}
		if s.c == nil {
			return fail("ENOTCONN"), true
		}
		if how == unix.SHUT_RD || how == unix.SHUT_RDWR {
			s.c.CloseRead(t.now)
		}
		if how == unix.SHUT_WR || how == unix.SHUT_RDWR {
			if err := s.c.CloseWrite(t.now); err != nil {
				return errnoOf(err), true
			}
		}
		return CallResult{}, true
	case "setsockopt":
		s, ok := sock()
		if !ok {
			return fail("EBADF"), true
		}
		return t.setsockopt(s, a), true
	case "getsockopt":
		s, ok := sock()
		if !ok {
			return fail("EBADF"), true
		}
		return t.getsockopt(s, a), true
	case "fcntl":
		s, ok := sock()
		if !ok {
			return fail("EBADF"), true
		}
		cmd, err := intArg(1)
		if err != nil {
			return unsupported("fcntl command: %v", err), true
		}
		switch cmd {
		case unix.F_GETFL:
			fl := unix.O_RDWR
			if s.nonblock {
				fl |= unix.O_NONBLOCK
			}
			return CallResult{Ret: int64(fl)}, true
		case unix.F_SETFL:
			v, err := intArg(2)
			if err != nil {
				return unsupported("fcntl flags: %v", err), true
			}
			s.nonblock = v&unix.O_NONBLOCK != 0
			return CallResult{}, true
		case unix.F_GETFD, unix.F_SETFD:
			return CallResult{}, true
		}
		return unsupported("fcntl command %d is not supported", cmd), true
	case "poll":
		return t.poll(p)
	}
	return unsupported("system call %s is not supported by the tunstack target", c.Name), true
}

// blocking runs p.try once; a call that would block fails with EAGAIN on a
// non-blocking socket and stays pending otherwise.
func (t *tunstackTarget) blocking(p *vcall, nonblock bool) (CallResult, bool) {
	res, done := p.try()
	if done {
		return res, true
	}
	if nonblock {
		return fail("EAGAIN"), true
	}
	return CallResult{}, false
}

func (t *tunstackTarget) poll(p *vcall) (CallResult, bool) {
	a := p.call.Args
	if len(a) != 3 {
		return unsupported("poll takes 3 arguments"), true
	}
	pes, err := PollEntries(a[0])
	if err != nil {
		return unsupported("%v", err), true
	}
	tv, err := IntValue(a[2])
	if err != nil {
		return unsupported("poll timeout: %v", err), true
	}
	eval := func() (CallResult, bool) {
		res := CallResult{}
		for _, pe := range pes {
			rev := t.revents(pe.FD) & (pe.Events | unix.POLLERR | unix.POLLHUP | unix.POLLNVAL)
			res.Revents = append(res.Revents, rev)
			if rev != 0 {
				res.Ret++
			}
		}
		return res, res.Ret > 0
	}
	p.try = eval
	if res, done := eval(); done || tv == 0 {
		return res, true
	}
	if tv > 0 {
		p.deadline = t.now.Add(time.Duration(tv) * time.Millisecond)
		p.onTimeout = func() CallResult { r, _ := eval(); return r }
	}
	return CallResult{}, false
}

// Poll bits that x/sys/unix does not name on every architecture (Linux values).
const (
	pollRdNorm int16 = 0x40
	pollWrNorm int16 = 0x100
	pollRdHup  int16 = 0x2000
)

// revents is what Linux's tcp_poll would report for the descriptor.
func (t *tunstackTarget) revents(fd int) int16 {
	s, ok := t.socks[fd]
	if !ok {
		return unix.POLLNVAL
	}
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
	return ev
}

func (t *tunstackTarget) setsockopt(s *vsock, a []Expr) CallResult {
	if len(a) != 5 {
		return unsupported("setsockopt takes 5 arguments")
	}
	level, err1 := IntValue(a[1])
	opt, err2 := IntValue(a[2])
	if err1 != nil || err2 != nil {
		return unsupported("setsockopt level and option: expected names such as SOL_SOCKET, SO_LINGER")
	}
	if level == unix.SOL_SOCKET && opt == unix.SO_LINGER {
		on, ok1 := StructField(a[3], "onoff")
		ln, ok2 := StructField(a[3], "linger")
		if !ok1 || !ok2 {
			return unsupported("SO_LINGER takes {onoff=N, linger=N}")
		}
		onv, _ := IntValue(on)
		lnv, _ := IntValue(ln)
		s.opts.LingerOn, s.opts.Linger = onv != 0, time.Duration(lnv)*time.Second
		if s.c != nil {
			s.c.SetLinger(s.opts.LingerOn, s.opts.Linger)
		}
		return CallResult{}
	}
	v64, err := PointerInt(a[3])
	if err != nil {
		return unsupported("setsockopt value: %v", err)
	}
	v := int(v64)
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
			c.SetKeepAlive(t.now, v != 0, 0, 0, 0)
		}
	case level == unix.IPPROTO_TCP && opt == unix.TCP_NODELAY:
		s.opts.NoDelay = v != 0
		if c != nil {
			c.SetNoDelay(t.now, v != 0)
		}
	case level == unix.IPPROTO_TCP && opt == unix.TCP_CORK:
		if c != nil {
			c.SetCork(t.now, v != 0)
		}
	case level == unix.IPPROTO_TCP && opt == unix.TCP_QUICKACK:
		if c != nil {
			c.SetQuickAck(t.now, v != 0)
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
			c.SetKeepAlive(t.now, s.keepalive, s.opts.KeepIdle, s.opts.KeepIntvl, s.opts.KeepCount)
		}
	default:
		return unsupported("setsockopt option %s/%s is not supported by the tunstack target", a[1], a[2])
	}
	return CallResult{}
}

func (t *tunstackTarget) getsockopt(s *vsock, a []Expr) CallResult {
	if len(a) != 5 {
		return unsupported("getsockopt takes 5 arguments")
	}
	level, err1 := IntValue(a[1])
	opt, err2 := IntValue(a[2])
	if err1 != nil || err2 != nil {
		return unsupported("getsockopt level and option: expected names")
	}
	out := func(v int) CallResult { return CallResult{OutInt: map[int]int64{3: int64(v)}} }
	b2i := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
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
			return out(0)
		}
		var en syscall.Errno
		if errors.As(err, &en) {
			return out(int(en))
		}
		return out(int(unix.EIO))
	case level == unix.SOL_SOCKET && opt == unix.SO_RCVBUF:
		// Linux doubles the value set, to account for its overhead.
		if s.rcvbufSet > 0 {
			return out(2 * s.rcvbufSet)
		}
		if c != nil {
			return out(c.ReadBuffer())
		}
		return out(t.cfg.Profile.RcvBuf)
	case level == unix.SOL_SOCKET && opt == unix.SO_SNDBUF:
		if s.sndbufSet > 0 {
			return out(2 * s.sndbufSet)
		}
		if c != nil {
			return out(c.WriteBuffer())
		}
		return out(t.cfg.Profile.SndBuf)
	case level == unix.SOL_SOCKET && opt == unix.SO_KEEPALIVE:
		return out(b2i(s.keepalive))
	case level == unix.SOL_SOCKET && opt == unix.SO_TYPE:
		return out(unix.SOCK_STREAM)
	case level == unix.IPPROTO_TCP && opt == unix.TCP_NODELAY:
		if c != nil {
			return out(b2i(c.NoDelay()))
		}
		return out(b2i(s.opts.NoDelay))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_MAXSEG:
		if c != nil && c.Connected() {
			return out(c.MSS())
		}
		return out(536)
	}
	return unsupported("getsockopt option %s/%s is not supported by the tunstack target", a[1], a[2])
}
