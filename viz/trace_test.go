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
