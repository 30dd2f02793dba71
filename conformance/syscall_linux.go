package conformance

import (
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
		domain := unix.AF_INET
		if a[0].Kind != ExprEllipsis {
			v, err := intArg(0)
			if err != nil {
				return unsupported("socket domain: %v", err)
			}
			if v != unix.AF_INET {
				return unsupported("only AF_INET sockets are supported")
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
			err = unix.Bind(fd, &unix.SockaddrInet4{Port: int(t.cfg.BindPort), Addr: t.cfg.LocalIP.As4()})
		} else {
			err = unix.Connect(fd, &unix.SockaddrInet4{Port: int(t.cfg.ConnectPort), Addr: t.cfg.RemoteIP.As4()})
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
	case "read", "write", "recv", "send":
		if len(a) < 3 {
			return unsupported("%s takes at least 3 arguments", c.Name)
		}
		fd, _ := t.fd(a[0])
		n, err := intArg(2)
		if err != nil || n < 0 {
			return unsupported("%s length: expected a byte count", c.Name)
		}
		flags := 0
		if c.Name == "recv" || c.Name == "send" {
			if len(a) != 4 {
				return unsupported("%s takes 4 arguments", c.Name)
			}
			if flags, err = intArg(3); err != nil {
				return unsupported("%s flags: %v", c.Name, err)
			}
		}
		buf := make([]byte, n)
		if a[1].Kind == ExprString {
			copy(buf, a[1].Name)
		}
		var got int
		switch c.Name {
		case "read":
			got, err = unix.Read(fd, buf)
		case "recv":
			got, _, err = unix.Recvfrom(fd, buf, flags)
		case "write":
			got, err = unix.Write(fd, buf)
		case "send":
			got, err = unix.SendmsgN(fd, buf, nil, nil, flags|unix.MSG_NOSIGNAL)
		}
		if err != nil {
			return errnoResult(err)
		}
		return CallResult{Ret: int64(got)}
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
		n, err := unix.Poll(pfds, timeout)
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
		{unix.IPPROTO_TCP, unix.TCP_CONGESTION}: "TCP_CONGESTION",
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
		err = unix.SetsockoptString(fd, level, opt, a[3].Name)
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
	switch {
	case level == unix.SOL_SOCKET && opt == unix.SO_LINGER, opt == unix.TCP_CONGESTION && level == unix.IPPROTO_TCP:
		if a[3].Kind != ExprEllipsis {
			return unsupported("getsockopt of %s with a checked value is not supported; write ... for it", a[2])
		}
	}
	if level == unix.SOL_SOCKET && opt == unix.SO_LINGER {
		if _, err := unix.GetsockoptLinger(fd, level, opt); err != nil {
			return errnoResult(err)
		}
		return CallResult{}
	}
	if level == unix.IPPROTO_TCP && opt == unix.TCP_CONGESTION {
		if _, err := unix.GetsockoptString(fd, level, opt); err != nil {
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
