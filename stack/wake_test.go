package stack

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"tunstack/netif"
)

// gateLink is a link whose reader can be held back while packets wait for
// it, as the Go poller holds back a TUN reader under load: a goroutine
// moves what the pipe end delivers into q, and while stalled ReadPackets
// hands out nothing until WakeRead, which makes the waiting read (or the
// next) return what q holds at that moment, none if none.
type gateLink struct {
	*netif.PipeEnd
	mu      sync.Mutex
	cond    *sync.Cond
	q       [][]byte
	stalled bool
	woken   bool
	wakes   int
	closed  bool
}

var _ netif.ReadWaker = (*gateLink)(nil)

func newGateLink(p *netif.PipeEnd) *gateLink {
	g := &gateLink{PipeEnd: p}
	g.cond = sync.NewCond(&g.mu)
	go g.pump()
	return g
}

func (g *gateLink) pump() {
	bufs, sizes := [][]byte{make([]byte, g.MTU())}, []int{0}
	for {
		n, err := g.PipeEnd.ReadPackets(bufs, sizes)
		g.mu.Lock()
		if err != nil {
			g.closed = true
			g.cond.Broadcast()
			g.mu.Unlock()
			return
		}
		for i := range n {
			g.q = append(g.q, append([]byte(nil), bufs[i][:sizes[i]]...))
		}
		g.cond.Broadcast()
		g.mu.Unlock()
	}
}

func (g *gateLink) ReadPackets(bufs [][]byte, sizes []int) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for !g.woken && (g.stalled || len(g.q) == 0) {
		if g.closed {
			return 0, net.ErrClosed
		}
		g.cond.Wait()
	}
	g.woken = false
	n := 0
	for n < len(bufs) && len(g.q) > 0 {
		sizes[n] = copy(bufs[n], g.q[0])
		g.q = g.q[1:]
		n++
	}
	return n, nil
}

func (g *gateLink) WakeRead() {
	g.mu.Lock()
	g.woken = true
	g.wakes++
	g.cond.Broadcast()
	g.mu.Unlock()
}

func (g *gateLink) QueueLen() int { return 1000 }

func (g *gateLink) stall() {
	g.mu.Lock()
	g.stalled = true
	g.mu.Unlock()
}

// waitQueued waits until the reader has n packets waiting for it.
func (g *gateLink) waitQueued(n int) {
	g.mu.Lock()
	for len(g.q) < n && !g.closed {
		g.cond.Wait()
	}
	g.mu.Unlock()
}

func (g *gateLink) Close() error {
	err := g.PipeEnd.Close()
	g.mu.Lock()
	g.closed = true
	g.cond.Broadcast()
	g.mu.Unlock()
	return err
}

// TestTimersRunAfterTheInputTheLinkHolds: the peer's ACK of a flight waits
// in the link, unread because the reader has not been scheduled, when the
// tail loss probe's timeout passes. The timer loop wakes the reader, which
// takes the ACK in before it runs the timers: the flight is acknowledged
// and no probe is sent. Run ahead of the input, the timers would resend the
// last segment of a flight the peer had already acknowledged.
func TestTimersRunAfterTheInputTheLinkHolds(t *testing.T) {
	pa, pb := netif.NewPipe(testMTU)
	gate := newGateLink(pb)
	p := startPair(t, pa, gate, pa, pb, Config{Addr: addrA}, Config{Addr: addrB})
	c, s := p.connect(t, 80)
	// A flight of more than one segment: its probe timeout is 2*SRTT plus
	// 2 ms (RFC 8985 §7.2), no delayed-ACK allowance.
	msg := make([]byte, 3000)
	buf := make([]byte, len(msg))
	// One exchange first, so that the server has an RTT sample from data
	// and no timer of the handshake is left.
	if _, err := s.Write(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	for s.TCPInfo().Unacked > 0 {
		time.Sleep(time.Millisecond)
	}
	before := p.b.Stats()

	gate.stall()
	if _, err := s.Write(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	gate.waitQueued(1) // the client's ACK waits for the server's reader

	ctx := testContext(t, 30*time.Second)
	for s.TCPInfo().Unacked > 0 && p.b.Stats().LossProbes == before.LossProbes {
		if ctx.Err() != nil {
			t.Fatal("the server neither took the ACK in nor sent a probe")
		}
		time.Sleep(time.Millisecond)
	}
	after := p.b.Stats()
	if n := after.LossProbes - before.LossProbes; n != 0 {
		t.Errorf("the server sent %d tail loss probes with the ACK of the flight waiting in the link", n)
	}
	if n := after.RetransSegs - before.RetransSegs; n != 0 {
		t.Errorf("the server retransmitted %d segments with the ACK of the flight waiting in the link", n)
	}
	gate.mu.Lock()
	wakes := gate.wakes
	gate.mu.Unlock()
	if wakes == 0 {
		t.Error("the timer loop never woke the reader")
	}
}
