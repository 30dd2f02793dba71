package main

import (
	"fmt"
	"os"
	"os/exec"

	"tunstack/conformance"
)

func init() { commands["oracle"] = runOracle }

// runOracle is `tunstack oracle --packetdrill PATH [--json] [--verbose]
// SCRIPT.pkt...`: each script under the real packetdrill on this machine's
// Linux, one at a time (the tool runs in real time, and scripts run side by
// side on a small machine miss their timing), each in a network namespace of
// its own. The verdicts have the shape of `tunstack drill --json`, in the
// stack column "packetdrill", so `tunstack conformance-doc` can set them
// beside the other stacks.
func runOracle(args []string) error {
	bin := ""
	var asJSON, verbose bool
	files, err := parseFlags("oracle", args, []flagDef{
		stringFlag("packetdrill", &bin, nil),
		boolFlag("json", &asJSON),
		boolFlag("verbose", &verbose),
	})
	if err != nil {
		return err
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
		r := conformance.RunPacketdrill(bin, f, nil)
		results = append(results, r)
		if !asJSON {
			r.Print(os.Stdout, verbose)
		}
	}
	return reportResults(results, asJSON, "failed under the real packetdrill")
}
