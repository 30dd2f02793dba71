package netif

import (
	"fmt"
)

// DefaultTxQueueLen is the TUN device's queue length (txqueuelen) when
// TUNConfig.TxQueueLen is zero: 8192 packets, not the 500 Linux gives a
// new TUN device.
//
// The queue holds the packets the kernel sends toward tunstack until the
// reader takes them. Linux behaviour: tun_net_xmit(): a packet that finds
// the queue (a ring of txqueuelen slots) full is dropped and counted in
// the device's tx_dropped, with no backpressure on the sender, so a
// dropped SYN costs its client a retransmission a second later. What the
// kernel sends toward us is bounded per connection: a client has at most
// a handful of packets unanswered at once (its SYN; its ACK and request;
// its ACKs of the response, as many as our bursts; its FIN), and its
// windows bound the rest. So the queue must hold a handful of packets for
// every client that hits us at once while the reader is busy elsewhere:
// 8192 is eight each for 1,000 concurrent clients, or two each for a full
// accept queue of Linux's default somaxconn (4096). Measured with
// ApacheBench's 1,000 concurrent clients on two busy cores: 500 slots
// dropped 22,690 packets and one SYN in twelve was retransmitted; 4096
// slots still dropped 2,412 when the machine's other load left the stack a
// fifth of a core. A slot costs a pointer until a packet fills it, and the
// packets it can hold are only those the peers were allowed to send.
const DefaultTxQueueLen = 8192

// TxQueueLen is the device's queue length (txqueuelen) in force, as the
// kernel reports it.
func (t *TUN) TxQueueLen() (int, error) {
	d := t.device()
	link, err := d.nl.LinkByIndex(d.index)
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
	d := t.device()
	link, err := d.nl.LinkByIndex(d.index)
	if err != nil {
		return DeviceStats{}, fmt.Errorf("netif: read the counters of %s: %w", t.name, err)
	}
	s := link.Attrs().Statistics
	if s == nil {
		return DeviceStats{}, fmt.Errorf("netif: the kernel gave no counters for %s", t.name)
	}
	return DeviceStats{TxPackets: s.TxPackets, TxDropped: s.TxDropped, RxPackets: s.RxPackets, RxDropped: s.RxDropped}, nil
}
