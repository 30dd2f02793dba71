package lab

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"tunstack/netif"
	"tunstack/wire"
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

// Targeted impairment. Random loss (netif.ImpairedLink) shows how a stack
// copes on average; the congestion-control labs need one exact event
// instead: "lose the 30th segment of new data the server sends", so that
// the timeline has one drop, three duplicate ACKs and one retransmission,
// the same on every run and every stack. A ruleLink does that on the lab's
// wire, between the impairment and the clients' TUN.

// wireActionKind is what a rule does to its segment.
type wireActionKind int

const (
	dropSegment wireActionKind = iota // never delivered
	dupSegment                        // delivered twice, back to back
	holdSegment                       // delivered after the next few segments of its direction: reordered
)

func (k wireActionKind) String() string {
	switch k {
	case dropSegment:
		return "dropped"
	case dupSegment:
		return "duplicated"
	}
	return "held back"
}

// wireRule acts on the Nth segment carrying new data in one direction: a
// segment whose payload ends beyond everything its sender sent before, so
// that a retransmission is never the target.
type wireRule struct {
	FromServer bool
	Nth        int // 1-based
	Action     wireActionKind
	After      int // holdSegment: released right behind this many later data segments
}

func (w wireRule) String() string {
	dir := "client"
	if w.FromServer {
		dir = "server"
	}
	s := fmt.Sprintf("%s data segment #%d %s", dir, w.Nth, w.Action)
	if w.Action == holdSegment {
		s += fmt.Sprintf(" behind %d later ones", w.After)
	}
	return s
}

// WireAction is one thing the lab wire did, for the timeline. Seq and End
// are relative to the sender's ISN, as in Packet.
type WireAction struct {
	At         time.Duration
	FromServer bool
	Action     string // "dropped", "duplicated", "held back", "released"
	Seq, End   uint32
}

func (a WireAction) String() string {
	dir := "client -> server"
	if a.FromServer {
		dir = "server -> client"
	}
	return fmt.Sprintf("%s data seq %d:%d (%s)", a.Action, a.Seq, a.End, dir)
}

// holdTimeout releases a held segment whose direction went quiet before
// enough later segments passed it: reordered, never lost.
const holdTimeout = 50 * time.Millisecond

// ruleLink applies wireRules to the TCP segments crossing it. Writes go
// from the server toward the clients, reads from the clients toward the
// server.
type ruleLink struct {
	inner netif.Link
	rules []wireRule

	mu      sync.Mutex // guards everything below and serialises writes to inner
	flows   [2]ruleFlow
	held    *heldSegment
	pending []byte // a read-side copy, returned by the next ReadPackets
	log     []wireLogEntry
}

// ruleFlow numbers one direction's new-data segments.
type ruleFlow struct {
	isn    uint32
	hasISN bool
	maxEnd uint32 // relative: the highest sequence sent past a payload
	n      int    // new-data segments seen
}

type heldSegment struct {
	pkt      []byte
	left     int // later data segments still to pass it
	seq, end uint32
	timer    *time.Timer
}

type wireLogEntry struct {
	at time.Time
	a  WireAction
}

func newRuleLink(inner netif.Link, rules []wireRule) *ruleLink {
	return &ruleLink{inner: inner, rules: rules}
}

// classify finds the rule for one packet and advances its direction's
// count. Callers hold mu.
func (l *ruleLink) classify(pkt []byte, fromServer bool) (r *wireRule, seq, end uint32, data bool) {
	ip := wire.IPv4(pkt)
	if ip.Valid() != nil || ip.Protocol() != 6 || ip.IsFragment() {
		return nil, 0, 0, false
	}
	t := wire.TCP(ip.Payload())
	if t.Valid() != nil {
		return nil, 0, 0, false
	}
	d := 0
	if fromServer {
		d = 1
	}
	f := &l.flows[d]
	if t.Flags()&wire.FlagSYN != 0 {
		f.isn, f.hasISN, f.maxEnd = t.Seq(), true, 1
		return nil, 0, 0, false
	}
	n := len(t.Payload())
	if n == 0 || !f.hasISN {
		return nil, 0, 0, false
	}
	seq = t.Seq() - f.isn
	end = seq + uint32(n)
	if int32(end-f.maxEnd) <= 0 {
		return nil, seq, end, true // a retransmission: never a target
	}
	f.maxEnd = end
	f.n++
	for i := range l.rules {
		if l.rules[i].FromServer == fromServer && l.rules[i].Nth == f.n {
			return &l.rules[i], seq, end, true
		}
	}
	return nil, seq, end, true
}

func (l *ruleLink) record(fromServer bool, action string, seq, end uint32) {
	l.log = append(l.log, wireLogEntry{time.Now(), WireAction{FromServer: fromServer, Action: action, Seq: seq, End: end}})
}

// WritePackets implements netif.Link: the server's segments.
func (l *ruleLink) WritePackets(pkts [][]byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([][]byte, 0, len(pkts)+2)
	for _, pkt := range pkts {
		r, seq, end, data := l.classify(pkt, true)
		switch {
		case r == nil:
			out = append(out, pkt)
			if data && l.held != nil {
				if l.held.left--; l.held.left <= 0 {
					out = append(out, l.releaseLocked())
				}
			}
		case r.Action == dropSegment:
			l.record(true, r.Action.String(), seq, end)
		case r.Action == dupSegment:
			l.record(true, r.Action.String(), seq, end)
			out = append(out, pkt, pkt)
		case r.Action == holdSegment:
			if l.held != nil { // one at a time: the older one goes first
				out = append(out, l.releaseLocked())
			}
			l.record(true, r.Action.String(), seq, end)
			h := &heldSegment{pkt: append([]byte(nil), pkt...), left: r.After, seq: seq, end: end}
			h.timer = time.AfterFunc(holdTimeout, func() { l.releaseHeld(h) })
			l.held = h
		}
	}
	if len(out) == 0 {
		return len(pkts), nil
	}
	if _, err := l.inner.WritePackets(out); err != nil {
		return 0, err
	}
	return len(pkts), nil
}

// releaseLocked takes the held segment out and logs its release. Callers
// hold mu and write the returned packet.
func (l *ruleLink) releaseLocked() []byte {
	h := l.held
	l.held = nil
	h.timer.Stop()
	l.record(true, "released", h.seq, h.end)
	return h.pkt
}

// releaseHeld is the hold timeout: it sends h if it is still held.
func (l *ruleLink) releaseHeld(h *heldSegment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held != h {
		return
	}
	l.inner.WritePackets([][]byte{l.releaseLocked()})
}

// ReadPackets implements netif.Link: the clients' segments. A copy made by
// a dup rule is returned alone by the next call, right behind its
// original. Holding is for the server's direction only.
func (l *ruleLink) ReadPackets(bufs [][]byte, sizes []int) (int, error) {
	l.mu.Lock()
	if l.pending != nil && len(bufs) > 0 && len(sizes) > 0 {
		sizes[0] = copy(bufs[0], l.pending)
		l.pending = nil
		l.mu.Unlock()
		return 1, nil
	}
	l.mu.Unlock()
	for {
		n, err := l.inner.ReadPackets(bufs, sizes)
		l.mu.Lock()
		kept := 0
		for i := range n {
			pkt := bufs[i][:sizes[i]]
			r, seq, end, _ := l.classify(pkt, false)
			if r != nil && r.Action == dropSegment {
				l.record(false, r.Action.String(), seq, end)
				continue
			}
			if r != nil && r.Action == dupSegment && l.pending == nil {
				l.record(false, r.Action.String(), seq, end)
				l.pending = append([]byte(nil), pkt...)
			}
			if kept != i {
				sizes[kept] = copy(bufs[kept], pkt)
			}
			kept++
		}
		l.mu.Unlock()
		if kept > 0 || err != nil {
			return kept, err
		}
	}
}

// MTU implements netif.Link.
func (l *ruleLink) MTU() int { return l.inner.MTU() }

// Close implements netif.Link.
func (l *ruleLink) Close() error {
	l.mu.Lock()
	if l.held != nil {
		l.held.timer.Stop()
		l.held = nil
	}
	l.mu.Unlock()
	return l.inner.Close()
}

// actions returns what the rules did, with times relative to start.
func (l *ruleLink) actions(start time.Time) []WireAction {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]WireAction, len(l.log))
	for i, e := range l.log {
		out[i] = e.a
		out[i].At = e.at.Sub(start)
	}
	return out
}
