package viz

import (
	"bytes"
	"strings"
	"testing"
)

func TestSoakPanelsDrawFourSeriesAndTheLoadsEnd(t *testing.T) {
	samples := []SoakSample{
		{T: 0, HeapBytes: 3 << 20, Goroutines: 19, Conns: 0, FDs: 15},
		{T: 10, HeapBytes: 150 << 20, Goroutines: 950, Conns: 930, FDs: 16},
		{T: 20, HeapBytes: 20 << 20, Goroutines: 19, Conns: 0, FDs: 15},
	}
	panels := SoakPanels(samples, 15)
	if len(panels) != 4 {
		t.Fatalf("%d panels, want 4", len(panels))
	}
	want := []string{"live heap after the last GC", "goroutines", "TCP connections (every state)", "open file descriptors"}
	for i, p := range panels {
		if p.Title.Text != want[i] {
			t.Errorf("panel %d is %q, want %q", i, p.Title.Text, want[i])
		}
	}
	// The heap panel's axis reaches past the peak (150 MiB).
	if panels[0].Y.Max < 150 {
		t.Errorf("heap axis ends at %v MiB, below the peak of 150", panels[0].Y.Max)
	}
	var b bytes.Buffer
	if err := Render(&b, "svg", panels, PanelHeight/2); err != nil {
		t.Fatal(err)
	}
	for _, s := range append(want, "load ends") {
		if !strings.Contains(b.String(), s) {
			t.Errorf("the SVG does not say %q", s)
		}
	}
}
