package lab

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"tunstack/internal/testtools"

	"golang.org/x/sys/unix"

	"tunstack/lab/netns"
	"tunstack/policy"
)

// The experiments in real time with kernel clients, as root. They take
// their real durations (the synack schedule alone is 63 s), so they run as
// parallel subtests of one test: about 70 s of wall time in all.

func runExperiment(t *testing.T, name, stack string, o Options) *Result {
	t.Helper()
	o.Stack = stack
	if stack != "linux" {
		o.Profile, o.ProfileName = policy.Linux(), "linux"
	}
	if o.Backlog == 0 {
		o.Backlog = -1
	}
	pcap := filepath.Join(keptIfFailed(t, name+"-"+stack), name+"-"+stack+".pcap")
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o.Pcap = f
	res, err := Run(context.Background(), name, o)
	if err != nil {
		t.Fatalf("lab %s on %s: %v", name, stack, err)
	}
	var report bytes.Buffer
	res.Print(&report)
	t.Logf("\n%s", report.String())
	checkPcapReadable(t, pcap, len(res.Capture.Packets))
	return res
}

// keptIfFailed returns a new directory for a run's artefacts, removed
// when the test passes and kept when it fails, its path logged, so that
// a failure seen once in many runs can be read from its capture.
func keptIfFailed(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tunstack-lab-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("this run failed: its capture is kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// checkPcapReadable has tshark, an independent decoder, count the TCP
// packets of the written capture, when tshark is installed.
func checkPcapReadable(t *testing.T, path string, min int) {
	t.Helper()
	testtools.Need(t, "tshark")
	out, err := exec.Command("tshark", "-r", path, "-Y", "tcp.port == 8000", "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Errorf("tshark -r %s: %v", path, err)
		return
	}
	if n := len(strings.Fields(string(out))); n < min {
		t.Errorf("tshark read %d TCP packets from the capture, the lab %d", n, min)
	}
}

func TestExperiments(t *testing.T) {
	netns.RequireRoot(t)
	if testing.Short() {
		t.Skip("the experiments take about 70 s of real time; not in -short")
	}

	// The backlog claim on our stack: every client accepted in the end, and the
	// same connect/accept structure as the kernel's listener. Like Linux,
	// the SYN queue holds backlog+1 half-open connections and the SYNs
	// beyond get cookies, so the full accept queue drops the clients' data
	// segments (they retransmit until there is room), and no SYN-ACK is
	// retransmitted: the same SYN cookies and SYN-ACK retransmission counts
	// as Linux's. (SYN-ACK retransmission is the synack experiment's.)
	t.Run("backlog", func(t *testing.T) {
		t.Parallel()
		backlogLikeLinux(t, Options{})
	})

	// The synack claim on our stack: the clients past the queue's room get five
	// SYN-ACK retransmissions 1, 2, 4, 8 and 16 s apart, then nothing, and
	// their write after that is answered by RST.
	t.Run("synack/tunstack", func(t *testing.T) {
		t.Parallel()
		res := runExperiment(t, "synack", "tunstack", Options{})
		overflowed := 0
		for _, c := range res.Clients {
			if len(res.Capture.SynAckTimes(c.N)) <= 1 {
				continue
			}
			overflowed++
			if gaps := res.SynAckGaps(c.N); !GapsMatch(gaps, expectedSynAckGaps, synackTolerance) {
				t.Errorf("client %d: SYN-ACK gaps %s, want 1, 2, 4, 8, 16 s within 10%%", c.N, formatGaps(gaps))
			}
			if _, ok := res.ResetAfterWrite(c.N); !ok {
				t.Errorf("client %d: its write after the last retry was not answered by RST", c.N)
			}
			if !errors.Is(c.ReadErr, unix.ECONNRESET) {
				t.Errorf("client %d: read after the RST = %v, want ECONNRESET", c.N, c.ReadErr)
			}
		}
		if want := res.Params.Clients - res.Params.Backlog - 1; overflowed != want {
			t.Errorf("%d clients had their SYN-ACK retransmitted, want %d", overflowed, want)
		}
	})

	// Closing the listener resets what it queued; every client learns.
	t.Run("listener-close/tunstack", func(t *testing.T) {
		t.Parallel()
		res := runExperiment(t, "listener-close", "tunstack", Options{})
		for _, c := range res.Clients {
			if !errors.Is(c.ReadErr, unix.ECONNRESET) {
				t.Errorf("client %d: read = %v, want ECONNRESET", c.N, c.ReadErr)
			}
		}
		unprompted := 0
		for _, c := range res.Clients {
			if at, ok := firstServerRST(res, c.N); ok {
				if p := lastClientPacket(res, c.N, at); p == nil || p.At < res.Marks["close"] {
					unprompted++
				}
			}
		}
		if want := res.Params.Backlog + 1; unprompted != want {
			t.Errorf("%d clients reset by the close itself, want the %d queued", unprompted, want)
		}
	})
}

// backlogLikeLinux runs the backlog experiment with o on tunstack and on
// Linux, in parallel, and checks the claim on ours and the likeness to
// Linux's listener.
func backlogLikeLinux(t *testing.T, o Options) {
	results := make(chan *Result, 2)
	ours, linux := make(chan *Result, 1), make(chan *Result, 1)
	t.Run("tunstack", func(t *testing.T) {
		t.Parallel()
		res := runExperiment(t, "backlog", "tunstack", o)
		ours <- res
		results <- res
		for _, c := range res.Clients {
			if !c.Accepted {
				t.Errorf("client %d was never accepted", c.N)
			}
		}
		if len(res.Clients) != 6 {
			t.Errorf("%d clients, want 6", len(res.Clients))
		}
		if counter(res, "SyncookiesSent") == 0 || counter(res, "ListenOverflows") == 0 {
			t.Errorf("counters %v: want SYN cookies for the SYNs beyond the SYN queue and accept-queue overflows", res.Counters)
		}
	})
	t.Run("linux", func(t *testing.T) {
		t.Parallel()
		res := runExperiment(t, "backlog", "linux", o)
		linux <- res
		results <- res
	})
	t.Cleanup(func() {
		if len(results) < 2 {
			return // a subtest failed before producing a result
		}
		o, l := <-ours, <-linux
		if o.Shape() != l.Shape() {
			t.Errorf("connect/accept shape differs from Linux's:\n  tunstack: %s\n  linux:    %s", o.Shape(), l.Shape())
		}
		if a, b := counter(o, "SyncookiesSent"), counter(l, "SyncookiesSent"); a != b {
			t.Errorf("tunstack sent %d SYN cookies, Linux %d", a, b)
		}
		if a, b := o.Capture.SynAckRetransmissions(), l.Capture.SynAckRetransmissions(); a != b {
			t.Errorf("tunstack retransmitted %d SYN-ACKs, Linux %d", a, b)
		}
	})
}

// counter returns the value of a result's named counter, 0 if absent.
func counter(r *Result, name string) uint64 {
	for _, c := range r.Counters {
		if c.Name == name {
			return c.Value
		}
	}
	return 0
}
