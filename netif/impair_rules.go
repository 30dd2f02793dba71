package netif

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"tunstack/wire"
)

// Targeted impairment. The random mechanisms of an ImpairSpec show how a
// stack copes on average; an experiment about one mechanism needs one exact
// event instead: "lose the 30th segment of new data the stack sends", so
// that a timeline has one drop, three duplicate ACKs and one
// retransmission, the same on every run and on every stack. SegmentRules
// say such events; WithSegmentRules puts them on an ImpairedLink, which
// records what they did (SegmentEvents).

// SegmentAction is what a SegmentRule does to its segment.
type SegmentAction uint8

const (
	SegmentDrop SegmentAction = iota // never delivered
	SegmentDup                       // delivered twice, back to back
	SegmentHold                      // outbound only: delivered after the next few data segments of its direction, reordered
)

// String returns the action as a SegmentEvent names it: dropped,
// duplicated or held back.
func (a SegmentAction) String() string {
	switch a {
	case SegmentDrop:
		return "dropped"
	case SegmentDup:
		return "duplicated"
	}
	return "held back"
}

// SegmentReleased is the SegmentEvent action of a held segment let go.
const SegmentReleased = "released"

// SegmentRule acts on the Nth TCP segment carrying new data in one
// direction: a segment whose payload ends beyond everything its sender sent
// before, so that a retransmission is never the target. Segments are
// counted from the sender's SYN, one connection at a time.
type SegmentRule struct {
	Out    bool // the stack's segments (written to the link); false: the link's (read from it)
	Nth    int  // 1-based
	Action SegmentAction
	After  int // SegmentHold: released right behind this many later data segments
}

func (r SegmentRule) String() string {
	dir := "inbound"
	if r.Out {
		dir = "outbound"
	}
	s := fmt.Sprintf("%s data segment #%d %s", dir, r.Nth, r.Action)
	if r.Action == SegmentHold {
		s += fmt.Sprintf(" behind %d later ones", r.After)
	}
	return s
}

// SegmentEvent is one thing the rules did. Seq and End are relative to the
// sender's ISN.
type SegmentEvent struct {
	At       time.Time
	Out      bool   // a segment of the stack's; false: one read from the link
	Action   string // a SegmentAction's String, or SegmentReleased
	Seq, End uint32
}

// ImpairOption adds to an ImpairedLink what an ImpairSpec does not say.
type ImpairOption func(*impairOptions)

type impairOptions struct {
	rules []SegmentRule
}

// WithSegmentRules makes the ImpairedLink apply rules where it meets the
// link it wraps: to the stack's segments after the spec's impairment, to
// the link's before it, so that the rules count segments as the far side
// sends or receives them. Holding is for outbound segments only.
func WithSegmentRules(rules ...SegmentRule) ImpairOption {
	return func(o *impairOptions) { o.rules = append(o.rules, rules...) }
}

func checkSegmentRules(rules []SegmentRule) error {
	for _, r := range rules {
		switch {
		case r.Nth < 1:
			return fmt.Errorf("netif: segment rule %v: segments are counted from 1", r)
		case r.Action > SegmentHold:
			return fmt.Errorf("netif: segment rule %v: unknown action %d", r, uint8(r.Action))
		case r.Action == SegmentHold && !r.Out:
			return errors.New("netif: segment rule " + r.String() + ": only outbound segments can be held")
		}
	}
	return nil
}

// segmentHoldTimeout releases a held segment whose direction went quiet
// before enough later segments passed it: reordered, never lost.
const segmentHoldTimeout = 50 * time.Millisecond

// ruleLink applies SegmentRules to the TCP segments crossing it and logs
// what they did. It sits under an ImpairedLink, on the link's side.
type ruleLink struct {
	inner Link
	rules []SegmentRule
	clk   Clock

	mu      sync.Mutex // guards everything below and serialises writes to inner
	flows   [2]ruleFlow
	held    *heldSegment
	pending []byte // a read-side copy, returned by the next ReadPackets
	log     []SegmentEvent
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
	timer    ClockTimer
	cancel   chan struct{} // closed when released or dropped at Close
}

func newRuleLink(inner Link, rules []SegmentRule, clk Clock) *ruleLink {
	return &ruleLink{inner: inner, rules: rules, clk: clk}
}

// classify finds the rule for one packet and advances its direction's
// count. Callers hold mu.
func (l *ruleLink) classify(pkt []byte, out bool) (r *SegmentRule, seq, end uint32, data bool) {
	t, ok := tcpOf(pkt)
	if !ok || t.Valid() != nil {
		return nil, 0, 0, false
	}
	d := 0
	if out {
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
		if l.rules[i].Out == out && l.rules[i].Nth == f.n {
			return &l.rules[i], seq, end, true
		}
	}
	return nil, seq, end, true
}

// tcpOf returns the TCP segment pkt carries, of either family: an IPv4
// packet that is not a fragment, or an IPv6 packet whose extension headers
// (RFC 8200 §4) lead to TCP. Fragments are not reassembled anywhere, so
// they are never counted as segments.
func tcpOf(pkt []byte) (wire.TCP, bool) {
	if len(pkt) == 0 {
		return nil, false
	}
	switch pkt[0] >> 4 {
	case 4:
		ip := wire.IPv4(pkt)
		if ip.Valid() != nil || ip.Protocol() != wire.ProtoTCP || ip.IsFragment() {
			return nil, false
		}
		return wire.TCP(ip.Payload()), true
	case 6:
		ip := wire.IPv6(pkt)
		c, err := ip.WalkExtensionHeaders()
		if err != nil || c.Action != wire.IPv6Deliver || c.Proto != wire.ProtoTCP {
			return nil, false
		}
		return wire.TCP(c.Upper(ip).Data), true
	}
	return nil, false
}

// record logs one action. Callers hold mu.
func (l *ruleLink) record(out bool, action string, seq, end uint32) {
	l.log = append(l.log, SegmentEvent{At: l.clk.Now(), Out: out, Action: action, Seq: seq, End: end})
}

// WritePackets implements Link: the stack's segments.
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
		case r.Action == SegmentDrop:
			l.record(true, r.Action.String(), seq, end)
		case r.Action == SegmentDup:
			l.record(true, r.Action.String(), seq, end)
			out = append(out, pkt, pkt)
		case r.Action == SegmentHold:
			if l.held != nil { // one at a time: the older one goes first
				out = append(out, l.releaseLocked())
			}
			l.record(true, r.Action.String(), seq, end)
			h := &heldSegment{pkt: append([]byte(nil), pkt...), left: r.After, seq: seq, end: end,
				timer: l.clk.NewTimer(segmentHoldTimeout), cancel: make(chan struct{})}
			go l.holdTimeout(h)
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

// holdTimeout sends h when its timer fires, if it is still held then.
func (l *ruleLink) holdTimeout(h *heldSegment) {
	select {
	case <-h.timer.C():
	case <-h.cancel:
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held != h {
		return
	}
	l.inner.WritePackets([][]byte{l.releaseLocked()})
}

// dropHeldLocked forgets the held segment and stops its timer. Callers
// hold mu.
func (l *ruleLink) dropHeldLocked() *heldSegment {
	h := l.held
	l.held = nil
	h.timer.Stop()
	close(h.cancel)
	return h
}

// releaseLocked takes the held segment out and logs its release. Callers
// hold mu and write the returned packet.
func (l *ruleLink) releaseLocked() []byte {
	h := l.dropHeldLocked()
	l.record(true, SegmentReleased, h.seq, h.end)
	return h.pkt
}

// ReadPackets implements Link: the link's segments. A copy made by a dup
// rule is returned alone by the next call, right behind its original.
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
			if r != nil && r.Action == SegmentDrop {
				l.record(false, r.Action.String(), seq, end)
				continue
			}
			if r != nil && r.Action == SegmentDup && l.pending == nil {
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

// MTU implements Link.
func (l *ruleLink) MTU() int { return l.inner.MTU() }

// Close implements Link; a segment still held is dropped.
func (l *ruleLink) Close() error {
	l.mu.Lock()
	if l.held != nil {
		l.dropHeldLocked()
	}
	l.mu.Unlock()
	return l.inner.Close()
}

// events returns a copy of the log.
func (l *ruleLink) events() []SegmentEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]SegmentEvent(nil), l.log...)
}

// SegmentEvents returns what the link's segment rules did, in order; none
// without WithSegmentRules.
func (il *ImpairedLink) SegmentEvents() []SegmentEvent {
	if il.rules == nil {
		return nil
	}
	return il.rules.events()
}
