package viz

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"sort"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// TracePoint is one record of one connection, as a line of `tunstack
// serve --trace` has it: a congestion event, with the sender's state right
// after it, or a sample of the state (Event TraceSample).
type TracePoint struct {
	Time          time.Time // wall clock
	Seconds       float64   // since the trace's start (serve's t_s)
	Local, Remote string    // address:port, the stack's side first
	Event         string    // sample, or an event: fast-retransmit, partial-ack, recovery-end, rto, undo, dsack, ...
	Cwnd          int       // bytes
	SSThresh      int       // bytes; InfiniteSSThresh and above mean "not set yet"
	Flight        int       // bytes in flight (RFC 6675 pipe)
	State         string    // open, recovery or loss
	SRTT          time.Duration
	SRTTKnown     bool
}

// InfiniteSSThresh: a slow-start threshold at or above it is the initial
// "arbitrarily high" one (RFC 5681 §3.1) and is not drawn.
const InfiniteSSThresh = 1 << 30

// Conn names the point's connection as --conn takes it.
func (p TracePoint) Conn() string { return p.Local + "-" + p.Remote }

// traceLine is the JSON of one line; pointers tell a missing field.
type traceLine struct {
	Time     string   `json:"time"`
	Seconds  *float64 `json:"t_s"`
	Local    string   `json:"local"`
	Remote   string   `json:"remote"`
	Event    string   `json:"event"`
	Cwnd     *int     `json:"cwnd_bytes"`
	SSThresh *int     `json:"ssthresh_bytes"`
	Flight   *int     `json:"flight_bytes"`
	State    string   `json:"state"`
	SRTT     *int64   `json:"srtt_us"`
}

// Trace is a trace file read: its points in file order, and the lines
// that were not trace records (by number, with why), which were skipped.
type Trace struct {
	Points []TracePoint
	Bad    []string
}

// ReadTrace reads a JSON-lines congestion trace. Lines that are not trace
// records are skipped and listed in Bad; the error is for a read error.
func ReadTrace(r io.Reader) (*Trace, error) {
	t := &Trace{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var l traceLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Bad = append(t.Bad, fmt.Sprintf("line %d is not JSON (%v)", n, err))
			continue
		}
		if l.Seconds == nil || l.Cwnd == nil || l.Local == "" || l.Remote == "" {
			t.Bad = append(t.Bad, fmt.Sprintf("line %d lacks t_s, cwnd_bytes, local or remote", n))
			continue
		}
		p := TracePoint{Seconds: *l.Seconds, Local: l.Local, Remote: l.Remote, Event: l.Event, Cwnd: *l.Cwnd, State: l.State, SSThresh: -1, Flight: -1}
		if l.Time != "" {
			tm, err := time.Parse(time.RFC3339Nano, l.Time)
			if err != nil {
				t.Bad = append(t.Bad, fmt.Sprintf("line %d: time %q is not RFC 3339", n, l.Time))
				continue
			}
			p.Time = tm
		}
		if l.SSThresh != nil {
			p.SSThresh = *l.SSThresh
		}
		if l.Flight != nil {
			p.Flight = *l.Flight
		}
		if l.SRTT != nil {
			p.SRTT, p.SRTTKnown = time.Duration(*l.SRTT)*time.Microsecond, true
		}
		t.Points = append(t.Points, p)
	}
	return t, sc.Err()
}

// Conns lists the trace's connections, the one with the most events first.
func (t *Trace) Conns() []string {
	count := map[string]int{}
	var names []string
	for _, p := range t.Points {
		if count[p.Conn()] == 0 {
			names = append(names, p.Conn())
		}
		count[p.Conn()]++
	}
	sort.SliceStable(names, func(i, j int) bool { return count[names[i]] > count[names[j]] })
	return names
}

// ConnPoints returns the points of the connection named LOCAL-REMOTE (in
// either order), in time order.
func (t *Trace) ConnPoints(name string) []TracePoint {
	var out []TracePoint
	for _, p := range t.Points {
		if p.Conn() == name || p.Remote+"-"+p.Local == name {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seconds < out[j].Seconds })
	return out
}

// Episode is a stretch of time the sender spent out of the open state.
type Episode struct {
	From, To float64
	State    string // recovery or loss
}

// Episodes finds the recovery and loss episodes of one connection's
// points (in time order, x given by at). The engine names the event that
// starts one and the one that ends it: fast recovery starts at a
// "fast-retransmit" (RFC 6675 §5, the third duplicate ACK or its SACK
// equivalent) and the loss state at an "rto" (RFC 6298 §5.4, which also
// ends a recovery in progress); "recovery-end" and "undo" return to the
// open state. A point whose state is recovery or loss outside an episode
// starts one too (a trace that begins mid-episode). One still open at the
// last point ends there.
func Episodes(pts []TracePoint, at func(TracePoint) float64) []Episode {
	var out []Episode
	var cur *Episode
	end := func(x float64) {
		if cur != nil {
			cur.To = x
			out = append(out, *cur)
			cur = nil
		}
	}
	for _, p := range pts {
		x := at(p)
		switch {
		case p.Event == "rto":
			if cur == nil || cur.State != "loss" {
				end(x)
				cur = &Episode{From: x, State: "loss"}
			}
		case p.Event == "recovery-end" || p.Event == "undo":
			end(x)
		case cur == nil && p.Event == "fast-retransmit":
			cur = &Episode{From: x, State: "recovery"}
		case cur == nil && (p.State == "recovery" || p.State == "loss"):
			cur = &Episode{From: x, State: p.State}
		}
	}
	if cur != nil {
		end(at(pts[len(pts)-1]))
	}
	return out
}

// TraceSample is the event name of a sample: the connection's state after
// an engine call that changed its cwnd, ssthresh or flight, recorded
// between congestion events so that the window can be drawn as a curve.
const TraceSample = "sample"

// eventMark is how one kind of congestion event is marked on the cwnd
// line.
type eventMark struct {
	label string
	glyph draw.GlyphStyle
}

// eventMarks are the marks, in legend order; markOf picks one.
var eventMarks = []eventMark{
	// Black, not the retransmission colour: that one counts the
	// retransmissions of the time-sequence graph above.
	{"fast retransmit (recovery starts)", draw.GlyphStyle{Color: ColorData, Radius: vg.Points(3), Shape: draw.TriangleGlyph{}}},
	{"RTO", draw.GlyphStyle{Color: ColorRST, Radius: vg.Points(3), Shape: draw.CrossGlyph{}}},
	{"recovery end or undo", draw.GlyphStyle{Color: ColorAck, Radius: vg.Points(2.5), Shape: draw.BoxGlyph{}}},
	{"other event (partial ACK, D-SACK, probe...)", draw.GlyphStyle{Color: ColorSACK, Radius: vg.Points(2.5), Shape: draw.RingGlyph{}}},
}

func markOf(event string) int {
	switch event {
	case "fast-retransmit":
		return 0
	case "rto":
		return 1
	case "recovery-end", "undo", "frto-undo":
		return 2
	}
	return 3
}

// CwndPlots draws one connection's congestion trace in two panels: cwnd,
// ssthresh and flight size in bytes, with recovery and loss episodes
// shaded; SRTT in milliseconds below. at places a point on the x axis
// (seconds: the trace's own t_s, or aligned with a capture's start).
//
// With samples in the trace (the state after every engine call that
// changed it), cwnd, flight and ssthresh are drawn as steps through every
// point, each value held until the next, SRTT as a line, and each
// congestion event is marked on the cwnd line by its kind. A trace of
// congestion events alone (one written before samples existed) has a
// point per event, not per ACK: cwnd is then drawn as a mark at each
// event (it grows between them, unseen), flight likewise, ssthresh as a
// step (it changes only at them).
func CwndPlots(pts []TracePoint, at func(TracePoint) float64, w Window, title string) []*plot.Plot {
	var in []TracePoint
	sampled := false
	for _, p := range pts {
		if w.Contains(at(p)) {
			in = append(in, p)
			sampled = sampled || p.Event == TraceSample
		}
	}
	cw := newPlot(title, "time (s)", "bytes")
	cw.Y.Tick.Marker = byteTicks{}
	ss := newStepLine(draw.LineStyle{Color: ColorSSThresh, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(2)}})
	for _, p := range in {
		if p.SSThresh >= 0 && p.SSThresh < InfiniteSSThresh {
			ss.add(at(p), float64(p.SSThresh))
		}
	}
	until := math.Inf(-1)
	if len(in) > 0 {
		until = at(in[len(in)-1])
	}
	if w.HasTo {
		until = w.To
	}
	ss.until = until
	shade := &episodes{eps: Episodes(in, at)}
	cw.Add(shade, ss)
	var legend []func()
	if sampled {
		cwnd := newStepLine(draw.LineStyle{Color: ColorCwnd, Width: vg.Points(1.5)})
		flight := newStepLine(draw.LineStyle{Color: ColorFlight, Width: vg.Points(0.7)})
		marks := make([]*pointLine, len(eventMarks))
		for i, m := range eventMarks {
			marks[i] = &pointLine{glyph: m.glyph, dataRange: emptyRange()}
		}
		for _, p := range in {
			x := at(p)
			cwnd.add(x, float64(p.Cwnd))
			if p.Flight >= 0 {
				flight.add(x, float64(p.Flight))
			}
			if p.Event != TraceSample {
				marks[markOf(p.Event)].add(x, float64(p.Cwnd))
			}
		}
		cwnd.until, flight.until = until, until
		cw.Add(flight, cwnd)
		legend = append(legend, func() { cw.Legend.Add("cwnd", cwnd) })
		for i, m := range marks {
			if m.n() > 0 {
				cw.Add(m)
				legend = append(legend, func() { cw.Legend.Add(eventMarks[i].label, m) })
			}
		}
		if ss.n() > 0 {
			legend = append(legend, func() { cw.Legend.Add("ssthresh", ss) })
		}
		if flight.n() > 0 {
			legend = append(legend, func() { cw.Legend.Add("flight size", flight) })
		}
	} else {
		cwnd := &pointLine{glyph: draw.GlyphStyle{Color: ColorCwnd, Radius: vg.Points(1.8), Shape: draw.CircleGlyph{}}, dataRange: emptyRange()}
		flight := &pointLine{glyph: draw.GlyphStyle{Color: ColorFlight, Radius: vg.Points(2), Shape: draw.CrossGlyph{}}, dataRange: emptyRange()}
		for _, p := range in {
			x := at(p)
			cwnd.add(x, float64(p.Cwnd))
			if p.Flight >= 0 {
				flight.add(x, float64(p.Flight))
			}
		}
		cw.Add(cwnd, flight)
		if cwnd.n() > 0 {
			legend = append(legend, func() { cw.Legend.Add("cwnd at a congestion event", cwnd) })
		}
		if ss.n() > 0 {
			legend = append(legend, func() { cw.Legend.Add("ssthresh", ss) })
		}
		if flight.n() > 0 {
			legend = append(legend, func() { cw.Legend.Add("flight size", flight) })
		}
	}
	cw.Y.Min = 0
	w.apply(cw)
	fallbackAxes(cw)
	if sampled {
		headroom(cw, 1+0.06*float64(len(legend)+2)) // above the lines, the legend's entries
	}
	if len(shade.recovery()) > 0 {
		cw.Legend.Add("fast recovery", shadeThumb{ColorRecovery})
	}
	if len(shade.loss()) > 0 {
		cw.Legend.Add("loss (after RTO)", shadeThumb{ColorLoss})
	}
	for _, add := range legend {
		add()
	}

	rtt := newPlot("", "time (s)", "SRTT (ms)")
	srtt := &pointLine{line: draw.LineStyle{Color: ColorSRTT, Width: vg.Points(1)}, dataRange: emptyRange()}
	if !sampled {
		// A handful of events: each one shows.
		srtt.glyph = draw.GlyphStyle{Color: ColorSRTT, Radius: vg.Points(1.8), Shape: draw.CircleGlyph{}}
	}
	for _, p := range in {
		if p.SRTTKnown {
			srtt.add(at(p), float64(p.SRTT)/float64(time.Millisecond))
		}
	}
	rtt.Add(&episodes{eps: shade.eps}, srtt)
	rtt.Y.Min = 0
	w.apply(rtt)
	fallbackAxes(rtt)
	if srtt.n() > 0 {
		rtt.Legend.Add("smoothed RTT", srtt)
	}
	return []*plot.Plot{cw, rtt}
}

func (s *stepLine) n() int { return len(s.xs) }

// pointLine draws points with a glyph each, joined by a line if it has a
// line style.
type pointLine struct {
	xs, ys []float64
	line   draw.LineStyle
	glyph  draw.GlyphStyle
	dataRange
}

func (l *pointLine) add(x, y float64) {
	l.xs, l.ys = append(l.xs, x), append(l.ys, y)
	l.dataRange.add(x, y)
}

func (l *pointLine) n() int { return len(l.xs) }

func (l *pointLine) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	pts := make([]vg.Point, len(l.xs))
	for i := range l.xs {
		pts[i] = vg.Point{X: trX(l.xs[i]), Y: trY(l.ys[i])}
	}
	if l.line.Width > 0 && len(pts) > 1 {
		c.StrokeLines(l.line, c.ClipLinesXY(pts)...)
	}
	if l.glyph.Radius == 0 {
		return // a line alone
	}
	for _, pt := range pts {
		if c.Contains(pt) {
			c.DrawGlyph(l.glyph, pt)
		}
	}
}

func (l *pointLine) Thumbnail(c *draw.Canvas) {
	if l.line.Width > 0 {
		lineThumb(c, l.line)
	}
	if l.glyph.Radius > 0 {
		c.DrawGlyph(l.glyph, c.Center())
	}
}

// episodes shades each episode over the whole height of the data area.
type episodes struct{ eps []Episode }

func (e *episodes) of(state string) []Episode {
	var out []Episode
	for _, ep := range e.eps {
		if ep.State == state {
			out = append(out, ep)
		}
	}
	return out
}

func (e *episodes) recovery() []Episode { return e.of("recovery") }
func (e *episodes) loss() []Episode     { return e.of("loss") }

func (e *episodes) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	for _, ep := range e.eps {
		clr := ColorRecovery
		if ep.State == "loss" {
			clr = ColorLoss
		}
		x0, x1 := trX(ep.From), trX(ep.To)
		if x1-x0 < vg.Points(1) {
			x1 = x0 + vg.Points(1) // an episode of one event still shows
		}
		poly := c.ClipPolygonX([]vg.Point{{X: x0, Y: c.Min.Y}, {X: x1, Y: c.Min.Y}, {X: x1, Y: c.Max.Y}, {X: x0, Y: c.Max.Y}})
		if len(poly) > 0 {
			c.FillPolygon(clr, poly)
		}
	}
}

// DataRange covers the episodes' times only.
func (e *episodes) DataRange() (xmin, xmax, ymin, ymax float64) {
	r := emptyRange()
	for _, ep := range e.eps {
		r.add(ep.From, 0)
		r.add(ep.To, 0)
	}
	return r.DataRange()
}

// shadeThumb is an episode's legend entry: a filled square.
type shadeThumb struct{ clr color.Color }

func (s shadeThumb) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(s.clr, []vg.Point{c.Min, {X: c.Max.X, Y: c.Min.Y}, c.Max, {X: c.Min.X, Y: c.Max.Y}})
}
