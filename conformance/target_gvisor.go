package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/syserr"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/faketime"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"tunstack/gvisorstack"
	"tunstack/netif"
	"tunstack/wire"
)

// The gvisor target runs a script against gVisor's netstack in-process, in
// virtual time, the way the tunstack target runs our engine.
//
// Building the stack. gvisorstack.New builds the gVisor stack and applies
// the profile through gvisorstack's own option mapping (OptionsFromProfile
// and its unexported apply), so the options are the ones `serve --stack
// gvisor` and the labs use. Its link adapter moves packets on a reader and a
// writer goroutine, which would make packet times depend on the scheduler,
// so the target then removes that NIC and attaches its own syncLink: an
// inbound packet is handed to gVisor's dispatcher on the runner's goroutine,
// and an outbound packet is copied and stamped with the virtual time inside
// gVisor's WritePackets call.
//
// Time. Every gVisor timer runs on a faketime.ManualClock, wrapped in vclock
// so the target knows when the next timer is due (ManualClock does not say).
// Outbound advances the clock exactly to the earlier of that instant and the
// runner's deadline; ManualClock runs the due callbacks on the calling
// goroutine, and gVisor's TCP timers send their segments from there, at that
// virtual instant.
//
// gVisor's goroutines. Inbound segments are processed by gVisor's TCP
// processor goroutines (transport/tcp/dispatcher.go), not inline. After each
// injected packet, system call and clock step the target settles: it pauses
// and resumes the stack (Stack.Pause returns only once every processor has
// drained its queue and is idle), runs timers due now (ManualClock.Advance(0)
// also waits for the goroutines it starts for zero-delay timers), pauses and
// resumes again, and retries blocked calls, until a round changes nothing
// (no packet written, no timer fired, no call completed). The virtual clock
// does not move while gVisor works, so every packet carries the virtual time
// of the event that caused it, whatever the scheduler does.
//
// Nondeterminism left: ISNs and timestamp offsets are random (gVisor seeds
// them from crypto/rand; the runner learns them from the SYN or SYN-ACK);
// and timers that fire at the very same virtual instant run in ManualClock's
// map order, so two connections whose timers coincide may send in either
// order (one connection's timers coincide only when they were armed for the
// same instant, which scripts do not rely on).
//
// System calls follow gVisor's own syscall layer (pkg/sentry/socket/netstack
// and sentry/syscalls/linux/sys_socket.go): listen passes backlog+1, SO_RCVBUF
// and SO_SNDBUF are doubled and clamped as clampBufSize does, a blocking
// connect waits for writability and calls Connect again for the result,
// close with SO_LINGER waits until the FIN is acknowledged or the timeout
// passes, and errors are named by syserr.TranslateNetstackError, the sentry's
// mapping of tcpip errors to Linux errnos.

func init() { RegisterTarget("gvisor", newGvisorTarget) }

// gvNIC is the target's own NIC; gvisorstack.New creates NIC 1 on its
// goroutine-driven link, which the target removes.
const gvNIC tcpip.NICID = 2

type gvisorTarget struct {
	cfg     TargetConfig
	clock   *vclock
	st      *gvisorstack.Stack
	s       *stack.Stack
	link    *syncLink
	opts    gvisorstack.Options
	socks   map[int]*gsock
	pending []*gcall
}

// gsock is one descriptor of the script.
type gsock struct {
	ep       tcpip.Endpoint
	wq       *waiter.Queue
	nonblock bool
}

type gcall struct {
	call *Call
	ch   chan CallResult
	// try runs the call; done false means it would block.
	try func() (CallResult, bool)
	// deadline (target time) for calls that give up by themselves (poll's
	// timeout, SO_LINGER); zero when none.
	deadline  time.Duration
	onTimeout func() CallResult
}

func newGvisorTarget(cfg TargetConfig) (Target, error) {
	clock := newVClock()
	a, b := netif.NewPipe(cfg.MTU)
	b.Close() // gvisorstack owns a and closes the pipe; nothing uses b
	st, err := gvisorstack.New(a, gvisorstack.Config{Addr: cfg.LocalIP, Profile: cfg.Profile, Clock: clock})
	if err != nil {
		return nil, err
	}
	t := &gvisorTarget{cfg: cfg, clock: clock, st: st, s: st.GVisor(), opts: st.Options(),
		link: &syncLink{mtu: uint32(cfg.MTU), clock: clock}, socks: map[int]*gsock{}}
	if err := t.attach(); err != nil {
		st.Close()
		return nil, err
	}
	return t, nil
}

// attach replaces gvisorstack's NIC by the target's synchronous one.
func (t *gvisorTarget) attach() error {
	if err := t.s.RemoveNIC(1); err != nil {
		return fmt.Errorf("gvisor: remove gvisorstack's NIC: %s", err)
	}
	if err := t.s.CreateNIC(gvNIC, t.link); err != nil {
		return fmt.Errorf("gvisor: create NIC: %s", err)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{
		Address: tcpip.AddrFrom4(t.cfg.LocalIP.As4()), PrefixLen: 32}}
	if err := t.s.AddProtocolAddress(gvNIC, pa, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("gvisor: add address %v: %s", t.cfg.LocalIP, err)
	}
	all, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{}), tcpip.MaskFromBytes([]byte{0, 0, 0, 0}))
	t.s.SetRouteTable([]tcpip.Route{{Destination: all, NIC: gvNIC}})
	return nil
}

func (t *gvisorTarget) Name() string       { return "gvisor" }
func (t *gvisorTarget) Now() time.Duration { return t.clock.elapsed() }

func (t *gvisorTarget) Inject(pkt []byte) error {
	ip := wire.IPv4(pkt)
	if err := ip.Valid(); err != nil {
		return fmt.Errorf("inject: %w", err)
	}
	if ip.Protocol() != wire.ProtoTCP {
		return fmt.Errorf("inject: only TCP packets are supported")
	}
	d := t.link.dispatcher()
	if d == nil {
		return errors.New("inject: gVisor's NIC is not attached")
	}
	pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
	d.DeliverNetworkPacket(ipv4.ProtocolNumber, pb)
	pb.DecRef()
	t.settle()
	return nil
}

func (t *gvisorTarget) Outbound(deadline time.Duration) ([]byte, time.Duration, bool, error) {
	for {
		if o, ok := t.link.pop(); ok {
			return o.pkt, o.at, true, nil
		}
		now := t.Now()
		next := deadline
		if dl, ok := t.clock.next(); ok && dl < next {
			next = dl
		}
		for _, p := range t.pending {
			if p.deadline != 0 && p.deadline > now && p.deadline < next {
				next = p.deadline
			}
		}
		if next > now {
			t.clock.mc.Advance(next - now)
		}
		t.settle()
		if t.link.empty() && t.Now() >= deadline {
			return nil, 0, false, nil
		}
	}
}

// settle lets gVisor finish everything the last step caused, at the current
// virtual instant, and completes the blocked calls that can now complete.
func (t *gvisorTarget) settle() {
	for round := 0; round < 1000; round++ {
		before := t.generation()
		t.s.Pause()
		t.s.Resume()
		t.clock.mc.Advance(0)
		t.s.Pause()
		t.s.Resume()
		progressed := t.completePending()
		if !progressed && t.generation() == before {
			return
		}
	}
}

// generation changes whenever gVisor sends a packet or a timer fires.
func (t *gvisorTarget) generation() uint64 { return t.link.written() + t.clock.firedCount() }

func (t *gvisorTarget) completePending() bool {
	progressed := false
	for i := 0; i < len(t.pending); {
		p := t.pending[i]
		res, done := p.try()
		if !done && p.deadline != 0 && t.Now() >= p.deadline {
			res, done = p.onTimeout(), true
		}
		if !done {
			i++
			continue
		}
		t.pending = append(t.pending[:i], t.pending[i+1:]...)
		t.finish(p, res)
		progressed = true
	}
	return progressed
}

func (t *gvisorTarget) finish(p *gcall, res CallResult) {
	res.At = t.Now()
	p.ch <- res
}

func (t *gvisorTarget) Shell(string, string) error { return ErrNoShell }

func (t *gvisorTarget) Close() error {
	for _, p := range t.pending {
		t.finish(p, CallResult{Err: errors.New("target closed while the call was blocked")})
	}
	t.pending = nil
	for fd, s := range t.socks {
		s.ep.Abort()
		delete(t.socks, fd)
	}
	return t.st.Close()
}

func (t *gvisorTarget) Syscall(c *Call) <-chan CallResult {
	ch := make(chan CallResult, 1)
	p := &gcall{call: c, ch: ch}
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

// gvErrno names the Linux errno gVisor's syscall layer returns for err.
func gvErrno(err tcpip.Error) CallResult {
	return CallResult{Ret: -1, Errno: canonicalErrno(unix.ErrnoName(syscall.Errno(syserr.TranslateNetstackError(err).ToLinux())))}
}

func gvErrnoNum(err tcpip.Error) int {
	return int(syserr.TranslateNetstackError(err).ToLinux())
}

func (t *gvisorTarget) localAddr() tcpip.FullAddress {
	return tcpip.FullAddress{Addr: tcpip.AddrFrom4(t.cfg.LocalIP.As4()), Port: t.cfg.BindPort}
}

func (t *gvisorTarget) remoteAddr() tcpip.FullAddress {
	return tcpip.FullAddress{Addr: tcpip.AddrFrom4(t.cfg.RemoteIP.As4()), Port: t.cfg.ConnectPort}
}

func (t *gvisorTarget) newFD(want int) int {
	if want >= 0 {
		return want
	}
	fd := 3
	for t.socks[fd] != nil {
		fd++
	}
	return fd
}

// start begins a call: it returns the result at once, or sets p.try (and
// maybe a deadline) and reports false when the call blocks.
func (t *gvisorTarget) start(p *gcall) (CallResult, bool) {
	c := p.call
	a := c.Args
	intArg := func(i int) (int, error) {
		if i >= len(a) {
			return 0, fmt.Errorf("%s: missing argument %d", c.Name, i+1)
		}
		v, err := IntValue(a[i])
		return int(v), err
	}
	sock := func() (*gsock, bool) {
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
		var wq waiter.Queue
		ep, terr := t.s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
		if terr != nil {
			return gvErrno(terr), true
		}
		fd := t.newFD(c.WantFD)
		t.socks[fd] = &gsock{ep: ep, wq: &wq, nonblock: typ&unix.SOCK_NONBLOCK != 0}
		return CallResult{Ret: int64(fd)}, true
	case "bind":
		s, ok := sock()
		if !ok {
			return fail("EBADF"), true
		}
		if err := s.ep.Bind(t.localAddr()); err != nil {
			return gvErrno(err), true
		}
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
		// sys_socket.go: the backlog is an unsigned int capped at
		// somaxconn, plus one for parity with Linux's accept queue.
		b := uint32(backlog)
		if b > uint32(t.opts.Somaxconn) {
			b = uint32(t.opts.Somaxconn)
		}
		if t.opts.BacklogPlusOne {
			b++
		}
		if err := s.ep.Listen(int(b)); err != nil {
			return gvErrno(err), true
		}
		return CallResult{}, true
	case "accept", "accept4":
		s, ok := sock()
		if !ok {
			return fail("EBADF"), true
		}
		flags := 0
		if len(a) == 4 {
			flags, _ = intArg(3)
		}
		p.try = func() (CallResult, bool) {
			nep, nwq, err := s.ep.Accept(nil)
			if _, wb := err.(*tcpip.ErrWouldBlock); wb {
				return CallResult{}, false
			}
			if err != nil {
				return gvErrno(err), true
			}
			fd := t.newFD(c.WantFD)
			t.socks[fd] = &gsock{ep: nep, wq: nwq, nonblock: flags&unix.SOCK_NONBLOCK != 0}
			return CallResult{Ret: int64(fd)}, true
		}
		return t.blocking(p, s.nonblock)
	case "connect":
		s, ok := sock()
		if !ok {
			return fail("EBADF"), true
		}
		addr := t.remoteAddr()
		err := s.ep.Connect(addr)
		if s.nonblock {
			if err != nil {
				return gvErrno(err), true
			}
			return CallResult{}, true
		}
		switch err.(type) {
		case *tcpip.ErrConnectStarted, *tcpip.ErrAlreadyConnecting:
		case nil:
			return CallResult{}, true
		default:
			return gvErrno(err), true
		}
		// As the sentry: wait until writable, then Connect again for the
		// result.
		p.try = func() (CallResult, bool) {
			if s.ep.Readiness(waiter.WritableEvents|waiter.EventErr|waiter.EventHUp) == 0 {
				return CallResult{}, false
			}
			if err := s.ep.Connect(addr); err != nil {
				return gvErrno(err), true
			}
			return CallResult{}, true
		}
		return p.try()
	case "read", "recv":
		s, ok := sock()
		if !ok {
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
		if n == 0 {
			return CallResult{}, true
		}
		p.try = func() (CallResult, bool) {
			var buf bytes.Buffer
			res, err := s.ep.Read(&tcpip.LimitedWriter{W: &buf, N: int64(n)}, tcpip.ReadOptions{Peek: flags&unix.MSG_PEEK != 0})
			switch err.(type) {
			case nil:
				return CallResult{Ret: int64(res.Count)}, true
			case *tcpip.ErrWouldBlock:
				return CallResult{}, false
			case *tcpip.ErrClosedForReceive:
				return CallResult{Ret: 0}, true
			}
			return gvErrno(err), true
		}
		return t.blocking(p, s.nonblock || flags&unix.MSG_DONTWAIT != 0)
	case "write", "send":
		s, ok := sock()
		if !ok {
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
		opts := tcpip.WriteOptions{More: flags&unix.MSG_MORE != 0}
		p.try = func() (CallResult, bool) {
			for written < n {
				m, err := s.ep.Write(bytes.NewReader(buf[written:]), opts)
				written += int(m)
				_, wb := err.(*tcpip.ErrWouldBlock)
				if wb || err == nil && m == 0 {
					if nonblock && written > 0 {
						return CallResult{Ret: int64(written)}, true
					}
					return CallResult{}, false
				}
				if err != nil {
					if written > 0 {
						return CallResult{Ret: int64(written)}, true
					}
					return gvErrno(err), true
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
		s.ep.Close()
		// The sentry's Release: with SO_LINGER on and a non-zero timeout,
		// close waits until the endpoint leaves FIN-WAIT-1, CLOSING and
		// LAST-ACK, or the timeout passes (zero is handled by Close: RST).
		lo := s.ep.SocketOptions().GetLinger()
		if lo.Enabled && lo.Timeout > 0 && !s.nonblock {
			p.try = func() (CallResult, bool) {
				switch tcp.EndpointState(s.ep.State()) {
				case tcp.StateFinWait1, tcp.StateClosing, tcp.StateLastAck:
					return CallResult{}, false
				}
				return CallResult{}, true
			}
			p.deadline = t.Now() + lo.Timeout
			p.onTimeout = func() CallResult { return CallResult{} }
			return p.try()
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
		var f tcpip.ShutdownFlags
		switch how {
		case unix.SHUT_RD:
			f = tcpip.ShutdownRead
		case unix.SHUT_WR:
			f = tcpip.ShutdownWrite
		case unix.SHUT_RDWR:
			f = tcpip.ShutdownRead | tcpip.ShutdownWrite
		default:
			return fail("EINVAL"), true
		}
		if err := s.ep.Shutdown(f); err != nil {
			return gvErrno(err), true
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
	return unsupported("system call %s is not supported by the gvisor target", c.Name), true
}

// blocking runs p.try once; a call that would block fails with EAGAIN on a
// non-blocking socket and stays pending otherwise.
func (t *gvisorTarget) blocking(p *gcall, nonblock bool) (CallResult, bool) {
	res, done := p.try()
	if done {
		return res, true
	}
	if nonblock {
		return fail("EAGAIN"), true
	}
	return CallResult{}, false
}

func (t *gvisorTarget) poll(p *gcall) (CallResult, bool) {
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
			var rev int16
			if s, ok := t.socks[pe.FD]; ok {
				mask := waiter.EventMask(uint16(pe.Events)) | waiter.EventErr | waiter.EventHUp
				rev = int16(s.ep.Readiness(mask) & mask)
			} else {
				rev = unix.POLLNVAL
			}
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
		p.deadline = t.Now() + time.Duration(tv)*time.Millisecond
		p.onTimeout = func() CallResult { r, _ := eval(); return r }
	}
	return CallResult{}, false
}

// clampBufSize is the sentry's rule for SO_SNDBUF and SO_RCVBUF
// (sentry/socket/netstack/netstack.go): cap at the maximum, double for
// overhead as Linux does, raise to the minimum.
func clampBufSize(v, lo, hi int64) int64 {
	if v > hi {
		v = hi
	}
	if v >= math.MaxInt32/2 {
		return math.MaxInt32
	}
	return max(2*v, lo)
}

func (t *gvisorTarget) setsockopt(s *gsock, a []Expr) CallResult {
	if len(a) != 5 {
		return unsupported("setsockopt takes 5 arguments")
	}
	level, err1 := IntValue(a[1])
	opt, err2 := IntValue(a[2])
	if err1 != nil || err2 != nil {
		return unsupported("setsockopt level and option: expected names such as SOL_SOCKET, SO_LINGER")
	}
	so := s.ep.SocketOptions()
	if level == unix.SOL_SOCKET && opt == unix.SO_LINGER {
		on, ok1 := StructField(a[3], "onoff")
		ln, ok2 := StructField(a[3], "linger")
		if !ok1 || !ok2 {
			return unsupported("SO_LINGER takes {onoff=N, linger=N}")
		}
		onv, _ := IntValue(on)
		lnv, _ := IntValue(ln)
		so.SetLinger(tcpip.LingerOption{Enabled: onv != 0, Timeout: time.Duration(lnv) * time.Second})
		return CallResult{}
	}
	v64, err := PointerInt(a[3])
	if err != nil {
		return unsupported("setsockopt value: %v", err)
	}
	v := int(v64)
	result := func(err tcpip.Error) CallResult {
		if err != nil {
			return gvErrno(err)
		}
		return CallResult{}
	}
	secs := func(v int) time.Duration { return time.Duration(v) * time.Second }
	switch {
	case level == unix.SOL_SOCKET && opt == unix.SO_REUSEADDR:
		so.SetReuseAddress(v != 0)
	case level == unix.SOL_SOCKET && opt == unix.SO_REUSEPORT:
		so.SetReusePort(v != 0)
	case level == unix.SOL_SOCKET && opt == unix.SO_RCVBUF:
		lo, hi := so.ReceiveBufferLimits()
		so.SetReceiveBufferSize(clampBufSize(int64(uint32(v)), lo, hi), true)
	case level == unix.SOL_SOCKET && opt == unix.SO_SNDBUF:
		lo, hi := so.SendBufferLimits()
		so.SetSendBufferSize(clampBufSize(int64(uint32(v)), lo, hi), true)
	case level == unix.SOL_SOCKET && opt == unix.SO_KEEPALIVE:
		so.SetKeepAlive(v != 0)
	case level == unix.IPPROTO_TCP && opt == unix.TCP_NODELAY:
		so.SetDelayOption(v == 0)
	case level == unix.IPPROTO_TCP && opt == unix.TCP_CORK:
		so.SetCorkOption(v != 0)
	case level == unix.IPPROTO_TCP && opt == unix.TCP_QUICKACK:
		so.SetQuickAck(v != 0)
	case level == unix.IPPROTO_TCP && opt == unix.TCP_MAXSEG:
		return result(s.ep.SetSockOptInt(tcpip.MaxSegOption, v))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_KEEPIDLE:
		if v < 1 {
			return fail("EINVAL")
		}
		o := tcpip.KeepaliveIdleOption(secs(v))
		return result(s.ep.SetSockOpt(&o))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_KEEPINTVL:
		if v < 1 {
			return fail("EINVAL")
		}
		o := tcpip.KeepaliveIntervalOption(secs(v))
		return result(s.ep.SetSockOpt(&o))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_KEEPCNT:
		return result(s.ep.SetSockOptInt(tcpip.KeepaliveCountOption, v))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_SYNCNT:
		return result(s.ep.SetSockOptInt(tcpip.TCPSynCountOption, v))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_WINDOW_CLAMP:
		return result(s.ep.SetSockOptInt(tcpip.TCPWindowClampOption, v))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_USER_TIMEOUT:
		o := tcpip.TCPUserTimeoutOption(time.Duration(v) * time.Millisecond)
		return result(s.ep.SetSockOpt(&o))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_LINGER2:
		o := tcpip.TCPLingerTimeoutOption(secs(v))
		return result(s.ep.SetSockOpt(&o))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_DEFER_ACCEPT:
		o := tcpip.TCPDeferAcceptOption(secs(v))
		return result(s.ep.SetSockOpt(&o))
	default:
		return unsupported("setsockopt option %s/%s is not supported by the gvisor target", a[1], a[2])
	}
	return CallResult{}
}

func (t *gvisorTarget) getsockopt(s *gsock, a []Expr) CallResult {
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
	so := s.ep.SocketOptions()
	intOpt := func(o tcpip.SockOptInt) CallResult {
		v, err := s.ep.GetSockOptInt(o)
		if err != nil {
			return gvErrno(err)
		}
		return out(v)
	}
	switch {
	case level == unix.SOL_SOCKET && opt == unix.SO_ERROR:
		if err := s.ep.LastError(); err != nil {
			return out(gvErrnoNum(err))
		}
		return out(0)
	case level == unix.SOL_SOCKET && opt == unix.SO_RCVBUF:
		return out(int(min(so.GetReceiveBufferSize(), math.MaxInt32)))
	case level == unix.SOL_SOCKET && opt == unix.SO_SNDBUF:
		return out(int(min(so.GetSendBufferSize(), math.MaxInt32)))
	case level == unix.SOL_SOCKET && opt == unix.SO_KEEPALIVE:
		return out(b2i(so.GetKeepAlive()))
	case level == unix.SOL_SOCKET && opt == unix.SO_REUSEADDR:
		return out(b2i(so.GetReuseAddress()))
	case level == unix.SOL_SOCKET && opt == unix.SO_REUSEPORT:
		return out(b2i(so.GetReusePort()))
	case level == unix.SOL_SOCKET && opt == unix.SO_TYPE:
		return out(unix.SOCK_STREAM)
	case level == unix.SOL_SOCKET && opt == unix.SO_ACCEPTCONN:
		return out(b2i(so.GetAcceptConn()))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_NODELAY:
		return out(b2i(!so.GetDelayOption()))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_CORK:
		return out(b2i(so.GetCorkOption()))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_QUICKACK:
		return out(b2i(so.GetQuickAck()))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_MAXSEG:
		return intOpt(tcpip.MaxSegOption)
	case level == unix.IPPROTO_TCP && opt == unix.TCP_KEEPCNT:
		return intOpt(tcpip.KeepaliveCountOption)
	case level == unix.IPPROTO_TCP && opt == unix.TCP_SYNCNT:
		return intOpt(tcpip.TCPSynCountOption)
	case level == unix.IPPROTO_TCP && opt == unix.TCP_WINDOW_CLAMP:
		return intOpt(tcpip.TCPWindowClampOption)
	case level == unix.IPPROTO_TCP && (opt == unix.TCP_KEEPIDLE || opt == unix.TCP_KEEPINTVL):
		var d time.Duration
		var err tcpip.Error
		if opt == unix.TCP_KEEPIDLE {
			var o tcpip.KeepaliveIdleOption
			err = s.ep.GetSockOpt(&o)
			d = time.Duration(o)
		} else {
			var o tcpip.KeepaliveIntervalOption
			err = s.ep.GetSockOpt(&o)
			d = time.Duration(o)
		}
		if err != nil {
			return gvErrno(err)
		}
		return out(int(d / time.Second))
	}
	return unsupported("getsockopt option %s/%s is not supported by the gvisor target", a[1], a[2])
}

// vclock is a faketime.ManualClock that also knows when its next timer is
// due and counts the timers that fired.
type vclock struct {
	mc    *faketime.ManualClock
	start time.Time

	mu     sync.Mutex
	armed  map[*vtimer]time.Time
	nfired uint64
}

var _ tcpip.Clock = (*vclock)(nil)

func newVClock() *vclock {
	mc := faketime.NewManualClock()
	return &vclock{mc: mc, start: mc.Now(), armed: map[*vtimer]time.Time{}}
}

func (c *vclock) Now() time.Time                    { return c.mc.Now() }
func (c *vclock) NowMonotonic() tcpip.MonotonicTime { return c.mc.NowMonotonic() }
func (c *vclock) elapsed() time.Duration            { return c.mc.Now().Sub(c.start) }

func (c *vclock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	vt := &vtimer{c: c}
	c.arm(vt, d)
	vt.t = c.mc.AfterFunc(d, func() {
		c.mu.Lock()
		delete(c.armed, vt)
		c.nfired++
		c.mu.Unlock()
		f()
	})
	return vt
}

func (c *vclock) arm(vt *vtimer, d time.Duration) {
	at := c.mc.Now().Add(d)
	c.mu.Lock()
	c.armed[vt] = at
	c.mu.Unlock()
}

func (c *vclock) disarm(vt *vtimer) {
	c.mu.Lock()
	delete(c.armed, vt)
	c.mu.Unlock()
}

// next is the elapsed time at which the earliest armed timer is due, if one
// is due after now.
func (c *vclock) next() (time.Duration, bool) {
	now := c.mc.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var best time.Time
	for _, at := range c.armed {
		if at.After(now) && (best.IsZero() || at.Before(best)) {
			best = at
		}
	}
	if best.IsZero() {
		return 0, false
	}
	return best.Sub(c.start), true
}

func (c *vclock) firedCount() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nfired
}

type vtimer struct {
	c *vclock
	t tcpip.Timer
}

func (vt *vtimer) Stop() bool {
	vt.c.disarm(vt)
	return vt.t.Stop()
}

func (vt *vtimer) Reset(d time.Duration) {
	vt.c.arm(vt, d)
	vt.t.Reset(d)
}

// syncLink is the target's link endpoint: gVisor's WritePackets copies
// each packet, stamped with the virtual time, into a queue the target
// reads; inbound packets are delivered by the target itself.
type syncLink struct {
	mtu   uint32
	clock *vclock

	mu     sync.Mutex
	d      stack.NetworkDispatcher
	out    []outbound
	nwrite uint64
}

var _ stack.LinkEndpoint = (*syncLink)(nil)

func (l *syncLink) dispatcher() stack.NetworkDispatcher {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.d
}

func (l *syncLink) pop() (outbound, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.out) == 0 {
		return outbound{}, false
	}
	o := l.out[0]
	l.out = l.out[1:]
	return o, true
}

func (l *syncLink) empty() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.out) == 0
}

func (l *syncLink) written() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nwrite
}

// WritePackets implements stack.LinkWriter.
func (l *syncLink) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	at := l.clock.elapsed()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, pkt := range pkts.AsSlice() {
		b := make([]byte, 0, pkt.Size())
		for _, s := range pkt.AsSlices() {
			b = append(b, s...)
		}
		l.out = append(l.out, outbound{b, at})
		l.nwrite++
	}
	return pkts.Len(), nil
}

func (l *syncLink) MTU() uint32                                { return l.mtu }
func (l *syncLink) SetMTU(uint32)                              {}
func (*syncLink) MaxHeaderLength() uint16                      { return 0 }
func (*syncLink) LinkAddress() tcpip.LinkAddress               { return "" }
func (*syncLink) SetLinkAddress(tcpip.LinkAddress)             {}
func (*syncLink) Capabilities() stack.LinkEndpointCapabilities { return 0 }
func (*syncLink) Wait()                                        {}
func (*syncLink) ARPHardwareType() header.ARPHardwareType      { return header.ARPHardwareNone }
func (*syncLink) AddHeader(*stack.PacketBuffer)                {}
func (*syncLink) ParseHeader(*stack.PacketBuffer) bool         { return true }
func (*syncLink) Close()                                       {}
func (*syncLink) SetOnCloseAction(func())                      {}

func (l *syncLink) Attach(d stack.NetworkDispatcher) {
	l.mu.Lock()
	l.d = d
	l.mu.Unlock()
}

func (l *syncLink) IsAttached() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.d != nil
}
