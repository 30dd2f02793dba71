package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzParseServeFlags parses arbitrary command lines for serve (the
// input's lines are the arguments). It never panics; every rejection is a
// usage error with a sentence to show, or the request for help that only
// the flag -h or -help (one dash or two) makes; every accepted configuration is one
// serve can run: the link prefix masked and holding the host's and the
// stack's distinct addresses, an MTU in range, the services on distinct
// ports, a profile, and no negative backlog or accept delay.
func FuzzParseServeFlags(f *testing.F) {
	// Command lines as the README and the tests give them.
	for _, args := range []string{
		"",
		"--pcap\n/tmp/tunstack.pcap",
		"--impair\nloss=2%,reorder=1%,dup=1%\n--trace\n/tmp/cc.jsonl",
		"--stack\ngvisor",
		"--profile\nrfc",
		"--netns\ntsdemo",
		"--metrics\n127.0.0.1:9464",
		"--dev=tun7\n--net=10.9.0.0/30\n--mtu=9000\n--http=8080\n--echo=0",
		"--http\n7\n--echo\n7",
		"--net\n10.0.0.0/31",
		"--mtu\n100",
		"--accept-delay\n50ms\n--backlog\n0",
		"--accept-delay\n-1s",
		"--trace\nx.jsonl\n--stack\ngvisor",
		"stray",
		"--",
		"-h",
	} {
		f.Add(args)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var args []string
		if line != "" {
			args = strings.Split(line, "\n")
		}
		cfg, err := parseServeFlags(args)
		if errors.Is(err, errHelp) {
			// Only the flag h or help, with one dash or two (and a value
			// or not), asks for the usage.
			if !slices.ContainsFunc(args, asksHelp) {
				t.Fatalf("%q: help requested, but no argument asks for it", args)
			}
			return
		}
		if err != nil {
			var ue *usageError
			if !errors.As(err, &ue) || strings.TrimSpace(ue.sentence) == "" {
				t.Fatalf("%q: error %v (%T) is no usage error with a sentence", args, err, err)
			}
			return
		}
		n := cfg.Net
		if !n.IsValid() || n != n.Masked() || !n.Contains(cfg.HostAddr) || !n.Contains(cfg.StackAddr) || cfg.HostAddr == cfg.StackAddr {
			t.Fatalf("%q: link %v with host %v and stack %v", args, n, cfg.HostAddr, cfg.StackAddr)
		}
		if cfg.MTU < 576 || cfg.MTU > 65535 || cfg.Profile == nil || cfg.Backlog < 0 || cfg.AcceptDelay < 0 {
			t.Fatalf("%q: MTU %d, profile %v, backlog %d, accept delay %v", args, cfg.MTU, cfg.Profile, cfg.Backlog, cfg.AcceptDelay)
		}
		seen := map[uint16]bool{}
		for _, p := range []uint16{cfg.HTTPPort, cfg.EchoPort, cfg.DiscardPort, cfg.ChargenPort} {
			if p != 0 && seen[p] {
				t.Fatalf("%q: two services on port %d", args, p)
			}
			seen[p] = true
		}
	})
}

// asksHelp reports whether a is the flag h or help.
func asksHelp(a string) bool {
	if !strings.HasPrefix(a, "-") || a == "--" {
		return false
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
	return name == "h" || name == "help"
}
