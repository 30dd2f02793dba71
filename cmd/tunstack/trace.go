package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"tunstack/stack"
)

// traceRecord is one line of `serve --trace FILE`: a JSON object per
// record, units in the names, so a plot needs no schema. A record is a
// congestion event (event names the kind), with the state right after it,
// or a sample (event "sample"): the state after an engine call that
// changed the connection's cwnd, ssthresh or flight since its previous
// record, at most one per connection per call (a batch of segments read,
// a timer run, an application call), so that cwnd can be drawn as a curve
// between the events. Samples are of the connections the application
// holds or has closed and the stack still runs; events are of all.
type traceRecord struct {
	Time          string  `json:"time"`       // wall clock, RFC 3339 with nanoseconds
	Seconds       float64 `json:"t_s"`        // since serve started, for the x axis
	Local         string  `json:"local"`      // the stack's side, address:port
	Remote        string  `json:"remote"`     // the peer's side
	Event         string  `json:"event"`      // sample, or an event: fast-retransmit, partial-ack, recovery-end, rto, undo, frto-undo, dsack, lost-retransmit, rescue, tlp, tlp-loss
	CwndBytes     int     `json:"cwnd_bytes"` // congestion window after the event, or when sampled
	SSThreshBytes int     `json:"ssthresh_bytes"`
	FlightBytes   int     `json:"flight_bytes"` // RFC 6675 pipe
	State         string  `json:"state"`        // open, recovery or loss
	SRTTMicros    *int64  `json:"srtt_us"`      // null when the stack does not hold the connection
	RTOMicros     *int64  `json:"rto_us"`
}

func newTraceRecord(ev stack.TraceEvent, start time.Time) traceRecord {
	r := traceRecord{
		Time:    ev.Time.UTC().Format(time.RFC3339Nano),
		Seconds: float64(ev.Time.Sub(start).Microseconds()) / 1e6,
		Local:   ev.Local.String(), Remote: ev.Remote.String(),
		Event: ev.Event, CwndBytes: ev.CwndBytes, SSThreshBytes: ev.SSThreshBytes,
		FlightBytes: ev.FlightBytes, State: ev.State,
	}
	if ev.RTTKnown {
		srtt, rto := ev.SRTT.Microseconds(), ev.RTO.Microseconds()
		r.SRTTMicros, r.RTOMicros = &srtt, &rto
	}
	return r
}

// traceWriter writes trace records as JSON lines. Event is called by
// the stack with its lock held, in the middle of the data path, so it never
// waits: it hands the event to a bounded queue, and a goroutine of its own
// encodes and writes. If the disk falls behind and the queue is full, the
// event is dropped and counted (Close reports the count). The output is
// buffered and flushed every flushEvery and at Close, so `tail -f` sees the
// events with at most that delay.
type traceWriter struct {
	q         chan stack.TraceEvent
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when the writer goroutine has finished
	closeOnce sync.Once

	start   time.Time
	dropped atomic.Uint64 // queue full, or enqueued after Close
	closed  atomic.Bool

	// Owned by the writer goroutine until done is closed.
	w       *bufio.Writer
	written uint64 // events that reached the file
	pending uint64 // events in w's buffer, not yet flushed
	failed  uint64 // events lost to a write error
	err     error  // the first write error
}

// traceQueueLen bounds the events waiting for the writer: at about 200
// bytes a line, 64 Ki events are 13 MB of disk lag before anything is lost.
const traceQueueLen = 1 << 16

// traceFlushEvery is how stale the file may be behind the events.
const traceFlushEvery = 200 * time.Millisecond

// newTraceWriter starts writing to w; start is the origin of t_s.
func newTraceWriter(w io.Writer, start time.Time, queueLen int, flushEvery time.Duration) *traceWriter {
	t := &traceWriter{
		q:     make(chan stack.TraceEvent, queueLen),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		start: start,
		w:     bufio.NewWriterSize(w, 64<<10),
	}
	go t.run(flushEvery)
	return t
}

// Event queues one event; it never blocks. It is stack.Config.Trace.
func (t *traceWriter) Event(ev stack.TraceEvent) {
	if t.closed.Load() {
		t.dropped.Add(1)
		return
	}
	select {
	case t.q <- ev:
	default:
		t.dropped.Add(1)
	}
}

func (t *traceWriter) run(flushEvery time.Duration) {
	defer close(t.done)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	enc := json.NewEncoder(t.w)
	// A failed write loses what the buffer held; bufio.Writer keeps the
	// error, so nothing after it is written either.
	fail := func(err error, lost uint64) {
		t.err = err
		t.failed += t.pending + lost
		t.pending = 0
	}
	write := func(ev stack.TraceEvent) {
		if t.err != nil {
			t.failed++
			return
		}
		if err := enc.Encode(newTraceRecord(ev, t.start)); err != nil {
			fail(err, 1)
			return
		}
		t.pending++
	}
	flush := func() {
		if t.err != nil || t.pending == 0 {
			return
		}
		if err := t.w.Flush(); err != nil {
			fail(err, 0)
			return
		}
		t.written += t.pending
		t.pending = 0
	}
	for {
		select {
		case ev := <-t.q:
			write(ev)
		case <-tick.C:
			flush()
		case <-t.stop:
			// Everything queued before Close is written.
			for {
				select {
				case ev := <-t.q:
					write(ev)
				default:
					flush()
					return
				}
			}
		}
	}
}

// traceSummary is what a finished trace did.
type traceSummary struct {
	Written, Dropped, Failed uint64
	Err                      error
}

// String says it in one sentence for serve's exit message.
func (s traceSummary) String() string {
	msg := fmt.Sprintf("%d trace records (congestion events and samples) written", s.Written)
	if s.Dropped > 0 {
		msg += fmt.Sprintf(", %d dropped because the file could not keep up", s.Dropped)
	}
	if s.Err != nil {
		msg += fmt.Sprintf(", %d lost to a write error: %v", s.Failed, s.Err)
	}
	return msg
}

// Close writes what is queued, flushes, and stops the writer goroutine.
// Events that arrive after Close are dropped and counted; serve closes the
// stack first, so none do. The caller closes the underlying writer
// afterwards.
func (t *traceWriter) Close() traceSummary {
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		close(t.stop)
	})
	<-t.done
	// An Event racing with Close may have queued after the last drain.
	for len(t.q) > 0 {
		<-t.q
		t.dropped.Add(1)
	}
	return traceSummary{Written: t.written, Dropped: t.dropped.Load(), Failed: t.failed, Err: t.err}
}
