package tcpcore

import (
	"slices"
	"testing"
)

// tracedPeer is newPeer with Config.Trace set, recording the events.
func tracedPeer(t *testing.T) (*peer, *[]CongestionEvent) {
	prof := testProfile()
	prof.Congestion = "reno"
	p := newPeer(t, prof)
	var evs []CongestionEvent
	p.e.cfg.Trace = func(ev CongestionEvent) { evs = append(evs, ev) }
	return p, &evs
}

// Touched names each connection an engine call worked on once, whatever
// the number of segments it took in or sent, and the state it reports is
// the sender's after the call: RFC 5681 §3.1 slow start, cwnd growing by
// what each ACK acknowledged.
func TestTouchedOncePerCallWithStateAfterIt(t *testing.T) {
	p, evs := tracedPeer(t)
	c, iss := p.listenAndAccept(plainSyn)
	if got := p.e.Touched(); !slices.Contains(got, c) {
		t.Fatalf("after the handshake Touched has %d connections, none the accepted one", len(got))
	}
	if got := p.e.Touched(); len(got) != 0 {
		t.Fatalf("a second Touched with no engine call in between returns %d connections, want none", len(got))
	}
	mss := c.MSS()
	st, ok := c.CongestionState()
	if !ok || st != (CongestionState{CwndBytes: 10 * mss, SSThreshBytes: st.SSThreshBytes, FlightBytes: 0, State: "open"}) {
		t.Fatalf("established, nothing sent: state %+v (ok %v), want cwnd 10 segments (%d), flight 0, open", st, ok, 10*mss)
	}

	// One Write sends the initial window, ten segments: one entry.
	c.SetNoDelay(p.now, true)
	if _, err := c.Write(p.now, make([]byte, 20*mss)); err != nil {
		t.Fatal(err)
	}
	p.collect()
	if len(p.out) != 10 {
		t.Fatalf("a write of 20 segments sent %d, want the initial window's 10", len(p.out))
	}
	p.out = nil
	if got := p.e.Touched(); len(got) != 1 || got[0] != c {
		t.Fatalf("after a write that sent ten segments Touched = %d connections, want the one, once", len(got))
	}
	if st, _ := c.CongestionState(); st.CwndBytes != 10*mss || st.FlightBytes != 10*mss {
		t.Fatalf("initial window sent: cwnd %d flight %d, want both %d", st.CwndBytes, st.FlightBytes, 10*mss)
	}

	// The ACK of two segments: cwnd +2 segments (slow start), and the four
	// segments that fit are sent in the same call; still one entry.
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1 + Seq(2*mss), wnd: 65535})
	if got := p.e.Touched(); len(got) != 1 || got[0] != c {
		t.Fatalf("after an ACK that sent four segments Touched = %d connections, want the one, once", len(got))
	}
	st, _ = c.CongestionState()
	if st.CwndBytes != 12*mss || st.FlightBytes != 12*mss || st.State != "open" {
		t.Fatalf("after the ACK of two segments: %+v, want cwnd and flight 12 segments (%d), open", st, 12*mss)
	}
	if in := c.Info(); in.CwndBytes != st.CwndBytes || in.SSThreshBytes != st.SSThreshBytes || in.BytesInFlight != st.FlightBytes {
		t.Errorf("Info says cwnd %d ssthresh %d flight %d, CongestionState %+v", in.CwndBytes, in.SSThreshBytes, in.BytesInFlight, st)
	}
	if len(*evs) != 0 {
		t.Errorf("slow start without loss reported congestion events %+v", *evs)
	}

	// A timer's run touches the connection too: the RTO, after which the
	// loss state shows.
	p.out = nil
	p.step()
	p.out = nil
	if got := p.e.Touched(); len(got) != 1 || got[0] != c {
		t.Fatalf("after the RTO Touched = %d connections, want the one", len(got))
	}
	if st, _ := c.CongestionState(); st.State != "loss" || st.CwndBytes != mss {
		t.Errorf("after the RTO: %+v, want loss with cwnd one segment (%d)", st, mss)
	}
}

// Without Config.Trace the engine keeps no list.
func TestTouchedEmptyWithoutTrace(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	sendSegments(t, p, c, 4)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1 + Seq(c.MSS()), wnd: 65535})
	if got := p.e.Touched(); len(got) != 0 {
		t.Fatalf("untraced engine: Touched = %d connections, want none", len(got))
	}
}

// Tracing adds no allocation per segment: an ACK taken in and the list
// drained cost nothing once the list has its capacity.
func TestTouchedAllocatesNothingPerSegment(t *testing.T) {
	p, _ := tracedPeer(t)
	c, iss := p.listenAndAccept(plainSyn)
	p.e.Touched()
	ack := tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535}.encode(remote, local)
	allocs := testing.AllocsPerRun(100, func() {
		p.e.Input(p.now, remoteIP, localIP, ack)
		if got := p.e.Touched(); len(got) != 1 || got[0] != c {
			t.Fatalf("Touched = %d connections after a pure ACK, want the one", len(got))
		}
	})
	if allocs != 0 {
		t.Fatalf("a traced pure ACK and Touched allocate %.1f times, want 0", allocs)
	}
}
