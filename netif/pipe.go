package netif

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
)

// PipeQueuePackets is how many packets each direction of a pipe holds before
// it drops: a bounded queue, like a real interface's transmit ring, so that a
// sender that outruns its reader sees loss instead of unbounded memory growth.
const PipeQueuePackets = 1024

// ErrPacketTooBig reports a packet longer than the link MTU.
var ErrPacketTooBig = errors.New("netif: packet larger than link MTU")

// PipeStats counts what happened to the packets one end wrote, in packets.
type PipeStats struct {
	WrittenPackets  uint64 // accepted by WritePackets, whatever became of them
	LostPackets     uint64 // dropped by SetLoss
	FilteredPackets uint64 // dropped by the SetDrop function
	OverflowPackets uint64 // dropped because the peer's queue was full
	ReadPackets     uint64 // read by the peer
}

// pipeQueue is one direction: a fixed ring of packet buffers.
type pipeQueue struct {
	ring       [][]byte // capacity PipeQueuePackets; ring[i] owns a pooled buffer
	head, size int
	nonEmpty   sync.Cond // signalled when a packet is queued or the pipe closes
}

// pipe is the state both ends share. One mutex guards everything: the queues,
// the free list, the loss PRNGs and the counters. A pipe is a test and
// simulation device, and one lock keeps its ordering easy to reason about.
type pipe struct {
	mu       sync.Mutex
	mtuBytes int
	closed   bool
	free     [][]byte // recycled MTU-sized buffers, so steady state allocates nothing
	q        [2]pipeQueue
	end      [2]*PipeEnd
}

// PipeEnd is one end of an in-memory link made by NewPipe. It implements
// Link: packets written here are read at the other end, in order.
type PipeEnd struct {
	p    *pipe
	side int // this end reads q[side] and writes q[1-side]

	// Guarded by p.mu.
	lossProb float64
	lossRand *rand.Rand
	drop     func(pkt []byte) bool
	stats    PipeStats
}

// NewPipe returns two connected ends of an in-memory link carrying packets up
// to mtuBytes long. It is the link tests and simulations run stacks over.
func NewPipe(mtuBytes int) (*PipeEnd, *PipeEnd) {
	p := &pipe{mtuBytes: mtuBytes}
	for i := range p.q {
		p.q[i].ring = make([][]byte, PipeQueuePackets)
		p.q[i].nonEmpty.L = &p.mu
	}
	p.end[0], p.end[1] = &PipeEnd{p: p, side: 0}, &PipeEnd{p: p, side: 1}
	return p.end[0], p.end[1]
}

// SetLoss drops each packet this end writes with probability p (0 to 1),
// decided by a PRNG seeded with seed: the same seed and the same sequence of
// writes give the same drops, so a failing scenario can be replayed.
func (e *PipeEnd) SetLoss(p float64, seed uint64) {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	e.lossProb = p
	e.lossRand = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// SetDrop installs a function that sees every packet this end writes and
// drops those for which it returns true; nil removes it. It lets a test lose
// one particular segment (the third data segment, the first FIN). The
// function runs with the pipe locked: it must not call back into the pipe.
func (e *PipeEnd) SetDrop(drop func(pkt []byte) bool) {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	e.drop = drop
}

// Stats returns the counters for packets written by this end.
func (e *PipeEnd) Stats() PipeStats {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	return e.stats
}

// MTU implements Link.
func (e *PipeEnd) MTU() int { return e.p.mtuBytes }

// WritePackets implements Link. Packets lost to SetLoss, SetDrop or a full
// queue count as sent, as they would on a real link: the writer cannot tell.
func (e *PipeEnd) WritePackets(pkts [][]byte) (int, error) {
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, net.ErrClosed
	}
	q := &p.q[1-e.side]
	queued := false
	for i, pkt := range pkts {
		if len(pkt) > p.mtuBytes {
			if queued {
				q.nonEmpty.Broadcast()
			}
			return i, ErrPacketTooBig
		}
		e.stats.WrittenPackets++
		switch {
		case e.lossProb > 0 && e.lossRand.Float64() < e.lossProb:
			e.stats.LostPackets++
			continue
		case e.drop != nil && e.drop(pkt):
			e.stats.FilteredPackets++
			continue
		case q.size == len(q.ring):
			e.stats.OverflowPackets++
			continue
		}
		slot := (q.head + q.size) % len(q.ring)
		q.ring[slot] = append(p.getBuf(), pkt...)
		q.size++
		queued = true
	}
	if queued {
		q.nonEmpty.Broadcast()
	}
	return len(pkts), nil
}

// ReadPackets implements Link. It waits on a condition variable, so an idle
// reader costs nothing, and then hands over every queued packet that fits in
// bufs. A buffer shorter than the next packet is an error (io.ErrShortBuffer)
// rather than a silent truncation; the packet stays queued.
func (e *PipeEnd) ReadPackets(bufs [][]byte, sizes []int) (int, error) {
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	q := &p.q[e.side]
	for q.size == 0 && !p.closed {
		q.nonEmpty.Wait()
	}
	if p.closed {
		return 0, net.ErrClosed
	}
	n := 0
	for n < len(bufs) && n < len(sizes) && q.size > 0 {
		pkt := q.ring[q.head]
		if len(bufs[n]) < len(pkt) {
			if n == 0 {
				return 0, io.ErrShortBuffer
			}
			break
		}
		sizes[n] = copy(bufs[n], pkt)
		p.putBuf(pkt)
		q.ring[q.head] = nil
		q.head = (q.head + 1) % len(q.ring)
		q.size--
		n++
	}
	// Reads are counted against the writer, so one end's Stats tell the
	// whole story of the packets it sent.
	p.end[1-e.side].stats.ReadPackets += uint64(n)
	return n, nil
}

// Close implements Link. Closing either end closes the pipe: blocked and
// later reads and writes on both ends return net.ErrClosed.
func (e *PipeEnd) Close() error {
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	for i := range p.q {
		q := &p.q[i]
		for q.size > 0 {
			p.putBuf(q.ring[q.head])
			q.ring[q.head] = nil
			q.head = (q.head + 1) % len(q.ring)
			q.size--
		}
		q.nonEmpty.Broadcast()
	}
	return nil
}

// getBuf returns an empty buffer with room for an MTU-sized packet.
// Callers hold p.mu.
func (p *pipe) getBuf() []byte {
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b[:0]
	}
	return make([]byte, 0, p.mtuBytes)
}

// putBuf recycles a buffer from getBuf. Callers hold p.mu.
func (p *pipe) putBuf(b []byte) { p.free = append(p.free, b) }
