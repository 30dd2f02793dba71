package tcpcore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"tunstack/wire"
)

// Hostile peers against the engine: each test names the rule that
// protects the connection and fails if the line that implements it goes.
// Each also logs its result for docs/reliability.md (logReliability).

// logReliability writes one line of the reliability report: the case, its
// outcome on the engine in virtual time, its figures, and the conformance
// scripts that check the same rule on the other stacks.
//
//	RELIABILITY {"case":..., "stack":"tunstack (engine, virtual time)", "outcome":..., "figures":{...}, "scripts":[...]}
func logReliability(t *testing.T, name, outcome string, figures map[string]string, scripts ...string) {
	t.Helper()
	if t.Failed() {
		return
	}
	b, err := json.Marshal(struct {
		Case    string            `json:"case"`
		Stack   string            `json:"stack"`
		Outcome string            `json:"outcome"`
		Figures map[string]string `json:"figures"`
		Scripts []string          `json:"scripts,omitempty"`
	}{name, "tunstack (engine, virtual time)", outcome, figures, scripts})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RELIABILITY %s", b)
}

// cpuPerACK is the CPU time one of the ACKs of wires costs the engine,
// each fed again 100 times, as a figure for the report (measured, never
// checked).
func cpuPerACK(t *testing.T, p *peer, wires [][]byte) string {
	t.Helper()
	start := time.Now()
	n := 0
	for range 100 {
		for _, w := range wires {
			p.e.Input(p.now, p.remote.Addr(), p.local.Addr(), w)
			n++
		}
	}
	p.collect()
	return fmt.Sprintf("%.1f µs", float64(time.Since(start).Microseconds())/float64(n))
}

// RFC 9293 §3.10.7.4 and RFC 5961 §5.2: an ACK of data not yet sent
// (SEG.ACK > SND.MAX) is dropped and answered with an ACK, rate limited as
// Linux's tcp_oow_rate_limited (tcp_invalid_ratelimit, 500 ms); SND.UNA,
// the send buffer and cwnd stay where they were. An ACK older than
// SND.UNA - MAX.SND.WND is dropped and answered the same way.
// Protection: processAck, `if s.ack.GT(c.sndMax)` (without it SND.UNA
// moves past SND.MAX) and `if s.ack.LT(c.sndUna.Add(-c.maxSndWnd))`
// (without it the too-old ACK draws no challenge ACK); the rate limit is
// sendChallengeAck's `now.Sub(c.lastOOWAck) < InvalidRateLimit` test.
func TestOptimisticAckBeyondSndMaxIsDroppedAndChallenged(t *testing.T) {
	p := newPeer(t, nil)
	conn, _ := sackConn10ms(p)
	mss := conn.MSS()
	conn.Write(p.now, make([]byte, 4*mss))
	if got := len(p.collectAll()); got != 4 {
		t.Fatalf("%d segments sent, want 4", got)
	}
	una, max := conn.sndUna, conn.sndMax
	cwnd := conn.ccw().CongestionWindow()
	buffered := conn.sndBuf.Len()
	challenges := p.e.stats.ChallengeACKs

	p.advance(time.Millisecond)
	p.ackTo(max+Seq(10*mss), wire.TCPOptions{})
	a := p.expect(fA, max, peerISN+1)
	if len(a.payload) != 0 {
		t.Fatalf("challenge ACK carries %d bytes", len(a.payload))
	}
	p.expectNone()
	if conn.sndUna != una || conn.sndMax != max || conn.ccw().CongestionWindow() != cwnd || conn.sndBuf.Len() != buffered {
		t.Fatalf("after an ACK beyond SND.MAX: SND.UNA %d SND.MAX %d cwnd %d buffered %d, want %d %d %d %d",
			conn.sndUna, conn.sndMax, conn.ccw().CongestionWindow(), conn.sndBuf.Len(), una, max, cwnd, buffered)
	}
	if got := p.e.stats.ChallengeACKs - challenges; got != 1 {
		t.Fatalf("%d challenge ACKs counted, want 1", got)
	}
	// Later the tail loss probe and the RTO change cwnd on their own.
	cwndGrowth := conn.ccw().CongestionWindow() - cwnd

	// A second one 499 ms later is dropped without an answer; at 500 ms
	// it is answered again.
	p.advance(499 * time.Millisecond)
	p.collectAll() // the tail loss probe and retransmissions are not under test
	p.ackTo(max+1, wire.TCPOptions{})
	p.expectNone()
	p.advance(time.Millisecond)
	p.collectAll()
	p.ackTo(max+1, wire.TCPOptions{})
	p.expect(fA, conn.sndNxt, peerISN+1)
	if conn.sndUna != una {
		t.Fatalf("SND.UNA moved to %d", conn.sndUna)
	}

	// RFC 5961 §5.2: an ACK below SND.UNA - MAX.SND.WND.
	p.advance(500 * time.Millisecond)
	p.collectAll()
	p.ackTo(una.Add(-conn.maxSndWnd-1), wire.TCPOptions{})
	p.expect(fA, conn.sndNxt, peerISN+1)
	p.expectNone()
	if conn.sndUna != una {
		t.Fatalf("SND.UNA moved to %d", conn.sndUna)
	}
	logReliability(t, "optimistic ACK (beyond SND.MAX, or older than SND.UNA - MAX.SND.WND)",
		"dropped; challenge ACK at most one per 500 ms; SND.UNA, cwnd and the send buffer unchanged",
		map[string]string{"challenge ACKs for 4 bad ACKs at 0, 499, 500 and 1000 ms": fmt.Sprint(p.e.stats.ChallengeACKs - challenges),
			"cwnd growth from the first bad ACK": fmt.Sprint(cwndGrowth)},
		"rst/ack-of-unsent-data.pkt", "rst/ack-too-old-challenge.pkt")
}

// ACK division (Savage et al.): the peer acknowledges one full-sized
// segment in many ACKs of a few bytes each. RFC 3465 §2.1 counts the bytes
// acknowledged, so the split cannot grow cwnd by more than the segment's
// worth. Linux (tcp_slow_start via tcp_cong_control) adds delivered
// packets, and a segment counts as delivered only when its last byte is
// acknowledged (tcp_clean_rtx_queue trims a partly acknowledged skb and
// counts nothing), so it grows by one segment. Without SACK the engine
// counts the bytes (growthBytes returns acked); with SACK it counts the
// records delivered whole (noteDelivered in ackRecords), the pieces that
// trimmed the record counted back in when its last piece comes
// (txQueue.headTrimmed), so either way the 146 ACKs of 10 bytes grow cwnd
// by exactly one MSS, as Linux's.
// Protection: Cubic.OnAck's slow start grows by slowStartIncrease(acked
// bytes); made to add one MSS per ACK (`slowStartIncrease(c.mss)` in
// linuxOnAck) the test fails: cwnd 80 segments instead of 11. Without
// `c.ev.deliveredBytes += q.headTrimmed` in ackRecords the SACK case
// grows by the last piece's 10 bytes only and fails.
func TestAckDivisionGrowsSlowStartByBytesNotAcks(t *testing.T) {
	figures := map[string]string{}
	for _, sack := range []bool{false, true} {
		p := newPeer(t, nil)
		conn, iss := adversaryConn(p, sack)
		mss := conn.MSS()
		cwnd := conn.ccw().CongestionWindow()
		if cwnd != 10*mss {
			t.Fatalf("sack %v: initial cwnd %d, want %d", sack, cwnd, 10*mss)
		}
		conn.Write(p.now, make([]byte, 40*mss))
		if got := len(p.collectAll()); got != 10 {
			t.Fatalf("sack %v: %d segments sent, want 10", sack, got)
		}
		p.advance(10 * time.Millisecond)
		const piece = 10
		ack := iss + 1
		for n := 0; n < mss; n += piece {
			ack += Seq(min(piece, mss-n))
			p.send(tseg{flags: fA, seq: peerISN + 1, ack: ack, wnd: 512})
		}
		if ack != iss+1+Seq(mss) {
			t.Fatalf("acknowledged up to %d, want %d", ack, iss+1+Seq(mss))
		}
		// RFC 3465 §2.1 (L = 2): one segment's bytes acknowledged grow
		// cwnd by one segment, whatever the number of ACKs; Linux counts
		// the segment once its last piece is acknowledged.
		if got := conn.ccw().CongestionWindow(); got != cwnd+mss {
			t.Errorf("sack %v: cwnd %d bytes (%d segments) after one segment acknowledged in %d ACKs, want %d",
				sack, got, got/mss, (mss+piece-1)/piece, cwnd+mss)
		}
		got := conn.ccw().CongestionWindow()
		t.Logf("sack %v: cwnd %d -> %d bytes", sack, cwnd, got)
		figures[fmt.Sprintf("cwnd growth, SACK %v", sack)] = fmt.Sprintf("%d segments for %d ACKs", (got-cwnd)/mss, (mss+piece-1)/piece)
	}
	logReliability(t, "ACK division (one segment acknowledged 10 bytes at a time)",
		"slow start grows by what is delivered, not per ACK", figures, "congestion/ack-division-no-cwnd-inflation.pkt")
}

// adversaryConn accepts a connection with a 1 MiB send buffer: with SACK
// and window scale 7 after a 10 ms handshake (sackConn10ms), or without
// options at all.
func adversaryConn(p *peer, sack bool) (*Conn, Seq) {
	p.t.Helper()
	if sack {
		return sackConn10ms(p)
	}
	return p.listenAndAcceptWith(plainSyn, SockOpts{SndBuf: 1 << 20})
}

// Duplicate-ACK spoofing: a peer that sends far more duplicate ACKs than
// segments are in flight cannot make the engine send faster than one
// segment per duplicate, nor believe more delivered than is outstanding.
// Without SACK each duplicate stands for one segment delivered, but never
// more than the flight less the hole (Linux tcp_add_reno_sack and
// tcp_limit_reno_sacked, which also takes the excess for reordering,
// tcp_check_reno_reordering); PRR (RFC 6937 §3.2, Linux
// tcp_cwnd_reduction, prrUpdate) sends no more than is delivered, and
// ssthresh/RecoverFS of it while more than ssthresh is in flight.
// The peer's window holds the flight at 10 segments: of 100 duplicates
// the first 9 count, the fast retransmission goes on the third (RFC 5681
// §3.2, the limited transmit of RFC 3042 finds the window full), and
// nothing else is sent. With SACK a duplicate ACK without SACK blocks
// delivers nothing and deems nothing lost (Linux counts delivered and
// sacked_out from the scoreboard, and RACK marks losses only from it), so
// no recovery starts and nothing is sent.
// Protection: addRenoSack's c.limitRenoSacked(0); without it the 100
// spoofed duplicates count as 100 segments delivered of 10 and the test
// fails.
func TestDupAckSpoofingCountsNoMoreThanTheFlight(t *testing.T) {
	for _, sack := range []bool{false, true} {
		p := newPeer(t, nil)
		conn, iss := adversaryConn(p, sack)
		mss := conn.MSS()
		wnd := uint16(10 * mss) // unscaled: ten segments
		if sack {
			wnd = uint16((10*mss + 127) >> 7) // scaled by 7: ten segments and 120 bytes
		}
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: wnd})
		conn.Write(p.now, make([]byte, 40*mss))
		if got := len(p.collectAll()); got != 10 {
			t.Fatalf("sack %v: %d segments sent, want 10", sack, got)
		}
		p.advance(10 * time.Millisecond)
		var sent []tseg
		for i := 1; i <= 100; i++ {
			p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: wnd})
			sent = append(sent, p.collectAll()...)
			if conn.renoSacked > conn.txq.len()-1 {
				t.Fatalf("sack %v: after %d duplicates %d segments counted delivered of %d outstanding",
					sack, i, conn.renoSacked, conn.txq.len())
			}
		}
		if sack {
			if len(sent) != 0 || conn.recovery != recoveryNone {
				t.Errorf("duplicate ACKs without SACK blocks drew %v, recovery %v", sent, conn.recovery)
			}
			continue
		}
		if len(sent) != 1 || sent[0].seq != iss+1 || len(sent[0].payload) != mss {
			t.Fatalf("100 duplicate ACKs drew %v, want the fast retransmission of %d alone", sent, iss+1)
		}
		if conn.renoSacked != 9 || conn.recovery != recoveryFast {
			t.Errorf("%d segments counted delivered, recovery %v, want 9 and fast recovery", conn.renoSacked, conn.recovery)
		}
		if ssthresh := conn.ccw().SlowStartThreshold() / mss; ssthresh != 7 {
			t.Errorf("ssthresh %d segments, want 7", ssthresh)
		}
		logReliability(t, "duplicate-ACK spoofing (100 duplicates, 10 segments in flight)",
			"counts at most the flight less the hole as delivered; one fast retransmission; with SACK, duplicates without blocks deliver nothing",
			map[string]string{"segments sent for 100 duplicates": fmt.Sprint(len(sent)), "counted delivered": fmt.Sprint(conn.renoSacked)},
			"recovery/fast-retransmit-three-dupacks.pkt", "recovery/limited-transmit-no-sack.pkt")
	}
}

// With the window open, each duplicate ACK lets at most one segment go:
// limited transmit (RFC 3042) on the first two, then PRR, which sends no
// more than is delivered (prr_out ≤ prr_delivered, RFC 6937 §3.2) and
// ssthresh/RecoverFS of it while the flight exceeds ssthresh: after 100
// duplicates no more than 100 + 1 (the fast retransmission goes on the
// third beside what PRR allows) have left, and prr_out never passes
// ceil(ssthresh × prr_delivered / RecoverFS) before the flight falls to
// ssthresh.
// Protection: prrUpdate's proportional branch
// `(ssthresh*c.prrDelivered+c.priorCwnd-1)/c.priorCwnd - c.prrOut`;
// made `c.prrDelivered - c.prrOut + 1` the test fails (4 segments on 3
// duplicates).
func TestDupAckSpoofingSendsOneSegmentPerDuplicateAtMost(t *testing.T) {
	p := newPeer(t, nil)
	conn, iss := p.listenAndAcceptWith(plainSyn, SockOpts{SndBuf: 1 << 20})
	mss := conn.MSS()
	conn.Write(p.now, make([]byte, 400*mss))
	if got := len(p.collectAll()); got != 10 {
		t.Fatalf("%d segments sent, want 10", got)
	}
	p.advance(10 * time.Millisecond)
	sent := 0
	for i := 1; i <= 100; i++ {
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
		sent += len(p.collectAll())
		if sent > i {
			t.Fatalf("%d segments sent on %d duplicate ACKs", sent, i)
		}
		if conn.recovery == recoveryFast && conn.inflightSegs() > 7 {
			if bound := (7*conn.rare.prr.delivered + 9) / 10; conn.rare.prr.out > bound {
				t.Fatalf("duplicate %d: PRR sent %d for %d delivered, want at most %d", i, conn.rare.prr.out, conn.rare.prr.delivered, bound)
			}
		}
	}
	if conn.recovery != recoveryFast || conn.rare.prr.priorCwnd != 10 {
		t.Fatalf("recovery %v from cwnd %d, want fast recovery from 10", conn.recovery, conn.rare.prr.priorCwnd)
	}
	logReliability(t, "duplicate-ACK spoofing (window open)",
		"at most one segment per duplicate; PRR sends no more than is delivered",
		map[string]string{"segments sent for 100 duplicates": fmt.Sprint(sent)},
		"recovery/prr-proportional-reduction.pkt")
}

// sackAt is a SACK option with the given blocks, relative to base.
func sackAt(base Seq, blocks ...[2]int) wire.TCPOptions {
	var o wire.TCPOptions
	for i, b := range blocks {
		o.SACK[i] = wire.SACKBlock{Left: uint32(base + Seq(b[0])), Right: uint32(base + Seq(b[1]))}
	}
	o.NumSACK = len(blocks)
	return o
}

// RFC 2018 §3 (a SACK block reports data received above the cumulative
// ACK, within what was sent) as Linux checks it (tcp_is_sackblock_valid):
// a block that reaches past SND.NXT, is reversed, or does not start above
// SND.UNA (and is not a D-SACK) is discarded whole; the valid blocks of
// the same ACK still count. Ten segments in flight; of each ACK's blocks
// only the one wholly inside [SND.UNA, SND.MAX) may SACK anything.
// Protection: processSACK's validity test (`r.GT(c.sndMax) || !l.LT(r)
// || !l.GT(una)`). With the clipping to [SND.UNA, SND.MAX) the engine
// did before, the block straddling SND.MAX SACKed segments 8 and 9 and
// the test failed.
func TestSACKBlocksOutsideTheWindowAreDiscardedWhole(t *testing.T) {
	p := newPeer(t, nil)
	conn, iss := sackConn10ms(p)
	mss := conn.MSS()
	conn.Write(p.now, make([]byte, 10*mss))
	if got := len(p.collectAll()); got != 10 {
		t.Fatalf("%d segments sent, want 10", got)
	}
	p.advance(10 * time.Millisecond)
	p.ackTo(iss+1+Seq(2*mss), wire.TCPOptions{}) // SND.UNA at segment 2
	base := iss + 1
	una := 2 * mss
	max := 10 * mss
	tried, invalidSacked := 0, 0
	for _, c := range []struct {
		name  string
		block [2]int
	}{
		{"above SND.MAX", [2]int{max + 1000, max + 5000}},
		{"straddling SND.MAX", [2]int{8 * mss, max + 1}},
		{"reversed", [2]int{7 * mss, 5 * mss}},
		{"starting at SND.UNA", [2]int{una, una + 2*mss}},
		{"straddling SND.UNA", [2]int{una - 100, una + 2*mss}},
		{"wholly below SND.UNA, not first", [2]int{0, mss}},
	} {
		// The invalid block second, behind a valid one, so it is not
		// read as a D-SACK (RFC 2883 §4: only the first block is).
		o := sackAt(base, [2]int{5 * mss, 6 * mss}, c.block)
		p.ackTo(base+Seq(una), o)
		p.collectAll() // whatever recovery sends is not under test
		if got := conn.sb.blocks; len(got) != 1 || got[0] != (seqRange{base + Seq(5*mss), base + Seq(6*mss)}) || conn.txq.sacked.segs != 1 {
			t.Fatalf("%s: scoreboard %v with %d segments SACKed, want the block of segment 5 alone",
				c.name, got, conn.txq.sacked.segs)
		}
		tried++
		invalidSacked += conn.txq.sacked.segs - 1 // segment 5's block is valid
	}
	logReliability(t, "SACK blocks outside the window (above SND.MAX, straddling, reversed, below SND.UNA)",
		"each such block discarded whole; the valid blocks of the same ACK count",
		map[string]string{"invalid blocks tried": fmt.Sprint(tried), "segments they SACKed": fmt.Sprint(invalidSacked)}, "sack/sack-blocks-outside-window-ignored.pkt")
}

// RFC 2018 §4 lets the blocks of one ACK come in any order and overlap;
// the scoreboard keeps them merged, sorted and disjoint and SACKs each
// segment once. Blocks 6-8, 2-3, 2.5-6.5 (in segments, the middle one
// overlapping both others) make one range 2-8: six segments.
// Protection: scoreboard.add's merge (the search for the first block the
// range reaches and the loop over those it overlaps); without the loop
// (a plain insert) the board holds three overlapping ranges and the test
// fails.
func TestSACKOverlappingOutOfOrderBlocksMerge(t *testing.T) {
	p := newPeer(t, nil)
	conn, iss := sackConnSent(p, 10)
	mss := conn.MSS()
	base := iss + 1
	p.ackTo(base, sackAt(base, [2]int{6 * mss, 8 * mss}, [2]int{2 * mss, 3 * mss}, [2]int{2*mss + mss/2, 6*mss + mss/2}))
	want := seqRange{base + Seq(2*mss), base + Seq(8*mss)}
	if got := conn.sb.blocks; len(got) != 1 || got[0] != want || conn.sb.sackedBytes != 6*mss {
		t.Fatalf("scoreboard %v (%d bytes), want [%v] (%d bytes)", got, conn.sb.sackedBytes, want, 6*mss)
	}
	if conn.txq.sacked.segs != 6 || conn.txq.sacked.bytes != 6*mss {
		t.Fatalf("%d segments (%d bytes) SACKed, want 6", conn.txq.sacked.segs, conn.txq.sacked.bytes)
	}
	logReliability(t, "SACK blocks overlapping and out of order",
		"merged into one range; each segment SACKed once",
		map[string]string{"ranges kept": fmt.Sprint(len(conn.sb.blocks)), "segments SACKed": fmt.Sprint(conn.txq.sacked.segs)},
		"sack/sack-overlapping-blocks-counted-once.pkt", "sack/sack-blocks-unsorted.pkt")
}

// A SACK resource attack: the peer reports 10,000 distinct one-byte
// ranges, four to an ACK, none covering a whole segment. The scoreboard
// stays within maxScoreboardBlocks (512 ranges of 8 bytes: its backing
// array is measured, not only its length), holds only disjoint sorted
// ranges, and, once full, taking in an ACK of four new ranges allocates
// nothing (testing.AllocsPerRun): the work per ACK is a search and a copy
// of the board at most per block, not a walk of everything reported.
// Protection: scoreboard.add's `if len(b) >= maxScoreboardBlocks` (drop
// the lowest block); without it the board grows to 10,000 ranges and the
// test fails.
func TestSACKScoreboardBoundedUnderTenThousandRanges(t *testing.T) {
	p := newPeer(t, nil)
	conn, iss := sackConnSent(p, 100)
	mss := conn.MSS()
	// One round of slow start: twenty segments in flight, 29,200 bytes,
	// room for 14,600 distinct one-byte ranges.
	p.ackTo(iss+1+Seq(10*mss), wire.TCPOptions{})
	if got := len(p.collectAll()); got != 20 {
		t.Fatalf("%d segments sent after the first round, want 20", got)
	}
	una := conn.sndUna
	if room := conn.sndMax.Sub(una) / 2; room < 10_000 {
		t.Fatalf("room for %d ranges in flight, want 10,000", room)
	}
	// Range k is [2k+1, 2k+2) above SND.UNA: never touching another.
	rng := func(k int) [2]int { return [2]int{2*k + 1, 2*k + 2} }
	ack := func(k int) tseg {
		return tseg{flags: fA, seq: peerISN + 1, ack: una, wnd: 512,
			opts: sackAt(una, rng(k+3), rng(k+2), rng(k+1), rng(k))}
	}
	const ranges = 10_000
	for k := 0; k < ranges-400; k += 4 {
		p.send(ack(k))
	}
	p.collectAll()
	checkBoard := func(reported int) {
		t.Helper()
		sb := &conn.sb
		if len(sb.blocks) > maxScoreboardBlocks || cap(sb.blocks) > 2*maxScoreboardBlocks {
			t.Fatalf("after %d ranges the scoreboard holds %d ranges in an array of %d", reported, len(sb.blocks), cap(sb.blocks))
		}
		for i := 1; i < len(sb.blocks); i++ {
			if !sb.blocks[i-1].end.LT(sb.blocks[i].start) {
				t.Fatalf("ranges %v and %v overlap or touch", sb.blocks[i-1], sb.blocks[i])
			}
		}
		if sb.sackedBytes != len(sb.blocks) || conn.txq.sacked.segs != 0 {
			t.Fatalf("%d bytes SACKed in %d one-byte ranges, %d segments SACKed, want equal and none",
				sb.sackedBytes, len(sb.blocks), conn.txq.sacked.segs)
		}
	}
	checkBoard(ranges - 400)
	// The last 400 ranges, 100 ACKs, prebuilt, with the allocations
	// they cost counted.
	wires := make([][]byte, 0, 101)
	for k := ranges - 400; k < ranges; k += 4 {
		s := ack(k)
		wires = append(wires, s.encode(p.remote, p.local))
	}
	i := 0
	allocs := testing.AllocsPerRun(len(wires)-1, func() {
		p.e.Input(p.now, p.remote.Addr(), p.local.Addr(), wires[i])
		i++
	})
	if i != len(wires) {
		t.Fatalf("%d ACKs taken in, want %d", i, len(wires))
	}
	checkBoard(ranges)
	if len(conn.sb.blocks) != maxScoreboardBlocks {
		t.Fatalf("%d ranges kept, want the board full (%d)", len(conn.sb.blocks), maxScoreboardBlocks)
	}
	if allocs != 0 {
		t.Fatalf("an ACK of four new ranges allocates %.1f times with the board full, want 0", allocs)
	}
	p.collect()
	if len(p.out) != 0 {
		t.Fatalf("SACKs of no whole segment drew %v", p.out)
	}
	t.Logf("after %d ranges: %d kept, array of %d (%d bytes)", ranges, len(conn.sb.blocks), cap(conn.sb.blocks), cap(conn.sb.blocks)*8)
	logReliability(t, "SACK scoreboard churn (10,000 distinct one-byte ranges)",
		"scoreboard bounded; no allocation per ACK once full",
		map[string]string{"ranges kept": fmt.Sprint(len(conn.sb.blocks)), "scoreboard memory": fmt.Sprintf("%d bytes", cap(conn.sb.blocks)*8),
			"allocations per ACK": fmt.Sprint(allocs), "CPU per attack ACK": cpuPerACK(t, p, wires)})
}

// RFC 5961 §7 (challenge ACK throttling) as Linux 6.x applies it: one
// limit per connection, tcp_invalid_ratelimit (500 ms), shared by every
// kind of blind guess (an in-window RST, a SYN, an ACK of unsent data), and
// no limit across connections: Linux's global tcp_challenge_ack_limit
// defaults to INT_MAX since its count was shown to leak, to an off-path
// attacker, whether a guess hit another connection (CVE-2016-5696). Forty
// connections each draw their own challenge at the same instant; on the
// first, the SYN 100 ms after its RST and the optimistic ACK 200 ms after
// get nothing, and an RST at 500 ms is answered again.
// Protection: sendChallengeAck's per-connection test
// `now.Sub(c.lastOOWAck) < c.e.prof.InvalidRateLimit`; without it the SYN
// is answered and the test fails. Kept in the engine instead of the
// connection (one lastOOWAck for all) the second connection's challenge
// is suppressed and the test fails.
func TestChallengeAckRateLimitPerConnectionNotGlobal(t *testing.T) {
	p := newPeer(t, nil)
	l := mustListen(t, p, local, SockOpts{})
	const n = 40
	type conn struct {
		c        *Conn
		from     netip.AddrPort
		iss, irs Seq
	}
	var conns []conn
	for i := range n {
		from := netip.AddrPortFrom(remoteIP, uint16(41000+i))
		p.inject(from, local, tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
		sa := p.next()
		p.inject(from, local, tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535})
		c, err := l.Accept(p.now)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn{c, from, sa.seq + 1, peerISN + 1})
	}
	p.expectNone()
	before := p.e.stats.ChallengeACKs
	p.advance(time.Second)
	for i, c := range conns {
		p.inject(c.from, local, tseg{flags: fR, seq: c.irs + 100})
		a := p.expect(fA, c.iss, c.irs)
		if a.dst != c.from.Addr() || c.c.State() != Established {
			t.Fatalf("connection %d: challenge %v to %v, state %v", i, a, a.dst, c.c.State())
		}
	}
	if got := p.e.stats.ChallengeACKs - before; got != n {
		t.Fatalf("%d challenge ACKs counted, want %d", got, n)
	}
	// The first connection's RST above was answered; a SYN and an ACK
	// within 500 ms of it are not.
	answered := p.e.stats.ChallengeACKs
	first := conns[0]
	p.advance(100 * time.Millisecond)
	p.inject(first.from, local, tseg{flags: fS, seq: first.irs + 50, wnd: 1000})
	p.advance(100 * time.Millisecond)
	p.inject(first.from, local, tseg{flags: fA, seq: first.irs, ack: first.iss + 5000, wnd: 65535})
	p.expectNone()
	answers := 1 + p.e.stats.ChallengeACKs - answered
	p.advance(300 * time.Millisecond)
	p.inject(first.from, local, tseg{flags: fR, seq: first.irs + 200})
	p.expect(fA, first.iss, first.irs)
	for i, c := range conns {
		if c.c.State() != Established {
			t.Fatalf("connection %d: state %v", i, c.c.State())
		}
	}
	logReliability(t, "blind in-window RST, SYN and ACK injection (RFC 5961 §§3-5)",
		"challenge ACK instead of acting; one per 500 ms per connection, no global limit (CVE-2016-5696)",
		map[string]string{"connections challenged at once": fmt.Sprint(n), "answers to RST+SYN+ACK in 500 ms": fmt.Sprint(answers)},
		"rst/rst-in-window-challenge-ack.pkt", "rst/syn-in-window-challenge-ack.pkt", "rst/challenge-ack-rate-limit.pkt")
}

// A peer that never opens its window: it answers every zero-window probe
// with window 0, forever. RFC 9293 §3.8.6.1 and RFC 1122 §4.2.2.17: the
// probing goes on as long as the probes are answered, backing off
// exponentially up to the RTO ceiling (Linux tcp_probe0_when: rto <<
// backoff, at most TCP_RTO_MAX, 120 s) and staying there. Memory is
// bounded by the send buffer: writes beyond its limit (Linux's sk_sndbuf,
// twice SO_SNDBUF) are refused with EAGAIN however much the application
// tries. With TCP_USER_TIMEOUT (RFC
// 5482, Linux tcp_probe_timer) the connection ends with ETIMEDOUT, no RST,
// exactly the user timeout after the first probe, the last probe timer
// clamped to that instant (tcp_clamp_probe0_to_user_timeout).
// Protection: rttEstimator.backedOff's `if d > r.max { d = r.max }`;
// without it the eighth interval (RTO 1 s here) is 128 s and the test
// fails.
func TestZeroWindowForeverProbesAtRTOMaxWithBoundedMemory(t *testing.T) {
	for _, ut := range []time.Duration{0, 30 * time.Minute} {
		p := newPeer(t, nil)
		c, _ := p.listenAndAcceptWith(plainSyn, SockOpts{SndBuf: 64 << 10})
		c.SetNoDelay(p.now, true)
		c.Write(p.now, make([]byte, 3000))
		p.collectAll()
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: c.sndMax, wnd: 0})
		c.SetUserTimeout(p.now, ut)
		// The application writes 100 MiB into the shut window.
		chunk := make([]byte, 1<<20)
		accepted := 0
		for range 100 {
			n, err := c.Write(p.now, chunk)
			accepted += n
			if n == 0 && err != ErrWouldBlock {
				t.Fatalf("Write into a full buffer: %d, %v, want EAGAIN", n, err)
			}
		}
		// Linux's sk_sndbuf is twice SO_SNDBUF (sndBufLimit), and a write
		// below it may start one more buffer of at most the size goal.
		limit := c.sndBufLimit() + c.sizeGoal()
		if c.sndBuf.Len() > limit || accepted != c.sndBuf.Len() || accepted == 0 {
			t.Fatalf("send buffer holds %d of %d accepted, limit %d", c.sndBuf.Len(), accepted, limit)
		}
		t.Logf("100 MiB written into a shut window: %d bytes accepted (SO_SNDBUF %d)", accepted, c.sndBufMax)
		if out := p.collectAll(); len(out) != 0 {
			t.Fatalf("sent into a zero window: %v", out)
		}
		rto, rtoMax := c.rtt.rto, p.e.prof.RTOMax
		if rtoMax != 120*time.Second {
			t.Fatalf("RTOMax %v, want Linux's 120 s", rtoMax)
		}
		start := p.now
		var probes []time.Duration
		for len(probes) < 40 && c.State() == Established {
			p.step()
			for _, s := range p.collectAll() {
				if s.seq != c.sndUna-1 || len(s.payload) != 0 {
					t.Fatalf("probe %v, want SND.UNA-1 with no data", s)
				}
				probes = append(probes, s.at.Sub(start))
				p.send(tseg{flags: fA, seq: peerISN + 1, ack: c.sndUna, wnd: 0}) // answered, still shut
			}
		}
		// The instants: rto, then each interval double the last, up to
		// RTOMax.
		var want []time.Duration
		at, iv := time.Duration(0), rto
		for len(want) < 40 && (ut == 0 || at+iv <= rto+ut) {
			at += iv
			want = append(want, at)
			iv = min(2*iv, rtoMax)
		}
		if len(probes) != len(want) {
			t.Fatalf("user timeout %v: %d probes at %v, want %d at %v", ut, len(probes), probes, len(want), want)
		}
		for i := range want {
			if probes[i] != want[i] {
				t.Fatalf("user timeout %v: probe %d at %v, want %v (all: %v)", ut, i, probes[i], want[i], probes)
			}
		}
		if ut == 0 {
			if c.State() != Established || c.sndBuf.Len() != accepted {
				t.Fatalf("after %d answered probes: %v, %d buffered", len(probes), c.State(), c.sndBuf.Len())
			}
			logReliability(t, "peer that never opens its window",
				"probes back off to RTO max (120 s) and go on; the send buffer bounds memory",
				map[string]string{"probes in the run": fmt.Sprint(len(probes)), "last interval": (probes[len(probes)-1] - probes[len(probes)-2]).String(),
					"bytes accepted of 100 MiB written": fmt.Sprint(accepted)},
				"flow/zero-window-probe-backoff.pkt")
			continue
		}
		// The probe timer after the last was clamped to the user timeout,
		// counted from the first probe, and ended the connection.
		if got := p.now.Sub(start); got != rto+ut || c.State() != Closed || !errors.Is(c.HardErr(), ErrTimedOut) {
			t.Fatalf("gave up at %v in %v with %v, want %v, CLOSED, ETIMEDOUT", got, c.State(), c.HardErr(), rto+ut)
		}
		p.expectNone() // no RST
		logReliability(t, "peer that never opens its window, with TCP_USER_TIMEOUT",
			"ETIMEDOUT exactly the user timeout after the first probe, no RST",
			map[string]string{"user timeout": ut.String(), "probes": fmt.Sprint(len(probes))},
			"syscalls/user-timeout.pkt")
	}
}

// Absurd MSS options. Linux behaviour: tcp_parse_options ignores an MSS
// of 0 (the connection uses the default of 536, RFC 9293 §3.7.1, as if
// the option were absent), and __tcp_mtu_to_mss raises any other value
// below tcp_min_snd_mss to it (48; checked under the real packetdrill on
// Linux 6.18: an MSS of 0 gives 536-byte segments). With timestamps the
// 12 bytes of the option come off that (tcp_current_mss): 36.
// Protection: learnSynOptions's `max(int(o.MSS), p.MinSendMSS)` (without
// it an MSS of 20 sends 20-byte segments)
// and its `o.MSS != 0` (without it an MSS of 0 gives 48, not 536).
func TestTinyPeerMSSRaisedToMinSendMSS(t *testing.T) {
	for _, c := range []struct {
		mss  uint16
		ts   bool
		want int
	}{{0, false, 536}, {1, false, 48}, {20, false, 48}, {47, false, 48}, {48, false, 48}, {63, false, 63}, {1, true, 36}} {
		p := newPeer(t, nil)
		o := wire.TCPOptions{HasMSS: true, MSS: c.mss}
		if c.ts {
			o.HasTS, o.TSVal = true, 100
		}
		conn, iss := p.listenAndAccept(o)
		if conn.MSS() != c.want {
			t.Errorf("MSS option %d (timestamps %v): send MSS %d, want %d", c.mss, c.ts, conn.MSS(), c.want)
			continue
		}
		conn.SetNoDelay(p.now, true)
		conn.Write(p.now, make([]byte, 4*c.want))
		segs := p.collectAll()
		if len(segs) != 4 || segs[0].seq != iss+1 || len(segs[0].payload) != c.want {
			t.Errorf("MSS option %d: 4 MSS written went as %v, want 4 segments of %d", c.mss, segs, c.want)
		}
	}
	logReliability(t, "absurd MSS (0 to 63)",
		"0 ignored (536); below 48 raised to tcp_min_snd_mss (48)",
		map[string]string{"MSS 1 gives": "48-byte segments", "MSS 0 gives": "536-byte segments"},
		"options/peer-mss-tiny-raised-to-min-snd-mss.pkt", "options/peer-mss-zero-ignored.pkt")
}

// Option lengths that lie. Linux behaviour (tcp_parse_options): an option
// whose length byte is 0 or 1 ("silly options") or runs past the header
// ends the parsing; what came before it counts, and the segment is
// processed, not dropped. The peer's data segments carry a timestamp and
// then such an option: the data is taken and acknowledged, and the
// timestamp before the bad option is echoed.
// Protection: Engine.Input takes the options parsed before the error
// (`_ = wire.ParseTCPOptions(...)`); with the drop it did before (`if
// err != nil { InErrs++; return }`) the data was never acknowledged and
// the test failed.
func TestLyingOptionLengthsEndParsingNotTheSegment(t *testing.T) {
	for _, c := range []struct {
		name string
		opt  []byte
	}{
		{"length 0", []byte{wire.OptMSS, 0, 0, 0}},
		{"length 1", []byte{99, 1, 1, 1}},
		{"length past the header", []byte{99, 40, 0, 0}},
	} {
		p := newPeer(t, nil)
		syn := wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 100}
		conn, iss := p.listenAndAccept(syn)
		// A segment with options NOP NOP TS(tsval, 0) and the lie.
		tsval := uint32(200)
		opts := []byte{wire.OptNOP, wire.OptNOP, wire.OptTimestamps, 10, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(opts[4:], tsval)
		opts = append(opts, c.opt...)
		payload := []byte("hello")
		b := make([]byte, wire.TCPHeaderLen+len(opts)+len(payload))
		copy(b[wire.TCPHeaderLen:], opts)
		wire.PutTCPHeader(b, wire.TCPFields{SrcPort: remote.Port(), DstPort: local.Port(),
			Seq: uint32(peerISN + 1), Ack: uint32(iss + 1), Flags: fPA, Window: 65535}, len(opts))
		copy(b[wire.TCPHeaderLen+len(opts):], payload)
		wire.TCP(b).ComputeChecksumAddr(remote.Addr(), local.Addr())
		p.e.Input(p.now, remote.Addr(), local.Addr(), b)
		p.collect()
		buf := make([]byte, 16)
		n, err := conn.Read(p.now, buf)
		if err != nil || string(buf[:n]) != "hello" {
			t.Fatalf("%s: read %q, %v, want the segment's data", c.name, buf[:n], err)
		}
		p.advance(200 * time.Millisecond) // the delayed ACK at the latest
		a := p.next()
		if a.ack != peerISN+1+Seq(len(payload)) || !a.opts.HasTS || a.opts.TSEcr != tsval {
			t.Fatalf("%s: got %v echoing TSval %d, want the ACK of the data echoing %d", c.name, a, a.opts.TSEcr, tsval)
		}
	}
	logReliability(t, "option lengths that lie (0, 1, past the header)",
		"option parsing stops there; the segment is processed",
		map[string]string{"segments dropped": "0"})
}

// Timestamps that lie (RFC 7323 §5.3 R1, §5.2's modular comparison, §5.5)
// as Linux checks them (tcp_paws_discard → tcp_paws_check with
// TCP_PAWS_WINDOW 1): a data segment passes PAWS when (s32)(TS.Recent -
// TSval) <= 1, so a TSval one behind passes and two behind does not, and
// a TSval exactly 2^31 ahead counts as newer (the difference is -2^31)
// and becomes TS.Recent (tcp_replace_ts_recent), while 2^31 + 1 ahead is
// older. A dropped segment is answered with an ACK (rate limited) and
// leaves RCV.NXT. From 24 days after the last TS.Recent update any TSval
// passes and resynchronizes (§5.5; Linux: !time_before32(now,
// ts_recent_stamp + TCP_PAWS_24DAYS), at 24 days, not after).
// Protection: pawsReject's `int32(c.tsRecent-tsval) <= win` with
// pawsWindow; made the plain `int32(tsval-c.tsRecent) >= 0` this replaces,
// the segment one behind is dropped and the test fails.
func TestPAWSWindowWrapAndIdleRule(t *testing.T) {
	p := newPeer(t, nil)
	syn := wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 1000}
	conn, iss := p.listenAndAccept(syn)
	// listenAndAccept's ACK carried TSval 1001: TS.Recent.
	if conn.tsRecent != 1001 {
		t.Fatalf("TS.Recent %d after the handshake, want 1001", conn.tsRecent)
	}
	next := peerISN + 1
	data := func(tsval uint32) {
		p.send(tseg{flags: fPA, seq: next, ack: iss + 1, wnd: 65535,
			opts: wire.TCPOptions{HasTS: true, TSVal: tsval, TSEcr: 1}, payload: []byte("x")})
	}
	steps := []struct {
		name    string
		tsval   func(recent uint32) uint32
		ok      bool
		advance time.Duration
	}{
		{"equal", func(r uint32) uint32 { return r }, true, 0},
		{"one behind", func(r uint32) uint32 { return r - 1 }, true, 0},
		{"two behind", func(r uint32) uint32 { return r - 2 }, false, 0},
		{"2^31 ahead", func(r uint32) uint32 { return r + 1<<31 }, true, time.Second},
		{"2^31+1 ahead", func(r uint32) uint32 { return r + 1<<31 + 1 }, false, time.Second},
		// TS.Recent was set one second before this step.
		{"older, 1 s short of 24 days idle", func(r uint32) uint32 { return r - 1000 }, false, 24*24*time.Hour - 2*time.Second},
		{"older, 24 days idle", func(r uint32) uint32 { return r - 1000 }, true, time.Second},
	}
	for _, st := range steps {
		p.advance(st.advance)
		p.collectAll()
		recent := conn.tsRecent
		tsval := st.tsval(recent)
		drops := p.e.stats.PAWSDrops
		data(tsval)
		a := p.next()
		if st.ok {
			next++
			if a.ack != next || conn.rcvNxt != next {
				t.Fatalf("%s (TSval %d, TS.Recent %d): got %v, RCV.NXT %d, want the data taken", st.name, tsval, recent, a, conn.rcvNxt)
			}
			// Not older: it becomes TS.Recent, except the one-behind.
			want := tsval
			if int32(recent-tsval) > 0 && st.name != "older, 24 days idle" {
				want = recent
			}
			if conn.tsRecent != want {
				t.Fatalf("%s: TS.Recent %d, want %d", st.name, conn.tsRecent, want)
			}
		} else {
			if a.ack != next || conn.rcvNxt != next || p.e.stats.PAWSDrops != drops+1 || conn.tsRecent != recent {
				t.Fatalf("%s (TSval %d, TS.Recent %d): got %v, RCV.NXT %d, PAWS drops %d, want the segment dropped with an ACK",
					st.name, tsval, recent, a, conn.rcvNxt, p.e.stats.PAWSDrops-drops)
			}
		}
		p.expectNone()
	}
	conn.Read(p.now, make([]byte, 16))
	logReliability(t, "timestamps that lie or wrap (PAWS)",
		"one behind passes, two behind dropped with an ACK; 2^31 ahead newer; any TSval after 24 days idle",
		map[string]string{"cases": fmt.Sprint(len(steps))},
		"data/paws-old-timestamp.pkt", "paws/tsval-wraparound.pkt")
}

// RFC 7323 §2.3: a window scale above 14 is treated as 14 (Linux
// tcp_parse_options: TCP_MAX_WSCALE, logged and clamped). A peer offering
// 15, 16 or 255 and then a window field of 1 gets a send window of 2^14
// bytes, not 2^15 or a shift past the width of the window.
// Protection: learnSynOptions's `min(o.WScale, 14)`; without it the shift
// of 15 gives a window of 32768 and the test fails.
func TestWindowScaleAbove14TreatedAs14(t *testing.T) {
	for _, ws := range []uint8{14, 15, 16, 255} {
		p := newPeer(t, nil)
		conn, iss := p.listenAndAccept(wire.TCPOptions{HasMSS: true, MSS: 1460, HasWScale: true, WScale: ws})
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 1})
		if conn.sndWscale != 14 || conn.sndWnd != 1<<14 {
			t.Errorf("window scale %d: shift %d, send window %d for a window field of 1, want 14 and %d", ws, conn.sndWscale, conn.sndWnd, 1<<14)
		}
		conn.SetNoDelay(p.now, true)
		conn.Write(p.now, make([]byte, 1<<16))
		sent := 0
		for _, s := range p.collectAll() {
			sent += len(s.payload)
		}
		if sent > 1<<14 {
			t.Errorf("window scale %d: %d bytes sent into a window of %d", ws, sent, 1<<14)
		}
	}
	logReliability(t, "window scale above 14",
		"treated as 14",
		map[string]string{"shifts tried": "15, 16, 255"},
		"handshake/passive-open-wscale-15-clamped.pkt")
}
