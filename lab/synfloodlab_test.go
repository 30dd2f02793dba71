package lab

import (
	"testing"

	"tunstack/lab/netns"
)

// TestSYNFloodLab runs the synflood lab on tunstack: every flood SYN
// reaches the listener and is answered, exactly backlog+1 of them with a
// half-open entry (the SYN-ACKs the capture shows retransmitted, and the
// SYN queue the stack reports), the rest and the clients' with cookies
// (the counter), and every client gets its whole reply.
func TestSYNFloodLab(t *testing.T) {
	netns.RequireRoot(t)
	res := runExperiment(t, "synflood", "tunstack", Options{})
	d, ok := res.Data.(*SYNFloodData)
	if !ok {
		t.Fatalf("the lab recorded %T, want *SYNFloodData", res.Data)
	}
	for _, v := range res.Verdict {
		t.Log(v)
	}
	bound := res.Params.Backlog + 1
	if d.Sent != synFloodSYNs || uint64(d.FloodSYNs) != d.Sent {
		t.Fatalf("%d SYNs sent, %d in the capture at the server; want %d of each", d.Sent, d.FloodSYNs, synFloodSYNs)
	}
	if d.FloodSYNACKs != d.FloodSYNs {
		t.Errorf("%d SYN-ACKs answered %d flood SYNs; with cookies every one is answered", d.FloodSYNACKs, d.FloodSYNs)
	}
	if d.HalfOpen != bound {
		t.Errorf("%d flood sources had their SYN-ACK retransmitted (half-open entries), want the SYN queue's bound %d", d.HalfOpen, bound)
	}
	if peak := d.SynQueuePeak(); peak != bound {
		t.Errorf("the SYN queue peaked at %d in the samples, want its bound %d", peak, bound)
	}
	// Every SYN beyond the queue got a cookie: the flood's and each
	// client's, whose connection came in on it.
	if want := int64(d.FloodSYNs - bound + len(d.Clients)); d.Cookies() != want {
		t.Errorf("%s rose by %d, want %d (%d flood SYNs past the queue's %d, and %d clients)", d.CookieCounter, d.Cookies(), want, d.FloodSYNs-bound, bound, len(d.Clients))
	}
	if d.Served() != len(d.Clients) || d.Accepted != len(d.Clients) {
		t.Errorf("%d of %d clients served, %d accepted", d.Served(), len(d.Clients), d.Accepted)
	}
}
