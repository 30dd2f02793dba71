package tcpcore

import "time"

// TCP_USER_TIMEOUT (RFC 5482): the longest time sent data, or a
// zero-window probe, may stay unacknowledged before the connection is
// aborted with ETIMEDOUT. The rules are Linux's (tcp_timer.c), which RFC
// 5482 leaves open:
//
//   - Retransmission: once set, it replaces tcp_retries2's limit. The
//     connection gives up at a retransmission timeout that finds the time
//     since the first retransmission of the data outstanding at least the
//     user timeout (tcp_write_timeout, retransmits_timed_out), and the
//     timer is never armed beyond that instant (tcp_clamp_rto_to_user_timeout).
//     The first timeout after an ACK of new data always retransmits.
//   - SYN-SENT: the time since the first SYN counts; the SYN retry count
//     still ends the attempt if it comes first.
//   - Zero window: the connection gives up when the window has stayed shut
//     for the user timeout since the first probe timer expiry, whether or
//     not the probes are answered (tcp_probe_timer), and the probe timer
//     is never armed beyond that instant (tcp_clamp_probe0_to_user_timeout).
//   - Keepalive: it replaces the probe count: a keepalive timer expiry
//     aborts (RST, then ETIMEDOUT) once at least one probe is unanswered and
//     nothing was received for the user timeout (tcp_keepalive_timer).
//
// There is no system-wide default for it, as in Linux: it is per socket.

// userTimeoutClock holds the instants the user timeout is measured from.
// rareState embeds it; both are 0 before the rareState is made.
type userTimeoutClock struct {
	// retransStamp is when the data outstanding was first retransmitted
	// (Linux tp->retrans_stamp), 0 when none is. rtxHigh is the end of
	// the highest sequence retransmitted since.
	retransStamp Time
	rtxHigh      Seq
	// probesStamp is the first persist-timer expiry of the present zero
	// window (Linux icsk_probes_tstamp), 0 when the window is open.
	probesStamp Time
}

// userTimeoutMinRTO is how soon the retransmission timer fires once the
// user timeout has already passed: one jiffy at HZ=1000 (Linux
// tcp_clamp_rto_to_user_timeout returns 1).
const userTimeoutMinRTO = time.Millisecond

// userTimeoutMinProbe is the shortest probe interval the clamp leaves,
// Linux's TCP_TIMEOUT_MIN (2 jiffies at HZ=1000).
const userTimeoutMinProbe = 2 * time.Millisecond

// SetUserTimeout sets TCP_USER_TIMEOUT: 0 turns it off. Like Linux, a
// negative value is EINVAL, the value is kept in whole milliseconds, and
// setting it re-arms no timer: it applies from the next timer expiry.
func (c *Conn) SetUserTimeout(now Time, d time.Duration) error {
	if d < 0 {
		return ErrInvalid
	}
	if d = d.Truncate(time.Millisecond); d != 0 || c.rare != nil {
		c.rareW().userTimeout = d
	}
	return nil
}

// UserTimeout returns TCP_USER_TIMEOUT, 0 when off.
func (c *Conn) UserTimeout() time.Duration { return c.rareR().userTimeout }

// noteRetransmitted books n payload bytes sent again (Linux bytes_retrans)
// and starts the retransmission clock if it is not running (Linux
// tcp_retransmit_skb: "save stamp of the first retransmit").
func (c *Conn) noteRetransmitted(now Time, seq Seq, n int) {
	r := c.rareW()
	r.bytesRetrans += uint64(n)
	if r.retransStamp == 0 {
		r.retransStamp = now
	}
	if end := seq.Add(max(n, 1)); end.GT(r.rtxHigh) {
		r.rtxHigh = end
	}
}

// settleRetransStamp stops the retransmission clock once no retransmitted
// data is outstanding outside recovery (Linux tcp_try_to_open: no
// tcp_any_retrans_done, retrans_stamp = 0).
func (c *Conn) settleRetransStamp() {
	// Before rareState is made nothing was retransmitted.
	if r := c.rare; r != nil && c.recovery == recoveryNone && c.sndUna.GE(r.rtxHigh) {
		r.retransStamp = 0
	}
}

// retransmitsTimedOut is tcp_write_timeout for a synchronized connection,
// asked at a retransmission timeout before retransmitting: with a user
// timeout, the time since the first retransmission (RFC 5482; Linux
// retransmits_timed_out, which never gives up at the first timeout after
// an ACK of new data); without, the retry limit (RFC 9293 §3.8.3 R2).
func (c *Conn) retransmitsTimedOut(now Time) bool {
	if c.rareR().userTimeout == 0 {
		return c.retries >= c.e.prof.Retries2
	}
	rs := c.rareR().retransStamp
	return c.retries > 0 && rs != 0 && now.Sub(rs) >= c.rareR().userTimeout
}

// synTimedOut is tcp_write_timeout in SYN-SENT, after the retry count:
// with a user timeout, the time since the first SYN once it was
// retransmitted (Linux behaviour); without, the time SynRetries backoffs
// take (tcp_model_timeout).
func (c *Conn) synTimedOut(now Time) bool {
	if c.rareR().userTimeout == 0 {
		return now.Sub(c.synStart) >= synGiveUpTime(c.e.prof)
	}
	return c.retries > 0 && now.Sub(c.synStart) >= c.rareR().userTimeout
}

// clampRTO is Linux's tcp_clamp_rto_to_user_timeout: the timer re-armed
// after a retransmission timeout fires no later than the user timeout
// after start, the first retransmission (or first SYN). start 0 is now.
func (c *Conn) clampRTO(now, start Time, rto time.Duration) time.Duration {
	if c.rareR().userTimeout == 0 {
		return rto
	}
	if start == 0 {
		start = now
	}
	remaining := c.rareR().userTimeout - now.Sub(start)
	if remaining <= 0 {
		return userTimeoutMinRTO
	}
	return min(rto, remaining)
}

// probeTimedOut is tcp_probe_timer's user-timeout rule, at a persist
// timer expiry that would send a zero-window probe: the first expiry of a
// shut window starts the clock; a later one at least the user timeout
// after it gives up, answered probes or not (Linux behaviour; RFC 5482
// §3 lets a user timeout override RFC 1122 §4.2.2.17's keep-probing).
func (c *Conn) probeTimedOut(now Time) bool {
	if c.rareR().probesStamp == 0 {
		c.rareW().probesStamp = now
		return false
	}
	return c.rareR().userTimeout > 0 && now.Sub(c.rareR().probesStamp) >= c.rareR().userTimeout
}

// clampProbe is Linux's tcp_clamp_probe0_to_user_timeout: the next probe
// comes no later than the user timeout after the first, and no sooner
// than TCP_TIMEOUT_MIN from now.
func (c *Conn) clampProbe(now Time, d time.Duration) time.Duration {
	if c.rareR().userTimeout == 0 || c.rareR().probesStamp == 0 {
		return d
	}
	remaining := c.rareR().userTimeout - max(now.Sub(c.rareR().probesStamp), 0)
	return min(max(remaining, userTimeoutMinProbe), d)
}

// keepaliveTimedOut is tcp_keepalive_timer's rule at an expiry: with a
// user timeout, at least one probe unanswered and nothing received for
// the user timeout (the probe count is then ignored); without, the probe
// count reached TCP_KEEPCNT.
func (c *Conn) keepaliveTimedOut(now Time) bool {
	if c.rareR().userTimeout == 0 {
		return c.kaProbes >= c.kaCount
	}
	last := max(c.lastAckIn, c.lastDataRecv) // Linux keepalive_time_elapsed
	return c.kaProbes > 0 && now.Sub(last) >= c.rareR().userTimeout
}
