package netif

import (
	"fmt"
)

// DefaultTxQueueLen is the TUN device's queue length (txqueuelen) when
// TUNConfig.TxQueueLen is zero: 4096 packets, not the 500 Linux gives a
// new TUN device.
//
// The queue holds the packets the kernel sends toward tunstack until the
// reader takes them; Linux behaviour: tun_net_xmit(): a packet that finds
// the queue (a ring of txqueuelen slots) full is dropped and counted in
// the device's tx_dropped, with no backpressure on the sender, so a
// dropped SYN costs the client a retransmission a second later. Most of
// what the kernel sends is bounded per connection by the windows and the
// handshake (a connection has a few packets in flight toward us at once),
// but new connections are not: a thousand clients opening at once put a
// thousand SYNs, then their requests, in the queue within a millisecond.
// 4096 is Linux's default net.core.somaxconn, the accept queue a listener
// gets by default, so the queue takes a burst of SYNs as large as the
// accept queue can take connections, with their first data packets after
// them for a thousand clients; with 500 slots, 1,000 concurrent clients of
// ab lost one SYN in twelve. The slots cost a pointer each until a packet
// fills them, and the packets they hold are only those the peers were
// allowed to send.
const DefaultTxQueueLen = 4096

// TxQueueLen is the device's queue length (txqueuelen) in force, as the
// kernel reports it.
func (t *TUN) TxQueueLen() (int, error) {
	link, err := t.nl.LinkByIndex(t.index)
	if err != nil {
		return 0, fmt.Errorf("netif: read %s: %w", t.name, err)
	}
	return link.Attrs().TxQLen, nil
}

// DeviceStats are the kernel's counters of the TUN device, as `ip -s link
// show DEV` shows them. The kernel's TX is the way into tunstack: what it
// sends through the device is what ReadPackets reads.
type DeviceStats struct {
	// TxPackets is how many packets the reader has taken from the
	// device's queue (Linux counts them as they are read).
	TxPackets uint64
	// TxDropped is how many packets the kernel dropped on the way into
	// tunstack, almost all because the device's queue was full: the
	// reader fell behind (see DefaultTxQueueLen).
	TxDropped uint64
	// RxPackets is how many packets the kernel took from WritePackets,
	// RxDropped how many of those it dropped.
	RxPackets, RxDropped uint64
}

// DeviceStats reads the device's counters from the kernel, through
// netlink in the device's own namespace (sysfs would show the namespace
// it was mounted in).
func (t *TUN) DeviceStats() (DeviceStats, error) {
	link, err := t.nl.LinkByIndex(t.index)
	if err != nil {
		return DeviceStats{}, fmt.Errorf("netif: read the counters of %s: %w", t.name, err)
	}
	s := link.Attrs().Statistics
	if s == nil {
		return DeviceStats{}, fmt.Errorf("netif: the kernel gave no counters for %s", t.name)
	}
	return DeviceStats{TxPackets: s.TxPackets, TxDropped: s.TxDropped, RxPackets: s.RxPackets, RxDropped: s.RxDropped}, nil
}
