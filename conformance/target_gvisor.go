package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
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
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"tunstack/gvisorstack"
	"tunstack/netif"
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
	cfg   TargetConfig
	clock *vclock
	st    *gvisorstack.Stack
	s     *stack.Stack
	link  *syncLink
	opts  gvisorstack.Options
	calls *dispatcher[*gsock]
	// burst merges gVisor's segments into the packets Linux would hand a
	// TUN with TSO (burst.go), into ready; nil with TargetConfig.NoTSO,
	// and then packets come straight from the link.
	burst *burstCoalescer
	ready []outbound
}

// gsock is one socket: a gVisor TCP endpoint.
type gsock struct {
	ep tcpip.Endpoint
	wq *waiter.Queue
}

func newGvisorTarget(cfg TargetConfig) (Target, error) {
	clock := newVClock()
	a, b := netif.NewPipe(cfg.MTU)
	b.Close() // gvisorstack owns a and closes the pipe; nothing uses b
	gcfg := gvisorstack.Config{Addr: cfg.LocalIP, Profile: cfg.Profile, Clock: clock}
	if cfg.LocalIP.Is6() {
		// gvisorstack starts with an IPv4 address and, given one, an
		// IPv6 one too (its ipv6 protocol). attach replaces the NIC they
		// are on, and the new NIC has the run's address only.
		gcfg.Addr, gcfg.Addr6 = DefaultLocalIP, cfg.LocalIP
	}
	st, err := gvisorstack.New(a, gcfg)
	if err != nil {
		return nil, err
	}
	t := &gvisorTarget{cfg: cfg, clock: clock, st: st, s: st.GVisor(), opts: st.Options(),
		link: &syncLink{mtu: uint32(cfg.MTU), clock: clock}}
	t.calls = newDispatcher[*gsock]("gvisor", cfg.SocketFamily6, gvisorOps{t})
	if !cfg.NoTSO {
		t.burst = newBurstCoalescer(t.burstInfo)
	}
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
	local := gvAddr(t.cfg.LocalIP)
	pa := tcpip.ProtocolAddress{Protocol: gvProto(t.cfg.LocalIP), AddressWithPrefix: tcpip.AddressWithPrefix{
		Address: local, PrefixLen: local.BitLen()}}
	if err := t.s.AddProtocolAddress(gvNIC, pa, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("gvisor: add address %v: %s", t.cfg.LocalIP, err)
	}
	zero := make([]byte, local.Len())
	all, _ := tcpip.NewSubnet(tcpip.AddrFromSlice(zero), tcpip.MaskFromBytes(zero))
	t.s.SetRouteTable([]tcpip.Route{{Destination: all, NIC: gvNIC}})
	return nil
}

// gvAddr is a in gVisor's form: 4 bytes for IPv4, 16 for IPv6 (an
// IPv4-mapped address stays 16 bytes, as gVisor's dual-stack endpoints
// take it).
func gvAddr(a netip.Addr) tcpip.Address {
	if a.Is4() {
		return tcpip.AddrFrom4(a.As4())
	}
	return tcpip.AddrFrom16(a.As16())
}

// unmapGV is a gVisor address as the wire carries it: an IPv4-mapped
// one (a dual-stack endpoint's view of an IPv4 peer) as IPv4.
func unmapGV(a tcpip.Address) netip.Addr {
	n, _ := netip.AddrFromSlice(a.AsSlice())
	return n.Unmap()
}

// gvProto is the network protocol of a's family.
func gvProto(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Is4() {
		return ipv4.ProtocolNumber
	}
	return ipv6.ProtocolNumber
}

func (t *gvisorTarget) Name() string       { return "gvisor" }
func (t *gvisorTarget) Now() time.Duration { return t.clock.elapsed() }

func (t *gvisorTarget) Inject(pkt []byte) error {
	ip, _, err := inboundTCP(pkt)
	if err != nil {
		return err
	}
	d := t.link.dispatcher()
	if d == nil {
		return errors.New("inject: gVisor's NIC is not attached")
	}
	if t.burst != nil {
		t.burst.inbound(pkt)
	}
	pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
	d.DeliverNetworkPacket(gvProto(ip.src), pb)
	pb.DecRef()
	t.settle()
	return nil
}

func (t *gvisorTarget) Outbound(deadline time.Duration) ([]byte, time.Duration, bool, error) {
	for {
		if o, ok := t.pop(); ok {
			return o.pkt, o.at, true, nil
		}
		now := t.Now()
		next := deadline
		if dl, ok := t.clock.next(); ok && dl < next {
			next = dl
		}
		if dl, ok := t.calls.nextDeadline(now); ok && dl < next {
			next = dl
		}
		if next > now {
			t.clock.mc.Advance(next - now)
		}
		t.settle()
		if t.empty() && t.Now() >= deadline {
			return nil, 0, false, nil
		}
	}
}

// settle lets gVisor finish everything the last step caused, at the current
// virtual instant, and completes the blocked calls that can now complete.
func (t *gvisorTarget) settle() { t.settleAfter(false) }

// settleAfter is settle after a step that was a system call (byCall) or
// not; what the step made gVisor send is one batch for the coalescer.
func (t *gvisorTarget) settleAfter(byCall bool) {
	t.settleRounds()
	if t.burst != nil {
		t.ready = append(t.ready, t.burst.batch(t.link.drain(), byCall)...)
	}
}

func (t *gvisorTarget) settleRounds() {
	for round := 0; round < 1000; round++ {
		before := t.generation()
		t.s.Pause()
		t.s.Resume()
		t.clock.mc.Advance(0)
		t.s.Pause()
		t.s.Resume()
		progressed := t.calls.complete()
		if !progressed && t.generation() == before {
			return
		}
	}
}

// generation changes whenever gVisor sends a packet or a timer fires.
func (t *gvisorTarget) generation() uint64 { return t.link.written() + t.clock.firedCount() }

func (t *gvisorTarget) Shell(string, string) error { return ErrNoShell }

func (t *gvisorTarget) Close() error {
	t.calls.close(func(s *gsock) { s.ep.Abort() })
	return t.st.Close()
}

func (t *gvisorTarget) Syscall(c *Call) <-chan CallResult {
	return t.calls.Syscall(c, func() { t.settleAfter(true) })
}

// pop returns the next packet for the runner: coalesced, or, with NoTSO,
// as gVisor wrote it.
func (t *gvisorTarget) pop() (outbound, bool) {
	if t.burst == nil {
		return t.link.pop()
	}
	if len(t.ready) == 0 {
		return outbound{}, false
	}
	o := t.ready[0]
	t.ready = t.ready[1:]
	return o, true
}

func (t *gvisorTarget) empty() bool {
	if t.burst == nil {
		return t.link.empty()
	}
	return len(t.ready) == 0
}

// burstInfo tells the coalescer Linux's sizes for gVisor's connection k:
// its congestion window, and tso_segs from Linux's formula over gVisor's
// cwnd, ssthresh and smoothed RTT (gVisor reports no minimum RTT; the
// smoothed one stands in for it).
func (t *gvisorTarget) burstInfo(k flowKey, mss int) burstInfo {
	for _, f := range t.calls.fds {
		ep := f.sock.ep
		la, err1 := ep.GetLocalAddress()
		ra, err2 := ep.GetRemoteAddress()
		if err1 != nil || err2 != nil || la.Port != k.local.Port() || ra.Port != k.remote.Port() ||
			unmapGV(la.Addr) != k.local.Addr() || unmapGV(ra.Addr) != k.remote.Addr() {
			continue
		}
		var in tcpip.TCPInfoOption
		if ep.GetSockOpt(&in) != nil {
			return burstInfo{}
		}
		cwnd, ssthresh := int(in.SndCwnd), int(min(in.SndSsthresh, 1<<30))
		return burstInfo{Cwnd: cwnd,
			TSOSegs: linuxTSOSegs(mss, cwnd, ssthresh, 0, in.RTT, in.RTT, max(t.cfg.Profile.PushEverySegments, 1))}
	}
	return burstInfo{}
}

// TCPInfo reads a socket's struct tcp_info (tcpInfoTarget).
func (t *gvisorTarget) TCPInfo(fd int) (map[string]uint64, error) { return t.calls.tcpInfo(fd) }

// gvisorOps are the target's socket operations (socketOps): calls on gVisor
// endpoints, made the way gVisor's syscall layer makes them.
type gvisorOps struct{ *gvisorTarget }

// gvErr is the errno gVisor's syscall layer returns for err
// (syserr.TranslateNetstackError, the sentry's mapping), or nil.
func gvErr(err tcpip.Error) error {
	if err == nil {
		return nil
	}
	return syscall.Errno(syserr.TranslateNetstackError(err).ToLinux())
}

func (o gvisorOps) localAddr() tcpip.FullAddress {
	return tcpip.FullAddress{Addr: gvAddr(o.cfg.BindIP), Port: o.cfg.BindPort}
}

func (o gvisorOps) remoteAddr() tcpip.FullAddress {
	return tcpip.FullAddress{Addr: gvAddr(o.cfg.ConnectIP), Port: o.cfg.ConnectPort}
}

func (o gvisorOps) Socket() (*gsock, error) {
	var wq waiter.Queue
	proto := ipv4.ProtocolNumber
	if o.cfg.SocketFamily6 {
		proto = ipv6.ProtocolNumber
	}
	ep, err := o.s.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if err != nil {
		return nil, gvErr(err)
	}
	return &gsock{ep: ep, wq: &wq}, nil
}

func (o gvisorOps) Bind(s *gsock) error { return gvErr(s.ep.Bind(o.localAddr())) }

func (o gvisorOps) Listen(s *gsock, backlog int) error {
	// As gVisor's listen(2) (sentry/syscalls/linux/sys_socket.go): the
	// backlog is an unsigned int capped at somaxconn, plus one for parity
	// with Linux's accept queue.
	b := uint32(backlog)
	if b > uint32(o.opts.Somaxconn) {
		b = uint32(o.opts.Somaxconn)
	}
	if o.opts.BacklogPlusOne {
		b++
	}
	return gvErr(s.ep.Listen(int(b)))
}

func (o gvisorOps) Accept(s *gsock) (*gsock, error) {
	ep, wq, err := s.ep.Accept(nil)
	if _, wb := err.(*tcpip.ErrWouldBlock); wb {
		return nil, errWouldBlock
	}
	if err != nil {
		return nil, gvErr(err)
	}
	return &gsock{ep: ep, wq: wq}, nil
}

// Connect reports an attempt already under way as errAlready, so that a
// blocking connect waits for it, as Linux's does.
func (o gvisorOps) Connect(s *gsock) error {
	switch err := s.ep.Connect(o.remoteAddr()); err.(type) {
	case *tcpip.ErrConnectStarted:
		return errInProgress
	case *tcpip.ErrAlreadyConnecting:
		return errAlready
	default:
		return gvErr(err)
	}
}

// ConnectResult is what gVisor's connect(2) does after starting: wait until
// the endpoint is writable (or failed), then call Connect again for the
// result.
func (o gvisorOps) ConnectResult(s *gsock) error {
	if s.ep.Readiness(waiter.WritableEvents|waiter.EventErr|waiter.EventHUp) == 0 {
		return errWouldBlock
	}
	return gvErr(s.ep.Connect(o.remoteAddr()))
}

func (o gvisorOps) Read(s *gsock, n, flags int) (int, error) {
	if n == 0 {
		return 0, nil
	}
	var buf bytes.Buffer
	res, err := s.ep.Read(&tcpip.LimitedWriter{W: &buf, N: int64(n)}, tcpip.ReadOptions{Peek: flags&unix.MSG_PEEK != 0})
	switch err.(type) {
	case nil:
		return res.Count, nil
	case *tcpip.ErrWouldBlock:
		return 0, errWouldBlock
	case *tcpip.ErrClosedForReceive:
		return 0, io.EOF
	}
	return 0, gvErr(err)
}

func (o gvisorOps) Write(s *gsock, b []byte, flags int) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	m, err := s.ep.Write(bytes.NewReader(b), tcpip.WriteOptions{More: flags&unix.MSG_MORE != 0})
	if _, wb := err.(*tcpip.ErrWouldBlock); wb || err == nil && m == 0 {
		return int(m), errWouldBlock
	}
	return int(m), gvErr(err)
}

func (o gvisorOps) Shutdown(s *gsock, how int) error {
	var f tcpip.ShutdownFlags
	switch how {
	case unix.SHUT_RD:
		f = tcpip.ShutdownRead
	case unix.SHUT_WR:
		f = tcpip.ShutdownWrite
	case unix.SHUT_RDWR:
		f = tcpip.ShutdownRead | tcpip.ShutdownWrite
	default:
		return syscall.EINVAL
	}
	return gvErr(s.ep.Shutdown(f))
}

// Close is gVisor's release of a socket: with SO_LINGER on and a non-zero
// timeout, a blocking close waits until the endpoint leaves FIN-WAIT-1,
// CLOSING and LAST-ACK, or the timeout passes (with a zero timeout the
// endpoint's Close sends RST).
func (o gvisorOps) Close(s *gsock) time.Duration {
	s.ep.Close()
	if lo := s.ep.SocketOptions().GetLinger(); lo.Enabled && lo.Timeout > 0 {
		return o.Now() + lo.Timeout
	}
	return 0
}

func (o gvisorOps) Lingering(s *gsock) bool {
	switch tcp.EndpointState(s.ep.State()) {
	case tcp.StateFinWait1, tcp.StateClosing, tcp.StateLastAck:
		return true
	}
	return false
}

// Revents is the endpoint's readiness: gVisor's event bits are Linux's poll
// bits.
func (o gvisorOps) Revents(s *gsock, mask int16) int16 {
	m := waiter.EventMask(uint16(mask))
	return int16(s.ep.Readiness(m) & m)
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

func (o gvisorOps) SetLinger(s *gsock, on bool, timeout time.Duration) error {
	s.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: on, Timeout: timeout})
	return nil
}

func (o gvisorOps) SetSockopt(s *gsock, level, opt, v int) error {
	so := s.ep.SocketOptions()
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
		return gvErr(s.ep.SetSockOptInt(tcpip.MaxSegOption, v))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_KEEPIDLE:
		if v < 1 {
			return syscall.EINVAL
		}
		idle := tcpip.KeepaliveIdleOption(secs(v))
		return gvErr(s.ep.SetSockOpt(&idle))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_KEEPINTVL:
		if v < 1 {
			return syscall.EINVAL
		}
		intvl := tcpip.KeepaliveIntervalOption(secs(v))
		return gvErr(s.ep.SetSockOpt(&intvl))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_KEEPCNT:
		return gvErr(s.ep.SetSockOptInt(tcpip.KeepaliveCountOption, v))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_SYNCNT:
		return gvErr(s.ep.SetSockOptInt(tcpip.TCPSynCountOption, v))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_WINDOW_CLAMP:
		return gvErr(s.ep.SetSockOptInt(tcpip.TCPWindowClampOption, v))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_USER_TIMEOUT:
		if v < 0 {
			return syscall.EINVAL // the sentry's check
		}
		ut := tcpip.TCPUserTimeoutOption(time.Duration(v) * time.Millisecond)
		return gvErr(s.ep.SetSockOpt(&ut))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_LINGER2:
		l2 := tcpip.TCPLingerTimeoutOption(secs(v))
		return gvErr(s.ep.SetSockOpt(&l2))
	case level == unix.IPPROTO_TCP && opt == unix.TCP_DEFER_ACCEPT:
		da := tcpip.TCPDeferAcceptOption(secs(v))
		return gvErr(s.ep.SetSockOpt(&da))
	case level == unix.IPPROTO_IP && opt == unix.IP_TOS:
		return gvErr(s.ep.SetSockOptInt(tcpip.IPv4TOSOption, v))
	default:
		return errNoOption
	}
	return nil
}

func (o gvisorOps) GetSockopt(s *gsock, level, opt int) (int, error) {
	so := s.ep.SocketOptions()
	intOpt := func(name tcpip.SockOptInt) (int, error) {
		v, err := s.ep.GetSockOptInt(name)
		return v, gvErr(err)
	}
	switch {
	case level == unix.SOL_SOCKET && opt == unix.SO_ERROR:
		if err := s.ep.LastError(); err != nil {
			return int(syserr.TranslateNetstackError(err).ToLinux()), nil
		}
		return 0, nil
	case level == unix.SOL_SOCKET && opt == unix.SO_RCVBUF:
		return int(min(so.GetReceiveBufferSize(), math.MaxInt32)), nil
	case level == unix.SOL_SOCKET && opt == unix.SO_SNDBUF:
		return int(min(so.GetSendBufferSize(), math.MaxInt32)), nil
	case level == unix.SOL_SOCKET && opt == unix.SO_KEEPALIVE:
		return boolInt(so.GetKeepAlive()), nil
	case level == unix.SOL_SOCKET && opt == unix.SO_REUSEADDR:
		return boolInt(so.GetReuseAddress()), nil
	case level == unix.SOL_SOCKET && opt == unix.SO_REUSEPORT:
		return boolInt(so.GetReusePort()), nil
	case level == unix.SOL_SOCKET && opt == unix.SO_TYPE:
		return unix.SOCK_STREAM, nil
	case level == unix.SOL_SOCKET && opt == unix.SO_ACCEPTCONN:
		return boolInt(so.GetAcceptConn()), nil
	case level == unix.IPPROTO_TCP && opt == unix.TCP_NODELAY:
		return boolInt(!so.GetDelayOption()), nil
	case level == unix.IPPROTO_TCP && opt == unix.TCP_CORK:
		return boolInt(so.GetCorkOption()), nil
	case level == unix.IPPROTO_TCP && opt == unix.TCP_QUICKACK:
		return boolInt(so.GetQuickAck()), nil
	case level == unix.IPPROTO_TCP && opt == unix.TCP_MAXSEG:
		return intOpt(tcpip.MaxSegOption)
	case level == unix.IPPROTO_TCP && opt == unix.TCP_KEEPCNT:
		return intOpt(tcpip.KeepaliveCountOption)
	case level == unix.IPPROTO_TCP && opt == unix.TCP_SYNCNT:
		return intOpt(tcpip.TCPSynCountOption)
	case level == unix.IPPROTO_TCP && opt == unix.TCP_WINDOW_CLAMP:
		return intOpt(tcpip.TCPWindowClampOption)
	case level == unix.IPPROTO_TCP && opt == unix.TCP_USER_TIMEOUT:
		var ut tcpip.TCPUserTimeoutOption
		if err := s.ep.GetSockOpt(&ut); err != nil {
			return 0, gvErr(err)
		}
		return int(time.Duration(ut) / time.Millisecond), nil
	case level == unix.IPPROTO_IP && opt == unix.IP_TOS:
		return intOpt(tcpip.IPv4TOSOption)
	case level == unix.IPPROTO_TCP && (opt == unix.TCP_KEEPIDLE || opt == unix.TCP_KEEPINTVL):
		var d time.Duration
		var err tcpip.Error
		if opt == unix.TCP_KEEPIDLE {
			var idle tcpip.KeepaliveIdleOption
			err = s.ep.GetSockOpt(&idle)
			d = time.Duration(idle)
		} else {
			var intvl tcpip.KeepaliveIntervalOption
			err = s.ep.GetSockOpt(&intvl)
			d = time.Duration(intvl)
		}
		if err != nil {
			return 0, gvErr(err)
		}
		return int(d / time.Second), nil
	}
	return 0, errNoOption
}

// SetSockoptBytes is the sentry's TCP_CONGESTION: the optlen bytes, NULs
// and all, are the name gVisor looks up among its controllers ("reno",
// "cubic"), ENOENT when none matches. gVisor switches an established
// connection's controller, but a listener's choice is not inherited: an
// accepted endpoint starts with the stack's default (accept.go makes it
// with newEndpoint).
func (o gvisorOps) SetSockoptBytes(s *gsock, level, opt int, v []byte) error {
	if level != unix.IPPROTO_TCP || opt != unix.TCP_CONGESTION {
		return errNoOption
	}
	cc := tcpip.CongestionControlOption(v)
	return gvErr(s.ep.SetSockOpt(&cc))
}

// GetSockoptBytes is the sentry's getsockopt TCP_CONGESTION: EINVAL for
// optlen < 1, else the name NUL-padded to TCP_CA_NAME_MAX, cut to optlen.
func (o gvisorOps) GetSockoptBytes(s *gsock, level, opt, optlen int) ([]byte, error) {
	if level != unix.IPPROTO_TCP || opt != unix.TCP_CONGESTION {
		return nil, errNoOption
	}
	if optlen < 1 {
		return nil, syscall.EINVAL
	}
	var cc tcpip.CongestionControlOption
	if err := s.ep.GetSockOpt(&cc); err != nil {
		return nil, gvErr(err)
	}
	b := make([]byte, tcpCANameMax)
	copy(b, cc)
	return b[:min(optlen, tcpCANameMax)], nil
}

// Ioctl is the sentry's: TIOCINQ (SIOCINQ) reads the endpoint's
// ReceiveQueueSizeOption, TIOCOUTQ (SIOCOUTQ) its SendQueueSizeOption,
// which gVisor's TCP endpoint does not implement (ENOPROTOOPT).
func (o gvisorOps) Ioctl(s *gsock, req int) (int, error) {
	var opt tcpip.SockOptInt
	switch req {
	case unix.SIOCINQ:
		opt = tcpip.ReceiveQueueSizeOption
	case unix.SIOCOUTQ:
		opt = tcpip.SendQueueSizeOption
	default:
		return 0, errNoOption
	}
	v, err := s.ep.GetSockOptInt(opt)
	if err != nil {
		return 0, gvErr(err)
	}
	return min(v, math.MaxInt32), nil
}

// badBuffer stands for a bad user pointer: the sentry's copy from or to
// it fails, which gVisor's endpoint reports as ErrBadBuffer (EFAULT).
type badBuffer struct{}

func (badBuffer) Read([]byte) (int, error)  { return 0, syscall.EFAULT }
func (badBuffer) Write([]byte) (int, error) { return 0, syscall.EFAULT }
func (badBuffer) Len() int                  { return 1 << 20 }

func (o gvisorOps) WriteFault(s *gsock) error {
	_, err := s.ep.Write(badBuffer{}, tcpip.WriteOptions{})
	if _, wb := err.(*tcpip.ErrWouldBlock); wb {
		return errWouldBlock
	}
	if err == nil {
		return errWouldBlock // nothing queued and no error: no room yet
	}
	return gvErr(err)
}

func (o gvisorOps) ReadFault(s *gsock, n, flags int) error {
	_, err := s.ep.Read(badBuffer{}, tcpip.ReadOptions{Peek: flags&unix.MSG_PEEK != 0})
	switch err.(type) {
	case nil:
		return nil
	case *tcpip.ErrWouldBlock:
		return errWouldBlock
	case *tcpip.ErrClosedForReceive:
		return io.EOF
	}
	return gvErr(err)
}

// TCPInfo is what the sentry's getsockopt(TCP_INFO) fills from gVisor's
// TCPInfoOption: state, ca_state, rto, rtt, rttvar, snd_ssthresh, snd_cwnd
// and reord_seen; gVisor has no other tcp_info field, so the others are
// left out.
func (o gvisorOps) TCPInfo(s *gsock) (map[string]uint64, error) {
	var v tcpip.TCPInfoOption
	if err := s.ep.GetSockOpt(&v); err != nil {
		return nil, gvErr(err)
	}
	ca := uint64(0) // TCP_CA_Open
	switch v.CcState {
	case tcpip.RTORecovery:
		ca = 4 // TCP_CA_Loss
	case tcpip.FastRecovery, tcpip.SACKRecovery:
		ca = 3 // TCP_CA_Recovery
	case tcpip.Disorder:
		ca = 1
	}
	return map[string]uint64{
		"tcpi_state": uint64(v.State), "tcpi_ca_state": ca,
		"tcpi_rto": uint64(v.RTO / time.Microsecond), "tcpi_rtt": uint64(v.RTT / time.Microsecond),
		"tcpi_rttvar": uint64(v.RTTVar / time.Microsecond), "tcpi_snd_ssthresh": uint64(v.SndSsthresh),
		"tcpi_snd_cwnd": uint64(v.SndCwnd), "tcpi_reord_seen": uint64(boolInt(v.ReorderSeen)),
	}, nil
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

// drain takes every packet written so far.
func (l *syncLink) drain() []outbound {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.out
	l.out = nil
	return out
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
