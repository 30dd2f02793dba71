package stack

import (
	"math"
	"time"

	"tunstack/netif"
	"tunstack/tcpcore"
)

// engineTimer is the one timer of the stack. The engine keeps every
// connection's timers in its own heap and reports only the earliest
// deadline, so a hundred thousand idle connections cost one time.Timer and
// one goroutine, not one each.
//
// armedAt is guarded by the stack mutex.
type engineTimer struct {
	t       *time.Timer
	armedAt tcpcore.Time // deadline the timer is set for; math.MaxInt64 when idle

	// trim fires poolTrimEvery after it is armed, while the engine's
	// pools (packets, the connections' first buffers) keep buffers, to
	// give back those unused since the last trim
	// (tcpcore.Engine.TrimPool). trimArmed is guarded by the stack mutex.
	trim      *time.Timer
	trimArmed bool
	trimEvery time.Duration // poolTrimEvery; a test may lengthen it before the first input

	// Input before timers, on a link that can wake its reader
	// (netif.ReadWaker, a TUN). When timers fall due the timer loop
	// does not run them: it sets toReader and wakes the reader, which
	// runs them once it has taken in what the link held at that moment
	// (readLoop). A peer's ACK that has reached the link is then always
	// processed before a timer that it would have cancelled, as on Linux,
	// where a segment is processed when it arrives (in softirq) and a
	// timer never runs ahead of one already received. Without this, a
	// tail loss probe fired while the ACK of the segment it resends sat
	// unread in the TUN's queue: under load the Go scheduler runs an
	// expired timer's goroutine at its next turn, but makes a goroutine
	// parked in the poller runnable only when a turn polls the network,
	// many milliseconds later when every P is busy. readerGone is set
	// when the reader has stopped: the timer loop runs the timers itself.
	// All three are guarded by the stack mutex.
	toReader   bool
	sinceDue   int // packets the reader has taken since toReader was set
	readerGone bool
}

// poolTrimEvery is how often the stack trims the engine's packet pool
// while it holds buffers: a buffer unused for between one and two of
// these is released.
const poolTrimEvery = time.Second

const notArmed = tcpcore.Time(math.MaxInt64)

func (tm *engineTimer) init() {
	tm.t = time.NewTimer(time.Hour)
	tm.t.Stop()
	tm.armedAt = notArmed
	tm.trim = time.NewTimer(time.Hour)
	tm.trim.Stop()
	tm.trimEvery = poolTrimEvery
}

// armTrim starts the pools' trim timer if it is not running. The caller
// holds s.mu, after an Output whose packets went back to the pool or
// input that may have ended connections.
func (s *Stack) armTrim() {
	if !s.tm.trimArmed && !s.closed {
		s.tm.trimArmed = true
		s.tm.trim.Reset(s.tm.trimEvery)
	}
}

// rearmTimer moves the timer earlier when the engine's next deadline is
// before the one it is set for. A deadline that moved later is left alone:
// the timer fires early, Advance finds nothing due, and the loop re-arms for
// the real deadline. That costs a spurious wakeup now and then instead of a
// Reset on every segment. The caller holds s.mu.
func (s *Stack) rearmTimer() {
	if s.tm.toReader {
		return // the reader runs the due timers, then re-arms
	}
	d, ok := s.e.NextDeadline()
	if !ok || d >= s.tm.armedAt {
		return
	}
	s.tm.armedAt = d
	// Since Go 1.23 Reset discards a stale expiry that was not received,
	// so the loop never sees a fire from an earlier setting.
	s.tm.t.Reset(s.durationUntil(d))
}

// timerLoop advances the engine when its deadline comes.
func (s *Stack) timerLoop() {
	defer s.wg.Done()
	waker := netif.ReadWakerOf(s.link)
	for {
		select {
		case <-s.done:
			s.tm.t.Stop()
			s.tm.trim.Stop()
			return
		case <-s.tm.trim.C:
			s.mu.Lock()
			s.tm.trimArmed = false
			if !s.closed && s.e.TrimPool() > 0 {
				s.armTrim()
			}
			s.mu.Unlock()
			continue
		case <-s.tm.t.C:
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			continue // done is about to be closed
		}
		s.tm.armedAt = notArmed
		now := s.now()
		if d, ok := s.e.NextDeadline(); ok && d <= now && waker != nil && !s.tm.readerGone {
			// Input before timers (engineTimer): the reader runs them.
			s.tm.toReader, s.tm.sinceDue = true, 0
			s.mu.Unlock()
			waker.WakeRead()
			continue
		}
		s.e.Advance(now)
		s.unlockFlush() // re-arms for the next deadline
	}
}
