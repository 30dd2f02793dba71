package bench

import (
	"strings"
	"testing"

	"tunstack/lab/netns"
)

func TestRelayRowsRatiosAndTargets(t *testing.T) {
	mk := func(sc, st, unit string, v float64) Result {
		return Result{Scenario: sc, Stack: st, Unit: unit, Runs: 3, Value: v, Metrics: map[string]float64{}}
	}
	results := []Result{
		mk("bulk-down", "tunstack", "Gbit/s", 10),
		mk("bulk-up", "tunstack", "Gbit/s", 10),
		mk("relay-bulk-down", "tunstack", "Gbit/s", 8),
		mk("relay-bulk-down", "gvisor", "Gbit/s", 2),
		mk("relay-bulk-down", "linux", "Gbit/s", 20),
		mk("relay-bulk-up", "tunstack", "Gbit/s", 6),
		mk("relay-bulk-up", "gvisor", "Gbit/s", 1),
		mk("relay-idle", "tunstack", "KiB/conn", 10),
		mk("relay-idle", "gvisor", "KiB/conn", 30),
		{Scenario: "relay-crr", Stack: "tunstack", Unit: "conn/s", Errors: []string{"run 1: boom"}},
	}
	got := map[[2]string][]string{}
	for _, r := range relayRows(results) {
		got[[2]string{r[0], r[1]}] = r
	}
	if len(got) != 8 {
		t.Fatalf("%d relay rows, want 8 (the relay results only): %v", len(got), got)
	}
	for _, c := range []struct {
		sc, st                   string
		vsGVisor, vsServe, judge string
	}{
		// 8/2 = 4x gVisor (≥ 3: met), 8/10 = 0.8x serve (≥ 0.7: met).
		{"relay-bulk-down", "tunstack", "4.00x", "0.8x", "≥ 3x gvisor: met; ≥ 0.7x serve: met"},
		// 6/1 = 6x gVisor, 6/10 = 0.6x serve: below 0.7.
		{"relay-bulk-up", "tunstack", "6.00x", "0.6x", "≥ 3x gvisor: met; ≥ 0.7x serve: NOT met"},
		// Memory: 10/30 is at most half.
		{"relay-idle", "tunstack", "0.333x", "", "≤ 0.5x gvisor: met"},
		// No ratios on the other stacks' rows, and no serve figure for gVisor.
		{"relay-bulk-down", "gvisor", "", "", ""},
	} {
		r := got[[2]string{c.sc, c.st}]
		if r[3] != c.vsGVisor || r[4] != c.vsServe || r[5] != c.judge {
			t.Errorf("%s %s: tunstack/gvisor %q, relay/serve %q, target %q; want %q, %q, %q", c.sc, c.st, r[3], r[4], r[5], c.vsGVisor, c.vsServe, c.judge)
		}
	}
	if r := got[[2]string{"relay-crr", "tunstack"}]; !strings.HasPrefix(r[2], "FAILED") {
		t.Errorf("a failed relay-crr shows %q, want FAILED", r[2])
	}
	var md strings.Builder
	writeRelayMarkdown(&md, results)
	if !strings.Contains(md.String(), "### Through the relay") || !strings.Contains(md.String(), "| relay-bulk-up | tunstack | 6.00 Gbit/s |") {
		t.Errorf("relay section:\n%s", md.String())
	}
	md.Reset()
	writeRelayMarkdown(&md, results[:2])
	if md.Len() != 0 {
		t.Errorf("a report without relay results has a relay section:\n%s", md.String())
	}
}

// TestSmokeRelayScenarios runs every relay scenario briefly on both
// relays: a kernel client through the TUN, the frontend and the relay to a
// kernel server. Root only.
func TestSmokeRelayScenarios(t *testing.T) {
	netns.RequireRoot(t)
	res := runSmoke(t, Options{
		Stacks:    []string{"tunstack", "gvisor"},
		Scenarios: []string{"relay-bulk-down", "relay-bulk-up", "relay-crr", "relay-idle"},
		Duration:  smokeDuration(), Runs: 1, IdleConns: 200,
	})
	if len(res) != 8 {
		t.Fatalf("%d results, want 4 scenarios on 2 stacks", len(res))
	}
	for _, r := range res {
		t.Logf("%s %s: %v %s %v", r.Stack, r.Scenario, r.Value, r.Unit, r.Metrics)
		if !r.Measured() || r.Value <= 0 {
			t.Errorf("%s on %s measured nothing: skip=%q %v", r.Scenario, r.Stack, r.Skip, r.Errors)
		}
		if r.Scenario == "relay-idle" && r.Metrics["conns"] != 200 {
			t.Errorf("relay-idle on %s held %v connections, want 200", r.Stack, r.Metrics["conns"])
		}
	}
}

func TestChartsShowRelayScenariosThatRan(t *testing.T) {
	mk := func(sc, st string, m map[string]float64) Result {
		return Result{Scenario: sc, Stack: st, Runs: 1, Value: 1, Metrics: m}
	}
	results := []Result{
		mk("bulk-down", "tunstack", map[string]float64{"gbps": 9}),
		mk("relay-bulk-down", "tunstack", map[string]float64{"gbps": 7}),
		mk("relay-bulk-down", "gvisor", map[string]float64{"gbps": 2}),
		mk("crr", "tunstack", map[string]float64{"cps": 5000}),
	}
	charts := Charts(results, []string{"tunstack", "gvisor"})
	tp := charts[0]
	if strings.Join(tp.Groups, ",") != "bulk-down,bulk-up,streams,relay-bulk-down" {
		t.Fatalf("throughput groups %v: relay-bulk-down ran, relay-bulk-up did not", tp.Groups)
	}
	if v := tp.Values[3]; v[0] != 7 || v[1] != 2 {
		t.Errorf("relay-bulk-down bars %v, want [7 2]", v)
	}
	for _, c := range charts {
		if strings.HasPrefix(c.Title, "crr") && strings.Join(c.Groups, ",") != "crr" {
			t.Errorf("crr groups %v without a relay-crr result", c.Groups)
		}
	}
}
