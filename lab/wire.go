package lab

import (
	"errors"
	"net"
	"sync"
	"time"

	"tunstack/netif"
)

// The wire between the clients and the server adds a fixed one-way delay to
// every packet going from the clients to the server, the same for every
// stack. Without it the experiments would not be repeatable: a kernel
// client's connect() puts its SYN on a TUN queue, and whether the next
// client's SYN reaches the server before the first handshake completes
// depends on goroutine scheduling. With a few milliseconds of path, SYNs
// sent together arrive together, as they would across any real network,
// and "six clients at once" means the same thing on every run.

// delayLink is a netif.Link whose reads return each packet d after the
// inner link delivered it. Writes pass straight through. The delay is the
// same for every packet, so order is kept.
type delayLink struct {
	inner netif.Link
	d     time.Duration

	in   chan delayed // filled by pump, in arrival order
	held *delayed     // the head, taken from in but not yet due

	readMu sync.Mutex
	done   chan struct{}
	once   sync.Once
}

type delayed struct {
	due time.Time
	pkt []byte
}

// delayQueuePackets bounds the packets in flight on the wire; a burst
// larger than this waits in the TUN's own queue.
const delayQueuePackets = 4096

func newDelayLink(inner netif.Link, d time.Duration) *delayLink {
	l := &delayLink{inner: inner, d: d, in: make(chan delayed, delayQueuePackets), done: make(chan struct{})}
	go l.pump()
	return l
}

// pump reads the inner link and stamps each packet with its due time.
func (l *delayLink) pump() {
	defer close(l.in)
	const batch = 64
	bufs := make([][]byte, batch)
	sizes := make([]int, batch)
	for i := range bufs {
		bufs[i] = make([]byte, l.inner.MTU())
	}
	for {
		n, err := l.inner.ReadPackets(bufs, sizes)
		now := time.Now()
		for i := range n {
			pkt := append([]byte(nil), bufs[i][:sizes[i]]...)
			select {
			case l.in <- delayed{due: now.Add(l.d), pkt: pkt}:
			case <-l.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// ReadPackets implements netif.Link: it waits for the oldest packet to be
// due, then returns it with every other packet already due.
func (l *delayLink) ReadPackets(bufs [][]byte, sizes []int) (int, error) {
	l.readMu.Lock()
	defer l.readMu.Unlock()
	n := 0
	for n < len(bufs) && n < len(sizes) {
		if l.held == nil {
			if n > 0 {
				select {
				case p, ok := <-l.in:
					if !ok {
						return n, nil
					}
					l.held = &p
				default:
					return n, nil
				}
			} else {
				p, ok := <-l.in
				if !ok {
					return 0, net.ErrClosed
				}
				l.held = &p
			}
		}
		wait := time.Until(l.held.due)
		if wait > 0 {
			if n > 0 {
				return n, nil
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return 0, net.ErrClosed
			}
		}
		sizes[n] = copy(bufs[n], l.held.pkt)
		l.held = nil
		n++
	}
	return n, nil
}

// WritePackets implements netif.Link.
func (l *delayLink) WritePackets(pkts [][]byte) (int, error) { return l.inner.WritePackets(pkts) }

// MTU implements netif.Link.
func (l *delayLink) MTU() int { return l.inner.MTU() }

// Close implements netif.Link: it closes the inner link, which ends pump.
func (l *delayLink) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.inner.Close()
}

// relay joins two links as a wire: what one delivers is written to the
// other, both ways, until either is closed. It is the path between the
// clients' TUN and the kernel server's TUN under --stack linux, so that
// Linux sees the same kind of user-space hop as our stack and gVisor do.
type relay struct {
	wg sync.WaitGroup
}

func startRelay(a, b netif.Link) *relay {
	r := &relay{}
	r.wg.Add(2)
	go r.copy(a, b)
	go r.copy(b, a)
	return r
}

func (r *relay) copy(from, to netif.Link) {
	defer r.wg.Done()
	const batch = 64
	bufs := make([][]byte, batch)
	sizes := make([]int, batch)
	pkts := make([][]byte, 0, batch)
	for i := range bufs {
		bufs[i] = make([]byte, from.MTU())
	}
	for {
		n, err := from.ReadPackets(bufs, sizes)
		pkts = pkts[:0]
		for i := range n {
			pkts = append(pkts, bufs[i][:sizes[i]])
		}
		if len(pkts) > 0 {
			if _, werr := to.WritePackets(pkts); werr != nil && errors.Is(werr, net.ErrClosed) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// wait returns once both directions have stopped (both links closed).
func (r *relay) wait() { r.wg.Wait() }
