package lab

import (
	"fmt"
	"io"
	"strings"
	"time"

	"tunstack/netif"
	"tunstack/policy"
)

// sack: the lab wire loses four segments of one window (new-data segments
// 30, 32, 34 and 36), and the same transfer runs three times on fresh
// paths: with SACK, where the sender learns every hole from the client's
// SACK blocks and repairs them all in about one round trip; with NewReno
// (no SACK), which learns of one hole per round trip from partial ACKs;
// and with classic Reno, which leaves fast recovery at the first partial
// ACK and must find each later hole again. The window controller is Reno's
// on every stack, so the three differ only in loss recovery.
var sackExperiment = &experiment{
	name:  "sack",
	title: "four losses in one window: SACK repairs them in about one round trip, NewReno one per round trip, Reno worse",
	claim: "fast retransmit alone cannot tell which segments are missing; SACK (RFC 2018) reports the pieces received, " +
		"so the sender knows which did not arrive",
	duration: func(Params) time.Duration { return 5 * time.Second },
	options: func(o *Options) {
		ccOptions(o, sackVariants[0].profile)
		*o = sackVariants[0].options(*o)
		for _, n := range sackDropNth {
			o.rules = append(o.rules, netif.SegmentRule{Out: true, Nth: n, Action: netif.SegmentDrop})
		}
	},
	run: func(r *run) error {
		return r.ccTransferVariants(sackVariants, transferSpec{bytes: sackBytes})
	},
	verdict: sackVerdict,
	print:   printSack,
}

// sackDropNth are the lost segments: every other one, so that each hole
// has SACKed data on both sides.
var sackDropNth = []int{30, 32, 34, 36}

const sackBytes = 1 << 20

// sackVariants are the three loss recoveries compared.
var sackVariants = []ccVariant{
	{
		name:    "SACK",
		profile: func(p *policy.Profile) { p.SACK, p.Congestion = true, "newreno" },
		sysctls: [][2]string{{"net/ipv4/tcp_sack", "1"}},
	},
	{
		name:    "NewReno (no SACK)",
		profile: func(p *policy.Profile) { p.SACK, p.Congestion = false, "newreno" },
		sysctls: [][2]string{{"net/ipv4/tcp_sack", "0"}},
	},
	{
		name:    "Reno (no SACK)",
		profile: func(p *policy.Profile) { p.SACK, p.Congestion = false, "reno" },
		unsupported: map[string]string{
			"linux":  "Linux has no classic Reno recovery: without SACK it always handles partial ACKs as NewReno (RFC 6582) does",
			"gvisor": "gVisor's only recovery without SACK is NewReno's (reno_recovery.go)",
		},
	},
}

// SackRecovery is what the sack lab found in one transfer.
type SackRecovery struct {
	Holes         []WireAction
	FirstDrop     time.Duration
	FirstRetrans  time.Duration // first retransmission of a hole; 0 if none
	Repaired      time.Duration // the cumulative ACK passed the last hole; 0 if never
	Retransmits   int           // retransmitted segments in the capture
	HoleRetrans   int           // of which of a hole
	RTT           time.Duration // the handshake's round trip
	RetransRounds int           // bursts of retransmissions more than half an RTT apart
}

// AnalyzeSack reads the recovery of the dropped holes out of a transfer.
func (tr *BulkTransfer) AnalyzeSack() *SackRecovery {
	s := &SackRecovery{RTT: tr.ccRTT()}
	for _, a := range tr.Actions {
		if a.FromServer && a.Action == netif.SegmentDrop.String() {
			s.Holes = append(s.Holes, a)
		}
	}
	if len(s.Holes) == 0 {
		return s
	}
	s.FirstDrop = s.Holes[0].At
	isHole := map[uint32]bool{}
	for _, h := range s.Holes {
		isHole[h.Seq] = true
	}
	var last time.Duration
	for _, i := range tr.Retransmissions() {
		p := &tr.Capture.Packets[i]
		s.Retransmits++
		if !isHole[p.Seq] {
			continue
		}
		s.HoleRetrans++
		if s.FirstRetrans == 0 {
			s.FirstRetrans = p.At
		}
		if s.RetransRounds == 0 || p.At-last > s.RTT/2 {
			s.RetransRounds++
		}
		last = p.At
	}
	if i := tr.AckCovering(0, s.Holes[len(s.Holes)-1].End); i >= 0 {
		s.Repaired = tr.Capture.Packets[i].At
	}
	return s
}

// RecoveryRTTs is the time from the first retransmission to the repair
// of the last hole, in round trips.
func (s *SackRecovery) RecoveryRTTs() float64 {
	if s.RTT <= 0 || s.Repaired == 0 || s.FirstRetrans == 0 {
		return 0
	}
	return float64(s.Repaired-s.FirstRetrans) / float64(s.RTT)
}

func sackVerdict(res *Result) []string {
	var v []string
	d := ccData(res)
	results := map[string]*SackRecovery{}
	for _, tr := range d.Transfers {
		if tr.Unsupported != "" {
			v = append(v, fmt.Sprintf("%s: not on %s: %s", tr.Variant, res.Stack, tr.Unsupported))
			continue
		}
		s := tr.AnalyzeSack()
		results[tr.Variant] = s
		if len(s.Holes) == 0 || s.Repaired == 0 {
			v = append(v, fmt.Sprintf("%s: the holes were not all repaired (%d dropped)", tr.Variant, len(s.Holes)))
			continue
		}
		timeouts, _ := tr.count(res.Stack, ccTimeouts)
		v = append(v, fmt.Sprintf("%s: %d holes; first retransmission %s after the first loss; all repaired %s later = %.1f RTT (RTT %s), in %d burst(s) of retransmissions; %d segments retransmitted (%d of them holes); %d timeout(s); data %s",
			tr.Variant, len(s.Holes), ccMs(s.FirstRetrans-s.FirstDrop), ccMs(s.Repaired-s.FirstRetrans), s.RecoveryRTTs(), ccMs(s.RTT),
			s.RetransRounds, s.Retransmits, s.HoleRetrans, timeouts, intactText(tr.Intact)))
	}
	if tr := d.Transfers; len(tr) > 0 && tr[0].Unsupported == "" {
		if n := len(tr[0].DSACKs(true)); n >= 0 {
			sacked := 0
			for i, p := range tr[0].Capture.Packets {
				if p.ToServer && len(tr[0].SACK[i]) > 0 {
					sacked++
				}
			}
			v = append(v, fmt.Sprintf("with SACK the client's ACKs carried SACK blocks %d times", sacked))
		}
	}
	s, n := results["SACK"], results["NewReno (no SACK)"]
	if s != nil && n != nil && s.Repaired > 0 && n.Repaired > 0 {
		v = append(v, fmt.Sprintf("SACK repaired the window in %.1f RTT, NewReno in %.1f RTT: %s",
			s.RecoveryRTTs(), n.RecoveryRTTs(), sackComparison(s, n)))
	}
	return v
}

func sackComparison(s, n *SackRecovery) string {
	if s.RetransRounds == 1 && n.RetransRounds >= len(n.Holes) {
		return "SACK sent every hole in one burst, NewReno one hole per round trip, as the claim says"
	}
	return fmt.Sprintf("SACK in %d burst(s), NewReno in %d", s.RetransRounds, n.RetransRounds)
}

func intactText(ok bool) string {
	if ok {
		return "intact"
	}
	return "NOT intact"
}

func printSack(res *Result, w io.Writer) {
	printCCHeader(w, res)
	d := ccData(res)
	for _, tr := range d.Transfers {
		fmt.Fprintf(w, "\n-- %s", tr.Variant)
		if tr.Unsupported != "" {
			fmt.Fprintf(w, ": not on %s: %s\n", res.Stack, tr.Unsupported)
			continue
		}
		fmt.Fprintf(w, " (%s)\n", tr.Setting)
		s := tr.AnalyzeSack()
		if len(s.Holes) > 0 {
			to := s.Repaired + time.Millisecond
			if s.Repaired == 0 {
				to = tr.Done
			}
			fmt.Fprintf(w, "timeline from the first loss until every hole is repaired (seconds since start; runs of ordinary segments folded):\n")
			printCCLines(w, tr.Timeline(s.FirstDrop-res.Delay/4, to))
		}
		printTransferSummary(w, res.Stack, tr)
	}
	fmt.Fprintf(w, "\nverdict:\n")
	for _, v := range res.Verdict {
		fmt.Fprintf(w, "  - %s\n", strings.TrimSpace(v))
	}
}
