package netif

import "testing"

// TestQueuesForOnePerCPU: the default is one queue per CPU, at least one,
// never more than a TUN takes.
func TestQueuesForOnePerCPU(t *testing.T) {
	for _, c := range []struct{ cpus, want int }{{0, 1}, {1, 1}, {2, 2}, {3, 3}, {64, 64}, {1024, MaxQueues}} {
		if got := queuesFor(c.cpus); got != c.want {
			t.Errorf("queuesFor(%d) = %d, want %d", c.cpus, got, c.want)
		}
	}
}
