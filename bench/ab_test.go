package bench

import "testing"

// ab 2.3's output for a run that completed, as Debian's apache2-utils
// prints it with -q.
const abOutput = `This is ApacheBench, Version 2.3 <$Revision: 1913912 $>
Benchmarking 198.18.0.2 (be patient).....done


Server Software:        
Server Hostname:        198.18.0.2
Server Port:            80

Document Path:          /bytes/10000
Document Length:        10000 bytes

Concurrency Level:      1000
Time taken for tests:   4.816 seconds
Complete requests:      20000
Failed requests:        3
   (Connect: 0, Receive: 0, Length: 3, Exceptions: 0)
Non-2xx responses:      2
Total transferred:      202180000 bytes
HTML transferred:       200000000 bytes
Requests per second:    4152.98 [#/sec] (mean)
Time per request:       240.791 [ms] (mean)

Percentage of the requests served within a certain time (ms)
  50%     31
  66%     40
  75%     52
  80%     60
  90%    215
  95%   1032
  98%   1209
  99%   1326
 100%   2537 (longest request)
`

func TestParseABReadsCountsRateAndPercentiles(t *testing.T) {
	r, err := ParseAB([]byte(abOutput))
	if err != nil {
		t.Fatal(err)
	}
	if r.Complete != 20000 || r.Failed != 3 || r.Non2xx != 2 || r.Seconds != 4.816 || r.RequestsSec != 4152.98 {
		t.Errorf("got %+v", r)
	}
	for p, want := range map[int]float64{50: 31, 90: 215, 99: 1326, 100: 2537} {
		if r.Percentiles[p] != want {
			t.Errorf("%d%%: %v ms, want %v", p, r.Percentiles[p], want)
		}
	}
}

func TestParseABFailsOnARunThatGaveUp(t *testing.T) {
	out := "This is ApacheBench, Version 2.3\nBenchmarking 198.18.0.2 (be patient)\napr_socket_recv: Connection reset by peer (104)\nTotal of 12 requests completed\n"
	if _, err := ParseAB([]byte(out)); err == nil {
		t.Fatal("ParseAB took the output of a run that gave up")
	}
}
