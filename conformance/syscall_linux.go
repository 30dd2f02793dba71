package conformance

import (
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func (t *linuxTarget) fd(e Expr) (int, bool) {
	v, err := IntValue(e)
	if err != nil {
		return -1, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fd, ok := t.fds[int(v)]
	if !ok {
		// A descriptor the script never opened: let the kernel say EBADF
		// with a number that is surely not open.
		return 1 << 20, true
	}
	return fd, true
}

func (t *linuxTarget) addFD(want, real int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if want < 0 {
		want = real
	}
	t.fds[want] = real
}

// run performs one call. Descriptors in arguments are the script's; address
// arguments written as "..." mean the script's addresses.
func (t *linuxTarget) run(c *Call) CallResult {
	a := c.Args
	argc := func(n int) bool { return len(a) == n }
	intArg := func(i int) (int, error) {
		v, err := IntValue(a[i])
		return int(v), err
	}
	switch c.Name {
	case "socket":
		if !argc(3) {
			return unsupported("socket takes 3 arguments")
		}
		// "..." is the run's domain.
		domain, domainName := socketDomain(t.cfg.SocketFamily6)
		if a[0].Kind != ExprEllipsis {
			v, err := intArg(0)
			if err != nil {
				return unsupported("socket domain: %v", err)
			}
			if v != domain {
				return unsupported("socket domain: only the run's, %s (write ... for it)", domainName)
			}
		}
		typ, err := intArg(1)
		if err != nil {
			return unsupported("socket type: %v", err)
		}
		proto := 0
		if a[2].Kind != ExprEllipsis {
			if proto, err = intArg(2); err != nil {
				return unsupported("socket protocol: %v", err)
			}
		}
		var fd int
		var serr error
		// Sockets belong to the namespace they are created in.
		if err := t.ns.Do(func() error {
			fd, serr = unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
			return nil
		}); err != nil {
			return CallResult{Err: err}
		}
		if serr != nil {
			return errnoResult(serr)
		}
		t.addFD(c.WantFD, fd)
		if c.WantFD >= 0 {
			return CallResult{Ret: int64(c.WantFD)}
		}
		return CallResult{Ret: int64(fd)}
	case "bind", "connect":
		if !argc(3) {
			return unsupported("%s takes 3 arguments", c.Name)
		}
		fd, _ := t.fd(a[0])
		if a[1].Kind != ExprEllipsis {
			return unsupported("%s: only \"...\" (the script's address) is supported as the address", c.Name)
		}
		var err error
		if c.Name == "bind" {
			err = unix.Bind(fd, t.sockaddr(t.cfg.BindIP, t.cfg.BindPort))
		} else {
			err = unix.Connect(fd, t.sockaddr(t.cfg.ConnectIP, t.cfg.ConnectPort))
		}
		if err != nil {
			return errnoResult(err)
		}
		return CallResult{}
	case "listen":
		if !argc(2) {
			return unsupported("listen takes 2 arguments")
		}
		fd, _ := t.fd(a[0])
		n, err := intArg(1)
		if err != nil {
			return unsupported("listen backlog: %v", err)
		}
		if err := unix.Listen(fd, n); err != nil {
			return errnoResult(err)
		}
		return CallResult{}
	case "accept", "accept4":
		if len(a) < 3 {
			return unsupported("%s takes 3 or 4 arguments", c.Name)
		}
		fd, _ := t.fd(a[0])
		flags := unix.SOCK_CLOEXEC
		if len(a) == 4 {
			v, err := intArg(3)
			if err != nil {
				return unsupported("accept4 flags: %v", err)
			}
			flags |= v
		}
		nfd, _, err := unix.Accept4(fd, flags)
		if err != nil {
			return errnoResult(err)
		}
		t.addFD(c.WantFD, nfd)
		if c.WantFD >= 0 {
			return CallResult{Ret: int64(c.WantFD)}
		}
		return CallResult{Ret: int64(nfd)}
	case "read", "write", "recv", "send", "recvfrom", "sendto":
		return t.readWrite(c)
	case "readv", "writev", "sendmsg", "recvmsg":
		return t.vectored(c)
	case "ioctl":
		return t.ioctl(a)
	case "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait":
		return t.epoll(c)
	case "close":
		if !argc(1) {
			return unsupported("close takes 1 argument")
		}
		v, err := IntValue(a[0])
		if err != nil {
			return unsupported("close: %v", err)
		}
		fd, _ := t.fd(a[0])
		t.mu.Lock()
		delete(t.fds, int(v))
		t.mu.Unlock()
		if err := unix.Close(fd); err != nil {
			return errnoResult(err)
		}
		return CallResult{}
	case "shutdown":
		if !argc(2) {
			return unsupported("shutdown takes 2 arguments")
		}
		fd, _ := t.fd(a[0])
		how, err := intArg(1)
		if err != nil {
			return unsupported("shutdown how: %v", err)
		}
		if err := unix.Shutdown(fd, how); err != nil {
			return errnoResult(err)
		}
		return CallResult{}
	case "setsockopt":
		return t.setsockopt(a)
	case "getsockopt":
		return t.getsockopt(a)
	case "fcntl":
		if len(a) < 2 {
			return unsupported("fcntl takes 2 or 3 arguments")
		}
		fd, _ := t.fd(a[0])
		cmd, err := intArg(1)
		if err != nil {
			return unsupported("fcntl command: %v", err)
		}
		arg := 0
		if len(a) == 3 {
			if arg, err = intArg(2); err != nil {
				return unsupported("fcntl argument: %v", err)
			}
		}
		switch cmd {
		case unix.F_GETFL, unix.F_SETFL, unix.F_GETFD, unix.F_SETFD:
		default:
			return unsupported("fcntl command %d is not supported", cmd)
		}
		r, err := unix.FcntlInt(uintptr(fd), cmd, arg)
		if err != nil {
			return errnoResult(err)
		}
		if cmd == unix.F_GETFL {
			// O_LARGEFILE is an artifact of the caller's ABI, not the socket.
			r &^= unix.O_LARGEFILE
		}
		return CallResult{Ret: int64(r)}
	case "poll":
		if !argc(3) {
			return unsupported("poll takes 3 arguments")
		}
		pes, err := PollEntries(a[0])
		if err != nil {
			return unsupported("%v", err)
		}
		timeout, err := intArg(2)
		if err != nil {
			return unsupported("poll timeout: %v", err)
		}
		pfds := make([]unix.PollFd, len(pes))
		for i, pe := range pes {
			fd, _ := t.fd(Expr{Kind: ExprInt, Int: int64(pe.FD)})
			pfds[i] = unix.PollFd{Fd: int32(fd), Events: pe.Events}
		}
		// The Go runtime's signals interrupt poll, which is never
		// restarted (signal(7)); packetdrill's own process gets none:
		// retry with what is left of the timeout, as for epoll_wait.
		deadline := time.Now().Add(time.Duration(timeout) * time.Millisecond)
		var n int
		for {
			n, err = unix.Poll(pfds, timeout)
			if err != unix.EINTR {
				break
			}
			if timeout > 0 {
				timeout = max(int(time.Until(deadline)/time.Millisecond), 0)
			}
		}
		if err != nil {
			return errnoResult(err)
		}
		res := CallResult{Ret: int64(n)}
		for _, p := range pfds {
			res.Revents = append(res.Revents, p.Revents)
		}
		return res
	}
	return unsupported("system call %s is not supported by the linux target", c.Name)
}

func sockoptNames(level, opt int) (string, bool) {
	known := map[[2]int]string{
		{unix.SOL_SOCKET, unix.SO_REUSEADDR}: "SO_REUSEADDR", {unix.SOL_SOCKET, unix.SO_REUSEPORT}: "SO_REUSEPORT",
		{unix.SOL_SOCKET, unix.SO_LINGER}: "SO_LINGER", {unix.SOL_SOCKET, unix.SO_RCVBUF}: "SO_RCVBUF",
		{unix.SOL_SOCKET, unix.SO_SNDBUF}: "SO_SNDBUF", {unix.SOL_SOCKET, unix.SO_KEEPALIVE}: "SO_KEEPALIVE",
		{unix.SOL_SOCKET, unix.SO_ERROR}: "SO_ERROR", {unix.SOL_SOCKET, unix.SO_RCVLOWAT}: "SO_RCVLOWAT",
		{unix.SOL_SOCKET, unix.SO_TYPE}:      "SO_TYPE",
		{unix.IPPROTO_TCP, unix.TCP_NODELAY}: "TCP_NODELAY", {unix.IPPROTO_TCP, unix.TCP_CORK}: "TCP_CORK",
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE}: "TCP_KEEPIDLE", {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL}: "TCP_KEEPINTVL",
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT}: "TCP_KEEPCNT", {unix.IPPROTO_TCP, unix.TCP_QUICKACK}: "TCP_QUICKACK",
		{unix.IPPROTO_TCP, unix.TCP_MAXSEG}: "TCP_MAXSEG", {unix.IPPROTO_TCP, unix.TCP_SYNCNT}: "TCP_SYNCNT",
		{unix.IPPROTO_TCP, unix.TCP_LINGER2}: "TCP_LINGER2", {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT}: "TCP_USER_TIMEOUT",
		{unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT}: "TCP_NOTSENT_LOWAT", {unix.IPPROTO_TCP, unix.TCP_WINDOW_CLAMP}: "TCP_WINDOW_CLAMP",
		{unix.IPPROTO_TCP, unix.TCP_CONGESTION}: "TCP_CONGESTION", {unix.IPPROTO_TCP, unix.TCP_INFO}: "TCP_INFO",
		{unix.IPPROTO_IP, unix.IP_TOS}: "IP_TOS", {unix.IPPROTO_IP, unix.IP_TTL}: "IP_TTL",
	}
	n, ok := known[[2]int{level, opt}]
	return n, ok
}

func (t *linuxTarget) sockoptArgs(a []Expr, name string) (fd, level, opt int, res *CallResult) {
	if len(a) != 5 {
		r := unsupported("%s takes 5 arguments", name)
		return 0, 0, 0, &r
	}
	fd, _ = t.fd(a[0])
	l, err1 := IntValue(a[1])
	o, err2 := IntValue(a[2])
	if err1 != nil || err2 != nil {
		r := unsupported("%s level and option: expected names such as SOL_SOCKET, SO_LINGER", name)
		return 0, 0, 0, &r
	}
	if _, ok := sockoptNames(int(l), int(o)); !ok {
		r := unsupported("%s option %s/%s is not supported", name, a[1], a[2])
		return 0, 0, 0, &r
	}
	return fd, int(l), int(o), nil
}

func (t *linuxTarget) setsockopt(a []Expr) CallResult {
	fd, level, opt, bad := t.sockoptArgs(a, "setsockopt")
	if bad != nil {
		return *bad
	}
	var err error
	switch {
	case level == unix.SOL_SOCKET && opt == unix.SO_LINGER:
		if a[3].Kind != ExprStruct {
			return unsupported("SO_LINGER takes {onoff=N, linger=N}")
		}
		on, ok1 := StructField(a[3], "onoff")
		ln, ok2 := StructField(a[3], "linger")
		if !ok1 || !ok2 {
			return unsupported("SO_LINGER takes {onoff=N, linger=N}")
		}
		onv, err1 := IntValue(on)
		lnv, err2 := IntValue(ln)
		if err1 != nil || err2 != nil {
			return unsupported("SO_LINGER values must be integers")
		}
		err = unix.SetsockoptLinger(fd, level, opt, &unix.Linger{Onoff: int32(onv), Linger: int32(lnv)})
	case level == unix.IPPROTO_TCP && opt == unix.TCP_CONGESTION:
		if a[3].Kind != ExprString {
			return unsupported("TCP_CONGESTION takes a string")
		}
		optlen, perr := IntValue(a[4])
		if perr != nil || optlen > 1<<16 {
			return unsupported("setsockopt optlen: expected a byte count, found %s", a[4])
		}
		// As packetdrill: optlen bytes of the string and its NUL, whatever
		// the string's length.
		v := make([]byte, max(optlen, 1))
		copy(v, a[3].Name)
		_, _, en := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
			uintptr(unsafe.Pointer(&v[0])), uintptr(optlen), 0)
		if en != 0 {
			err = en
		}
	default:
		v, perr := PointerInt(a[3])
		if perr != nil {
			return unsupported("setsockopt value: %v", perr)
		}
		err = unix.SetsockoptInt(fd, level, opt, int(v))
	}
	if err != nil {
		return errnoResult(err)
	}
	return CallResult{}
}

func (t *linuxTarget) getsockopt(a []Expr) CallResult {
	fd, level, opt, bad := t.sockoptArgs(a, "getsockopt")
	if bad != nil {
		return *bad
	}
	if level == unix.SOL_SOCKET && opt == unix.SO_LINGER && a[3].Kind != ExprEllipsis {
		return unsupported("getsockopt of %s with a checked value is not supported; write ... for it", a[2])
	}
	if level == unix.SOL_SOCKET && opt == unix.SO_LINGER {
		if _, err := unix.GetsockoptLinger(fd, level, opt); err != nil {
			return errnoResult(err)
		}
		return CallResult{}
	}
	if level == unix.IPPROTO_TCP && opt == unix.TCP_CONGESTION {
		// The script's optlen in, what the kernel stores and the optlen
		// it returns out, checked as packetdrill checks them.
		optlen, perr := PointerInt(a[4])
		if perr != nil || optlen < 0 || optlen > 1<<16 {
			return unsupported("getsockopt optlen: expected [N], found %s", a[4])
		}
		v := make([]byte, max(optlen, 1))
		n := uint32(optlen)
		_, _, en := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
			uintptr(unsafe.Pointer(&v[0])), uintptr(unsafe.Pointer(&n)), 0)
		if en != 0 {
			return errnoResult(en)
		}
		return CallResult{Out: CallOut{OptVal: v[:min(int(n), len(v))], HasOptVal: true}}
	}
	if level == unix.IPPROTO_TCP && opt == unix.TCP_INFO {
		if a[3].Kind != ExprEllipsis {
			return unsupported("getsockopt TCP_INFO: write ... for the value; %%{ }%% blocks check its fields")
		}
		if _, err := unix.GetsockoptTCPInfo(fd, level, opt); err != nil {
			return errnoResult(err)
		}
		return CallResult{}
	}
	v, err := unix.GetsockoptInt(fd, level, opt)
	if err != nil {
		return errnoResult(err)
	}
	return CallResult{OutInt: map[int]int64{3: int64(v)}}
}

// readWrite runs read, write, recv, send, recvfrom and sendto. A buffer
// written as 0 is passed as a NULL pointer.
func (t *linuxTarget) readWrite(c *Call) CallResult {
	a := c.Args
	want := map[string]int{"read": 3, "write": 3, "recv": 4, "send": 4, "recvfrom": 6, "sendto": 6}[c.Name]
	if len(a) != want {
		return unsupported("%s takes %d arguments", c.Name, want)
	}
	if want == 6 && a[5].Kind != ExprEllipsis {
		return unsupported("%s: the address arguments must be ..., ... (the script's peer)", c.Name)
	}
	fd, _ := t.fd(a[0])
	null, text, err := bufferArg(a[1])
	if err != nil {
		return unsupported("%s: %v", c.Name, err)
	}
	n64, err := IntValue(a[2])
	if err != nil || n64 < 0 {
		return unsupported("%s length: expected a byte count", c.Name)
	}
	n := int(n64)
	flags := 0
	if want >= 4 {
		v, err := IntValue(a[3])
		if err != nil {
			return unsupported("%s flags: %v", c.Name, err)
		}
		flags = int(v)
	}
	var buf []byte
	var ptr uintptr // the buffer's address; 0 for NULL
	if !null {
		buf = make([]byte, max(n, 1))
		copy(buf, text)
		ptr = uintptr(unsafe.Pointer(&buf[0]))
	}
	var to unsafe.Pointer
	var toLen uintptr
	if c.Name == "sendto" {
		if t.cfg.SocketFamily6 {
			sa := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: t.cfg.ConnectIP.As16()}
			p := (*[2]byte)(unsafe.Pointer(&sa.Port))
			p[0], p[1] = byte(t.cfg.ConnectPort>>8), byte(t.cfg.ConnectPort)
			to, toLen = unsafe.Pointer(&sa), unsafe.Sizeof(sa)
		} else {
			sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: t.cfg.ConnectIP.As4()}
			p := (*[2]byte)(unsafe.Pointer(&sa.Port))
			p[0], p[1] = byte(t.cfg.ConnectPort>>8), byte(t.cfg.ConnectPort)
			to, toLen = unsafe.Pointer(&sa), unsafe.Sizeof(sa)
		}
	}
	var r uintptr
	var en syscall.Errno
	switch c.Name {
	case "read":
		r, _, en = unix.Syscall(unix.SYS_READ, uintptr(fd), ptr, uintptr(n))
	case "write":
		r, _, en = unix.Syscall(unix.SYS_WRITE, uintptr(fd), ptr, uintptr(n))
	case "recv", "recvfrom":
		r, _, en = unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), ptr, uintptr(n), uintptr(flags), 0, 0)
	case "send", "sendto":
		r, _, en = unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), ptr, uintptr(n), uintptr(flags|unix.MSG_NOSIGNAL), uintptr(to), toLen)
	}
	if en != 0 {
		return errnoResult(en)
	}
	return CallResult{Ret: int64(r)}
}

// vectored runs readv, writev, sendmsg and recvmsg with buffers of the
// iovec lengths written; sendmsg's msg_name is the script's peer.
func (t *linuxTarget) vectored(c *Call) CallResult {
	a := c.Args
	if len(a) != 3 {
		return unsupported("%s takes 3 arguments", c.Name)
	}
	fd, _ := t.fd(a[0])
	var lens []int
	var flags int64
	var err error
	if c.Name == "readv" || c.Name == "writev" {
		if lens, err = IovecLengths(a[1]); err != nil {
			return unsupported("%s: %v", c.Name, err)
		}
		if cnt, err := IntValue(a[2]); err != nil || int(cnt) != len(lens) {
			return unsupported("%s: the iovec count %s does not match the %d-element array", c.Name, a[2], len(lens))
		}
	} else {
		m, err := MsghdrValue(a[1])
		if err != nil {
			return unsupported("%s: %v", c.Name, err)
		}
		if m.Controls > 0 {
			return unsupported("%s: control messages (msg_control) are not supported", c.Name)
		}
		if flags, err = IntValue(a[2]); err != nil {
			return unsupported("%s flags: %v", c.Name, err)
		}
		if v, err := IntValue(m.Flags); c.Name == "sendmsg" && (err != nil || v != 0) {
			return unsupported("sendmsg ignores the msg_flags field of the msghdr: write msg_flags=0")
		}
		lens = m.IOV
	}
	bufs := make([][]byte, len(lens))
	for i, n := range lens {
		bufs[i] = make([]byte, n)
	}
	var n, recvFlags int
	switch c.Name {
	case "readv":
		n, err = unix.Readv(fd, bufs)
	case "writev":
		n, err = unix.Writev(fd, bufs)
	case "sendmsg":
		n, err = unix.SendmsgBuffers(fd, bufs, nil, t.sockaddr(t.cfg.ConnectIP, t.cfg.ConnectPort), int(flags)|unix.MSG_NOSIGNAL)
	case "recvmsg":
		n, _, recvFlags, _, err = unix.RecvmsgBuffers(fd, bufs, nil, int(flags))
	}
	if err != nil {
		return errnoResult(err)
	}
	res := CallResult{Ret: int64(n)}
	if c.Name == "recvmsg" {
		res.Out.MsgFlags, res.Out.HasMsgFlags = int64(recvFlags), true
	}
	return res
}

// ioctl runs ioctl(fd, SIOCINQ / SIOCOUTQ / SIOCOUTQNSD, [N]).
func (t *linuxTarget) ioctl(a []Expr) CallResult {
	if len(a) != 3 {
		return unsupported("ioctl takes 3 arguments here: ioctl(fd, SIOCINQ or SIOCOUTQ, [N])")
	}
	fd, _ := t.fd(a[0])
	req, err := IntValue(a[1])
	if err != nil {
		return unsupported("ioctl request: %v", err)
	}
	switch req {
	case unix.SIOCINQ, unix.SIOCOUTQ, unix.SIOCOUTQNSD:
	default:
		return unsupported("ioctl request %s is not supported (SIOCINQ, SIOCOUTQ and SIOCOUTQNSD are)", a[1])
	}
	if a[2].Kind != ExprList || len(a[2].Items) != 1 {
		return unsupported("ioctl: expected [N] for the value, found %s", a[2])
	}
	v, err := unix.IoctlGetInt(fd, uint(req))
	if err != nil {
		return errnoResult(err)
	}
	return CallResult{OutInt: map[int]int64{2: int64(v)}}
}

// scriptFD is the script's descriptor for a real one, or -1.
func (t *linuxTarget) scriptFD(real int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s, r := range t.fds {
		if r == real {
			return s
		}
	}
	return -1
}

// epoll runs the epoll calls on the kernel's epoll. An event's fd= names
// a script descriptor: the kernel gets the real one, and epoll_wait's
// answer is mapped back.
func (t *linuxTarget) epoll(c *Call) CallResult {
	a := c.Args
	switch c.Name {
	case "epoll_create", "epoll_create1":
		if len(a) != 1 {
			return unsupported("%s takes 1 argument", c.Name)
		}
		v, err := IntValue(a[0])
		if err != nil {
			return unsupported("%s: %v", c.Name, err)
		}
		var fd int
		if c.Name == "epoll_create" {
			fd, err = unix.EpollCreate(int(v))
		} else {
			fd, err = unix.EpollCreate1(int(v))
		}
		if err != nil {
			return errnoResult(err)
		}
		t.addFD(c.WantFD, fd)
		if c.WantFD >= 0 {
			return CallResult{Ret: int64(c.WantFD)}
		}
		return CallResult{Ret: int64(fd)}
	case "epoll_ctl":
		if len(a) != 4 {
			return unsupported("epoll_ctl takes 4 arguments")
		}
		epfd, _ := t.fd(a[0])
		fd, _ := t.fd(a[2])
		op, err := IntValue(a[1])
		if err != nil {
			return unsupported("epoll_ctl op: %v", err)
		}
		events, form, data, err := EpollArg(a[3])
		if err != nil {
			return unsupported("epoll_ctl: %v", err)
		}
		if form == "fd" {
			real, _ := t.fd(Expr{Kind: ExprInt, Int: int64(data)})
			data = uint64(uint32(real))
		}
		ev := unix.EpollEvent{Events: events, Fd: int32(uint32(data)), Pad: int32(uint32(data >> 32))}
		if err := unix.EpollCtl(epfd, int(op), fd, &ev); err != nil {
			return errnoResult(err)
		}
		return CallResult{}
	}
	// epoll_wait
	if len(a) != 4 {
		return unsupported("epoll_wait takes 4 arguments")
	}
	epfd, _ := t.fd(a[0])
	_, form, _, err := EpollArg(a[1])
	if err != nil {
		return unsupported("epoll_wait: %v", err)
	}
	maxEv, err1 := IntValue(a[2])
	timeout, err2 := IntValue(a[3])
	if err1 != nil || err2 != nil {
		return unsupported("epoll_wait: maxevents and timeout must be integers")
	}
	evs := make([]unix.EpollEvent, max(maxEv, 1))
	if maxEv <= 0 {
		evs = nil
	}
	// The Go runtime's signals interrupt epoll_wait: retry with what is
	// left of the timeout.
	deadline := time.Now().Add(time.Duration(timeout) * time.Millisecond)
	var n int
	for {
		n, err = unix.EpollWait(epfd, evs, int(timeout))
		if err != unix.EINTR {
			break
		}
		if timeout > 0 {
			if timeout = int64(time.Until(deadline) / time.Millisecond); timeout < 0 {
				timeout = 0
			}
		}
	}
	if err != nil {
		return errnoResult(err)
	}
	res := CallResult{Ret: int64(n)}
	res.Out.HasEvents = true
	for _, ev := range evs[:n] {
		data := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
		if form == "fd" {
			data = uint64(int64(t.scriptFD(int(ev.Fd))))
		}
		res.Out.Events = append(res.Out.Events, EpollEvent{Events: ev.Events, Data: data})
	}
	return res
}

// TCPInfo reads a socket's struct tcp_info from the kernel (tcpInfoTarget).
func (t *linuxTarget) TCPInfo(fd int) (map[string]uint64, error) {
	real, _ := t.fd(Expr{Kind: ExprInt, Int: int64(fd)})
	info, err := unix.GetsockoptTCPInfo(real, unix.SOL_TCP, unix.TCP_INFO)
	if err != nil {
		return nil, err
	}
	// The struct as the kernel wrote it, with the bit-field bytes (6 and 7)
	// that x/sys/unix's TCPInfo leaves as padding.
	return tcpInfoVars(unsafe.Slice((*byte)(unsafe.Pointer(info)), unsafe.Sizeof(*info))), nil
}

// sockaddr is the address a of the run's socket family: sockaddr_in, or
// sockaddr_in6 (for ipv4-mapped-ipv6 a is ::ffff:a.b.c.d already).
func (t *linuxTarget) sockaddr(a netip.Addr, port uint16) unix.Sockaddr {
	if t.cfg.SocketFamily6 {
		return &unix.SockaddrInet6{Port: int(port), Addr: a.As16()}
	}
	return &unix.SockaddrInet4{Port: int(port), Addr: a.As4()}
}
