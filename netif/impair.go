package netif

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ImpairDirStats counts what one direction did to its packets. Every packet
// that entered, and every copy, is eventually delivered, lost, dropped at
// the queue, refused by the link, or still held (at Close, dropped):
// In + Duplicated = Delivered + Lost + QueueDrops + LinkErrors + held.
type ImpairDirStats struct {
	InPackets         uint64 // entered the direction: written by the stack (out) or read from the link (in)
	DeliveredPackets  uint64 // left it: written to the link (out) or returned by ReadPackets (in); copies included
	LostPackets       uint64 // dropped by the loss model
	DuplicatedPackets uint64 // extra copies made
	ReorderedPackets  uint64 // released right behind a packet that arrived after them
	DelayedPackets    uint64 // released later than they arrived (delay, jitter, rate, or a reorder hold)
	QueueDropPackets  uint64 // tail-dropped by a full bottleneck queue, or beyond the hold limit
	MaxQueuePackets   int    // deepest the bottleneck queue has been, in packets
	LinkErrorPackets  uint64 // outbound only: packets the link refused at release time
}

// ImpairStats holds the counters of both directions.
type ImpairStats struct {
	In  ImpairDirStats // packets read from the link, toward the stack
	Out ImpairDirStats // packets written by the stack, toward the link
}

// ImpairedLink is a Link that impairs another Link, per direction, as an
// ImpairSpec says: loss (independent or in bursts), duplication, reordering,
// delay with jitter, and a rate-limited bottleneck with a drop-tail queue.
// It sits between the link and the stack, so it works the same on a pipe
// and on a TUN device. Decisions come from seeded streams (math/rand/v2
// PCG), one per direction and per mechanism: the same seed and the same
// packet sequence give the same decisions, and whether packet k is lost,
// copied or held depends only on the seed and k, not on which other
// mechanisms are on.
//
// Each direction runs in one of three modes, the cheapest that serves:
//
//   - direct: nothing to do; calls go straight to the link.
//   - instant: loss and duplication only; decided inline in the caller's
//     ReadPackets or WritePackets, with no goroutine.
//   - scheduled: anything that takes time (delay, jitter, rate, reorder).
//     Packets are copied into pooled buffers and released at their due time
//     by a scheduler goroutine with a timer-ordered queue. Outbound, it
//     writes them to the link; inbound, a reader goroutine feeds it from the
//     link and ReadPackets returns what it has released.
//
// The pipeline order is loss, duplication, bottleneck, delay and jitter,
// reorder: a lost packet takes no bandwidth, and a copy is a real second
// packet on the wire. Like a real link, WritePackets reports lost and
// dropped packets as sent.
//
// Options add what a spec does not say: WithSegmentRules acts on exact TCP
// segments and records what it did.
type ImpairedLink struct {
	link  Link      // the wrapped link, under rules when there are any
	rules *ruleLink // nil without WithSegmentRules
	spec  ImpairSpec
	in    *impairPath
	out   *impairPath
	done  chan struct{} // closed by Close: schedulers stop
	wg    sync.WaitGroup
	close sync.Once
	err   error // from the link's Close
}

// pathMode is how a direction processes its packets; see ImpairedLink.
type pathMode uint8

const (
	pathDirect pathMode = iota
	pathInstant
	pathScheduled
)

// impairPath is one direction of an ImpairedLink.
type impairPath struct {
	l    *ImpairedLink
	out  bool
	mode pathMode
	clk  Clock
	mtu  int

	// Decision streams and parameters, fixed after construction; the
	// streams advance under mu.
	loss      *lossModel  // nil: no loss
	dup       *chance     // nil: no duplication
	reorder   *chance     // nil: no reordering
	jitterRng *rand.Rand  // nil: no jitter
	rate      *bottleneck // nil: no rate limit
	delay     time.Duration
	jitter    time.Duration

	// mu guards everything below and the decision streams. In instant mode
	// it is held across the link call, which keeps a batch's decisions and
	// its I/O in one order; Close never takes it in that mode.
	mu       sync.Mutex
	closed   bool // scheduled mode: set by Close
	free     [][]byte
	sched    schedHeap
	lastDue  time.Time // release time of the latest packet scheduled: releases never go backwards
	seq      uint64
	wake     chan struct{} // scheduled mode: the earliest due time moved ahead
	ready    [][]byte      // scheduled inbound: released, waiting for ReadPackets
	readyOff int           // ready[:readyOff] have been taken
	readable sync.Cond     // scheduled inbound: ready gained packets, or closed, or readErr
	readErr  error         // scheduled inbound: the link's read error, once it stops
	pending  [][]byte      // instant inbound: copies waiting for room in a ReadPackets
	scratch  [][]byte      // instant outbound: the batch handed to the link
	origin   []int         // instant outbound: scratch[k] came from pkts[origin[k]]

	stats impairCounters
}

// impairCounters are atomics so that Stats and the direct mode need no lock.
type impairCounters struct {
	in, delivered, lost, duplicated atomic.Uint64
	reordered, delayed, queueDrops  atomic.Uint64
	linkErrors                      atomic.Uint64
	maxQueue                        atomic.Int64
}

// impairReadBatch is how many packets the inbound reader goroutine asks the
// link for at once.
const impairReadBatch = 64

// Stream numbers for the decision streams: with the direction they make
// each (direction, mechanism) pair its own PCG stream from one seed.
const (
	streamLoss = iota + 1
	streamDup
	streamReorder
	streamJitter
)

// NewImpairedLink wraps l with the impairment spec describes and the
// options, on the real clock. The link belongs to the ImpairedLink from
// then on: Close closes it.
func NewImpairedLink(l Link, spec ImpairSpec, opts ...ImpairOption) (*ImpairedLink, error) {
	return NewImpairedLinkClock(l, spec, RealClock{}, opts...)
}

// NewImpairedLinkClock is NewImpairedLink on the given clock.
func NewImpairedLinkClock(l Link, spec ImpairSpec, clk Clock, opts ...ImpairOption) (*ImpairedLink, error) {
	if l == nil || clk == nil {
		return nil, errors.New("netif: impairment needs a link and a clock")
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	var o impairOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkSegmentRules(o.rules); err != nil {
		return nil, err
	}
	il := &ImpairedLink{link: l, spec: spec, done: make(chan struct{})}
	if len(o.rules) > 0 {
		il.rules = newRuleLink(l, o.rules, clk)
		il.link = il.rules
	}
	il.in = il.newPath(false, clk)
	il.out = il.newPath(true, clk)
	for _, p := range []*impairPath{il.out, il.in} {
		if p.mode != pathScheduled {
			continue
		}
		il.wg.Add(1)
		go p.run()
		if !p.out {
			il.wg.Add(1)
			go p.readLoop()
		}
	}
	return il, nil
}

func (il *ImpairedLink) newPath(out bool, clk Clock) *impairPath {
	s := il.spec
	p := &impairPath{l: il, out: out, clk: clk, mtu: il.link.MTU()}
	p.sched.heldIdx = -1
	if !s.Dir.has(out) || !s.Enabled() {
		return p
	}
	dirBit := uint64(0)
	if out {
		dirBit = 1
	}
	stream := func(mech uint64) *rand.Rand {
		// The golden-ratio multiplier spreads the small stream ids apart.
		return rand.New(rand.NewPCG(s.Seed, (mech<<1|dirBit)*0x9e3779b97f4a7c15))
	}
	if s.LossPercent > 0 {
		p.loss = newLossModel(stream(streamLoss), s.LossPercent, s.BurstPackets)
	}
	p.dup = newChance(stream(streamDup), s.DupPercent)
	p.reorder = newChance(stream(streamReorder), s.ReorderPercent)
	if s.Jitter > 0 {
		p.jitterRng = stream(streamJitter)
	}
	if s.RateBitsPerSec > 0 {
		p.rate = newBottleneck(s.RateBitsPerSec, s.queuePackets())
	}
	p.delay, p.jitter = s.Delay, s.Jitter
	p.mode = pathInstant
	if s.Delay > 0 || s.Jitter > 0 || s.RateBitsPerSec > 0 || s.ReorderPercent > 0 {
		p.mode = pathScheduled
		p.wake = make(chan struct{}, 1)
		p.readable.L = &p.mu
	}
	return p
}

// tally counts one batch's decisions in plain integers, added to the
// shared atomic counters once per batch rather than once per packet.
type tally struct{ in, lost, dup uint64 }

func (t *tally) flush(c *impairCounters) {
	c.in.Add(t.in)
	if t.lost > 0 {
		c.lost.Add(t.lost)
	}
	if t.dup > 0 {
		c.duplicated.Add(t.dup)
	}
}

// decide takes one packet's decisions. Each configured mechanism draws
// exactly once per packet, whatever the others decided, so that each
// stream stays aligned with the packet sequence. Callers hold p.mu.
func (p *impairPath) decide(t *tally) (lost, dup, hold bool) {
	t.in++
	lost = p.loss != nil && p.loss.lose()
	dup = p.dup.draw()
	hold = p.reorder.draw()
	if lost {
		t.lost++
		return true, false, false
	}
	if dup {
		t.dup++
	}
	return false, dup, hold
}

// admit runs one packet that arrived at now through a scheduled direction.
// Callers hold p.mu.
func (p *impairPath) admit(t *tally, now time.Time, pkt []byte) {
	lost, dup, hold := p.decide(t)
	if lost {
		return
	}
	p.schedule(now, pkt, hold, false)
	if dup {
		p.schedule(now, pkt, false, true)
	}
}

// WritePackets implements Link. A packet longer than the MTU is refused
// with ErrPacketTooBig, as the pipe does, before any decision is taken.
func (il *ImpairedLink) WritePackets(pkts [][]byte) (int, error) {
	p := il.out
	switch p.mode {
	case pathDirect:
		n, err := il.link.WritePackets(pkts)
		p.stats.in.Add(uint64(n))
		p.stats.delivered.Add(uint64(n))
		return n, err
	case pathInstant:
		return p.writeInstant(pkts)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, net.ErrClosed
	}
	before, hadAny := p.sched.top()
	now := p.clk.Now()
	var t tally
	defer t.flush(&p.stats)
	for i, pkt := range pkts {
		if len(pkt) > p.mtu {
			p.wakeIfEarlier(before, hadAny)
			return i, ErrPacketTooBig
		}
		p.admit(&t, now, pkt)
	}
	p.wakeIfEarlier(before, hadAny)
	return len(pkts), nil
}

// writeInstant applies loss and duplication and writes the survivors in one
// batch, a copy right behind its original. No packet is copied: the batch
// holds the caller's slices.
func (p *impairPath) writeInstant(pkts [][]byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	batch, origin := p.scratch[:0], p.origin[:0]
	var t tally
	for i, pkt := range pkts {
		lost, dup, _ := p.decide(&t)
		if lost {
			continue
		}
		batch, origin = append(batch, pkt), append(origin, i)
		if dup {
			batch, origin = append(batch, pkt), append(origin, i)
		}
	}
	t.flush(&p.stats)
	n, err := p.l.link.WritePackets(batch)
	p.stats.delivered.Add(uint64(n))
	clear(batch) // do not keep the caller's packets alive
	p.scratch, p.origin = batch, origin
	if err != nil && n < len(batch) {
		return origin[n], err // the packets before the one that failed were sent
	}
	return len(pkts), err
}

// ReadPackets implements Link.
func (il *ImpairedLink) ReadPackets(bufs [][]byte, sizes []int) (int, error) {
	p := il.in
	switch p.mode {
	case pathDirect:
		n, err := il.link.ReadPackets(bufs, sizes)
		p.stats.in.Add(uint64(n))
		p.stats.delivered.Add(uint64(n))
		return n, err
	case pathInstant:
		return p.readInstant(bufs, sizes)
	}
	return p.readScheduled(bufs, sizes)
}

// readInstant reads from the link into the caller's buffers and removes
// the lost packets in place. Copies cannot be slotted in place without
// moving the rest of the batch, so they go at the end of it, or into the
// next ReadPackets when the buffers are full: a copy may arrive a few
// packets after its original, as netem's duplicates do.
func (p *impairPath) readInstant(bufs [][]byte, sizes []int) (int, error) {
	if len(bufs) == 0 || len(sizes) == 0 {
		return 0, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) > 0 {
		return p.takeCopies(bufs, sizes, 0)
	}
	for {
		n, err := p.l.link.ReadPackets(bufs, sizes)
		kept := 0
		var t tally
		for i := range n {
			lost, dup, _ := p.decide(&t)
			if lost {
				continue
			}
			pkt := bufs[i][:sizes[i]]
			if kept != i {
				sizes[kept] = copy(bufs[kept], pkt)
			}
			kept++
			if dup {
				p.pending = append(p.pending, append(p.getBuf(), pkt...))
			}
		}
		t.flush(&p.stats)
		if kept > 0 || len(p.pending) > 0 {
			k, _ := p.takeCopies(bufs, sizes, kept)
			return k, err
		}
		if err != nil {
			return 0, err
		}
	}
}

// takeCopies moves pending copies into bufs from index k on and returns the
// number of packets in bufs. Callers hold p.mu.
func (p *impairPath) takeCopies(bufs [][]byte, sizes []int, k int) (int, error) {
	taken := 0
	for k < len(bufs) && k < len(sizes) && taken < len(p.pending) {
		c := p.pending[taken]
		if len(bufs[k]) < len(c) {
			break
		}
		sizes[k] = copy(bufs[k], c)
		p.putBuf(c)
		k++
		taken++
	}
	n := copy(p.pending, p.pending[taken:])
	clear(p.pending[n:])
	p.pending = p.pending[:n]
	p.stats.delivered.Add(uint64(k))
	if k == 0 && len(p.pending) > 0 {
		return 0, io.ErrShortBuffer
	}
	return k, nil
}

// readLoop is the scheduled inbound direction's reader goroutine: it reads
// the link into its own buffers and passes each packet through the pipeline.
// A read error (net.ErrClosed after Close) ends it; ReadPackets reports the
// error once the released packets are taken.
func (p *impairPath) readLoop() {
	defer p.l.wg.Done()
	bufs := make([][]byte, impairReadBatch)
	for i := range bufs {
		bufs[i] = make([]byte, p.mtu)
	}
	sizes := make([]int, impairReadBatch)
	for {
		n, err := p.l.link.ReadPackets(bufs, sizes)
		p.mu.Lock()
		if n > 0 && !p.closed {
			before, hadAny := p.sched.top()
			now := p.clk.Now()
			var t tally
			for i := range n {
				p.admit(&t, now, bufs[i][:sizes[i]])
			}
			t.flush(&p.stats)
			p.wakeIfEarlier(before, hadAny)
		}
		if err != nil {
			p.readErr = err
			p.readable.Broadcast()
		}
		p.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// readScheduled waits for released packets and copies out as many as fit.
func (p *impairPath) readScheduled(bufs [][]byte, sizes []int) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.readyLen() == 0 && !p.closed && p.readErr == nil {
		p.readable.Wait()
	}
	if p.closed {
		return 0, net.ErrClosed
	}
	if p.readyLen() == 0 {
		return 0, p.readErr
	}
	k := 0
	for k < len(bufs) && k < len(sizes) && p.readyLen() > 0 {
		pkt := p.ready[p.readyOff]
		if len(bufs[k]) < len(pkt) {
			if k == 0 {
				return 0, io.ErrShortBuffer
			}
			break
		}
		sizes[k] = copy(bufs[k], pkt)
		p.putBuf(pkt)
		p.ready[p.readyOff] = nil
		p.readyOff++
		k++
	}
	if p.readyOff == len(p.ready) {
		p.ready, p.readyOff = p.ready[:0], 0
	}
	p.stats.delivered.Add(uint64(k))
	return k, nil
}

// readyLen is how many released packets wait for ReadPackets. Callers hold p.mu.
func (p *impairPath) readyLen() int { return len(p.ready) - p.readyOff }

// getBuf returns an empty buffer with room for an MTU-sized packet.
// Callers hold p.mu.
func (p *impairPath) getBuf() []byte {
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b[:0]
	}
	return make([]byte, 0, p.mtu)
}

// putBuf recycles a buffer from getBuf. Callers hold p.mu.
func (p *impairPath) putBuf(b []byte) { p.free = append(p.free, b) }

// MTU implements Link.
func (il *ImpairedLink) MTU() int { return il.link.MTU() }

// Spec returns the impairment the link applies.
func (il *ImpairedLink) Spec() ImpairSpec { return il.spec }

// Stats returns the counters of both directions.
func (il *ImpairedLink) Stats() ImpairStats {
	return ImpairStats{In: il.in.stats.snapshot(), Out: il.out.stats.snapshot()}
}

func (c *impairCounters) snapshot() ImpairDirStats {
	return ImpairDirStats{
		InPackets:         c.in.Load(),
		DeliveredPackets:  c.delivered.Load(),
		LostPackets:       c.lost.Load(),
		DuplicatedPackets: c.duplicated.Load(),
		ReorderedPackets:  c.reordered.Load(),
		DelayedPackets:    c.delayed.Load(),
		QueueDropPackets:  c.queueDrops.Load(),
		MaxQueuePackets:   int(c.maxQueue.Load()),
		LinkErrorPackets:  c.linkErrors.Load(),
	}
}

// Close implements Link. It closes the wrapped link, stops the goroutines
// and waits for them; packets still held are dropped, as a link going down
// drops what is in flight. Blocked and later calls return net.ErrClosed.
func (il *ImpairedLink) Close() error {
	il.close.Do(func() {
		for _, p := range []*impairPath{il.out, il.in} {
			if p.mode == pathScheduled {
				p.mu.Lock()
				p.closed = true
				p.readable.Broadcast()
				p.mu.Unlock()
			}
		}
		close(il.done)
		il.err = il.link.Close() // unblocks the reader goroutine
		il.wg.Wait()
	})
	return il.err
}
