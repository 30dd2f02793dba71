package stack

import (
	"net/netip"
	"time"

	"tunstack/tcpcore"
)

// TraceEvent is one congestion event of one connection (a fast retransmit,
// an RTO, the end of a recovery, an undo, a D-SACK received...), with the
// connection's congestion state right after it, for `serve --trace`.
type TraceEvent struct {
	Time          time.Time      // when the engine handled it (wall clock, with a monotonic reading)
	Local, Remote netip.AddrPort // the connection's 4-tuple
	Event         string         // the engine's name: "fast-retransmit", "partial-ack", "recovery-end", "rto", "undo", "dsack", "lost-retransmit", "rescue", "tlp"
	CwndBytes     int
	SSThreshBytes int
	FlightBytes   int    // RFC 6675 pipe: the bytes the sender believes are in the network
	State         string // "open", "recovery" (fast recovery) or "loss" (after an RTO)
	// SRTT and RTO are the connection's estimates at the end of the engine
	// call in which the event happened; RTTKnown is false (and both zero)
	// for a connection the application does not hold, such as one still in
	// a listener's accept queue.
	SRTT, RTO time.Duration
	RTTKnown  bool
}

// traceKey finds a connection by its 4-tuple.
type traceKey struct{ local, remote netip.AddrPort }

// onEngineTrace is the engine's Config.Trace. The engine calls it in the
// middle of its work, with the stack lock held (every engine call is made
// under it), and forbids calling back into it; so the event is only queued
// here, and deliverTrace completes it once the engine call has returned.
func (s *Stack) onEngineTrace(ev tcpcore.CongestionEvent) {
	s.traceq = append(s.traceq, ev)
}

// deliverTrace hands the queued events to Config.Trace, adding each
// connection's RTT estimate, which the engine's event does not carry. The
// caller holds s.mu and the engine call that produced the events is over.
func (s *Stack) deliverTrace() {
	for i, ev := range s.traceq {
		out := TraceEvent{
			Time:  s.epoch.Add(time.Duration(ev.Time)),
			Event: ev.Event, CwndBytes: ev.CwndBytes, SSThreshBytes: ev.SSThreshBytes,
			FlightBytes: ev.FlightBytes, State: ev.State,
		}
		// The engine names the endpoints as text; they are its own
		// netip.AddrPort values printed, so they parse back.
		out.Local, _ = netip.ParseAddrPort(ev.Local)
		out.Remote, _ = netip.ParseAddrPort(ev.Remote)
		if c := s.byKey[traceKey{out.Local, out.Remote}]; c != nil {
			in := c.tc.Info()
			out.SRTT, out.RTO, out.RTTKnown = in.SRTT, in.RTO, true
		}
		s.trace(out)
		s.traceq[i] = tcpcore.CongestionEvent{} // drop the strings
	}
	s.traceq = s.traceq[:0]
}
