package netif_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"tunstack/netif"
	"tunstack/wire"
)

// arrival is a UDP datagram the kernel sent to 198.18.0.2:9, by the queue
// it arrived on and its source port (its flow).
type arrival struct {
	queue int
	port  uint16
}

// readQueues reads every queue of tun until the test ends, and reports the
// kernel's UDP datagrams to the stack's port 9.
func readQueues(t *testing.T, tun *netif.TUN) <-chan arrival {
	t.Helper()
	ch := make(chan arrival, 1024)
	var wg sync.WaitGroup
	for i, q := range tun.Queues() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bufs := [][]byte{make([]byte, q.MTU()), make([]byte, q.MTU())}
			sizes := make([]int, len(bufs))
			for {
				n, err := q.ReadPackets(bufs, sizes)
				if err != nil {
					return
				}
				for j := range n {
					p := wire.IPv4(bufs[j][:sizes[j]])
					if p.Valid() != nil || p.Protocol() != wire.ProtoUDP || p.DstAddr() != stackIP {
						continue
					}
					udp := p.Payload()
					if len(udp) >= 8 && binary.BigEndian.Uint16(udp[2:]) == 9 {
						ch <- arrival{i, binary.BigEndian.Uint16(udp[0:])}
					}
				}
			}
		}()
	}
	// The queues close before the namespace goes (Cleanups run last
	// first, and the namespace's was registered before the device's).
	t.Cleanup(func() {
		tun.Close()
		wg.Wait()
	})
	return ch
}

// collect takes n arrivals from ch, failing the test after 10 s.
func collect(t *testing.T, ch <-chan arrival, n int) []arrival {
	t.Helper()
	var got []arrival
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case a := <-ch:
			got = append(got, a)
		case <-timeout:
			t.Fatalf("%d of %d datagrams arrived within 10s", len(got), n)
		}
	}
	return got
}

func TestOpenTUNWithQueuesGivesALinkPerQueue(t *testing.T) {
	ns := newNS(t)
	tun := openTUN(t, ns, netif.TUNConfig{HostAddr: hostPrefix, Queues: 4, Offload: true})
	qs := tun.Queues()
	if len(qs) != 4 || qs[0] != tun {
		t.Fatalf("Queues() = %d queues, first %p; want 4, first the TUN itself %p", len(qs), qs[0], tun)
	}
	for i, q := range qs {
		if q.Name() != tun.Name() || q.MTU() != tun.MTU() || q.Offload() != tun.Offload() {
			t.Errorf("queue %d: %s MTU %d offload %v; the device is %s MTU %d offload %v", i, q.Name(), q.MTU(), q.Offload(), tun.Name(), tun.MTU(), tun.Offload())
		}
		if _, err := q.DeviceStats(); err != nil {
			t.Errorf("queue %d: DeviceStats: %v", i, err)
		}
	}
	if one := openTUN(t, ns, netif.TUNConfig{Name: "tun1", HostAddr: netip.MustParsePrefix("198.18.1.1/24")}); len(one.Queues()) != 1 || one.Queues()[0] != one {
		t.Errorf("a device without Queues has %d queues", len(one.Queues()))
	}
	for _, n := range []int{-1, 257} {
		err := ns.Do(func() error {
			tun, err := netif.OpenTUN(netif.TUNConfig{Name: "tun2", HostAddr: hostPrefix, Queues: n})
			if err == nil {
				tun.Close()
			}
			return err
		})
		if err == nil {
			t.Errorf("OpenTUN took %d queues", n)
		}
	}
}

// The kernel puts each flow's packets on one queue, and spreads flows over
// the queues.
func TestMultiQueueTUNKeepsEachFlowOnOneQueue(t *testing.T) {
	const flows, perFlow = 32, 4
	ns := newNS(t)
	tun := openTUN(t, ns, netif.TUNConfig{HostAddr: hostPrefix, Queues: 2})
	arrivals := readQueues(t, tun)
	sendDatagrams(t, ns, flows, perFlow, []byte("one flow"))
	queueOf := map[uint16]int{}
	perQueue := make([]int, 2)
	for _, a := range collect(t, arrivals, flows*perFlow) {
		if q, seen := queueOf[a.port]; seen && q != a.queue {
			t.Errorf("flow from port %d arrived on queues %d and %d", a.port, q, a.queue)
		}
		if _, seen := queueOf[a.port]; !seen {
			perQueue[a.queue]++
		}
		queueOf[a.port] = a.queue
	}
	if len(queueOf) != flows {
		t.Errorf("%d flows arrived, want %d", len(queueOf), flows)
	}
	// 32 flows all hashed to one of two queues would be a 1 in 2^31
	// chance: the kernel does not spread them.
	if perQueue[0] == 0 || perQueue[1] == 0 {
		t.Errorf("flows per queue %v: all on one", perQueue)
	}
}

// A packet written on a queue moves its flow there: the kernel sends that
// flow's next packets to the queue it was last written on, so a reader
// that answers each flow on the queue it arrived on keeps it there, and
// one that answers on another queue moves it.
func TestMultiQueueTUNSteersAFlowToTheQueueItWasWrittenOn(t *testing.T) {
	const flows = 16
	ns := newNS(t)
	tun := openTUN(t, ns, netif.TUNConfig{HostAddr: hostPrefix, Queues: 2})
	qs := tun.Queues()
	arrivals := readQueues(t, tun)
	conns := make([]net.Conn, flows)
	err := ns.Do(func() (err error) {
		for i := range conns {
			if conns[i], err = net.Dial("udp4", "198.18.0.2:9"); err != nil {
				return err
			}
			t.Cleanup(func() { conns[i].Close() })
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	send := func() map[uint16]int {
		for _, c := range conns {
			if _, err := c.Write([]byte("to the stack")); err != nil {
				t.Fatal(err)
			}
		}
		got := map[uint16]int{}
		for _, a := range collect(t, arrivals, flows) {
			got[a.port] = a.queue
		}
		return got
	}
	first := send()
	// Answer each flow on the other queue: a datagram from the stack's
	// port 9 back to the kernel's socket.
	for port, q := range first {
		other := qs[1-q]
		if _, err := other.WritePackets([][]byte{udpPacket(stackIP.As4(), hostPrefix.Addr().As4(), 9, port, []byte("answer"))}); err != nil {
			t.Fatal(err)
		}
	}
	// The kernel took the answers: each socket reads one.
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 64)); err != nil {
			t.Fatalf("the kernel's socket got no answer: %v", err)
		}
	}
	for port, q := range send() {
		if want := 1 - first[port]; q != want {
			t.Errorf("flow from port %d: answered on queue %d, its next packet came on queue %d", port, want, q)
		}
	}
}

// udpPacket is an IPv4 UDP datagram with its checksums.
func udpPacket(src, dst [4]byte, sport, dport uint16, payload []byte) []byte {
	b := make([]byte, wire.IPv4HeaderLen+8+len(payload))
	wire.PutIPv4Header(b, wire.IPv4Fields{Src: src, Dst: dst, Protocol: wire.ProtoUDP, TTL: 64}, 8+len(payload))
	u := b[wire.IPv4HeaderLen:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	sum := wire.Fold(wire.Checksum(u, wire.PseudoHeaderSum(src, dst, wire.ProtoUDP, len(u))))
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], sum)
	return b
}
