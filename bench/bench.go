// Package bench measures tunstack side by side with gVisor's netstack and
// Linux: throughput, latency, connection rate, memory per idle connection
// and goodput over an impaired link, with kernel peers in network
// namespaces. `tunstack bench` and `make bench` drive it.
//
// Every run builds its environment afresh (env.go) and tears it down; each
// figure is the median of several runs. The peer is always a kernel socket
// driven by Go code in this process, inside the environment's namespace;
// the server side is the stack under test. (http-load's peer is ApacheBench,
// run in that namespace.)
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"time"

	"tunstack/policy"
)

// Stacks are the stacks bench compares, in report order.
func Stacks() []string { return []string{"tunstack", "gvisor", "linux"} }

// DefaultImpair is the lossy scenario's impairment when none is given.
const DefaultImpair = "rate=100mbit,delay=20ms,loss=1%"

// Options say what to run.
type Options struct {
	// Stacks are stack labels (Stacks(), or variants such as
	// "tunstack/reno"; see stacks.go), each run on every scenario. Empty
	// means the base stacks, with LossyVariants on lossy.
	Stacks []string
	// LossyVariants are stack labels lossy runs on besides Stacks.
	// Normalize sets DefaultLossyVariants() when Stacks is empty and this
	// is nil.
	LossyVariants []string
	// Scenarios are names from ScenarioNames(), each for IPv4, or with
	// the suffix -v6 (bulk-down-v6) for the same scenario over IPv6.
	// Empty means DefaultScenarios() when Family is "", else every
	// scenario.
	Scenarios []string
	// Family, if set, says which families the Scenarios run in whatever
	// their names say: "4", "6" or "both" (each scenario in IPv4, then in
	// IPv6). "" runs each as named.
	Family string
	// Duration is the measured window of each timed run, after a warm-up
	// of a tenth of it (at least 200 ms). lossy measures twice as long.
	Duration time.Duration
	Runs     int    // runs per figure; the figure is their median
	Impair   string // lossy's impairment SPEC; "" is DefaultImpair
	// ProfileName names the policy profile of tunstack and gVisor.
	ProfileName string
	// IdleConns is how many connections idle opens (default 100,000).
	IdleConns int
	// ProfileDir, if set, receives a CPU profile and an allocation profile
	// of tunstack, each from an extra run of bulk-up, bulk-down, rr and
	// crr, and a runtime trace of rr from one more.
	ProfileDir string
	// Progress receives one line per run; nil for none.
	Progress io.Writer
}

// Sample is one run's measurements. Metrics holds every number the run
// produced under the names in metricDoc; Value is the scenario's figure.
type Sample struct {
	Value   float64            `json:"value"`
	Metrics map[string]float64 `json:"metrics"`
}

// Result is one scenario on one stack: the median of its runs.
type Result struct {
	Scenario string `json:"scenario"`
	Stack    string `json:"stack"` // a stack label: "tunstack", "tunstack/reno"...
	Unit     string `json:"unit"`
	// Congestion and SACK are the congestion control and the SACK setting
	// the stack under test ran with (stackSpec.lossSettings).
	Congestion string `json:"congestion,omitempty"`
	SACK       bool   `json:"sack"`
	// Runs is how many runs succeeded; Value and Metrics are their medians
	// (each metric's median on its own).
	Runs    int                `json:"runs"`
	Value   float64            `json:"value"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Samples []Sample           `json:"samples,omitempty"`
	// Skip says why the scenario was not measured; Errors lists failed runs.
	Skip   string   `json:"skip,omitempty"`
	Errors []string `json:"errors,omitempty"`
}

// Measured reports whether r has a figure.
func (r *Result) Measured() bool { return r.Skip == "" && r.Runs > 0 }

// scenario is one benchmark.
type scenario struct {
	name string
	unit string // of the figure
	// variants: the scenario runs on Options.LossyVariants too.
	variants     bool
	higherBetter bool
	short        string // a few words for the help text
	about        string // what the figure is, exactly; for the report
	impaired     bool   // runs on the impaired link
	run          func(r *runCtx) (Sample, error)
	// env, if set, builds the run's environment instead of newEnv (the
	// relay scenarios, relay.go).
	env func(sp stackSpec, fam family, prof *policy.Profile, imp *impairment) (*env, error)
}

// scenarios in report order.
var scenarios = []*scenario{
	{name: "bulk-down", short: "the stack sends to a kernel client, one connection",
		unit: "Gbit/s", higherBetter: true, run: runBulkDown,
		about: "one connection, the stack sends to a kernel client as fast as it can; goodput counted by the receiver over the window"},
	{name: "bulk-up", short: "a kernel client sends to the stack, one connection",
		unit: "Gbit/s", higherBetter: true, run: runBulkUp,
		about: "one connection, a kernel client sends to the stack as fast as it can; goodput counted by the stack's reader over the window, and the pure ACKs the stack sent per MiB it received (ACKs/MiB)"},
	{name: "streams", short: "8 connections each way at once",
		unit: "Gbit/s", higherBetter: true, run: runStreams,
		about: "8 connections down and 8 up at once; the figure is the sum of both directions' goodput (each direction in the metrics)"},
	{name: "rr", short: "1-byte request/response: tx/s, p50/p99 latency",
		unit: "tx/s", higherBetter: true, run: runRR,
		about: "one connection, the kernel client writes 1 byte and waits for the stack's 1-byte answer, back to back; transactions per second, with p50/p99 round-trip latency"},
	{name: "crr", short: "connect, request, response, close: conn/s",
		unit: "conn/s", higherBetter: true, run: runCRR,
		about: "the kernel client connects, writes 1 byte, reads the 1-byte answer and closes, one connection at a time; connections per second, with p50/p99 of the whole exchange"},
	{name: "idle", short: "100,000 idle connections (--idle-conns): memory per connection",
		unit: "KiB/conn", higherBetter: false, run: runIdle,
		about: "100,000 established idle connections to the stack (Options.IdleConns), spread over one server port per 25,000; memory per connection: process RSS growth after GC for the user-space stacks, kernel slab growth per socket for linux"},
	{name: "lossy", short: "bulk-down through the --impair link, variants too: goodput",
		unit: "Mbit/s", higherBetter: true, impaired: true, variants: true, run: runLossy,
		about: "one connection, the stack sends through the impaired link (--impair, default " + DefaultImpair + "); goodput over twice the window; also on the variants, tunstack and gVisor with another congestion control or SACK off"},
}

// ScenarioNames lists the scenarios in report order, by their IPv4 names.
func ScenarioNames() []string {
	var n []string
	for _, s := range scenarios {
		n = append(n, s.name)
	}
	return n
}

// v6Suffix ends the name of a scenario run over IPv6: bulk-down-v6 is
// bulk-down with every connection over IPv6.
const v6Suffix = "-v6"

// defaultV6 are the scenarios the default plan also runs over IPv6.
var defaultV6 = []string{"bulk-down", "bulk-up"}

// DefaultScenarios are what runs when no scenario is named: every
// scenario over IPv4, and bulk-down and bulk-up over IPv6 too.
func DefaultScenarios() []string {
	n := ScenarioNames()
	for _, s := range defaultV6 {
		n = append(n, s+v6Suffix)
	}
	return ordered(n, allScenarioNames())
}

// allScenarioNames lists every scenario name in report order, each one's
// IPv6 name right after its IPv4 one.
func allScenarioNames() []string {
	var n []string
	for _, s := range scenarios {
		n = append(n, s.name, s.name+v6Suffix)
	}
	return n
}

// splitFamily returns a scenario name's base scenario and family.
func splitFamily(name string) (string, family) {
	if b, ok := strings.CutSuffix(name, v6Suffix); ok {
		return b, 6
	}
	return name, 4
}

// BaseScenario is a scenario name without its family suffix: bulk-down
// for bulk-down-v6.
func BaseScenario(name string) string {
	b, _ := splitFamily(name)
	return b
}

// ScenarioShort says in a few words what a scenario measures.
func ScenarioShort(name string) string {
	if s := lookupScenario(name); s != nil {
		return s.short
	}
	return ""
}

// ScenarioAbout says exactly what a scenario measures.
func ScenarioAbout(name string) string {
	s := lookupScenario(name)
	if s == nil {
		return ""
	}
	if _, fam := splitFamily(name); fam == 6 {
		return s.about + "; every connection over IPv6 (the stack at " + serverAddr6.String() + ", the peer at " + peerAddr6.String() + ")"
	}
	return s.about
}

// lookupScenario finds a scenario by its name in either family.
func lookupScenario(name string) *scenario {
	base, _ := splitFamily(name)
	for _, s := range scenarios {
		if s.name == base {
			return s
		}
	}
	return nil
}

// Allocation sampling rates: Go's default, and the profiled runs' (one
// sample per 4 KiB allocated on average).
var (
	defaultMemRate = runtime.MemProfileRate
	profileMemRate = 4096
)

// profiledScenarios are profiled on tunstack when Options.ProfileDir is set.
var profiledScenarios = []string{"bulk-up", "bulk-down", "streams", "rr", "crr", "http-load", "relay-bulk-up", "relay-bulk-down", "relay-crr"}

// cpuOnlyScenarios get the CPU profile but not the allocation run: where
// each connection or byte allocates nothing in the stack, as the other
// scenarios' allocation views show, a run for it would only make make
// bench longer.
var cpuOnlyScenarios = []string{"streams", "http-load"}

// tracedScenarios also get a run under runtime/trace, for the latency its
// goroutines spend waiting to run (rr's tail is hand-offs between them).
var tracedScenarios = []string{"rr"}

// runCtx is what a scenario's run gets: its environment and the window
// hooks that take the measurements.
type runCtx struct {
	ctx      context.Context
	env      *env
	o        *Options
	duration time.Duration // this run's measured window
	warmup   time.Duration

	// profile, if set, is the file prefix of this run's profile, and
	// profileKind says which profile it takes.
	profile, profileKind string
	profFile             *os.File // the CPU profile or trace being written
	stopProfile          func()   // stops what writes profFile
}

// window is the state at the start of a measured window.
type window struct {
	start   time.Time
	cpu     cpuTimes
	retrans uint64
	drops   uint64
	segs    segCounts
}

// Profiles a profiled run takes over its window. Each kind has a run of
// its own, so that allocation sampling does not weigh on the CPU profile.
const (
	profileCPU    = "cpu"
	profileAllocs = "allocs"
	profileTrace  = "trace"
)

// begin opens the measured window (and starts the profile of a profiled
// run).
func (r *runCtx) begin() window {
	switch r.profileKind {
	case profileCPU, profileTrace:
		start, stop := pprof.StartCPUProfile, pprof.StopCPUProfile
		if r.profileKind == profileTrace {
			start, stop = trace.Start, trace.Stop
		}
		if f, err := os.Create(r.profile + "." + profileSuffix(r.profileKind)); err == nil {
			if start(f) == nil {
				r.profFile, r.stopProfile = f, stop
			} else {
				f.Close()
			}
		}
	case profileAllocs:
		// Finer sampling for this run only. The heap profile is published
		// at the end of a GC cycle, hence the collections; both snapshots
		// are written at the same rate, so their difference is the
		// window's allocations, scaled right.
		runtime.MemProfileRate = profileMemRate
		runtime.GC()
		writeHeapProfile(r.profile + ".allocs-base.pprof")
	}
	return window{start: time.Now(), cpu: readCPU(), retrans: r.env.retrans(), drops: r.env.linkDrops(), segs: r.env.segs()}
}

// windowEnd is what a window measured.
type windowEnd struct {
	elapsed time.Duration
	cpu     cpuTimes
	retrans uint64
	drops   uint64 // packets the kernel's devices on the path dropped
	segs    segCounts
}

// end closes the window opened by begin.
func (r *runCtx) end(w window) windowEnd {
	we := windowEnd{elapsed: time.Since(w.start), cpu: readCPU().sub(w.cpu), retrans: r.env.retrans() - w.retrans, drops: r.env.linkDrops() - w.drops, segs: r.env.segs().sub(w.segs)}
	switch r.profileKind {
	case profileCPU, profileTrace:
		if r.profFile != nil {
			r.stopProfile()
			r.profFile.Close()
			r.profFile = nil
		}
	case profileAllocs:
		runtime.GC()
		writeHeapProfile(r.profile + ".allocs.pprof")
		runtime.MemProfileRate = defaultMemRate
	}
	return we
}

// sleep waits d or until the run's context ends.
func (r *runCtx) sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
}

func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	pprof.Lookup("allocs").WriteTo(f, 0)
}

// Run runs every selected scenario on every selected stack, Options.Runs
// times each. Runs are interleaved (run 1 on every stack, then run 2...) so
// that a burst of load elsewhere on the machine does not fall on one stack
// only. A run that fails is recorded in its Result and the others go on;
// Run returns an error only for bad options or a cancelled ctx.
func Run(ctx context.Context, o Options) ([]Result, error) {
	if err := o.Normalize(); err != nil {
		return nil, err
	}
	prof, err := policy.ByName(o.ProfileName)
	if err != nil {
		return nil, err
	}
	kernelCCName = kernelCC(prof)
	var imp *impairment
	if slices.Contains(o.Scenarios, "lossy") {
		if imp, err = parseImpairment(o.Impair); err != nil {
			return nil, err
		}
	}
	if o.ProfileDir != "" {
		if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
			return nil, err
		}
	}

	total, width := 0, 8
	for _, name := range o.Scenarios {
		total += len(o.StacksFor(name)) * o.Runs
		for _, st := range o.StacksFor(name) {
			width = max(width, len(st))
		}
	}
	done := 0
	var results []Result
	for _, group := range runGroups(o.Scenarios) {
		// A group's scenarios run interleaved (run 1 of each on every
		// stack, then run 2...): see runGroups.
		type planned struct {
			name   string // the scenario's name in its family
			sc     *scenario
			fam    family
			stacks []string
			res    map[string]*Result // by stack
		}
		var plan []planned
		specs := map[string]stackSpec{}
		for _, name := range group {
			_, fam := splitFamily(name)
			p := planned{name: name, sc: lookupScenario(name), fam: fam, stacks: o.StacksFor(name), res: map[string]*Result{}}
			for _, st := range p.stacks {
				sp, _ := parseStack(st) // Normalize checked every label
				specs[st] = sp
				cc, sack := sp.lossSettings(prof)
				p.res[st] = &Result{Scenario: name, Stack: st, Unit: p.sc.unit, Congestion: cc, SACK: sack}
			}
			plan = append(plan, p)
		}
		for run := 1; run <= o.Runs; run++ {
			for _, p := range plan {
				for _, st := range p.stacks {
					done++
					res := p.res[st]
					if res.Skip != "" {
						continue
					}
					o.progressf("[%d/%d] %-*s %-12s run %d/%d ...", done, total, width, st, p.name, run, o.Runs)
					s, err := runOnce(ctx, &o, p.sc, p.fam, specs[st], prof, imp.forRun(run), "", "")
					if ctx.Err() != nil {
						o.progressf(" cancelled\n")
						return results, ctx.Err()
					}
					var skip *SkipError
					switch {
					case errors.As(err, &skip):
						res.Skip = skip.Reason
						o.progressf(" SKIP: %s\n", skip.Reason)
						continue
					case err != nil:
						res.Errors = append(res.Errors, fmt.Sprintf("run %d: %v", run, err))
						o.progressf(" error: %v\n", err)
						continue
					}
					res.Samples = append(res.Samples, s)
					o.progressf(" %s\n", formatFigure(s.Value, p.sc.unit))
				}
			}
		}
		for _, p := range plan {
			// Profiled by their IPv4 names only: the files are named
			// after the base scenario.
			if o.ProfileDir != "" && slices.Contains(profiledScenarios, p.name) && slices.Contains(p.stacks, "tunstack") {
				prefix := profilePrefix(o.ProfileDir, "tunstack", p.name)
				kinds := []string{profileCPU, profileAllocs}
				if slices.Contains(cpuOnlyScenarios, p.name) {
					kinds = kinds[:1]
				}
				if slices.Contains(tracedScenarios, p.name) {
					kinds = append(kinds, profileTrace)
				}
				for _, kind := range kinds {
					o.progressf("[profile] tunstack %-9s %-6s -> %s.%s ...", p.name, kind, prefix, profileSuffix(kind))
					if _, err := runOnce(ctx, &o, p.sc, p.fam, stackSpec{label: "tunstack", base: "tunstack"}, prof, imp, prefix, kind); err != nil {
						o.progressf(" error: %v\n", err)
					} else {
						o.progressf(" done\n")
					}
				}
			}
			for _, st := range p.stacks {
				p.res[st].summarize()
				results = append(results, *p.res[st])
			}
		}
	}
	// In report order again: a group may gather scenarios from apart.
	order := map[string]int{}
	for i, n := range o.Scenarios {
		order[n] = i
	}
	slices.SortStableFunc(results, func(a, b Result) int { return order[a.Scenario] - order[b.Scenario] })
	return results, nil
}

// runGroups splits scenario names in report order into the groups whose
// runs interleave (run 1 of each, then run 2...): a scenario with its IPv6
// run, and a relay scenario with the scenario it is measured over
// (relay-bulk-down with bulk-down, relay-crr with crr), so that the ratios
// between them compare runs taken moments apart. On a shared machine one
// minute's runs of a scenario can differ from the next minute's by half;
// runs minutes apart would judge relay/serve by that drift.
// [bulk-down bulk-down-v6 relay-bulk-down] [rr] ...
func runGroups(names []string) [][]string {
	key := func(n string) string { return servedScenario(BaseScenario(n)) }
	at := map[string]int{}
	var groups [][]string
	for _, n := range names {
		if i, ok := at[key(n)]; ok {
			groups[i] = append(groups[i], n)
			continue
		}
		at[key(n)] = len(groups)
		groups = append(groups, []string{n})
	}
	return groups
}

// CheckImpair reports a bad impairment SPEC.
func CheckImpair(spec string) error {
	if spec == "" {
		spec = DefaultImpair
	}
	_, err := parseImpairment(spec)
	return err
}

// SkipError is a run's answer when its scenario cannot be measured on this
// machine or stack at all: the result says SKIP with the reason, and the
// remaining runs of it are not tried.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// warmupFor is the warm-up before each window of a run of duration d.
func warmupFor(d time.Duration) time.Duration { return max(d/10, 200*time.Millisecond) }

// profileSuffix is the file suffix of a profile kind.
func profileSuffix(kind string) string {
	if kind == profileTrace {
		return "trace"
	}
	return kind + ".pprof"
}

// profilePrefix is where a profiled run's files go, without the suffix.
func profilePrefix(dir, stack, scenario string) string {
	return dir + "/" + stack + "-" + scenario
}

// runOnce builds an environment, runs the scenario once and tears it down.
func runOnce(ctx context.Context, o *Options, sc *scenario, fam family, sp stackSpec, prof *policy.Profile, imp *impairment, profile, profileKind string) (Sample, error) {
	var useImp *impairment
	if sc.impaired {
		useImp = imp
	}
	build := newEnv
	if sc.env != nil {
		build = sc.env
	}
	e, err := build(sp, fam, prof, useImp)
	if err != nil {
		return Sample{}, err
	}
	defer e.close()
	d := o.Duration
	if sc.impaired {
		d *= 2
	}
	// Every run is bounded: its window, warm-up, set-up and a margin.
	rctx, cancel := context.WithTimeout(ctx, 2*d+2*time.Minute)
	defer cancel()
	r := &runCtx{ctx: rctx, env: e, o: o, duration: d, warmup: warmupFor(o.Duration), profile: profile, profileKind: profileKind}
	return sc.run(r)
}

// Normalize fills in the defaults and puts stacks and scenarios in report
// order; it fails on an unknown stack or scenario.
func (o *Options) Normalize() error {
	if len(o.Stacks) == 0 {
		o.Stacks = Stacks()
		if o.LossyVariants == nil {
			o.LossyVariants = DefaultLossyVariants()
		}
	}
	switch o.Family {
	case "", "4", "6", "both":
	default:
		return fmt.Errorf("bench: unknown family %q; use 4, 6 or both", o.Family)
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = DefaultScenarios()
		if o.Family != "" {
			o.Scenarios = ScenarioNames()
		}
	}
	for _, s := range append(slices.Clone(o.Stacks), o.LossyVariants...) {
		if err := CheckStack(s); err != nil {
			return err
		}
	}
	for _, s := range o.Scenarios {
		if lookupScenario(s) == nil {
			return fmt.Errorf("bench: unknown scenario %q; use %s, each with -v6 for IPv6", s, strings.Join(ScenarioNames(), ", "))
		}
	}
	if o.Family != "" {
		var named []string
		for _, s := range o.Scenarios {
			base, _ := splitFamily(s)
			if o.Family != "6" {
				named = append(named, base)
			}
			if o.Family != "4" {
				named = append(named, base+v6Suffix)
			}
		}
		o.Scenarios, o.Family = named, ""
	}
	// Report order, whatever order they were given in.
	o.Stacks = stackOrder(o.Stacks)
	o.LossyVariants = stackOrder(o.LossyVariants)
	o.Scenarios = ordered(o.Scenarios, allScenarioNames())
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Runs <= 0 {
		o.Runs = 3
	}
	if o.Impair == "" {
		o.Impair = DefaultImpair
	}
	if o.ProfileName == "" {
		o.ProfileName = "linux"
	}
	if o.IdleConns <= 0 {
		o.IdleConns = 100000
	}
	return nil
}

// StacksFor is the stack labels a scenario runs on, in report order:
// Stacks, and for lossy LossyVariants too.
func (o *Options) StacksFor(scenario string) []string {
	if sc := lookupScenario(scenario); sc != nil && sc.variants {
		return stackOrder(append(slices.Clone(o.Stacks), o.LossyVariants...))
	}
	return o.Stacks
}

// ordered returns the members of sel in the order of all, once each.
func ordered(sel, all []string) []string {
	var out []string
	for _, a := range all {
		if slices.Contains(sel, a) {
			out = append(out, a)
		}
	}
	return out
}

func (o *Options) progressf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format, args...)
	}
}

// summarize sets Runs, Value and Metrics from the samples: the median of
// each.
func (r *Result) summarize() {
	r.Runs = len(r.Samples)
	if r.Runs == 0 {
		return // Value stays 0: JSON has no NaN; Measured says there is none
	}
	var vals []float64
	per := map[string][]float64{}
	for _, s := range r.Samples {
		vals = append(vals, s.Value)
		for k, v := range s.Metrics {
			per[k] = append(per[k], v)
		}
	}
	r.Value = Median(vals)
	r.Metrics = map[string]float64{}
	for k, vs := range per {
		r.Metrics[k] = Median(vs)
	}
}
