package stack

import (
	"math"
	"time"

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
		s.e.Advance(s.now())
		s.unlockFlush() // re-arms for the next deadline
	}
}
