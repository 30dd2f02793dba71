package tcpcore

// Congestion events for Config.Trace (serve --trace): one per change of a
// connection's congestion state, with the state right after it.

// CongestionEvent is reported to Config.Trace for each change of
// congestion state, so runs can be plotted.
type CongestionEvent struct {
	Time          Time
	Local, Remote string
	Event         string // "ack" (cwnd growth sampled), "fast-retransmit", "rto", "recovery-end", "undo", "dsack", "partial-ack", "lost-retransmit", "rescue", "tlp"
	CwndBytes     int
	SSThreshBytes int
	FlightBytes   int
	State         string // "open", "recovery", "loss"
}

func (c *Conn) trace(now Time, ev string) {
	tr := c.e.cfg.Trace
	if tr == nil || c.cc == nil {
		return
	}
	tr(CongestionEvent{Time: now, Local: c.key.local.String(), Remote: c.key.remote.String(), Event: ev,
		CwndBytes: c.cc.CongestionWindow(), SSThreshBytes: c.cc.SlowStartThreshold(),
		FlightBytes: c.pipe(), State: c.recovery.String()})
}
