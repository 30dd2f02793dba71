package conformance

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dispatcher runs a script's system calls on an in-process, virtual-time
// target (tunstack, gvisor), one dispatcher per run. The linux target does
// not use it: its calls are the kernel's own, which read their arguments,
// block and name their errnos themselves.
//
// What a target implements: socketOps, the socket operations of its stack
// on one socket each (create, bind, listen, accept, connect, read, write,
// shutdown, close, socket options, poll readiness). An operation takes
// plain values and returns a result and an error: nil, a syscall.Errno for
// the errno the call fails with, or one of the sentinels below (the call
// would block; a connection is under way; an option the target does not
// support). A target also tells the dispatcher when its stack has moved:
// it calls complete after every step (an injected packet, a system call, a
// clock advance), and asks nextDeadline how far its clock may jump.
//
// What the dispatcher owns, the same for every target:
//   - argument parsing: descriptors, lengths, flags, socket option levels,
//     names and values, poll arrays; an argument it cannot read fails the
//     line (CallResult.Err), as does a call or option the target lacks;
//   - the descriptor table: the script's numbers, the socket each names
//     and its O_NONBLOCK flag (SOCK_NONBLOCK, accept4's flags, fcntl), and
//     EBADF for a number that names nothing;
//   - errno mapping: a syscall.Errno becomes -1 and the errno's name; any
//     other error means the target could not run the call;
//   - blocking: a call whose operation would block fails with EAGAIN on a
//     non-blocking descriptor (or with MSG_DONTWAIT); otherwise it stays
//     pending, is retried after every step of the stack, and returns when
//     it completes, or at its deadline for poll's timeout and for a close
//     that waits under SO_LINGER.
type dispatcher[S any] struct {
	target  string // the target's name, for messages
	family6 bool   // the run's sockets are AF_INET6 (TargetConfig.SocketFamily6)
	ops     socketOps[S]
	fds     map[int]*descriptor[S]
	blocked []*blockedCall // in the order they were made
	epolls  []*epollSet    // open epoll instances, in creation order
}

// socketOps are a stack's operations on its sockets, of type S.
type socketOps[S any] interface {
	// Now is the target's clock.
	Now() time.Duration

	// Socket creates a TCP socket.
	Socket() (S, error)
	// Bind binds s to the script's local address and port.
	Bind(s S) error
	// Listen makes s listen, or sets the backlog of a listening s.
	Listen(s S, backlog int) error
	// Accept takes the next connection of a listening s, or returns
	// errWouldBlock.
	Accept(s S) (S, error)
	// Connect starts a connection to the script's peer. errInProgress
	// means it was started: a non-blocking call then fails with
	// EINPROGRESS, a blocking one waits for ConnectResult. errAlready means
	// an earlier attempt is still under way: EALREADY on a non-blocking
	// socket, a wait for ConnectResult on a blocking one.
	Connect(s S) error
	// ConnectResult is the outcome of the connection Connect started:
	// errWouldBlock while it is under way.
	ConnectResult(s S) error
	// Read reads at most n bytes (their contents do not matter): the count
	// read, io.EOF at the end of the stream, errWouldBlock when there is
	// nothing to read yet. flags are recv's.
	Read(s S, n, flags int) (int, error)
	// Write writes from b and returns how much it took: errWouldBlock (with
	// the count, maybe 0) when the send buffer is full. flags are send's.
	// It is called with an empty b for a write of zero bytes, and then only
	// reports an error the socket has (EPIPE when it cannot send at all).
	Write(s S, b []byte, flags int) (int, error)
	// Shutdown shuts down one or both directions (SHUT_RD, SHUT_WR,
	// SHUT_RDWR, or any other value the script wrote).
	Shutdown(s S, how int) error
	// Close closes s, which the table no longer holds. If SO_LINGER makes a
	// blocking close wait, it returns the target time at which the wait
	// gives up; otherwise zero.
	Close(s S) (lingerUntil time.Duration)
	// Lingering reports whether the close of s is still waiting for its
	// FIN to be acknowledged.
	Lingering(s S) bool
	// SetLinger sets SO_LINGER.
	SetLinger(s S, on bool, timeout time.Duration) error
	// SetSockopt sets an integer option: errNoOption for one the target
	// does not support.
	SetSockopt(s S, level, opt, v int) error
	// GetSockopt reads an integer option: errNoOption for one the target
	// does not support.
	GetSockopt(s S, level, opt int) (int, error)
	// SetSockoptBytes sets an option whose value is a buffer
	// (TCP_CONGESTION's name): v is the optlen bytes the call passes, a
	// script's "string" with its NUL and then zeros, or cut short.
	// errNoOption for one the target does not support.
	SetSockoptBytes(s S, level, opt int, v []byte) error
	// GetSockoptBytes reads such an option into a buffer of optlen bytes:
	// what the call stores, whose length is the optlen it returns.
	// errNoOption for one the target does not support.
	GetSockoptBytes(s S, level, opt, optlen int) ([]byte, error)
	// Revents is the poll events among mask (the events asked for, plus
	// POLLERR and POLLHUP) that hold for s now.
	Revents(s S, mask int16) int16
	// Ioctl answers SIOCINQ and SIOCOUTQ (and SIOCOUTQNSD where the stack
	// can): the byte count, or the errno; errNoOption for a request the
	// target does not support.
	Ioctl(s S, req int) (int, error)
	// WriteFault is a write of n > 0 bytes from a bad buffer (NULL): the
	// error the socket reports before it would copy anything (EPIPE, a
	// pending error), errWouldBlock while a blocking write would wait for
	// room or for the connection, else the stack's EFAULT.
	WriteFault(s S) error
	// ReadFault is a read of n > 0 bytes into a bad buffer: EFAULT (or the
	// stack's own error) when there is data to copy, otherwise what Read
	// returns with nothing to read (io.EOF, errWouldBlock, an error).
	ReadFault(s S, n, flags int) error
	// TCPInfo is the socket's struct tcp_info as Python variables named as
	// Linux's fields (tcpi_state, tcpi_snd_cwnd, ...); a field the target
	// cannot provide is left out.
	TCPInfo(s S) (map[string]uint64, error)
}

// errorKeeper is a target whose Write clears the socket's pending error
// when it returns it. A write that took bytes before meeting the error
// returns the count and leaves the error pending for the next call, as
// Linux's tcp_sendmsg does: KeepError puts it back.
type errorKeeper[S any] interface {
	KeepError(s S, err error)
}

// What a socket operation returns besides a syscall.Errno.
var (
	errWouldBlock = errors.New("operation would block")
	errInProgress = errors.New("connection under way")
	errAlready    = errors.New("an earlier connection attempt is under way")
	errNoOption   = errors.New("socket option not supported by this target")
)

// descriptor is what one of the script's descriptors names: a socket, or
// an epoll instance (ep not nil).
type descriptor[S any] struct {
	sock     S
	ep       *epollSet
	nonblock bool
}

// blockedCall is a call that has not returned yet.
type blockedCall struct {
	ch chan CallResult
	// try runs the call again; done false means it still blocks.
	try func() (res CallResult, done bool)
	// deadline (target time) of a call that gives up by itself, with
	// onTimeout's result; zero when none.
	deadline  time.Duration
	onTimeout func() CallResult
}

func newDispatcher[S any](target string, family6 bool, ops socketOps[S]) *dispatcher[S] {
	return &dispatcher[S]{target: target, family6: family6, ops: ops, fds: map[int]*descriptor[S]{}}
}

// Syscall starts c; settle is the target's own, which lets the stack
// finish what the call caused and calls complete. A call that completes at
// once returns after settle; one that blocks is kept for complete.
func (d *dispatcher[S]) Syscall(c *Call, settle func()) <-chan CallResult {
	p := &blockedCall{ch: make(chan CallResult, 1)}
	res, done := d.start(c, p)
	if done {
		settle()
		d.finish(p, res)
		return p.ch
	}
	d.blocked = append(d.blocked, p)
	settle()
	return p.ch
}

// complete retries the blocked calls and returns those that completed or
// whose deadline has come; it reports whether any did.
func (d *dispatcher[S]) complete() bool {
	d.scanEpolls()
	progressed := false
	kept := d.blocked[:0]
	for _, p := range d.blocked {
		res, done := p.try()
		if !done && p.deadline != 0 && d.ops.Now() >= p.deadline {
			res, done = p.onTimeout(), true
		}
		if done {
			d.finish(p, res)
			progressed = true
			continue
		}
		kept = append(kept, p)
	}
	clear(d.blocked[len(kept):])
	d.blocked = kept
	return progressed
}

// nextDeadline is the earliest deadline of a blocked call after now.
func (d *dispatcher[S]) nextDeadline(now time.Duration) (time.Duration, bool) {
	var next time.Duration
	for _, p := range d.blocked {
		if p.deadline > now && (next == 0 || p.deadline < next) {
			next = p.deadline
		}
	}
	return next, next != 0
}

// close returns the blocked calls with an error and empties the table,
// handing each socket to release when it is not nil.
func (d *dispatcher[S]) close(release func(S)) {
	for _, p := range d.blocked {
		d.finish(p, CallResult{Err: errors.New("target closed while the call was blocked")})
	}
	d.blocked = nil
	for fd, f := range d.fds {
		if release != nil && f.ep == nil {
			release(f.sock)
		}
		delete(d.fds, fd)
	}
}

func (d *dispatcher[S]) finish(p *blockedCall, res CallResult) {
	res.At = d.ops.Now()
	p.ch <- res
}

// newFD is the descriptor for a new socket: the one the script expects,
// else the lowest free one from 3.
func (d *dispatcher[S]) newFD(want int) int {
	if want >= 0 {
		return want
	}
	fd := 3
	for d.fds[fd] != nil {
		fd++
	}
	return fd
}

// socketCalls are the calls whose first argument is a socket descriptor;
// on an epoll descriptor they fail as Linux's do (fileCalls with EINVAL,
// ioctl with ENOTTY, the others with ENOTSOCK).
var socketCalls = map[string]bool{
	"bind": true, "listen": true, "accept": true, "accept4": true, "connect": true,
	"read": true, "recv": true, "recvfrom": true, "recvmsg": true, "readv": true,
	"write": true, "send": true, "sendto": true, "sendmsg": true, "writev": true,
	"shutdown": true, "setsockopt": true, "getsockopt": true, "ioctl": true,
}

var fileCalls = map[string]bool{"read": true, "readv": true, "write": true, "writev": true}

// start begins a call: it returns the result at once, or sets p.try (and
// maybe a deadline) and reports false when the call blocks.
func (d *dispatcher[S]) start(c *Call, p *blockedCall) (CallResult, bool) {
	a := c.Args
	intArg := func(i int) (int, error) {
		if i >= len(a) {
			return 0, fmt.Errorf("%s: missing argument %d", c.Name, i+1)
		}
		v, err := IntValue(a[i])
		return int(v), err
	}
	// f is the descriptor the first argument names, for the calls that
	// take one.
	var f *descriptor[S]
	if socketCalls[c.Name] || c.Name == "fcntl" {
		fd, err := intArg(0)
		f = d.fds[fd]
		if err != nil || f == nil {
			return fail("EBADF"), true
		}
		if f.ep != nil && socketCalls[c.Name] {
			switch {
			case fileCalls[c.Name]:
				return fail("EINVAL"), true
			case c.Name == "ioctl":
				return fail("ENOTTY"), true
			}
			return fail("ENOTSOCK"), true
		}
	}
	switch c.Name {
	case "socket":
		// A domain of "..." is the run's (packetdrill's socket_domain);
		// a written one must be the same here, where every socket's
		// addresses are the run's.
		if a[0].Kind != ExprEllipsis {
			dom, err := intArg(0)
			if want, name := socketDomain(d.family6); err != nil || dom != want {
				return unsupported("socket domain: only the run's, %s (write ... for it)", name), true
			}
		}
		typ, err := intArg(1)
		if err != nil {
			return unsupported("socket type: %v", err), true
		}
		if typ&^(unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC) != unix.SOCK_STREAM {
			return unsupported("only SOCK_STREAM sockets are supported"), true
		}
		s, err := d.ops.Socket()
		if err != nil {
			return errnoResult(err), true
		}
		fd := d.newFD(c.WantFD)
		d.fds[fd] = &descriptor[S]{sock: s, nonblock: typ&unix.SOCK_NONBLOCK != 0}
		return CallResult{Ret: int64(fd)}, true
	case "bind":
		return callResult(d.ops.Bind(f.sock)), true
	case "listen":
		backlog, err := intArg(1)
		if err != nil {
			return unsupported("listen backlog: %v", err), true
		}
		return callResult(d.ops.Listen(f.sock, backlog)), true
	case "accept", "accept4":
		flags := 0
		if len(a) == 4 {
			flags, _ = intArg(3)
		}
		p.try = func() (CallResult, bool) {
			s, err := d.ops.Accept(f.sock)
			if err == errWouldBlock {
				return CallResult{}, false
			}
			if err != nil {
				return errnoResult(err), true
			}
			fd := d.newFD(c.WantFD)
			d.fds[fd] = &descriptor[S]{sock: s, nonblock: flags&unix.SOCK_NONBLOCK != 0}
			return CallResult{Ret: int64(fd)}, true
		}
		return d.blocking(p, f.nonblock)
	case "connect":
		return d.connect(p, f)
	case "read", "recv", "recvfrom", "write", "send", "sendto":
		return d.readWrite(p, c, f)
	case "readv", "writev":
		if len(a) != 3 {
			return unsupported("%s takes 3 arguments", c.Name), true
		}
		lens, err := IovecLengths(a[1])
		if err != nil {
			return unsupported("%s: %v", c.Name, err), true
		}
		if cnt, err := intArg(2); err != nil || cnt != len(lens) {
			return unsupported("%s: the iovec count %s does not match the %d-element array", c.Name, a[2], len(lens)), true
		}
		n := sum(lens)
		if c.Name == "readv" {
			return d.read(p, f, n, 0, false)
		}
		return d.write(p, f, "", false, n, 0)
	case "sendmsg", "recvmsg":
		return d.msg(p, c, f)
	case "close":
		fd, err := intArg(0)
		if err != nil {
			return unsupported("close: %v", err), true
		}
		if f = d.fds[fd]; f == nil {
			return fail("EBADF"), true
		}
		delete(d.fds, fd)
		if f.ep != nil {
			d.closeEpoll(f.ep)
			return CallResult{}, true
		}
		d.forgetInEpolls(fd)
		if until := d.ops.Close(f.sock); until != 0 && !f.nonblock {
			p.try = func() (CallResult, bool) { return CallResult{}, !d.ops.Lingering(f.sock) }
			p.deadline = until
			p.onTimeout = func() CallResult { return CallResult{} }
			return p.try()
		}
		return CallResult{}, true
	case "shutdown":
		how, err := intArg(1)
		if err != nil {
			return unsupported("shutdown how: %v", err), true
		}
		return callResult(d.ops.Shutdown(f.sock, how)), true
	case "setsockopt":
		return d.setsockopt(f.sock, a), true
	case "getsockopt":
		return d.getsockopt(f.sock, a), true
	case "ioctl":
		return d.ioctl(f.sock, a), true
	case "fcntl":
		cmd, err := intArg(1)
		if err != nil {
			return unsupported("fcntl command: %v", err), true
		}
		switch cmd {
		case unix.F_GETFL:
			fl := unix.O_RDWR
			if f.nonblock {
				fl |= unix.O_NONBLOCK
			}
			return CallResult{Ret: int64(fl)}, true
		case unix.F_SETFL:
			v, err := intArg(2)
			if err != nil {
				return unsupported("fcntl flags: %v", err), true
			}
			f.nonblock = v&unix.O_NONBLOCK != 0
			return CallResult{}, true
		case unix.F_GETFD, unix.F_SETFD:
			return CallResult{}, true
		}
		return unsupported("fcntl command %d is not supported", cmd), true
	case "poll":
		return d.poll(p, a)
	case "epoll_create", "epoll_create1":
		return d.epollCreate(c), true
	case "epoll_ctl":
		return d.epollCtl(a), true
	case "epoll_wait":
		return d.epollWait(p, a)
	}
	return unsupported("system call %s is not supported by the %s target", c.Name, d.target), true
}

func sum(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
}

// readWrite starts read(fd, buf, n), recv(fd, buf, n, flags),
// recvfrom(fd, buf, n, flags, ..., ...) and their write counterparts.
func (d *dispatcher[S]) readWrite(p *blockedCall, c *Call, f *descriptor[S]) (CallResult, bool) {
	a := c.Args
	want := map[string]int{"read": 3, "write": 3, "recv": 4, "send": 4, "recvfrom": 6, "sendto": 6}[c.Name]
	if len(a) != want {
		return unsupported("%s takes %d arguments", c.Name, want), true
	}
	if want == 6 && (a[4].Kind != ExprEllipsis || a[5].Kind != ExprEllipsis) {
		if _, err := IntValue(a[4]); err != nil || a[5].Kind != ExprEllipsis {
			return unsupported("%s: the address arguments must be ..., ... (the script's peer)", c.Name), true
		}
	}
	null, text, err := bufferArg(a[1])
	if err != nil {
		return unsupported("%s: %v", c.Name, err), true
	}
	n64, err := IntValue(a[2])
	if err != nil || n64 < 0 {
		return unsupported("%s length: expected a byte count, found %s", c.Name, a[2]), true
	}
	flags := 0
	if want >= 4 {
		v, err := IntValue(a[3])
		if err != nil {
			return unsupported("%s flags: %v", c.Name, err), true
		}
		flags = int(v)
	}
	if c.Name == "read" || c.Name == "recv" || c.Name == "recvfrom" {
		return d.read(p, f, int(n64), flags, null)
	}
	return d.write(p, f, text, null, int(n64), flags)
}

// bufferArg reads a buffer argument: ... (a buffer the runner provides),
// 0 (NULL: a bad pointer), or a "string" (the data to write, then zeros).
func bufferArg(e Expr) (null bool, text string, err error) {
	switch {
	case e.Kind == ExprEllipsis:
		return false, "", nil
	case e.Kind == ExprString:
		return false, e.Name, nil
	case e.Kind == ExprInt && e.Int == 0:
		return true, "", nil
	}
	return false, "", fmt.Errorf("expected ... or 0 (NULL) for the buffer, found %s", e)
}

// msg starts sendmsg(fd, msghdr, flags) or recvmsg(fd, msghdr, flags).
func (d *dispatcher[S]) msg(p *blockedCall, c *Call, f *descriptor[S]) (CallResult, bool) {
	a := c.Args
	if len(a) != 3 {
		return unsupported("%s takes 3 arguments", c.Name), true
	}
	m, err := MsghdrValue(a[1])
	if err != nil {
		return unsupported("%s: %v", c.Name, err), true
	}
	flags, err := IntValue(a[2])
	if err != nil {
		return unsupported("%s flags: %v", c.Name, err), true
	}
	if m.Controls > 0 {
		return unsupported("%s: control messages (msg_control) are not supported", c.Name), true
	}
	n := sum(m.IOV)
	if c.Name == "sendmsg" {
		if v, err := IntValue(m.Flags); err != nil || v != 0 {
			// packetdrill's rule: sendmsg ignores msg_flags, so a script
			// that sets it is wrong.
			return unsupported("sendmsg ignores the msg_flags field of the msghdr: write msg_flags=0"), true
		}
		return d.write(p, f, "", false, n, int(flags))
	}
	res, done := d.read(p, f, n, int(flags), false)
	// TCP's recvmsg sets no msg_flags; the linux target reports the
	// kernel's.
	withFlags := func(r CallResult) CallResult {
		if r.Err == nil {
			r.Out.MsgFlags, r.Out.HasMsgFlags = 0, true
		}
		return r
	}
	if done {
		return withFlags(res), true
	}
	try := p.try
	p.try = func() (CallResult, bool) {
		r, ok := try()
		return withFlags(r), ok
	}
	return res, false
}

// read starts a read of at most n bytes; null says the buffer is a bad
// pointer.
func (d *dispatcher[S]) read(p *blockedCall, f *descriptor[S], n, flags int, null bool) (CallResult, bool) {
	p.try = func() (CallResult, bool) {
		var m int
		var err error
		if null && n > 0 {
			err = d.ops.ReadFault(f.sock, n, flags)
		} else {
			m, err = d.ops.Read(f.sock, n, flags)
		}
		switch {
		case err == errWouldBlock:
			return CallResult{}, false
		case err == io.EOF:
			return CallResult{Ret: 0}, true
		case err != nil:
			return errnoResult(err), true
		}
		return CallResult{Ret: int64(m)}, true
	}
	return d.blocking(p, f.nonblock || flags&unix.MSG_DONTWAIT != 0)
}

// write starts a write of n bytes: text, then zeros. A blocking write
// returns when all n are written; a non-blocking one returns what fitted.
// null says the buffer is a bad pointer.
func (d *dispatcher[S]) write(p *blockedCall, f *descriptor[S], text string, null bool, n, flags int) (CallResult, bool) {
	nonblock := f.nonblock || flags&unix.MSG_DONTWAIT != 0
	if null && n > 0 {
		p.try = func() (CallResult, bool) {
			err := d.ops.WriteFault(f.sock)
			if err == errWouldBlock {
				return CallResult{}, false
			}
			return errnoResult(err), true
		}
		return d.blocking(p, nonblock)
	}
	buf := make([]byte, n)
	copy(buf, text)
	written := 0
	p.try = func() (CallResult, bool) {
		for { // at least once, so that a write of zero bytes reports EPIPE
			m, err := d.ops.Write(f.sock, buf[written:], flags)
			written += m
			if err == errWouldBlock {
				if nonblock && written > 0 {
					return CallResult{Ret: int64(written)}, true
				}
				return CallResult{}, false
			}
			if err != nil {
				if written > 0 {
					if k, ok := d.ops.(errorKeeper[S]); ok {
						k.KeepError(f.sock, err)
					}
					return CallResult{Ret: int64(written)}, true
				}
				return errnoResult(err), true
			}
			if written >= n {
				return CallResult{Ret: int64(written)}, true
			}
		}
	}
	return d.blocking(p, nonblock)
}

// ioctl runs ioctl(fd, request, [N]): N is what the call stores.
func (d *dispatcher[S]) ioctl(s S, a []Expr) CallResult {
	if len(a) != 3 {
		return unsupported("ioctl takes 3 arguments here: ioctl(fd, SIOCINQ or SIOCOUTQ, [N])")
	}
	req, err := IntValue(a[1])
	if err != nil {
		return unsupported("ioctl request: %v", err)
	}
	if a[2].Kind != ExprList || len(a[2].Items) != 1 {
		return unsupported("ioctl: expected [N] for the value, found %s", a[2])
	}
	v, err := d.ops.Ioctl(s, int(req))
	if err == errNoOption {
		return unsupported("ioctl request %s is not supported by the %s target", a[1], d.target)
	}
	if err != nil {
		return errnoResult(err)
	}
	return CallResult{OutInt: map[int]int64{2: int64(v)}}
}

// connect starts a connection; a blocking one waits for its outcome.
func (d *dispatcher[S]) connect(p *blockedCall, f *descriptor[S]) (CallResult, bool) {
	switch err := d.ops.Connect(f.sock); {
	case err == errInProgress && f.nonblock:
		return fail("EINPROGRESS"), true
	case err == errAlready && f.nonblock:
		return fail("EALREADY"), true
	case err != errInProgress && err != errAlready:
		return callResult(err), true
	}
	p.try = func() (CallResult, bool) {
		err := d.ops.ConnectResult(f.sock)
		if err == errWouldBlock {
			return CallResult{}, false
		}
		return callResult(err), true
	}
	return p.try()
}

// blocking runs p.try once; a call that would block fails with EAGAIN on a
// non-blocking descriptor and stays pending otherwise.
func (d *dispatcher[S]) blocking(p *blockedCall, nonblock bool) (CallResult, bool) {
	res, done := p.try()
	if done {
		return res, true
	}
	if nonblock {
		return fail("EAGAIN"), true
	}
	return CallResult{}, false
}

func (d *dispatcher[S]) poll(p *blockedCall, a []Expr) (CallResult, bool) {
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
			rev := int16(unix.POLLNVAL)
			if f, ok := d.fds[pe.FD]; ok {
				rev = d.ops.Revents(f.sock, pe.Events|unix.POLLERR|unix.POLLHUP)
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
		p.deadline = d.ops.Now() + time.Duration(tv)*time.Millisecond
		p.onTimeout = func() CallResult { r, _ := eval(); return r }
	}
	return CallResult{}, false
}

func (d *dispatcher[S]) setsockopt(s S, a []Expr) CallResult {
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
		return callResult(d.ops.SetLinger(s, onv != 0, time.Duration(lnv)*time.Second))
	}
	if a[3].Kind == ExprString {
		return d.setsockoptBytes(s, a)
	}
	v, err := PointerInt(a[3])
	if err != nil {
		return unsupported("setsockopt value: %v", err)
	}
	err = d.ops.SetSockopt(s, int(level), int(opt), int(v))
	if err == errNoOption {
		return unsupported("setsockopt option %s/%s is not supported by the %s target", a[1], a[2], d.target)
	}
	return callResult(err)
}

// setsockoptBytes runs setsockopt(fd, level, opt, "string", optlen): the
// call passes optlen bytes of packetdrill's buffer, the string and its NUL
// (zeros past them), and a negative optlen fails with EINVAL as in Linux's
// __sys_setsockopt.
func (d *dispatcher[S]) setsockoptBytes(s S, a []Expr) CallResult {
	level, _ := IntValue(a[1])
	opt, _ := IntValue(a[2])
	optlen, err := IntValue(a[4])
	if err != nil {
		return unsupported("setsockopt optlen: %v", err)
	}
	if optlen < 0 {
		return fail("EINVAL")
	}
	if optlen > 1<<16 {
		return unsupported("setsockopt optlen %d: too large for a string value", optlen)
	}
	v := make([]byte, optlen)
	copy(v, a[3].Name)
	err = d.ops.SetSockoptBytes(s, int(level), int(opt), v)
	if err == errNoOption {
		return unsupported("setsockopt option %s/%s with a string value is not supported by the %s target", a[1], a[2], d.target)
	}
	return callResult(err)
}

// getsockoptBytes runs getsockopt(fd, level, opt, VALUE, [optlen]) for an
// option whose value is a buffer: what the call stores and the optlen it
// returns are checked as packetdrill checks them (checkCallOut).
func (d *dispatcher[S]) getsockoptBytes(s S, a []Expr) CallResult {
	level, _ := IntValue(a[1])
	opt, _ := IntValue(a[2])
	optlen, err := PointerInt(a[4])
	if err != nil {
		return unsupported("getsockopt optlen: %v", err)
	}
	if optlen < 0 {
		return fail("EINVAL")
	}
	v, err := d.ops.GetSockoptBytes(s, int(level), int(opt), int(optlen))
	if err == errNoOption {
		return unsupported("getsockopt option %s/%s with a string value is not supported by the %s target", a[1], a[2], d.target)
	}
	if err != nil {
		return errnoResult(err)
	}
	return CallResult{Out: CallOut{OptVal: v, HasOptVal: true}}
}

// bytesOption reports whether an option's value is a buffer rather than
// an integer.
func bytesOption(level, opt int64) bool {
	return level == unix.IPPROTO_TCP && opt == unix.TCP_CONGESTION
}

func (d *dispatcher[S]) getsockopt(s S, a []Expr) CallResult {
	if len(a) != 5 {
		return unsupported("getsockopt takes 5 arguments")
	}
	level, err1 := IntValue(a[1])
	opt, err2 := IntValue(a[2])
	if err1 != nil || err2 != nil {
		return unsupported("getsockopt level and option: expected names")
	}
	if level == unix.IPPROTO_TCP && opt == unix.TCP_INFO {
		// The struct is read; %{ }% blocks check its fields.
		if a[3].Kind != ExprEllipsis {
			return unsupported("getsockopt TCP_INFO: write ... for the value; %%{ }%% blocks check its fields")
		}
		_, err := d.ops.TCPInfo(s)
		return callResult(err)
	}
	if a[3].Kind == ExprString || bytesOption(level, opt) {
		return d.getsockoptBytes(s, a)
	}
	v, err := d.ops.GetSockopt(s, int(level), int(opt))
	if err == errNoOption {
		return unsupported("getsockopt option %s/%s is not supported by the %s target", a[1], a[2], d.target)
	}
	if err != nil {
		return errnoResult(err)
	}
	return CallResult{OutInt: map[int]int64{3: int64(v)}}
}

// tcpInfo reads the struct tcp_info of the socket the script's fd names,
// for a %{ }% block.
func (d *dispatcher[S]) tcpInfo(fd int) (map[string]uint64, error) {
	f := d.fds[fd]
	switch {
	case f == nil:
		return nil, syscall.EBADF
	case f.ep != nil:
		return nil, syscall.ENOTSOCK
	}
	return d.ops.TCPInfo(f.sock)
}

// boolInt is a boolean socket option's value.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// callResult is the result of a call that returns 0 on success.
func callResult(err error) CallResult {
	if err != nil {
		return errnoResult(err)
	}
	return CallResult{}
}

// errnoResult turns a failed call into -1 and the errno's name. An error
// that is not an errno means the target could not run the call. Errno 0
// (gVisor's code for an error that has no errno) stays unnamed.
func errnoResult(err error) CallResult {
	var en syscall.Errno
	if !errors.As(err, &en) {
		return CallResult{Err: err}
	}
	name := unix.ErrnoName(en)
	if name == "" && en != 0 {
		name = fmt.Sprintf("E%d", int(en))
	}
	return CallResult{Ret: -1, Errno: canonicalErrno(name)}
}

// fail is a call that fails with the errno named.
func fail(errno string) CallResult { return CallResult{Ret: -1, Errno: errno} }

// unsupported is a call the target cannot run: the runner fails its line.
func unsupported(format string, args ...any) CallResult {
	return CallResult{Err: fmt.Errorf(format, args...)}
}
