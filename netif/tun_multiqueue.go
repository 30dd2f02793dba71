package netif

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// A multiqueue TUN device (IFF_MULTI_QUEUE) has one queue per descriptor
// attached to it, each a Link of its own: TUNConfig.Queues opens them and
// TUN.Queues returns them. Linux behaviour: tun_select_queue() puts each
// packet the kernel sends toward us on one queue: the one a packet of the
// same flow (by the symmetric hash of its addresses and ports) was last
// written on, which tun_flow_update() records on every write, or, for a
// flow not written yet (or not for the flow table's ageing time, three
// seconds), the queue its hash falls on. So a flow's packets arrive on one
// queue, and a reader that writes each flow's packets on the queue they
// arrive on keeps it there. A flow we open ourselves is another matter: its
// first packet, written on the queue we chose, sends its answers there, but
// once it has been quiet for the ageing time its packets go back to the
// queue of its hash, which user space cannot compute (the hash is keyed
// with a secret of the kernel's).

// MaxQueues is Linux's bound on a TUN device's queues (MAX_TAP_QUEUES).
const MaxQueues = 256

// DefaultQueues is how many queues a TUN is opened with, an engine shard
// on each, when none is asked for (serve without --queues, bench's
// tunstack): queuesFor the CPUs the Go runtime runs goroutines on
// (GOMAXPROCS: the machine's CPUs, fewer under a CPU limit of a cgroup).
func DefaultQueues() int { return queuesFor(runtime.GOMAXPROCS(0)) }

// queuesFor is the default number of queues on cpus CPUs: one per CPU, as
// many engines as can run at once, at most MaxQueues. On 2 CPUs (tunstack
// bench, 2026-12-04, alternating 3 s runs of one queue and two) a second
// queue carried streams' 16 connections at 43.6 and 42.7 Gbit/s against
// 29.7 and 30.2, the two shards' locks and readers taking both directions
// in parallel; bulk-down, bulk-up, rr and the HTTP load measured the same
// either way, and crr about 5% slower (7,596 against 8,010 conn/s, means
// of four runs each): one connection at a time uses one shard, and the
// other's reader, timer and the owner table only cost.
func queuesFor(cpus int) int { return min(max(cpus, 1), MaxQueues) }

// attachQueues attaches n-1 more queues to the device t created, which
// must have been created with IFF_MULTI_QUEUE. Each is a TUN of its own
// that shares the device.
func (t *TUN) attachQueues(n int) error {
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_MULTI_QUEUE)
	if t.offload {
		flags |= unix.IFF_VNET_HDR
	}
	t.queues = []*TUN{t}
	for range n - 1 {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return openError(t.name, "open /dev/net/tun", err)
		}
		ifr, err := unix.NewIfreq(t.name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		// Without IFF_TUN_EXCL: this attaches to the device just made.
		ifr.SetUint16(flags)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF: %w", err)
		}
		q := newTUN(fd, t.name, t.mtuBytes, t.offload, t.wholeTSO)
		q.queueOf = t
		q.qlen = t.qlen
		// Each queue appends to the list before anything can fail, so
		// that Close of the first closes it.
		t.queues = append(t.queues, q)
		if q.raw, err = q.file.SyscallConn(); err != nil {
			return err
		}
	}
	return nil
}

// Queues returns the device's queues, this one first, each a Link that
// reads the flows the kernel steers to it (tun_multiqueue.go) and writes
// to the device; one queue, the TUN itself, without TUNConfig.Queues.
// Closing the first queue closes them all and removes the device; closing
// another closes that queue only, and the kernel steers its flows to the
// others.
func (t *TUN) Queues() []*TUN {
	if t.queues == nil {
		return []*TUN{t}
	}
	return t.queues
}

// device is the TUN that created the device: t, or the first queue.
func (t *TUN) device() *TUN {
	if t.queueOf != nil {
		return t.queueOf
	}
	return t
}

// closeQueues closes the queues other than the first.
func (t *TUN) closeQueues() {
	for _, q := range t.queues {
		if q != t {
			q.Close()
		}
	}
}
