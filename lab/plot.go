package lab

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"gonum.org/v1/plot/vg"

	"tunstack/stack"
	"tunstack/viz"
)

// PlotRecorder keeps what a lab run's plots are drawn from: the capture
// at the server, and for tunstack its congestion events.
type PlotRecorder struct {
	pcap bytes.Buffer // written by the capture's tap, read after Run

	mu     sync.Mutex
	events []viz.TracePoint
}

// RecordForPlots makes o copy its capture, and on tunstack its congestion
// events, into the recorder that it returns; call it before Run and
// WritePlots after.
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
// SRTT on the same time axis.
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
	write := func(file string, f viz.Figure) error {
		var b bytes.Buffer
		if _, err := f.Write(&b, "svg"); err != nil {
			return fmt.Errorf("lab: %s: %w", file, err)
		}
		if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
			return err
		}
		written = append(written, file)
		return nil
	}
	// Many connections (a backlog's clients) get shorter panels.
	h := viz.PanelHeight
	if len(c.Conns) > 2 {
		h = 2.6 * vg.Inch
	}
	span := viz.Window{From: 0, To: c.End, HasFrom: true, HasTo: c.End > 0}
	if err := write(base+".svg", viz.Figure{Capture: c, Conn: "all", Window: span, PanelHeight: h}); err != nil {
		return written, err
	}
	// The events of the connections the capture holds (a lab that runs
	// variants on fresh wires captures the first only), on the capture's
	// time axis and over its whole span, so the two files line up.
	tr := &viz.Trace{}
	r.mu.Lock()
	for _, p := range r.events {
		if c.ConnByName(p.Conn()) != nil {
			tr.Points = append(tr.Points, p)
		}
	}
	r.mu.Unlock()
	if len(tr.Points) == 0 {
		return written, nil
	}
	err = write(base+"-cwnd.svg", viz.Figure{Trace: tr, Conn: "all", Origin: c.Start, Window: span, PanelHeight: 3 * vg.Inch})
	return written, err
}
