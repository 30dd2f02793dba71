package bench

import (
	"fmt"

	"tunstack/netif"
)

// impairment is the lossy scenario's link impairment (netif.ImpairedLink).
type impairment struct {
	spec netif.ImpairSpec
}

// parseImpairment parses an impairment SPEC (the contract's syntax). A spec
// that impairs nothing is refused: lossy would measure a clean link.
func parseImpairment(spec string) (*impairment, error) {
	s, err := netif.ParseImpairSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("--impair: %w", err)
	}
	if !s.Enabled() {
		return nil, fmt.Errorf("--impair %q impairs nothing; give loss, delay, rate or the like, as in %s", spec, DefaultImpair)
	}
	return &impairment{spec: s}, nil
}

// forRun is the impairment of run number run (from 1): the SPEC's seed
// plus run-1. Every stack's run n sees the same seed, so the stacks meet the
// same random decisions for the same packets, and the median of several
// runs covers as many loss patterns instead of one.
func (im *impairment) forRun(run int) *impairment {
	if im == nil {
		return nil
	}
	s := im.spec
	s.Seed += uint64(run - 1)
	return &impairment{spec: s}
}

// String is the SPEC as netif writes it back.
func (im *impairment) String() string { return im.spec.String() }

// impairedLink is a link with an impairment, and its counters.
type impairedLink interface {
	netif.Link
	// impairCounts returns, per direction (toward the stack under test,
	// from it), the packets lost and the packets dropped by the queue.
	impairCounts() (inLost, inDropped, outLost, outDropped uint64)
}

type netifImpaired struct{ *netif.ImpairedLink }

func (l netifImpaired) impairCounts() (inLost, inDropped, outLost, outDropped uint64) {
	s := l.Stats()
	return s.In.LostPackets, s.In.QueueDropPackets, s.Out.LostPackets, s.Out.QueueDropPackets
}

// wrap puts the impairment on l; closing the result closes l.
func (im *impairment) wrap(l netif.Link) (impairedLink, error) {
	il, err := netif.NewImpairedLink(l, im.spec)
	if err != nil {
		return nil, err
	}
	return netifImpaired{il}, nil
}
