package tcpcore

import (
	"testing"
	"time"

	"tunstack/wire"
)

// Loss detection by RACK (RFC 8985), Linux's PRR (RFC 6937 as
// tcp_cwnd_reduction) and the ACK processing around them, each rule in
// virtual time on a path of 10 ms (acceptOnPath): the peer answers a
// round trip after the data went.

const pathRTT = 10 * time.Millisecond

// sackOpts builds SACK blocks from [start, end) pairs.
func sackOpts(blocks ...[2]Seq) wire.TCPOptions {
	o := wire.TCPOptions{NumSACK: len(blocks)}
	for i, b := range blocks {
		o.SACK[i] = wire.SACKBlock{Left: uint32(b[0]), Right: uint32(b[1])}
	}
	return o
}

// ackOf is the peer's ACK of ack with SACK blocks.
func ackOf(ack Seq, blocks ...[2]Seq) tseg {
	return tseg{flags: fA, seq: peerISN + 1, ack: ack, wnd: 65535, opts: sackOpts(blocks...)}
}

// span is the SACK block from the start of segs[i] to the end of segs[j].
func span(segs []tseg, i, j int) [2]Seq { return [2]Seq{segs[i].seq, ackFor(segs[j])} }

// rackConn is a SACK connection on a 10 ms path with the profile's
// congestion controller set to cc ("" keeps CUBIC), which has sent n full
// segments of a write of total segments; the peer's answers are due.
func rackConn(t *testing.T, cc string, n, total int) (*peer, *Conn, []tseg) {
	t.Helper()
	prof := testProfile()
	if cc != "" {
		prof.Congestion = cc
	}
	p := newPeer(t, prof)
	c, _ := acceptOnPath(t, p, sackSyn, pathRTT)
	c.SetNoDelay(p.now, true)
	c.Write(p.now, make([]byte, total*c.MSS()))
	segs := dataSegs(p.collectAll())
	if len(segs) != n {
		t.Fatalf("sent %d segments, want %d", len(segs), n)
	}
	p.advance(pathRTT)
	return p, c, segs
}

// seqs lists where each segment starts, relative to base.
func seqs(out []tseg, base Seq) []int {
	var r []int
	for _, s := range dataSegs(out) {
		r = append(r, s.seq.Sub(base))
	}
	return r
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// RFC 6937 §3 as Linux's tcp_cwnd_reduction, in segments: entering
// recovery on an ACK that SACKs three segments with ssthresh 5 of a prior
// window of 10 and 6 segments in flight lets ceil(5 * 3 / 10) = 2 go: the
// retransmission and one new segment (counting bytes left 1.5 segments,
// and only the retransmission went).
func TestPRRProportionalCountsSegmentsFromPriorWindow(t *testing.T) {
	p, c, segs := rackConn(t, "reno", 10, 20)
	mss := c.MSS()
	p.send(ackOf(segs[0].seq, span(segs, 1, 3)))
	got := seqs(p.collectAll(), segs[0].seq)
	if want := []int{0, 10 * mss}; !equalInts(got, want) {
		t.Fatalf("on entering recovery sent %v, want %v (the retransmission and one new segment)", got, want)
	}
	if ti := c.TCPInfo(p.now); ti.SndCwnd != 8 || c.rare.prr.priorCwnd != 10 {
		t.Fatalf("PRR window %d from %d, want 8 (Linux's snd_cwnd) from 10", ti.SndCwnd, c.rare.prr.priorCwnd)
	}
}

// RFC 6937's conservative bound as Linux applies it: while only SACKs
// arrive, each segment delivered releases one, however far the flight is
// below ssthresh; the slow-start bonus needs SND.UNA to advance.
func TestPRRConservativeWhileOnlySACKsArrive(t *testing.T) {
	p, c, segs := rackConn(t, "reno", 10, 10)
	for j := 6; j <= 8; j++ {
		p.send(ackOf(segs[0].seq, span(segs, 6, j)))
	}
	if got := seqs(p.collectAll(), segs[0].seq); !equalInts(got, []int{0}) {
		t.Fatalf("on entering recovery sent %v, want the first segment alone", got)
	}
	if ti := c.TCPInfo(p.now); ti.Lost != 6 {
		t.Fatalf("%d segments deemed lost, want 6 (all sent before the SACKed ones)", ti.Lost)
	}
	p.send(ackOf(segs[0].seq, span(segs, 6, 9)))
	if got := seqs(p.collectAll(), segs[0].seq); !equalInts(got, []int{c.MSS()}) {
		t.Fatalf("after a fourth SACKed segment sent %v, want segment 1 alone", got)
	}
}

// RFC 6937's slow start reduction bound as Linux applies it: an ACK that
// advances SND.UNA without new losses sends what was delivered plus one,
// up to ssthresh less the flight.
func TestPRRSlowStartBoundWhenSNDUNAAdvances(t *testing.T) {
	p, c, segs := rackConn(t, "reno", 10, 13)
	mss := c.MSS()
	p.send(ackOf(segs[0].seq, span(segs, 6, 8)))
	if got := seqs(p.collectAll(), segs[0].seq); !equalInts(got, []int{0, mss, 2 * mss}) {
		t.Fatalf("three SACKed at once sent %v, want three retransmissions", got)
	}
	p.send(ackOf(segs[0].seq, span(segs, 6, 9)))
	if got := seqs(p.collectAll(), segs[0].seq); !equalInts(got, []int{3 * mss}) {
		t.Fatalf("one more SACKed sent %v, want one retransmission", got)
	}
	p.advance(pathRTT)
	p.send(ackOf(ackFor(segs[1]), span(segs, 6, 9)))
	if got := seqs(p.collectAll(), segs[0].seq); !equalInts(got, []int{4 * mss, 5 * mss, 10 * mss}) {
		t.Fatalf("SND.UNA advancing two segments sent %v, want segments 4, 5 and 10", got)
	}
}

// Linux behaviour (tcp_ack, old_ack): an ACK below SND.UNA without SACK
// blocks changes nothing; one with SACK blocks is read, and its losses
// are resent as the window the last ACK left allows, PRR giving no answer
// to it. A partial ACK sooner than the smallest RTT after the
// retransmission it covers deems nothing lost.
func TestOldACKReadOnlyForSACK(t *testing.T) {
	prof := testProfile()
	prof.Congestion = "reno"
	p := newPeer(t, prof)
	c, iss := acceptOnPath(t, p, sackSyn, 50*time.Millisecond)
	c.SetNoDelay(p.now, true)
	mss := c.MSS()
	c.Write(p.now, make([]byte, 12*mss))
	segs := dataSegs(p.collectAll())
	p.advance(50 * time.Millisecond)
	p.send(ackOf(segs[0].seq, span(segs, 1, 4)))
	if got := seqs(p.collectAll(), segs[0].seq); !equalInts(got, []int{0}) {
		t.Fatalf("on entering recovery sent %v, want the first segment", got)
	}
	p.advance(pathRTT)
	p.send(ackOf(ackFor(segs[4])))
	p.advance(pathRTT)
	p.send(ackOf(iss + 1))
	p.send(ackOf(ackFor(segs[0])))
	p.expectNone()
	p.advance(pathRTT)
	p.send(ackOf(iss+1, span(segs, 6, 6)))
	if got := seqs(p.collectAll(), segs[0].seq); !equalInts(got, []int{5 * mss, 10 * mss}) {
		t.Fatalf("an old ACK SACKing segment 6 sent %v, want segment 5 again and new segment 10", got)
	}
}

// RFC 6582 (NewReno) whatever the congestion controller, as Linux: with
// "reno" a partial ACK resends the next hole at once, since duplicate
// ACKs during recovery count as delivered segments too (Linux
// tcp_add_reno_sack).
func TestRenoControllerRecoversByNewRenoAsLinux(t *testing.T) {
	prof := testProfile()
	prof.Congestion = "reno"
	p := newPeer(t, prof)
	c, iss := p.listenAndAccept(plainSyn)
	segs := sendSegments(t, p, c, 10)
	una := iss + 1
	for range 3 {
		p.send(ackOf(una))
	}
	p.expect(fA, una, peerISN+1)
	for range 5 {
		p.send(ackOf(una))
	}
	p.expectNone()
	p.send(ackOf(ackFor(segs[3])))
	p.expect(fA, segs[4].seq, peerISN+1)
	if c.recovery != recoveryFast || c.renoSacked != 5 {
		t.Fatalf("state %v, %d segments counted by duplicate ACKs; want recovery, 5", c.recovery, c.renoSacked)
	}
}

// RFC 8985 §6.2 step 4 and §6.3 as Linux: one SACKed segment (below
// DupThresh, no reordering seen) does not make the first segment lost at
// once; it is once a quarter of the minimum RTT has passed, on a timer
// that adds Linux's TCP_TIMEOUT_MIN. No tail loss probe is armed meanwhile
// (disorder).
func TestRACKReorderingTimer(t *testing.T) {
	p, c, segs := rackConn(t, "", 10, 10)
	at := p.now
	p.send(ackOf(segs[0].seq, span(segs, 1, 1)))
	p.expectNone()
	if !c.disorder || !c.rack.reoTimer {
		t.Fatalf("disorder %v, reordering timer %v; want both", c.disorder, c.rack.reoTimer)
	}
	p.step()
	r := p.expect(fA, segs[0].seq, peerISN+1)
	if want := at.Add(pathRTT/4 + tlpMinTimeout); r.at != want {
		t.Fatalf("retransmitted at %v, want %v (min_rtt/4 + 2 ms after the SACK)", time.Duration(r.at-at), time.Duration(want-at))
	}
	if st := c.Info().Counters; st.TailLossProbes != 0 || st.FastRecoveries != 1 {
		t.Fatalf("counters %+v: want recovery by the reordering timer, no probe", st)
	}
}

// RFC 8985 §6.2 as Linux's tcp_rack_reo_wnd: once reordering has been
// seen (a SACK below data already SACKed, never retransmitted), RACK keeps
// its window even with DupThresh segments SACKed.
func TestRACKKeepsWindowOnceReorderingSeen(t *testing.T) {
	p, c, segs := rackConn(t, "", 10, 10)
	at := p.now
	p.send(ackOf(segs[0].seq, span(segs, 3, 3)))
	p.send(ackOf(segs[0].seq, span(segs, 2, 3)))
	p.send(ackOf(segs[0].seq, span(segs, 1, 3)))
	p.expectNone()
	if c.rareR().reordSeen == 0 {
		t.Fatalf("no reordering seen")
	}
	p.step()
	if r := p.expect(fA, segs[0].seq, peerISN+1); r.at != at.Add(pathRTT/4+tlpMinTimeout) {
		t.Fatalf("retransmitted %v after the SACKs", time.Duration(r.at-at))
	}
}

// RFC 8985 §6.2 step 2 (Linux tcp_rack_advance): a retransmitted segment
// SACKed sooner than the smallest RTT after it went was the original's
// delivery and is no evidence that what was sent before it is lost: the
// first segment's retransmission is not sent again; new data goes.
func TestRACKSACKOfRetransmissionTooSoonIsNoEvidence(t *testing.T) {
	p, c, segs := rackConn(t, "reno", 10, 19)
	mss := c.MSS()
	p.send(ackOf(segs[0].seq, span(segs, 1, 1), span(segs, 3, 9)))
	if got := seqs(p.collectAll(), segs[0].seq); !equalInts(got, []int{0, 2 * mss, 10 * mss, 11 * mss, 12 * mss}) {
		t.Fatalf("on entering recovery sent %v, want segments 0 and 2 again and three new", got)
	}
	p.advance(time.Millisecond)
	p.send(ackOf(segs[0].seq, span(segs, 1, 9)))
	if got := seqs(p.collectAll(), segs[0].seq); !equalInts(got, []int{13 * mss}) {
		t.Fatalf("after segment 2 was SACKed 1 ms after its retransmission sent %v, want new segment 13", got)
	}
	if st := c.Info().Counters; st.LostRetransmits != 0 {
		t.Fatalf("counters %+v: a retransmission deemed lost", st)
	}
}

// RFC 8985 §7.4: a tail loss probe whose ACK SACKs it lets RACK find the
// segments before it lost: recovery starts at once, not at the RTO.
func TestProbeSACKedStartsRecovery(t *testing.T) {
	p, c, segs := rackConn(t, "", 10, 10)
	p.send(ackOf(ackFor(segs[6])))
	p.step()
	probe := p.expect(fPA, segs[9].seq, peerISN+1)
	p.advance(2 * pathRTT)
	p.send(ackOf(ackFor(segs[6]), span(segs, 9, 9)))
	r := p.expect(fA, segs[7].seq, peerISN+1)
	if r.at != probe.at.Add(2*pathRTT) || c.Info().Counters.Timeouts != 0 {
		t.Fatalf("segment 7 resent %v after the probe (counters %+v), want at once on its SACK", time.Duration(r.at-probe.at), c.Info().Counters)
	}
}

// RFC 8985 §6.2 with every other segment lost: each SACK of a later
// segment deems the hole before it lost, and PRR resends one per SACKed
// segment, lowest first.
func TestRACKEachHoleLostAsLaterDataIsSACKed(t *testing.T) {
	p, c, segs := rackConn(t, "reno", 10, 10)
	mss := c.MSS()
	// The peer reports the most recent block first, four at most.
	var blocks [][2]Seq
	for _, step := range []struct {
		seg  int
		want []int
	}{{1, nil}, {3, nil}, {5, []int{0}}, {7, []int{2 * mss}}, {9, []int{4 * mss}}} {
		blocks = append([][2]Seq{span(segs, step.seg, step.seg)}, blocks...)
		if len(blocks) > 4 {
			blocks = blocks[:4]
		}
		p.send(ackOf(segs[0].seq, blocks...))
		if got := seqs(p.collectAll(), segs[0].seq); !equalInts(got, step.want) {
			t.Fatalf("after the SACK of segment %d sent %v, want %v", step.seg, got, step.want)
		}
	}
}

// RFC 2018 §8 and Linux behaviour (tcp_check_sack_reneging): a cumulative
// ACK that stops at a segment the peer had SACKed suggests reneging; the
// retransmission timer fires max(SRTT/2, 10 ms) later, the SACKs are
// forgotten and everything is resent from SND.UNA in slow start. What
// Linux sent as one GSO chunk goes again as one, with PSH on its end.
func TestSACKRenegingFiresTimerSoonAndForgetsSACKs(t *testing.T) {
	p, c, segs := rackConn(t, "reno", 10, 10)
	mss := c.MSS()
	p.send(ackOf(segs[0].seq, span(segs, 1, 3)))
	if got := seqs(p.collectAll(), segs[0].seq); !equalInts(got, []int{0}) {
		t.Fatalf("on entering recovery sent %v", got)
	}
	p.advance(pathRTT)
	p.send(ackOf(ackFor(segs[0])))
	p.expectNone()
	p.advance(10 * time.Millisecond)
	if got := seqs(p.collectAll(), segs[0].seq); !equalInts(got, []int{mss}) {
		t.Fatalf("in the 10 ms after the ACK sent %v, want segment 1", got)
	}
	if st := c.Info().Counters; st.Timeouts != 1 {
		t.Fatalf("counters %+v, want the timeout", st)
	}
	p.advance(pathRTT)
	p.send(ackOf(ackFor(segs[1])))
	a, b := p.next(), p.next()
	if a.seq != segs[2].seq || b.seq != segs[3].seq || a.has(wire.FlagPSH) || !b.has(wire.FlagPSH) {
		t.Fatalf("after the ACK of segment 1 got %v and %v, want segments 2 and 3 (PSH on 3) again, though SACKed", a, b)
	}
}

// Linux's tcp_cong_control grows the window by what an ACK newly
// delivered: the ACK that ends recovery by covering data SACKed long ago
// counts only the hole it filled, so with Reno in congestion avoidance at
// ssthresh the window stays at ssthresh.
func TestWindowGrowthCountsOnlyNewlyDeliveredData(t *testing.T) {
	p, c, segs := rackConn(t, "reno", 10, 10)
	p.send(ackOf(segs[0].seq, span(segs, 1, 9)))
	p.expect(fA, segs[0].seq, peerISN+1)
	p.advance(pathRTT)
	p.send(ackOf(ackFor(segs[9])))
	if c.recovery != recoveryNone {
		t.Fatalf("still in recovery")
	}
	if in := c.Info(); in.CwndBytes != in.SSThreshBytes {
		t.Fatalf("cwnd %d after the ACK that ended recovery, want ssthresh %d (one segment delivered)", in.CwndBytes, in.SSThreshBytes)
	}
}

// RFC 8985 §6.2 step 2's RACK_sent_after for transmissions of one
// instant. A driver hands the engine a batch of ACKs at one instant; new
// data sent on an early ACK of the batch and retransmissions made on a
// later one share their time, and the new data, higher in sequence,
// went first. The lab's sequence, on a smaller window: the ACK of
// segment 0 SACKs segment 2, which is not yet enough to deem segment 1
// lost (RACK.rtt is segment 0's, sent with segment 1, so the reordering
// window is still to wait), and four new segments go; the next ACK of
// the batch SACKs 4-9, segments 1 and 3 are lost, and both go again.
// When a round trip later the new segments are SACKed, ahead of the
// retransmissions that went after them, nothing is lost: Linux, whose
// timestamps are taken afresh for each ACK, sends each hole once.
// Retransmitted on the SACK of the new data, the holes went twice (the
// lab's sack experiment saw five or seven hole retransmissions for four
// holes, each extra one reported back as a D-SACK). Data sent after a
// retransmission at the same instant still shows it lost.
func TestRACKOrdersTransmissionsOfOneInstantAsMade(t *testing.T) {
	t.Run("new data sent before the retransmissions", func(t *testing.T) {
		p, c, segs := rackConn(t, "reno", 10, 30)
		mss := c.MSS()
		base := segs[0].seq
		seg := func(i int) Seq { return base + Seq(i*mss) }
		blk := func(i, j int) [2]Seq { return [2]Seq{seg(i), seg(j + 1)} }
		t1 := p.now
		p.send(ackOf(seg(1), blk(2, 2)))
		if got := seqs(p.collectAll(), base); !equalInts(got, []int{10 * mss, 11 * mss, 12 * mss, 13 * mss}) {
			t.Fatalf("on the ACK of segment 0 SACKing segment 2 sent %v, want new segments 10-13", got)
		}
		p.send(ackOf(seg(1), blk(4, 9), blk(2, 2)))
		out := p.collectAll()
		if got := seqs(out, base); !equalInts(got, []int{mss, 3 * mss}) || out[0].at != t1 || out[1].at != t1 {
			t.Fatalf("on the ACK SACKing 4-9 sent %v, want segments 1 and 3 again at once", out)
		}
		// A round trip later segments 10-13 arrive, then the two
		// retransmissions.
		p.advance(pathRTT)
		t2 := p.now
		for j := 10; j <= 13; j++ {
			p.send(ackOf(seg(1), blk(4, j), blk(2, 2)))
		}
		p.send(ackOf(seg(3), blk(4, 13)))
		p.send(ackOf(seg(14)))
		out = dataSegs(p.collectAll())
		if len(out) == 0 {
			t.Fatal("after the new segments and then the retransmissions arrived sent nothing, want new data")
		}
		for _, s := range out {
			if s.seq.LT(seg(14)) || s.at != t2 {
				t.Fatalf("after the new segments and then the retransmissions arrived sent %d at %v, want only new data (from %d) at %v",
					s.seq.Sub(base), time.Duration(s.at), 14*mss, time.Duration(t2))
			}
		}
		if st := c.Info().Counters; st.Retransmits != 2 || st.FastRetransmits != 2 || st.LostRetransmits != 0 {
			t.Fatalf("counters %+v: want segments 1 and 3 retransmitted once each, none deemed lost again", st)
		}
	})
	t.Run("new data sent after a retransmission", func(t *testing.T) {
		p, c, segs := rackConn(t, "reno", 10, 19)
		mss := c.MSS()
		base := segs[0].seq
		t1 := p.now
		p.send(ackOf(base, span(segs, 1, 1), span(segs, 3, 9)))
		if got := seqs(p.collectAll(), base); !equalInts(got, []int{0, 2 * mss, 10 * mss, 11 * mss, 12 * mss}) {
			t.Fatalf("on entering recovery sent %v, want segments 0 and 2 again and three new", got)
		}
		// Segment 0's retransmission is lost; segment 10, sent after it
		// at the same instant t1, arrives.
		p.advance(pathRTT)
		t2 := p.now
		p.send(ackOf(base, [2]Seq{segs[1].seq, base + Seq(11*mss)}))
		out := dataSegs(p.collectAll())
		if len(out) == 0 || out[0].seq != base || out[0].at != t2 {
			t.Fatalf("after segment 10, sent at %v after segment 0's retransmission, was SACKed sent %v, want segment 0 again at %v",
				time.Duration(t1), seqs(out, base), time.Duration(t2))
		}
		if st := c.Info().Counters; st.LostRetransmits != 1 || st.Timeouts != 0 {
			t.Fatalf("counters %+v: want one retransmission deemed lost, no timeout", st)
		}
	})
}
