package netif_test

import (
	"os"
	"testing"

	"tunstack/netif"
)

// TestWakeReadEndsAWaitingReadWithWhatIsQueued: WakeRead makes a read that
// waits on an empty queue return at once with nothing; after a WakeRead
// with no read waiting, the next read returns the packets queued and does
// not wait for more; and the read after that waits again.
func TestWakeReadEndsAWaitingReadWithWhatIsQueued(t *testing.T) {
	ns := newNS(t)
	// IPv6 off: the kernel queues nothing of its own on the device.
	if err := ns.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0)
	}); err != nil {
		t.Fatal(err)
	}
	tun := openTUN(t, ns, netif.TUNConfig{HostAddr: hostPrefix, TxQueueLen: 64})
	if n := tun.QueueLen(); n != 64 {
		t.Errorf("QueueLen() = %d, want the TxQueueLen of 64", n)
	}
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = make([]byte, tun.MTU())
	}
	sizes := make([]int, len(bufs))
	type result struct {
		n   int
		err error
	}
	read := func() chan result {
		ch := make(chan result, 1)
		go func() {
			n, err := tun.ReadPackets(bufs, sizes)
			ch <- result{n, err}
		}()
		return ch
	}

	ch := read()
	waitBlockedInRead(t)
	tun.WakeRead()
	if r := <-ch; r.n != 0 || r.err != nil {
		t.Fatalf("woken read of an empty queue = %d, %v; want 0, nil", r.n, r.err)
	}

	sendDatagrams(t, ns, 1, 3, []byte("queued"))
	tun.WakeRead()
	if n, err := tun.ReadPackets(bufs, sizes); n != 3 || err != nil {
		t.Fatalf("read after WakeRead with 3 datagrams queued = %d, %v; want 3, nil", n, err)
	}

	ch = read()
	waitBlockedInRead(t)
	sendDatagrams(t, ns, 1, 1, []byte("after"))
	if r := <-ch; r.n != 1 || r.err != nil {
		t.Fatalf("read waiting after the wake = %d, %v; want the 1 datagram sent", r.n, r.err)
	}
}
