package tcpcore

// Congestion events for Config.Trace (serve --trace): one per change of a
// connection's congestion state, with the state right after it.

// CongestionEvent is reported to Config.Trace for each change of
// congestion state, so runs can be plotted.
type CongestionEvent struct {
	Time          Time
	Local, Remote string
	Event         string // "fast-retransmit", "rto", "recovery-end", "undo", "frto-undo", "dsack", "partial-ack", "lost-retransmit", "rescue", "tlp", "tlp-loss"
	CwndBytes     int
	SSThreshBytes int
	FlightBytes   int
	State         string // "open", "recovery", "loss"
}

func (c *Conn) trace(now Time, ev string) {
	tr := c.e.cfg.Trace
	if tr == nil || !c.hasCC() {
		return
	}
	cwnd, ssthresh, _ := c.ccState()
	tr(CongestionEvent{Time: now, Local: c.key.local().String(), Remote: c.key.remote().String(), Event: ev,
		CwndBytes: cwnd, SSThreshBytes: ssthresh,
		FlightBytes: c.pipe(), State: c.recovery.String()})
}

// CongestionState is a connection's congestion state at one instant, as a
// CongestionEvent carries it, for a driver that samples it between events.
type CongestionState struct {
	CwndBytes     int
	SSThreshBytes int
	FlightBytes   int    // RFC 6675 pipe
	State         string // "open", "recovery", "loss"
}

// CongestionState returns c's congestion state now; ok is false before the
// connection has a congestion controller (until it is established).
func (c *Conn) CongestionState() (st CongestionState, ok bool) {
	if !c.hasCC() {
		return st, false
	}
	cwnd, ssthresh, _ := c.ccState()
	return CongestionState{CwndBytes: cwnd, SSThreshBytes: ssthresh,
		FlightBytes: c.pipe(), State: c.recovery.String()}, true
}

// touch puts c in the touched list, once until the next Touched. Only with
// Config.Trace: an engine that is not traced keeps no list.
func (c *Conn) touch() {
	if c.touched || c.e.cfg.Trace == nil {
		return
	}
	c.touched = true
	c.e.touched = append(c.e.touched, c)
}

// Touched returns the connections that took in a segment, ran their
// timers or sent a segment since the last call, each once, in the order
// they were first touched: those whose congestion state may have changed,
// for a driver that samples it after each engine call. It is empty unless
// Config.Trace is set. The slice is reused: consume it before the next
// engine call.
func (e *Engine) Touched() []*Conn {
	t := e.touched
	for _, c := range t {
		c.touched = false
	}
	e.touched = e.touched[:0]
	return t
}
