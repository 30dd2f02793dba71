package netif

import (
	"container/heap"
	"errors"
	"net"
	"time"
)

// impairMaxHeldPackets bounds the packets one direction holds at once
// (in the delay line, behind the bottleneck, or read but not yet collected),
// so that a long delay in front of a fast sender cannot take unbounded
// memory: 16384 MTU-sized buffers, 24 MB at 1500 bytes. Arrivals beyond it
// are dropped and counted with the queue drops.
const impairMaxHeldPackets = 16384

// impairReorderMaxHold is how long a packet held back for reordering waits,
// past its own due time, for a successor to arrive. If none does (the flow
// paused, as at the end of a window), the packet goes alone, late by this
// much but not out of order, and is not counted as reordered.
const impairReorderMaxHold = 10 * time.Millisecond

// schedItem is one packet waiting for its release time.
type schedItem struct {
	due       time.Time // release time; for a held packet, its deadline
	seq       uint64    // orders packets with the same due time: FIFO
	arrived   time.Time // when it entered the pipeline, for the delayed count
	buf       []byte    // a copy in a pooled buffer
	held      bool      // a reorder hold waiting for its successor
	reordered bool      // will be released behind a packet that arrived after it
}

// schedHeap orders the waiting packets by (due, seq): the timer-ordered
// queue of a direction. It tracks where the one held packet sits, so that a
// successor can move it. Push and pop go through push/pop below, which avoid
// container/heap's boxing of items in an interface (an allocation a packet).
type schedHeap struct {
	items   []schedItem
	heldIdx int // index of the held item in items; -1 when none
}

func (h *schedHeap) Len() int { return len(h.items) }

func (h *schedHeap) Less(i, j int) bool {
	a, b := &h.items[i], &h.items[j]
	if !a.due.Equal(b.due) {
		return a.due.Before(b.due)
	}
	return a.seq < b.seq
}

func (h *schedHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	switch h.heldIdx {
	case i:
		h.heldIdx = j
	case j:
		h.heldIdx = i
	}
}

// Push and Pop satisfy heap.Interface; the package's own code uses push and pop.
func (h *schedHeap) Push(x any) { h.items = append(h.items, x.(schedItem)) }

func (h *schedHeap) Pop() any {
	n := len(h.items) - 1
	it := h.items[n]
	h.items[n] = schedItem{}
	h.items = h.items[:n]
	return it
}

func (h *schedHeap) push(it schedItem) {
	h.items = append(h.items, it)
	i := len(h.items) - 1
	if it.held {
		h.heldIdx = i
	}
	heap.Fix(h, i)
}

func (h *schedHeap) pop() schedItem {
	n := len(h.items) - 1
	h.Swap(0, n)
	it := h.items[n]
	h.items[n] = schedItem{}
	h.items = h.items[:n]
	if n > 0 {
		heap.Fix(h, 0)
	}
	if it.held {
		h.heldIdx = -1
	}
	return it
}

// top returns the earliest due time, ok false when the heap is empty.
func (h *schedHeap) top() (time.Time, bool) {
	if len(h.items) == 0 {
		return time.Time{}, false
	}
	return h.items[0].due, true
}

// schedule gives a packet that arrived at now and survived loss its release
// time and queues it, copied into a pooled buffer. Callers hold p.mu.
//
// The release time is built in stages: the bottleneck's departure (or now),
// plus the delay, plus a uniform jitter in ±Jitter, then raised to the
// previous packet's release time if it fell before it. That last step keeps
// jitter from reordering packets, as on a real path where jitter comes from
// queues that are FIFOs: reordering happens only when asked for. Its cost
// is that on a busy direction (packets closer together than the jitter) the
// delays cluster toward the upper end of the range instead of spreading
// uniformly across it.
//
// Reordering holds a chosen packet back until the next packet has been
// scheduled, then releases it right behind that one: a displacement of one
// position, the pattern that makes a TCP receiver send one duplicate ACK.
// If no successor arrives within impairReorderMaxHold past the packet's due
// time, it goes alone. One packet is held at a time; a packet chosen while
// another is held releases that one and is not held itself. Duplicate copies
// (isCopy) neither hold nor release.
func (p *impairPath) schedule(now time.Time, pkt []byte, hold, isCopy bool) {
	if p.sched.Len()+p.readyLen() >= impairMaxHeldPackets {
		p.stats.queueDrops.Add(1)
		return
	}
	due := now
	if p.rate != nil {
		depart, depth, ok := p.rate.admit(now, len(pkt))
		if depth > int(p.stats.maxQueue.Load()) {
			p.stats.maxQueue.Store(int64(depth))
		}
		if !ok {
			p.stats.queueDrops.Add(1)
			return
		}
		due = depart
	}
	due = due.Add(p.delay)
	if p.jitter > 0 {
		due = due.Add(time.Duration(p.jitterRng.Int64N(2*int64(p.jitter)+1)) - p.jitter)
	}
	if due.Before(p.lastDue) {
		due = p.lastDue
	}
	p.lastDue = due

	p.seq++
	it := schedItem{due: due, seq: p.seq, arrived: now, buf: append(p.getBuf(), pkt...)}
	if isCopy {
		p.sched.push(it)
		return
	}
	if i := p.sched.heldIdx; i >= 0 && p.sched.items[i].due.After(now) {
		// This packet is the held one's successor: release that right behind it.
		p.sched.push(it)
		i = p.sched.heldIdx
		p.seq++
		p.sched.items[i].due, p.sched.items[i].seq = due, p.seq
		p.sched.items[i].held, p.sched.items[i].reordered = false, true
		p.sched.heldIdx = -1
		heap.Fix(&p.sched, i)
		return
	}
	if hold && p.sched.heldIdx < 0 {
		it.held = true
		it.due = due.Add(impairReorderMaxHold)
	}
	p.sched.push(it)
}

// run is the direction's scheduler goroutine: it sleeps until the earliest
// due time, then releases every packet that is due, in (due, seq) order:
// outbound, by writing them to the link in one batch; inbound, by moving
// them to the ready queue that ReadPackets serves. It exits on Close.
func (p *impairPath) run() {
	defer p.l.wg.Done()
	timer := p.clk.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var batch [][]byte // outbound only: the packets to write, outside the lock
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		now := p.clk.Now()
		batch = batch[:0]
		released := false
		for {
			due, ok := p.sched.top()
			if !ok || due.After(now) {
				break
			}
			it := p.sched.pop()
			if it.due.After(it.arrived) {
				p.stats.delayed.Add(1)
			}
			if it.reordered {
				p.stats.reordered.Add(1)
			}
			if p.out {
				batch = append(batch, it.buf)
			} else {
				p.ready = append(p.ready, it.buf)
				released = true
			}
		}
		if released {
			p.readable.Broadcast()
		}
		next, pending := p.sched.top()
		p.mu.Unlock()

		if len(batch) > 0 {
			p.writeReleased(batch)
			clear(batch)
			continue // time has passed while writing; look again
		}
		if pending {
			timer.Reset(next.Sub(now))
		}
		select {
		case <-p.wake:
		case <-timer.C():
		case <-p.l.done:
		}
		timer.Stop()
	}
}

// writeReleased writes released outbound packets to the link and recycles
// their buffers. A write error cannot reach the stack, whose WritePackets
// returned long ago, so the packets from the one refused on are counted and
// dropped. After Close they are simply dropped, as everything held is.
func (p *impairPath) writeReleased(batch [][]byte) {
	n, err := p.l.link.WritePackets(batch)
	p.stats.delivered.Add(uint64(n))
	if err != nil && !errors.Is(err, net.ErrClosed) {
		p.stats.linkErrors.Add(uint64(len(batch) - n))
	}
	p.mu.Lock()
	for _, b := range batch {
		p.putBuf(b)
	}
	p.mu.Unlock()
}

// wakeIfEarlier tells the scheduler to look again when the earliest due
// time moved ahead of before (or the heap was empty). Callers hold p.mu.
func (p *impairPath) wakeIfEarlier(before time.Time, hadAny bool) {
	after, ok := p.sched.top()
	if ok && (!hadAny || after.Before(before)) {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}
