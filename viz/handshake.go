package viz

import (
	"image/color"
	"io"
	"math"
	"net/netip"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// HandshakeCounts are a listener's handshake segments in a capture, per
// bin of time: what a SYN flood looks like from the listener's side.
type HandshakeCounts struct {
	Bin float64   // seconds per bin
	T   []float64 // each bin's start, in seconds since Capture.Start
	// The SYNs the listener received and the SYN-ACKs it sent, first
	// transmissions and retransmissions (of the same connection) apart.
	SYNs, SYNRetrans, SYNACKs, SYNACKRetrans []int
}

// CountHandshakes counts, per bin of bin seconds from the capture's start
// to its end, the SYNs received and SYN-ACKs sent by the listening side of
// each connection (Conn.Local) whose listening side is local, or of every
// connection if local is the zero AddrPort.
func CountHandshakes(c *Capture, local netip.AddrPort, bin float64) HandshakeCounts {
	n := int(math.Floor(c.End/bin)) + 1
	h := HandshakeCounts{Bin: bin, T: make([]float64, n),
		SYNs: make([]int, n), SYNRetrans: make([]int, n), SYNACKs: make([]int, n), SYNACKRetrans: make([]int, n)}
	for i := range h.T {
		h.T[i] = float64(i) * bin
	}
	at := func(t float64) int { return min(n-1, max(0, int(math.Floor(t/bin)))) }
	for _, cn := range c.Conns {
		if local.IsValid() && cn.Local != local {
			continue
		}
		for _, s := range cn.In.Segments {
			if !s.SYN || s.RST {
				continue
			}
			if s.Retransmission {
				h.SYNRetrans[at(s.T)]++
			} else {
				h.SYNs[at(s.T)]++
			}
		}
		for _, s := range cn.Out.Segments {
			if !s.SYN || s.RST {
				continue
			}
			if s.Retransmission {
				h.SYNACKRetrans[at(s.T)]++
			} else {
				h.SYNACKs[at(s.T)]++
			}
		}
	}
	return h
}

// Line is a named line of values over time (seconds on the figure's
// axis), drawn as steps: each value holds until the next.
type Line struct {
	Name  string
	T, V  []float64
	Color color.Color
	// Until is where the last value ends; 0 holds it to the figure's end.
	Until float64
}

// HandshakePlots draws the counts as steps, one per bin, in a panel
// titled title, with rates (other per-bin series, such as a stack's count
// of SYN cookies sent) on the same axes; and, if levels has any, a second
// panel of levels over time (a listener's queues).
func HandshakePlots(h HandshakeCounts, rates, levels []Line, w Window, title string) []*plot.Plot {
	p := newPlot(title, "time (s)", "segments per "+seconds(h.Bin))
	end := math.Inf(-1)
	if len(h.T) > 0 {
		end = h.T[len(h.T)-1] + h.Bin
	}
	line := func(clr color.Color, width float64, dashed bool) draw.LineStyle {
		st := draw.LineStyle{Color: clr, Width: vg.Points(width)}
		if dashed {
			st.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		return st
	}
	counts := []struct {
		name string
		v    []int
		sty  draw.LineStyle
	}{
		{"SYNs in", h.SYNs, line(ColorData, 1.5, false)},
		{"SYN-ACKs out", h.SYNACKs, line(ColorAck, 1.5, true)},
		{"SYN retransmissions in", h.SYNRetrans, line(ColorProbe, 1, false)},
		{"SYN-ACK retransmissions out", h.SYNACKRetrans, line(ColorRetrans, 1, false)},
	}
	for _, c := range counts {
		if sum(c.v) == 0 && c.name != "SYNs in" && c.name != "SYN-ACKs out" {
			continue // nothing of that kind: no line, no legend entry
		}
		l := newStepLine(c.sty)
		for i, v := range c.v {
			l.add(h.T[i], float64(v))
		}
		l.until = end
		p.Add(l)
		p.Legend.Add(c.name, l)
	}
	for _, s := range rates {
		l := seriesLine(s, line(s.Color, 1.2, false), end)
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	p.Y.Min = 0
	w.apply(p)
	fallbackAxes(p)
	headroom(p, 1.45) // above the lines, the legend
	panels := []*plot.Plot{p}
	if len(levels) > 0 {
		q := newPlot("", "time (s)", "entries")
		for _, s := range levels {
			l := seriesLine(s, line(s.Color, 1.2, false), end)
			q.Add(l)
			q.Legend.Add(s.Name, l)
		}
		q.Y.Min = 0
		w.apply(q)
		fallbackAxes(q)
		headroom(q, 1.3)
		panels = append(panels, q)
	}
	return panels
}

// WriteHandshakePlots renders HandshakePlots to out in format ("svg" or
// "png"), each panel height high.
func WriteHandshakePlots(out io.Writer, format string, h HandshakeCounts, rates, levels []Line, w Window, title string, height vg.Length) error {
	return Render(out, format, HandshakePlots(h, rates, levels, w, title), height)
}

func seriesLine(s Line, sty draw.LineStyle, until float64) *stepLine {
	l := newStepLine(sty)
	for i := range s.T {
		l.add(s.T[i], s.V[i])
	}
	l.until = until
	if s.Until != 0 {
		l.until = s.Until
	}
	return l
}

func sum(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
}

// seconds writes a bin width: 100 ms, 1 s.
func seconds(s float64) string {
	if s < 1 {
		return strconv.FormatFloat(s*1000, 'f', -1, 64) + " ms"
	}
	return strconv.FormatFloat(s, 'f', -1, 64) + " s"
}

// headroom raises the top of the y axis to f times the data's, so that a
// legend at the top does not cover the lines.
func headroom(p *plot.Plot, f float64) {
	p.Y.Max = p.Y.Min + (p.Y.Max-p.Y.Min)*f
}
