package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// withCommands runs f with commands replaced by reg plus help.
func withCommands(t *testing.T, reg map[string]func([]string) error, f func()) {
	t.Helper()
	saved := commands
	commands = map[string]func([]string) error{"help": saved["help"]}
	for k, v := range reg {
		commands[k] = v
	}
	defer func() { commands = saved }()
	f()
}

func TestRunExitStatusAndMessages(t *testing.T) {
	reg := map[string]func([]string) error{
		"serve": serveCommand(func(serveConfig) error { return nil }),
		"bench": func([]string) error { return errors.New("no /dev/net/tun: load the tun module") },
	}
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"help"}, 0, "tunstack serve [--dev tun0]", ""},
		{[]string{"--help"}, 0, "Usage:", ""},
		{[]string{"serve", "--help"}, 0, "--accept-delay D", ""},
		{[]string{"serve"}, 0, "", ""},
		{nil, 2, "", "give a command"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"; use one of serve, drill, lab, bench, help.`},
		{[]string{"drill", "x.pkt"}, 2, "", "the drill command is not in this build yet; this one has serve, bench, help."},
		{[]string{"serve", "--mtu", "9"}, 2, "", "tunstack serve: --mtu must be"},
		{[]string{"bench"}, 1, "", "tunstack bench: no /dev/net/tun"},
	}
	withCommands(t, reg, func() {
		for _, tt := range tests {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("%q: exit %d, want %d (stderr %q)", tt.args, code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) || (tt.stdout == "" && stdout.Len() != 0) {
				t.Errorf("%q: stdout %q, want %q", tt.args, stdout.String(), tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) || (tt.stderr == "" && stderr.Len() != 0) {
				t.Errorf("%q: stderr %q, want %q", tt.args, stderr.String(), tt.stderr)
			}
		}
	})
}

func TestUnknownCommandIsOneSentenceThenUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	run([]string{"nope"}, &stdout, &stderr)
	first, rest, _ := strings.Cut(stderr.String(), "\n")
	if !strings.HasPrefix(first, "tunstack: unknown command") || !strings.HasSuffix(first, ".") || !strings.HasPrefix(rest, "Usage:") {
		t.Fatalf("stderr:\n%s", stderr.String())
	}
}
