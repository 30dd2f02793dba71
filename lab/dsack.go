package lab

import (
	"fmt"
	"io"
	"time"

	"tunstack/netif"
)

// dsack: D-SACK (RFC 2883) in three situations the lab wire makes on
// purpose. The client's request has its second segment duplicated, so the
// server receives data twice and should say so with a D-SACK block. Then
// the server's 40th new-data segment is held back behind the next four:
// the client's duplicate ACKs make the server retransmit it, the original
// arrives meanwhile, and the retransmission reaches the client as a
// duplicate, which its D-SACK reports; a sender that reads D-SACK learns
// that its retransmission was spurious and undoes the window reduction.
// Last, the server's 80th segment is duplicated by the wire: the client's
// D-SACK for it reports a copy the sender never made, which must not undo
// anything.
var dsackExperiment = &experiment{
	name:  "dsack",
	title: "duplicated and reordered segments: D-SACK blocks on the wire, and the sender undoing a spurious window reduction",
	claim: "D-SACK reports data received twice in the first SACK block (below the ACK, or inside the second block), " +
		"so the sender can tell a lost packet from a lost ACK, a too-short timeout, reordering, or a network that duplicates",
	duration: func(Params) time.Duration { return 3 * time.Second },
	options: func(o *Options) {
		ccOptions(o, nil)
		o.rules = []netif.SegmentRule{
			{Out: false, Nth: dsackClientDupNth, Action: netif.SegmentDup},
			{Out: true, Nth: dsackHoldNth, Action: netif.SegmentHold, After: dsackHoldAfter},
			{Out: true, Nth: dsackServerDupNth, Action: netif.SegmentDup},
		}
	},
	run: func(r *run) error {
		return r.ccTransferVariants([]ccVariant{{name: "as configured"}}, transferSpec{bytes: dsackBytes, request: dsackRequest})
	},
	verdict: dsackVerdict,
	print:   printDsack,
}

const (
	dsackRequest      = 4000 // three segments from the client
	dsackClientDupNth = 2
	dsackHoldNth      = 40
	dsackHoldAfter    = 4 // later segments that pass the held one: four duplicate ACKs
	// The server's duplicated segment comes well after the reordering's
	// spurious retransmission: Linux reports one D-SACK block per ACK, so
	// two duplicates arriving within the same round trip (segment 80 once
	// did, now and then) would share one report and the lab could not
	// show both.
	dsackServerDupNth = 400
	dsackBytes        = 4 << 20 // the last event (segment 400) comes well before the end
)

// DSACKEvent is one lab-wire action and the D-SACK that answered it.
type DSACKEvent struct {
	Action   WireAction
	DSACK    int // capture index of the first D-SACK covering the action's segment, -1 if none
	Retrans  int // held segments: capture index of the sender's retransmission of it, -1 if none
	Released time.Duration
}

// AnalyzeDSACK pairs each duplicating or holding action with the D-SACK
// that reported it.
func (tr *BulkTransfer) AnalyzeDSACK() []DSACKEvent {
	var out []DSACKEvent
	released := map[uint32]time.Duration{}
	for _, a := range tr.Actions {
		if a.Action == netif.SegmentReleased {
			released[a.Seq] = a.At
		}
	}
	for _, a := range tr.Actions {
		if a.Action != netif.SegmentDup.String() && a.Action != netif.SegmentHold.String() {
			continue
		}
		e := DSACKEvent{Action: a, DSACK: -1, Retrans: -1, Released: released[a.Seq]}
		// A D-SACK comes from the receiver of the data: the other side.
		for i, p := range tr.Capture.Packets {
			if p.ToServer != a.FromServer || p.At < a.At || !tr.IsDSACK(i) {
				continue
			}
			b := tr.SACK[i][0]
			if int32(b.Left-a.Seq) <= 0 && int32(b.Right-a.End) >= 0 || int32(b.Left-a.Seq) >= 0 && int32(b.Right-a.End) <= 0 {
				e.DSACK = i
				break
			}
		}
		for i, p := range tr.Capture.Packets {
			if p.ToServer != a.FromServer && !p.ToServer && p.Retrans > 0 && p.Seq == a.Seq {
				e.Retrans = i
				break
			}
		}
		out = append(out, e)
	}
	return out
}

func dsackVerdict(res *Result) []string {
	d := ccData(res)
	if len(d.Transfers) == 0 {
		return []string{"no transfer ran"}
	}
	tr := d.Transfers[0]
	var v []string
	for _, e := range tr.AnalyzeDSACK() {
		a := e.Action
		who, receiver := "client", "server"
		if a.FromServer {
			who, receiver = "server", "client"
		}
		line := fmt.Sprintf("%s data seq %d:%d %s by the lab wire at %s", who, a.Seq, a.End, a.Action, secs(a.At))
		if a.Action == netif.SegmentHold.String() {
			line += fmt.Sprintf(" (released behind %d later segments at %s)", dsackHoldAfter, secs(e.Released))
			if e.Retrans >= 0 {
				line += fmt.Sprintf("; the server retransmitted it at %s although it was not lost", secs(tr.Capture.Packets[e.Retrans].At))
			} else {
				line += "; the server did not retransmit it"
			}
		}
		if e.DSACK >= 0 {
			p := &tr.Capture.Packets[e.DSACK]
			line += fmt.Sprintf("; the %s reported the duplicate with D-SACK %s (ack %d) at %s", receiver, formatSACK(tr.SACK[e.DSACK][:1]), p.Ack, secs(p.At))
		} else {
			line += fmt.Sprintf("; no D-SACK from the %s", receiver)
		}
		v = append(v, line)
	}
	v = append(v, fmt.Sprintf("D-SACK blocks on the wire: %d from the client, %d from the server", len(tr.DSACKs(true)), len(tr.DSACKs(false))))
	v = append(v, "server counters: "+tr.countText(res.Stack, ccDSACKSent)+", "+tr.countText(res.Stack, ccDSACKRecv)+", "+
		tr.countText(res.Stack, ccUndos)+", "+tr.countText(res.Stack, ccFastRetrans))
	v = append(v, "data "+intactText(tr.Intact)+fmt.Sprintf(": the client read %d of %d bytes, each checked", tr.Received, tr.Bytes))
	return v
}

func printDsack(res *Result, w io.Writer) {
	printCCHeader(w, res)
	for _, tr := range ccData(res).Transfers {
		for _, e := range tr.AnalyzeDSACK() {
			a := e.Action
			fmt.Fprintf(w, "\nthe lab wire's %s: %s\n", a.Action, a)
			to := a.At + res.Delay + 5*time.Millisecond
			if e.DSACK >= 0 {
				to = max(to, tr.Capture.Packets[e.DSACK].At+time.Millisecond)
			}
			if a.FromServer && e.DSACK >= 0 {
				to += res.Delay // the sender's reaction
			}
			printCCLines(w, tr.Timeline(a.At-time.Millisecond, to))
		}
		fmt.Fprintln(w)
		printTransferSummary(w, res.Stack, tr)
	}
	fmt.Fprintf(w, "\nverdict:\n")
	for _, v := range res.Verdict {
		fmt.Fprintf(w, "  - %s\n", v)
	}
}
