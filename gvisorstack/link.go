package gvisorstack

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"tunstack/netif"
)

const (
	// batchPackets is how many packets one ReadPackets or WritePackets
	// call on the link moves at most.
	batchPackets = 64
	// txQueuePackets bounds the outbound queue between gVisor and the
	// writer goroutine, like a NIC's transmit queue (Linux txqueuelen
	// defaults to 1000). Beyond it packets are dropped and counted.
	txQueuePackets = 1024
)

// linkEndpoint adapts a netif.Link to gVisor's stack.LinkEndpoint. gVisor
// calls WritePackets on its own goroutines; the packets are copied into a
// bounded queue that a writer goroutine hands to the link in batches, so a
// slow or blocking link never holds gVisor's locks. A reader goroutine
// moves inbound packets from the link into gVisor in batches.
type linkEndpoint struct {
	link netif.Link
	mtu  uint32
	has6 bool // IPv6 packets go to gVisor (Config.Addr6), else they are dropped

	mu         sync.Mutex
	dispatcher stack.NetworkDispatcher

	txMu     sync.Mutex
	txCond   *sync.Cond
	txQueue  [][]byte // packets waiting for the writer, oldest first
	txClosed bool

	bufPool sync.Pool // *[]byte of cap mtu, for outbound copies

	// zw is the zero-window ACK repair (Options.ZeroWindowACKRepair), nil
	// when it is off.
	zw *zeroWindowRepair

	txDrops     atomic.Uint64 // outbound packets dropped because txQueue was full
	rxDropped   atomic.Uint64 // inbound packets neither IPv4 nor, with an IPv6 address, IPv6
	rxPackets   atomic.Uint64
	txPackets   atomic.Uint64
	linkErrors  atomic.Uint64 // WritePackets errors from the link
	readerDone  chan struct{}
	writerDone  chan struct{}
	closeOnce   sync.Once
	startedOnce sync.Once
}

var _ stack.LinkEndpoint = (*linkEndpoint)(nil)

// newLinkEndpoint adapts link; zeroWindowRepair turns on the zero-window
// ACK repair (Options.ZeroWindowACKRepair); has6 hands IPv6 packets to
// gVisor.
func newLinkEndpoint(link netif.Link, zeroWindowRepair, has6 bool) *linkEndpoint {
	e := &linkEndpoint{
		link:       link,
		mtu:        uint32(link.MTU()),
		has6:       has6,
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	e.txCond = sync.NewCond(&e.txMu)
	if zeroWindowRepair {
		e.zw = newZeroWindowRepair()
	}
	mtu := int(e.mtu)
	e.bufPool.New = func() any {
		b := make([]byte, mtu)
		return &b
	}
	return e
}

// start launches the reader and writer goroutines.
func (e *linkEndpoint) start() {
	e.startedOnce.Do(func() {
		go e.reader()
		go e.writer()
	})
}

// shutdown closes the link and waits for both goroutines to end. Packets
// still queued for output are discarded.
func (e *linkEndpoint) shutdown() error {
	var err error
	e.closeOnce.Do(func() {
		e.txMu.Lock()
		e.txClosed = true
		e.txQueue = nil
		e.txCond.Broadcast()
		e.txMu.Unlock()
		// Closing the link is what unblocks ReadPackets.
		err = e.link.Close()
		e.start() // so that the waits below return even if never started
		<-e.readerDone
		<-e.writerDone
	})
	return err
}

func (e *linkEndpoint) reader() {
	defer close(e.readerDone)
	bufs := make([][]byte, batchPackets)
	for i := range bufs {
		bufs[i] = make([]byte, e.mtu)
	}
	sizes := make([]int, batchPackets)
	var scratch []byte // the zero-window repair's ACK copies
	if e.zw != nil {
		scratch = make([]byte, e.mtu)
	}
	for {
		n, err := e.link.ReadPackets(bufs, sizes)
		if err != nil {
			// net.ErrClosed after Close; any other error is fatal for
			// the link as well, since ReadPackets has no transient errors.
			return
		}
		e.mu.Lock()
		d := e.dispatcher
		e.mu.Unlock()
		for i := 0; i < n; i++ {
			b := bufs[i][:sizes[i]]
			proto, ok := e.protocolOf(b)
			if !ok {
				e.rxDropped.Add(1)
				continue
			}
			if d != nil {
				// The zero-window repair reads IPv4 segments only
				// (zerowindow.go); IPv6 ones pass it by.
				if e.zw != nil && proto == ipv4.ProtocolNumber {
					if ack := e.zw.inbound(b, scratch); ack != nil {
						// The ACK copy goes first, so that gVisor's
						// sender has processed it before the segment
						// itself is refused (zerowindow.go).
						deliver(d, proto, ack)
					}
				}
				deliver(d, proto, b)
			}
			// Counted once delivered: a test that sees the count reach
			// n knows gVisor has queued the n-th packet for its TCP
			// processors, and can wait for them with Stack.Pause.
			e.rxPackets.Add(1)
		}
	}
}

// protocolOf is the network protocol of the packet b by its version
// nibble: IPv4, or IPv6 when the stack has an IPv6 address. ok is false
// for a packet gVisor is not to see.
func (e *linkEndpoint) protocolOf(b []byte) (tcpip.NetworkProtocolNumber, bool) {
	if len(b) == 0 {
		return 0, false
	}
	switch header.IPVersion(b) {
	case header.IPv4Version:
		return ipv4.ProtocolNumber, true
	case header.IPv6Version:
		return ipv6.ProtocolNumber, e.has6
	}
	return 0, false
}

// deliver hands the packet b of protocol proto to gVisor. b is copied, so
// its buffer can be reused at once.
func deliver(d stack.NetworkDispatcher, proto tcpip.NetworkProtocolNumber, b []byte) {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		Payload: buffer.MakeWithData(b),
	})
	d.DeliverNetworkPacket(proto, pkt)
	pkt.DecRef()
}

func (e *linkEndpoint) writer() {
	defer close(e.writerDone)
	var batch [][]byte
	for {
		e.txMu.Lock()
		for len(e.txQueue) == 0 && !e.txClosed {
			e.txCond.Wait()
		}
		if e.txClosed {
			e.txMu.Unlock()
			return
		}
		n := min(len(e.txQueue), batchPackets)
		batch = append(batch[:0], e.txQueue[:n]...)
		// Shift rather than reslice so the queue's backing array is reused.
		rest := copy(e.txQueue, e.txQueue[n:])
		clear(e.txQueue[rest:])
		e.txQueue = e.txQueue[:rest]
		e.txMu.Unlock()

		for sent := 0; sent < len(batch); {
			m, err := e.link.WritePackets(batch[sent:])
			sent += m
			e.txPackets.Add(uint64(m))
			if err != nil {
				e.linkErrors.Add(1)
				if e.isClosed() {
					return
				}
				// A link error loses the rest of the batch, as a wire would.
				break
			}
			if m == 0 {
				break
			}
		}
		for i, b := range batch {
			b = b[:cap(b)]
			e.bufPool.Put(&b)
			batch[i] = nil
		}
	}
}

func (e *linkEndpoint) isClosed() bool {
	e.txMu.Lock()
	defer e.txMu.Unlock()
	return e.txClosed
}

// WritePackets implements stack.LinkWriter. The packets stay owned by the
// caller; their bytes are copied.
func (e *linkEndpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	e.txMu.Lock()
	defer e.txMu.Unlock()
	if e.txClosed {
		return 0, &tcpip.ErrClosedForSend{}
	}
	n := 0
	for _, pkt := range pkts.AsSlice() {
		if len(e.txQueue) >= txQueuePackets {
			e.txDrops.Add(uint64(pkts.Len() - n))
			break
		}
		size := pkt.Size()
		var b []byte
		if size <= int(e.mtu) {
			bp := e.bufPool.Get().(*[]byte)
			b = (*bp)[:0]
		} else {
			b = make([]byte, 0, size)
		}
		for _, s := range pkt.AsSlices() {
			b = append(b, s...)
		}
		if e.zw != nil {
			e.zw.outbound(b)
		}
		e.txQueue = append(e.txQueue, b)
		n++
	}
	if n > 0 {
		e.txCond.Signal()
		return n, nil
	}
	return 0, &tcpip.ErrNoBufferSpace{}
}

// MTU implements stack.NetworkLinkEndpoint.
func (e *linkEndpoint) MTU() uint32 { return e.mtu }

// SetMTU implements stack.NetworkLinkEndpoint; the link's MTU is fixed.
func (e *linkEndpoint) SetMTU(uint32) {}

// MaxHeaderLength implements stack.NetworkLinkEndpoint: an IP link has no
// link-layer header.
func (*linkEndpoint) MaxHeaderLength() uint16 { return 0 }

// LinkAddress implements stack.NetworkLinkEndpoint.
func (*linkEndpoint) LinkAddress() tcpip.LinkAddress { return "" }

// SetLinkAddress implements stack.NetworkLinkEndpoint.
func (*linkEndpoint) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities implements stack.NetworkLinkEndpoint: no checksum offload,
// no link-address resolution (a point-to-point IP link, like a TUN).
func (*linkEndpoint) Capabilities() stack.LinkEndpointCapabilities { return 0 }

// Attach implements stack.NetworkLinkEndpoint.
func (e *linkEndpoint) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	e.dispatcher = d
	e.mu.Unlock()
}

// IsAttached implements stack.NetworkLinkEndpoint.
func (e *linkEndpoint) IsAttached() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dispatcher != nil
}

// Wait implements stack.NetworkLinkEndpoint.
func (*linkEndpoint) Wait() {}

// ARPHardwareType implements stack.NetworkLinkEndpoint.
func (*linkEndpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }

// AddHeader implements stack.NetworkLinkEndpoint.
func (*linkEndpoint) AddHeader(*stack.PacketBuffer) {}

// ParseHeader implements stack.NetworkLinkEndpoint.
func (*linkEndpoint) ParseHeader(*stack.PacketBuffer) bool { return true }

// Close implements stack.NetworkLinkEndpoint. gVisor calls it when the NIC
// is removed; the link itself is closed by Stack.Close through shutdown.
func (*linkEndpoint) Close() {}

// SetOnCloseAction implements stack.NetworkLinkEndpoint.
func (*linkEndpoint) SetOnCloseAction(func()) {}

// zeroWindowRepairs is how many ACK copies the zero-window repair made.
func (e *linkEndpoint) zeroWindowRepairs() uint64 {
	if e.zw == nil {
		return 0
	}
	return e.zw.repairs.Load()
}
