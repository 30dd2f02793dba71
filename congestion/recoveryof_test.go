package congestion

import "testing"

// RecoveryOf answers for every algorithm what the controller New builds
// for it answers, and refuses an unknown name as New does.
func TestRecoveryOfIsTheBuiltControllersRecovery(t *testing.T) {
	for _, name := range Names() {
		cc, err := New(name, Config{MSS: 1448})
		if err != nil {
			t.Fatal(err)
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
