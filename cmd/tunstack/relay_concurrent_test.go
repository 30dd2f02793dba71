//go:build !race

package main

import (
	"testing"

	"tunstack/lab/netns"
)

// 1000 relayed connections at once, each 1 MiB both ways, byte-exact (2 GiB
// through the relay). Built without the race detector only: with it this
// takes minutes on a shared machine, so the race pass runs the same check
// at 16 KiB a connection (TestRelayThroughTUN) and make test runs this one
// after it, without -race.
func TestRelayConcurrentMiB(t *testing.T) {
	netns.RequireRoot(t)
	l := startRelayLab(t, true)
	relayConcurrent(t, l, 9600, 1000, 1<<20)
}
