package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
)

// svgBar is a bar as drawn: its height and tooltip.
type svgBar struct {
	height float64
	title  string
}

// parseSVG checks that doc is well-formed XML rooted at <svg> and returns
// its bars in document order.
func parseSVG(t *testing.T, doc []byte) []svgBar {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var bars []svgBar
	var inBar bool
	root := ""
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
			if el.Name.Local == "rect" && attr(el, "class") == "bar" {
				h, err := strconv.ParseFloat(attr(el, "height"), 64)
				if err != nil {
					t.Fatalf("bar height %q: %v", attr(el, "height"), err)
				}
				bars = append(bars, svgBar{height: h})
				inBar = true
			}
		case xml.CharData:
			if inBar && len(bars) > 0 {
				bars[len(bars)-1].title += string(el)
			}
		case xml.EndElement:
			if el.Name.Local == "rect" {
				inBar = false
			}
		}
	}
	if root != "svg" {
		t.Fatalf("root element is %q, want svg", root)
	}
	return bars
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
	bars := parseSVG(t, buf.Bytes())
	if len(bars) != 5 {
		t.Fatalf("%d bars, want 5 (one value is missing)", len(bars))
	}
	// Linear scale: heights are proportional to the values.
	want := []float64{1, 2, 4, 3, 8}
	for i, b := range bars {
		if r := b.height / bars[0].height; math.Abs(r-want[i]) > 0.01*want[i] {
			t.Errorf("bar %d height ratio %.3f, want %v", i, r, want[i])
		}
	}
	if !strings.Contains(bars[4].title, "linux bulk-up: 8.00 Gbit/s") {
		t.Errorf("last bar's tooltip %q should name stack, group, value and unit", bars[4].title)
	}
	if !strings.Contains(buf.String(), "n/a") {
		t.Error("the missing value should be marked n/a")
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
	bars := parseSVG(t, buf.Bytes())
	if len(bars) != 6 {
		t.Fatalf("%d bars, want 6", len(bars))
	}
	// Log scale: each decade adds the same height.
	d1 := bars[1].height - bars[0].height // 10 -> 100
	d2 := bars[2].height - bars[1].height // 100 -> 1000
	if d1 <= 0 || math.Abs(d1-d2) > 0.5 {
		t.Errorf("decade steps %.2f and %.2f should be equal and positive", d1, d2)
	}
	if got := strings.Count(buf.String(), `class="panel"`); got != 2 {
		t.Errorf("%d panels, want 2", got)
	}
}

func TestWriteSVGEscapesText(t *testing.T) {
	c := BarChart{Title: `a<b & "c"`, Unit: "u", Groups: []string{"<g>"}, Series: []string{"s&t"}, Values: [][]float64{{1}}}
	var buf bytes.Buffer
	if err := WriteSVG(&buf, "<title>", []BarChart{c}); err != nil {
		t.Fatal(err)
	}
	parseSVG(t, buf.Bytes()) // fails on unescaped markup
	if strings.Contains(buf.String(), "<g>") || strings.Contains(buf.String(), "<title>") && !strings.Contains(buf.String(), "&lt;title&gt;") {
		t.Error("text was not escaped")
	}
}

func TestWriteSVGWithNoValuesIsStillADocument(t *testing.T) {
	var buf bytes.Buffer
	c := BarChart{Title: "empty", Unit: "u", Groups: []string{"g"}, Series: []string{"s"}, Values: [][]float64{{math.NaN()}}}
	if err := WriteSVG(&buf, "nothing measured", []BarChart{c}); err != nil {
		t.Fatal(err)
	}
	if bars := parseSVG(t, buf.Bytes()); len(bars) != 0 {
		t.Errorf("%d bars for no values", len(bars))
	}
}

func TestNiceCeil(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{{0.7, 1}, {1.3, 2}, {2.2, 2.5}, {3, 5}, {7, 10}, {24, 25}, {26000, 50000}} {
		if got := niceCeil(c.in); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("niceCeil(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
