package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"tunstack/netif"
	"tunstack/policy"
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

func TestStackLabelsParseVariants(t *testing.T) {
	prof, err := policy.ByName("linux")
	if err != nil {
		t.Fatal(err)
	}
	good := []struct {
		label, base, cc string
		sack            bool
	}{
		{"tunstack", "tunstack", "cubic", true},
		{"tunstack/reno", "tunstack", "reno", true},
		{"tunstack/newreno-nosack", "tunstack", "newreno", false},
		{"tunstack/nosack", "tunstack", "cubic", false},
		{"gvisor/reno", "gvisor", "reno", true},
		{"gvisor/cubic-nosack", "gvisor", "cubic", false},
		{"linux", "linux", "cubic", true},
	}
	for _, g := range good {
		sp, err := parseStack(g.label)
		if err != nil {
			t.Errorf("%s: %v", g.label, err)
			continue
		}
		cc, sack := sp.lossSettings(prof)
		if sp.base != g.base || cc != g.cc || sack != g.sack {
			t.Errorf("%s: base %s, cc %s, sack %v; want %s, %s, %v", g.label, sp.base, cc, sack, g.base, g.cc, g.sack)
		}
	}
	if p := (stackSpec{base: "tunstack", cc: "reno"}).profile(prof); p == prof || prof.Congestion != "cubic" {
		t.Error("a variant must change a copy of the profile, not the profile")
	}
	if sp, err := parseStack("tunstack/q4"); err != nil || sp.base != "tunstack" || sp.queues != 4 || sp.profile(prof) != prof {
		t.Errorf("tunstack/q4: %+v, %v; want tunstack on 4 queues with the profile as it is", sp, err)
	}
	// tunstack runs as serve does by default, one queue per CPU, but on
	// one where its link is impaired; a qN label's queues are as given.
	for _, c := range []struct {
		label    string
		impaired bool
		want     int
	}{
		{"tunstack", false, netif.DefaultQueues()}, {"tunstack", true, 1},
		{"tunstack/reno", true, 1}, {"tunstack/q4", false, 4},
		{"gvisor", false, 1}, {"gvisor/reno", true, 1},
	} {
		sp, err := parseStack(c.label)
		if err != nil {
			t.Fatalf("%s: %v", c.label, err)
		}
		if got := sp.tunQueues(c.impaired); got != c.want {
			t.Errorf("%s (impaired %v) runs on %d queues, want %d", c.label, c.impaired, got, c.want)
		}
	}
	for _, bad := range []string{"linux/reno", "gvisor/newreno", "tunstack/bbr", "tunstack/", "bsd", "tunstack/reno-sack", "tunstack/q0", "tunstack/q", "tunstack/q300", "gvisor/q2"} {
		if err := CheckStack(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDefaultPlanRunsVariantsOnLossyOnly(t *testing.T) {
	o := Options{Scenarios: []string{"lossy", "bulk-up"}}
	if err := o.Normalize(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(o.StacksFor("bulk-up"), ","); got != "tunstack,gvisor,linux" {
		t.Errorf("bulk-up stacks %s", got)
	}
	lossy := o.StacksFor("lossy")
	want := "tunstack,gvisor,linux,tunstack/reno,tunstack/newreno,tunstack/reno-nosack,tunstack/newreno-nosack,tunstack/cubic-nosack,gvisor/reno"
	if strings.Join(lossy, ",") != want {
		t.Errorf("lossy stacks %s, want %s", strings.Join(lossy, ","), want)
	}
	// Named stacks run on every scenario, and nothing else does.
	e := Options{Stacks: []string{"gvisor/reno", "tunstack/cubic-nosack", "tunstack"}, Scenarios: []string{"lossy", "rr"}}
	if err := e.Normalize(); err != nil {
		t.Fatal(err)
	}
	for _, sc := range []string{"lossy", "rr"} {
		if got := strings.Join(e.StacksFor(sc), ","); got != "tunstack,tunstack/cubic-nosack,gvisor/reno" {
			t.Errorf("%s stacks %s", sc, got)
		}
	}
	if err := (&Options{Stacks: []string{"linux/cubic"}}).Normalize(); err == nil {
		t.Error("linux/cubic accepted")
	}
}

func TestACKMetricsPerMiB(t *testing.T) {
	m := ackMetrics(segCounts{pureAcksOut: 3620, dataSegsIn: 7240}, 10*mib)
	if m["acks_per_mib"] != 362 || m["segs_per_ack"] != 2 || m["pure_acks"] != 3620 {
		t.Errorf("metrics %v", m)
	}
	if m := ackMetrics(segCounts{}, 0); len(m) != 2 {
		t.Errorf("no data, no ACKs: only the counts expected, got %v", m)
	}
}

// ackAndLossyResults are a run with the ACK counts of bulk-up and lossy on
// variants.
func ackAndLossyResults() []Result {
	up := func(st string, acks, segs float64) Result {
		return Result{Scenario: "bulk-up", Stack: st, Unit: "Gbit/s", Runs: 3, Value: 3,
			Metrics: map[string]float64{"gbps": 3, "acks_per_mib": acks, "segs_per_ack": segs, "pure_acks": acks * 1000, "link_drops": 0}}
	}
	lossy := func(st, cc string, sack bool, mbps float64) Result {
		return Result{Scenario: "lossy", Stack: st, Unit: "Mbit/s", Runs: 3, Value: mbps, Congestion: cc, SACK: sack,
			Metrics: map[string]float64{"gbps": mbps / 1000, "retrans": 30, "rto_timeouts": 2, "cpu_s_per_gb": 50, "link_lost_from_stack": 29, "queue_drops_from_stack": 1}}
	}
	return []Result{
		up("tunstack", 362, 2), up("gvisor", 724, 1), up("linux", 20, 36),
		lossy("tunstack", "cubic", true, 4), lossy("gvisor", "cubic", true, 2), lossy("linux", "cubic", true, 3),
		lossy("tunstack/reno-nosack", "reno", false, 1),
		{Scenario: "lossy", Stack: "gvisor/reno", Unit: "Mbit/s", Congestion: "reno", SACK: true, Errors: []string{"run 1: boom"}},
	}
}

func TestACKAndGoodputTables(t *testing.T) {
	res := ackAndLossyResults()
	acks := ackRows(res)
	if len(acks) != 3 {
		t.Fatalf("ACK rows %v", acks)
	}
	if a := acks[0]; a[0] != "tunstack" || a[1] != "362" || a[2] != "2.00" || a[5] != "0.5x" || a[6] != "18.1x" {
		t.Errorf("tunstack ACK row %q", a)
	}
	if acks[1][5] != "" {
		t.Errorf("gVisor's row has a ratio: %q", acks[1])
	}
	g := goodputRows(res)
	if len(g) != 5 {
		t.Fatalf("goodput rows %v", g)
	}
	if r := g[3]; r[0] != "tunstack/reno-nosack" || r[1] != "reno" || r[2] != "off" || r[3] != "1.00 Mbit/s" || r[5] != "2" || r[6] != "29 / 1" || r[9] != "0.5x" {
		t.Errorf("variant row %q", r)
	}
	if r := g[4]; r[0] != "gvisor/reno" || !strings.HasPrefix(r[3], "FAILED") {
		t.Errorf("failed variant row %q", r)
	}
	main := rows(res)
	if main[6].vsGVisor != "0.5x" {
		t.Errorf("a variant's row in the main table has ratio %q, want 0.5x", main[6].vsGVisor)
	}
	if !strings.Contains(main[0].detail, "362 ACKs/MiB") {
		t.Errorf("bulk-up detail %q", main[0].detail)
	}
	var txt bytes.Buffer
	if err := WriteTable(&txt, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"per MiB it received (bulk-up)", "Goodput through the impaired link (lossy)", "tunstack/reno-nosack  reno"} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text table lacks %q:\n%s", want, txt.String())
		}
	}
	// Without a measured lossy or ACK figure, no extra table.
	txt.Reset()
	WriteTable(&txt, sampleResults())
	if strings.Contains(txt.String(), "Goodput") || strings.Contains(txt.String(), "ACKs") {
		t.Errorf("extra tables without their figures:\n%s", txt.String())
	}

	rep, err := NewReport(Options{Runs: 3, Duration: time.Second}, res, Machine{Cores: 2})
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	rep.WriteMarkdown(&md, "", "perf/")
	for _, want := range []string{
		"### ACKs sent per MiB received (bulk-up)",
		"| tunstack | 362 | 2.00 | 362,000 | 3 | 0.5x | 18.1x |",
		"### Goodput through the impaired link (lossy)",
		"| tunstack/reno-nosack | reno | off | 1.00 Mbit/s | 30 | 2 | 29 / 1 | 50.0 s/GB | 3 | 0.5x | 0.333x |",
		"lossy also on the 6 variants",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	// The JSON keeps what each stack ran with.
	var js bytes.Buffer
	rep.WriteJSON(&js)
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if r := back.Results[6]; r.Congestion != "reno" || r.SACK || r.Metrics["link_lost_from_stack"] != 29 {
		t.Errorf("round trip of a variant: %+v", r)
	}
	if len(back.Settings.LossyStacks) != 9 || back.Results[0].Metrics["acks_per_mib"] != 362 {
		t.Errorf("round trip: lossy stacks %v, ACKs %v", back.Settings.LossyStacks, back.Results[0].Metrics)
	}
}

func TestLossyChartGroupsVariantsUnderTheirStacks(t *testing.T) {
	charts := Charts(ackAndLossyResults(), []string{"tunstack", "gvisor", "linux"})
	var lossy *BarChart
	for i := range charts {
		if strings.HasPrefix(charts[i].Title, "Goodput") {
			lossy = &charts[i]
		}
	}
	if lossy == nil {
		t.Fatal("no goodput panel")
	}
	if strings.Join(lossy.Groups, ",") != "default,reno-nosack,reno" {
		t.Fatalf("groups %v", lossy.Groups)
	}
	v := lossy.Values
	if v[0][0] != 4 || v[0][1] != 2 || v[0][2] != 3 || v[1][0] != 1 || !math.IsNaN(v[1][1]) || !math.IsNaN(v[2][1]) {
		t.Errorf("values %v", v)
	}
}

func TestRunGroupsPairEachScenarioWithItsIPv6RunAndItsRelay(t *testing.T) {
	o := Options{Scenarios: []string{"relay-crr", "rr", "bulk-up-v6", "relay-bulk-up", "bulk-down", "bulk-up", "crr"}}
	if err := o.Normalize(); err != nil {
		t.Fatal(err)
	}
	got := runGroups(o.Scenarios)
	want := [][]string{{"bulk-down"}, {"bulk-up", "bulk-up-v6", "relay-bulk-up"}, {"rr"}, {"crr", "relay-crr"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("runGroups(%v) = %v, want %v", o.Scenarios, got, want)
	}
}

func TestNormalizeFamilyRenamesTheScenarios(t *testing.T) {
	for _, c := range []struct {
		family    string
		scenarios []string
		want      []string
	}{
		{"", nil, []string{"bulk-down", "bulk-down-v6", "bulk-up", "bulk-up-v6", "streams", "rr", "crr", "idle", "lossy", "http-load", "relay-bulk-down", "relay-bulk-up", "relay-crr", "relay-idle"}},
		{"", []string{"bulk-down-v6", "rr"}, []string{"bulk-down-v6", "rr"}},
		{"4", []string{"bulk-down-v6", "rr"}, []string{"bulk-down", "rr"}},
		{"6", []string{"bulk-down", "rr"}, []string{"bulk-down-v6", "rr-v6"}},
		{"both", []string{"bulk-up", "crr-v6"}, []string{"bulk-up", "bulk-up-v6", "crr", "crr-v6"}},
	} {
		o := Options{Family: c.family, Scenarios: c.scenarios}
		if err := o.Normalize(); err != nil {
			t.Fatalf("family %q: %v", c.family, err)
		}
		if !reflect.DeepEqual(o.Scenarios, c.want) {
			t.Errorf("family %q, scenarios %v: normalized to %v, want %v", c.family, c.scenarios, o.Scenarios, c.want)
		}
	}
	if err := (&Options{Family: "5"}).Normalize(); err == nil {
		t.Error("family 5 was accepted")
	}
	if err := (&Options{Scenarios: []string{"bulk-down-v7"}}).Normalize(); err == nil {
		t.Error("scenario bulk-down-v7 was accepted")
	}
}

func TestFamilyRowsPutIPv6BesideIPv4(t *testing.T) {
	res := []Result{
		{Scenario: "bulk-down", Stack: "tunstack", Unit: "Gbit/s", Runs: 3, Value: 4},
		{Scenario: "bulk-down-v6", Stack: "tunstack", Unit: "Gbit/s", Runs: 3, Value: 3},
		{Scenario: "bulk-down-v6", Stack: "linux", Unit: "Gbit/s", Runs: 3, Value: 9}, // no IPv4 figure
		{Scenario: "rr", Stack: "tunstack", Unit: "tx/s", Runs: 3, Value: 100},
	}
	got := familyRows(res)
	want := [][]string{{"bulk-down", "tunstack", formatFigure(4, "Gbit/s"), formatFigure(3, "Gbit/s"), "0.75x"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("familyRows = %q, want %q", got, want)
	}
}

// TestRRTailSectionOnlyWithRRProfiles: the report says where rr's tail
// goes, and how to read its trace, only when rr was profiled.
func TestRRTailSectionOnlyWithRRProfiles(t *testing.T) {
	rep, err := NewReport(Options{Runs: 3, Duration: time.Second}, sampleResults(), Machine{Cores: 2})
	if err != nil {
		t.Fatal(err)
	}
	rep.Profiles = []ProfileSummary{{Stack: "tunstack", Scenario: "crr", Kind: "cpu", Lines: []string{"flat  flat%", "1s 10% main"}}}
	var md bytes.Buffer
	rep.WriteMarkdown(&md, "", "perf/")
	if strings.Contains(md.String(), "Where rr's tail goes") {
		t.Error("the rr tail section without rr profiles")
	}
	rep.Profiles = append(rep.Profiles, ProfileSummary{Stack: "tunstack", Scenario: "rr", Kind: "sched", Lines: []string{"flat  flat%", "103ms 45% tunstack/stack.(*notifier).Wake"}})
	md.Reset()
	rep.WriteMarkdown(&md, "", "perf/")
	for _, want := range []string{"### Where rr's tail goes", "### rr, sched", "notifier).Wake", "go tool trace -pprof=sched"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}
