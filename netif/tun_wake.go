package netif

import (
	"errors"
	"os"
	"time"
)

// A ReadWaker is a link whose waiting read can be cut short. After
// WakeRead, the read that is waiting for a packet (or the next read, if
// none is waiting) returns at once with the packets queued at that moment,
// none if there are none, and no error. QueueLen is the most packets the
// link queues for its reader.
//
// A driver uses it to take in what the link already holds before it runs
// its timers (stack's timer loop): a goroutine parked in the Go poller is
// made runnable only when a scheduler turn polls the network, which under
// load can be many milliseconds after the packet arrived, while an expired
// timer's goroutine runs at the next turn. Cutting the read short with a
// deadline makes the reader runnable as promptly as the timer.
type ReadWaker interface {
	WakeRead()
	QueueLen() int
}

// A WakerLink is a link that passes its reads through to another link
// unchanged (a counter): its waker is that link's, if it has one.
type WakerLink interface {
	Waker() ReadWaker
}

// ReadWakerOf returns the ReadWaker that wakes l's reader: l itself, or
// the one a pass-through wrapper names; nil if l's reads cannot be cut
// short.
func ReadWakerOf(l Link) ReadWaker {
	switch w := l.(type) {
	case ReadWaker:
		return w
	case WakerLink:
		return w.Waker()
	}
	return nil
}

// wokenAt is the read deadline WakeRead sets: long past, so that a read
// waiting for a packet gives up at once.
var wokenAt = time.Unix(1, 0)

// WakeRead implements ReadWaker: the read deadline, set in the past, ends
// the reader's wait; read clears it and reads what is queued without
// waiting.
func (t *TUN) WakeRead() {
	t.file.SetReadDeadline(wokenAt)
}

// QueueLen implements ReadWaker: the device's txqueuelen, the length of
// each queue's ring toward the reader.
func (t *TUN) QueueLen() int { return t.qlen }

// woken reports whether err is a read cut short by WakeRead, and if so
// clears the deadline, so that the read that follows waits again once it
// has taken what is queued.
func (t *TUN) woken(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	t.file.SetReadDeadline(time.Time{})
	return true
}
