package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"tunstack/conformance"
	"tunstack/policy"
)

func init() { commands["drill"] = runDrill }

// errDrillFailed makes the exit status non-zero after the report has been
// printed; the report already says which script failed.
var errDrillFailed = errors.New("one or more scripts failed")

// runDrill is `tunstack drill [--stack S] [--profile P] [--json] [--trace]
// [--no-tso] [--keep-going] [packetdrill's options] SCRIPT.pkt...`.
//
// packetdrill's options are taken as packetdrill takes them:
// --name=VALUE or --name VALUE (--tolerance_usecs, --tolerance_percent,
// --tcp_ts_tick_usecs, --local_ip, --remote_ip, --gateway_ip,
// --netmask_ip, --bind_port, --connect_port, --mss, --mtu, --ip_version,
// --init_scripts, ...), -D NAME=VALUE or --define NAME=VALUE, -v or
// --verbose; each script's option lines come first and these override
// them. --verbose also prints the sysctls applied and the notes. The
// options packetdrill knows but that change nothing here (--code_format,
// --strict_segments, --speed, ...) are accepted and noted in the report;
// those that select a mode this runner does not have (--wire_client,
// --so_filename, ...) are errors, as is an option neither knows.
// --no-tso shows each segment as a packet of its own instead of whole TSO
// packets. --keep-going runs each script to its end past mismatches and
// counts the lines that matched (conformance.Options.KeepGoing).
func runDrill(args []string) error {
	stack, profile := "linux", "linux"
	var asJSON, trace, noTSO, keepGoing bool
	pdArgs, rest, err := packetdrillArgs(args)
	if err != nil {
		return err
	}
	files, err := parseFlags("drill", rest, []flagDef{
		oneOfFlag("stack", []string{"tunstack", "gvisor", "linux"}, &stack),
		oneOfFlag("profile", policy.Names(), &profile),
		boolFlag("json", &asJSON),
		boolFlag("trace", &trace),
		boolFlag("no-tso", &noTSO),
		boolFlag("keep-going", &keepGoing),
	})
	if err != nil {
		return err
	}
	if err := conformance.CheckCommandLine(pdArgs); err != nil {
		return usagef("%v.", err)
	}
	if len(files) == 0 {
		return usagef("give one or more scripts, as in tunstack drill conformance/scripts/*.pkt.")
	}
	if _, err := conformance.LookupTarget(stack); err != nil {
		return err
	}
	verbose := false
	for _, a := range pdArgs {
		verbose = verbose || a.Name == "verbose"
	}
	opt := conformance.Options{Stack: stack, Profile: profile, Args: pdArgs, NoTSO: noTSO, KeepGoing: keepGoing}
	if trace {
		opt.Trace = os.Stderr
	}
	var results []*conformance.Result
	for _, f := range files {
		r := conformance.Run(f, opt)
		results = append(results, r)
		if !asJSON {
			r.Print(os.Stdout, verbose)
		}
	}
	return reportResults(results, asJSON, "failed")
}

// reportResults ends a run of scripts, drill's or oracle's: with asJSON the
// results as one JSON array (each was printed as it finished otherwise),
// else a count line; an error when any failed, so the exit status says so.
func reportResults(results []*conformance.Result, asJSON bool, failedWhat string) error {
	failed := 0
	for _, r := range results {
		if r.Status == conformance.Fail {
			failed++
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
		fmt.Fprintf(os.Stdout, "%d script(s), %d %s\n", len(results), failed, failedWhat)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d", errDrillFailed, failed, len(results))
	}
	return nil
}

// packetdrillArgs takes packetdrill's options out of args, in order, and
// returns them and the other arguments. It reads them as packetdrill's
// getopt does: --name=VALUE, --name VALUE for an option that takes a
// value, --name alone for one that does not; -D VALUE, -DVALUE and -v;
// "--" ends the options.
func packetdrillArgs(args []string) (opts []conformance.Option, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return opts, append(rest, args[i:]...), nil
		}
		switch {
		case a == "-v":
			opts = append(opts, conformance.Option{Name: "verbose"})
			continue
		case a == "-D":
			if i+1 == len(args) {
				return nil, nil, usagef("option requires an argument -- 'D': give -D NAME=VALUE.")
			}
			i++
			opts = append(opts, conformance.Option{Name: "define", Value: args[i], HasValue: true})
			continue
		case strings.HasPrefix(a, "-D"):
			opts = append(opts, conformance.Option{Name: "define", Value: a[2:], HasValue: true})
			continue
		case !strings.HasPrefix(a, "--"):
			rest = append(rest, a)
			continue
		}
		name, value, hasValue := strings.Cut(a[2:], "=")
		known, takesValue := conformance.OptionTakesValue(name)
		switch {
		case !known:
			rest = append(rest, a) // drill's own flag, or an unknown one parseFlags reports
			continue
		case takesValue && !hasValue:
			if i+1 == len(args) {
				return nil, nil, usagef("option '--%s' requires an argument, as --%s=VALUE or --%s VALUE.", name, name, name)
			}
			i++
			value, hasValue = args[i], true
		case !takesValue && hasValue:
			return nil, nil, usagef("option '--%s' doesn't allow an argument; give --%s alone.", name, name)
		}
		opts = append(opts, conformance.Option{Name: name, Value: value, HasValue: hasValue})
	}
	return opts, rest, nil
}
