package tcpcore

import "time"

// SetUserTimeout sets TCP_USER_TIMEOUT (RFC 5482): how long transmitted
// data, or a zero-window probe, may stay unacknowledged before the
// connection is aborted with ETIMEDOUT; 0 turns it off. Like Linux, a
// negative value is EINVAL and the value is kept in whole milliseconds.
func (c *Conn) SetUserTimeout(now Time, d time.Duration) error {
	if d < 0 {
		return ErrInvalid
	}
	c.userTimeout = d.Truncate(time.Millisecond)
	return nil
}

// UserTimeout returns TCP_USER_TIMEOUT, 0 when off.
func (c *Conn) UserTimeout() time.Duration { return c.userTimeout }
