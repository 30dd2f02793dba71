package stack

import (
	"net/netip"
	"time"

	"tunstack/tcpcore"
)

// TraceEvent is one record of one connection's congestion state, for
// `serve --trace`: either a congestion event (a fast retransmit, an RTO,
// the end of a recovery, an undo, a D-SACK received...) with the state
// right after it, or a sample (Event "sample") of the state after an
// engine call that changed the connection's cwnd, ssthresh or flight
// since its last record.
//
// Samples are what draw cwnd as a curve (slow start's climb, congestion
// avoidance's sawtooth) between the events: at most one per connection per
// engine call, that is per batch of segments read from the link, per timer
// run or per application call, with the state once the call is over. They
// are taken only of connections the application holds or has closed and
// the engine still runs (those the stack has a Conn for), and only with
// Config.Trace set; without it the stack does no work for them.
type TraceEvent struct {
	Time          time.Time      // when the engine handled it (wall clock, with a monotonic reading)
	Local, Remote netip.AddrPort // the connection's 4-tuple
	// Event is "sample", or the engine's name of a congestion event:
	// "fast-retransmit", "partial-ack", "recovery-end", "rto", "undo",
	// "frto-undo", "dsack", "lost-retransmit", "rescue", "tlp", "tlp-loss".
	Event         string
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

// TraceSample is TraceEvent.Event for a sample of the congestion state.
const TraceSample = "sample"

// setTraced notes st as the congestion state of the connection's last
// record, making the note at the first (only a traced stack has any).
func (c *Conn) setTraced(st tcpcore.CongestionState) {
	if c.traced == nil {
		c.traced = new(tcpcore.CongestionState)
	}
	*c.traced = st
}

// onEngineTrace is the engine's Config.Trace. The engine calls it in the
// middle of its work, with the stack lock held (every engine call is made
// under it), and forbids calling back into it; so the event is only queued
// here, and deliverTrace completes it once the engine call has returned.
func (s *Stack) onEngineTrace(ev tcpcore.CongestionEvent) {
	s.traceq = append(s.traceq, ev)
}

// deliverTrace hands the queued events to Config.Trace, adding each
// connection's RTT estimate, which the engine's event does not carry, and
// then a sample of each connection the call touched whose state changed
// since its last record (sampleTouched). The caller holds s.mu and the
// engine call that produced the events is over.
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
		c := s.byKey[flow{out.Local, out.Remote}]
		if c == nil && out.Local.Addr().Is4() {
			// The engine names an IPv4 connection by its IPv4 addresses;
			// one reached through an IPv6 socket is known by its mapped
			// ones (tcpcore's package documentation).
			mapped := flow{mapAddrPort(out.Local), mapAddrPort(out.Remote)}
			if c = s.byKey[mapped]; c != nil {
				out.Local, out.Remote = mapped.local, mapped.remote
			}
		}
		if c != nil {
			in := c.tc.Info()
			out.SRTT, out.RTO, out.RTTKnown = in.SRTT, in.RTO, true
			c.setTraced(tcpcore.CongestionState{CwndBytes: ev.CwndBytes, SSThreshBytes: ev.SSThreshBytes,
				FlightBytes: ev.FlightBytes, State: ev.State})
		}
		s.trace(out)
		s.traceq[i] = tcpcore.CongestionEvent{} // drop the strings
	}
	s.traceq = s.traceq[:0]
	s.sampleTouched()
}

// sampleTouched emits a sample for each connection the engine call just
// over worked on (tcpcore.Engine.Touched) whose cwnd, ssthresh or flight
// differs from its last record, event or sample. Each connection appears
// at most once per call, so a batch of ACKs read together gives one
// sample, with the state after all of them.
func (s *Stack) sampleTouched() {
	touched := s.e.Touched()
	if len(touched) == 0 {
		return
	}
	var now time.Time // read once, if anything is sampled
	for _, tc := range touched {
		st, ok := tc.CongestionState()
		if !ok {
			continue // not established yet: no congestion state
		}
		c := s.byKey[flow{tc.LocalAddr(), tc.RemoteAddr()}]
		if c == nil || c.tc != tc {
			continue // not the application's: no record to compare with
		}
		if last := c.traced; last != nil && st.CwndBytes == last.CwndBytes && st.SSThreshBytes == last.SSThreshBytes && st.FlightBytes == last.FlightBytes {
			continue
		}
		c.setTraced(st)
		if now.IsZero() {
			now = s.epoch.Add(time.Duration(s.now()))
		}
		in := tc.Info()
		s.trace(TraceEvent{
			Time: now, Local: tc.LocalAddr(), Remote: tc.RemoteAddr(), Event: TraceSample,
			CwndBytes: st.CwndBytes, SSThreshBytes: st.SSThreshBytes, FlightBytes: st.FlightBytes, State: st.State,
			SRTT: in.SRTT, RTO: in.RTO, RTTKnown: true,
		})
	}
}

// mapAddrPort is ap with an IPv4 address in its IPv4-mapped IPv6 form.
func mapAddrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
}
