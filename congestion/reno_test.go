package congestion

import (
	"testing"
	"time"
)

const mss = 1000

func newTestReno(style Style) *Reno {
	return NewReno(Config{MSS: mss, InitialWindowSegments: 10}, style)
}

// RFC 5681 §3.1 equation 1: IW by SMSS when the profile gives none.
func TestInitialWindowRFC5681(t *testing.T) {
	for _, c := range []struct{ mss, want int }{{536, 4 * 536}, {1095, 4 * 1095}, {1460, 3 * 1460}, {2190, 3 * 2190}, {4000, 8000}} {
		if got := (Config{MSS: c.mss}).InitialWindow(); got != c.want {
			t.Errorf("IW(mss %d) = %d, want %d", c.mss, got, c.want)
		}
	}
	if got := (Config{MSS: 1460, InitialWindowSegments: 10}).InitialWindow(); got != 14600 {
		t.Errorf("IW10 = %d", got)
	}
}

// RFC 5681 §3.1 equation 2 with RFC 3465 L=1: slow start grows cwnd by the
// bytes acknowledged, at most one SMSS per ACK.
func TestSlowStartGrowsBySMSSPerAck(t *testing.T) {
	r := newTestReno(RenoStyle)
	r.iw.SlowStartLimitSegments = 1
	r.OnAck(0, 2*mss, r.cwndBytes, 0) // a stretch ACK counts one SMSS
	if r.cwndBytes != 11*mss {
		t.Fatalf("cwnd %d, want 11 SMSS", r.cwndBytes)
	}
	r.OnAck(0, 500, r.cwndBytes, 0)
	if r.cwndBytes != 11*mss+500 {
		t.Fatalf("cwnd %d, want +500 bytes", r.cwndBytes)
	}
}

// RFC 7661 / RFC 5681 §3.1: an application-limited sender does not grow cwnd.
func TestNoGrowthWhenNotCwndLimited(t *testing.T) {
	r := newTestReno(RenoStyle)
	r.OnAck(0, mss, 2*mss, 0)
	if r.cwndBytes != 10*mss {
		t.Fatalf("cwnd grew to %d while flight was below it", r.cwndBytes)
	}
}

// RFC 3465 §2.1: congestion avoidance adds one SMSS per cwnd of bytes ACKed.
func TestCongestionAvoidanceByteCounting(t *testing.T) {
	r := newTestReno(RenoStyle)
	r.ssthreshBytes = 10 * mss
	for i := 0; i < 9; i++ {
		r.OnAck(0, mss, r.cwndBytes, 0)
	}
	if r.cwndBytes != 10*mss {
		t.Fatalf("cwnd %d grew before a full window was ACKed", r.cwndBytes)
	}
	r.OnAck(0, mss, r.cwndBytes, 0)
	if r.cwndBytes != 11*mss {
		t.Fatalf("cwnd %d, want 11 SMSS after one window", r.cwndBytes)
	}
}

// RFC 5681 §3.1 equation 4 and the loss window: on RTO ssthresh =
// max(FlightSize/2, 2*SMSS) and cwnd = 1 SMSS.
func TestRTOResponse(t *testing.T) {
	r := newTestReno(RenoStyle)
	r.OnRTO(0, 20*mss)
	if r.ssthreshBytes != 10*mss || r.cwndBytes != mss {
		t.Fatalf("after RTO ssthresh %d cwnd %d", r.ssthreshBytes, r.cwndBytes)
	}
	r = newTestReno(RenoStyle)
	r.OnRTO(0, 3*mss)
	if r.ssthreshBytes != 2*mss {
		t.Fatalf("ssthresh %d, want floor 2 SMSS", r.ssthreshBytes)
	}
}

// RFC 5681 §3.2 steps 2, 3 and 6: fast recovery halves, inflates by three
// segments, and deflates to ssthresh at the end; Tahoe restarts slow start.
func TestFastRecoveryWindowAndTahoe(t *testing.T) {
	r := newTestReno(RenoStyle)
	r.OnLoss(0, 20*mss)
	if r.ssthreshBytes != 10*mss || r.cwndBytes != 13*mss {
		t.Fatalf("Reno on loss: ssthresh %d cwnd %d", r.ssthreshBytes, r.cwndBytes)
	}
	r.OnRecoveryEnd(0)
	if r.cwndBytes != 10*mss {
		t.Fatalf("Reno after recovery: cwnd %d", r.cwndBytes)
	}
	th := newTestReno(TahoeStyle)
	th.OnLoss(0, 20*mss)
	if th.cwndBytes != mss || th.ssthreshBytes != 10*mss {
		t.Fatalf("Tahoe on loss: ssthresh %d cwnd %d", th.ssthreshBytes, th.cwndBytes)
	}
}

// RFC 5681 §4.1: after idle, cwnd restarts from at most the initial window.
func TestIdleRestart(t *testing.T) {
	r := newTestReno(RenoStyle)
	r.cwndBytes = 50 * mss
	r.OnIdleRestart(0, 5*time.Second, time.Second)
	if r.cwndBytes != 10*mss || r.ssthreshBytes != 1<<30 {
		t.Fatalf("cwnd %d ssthresh %d after idle, want IW and ssthresh unchanged", r.cwndBytes, r.ssthreshBytes)
	}
}

// RFC 2861 §3 as Linux applies it (tcp_cwnd_restart): cwnd halves once
// for each RTO of idleness beyond the first, down to the initial window,
// and ssthresh rises to 3/4 of the window before the idle period.
func TestIdleRestartHalvesPerRTO(t *testing.T) {
	const rto = 300 * time.Millisecond
	for _, c := range []struct {
		cwnd     int
		idle     time.Duration
		want     int
		ssthresh int
	}{
		{40, 450 * time.Millisecond, 20, 30}, // between one and two RTOs
		{40, 600 * time.Millisecond, 20, 30}, // exactly two: the second does not count
		{40, 601 * time.Millisecond, 10, 30},
		{40, 10 * time.Second, 10, 30}, // never below the initial window
		{15, time.Second, 10, 10},      // 15 -> 7 segments is below it: 10
		{8, time.Second, 8, 6},         // a window below IW is its own RW
	} {
		r := NewReno(Config{MSS: mss, InitialWindowSegments: 10, IdleRestartHalving: true}, RenoStyle)
		r.cwndBytes, r.ssthreshBytes = c.cwnd*mss, 5*mss
		r.OnIdleRestart(0, c.idle, rto)
		if r.cwndBytes != c.want*mss || r.ssthreshBytes != max(c.ssthresh, 5)*mss {
			t.Errorf("cwnd %d idle %v: cwnd %d ssthresh %d segments, want %d and %d", c.cwnd, c.idle,
				r.cwndBytes/mss, r.ssthreshBytes/mss, c.want, max(c.ssthresh, 5))
		}
	}
}

// Undo restores the window from before a reduction shown to be spurious.
func TestUndoRestoresWindow(t *testing.T) {
	r := newTestReno(RenoStyle)
	r.cwndBytes, r.ssthreshBytes = 40*mss, 30*mss
	r.OnRTO(0, 40*mss)
	r.Undo(0)
	if r.cwndBytes != 40*mss || r.ssthreshBytes != 30*mss {
		t.Fatalf("after undo cwnd %d ssthresh %d", r.cwndBytes, r.ssthreshBytes)
	}
}

func TestNewUnknownAlgorithmFails(t *testing.T) {
	if _, err := New("bbr9", Config{MSS: mss}); err == nil {
		t.Fatal("unknown algorithm accepted")
	}
	for _, n := range []string{"reno", "newreno", "tahoe"} {
		c, err := New(n, Config{MSS: mss})
		if err != nil || c.Name() != n {
			t.Fatalf("New(%q) = %v, %v", n, c, err)
		}
	}
}

// Linux (tcp_slow_start) has no per-ACK limit: a stretch ACK grows cwnd by
// everything it acknowledges (L = 0 in our Config).
func TestSlowStartWithoutLimitGrowsByAllAcked(t *testing.T) {
	r := newTestReno(RenoStyle)
	r.OnAck(0, 3*mss, r.cwndBytes, 0)
	if r.cwndBytes != 13*mss {
		t.Fatalf("cwnd %d, want 13 SMSS", r.cwndBytes)
	}
}

// RFC 7661 / RFC 5681 §3.1: a window with a segment or more unused by the
// flight it is judged by does not grow.
func TestSlowStartDoesNotGrowAnUnusedWindow(t *testing.T) {
	r := newTestReno(RenoStyle)
	r.OnAck(0, mss, r.cwndBytes-mss, 0)
	if r.cwndBytes != 10*mss {
		t.Fatalf("cwnd %d, want 10 SMSS unchanged", r.cwndBytes)
	}
}

// After fast recovery cwnd = ssthresh = FlightSize/2 may be a fraction of
// a segment above what full segments fill (33.5 SMSS); a flight of 33
// segments still counts as using the window, so congestion avoidance keeps
// adding about one segment per RTT (found by lab slow-start).
func TestCongestionAvoidanceGrowsAFractionalWindow(t *testing.T) {
	r := newTestReno(RenoStyle)
	r.cwndBytes, r.ssthreshBytes = 33*mss+mss/2, 33*mss+mss/2
	for range 34 { // one window of ACKs, a flight of 33 full segments
		r.OnAck(0, mss, 33*mss, 0)
	}
	if r.cwndBytes != 34*mss+mss/2 {
		t.Fatalf("cwnd %d bytes after a window of ACKs, want %d (one SMSS more)", r.cwndBytes, 34*mss+mss/2)
	}
}

// Slow start stops at ssthresh (RFC 5681 §3.1; Linux tcp_slow_start): a
// cumulative ACK of hundreds of segments after loss recovery takes cwnd to
// ssthresh and puts the rest toward congestion avoidance, instead of
// taking cwnd far past ssthresh.
func TestSlowStartStopsAtSsthresh(t *testing.T) {
	r := newTestReno(RenoStyle)
	r.cwndBytes, r.ssthreshBytes = 2*mss, 20*mss
	r.OnAck(0, 370*mss, 1000*mss, 0)
	// 18 segments reach ssthresh; the other 352 count toward congestion
	// avoidance, which adds one segment per cwnd's worth acknowledged.
	if r.cwndBytes != 21*mss {
		t.Fatalf("cwnd %d segments after an ACK of 370, want ssthresh (20) plus one", r.cwndBytes/mss)
	}
}

// RFC 5681 §3.1: "the given segment has not yet been resent by way of the
// retransmission timer": a second timeout of the same segment leaves
// ssthresh alone (cwnd stays one segment).
func TestRepeatedTimeoutKeepsSsthresh(t *testing.T) {
	r := newTestReno(RenoStyle)
	r.OnRTO(0, 40*mss)
	if r.ssthreshBytes != 20*mss || r.cwndBytes != mss {
		t.Fatalf("after the first timeout ssthresh %d cwnd %d, want 20 and 1 segments", r.ssthreshBytes/mss, r.cwndBytes/mss)
	}
	r.OnRTO(0, 60*mss) // flight measured larger, same segment timing out again
	if r.ssthreshBytes != 20*mss || r.cwndBytes != mss {
		t.Fatalf("after the second timeout ssthresh %d cwnd %d, want 20 and 1 segments", r.ssthreshBytes/mss, r.cwndBytes/mss)
	}
	r.OnAck(0, mss, 2*mss, 0) // progress: a later timeout counts afresh
	r.OnRTO(0, 10*mss)
	if r.ssthreshBytes != 5*mss {
		t.Fatalf("after progress and a new timeout ssthresh %d segments, want 5", r.ssthreshBytes/mss)
	}
}

// A timeout during fast recovery keeps the ssthresh the recovery set
// (Linux tcp_enter_loss): the outstanding data then includes what the
// peer SACKed, and halving it would raise ssthresh.
func TestTimeoutInFastRecoveryKeepsSsthresh(t *testing.T) {
	r := newTestReno(NewRenoStyle)
	r.OnLoss(0, 20*mss)
	r.OnRTO(0, 300*mss)
	if r.ssthreshBytes != 10*mss || r.cwndBytes != mss {
		t.Fatalf("ssthresh %d cwnd %d segments, want 10 and 1", r.ssthreshBytes/mss, r.cwndBytes/mss)
	}
}
