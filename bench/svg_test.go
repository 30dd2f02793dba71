package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"

	"tunstack/viz"
)

// svgBar is a filled rectangle in a series colour standing on the
// panel's base line, as drawn: its series and height.
type svgBar struct {
	series int
	bottom float64
	height float64
}

// parseSVG checks that doc is well-formed XML rooted at <svg> and returns
// the rectangles filled in series colours (bars and legend swatches), in
// document order, and the text it shows.
func parseSVG(t *testing.T, doc []byte) (rects []svgBar, text string) {
	t.Helper()
	colors := map[string]int{}
	for i, c := range viz.SeriesColors {
		r, g, b, _ := c.RGBA()
		colors[fmt.Sprintf("fill:#%02X%02X%02X", r>>8, g>>8, b>>8)] = i
	}
	dec := xml.NewDecoder(bytes.NewReader(doc))
	root := ""
	var txt strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, doc)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
			}
			if el.Name.Local != "path" {
				continue
			}
			s, ok := colors[attr(el, "style")]
			if !ok {
				continue
			}
			lo, hi := pathYRange(t, attr(el, "d"))
			rects = append(rects, svgBar{series: s, bottom: lo, height: hi - lo})
		case xml.CharData:
			txt.Write(el)
			txt.WriteByte(' ')
		}
	}
	if root != "svg" {
		t.Fatalf("root element is %q, want svg", root)
	}
	return rects, txt.String()
}

// pathYRange reads an SVG path of M and L commands and returns its least
// and greatest y.
func pathYRange(t *testing.T, d string) (lo, hi float64) {
	t.Helper()
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, f := range strings.FieldsFunc(d, func(r rune) bool { return r == 'M' || r == 'L' || r == 'Z' || r == ' ' }) {
		_, y, ok := strings.Cut(f, ",")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(y, 64)
		if err != nil {
			t.Fatalf("path %q: %v", d, err)
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// bars keeps the rectangles standing on the most common bottom edge (the
// bars of one panel, not the legend's swatches above them).
func bars(rects []svgBar) []svgBar {
	count := map[float64]int{}
	for _, r := range rects {
		count[math.Round(r.bottom*10)/10]++
	}
	var bases []float64
	for b := range count {
		bases = append(bases, b)
	}
	sort.Slice(bases, func(i, j int) bool { return count[bases[i]] > count[bases[j]] })
	var out []svgBar
	for _, r := range rects {
		if len(bases) > 0 && math.Round(r.bottom*10)/10 == bases[0] {
			out = append(out, r)
		}
	}
	return out
}

func attr(el xml.StartElement, name string) string {
	for _, a := range el.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func TestWriteSVGDrawsOneBarPerValueProportionally(t *testing.T) {
	c := BarChart{
		Title: "throughput", Unit: "Gbit/s",
		Groups: []string{"bulk-down", "bulk-up"},
		Series: []string{"tunstack", "gvisor", "linux"},
		Values: [][]float64{{1, 2, 4}, {3, math.NaN(), 8}},
	}
	var buf bytes.Buffer
	if err := WriteSVG(&buf, "bench", []BarChart{c}); err != nil {
		t.Fatal(err)
	}
	rects, text := parseSVG(t, buf.Bytes())
	if len(rects) != 5+3 {
		t.Fatalf("%d rectangles in series colours, want 5 bars (one value is missing) and 3 legend swatches", len(rects))
	}
	bs := bars(rects)
	if len(bs) != 5 {
		t.Fatalf("%d bars on the base line, want 5", len(bs))
	}
	// Linear scale: heights are proportional to the values, in order.
	want := []float64{1, 2, 4, 3, 8}
	wantSeries := []int{0, 1, 2, 0, 2}
	for i, b := range bs {
		if r := b.height / bs[0].height; math.Abs(r-want[i]) > 0.01*want[i] || b.series != wantSeries[i] {
			t.Errorf("bar %d: series %d, height ratio %.3f; want series %d, %v", i, b.series, r, wantSeries[i], want[i])
		}
	}
	for _, label := range []string{"8.00", "2.00", "n/a", "tunstack", "gvisor", "linux", "bulk-down", "Gbit/s", "bench"} {
		if !strings.Contains(text, label) {
			t.Errorf("the drawing does not show %q", label)
		}
	}
}

func TestWriteSVGLogScaleIsMonotonicAndStacksPanels(t *testing.T) {
	lat := BarChart{
		Title: "rr latency", Unit: "µs", Log: true,
		Groups: []string{"p50", "p99"},
		Series: []string{"a", "b"},
		Values: [][]float64{{10, 100}, {1000, 20}},
	}
	thr := BarChart{Title: "t", Unit: "x", Groups: []string{"g"}, Series: []string{"a", "b"}, Values: [][]float64{{1, 1}}}
	var buf bytes.Buffer
	if err := WriteSVG(&buf, "two panels", []BarChart{lat, thr}); err != nil {
		t.Fatal(err)
	}
	rects, text := parseSVG(t, buf.Bytes())
	if len(rects) != 6+4 {
		t.Fatalf("%d rectangles, want 6 bars and 2 swatches per panel", len(rects))
	}
	// The latency panel is drawn first: its four bars share a base line.
	bs := bars(rects[:6])
	if len(bs) != 4 {
		t.Fatalf("%d bars in the log panel, want 4", len(bs))
	}
	// Log scale: each decade adds the same height.
	d1 := bs[1].height - bs[0].height // 10 -> 100
	d2 := bs[2].height - bs[1].height // 100 -> 1000
	if d1 <= 0 || math.Abs(d1-d2) > 0.5 {
		t.Errorf("decade steps %.2f and %.2f should be equal and positive", d1, d2)
	}
	for _, title := range []string{"rr latency", "two panels"} {
		if !strings.Contains(text, title) {
			t.Errorf("no title %q", title)
		}
	}
}

func TestWriteSVGEscapesText(t *testing.T) {
	c := BarChart{Title: `a<b & "c"`, Unit: "u", Groups: []string{"<g>"}, Series: []string{"s&t"}, Values: [][]float64{{1}}}
	var buf bytes.Buffer
	if err := WriteSVG(&buf, "<title>", []BarChart{c}); err != nil {
		t.Fatal(err)
	}
	_, text := parseSVG(t, buf.Bytes()) // fails on unescaped markup
	for _, s := range []string{`a<b & "c"`, "<g>", "s&t", "<title>"} {
		if !strings.Contains(text, s) {
			t.Errorf("text %q is not shown as written", s)
		}
	}
}

func TestWriteSVGWithNoValuesIsStillADocument(t *testing.T) {
	var buf bytes.Buffer
	c := BarChart{Title: "empty", Unit: "u", Groups: []string{"g"}, Series: []string{"s"}, Values: [][]float64{{math.NaN()}}}
	if err := WriteSVG(&buf, "nothing measured", []BarChart{c}); err != nil {
		t.Fatal(err)
	}
	rects, text := parseSVG(t, buf.Bytes())
	if len(rects) != 1 || !strings.Contains(text, "n/a") {
		t.Errorf("%d rectangles (want the legend's alone), text %q (want n/a)", len(rects), text)
	}
	buf.Reset()
	if err := WriteSVG(&buf, "no charts", nil); err != nil {
		t.Fatal(err)
	}
	parseSVG(t, buf.Bytes())
}

func TestNiceCeil(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{{0.7, 1}, {1.3, 2}, {2.2, 2.5}, {3, 5}, {7, 10}, {24, 25}, {26000, 50000}} {
		if got := viz.NiceCeil(c.in); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("NiceCeil(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
