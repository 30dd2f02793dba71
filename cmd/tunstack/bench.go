package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"tunstack/bench"
	"tunstack/policy"
)

func init() { commands["bench"] = runBench }

const benchUsage = `tunstack bench [--stack tunstack,gvisor,linux] [--scenario NAME,...]
               [--family 4|6|both] [--duration 5s] [--runs 3] [--json] [--impair SPEC]
               [--profile linux|rfc|classic] [--idle-conns 100000] [--profile-dir DIR]
               [--report FILE.md] [--micro FILE]
tunstack bench --from-json FILE.json --report FILE.md

Runs each scenario on each stack, each stack in network namespaces of its
own with kernel peers, and prints a table (or, with --json, the whole
report as JSON). Needs root. Every figure is the median of --runs runs.

  --stack LIST        stacks to compare, comma-separated: tunstack, gvisor,
                      linux, or a variant STACK/CC[-nosack] that runs tunstack
                      or gvisor with congestion control CC and SACK off with
                      -nosack, as in tunstack/reno-nosack or gvisor/reno;
                      tunstack/qN runs tunstack on N TUN queues, an engine
                      shard on each (tunstack alone runs serve's default,
                      one per CPU, but one on lossy and behind the relay)
                      (default tunstack,gvisor,linux, and on lossy also
                      %s)
  --scenario LIST     scenarios to run, comma-separated; each over IPv4, or
                      over IPv6 with -v6 after its name, as in bulk-down-v6
                      (default all over IPv4, and bulk-down-v6,bulk-up-v6):
%s
  --family F          run the chosen scenarios (default: all) over IPv4 (4),
                      IPv6 (6) or both, whatever their names say; the stack
                      is at fd00:7475:6e73::2, the kernel peer at ::1
  --duration D        measured window of each run (lossy: twice it); a warm-up
                      of a tenth of it, at least 200ms, comes first (default 5s)
  --runs N            runs per figure (default 3)
  --json              print the report as JSON instead of the table
  --impair SPEC       lossy's impairment (default %s)
  --profile NAME      policy profile of tunstack and gVisor (default linux)
  --idle-conns N      connections idle opens (default 100000)
  --profile-dir DIR   write a CPU and an allocation profile of tunstack in
                      bulk-up, bulk-down, rr, crr, relay-bulk-up,
                      relay-bulk-down and relay-crr, a CPU profile in streams
                      and http-load, and a runtime trace of rr, each from an
                      extra run, to DIR
  --report FILE       write the report as Markdown to FILE, and the plot, the
                      profile summaries and the JSON report to perf/ beside it
  --micro FILE        include this go test -bench -benchmem output in the report
                      (with --from-json: in place of the report's own)
  --from-json FILE    measure nothing: render --report from a JSON report
                      written before (perf/bench.json, or --json's output)
`

func benchHelp() string {
	var b strings.Builder
	for _, n := range bench.ScenarioNames() {
		fmt.Fprintf(&b, "                        %-10s %s\n", n, bench.ScenarioShort(n))
	}
	return fmt.Sprintf(benchUsage, wrapList(bench.DefaultLossyVariants(), 22, 78), strings.TrimRight(b.String(), "\n"), bench.DefaultImpair)
}

// runBench is `tunstack bench`.
func runBench(args []string) error {
	var (
		o          bench.Options
		stacks     string // empty: the default plan, variants on lossy
		scenarios  string // empty: bench.DefaultScenarios, or all with --family
		duration   = "5s"
		asJSON     bool
		reportFile string
		microFile  string
		fromJSON   string
	)
	o.Runs, o.IdleConns, o.ProfileName = 3, 100000, "linux"
	rest, err := parseFlags("bench", args, []flagDef{
		stringFlag("stack", &stacks, checkStacks),
		stringFlag("scenario", &scenarios, checkScenarios),
		oneOfFlag("family", []string{"4", "6", "both"}, &o.Family),
		stringFlag("duration", &duration, nil),
		intFlag("runs", "a number of runs", 1, 100, "3", &o.Runs),
		boolFlag("json", &asJSON),
		stringFlag("impair", &o.Impair, nil),
		oneOfFlag("profile", policy.Names(), &o.ProfileName),
		intFlag("idle-conns", "a number of connections", 1, 1000000, "100000", &o.IdleConns),
		stringFlag("profile-dir", &o.ProfileDir, nil),
		stringFlag("report", &reportFile, nil),
		stringFlag("micro", &microFile, checkReadable("micro")),
		stringFlag("from-json", &fromJSON, checkReadable("from-json")),
	})
	if errors.Is(err, errHelp) {
		fmt.Print(benchHelp())
		return nil
	}
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("bench takes no arguments, but got %q; choose what to run with --stack and --scenario.", rest[0])
	}
	if fromJSON != "" {
		return renderBenchReport(fromJSON, reportFile, microFile)
	}
	if stacks != "" {
		o.Stacks = strings.Split(stacks, ",")
	}
	if scenarios != "" {
		o.Scenarios = strings.Split(scenarios, ",")
	}
	if o.Duration, err = time.ParseDuration(duration); err != nil || o.Duration < 100*time.Millisecond {
		return usagef("--duration must be a duration of 100ms or more, as in --duration 5s, not %q.", duration)
	}
	if err := o.Normalize(); err != nil {
		return usagef("%v.", err)
	}
	if err := bench.CheckImpair(o.Impair); err != nil {
		return usagef("%v.", err)
	}
	if os.Geteuid() != 0 {
		return errors.New("bench needs root to create network namespaces and TUN devices: run it with sudo")
	}
	o.Progress = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	machine := bench.ReadMachine()
	stackList := strings.Join(o.Stacks, ",")
	if len(o.LossyVariants) > 0 && slices.Contains(o.Scenarios, "lossy") {
		stackList += " (lossy also " + strings.Join(o.LossyVariants, ",") + ")"
	}
	fmt.Fprintf(os.Stderr, "tunstack bench: %s on %s, %s, load %s; %d run(s) of %s per figure\n",
		stackList, machine.Kernel, machine.GoVersion, machine.LoadBefore, o.Runs, o.Duration)
	results, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	machine.LoadAfter = bench.LoadAverage()
	rep, err := bench.NewReport(o, results, machine)
	if err != nil {
		return err
	}
	if microFile != "" {
		if rep.Micro, err = readMicro(microFile); err != nil {
			return err
		}
	}
	if o.ProfileDir != "" {
		rep.Profiles = bench.SummarizeProfiles(o.ProfileDir, 40)
	}
	if asJSON {
		if err := rep.WriteJSON(os.Stdout); err != nil {
			return err
		}
	} else {
		fmt.Println()
		if err := bench.WriteTable(os.Stdout, results); err != nil {
			return err
		}
		fmt.Printf("\nload average %s before, %s after; medians of %d run(s).\n", machine.LoadBefore, machine.LoadAfter, o.Runs)
	}
	if reportFile != "" {
		if err := bench.WriteReportFiles(rep, reportFile); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "report written to %s, plot and profile summaries to %s\n", reportFile, filepath.Join(filepath.Dir(reportFile), "perf"))
	}
	var failed []string
	for _, r := range results {
		if r.Skip == "" && !r.Measured() {
			failed = append(failed, r.Stack+" "+r.Scenario)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d figure(s) could not be measured (%s); the table says why", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// renderBenchReport rewrites the Markdown report, plot and summaries from
// a JSON report, without measuring; microFile, if given, replaces the
// report's micro-benchmarks (a benchmark added after the run).
func renderBenchReport(jsonFile, reportFile, microFile string) error {
	if reportFile == "" {
		return usagef("--from-json needs --report FILE.md to say where the report goes.")
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		return err
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s is not a bench JSON report: %w", jsonFile, err)
	}
	if microFile != "" {
		if rep.Micro, err = readMicro(microFile); err != nil {
			return err
		}
	}
	if err := bench.WriteReportFiles(&rep, reportFile); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "report written to %s from %s\n", reportFile, jsonFile)
	return nil
}

// readMicro parses a file of go test -bench -benchmem output.
func readMicro(path string) ([]bench.MicroResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := bench.ParseMicro(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return m, nil
}

// checkScenarios accepts a comma-separated list of scenario names, each
// with or without the IPv6 suffix.
func checkScenarios(v string) error {
	for _, w := range strings.Split(v, ",") {
		if !slices.Contains(bench.ScenarioNames(), bench.BaseScenario(w)) {
			return usagef("--scenario takes a comma-separated list of %s, each with -v6 after it for IPv6, as in --scenario bulk-down,bulk-down-v6, not %q.", orList(bench.ScenarioNames()), v)
		}
	}
	return nil
}

// checkStacks accepts a comma-separated list of stack labels.
func checkStacks(v string) error {
	for _, w := range strings.Split(v, ",") {
		if err := bench.CheckStack(w); err != nil {
			return usagef("--stack: %s.", strings.TrimPrefix(err.Error(), "bench: "))
		}
	}
	return nil
}

// wrapList joins words with commas into lines of at most width columns,
// the lines after the first indented by indent spaces.
func wrapList(words []string, indent, width int) string {
	var b strings.Builder
	col := indent
	for i, w := range words {
		if i < len(words)-1 {
			w += ","
		}
		if i > 0 {
			if col+1+len(w) > width {
				b.WriteString("\n" + strings.Repeat(" ", indent))
				col = indent
			} else {
				b.WriteString(" ")
				col++
			}
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}

func checkReadable(name string) func(string) error {
	return func(v string) error {
		if _, err := os.Stat(v); err != nil {
			return usagef("--%s %q cannot be read (%v); give a file that exists.", name, v, err)
		}
		return nil
	}
}
