package congestion

import "testing"

// RecoveryOf answers for every algorithm what the controller New builds
// for it answers, and refuses an unknown name as New does; and every new
// controller starts at the initial window and InitialSSThresh, which an
// engine reports for a controller it has not built yet.
func TestRecoveryOfIsTheBuiltControllersRecovery(t *testing.T) {
	for _, name := range Names() {
		cfg := Config{MSS: 1448}
		cc, err := New(name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if cc.CongestionWindow() != cfg.InitialWindow() || cc.SlowStartThreshold() != InitialSSThresh {
			t.Errorf("new %s: cwnd %d ssthresh %d, want %d and %d", name, cc.CongestionWindow(), cc.SlowStartThreshold(), cfg.InitialWindow(), InitialSSThresh)
		}
		got, err := RecoveryOf(name)
		if err != nil || got != cc.Recovery() {
			t.Errorf("RecoveryOf(%q) = %v, %v; the controller's Recovery() is %v", name, got, err, cc.Recovery())
		}
	}
	if _, err := RecoveryOf("bbr"); err == nil {
		t.Error("RecoveryOf(\"bbr\") succeeded; New refuses it")
	}
}
