package viz

import (
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// SoakSample is one sample of a long run of a server: at T seconds from
// the start, its live heap after the last garbage collection, goroutines,
// TCP connections (every state, TIME-WAIT included) and open file
// descriptors, and how many collections it had run.
type SoakSample struct {
	T          float64 `json:"t_s"`
	HeapBytes  float64 `json:"heap_bytes"`
	GCs        float64 `json:"gcs"`
	Goroutines float64 `json:"goroutines"`
	Conns      float64 `json:"conns"`
	FDs        float64 `json:"fds"`
}

// SoakPanels draws a soak's samples over time, one panel each for the
// live heap (MiB), goroutines, connections and file descriptors, with a
// dashed line where the load ended (at loadEnd seconds; none if it is
// not positive).
func SoakPanels(samples []SoakSample, loadEnd float64) []*plot.Plot {
	type series struct {
		title, unit string
		clr         color.Color
		value       func(SoakSample) float64
	}
	all := []series{
		{"live heap after the last GC", "MiB", ColorCwnd, func(s SoakSample) float64 { return s.HeapBytes / (1 << 20) }},
		{"goroutines", "goroutines", ColorData, func(s SoakSample) float64 { return s.Goroutines }},
		{"TCP connections (every state)", "connections", ColorAck, func(s SoakSample) float64 { return s.Conns }},
		{"open file descriptors", "descriptors", ColorSACK, func(s SoakSample) float64 { return s.FDs }},
	}
	var panels []*plot.Plot
	for _, sr := range all {
		p := newPlot(sr.title, "time (s)", sr.unit)
		xys := make(plotter.XYs, len(samples))
		top := 0.0
		for i, s := range samples {
			xys[i] = plotter.XY{X: s.T, Y: sr.value(s)}
			top = max(top, xys[i].Y)
		}
		if l, err := plotter.NewLine(xys); err == nil {
			l.LineStyle = draw.LineStyle{Color: sr.clr, Width: vg.Points(1.5)}
			p.Add(l)
		}
		if pts, err := plotter.NewScatter(xys); err == nil {
			pts.GlyphStyle = draw.GlyphStyle{Color: sr.clr, Radius: vg.Points(1.5), Shape: draw.CircleGlyph{}}
			p.Add(pts)
		}
		p.Y.Min = 0
		p.Y.Max = max(NiceCeil(top*1.1), 1)
		if loadEnd > 0 {
			end, err := plotter.NewLine(plotter.XYs{{X: loadEnd, Y: 0}, {X: loadEnd, Y: p.Y.Max}})
			if err == nil {
				end.LineStyle = draw.LineStyle{Color: ColorRST, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}
				p.Add(end)
				p.Legend.Add("load ends", end)
			}
		}
		panels = append(panels, p)
	}
	return panels
}
