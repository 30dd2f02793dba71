package main

import (
	"fmt"
	"os"
	"os/exec"

	"tunstack/conformance"
)

func init() { commands["oracle"] = runOracle }

// runOracle is `tunstack oracle --packetdrill PATH [--json] [--verbose]
// [packetdrill's options] SCRIPT.pkt...`: each script under the real
// packetdrill on this machine's Linux, one at a time (the tool runs in
// real time, and scripts run side by side on a small machine miss their
// timing), each in a network namespace of its own. The verdicts have the shape of `tunstack drill --json`, in the
// stack column "packetdrill", so `tunstack conformance-doc` can set them
// beside the other stacks. packetdrill's options (--ip_version=ipv6,
// --mtu=1520, -D NAME=VALUE, ...) are checked as drill checks them and
// passed to the tool's command line as given; -v or --verbose prints each
// verdict's notes instead.
func runOracle(args []string) error {
	bin := ""
	var asJSON, verbose bool
	pdArgs, rest, err := packetdrillArgs(args)
	if err != nil {
		return err
	}
	files, err := parseFlags("oracle", rest, []flagDef{
		stringFlag("packetdrill", &bin, nil),
		boolFlag("json", &asJSON),
	})
	if err != nil {
		return err
	}
	if err := conformance.CheckCommandLine(pdArgs); err != nil {
		return usagef("%v.", err)
	}
	var toolArgs []string
	for _, o := range pdArgs {
		if o.Name == "verbose" { // the report's, as in drill: the tool's own would flood it
			verbose = true
			continue
		}
		a := "--" + o.Name
		if o.HasValue {
			a += "=" + o.Value
		}
		toolArgs = append(toolArgs, a)
	}
	if bin == "" {
		return usagef("give the real packetdrill binary with --packetdrill PATH (build it from google/packetdrill's gtests/net/packetdrill: ./configure && make).")
	}
	if _, err := exec.LookPath(bin); err != nil {
		return usagef("--packetdrill %s is not an executable program: %v.", bin, err)
	}
	if len(files) == 0 {
		return usagef("give one or more scripts, as in tunstack oracle --packetdrill ./packetdrill conformance/scripts/*/*.pkt.")
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("the real packetdrill needs root (it creates a TUN device in a network namespace); run it with sudo")
	}
	var results []*conformance.Result
	for _, f := range files {
		r := conformance.RunPacketdrill(bin, f, toolArgs)
		r.Family = oracleFamily(pdArgs, f)
		results = append(results, r)
		if !asJSON {
			r.Print(os.Stdout, verbose)
		}
	}
	return reportResults(results, asJSON, "failed under the real packetdrill")
}

// oracleFamily is the --ip_version a script ran with under the tool: the
// command line's, else the script's own option line's, else ipv4 (the
// tool's own default is the family of the machine's primary address;
// make conformance always names one).
func oracleFamily(pdArgs []conformance.Option, script string) string {
	fam := ""
	for _, o := range pdArgs {
		if o.Name == "ip_version" {
			fam = o.Value
		}
	}
	if fam == "" {
		fam, _ = conformance.ScriptFamily(script)
	}
	if fam == "" {
		fam = "ipv4"
	}
	return fam
}
