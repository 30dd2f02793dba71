package conformance

import "fmt"

// symbols are the constant names scripts use, with their Linux values (the
// scripts are written for Linux, so these are the meanings on every target).
var symbols = map[string]int64{
	"AF_INET": 2, "AF_INET6": 10, "PF_INET": 2, "PF_INET6": 10,
	"SOCK_STREAM": 1, "SOCK_DGRAM": 2, "SOCK_NONBLOCK": 0x800, "SOCK_CLOEXEC": 0x80000,
	"IPPROTO_IP": 0, "IPPROTO_TCP": 6, "IPPROTO_UDP": 17, "SOL_SOCKET": 1, "SOL_TCP": 6, "SOL_IP": 0,

	"SO_DEBUG": 1, "SO_REUSEADDR": 2, "SO_TYPE": 3, "SO_ERROR": 4, "SO_DONTROUTE": 5,
	"SO_BROADCAST": 6, "SO_SNDBUF": 7, "SO_RCVBUF": 8, "SO_KEEPALIVE": 9, "SO_OOBINLINE": 10,
	"SO_LINGER": 13, "SO_REUSEPORT": 15, "SO_RCVLOWAT": 18, "SO_SNDLOWAT": 19,
	"SO_RCVTIMEO": 20, "SO_SNDTIMEO": 21, "SO_SNDBUFFORCE": 32, "SO_RCVBUFFORCE": 33,

	"TCP_NODELAY": 1, "TCP_MAXSEG": 2, "TCP_CORK": 3, "TCP_KEEPIDLE": 4, "TCP_KEEPINTVL": 5,
	"TCP_KEEPCNT": 6, "TCP_SYNCNT": 7, "TCP_LINGER2": 8, "TCP_DEFER_ACCEPT": 9,
	"TCP_WINDOW_CLAMP": 10, "TCP_INFO": 11, "TCP_QUICKACK": 12, "TCP_CONGESTION": 13,
	"TCP_USER_TIMEOUT": 18, "TCP_NOTSENT_LOWAT": 25, "TCP_FASTOPEN": 23,

	"F_GETFD": 1, "F_SETFD": 2, "F_GETFL": 3, "F_SETFL": 4,
	"O_RDONLY": 0, "O_WRONLY": 1, "O_RDWR": 2, "O_NONBLOCK": 0x800, "O_NDELAY": 0x800,

	"SHUT_RD": 0, "SHUT_WR": 1, "SHUT_RDWR": 2,

	"POLLIN": 0x1, "POLLPRI": 0x2, "POLLOUT": 0x4, "POLLERR": 0x8, "POLLHUP": 0x10,
	"POLLNVAL": 0x20, "POLLRDNORM": 0x40, "POLLRDBAND": 0x80, "POLLWRNORM": 0x100,
	"POLLWRBAND": 0x200, "POLLRDHUP": 0x2000,

	"MSG_OOB": 0x1, "MSG_PEEK": 0x2, "MSG_DONTROUTE": 0x4, "MSG_TRUNC": 0x20,
	"MSG_DONTWAIT": 0x40, "MSG_EOR": 0x80, "MSG_WAITALL": 0x100, "MSG_NOSIGNAL": 0x4000,
	"MSG_MORE": 0x8000, "MSG_ZEROCOPY": 0x4000000,

	"IP_TOS": 1, "IP_TTL": 2,

	// ioctl requests: SIOCINQ is FIONREAD (TIOCINQ), SIOCOUTQ is TIOCOUTQ.
	"SIOCINQ": 0x541B, "FIONREAD": 0x541B, "TIOCINQ": 0x541B,
	"SIOCOUTQ": 0x5411, "TIOCOUTQ": 0x5411, "SIOCOUTQNSD": 0x894B,

	"EPOLLIN": 0x1, "EPOLLPRI": 0x2, "EPOLLOUT": 0x4, "EPOLLERR": 0x8, "EPOLLHUP": 0x10,
	"EPOLLRDNORM": 0x40, "EPOLLRDBAND": 0x80, "EPOLLWRNORM": 0x100, "EPOLLWRBAND": 0x200,
	"EPOLLMSG": 0x400, "EPOLLRDHUP": 0x2000, "EPOLLEXCLUSIVE": 1 << 28, "EPOLLWAKEUP": 1 << 29,
	"EPOLLONESHOT": 1 << 30, "EPOLLET": 1 << 31,
	"EPOLL_CTL_ADD": 1, "EPOLL_CTL_DEL": 2, "EPOLL_CTL_MOD": 3, "EPOLL_CLOEXEC": 0x80000,

	"INADDR_ANY": 0,
}

// errnos maps the errno names scripts use to their Linux numbers; used to
// accept numeric forms and to validate names.
var errnos = map[string]int{
	"EPERM": 1, "ENOENT": 2, "EINTR": 4, "EIO": 5, "EBADF": 9, "EAGAIN": 11, "EWOULDBLOCK": 11,
	"ENOMEM": 12, "EACCES": 13, "EFAULT": 14, "EBUSY": 16, "EEXIST": 17, "EINVAL": 22,
	"EMFILE": 24, "ENOTTY": 25, "ENOSPC": 28, "EPIPE": 32, "ENOTSOCK": 88, "EDESTADDRREQ": 89,
	"EMSGSIZE": 90, "EPROTOTYPE": 91, "ENOPROTOOPT": 92, "EPROTONOSUPPORT": 93,
	"EOPNOTSUPP": 95, "EAFNOSUPPORT": 97, "EADDRINUSE": 98, "EADDRNOTAVAIL": 99,
	"ENETDOWN": 100, "ENETUNREACH": 101, "ECONNABORTED": 103, "ECONNRESET": 104,
	"ENOBUFS": 105, "EISCONN": 106, "ENOTCONN": 107, "ESHUTDOWN": 108, "ETIMEDOUT": 110,
	"ECONNREFUSED": 111, "EHOSTDOWN": 112, "EHOSTUNREACH": 113, "EALREADY": 114,
	"EINPROGRESS": 115,
}

// canonicalErrno folds aliases so that EWOULDBLOCK and EAGAIN compare equal.
func canonicalErrno(name string) string {
	if name == "EWOULDBLOCK" {
		return "EAGAIN"
	}
	return name
}

// IntValue evaluates an integer argument: numbers, constant names, A|B, and
// htons(N)-style calls that do not change the value's meaning here.
func IntValue(e Expr) (int64, error) {
	switch e.Kind {
	case ExprInt:
		return e.Int, nil
	case ExprIdent:
		if v, ok := symbols[e.Name]; ok {
			return v, nil
		}
		if v, ok := errnos[e.Name]; ok {
			return int64(v), nil
		}
		return 0, fmt.Errorf("unknown constant %s", e.Name)
	case ExprOr:
		var v int64
		for _, it := range e.Items {
			x, err := IntValue(it)
			if err != nil {
				return 0, err
			}
			v |= x
		}
		return v, nil
	case ExprCall:
		if (e.Name == "htons" || e.Name == "htonl" || e.Name == "ntohs" || e.Name == "ntohl") && len(e.Items) == 1 {
			return IntValue(e.Items[0])
		}
	}
	return 0, fmt.Errorf("expected an integer, found %s", e)
}

// PointerInt evaluates "[N]", the pointer-to-int argument form.
func PointerInt(e Expr) (int64, error) {
	if e.Kind == ExprList && len(e.Items) == 1 {
		return IntValue(e.Items[0])
	}
	return IntValue(e)
}

// StructField returns the named field of {name=value, ...}.
func StructField(e Expr, name string) (Expr, bool) {
	for _, f := range e.Fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return Expr{}, false
}

// PollEntry is one element of a poll array.
type PollEntry struct {
	FD      int
	Events  int16
	Revents int16 // what the script expects
	HasRev  bool
}

// PollEntries decodes [{fd=4, events=POLLIN, revents=POLLIN}, ...].
func PollEntries(e Expr) ([]PollEntry, error) {
	if e.Kind != ExprList {
		return nil, fmt.Errorf("expected a poll array [{fd=N, events=..., revents=...}], found %s", e)
	}
	var out []PollEntry
	for _, it := range e.Items {
		if it.Kind != ExprStruct {
			return nil, fmt.Errorf("expected {fd=N, events=..., revents=...}, found %s", it)
		}
		var pe PollEntry
		fd, ok := StructField(it, "fd")
		if !ok {
			return nil, fmt.Errorf("poll entry %s has no fd=", it)
		}
		v, err := IntValue(fd)
		if err != nil {
			return nil, err
		}
		pe.FD = int(v)
		if ev, ok := StructField(it, "events"); ok {
			v, err := IntValue(ev)
			if err != nil {
				return nil, err
			}
			pe.Events = int16(v)
		}
		if rv, ok := StructField(it, "revents"); ok {
			v, err := IntValue(rv)
			if err != nil {
				return nil, err
			}
			pe.Revents, pe.HasRev = int16(v), true
		}
		out = append(out, pe)
	}
	return out, nil
}
