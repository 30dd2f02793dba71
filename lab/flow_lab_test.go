package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"tunstack/internal/testtools"

	"tunstack/lab/netns"
	"tunstack/policy"
)

// The flow-control labs on our stack, in real time with kernel peers.

// TestLabZeroWindow: the three transfers of the zero-window lab (ours to a
// kernel client that stops reading; a kernel client's to us while we do not
// read, and while we have not accepted) end with the data intact, each
// receiver's window closes to 0 and reopens, and tshark, decoding the
// capture on its own, sees our stack probe the kernel client's zero window
// with growing gaps, and advertise a zero window of its own that it later
// opens with a window update.
func TestLabZeroWindow(t *testing.T) {
	netns.RequireRoot(t)
	if testing.Short() {
		t.Skip("the zero-window lab takes about 13 s of real time; not in -short")
	}
	t.Parallel()
	needTshark(t)
	pcap := filepath.Join(t.TempDir(), "zero-window.pcap")
	res := runLabToFile(t, "zero-window", pcap)
	d := checkZeroWindowTransfers(t, res)

	// Our probes, as tshark sees them. With the linux profile they take
	// Linux's form (SND.UNA-1, no data), which Wireshark labels a
	// keep-alive; the one-byte form (profile rfc) is its
	// zero_window_probe. Either way they must come while 198.18.0.1's
	// window is zero, so the times are taken after its first zero window
	// and before the client reads again.
	zeroAt := tsharkTimes(t, pcap, "tcp.analysis.zero_window && ip.src==198.18.0.1")
	probes := tsharkTimes(t, pcap, "ip.src==198.18.0.2 && (tcp.analysis.zero_window_probe || tcp.analysis.keep_alive)")
	if len(zeroAt) == 0 {
		t.Fatal("tshark sees no zero window from 198.18.0.1")
	}
	resume := zeroAt[0] + (d.Transfers[0].ResumeAt - d.Transfers[0].Window0At).Seconds()
	var ours []float64
	for _, p := range probes {
		if p > zeroAt[0] && p < resume {
			ours = append(ours, p)
		}
	}
	if len(ours) < 3 {
		t.Fatalf("tshark sees %d zero-window probes from 198.18.0.2 while 198.18.0.1's window is zero, want at least 3 (all: %v)", len(ours), probes)
	}
	for i := 2; i < len(ours); i++ {
		prev, gap := ours[i-1]-ours[i-2], ours[i]-ours[i-1]
		if gap < 1.5*prev {
			t.Errorf("probe gaps %v: gap %d (%.3f s) is not at least 1.5 times the one before (%.3f s)", diffs(ours), i, gap, prev)
		}
	}

	// Our own zero window and its window update.
	if z := tsharkTimes(t, pcap, "tcp.analysis.zero_window && ip.src==198.18.0.2"); len(z) == 0 {
		t.Error("tshark sees no zero window from 198.18.0.2")
	}
	if u := tsharkTimes(t, pcap, "tcp.analysis.window_update && ip.src==198.18.0.2"); len(u) == 0 {
		t.Error("tshark sees no window update from 198.18.0.2")
	}
}

// checkZeroWindowTransfers fails unless the zero-window lab's result has
// its three transfers (one from the stack, two to it: after and before
// accept), each intact, with the receiver's window closed to 0 and
// reopened; it returns the lab's data.
func checkZeroWindowTransfers(t *testing.T, res *Result) *ZeroWindowData {
	t.Helper()
	d := res.Data.(*ZeroWindowData)
	if len(d.Transfers) != 3 {
		t.Fatalf("%d transfers, want 3 (one from the stack, two to it: after and before accept)", len(d.Transfers))
	}
	for _, tr := range d.Transfers {
		if !tr.Intact() {
			t.Errorf("%s: %d of %d bytes, sha256 sent %s received %s, err %v",
				tr.Name, tr.ReceivedBytes, tr.Bytes, tr.SentSHA256, tr.ReceivedSHA, tr.Err)
		}
		if !tr.Window0 || !tr.Reopened {
			t.Errorf("%s: the receiver's window closed: %v, reopened: %v; want both", tr.Name, tr.Window0, tr.Reopened)
		}
	}
	return d
}

// TestLabNagleDelack: with Nagle on at our stack and a kernel client that
// delays its ACKs, requests stall on the wire with the body held for the
// header's ACK; with TCP_NODELAY no body is held and none stalls.
func TestLabNagleDelack(t *testing.T) {
	netns.RequireRoot(t)
	if testing.Short() {
		t.Skip("the nagle-delack lab takes about 5 s of real time; not in -short")
	}
	t.Parallel()
	res := runLabToFile(t, "nagle-delack", filepath.Join(t.TempDir(), "nagle-delack.pcap"))
	d := res.Data.(*NagleData)
	nagle, nodelay := d.Run("A", "nagle"), d.Run("A", "nodelay")
	if nagle == nil || nodelay == nil {
		t.Fatal("the lab did not run part A with and without Nagle")
	}
	for _, r := range []*NagleRun{nagle, nodelay} {
		if r.Err != nil || len(r.Requests) != nagleRequests {
			t.Fatalf("%s/%s: %d requests, err %v", r.Mode.Part, r.Mode.Name, len(r.Requests), r.Err)
		}
	}
	// Linux ACKs the first segments of a connection at once, so the first
	// request or two are quick; from then on the stall is every request's.
	stalls := nagle.Count(func(q *NagleRequest) bool { return q.WireStalled() && q.Held })
	if stalls < nagleRequests/2 {
		t.Errorf("with Nagle: %d of %d requests stalled on the wire with the body held for the header's ACK, want at least %d; latencies %s",
			stalls, nagleRequests, nagleRequests/2, formatMs(nagle.Latencies()))
	}
	if n := nodelay.Count(func(q *NagleRequest) bool { return q.Held || q.WireStalled() }); n > 0 {
		t.Errorf("with TCP_NODELAY: %d requests held the body or stalled on the wire, want none; latencies %s", n, formatMs(nodelay.Latencies()))
	}
	if m := nodelay.Median(); m >= nagleStall {
		t.Errorf("with TCP_NODELAY: median latency %s, want under %s", ms(m), ms(nagleStall))
	}
}

// runLabToFile runs an experiment on tunstack with the linux profile,
// writing the capture to pcap, and logs the report.
func runLabToFile(t *testing.T, name, pcap string) *Result {
	t.Helper()
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	res, err := Run(context.Background(), name, Options{Stack: "tunstack", Profile: policy.Linux(), ProfileName: "linux", Backlog: -1, Pcap: f})
	if err != nil {
		t.Fatalf("lab %s: %v", name, err)
	}
	var report strings.Builder
	res.Print(&report)
	t.Logf("lab %s took %s\n%s", name, time.Since(start).Round(time.Millisecond), report.String())
	return res
}

func needTshark(t *testing.T) {
	t.Helper()
	testtools.Need(t, "tshark")
}

// tsharkTimes returns the capture-relative times of the frames matching a
// display filter.
func tsharkTimes(t *testing.T, pcap, filter string) []float64 {
	t.Helper()
	out, err := exec.Command("tshark", "-r", pcap, "-Y", filter, "-T", "fields", "-e", "frame.time_relative").Output()
	if err != nil {
		t.Fatalf("tshark -r %s -Y %q: %v", pcap, filter, err)
	}
	var ts []float64
	for _, f := range strings.Fields(string(out)) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			t.Fatalf("tshark printed %q as a time", f)
		}
		ts = append(ts, v)
	}
	return ts
}

func diffs(ts []float64) string {
	var s []string
	for i := 1; i < len(ts); i++ {
		s = append(s, fmt.Sprintf("%.3f", ts[i]-ts[i-1]))
	}
	return strings.Join(s, ", ") + " s"
}
