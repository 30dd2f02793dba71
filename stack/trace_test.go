package stack

import (
	"crypto/sha256"
	"io"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"tunstack/netif"
	"tunstack/tcpcore"
)

// traceLog collects what Config.Trace delivers.
type traceLog struct {
	mu     sync.Mutex
	events []TraceEvent
}

func (l *traceLog) add(ev TraceEvent) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
}

func (l *traceLog) snapshot() []TraceEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// newTracedPair is newPair with the server side (b) tracing and its link
// impaired by spec.
func newTracedPair(t *testing.T, spec string, log *traceLog) *pair {
	t.Helper()
	pa, pb := netif.NewPipe(testMTU)
	is, err := netif.ParseImpairSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := netif.NewImpairedLink(pb, is)
	if err != nil {
		t.Fatal(err)
	}
	return startPair(t, pa, ib, pa, pb,
		Config{Addr: addrA, Secret: [32]byte{1}},
		Config{Addr: addrB, Secret: [32]byte{2}, Trace: log.add})
}

// TestTraceReportsEveryCongestionEventOfALossyTransfer sends 8 MiB from
// the traced side through loss, reordering and duplication, and checks
// that each event names the connection and carries a plausible state, and
// that the events add up to the engine's own counters.
func TestTraceReportsEveryCongestionEventOfALossyTransfer(t *testing.T) {
	log := new(traceLog)
	p := newTracedPair(t, "loss=2%,reorder=1%,dup=1%,seed=5", log)
	start := time.Now()
	c, s := p.connect(t, 8080)
	const size = 8 << 20
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(s, newPatternReader(size))
		done <- err
	}()
	c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	h := sha256.New()
	if n, err := io.CopyN(h, c, size); err != nil {
		t.Fatalf("read after %d bytes: %v", n, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write: %v", err)
	}
	if got, want := sum(h), patternSHA256(size); got != want {
		t.Fatal("the received bytes differ from the sent ones")
	}
	// The last event may come with the final ACK, after the reader has
	// everything; Info is taken under the same lock the events are
	// delivered under, so the two agree from here on only once the
	// sender has nothing outstanding.
	info := waitInfo(t, s, func(in tcpcore.Info) bool { return in.BytesInFlight == 0 })
	end := time.Now()
	events := log.snapshot()
	t.Logf("%d events in %v; counters %+v", len(events), end.Sub(start).Round(time.Millisecond), info.Counters)

	local, remote := netip.MustParseAddrPort(s.LocalAddr().String()), netip.MustParseAddrPort(s.RemoteAddr().String())
	kinds := map[string]uint64{}
	var prev time.Time
	for i, ev := range events {
		kinds[ev.Event]++
		bad := func(what string) { t.Errorf("event %d %+v: %s", i, ev, what) }
		switch {
		case ev.Local != local || ev.Remote != remote:
			bad("not the connection " + local.String() + " -> " + remote.String())
		case ev.Time.Before(start) || ev.Time.After(end):
			bad("time outside the transfer")
		case ev.Time.Before(prev):
			bad("earlier than the event before it")
		case ev.CwndBytes <= 0 || ev.SSThreshBytes <= 0 || ev.FlightBytes < 0:
			bad("window sizes out of range")
		case !slices.Contains([]string{"open", "recovery", "loss"}, ev.State):
			bad("unknown state")
		case !ev.RTTKnown || ev.SRTT <= 0 || ev.RTO < ev.SRTT:
			bad("no RTT estimate although the application holds the connection")
		}
		prev = ev.Time
	}
	if kinds["fast-retransmit"] == 0 {
		t.Errorf("no fast-retransmit event in %d events (%v)", len(events), kinds)
	}
	cn := info.Counters
	for _, k := range []struct {
		event   string
		counter uint64
		name    string
	}{
		{"fast-retransmit", cn.FastRecoveries, "FastRecoveries"},
		{"rto", cn.Timeouts, "Timeouts"},
		{"dsack", cn.DSACKsReceived, "DSACKsReceived"},
		{"undo", cn.SpuriousUndos, "SpuriousUndos"},
	} {
		if kinds[k.event] != k.counter {
			t.Errorf("%d %q events, but the connection counts %d %s", kinds[k.event], k.event, k.counter, k.name)
		}
	}
}

// waitInfo waits until c's Info satisfies ok, and returns it.
func waitInfo(t *testing.T, c *Conn, ok func(tcpcore.Info) bool) tcpcore.Info {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		in := c.Info()
		if ok(in) {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection never reached the state wanted: %+v", in)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConnTotalsKeepTheCountersOfFinishedConnections checks that a
// connection's counters stay in ConnTotals once the application has closed
// it, while the engine finishes it and after, and that AllConns lists it
// only while the engine still runs it.
func TestConnTotalsKeepTheCountersOfFinishedConnections(t *testing.T) {
	p := newPair(t, 0, 9)
	listed := func(infos []tcpcore.Info, c net.Conn) bool {
		return slices.ContainsFunc(infos, func(in tcpcore.Info) bool { return in.Local.String() == c.LocalAddr().String() })
	}

	// Passive close on b: the client closes first, b answers with its FIN
	// and sits in LAST-ACK until the client's ACK ends it.
	c, s := p.connect(t, 9000)
	if _, err := c.Write(make([]byte, 100_000)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, 100_000)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := s.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after the peer's FIN: %v, want EOF", err)
	}
	before := s.Info().Counters
	if before.SegsIn == 0 || before.BytesReceived != 100_000 {
		t.Fatalf("counters before close: %+v", before)
	}
	s.Close()
	if got := p.b.ConnTotals(); got.BytesReceived != 100_000 || got.SegsIn < before.SegsIn {
		t.Errorf("just after Close, ConnTotals = %+v; want at least %+v", got, before)
	}
	// Once the client's ACK of our FIN arrives the engine closes the
	// connection and the stack forgets it, keeping its counters.
	deadline := time.Now().Add(10 * time.Second)
	for listed(p.b.AllConns(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the closed connection is still listed: %+v", p.b.AllConns())
		}
		time.Sleep(5 * time.Millisecond)
	}
	after := p.b.ConnTotals()
	if after.BytesReceived != 100_000 || after.SegsIn <= before.SegsIn {
		t.Errorf("after the connection ended, ConnTotals = %+v; want its counters (%+v and the final ACK)", after, before)
	}

	// Active close on b with unread data: an RST, and the connection is
	// over at once.
	c2, s2 := p.connect(t, 9001)
	if _, err := c2.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	waitInfo(t, s2, func(in tcpcore.Info) bool { return in.Counters.BytesReceived == 1000 })
	s2.Close()
	if listed(p.b.AllConns(), s2) {
		t.Error("a connection reset by Close is still listed")
	}
	if got := p.b.ConnTotals().BytesReceived; got != 101_000 {
		t.Errorf("ConnTotals counts %d bytes received, want 101000", got)
	}

	// An open connection is listed and counted; Stack.Close ends it and
	// its counters stay.
	_, s3 := p.connect(t, 9002)
	if !listed(p.b.AllConns(), s3) || !listed(p.b.Conns(), s3) {
		t.Error("an open connection is not listed")
	}
	total := p.b.ConnTotals()
	p.b.Close()
	if got := p.b.ConnTotals(); got != total || len(p.b.AllConns()) != 0 {
		t.Errorf("after Stack.Close: totals %+v (were %+v), %d connections listed", got, total, len(p.b.AllConns()))
	}
}

func TestAddCountersSumsEveryField(t *testing.T) {
	var a, b tcpcore.ConnCounters
	va, vb := reflect.ValueOf(&a).Elem(), reflect.ValueOf(&b).Elem()
	for i := range va.NumField() {
		switch va.Field(i).Kind() {
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			va.Field(i).SetUint(uint64(i + 1))
			vb.Field(i).SetUint(uint64(10 * (i + 1)))
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			va.Field(i).SetInt(int64(i + 1))
			vb.Field(i).SetInt(int64(10 * (i + 1)))
		default:
			t.Fatalf("ConnCounters.%s is a %v, which addCounters does not sum", va.Type().Field(i).Name, va.Field(i).Kind())
		}
	}
	addCounters(&a, b)
	for i := range va.NumField() {
		f := va.Field(i)
		var got int64
		if f.CanUint() {
			got = int64(f.Uint())
		} else {
			got = f.Int()
		}
		if want := int64(11 * (i + 1)); got != want {
			t.Errorf("%s = %d after adding, want %d", va.Type().Field(i).Name, got, want)
		}
	}
}

// TestTraceSamplesDrawTheWindowBetweenEvents sends 4 MiB from the traced
// side over a round trip of 5 ms or more with some loss: slow start must
// show as samples of a growing cwnd before the first congestion event
// (without samples there is no record before it), each sample
// must record a change (of cwnd, ssthresh or flight) since the connection's
// previous record, and once everything is acknowledged the last record must
// be the connection's state as Info reports it, with nothing in flight.
func TestTraceSamplesDrawTheWindowBetweenEvents(t *testing.T) {
	log := new(traceLog)
	p := newTracedPair(t, "delay=5ms,loss=1%,seed=3", log)
	c, s := p.connect(t, 8081)
	const size = 4 << 20
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(s, newPatternReader(size))
		done <- err
	}()
	c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	if n, err := io.CopyN(io.Discard, c, size); err != nil {
		t.Fatalf("read after %d bytes: %v", n, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write: %v", err)
	}
	info := waitInfo(t, s, func(in tcpcore.Info) bool { return in.BytesInFlight == 0 })
	// Info and the records are taken under the same lock: with nothing in
	// flight and nothing more to send, no later record can come.
	records := log.snapshot()
	local := netip.MustParseAddrPort(s.LocalAddr().String())

	var samples, slowStart, events, first, peak int
	var prev *TraceEvent
	climbed := 0
	for i := range records {
		r := &records[i]
		if r.Local != local {
			continue
		}
		if r.Event != TraceSample {
			events++
			prev = r
			continue
		}
		samples++
		if !r.RTTKnown || r.CwndBytes <= 0 || r.FlightBytes < 0 {
			t.Errorf("sample %d %+v: no RTT or windows out of range", i, *r)
		}
		if prev != nil && prev.CwndBytes == r.CwndBytes && prev.SSThreshBytes == r.SSThreshBytes && prev.FlightBytes == r.FlightBytes {
			t.Errorf("sample %d repeats the record before it: %+v after %+v", i, *r, *prev)
		}
		if events == 0 {
			slowStart++
			if first == 0 {
				first = r.CwndBytes
			}
			peak = max(peak, r.CwndBytes)
			if prev != nil && r.CwndBytes > prev.CwndBytes {
				climbed++
			}
			if prev != nil && r.CwndBytes < prev.CwndBytes {
				t.Errorf("sample %d: cwnd fell from %d to %d in slow start, before any congestion event", i, prev.CwndBytes, r.CwndBytes)
			}
		}
		prev = r
	}
	t.Logf("%d records of the connection: %d samples (%d before the first event, cwnd rising in %d from %d to %d bytes), %d events", samples+events, samples, slowStart, climbed, first, peak, events)
	if prev == nil {
		t.Fatal("no record of the connection")
	}
	if events == 0 {
		t.Fatal("no congestion event: the loss did not hit this transfer, so slow start's end is not checked; change the seed")
	}
	// From the initial window of 10 segments, doubling each round trip
	// (the pipe hands over a round's ACKs together, so a round is one
	// engine call and one sample): three rises at least, to four times
	// the first sample's window or more.
	if climbed < 3 || peak < 4*first {
		t.Errorf("before the first congestion event: %d samples, cwnd rising in %d, from %d to %d bytes; want slow start's climb drawn (3 rises at least, to 4 times the start)", slowStart, climbed, first, peak)
	}
	if prev.FlightBytes != 0 || prev.CwndBytes != info.CwndBytes || prev.SSThreshBytes != info.SSThreshBytes {
		t.Errorf("last record %+v; the connection, with everything acknowledged: cwnd %d ssthresh %d flight %d", *prev, info.CwndBytes, info.SSThreshBytes, info.BytesInFlight)
	}
}
