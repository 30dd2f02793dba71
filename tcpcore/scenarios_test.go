package tcpcore

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"tunstack/policy"
)

// The number of scenarios TestSimulationScenarios runs, and the first
// seed. `make test` runs the default thousand; a long run asks for more
// without changing what each seed means, e.g.
//
//	nice -n 19 go test -run '^TestSimulationScenarios$' ./tcpcore -sim.seeds=100000 -sim.first=1000
var (
	simSeeds = flag.Int("sim.seeds", 1000, "number of seeded scenarios TestSimulationScenarios runs (100 with -short unless set)")
	simFirst = flag.Uint64("sim.first", 0, "first seed TestSimulationScenarios runs")
	// simChunks runs every simulation with the engines' chunks
	// (Config.SegmentOffload), cut back into segments on the virtual link
	// as a TUN cuts them; a seed then gives the same run as without.
	simChunks   = flag.Bool("sim.chunks", false, "run the simulations with Config.SegmentOffload, chunks cut into segments on the link")
	simZeroCopy = flag.Bool("sim.zerocopy", false, "with -sim.chunks, make the chunks with Config.ZeroCopyChunks: their payload read from the send ring on the link")
)

// TestSimulationScenarios runs a thousand seeded transfers between two
// engines over a link that loses (up to 10%), reorders, duplicates, holds
// packets up long enough for spurious timeouts (and their undo), and
// bottlenecks, with the profiles, congestion controllers and option sets
// varied by seed. Every transfer must arrive SHA-256-exact (transfer
// checks it), finish within its virtual-time budget (no scenario may get
// stuck) and never send one byte more than maxResendsPerByte times again
// (no loop in recovery). The same seed always gives the same run.
func TestSimulationScenarios(t *testing.T) {
	n := *simSeeds
	if testing.Short() && !flagSet("sim.seeds") {
		n = 100
	}
	first := *simFirst
	const workers = 4
	for w := 0; w < workers; w++ {
		t.Run(fmt.Sprintf("worker%d", w), func(t *testing.T) {
			t.Parallel()
			var tot scenarioTotals
			for seed := first + uint64(w); seed < first+uint64(n); seed += workers {
				tot.add(runScenario(t, seed))
			}
			t.Logf("seeds %d to %d, %d scenarios: %d bytes, %d packets lost, %d queue drops, %d fast and %d timeout retransmissions, %d spurious reductions undone, %v virtual time",
				first, first+uint64(n)-1, tot.runs, tot.bytes, tot.lost, tot.queueDrops, tot.fast, tot.rto, tot.undo, tot.virtual)
		})
	}
}

// TestSimulationLoopSeeds replays the scenarios in which a sender of the
// rfc profile (RFC 6675 loss detection, no RACK) sent the same lost
// segment again on every ACK of its fast recovery, once a bottleneck
// queue held the retransmission behind segments sent before it: the SACKs
// of those segments marked the segment lost again, and its retransmission
// with it. resendLimit stops each at its thirteenth copy.
func TestSimulationLoopSeeds(t *testing.T) {
	for _, seed := range []uint64{9, 59, 154, 448} {
		runScenario(t, seed)
	}
}

// TestSimulationLateSYNSeed replays a scenario in which a copy of the
// client's SYN, held up on the link, reaches the server's listener after
// the connection has closed there and opens a second one on the same
// ports, whose SYN-ACKs go unanswered (the client is in TIME-WAIT) until
// it gives up: the capture's count of retransmissions must tell the two
// connections apart.
func TestSimulationLateSYNSeed(t *testing.T) {
	runScenario(t, 26880)
}

// TestSimulationLongHandshakeSeed replays a scenario at 9.4% loss whose
// handshake completes only after more than a minute of SYN and SYN-ACK
// retransmissions, within the SYN's own retransmission schedule.
func TestSimulationLongHandshakeSeed(t *testing.T) {
	s := runScenario(t, 154917)
	if s.virtual < time.Minute {
		t.Fatalf("the scenario took %v: it no longer needs the long handshake it replays", s.virtual)
	}
}

// flagSet reports whether the command line set the named flag.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// scenario describes one seeded run, for failure messages.
type scenario struct {
	seed               uint64
	profile, cc        string
	sack, ts           bool
	loss, reorder, dup float64
	spike              float64
	delay              time.Duration
	rateMbit           float64
	queue              int
	size               int
}

func newScenario(seed uint64) scenario {
	r := rand.New(rand.NewPCG(seed, 0x5ce7a210))
	sc := scenario{seed: seed, profile: "linux", sack: r.IntN(4) != 0, ts: r.IntN(3) != 0,
		delay: time.Duration(1+r.IntN(40)) * time.Millisecond, size: 16<<10 + r.IntN(240<<10)}
	if r.IntN(4) == 0 {
		sc.profile = "rfc"
	}
	sc.cc = []string{"reno", "newreno", "cubic", "tahoe"}[r.IntN(4)]
	switch r.IntN(4) {
	case 0: // clean
	case 1:
		sc.loss = r.Float64() * 0.10
	case 2:
		sc.loss = r.Float64() * 0.03
		sc.reorder = r.Float64() * 0.05
		sc.dup = r.Float64() * 0.02
	default:
		sc.rateMbit = 1 + r.Float64()*99
		sc.queue = 5 + r.IntN(95)
		sc.loss = r.Float64() * 0.01
	}
	// Drawn last, so that the draws above, and with them what every seed
	// ran before spikes were added, stay as they were.
	if r.IntN(3) == 0 {
		sc.spike = r.Float64() * 0.01
	}
	return sc
}

func (sc scenario) String() string {
	return fmt.Sprintf("seed %d: %s/%s sack=%v ts=%v loss=%.3f reorder=%.3f dup=%.3f spike=%.4f delay=%v rate=%.0fMbit queue=%d size=%d",
		sc.seed, sc.profile, sc.cc, sc.sack, sc.ts, sc.loss, sc.reorder, sc.dup, sc.spike, sc.delay, sc.rateMbit, sc.queue, sc.size)
}

type scenarioTotals struct {
	runs, bytes, lost, queueDrops int
	fast, rto, undo               uint64
	virtual                       time.Duration
}

func (a *scenarioTotals) add(b scenarioTotals) {
	a.runs++
	a.bytes += b.bytes
	a.lost += b.lost
	a.queueDrops += b.queueDrops
	a.fast += b.fast
	a.rto += b.rto
	a.undo += b.undo
	a.virtual += b.virtual
}

func runScenario(t *testing.T, seed uint64) scenarioTotals {
	sc := newScenario(seed)
	prof, _ := policy.ByName(sc.profile)
	prof.Congestion, prof.SACK, prof.Timestamps = sc.cc, sc.sack, sc.ts
	st := scenarioT{t, sc}
	s := newSim(st, prof, sc.delay, sc.loss, seed)
	s.reorder, s.dup, s.spike = sc.reorder, sc.dup, sc.spike
	if sc.rateMbit > 0 {
		s.rateBps, s.queueLimit = sc.rateMbit*1e6/8, sc.queue
	}
	start := s.now
	transfer(st, s, sc.size)
	return scenarioTotals{bytes: sc.size, lost: s.dropped, queueDrops: s.queueDrops,
		fast: s.aFast, rto: s.aRTO, undo: s.aUndo, virtual: s.now.Sub(start)}
}

// scenarioT prefixes failures with the scenario, so a failing seed can be
// replayed from the message alone.
type scenarioT struct {
	testing.TB
	sc scenario
}

func (s scenarioT) Fatalf(format string, args ...any) {
	s.TB.Helper()
	s.TB.Fatalf("%v: "+format, append([]any{s.sc}, args...)...)
}
