package bench

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// MicroResult is one line of `go test -bench -benchmem` output.
type MicroResult struct {
	Package     string             `json:"package"`
	Name        string             `json:"name"` // without the Benchmark prefix and -GOMAXPROCS suffix
	Iterations  int64              `json:"iterations"`
	NsPerOp     float64            `json:"ns_per_op"`
	BytesPerOp  float64            `json:"bytes_per_op"`  // B/op; -1 if not reported
	AllocsPerOp float64            `json:"allocs_per_op"` // allocs/op; -1 if not reported
	MBPerSec    float64            `json:"mb_per_s"`      // -1 if not reported
	Other       map[string]float64 `json:"other,omitempty"`
}

// ParseMicro reads `go test -bench` output: "pkg:" lines set the package of
// the benchmark lines that follow; everything else is ignored.
func ParseMicro(r io.Reader) ([]MicroResult, error) {
	var out []MicroResult
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue // a benchmark's own log line, or a failure
		}
		iters, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		m := MicroResult{Package: pkg, Name: name, Iterations: iters, BytesPerOp: -1, AllocsPerOp: -1, MBPerSec: -1}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				m.NsPerOp = v
			case "B/op":
				m.BytesPerOp = v
			case "allocs/op":
				m.AllocsPerOp = v
			case "MB/s":
				m.MBPerSec = v
			default:
				if m.Other == nil {
					m.Other = map[string]float64{}
				}
				m.Other[f[i+1]] = v
			}
		}
		out = append(out, m)
	}
	return out, sc.Err()
}
