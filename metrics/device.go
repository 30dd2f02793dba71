package metrics

import "tunstack/netif"

// DeviceCounter is one of the TUN device's own kernel counters, as `ip -s
// link show DEV` shows it, under a name in nstat's style (group Tun, which
// Linux's nstat does not have: these are the device's counters, not the
// MIB's) so that `tunstack nstat` shows it with the stack's counters.
type DeviceCounter struct {
	Nstat string
	Help  string
	From  func(netif.DeviceStats) uint64
}

// Name is the counter's Prometheus name, derived from Nstat by PromName.
func (c DeviceCounter) Name() string { return PromName(c.Nstat) }

// DeviceCounters are read from the TUN device (netif.TUN.DeviceStats) at
// scrape time, for any stack on it. The kernel's TX is the way into the
// stack.
var DeviceCounters = []DeviceCounter{
	{Nstat: "TunTxDropped", Help: "Packets the kernel dropped on their way into the stack, almost all because the device's queue (txqueuelen) was full: the stack's reader fell behind. ip -s link: TX dropped.",
		From: func(s netif.DeviceStats) uint64 { return s.TxDropped }},
	{Nstat: "TunRxDropped", Help: "Packets the stack wrote that the kernel dropped on taking them in. ip -s link: RX dropped.",
		From: func(s netif.DeviceStats) uint64 { return s.RxDropped }},
}
