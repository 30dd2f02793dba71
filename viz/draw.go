package viz

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

func init() {
	// Sans-serif text throughout, as the rest of the docs' figures.
	plot.DefaultFont = font.Font{Typeface: "Liberation", Variant: "Sans"}
}

// The colours of the marks, as tcptrace draws its time-sequence graphs
// (data black, ACK green, window yellow, SACK purple, retransmission red)
// on a palette that stays distinct for colour-blind readers (Okabe-Ito)
// where tcptrace's pure colours would not.
var (
	ColorData    = color.RGBA{0x00, 0x00, 0x00, 0xff}
	ColorRetrans = color.RGBA{0xd5, 0x5e, 0x00, 0xff} // vermillion
	ColorProbe   = color.RGBA{0xcc, 0x79, 0xa7, 0xff} // reddish purple
	ColorAck     = color.RGBA{0x00, 0x9e, 0x73, 0xff} // bluish green
	ColorWindow  = color.RGBA{0xe6, 0x9f, 0x00, 0xff} // orange-yellow
	ColorSACK    = color.RGBA{0x56, 0x3d, 0x9e, 0xff} // purple
	ColorDSACK   = color.RGBA{0x56, 0xb4, 0xe9, 0xff} // sky blue
	ColorRST     = color.RGBA{0x99, 0x00, 0x00, 0xff}

	ColorCwnd     = color.RGBA{0x00, 0x72, 0xb2, 0xff} // blue
	ColorSSThresh = color.RGBA{0x88, 0x22, 0x55, 0xff} // wine
	ColorFlight   = color.RGBA{0x55, 0x55, 0x55, 0xff}
	ColorSRTT     = color.RGBA{0x00, 0x9e, 0x73, 0xff}
	ColorRecovery = color.NRGBA{0xe6, 0x9f, 0x00, 0x50} // translucent
	ColorLoss     = color.NRGBA{0xd5, 0x5e, 0x00, 0x50}
)

// Window is the span of time a graph shows, in seconds on its x axis;
// an unset end is the data's.
type Window struct {
	From, To       float64
	HasFrom, HasTo bool
}

// Contains reports whether t is inside the window.
func (w Window) Contains(t float64) bool {
	return (!w.HasFrom || t >= w.From) && (!w.HasTo || t <= w.To)
}

// apply sets the plot's x axis to the window's ends that are set.
func (w Window) apply(p *plot.Plot) {
	if w.HasFrom {
		p.X.Min = w.From
	}
	if w.HasTo {
		p.X.Max = w.To
	}
}

// Format is an output format, from the file name's extension.
func Format(file string) (string, error) {
	switch ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(file), ".")); ext {
	case "svg", "png":
		return ext, nil
	default:
		return "", fmt.Errorf("%s: the output's extension says its format: .svg or .png", file)
	}
}

// Size of one panel.
const (
	PanelWidth  = 8 * vg.Inch
	PanelHeight = 4 * vg.Inch
)

// Render draws the panels one under the other, each PanelWidth by
// height, and writes them in format ("svg" or "png"). Panels that share
// the x axis's unit line up: their data areas are aligned.
func Render(w io.Writer, format string, panels []*plot.Plot, height vg.Length) error {
	return render(w, format, panels, height, true)
}

// render is Render; alignTime gives the panels one x range.
func render(w io.Writer, format string, panels []*plot.Plot, height vg.Length, alignTime bool) error {
	if len(panels) == 0 {
		return fmt.Errorf("viz: nothing to draw")
	}
	cw, err := draw.NewFormattedCanvas(PanelWidth, height*vg.Length(len(panels)), format)
	if err != nil {
		return err
	}
	if alignTime {
		alignX(panels)
	}
	grid := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		grid[i] = []*plot.Plot{p}
	}
	dc := draw.New(cw)
	// A white background: an SVG's is otherwise transparent, which a dark
	// page or viewer turns black.
	dc.FillPolygon(color.White, []vg.Point{dc.Min, {X: dc.Max.X, Y: dc.Min.Y}, dc.Max, {X: dc.Min.X, Y: dc.Max.Y}})
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8), PadY: vg.Points(12)}
	canvases := plot.Align(grid, tiles, dc)
	for i, p := range panels {
		p.Draw(canvases[i][0])
	}
	_, err = cw.WriteTo(w)
	return err
}

// newPlot is a plot with the common look: grid, axis labels.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.Padding = vg.Points(2)
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	g := plotterGrid()
	p.Add(g)
	return p
}

// dataRange is the smallest box around a set of points, empty at first.
type dataRange struct {
	xmin, xmax, ymin, ymax float64
}

func emptyRange() dataRange {
	return dataRange{math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)}
}

func (r *dataRange) add(x, y float64) {
	r.xmin, r.xmax = min(r.xmin, x), max(r.xmax, x)
	r.ymin, r.ymax = min(r.ymin, y), max(r.ymax, y)
}

func (r dataRange) empty() bool { return r.xmin > r.xmax }

// DataRange is plot.DataRanger's; an empty range gives nothing to plot.
func (r dataRange) DataRange() (xmin, xmax, ymin, ymax float64) {
	if r.empty() {
		return math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	}
	return r.xmin, r.xmax, r.ymin, r.ymax
}

// lineThumb draws a legend thumbnail: a horizontal stroke.
func lineThumb(c *draw.Canvas, sty draw.LineStyle) {
	y := c.Center().Y
	c.StrokeLine2(sty, c.Min.X, y, c.Max.X, y)
}

// barThumb draws a legend thumbnail: a short vertical bar.
func barThumb(c *draw.Canvas, sty draw.LineStyle) {
	x := c.Center().X
	c.StrokeLine2(sty, x, c.Min.Y, x, c.Max.Y)
}

// stepLine is a line that holds each value until the next point (the
// value changes at the points, as a cumulative ACK or ssthresh does).
type stepLine struct {
	xs, ys []float64
	until  float64 // the last value is held until here, if beyond the last point
	style  draw.LineStyle
	dataRange
}

func newStepLine(style draw.LineStyle) *stepLine {
	return &stepLine{style: style, until: math.Inf(-1), dataRange: emptyRange()}
}

func (s *stepLine) add(x, y float64) {
	s.xs, s.ys = append(s.xs, x), append(s.ys, y)
	s.dataRange.add(x, y)
}

func (s *stepLine) Plot(c draw.Canvas, p *plot.Plot) {
	if len(s.xs) == 0 {
		return
	}
	trX, trY := p.Transforms(&c)
	pts := make([]vg.Point, 0, 2*len(s.xs)+1)
	for i := range s.xs {
		if i > 0 {
			pts = append(pts, vg.Point{X: trX(s.xs[i]), Y: trY(s.ys[i-1])})
		}
		pts = append(pts, vg.Point{X: trX(s.xs[i]), Y: trY(s.ys[i])})
	}
	if last := s.xs[len(s.xs)-1]; s.until > last {
		pts = append(pts, vg.Point{X: trX(s.until), Y: trY(s.ys[len(s.ys)-1])})
	}
	c.StrokeLines(s.style, c.ClipLinesXY(pts)...)
}

func (s *stepLine) Thumbnail(c *draw.Canvas) { lineThumb(c, s.style) }

// fallbackAxes gives a plot with nothing in it (or nothing in its
// window) finite axes, 0 to 1, so that it still draws, empty.
func fallbackAxes(p *plot.Plot) {
	for _, ax := range []*plot.Axis{&p.X, &p.Y} {
		if math.IsInf(ax.Min, 0) || math.IsInf(ax.Max, 0) || math.IsNaN(ax.Min) || math.IsNaN(ax.Max) {
			switch {
			case !math.IsInf(ax.Min, 0) && !math.IsNaN(ax.Min):
				ax.Max = ax.Min + 1
			case !math.IsInf(ax.Max, 0) && !math.IsNaN(ax.Max):
				ax.Min = ax.Max - 1
			default:
				ax.Min, ax.Max = 0, 1
			}
		}
		if ax.Min == ax.Max {
			ax.Max = ax.Min + 1
		}
	}
}

// byteTicks are the default ticks labelled in bytes with SI prefixes
// (kB, MB, GB), which a sequence axis of millions reads better in.
type byteTicks struct{}

func (byteTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = siBytes(ts[i].Value)
		}
	}
	return ts
}

// siBytes writes n bytes as 0, 500, 1.5 kB, 20 MB.
func siBytes(n float64) string {
	a := math.Abs(n)
	for _, u := range []struct {
		div  float64
		name string
	}{{1e9, " GB"}, {1e6, " MB"}, {1e3, " kB"}} {
		if a >= u.div {
			return strconv.FormatFloat(n/u.div, 'f', -1, 64) + u.name
		}
	}
	return strconv.FormatFloat(n, 'f', -1, 64)
}

// alignX gives every panel the same x range, the union of theirs, so that
// one instant is at the same place in each.
func alignX(panels []*plot.Plot) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range panels {
		lo, hi = min(lo, p.X.Min), max(hi, p.X.Max)
	}
	for _, p := range panels {
		p.X.Min, p.X.Max = lo, hi
	}
}
