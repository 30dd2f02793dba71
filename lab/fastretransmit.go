package lab

import (
	"fmt"
	"io"
	"time"

	"tunstack/netif"
)

// fast-retransmit: the server sends 1 MiB and the lab wire loses exactly
// one of its segments, the 30th, in the middle of slow start's second
// flight. The client's ACKs for every later segment repeat the number of
// the hole; on the third duplicate the sender retransmits the one missing
// segment, without waiting for its retransmission timer, and the
// cumulative ACK jumps over everything sent meanwhile once the
// retransmission arrives.
var fastRetransmitExperiment = &experiment{
	name:  "fast-retransmit",
	title: "one data segment lost: three duplicate ACKs, the retransmission, recovery, and no timeout",
	claim: "fast retransmit is driven by data, not by time: when the sender gets three duplicate ACKs " +
		"it retransmits at once instead of waiting for the RTO; Reno then halves cwnd (ssthresh = cwnd) and enters fast recovery",
	duration: func(Params) time.Duration { return 3 * time.Second },
	options: func(o *Options) {
		ccOptions(o, nil)
		o.rules = []netif.SegmentRule{{Out: true, Nth: frDropNth, Action: netif.SegmentDrop}}
	},
	run: func(r *run) error {
		return r.ccTransferVariants([]ccVariant{{name: "as configured"}}, transferSpec{bytes: frBytes})
	},
	verdict: fastRetransmitVerdict,
	print:   printFastRetransmit,
}

// frDropNth is the segment lost: in slow start's second flight with an
// initial window of 10, so that plenty of later segments make duplicates.
const frDropNth = 30

// frBytes is the transfer: long enough that the loss is nowhere near its tail.
const frBytes = 1 << 20

// ccDelay is the congestion-control labs' client-to-server delay, which
// is their round-trip time: long against the stacks' processing, so that
// each flight of segments stands apart in the capture.
const ccDelay = 20 * time.Millisecond

// FastRetransmit is what the fast-retransmit lab found in one transfer.
type FastRetransmit struct {
	Dropped       WireAction
	DupAcksBefore int             // duplicate ACKs of the hole before its retransmission
	DupAckTimes   []time.Duration // of those
	HoleAcks      int             // client ACKs stopping at the hole before its retransmission, the first included
	SACKedAbove   int             // segments SACKed above the hole by the last of them
	Retransmit    int             // capture index of the hole's first retransmission, -1 if none
	Retransmits   int             // retransmitted segments in the whole transfer
	OthersRetrans int             // of which not the dropped segment
	RecoveryPoint uint32          // highest sequence sent before the retransmission
	RecoveredAt   time.Duration   // when the cumulative ACK reached it; 0 if never
	// AboveSentAt is when the segment right after the hole was first sent,
	// RetransmitAt when the hole was retransmitted (0 if not).
	AboveSentAt, RetransmitAt time.Duration
}

// RACKDecided says whether RACK (RFC 8985 §6.2) marks the hole lost by the
// time it was retransmitted, with fewer than three duplicates: a segment
// sent after the hole was delivered (SACKed), and the hole was sent more than
// the reordering window before it. That window is at most a quarter of the
// minimum RTT (RFC 8985 §6.2, Linux tcp_rack_reo_wnd), and the minimum RTT
// is at most the RTT RACK measured on the delivered segment (from its
// sending to the retransmission, which its SACK triggered), so a gap of a
// quarter of that RTT is enough.
func (f *FastRetransmit) RACKDecided() bool {
	if f.SACKedAbove < 1 || f.AboveSentAt == 0 || f.RetransmitAt == 0 {
		return false
	}
	gap := f.AboveSentAt - f.Dropped.At
	rtt := f.RetransmitAt - f.AboveSentAt
	return gap > 0 && 4*gap >= rtt
}

// AnalyzeFastRetransmit reads the one-drop story out of a transfer.
func (tr *BulkTransfer) AnalyzeFastRetransmit() (*FastRetransmit, bool) {
	f := &FastRetransmit{Retransmit: -1}
	found := false
	for _, a := range tr.Actions {
		if a.Action == netif.SegmentDrop.String() && a.FromServer {
			f.Dropped, found = a, true
			break
		}
	}
	if !found {
		return nil, false
	}
	dup := tr.DupAckNumber()
	for _, i := range tr.Retransmissions() {
		p := &tr.Capture.Packets[i]
		f.Retransmits++
		if p.Seq == f.Dropped.Seq {
			if f.Retransmit < 0 {
				f.Retransmit = i
			}
		} else {
			f.OthersRetrans++
		}
	}
	end := len(tr.Capture.Packets)
	if f.Retransmit >= 0 {
		end = f.Retransmit
	}
	if f.Retransmit >= 0 {
		f.RetransmitAt = tr.Capture.Packets[f.Retransmit].At
	}
	for i := 0; i < end; i++ {
		p := &tr.Capture.Packets[i]
		if !p.ToServer && p.Len > 0 && p.Seq == f.Dropped.End && f.AboveSentAt == 0 {
			f.AboveSentAt = p.At
		}
		if p.ToServer && p.Len == 0 && p.Ack == f.Dropped.Seq {
			f.HoleAcks++
			f.SACKedAbove = 0
			for _, b := range tr.SACK[i] {
				if int32(b.Left-f.Dropped.End) >= 0 {
					f.SACKedAbove += int(b.Right-b.Left) / int(f.Dropped.End-f.Dropped.Seq)
				}
			}
		}
		if dup[i] > 0 && p.Ack == f.Dropped.Seq {
			f.DupAcksBefore++
			f.DupAckTimes = append(f.DupAckTimes, p.At)
		}
		if !p.ToServer && p.Len > 0 && int32(p.Seq+uint32(p.Len)-f.RecoveryPoint) > 0 {
			f.RecoveryPoint = p.Seq + uint32(p.Len)
		}
	}
	if f.Retransmit >= 0 {
		if i := tr.AckCovering(f.Retransmit, f.RecoveryPoint); i >= 0 {
			f.RecoveredAt = tr.Capture.Packets[i].At
		}
	}
	return f, true
}

func ccMs(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func fastRetransmitVerdict(res *Result) []string {
	d := ccData(res)
	if len(d.Transfers) == 0 {
		return []string{"no transfer ran"}
	}
	tr := d.Transfers[0]
	f, ok := tr.AnalyzeFastRetransmit()
	if !ok {
		return []string{fmt.Sprintf("the lab wire dropped nothing: the transfer had fewer than %d segments", frDropNth)}
	}
	var v []string
	v = append(v, fmt.Sprintf("the lab wire dropped server data seq %d:%d (new-data segment #%d) at %s", f.Dropped.Seq, f.Dropped.End, frDropNth, secs(f.Dropped.At)))
	if f.DupAcksBefore > 0 {
		var ts []string
		for _, t := range f.DupAckTimes[:min(3, len(f.DupAckTimes))] {
			ts = append(ts, secs(t))
		}
		v = append(v, fmt.Sprintf("before the retransmission %d client ACKs stopped at the hole (ack %d): the first that reached it and %d duplicate(s), at %s; the last SACKed %d segments above the hole",
			f.HoleAcks, f.Dropped.Seq, f.DupAcksBefore, list(ts), f.SACKedAbove))
	} else {
		v = append(v, "the client sent no duplicate ACK for the hole before it was retransmitted")
	}
	if f.Retransmit < 0 {
		v = append(v, "the dropped segment was never retransmitted")
		return v
	}
	rt := tr.Capture.Packets[f.Retransmit].At
	line := fmt.Sprintf("the server retransmitted seq %d:%d at %s, %s after the drop", f.Dropped.Seq, f.Dropped.End, secs(rt), ccMs(rt-f.Dropped.At))
	if len(f.DupAckTimes) >= 3 {
		line += fmt.Sprintf(" and %s after duplicate ACK #3", ccMs(rt-f.DupAckTimes[2]))
	}
	v = append(v, line)
	if f.RecoveredAt > 0 {
		v = append(v, fmt.Sprintf("recovery: the cumulative ACK passed seq %d (all data sent before the retransmission) at %s, %s after the retransmission",
			f.RecoveryPoint, secs(f.RecoveredAt), ccMs(f.RecoveredAt-rt)))
	}
	if before, ok := tr.CwndAt(f.Dropped.At); ok {
		if after, ok := tr.CwndAt(f.RecoveredAt); ok && f.RecoveredAt > 0 {
			v = append(v, fmt.Sprintf("cwnd (from the stack): %s when the segment was lost, %s when recovery ended", describeCwnd(before), describeCwnd(after)))
		}
	}
	v = append(v, fmt.Sprintf("retransmissions in the capture: %d, of which %d not the dropped segment", f.Retransmits, f.OthersRetrans))
	v = append(v, "server counters: "+tr.countText(res.Stack, ccFastRetrans)+", "+tr.countText(res.Stack, ccTimeouts))
	timeouts, haveTimeouts := tr.count(res.Stack, ccTimeouts)
	switch {
	case (f.DupAcksBefore >= 3 || f.SACKedAbove >= 3) && f.Retransmits == 1 && f.OthersRetrans == 0 && (!haveTimeouts || timeouts == 0) && tr.Intact:
		rule := "three duplicate ACKs"
		if f.DupAcksBefore < 3 {
			rule = fmt.Sprintf("%d duplicate ACKs whose SACK blocks showed 3 segments above the hole (RFC 6675's DupThresh)", f.DupAcksBefore)
		}
		v = append(v, "the claim holds: "+rule+", one retransmission of exactly the lost segment, no timeout, data intact")
	case f.DupAcksBefore < 3 && f.SACKedAbove < 3 && f.RACKDecided() && f.Retransmits == 1 && f.OthersRetrans == 0 && (!haveTimeouts || timeouts == 0) && tr.Intact:
		v = append(v, fmt.Sprintf("the claim holds, with RACK (RFC 8985) deciding: after %d duplicate ACK(s) and %d segment(s) SACKed above the hole, as Linux does; the segment after the hole was sent %s after it, more than RACK's reordering window (a quarter of the %s RTT at most), so the hole was lost without a third duplicate; one retransmission, no timeout, data intact",
			f.DupAcksBefore, f.SACKedAbove, ccMs(f.AboveSentAt-f.Dropped.At), ccMs(f.RetransmitAt-f.AboveSentAt)))
	case f.DupAcksBefore < 3 && f.SACKedAbove < 3:
		v = append(v, fmt.Sprintf("the retransmission came after %d duplicate ACK(s) and %d segments SACKed above the hole: less than the three-duplicate rule, and sooner than RACK's reordering window allows", f.DupAcksBefore, f.SACKedAbove))
	default:
		v = append(v, fmt.Sprintf("the claim holds in part: %d retransmission(s), %d timeout(s)", f.Retransmits, timeouts))
	}
	return v
}

func printFastRetransmit(res *Result, w io.Writer) {
	printCCHeader(w, res)
	d := ccData(res)
	for _, tr := range d.Transfers {
		fmt.Fprintf(w, "\ntimeline around the loss (seconds since start; wire lines are the capture at the server, runs of ordinary segments folded):\n")
		if f, ok := tr.AnalyzeFastRetransmit(); ok {
			to := f.Dropped.At + 2*res.Delay
			if f.RecoveredAt > 0 {
				to = f.RecoveredAt + time.Millisecond
			}
			printCCLines(w, tr.Timeline(f.Dropped.At-res.Delay/2, to))
		}
		fmt.Fprintln(w)
		printTransferSummary(w, res.Stack, tr)
	}
	fmt.Fprintf(w, "\nverdict:\n")
	for _, v := range res.Verdict {
		fmt.Fprintf(w, "  - %s\n", v)
	}
}
