package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"tunstack/stack"
	"tunstack/viz"
)

var (
	traceStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	traceLocal = netip.MustParseAddrPort("198.18.0.2:80")
	tracePeer  = netip.MustParseAddrPort("198.18.0.1:40000")
)

// traceEvent is the i-th of a made-up series of events, one a second.
func traceEvent(i int) stack.TraceEvent {
	return stack.TraceEvent{
		Time:  traceStart.Add(time.Duration(i)*time.Second + 1500*time.Microsecond),
		Local: traceLocal, Remote: tracePeer, Event: "fast-retransmit",
		CwndBytes: 1000 * (i + 1), SSThreshBytes: 2000 * (i + 1), FlightBytes: 500 * (i + 1),
		State: "recovery", SRTT: 1234 * time.Microsecond, RTO: 201 * time.Millisecond, RTTKnown: true,
	}
}

// lockedBuffer is a bytes.Buffer the writer goroutine and the test share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestTraceWriterWritesOneJSONObjectPerLine(t *testing.T) {
	var out lockedBuffer
	tw := newTraceWriter(&out, traceStart, 16, time.Hour)
	tw.Event(traceEvent(0))
	unknown := traceEvent(1)
	unknown.Event, unknown.State, unknown.RTTKnown, unknown.SRTT, unknown.RTO = "rto", "loss", false, 0, 0
	tw.Event(unknown)
	sum := tw.Close()
	if sum.Written != 2 || sum.Dropped != 0 || sum.Err != nil {
		t.Fatalf("summary %+v, want 2 written and nothing else", sum)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), out.String())
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("line 1 %q: %v", lines[0], err)
	}
	want := map[string]any{
		"time": "2026-01-02T03:04:05.0015Z", "t_s": 0.0015,
		"local": "198.18.0.2:80", "remote": "198.18.0.1:40000", "event": "fast-retransmit",
		"cwnd_bytes": 1000.0, "ssthresh_bytes": 2000.0, "flight_bytes": 500.0, "state": "recovery",
		"srtt_us": 1234.0, "rto_us": 201000.0,
	}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("line 1: %s = %v (%T), want %v", k, first[k], first[k], v)
		}
	}
	if len(first) != len(want) {
		t.Errorf("line 1 has %d fields, want %d: %s", len(first), len(want), lines[0])
	}
	var second map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatalf("line 2 %q: %v", lines[1], err)
	}
	for k, v := range map[string]any{"event": "rto", "state": "loss", "t_s": 1.0015, "srtt_us": nil, "rto_us": nil} {
		if got, ok := second[k]; !ok || got != v {
			t.Errorf("line 2: %s = %v, want %v", k, got, v)
		}
	}
}

// signalWriter tells the test about each write that reaches it.
type signalWriter struct {
	lockedBuffer
	wrote chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	n, err := w.lockedBuffer.Write(p)
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return n, err
}

func TestTraceWriterFlushesWhileRunning(t *testing.T) {
	w := &signalWriter{wrote: make(chan struct{}, 1)}
	tw := newTraceWriter(w, traceStart, 16, 10*time.Millisecond)
	defer tw.Close()
	tw.Event(traceEvent(0))
	// One short line sits in a 64 KiB buffer: only the periodic flush
	// writes it before Close.
	select {
	case <-w.wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("the event did not reach the file without Close")
	}
	if s := w.String(); !strings.HasSuffix(s, "\n") || !strings.Contains(s, `"event":"fast-retransmit"`) {
		t.Fatalf("file holds %q, want the whole line", s)
	}
}

// stuckWriter blocks every write until released, like a disk that has
// stopped answering.
type stuckWriter struct {
	entered chan struct{} // receives once a write is blocked
	release chan struct{}
	lockedBuffer
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	select {
	case w.entered <- struct{}{}:
	default:
	}
	<-w.release
	return w.lockedBuffer.Write(p)
}

func TestTraceWriterDropsAndCountsInsteadOfBlocking(t *testing.T) {
	w := &stuckWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	const queue = 4
	tw := newTraceWriter(w, traceStart, queue, time.Millisecond)
	tw.Event(traceEvent(0))
	<-w.entered // the writer is stuck flushing event 0

	// Were Event to wait for the writer, this would never finish; the
	// test's own timeout is the net.
	const burst = 100
	for i := 1; i <= burst; i++ {
		tw.Event(traceEvent(i))
	}
	close(w.release)
	sum := tw.Close()
	if sum.Written != 1+queue || sum.Dropped != burst-queue || sum.Err != nil {
		t.Fatalf("summary %+v, want %d written and %d dropped", sum, 1+queue, burst-queue)
	}
	if n := strings.Count(w.String(), "\n"); n != 1+queue {
		t.Errorf("%d lines in the file, want %d", n, 1+queue)
	}
	if s := sum.String(); !strings.Contains(s, "96 dropped") {
		t.Errorf("summary %q does not say how many were dropped", s)
	}
	tw.Event(traceEvent(200))
	if got := tw.Close().Dropped; got != burst-queue+1 {
		t.Errorf("an event after Close: dropped %d, want %d", got, burst-queue+1)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestTraceWriterReportsAWriteError(t *testing.T) {
	tw := newTraceWriter(failingWriter{}, traceStart, 16, time.Hour)
	for i := range 3 {
		tw.Event(traceEvent(i))
	}
	sum := tw.Close()
	// The lines fit the buffer, so the error comes at the final flush.
	if sum.Err == nil || sum.Written != 0 || sum.Failed != 3 || !strings.Contains(sum.String(), "3 lost to a write error: disk full") {
		t.Fatalf("summary %+v (%s), want 3 events lost to the write error", sum, sum)
	}
}

// A sample and an event written by serve's writer read back through
// viz.ReadTrace, the plot's reader, as the same records.
func TestTraceSamplesRoundTripThroughThePlotReader(t *testing.T) {
	var out lockedBuffer
	tw := newTraceWriter(&out, traceStart, 16, time.Hour)
	sample := traceEvent(0)
	sample.Event, sample.State = stack.TraceSample, "open"
	tw.Event(sample)
	tw.Event(traceEvent(1))
	if sum := tw.Close(); sum.Written != 2 || !strings.Contains(sum.String(), "2 trace records (congestion events and samples) written") {
		t.Fatalf("summary %+v (%s), want 2 records written", sum, sum)
	}
	tr, err := viz.ReadTrace(strings.NewReader(out.String()))
	if err != nil || len(tr.Bad) != 0 || len(tr.Points) != 2 {
		t.Fatalf("read back: %d points, bad %q, %v; want 2", len(tr.Points), tr.Bad, err)
	}
	for i, ev := range []stack.TraceEvent{sample, traceEvent(1)} {
		p := tr.Points[i]
		want := viz.TracePoint{Time: ev.Time, Seconds: float64(ev.Time.Sub(traceStart).Microseconds()) / 1e6,
			Local: ev.Local.String(), Remote: ev.Remote.String(), Event: ev.Event, Cwnd: ev.CwndBytes,
			SSThresh: ev.SSThreshBytes, Flight: ev.FlightBytes, State: ev.State, SRTT: ev.SRTT, SRTTKnown: true}
		if !p.Time.Equal(want.Time) {
			t.Errorf("record %d: time %v, want %v", i, p.Time, want.Time)
		}
		p.Time = want.Time
		if p != want {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, p, want)
		}
	}
	if tr.Points[0].Event != viz.TraceSample {
		t.Errorf("the sample reads back as event %q, want %q", tr.Points[0].Event, viz.TraceSample)
	}
}
