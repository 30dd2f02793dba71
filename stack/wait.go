package stack

import (
	"sync"
	"time"
)

// notifier is the tcpcore.Waker of one socket. A blocked call registers
// under the stack lock (wait), drops the lock and waits on the socket's
// channel; after it wakes, for whatever reason, it takes the lock and
// deregisters (done). Wake makes every call waiting at that moment run
// again and re-check its condition under the lock; because the check and
// the registration happen under the same lock as Wake, no wakeup is lost.
//
// The channel is made once per socket, on its first wait, and carries at
// most one token: Wake sends one if some waiter started waiting before it,
// and each such waiter that deregisters passes a token on while others
// remain, so one token wakes them all in turn. A waiter that registered
// after the Wake may take a token meant for an older one; it passes it on
// too, and merely re-checks. Nothing is allocated per wait, so a
// request/response connection that blocks in Read once per request makes
// no garbage (a channel closed per Wake did, one per blocking call).
//
// All fields are guarded by the stack's mutex; Wake is called by the stack
// while it holds that mutex (engine wakeups are processed under it).
type notifier struct {
	sig     chan struct{} // capacity 1
	gen     uint64        // Wakes so far
	waiters int           // registered waiters
	older   int           // of them, those registered before the last Wake: owed a wakeup
}

// Wake implements tcpcore.Waker.
func (n *notifier) Wake() {
	n.gen++
	n.older = n.waiters
	n.token()
}

// token leaves a token in the channel if a waiter is owed a wakeup and
// none is there.
func (n *notifier) token() {
	if n.older > 0 {
		select {
		case n.sig <- struct{}{}:
		default: // one is there already
		}
	}
}

// wait registers a waiter and returns the channel to wait on and the
// registration's generation, for done. The caller holds the stack's mutex.
func (n *notifier) wait() (<-chan struct{}, uint64) {
	if n.sig == nil {
		n.sig = make(chan struct{}, 1)
	}
	n.waiters++
	return n.sig, n.gen
}

// done deregisters a waiter of generation gen, woken or not, and passes a
// token on if others are still owed one. The caller holds the stack's
// mutex again.
func (n *notifier) done(gen uint64) {
	n.waiters--
	if gen != n.gen {
		n.older--
	}
	n.token()
}

// deadline is one of a Conn's I/O deadlines (read or write). Its channel is
// closed when the deadline passes; a blocked call selects on it together
// with the socket's notifier. Setting a new deadline while a call is
// blocked moves the timer under the same channel, so the call keeps waiting
// until the new time, as net.Conn promises.
//
// It has its own mutex because its timer fires on a runtime goroutine that
// must not contend for the stack lock.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	gen   uint64 // bumped by every set, so a stale timer is ignored
	// expire is closed when the deadline has passed; made when first
	// needed (a call waits, or the deadline passes), so that a
	// connection nobody waits on and without deadlines holds no channel.
	expire chan struct{}
}

// deadlines are a connection's read and write deadlines.
type deadlines struct{ rd, wd deadline }

// deadlines returns the connection's deadlines, made at the first call
// (SetDeadline and its kin). A call that waited before they were made
// waited on no deadline channel (readDeadline): the first making wakes
// it, so that it waits again with the deadline's channel.
func (c *Conn) deadlines() *deadlines {
	if d := c.dl.Load(); d != nil {
		return d
	}
	if c.dl.CompareAndSwap(nil, new(deadlines)) {
		c.s.mu.Lock()
		c.n.Wake()
		c.s.mu.Unlock()
	}
	return c.dl.Load()
}

// readDeadline and writeDeadline are the channels a waiting call selects
// on besides its wakeup: nil (never ready) while no deadline was ever set,
// so that a connection that only waits makes none.
func (c *Conn) readDeadline() <-chan struct{} {
	if d := c.dl.Load(); d != nil {
		return d.rd.wait()
	}
	return nil
}

func (c *Conn) writeDeadline() <-chan struct{} {
	if d := c.dl.Load(); d != nil {
		return d.wd.wait()
	}
	return nil
}

// readExpired and writeExpired report whether the read or the write
// deadline has passed: never before one was made.
func (c *Conn) readExpired() bool {
	d := c.dl.Load()
	return d != nil && d.rd.expired()
}

func (c *Conn) writeExpired() bool {
	d := c.dl.Load()
	return d != nil && d.wd.expired()
}

// ch is expire, made if it is not yet. The caller holds d.mu.
func (d *deadline) ch() chan struct{} {
	if d.expire == nil {
		d.expire = make(chan struct{})
	}
	return d.expire
}

// set arms the deadline for t; the zero Time means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// A timer that already fired but still waits for d.mu finds gen
	// changed and does nothing.
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	expired := isClosed(d.expire)
	if t.IsZero() {
		if expired {
			d.expire = make(chan struct{})
		}
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		if !expired {
			close(d.ch())
		}
		return
	}
	if expired {
		d.expire = make(chan struct{})
	}
	gen := d.gen
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen && !isClosed(d.expire) {
			close(d.ch())
		}
	})
}

// wait returns the channel closed when the deadline passes.
func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch()
}

// expired reports whether the deadline has passed.
func (d *deadline) expired() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return isClosed(d.expire) // a nil channel: not yet
}

// stop releases the timer when the connection goes away.
func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
