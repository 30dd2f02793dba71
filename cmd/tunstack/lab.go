package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"tunstack/lab"
	"tunstack/netif"
	"tunstack/policy"
)

func init() { commands["lab"] = runLab }

// runLab is `tunstack lab NAME [--stack S] [--family 4|6] [--pcap FILE]
// [--plot DIR] [--profile P] [--backlog N] [--clients N] [--hold D] [--delay D]
// [--impair SPEC]`: it runs one experiment with kernel clients in a
// network namespace and prints its timeline and verdict; with --plot it
// also draws the run's time-sequence graphs (and tunstack's congestion
// window) into DIR.
func runLab(args []string) error {
	var (
		stack       = "tunstack"
		profileName = "linux"
		pcapFile    string
		plotDir     string
		list        bool
		backlog     = -1
		clients     = 0
		hold        string
		delay       string
		impair      string
		family      = "4"
	)
	rest, err := parseFlags("lab", args, []flagDef{
		oneOfFlag("stack", lab.Stacks(), &stack),
		oneOfFlag("family", []string{"4", "6"}, &family),
		oneOfFlag("profile", policy.Names(), &profileName),
		stringFlag("pcap", &pcapFile, checkPcapFile),
		stringFlag("plot", &plotDir, checkPlotDir),
		boolFlag("list", &list),
		intFlag("backlog", "a number of connections", 0, math.MaxInt32, "2", &backlog),
		intFlag("clients", "a number of clients", 1, 200, "6", &clients),
		stringFlag("hold", &hold, nil),
		stringFlag("delay", &delay, nil),
		stringFlag("impair", &impair, checkImpairSpec),
	})
	if err != nil {
		return err
	}
	if list {
		// One name a line, for scripts (make plots).
		fmt.Fprintln(os.Stdout, strings.Join(lab.Names(), "\n"))
		return nil
	}
	switch {
	case len(rest) == 0:
		return usagef("name an experiment: %s, as in tunstack lab backlog.", orList(lab.Names()))
	case len(rest) > 1:
		return usagef("lab runs one experiment at a time, but got %s; give one of %s.", strings.Join(rest, " "), orList(lab.Names()))
	}
	name := rest[0]
	known := false
	for _, n := range lab.Names() {
		known = known || n == name
	}
	if !known {
		return usagef("there is no experiment %q; the lab knows %s.", name, orList(lab.Names()))
	}
	prof, err := policy.ByName(profileName)
	if err != nil {
		return usagef("--profile %q is not available (%v); use %s.", profileName, err, orList(policy.Names()))
	}
	o := lab.Options{Stack: stack, Profile: prof, ProfileName: profileName, Backlog: backlog, Clients: clients, Log: os.Stderr}
	if family == "6" {
		o.Family = 6
	}
	if o.Hold, err = parseLabDuration("hold", hold, "20s"); err != nil {
		return err
	}
	if o.Delay, err = parseLabDuration("delay", delay, "5ms"); err != nil {
		return err
	}
	if impair != "" {
		// Validated by checkImpairSpec already.
		o.Impair, _ = netif.ParseImpairSpec(impair)
	}
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root to create network namespaces and TUN devices: run it with sudo")
	}
	if pcapFile != "" {
		f, err := os.Create(pcapFile)
		if err != nil {
			return fmt.Errorf("cannot create %s: %w", pcapFile, err)
		}
		defer f.Close()
		o.Pcap = f
	}
	var plots *lab.PlotRecorder
	if plotDir != "" {
		plots = lab.RecordForPlots(&o)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := lab.Run(ctx, name, o)
	if err != nil {
		return err
	}
	res.Print(os.Stdout)
	if pcapFile != "" {
		fmt.Fprintf(os.Stdout, "\ncapture written to %s\n", pcapFile)
	}
	if plots != nil {
		files, err := plots.WritePlots(res, plotDir)
		for _, f := range files {
			fmt.Fprintf(os.Stdout, "plot written to %s\n", f)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkPlotDir checks --plot: a directory, or a name one can be created
// at.
func checkPlotDir(v string) error {
	if v == "" {
		return usagef("--plot needs a directory, as in --plot plots.")
	}
	if fi, err := os.Stat(v); err == nil && !fi.IsDir() {
		return usagef("--plot %q is a file; give a directory for the plots, as in --plot plots.", v)
	}
	if fi, err := os.Stat(filepath.Dir(filepath.Clean(v))); err != nil || !fi.IsDir() {
		return usagef("--plot %q cannot be created because its parent directory does not exist; create it or choose another path.", v)
	}
	return nil
}

// parseLabDuration reads an optional positive duration flag; "" is 0,
// which means the experiment's default.
func parseLabDuration(name, v, example string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, usagef("--%s must be a positive duration, as in --%s %s, not %q.", name, name, example, v)
	}
	return d, nil
}
