package lab

import (
	"fmt"
	"io"
	"strings"
	"time"

	"tunstack/netif"
	"tunstack/policy"
)

// slow-start: the server sends 8 MiB through a bottleneck (30 Mbit/s,
// a 50-packet drop-tail queue, on the server's sending direction) with
// Reno's window on every stack. Counting the segments the server sends in
// each round trip shows the window doubling from the initial window until
// the queue overflows, the halving at the loss, and then congestion
// avoidance's line: one more segment per round trip, to the next loss.
var slowStartExperiment = &experiment{
	name:  "slow-start",
	title: "cwnd growth per round trip through a bottleneck: doubling in slow start, then the congestion-avoidance line",
	claim: "slow start opens the congestion window exponentially, doubling it every RTT, up to ssthresh; " +
		"then congestion avoidance grows it linearly; a loss by timeout sets ssthresh = cwnd/2 and cwnd = 1, " +
		"Reno's fast retransmit halves cwnd",
	duration: func(Params) time.Duration { return 5 * time.Second },
	options: func(o *Options) {
		ccOptions(o, func(p *policy.Profile) { p.Congestion = "reno" })
		if !o.Impair.Enabled() {
			o.Impair = slowStartImpair
		}
	},
	run: func(r *run) error {
		return r.ccTransferVariants([]ccVariant{{name: "Reno"}}, transferSpec{bytes: slowStartBytes})
	},
	verdict: slowStartVerdict,
	print:   printSlowStart,
}

// slowStartImpair is the bottleneck: about 52 segments of bandwidth-delay
// product at the 20 ms RTT, and a queue as deep again.
var slowStartImpair = func() netif.ImpairSpec {
	s, err := netif.ParseImpairSpec("rate=30mbit,queue=50,dir=out")
	if err != nil {
		panic(err)
	}
	return s
}()

const slowStartBytes = 8 << 20

// Round is one round trip of a transfer: the segments the server sent
// from the first segment of the round until the ACK covering that segment
// came back.
type Round struct {
	N        int
	Start    time.Duration
	Segments int // data segments sent, retransmissions included
	Retrans  int
	Cwnd     int // the stack's cwnd at the round's start, segments; -1 if not sampled
}

// Rounds splits the server's data segments into round trips.
func (tr *BulkTransfer) Rounds() []Round {
	var rounds []Round
	var mark uint32
	open := false
	for _, p := range tr.Capture.Packets {
		switch {
		case !p.ToServer && p.Len > 0:
			if !open {
				r := Round{N: len(rounds) + 1, Start: p.At, Cwnd: -1}
				if c, ok := tr.CwndAt(p.At); ok {
					r.Cwnd = c.Cwnd
				}
				rounds = append(rounds, r)
				mark, open = p.Seq+uint32(p.Len), true
			}
			r := &rounds[len(rounds)-1]
			r.Segments++
			if p.Retrans > 0 {
				r.Retrans++
			}
		case p.ToServer && p.ACK && open && int32(p.Ack-mark) >= 0:
			open = false
		}
	}
	return rounds
}

// SlowStartGrowth is the ratio of each round's segments to the previous
// round's, for the rounds before the first retransmission, leaving out
// the last round (cut short by the end of the transfer or the loss).
func SlowStartGrowth(rounds []Round) []float64 {
	var g []float64
	for i := 1; i < len(rounds)-1; i++ {
		if rounds[i].Retrans > 0 || rounds[i+1].Retrans > 0 {
			break
		}
		g = append(g, float64(rounds[i].Segments)/float64(rounds[i-1].Segments))
	}
	return g
}

// AvoidanceSlopes fits a line (segments per round against round number)
// to each stretch of at least minRounds rounds without a retransmission
// after the first loss, and returns the slopes: segments added per RTT.
func AvoidanceSlopes(rounds []Round, minRounds int) []float64 {
	var slopes []float64
	first := firstLossRound(rounds)
	if first < 0 {
		return nil
	}
	start := -1
	flush := func(end int) {
		// Leave out the stretch's first round (the end of recovery) and
		// its last (the round in which the queue overflowed).
		if start >= 0 && end-start-2 >= minRounds {
			slopes = append(slopes, slope(rounds[start+1:end-1]))
		}
		start = -1
	}
	for i := first + 1; i < len(rounds)-1; i++ {
		if rounds[i].Retrans > 0 {
			flush(i)
			continue
		}
		if start < 0 {
			start = i
		}
	}
	flush(len(rounds) - 1)
	return slopes
}

// slope is the least-squares slope of Segments over N.
func slope(rs []Round) float64 {
	n := float64(len(rs))
	var sx, sy, sxx, sxy float64
	for _, r := range rs {
		x, y := float64(r.N), float64(r.Segments)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

func formatFloats(fs []float64, format string) string {
	var s []string
	for _, f := range fs {
		s = append(s, fmt.Sprintf(format, f))
	}
	return list(s)
}

func slowStartVerdict(res *Result) []string {
	d := ccData(res)
	if len(d.Transfers) == 0 {
		return []string{"no transfer ran"}
	}
	tr := d.Transfers[0]
	rounds := tr.Rounds()
	var v []string
	var early []string
	lossRound := firstLossRound(rounds)
	for i, r := range rounds {
		if i == lossRound || i == 8 {
			break
		}
		early = append(early, fmt.Sprint(r.Segments))
	}
	g := SlowStartGrowth(rounds)
	v = append(v, fmt.Sprintf("slow start: segments per round trip %s; each round over the one before: %s", strings.Join(early, ", "), formatFloats(g, "×%.2f")))
	if lossRound >= 0 {
		r := rounds[lossRound]
		line := fmt.Sprintf("first loss: round %d at %s had the first retransmission", r.N, secs(r.Start))
		if tr.Impair != nil {
			line += fmt.Sprintf("; the bottleneck queue dropped %d packets in all (deepest %d)", tr.Impair.Out.QueueDropPackets, tr.Impair.Out.MaxQueuePackets)
		}
		v = append(v, line)
	} else {
		v = append(v, "no loss: the transfer never filled the bottleneck queue")
	}
	if slopes := AvoidanceSlopes(rounds, 5); len(slopes) > 0 {
		v = append(v, fmt.Sprintf("congestion avoidance: between losses the segments per round trip grew by %s per round (%d stretches of 5 rounds or more; Reno adds one segment per RTT)",
			formatFloats(slopes, "%+.2f"), len(slopes)))
	}
	v = append(v, "server counters: "+tr.countText(res.Stack, ccFastRetrans)+", "+tr.countText(res.Stack, ccTimeouts))
	switch {
	case len(g) >= 2 && g[0] > 1.5 && g[1] > 1.5:
		v = append(v, "the claim holds: the window doubled every round trip in slow start")
	default:
		v = append(v, "the first rounds did not double")
	}
	return v
}

func printSlowStart(res *Result, w io.Writer) {
	printCCHeader(w, res)
	for _, tr := range ccData(res).Transfers {
		rounds := tr.Rounds()
		most := 1
		for _, r := range rounds {
			most = max(most, r.Segments)
		}
		fmt.Fprintf(w, "\nround trips (a round: from its first segment until the ACK covering it; # = segments sent, r = of them retransmitted):\n")
		fmt.Fprintf(w, "  round   start  segs  rtx  cwnd\n")
		const width = 60
		for _, r := range rounds {
			cw := "    -"
			if r.Cwnd >= 0 {
				cw = fmt.Sprintf("%5d", r.Cwnd)
			}
			n := (r.Segments*width + most - 1) / most
			rx := min((r.Retrans*width+most-1)/most, n)
			fmt.Fprintf(w, "  %5d %7.3f %5d %4d %s  %s%s\n", r.N, r.Start.Seconds(), r.Segments, r.Retrans, cw,
				strings.Repeat("#", n-rx), strings.Repeat("r", rx))
		}
		fmt.Fprintln(w)
		printTransferSummary(w, res.Stack, tr)
	}
	fmt.Fprintf(w, "\nverdict:\n")
	for _, v := range res.Verdict {
		fmt.Fprintf(w, "  - %s\n", v)
	}
}

// firstLossRound is the index of the first round with a retransmission,
// -1 if none had one.
func firstLossRound(rounds []Round) int {
	for i, r := range rounds {
		if r.Retrans > 0 {
			return i
		}
	}
	return -1
}
