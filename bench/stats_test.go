package bench

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestMedianOfOddAndEvenCounts(t *testing.T) {
	cases := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5, 5, 1, 9, 7}, 5},
		{[]float64{-1, 1}, 0},
	}
	for _, c := range cases {
		if got := Median(c.in); !near(got, c.want) {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median of nothing should be NaN")
	}
}

func TestMedianLeavesItsInputAlone(t *testing.T) {
	in := []float64{3, 1, 2}
	Median(in)
	if in[0] != 3 || in[1] != 1 || in[2] != 2 {
		t.Fatalf("input reordered: %v", in)
	}
}

func TestPercentileInterpolatesBetweenClosestRanks(t *testing.T) {
	// 1..100: rank (n-1)p/100, so p99 = 99.01 and p50 = 50.5.
	xs := make([]float64, 100)
	for i := range xs {
		xs[100-1-i] = float64(i + 1) // reversed: the function must sort
	}
	for _, c := range []struct{ p, want float64 }{
		{0, 1}, {100, 100}, {50, 50.5}, {99, 99.01}, {25, 25.75}, {90, 90.1},
	} {
		if got := Percentile(xs, c.p); !near(got, c.want) {
			t.Errorf("Percentile(1..100, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	ps := Percentiles(xs, 50, 99, 101)
	if !near(ps[0], 50.5) || !near(ps[1], 99.01) || !math.IsNaN(ps[2]) {
		t.Errorf("Percentiles(1..100, 50, 99, 101) = %v", ps)
	}
}

func TestPercentileEdgeCases(t *testing.T) {
	if got := Percentile([]float64{7}, 99); got != 7 {
		t.Errorf("one value: p99 = %v, want 7", got)
	}
	if !math.IsNaN(Percentile([]float64{1, 2}, -1)) || !math.IsNaN(Percentile([]float64{1, 2}, 100.5)) {
		t.Error("p out of [0, 100] should be NaN")
	}
	if !math.IsNaN(Percentile(nil, 50)) {
		t.Error("no values should be NaN")
	}
	if got := Percentile([]float64{2, 2, 2, 10}, 50); got != 2 {
		t.Errorf("ties: p50 = %v, want 2", got)
	}
}

func TestRatio(t *testing.T) {
	if got := ratio(3, 2); got != 1.5 {
		t.Errorf("ratio(3, 2) = %v", got)
	}
	if !math.IsNaN(ratio(1, 0)) || !math.IsNaN(ratio(math.NaN(), 1)) {
		t.Error("ratio with a zero or missing denominator should be NaN")
	}
}

func TestFormatNumAndCount(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{{0, "0"}, {0.0563, "0.0563"}, {2.024, "2.02"}, {35.94, "35.9"}, {123.4, "123"}, {40998.2, "40,998"}, {-1234, "-1,234"}, {math.NaN(), "-"}} {
		if got := formatNum(c.v); got != c.want {
			t.Errorf("formatNum(%v) = %q, want %q", c.v, got, c.want)
		}
	}
	for _, c := range []struct {
		v    float64
		want string
	}{{0, "0"}, {4, "4"}, {1565, "1,565"}, {2.5, "2.5"}, {1234.5, "1,234.5"}} {
		if got := formatCount(c.v); got != c.want {
			t.Errorf("formatCount(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}
