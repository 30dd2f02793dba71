package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"tunstack/viz"
)

func init() {
	commands["plot"] = func(args []string) error { return runPlot(args, os.Stdout, os.Stderr) }
}

// runPlot is `tunstack plot [--conn C] [--from S] [--to S] [--trace FILE]
// -o OUT.svg|.png [CAPTURE.pcap]`: time-sequence graphs of a connection
// from a capture and its congestion state from a `serve --trace` file,
// on one time axis, in one SVG or PNG.
func runPlot(args []string, stdout, stderr io.Writer) error {
	var (
		conn, from, to, traceFile, out string
	)
	rest, err := parseFlags("plot", args, []flagDef{
		stringFlag("conn", &conn, checkConnFlag),
		stringFlag("from", &from, nil),
		stringFlag("to", &to, nil),
		stringFlag("trace", &traceFile, nil),
		stringFlag("o", &out, nil),
	})
	if err != nil {
		return err
	}
	var fig viz.Figure
	if fig.Window, err = plotWindow(from, to); err != nil {
		return err
	}
	fig.Conn = conn
	switch {
	case len(rest) > 1:
		return usagef("plot draws one capture at a time, but got %d files; give one CAPTURE.pcap (and --trace FILE for the same run).", len(rest))
	case len(rest) == 0 && traceFile == "":
		return usagef("give a capture to draw, as in tunstack plot -o plot.svg serve.pcap, or a trace with --trace FILE.")
	case out == "":
		return usagef("give the file to write with -o, as in -o plot.svg or -o plot.png.")
	}
	format, err := viz.Format(out)
	if err != nil {
		return usagef("-o %q: give a file name ending in .svg or .png; the extension says the format.", out)
	}
	if err := checkOutputFile("o", "plot.svg", out); err != nil {
		return err
	}
	if len(rest) == 1 {
		if fig.Capture, err = readCaptureFile(rest[0]); err != nil {
			return err
		}
	}
	if traceFile != "" {
		f, err := os.Open(traceFile)
		if err != nil {
			return usagef("cannot read the trace %s (%v); give a file written by tunstack serve --trace.", traceFile, errors.Unwrap(err))
		}
		fig.Trace, err = viz.ReadTrace(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("reading the trace %s: %w", traceFile, err)
		}
	}
	var buf bytes.Buffer
	notes, err := fig.Write(&buf, format)
	for _, n := range notes {
		fmt.Fprintf(stderr, "tunstack plot: %s.\n", n)
	}
	var nf *viz.ConnNotFoundError
	switch {
	case errors.As(err, &nf):
		return usagef("--conn: %s.", nf.Error())
	case err != nil:
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", out)
	return nil
}

// readCaptureFile reads a capture; a file that is not one, or is not
// there, is a mistake in the command line.
func readCaptureFile(name string) (*viz.Capture, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, usagef("cannot read the capture %s (%v); give a pcap file, as written by tunstack serve --pcap or tcpdump -w.", name, errors.Unwrap(err))
	}
	defer f.Close()
	c, err := viz.ReadCapture(f)
	if errors.Is(err, viz.ErrNotPcap) {
		return nil, usagef("%s is not a pcap or pcapng capture; give a file written by tunstack serve --pcap, tcpdump -w or tshark -w.", name)
	}
	return c, err
}

// checkConnFlag checks --conn: all, or LOCAL-REMOTE.
func checkConnFlag(v string) error {
	if v == "all" {
		return nil
	}
	if _, _, err := viz.ParseConnName(v); err != nil {
		return usagef("--conn takes all or LOCAL-REMOTE, two address:port pairs as in --conn 198.18.0.2:80-198.18.0.1:40000, not %q.", v)
	}
	return nil
}

// plotWindow reads --from and --to, seconds on the graph's time axis.
func plotWindow(from, to string) (viz.Window, error) {
	var w viz.Window
	for _, f := range []struct {
		name, v string
		dst     *float64
		set     *bool
	}{{"from", from, &w.From, &w.HasFrom}, {"to", to, &w.To, &w.HasTo}} {
		if f.v == "" {
			continue
		}
		x, err := strconv.ParseFloat(f.v, 64)
		if err != nil || x < 0 {
			return w, usagef("--%s takes seconds since the capture's first packet, as in --%s 1.5, not %q.", f.name, f.name, f.v)
		}
		*f.dst, *f.set = x, true
	}
	if w.HasFrom && w.HasTo && w.To <= w.From {
		return w, usagef("--to (%s) must be after --from (%s).", to, from)
	}
	return w, nil
}
