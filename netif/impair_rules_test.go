package netif

import (
	"net"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"tunstack/wire"
)

// ruleISN is the sequence number of the test connection's SYN; data
// segment k (from 1) then covers relative sequence 1+100(k-1) to 1+100k.
const ruleISN = 1000

// ruleSegment builds a TCP segment of family f: the SYN when k is 0, else
// data segment k with 100 bytes of payload.
func ruleSegment(f gsoFamily, k int) []byte {
	s := segment{fam: f, seq: ruleISN, flags: wire.FlagSYN, window: 65535}
	if k > 0 {
		s.seq, s.flags, s.payload = ruleISN+1+uint32(100*(k-1)), wire.FlagACK, make([]byte, 100)
	}
	return s.build()
}

// segmentNumber is the inverse of ruleSegment: 0 for the SYN, k for data
// segment k.
func segmentNumber(pkt []byte) int {
	f := gsoV4
	if pkt[0]>>4 == 6 {
		f = gsoV6
	}
	tcp, _, ok := f.parse(pkt)
	if !ok {
		return -1
	}
	if tcp.Flags()&wire.FlagSYN != 0 {
		return 0
	}
	return int(tcp.Seq()-ruleISN-1)/100 + 1
}

// segmentLink records the segments written to it, by number.
type segmentLink struct {
	mu      sync.Mutex
	written []int
}

func (s *segmentLink) WritePackets(pkts [][]byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pkts {
		s.written = append(s.written, segmentNumber(p))
	}
	return len(pkts), nil
}

func (s *segmentLink) ReadPackets([][]byte, []int) (int, error) { return 0, net.ErrClosed }
func (s *segmentLink) MTU() int                                 { return 1500 }
func (s *segmentLink) Close() error                             { return nil }

func (s *segmentLink) got() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.written)
}

func ruleLinkFor(t *testing.T, l Link, spec string, rules ...SegmentRule) *ImpairedLink {
	t.Helper()
	s, err := ParseImpairSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	il, err := NewImpairedLink(l, s, WithSegmentRules(rules...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { il.Close() })
	return il
}

// writeSegments writes the given segments of family f through l, one batch
// each.
func writeSegments(t *testing.T, f gsoFamily, l Link, ks ...int) {
	t.Helper()
	for _, k := range ks {
		if n, err := l.WritePackets([][]byte{ruleSegment(f, k)}); n != 1 || err != nil {
			t.Fatalf("WritePackets(segment %d) = %d, %v", k, n, err)
		}
	}
}

func TestSegmentRuleDropsTheNthNewDataSegmentButNotItsRetransmission(t *testing.T) {
	forFamilies(t, func(t *testing.T, f gsoFamily) {
		link := &segmentLink{}
		il := ruleLinkFor(t, link, "", SegmentRule{Out: true, Nth: 3, Action: SegmentDrop})
		writeSegments(t, f, il, 0, 1, 2, 3, 4, 3, 5)
		if got, want := link.got(), []int{0, 1, 2, 4, 3, 5}; !slices.Equal(got, want) {
			t.Errorf("link got segments %v, want %v: only the first copy of 3 lost", got, want)
		}
		evs := il.SegmentEvents()
		if len(evs) != 1 || !evs[0].Out || evs[0].Action != "dropped" || evs[0].Seq != 201 || evs[0].End != 301 {
			t.Errorf("events %+v, want one: out dropped 201:301", evs)
		}
		if st := il.Stats().Out; st.InPackets != 7 || st.DeliveredPackets != 7 {
			t.Errorf("outbound stats %+v: the rules sit under the impairment, which saw 7 packets go", st)
		}
	})
}

func TestSegmentRuleDuplicatesAnInboundSegmentRightBehindIt(t *testing.T) {
	forFamilies(t, func(t *testing.T, f gsoFamily) {
		a, b := NewPipe(1500)
		defer b.Close()
		il := ruleLinkFor(t, a, "", SegmentRule{Out: false, Nth: 2, Action: SegmentDup})
		writeSegments(t, f, b, 0, 1, 2, 3)
		bufs, sizes := make([][]byte, 8), make([]int, 8)
		for i := range bufs {
			bufs[i] = make([]byte, 1500)
		}
		var got []int
		for len(got) < 5 {
			n, err := il.ReadPackets(bufs, sizes)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				got = append(got, segmentNumber(bufs[i][:sizes[i]]))
			}
		}
		// The copy is returned alone by the next read, right behind its
		// original's batch.
		if want := []int{0, 1, 2, 3, 2}; !slices.Equal(got, want) {
			t.Errorf("read segments %v, want %v", got, want)
		}
		evs := il.SegmentEvents()
		if len(evs) != 1 || evs[0].Out || evs[0].Action != "duplicated" || evs[0].Seq != 101 {
			t.Errorf("events %+v, want one: in duplicated 101:201", evs)
		}
	})
}

func TestSegmentRuleHoldsASegmentBehindLaterOnesOrUntilTheTimeout(t *testing.T) {
	forFamilies(t, func(t *testing.T, f gsoFamily) {
		synctest.Test(t, func(t *testing.T) {
			link := &segmentLink{}
			il := ruleLinkFor(t, link, "",
				SegmentRule{Out: true, Nth: 2, Action: SegmentHold, After: 2},
				SegmentRule{Out: true, Nth: 6, Action: SegmentHold, After: 3})
			start := time.Now()
			writeSegments(t, f, il, 0, 1, 2, 3, 4, 5, 6)
			if got, want := link.got(), []int{0, 1, 3, 4, 2, 5}; !slices.Equal(got, want) {
				t.Errorf("link got %v, want %v: 2 behind two later ones, 6 still held", got, want)
			}
			time.Sleep(segmentHoldTimeout)
			synctest.Wait()
			if got, want := link.got(), []int{0, 1, 3, 4, 2, 5, 6}; !slices.Equal(got, want) {
				t.Errorf("after the hold timeout the link got %v, want %v", got, want)
			}
			var actions []string
			for _, e := range il.SegmentEvents() {
				actions = append(actions, e.Action)
			}
			if want := []string{"held back", "released", "held back", "released"}; !slices.Equal(actions, want) {
				t.Errorf("actions %v, want %v", actions, want)
			}
			if evs := il.SegmentEvents(); len(evs) == 4 && evs[3].At.Sub(start) != segmentHoldTimeout {
				t.Errorf("segment 6 released %v after it was held, want %v", evs[3].At.Sub(start), segmentHoldTimeout)
			}
		})
	})
}

func TestSegmentRulesSeeTheOutboundSegmentsTheImpairmentLetThrough(t *testing.T) {
	forFamilies(t, func(t *testing.T, f gsoFamily) {
		link := &segmentLink{}
		il := ruleLinkFor(t, link, "loss=100%,dir=out", SegmentRule{Out: true, Nth: 1, Action: SegmentDrop})
		writeSegments(t, f, il, 0, 1, 2)
		if evs := il.SegmentEvents(); len(evs) != 0 {
			t.Errorf("events %+v, want none: the spec's loss comes first outbound", evs)
		}
	})
}

func TestSegmentRulesAreChecked(t *testing.T) {
	for _, r := range []SegmentRule{
		{Out: true, Nth: 0, Action: SegmentDrop},
		{Out: false, Nth: 1, Action: SegmentHold, After: 1},
		{Out: true, Nth: 1, Action: SegmentHold + 1},
	} {
		if _, err := NewImpairedLink(&segmentLink{}, ImpairSpec{}, WithSegmentRules(r)); err == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
	il, err := NewImpairedLink(&segmentLink{}, ImpairSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if il.SegmentEvents() != nil {
		t.Error("a link without rules reports segment events")
	}
}
