package bench

import (
	"math"
	"slices"
)

// Median returns the middle of xs: the middle value of an odd count, the
// mean of the two middle values of an even one. NaN for no values. xs is
// not modified.
func Median(xs []float64) float64 {
	return Percentile(xs, 50)
}

// Percentile returns the p-th percentile of xs (0 <= p <= 100) by linear
// interpolation between the closest ranks (the "R-7" definition used by
// NumPy's default and by spreadsheets): rank (n-1)*p/100, zero-based. So
// Percentile(xs, 50) is the median, 0 the minimum and 100 the maximum.
// NaN for no values or p out of range. xs is not modified.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 || p < 0 || p > 100 || math.IsNaN(p) {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return sortedPercentile(s, p)
}

// sortedPercentile is Percentile on already sorted values.
func sortedPercentile(s []float64, p float64) float64 {
	rank := float64(len(s)-1) * p / 100
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	if lo == hi {
		return s[lo]
	}
	frac := rank - float64(lo)
	return s[lo] + (s[hi]-s[lo])*frac
}

// Percentiles returns several percentiles of xs with one sort.
func Percentiles(xs []float64, ps ...float64) []float64 {
	out := make([]float64, len(ps))
	if len(xs) == 0 {
		for i := range out {
			out[i] = math.NaN()
		}
		return out
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	for i, p := range ps {
		if p < 0 || p > 100 || math.IsNaN(p) {
			out[i] = math.NaN()
			continue
		}
		out[i] = sortedPercentile(s, p)
	}
	return out
}

// ratio returns a/b, or NaN when either is missing or b is zero.
func ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return math.NaN()
	}
	return a / b
}
