package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"tunstack/lab/netns"
)

// TestSmokeBulkDownOnTunstack runs one short bulk-down on tunstack in a
// namespace: the harness end to end, fast. Root only.
func TestSmokeBulkDownOnTunstack(t *testing.T) {
	netns.RequireRoot(t)
	stacks := []string{"tunstack"}
	scen := []string{"bulk-down"}
	if s := os.Getenv("BENCH_SMOKE_STACKS"); s != "" {
		stacks = strings.Split(s, ",")
	}
	if s := os.Getenv("BENCH_SMOKE_SCENARIOS"); s != "" {
		scen = strings.Split(s, ",")
	}
	res := runSmoke(t, Options{Stacks: stacks, Scenarios: scen, Duration: smokeDuration(), Runs: 1, IdleConns: 500})
	for _, r := range res {
		t.Logf("%s %s: %v %s %v skip=%q errors=%v", r.Stack, r.Scenario, r.Value, r.Unit, r.Metrics, r.Skip, r.Errors)
		if r.Skip == "" && (!r.Measured() || r.Value <= 0) {
			t.Errorf("%s on %s measured nothing: %v", r.Scenario, r.Stack, r.Errors)
		}
	}
}

// TestSmokeBulkOverIPv6 runs bulk-down and bulk-up over IPv6 once on each
// stack: the IPv6 environments (TUN with both families for the user-space
// stacks, a veth with IPv6 addresses for linux) carry data. Root only.
func TestSmokeBulkOverIPv6(t *testing.T) {
	netns.RequireRoot(t)
	res := runSmoke(t, Options{Scenarios: []string{"bulk-down", "bulk-up"}, Family: "6", Duration: smokeDuration(), Runs: 1})
	if len(res) != 6 {
		t.Fatalf("got %d results, want bulk-down-v6 and bulk-up-v6 on three stacks", len(res))
	}
	for _, r := range res {
		if !strings.HasSuffix(r.Scenario, "-v6") {
			t.Errorf("result %s on %s: want only IPv6 scenarios", r.Scenario, r.Stack)
		}
		if !r.Measured() || r.Value <= 0 {
			t.Errorf("%s on %s measured nothing: skip=%q errors=%v", r.Scenario, r.Stack, r.Skip, r.Errors)
		}
	}
}

// runSmoke runs o with its progress lines in the test's log, and stops the
// test if Run fails.
func runSmoke(t *testing.T, o Options) []Result {
	t.Helper()
	var progress strings.Builder
	o.Progress = &progress
	res, err := Run(context.Background(), o)
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func smokeDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("BENCH_SMOKE_DURATION")); err == nil {
		return d
	}
	return 500 * time.Millisecond
}
