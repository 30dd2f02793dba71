package tcpcore

import "time"

// What a socket listing (tunstack ss) reads of the engine's connections,
// beyond TCPInfo: every connection the engine runs, including those no
// application holds yet (the SYN and accept queues) or any more (orphans,
// TIME-WAIT), and per connection the queue lengths, the pending timer and
// the shutdown state, each as Linux's inet_diag reports them to ss.

// AppendConns appends every connection in the engine's demultiplexing
// table, in no particular order: handshakes in progress, connections
// waiting in an accept queue, those the application holds, and those it
// has closed that are still finishing or in TIME-WAIT.
func (e *Engine) AppendConns(dst []*Conn) []*Conn {
	for _, c := range e.conns {
		dst = append(dst, c)
	}
	return dst
}

// Queues returns what ss shows as Recv-Q and Send-Q for the connection.
// Linux behaviour (inet_diag's tcp_diag_get_info): Recv-Q is RCV.NXT less
// what the application has read, Send-Q the sequence space written less
// SND.UNA, so a SYN or FIN not yet acknowledged counts one. Recv-Q here
// counts the unread bytes only: the engine does not record whether the
// application has read the end of file, which Linux counts as one more
// until it has.
func (c *Conn) Queues() (recvQ, sendQ int) {
	switch {
	case c.state == TimeWait || c.state == Closed:
		// Linux behaviour (inet_twsk_diag_fill): a TIME-WAIT socket
		// reports empty queues.
		return 0, 0
	case c.IsRequest():
		// Linux behaviour (inet_req_diag_fill): a passive open is a
		// request socket until the handshake completes, reported with
		// empty queues.
		return 0, 0
	}
	written := c.finSeq() // SND.UNA's counterpart: the end of the data written
	if c.finQueued {
		written = written.Add(1)
	}
	return c.inOrderUnread(), max(written.Sub(c.sndUna), 0)
}

// IsRequest reports whether the connection is a passive open still in
// its listener's SYN queue: Linux keeps such a connection as a request
// socket, which has no struct tcp_info.
func (c *Conn) IsRequest() bool { return c.state == SynReceived && c.parent != nil }

// DiagTimer names the timer that ss shows for a socket (ss -o, ss -e).
type DiagTimer uint8

// The timers as inet_diag numbers them and ss names them.
const (
	TimerOff       DiagTimer = iota // "off"
	TimerRetrans                    // "on": retransmission, SYN retransmission, RACK reordering or tail loss probe
	TimerKeepalive                  // "keepalive": keepalive, or an orphan's FIN-WAIT-2 timeout
	TimerTimeWait                   // "timewait"
	TimerPersist                    // "persist": zero-window probe
)

var diagTimerNames = [...]string{"off", "on", "keepalive", "timewait", "persist"}

func (t DiagTimer) String() string {
	if int(t) < len(diagTimerNames) {
		return diagTimerNames[t]
	}
	return "unknown"
}

// Timer returns the timer ss would show for the connection and the time
// left until it fires (zero if overdue). Linux behaviour
// (inet_sk_diag_fill): the retransmission timer and the timers that share
// it (the reordering timer, the loss probe) come first, then the persist
// timer, then the socket timer (keepalive, FIN-WAIT-2); a TIME-WAIT socket
// shows its own. The delayed-ACK timer is never shown.
func (c *Conn) Timer(now Time) (DiagTimer, time.Duration) {
	left := func(at Time) time.Duration { return max(at.Sub(now), 0) }
	switch {
	case c.state == TimeWait && c.closeAt != noDeadline:
		return TimerTimeWait, left(c.closeAt)
	case c.rtoAt != noDeadline || c.tlpAt != noDeadline:
		return TimerRetrans, left(min(c.rtoAt, c.tlpAt))
	case c.persistAt != noDeadline:
		return TimerPersist, left(c.persistAt)
	case c.keepaliveAt != noDeadline:
		return TimerKeepalive, left(c.keepaliveAt)
	case c.state == FinWait2 && c.closeAt != noDeadline:
		return TimerKeepalive, left(c.closeAt)
	}
	return TimerOff, 0
}

// Shutdown reports the socket's shutdown state as Linux's sk_shutdown
// holds it: reading is shut down once the peer's FIN arrived (tcp_fin) or
// the application shut it, writing once the application shut it down or
// closed the socket (tcp_close sets both).
func (c *Conn) Shutdown() (read, write bool) {
	return c.rdShut || c.finRcvd || c.appClosed, c.wrShut || c.finQueued || c.appClosed
}

// Congestion is the listener's TCP_CONGESTION: the controller the
// connections it accepts start with (its socket option, else the
// profile's), which Linux reports for a listening socket too.
func (l *Listener) Congestion() string {
	if l.opts.Congestion != "" {
		return l.opts.Congestion
	}
	return l.e.prof.Congestion
}
