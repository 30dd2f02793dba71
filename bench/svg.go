package bench

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
)

// BarChart is one panel of grouped bars: for each group (a scenario or a
// percentile) one bar per series (a stack).
type BarChart struct {
	Title  string
	Unit   string      // of the values, shown on the axis
	Groups []string    // along the x axis
	Series []string    // bars within each group, and the legend
	Values [][]float64 // Values[group][series]; NaN for a missing bar
	// Log draws the y axis in powers of ten, for values spanning decades
	// (latency percentiles).
	Log bool
}

// Geometry of a panel, in SVG user units (pixels).
const (
	svgWidth     = 760
	panelHeight  = 260
	plotLeft     = 70
	plotRight    = 20
	plotTop      = 40
	plotBottom   = 50
	titleHeight  = 36
	legendHeight = 30
)

// seriesColors are the bars' fills, one per series in order, chosen to stay
// distinct for colour-blind readers (Okabe-Ito).
var seriesColors = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00"}

// WriteSVG writes the charts one under the other as one SVG document, with
// a title and a shared legend taken from the first chart's series. Values
// are printed above their bars, so a bar dwarfed by another still reads.
func WriteSVG(w io.Writer, title string, charts []BarChart) error {
	bw := bufio.NewWriter(w)
	height := titleHeight + legendHeight + len(charts)*panelHeight
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgWidth, height, svgWidth, height)
	fmt.Fprintf(bw, `<rect width="%d" height="%d" fill="white"/>`+"\n", svgWidth, height)
	fmt.Fprintf(bw, `<text x="%d" y="24" font-size="16" font-weight="bold" text-anchor="middle">%s</text>`+"\n", svgWidth/2, esc(title))
	if len(charts) > 0 {
		x := plotLeft
		for i, s := range charts[0].Series {
			fmt.Fprintf(bw, `<rect class="legend" x="%d" y="%d" width="12" height="12" fill="%s"/>`, x, titleHeight+4, seriesColors[i%len(seriesColors)])
			fmt.Fprintf(bw, `<text x="%d" y="%d">%s</text>`+"\n", x+16, titleHeight+14, esc(s))
			x += 30 + 8*len(s)
		}
	}
	for i, c := range charts {
		writePanel(bw, c, titleHeight+legendHeight+i*panelHeight)
	}
	fmt.Fprintln(bw, `</svg>`)
	return bw.Flush()
}

// writePanel draws one chart with its top edge at y0.
func writePanel(w io.Writer, c BarChart, y0 int) {
	plotH := float64(panelHeight - plotTop - plotBottom)
	plotW := float64(svgWidth - plotLeft - plotRight)
	baseY := float64(y0 + panelHeight - plotBottom)
	fmt.Fprintf(w, `<g class="panel"><text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", plotLeft, y0+22, esc(c.Title))

	lo, hi := c.axisRange()
	scale := func(v float64) float64 { // value to height above the base
		if c.Log {
			return plotH * (math.Log10(v) - math.Log10(lo)) / (math.Log10(hi) - math.Log10(lo))
		}
		return plotH * v / hi
	}
	// Axis, grid lines and tick labels.
	for _, t := range c.ticks(lo, hi) {
		y := baseY - scale(t)
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`, plotLeft, y, svgWidth-plotRight, y)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end" fill="#444">%s</text>`+"\n", plotLeft-6, y+4, esc(formatTick(t)))
	}
	fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>`+"\n", plotLeft, baseY, svgWidth-plotRight, baseY)
	fmt.Fprintf(w, `<text x="16" y="%.1f" transform="rotate(-90 16 %.1f)" text-anchor="middle" fill="#444">%s</text>`+"\n", baseY-plotH/2, baseY-plotH/2, esc(c.Unit))

	if len(c.Groups) == 0 || len(c.Series) == 0 {
		fmt.Fprintln(w, `</g>`)
		return
	}
	groupW := plotW / float64(len(c.Groups))
	barW := groupW * 0.8 / float64(len(c.Series))
	for g, name := range c.Groups {
		gx := float64(plotLeft) + float64(g)*groupW
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", gx+groupW/2, baseY+18, esc(name))
		for s := range c.Series {
			v := math.NaN()
			if g < len(c.Values) && s < len(c.Values[g]) {
				v = c.Values[g][s]
			}
			x := gx + groupW*0.1 + float64(s)*barW
			if math.IsNaN(v) || v <= 0 && c.Log {
				fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#888" font-size="10">n/a</text>`+"\n", x+barW/2, baseY-4)
				continue
			}
			h := max(scale(v), 0)
			fmt.Fprintf(w, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s %s</title></rect>`,
				x, baseY-h, barW*0.92, h, seriesColors[s%len(seriesColors)], esc(c.Series[s]), esc(name), esc(formatNum(v)), esc(c.Unit))
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`+"\n", x+barW*0.46, baseY-h-3, esc(formatNum(v)))
		}
	}
	fmt.Fprintln(w, `</g>`)
}

// axisRange is the y axis span: 0 to a round number above the largest value
// (linear), or whole decades around the values (log).
func (c BarChart) axisRange() (lo, hi float64) {
	maxV, minV := 0.0, math.Inf(1)
	for _, row := range c.Values {
		for _, v := range row {
			if math.IsNaN(v) || v <= 0 {
				continue
			}
			maxV = max(maxV, v)
			minV = min(minV, v)
		}
	}
	if maxV == 0 {
		return 1, 1e1 // nothing to draw; any sane range
	}
	if c.Log {
		return math.Pow(10, math.Floor(math.Log10(minV))), math.Pow(10, math.Ceil(math.Log10(maxV*1.0001)))
	}
	return 0, niceCeil(maxV * 1.1)
}

// ticks are the grid values: five steps (linear) or each decade (log).
func (c BarChart) ticks(lo, hi float64) []float64 {
	var ts []float64
	if c.Log {
		for v := lo; v <= hi*1.0001; v *= 10 {
			ts = append(ts, v)
		}
		return ts
	}
	for i := 0; i <= 5; i++ {
		ts = append(ts, hi*float64(i)/5)
	}
	return ts
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// formatTick writes an axis value as short as it goes: 0.5, 10, 2,500.
func formatTick(v float64) string {
	if v >= 1000 {
		return formatNum(v)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func esc(s string) string { return html.EscapeString(s) }
