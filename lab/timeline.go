package lab

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// Event is one line of an experiment's timeline: something a program did
// (a system call and what it returned) or a packet on the wire.
type Event struct {
	At   time.Duration // since the experiment started
	Who  string        // "server", "client 3", or "wire" for packets
	What string
	// Packet is set for wire events, so printers and tests can tell the
	// two kinds apart.
	Packet *Packet
}

// timeline records events with times relative to one start instant, from
// any goroutine. Times are taken when the event is recorded, so a call's
// return is stamped right after it returned.
type timeline struct {
	start time.Time

	mu     sync.Mutex
	events []Event
}

func newTimeline() *timeline { return &timeline{start: time.Now()} }

// since is the time of t relative to the start.
func (tl *timeline) since(t time.Time) time.Duration { return t.Sub(tl.start) }

// now is the current time relative to the start.
func (tl *timeline) now() time.Duration { return time.Since(tl.start) }

// add records an event now.
func (tl *timeline) add(who, format string, args ...any) time.Duration {
	return tl.addAt(tl.now(), who, format, args...)
}

// addAt records an event at a given relative time.
func (tl *timeline) addAt(at time.Duration, who, format string, args ...any) time.Duration {
	tl.mu.Lock()
	tl.events = append(tl.events, Event{At: at, Who: who, What: fmt.Sprintf(format, args...)})
	tl.mu.Unlock()
	return at
}

// merge adds the packets of a capture as wire events.
func (tl *timeline) merge(c *Capture) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for i := range c.Packets {
		p := &c.Packets[i]
		tl.events = append(tl.events, Event{At: p.At, Who: "wire", What: p.String(), Packet: p})
	}
}

// sorted returns the events in time order; events at the same instant
// keep the order they were recorded in.
func (tl *timeline) sorted() []Event {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	ev := slices.Clone(tl.events)
	slices.SortStableFunc(ev, func(a, b Event) int {
		switch {
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		}
		return 0
	})
	return ev
}

// printTimeline writes events as aligned lines: seconds with millisecond
// precision, who, what.
func printTimeline(w io.Writer, events []Event) {
	for _, e := range events {
		fmt.Fprintf(w, "  %8.3f  %-9s  %s\n", e.At.Seconds(), e.Who, e.What)
	}
}

func clientName(n int) string { return fmt.Sprintf("client %d", n) }

// secs formats a duration as seconds for verdict sentences: "20.004 s".
func secs(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }
