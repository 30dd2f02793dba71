package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"tunstack/conformance"
)

func init() { commands["reliability-doc"] = runReliabilityDoc }

// runReliabilityDoc is `tunstack reliability-doc [--out docs/reliability.md]
// [--runs docs/reliability/runs.json] [--soak docs/reliability/soak.json]
// [--scripts conformance/scripts] [--no-drill] TESTLOG...`: it writes
// docs/reliability.md from
//
//   - the logs of `go test -v` runs of the adversarial tests, whose
//     RELIABILITY lines give each case's outcome and figures on one stack
//     (a line may name conformance scripts that check the same rule; those
//     are run with `tunstack drill` on linux, as root, and on gvisor, and
//     their results stand for those stacks where no line of theirs does);
//   - runs.json, the records of the long runs (fuzzing, the seeded
//     simulations), which `tunstack reliability-doc --record` adds to;
//   - soak.json and soak.svg, which `tunstack soak` writes.
//
// With --record fuzz|sim LOG it instead reads the log of one long run
// (`go test -fuzz`, `make fuzz`, or the simulations' -sim.seeds run) and
// appends its record to --runs; --target names the fuzz target of a log
// of a single `go test -fuzz` run, --finding says what the run found.
func runReliabilityDoc(args []string) error {
	out := "docs/reliability.md"
	runsPath := "docs/reliability/runs.json"
	soakPath := "docs/reliability/soak.json"
	scripts := "conformance/scripts"
	noDrill := false
	record, target, finding := "", "", ""
	logs, err := parseFlags("reliability-doc", args, []flagDef{
		stringFlag("out", &out, nil),
		stringFlag("runs", &runsPath, nil),
		stringFlag("soak", &soakPath, nil),
		stringFlag("scripts", &scripts, nil),
		boolFlag("no-drill", &noDrill),
		oneOfFlag("record", []string{"fuzz", "sim"}, &record),
		stringFlag("target", &target, nil),
		stringFlag("finding", &finding, nil),
	})
	if err != nil {
		return err
	}
	if record != "" {
		if len(logs) != 1 {
			return usagef("--record %s takes one log file, as in tunstack reliability-doc --record %s fuzz.log.", record, record)
		}
		return recordRun(runsPath, record, logs[0], target, finding)
	}
	if len(logs) == 0 {
		return usagef("give the logs of go test -v runs of the adversarial tests, as in tunstack reliability-doc engine.log hostile.log.")
	}
	var lines []reliabilityEntry
	var failed []string
	for _, f := range logs {
		l, fl, err := readReliabilityLog(f)
		if err != nil {
			return err
		}
		lines, failed = append(lines, l...), append(failed, fl...)
	}
	runs, err := readRuns(runsPath)
	if err != nil {
		return err
	}
	var soakRep *soakReport
	if b, err := os.ReadFile(soakPath); err == nil {
		soakRep = &soakReport{}
		if err := json.Unmarshal(b, soakRep); err != nil {
			return fmt.Errorf("%s: %v", soakPath, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	drills := map[string]map[string]string{} // stack -> script -> outcome
	notRun := map[string]string{}            // stack -> why the scripts were not run
	if noDrill {
		notRun["linux"], notRun["gvisor"] = "--no-drill", "--no-drill"
	} else {
		all := scriptsOf(lines)
		slices.Sort(all)
		for _, st := range []string{"linux", "gvisor"} {
			if st == "linux" && os.Geteuid() != 0 {
				notRun[st] = "this run was not root"
				continue
			}
			res, err := drillScripts(st, scripts, all)
			if err != nil {
				return fmt.Errorf("running the scripts on %s: %w", st, err)
			}
			drills[st] = res
		}
	}
	doc := renderReliability(lines, failed, runs, soakRep, soakPath, out, drills, notRun)
	if err := os.WriteFile(out, doc, 0o644); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s written, but tests failed: %s", out, strings.Join(failed, ", "))
	}
	return nil
}

// reliabilityEntry is one RELIABILITY line: one case on one stack.
type reliabilityEntry struct {
	Case    string         `json:"case"`
	Stack   string         `json:"stack"`
	Outcome string         `json:"outcome"`
	Figures map[string]any `json:"figures"`
	Scripts []string       `json:"scripts,omitempty"`
	Test    string         `json:"-"`
}

var (
	reliabilityRe = regexp.MustCompile(`RELIABILITY (\{.*?)\s*$`)
	testRunRe     = regexp.MustCompile(`^=== (?:RUN|CONT|NAME)\s+(\S+)`)
	testFailRe    = regexp.MustCompile(`^\s*--- FAIL: (\S+)`)
)

// scriptsOf is the conformance scripts the entries name, each once, in
// the order they first appear.
func scriptsOf(es []reliabilityEntry) []string {
	var scripts []string
	for _, e := range es {
		for _, s := range e.Scripts {
			if !slices.Contains(scripts, s) {
				scripts = append(scripts, s)
			}
		}
	}
	return scripts
}

// readReliabilityLog collects the RELIABILITY lines of a go test -v log,
// each with the test that wrote it, and the tests that failed.
func readReliabilityLog(path string) ([]reliabilityEntry, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var out []reliabilityEntry
	var failed []string
	test := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := testRunRe.FindStringSubmatch(line); m != nil {
			test = m[1]
		}
		if m := testFailRe.FindStringSubmatch(line); m != nil {
			failed = append(failed, m[1])
		}
		m := reliabilityRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var e reliabilityEntry
		if err := json.Unmarshal([]byte(m[1]), &e); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: a RELIABILITY line that is not JSON: %v", path, n, err)
		}
		if e.Case == "" || e.Stack == "" {
			return nil, nil, fmt.Errorf("%s:%d: a RELIABILITY line without case or stack", path, n)
		}
		e.Test = test
		out = append(out, e)
	}
	return out, failed, sc.Err()
}

// drillScripts runs scripts (relative to root) with this program's drill
// on stack and returns each one's outcome in words. gVisor runs each
// script to its end past mismatches (--keep-going), so its outcome says
// how many lines matched; Linux runs in real time, so a script that fails
// there is run again, twice at most, as make conformance does.
func drillScripts(stack, root string, scripts []string) (map[string]string, error) {
	res := map[string]string{}
	todo := scripts
	for try := 0; try < 3 && len(todo) > 0; try++ {
		results, err := drillRun(stack, root, todo)
		if err != nil {
			return nil, err
		}
		todo = nil
		for _, r := range results {
			rel, err := filepath.Rel(root, r.Script)
			if err != nil {
				rel = r.Script
			}
			rel = filepath.ToSlash(rel)
			word := strings.ToLower(string(r.Status))
			if r.Status == conformance.Pass && try > 0 {
				word += fmt.Sprintf(" (run %d times: real time on a loaded machine)", try+1)
			}
			if r.Status == conformance.Fail {
				if stack == "linux" && try < 2 {
					todo = append(todo, rel)
				}
				if r.Lines > 0 {
					word = fmt.Sprintf("differs: %d of %d lines matched", r.Matched, r.Lines)
				}
				if r.Failure != nil {
					word += " (first: " + r.Failure.Message + ")"
				}
			}
			res[rel] = word
		}
	}
	return res, nil
}

// drillRun runs `tunstack drill --json` on stack and reads its results.
func drillRun(stack, root string, scripts []string) ([]conformance.Result, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"drill", "--stack", stack, "--json"}
	if stack == "gvisor" {
		args = append(args, "--keep-going")
	}
	for _, s := range scripts {
		args = append(args, filepath.Join(root, s))
	}
	var stdout bytes.Buffer
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = &stdout, io.Discard
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		return nil, err
	}
	var results []conformance.Result
	if err := json.Unmarshal(stdout.Bytes(), &results); err != nil {
		return nil, fmt.Errorf("reading drill's JSON: %v", err)
	}
	return results, nil
}

// reliabilityRun is a record of one long run in runs.json.
type reliabilityRun struct {
	Kind     string  `json:"kind"`   // fuzz or sim
	Target   string  `json:"target"` // the fuzz target or the test
	Package  string  `json:"package,omitempty"`
	Date     string  `json:"date"`
	Seconds  float64 `json:"seconds,omitempty"`  // fuzzing time
	Execs    int64   `json:"execs,omitempty"`    // fuzz inputs run
	NewInter int64   `json:"new_interesting"`    // inputs that found new coverage
	Crashed  bool    `json:"crashed"`            // a crash or failure was found
	Seeds    int64   `json:"seeds,omitempty"`    // simulations: scenarios run
	FirstSd  int64   `json:"first_seed"`         // simulations: the first seed
	Summary  string  `json:"summary,omitempty"`  // simulations: their totals
	Failures string  `json:"failures,omitempty"` // what failed, from the log
	Finding  string  `json:"finding,omitempty"`  // what the run found, in words
	Passed   bool    `json:"passed"`
}

func readRuns(path string) ([]reliabilityRun, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var runs []reliabilityRun
	if err := json.Unmarshal(b, &runs); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return runs, nil
}

var (
	fuzzHeaderRe  = regexp.MustCompile(`^== (Fuzz\w+) \((\S+)\) for`)
	fuzzElapsedRe = regexp.MustCompile(`^fuzz: elapsed: (\S+), execs: (\d+) .*new interesting: (\d+)`)
	simLineRe     = regexp.MustCompile(`seeds (\d+) to (\d+), (\d+) scenarios: (\d+) bytes, (\d+) packets lost, (\d+) queue drops, (\d+) fast and (\d+) timeout retransmissions, (\d+) spurious reductions undone`)
	seedFailRe    = regexp.MustCompile(`seed (\d+): (.*)$`)
)

// recordRun reads the log of a long run and appends its records to the
// runs file.
func recordRun(runsPath, kind, logPath, target, finding string) error {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return err
	}
	st, err := os.Stat(logPath)
	if err != nil {
		return err
	}
	date := st.ModTime().UTC().Format("2006-01-02")
	var recs []reliabilityRun
	switch kind {
	case "fuzz":
		recs, err = parseFuzzLog(string(b), target, date)
	case "sim":
		recs, err = parseSimLog(string(b), date)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", logPath, err)
	}
	for i := range recs {
		recs[i].Finding = finding
	}
	runs, err := readRuns(runsPath)
	if err != nil {
		return err
	}
	runs = append(runs, recs...)
	out, err := json.MarshalIndent(runs, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(runsPath), 0o755); err != nil {
		return err
	}
	return os.WriteFile(runsPath, append(out, '\n'), 0o644)
}

// parseFuzzLog reads the output of go test -fuzz: one target, named by
// target, or several, each under make fuzz's "== NAME (PKG) for T" line.
func parseFuzzLog(log, target, date string) ([]reliabilityRun, error) {
	var recs []reliabilityRun
	var cur *reliabilityRun
	for line := range strings.Lines(log) {
		line = strings.TrimRight(line, "\n")
		if m := fuzzHeaderRe.FindStringSubmatch(line); m != nil {
			recs = append(recs, reliabilityRun{Kind: "fuzz", Target: m[1], Package: m[2], Date: date, Passed: true})
			cur = &recs[len(recs)-1]
			continue
		}
		if cur == nil {
			if target == "" {
				return nil, errors.New("the log names no target (make fuzz's == NAME lines); give --target NAME")
			}
			recs = append(recs, reliabilityRun{Kind: "fuzz", Target: target, Date: date, Passed: true})
			cur = &recs[len(recs)-1]
		}
		if m := fuzzElapsedRe.FindStringSubmatch(line); m != nil {
			d, err := time.ParseDuration(m[1])
			if err != nil {
				return nil, fmt.Errorf("elapsed %q: %v", m[1], err)
			}
			cur.Seconds = d.Seconds()
			cur.Execs, _ = strconv.ParseInt(m[2], 10, 64)
			cur.NewInter, _ = strconv.ParseInt(m[3], 10, 64)
		}
		if strings.HasPrefix(strings.TrimSpace(line), "--- FAIL:") || strings.Contains(line, "Failing input written to") {
			cur.Crashed, cur.Passed = true, false
			if strings.Contains(line, "Failing input written to") {
				cur.Failures = strings.TrimSpace(line)
			}
		}
	}
	if len(recs) == 0 {
		return nil, errors.New("no fuzzing in the log")
	}
	return recs, nil
}

// parseSimLog reads the -v output of a TestSimulationScenarios run: each
// worker's totals, and the seeds that failed.
func parseSimLog(log, date string) ([]reliabilityRun, error) {
	r := reliabilityRun{Kind: "sim", Target: "TestSimulationScenarios", Date: date, FirstSd: -1}
	var sum [6]int64
	workers := 0
	var fails []string
	for line := range strings.Lines(log) {
		if m := simLineRe.FindStringSubmatch(line); m != nil {
			workers++
			first, _ := strconv.ParseInt(m[1], 10, 64)
			if r.FirstSd < 0 || first < r.FirstSd {
				r.FirstSd = first
			}
			n, _ := strconv.ParseInt(m[3], 10, 64)
			r.Seeds += n
			for i := range sum {
				v, _ := strconv.ParseInt(m[4+i], 10, 64)
				sum[i] += v
			}
			continue
		}
		if m := seedFailRe.FindStringSubmatch(strings.TrimSpace(line)); m != nil && strings.Contains(line, "_test.go:") {
			fails = append(fails, "seed "+m[1]+": "+m[2])
		}
	}
	if workers == 0 && len(fails) == 0 {
		return nil, errors.New("no simulation totals in the log (run the test with -v)")
	}
	r.Passed = len(fails) == 0 && strings.Contains(log, "\nPASS\n")
	r.Summary = fmt.Sprintf("%d bytes, %d packets lost, %d queue drops, %d fast and %d timeout retransmissions, %d spurious reductions undone",
		sum[0], sum[1], sum[2], sum[3], sum[4], sum[5])
	r.Failures = strings.Join(fails, "\n")
	return []reliabilityRun{r}, nil
}

// renderReliability writes the document.
func renderReliability(lines []reliabilityEntry, failed []string, runs []reliabilityRun, soakRep *soakReport, soakPath, out string,
	drills map[string]map[string]string, notRun map[string]string) []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Reliability\n\n")
	p("What hostile peers, faults, fuzzing and a long soak do to tunstack, with Linux and gVisor beside it where they were run. ")
	p("Generated by `make reliability` (`tunstack reliability-doc`) from real runs: the adversarial tests' `RELIABILITY` log lines, ")
	p("the conformance scripts that check the same rules on Linux and gVisor, the records of the long fuzzing and simulation runs in ")
	p("`docs/reliability/runs.json`, and the soak's `docs/reliability/soak.json`. Do not edit it by hand.\n\n")
	if len(failed) > 0 {
		p("**Tests that failed in the run that made this document:** %s.\n\n", strings.Join(failed, ", "))
	}

	// The attacks: one row per case, a column per stack.
	p("## Attacks and faults\n\n")
	p("Each row is one adversarial case. *engine* is tunstack's TCP engine alone, in virtual time (`tcpcore` tests); ")
	p("*over TUN* is `tunstack serve` on a TUN device attacked from raw sockets in a namespace. ")
	p("Where no test ran a case on Linux or gVisor, the column gives the conformance scripts that check the same rule, as `tunstack drill` ran them, or says it was not run.\n\n")
	p("| case | Linux | gVisor | tunstack | figures |\n|---|---|---|---|---|\n")
	var cases []string
	byCase := map[string][]reliabilityEntry{}
	for _, l := range lines {
		if _, ok := byCase[l.Case]; !ok {
			cases = append(cases, l.Case)
		}
		byCase[l.Case] = append(byCase[l.Case], l)
	}
	for _, c := range cases {
		es := byCase[c]
		scripts := scriptsOf(es)
		cell := func(stack string) string {
			var parts []string
			for _, e := range es {
				if e.Stack == stack {
					parts = append(parts, e.Outcome)
				}
			}
			if len(parts) > 0 {
				return mdCell(strings.Join(parts, "; "))
			}
			if len(scripts) == 0 {
				return "not run (no test or script for it on " + stack + ")"
			}
			if why, ok := notRun[stack]; ok {
				return mdCell(fmt.Sprintf("not run (%s); scripts %s", why, strings.Join(codeList(scripts), ", ")))
			}
			var rs []string
			for _, s := range scripts {
				rs = append(rs, fmt.Sprintf("`%s`: %s", s, drills[stack][s]))
			}
			return mdCell(strings.Join(rs, "; "))
		}
		var ours, figs []string
		for _, e := range es {
			if e.Stack == "linux" || e.Stack == "gvisor" {
				if len(e.Figures) > 0 {
					figs = append(figs, e.Stack+": "+figureText(e.Figures))
				}
				continue
			}
			where := e.Stack
			if where == "tunstack" {
				where = "over TUN"
			} else if strings.HasPrefix(where, "tunstack (engine") {
				where = "engine"
			}
			ours = append(ours, "*"+where+"*: "+e.Outcome)
			if len(e.Figures) > 0 {
				figs = append(figs, where+": "+figureText(e.Figures))
			}
		}
		if len(ours) == 0 {
			ours = []string{"not run"}
		}
		p("| %s | %s | %s | %s | %s |\n", mdCell(c), cell("linux"), cell("gvisor"), mdCell(strings.Join(ours, "; ")), mdCell(strings.Join(figs, "; ")))
	}
	if len(cases) == 0 {
		p("| (no RELIABILITY lines in the logs) | | | | |\n")
	}
	p("\n")

	// Fuzzing.
	p("## Fuzzing\n\n")
	var fuzz, sims []reliabilityRun
	for _, r := range runs {
		switch r.Kind {
		case "fuzz":
			fuzz = append(fuzz, r)
		case "sim":
			sims = append(sims, r)
		}
	}
	if len(fuzz) == 0 {
		p("No fuzzing run is recorded.\n\n")
	} else {
		type agg struct {
			secs              float64
			execs, runs, news int64
			crashes           []string
		}
		totals := map[string]*agg{}
		var order []string
		var all float64
		for _, r := range fuzz {
			a := totals[r.Target]
			if a == nil {
				a = &agg{}
				totals[r.Target] = a
				order = append(order, r.Target)
			}
			a.secs += r.Seconds
			a.execs += r.Execs
			a.news += r.NewInter
			a.runs++
			all += r.Seconds
			if r.Crashed {
				a.crashes = append(a.crashes, strings.TrimSpace(r.Failures+" "+r.Finding))
			}
		}
		p("%.1f hours of fuzzing in %d runs over %d targets (`go test -fuzz` under `nice -n 19`). ", all/3600, len(fuzz), len(order))
		p("A run that shows no input run spent its time gathering the baseline coverage of the seed corpus (every corpus input run once) on a loaded machine, before fuzzing proper began.\n\n")
		p("| target | runs | time | inputs run | new coverage | crashes |\n|---|---|---|---|---|---|\n")
		for _, t := range order {
			a := totals[t]
			cr := "none"
			if len(a.crashes) > 0 {
				cr = mdCell(strings.Join(a.crashes, "; "))
			}
			p("| `%s` | %d | %s | %d | %d | %s |\n", t, a.runs, (time.Duration(a.secs) * time.Second).String(), a.execs, a.news, cr)
		}
		p("\n")
		for _, r := range fuzz {
			if r.Finding != "" {
				p("- %s (%s, %s): %s\n", r.Target, r.Date, (time.Duration(r.Seconds) * time.Second).String(), r.Finding)
			}
		}
		p("\n")
	}

	// The seeded simulations.
	p("## Seeded simulations\n\n")
	if len(sims) == 0 {
		p("No long simulation run is recorded.\n\n")
	} else {
		var seeds int64
		for _, r := range sims {
			seeds += r.Seeds
		}
		p("%d seeded two-engine transfers (`TestSimulationScenarios -sim.seeds=N -sim.first=K`: loss up to 10%%, reordering, duplication, ", seeds)
		p("packets held up 250 ms to 1 s for spurious timeouts and their undo, bottlenecks with tail drop; every transfer checked SHA-256-exact, ")
		p("within its virtual-time budget, and no byte sent again more than 12 times).\n\n")
		p("| date | seeds | result | totals | failures |\n|---|---|---|---|---|\n")
		for _, r := range sims {
			res := "passed"
			if !r.Passed {
				res = "failed"
			}
			p("| %s | %d from %d | %s | %s | %s |\n", r.Date, r.Seeds, r.FirstSd, res, mdCell(r.Summary), mdCell(r.Failures))
		}
		p("\n")
		for _, r := range sims {
			if r.Finding != "" {
				p("- %s (%d seeds from %d): %s\n", r.Date, r.Seeds, r.FirstSd, r.Finding)
			}
		}
		p("\n")
	}

	// The soak.
	p("## Soak\n\n")
	if soakRep == nil {
		p("No soak has been recorded (`make soak` writes `%s`).\n", soakPath)
	} else {
		s := soakRep
		verdict := "passed"
		if !s.Passed {
			verdict = "failed: " + strings.Join(s.Failures, "; ")
		}
		t := &s.Totals
		p("`make soak` on %s: `tunstack serve --stack %s` in a namespace of its own under `--impair %s`, %d clients for %v ",
			s.Started.Format("2006-01-02 15:04 UTC"), s.Stack, s.Impair, s.Conns, time.Duration(s.LoadS*float64(time.Second)))
		p("(keep-alive HTTP sessions of /bytes/N downloads checked against the pattern and /upload bodies checked against the SHA-256 it answers, ")
		p("echoes ending with a half-close, early closes halfway through a response, and resets), then sampled until every connection had ended. ")
		p("The clients' kernel sockets are in serve's namespace, set up as a load generator's (the whole ephemeral port range, TIME-WAIT reuse: netns.LoadGenerator), since they close first and each port then waits 60 s in TIME-WAIT. Result: **%s**.\n\n", verdict)
		p("| figure | value |\n|---|---|\n")
		p("| connections opened | %d |\n| requests | %d (downloads %d, uploads %d) |\n| echoes with half-close | %d |\n| early closes | %d |\n| aborts (RST) | %d |\n",
			t.Connections, t.Requests, t.Downloads, t.Uploads, t.Echoes, t.EarlyCloses, t.Aborts)
		p("| bytes checked | %d |\n| bytes lost or corrupted | %d transfers |\n| failed operations | %d |\n", t.BytesChecked, t.Corruptions, t.Errors)
		if t.Starved > 0 {
			p("| deadlines missed by a starved client (the bytes it waited for unread in its socket; not failures of the stack) | %d |\n", t.Starved)
		}
		p("| live heap after GC: start, peak, end | %.1f, %.1f, %.1f MiB |\n", s.Baseline.HeapBytes/(1<<20), s.Peak.HeapBytes/(1<<20), s.Final.HeapBytes/(1<<20))
		p("| goroutines: start, peak, end | %.0f, %.0f, %.0f |\n", s.Baseline.Goroutines, s.Peak.Goroutines, s.Final.Goroutines)
		p("| TCP connections: start, peak, end | %.0f, %.0f, %.0f |\n", s.Baseline.Conns, s.Peak.Conns, s.Final.Conns)
		p("| file descriptors: start, peak, end | %.0f, %.0f, %.0f |\n", s.Baseline.FDs, s.Peak.FDs, s.Final.FDs)
		if s.SettledS > 0 {
			p("| connections back to zero | %.0f s after the load ended |\n", s.SettledS-s.LoadEndS)
		}
		p("| serve's CPU | %.0f s over %.0f s |\n", s.CPUSeconds, s.Samples[len(s.Samples)-1].T)
		if len(t.FirstErrors) > 0 {
			p("\nFirst errors: %s\n", mdCell(strings.Join(t.FirstErrors, "; ")))
		}
		if len(t.FirstStarved) > 0 {
			p("\nFirst deadlines missed by a starved client: %s\n", mdCell(strings.Join(t.FirstStarved, "; ")))
		}
		if len(s.MissedSamples) > 0 {
			p("\nSamples missed (serve's metrics endpoint, kernel TCP on loopback inside the namespace, did not answer in 30 s; an EOF is its own 30 s write timeout (metrics.Serve) closing a scrape that took longer): %s\n",
				mdCell(strings.Join(s.MissedSamples, "; ")))
		}
		svg := strings.TrimSuffix(soakPath, ".json") + ".svg"
		if rel, err := filepath.Rel(filepath.Dir(out), svg); err == nil {
			svg = filepath.ToSlash(rel)
		}
		p("\n![live heap, goroutines, connections and descriptors of serve over the soak](%s)\n", svg)
	}
	return b.Bytes()
}

// figureText is a case's figures, sorted by name.
func figureText(f map[string]any) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(f)) {
		parts = append(parts, fmt.Sprintf("%s %v", k, f[k]))
	}
	return strings.Join(parts, ", ")
}

func codeList(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "`" + s + "`"
	}
	return out
}

// mdCell makes text safe inside a Markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", "<br>")
}
