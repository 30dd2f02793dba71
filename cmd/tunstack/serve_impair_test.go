package main

// Integration test of loss recovery through an impaired link:
// the real curl moves 100 MiB each way through serve --impair, and the
// capture shows our stack recovering with SACK, D-SACK and fast
// retransmits rather than timeouts. Same pattern as serve_test.go: a
// namespace of its own, root or skip.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
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
	"tunstack/stack"
)

// impairSpec is the impairment, both directions; the seed makes a
// failure replay.
const impairSpec = "loss=2%,reorder=1%,dup=1%,seed=7"

func TestServeImpairedCurl100MiBEachWayRecoversWithSACKAndFastRetransmit(t *testing.T) {
	testtools.Need(t, "tshark", "curl")
	netns.RequireRoot(t)
	dir := t.TempDir()
	files := filepath.Join(dir, "files")
	if err := os.Mkdir(files, 0o755); err != nil {
		t.Fatal(err)
	}
	const size = 100 * mib
	wantDown := writeRandomFile(t, filepath.Join(files, "big.bin"), size, 11)
	upPath := filepath.Join(dir, "up.bin")
	wantUp := writeRandomFile(t, upPath, size, 12)
	pcap, trace := filepath.Join(dir, "impair.pcap"), filepath.Join(dir, "trace.jsonl")
	s := startServe(t, "--impair", impairSpec, "--files", files, "--pcap", pcap, "--trace", trace)
	st, ok := s.sess.network.(*stack.Stack)
	if !ok {
		t.Fatalf("serve runs a %T, want our *stack.Stack", s.sess.network)
	}

	// Download: the body goes straight into the hash.
	sum, n, downTime, err := s.curlDownload("/files/big.bin")
	down := st.ConnTotals()
	t.Logf("100 MiB download in %v; our counters: fast retransmits %d, RTO retransmits %d, timeouts %d, SACK recoveries %d, D-SACKs received %d, undos %d",
		downTime.Round(time.Millisecond), down.FastRetransmits, down.RTORetransmits, down.Timeouts, down.SACKRecoveries, down.DSACKsReceived, down.SpuriousUndos)
	if err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Fatalf("downloaded %d bytes, want %d", n, size)
	}
	if sum != wantDown {
		t.Fatalf("sha256 of the download %s, want %s", sum, wantDown)
	}

	// Upload: our stack receives, so the D-SACKs it sends for the link's
	// duplicates show here.
	upTime := s.curlUpload(t, upPath, s.url("/upload"), size, wantUp)
	totals := st.ConnTotals()
	t.Logf("100 MiB upload in %v; our counters: D-SACKs sent %d (%d during the upload), out-of-order segments %d",
		upTime.Round(time.Millisecond), totals.DSACKsSent, totals.DSACKsSent-down.DSACKsSent, totals.OutOfOrderSegs)

	// The SIGUSR1 table ends with the same totals.
	var table bytes.Buffer
	s.sess.printConns(&table)
	t.Logf("serve's SIGUSR1 connection table:\n%s", table.String())
	wantRow := fmt.Sprintf("%d %d %d %d %d %d %d %d %d %d %d %d", totals.Retransmits, totals.FastRetransmits, totals.RTORetransmits,
		totals.LostRetransmits, totals.RescueRetransmits, totals.TLPRetransmits, totals.SYNRetransmits, totals.Timeouts,
		totals.SACKRecoveries, totals.DSACKsSent, totals.DSACKsReceived, totals.SpuriousUndos)
	if row := lastLine(table.String()); !strings.HasPrefix(row, "all since start") || strings.Join(strings.Fields(row)[3:], " ") != wantRow {
		t.Errorf("the table's last row %q does not hold the totals %q", row, wantRow)
	}

	// Stopping serve flushes the capture and the trace.
	if err := s.stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if !strings.Contains(s.out.String(), "trace "+trace+": ") || strings.Contains(s.out.String(), "dropped") {
		t.Errorf("serve's exit does not report a complete trace:\n%s", s.out)
	}

	// Our own counters: fast retransmission, not the timer, repairs the
	// losses.
	if totals.FastRetransmits == 0 || totals.SACKRecoveries == 0 {
		t.Errorf("no fast retransmission or SACK recovery in the engine's counters: %+v", totals)
	}
	if totals.DSACKsSent == 0 {
		t.Errorf("the engine sent no D-SACK although the link duplicated 1%% of the packets: %+v", totals)
	}

	server := s.cfg.StackAddr.String()
	tsStart := time.Now()
	capt, err := readImpairCapture(pcap, server)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tshark read %d segments from %s in %v: %d with SACK blocks, %d D-SACK blocks (tshark's own decoder: %d); %d retransmissions by sequence number (tshark's labels: %d retransmission, %d of them fast, %d spurious, %d out-of-order)",
		capt.segments, server, time.Since(tsStart).Round(time.Millisecond), capt.withSACK, capt.dsacks, capt.tsharkDSACKs,
		capt.retransmissions, capt.tsharkRetrans, capt.tsharkFast, capt.tsharkSpurious, capt.tsharkOutOfOrder)
	if capt.withSACK == 0 {
		t.Errorf("tshark finds no SACK block sent by %s", server)
	}
	if capt.dsacks == 0 || capt.tsharkDSACKs == 0 {
		t.Errorf("tshark finds %d D-SACK blocks sent by %s by our rule and %d by its own; want some", capt.dsacks, server, capt.tsharkDSACKs)
	}

	// Every retransmission in the capture is one the engine counted, of
	// exactly one kind, and the kinds traced one by one are in the trace.
	final := st.ConnTotals()
	kinds := final.RTORetransmits + final.FastRetransmits + final.LostRetransmits + final.RescueRetransmits + final.TLPRetransmits + final.SYNRetransmits
	t.Logf("our counters at the end: %d retransmissions: %d fast, %d RTO, %d lost-retransmission resends, %d rescue, %d tail loss probes, %d SYN",
		final.Retransmits, final.FastRetransmits, final.RTORetransmits, final.LostRetransmits, final.RescueRetransmits, final.TLPRetransmits, final.SYNRetransmits)
	if kinds != final.Retransmits || capt.retransmissions != final.Retransmits {
		t.Errorf("the capture holds %d retransmissions by %s; the engine counted %d, and %d by kind", capt.retransmissions, server, final.Retransmits, kinds)
	}
	events := traceEventCounts(t, trace, server)
	t.Logf("trace events by kind: %v", events)
	for ev, want := range map[string]uint64{"fast-retransmit": final.FastRecoveries, "rto": final.Timeouts,
		"lost-retransmit": final.LostRetransmits, "rescue": final.RescueRetransmits, "tlp": final.TLPRetransmits} {
		if events[ev] != want {
			t.Errorf("the trace has %d %s events; the counters say %d", events[ev], ev, want)
		}
	}
	// Fast retransmission, not the timer, repairs the losses.
	if final.RTORetransmits >= final.FastRetransmits {
		t.Errorf("the engine retransmitted %d segments on timeout and %d fast; want fewer on timeout", final.RTORetransmits, final.FastRetransmits)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// impairCapture is what tshark finds in the segments one host sent.
type impairCapture struct {
	segments     int
	withSACK     int // segments carrying SACK blocks
	dsacks       int // D-SACK blocks by RFC 2883 §4's rule, computed here
	tsharkDSACKs int // D-SACK blocks as tshark's dissector marks them
	// retransmissions are the segments (SYN, data or FIN) whose sequence
	// range starts below the highest sequence number their flow had sent:
	// the wire's own definition, which needs no guess about why.
	retransmissions uint64
	// tshark's expert labels, for the log only: they are heuristics of
	// timing and duplicate ACKs (a retransmission sent within its RTT
	// estimate of the original is "out-of-order", one of data already
	// acknowledged is "spurious", and "fast" needs two duplicate ACKs just
	// before it), so they neither count every retransmission nor tell the
	// sender's reason.
	tsharkRetrans, tsharkFast, tsharkSpurious, tsharkOutOfOrder int
}

// captureFlow is one direction of one connection in a capture.
type captureFlow struct{ sport, dport uint16 }

// readImpairCapture reads the capture once with tshark and classifies the
// segments src sent. The capture holds about 300,000 packets: tshark skips
// what the question does not need (HTTP over 100 MiB bodies above all,
// which takes it minutes), while keeping the sequence analysis that finds
// retransmissions.
func readImpairCapture(file, src string) (impairCapture, error) {
	var c impairCapture
	cmd := exec.Command("tshark", "-r", file, "--disable-protocol", "http",
		"-o", "tcp.relative_sequence_numbers:FALSE", "-o", "tcp.desegment_tcp_streams:FALSE",
		"-o", "tcp.track_bytes_in_flight:FALSE", "-o", "tcp.calculate_timestamps:FALSE",
		"-o", "tcp.check_checksum:FALSE",
		"-Y", "ip.src == "+src+" && tcp",
		"-T", "fields", "-E", "separator=/t", "-E", "aggregator=,", "-E", "occurrence=a",
		"-e", "tcp.ack", "-e", "tcp.options.sack_le", "-e", "tcp.options.sack_re",
		"-e", "tcp.options.sack.dsack_le", "-e", "tcp.analysis.retransmission", "-e", "tcp.analysis.fast_retransmission",
		"-e", "tcp.analysis.spurious_retransmission", "-e", "tcp.analysis.out_of_order",
		"-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.seq", "-e", "tcp.len", "-e", "tcp.flags")
	const nfields = 13
	high := map[captureFlow]uint32{}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return c, err
	}
	if err := cmd.Start(); err != nil {
		return c, fmt.Errorf("tshark: %v", err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != nfields {
			cmd.Process.Kill()
			cmd.Wait()
			return c, fmt.Errorf("tshark line %q: want %d fields", sc.Text(), nfields)
		}
		c.segments++
		ack, _ := strconv.ParseUint(f[0], 10, 32)
		les, res := splitUint32s(f[1]), splitUint32s(f[2])
		if len(les) > 0 {
			c.withSACK++
			if len(les) == len(res) && isDSACK(uint32(ack), les, res) {
				c.dsacks++
			}
		}
		if f[3] != "" {
			c.tsharkDSACKs++
		}
		for i, n := range []*int{&c.tsharkRetrans, &c.tsharkFast, &c.tsharkSpurious, &c.tsharkOutOfOrder} {
			if f[4+i] != "" {
				*n++
			}
		}
		sport, err1 := strconv.ParseUint(f[8], 10, 16)
		dport, err2 := strconv.ParseUint(f[9], 10, 16)
		seq, err3 := strconv.ParseUint(f[10], 10, 32)
		n, err4 := strconv.ParseUint(f[11], 10, 32)
		flags, err5 := strconv.ParseUint(f[12], 0, 16)
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return c, fmt.Errorf("tshark line %q: %v", sc.Text(), err)
		}
		span := uint32(n)
		if flags&0x02 != 0 { // SYN
			span++
		}
		if flags&0x01 != 0 { // FIN
			span++
		}
		if span == 0 || flags&0x04 != 0 {
			continue // ACKs, probes and resets occupy no sequence space
		}
		fl := captureFlow{uint16(sport), uint16(dport)}
		h, seen := high[fl]
		if seen && int32(uint32(seq)-h) < 0 {
			c.retransmissions++
		}
		if end := uint32(seq) + span; !seen || int32(end-h) > 0 {
			high[fl] = end
		}
	}
	if err := cmd.Wait(); err != nil {
		return c, fmt.Errorf("tshark: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return c, sc.Err()
}

// isDSACK applies RFC 2883 §4: the first SACK block is a D-SACK if it lies
// at or below the cumulative ACK, or inside the second block. Sequence
// numbers compare modulo 2^32.
func isDSACK(ack uint32, les, res []uint32) bool {
	le, re := les[0], res[0]
	if int32(re-ack) <= 0 {
		return true
	}
	return len(les) > 1 && int32(le-les[1]) >= 0 && int32(res[1]-re) >= 0
}

func splitUint32s(s string) []uint32 {
	if s == "" {
		return nil
	}
	var out []uint32
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil
		}
		out = append(out, uint32(n))
	}
	return out
}

// traceEventCounts reads serve's trace and counts the events of the
// connections on the local address, by kind.
func traceEventCounts(t *testing.T, file, local string) map[string]uint64 {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var r traceRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("trace line %d %q: %v", n, sc.Text(), err)
		}
		if !strings.HasPrefix(r.Local, local+":") || r.CwndBytes <= 0 || r.State == "" {
			t.Errorf("trace line %d is not a plausible event of %s: %s", n, local, sc.Text())
		}
		counts[r.Event]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}
