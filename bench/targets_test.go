package bench

import (
	"strings"
	"testing"
)

// The targets against Linux are judged from the run's medians: a rate
// against a fraction of Linux's, a cost against a multiple, streams'
// directions against each other, counts against zero; a scenario below a
// target gets what its study found in the way, one that meets them all
// gets nothing.
func TestTargetsAgainstLinux(t *testing.T) {
	mk := func(sc, st string, v float64, m map[string]float64) Result {
		return Result{Scenario: sc, Stack: st, Runs: 3, Value: v, Metrics: m}
	}
	results := []Result{
		mk("bulk-down", "tunstack", 16, nil),
		mk("bulk-down", "linux", 30, nil),
		mk("streams", "tunstack", 20, map[string]float64{"down_gbps": 15, "up_gbps": 5}),
		mk("streams", "linux", 48, map[string]float64{"down_gbps": 24, "up_gbps": 24}),
		mk("rr", "tunstack", 50000, map[string]float64{"p99_us": 40}),
		mk("rr", "linux", 60000, map[string]float64{"p99_us": 21}),
		mk("http-load", "tunstack", 11000, map[string]float64{"p99_ms": 150, "syn_retrans": 3, "link_drops": 0}),
		mk("http-load", "linux", 12000, map[string]float64{"p99_ms": 120, "syn_retrans": 0, "link_drops": 0}),
		mk("idle", "tunstack", 1.6, nil),
		// crr measured on tunstack only: its target cannot be judged.
		mk("crr", "tunstack", 3000, nil),
	}
	rows, short := targetRows(results)
	got := map[string]string{}
	for _, r := range rows {
		got[r[0]+" / "+r[1]] = r[4] + " " + r[5]
	}
	for what, want := range map[string]string{
		"bulk-down / ≥ 0.5x Linux's throughput":         "0.533x met",
		"streams / ≥ 0.5x Linux's throughput":           "0.417x NOT met",
		"streams / up and down within 2x of each other": "3.00x NOT met",
		"rr / ≥ 0.8x Linux's transactions/s":            "0.833x met",
		"rr / p99 ≤ 2x Linux's":                         "1.90x met",
		"http-load / ≥ 0.9x Linux's requests/s":         "0.917x met",
		"http-load / 0 client SYN retransmissions":      " NOT met",
		"http-load / 0 TUN drops":                       " met",
		"crr / ≥ 1x Linux's connections/s":              " not measured",
		"idle / ≤ 0.5x Linux's memory per connection":   " not measured",
	} {
		if got[what] != want {
			t.Errorf("%s: %q, want %q", what, got[what], want)
		}
	}
	if _, ok := got["bulk-up / ≥ 0.5x Linux's throughput"]; ok {
		t.Errorf("a row for bulk-up, which did not run")
	}
	if strings.Join(short, ",") != "streams,http-load" {
		t.Errorf("scenarios below target %v, want [streams http-load]", short)
	}
	var md strings.Builder
	writeTargetsMarkdown(&md, results)
	out := md.String()
	for _, want := range []string{"### Against Linux", "**streams, below target.** " + shortfalls["streams"], "**http-load, below target.**"} {
		if !strings.Contains(out, want) {
			t.Errorf("targets section lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "**rr, below target.**") || strings.Contains(out, "**bulk-down, below target.**") {
		t.Errorf("a shortfall paragraph for a scenario on target:\n%s", out)
	}
}
