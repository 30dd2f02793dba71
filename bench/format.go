package bench

import (
	"math"
	"strconv"
)

// formatFigure writes a figure with three significant digits and its unit.
func formatFigure(v float64, unit string) string {
	return formatNum(v) + " " + unit
}

// formatNum writes v with three significant digits, thousands separated
// for large values; "-" for NaN.
func formatNum(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "-"
	case v == 0:
		return "0"
	case math.Abs(v) >= 1000:
		return groupThousands(strconv.FormatFloat(math.Round(v), 'f', 0, 64))
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func groupThousands(s string) string {
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// formatCount writes a count (or the median of counts, which may end in .5).
func formatCount(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	if v == math.Trunc(v) {
		return groupThousands(strconv.FormatFloat(v, 'f', 0, 64))
	}
	return groupThousands(strconv.FormatFloat(math.Trunc(v), 'f', 0, 64)) + strconv.FormatFloat(math.Abs(v-math.Trunc(v)), 'f', 1, 64)[1:]
}
