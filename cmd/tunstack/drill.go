package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"tunstack/conformance"
	"tunstack/policy"
)

func init() { commands["drill"] = runDrill }

// errDrillFailed makes the exit status non-zero after the report has been
// printed; the report already says which script failed.
var errDrillFailed = errors.New("one or more scripts failed")

// runDrill is `tunstack drill [--stack S] [--profile P] [--json]
// [--tolerance_usecs N] [--verbose] SCRIPT.pkt...`.
func runDrill(args []string) error {
	stack, profile := "linux", "linux"
	var asJSON, verbose, trace, noTSO bool
	tol := 0
	files, err := parseFlags("drill", args, []flagDef{
		oneOfFlag("stack", []string{"tunstack", "gvisor", "linux"}, &stack),
		oneOfFlag("profile", policy.Names(), &profile),
		boolFlag("json", &asJSON),
		boolFlag("verbose", &verbose),
		boolFlag("trace", &trace),
		boolFlag("no-tso", &noTSO),
		intFlag("tolerance_usecs", "a tolerance in microseconds", 1, 10_000_000, "10000", &tol),
	})
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("give one or more scripts, as in tunstack drill conformance/scripts/*.pkt.")
	}
	if _, err := conformance.LookupTarget(stack); err != nil {
		return err
	}
	opt := conformance.Options{Stack: stack, Profile: profile, ToleranceUsecs: tol, NoTSO: noTSO}
	if trace {
		opt.Trace = os.Stderr
	}
	var results []*conformance.Result
	failed := 0
	for _, f := range files {
		r := conformance.Run(f, opt)
		results = append(results, r)
		if r.Status == conformance.Fail {
			failed++
		}
		if !asJSON {
			r.Print(os.Stdout, verbose)
		}
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(os.Stdout, "%d script(s), %d failed\n", len(results), failed)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d", errDrillFailed, failed, len(results))
	}
	return nil
}
