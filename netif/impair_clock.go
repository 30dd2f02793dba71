package netif

import "time"

// Clock is the time source of an ImpairedLink. The real clock is the
// default; another Clock lets a simulation drive impairment on its own
// virtual time. (Tests need none: inside a testing/synctest bubble the real
// clock is already fake, and delays can be checked to the nanosecond.)
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once, d from now.
	NewTimer(d time.Duration) ClockTimer
}

// ClockTimer is a one-shot timer from a Clock, with time.Timer's meaning
// (Go 1.23 and later: after Stop or Reset no stale value is received).
type ClockTimer interface {
	C() <-chan time.Time
	Reset(d time.Duration) bool
	Stop() bool
}

// RealClock is the wall clock: time.Now and time.NewTimer.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer implements Clock.
func (RealClock) NewTimer(d time.Duration) ClockTimer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
