package lab

import (
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"tunstack/gvisorstack"
	"tunstack/stack"
)

// userServer is a user-space stack (ours or gVisor) on the TUN link: both
// offer Listen(address, backlog) returning a net.Listener.
type userServer struct {
	listenFn func(address string, backlog int) (net.Listener, error)
	countFn  func() []Counter

	mu   sync.Mutex
	last *userListener // the latest listener, for its counters
}

func newTunstackServer(s *stack.Stack) *userServer {
	u := &userServer{listenFn: s.Listen}
	u.countFn = func() []Counter {
		st := s.Stats()
		cs := []Counter{
			{"ListenOverflows", st.ListenOverflows},
			{"ListenDrops", st.ListenDrops},
			{"SyncookiesSent", st.SynCookiesSent},
			{"SyncookiesRecv", st.SynCookiesRecv},
			{"SyncookiesFailed", st.SynCookiesFailed},
		}
		return cs
	}
	return u
}

func newGVisorServer(s *gvisorstack.Stack) *userServer {
	u := &userServer{listenFn: s.Listen}
	u.countFn = func() []Counter {
		t := s.GVisor().Stats().TCP
		return []Counter{
			{"ListenOverflowSynDrop", t.ListenOverflowSynDrop.Value()},
			{"ListenOverflowAckDrop", t.ListenOverflowAckDrop.Value()},
			{"ListenOverflowSynCookieSent", t.ListenOverflowSynCookieSent.Value()},
			{"ListenOverflowSynCookieRcvd", t.ListenOverflowSynCookieRcvd.Value()},
			{"ListenOverflowInvalidSynCookieRcvd", t.ListenOverflowInvalidSynCookieRcvd.Value()},
			{"Retransmits", t.Retransmits.Value()},
		}
	}
	return u
}

func (u *userServer) listen(port uint16, backlog int) (listener, error) {
	l, err := u.listenFn(":"+strconv.Itoa(int(port)), backlog)
	if err != nil {
		return nil, err
	}
	ul := &userListener{l: l, backlog: backlog}
	u.mu.Lock()
	u.last = ul
	u.mu.Unlock()
	return ul, nil
}

func (u *userServer) counters() []Counter { return u.countFn() }

// userListener adapts a net.Listener, which has no accept timeout: an
// Accept left waiting by a timed-out accept call stays outstanding and
// hands its connection to the next accept call. It never runs ahead of the
// experiment: Accept is called only when accept is.
type userListener struct {
	l       net.Listener
	backlog int

	mu      sync.Mutex
	pending chan acceptResult // the outstanding Accept, if any
}

type acceptResult struct {
	c   net.Conn
	err error
}

func (l *userListener) accept(timeout time.Duration) (serverConn, error) {
	l.mu.Lock()
	if l.pending == nil {
		ch := make(chan acceptResult, 1)
		l.pending = ch
		go func() {
			c, err := l.l.Accept()
			ch <- acceptResult{c, err}
		}()
	}
	ch := l.pending
	l.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		l.mu.Lock()
		l.pending = nil
		l.mu.Unlock()
		if r.err != nil {
			return nil, r.err
		}
		return &userConn{c: r.c}, nil
	case <-t.C:
		return nil, errTimeout
	}
}

func (l *userListener) queue() Queue {
	if sl, ok := l.l.(stack.Listener); ok {
		st := sl.Stats()
		return Queue{AcceptQueue: st.AcceptQueue, Backlog: st.Backlog, SynQueue: st.SynQueue}
	}
	// gVisor shows neither queue through its endpoint API.
	return Queue{AcceptQueue: -1, Backlog: l.backlog, SynQueue: -1}
}

func (l *userListener) close() error { return l.l.Close() }

type userConn struct{ c net.Conn }

func (c *userConn) remotePort() uint16 {
	if a, ok := c.c.RemoteAddr().(*net.TCPAddr); ok {
		return uint16(a.Port)
	}
	return 0
}

func (c *userConn) read(p []byte, timeout time.Duration) (int, error) {
	c.c.SetReadDeadline(time.Now().Add(timeout))
	n, err := c.c.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = errTimeout
	}
	return n, err
}

func (c *userConn) write(p []byte, timeout time.Duration) (int, error) {
	c.c.SetWriteDeadline(time.Now().Add(timeout))
	n, err := c.c.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = errTimeout
	}
	return n, err
}

func (c *userConn) setNoDelay(on bool) error {
	nd, ok := c.c.(interface{ SetNoDelay(bool) error })
	if !ok {
		return errors.New("lab: this stack's connections have no SetNoDelay")
	}
	return nd.SetNoDelay(on)
}

func (c *userConn) close() error { return c.c.Close() }
