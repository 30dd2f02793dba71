package viz

import (
	"fmt"
	"io"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// Figure is one drawing: time-sequence graphs from a capture and the
// congestion state from a trace, of the same connection(s), on one time
// axis.
type Figure struct {
	Capture *Capture // nil: draw from the trace alone
	Trace   *Trace   // nil: draw from the capture alone
	// Conn picks the connection: LOCAL-REMOTE, "" for the one that carried
	// the most data (in the capture; the one with the most events in a
	// trace alone), or "all" for every connection of the capture.
	Conn   string
	Window Window
	// Origin is the instant at 0 s on the time axis: zero for the
	// capture's first packet, or, without a capture, the trace's own t_s.
	Origin time.Time
	// PanelHeight is each panel's height; 0 for PanelHeight.
	PanelHeight vg.Length
}

// ConnNotFoundError is a --conn that names no connection of the input.
type ConnNotFoundError struct {
	Conn  string
	Known []string // the connections there are
}

func (e *ConnNotFoundError) Error() string {
	known := e.Known
	more := ""
	if len(known) > 5 {
		known, more = known[:5], fmt.Sprintf(" and %d more", len(e.Known)-5)
	}
	if len(known) == 0 {
		return fmt.Sprintf("there is no connection %s, nor any other", e.Conn)
	}
	return fmt.Sprintf("there is no connection %s; there are %s%s", e.Conn, strings.Join(known, ", "), more)
}

// Panels builds the figure's panels, top to bottom: for each connection
// drawn, the time-sequence graph of each direction that carried data,
// then, if the trace has events of it, its cwnd and SRTT panels. The
// notes say what could not be drawn and why (a truncated capture, no TCP,
// a connection without trace events, trace lines skipped); an error means
// the connection asked for is not there.
func (f Figure) Panels() ([]*plot.Plot, []string, error) {
	var panels []*plot.Plot
	var notes []string
	if c := f.Capture; c != nil {
		if c.Truncated != nil {
			notes = append(notes, c.Truncated.Error())
		}
		if len(c.Conns) == 0 {
			notes = append(notes, fmt.Sprintf("the capture holds no TCP segment (%d records, %d of them not TCP over IP)", c.Records, c.NonTCP))
		}
	}
	if t := f.Trace; t != nil && len(t.Bad) > 0 {
		notes = append(notes, fmt.Sprintf("%d lines of the trace are not trace records and were skipped; the first: %s", len(t.Bad), t.Bad[0]))
	}

	var conns []*Conn
	var traceConns []string
	capt := f.Capture != nil && len(f.Capture.Conns) > 0
	switch {
	case f.Capture != nil && !capt && f.Trace == nil:
		// Nothing: the note says why.
	case capt && f.Conn == "all":
		conns = f.Capture.Conns
	case capt && f.Conn != "":
		cn := f.Capture.ConnByName(f.Conn)
		if cn == nil {
			var known []string
			for _, c := range f.Capture.Conns {
				known = append(known, c.Name())
			}
			return nil, notes, &ConnNotFoundError{Conn: f.Conn, Known: known}
		}
		conns = []*Conn{cn}
	case capt:
		if cn := f.Capture.Busiest(); cn != nil {
			conns = []*Conn{cn}
		}
	case f.Trace != nil && (f.Conn == "" || f.Conn == "all"):
		traceConns = f.Trace.Conns()
		if f.Conn == "" && len(traceConns) > 1 {
			traceConns = traceConns[:1]
		}
	case f.Trace != nil:
		if len(f.Trace.ConnPoints(f.Conn)) == 0 {
			return nil, notes, &ConnNotFoundError{Conn: f.Conn, Known: f.Trace.Conns()}
		}
		traceConns = []string{f.Conn}
	}

	// Trace points go on the capture's time axis when there is one: both
	// carry wall-clock times. (A capture without TCP leaves the trace
	// drawn alone, on that axis still.)
	at := func(p TracePoint) float64 { return p.Seconds }
	start := f.Origin
	if start.IsZero() && f.Capture != nil {
		start = f.Capture.Start
	}
	if !start.IsZero() {
		at = func(p TracePoint) float64 {
			if p.Time.IsZero() {
				return p.Seconds
			}
			return p.Time.Sub(start).Seconds()
		}
	}
	for _, cn := range conns {
		for _, fl := range cn.Flows() {
			panels = append(panels, TimeSeqPlot(fl, f.Window, ""))
		}
		if f.Trace == nil {
			continue
		}
		pts := f.Trace.ConnPoints(cn.Name())
		if len(pts) == 0 {
			if f.Conn != "all" {
				notes = append(notes, fmt.Sprintf("the trace has no event of %s; its cwnd is not drawn", cn.Name()))
			}
			continue
		}
		panels = append(panels, CwndPlots(pts, at, f.Window, "congestion state of "+cn.Local.String()+" (to "+cn.Remote.String()+")")...)
	}
	for _, name := range traceConns {
		pts := f.Trace.ConnPoints(name)
		panels = append(panels, CwndPlots(pts, at, f.Window, "congestion state of "+pts[0].Local+" (to "+pts[0].Remote+")")...)
	}
	return panels, notes, nil
}

// Write draws the figure to w in format ("svg" or "png"). It returns the
// notes of Panels and an error if there was nothing to draw.
func (f Figure) Write(w io.Writer, format string) ([]string, error) {
	panels, notes, err := f.Panels()
	if err != nil {
		return notes, err
	}
	if len(panels) == 0 {
		return notes, fmt.Errorf("nothing to draw: %s", strings.Join(append(notes, "no connection found"), "; "))
	}
	h := f.PanelHeight
	if h == 0 {
		h = PanelHeight
	}
	return notes, Render(w, format, panels, h)
}
