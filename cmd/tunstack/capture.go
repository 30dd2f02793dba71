package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"tunstack/netif"
	"tunstack/stack"
)

// The capture and trace files that serve and relay both open on request
// (--pcap, --trace). Each helper adds to cleanups what undoes it, to be run
// last first.

// startPcap creates the capture file path and returns link with a pcap tap
// writing to it.
func startPcap(link netif.Link, path string, cleanups *[]func()) (netif.Link, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cannot create the capture file: %w", err)
	}
	*cleanups = append(*cleanups, func() { f.Close() })
	tap, err := netif.NewPcapTap(link, f)
	if err != nil {
		return nil, fmt.Errorf("cannot start the capture: %w", err)
	}
	return tap, nil
}

// startTrace creates the trace file path and returns the trace writer's
// Event, for stack.Config.Trace. Its cleanup stops the writer, closes the
// file and prints the writer's summary to out.
func startTrace(path string, out io.Writer, cleanups *[]func()) (func(stack.TraceEvent), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cannot create the trace file: %w", err)
	}
	tw := newTraceWriter(f, time.Now(), traceQueueLen, traceFlushEvery)
	*cleanups = append(*cleanups, func() {
		sum := tw.Close()
		if err := f.Close(); err != nil && sum.Err == nil {
			sum.Err = err
		}
		fmt.Fprintf(out, "trace %s: %s\n", path, sum)
	})
	return tw.Event, nil
}
