package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseMicroReadsPackagesAndUnits(t *testing.T) {
	out := `goos: linux
pkg: tunstack/tcpcore
cpu: Intel(R) Xeon(R) Processor @ 2.50GHz
BenchmarkBulkReceive-2   	  383228	      3145 ns/op	 460.40 MB/s	    1314 B/op	       0 allocs/op
BenchmarkPureAck-2       	 5000000	       238.6 ns/op	       0 B/op	       0 allocs/op
BenchmarkPureAck-2 some log line
PASS
pkg: tunstack/congestion
BenchmarkCubicOnAck-2   	     100	        59.82 ns/op	       2.5 segs/op
`
	ms, err := ParseMicro(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 {
		t.Fatalf("%d results, want 3: %+v", len(ms), ms)
	}
	b := ms[0]
	if b.Package != "tunstack/tcpcore" || b.Name != "BulkReceive" || b.Iterations != 383228 || b.NsPerOp != 3145 || b.MBPerSec != 460.40 || b.BytesPerOp != 1314 || b.AllocsPerOp != 0 {
		t.Errorf("first result %+v", b)
	}
	if ms[1].MBPerSec != -1 || ms[1].NsPerOp != 238.6 {
		t.Errorf("unreported MB/s should be -1: %+v", ms[1])
	}
	c := ms[2]
	if c.Package != "tunstack/congestion" || c.AllocsPerOp != -1 || c.Other["segs/op"] != 2.5 {
		t.Errorf("third result %+v", c)
	}
}

func sampleResults() []Result {
	mk := func(sc, st, unit string, v float64, m map[string]float64) Result {
		return Result{Scenario: sc, Stack: st, Unit: unit, Runs: 3, Value: v, Metrics: m}
	}
	return []Result{
		mk("bulk-down", "tunstack", "Gbit/s", 2, map[string]float64{"gbps": 2, "cpu_s_per_gb": 3, "retrans": 4}),
		mk("bulk-down", "gvisor", "Gbit/s", 1, map[string]float64{"gbps": 1, "cpu_s_per_gb": 5, "retrans": 15}),
		mk("bulk-down", "linux", "Gbit/s", 20, map[string]float64{"gbps": 20, "cpu_s_per_gb": 0.2}),
		mk("rr", "tunstack", "tx/s", 40000, map[string]float64{"tps": 40000, "p50_us": 23.5, "p99_us": 49.5, "cpu_us_per_tx": 23.4}),
		{Scenario: "rr", Stack: "gvisor", Unit: "tx/s", Errors: []string{"run 1: boom"}},
		{Scenario: "lossy", Stack: "tunstack", Unit: "Mbit/s", Skip: "no impairment"},
	}
}

func TestTableHasRatiosOnTunstackRowsOnly(t *testing.T) {
	rs := rows(sampleResults())
	if rs[0].vsGVisor != "2.00x" || rs[0].vsLinux != "0.1x" {
		t.Errorf("bulk-down ratios %q %q, want 2.00x and 0.1x", rs[0].vsGVisor, rs[0].vsLinux)
	}
	if rs[1].vsGVisor != "" || rs[2].vsLinux != "" {
		t.Error("ratios belong on the tunstack rows only")
	}
	if rs[3].vsGVisor != "" {
		t.Errorf("rr has no gVisor figure, so no ratio: got %q", rs[3].vsGVisor)
	}
	if rs[3].detail != "p50 23.5 µs, p99 49.5 µs" || rs[3].cpu != "23.4 µs/tx" {
		t.Errorf("rr detail %q, cpu %q", rs[3].detail, rs[3].cpu)
	}
	if !strings.HasPrefix(rs[4].figure, "FAILED: run 1: boom") {
		t.Errorf("failed result figure %q", rs[4].figure)
	}
	if rs[5].figure != "SKIP: no impairment" {
		t.Errorf("skipped result figure %q", rs[5].figure)
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, sampleResults()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "tunstack/gvisor") || strings.Count(buf.String(), "\n") != 7 {
		t.Errorf("table:\n%s", buf.String())
	}
}

func TestResultMediansAndJSON(t *testing.T) {
	r := Result{Scenario: "rr", Stack: "tunstack", Unit: "tx/s", Samples: []Sample{
		{Value: 3, Metrics: map[string]float64{"p99_us": 10}},
		{Value: 1, Metrics: map[string]float64{"p99_us": 30}},
		{Value: 2, Metrics: map[string]float64{"p99_us": 20}},
	}}
	r.summarize()
	if r.Runs != 3 || r.Value != 2 || r.Metrics["p99_us"] != 20 {
		t.Errorf("summarize: runs %d value %v p99 %v", r.Runs, r.Value, r.Metrics["p99_us"])
	}
	empty := Result{Scenario: "rr", Stack: "gvisor"}
	empty.summarize()
	rep, err := NewReport(Options{Runs: 3, Duration: time.Second}, []Result{r, empty}, Machine{Cores: 2})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatalf("a result without runs must still encode: %v", err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Settings.Runs != 3 || len(back.Results) != 2 || back.GVisor.CongestionControl == "" {
		t.Errorf("round trip lost fields: %+v", back.Settings)
	}
	var md bytes.Buffer
	rep.WriteMarkdown(&md, "perf/bench.svg", "perf/")
	for _, want := range []string{"## Machine", "| rr | tunstack | 2.00 tx/s", "## gVisor options", "CongestionControl"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}
