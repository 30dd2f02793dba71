package congestion

import (
	"testing"
	"time"
)

// Linux behaviour (tcp_reinit_congestion_control): the new algorithm takes
// over the connection's cwnd and ssthresh; its own state starts afresh, so
// an Undo has nothing to restore.
func TestContinueCarriesWindowNotState(t *testing.T) {
	cfg := Config{MSS: 1000, InitialWindowSegments: 10}
	old := NewReno(cfg, RenoStyle)
	old.OnLoss(0, 20000) // ssthresh 10000, cwnd 10000
	old.OnRecoveryEnd(time.Millisecond)
	for _, name := range []string{"cubic", "newreno", "tahoe"} {
		c, err := Continue(name, cfg, old)
		if err != nil {
			t.Fatal(err)
		}
		if c.Name() != name || c.CongestionWindow() != old.CongestionWindow() || c.SlowStartThreshold() != old.SlowStartThreshold() {
			t.Fatalf("%s: cwnd %d ssthresh %d, want %d and %d", c.Name(), c.CongestionWindow(), c.SlowStartThreshold(),
				old.CongestionWindow(), old.SlowStartThreshold())
		}
		c.Undo(2 * time.Millisecond)
		if c.CongestionWindow() != old.CongestionWindow() || c.SlowStartThreshold() != old.SlowStartThreshold() {
			t.Fatalf("%s: Undo after the switch restored cwnd %d ssthresh %d", name, c.CongestionWindow(), c.SlowStartThreshold())
		}
	}
	if _, err := Continue("bbr", cfg, old); err == nil {
		t.Fatal("Continue to an unknown algorithm succeeded")
	}
}
