package viz

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"strings"
	"testing"

	"github.com/google/gopacket/layers"
)

// strokes counts the SVG paths stroked in each colour (#RRGGBB), after
// checking that the document is well-formed XML rooted at <svg>.
func strokes(t *testing.T, doc []byte) map[string]int {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	n := map[string]int{}
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if root == "" {
			root = el.Name.Local
		}
		if el.Name.Local != "path" {
			continue
		}
		for _, a := range el.Attr {
			if a.Name.Local != "style" {
				continue
			}
			for _, kv := range strings.Split(a.Value, ";") {
				if c, ok := strings.CutPrefix(kv, "stroke:"); ok {
					n[c]++
				}
			}
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return n
}

func hex(c interface{ RGBA() (r, g, b, a uint32) }) string {
	r, g, b, _ := c.RGBA()
	return fmt.Sprintf("#%02X%02X%02X", r>>8, g>>8, b>>8)
}

func TestTimeSeqSVGHasAMarkPerSegment(t *testing.T) {
	c := readBytes(t, writePcap(t, lossAndZeroWindow(), layers.LinkTypeRaw))
	var b bytes.Buffer
	notes, err := Figure{Capture: c}.Write(&b, "svg")
	if err != nil || len(notes) != 0 {
		t.Fatalf("notes %q, error %v", notes, err)
	}
	n := strokes(t, b.Bytes())
	// One path per mark, plus one for its legend entry. The server sent
	// 6 segments that take sequence space and are not retransmissions
	// (SYN-ACK, three of data, the one-byte probe, FIN), 1 retransmission;
	// the client sent 1 SACK block and 1 D-SACK.
	for _, w := range []struct {
		what string
		clr  string
		want int
	}{
		{"retransmission", hex(ColorRetrans), 1 + 1},
		{"SACK", hex(ColorSACK), 1 + 1},
		{"D-SACK", hex(ColorDSACK), 1 + 1},
	} {
		if n[w.clr] != w.want {
			t.Errorf("%d paths stroked in %s (%s), want %d", n[w.clr], w.clr, w.what, w.want)
		}
	}
	// The data segments: 6 bars and the legend's, besides the axes and
	// ticks, which are black too; so at least 7.
	if n[hex(ColorData)] < 7 {
		t.Errorf("%d black paths, want the 6 segments and the legend's at least", n[hex(ColorData)])
	}
	// The default picks the connection that carried the most data; the
	// client's direction carried none and has no panel.
	if got := strings.Count(b.String(), "→"); got != 1 {
		t.Errorf("%d panel titles, want 1", got)
	}
}

func TestFigurePNGIsDrawn(t *testing.T) {
	c := readBytes(t, writePcap(t, lossAndZeroWindow(), layers.LinkTypeRaw))
	tr, err := ReadTrace(strings.NewReader(sampleTrace))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	notes, err := Figure{Capture: c, Trace: tr}.Write(&b, "png")
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "2 lines of the trace") {
		t.Errorf("notes %q, want one about the 2 bad trace lines", notes)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	// Three panels: time-sequence, cwnd, SRTT.
	bounds := img.Bounds()
	if bounds.Dy() < 3*bounds.Dx()/3 {
		t.Errorf("image %v is not tall enough for three panels", bounds)
	}
	if ink := inked(img); ink < 5000 {
		t.Errorf("%d non-white pixels, the figure looks blank", ink)
	}
}

// inked counts the pixels that are not white.
func inked(img image.Image) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				n++
			}
		}
	}
	return n
}

func TestFigureConnChoiceAndBadInputNotes(t *testing.T) {
	c := readBytes(t, writePcap(t, lossAndZeroWindow(), layers.LinkTypeRaw))
	_, _, err := Figure{Capture: c, Conn: "10.0.0.9:1-10.0.0.1:5000"}.Panels()
	var nf *ConnNotFoundError
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "10.0.0.2:80-10.0.0.1:5000") {
		t.Errorf("unknown --conn: %v; want a ConnNotFoundError naming the connection there is", err)
	}
	// Either order of the ends names the connection.
	ps, _, err := Figure{Capture: c, Conn: "10.0.0.1:5000-10.0.0.2:80"}.Panels()
	if err != nil || len(ps) != 1 {
		t.Errorf("%d panels, %v; want 1", len(ps), err)
	}
	// A capture without TCP: nothing to draw, and the notes say why.
	udp := readBytes(t, writePcap(t, []pkt{{udp: true}}, layers.LinkTypeRaw))
	notes, err := Figure{Capture: udp}.Write(io.Discard, "svg")
	if err == nil || len(notes) != 1 || !strings.Contains(notes[0], "no TCP segment") {
		t.Errorf("UDP only: notes %q, error %v; want a note and an error", notes, err)
	}
	// ... but with a trace there is still something to draw.
	tr, _ := ReadTrace(strings.NewReader(sampleTrace))
	if notes, err := (Figure{Capture: udp, Trace: tr}).Write(io.Discard, "svg"); err != nil || len(notes) != 2 {
		t.Errorf("UDP capture and a trace: notes %q, error %v; want the trace drawn with two notes", notes, err)
	}
	ps, _, err = Figure{Trace: tr}.Panels()
	if err != nil || len(ps) != 2 {
		t.Errorf("trace alone: %d panels, %v; want cwnd and SRTT", len(ps), err)
	}
}
