package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// ABResult is what ApacheBench (ab, Debian's apache2-utils) reports for
// one run, read from its text output.
type ABResult struct {
	Complete    int     // "Complete requests"
	Failed      int     // "Failed requests": connect, receive, length or exception errors
	Non2xx      int     // "Non-2xx responses", absent when none
	Seconds     float64 // "Time taken for tests"
	RequestsSec float64 // "Requests per second"
	// Percentiles are ab's "Percentage of the requests served within a
	// certain time", in milliseconds, by percent (50, 66, ... 99, 100):
	// each request's whole time, from its connect to the response's end.
	Percentiles map[int]float64
}

// ABArgs are ab's arguments for n requests, c at a time, each on a new
// connection, to url: -r keeps going on socket errors (they are counted
// as failed requests), -q leaves out the progress lines, -s bounds each
// request's wait.
func ABArgs(n, c int, url string) []string {
	return []string{"-r", "-q", "-s", "60", "-n", strconv.Itoa(n), "-c", strconv.Itoa(c), url}
}

// ParseAB reads ab's output. It fails if a line it needs is missing,
// which is what ab prints when it gave up before the end.
func ParseAB(out []byte) (ABResult, error) {
	r := ABResult{Percentiles: map[int]float64{}}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, ":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			var err error
			switch k {
			case "Complete requests":
				r.Complete, err = strconv.Atoi(f[0])
			case "Failed requests":
				r.Failed, err = strconv.Atoi(f[0])
			case "Non-2xx responses":
				r.Non2xx, err = strconv.Atoi(f[0])
			case "Time taken for tests":
				r.Seconds, err = strconv.ParseFloat(f[0], 64)
			case "Requests per second":
				r.RequestsSec, err = strconv.ParseFloat(f[0], 64)
			default:
				continue
			}
			if err != nil {
				return ABResult{}, fmt.Errorf("ab's %q line: %v", k, err)
			}
			seen[k] = true
			continue
		}
		// "  50%     31" and " 100%   2537 (longest request)".
		f := strings.Fields(line)
		if len(f) >= 2 && strings.HasSuffix(f[0], "%") {
			p, err1 := strconv.Atoi(strings.TrimSuffix(f[0], "%"))
			ms, err2 := strconv.ParseFloat(f[1], 64)
			if err1 == nil && err2 == nil {
				r.Percentiles[p] = ms
			}
		}
	}
	for _, k := range []string{"Complete requests", "Failed requests", "Time taken for tests", "Requests per second"} {
		if !seen[k] {
			return ABResult{}, fmt.Errorf("ab's output has no %q line:\n%s", k, out)
		}
	}
	for _, p := range []int{50, 99} {
		if _, ok := r.Percentiles[p]; !ok {
			return ABResult{}, fmt.Errorf("ab's output has no %d%% line:\n%s", p, out)
		}
	}
	return r, nil
}
