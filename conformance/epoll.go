package conformance

import (
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// epoll for the in-process targets. Their stacks report readiness
// (socketOps.Revents); the dispatcher keeps each epoll instance's interest
// list and ready list the way Linux's eventpoll does:
//
//   - a registered socket joins the ready list, at its tail, when it is
//     woken with an event of interest: the runner looks after every step of
//     the stack (and at every epoll_wait) and counts as a wakeup a new
//     event bit, or more bytes to read;
//   - epoll_wait walks the ready list in order, drops the sockets that are
//     no longer ready, reports up to maxevents, and puts a reported
//     level-triggered socket back at the tail; an edge-triggered one
//     (EPOLLET) leaves the list until its next wakeup; EPOLLONESHOT disarms
//     the socket until EPOLL_CTL_MOD;
//   - EPOLLERR and EPOLLHUP are always reported;
//   - closing a socket's last descriptor removes it from every instance.
//
// The linux target uses the kernel's own epoll.

// Linux's epoll flags (the event bits are poll's).
const (
	epollET      = 1 << 31
	epollOneShot = 1 << 30
	epollWakeup  = 1 << 29
	epollExcl    = 1 << 28
	epollFlags   = epollET | epollOneShot | epollWakeup | epollExcl
)

// EpollEvent is one struct epoll_event as the script sees it: Data is the
// value of the form written (fd=, ptr=, u32=, u64=), a descriptor being
// the script's number.
type EpollEvent struct {
	Events uint32
	Data   uint64
}

// EpollArg decodes {events=E, fd=N} (or ptr=, u32=, u64= instead of fd=).
func EpollArg(e Expr) (events uint32, form string, data uint64, err error) {
	if e.Kind != ExprStruct || len(e.Fields) != 2 || e.Fields[0].Name != "events" {
		return 0, "", 0, fmt.Errorf("expected an epoll event {events=E, fd=N} (or ptr=, u32=, u64=), found %s", e)
	}
	ev, err := IntValue(e.Fields[0].Value)
	if err != nil {
		return 0, "", 0, fmt.Errorf("epoll events: %v", err)
	}
	form = e.Fields[1].Name
	switch form {
	case "fd", "ptr", "u32", "u64":
	default:
		return 0, "", 0, fmt.Errorf("epoll event data: expected fd=, ptr=, u32= or u64=, found %s=", form)
	}
	v, err := IntValue(e.Fields[1].Value)
	if err != nil {
		return 0, "", 0, fmt.Errorf("epoll event %s: %v", form, err)
	}
	if form == "u32" {
		v = int64(uint32(v))
	}
	return uint32(ev), form, uint64(v), nil
}

// epollSet is one epoll instance.
type epollSet struct {
	items []*epollItem // interest list, in the order added
	ready []*epollItem // ready list
}

type epollItem struct {
	fd       int    // the script's descriptor of the socket
	events   uint32 // interest and flags, as given to epoll_ctl
	data     uint64
	queued   bool
	disarmed bool  // EPOLLONESHOT reported; waits for EPOLL_CTL_MOD
	last     int16 // events seen at the last look, for wakeups
	lastInq  int   // bytes to read at the last look
}

func (it *epollItem) mask() int16 {
	return int16(it.events&0xffff) | unix.POLLERR | unix.POLLHUP
}

func (e *epollSet) item(fd int) *epollItem {
	for _, it := range e.items {
		if it.fd == fd {
			return it
		}
	}
	return nil
}

func (e *epollSet) unqueue(it *epollItem) {
	if it.queued {
		it.queued = false
		e.ready = slices.DeleteFunc(e.ready, func(x *epollItem) bool { return x == it })
	}
}

func (e *epollSet) remove(fd int) bool {
	it := e.item(fd)
	if it == nil {
		return false
	}
	e.unqueue(it)
	e.items = slices.DeleteFunc(e.items, func(x *epollItem) bool { return x == it })
	return true
}

// scanEpolls looks at every registered socket and queues those woken
// since the last look.
func (d *dispatcher[S]) scanEpolls() {
	for _, e := range d.epolls {
		for _, it := range e.items {
			d.look(e, it)
		}
	}
}

func (d *dispatcher[S]) look(e *epollSet, it *epollItem) {
	f := d.fds[it.fd]
	if f == nil || f.ep != nil {
		return
	}
	rev := d.ops.Revents(f.sock, it.mask())
	inq, err := d.ops.Ioctl(f.sock, unix.SIOCINQ)
	if err != nil {
		inq = 0
	}
	woken := rev&^it.last != 0 || (rev&unix.POLLIN != 0 && inq > it.lastInq)
	it.last, it.lastInq = rev, inq
	if rev == 0 || it.queued || it.disarmed {
		return
	}
	if woken || it.events&epollET == 0 {
		it.queued = true
		e.ready = append(e.ready, it)
	}
}

func (d *dispatcher[S]) epollCreate(c *Call) CallResult {
	if len(c.Args) != 1 {
		return unsupported("%s takes 1 argument", c.Name)
	}
	v, err := IntValue(c.Args[0])
	if err != nil {
		return unsupported("%s: %v", c.Name, err)
	}
	// epoll_create(size) needs size > 0; epoll_create1(flags) takes
	// EPOLL_CLOEXEC only.
	if c.Name == "epoll_create" && v <= 0 || c.Name == "epoll_create1" && v&^unix.EPOLL_CLOEXEC != 0 {
		return fail("EINVAL")
	}
	var zero S
	e := &epollSet{}
	fd := d.newFD(c.WantFD)
	d.fds[fd] = &descriptor[S]{sock: zero, ep: e}
	d.epolls = append(d.epolls, e)
	return CallResult{Ret: int64(fd)}
}

func (d *dispatcher[S]) closeEpoll(e *epollSet) {
	d.epolls = slices.DeleteFunc(d.epolls, func(x *epollSet) bool { return x == e })
}

// forgetInEpolls removes a closed socket from every epoll instance.
func (d *dispatcher[S]) forgetInEpolls(fd int) {
	for _, e := range d.epolls {
		e.remove(fd)
	}
}

func (d *dispatcher[S]) epollCtl(a []Expr) CallResult {
	if len(a) != 4 {
		return unsupported("epoll_ctl takes 4 arguments")
	}
	epfd, err1 := IntValue(a[0])
	op, err2 := IntValue(a[1])
	fd, err3 := IntValue(a[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return unsupported("epoll_ctl: expected epoll_ctl(epfd, EPOLL_CTL_..., fd, {events=E, fd=N})")
	}
	events, _, data, err := EpollArg(a[3])
	if err != nil {
		return unsupported("epoll_ctl: %v", err)
	}
	ef, f := d.fds[int(epfd)], d.fds[int(fd)]
	switch {
	case ef == nil || f == nil:
		return fail("EBADF")
	case ef.ep == nil || epfd == fd:
		return fail("EINVAL")
	case f.ep != nil:
		return unsupported("epoll_ctl: an epoll instance inside another is not supported by the %s target", d.target)
	}
	e := ef.ep
	it := e.item(int(fd))
	switch op {
	case unix.EPOLL_CTL_ADD:
		if it != nil {
			return fail("EEXIST")
		}
		it = &epollItem{fd: int(fd), events: events, data: data}
		e.items = append(e.items, it)
		// Linux looks at the socket at once: one already ready is queued.
		it.last = 0
		d.look(e, it)
	case unix.EPOLL_CTL_MOD:
		if it == nil {
			return fail("ENOENT")
		}
		if events&epollExcl != 0 {
			return fail("EINVAL")
		}
		it.events, it.data, it.disarmed = events, data, false
		e.unqueue(it)
		it.last = 0
		d.look(e, it)
	case unix.EPOLL_CTL_DEL:
		if !e.remove(int(fd)) {
			return fail("ENOENT")
		}
	default:
		return fail("EINVAL")
	}
	return CallResult{}
}

// epollWait runs epoll_wait(epfd, {events=E, fd=N}, maxevents, timeout):
// the event written is what the first one returned must be.
func (d *dispatcher[S]) epollWait(p *blockedCall, a []Expr) (CallResult, bool) {
	if len(a) != 4 {
		return unsupported("epoll_wait takes 4 arguments"), true
	}
	epfd, err1 := IntValue(a[0])
	maxEv, err2 := IntValue(a[2])
	timeout, err3 := IntValue(a[3])
	if err1 != nil || err2 != nil || err3 != nil {
		return unsupported("epoll_wait: expected epoll_wait(epfd, {events=E, fd=N}, maxevents, timeout)"), true
	}
	if _, _, _, err := EpollArg(a[1]); err != nil {
		return unsupported("epoll_wait: %v", err), true
	}
	ef := d.fds[int(epfd)]
	switch {
	case ef == nil:
		return fail("EBADF"), true
	case ef.ep == nil || maxEv <= 0:
		return fail("EINVAL"), true
	}
	e := ef.ep
	eval := func() (CallResult, bool) {
		for _, it := range e.items {
			d.look(e, it)
		}
		var res CallResult
		var keep, again []*epollItem
		for _, it := range e.ready {
			f := d.fds[it.fd]
			var rev int16
			if f != nil && !it.disarmed {
				rev = d.ops.Revents(f.sock, it.mask())
			}
			switch {
			case rev == 0:
				it.queued = false
			case len(res.Out.Events) >= int(maxEv):
				keep = append(keep, it)
			default:
				res.Out.Events = append(res.Out.Events, EpollEvent{Events: uint32(uint16(rev)), Data: it.data})
				switch {
				case it.events&epollOneShot != 0:
					it.disarmed, it.queued = true, false
				case it.events&epollET != 0:
					it.queued = false
				default:
					again = append(again, it)
				}
			}
		}
		e.ready = append(keep, again...)
		res.Ret = int64(len(res.Out.Events))
		res.Out.HasEvents = true
		return res, res.Ret > 0
	}
	p.try = eval
	if res, done := eval(); done || timeout == 0 {
		return res, true
	}
	if timeout > 0 {
		p.deadline = d.ops.Now() + time.Duration(timeout)*time.Millisecond
		p.onTimeout = func() CallResult { r, _ := eval(); return r }
	}
	return CallResult{}, false
}
