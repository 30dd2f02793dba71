package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"tunstack/demo"
	"tunstack/viz"
)

func TestSoakFlagsDefaultsAndMistakes(t *testing.T) {
	cfg, err := parseSoakFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Duration != 30*time.Minute || cfg.Conns != 1000 || cfg.Impair != "loss=1%,reorder=1%,dup=0.5%,delay=5ms" || cfg.Every != 10*time.Second {
		t.Fatalf("defaults %+v", cfg)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--duration", "soon"}, "--duration takes a duration"},
		{[]string{"--conns", "0"}, "--conns must be a number of connections"},
		{[]string{"--impair", "loss=lots"}, "loss"},
		{[]string{"extra"}, "takes no arguments"},
	} {
		_, err := parseSoakFlags(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}

func TestReadPatternFindsTheFirstWrongByte(t *testing.T) {
	var b bytes.Buffer
	demo.WritePattern(&b, 100000)
	good := b.Bytes()
	got, bad, err := readPattern(bytes.NewReader(good), len(good))
	if got != len(good) || bad != -1 || err != nil {
		t.Fatalf("the pattern: %d read, bad %d, %v", got, bad, err)
	}
	broken := bytes.Clone(good)
	broken[70000] ^= 1
	if _, bad, _ := readPattern(bytes.NewReader(broken), len(broken)); bad != 70000 {
		t.Fatalf("bad byte found at %d, want 70000", bad)
	}
	if got, _, err := readPattern(bytes.NewReader(good[:500]), 1000); got != 500 || err != io.EOF {
		t.Fatalf("short body: %d read, %v, want 500 and EOF", got, err)
	}
}

func soakSamples(end viz.SoakSample) []viz.SoakSample {
	return []viz.SoakSample{
		{T: 0, HeapBytes: 4 << 20, Goroutines: 19, Conns: 0, FDs: 15},
		{T: 10, HeapBytes: 200 << 20, Goroutines: 980, Conns: 990, FDs: 16},
		end,
	}
}

func TestSoakJudgeFailsOnGrowthThatDoesNotReturn(t *testing.T) {
	ok := viz.SoakSample{T: 20, HeapBytes: 30 << 20, Goroutines: 20, Conns: 0, FDs: 15}
	for _, c := range []struct {
		name    string
		end     viz.SoakSample
		settled bool
		want    string
	}{
		{"returned", ok, true, ""},
		{"connections left", viz.SoakSample{T: 20, HeapBytes: 30 << 20, Goroutines: 20, Conns: 47, FDs: 15}, false, "connections did not return to zero"},
		{"goroutines left", viz.SoakSample{T: 20, HeapBytes: 30 << 20, Goroutines: 66, FDs: 15}, true, "goroutines did not return"},
		{"descriptors left", viz.SoakSample{T: 20, HeapBytes: 30 << 20, Goroutines: 20, FDs: 40}, true, "file descriptors did not return"},
		{"heap kept", viz.SoakSample{T: 20, HeapBytes: 150 << 20, Goroutines: 20, FDs: 15}, true, "the live heap did not return"},
	} {
		r := &soakReport{Samples: soakSamples(c.end), LoadEndS: 15}
		r.Baseline = r.Samples[0]
		r.Totals.BytesChecked = 1
		if c.settled {
			r.SettledS = 20
		}
		r.judge()
		got := strings.Join(r.Failures, "; ")
		if c.want == "" {
			if !r.Passed || got != "" {
				t.Errorf("%s: failed: %s", c.name, got)
			}
			continue
		}
		if r.Passed || !strings.Contains(got, c.want) {
			t.Errorf("%s: failures %q, want one saying %q", c.name, got, c.want)
		}
	}
	r := &soakReport{Samples: soakSamples(ok), SettledS: 20}
	r.Baseline = r.Samples[0]
	r.Totals.BytesChecked = 100
	r.Totals.Corruptions = 1
	r.Totals.fail("echo", io.ErrUnexpectedEOF)
	r.judge()
	if got := strings.Join(r.Failures, "; "); !strings.Contains(got, "1 transfers delivered bytes other than those sent") || !strings.Contains(got, "1 client operations failed") {
		t.Errorf("corruption and errors: %q", got)
	}
}

func TestSoakStatesLeftCountsByStateAndPort(t *testing.T) {
	ss := "State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n" +
		"LISTEN 0 128 198.18.0.2:80 0.0.0.0:*\n" +
		"ESTAB 0      0         198.18.0.2:80     198.18.0.1:33246\n" +
		"\t cubic wscale:10,7 rto:956.345\n" +
		"ESTAB 0      0         198.18.0.2:80     198.18.0.1:33668\n" +
		"FIN-WAIT-1 0 100 198.18.0.2:7 198.18.0.1:40000\n"
	got := soakStatesLeft(ss)
	if len(got) != 2 || got["ESTAB :80"] != 2 || got["FIN-WAIT-1 :7"] != 1 {
		t.Fatalf("left %v", got)
	}
}

// The baseline is the first sample after serve's first garbage
// collection: before it, go_gc_heap_live_bytes reads 0, which is no
// live heap to judge the end against.
func TestSoakBaselineWaitsForTheFirstGC(t *testing.T) {
	exited := make(chan error)
	seq := []viz.SoakSample{{Goroutines: 19}, {Goroutines: 19}, {HeapBytes: 3 << 20, GCs: 1, Goroutines: 19}, {HeapBytes: 9 << 20, GCs: 2}}
	calls := 0
	sample := func() (viz.SoakSample, error) {
		calls++
		if calls == 1 {
			return viz.SoakSample{}, errors.New("connection refused") // not ready yet
		}
		s := seq[0]
		seq = seq[1:]
		return s, nil
	}
	base, err := awaitBaseline(context.Background(), sample, exited, time.Minute, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if base.GCs != 1 || base.HeapBytes != 3<<20 || calls != 4 {
		t.Fatalf("baseline %+v after %d samples, want the live heap of 3 MiB after the first GC, the 4th sample", base, calls)
	}

	// A serve that never collects within the wait: the last sample stands.
	base, err = awaitBaseline(context.Background(), func() (viz.SoakSample, error) { return viz.SoakSample{Goroutines: 19}, nil }, exited, time.Minute, 0)
	if err != nil || base.Goroutines != 19 || base.GCs != 0 {
		t.Fatalf("with no GC in the wait: baseline %+v, err %v; want the sample taken, no error", base, err)
	}

	// Metrics that never answer, and a serve that exits.
	never := func() (viz.SoakSample, error) { return viz.SoakSample{}, errors.New("connection refused") }
	if _, err := awaitBaseline(context.Background(), never, exited, 0, time.Minute); err == nil || !strings.Contains(err.Error(), "did not answer within") {
		t.Errorf("metrics that never answer: err %v", err)
	}
	gone := make(chan error, 1)
	gone <- errors.New("exit status 1")
	if _, err := awaitBaseline(context.Background(), never, gone, time.Minute, time.Minute); err == nil || !strings.Contains(err.Error(), "serve exited before it was ready (exit status 1)") {
		t.Errorf("serve that exits: err %v", err)
	}
}
