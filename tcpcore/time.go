package tcpcore

import "time"

// Time is an instant on the driver's clock, in nanoseconds from an arbitrary
// origin. The engine never reads a clock: every call that may depend on time
// takes one, and timers are reported as the next Time the engine must be
// advanced to.
type Time int64

// Add returns t + d.
func (t Time) Add(d time.Duration) Time { return t + Time(d) }

// Sub returns t - u.
func (t Time) Sub(u Time) time.Duration { return time.Duration(t - u) }

// Before reports t < u.
func (t Time) Before(u Time) bool { return t < u }

// noDeadline marks a timer that is not armed.
const noDeadline Time = 1<<63 - 1
