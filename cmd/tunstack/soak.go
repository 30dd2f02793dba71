package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"tunstack/demo"
	"tunstack/lab/netns"
	"tunstack/viz"
)

func init() { commands["soak"] = runSoak }

// soakConfig is `tunstack soak`'s command line.
type soakConfig struct {
	Duration time.Duration // how long the load runs
	Conns    int           // client connections kept going at once
	Impair   string        // serve's --impair
	Stack    string        // serve's --stack
	Out      string        // directory for soak.json, soak.svg and serve.log
	Every    time.Duration // sampling interval
	Settle   time.Duration // longest wait after the load for the connections to end
	MaxBytes int           // largest /bytes download, /upload body or echo
	Think    time.Duration // longest pause of a client between requests
	Seed     uint64
	Pcap     string // serve's --pcap, to look into a failure
}

const defaultSoakImpair = "loss=1%,reorder=1%,dup=0.5%,delay=5ms"

func parseSoakFlags(args []string) (soakConfig, error) {
	cfg := soakConfig{Duration: 30 * time.Minute, Conns: 1000, Impair: defaultSoakImpair, Stack: "tunstack",
		Out: "docs/reliability", Every: 10 * time.Second, Settle: 4 * time.Minute, MaxBytes: 64 << 10, Think: time.Second, Seed: 1}
	dur := func(name string, lo time.Duration, dst *time.Duration) flagDef {
		return flagDef{name: name, set: func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < lo {
				return usagef("--%s takes a duration of at least %v, as in --%s 30m, not %q.", name, lo, name, v)
			}
			*dst = d
			return nil
		}}
	}
	seed := 1
	pos, err := parseFlags("soak", args, []flagDef{
		dur("duration", 10*time.Second, &cfg.Duration),
		intFlag("conns", "a number of connections", 1, 20000, "1000", &cfg.Conns),
		stringFlag("impair", &cfg.Impair, checkImpairSpec),
		oneOfFlag("stack", []string{"tunstack", "gvisor"}, &cfg.Stack),
		stringFlag("out", &cfg.Out, nil),
		dur("every", time.Second, &cfg.Every),
		dur("settle", 0, &cfg.Settle),
		intFlag("max-bytes", "a number of bytes", 0, 64<<20, "65536", &cfg.MaxBytes),
		dur("think", 0, &cfg.Think),
		intFlag("seed", "a whole number", 0, math32, "1", &seed),
		stringFlag("pcap", &cfg.Pcap, checkPcapFile),
	})
	if err != nil {
		return cfg, err
	}
	if len(pos) > 0 {
		return cfg, usagef("tunstack soak takes no arguments, only flags; %q is not one.", pos[0])
	}
	cfg.Seed = uint64(seed)
	return cfg, nil
}

const math32 = 1<<31 - 1

func runSoak(args []string) error {
	cfg, err := parseSoakFlags(args)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("tunstack soak needs root for its network namespace and TUN device: run it with sudo")
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return fmt.Errorf("cannot create --out %s: %w", cfg.Out, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := soak(ctx, cfg, os.Stdout)
	if rep != nil {
		if werr := rep.write(cfg.Out); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// soakReport is what soak.json holds: the run's settings, its totals, every
// sample and the verdict.
type soakReport struct {
	Started  time.Time        `json:"started"`
	Stack    string           `json:"stack"`
	Impair   string           `json:"impair"`
	Conns    int              `json:"conns"`
	LoadS    float64          `json:"load_s"`     // the load's planned length
	LoadEndS float64          `json:"load_end_s"` // when the last client stopped, from the start
	SettledS float64          `json:"settled_s"`  // when connections were back to zero (0: never)
	MaxBytes int              `json:"max_bytes"`
	Totals   soakTotals       `json:"totals"`
	Samples  []viz.SoakSample `json:"samples"`
	Baseline viz.SoakSample   `json:"baseline"`
	Peak     viz.SoakSample   `json:"peak"`
	Final    viz.SoakSample   `json:"final"`
	Failures []string         `json:"failures"`
	// Left counts the connections left after the settling time by state
	// and local port (tunstack ss's words), when some were.
	Left map[string]int `json:"left,omitempty"`
	// MissedSamples are the samples that could not be taken, and why.
	MissedSamples []string `json:"missed_samples,omitempty"`
	Passed        bool     `json:"passed"`
	CPUSeconds    float64  `json:"serve_cpu_s"` // serve's user+system CPU over the run
}

// soakTotals counts the clients' work. Every byte received is checked:
// /bytes against the pattern, /upload's answer against the SHA-256 of
// what was sent, the echo against what was written.
type soakTotals struct {
	Connections  int64            `json:"connections"`
	Requests     int64            `json:"requests"`
	Downloads    int64            `json:"downloads"`
	Uploads      int64            `json:"uploads"`
	Echoes       int64            `json:"echoes"` // each ends with a half-close
	EarlyCloses  int64            `json:"early_closes"`
	Aborts       int64            `json:"aborts"`
	BytesChecked int64            `json:"bytes_checked"`
	BytesSent    int64            `json:"bytes_sent"` // upload bodies and echo data written
	Corruptions  int64            `json:"corruptions"`
	Errors       int64            `json:"errors"`
	ErrorsByKind map[string]int64 `json:"errors_by_kind,omitempty"`
	FirstErrors  []string         `json:"first_errors,omitempty"`
	// Starved are operations that failed at the client's own deadline
	// while the bytes it waited for sat unread in its socket: the client
	// starved of CPU, not the stack's failure (classifyFailure). They are
	// reported, and do not fail the soak.
	Starved      int64      `json:"starved,omitempty"`
	FirstStarved []string   `json:"first_starved,omitempty"`
	mu           sync.Mutex // guards Errors, ErrorsByKind, Corruptions, Starved and the First lists
	// The other counts are added to with sync/atomic by the clients at
	// once, and read once they have all ended.
}

func (t *soakTotals) fail(kind string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.Errors++
	if t.ErrorsByKind == nil {
		t.ErrorsByKind = map[string]int64{}
	}
	t.ErrorsByKind[kind]++
	if len(t.FirstErrors) < 10 {
		t.FirstErrors = append(t.FirstErrors, fmt.Sprintf("%s: %v", kind, err))
	}
}

// starve records an operation that failed at the client's own deadline
// while the bytes it waited for sat in its socket (classifyFailure): not
// the stack's failure, counted apart and reported.
func (t *soakTotals) starve(kind string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.Starved++
	if len(t.FirstStarved) < 10 {
		t.FirstStarved = append(t.FirstStarved, fmt.Sprintf("%s: %v", kind, err))
	}
}

func (t *soakTotals) corrupt(what string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.Corruptions++
	if len(t.FirstErrors) < 10 {
		t.FirstErrors = append(t.FirstErrors, "corruption: "+what)
	}
}

// The addresses of serve's link (its defaults) and of its metrics, inside
// the soak's namespace.
const (
	soakStackAddr   = "198.18.0.2"
	soakMetricsAddr = "127.0.0.1:9464"
)

// soak runs serve in a namespace of its own, loads it, samples it and
// judges it. The report is returned whenever there is one to write, also
// with an error.
func soak(ctx context.Context, cfg soakConfig, out io.Writer) (*soakReport, error) {
	ns, err := netns.New("soak")
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	// The clients connect from this namespace at several hundred
	// connections a second and mostly close first, each port then waiting
	// 60 s in TIME-WAIT: with the default range a soak had 26,963 of its
	// 28,232 ports in TIME-WAIT toward port 80 alone, and a faster run's
	// connects failed with EADDRNOTAVAIL, the client's limit and not the
	// stack's.
	if err := ns.SetSysctls(netns.LoadGenerator); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(cfg.Out, "serve.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	serveArgs := []string{"serve", "--netns", ns.Name(), "--dev", "soak0", "--net6", "none", "--stack", cfg.Stack,
		"--metrics", soakMetricsAddr, "--backlog", strconv.Itoa(max(cfg.Conns, 128))}
	if cfg.Pcap != "" {
		serveArgs = append(serveArgs, "--pcap", cfg.Pcap)
	}
	if cfg.Impair != "" {
		serveArgs = append(serveArgs, "--impair", cfg.Impair)
	}
	srv := exec.Command(exe, serveArgs...)
	srv.Stdout, srv.Stderr = logFile, logFile
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("cannot start serve: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	stopServe := func() {
		if srv.ProcessState != nil {
			return
		}
		srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			srv.Process.Kill()
			<-exited
		}
	}
	defer stopServe()

	// A connect, once started, runs to its end (30 s at most) whatever
	// the context: the load's end stops clients from starting new
	// operations, not the ones under way.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() (err error) {
			c, err = (&net.Dialer{Timeout: 30 * time.Second}).DialContext(context.WithoutCancel(ctx), network, addr)
			return err
		})
		return c, err
	}
	scraper := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}, Timeout: 30 * time.Second}
	pid := srv.Process.Pid
	start := time.Now()
	sample := func() (viz.SoakSample, error) {
		s, err := scrapeSoak(ctx, scraper)
		if err != nil {
			return s, err
		}
		s.T = time.Since(start).Seconds()
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			return s, fmt.Errorf("counting serve's descriptors: %w", err)
		}
		s.FDs = float64(len(ents))
		return s, nil
	}

	base, err := awaitBaseline(ctx, sample, exited, 30*time.Second, soakGCWait)
	if err != nil {
		return nil, fmt.Errorf("%v; serve's output is in %s", err, logFile.Name())
	}
	rep := &soakReport{Started: start.UTC(), Stack: cfg.Stack, Impair: cfg.Impair, Conns: cfg.Conns,
		LoadS: cfg.Duration.Seconds(), MaxBytes: cfg.MaxBytes, Baseline: base, Samples: []viz.SoakSample{base}}
	fmt.Fprintf(out, "soak: serve (%s) in namespace %s, %d clients for %v under %q; samples every %v\n",
		cfg.Stack, ns.Name(), cfg.Conns, cfg.Duration, cfg.Impair, cfg.Every)

	var mu sync.Mutex
	samplerDone := make(chan struct{})
	stopSampler := make(chan struct{})
	var sampleErrs []string
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(cfg.Every)
		defer tick.Stop()
		for {
			select {
			case <-stopSampler:
				return
			case <-tick.C:
			}
			s, err := sample()
			mu.Lock()
			if err != nil {
				sampleErrs = append(sampleErrs, fmt.Sprintf("at %.0f s: %v", time.Since(start).Seconds(), err))
			} else {
				rep.Samples = append(rep.Samples, s)
			}
			mu.Unlock()
			if err == nil {
				fmt.Fprintf(out, "  %6.0fs live heap %6.1f MiB (%3.0f GCs), %5.0f goroutines, %5.0f connections, %5.0f fds\n",
					s.T, s.HeapBytes/(1<<20), s.GCs, s.Goroutines, s.Conns, s.FDs)
			}
		}
	}()

	probe := func(local string) (clientSocket, bool) {
		out, err := ns.Command("ss", "-tniH", "state", "all", "src", local).Output()
		if err != nil {
			return clientSocket{}, false
		}
		return parseClientSocket(string(out))
	}

	serveView := func(local string) string {
		out, err := exec.Command(exe, "ss", "--netns", ns.Name(), "--dev", "soak0", "-tnioH", "state", "all", "dst", local).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("tunstack ss: %v", err)
		}
		if v := strings.Join(strings.Fields(string(out)), " "); v != "" {
			return v
		}
		return "none"
	}

	// The load: cfg.Conns clients, started over the first tenth of the
	// run (at most 10 s), each opening one connection after another until
	// the end.
	loadCtx, endLoad := context.WithTimeout(ctx, cfg.Duration)
	defer endLoad()
	tot := &rep.Totals
	var wg sync.WaitGroup
	ramp := min(cfg.Duration/10, 10*time.Second)
	for i := range cfg.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := soakClient{cfg: cfg, dial: dial, tot: tot, probe: probe, serveView: serveView,
				rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i)))}
			select {
			case <-time.After(time.Duration(i) * ramp / time.Duration(cfg.Conns)):
			case <-loadCtx.Done():
				return
			}
			c.run(loadCtx)
		}()
	}
	wg.Wait()
	rep.LoadEndS = time.Since(start).Seconds()
	fmt.Fprintf(out, "soak: load ended at %.0f s: %d connections, %d requests, %d echoes, %d early closes, %d aborts, %d bytes checked, %d corrupt, %d errors, %d deadlines passed with the bytes unread in the client's socket (the client starved)\n",
		rep.LoadEndS, tot.Connections, tot.Requests, tot.Echoes, tot.EarlyCloses, tot.Aborts, tot.BytesChecked, tot.Corruptions, tot.Errors, tot.Starved)

	// After the load: wait for every connection to end (TIME-WAIT
	// included), sampling on.
	settleBy := time.Now().Add(cfg.Settle)
	for ctx.Err() == nil {
		mu.Lock()
		last := rep.Samples[len(rep.Samples)-1]
		mu.Unlock()
		if last.T > rep.LoadEndS && last.Conns == 0 {
			rep.SettledS = last.T
			break
		}
		if time.Now().After(settleBy) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	// Once settled, sampling goes on until the garbage collector has run
	// (the Go runtime forces a cycle every 2 min at least), so that the
	// last sample's live heap is what the load left behind, not garbage;
	// and for two samples at least, so the figure shows the level held.
	if rep.SettledS > 0 {
		mu.Lock()
		gcs := rep.Samples[len(rep.Samples)-1].GCs
		mu.Unlock()
		for by := time.Now().Add(soakGCWait); ctx.Err() == nil && time.Now().Before(by); {
			mu.Lock()
			last := rep.Samples[len(rep.Samples)-1]
			mu.Unlock()
			if last.GCs > gcs && last.T >= rep.SettledS+2*cfg.Every.Seconds() {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	close(stopSampler)
	<-samplerDone
	if rep.SettledS == 0 && ctx.Err() == nil {
		// What is left, as tunstack ss shows it, for the failure to name.
		ss, err := exec.Command(exe, "ss", "--netns", ns.Name(), "--dev", "soak0", "-tani").CombinedOutput()
		if err == nil {
			err = os.WriteFile(filepath.Join(cfg.Out, "ss-after-load.txt"), ss, 0o644)
		}
		if err != nil {
			fmt.Fprintf(out, "soak: cannot record the connections left: %v\n", err)
		}
		rep.Left = soakStatesLeft(string(ss))
	}
	if ctx.Err() != nil {
		return rep, errors.New("soak interrupted")
	}
	// A sample that failed (a scrape slower than 30 s on a loaded machine)
	// is a gap in the figure; the verdict needs the samples after the
	// load, which the wait for zero connections took.
	rep.MissedSamples = sampleErrs
	if st, err := readProcCPU(pid); err == nil {
		rep.CPUSeconds = st
	}
	rep.judge()
	for _, f := range rep.Failures {
		fmt.Fprintf(out, "soak: FAIL: %s\n", f)
	}
	if !rep.Passed {
		return rep, fmt.Errorf("soak failed: %s", strings.Join(rep.Failures, "; "))
	}
	fmt.Fprintf(out, "soak: passed; live heap %.1f MiB at the start, %.1f MiB at the peak, %.1f MiB at the end\n",
		rep.Baseline.HeapBytes/(1<<20), rep.Peak.HeapBytes/(1<<20), rep.Final.HeapBytes/(1<<20))
	if tot.Starved > 0 {
		fmt.Fprintf(out, "soak: %d operations passed their deadline with the bytes they waited for unread in the client's socket (the machine starved the clients; not counted against the stack); first: %s\n",
			tot.Starved, strings.Join(tot.FirstStarved, "; "))
	}
	return rep, nil
}

// awaitBaseline samples serve until its metrics answer (within readyWait)
// and its garbage collector has run once, and returns that sample: the
// live heap serve starts from. go_gc_heap_live_bytes is the heap live at
// the end of the last collection, 0 before the first, and a fresh serve
// may run none until the Go runtime forces one (2 min); after gcWait the
// last sample stands as it is. It gives up when serve exits or ctx ends.
func awaitBaseline(ctx context.Context, sample func() (viz.SoakSample, error), exited <-chan error, readyWait, gcWait time.Duration) (viz.SoakSample, error) {
	var base viz.SoakSample
	answered := false
	ready, gcBy := time.Now().Add(readyWait), time.Time{}
	for {
		s, err := sample()
		if err == nil {
			base = s
			if !answered {
				answered, gcBy = true, time.Now().Add(gcWait)
			}
		}
		switch {
		case answered && (base.GCs > 0 || time.Now().After(gcBy)):
			return base, nil
		case !answered && time.Now().After(ready):
			return base, fmt.Errorf("serve's metrics did not answer within %v: %v", readyWait, err)
		}
		select {
		case err := <-exited:
			if !answered {
				return base, fmt.Errorf("serve exited before it was ready (%v)", err)
			}
			return base, fmt.Errorf("serve exited (%v) while the soak waited for its first garbage collection", err)
		case <-ctx.Done():
			return base, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Growth allowed at the end over the start, once the load is over, the
// connections have ended and the garbage collector has run (at most
// soakGCWait after). The goroutines and descriptors of serve are fixed
// (listeners, link, metrics); a few more may be the metrics' scrape in
// progress. The live heap may keep what pools have grown, but not in
// proportion to the load: at the end it must be within soakHeapSlack of
// the start or have given back at least half of the growth to the peak.
const (
	soakGCWait         = 3 * time.Minute
	soakGoroutineSlack = 8
	soakFDSlack        = 4
	soakHeapSlack      = 32 << 20
)

// judge fills in the peak, the final sample and the failures.
func (r *soakReport) judge() {
	r.Peak = viz.SoakSample{}
	for _, s := range r.Samples {
		r.Peak.HeapBytes = max(r.Peak.HeapBytes, s.HeapBytes)
		r.Peak.Goroutines = max(r.Peak.Goroutines, s.Goroutines)
		r.Peak.Conns = max(r.Peak.Conns, s.Conns)
		r.Peak.FDs = max(r.Peak.FDs, s.FDs)
	}
	r.Final = r.Samples[len(r.Samples)-1]
	b, f, p := r.Baseline, r.Final, r.Peak
	fail := func(format string, args ...any) { r.Failures = append(r.Failures, fmt.Sprintf(format, args...)) }
	if r.Totals.Corruptions > 0 {
		fail("%d transfers delivered bytes other than those sent", r.Totals.Corruptions)
	}
	if r.Totals.Errors > 0 {
		fail("%d client operations failed (%v); first: %s", r.Totals.Errors, r.Totals.ErrorsByKind, strings.Join(r.Totals.FirstErrors, "; "))
	}
	if r.Totals.BytesChecked == 0 {
		fail("no byte was checked: the load did not run")
	}
	if r.SettledS == 0 {
		fail("connections did not return to zero after the load: %.0f at the end %v", f.Conns, r.Left)
	}
	if f.Goroutines > b.Goroutines+soakGoroutineSlack {
		fail("goroutines did not return: %.0f at the start, %.0f at the peak, %.0f at the end", b.Goroutines, p.Goroutines, f.Goroutines)
	}
	if f.FDs > b.FDs+soakFDSlack {
		fail("file descriptors did not return: %.0f at the start, %.0f at the peak, %.0f at the end", b.FDs, p.FDs, f.FDs)
	}
	if f.HeapBytes > b.HeapBytes+soakHeapSlack && f.HeapBytes-b.HeapBytes > (p.HeapBytes-b.HeapBytes)/2 {
		fail("the live heap did not return: %.1f MiB at the start, %.1f MiB at the peak, %.1f MiB at the end",
			b.HeapBytes/(1<<20), p.HeapBytes/(1<<20), f.HeapBytes/(1<<20))
	}
	r.Passed = len(r.Failures) == 0
}

// write puts soak.json and soak.svg in dir.
func (r *soakReport) write(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "soak.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "soak.svg"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := viz.Render(f, "svg", viz.SoakPanels(r.Samples, r.LoadEndS), viz.PanelHeight/2); err != nil {
		return err
	}
	return f.Close()
}

// scrapeSoak reads serve's heap in use, goroutines and connections (every
// state) from its metrics.
func scrapeSoak(ctx context.Context, c *http.Client) (viz.SoakSample, error) {
	var s viz.SoakSample
	fams, err := fetchMetrics(ctx, c, "http://"+soakMetricsAddr+"/metrics")
	if err != nil {
		return s, fmt.Errorf("metrics: %w", err)
	}
	gauge := func(name string) (float64, bool) {
		f := fams[name]
		if f == nil {
			return 0, false
		}
		sum := 0.0
		for _, m := range f.GetMetric() {
			sum += m.GetGauge().GetValue()
		}
		return sum, true
	}
	var ok1, ok2, ok3 bool
	s.HeapBytes, ok1 = gauge("go_gc_heap_live_bytes")
	s.Goroutines, ok2 = gauge("go_goroutines")
	s.Conns, ok3 = gauge("tunstack_tcp_connections")
	gc := fams["go_gc_duration_seconds"]
	if !ok1 || !ok2 || !ok3 || gc == nil || len(gc.GetMetric()) != 1 {
		return s, errors.New("metrics: go_gc_heap_live_bytes, go_goroutines, go_gc_duration_seconds or tunstack_tcp_connections missing")
	}
	s.GCs = float64(gc.GetMetric()[0].GetSummary().GetSampleCount())
	return s, nil
}

// readProcCPU is the process's user and system CPU time in seconds, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 100 Hz).
func readProcCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unreadable stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("unreadable stat")
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil
}

// soakClient is one of the soak's clients: one connection at a time, each
// a session of a few operations chosen at random.
type soakClient struct {
	cfg  soakConfig
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	tot  *soakTotals
	rng  *rand.Rand
	// probe reads the kernel's view of the client's own socket, as ss
	// shows it, for the classification of a failure (classifyFailure).
	probe func(local string) (clientSocket, bool)
	// serveView is serve's view of the client's connection (tunstack ss
	// -tnioH): its state, queues, timer and TCP_INFO, for a failure that
	// may be the stack's.
	serveView func(local string) string
}

// soakOpTimeout bounds each operation: a stack that stalls a connection
// this long under 1% loss has failed.
const soakOpTimeout = 60 * time.Second

func (c *soakClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		switch r := c.rng.IntN(10); {
		case r < 7:
			c.httpSession(ctx)
		case r < 9:
			c.echo(ctx)
		default:
			c.abortEarly(ctx)
		}
		c.pause(ctx)
	}
}

func (c *soakClient) pause(ctx context.Context) {
	if c.cfg.Think <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(c.rng.Int64N(int64(c.cfg.Think)))):
	}
}

func (c *soakClient) connect(ctx context.Context, port int) (*net.TCPConn, bool) {
	began := time.Now()
	conn, err := c.dial(ctx, "tcp4", net.JoinHostPort(soakStackAddr, strconv.Itoa(port)))
	if err != nil {
		if ctx.Err() == nil {
			c.tot.fail("connect", fmt.Errorf("started %s: %w", began.UTC().Format("15:04:05.000"), err))
		}
		return nil, false
	}
	atomic.AddInt64(&c.tot.Connections, 1)
	return conn.(*net.TCPConn), true
}

// httpSession sends one to eight requests on one keep-alive connection:
// downloads of /bytes/N checked against the pattern and uploads checked
// against /upload's SHA-256. A request may end the connection early: the
// client closes it halfway through a response (5%) or aborts it with a
// reset after sending the request (3%).
func (c *soakClient) httpSession(ctx context.Context) {
	conn, ok := c.connect(ctx, 80)
	if !ok {
		return
	}
	defer conn.Close()
	opened := time.Now()
	br := bufio.NewReader(conn)
	n := 1 + c.rng.IntN(8)
	for k := 0; k < n && ctx.Err() == nil; k++ {
		conn.SetDeadline(time.Now().Add(soakOpTimeout))
		size := c.rng.IntN(c.cfg.MaxBytes + 1)
		roll := c.rng.IntN(100)
		upload := c.rng.IntN(2) == 0
		var err error
		var body []byte
		if upload {
			body = make([]byte, size)
			for i := range body {
				body[i] = byte(c.rng.Uint32())
			}
			_, err = fmt.Fprintf(conn, "POST /upload HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n", size)
			if err == nil {
				_, err = conn.Write(body)
			}
			if err == nil {
				atomic.AddInt64(&c.tot.BytesSent, int64(size))
			}
		} else {
			_, err = fmt.Fprintf(conn, "GET /bytes/%d HTTP/1.1\r\nHost: soak\r\n\r\n", size)
		}
		sent := time.Now()
		if err != nil {
			c.tot.fail("http write", err)
			return
		}
		atomic.AddInt64(&c.tot.Requests, 1)
		if roll < 3 {
			// An abort: SO_LINGER 0 makes close send a reset.
			conn.SetLinger(0)
			atomic.AddInt64(&c.tot.Aborts, 1)
			return
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			c.fail("http response", conn, opened, sent, err)
			return
		}
		if resp.StatusCode != http.StatusOK {
			c.tot.fail("http status", fmt.Errorf("%s", resp.Status))
			resp.Body.Close()
			return
		}
		if upload {
			var ans demo.UploadResult
			b, err := io.ReadAll(resp.Body)
			if err == nil {
				err = json.Unmarshal(b, &ans)
			}
			if err != nil {
				c.tot.fail("upload answer", err)
				return
			}
			sum := sha256.Sum256(body)
			if ans.Bytes != int64(size) || ans.SHA256 != hex.EncodeToString(sum[:]) {
				c.tot.corrupt(fmt.Sprintf("upload of %d bytes answered %d bytes, sha256 %s", size, ans.Bytes, ans.SHA256))
				return
			}
			atomic.AddInt64(&c.tot.Uploads, 1)
			atomic.AddInt64(&c.tot.BytesChecked, int64(size))
			continue
		}
		// A download, read whole or (an early close) up to a point.
		want := size
		if roll < 8 && size > 0 {
			want = c.rng.IntN(size)
		}
		got, bad, err := readPattern(resp.Body, want)
		atomic.AddInt64(&c.tot.BytesChecked, int64(got))
		if bad >= 0 {
			c.tot.corrupt(fmt.Sprintf("/bytes/%d: byte %d differs from the pattern", size, bad))
			return
		}
		if err != nil {
			c.fail("download", conn, opened, sent, err)
			return
		}
		if want < size {
			atomic.AddInt64(&c.tot.EarlyCloses, 1)
			return // closed with the rest of the response unread
		}
		if extra, _ := resp.Body.Read(make([]byte, 1)); extra != 0 {
			c.tot.corrupt(fmt.Sprintf("/bytes/%d: more than %d bytes", size, size))
			return
		}
		resp.Body.Close()
		atomic.AddInt64(&c.tot.Downloads, 1)
		if k+1 < n {
			c.pause(ctx)
		}
	}
}

// readPattern reads n bytes of the /bytes pattern from r: how many it
// read, the offset of the first wrong byte (-1 if none) and the error
// that stopped it short.
func readPattern(r io.Reader, n int) (got, bad int, err error) {
	buf := make([]byte, 32<<10)
	for got < n {
		m, err := r.Read(buf[:min(len(buf), n-got)])
		for i := 0; i < m; i++ {
			if buf[i] != demo.PatternByte(int64(got+i)) {
				return got + i, got + i, nil
			}
		}
		got += m
		if err != nil {
			if got == n && err == io.EOF {
				break
			}
			return got, -1, err
		}
	}
	return got, -1, nil
}

// echo writes random bytes to the echo service, half-closes, and reads
// everything back to the end of the stream: what comes back must be what
// was written, and the server's end must follow the client's half-close.
func (c *soakClient) echo(ctx context.Context) {
	conn, ok := c.connect(ctx, 7)
	if !ok {
		return
	}
	defer conn.Close()
	began := time.Now()
	conn.SetDeadline(began.Add(soakOpTimeout))
	data := make([]byte, c.rng.IntN(c.cfg.MaxBytes+1))
	for i := range data {
		data[i] = byte(c.rng.Uint32())
	}
	back, werr, err := sendAndReadBack(conn, data)
	if werr == nil {
		atomic.AddInt64(&c.tot.BytesSent, int64(len(data)))
	}
	if err == nil {
		err = werr
	}
	if err != nil {
		c.fail("echo", conn, began, began, err)
		return
	}
	atomic.AddInt64(&c.tot.BytesChecked, int64(len(back)))
	if !slices.Equal(back, data) {
		c.tot.corrupt(fmt.Sprintf("echo of %d bytes came back as %d bytes that differ", len(data), len(back)))
		return
	}
	atomic.AddInt64(&c.tot.Echoes, 1)
}

// sendAndReadBack writes data to c and half-closes it while it reads what
// c receives to the end of the stream: an echo sends back as it receives,
// so neither side's buffers need hold all of data. werr is the write's or
// the half-close's error, rerr the read's.
func sendAndReadBack(c *net.TCPConn, data []byte) (back []byte, werr, rerr error) {
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		done <- err
	}()
	back, rerr = io.ReadAll(c)
	return back, <-done, rerr
}

// abortEarly opens a connection and resets it: at once, or after half a
// request line.
func (c *soakClient) abortEarly(ctx context.Context) {
	conn, ok := c.connect(ctx, 80)
	if !ok {
		return
	}
	if c.rng.IntN(2) == 0 {
		conn.Write([]byte("GET /bytes/100"))
	}
	conn.SetLinger(0)
	conn.Close()
	atomic.AddInt64(&c.tot.Aborts, 1)
}

// clientSocket is the kernel's view of a soak client's own socket, from
// ss -tni: its state, the bytes waiting in its queues, and how long ago it
// last received data (tcp_info's lastrcv; -1 when ss did not show it).
type clientSocket struct {
	State        string
	RecvQ, SendQ int
	LastRcv      time.Duration
}

// parseClientSocket reads the one socket of ss -tniH state all output.
func parseClientSocket(out string) (clientSocket, bool) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	f := strings.Fields(lines[0])
	if len(f) < 5 {
		return clientSocket{}, false
	}
	s := clientSocket{State: f[0], LastRcv: -1}
	var err1, err2 error
	s.RecvQ, err1 = strconv.Atoi(f[1])
	s.SendQ, err2 = strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return clientSocket{}, false
	}
	for _, w := range strings.Fields(strings.Join(lines[1:], " ")) {
		if v, ok := strings.CutPrefix(w, "lastrcv:"); ok {
			if ms, err := strconv.Atoi(v); err == nil {
				s.LastRcv = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return s, true
}

// The classes of failure the soak tells apart (classifyFailure), added to
// the operation's kind.
const (
	failStarved     = "client starved"           // the transport had delivered; counted apart
	failStall       = "stalled"                  // a deadline with nothing unread: not delivered in time
	failHeaderClose = "closed at header timeout" // serve's HTTP server gave up waiting for a request's header
)

// starvedAfter is how long bytes must have sat unread in a client's
// socket (tcp_info's lastrcv: since the last data arrived) for its missed
// deadline to be its starvation: Go's poller wakes a blocked reader as the
// bytes arrive, so a second of unread bytes is a second its goroutine did
// not run, where bytes that arrived just before the deadline leave the
// wait before them to the stack.
const starvedAfter = time.Second

// classifyFailure names a client failure by what the kernel shows of the
// client's socket at that moment (sock, when ok). A read deadline that
// passed while bytes waited unread in the client's own socket is the
// client's starvation (if they sat there starvedAfter at least): the stack had delivered them, and the client's
// goroutine did not run to read them (a loaded machine: make soak runs
// serve and its clients at nice 10). A deadline with nothing unread is a
// stall: nothing was delivered in time. An EOF instead of a response once
// serve's ReadHeaderTimeout has passed since the connection opened or the
// request went out is serve's HTTP server closing on it; the client's
// Send-Q says whether the stack had acknowledged the request's bytes
// (then serve's own goroutine did not read them in time) or not.
func classifyFailure(kind string, err error, sinceOpen, sinceRequest time.Duration, sock clientSocket, ok bool) (class string, detail error) {
	view := "the client's socket is gone"
	if ok {
		view = fmt.Sprintf("client socket %s, Recv-Q %d, Send-Q %d, last received %v ago", sock.State, sock.RecvQ, sock.SendQ, sock.LastRcv)
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && ok && sock.RecvQ > 0 && sock.LastRcv >= starvedAfter:
		return kind + ": " + failStarved, fmt.Errorf("%w; %s", err, view)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return kind + ": " + failStall, fmt.Errorf("%w after %v; %s", err, sinceRequest.Round(time.Millisecond), view)
	case (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) && max(sinceOpen, sinceRequest) >= serveReadHeaderTimeout:
		return kind + ": " + failHeaderClose, fmt.Errorf("%w %v after the connection opened, %v after the request; %s", err,
			sinceOpen.Round(time.Millisecond), sinceRequest.Round(time.Millisecond), view)
	}
	return kind, err
}

// fail records a failed operation on conn, classified; opened is when the
// connection was made, request when the operation's request went out.
func (c *soakClient) fail(kind string, conn *net.TCPConn, opened, request time.Time, err error) {
	sock, ok := clientSocket{}, false
	if c.probe != nil {
		sock, ok = c.probe(conn.LocalAddr().String())
	}
	class, detail := classifyFailure(kind, err, time.Since(opened), time.Since(request), sock, ok)
	if strings.HasSuffix(class, failStarved) {
		c.tot.starve(class, detail)
		return
	}
	if c.serveView != nil {
		detail = fmt.Errorf("%w; serve's socket: %s", detail, c.serveView(conn.LocalAddr().String()))
	}
	c.tot.fail(class, detail)
}

// soakStatesLeft counts the sockets of tunstack ss -tan output by state
// and local port, as "ESTAB :80".
func soakStatesLeft(ss string) map[string]int {
	left := map[string]int{}
	for _, line := range strings.Split(ss, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] == "State" || f[0] == "LISTEN" || strings.HasPrefix(line, "\t") {
			continue
		}
		port := f[3][strings.LastIndexByte(f[3], ':'):]
		left[f[0]+" "+port]++
	}
	return left
}
