package viz

import (
	"image/color"
	"io"
	"math"
	"strconv"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// BarChart is one panel of grouped bars: for each group (a scenario or a
// percentile) one bar per series (a stack).
type BarChart struct {
	Title  string
	Unit   string      // of the values, the y axis's label
	Groups []string    // along the x axis
	Series []string    // bars within each group, and the legend
	Values [][]float64 // Values[group][series]; NaN for a missing bar
	// Log draws the y axis in powers of ten, for values spanning decades
	// (latency percentiles).
	Log bool
}

// SeriesColors are the bars' fills, one per series in order, chosen to
// stay distinct for colour-blind readers (Okabe-Ito).
var SeriesColors = []color.Color{
	color.RGBA{0x00, 0x72, 0xb2, 0xff}, color.RGBA{0xe6, 0x9f, 0x00, 0xff}, color.RGBA{0x00, 0x9e, 0x73, 0xff},
	color.RGBA{0xcc, 0x79, 0xa7, 0xff}, color.RGBA{0x56, 0xb4, 0xe9, 0xff}, color.RGBA{0xd5, 0x5e, 0x00, 0xff},
}

// BarHeight is the height of one bar-chart panel.
const BarHeight = 3.2 * vg.Inch

// WriteBars draws the charts one under the other, the first titled with
// title too, each with its legend, and writes them in format ("svg" or
// "png"). Each value is printed above its bar, so a bar dwarfed by
// another still reads, and a missing one is marked n/a.
func WriteBars(w io.Writer, format, title string, charts []BarChart) error {
	var panels []*plot.Plot
	for i, c := range charts {
		p := BarsPlot(c)
		if i == 0 && title != "" {
			p.Title.Text = title + "\n" + p.Title.Text
		}
		panels = append(panels, p)
	}
	if len(panels) == 0 {
		p := newPlot(title, "", "")
		fallbackAxes(p)
		panels = append(panels, p)
	}
	return render(w, format, panels, BarHeight, false)
}

// BarsPlot draws one chart.
func BarsPlot(c BarChart) *plot.Plot {
	p := plot.New()
	p.Title.Text = c.Title
	p.Title.TextStyle.Font.Weight = xfont.WeightBold
	p.Y.Label.Text = c.Unit
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Legend.ThumbnailWidth = vg.Points(10)
	p.Legend.Padding = vg.Points(3)
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(4), -vg.Points(2)
	g := plotterGrid()
	g.Vertical.Color = nil
	p.Add(g)
	p.NominalX(c.Groups...)
	b := &groupedBars{c: c}
	p.Add(b)
	lo, hi := b.axisRange()
	p.Y.Min, p.Y.Max = lo, hi
	if c.Log {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	} else {
		p.Y.Tick.Marker = numberTicks{}
	}
	p.X.Min, p.X.Max = -0.5, float64(len(c.Groups))-0.5
	for i, s := range c.Series {
		p.Legend.Add(s, swatch{SeriesColors[i%len(SeriesColors)]})
	}
	return p
}

// groupedBars draws the bars of a BarChart: group g spans x from g-0.4 to
// g+0.4, shared by its series.
type groupedBars struct{ c BarChart }

func (b *groupedBars) value(g, s int) float64 {
	if g < len(b.c.Values) && s < len(b.c.Values[g]) {
		return b.c.Values[g][s]
	}
	return math.NaN()
}

func (b *groupedBars) missing(v float64) bool { return math.IsNaN(v) || b.c.Log && v <= 0 }

// axisRange is 0 (or the decade below the least value, on a log axis) to
// a round number a quarter above the largest, leaving room for the
// printed values and the legend.
func (b *groupedBars) axisRange() (lo, hi float64) {
	minV, maxV := math.Inf(1), 0.0
	for g := range b.c.Groups {
		for s := range b.c.Series {
			if v := b.value(g, s); !b.missing(v) && v > 0 {
				minV, maxV = min(minV, v), max(maxV, v)
			}
		}
	}
	switch {
	case maxV == 0 && b.c.Log:
		return 1, 10
	case maxV == 0:
		return 0, 1
	case b.c.Log:
		return math.Pow(10, math.Floor(math.Log10(minV))), math.Pow(10, math.Ceil(math.Log10(maxV*1.5)))
	}
	return 0, NiceCeil(maxV * 1.3)
}

func (b *groupedBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	n := len(b.c.Series)
	if n == 0 {
		return
	}
	w := 0.8 / float64(n)
	base := trY(p.Y.Min)
	sty := p.Legend.TextStyle
	sty.Font.Size = vg.Points(8)
	sty.XAlign, sty.YAlign = draw.XCenter, draw.YBottom
	grey := sty
	grey.Color = color.Gray{0x88}
	for g := range b.c.Groups {
		for s := range b.c.Series {
			x0 := float64(g) - 0.4 + float64(s)*w
			mid := trX(x0 + w/2)
			v := b.value(g, s)
			if b.missing(v) {
				c.FillText(grey, vg.Point{X: mid, Y: base + vg.Points(2)}, "n/a")
				continue
			}
			top := trY(v)
			if top < base {
				top = base
			}
			left, right := trX(x0+w*0.04), trX(x0+w*0.96)
			c.FillPolygon(SeriesColors[s%len(SeriesColors)], []vg.Point{{X: left, Y: base}, {X: right, Y: base}, {X: right, Y: top}, {X: left, Y: top}})
			c.FillText(sty, vg.Point{X: mid, Y: top + vg.Points(2)}, FormatNum(v))
		}
	}
}

// swatch is a legend entry: a filled square.
type swatch struct{ clr color.Color }

func (s swatch) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(s.clr, []vg.Point{c.Min, {X: c.Max.X, Y: c.Min.Y}, c.Max, {X: c.Min.X, Y: c.Max.Y}})
}

// NiceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func NiceCeil(v float64) float64 {
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

// FormatNum writes a value with three significant digits, and thousands
// separated: 0.0123, 2.46, 62.1, 2,187.
func FormatNum(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1000:
		return groupThousands(strconv.FormatFloat(math.Round(v), 'f', 0, 64))
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func groupThousands(s string) string {
	neg := len(s) > 0 && s[0] == '-'
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

// numberTicks divide a linear axis from 0 to a NiceCeil value into five
// labelled steps, written as short as they go with thousands separated:
// 0, 0.5, 10, 2,500.
type numberTicks struct{}

func (numberTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for i := range 6 {
		v := lo + (hi-lo)*float64(i)/5
		l := strconv.FormatFloat(v, 'f', -1, 64)
		if math.Abs(v) >= 1000 {
			l = groupThousands(l)
		}
		ts = append(ts, plot.Tick{Value: v, Label: l})
	}
	return ts
}
