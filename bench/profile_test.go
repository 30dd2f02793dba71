package bench

import (
	"bytes"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"testing"
)

// TestWindowWritesAndStopsEachProfile opens and closes a measured window of
// a CPU-profiled and of a traced run: each writes its file (a gzipped
// profile, a runtime trace) and stops its profiler when the window ends,
// so that the next one can start.
func TestWindowWritesAndStopsEachProfile(t *testing.T) {
	dir := t.TempDir()
	e := &env{retrans: func() uint64 { return 0 }, segs: func() segCounts { return segCounts{} }}
	for _, c := range []struct {
		kind, file string
		magic      []byte
		start      func() error
		stop       func()
	}{
		{profileCPU, "x.cpu.pprof", []byte{0x1f, 0x8b},
			func() error { return pprof.StartCPUProfile(new(bytes.Buffer)) }, pprof.StopCPUProfile},
		{profileTrace, "x.trace", []byte("go 1."),
			func() error { return trace.Start(new(bytes.Buffer)) }, trace.Stop},
	} {
		r := &runCtx{env: e, profile: dir + "/x", profileKind: c.kind}
		r.end(r.begin())
		b, err := os.ReadFile(dir + "/" + c.file)
		if err != nil || !bytes.HasPrefix(b, c.magic) {
			t.Errorf("%s: %s: %v, starts % x", c.kind, c.file, err, b[:min(len(b), 8)])
		}
		if r.profFile != nil {
			t.Errorf("%s: the window's end left the file open", c.kind)
		}
		if err := c.start(); err != nil {
			t.Errorf("%s: still running after the window: %v", c.kind, err)
		} else {
			c.stop()
		}
	}
}
