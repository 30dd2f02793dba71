package lab

import (
	"testing"
	"time"
)

// RACK's rule as the lab reads it off a capture: the hole is lost once a
// later segment is SACKed and the hole was sent more than the reordering
// window (a quarter of the RTT at most) before that segment.
func TestRACKDecidedNeedsASACKAndAGapOfAQuarterRTT(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name                 string
		sacked               int
		dropped, above, rexm time.Duration
		want                 bool
	}{
		{"a burst later, RTT 22 ms", 1, 81 * ms, 104 * ms, 126 * ms, true},
		{"same burst, 1 ms apart", 2, 81 * ms, 82 * ms, 104 * ms, false},
		{"gap exactly a quarter", 1, 80 * ms, 85 * ms, 105 * ms, true},
		{"nothing SACKed", 0, 81 * ms, 104 * ms, 126 * ms, false},
		{"never retransmitted", 1, 81 * ms, 104 * ms, 0, false},
	}
	for _, c := range cases {
		f := &FastRetransmit{SACKedAbove: c.sacked, Dropped: WireAction{At: c.dropped}, AboveSentAt: c.above, RetransmitAt: c.rexm}
		if got := f.RACKDecided(); got != c.want {
			t.Errorf("%s: RACKDecided = %v, want %v", c.name, got, c.want)
		}
	}
}
