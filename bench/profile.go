package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ProfileSummary is the top of one profile of a profiled run, as
// `go tool pprof -top` prints it.
type ProfileSummary struct {
	Stack    string   `json:"stack"`
	Scenario string   `json:"scenario"`
	Kind     string   `json:"kind"` // "cpu", "cpu_cum", "alloc_space", "alloc_objects" or "sched"
	File     string   `json:"file"` // the profile read
	Lines    []string `json:"lines,omitempty"`
	Err      string   `json:"error,omitempty"`
}

// profileKinds are the views a profiled run is summarized in: the CPU
// profile of the window (by flat time, and by cumulative time over the
// project's packages), the allocations made during the window (the
// allocs profile at its end minus the one at its start) by bytes and by
// count, and for a traced run the scheduler latency its trace shows
// (`go tool trace -pprof=sched`: the time goroutines spent runnable
// before they ran, by the stack where they were made runnable).
var profileKinds = []struct {
	kind, suffix string
	args         func(prefix string) []string
	// fromTrace, if set, is the -pprof view of the trace that is
	// extracted first into suffix's file.
	fromTrace string
}{
	{"cpu", ".cpu.pprof", func(string) []string { return nil }, ""},
	// The same CPU profile by cumulative time, showing only the project's
	// own packages: system calls are charged to the stack code that made
	// them.
	{"cpu_cum", ".cpu.pprof", func(string) []string {
		return []string{"-cum", `-show=^tunstack/(tcpcore|stack|netif|wire|congestion|policy)\.`}
	}, ""},
	{"alloc_space", ".allocs.pprof", func(p string) []string {
		return []string{"-sample_index=alloc_space", "-diff_base=" + p + ".allocs-base.pprof"}
	}, ""},
	{"alloc_objects", ".allocs.pprof", func(p string) []string {
		return []string{"-sample_index=alloc_objects", "-diff_base=" + p + ".allocs-base.pprof"}
	}, ""},
	{"sched", ".sched.pprof", func(string) []string { return nil }, "sched"},
}

// SummarizeProfiles runs `go tool pprof -top` on the profiles a run with
// Options.ProfileDir left in dir, keeping nodes lines of each. The Go tool
// is $GO, or go on PATH, or /usr/local/go/bin/go.
func SummarizeProfiles(dir string, nodes int) []ProfileSummary {
	goTool := goToolPath()
	var out []ProfileSummary
	for _, sc := range profiledScenarios {
		prefix := profilePrefix(dir, "tunstack", sc)
		for _, k := range profileKinds {
			s := ProfileSummary{Stack: "tunstack", Scenario: sc, Kind: k.kind, File: prefix + k.suffix}
			if k.fromTrace != "" {
				if _, err := os.Stat(prefix + ".trace"); err != nil {
					continue
				}
				if err := extractTraceProfile(goTool, prefix+".trace", k.fromTrace, s.File); err != nil {
					s.Err = err.Error()
					out = append(out, s)
					continue
				}
			}
			if _, err := os.Stat(s.File); err != nil {
				continue
			}
			args := append([]string{"tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", nodes)}, k.args(prefix)...)
			args = append(args, s.File)
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(goTool, args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				s.Err = fmt.Sprintf("%s %s: %v: %s", goTool, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
			} else {
				s.Lines = topLines(stdout.String())
			}
			out = append(out, s)
		}
	}
	return out
}

// extractTraceProfile writes the pprof profile `go tool trace -pprof=view`
// makes of a runtime trace to file.
func extractTraceProfile(goTool, traceFile, view, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(goTool, "tool", "trace", "-pprof="+view, traceFile)
	cmd.Stdout, cmd.Stderr = f, &stderr
	err = cmd.Run()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s tool trace -pprof=%s %s: %v: %s", goTool, view, traceFile, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// topLines keeps pprof's totals line and the table, without the file,
// type and time lines that name this machine's paths.
func topLines(text string) []string {
	var keep []string
	started := false
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if strings.HasPrefix(l, "Duration:") || strings.HasPrefix(l, "Active filters") || strings.HasPrefix(l, "Showing nodes") {
			started = true
		}
		if started {
			keep = append(keep, l)
		}
	}
	return keep
}

func goToolPath() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// writeProfileSummaries writes each summary to dir as
// STACK-SCENARIO.KIND.txt and returns the files' names.
func writeProfileSummaries(dir string, sums []ProfileSummary) ([]string, error) {
	var names []string
	var errs []error
	for _, s := range sums {
		name := fmt.Sprintf("%s-%s.%s.txt", s.Stack, s.Scenario, s.Kind)
		body := strings.Join(s.Lines, "\n") + "\n"
		if s.Err != "" {
			body = "error: " + s.Err + "\n"
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			errs = append(errs, err)
			continue
		}
		names = append(names, name)
	}
	return names, errors.Join(errs...)
}
