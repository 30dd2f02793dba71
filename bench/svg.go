package bench

import (
	"io"

	"tunstack/viz"
)

// BarChart is one panel of grouped bars: for each group (a scenario or a
// percentile) one bar per series (a stack). The report's charts are drawn
// by viz, the one drawing layer of tunstack's figures (the lab's
// time-sequence and congestion-window plots are its others), so they
// share its fonts, palette and axes.
type BarChart = viz.BarChart

// WriteSVG writes the charts one under the other as one SVG document, the
// first titled with title too, each with its legend. Values are printed
// above their bars, so a bar dwarfed by another still reads; a missing
// value is marked n/a.
func WriteSVG(w io.Writer, title string, charts []BarChart) error {
	return viz.WriteBars(w, "svg", title, charts)
}
