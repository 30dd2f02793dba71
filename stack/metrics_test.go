package stack

import (
	"errors"
	"io"
	"testing"
	"time"

	"tunstack/tcpcore"
)

// Metrics reads the engine's counters, the connections by state, the
// listeners' queues, and books a connection's lifetime and final SRTT
// once, when it retires.
func TestMetricsCountsStatesListenersAndRetiredConnections(t *testing.T) {
	p := newPair(t, 0, 1)
	ln, err := p.b.Listen(":81", 7)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start := time.Now()
	c, s := p.connect(t, 80)

	ma, mb := p.a.Metrics(), p.b.Metrics()
	if ma.States[tcpcore.Established] != 1 || mb.States[tcpcore.Established] != 1 {
		t.Fatalf("established: a %d, b %d; want 1 each", ma.States[tcpcore.Established], mb.States[tcpcore.Established])
	}
	if ma.Engine.ActiveOpens != 1 || mb.Engine.PassiveEstablished != 1 {
		t.Fatalf("ActiveOpens on a %d, PassiveEstablished on b %d; want 1 each", ma.Engine.ActiveOpens, mb.Engine.PassiveEstablished)
	}
	if len(mb.Listeners) != 1 || mb.Listeners[0].Addr.Port() != 81 || mb.Listeners[0].Backlog != 7 || mb.Listeners[0].AcceptQueue != 0 {
		t.Fatalf("b's listeners %+v, want the one on port 81 with backlog 7 and an empty queue", mb.Listeners)
	}
	if ma.Lifetime.Count != 0 || mb.Lifetime.Count != 0 {
		t.Fatalf("lifetimes booked before any connection ended: a %d, b %d", ma.Lifetime.Count, mb.Lifetime.Count)
	}

	// SO_LINGER 0: the close resets, and the engine is done at once.
	if err := c.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Close()
	ma = p.a.Metrics()
	took := time.Since(start).Seconds()
	if ma.Lifetime.Count != 1 || ma.Lifetime.Sum <= 0 || ma.Lifetime.Sum > took {
		t.Fatalf("a's lifetime histogram: count %d sum %v s, want 1 observation in (0, %v]", ma.Lifetime.Count, ma.Lifetime.Sum, took)
	}
	var inBuckets uint64
	for _, n := range ma.Lifetime.Counts {
		inBuckets += n
	}
	if inBuckets != 1 {
		t.Fatalf("a's lifetime buckets %v hold %d observations, want 1", ma.Lifetime.Counts, inBuckets)
	}
	if ma.FinalSRTT.Count != 1 || ma.FinalSRTT.Sum <= 0 {
		t.Fatalf("a's final SRTT histogram: count %d sum %v, want one positive sample", ma.FinalSRTT.Count, ma.FinalSRTT.Sum)
	}
	if ma.Engine.EstabResets != 1 || ma.Engine.AbortOnData != 1 || len(ma.States) != 0 {
		t.Fatalf("a after the reset: EstabResets %d, AbortOnData %d, states %v; want 1, 1, none", ma.Engine.EstabResets, ma.Engine.AbortOnData, ma.States)
	}

	// b learns of the reset from its read, then closes: retired then.
	if _, err := io.ReadAll(s); err == nil || !errors.Is(err, tcpcore.ErrConnReset) {
		t.Fatalf("b's read after the reset: %v, want ECONNRESET", err)
	}
	s.Close()
	mb = p.b.Metrics()
	if mb.Lifetime.Count != 1 || mb.Engine.EstabResets != 1 {
		t.Fatalf("b after the reset: %d lifetimes, EstabResets %d; want 1 and 1", mb.Lifetime.Count, mb.Engine.EstabResets)
	}
	if again := p.b.Metrics(); again.Lifetime.Count != 1 {
		t.Fatalf("a second reading books the connection again: %d lifetimes", again.Lifetime.Count)
	}
}
