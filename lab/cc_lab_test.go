package lab

import (
	"fmt"
	"strings"
	"testing"

	"tunstack/lab/netns"
)

// The congestion-control labs on tunstack, as root, each a few seconds of
// real time: the stack under test sends a bulk transfer to a kernel client
// over the lab's wire, which drops, duplicates or holds back exact
// segments, or bottlenecks the path. Shapes are checked, not timings.

func runCCLab(t *testing.T, name string) (*Result, *BulkTransfer) {
	t.Helper()
	res := runExperiment(t, name, "tunstack", Options{})
	d := ccData(res)
	if len(d.Transfers) == 0 {
		t.Fatalf("lab %s recorded no transfer", name)
	}
	for _, tr := range d.Transfers {
		if tr.Unsupported != "" {
			continue
		}
		if !tr.Intact || tr.Err != nil {
			t.Errorf("%s: data not intact: read %d of %d bytes (%v)", tr.Variant, tr.Received, tr.Bytes, tr.Err)
		}
	}
	return res, d.Transfers[0]
}

// retransmitKinds lists the server's retransmissions by the mechanism
// that sent them (tcpcore counts each of one kind), with the D-SACKs
// that reported copies as duplicates: what to read a wrong count of
// retransmissions in the capture against.
func retransmitKinds(tr *BulkTransfer) string {
	var s []string
	for _, n := range []string{"FastRetransmits", "LostRetransmits", "RTORetransmits", "TLPRetransmits", "RescueRetransmits", "DSACKsReceived"} {
		s = append(s, fmt.Sprintf("%s %d", n, counterValue(tr.Counters, n)))
	}
	return strings.Join(s, ", ")
}

func TestCongestionLabs(t *testing.T) {
	netns.RequireRoot(t)

	// Slow start as the slow-start lab's claim has it: the segments
	// sent per round trip roughly double in the first rounds.
	t.Run("slow-start", func(t *testing.T) {
		_, tr := runCCLab(t, "slow-start")
		rounds := tr.Rounds()
		g := SlowStartGrowth(rounds)
		if len(g) < 2 {
			t.Fatalf("fewer than three loss-free rounds before the first loss: %+v", rounds[:min(len(rounds), 6)])
		}
		for i, x := range g[:2] {
			if x < 1.5 || x > 2.6 {
				t.Errorf("round %d sent %.2f times the segments of round %d, want about 2 (rounds %+v)", i+2, x, i+1, rounds[:4])
			}
		}
		if tr.Impair == nil || tr.Impair.Out.QueueDropPackets == 0 {
			t.Error("the bottleneck never dropped: slow start did not reach the queue's limit")
		}
	})

	// One lost segment: three duplicate ACKs, exactly that segment
	// retransmitted, no retransmission timeout.
	t.Run("fast-retransmit", func(t *testing.T) {
		_, tr := runCCLab(t, "fast-retransmit")
		f, ok := tr.AnalyzeFastRetransmit()
		if !ok {
			t.Fatal("the lab wire dropped nothing")
		}
		// RFC 5681's three duplicates, or with SACK RFC 6675's DupThresh
		// segments SACKed above the hole (which the ACK that first stops
		// at the hole already counts toward), or, as the linux profile
		// runs RACK like Linux, RFC 8985's time rule: a later segment
		// SACKed and the hole sent more than the reordering window before
		// it.
		if f.DupAcksBefore < 3 && f.SACKedAbove < 3 && !f.RACKDecided() {
			t.Errorf("retransmitted after %d duplicate ACKs and %d segments SACKed above the hole, and the segment after the hole was sent %v after it against a RACK RTT of %v: want 3 of either, or RACK's reordering window passed",
				f.DupAcksBefore, f.SACKedAbove, f.AboveSentAt-f.Dropped.At, f.RetransmitAt-f.AboveSentAt)
		}
		if f.Retransmit < 0 {
			t.Fatal("the dropped segment was never retransmitted")
		}
		if f.Retransmits != 1 || f.OthersRetrans != 0 {
			t.Errorf("%d segments retransmitted (%d not the dropped one), want exactly the dropped one", f.Retransmits, f.OthersRetrans)
		}
		if n := counterValue(tr.Counters, "Timeouts"); n != 0 {
			t.Errorf("%d retransmission timeouts, want none", n)
		}
		if n := counterValue(tr.Counters, "FastRetransmits"); n != 1 {
			t.Errorf("FastRetransmits = %d, want 1", n)
		}
		if f.RecoveredAt == 0 {
			t.Error("the cumulative ACK never passed the recovery point")
		}
	})

	// Four losses in one window with SACK: every hole repaired without a
	// timeout, the client's ACKs carrying SACK blocks.
	t.Run("sack", func(t *testing.T) {
		res, tr := runCCLab(t, "sack")
		if tr.Variant != "SACK" {
			t.Fatalf("first variant %q, want SACK", tr.Variant)
		}
		s := tr.AnalyzeSack()
		if len(s.Holes) != len(sackDropNth) {
			t.Fatalf("%d holes, want %d", len(s.Holes), len(sackDropNth))
		}
		if s.Repaired == 0 {
			t.Fatal("the holes were never all repaired")
		}
		if s.HoleRetrans != len(s.Holes) {
			t.Errorf("%d retransmissions of holes, want one per hole (%d); the server's retransmissions by kind: %s",
				s.HoleRetrans, len(s.Holes), retransmitKinds(tr))
		}
		if n := counterValue(tr.Counters, "Timeouts"); n != 0 {
			t.Errorf("%d retransmission timeouts with SACK, want none", n)
		}
		sacks := 0
		for i, p := range tr.Capture.Packets {
			if p.ToServer && len(tr.SACK[i]) > 0 {
				sacks++
			}
		}
		if sacks == 0 {
			t.Error("no SACK block in the client's ACKs")
		}
		if len(ccData(res).Transfers) != len(sackVariants) {
			t.Errorf("%d variants ran, want %d", len(ccData(res).Transfers), len(sackVariants))
		}
	})

	// Duplicates on the wire: D-SACK blocks from whichever side received
	// the copy, and the data intact.
	//
	// The client is Linux: whether it reports a copy of the server's data
	// is its receive path's doing, and under load it now and then sends
	// none (2 of 8 make test runs today, 1 of 4 runs beside two other test
	// packages; never in runs alone), where tunstack's side of the lab is
	// not in question. As the conformance suite does with Linux's
	// real-time runs, such a run is made again, once, with its finding
	// logged; whatever tunstack does (its own D-SACK, its counters, the
	// data) must hold in every run.
	t.Run("dsack", func(t *testing.T) {
		for try := 1; ; try++ {
			_, tr := runCCLab(t, "dsack")
			events := tr.AnalyzeDSACK()
			if len(events) != 3 {
				t.Fatalf("%d lab-wire events, want 3 (client dup, server hold, server dup)", len(events))
			}
			var linuxMissed []string
			for _, e := range events {
				if e.DSACK < 0 {
					if e.Action.FromServer {
						linuxMissed = append(linuxMissed, fmt.Sprintf("no D-SACK from the Linux client answered %s", e.Action))
					} else {
						t.Errorf("no D-SACK from tunstack answered %s", e.Action)
					}
					continue
				}
				if got := tr.Capture.Packets[e.DSACK].ToServer; got != e.Action.FromServer {
					t.Errorf("D-SACK for %s came from the sender, not the receiver", e.Action)
				}
			}
			if n := counterValue(tr.Counters, "DSACKsSent"); n == 0 {
				t.Error("DSACKsSent = 0: the server reported no duplicate")
			}
			if t.Failed() || len(linuxMissed) == 0 {
				return
			}
			if try == 2 {
				t.Errorf("in the second run too: %s", strings.Join(linuxMissed, "; "))
				return
			}
			t.Logf("run 1: %s; running the lab again", strings.Join(linuxMissed, "; "))
		}
	})
}
