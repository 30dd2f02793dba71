package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"tunstack/conformance"
)

func init() { commands["conformance-doc"] = runConformanceDoc }

// errUnexplained makes the exit status non-zero after the document has been
// written: it lists the differences nobody has explained.
var errUnexplained = errors.New("unexplained differences")

// runConformanceDoc is `tunstack conformance-doc [--out docs/conformance.md]
// [--differences conformance/differences.json] [--scripts conformance/scripts]
// [--stacks linux,tunstack,gvisor] [--not-run STACK[,STACK]=REASON] RESULTS.json...`:
// it reads the JSON of `tunstack drill --json` runs and writes the
// conformance matrix, a column per stack and IP family the results ran
// in. A later result for a script, stack and family replaces an earlier
// one (a rerun of a failed script) and is marked as a retry. With
// --failed it only prints the scripts that failed in the given files. It
// fails when a reference stack and tunstack disagree on a script and
// neither the differences file nor a tunstack-difference marker in the
// script says why.
func runConformanceDoc(args []string) error {
	out := "docs/conformance.md"
	diffPath := "conformance/differences.json"
	root := "conformance/scripts"
	stackList := "linux,tunstack,gvisor"
	notRun := map[string]string{}
	listFailed := false
	files, err := parseFlags("conformance-doc", args, []flagDef{
		boolFlag("failed", &listFailed),
		stringFlag("out", &out, nil),
		stringFlag("differences", &diffPath, nil),
		stringFlag("scripts", &root, nil),
		stringFlag("stacks", &stackList, nil),
		{name: "not-run", set: func(v string) error {
			sts, why, ok := strings.Cut(v, "=")
			if !ok || sts == "" || why == "" {
				return usagef("--not-run takes STACK[,STACK...]=REASON, as in --not-run 'linux=not root', not %q.", v)
			}
			for _, st := range strings.Split(sts, ",") {
				notRun[st] = why
			}
			return nil
		}},
	})
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("give the JSON of one or more tunstack drill --json runs, one file per stack.")
	}
	stacks := strings.Split(stackList, ",")
	results := map[string][]*conformance.Result{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var rs []*conformance.Result
		if err := json.Unmarshal(b, &rs); err != nil {
			return fmt.Errorf("%s is not the output of tunstack drill --json: %w", f, err)
		}
		for _, r := range rs {
			results[r.Stack] = append(results[r.Stack], r)
		}
	}
	if listFailed {
		// The scripts to run again: every FAIL in the given files.
		for _, f := range files {
			b, _ := os.ReadFile(f)
			var rs []*conformance.Result
			json.Unmarshal(b, &rs)
			for _, r := range rs {
				if r.Status == conformance.Fail {
					fmt.Println(r.Script)
				}
			}
		}
		return nil
	}
	for _, st := range stacks {
		if results[st] == nil && notRun[st] == "" {
			notRun[st] = "no results were given for it"
		}
	}
	diffs, err := conformance.LoadDifferences(diffPath)
	if err != nil {
		return err
	}
	m, err := conformance.BuildMatrix(stacks, results, notRun, root, diffs)
	if err != nil {
		return err
	}
	kernel := ""
	if results["linux"] != nil {
		var u unix.Utsname
		if unix.Uname(&u) == nil {
			kernel = unix.ByteSliceToString(u.Release[:])
		}
	}
	if err := os.WriteFile(out, []byte(m.Markdown(kernel)), 0o644); err != nil {
		return err
	}
	for _, st := range stacks {
		for _, f := range m.Families {
			c := m.CountFamily(st, f)
			fmt.Printf("%-11s %-16s %3d PASS %3d FAIL %3d DIFF %3d SKIP %3d not run\n", st, f, c.Pass, c.Fail, c.Diff, c.Skip, c.NotRun)
		}
	}
	for _, s := range m.Stale {
		fmt.Fprintf(os.Stderr, "warning: %s on %s: %s\n", s.Script, s.Stack, s.Message)
	}
	fmt.Printf("wrote %s\n", out)
	if len(m.Problems) > 0 {
		for _, p := range m.Problems {
			fmt.Fprintf(os.Stderr, "unexplained: %s on %s: %s\n", p.Script, p.Stack, p.Message)
		}
		return fmt.Errorf("%w: %d; explain each in %s (which behaviour is right and why) or fix the stack", errUnexplained, len(m.Problems), diffPath)
	}
	return nil
}
