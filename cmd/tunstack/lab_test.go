package main

import (
	"bytes"
	"strings"
	"testing"
)

// The lab's command line: mistakes are one sentence and exit 2, before
// anything needs root.
func TestLabCommandLineMistakes(t *testing.T) {
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"lab"}, "name an experiment: backlog, synack, listener-close, synflood, zero-window, nagle-delack, slow-start, fast-retransmit, sack, dsack or timewait, as in tunstack lab backlog."},
		{[]string{"lab", "nosuch"}, `there is no experiment "nosuch"; the lab knows backlog, synack, listener-close, synflood, zero-window, nagle-delack, slow-start, fast-retransmit, sack, dsack or timewait.`},
		{[]string{"lab", "backlog", "synack"}, "lab runs one experiment at a time"},
		{[]string{"lab", "backlog", "--stack", "bsd"}, "--stack must be tunstack, gvisor or linux"},
		{[]string{"lab", "backlog", "--hold", "soon"}, "--hold must be a positive duration"},
		{[]string{"lab", "backlog", "--backlog", "-1"}, "--backlog must be a number of connections"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := run(tt.args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", tt.args, code, stderr.String())
		}
		first, _, _ := strings.Cut(stderr.String(), "\n")
		if !strings.Contains(first, tt.stderr) || !strings.HasPrefix(first, "tunstack lab: ") {
			t.Errorf("%q: stderr %q, want one line with %q", tt.args, stderr.String(), tt.stderr)
		}
	}
}
