package lab

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tunstack/lab/netns"
)

// TestTimeWaitLab runs the timewait lab on tunstack against kernel peers
// and checks each of its four claims from what the calls returned.
func TestTimeWaitLab(t *testing.T) {
	netns.RequireRoot(t)
	res := runExperiment(t, "timewait", "tunstack", Options{})
	d := timeWaitData(res)
	if len(d.Client) != 2 || len(d.Server) != 2 || len(d.Restart) != 2 || d.Share == nil {
		t.Fatalf("the lab recorded %d client loops, %d server loops, %d restarts, reuseport %v; want 2, 2, 2 and one", len(d.Client), len(d.Server), len(d.Restart), d.Share != nil)
	}

	// (a), tcp_tw_reuse=0: one connect per port succeeds, the next fails
	// with EADDRNOTAVAIL (Linux's errno from connect's implicit bind),
	// with every port held by a TIME-WAIT entry of ours, and so does one
	// more once the entries are over a second old.
	l0 := d.Client[0]
	if l0.FirstFailure != twPorts+1 || len(l0.Attempts) != twPorts+2 {
		t.Fatalf("tcp_tw_reuse=0: first failed connect is %d of %d, want %d of %d (one per free port, then none)", l0.FirstFailure, len(l0.Attempts), twPorts+1, twPorts+2)
	}
	for _, a := range l0.Attempts[twPorts:] {
		if !isErrno(a.Err, unix.EADDRNOTAVAIL) {
			t.Errorf("tcp_tw_reuse=0: connect %d (oldest TIME-WAIT entry %s old) failed with %v, want EADDRNOTAVAIL", a.N, a.OldestSeen, a.Err)
		}
		if a.TimeWait != twPorts {
			t.Errorf("tcp_tw_reuse=0: %d connections in TIME-WAIT at connect %d, want %d (every port)", a.TimeWait, a.N, twPorts)
		}
	}
	if got := len(l0.portsUsed()); got != twPorts {
		t.Errorf("tcp_tw_reuse=0: the connects used %d distinct ports, want %d", got, twPorts)
	}

	// (a), tcp_tw_reuse=1: a connect that finds every port in TIME-WAIT
	// fails while the oldest entry is younger than a second (counted from
	// our close, before the stack entered TIME-WAIT), and takes over an
	// entry once the oldest is older than a second (counted from when it
	// was seen in TIME-WAIT, after the stack entered it).
	l1 := d.Client[1]
	early, late := 0, 0
	for _, a := range l1.Attempts[twPorts:] {
		switch {
		case a.OldestClosed < time.Second:
			early++
			if !isErrno(a.Err, unix.EADDRNOTAVAIL) {
				t.Errorf("tcp_tw_reuse=1: connect %d, with the oldest TIME-WAIT entry closed %s before, returned %v, want EADDRNOTAVAIL", a.N, a.OldestClosed, a.Err)
			}
		case a.OldestSeen >= time.Second:
			late++
			if a.Err != nil || !a.Reused {
				t.Errorf("tcp_tw_reuse=1: connect %d, with the oldest TIME-WAIT entry %s old, returned %v (reused %v), want a TIME-WAIT entry taken over", a.N, a.OldestSeen, a.Err, a.Reused)
			}
		}
	}
	if late < twReuseConnects-twPorts-1 {
		t.Errorf("tcp_tw_reuse=1: only %d connects came with an entry over a second old, want %d", late, twReuseConnects-twPorts-1)
	}
	if early == 0 {
		t.Logf("tcp_tw_reuse=1: connect %d came after the oldest entry was a second old: the machine was slow; the refusal before a second was not seen", twPorts+1)
	}

	// (b) the stack as the server that closes first: TIME-WAIT is the
	// server's, every connection is served, and SYNs on 4-tuples in
	// TIME-WAIT reopen them whatever tcp_tw_reuse says.
	for _, l := range d.Server {
		if n := failures(l); n != 0 {
			t.Errorf("server, tcp_tw_reuse=%d: %d of %d connections failed, first %v", l.TwReuse, n, len(l.Attempts), l.Attempts[l.FirstFailure-1].Err)
		}
		if l.Reused == 0 {
			t.Errorf("server, tcp_tw_reuse=%d: no client SYN met a 4-tuple in TIME-WAIT (ports used %v)", l.TwReuse, l.portsUsed())
		}
		if l.MaxTimeWait == 0 {
			t.Errorf("server, tcp_tw_reuse=%d: the server, which closed first, never had a connection in TIME-WAIT", l.TwReuse)
		}
	}

	// (c) restart: EADDRINUSE without SO_REUSEADDR, served with it.
	for _, r := range d.Restart {
		if r.TimeWait == 0 {
			t.Errorf("restart (SO_REUSEADDR %v): no TIME-WAIT entry when the server restarted", r.ReuseAddr)
		}
		switch {
		case !r.ReuseAddr && !isErrno(r.BindErr, unix.EADDRINUSE):
			t.Errorf("restart without SO_REUSEADDR over a TIME-WAIT connection: listen returned %v, want EADDRINUSE", r.BindErr)
		case r.ReuseAddr && (r.BindErr != nil || !r.Served):
			t.Errorf("restart with SO_REUSEADDR: listen returned %v, served a client: %v; want success", r.BindErr, r.Served)
		}
	}

	// (d) SO_REUSEPORT: two listeners share the port and its
	// connections; one without the option is refused. The split is a
	// hash of each connection's 4-tuple, the client ports the kernel's
	// choice: both listeners get some of 16 connections but with
	// probability 2^-15.
	s := d.Share
	if s.FirstErr != nil || s.SecondErr != nil {
		t.Fatalf("SO_REUSEPORT listeners: %v, %v; want both bound", s.FirstErr, s.SecondErr)
	}
	if !isErrno(s.ThirdErr, unix.EADDRINUSE) {
		t.Errorf("a listener without SO_REUSEPORT next to two with it: %v, want EADDRINUSE", s.ThirdErr)
	}
	if s.Failed != 0 || s.Accepted[0]+s.Accepted[1] != s.Connects {
		t.Errorf("SO_REUSEPORT: %d+%d accepted of %d connects, %d failed", s.Accepted[0], s.Accepted[1], s.Connects, s.Failed)
	}
	if s.Accepted[0] == 0 || s.Accepted[1] == 0 {
		t.Errorf("SO_REUSEPORT: connections split %d/%d, want both listeners used", s.Accepted[0], s.Accepted[1])
	}
}

// isErrno reports whether err carries errno e.
func isErrno(err error, e unix.Errno) bool { return errors.Is(err, e) }
