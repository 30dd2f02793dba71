package lab

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Reading a bulk transfer's capture: the per-packet facts the
// congestion-control labs talk about (duplicate ACKs and their number,
// SACK and D-SACK blocks, retransmissions), and a compact timeline that
// folds runs of ordinary segments into one line each.

// ccLine is one line of a compact timeline.
type ccLine struct {
	At   time.Duration
	Who  string
	What string
}

// DupAckNumber returns, for each captured packet, its place in a run of
// duplicate ACKs from the client (1 for the first duplicate), 0 for the rest.
func (tr *BulkTransfer) DupAckNumber() []int {
	out := make([]int, len(tr.Capture.Packets))
	run := 0
	for i := range tr.Capture.Packets {
		p := &tr.Capture.Packets[i]
		if !p.ToServer || p.Len > 0 || p.SYN || p.FIN || p.RST {
			continue
		}
		if p.DupAck {
			run++
			out[i] = run
		} else {
			run = 0
		}
	}
	return out
}

// ServerData is the indices of the server's data segments.
func (tr *BulkTransfer) ServerData() []int {
	var out []int
	for i, p := range tr.Capture.Packets {
		if !p.ToServer && p.Len > 0 {
			out = append(out, i)
		}
	}
	return out
}

// Retransmissions is the indices of the server's retransmitted data
// segments (and FINs).
func (tr *BulkTransfer) Retransmissions() []int {
	var out []int
	for i, p := range tr.Capture.Packets {
		if !p.ToServer && p.Retrans > 0 && !p.SYN {
			out = append(out, i)
		}
	}
	return out
}

// DSACKs is the indices of the packets carrying a D-SACK block, from
// either side.
func (tr *BulkTransfer) DSACKs(toServer bool) []int {
	var out []int
	for i, p := range tr.Capture.Packets {
		if p.ToServer == toServer && tr.IsDSACK(i) {
			out = append(out, i)
		}
	}
	return out
}

// AckCovering is the index of the first client ACK at or after index from
// whose cumulative ACK reaches seq, or -1.
func (tr *BulkTransfer) AckCovering(from int, seq uint32) int {
	for i := max(from, 0); i < len(tr.Capture.Packets); i++ {
		p := &tr.Capture.Packets[i]
		if p.ToServer && p.ACK && int32(p.Ack-seq) >= 0 {
			return i
		}
	}
	return -1
}

// packetLine is how the compact timeline writes one segment.
func (tr *BulkTransfer) packetLine(i int, dupNo int) string {
	p := &tr.Capture.Packets[i]
	dir := "server -> client"
	if p.ToServer {
		dir = "client -> server"
	}
	s := fmt.Sprintf("%s %-5s %s", dir, p.Flags(), p.Kind())
	if p.Len > 0 {
		s += fmt.Sprintf(" seq %d:%d", p.Seq, p.Seq+uint32(p.Len))
	}
	if p.ACK && (p.Len == 0 || p.ToServer) && !p.SYN {
		s += fmt.Sprintf(" ack %d", p.Ack)
	}
	if b := tr.SACK[i]; len(b) > 0 {
		if tr.IsDSACK(i) {
			s += fmt.Sprintf(" D-SACK %s", formatSACK(b[:1]))
			if len(b) > 1 {
				s += fmt.Sprintf(" SACK %s", formatSACK(b[1:]))
			}
		} else {
			s += " SACK " + formatSACK(b)
		}
	}
	switch {
	case p.Retrans > 0:
		s += fmt.Sprintf("  (retransmission %d)", p.Retrans)
	case dupNo > 0:
		s += fmt.Sprintf("  (duplicate ACK #%d)", dupNo)
	}
	return s
}

// foldKind says which run a packet can be folded into: new data from the
// server, the client's plain ACKs (advancing, no SACK), or duplicate ACKs
// past the third (whose number and last SACK blocks the folded line
// keeps); 0 for a packet that always has its own line.
func (tr *BulkTransfer) foldKind(i int, dupNo int) int {
	p := &tr.Capture.Packets[i]
	switch {
	case p.SYN || p.FIN || p.RST:
		return 0
	case !p.ToServer && p.Len > 0 && p.Retrans == 0:
		return 1
	case p.ToServer && p.Len == 0 && !p.DupAck && len(tr.SACK[i]) == 0:
		return 2
	case dupNo > 3 && !tr.IsDSACK(i):
		return 3
	}
	return 0
}

// Timeline returns the compact timeline of [from, to]: the capture's
// segments, the lab wire's actions and the sender's window changes, with
// runs of ordinary segments folded into one line.
func (tr *BulkTransfer) Timeline(from, to time.Duration) []ccLine {
	type item struct {
		at   time.Duration
		pkt  int // -1 for non-packets
		line ccLine
	}
	var items []item
	dup := tr.DupAckNumber()
	for i, p := range tr.Capture.Packets {
		if p.At >= from && p.At <= to {
			items = append(items, item{at: p.At, pkt: i})
		}
	}
	for _, a := range tr.Actions {
		if a.At >= from && a.At <= to {
			items = append(items, item{at: a.At, pkt: -1, line: ccLine{a.At, "lab wire", a.String()}})
		}
	}
	var prev *CwndSample
	for i := range tr.Cwnd {
		c := &tr.Cwnd[i]
		if c.At >= from && c.At <= to && prev != nil && (c.Cwnd != prev.Cwnd || c.SSThresh != prev.SSThresh) {
			items = append(items, item{at: c.At, pkt: -1, line: ccLine{c.At, "server", "cwnd " + describeCwnd(*c)}})
		}
		prev = c
	}
	slices.SortStableFunc(items, func(a, b item) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return 0
	})
	var out []ccLine
	for k := 0; k < len(items); {
		it := items[k]
		if it.pkt < 0 {
			out = append(out, it.line)
			k++
			continue
		}
		kind := tr.foldKind(it.pkt, dup[it.pkt])
		j := k + 1
		for kind != 0 && j < len(items) && items[j].pkt >= 0 && tr.foldKind(items[j].pkt, dup[items[j].pkt]) == kind {
			j++
		}
		if j-k == 1 {
			out = append(out, ccLine{it.at, "wire", tr.packetLine(it.pkt, dup[it.pkt])})
			k++
			continue
		}
		first, last := &tr.Capture.Packets[it.pkt], &tr.Capture.Packets[items[j-1].pkt]
		var what string
		switch kind {
		case 1:
			what = fmt.Sprintf("server -> client %d data segments seq %d:%d", j-k, first.Seq, last.Seq+uint32(last.Len))
		case 2:
			what = fmt.Sprintf("client -> server %d ACKs ack %d .. %d", j-k, first.Ack, last.Ack)
		default:
			what = fmt.Sprintf("client -> server %d more duplicate ACKs ack %d (#%d-#%d)", j-k, first.Ack, dup[it.pkt], dup[items[j-1].pkt])
			if b := tr.SACK[items[j-1].pkt]; len(b) > 0 {
				what += ", the last with SACK " + formatSACK(b)
			}
		}
		if span := items[j-1].at - it.at; span >= time.Millisecond {
			what += fmt.Sprintf(" (over %.1f ms)", float64(span)/float64(time.Millisecond))
		}
		out = append(out, ccLine{it.at, "wire", what})
		k = j
	}
	return out
}

func describeCwnd(c CwndSample) string {
	if c.SSThresh < 0 {
		return fmt.Sprintf("%d segments, ssthresh not set", c.Cwnd)
	}
	return fmt.Sprintf("%d segments, ssthresh %d", c.Cwnd, c.SSThresh)
}

func printCCLines(w io.Writer, lines []ccLine) {
	for _, l := range lines {
		fmt.Fprintf(w, "  %8.3f  %-9s  %s\n", l.At.Seconds(), l.Who, l.What)
	}
}

// printCCHeader writes what every congestion-control report starts with.
func printCCHeader(w io.Writer, r *Result) {
	fmt.Fprintf(w, "== lab %s on %s (profile %s)\n", r.Experiment, r.Stack, r.Profile)
	fmt.Fprintf(w, "%s\n", r.Title)
	fmt.Fprintf(w, "claim: %s\n", r.Claim)
	fmt.Fprintf(w, "path: client -> server delay %s", r.Delay)
	if r.Impair.Enabled() {
		fmt.Fprintf(w, "; impairment %s (out = what the server sends)", r.Impair)
	}
	fmt.Fprintf(w, "\nsettings: %s\n", strings.Join(r.Sysctls, ", "))
}

// printTransferSummary writes one transfer's facts: bytes, integrity,
// wire actions, impairment and counters.
func printTransferSummary(w io.Writer, stack string, tr *BulkTransfer) {
	state := "intact"
	if !tr.Intact {
		state = "NOT intact"
	}
	fmt.Fprintf(w, "transfer: %d bytes in %.3f s, %s", tr.Received, (tr.Done - tr.Accepted).Seconds(), state)
	if tr.Err != nil {
		fmt.Fprintf(w, " (%v)", tr.Err)
	}
	if tr.Congestion != "" {
		fmt.Fprintf(w, "; window controller %s", tr.Congestion)
	}
	fmt.Fprintln(w)
	if tr.Impair != nil {
		o := tr.Impair.Out
		fmt.Fprintf(w, "impairment (server -> client): %d packets in, %d lost, %d dropped by the full queue (deepest %d), %d duplicated, %d reordered\n",
			o.InPackets, o.LostPackets, o.QueueDropPackets, o.MaxQueuePackets, o.DuplicatedPackets, o.ReorderedPackets)
	}
	fmt.Fprintf(w, "server counters: %s\n", formatCounters(tr.Counters))
}
