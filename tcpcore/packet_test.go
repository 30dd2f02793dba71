package tcpcore

import (
	"testing"

	"tunstack/policy"
)

// burst takes n packets from the engine's pool, as an Output of n
// segments does, and gives them back, as the driver's Release does.
func burst(e *Engine, n int) {
	ps := make([]*Packet, n)
	for i := range ps {
		ps[i] = e.pool.get()
	}
	e.Release(ps)
}

// TestTrimPoolReleasesBuffersUnusedSinceTheLastTrim: the pool keeps a
// burst's buffers until a whole trim period passes without their use,
// then lets them go; buffers a smaller later burst reused stay.
func TestTrimPoolReleasesBuffersUnusedSinceTheLastTrim(t *testing.T) {
	e, err := NewEngine(Config{Profile: policy.Linux(), MTU: 1500, Secret: [32]byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	burst(e, 1000)
	if kept := e.TrimPool(); kept != 1000 {
		t.Fatalf("first trim right after a burst of 1000 kept %d buffers, want all 1000 (they were in use this period)", kept)
	}
	burst(e, 100) // the next period reuses 100 of them
	if kept := e.TrimPool(); kept != 100 {
		t.Fatalf("a trim after a period that used 100 buffers kept %d, want 100", kept)
	}
	if kept := e.TrimPool(); kept != 0 {
		t.Fatalf("a trim after an idle period kept %d buffers, want 0", kept)
	}
	for i, p := range e.pool.free[:cap(e.pool.free)] {
		if p != nil {
			t.Fatalf("the free list's backing array still points at a released buffer (slot %d): the garbage collector cannot take it", i)
		}
	}
}

// TestTrimPoolSteadyLoadAllocatesNothing: a load that reuses the same
// buffers every period keeps them across trims, so it allocates no buffer.
func TestTrimPoolSteadyLoadAllocatesNothing(t *testing.T) {
	e, err := NewEngine(Config{Profile: policy.Linux(), MTU: 1500, Secret: [32]byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	ps := make([]*Packet, 64)
	period := func() {
		for i := range ps {
			ps[i] = e.pool.get()
		}
		e.Release(ps)
		e.TrimPool()
	}
	period()
	if n := testing.AllocsPerRun(100, period); n != 0 {
		t.Errorf("a steady load of 64 packets per trim period allocated %.1f times per period, want 0", n)
	}
	if kept := len(e.pool.free); kept != 64 {
		t.Errorf("after the steady load the pool keeps %d buffers, want the 64 it reused", kept)
	}
}
