package viz

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

func plotterGrid() *plotter.Grid {
	g := plotter.NewGrid()
	g.Vertical.Color = color.Gray{0xe0}
	g.Horizontal.Color = color.Gray{0xe0}
	return g
}

// Series is one flow's time-sequence graph as data, inside a window: what
// TimeSeqPlot draws, and what tests check.
type Series struct {
	Data, Retransmissions []Segment // each a bar from Seq to End at T
	Probes                []Segment // zero-window probes (also in Data or Retransmissions when they carry data)
	Resets                []Segment // the sender's
	PeerResets            []Ack     // the receiver's
	Acks                  []Ack     // the cumulative ACK, a step; Window its right edge
	SACKs, DSACKs         []Block
}

// TimeSeq sorts a flow's records into the marks of its graph, keeping
// those inside w. The ACK line enters the window at the value it had when
// the window opens.
func TimeSeq(f *Flow, w Window) Series {
	var s Series
	for _, seg := range f.Segments {
		if !w.Contains(seg.T) {
			continue
		}
		switch {
		case seg.RST:
			s.Resets = append(s.Resets, seg)
			continue
		case seg.Retransmission:
			s.Retransmissions = append(s.Retransmissions, seg)
		case seg.End() > seg.Seq:
			s.Data = append(s.Data, seg)
		}
		if seg.Probe {
			s.Probes = append(s.Probes, seg)
		}
	}
	for _, r := range f.Resets {
		if w.Contains(r.T) {
			s.PeerResets = append(s.PeerResets, r)
		}
	}
	var before *Ack
	for i, a := range f.Acks {
		switch {
		case w.HasFrom && a.T < w.From:
			before = &f.Acks[i]
		case w.Contains(a.T):
			if before != nil {
				b := *before
				b.T = w.From
				s.Acks = append(s.Acks, b)
				before = nil
			}
			s.Acks = append(s.Acks, a)
		}
	}
	if before != nil && len(s.Acks) == 0 {
		b := *before
		b.T = w.From
		s.Acks = append(s.Acks, b)
	}
	for _, b := range f.SACKs {
		if !w.Contains(b.T) {
			continue
		}
		if b.DSACK {
			s.DSACKs = append(s.DSACKs, b)
		} else {
			s.SACKs = append(s.SACKs, b)
		}
	}
	return s
}

// Title names a flow and what it carried.
func (f *Flow) Title() string {
	t := fmt.Sprintf("%s → %s: %s, %d retransmitted", f.Src, f.Dst, byteCount(f.Bytes), f.Retransmissions)
	if f.Probes > 0 {
		t += fmt.Sprintf(", %d zero-window probes", f.Probes)
	}
	return t
}

func byteCount(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 10<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// TimeSeqPlot draws a flow's time-sequence graph, as tcptrace and
// Wireshark's "Stevens/tcptrace" graphs draw it: each segment a vertical
// bar from its first sequence number to its last, with ticks at the ends;
// the receiver's cumulative ACK as a step line under the bars and the
// right edge of its window (ACK + window) above them; SACK blocks as
// short bars at the instant of the ACK that carried them; retransmissions,
// zero-window probes and D-SACKs in their own colours. Time is seconds on
// the x axis, sequence numbers relative to the sender's ISN on the y axis.
func TimeSeqPlot(f *Flow, w Window, title string) *plot.Plot {
	s := TimeSeq(f, w)
	if title == "" {
		title = f.Title()
	}
	p := newPlot(title, "time (s)", "relative sequence number")
	p.Y.Tick.Marker = byteTicks{}

	ack := newStepLine(draw.LineStyle{Color: ColorAck, Width: vg.Points(1)})
	win := newStepLine(draw.LineStyle{Color: ColorWindow, Width: vg.Points(1)})
	vis := emptyRange()
	for _, group := range [][]Segment{s.Data, s.Retransmissions, s.Probes, s.Resets} {
		for _, seg := range group {
			vis.add(seg.T, float64(seg.Seq))
			vis.add(seg.T, float64(seg.End()))
		}
	}
	for _, a := range s.Acks {
		ack.add(a.T, float64(a.Ack))
		vis.add(a.T, float64(a.Ack))
	}
	// The window line may run far above the data (a megabyte window over
	// a few kilobytes); the y axis then stops a quarter of the data's span
	// above it and the line leaves the top, as in tcptrace's zoomed view.
	cap := vis.ymax + max(0.25*(vis.ymax-vis.ymin), 1)
	for _, a := range s.Acks {
		win.xs, win.ys = append(win.xs, a.T), append(win.ys, float64(a.Ack+a.Window))
		win.dataRange.add(a.T, min(float64(a.Ack+a.Window), cap))
	}
	if w.HasTo {
		ack.until, win.until = w.To, w.To
	} else if n := len(f.Segments); n > 0 {
		ack.until, win.until = f.Segments[n-1].T, f.Segments[n-1].T
	}

	data := &segBars{segs: s.Data, style: draw.LineStyle{Color: ColorData, Width: vg.Points(0.8)}}
	rtx := &segBars{segs: s.Retransmissions, style: draw.LineStyle{Color: ColorRetrans, Width: vg.Points(1.2)}}
	sack := &blockBars{blocks: s.SACKs, style: draw.LineStyle{Color: ColorSACK, Width: vg.Points(1.5)}}
	dsack := &blockBars{blocks: s.DSACKs, style: draw.LineStyle{Color: ColorDSACK, Width: vg.Points(2)}}
	probes := &marks{segs: s.Probes, glyph: draw.GlyphStyle{Color: ColorProbe, Radius: vg.Points(3), Shape: draw.TriangleGlyph{}}}
	resets := &marks{segs: s.Resets, glyph: draw.GlyphStyle{Color: ColorRST, Radius: vg.Points(3), Shape: draw.CrossGlyph{}}}
	var peerRST []Segment
	for _, r := range s.PeerResets {
		peerRST = append(peerRST, Segment{T: r.T, Seq: r.Ack, RST: true})
	}
	peerResets := &marks{segs: peerRST, glyph: draw.GlyphStyle{Color: ColorRST, Radius: vg.Points(3.5), Shape: draw.RingGlyph{}}}

	p.Add(win, ack, sack, dsack, data, rtx, probes, resets, peerResets)
	w.apply(p)
	fallbackAxes(p)
	// Only what the graph shows goes in the legend.
	for _, e := range []struct {
		name string
		n    int
		th   plot.Thumbnailer
	}{
		{"data", len(s.Data), data},
		{"retransmission", len(s.Retransmissions), rtx},
		{"zero-window probe", len(s.Probes), probes},
		{"RST sent", len(s.Resets), resets},
		{"RST received", len(peerRST), peerResets},
		{"ACK", len(s.Acks), ack},
		{"receive window", len(s.Acks), win},
		{"SACK", len(s.SACKs), sack},
		{"D-SACK", len(s.DSACKs), dsack},
	} {
		if e.n > 0 {
			p.Legend.Add(e.name, e.th)
		}
	}
	return p
}

// segBars draws segments as vertical bars with end ticks, each its own
// path (so that a drawing's marks can be counted in its SVG).
type segBars struct {
	segs  []Segment
	style draw.LineStyle
}

func (b *segBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	tick := vg.Points(2)
	c.SetLineStyle(b.style)
	for _, s := range b.segs {
		x, y0, y1 := trX(s.T), trY(float64(s.Seq)), trY(float64(s.End()))
		if !c.ContainsX(x) {
			continue
		}
		var path vg.Path
		path.Move(vg.Point{X: x - tick, Y: y0})
		path.Line(vg.Point{X: x + tick, Y: y0})
		path.Move(vg.Point{X: x, Y: y0})
		path.Line(vg.Point{X: x, Y: y1})
		path.Move(vg.Point{X: x - tick, Y: y1})
		path.Line(vg.Point{X: x + tick, Y: y1})
		c.Stroke(path)
	}
}

func (b *segBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	r := emptyRange()
	for _, s := range b.segs {
		r.add(s.T, float64(s.Seq))
		r.add(s.T, float64(s.End()))
	}
	return r.DataRange()
}

func (b *segBars) Thumbnail(c *draw.Canvas) { barThumb(c, b.style) }

// blockBars draws SACK blocks as short vertical bars.
type blockBars struct {
	blocks []Block
	style  draw.LineStyle
}

func (b *blockBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	var lines [][]vg.Point
	for _, s := range b.blocks {
		x := trX(s.T)
		lines = append(lines, []vg.Point{{X: x, Y: trY(float64(s.Left))}, {X: x, Y: trY(float64(s.Right))}})
	}
	c.StrokeLines(b.style, c.ClipLinesXY(lines...)...)
}

func (b *blockBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	r := emptyRange()
	for _, s := range b.blocks {
		r.add(s.T, float64(s.Left))
		r.add(s.T, float64(s.Right))
	}
	return r.DataRange()
}

func (b *blockBars) Thumbnail(c *draw.Canvas) { barThumb(c, b.style) }

// marks draws a glyph at each segment's start, for what has no length to
// draw (a probe of no data, a reset).
type marks struct {
	segs  []Segment
	glyph draw.GlyphStyle
}

func (m *marks) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, s := range m.segs {
		pt := vg.Point{X: trX(s.T), Y: trY(float64(s.Seq))}
		if c.Contains(pt) {
			c.DrawGlyph(m.glyph, pt)
		}
	}
}

func (m *marks) DataRange() (xmin, xmax, ymin, ymax float64) {
	r := emptyRange()
	for _, s := range m.segs {
		r.add(s.T, float64(s.Seq))
	}
	return r.DataRange()
}

func (m *marks) Thumbnail(c *draw.Canvas) { c.DrawGlyph(m.glyph, c.Center()) }
