package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const reliabilityTestLog = `=== RUN   TestOptimisticAck
    adversary_test.go:90: RELIABILITY {"case":"optimistic ACK","stack":"tunstack (engine, virtual time)","outcome":"dropped","figures":{"cwnd growth":"0"},"scripts":["rst/ack-of-unsent-data.pkt"]}
--- PASS: TestOptimisticAck (0.00s)
=== RUN   TestHostileIdle
    serve_hostile_test.go:43: RELIABILITY {"case":"idle population","stack":"linux","outcome":"serves","figures":{"conns":"10000"}}
    serve_hostile_test.go:43: RELIABILITY {"case":"idle population","stack":"tunstack","outcome":"refuses past --max-conns","figures":{"refused":"12"}}
--- FAIL: TestHostileIdle (1.00s)
`

func TestReliabilityLogLinesAndFailures(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "t.log")
	os.WriteFile(log, []byte(reliabilityTestLog), 0o644)
	lines, failed, err := readReliabilityLog(log)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 || lines[0].Test != "TestOptimisticAck" || lines[2].Stack != "tunstack" || lines[0].Scripts[0] != "rst/ack-of-unsent-data.pkt" {
		t.Fatalf("lines %+v", lines)
	}
	if len(failed) != 1 || failed[0] != "TestHostileIdle" {
		t.Fatalf("failed %v", failed)
	}
	doc := string(renderReliability(lines, failed, nil, nil, "docs/reliability/soak.json", "docs/reliability.md",
		map[string]map[string]string{"gvisor": {"rst/ack-of-unsent-data.pkt": "pass"}}, map[string]string{"linux": "this run was not root"}))
	for _, want := range []string{
		"**Tests that failed in the run that made this document:** TestHostileIdle",
		"| optimistic ACK | not run (this run was not root); scripts `rst/ack-of-unsent-data.pkt` | `rst/ack-of-unsent-data.pkt`: pass | *engine*: dropped | engine: cwnd growth 0 |",
		"| idle population | serves | not run (no test or script for it on gvisor) | *over TUN*: refuses past --max-conns | linux: conns 10000; over TUN: refused 12 |",
		"No fuzzing run is recorded", "No soak has been recorded",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the document lacks %q:\n%s", want, doc)
		}
	}
	os.WriteFile(log, []byte("RELIABILITY {broken\n"), 0o644)
	if _, _, err := readReliabilityLog(log); err == nil || !strings.Contains(err.Error(), "t.log:1") {
		t.Errorf("a broken line: %v", err)
	}
}

func TestReliabilityRecordsFuzzAndSimulationLogs(t *testing.T) {
	fuzz := `== FuzzIPv4 (tunstack/wire) for 60s
fuzz: elapsed: 0s, gathering baseline coverage: 0/90 completed
fuzz: elapsed: 60s, execs: 123456 (2000/sec), new interesting: 3 (total: 93)
PASS
== FuzzTCP (tunstack/wire) for 60s
fuzz: elapsed: 31s, execs: 5000 (100/sec), new interesting: 1 (total: 10)
--- FAIL: FuzzTCP (31.00s)
    Failing input written to testdata/fuzz/FuzzTCP/abc
`
	recs, err := parseFuzzLog(fuzz, "", "2026-01-01")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Target != "FuzzIPv4" || recs[0].Execs != 123456 || recs[0].Seconds != 60 || recs[0].Crashed ||
		!recs[1].Crashed || !strings.Contains(recs[1].Failures, "testdata/fuzz/FuzzTCP/abc") {
		t.Fatalf("records %+v", recs)
	}
	if _, err := parseFuzzLog("fuzz: elapsed: 3s, execs: 10 (3/sec), new interesting: 0 (total: 1)\n", "", "d"); err == nil {
		t.Error("a single run's log without --target was taken")
	}
	sim := `    scenarios_test.go:45: seeds 1000 to 1999, 500 scenarios: 100 bytes, 2 packets lost, 3 queue drops, 4 fast and 5 timeout retransmissions, 6 spurious reductions undone, 1h virtual time
    scenarios_test.go:45: seeds 1000 to 1999, 500 scenarios: 100 bytes, 2 packets lost, 3 queue drops, 4 fast and 5 timeout retransmissions, 6 spurious reductions undone, 1h virtual time
PASS
`
	recs, err = parseSimLog(sim, "2026-01-01")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Seeds != 1000 || recs[0].FirstSd != 1000 || !recs[0].Passed || !strings.HasPrefix(recs[0].Summary, "200 bytes, 4 packets lost") {
		t.Fatalf("records %+v", recs)
	}
	recs, _ = parseSimLog("    sim_test.go:94: seed 59: rfc/cubic ...: engine a (sender) retransmitted a byte 13 times\nFAIL\n", "d")
	if recs[0].Passed || !strings.Contains(recs[0].Failures, "seed 59: rfc/cubic") {
		t.Fatalf("a failed run: %+v", recs[0])
	}
}
