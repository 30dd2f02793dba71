package viz

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const sampleTrace = `{"time":"2026-01-02T03:04:05.100Z","t_s":0.1,"local":"10.0.0.2:80","remote":"10.0.0.1:5000","event":"fast-retransmit","cwnd_bytes":14480,"ssthresh_bytes":14480,"flight_bytes":20000,"state":"open","srtt_us":20000,"rto_us":220000}
{"time":"2026-01-02T03:04:05.120Z","t_s":0.12,"local":"10.0.0.2:80","remote":"10.0.0.1:5000","event":"partial-ack","cwnd_bytes":14480,"ssthresh_bytes":14480,"flight_bytes":13000,"state":"recovery","srtt_us":21000,"rto_us":221000}
not json at all
{"t_s":0.13,"local":"10.0.0.2:80"}

{"time":"2026-01-02T03:04:05.150Z","t_s":0.15,"local":"10.0.0.2:80","remote":"10.0.0.1:5000","event":"recovery-end","cwnd_bytes":14480,"ssthresh_bytes":14480,"flight_bytes":10000,"state":"open","srtt_us":22000,"rto_us":222000}
{"time":"2026-01-02T03:04:05.300Z","t_s":0.3,"local":"10.0.0.2:80","remote":"10.0.0.1:5000","event":"rto","cwnd_bytes":1448,"ssthresh_bytes":7240,"flight_bytes":0,"state":"loss","srtt_us":null,"rto_us":null}
{"time":"2026-01-02T03:04:05.200Z","t_s":0.2,"local":"10.0.0.2:81","remote":"10.0.0.1:6000","event":"dsack","cwnd_bytes":2000,"ssthresh_bytes":2147483647,"flight_bytes":0,"state":"open","srtt_us":1000,"rto_us":201000}
`

func TestReadTrace(t *testing.T) {
	tr, err := ReadTrace(strings.NewReader(sampleTrace))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Points) != 5 || len(tr.Bad) != 2 || !strings.HasPrefix(tr.Bad[0], "line 3 ") || !strings.HasPrefix(tr.Bad[1], "line 4 ") {
		t.Fatalf("%d points, bad lines %q; want 5 and lines 3 and 4", len(tr.Points), tr.Bad)
	}
	want := TracePoint{Time: time.Date(2026, 1, 2, 3, 4, 5, 120e6, time.UTC), Seconds: 0.12, Local: "10.0.0.2:80", Remote: "10.0.0.1:5000",
		Event: "partial-ack", Cwnd: 14480, SSThresh: 14480, Flight: 13000, State: "recovery", SRTT: 21 * time.Millisecond, SRTTKnown: true}
	if !reflect.DeepEqual(tr.Points[1], want) {
		t.Errorf("point 1:\n got %+v\nwant %+v", tr.Points[1], want)
	}
	if p := tr.Points[3]; p.SRTTKnown || p.Event != "rto" {
		t.Errorf("rto point %+v: a null srtt_us is unknown", p)
	}
	if got := tr.Conns(); !reflect.DeepEqual(got, []string{"10.0.0.2:80-10.0.0.1:5000", "10.0.0.2:81-10.0.0.1:6000"}) {
		t.Errorf("connections %v, the busier first", got)
	}
	if n := len(tr.ConnPoints("10.0.0.1:5000-10.0.0.2:80")); n != 4 {
		t.Errorf("%d points of the connection named remote first, want 4", n)
	}
}

func TestEpisodes(t *testing.T) {
	tr, err := ReadTrace(strings.NewReader(sampleTrace))
	if err != nil {
		t.Fatal(err)
	}
	pts := tr.ConnPoints("10.0.0.2:80-10.0.0.1:5000")
	got := Episodes(pts, func(p TracePoint) float64 { return p.Seconds })
	// Fast recovery from the fast retransmit to recovery-end; the loss
	// state from the RTO, open at the last point, ends there.
	want := []Episode{{From: 0.1, To: 0.15, State: "recovery"}, {From: 0.3, To: 0.3, State: "loss"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("episodes %+v, want %+v", got, want)
	}
	// A trace that starts inside a recovery, and an RTO during one.
	mid := []TracePoint{
		{Seconds: 1, Event: "lost-retransmit", State: "recovery"},
		{Seconds: 2, Event: "rto", State: "loss"},
		{Seconds: 3, Event: "undo", State: "open"},
		{Seconds: 4, Event: "dsack", State: "open"},
	}
	got = Episodes(mid, func(p TracePoint) float64 { return p.Seconds })
	want = []Episode{{From: 1, To: 2, State: "recovery"}, {From: 2, To: 3, State: "loss"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("episodes %+v, want %+v", got, want)
	}
}

// sampledTrace is slow start (samples of a growing cwnd), a fast
// retransmit, samples during the recovery, its end, then congestion
// avoidance.
const sampledTrace = `{"t_s":0.00,"local":"10.0.0.2:80","remote":"10.0.0.1:5000","event":"sample","cwnd_bytes":14480,"ssthresh_bytes":2147483647,"flight_bytes":14480,"state":"open","srtt_us":10000}
{"t_s":0.01,"local":"10.0.0.2:80","remote":"10.0.0.1:5000","event":"sample","cwnd_bytes":28960,"ssthresh_bytes":2147483647,"flight_bytes":28960,"state":"open","srtt_us":10000}
{"t_s":0.02,"local":"10.0.0.2:80","remote":"10.0.0.1:5000","event":"sample","cwnd_bytes":57920,"ssthresh_bytes":2147483647,"flight_bytes":57920,"state":"open","srtt_us":11000}
{"t_s":0.03,"local":"10.0.0.2:80","remote":"10.0.0.1:5000","event":"fast-retransmit","cwnd_bytes":57920,"ssthresh_bytes":28960,"flight_bytes":56472,"state":"recovery","srtt_us":12000}
{"t_s":0.03,"local":"10.0.0.2:80","remote":"10.0.0.1:5000","event":"sample","cwnd_bytes":55024,"ssthresh_bytes":28960,"flight_bytes":55024,"state":"recovery","srtt_us":12000}
{"t_s":0.04,"local":"10.0.0.2:80","remote":"10.0.0.1:5000","event":"recovery-end","cwnd_bytes":28960,"ssthresh_bytes":28960,"flight_bytes":28960,"state":"open","srtt_us":12000}
{"t_s":0.05,"local":"10.0.0.2:80","remote":"10.0.0.1:5000","event":"sample","cwnd_bytes":30408,"ssthresh_bytes":28960,"flight_bytes":30408,"state":"open","srtt_us":12000}
`

// With samples the window is a line and the events are marks on it, each
// kind in the legend; a trace of events alone keeps its marks at events.
func TestCwndPlotsDrawSamplesAsLinesWithEventsMarked(t *testing.T) {
	tr, err := ReadTrace(strings.NewReader(sampledTrace))
	if err != nil || len(tr.Points) != 7 || len(tr.Bad) != 0 {
		t.Fatalf("%d points, bad %q, %v; want 7 and none bad", len(tr.Points), tr.Bad, err)
	}
	eps := Episodes(tr.Points, func(p TracePoint) float64 { return p.Seconds })
	if want := []Episode{{From: 0.03, To: 0.04, State: "recovery"}}; !reflect.DeepEqual(eps, want) {
		t.Errorf("episodes %+v, want %+v: samples inside a recovery do not split it", eps, want)
	}
	svg := func(tr *Trace) string {
		var b strings.Builder
		if _, err := (Figure{Trace: tr}).Write(&b, "svg"); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	got := svg(tr)
	for _, want := range []string{">cwnd<", ">fast retransmit (recovery starts)<", ">recovery end or undo<", ">ssthresh<", ">flight size<", ">fast recovery<", ">smoothed RTT<"} {
		if !strings.Contains(got, want) {
			t.Errorf("the sampled trace's figure has no legend entry %s", want)
		}
	}
	for _, absent := range []string{">RTO<", "cwnd at a congestion event", ">other event"} {
		if strings.Contains(got, absent) {
			t.Errorf("the sampled trace's figure has a legend entry %s, for nothing in the trace", absent)
		}
	}
	old, err := ReadTrace(strings.NewReader(sampleTrace))
	if err != nil {
		t.Fatal(err)
	}
	got = svg(old)
	if !strings.Contains(got, ">cwnd at a congestion event<") || strings.Contains(got, ">fast retransmit (recovery starts)<") {
		t.Errorf("a trace without samples should keep cwnd as marks at its events, with their legend")
	}
}
