package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"image"
	"image/png"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"tunstack/internal/testtools"
	"tunstack/lab/netns"
	"tunstack/viz"
)

// plotRun runs `tunstack plot ARGS` as main does and returns the exit
// status and what it printed.
func plotRun(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	commands["plot"] = func(a []string) error { return runPlot(a, &out, &errb) }
	defer func() { commands["plot"] = func(a []string) error { return runPlot(a, os.Stdout, os.Stderr) } }()
	code = run(append([]string{"plot"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// tinyPcap writes a capture of one connection: handshake, two data
// segments, the first of them again; udp adds a record that is not TCP.
func tinyPcap(t *testing.T, path string, udp bool) []byte {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(65536, layers.LinkTypeRaw); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	seg := func(fromServer bool, seq, ack uint32, syn bool, n int) {
		src, dst := net.IPv4(10, 0, 0, 1), net.IPv4(10, 0, 0, 2)
		sp, dp := layers.TCPPort(40000), layers.TCPPort(80)
		if fromServer {
			src, dst, sp, dp = dst, src, dp, sp
		}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
		tcp := &layers.TCP{SrcPort: sp, DstPort: dp, Seq: seq, Ack: ack, SYN: syn, ACK: ack != 0, Window: 1000}
		tcp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tcp, gopacket.Payload(make([]byte, n))); err != nil {
			t.Fatal(err)
		}
		at = at.Add(10 * time.Millisecond)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: at, CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	seg(false, 100, 0, true, 0)
	seg(true, 900, 101, true, 0)
	seg(false, 101, 901, false, 0)
	seg(true, 901, 101, false, 1000)
	seg(true, 1901, 101, false, 1000)
	seg(true, 901, 101, false, 1000)
	seg(false, 101, 2901, false, 0)
	if udp {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4(10, 0, 0, 1), DstIP: net.IPv4(10, 0, 0, 2)}
		u := &layers.UDP{SrcPort: 53, DstPort: 53}
		u.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, u, gopacket.Payload("x")); err != nil {
			t.Fatal(err)
		}
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: at, CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	if path != "" {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestPlotDrawsACaptureAndTellsWhatIsWrongWithOthers(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.pcap")
	all := tinyPcap(t, good, false)

	out := filepath.Join(dir, "out.svg")
	code, stdout, stderr := plotRun("-o", out, good)
	if code != 0 || stderr != "" || !strings.Contains(stdout, "wrote "+out) {
		t.Fatalf("good capture: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if svg, err := os.ReadFile(out); err != nil || !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("10.0.0.2:80 → 10.0.0.1:40000")) {
		t.Fatalf("out.svg (%v) is not the server's time-sequence graph", err)
	}
	png := filepath.Join(dir, "out.png")
	if code, _, stderr := plotRun("-o", png, "--conn", "10.0.0.1:40000-10.0.0.2:80", "--from", "0.01", "--to", "0.2", good); code != 0 {
		t.Fatalf("PNG: exit %d: %s", code, stderr)
	}
	if f, err := os.Open(png); err != nil {
		t.Fatal(err)
	} else if _, format, err := image.Decode(f); err != nil || format != "png" {
		t.Errorf("out.png: %v, format %q", err, format)
	}

	// Cut inside the last record: said on stderr, the rest drawn, exit 0.
	cut := filepath.Join(dir, "cut.pcap")
	if err := os.WriteFile(cut, all[:len(all)-7], 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = plotRun("-o", out, cut)
	if code != 0 || !strings.Contains(stderr, "ends inside record 7") {
		t.Errorf("truncated capture: exit %d, stderr %q; want 0 and a note that it is cut", code, stderr)
	}

	// TCP and something else: drawn, quietly.
	mixed := filepath.Join(dir, "mixed.pcap")
	tinyPcap(t, mixed, true)
	if code, _, stderr := plotRun("-o", out, mixed); code != 0 || stderr != "" {
		t.Errorf("capture with a UDP packet: exit %d, stderr %q", code, stderr)
	}

	// No TCP at all: nothing drawn, said, exit 1.
	udp := filepath.Join(dir, "udp.pcap")
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	w.WriteFileHeader(65536, layers.LinkTypeRaw)
	w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: 28, Length: 28}, []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 53, 0, 53, 0, 8, 0, 0})
	os.WriteFile(udp, b.Bytes(), 0o644)
	os.Remove(out)
	code, _, stderr = plotRun("-o", out, udp)
	if code != 1 || !strings.Contains(stderr, "no TCP segment") {
		t.Errorf("UDP-only capture: exit %d, stderr %q; want 1 and that it holds no TCP", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("an empty drawing was written for a capture without TCP")
	}

	// Usage errors: one sentence, exit 2.
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("hello, not a capture\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", out, text}, "is not a pcap or pcapng capture"},
		{[]string{"-o", out, filepath.Join(dir, "missing.pcap")}, "cannot read the capture"},
		{[]string{good}, "give the file to write with -o"},
		{[]string{"-o", filepath.Join(dir, "out.pdf"), good}, "ending in .svg or .png"},
		{[]string{"-o", out}, "give a capture to draw"},
		{[]string{"-o", out, good, good}, "one capture at a time"},
		{[]string{"-o", out, "--conn", "10.0.0.2-10.0.0.1", good}, "--conn takes all or LOCAL-REMOTE"},
		{[]string{"-o", out, "--conn", "10.0.0.2:80-10.0.0.1:1", good}, "there is no connection 10.0.0.2:80-10.0.0.1:1; there are 10.0.0.2:80-10.0.0.1:40000"},
		{[]string{"-o", out, "--from", "2", "--to", "1", good}, "--to (1) must be after --from (2)"},
		{[]string{"-o", out, "--from", "soon", good}, "--from takes seconds"},
		{[]string{"-o", out, "--trace", filepath.Join(dir, "none.jsonl"), good}, "cannot read the trace"},
	} {
		code, stdout, stderr := plotRun(c.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("plot %q: exit %d, stdout %q, stderr %q; want 2 and one line saying %q", c.args, code, stdout, stderr, c.want)
		}
	}
}

// TestPlotLossyDownload draws a real lossy download: serve with --impair
// loss, --pcap and --trace in a namespace of its own, curl fetching 4 MiB.
// rsvg-convert, a renderer that is not ours, must draw the SVG into a PNG
// with ink on it, and the SVG must hold one retransmission mark per
// retransmission in the capture. The truth is the rule
// serve_impair_test.go applies to tshark's decoding of the capture: a
// segment that takes sequence space and starts below the highest
// sequence its sender had sent. tshark's own retransmission labels are
// heuristics of timing and duplicate ACKs (a retransmission within an
// RTT of the original is "out-of-order", and a spurious one can be
// counted apart), so they are logged, not compared.
func TestPlotLossyDownload(t *testing.T) {
	testtools.Need(t, "curl", "tshark", "rsvg-convert")
	netns.RequireRoot(t)
	dir := t.TempDir()
	files := filepath.Join(dir, "files")
	if err := os.Mkdir(files, 0o755); err != nil {
		t.Fatal(err)
	}
	const size = 4 * mib
	want := writeRandomFile(t, filepath.Join(files, "lossy.bin"), size, 21)
	pcap, trace := filepath.Join(dir, "lossy.pcap"), filepath.Join(dir, "lossy.jsonl")
	s := startServe(t, "--impair", "loss=2%,seed=5", "--files", files, "--pcap", pcap, "--trace", trace)
	sum, n, took, err := s.curlDownload("/files/lossy.bin")
	if err != nil {
		t.Fatal(err)
	}
	if n != size || sum != want {
		t.Fatalf("curl got %d bytes with SHA-256 %s, want %d and %s", n, sum, size, want)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	server := s.cfg.StackAddr.String()

	svgFile := filepath.Join(dir, "lossy.svg")
	code, stdout, stderr := plotRun("--trace", trace, "-o", svgFile, pcap)
	if code != 0 {
		t.Fatalf("plot: exit %d\n%s%s", code, stdout, stderr)
	}
	svg, err := os.ReadFile(svgFile)
	if err != nil {
		t.Fatal(err)
	}

	truth, err := readImpairCapture(pcap, server)
	if err != nil {
		t.Fatal(err)
	}
	marks := retransmissionMarks(t, svg)
	t.Logf("4 MiB through loss=2%% in %v: the capture holds %d retransmissions by %s (tshark labels %d retransmissions, %d fast, %d spurious, %d out-of-order); the SVG has %d retransmission marks",
		took.Round(time.Millisecond), truth.retransmissions, server, truth.tsharkRetrans, truth.tsharkFast, truth.tsharkSpurious, truth.tsharkOutOfOrder, marks)
	if truth.retransmissions == 0 {
		t.Fatalf("2%% loss over 4 MiB made no retransmission; the test shows nothing")
	}
	if uint64(marks) != truth.retransmissions {
		t.Errorf("the SVG has %d retransmission marks, the capture %d retransmissions", marks, truth.retransmissions)
	}
	if !bytes.Contains(svg, []byte("congestion state of "+server+":80")) {
		t.Errorf("the SVG has no congestion-state panel from the trace")
	}

	pngFile := filepath.Join(dir, "lossy.png")
	if out, err := exec.Command("rsvg-convert", "-b", "white", "-o", pngFile, svgFile).CombinedOutput(); err != nil {
		t.Fatalf("rsvg-convert: %v\n%s", err, out)
	}
	f, err := os.Open(pngFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	ink, total := inkedPixels(img), img.Bounds().Dx()*img.Bounds().Dy()
	t.Logf("rsvg-convert drew %v, %d of %d pixels not white", img.Bounds().Size(), ink, total)
	// Axes, labels, thousands of segment bars and the cwnd marks: well
	// over 2% of the picture; a blank or text-only drawing is far below.
	if ink*50 < total {
		t.Errorf("only %d of %d pixels are drawn: the SVG renders (nearly) blank", ink, total)
	}
}

// retransmissionMarks counts the SVG paths stroked in the retransmission
// colour, less the legend's sample: one per retransmission drawn.
func retransmissionMarks(t *testing.T, svg []byte) int {
	t.Helper()
	r, g, b, _ := viz.ColorRetrans.RGBA()
	stroke := fmt.Sprintf("stroke:#%02X%02X%02X", r>>8, g>>8, b>>8)
	dec := xml.NewDecoder(bytes.NewReader(svg))
	n := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
		if el, ok := tok.(xml.StartElement); ok && el.Name.Local == "path" {
			for _, a := range el.Attr {
				if a.Name.Local == "style" && strings.Contains(a.Value+";", stroke+";") {
					n++
				}
			}
		}
	}
	if n > 0 {
		n-- // the legend's
	}
	return n
}

// inkedPixels counts the pixels that are not white.
func inkedPixels(img image.Image) int {
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

func TestLabPlotFlagAndList(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	os.WriteFile(file, nil, 0o644)
	for _, c := range []struct {
		dir, want string
	}{
		{file, "is a file; give a directory"},
		{filepath.Join(dir, "no", "such"), "its parent directory does not exist"},
		{"", "--plot needs a directory"},
	} {
		var out, errb bytes.Buffer
		code := run([]string{"lab", "backlog", "--plot", c.dir}, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("lab --plot %q: exit %d, stderr %q; want 2 and %q", c.dir, code, errb.String(), c.want)
		}
	}
	// --list names the experiments, one a line, for make plots.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	code := run([]string{"lab", "--list"}, io.Discard, io.Discard)
	os.Stdout = stdout
	w.Close()
	got, _ := io.ReadAll(r)
	if code != 0 || !strings.HasPrefix(string(got), "backlog\nsynack\n") || !strings.Contains(string(got), "\ndsack\n") {
		t.Errorf("lab --list: exit %d, output %q", code, got)
	}
}
