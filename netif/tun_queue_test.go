package netif_test

import (
	"os"
	"testing"

	"tunstack/netif"
)

func TestOpenTUNSetsTheDefaultQueueLength(t *testing.T) {
	ns := newNS(t)
	tun := openTUN(t, ns, netif.TUNConfig{HostAddr: hostPrefix})
	n, err := tun.TxQueueLen()
	if err != nil {
		t.Fatal(err)
	}
	if n != netif.DefaultTxQueueLen {
		t.Errorf("txqueuelen %d, want DefaultTxQueueLen %d", n, netif.DefaultTxQueueLen)
	}
}

func TestOpenTUNRefusesANegativeQueueLength(t *testing.T) {
	ns := newNS(t)
	err := ns.Do(func() error {
		tun, err := netif.OpenTUN(netif.TUNConfig{HostAddr: hostPrefix, TxQueueLen: -1})
		if err == nil {
			tun.Close()
		}
		return err
	})
	if err == nil {
		t.Fatal("OpenTUN took TxQueueLen -1")
	}
}

// A reader that does not read lets the device's queue fill: the kernel
// queues TxQueueLen packets and drops the rest, counted in tx_dropped,
// which DeviceStats reports; the reader then finds exactly a full queue,
// and tx_packets counts what it read. IPv6 is off on the device, so the
// kernel sends nothing of its own on it (router solicitations, MLD
// reports): the datagrams are all the queue ever holds. With IPv6 on, one
// such packet sent while the queue was full was counted as a drop after
// the reader's read.
func TestDeviceStatsCountThePacketsTheFullQueueDropped(t *testing.T) {
	const qlen, sent = 16, 100
	ns := newNS(t)
	if err := ns.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0)
	}); err != nil {
		t.Fatal(err)
	}
	tun := openTUN(t, ns, netif.TUNConfig{HostAddr: hostPrefix, TxQueueLen: qlen})
	if n, err := tun.TxQueueLen(); err != nil || n != qlen {
		t.Fatalf("TxQueueLen() = %d, %v; want %d", n, err, qlen)
	}
	before, err := tun.DeviceStats()
	if err != nil {
		t.Fatal(err)
	}
	sendDatagrams(t, ns, 1, sent, []byte("fill the queue"))
	st, err := tun.DeviceStats()
	if err != nil {
		t.Fatal(err)
	}
	// The queue holds the first qlen datagrams; the rest were dropped.
	dropped := st.TxDropped - before.TxDropped
	if dropped != sent-qlen {
		t.Errorf("%d dropped of %d datagrams sent into a queue of %d", dropped, sent, qlen)
	}
	bufs := make([][]byte, 2*qlen)
	for i := range bufs {
		bufs[i] = make([]byte, tun.MTU())
	}
	sizes := make([]int, len(bufs))
	n, err := tun.ReadPackets(bufs, sizes)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel counts a packet in tx_packets as the reader takes it.
	if n != qlen {
		t.Errorf("read %d packets from a full queue of %d", n, qlen)
	}
	after, err := tun.DeviceStats()
	if err != nil {
		t.Fatal(err)
	}
	if got := after.TxPackets - before.TxPackets; got != uint64(n) {
		t.Errorf("TxPackets grew by %d, the reader read %d", got, n)
	}
	if after.TxDropped != st.TxDropped {
		t.Errorf("TxDropped went from %d to %d with nothing sent", st.TxDropped, after.TxDropped)
	}
}
