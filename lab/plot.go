package lab

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"gonum.org/v1/plot/vg"

	"tunstack/stack"
	"tunstack/viz"
)

// PlotRecorder keeps what a lab run's plots are drawn from: the capture
// at the server, and for tunstack its trace (congestion events and the
// samples of the congestion state between them).
type PlotRecorder struct {
	pcap bytes.Buffer // written by the capture's tap, read after Run

	mu     sync.Mutex
	events []viz.TracePoint
}

// RecordForPlots makes o copy its capture, and on tunstack its trace,
// into the recorder that it returns; call it before Run and WritePlots
// after.
func RecordForPlots(o *Options) *PlotRecorder {
	r := &PlotRecorder{}
	if o.Pcap != nil {
		o.Pcap = io.MultiWriter(o.Pcap, &r.pcap)
	} else {
		o.Pcap = &r.pcap
	}
	o.Trace = r.event
	return r
}

// event is stack.Config.Trace: called with the stack's lock held, so it
// only appends.
func (r *PlotRecorder) event(ev stack.TraceEvent) {
	p := viz.TracePoint{Time: ev.Time, Local: ev.Local.String(), Remote: ev.Remote.String(), Event: ev.Event,
		Cwnd: ev.CwndBytes, SSThresh: ev.SSThreshBytes, Flight: ev.FlightBytes, State: ev.State, SRTT: ev.SRTT, SRTTKnown: ev.RTTKnown}
	r.mu.Lock()
	r.events = append(r.events, p)
	r.mu.Unlock()
}

// WritePlots draws the run's plots into dir (created if missing) and
// returns the files written: DIR/NAME-STACK.svg, the time-sequence graph
// of every connection of the capture, and, when the stack traced
// congestion events (tunstack, in the labs where it lost or reordered
// something), DIR/NAME-STACK-cwnd.svg with cwnd, ssthresh, flight and
// SRTT on the same time axis, drawn through the trace's samples.
//
// A SYN flood (synflood) has thousands of connections of one SYN each:
// NAME-STACK.svg is then the time-sequence graph of the real client
// connection that carried the most data, and DIR/NAME-STACK-syns.svg
// counts the listener's SYNs in and SYN-ACKs out per 100 ms, with the
// stack's SYN cookies sent and its queues where it shows them.
func (r *PlotRecorder) WritePlots(res *Result, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c, err := viz.ReadCapture(bytes.NewReader(r.pcap.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("lab: the run's capture: %w", err)
	}
	base := filepath.Join(dir, res.Experiment+"-"+res.Stack)
	var written []string
	save := func(file string, svg []byte) error {
		if err := os.WriteFile(file, svg, 0o644); err != nil {
			return err
		}
		written = append(written, file)
		return nil
	}
	write := func(file string, f viz.Figure) error {
		var b bytes.Buffer
		if _, err := f.Write(&b, "svg"); err != nil {
			return fmt.Errorf("lab: %s: %w", file, err)
		}
		return save(file, b.Bytes())
	}
	// Many connections (a backlog's clients) get shorter panels.
	h := viz.PanelHeight
	if len(c.Conns) > 2 {
		h = 2.6 * vg.Inch
	}
	span := viz.Window{From: 0, To: c.End, HasFrom: true, HasTo: c.End > 0}
	if d, ok := res.Data.(*SYNFloodData); ok {
		return written, writeSYNFloodPlots(c, d, base, span, write, save)
	}
	if err := write(base+".svg", viz.Figure{Capture: c, Conn: "all", Window: span, PanelHeight: h}); err != nil {
		return written, err
	}
	// The events of the connections the capture holds (a lab that runs
	// variants on fresh wires captures the first only), on the capture's
	// time axis and over its whole span, so the two files line up.
	// Samples alone (a transfer without loss) make no figure: the labs
	// draw the congestion state where something happened to it.
	tr := &viz.Trace{}
	events := 0
	r.mu.Lock()
	for _, p := range r.events {
		if c.ConnByName(p.Conn()) != nil {
			tr.Points = append(tr.Points, p)
			if p.Event != viz.TraceSample {
				events++
			}
		}
	}
	r.mu.Unlock()
	if events == 0 {
		return written, nil
	}
	err = write(base+"-cwnd.svg", viz.Figure{Trace: tr, Conn: "all", Origin: c.Start, Window: span, PanelHeight: 3 * vg.Inch})
	return written, err
}

// writeSYNFloodPlots draws a SYN flood: one real client's connection, and
// the listener's handshakes per 100 ms with the stack's cookie counter
// and queues on the capture's time axis.
func writeSYNFloodPlots(c *viz.Capture, d *SYNFloodData, base string, span viz.Window, write func(string, viz.Figure) error, save func(string, []byte) error) error {
	// The client's connection on its own time span: on the flood's, its
	// transfer would be a line.
	if err := write(base+".svg", viz.Figure{Capture: c}); err != nil {
		return err
	}
	const bin = synFloodSample
	h := viz.CountHandshakes(c, d.target(), bin.Seconds())
	at := func(t time.Duration) float64 { return d.Origin.Add(t).Sub(c.Start).Seconds() }
	var rates, levels []viz.Line
	if d.CookieCounter != "" && len(d.Samples) > 1 {
		cookies := viz.Line{Name: "SYN cookies sent (" + d.CookieCounter + ")", Color: viz.ColorSACK}
		for i := 1; i < len(d.Samples); i++ {
			a, b := d.Samples[i-1], d.Samples[i]
			// Per 100 ms, from samples about 100 ms apart.
			per := float64(b.CookiesSent-a.CookiesSent) * bin.Seconds() / (b.At - a.At).Seconds()
			cookies.T, cookies.V = append(cookies.T, at(a.At)), append(cookies.V, per)
		}
		cookies.Until = at(d.Samples[len(d.Samples)-1].At)
		rates = append(rates, cookies)
	}
	for _, q := range []struct {
		name string
		v    func(SYNFloodSample) int
		clr  color.Color
	}{
		{"SYN queue", func(s SYNFloodSample) int { return s.SynQueue }, viz.ColorCwnd},
		{"accept queue", func(s SYNFloodSample) int { return s.AcceptQueue }, viz.ColorWindow},
	} {
		l := viz.Line{Name: q.name, Color: q.clr}
		for _, s := range d.Samples {
			if v := q.v(s); v >= 0 {
				l.T, l.V = append(l.T, at(s.At)), append(l.V, float64(v))
			}
		}
		if len(l.T) > 0 {
			levels = append(levels, l)
		}
	}
	file := base + "-syns.svg"
	var b bytes.Buffer
	title := fmt.Sprintf("the listener %s under a SYN flood from %s", d.target(), d.Sources)
	if err := viz.WriteHandshakePlots(&b, "svg", h, rates, levels, span, title, 3*vg.Inch); err != nil {
		return fmt.Errorf("lab: %s: %w", file, err)
	}
	return save(file, b.Bytes())
}
