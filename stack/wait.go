package stack

import (
	"sync"
	"time"
)

// notifier is the tcpcore.Waker of one socket. A blocked call takes the
// current channel under the stack lock, drops the lock and waits; Wake
// closes the channel, so every waiter of that generation runs again and
// re-checks its condition under the lock. Because the check and the take
// happen under the same lock as Wake, no wakeup is lost.
//
// The channel is made only when someone waits: the engine wakes a busy
// socket on every ACK, and most of those wakeups find nobody blocked, so
// they must not allocate.
//
// All fields are guarded by the stack's mutex; Wake is called by the stack
// while it holds that mutex (engine wakeups are processed under it).
type notifier struct {
	ch chan struct{}
}

// Wake implements tcpcore.Waker.
func (n *notifier) Wake() {
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// wait returns the channel the next Wake closes. The caller holds the
// stack's mutex.
func (n *notifier) wait() <-chan struct{} {
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
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
	mu     sync.Mutex
	timer  *time.Timer
	gen    uint64        // bumped by every set, so a stale timer is ignored
	expire chan struct{} // closed when the deadline has passed
}

func newDeadline() *deadline {
	return &deadline{expire: make(chan struct{})}
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
			close(d.expire)
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
			close(d.expire)
		}
	})
}

// wait returns the channel closed when the deadline passes.
func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.expire
}

// expired reports whether the deadline has passed.
func (d *deadline) expired() bool {
	return isClosed(d.wait())
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
