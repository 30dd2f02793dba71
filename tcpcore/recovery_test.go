package tcpcore

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"tunstack/policy"
	"tunstack/wire"
)

// sendSegments makes an established connection (plain or SACK) send n
// full segments and returns them.
func sendSegments(t *testing.T, p *peer, c *Conn, n int) []tseg {
	t.Helper()
	c.SetNoDelay(p.now, true)
	c.Write(p.now, make([]byte, n*c.MSS()))
	var out []tseg
	for i := 0; i < n; i++ {
		out = append(out, p.next())
	}
	return out
}

func ackFor(s tseg) Seq { return s.seq + Seq(len(s.payload)) }

// acceptOnPath is listenAndAccept on a path of round-trip time rtt: the
// handshake's ACK comes rtt after the SYN-ACK, which gives the connection
// its first RTT sample, and RACK its minimum RTT. Loss detection by time
// needs one: on a path of no delay every segment is late at once.
func acceptOnPath(t *testing.T, p *peer, synOpts wire.TCPOptions, rtt time.Duration) (*Conn, Seq) {
	t.Helper()
	l, err := p.e.Listen(p.now, local, 16, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: synOpts})
	sa := p.next()
	if sa.flags != fSA || sa.ack != peerISN+1 {
		t.Fatalf("got %v, want SYN-ACK ack=%d", sa, peerISN+1)
	}
	p.advance(rtt)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535, opts: tsEcho(synOpts, sa)})
	c, err := l.Accept(p.now)
	if err != nil {
		t.Fatalf("accept after handshake: %v", err)
	}
	return c, sa.seq
}

var sackSyn = wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true}

// RFC 5681 §3.2: the third duplicate ACK triggers a retransmission of the
// first unacknowledged segment at once, without waiting for the RTO.
func TestFastRetransmitOnThirdDupAck(t *testing.T) {
	prof := testProfile()
	prof.Congestion = "reno"
	p := newPeer(t, prof)
	c, iss := p.listenAndAccept(plainSyn)
	segs := sendSegments(t, p, c, 6)
	una := iss + 1
	for i := 1; i <= 2; i++ {
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: una, wnd: 65535})
		// RFC 3042 limited transmit would send new data here; there is none.
		p.expectNone()
	}
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: una, wnd: 65535})
	r := p.expect(fA, una, peerISN+1)
	if len(r.payload) != len(segs[0].payload) {
		t.Fatalf("retransmitted %d bytes, want the first segment", len(r.payload))
	}
	if c.Info().Counters.FastRetransmits != 1 || c.Info().Counters.Timeouts != 0 {
		t.Fatalf("counters %+v", c.Info().Counters)
	}
	if c.Info().SSThreshBytes != 6*c.MSS()/2 {
		t.Fatalf("ssthresh %d, want FlightSize/2 = %d", c.Info().SSThreshBytes, 3*c.MSS())
	}
}

// With CUBIC (the linux profile's default, as in Linux) the reduction on
// loss is RFC 9438 §4.6's beta = 0.7 of cwnd.
func TestFastRetransmitCubicReduction(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	sendSegments(t, p, c, 6)
	cwnd := c.Info().CwndBytes
	for i := 0; i < 3; i++ {
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
	}
	p.expect(fA, iss+1, peerISN+1)
	if got, want := c.Info().SSThreshBytes, cwnd*7/10; got != want || c.Info().Congestion != "cubic" {
		t.Fatalf("%s ssthresh %d, want 0.7 * cwnd %d = %d", c.Info().Congestion, got, cwnd, want)
	}
}

// RFC 3042 limited transmit: the first two duplicate ACKs each let one new
// segment out.
func TestLimitedTransmit(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.SetNoDelay(p.now, true)
	mss := c.MSS()
	c.Write(p.now, make([]byte, 12*mss)) // IW10 lets 10 out
	for i := 0; i < 10; i++ {
		p.next()
	}
	p.expectNone()
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
	p.expect(fA, iss+1+Seq(10*mss), peerISN+1)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
	p.expect(fPA, iss+1+Seq(11*mss), peerISN+1)
}

// RFC 6582: a partial ACK in NewReno recovery retransmits the next hole at
// once and stays in recovery. As Linux (tcp_try_undo_recovery), recovery
// without SACK holds when the ACK reaches the recovery point exactly, until
// something above it is acknowledged (RFC 6582 §3.2 step 1's protection:
// duplicate ACKs may still come from the retransmissions); then it ends
// with cwnd at ssthresh.
func TestNewRenoPartialAckRetransmitsNextHole(t *testing.T) {
	prof := testProfile()
	prof.Congestion = "newreno"
	p := newPeer(t, prof)
	c, iss := p.listenAndAccept(plainSyn)
	segs := sendSegments(t, p, c, 8)
	una := iss + 1
	for i := 0; i < 3; i++ {
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: una, wnd: 65535})
	}
	p.expect(fA, una, peerISN+1) // fast retransmit of segment 0
	p.out = nil
	// Segments 0 and 1 were lost; the retransmission of 0 brings a partial
	// ACK up to segment 1, which is still missing.
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ackFor(segs[0]), wnd: 65535})
	r := p.next()
	if r.seq != segs[1].seq || len(r.payload) == 0 {
		t.Fatalf("after the partial ACK got %v, want segment 1 (seq %d) retransmitted", r, segs[1].seq)
	}
	if c.recovery != recoveryFast {
		t.Fatalf("left recovery on a partial ACK")
	}
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ackFor(segs[7]), wnd: 65535})
	if c.recovery != recoveryFast {
		t.Fatalf("recovery ended on the ACK of the recovery point itself")
	}
	c.Write(p.now, make([]byte, c.MSS()))
	more := p.next()
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ackFor(more), wnd: 65535})
	if c.recovery != recoveryNone {
		t.Fatalf("still in recovery after data above the recovery point was acknowledged")
	}
	if c.Info().CwndBytes != c.Info().SSThreshBytes {
		t.Fatalf("cwnd %d after recovery, want ssthresh %d", c.Info().CwndBytes, c.Info().SSThreshBytes)
	}
}

// RFC 6675: with SACK, several holes in one window are retransmitted
// during a single recovery, each once, as soon as it is deemed lost,
// skipping what the peer SACKed.
func TestSACKRecoveryRetransmitsOnlyHoles(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.listenAndAccept(wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true})
	segs := sendSegments(t, p, c, 10)
	// Segments 1 and 4 are lost; the peer SACKs the rest as they arrive.
	sack := func(blocks ...[2]int) wire.TCPOptions {
		var o wire.TCPOptions
		for i, b := range blocks {
			o.SACK[i] = wire.SACKBlock{Left: uint32(segs[b[0]].seq), Right: uint32(ackFor(segs[b[1]]))}
		}
		o.NumSACK = len(blocks)
		return o
	}
	ack0 := ackFor(segs[0])
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ack0, wnd: 65535})
	p.out = nil
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ack0, wnd: 65535, opts: sack([2]int{2, 2})})
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ack0, wnd: 65535, opts: sack([2]int{2, 3})})
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ack0, wnd: 65535, opts: sack([2]int{5, 5}, [2]int{2, 3})})
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ack0, wnd: 65535, opts: sack([2]int{5, 6}, [2]int{2, 3})})
	rtx := dataSegs(p.collectAll())
	if len(rtx) == 0 || rtx[0].seq != segs[1].seq {
		t.Fatalf("retransmissions %v, want segment 1 (%d) first", rtx, segs[1].seq)
	}
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ack0, wnd: 65535, opts: sack([2]int{5, 9}, [2]int{2, 3})})
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ackFor(segs[3]), wnd: 65535, opts: sack([2]int{5, 9})})
	rtx = append(rtx, dataSegs(p.collectAll())...)
	sent := map[int]int{}
	for _, s := range rtx {
		for k := range segs {
			if s.seq == segs[k].seq {
				sent[k]++
			}
		}
	}
	// Every segment here went at one instant: a retransmission is not
	// lost for a SACK of what was sent before it (rack.go, sentAfter).
	if want := map[int]int{1: 1, 4: 1}; !maps.Equal(sent, want) {
		t.Fatalf("segments retransmitted (index: times) %v, want the holes once each: %v", sent, want)
	}
	if c.Info().Counters.SACKRecoveries != 1 || c.Info().Counters.Timeouts != 0 {
		t.Fatalf("counters %+v", c.Info().Counters)
	}
}

func (p *peer) collectAll() []tseg {
	p.collect()
	out := p.out
	p.out = nil
	return out
}

// RFC 2883 §4.1.1: a duplicate segment is reported in the first SACK block
// of the ACK it triggers.
func TestDSACKSentForDuplicateSegment(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true})
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
	p.out = nil
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
	a := p.expect(fA, iss+1, peerISN+101)
	if a.opts.NumSACK != 1 || a.opts.SACK[0] != (wire.SACKBlock{Left: uint32(peerISN + 1), Right: uint32(peerISN + 101)}) {
		t.Fatalf("ACK options %+v, want D-SACK %d-%d", a.opts, peerISN+1, peerISN+101)
	}
	if c.Info().Counters.DSACKsSent != 1 {
		t.Fatalf("DSACKsSent %d", c.Info().Counters.DSACKsSent)
	}
}

// RFC 2883 §4.1.2: a duplicate of out-of-order data: the D-SACK block,
// then the block containing it.
func TestDSACKForDuplicateOutOfOrderData(t *testing.T) {
	p := newPeer(t, nil)
	_, iss := p.listenAndAccept(wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true})
	base := peerISN + 1
	p.send(tseg{flags: fA, seq: base + 100, ack: iss + 1, wnd: 65535, payload: make([]byte, 200)})
	p.out = nil
	p.send(tseg{flags: fA, seq: base + 150, ack: iss + 1, wnd: 65535, payload: make([]byte, 50)})
	a := p.expect(fA, iss+1, base)
	if a.opts.NumSACK != 2 || a.opts.SACK[0].Left != uint32(base+150) || a.opts.SACK[1].Left != uint32(base+100) {
		t.Fatalf("SACK %+v, want D-SACK 150-200 then 100-300", a.opts)
	}
}

// RFC 3708 / Linux undo: when D-SACKs show every retransmission of a
// recovery was unnecessary, the window reduction is undone.
func TestDSACKUndoesSpuriousRecovery(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := acceptOnPath(t, p, sackSyn, 10*time.Millisecond)
	segs := sendSegments(t, p, c, 8)
	cwndBefore := c.Info().CwndBytes
	ack0 := ackFor(segs[0])
	p.advance(10 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ack0, wnd: 65535})
	for k := 2; k <= 4; k++ {
		var o wire.TCPOptions
		o.SACK[0] = wire.SACKBlock{Left: uint32(segs[2].seq), Right: uint32(ackFor(segs[k]))}
		o.NumSACK = 1
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: ack0, wnd: 65535, opts: o})
	}
	if c.recovery != recoveryFast {
		t.Fatalf("not in recovery")
	}
	p.expect(fA, segs[1].seq, peerISN+1)
	if c.Info().CwndBytes >= cwndBefore && c.Info().SSThreshBytes >= cwndBefore {
		t.Fatalf("no reduction on entering recovery")
	}
	// Segment 1 was only reordered: it arrives, and everything after it,
	// and then our retransmission of it arrives too; the peer reports the
	// duplicate.
	p.advance(10 * time.Millisecond)
	var o wire.TCPOptions
	o.SACK[0] = wire.SACKBlock{Left: uint32(segs[1].seq), Right: uint32(ackFor(segs[1]))}
	o.NumSACK = 1
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ackFor(segs[7]), wnd: 65535, opts: o})
	if c.Info().Counters.SpuriousUndos != 1 {
		t.Fatalf("no undo: counters %+v", c.Info().Counters)
	}
	if c.Info().CwndBytes < cwndBefore {
		t.Fatalf("cwnd %d after undo, want at least %d", c.Info().CwndBytes, cwndBefore)
	}
	if c.recovery != recoveryNone {
		t.Fatalf("state %v after the undo, want open", c.recovery)
	}
}

// RFC 5681 §3.1 and RFC 6298 §5.4: on RTO cwnd drops to one segment and
// only the first unacknowledged segment goes out; each ACK then lets slow
// start retransmit more.
func TestRTORetransmitsOneSegmentThenSlowStarts(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	segs := sendSegments(t, p, c, 6)
	p.step()
	p.expect(fA, iss+1, peerISN+1)
	p.expectNone()
	if c.Info().CwndBytes != c.MSS() {
		t.Fatalf("cwnd %d after RTO, want 1 MSS", c.Info().CwndBytes)
	}
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ackFor(segs[0]), wnd: 65535})
	a, b := p.next(), p.next()
	if a.seq != segs[1].seq || b.seq != segs[2].seq {
		t.Fatalf("after the first ACK got %v and %v, want segments 1 and 2", a, b)
	}
}

// A peer that invents SACK blocks cannot grow the scoreboard without bound,
// and blocks outside what we sent are ignored.
func TestScoreboardBoundedUnderHostileSACK(t *testing.T) {
	var sb scoreboard
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		l := Seq(rng.Uint32() % 10_000_000)
		sb.add(l, l.Add(1+int(rng.Uint32()%3)))
		if len(sb.blocks) > maxScoreboardBlocks {
			t.Fatalf("scoreboard grew to %d blocks", len(sb.blocks))
		}
	}
	total := 0
	for i, b := range sb.blocks {
		total += b.end.Sub(b.start)
		if i > 0 && !sb.blocks[i-1].end.LT(b.start) {
			t.Fatalf("blocks overlap or touch: %v %v", sb.blocks[i-1], b)
		}
	}
	if total != sb.sackedBytes {
		t.Fatalf("sackedBytes %d, blocks hold %d", sb.sackedBytes, total)
	}
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true})
	sendSegments(t, p, c, 2)
	var o wire.TCPOptions
	o.SACK[0] = wire.SACKBlock{Left: uint32(iss + 100000), Right: uint32(iss + 200000)}
	o.NumSACK = 1
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, opts: o})
	if !c.sb.empty() {
		t.Fatalf("a block beyond SND.MAX entered the scoreboard: %v", c.sb.blocks)
	}
}

// With loss, most retransmissions are fast (duplicate ACKs / SACK) rather
// than by timeout, with and without SACK.
func TestLossRecoveryMostlyFast(t *testing.T) {
	for _, sack := range []bool{true, false} {
		prof := policy.Linux()
		prof.SACK = sack
		s := newSim(t, prof, 10*time.Millisecond, 0.02, 11)
		transfer(t, s, 4<<20)
		fast, rto := s.aFast, s.aRTO
		if fast <= rto {
			t.Fatalf("sack=%v: %d fast vs %d timeout retransmissions", sack, fast, rto)
		}
	}
}

// acceptSACKAfter10ms accepts a SACK connection whose handshake took
// 10 ms (its first RTT sample), and returns it with our SYN-ACK.
func (p *peer) acceptSACKAfter10ms() (*Conn, tseg) {
	p.t.Helper()
	l, _ := p.e.Listen(p.now, local, 4, SockOpts{})
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true}})
	sa := p.next()
	p.now = p.now.Add(10 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535})
	c, _ := l.Accept(p.now)
	return c, sa
}

// RFC 8985 §7: with SACK, a lone outstanding segment is probed at
// 2*SRTT + WCDelAckT (capped by the RTO), the RTO is then re-armed from
// the probe, and only after it does backoff start.
func TestTailLossProbeBeforeRTO(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.acceptSACKAfter10ms()
	c.Write(p.now, make([]byte, 1000))
	orig := p.next()
	var at []time.Duration
	for i := 0; i < 3; i++ {
		p.step()
		r := p.next()
		if r.seq != orig.seq || len(r.payload) != 1000 {
			t.Fatalf("retransmission %d: %v", i, r)
		}
		at = append(at, r.at.Sub(orig.at))
	}
	// SRTT 10 ms: PTO = min(2*10+200, RTO 10+200) = 210 ms; then the RTO
	// 210 ms after the probe; then doubled.
	want := []time.Duration{210, 420, 840}
	for i := range want {
		if at[i] != want[i]*time.Millisecond {
			t.Fatalf("retransmissions at %v, want %v ms", at, want)
		}
	}
	if c.Info().Counters.TailLossProbes != 1 || c.Info().Counters.Timeouts != 2 {
		t.Fatalf("counters %+v", c.Info().Counters)
	}
}

// Linux behaviour (tcp_send_loss_probe, skb_still_in_host_queue): a tail
// loss probe does not resend a segment that has not left the host, the
// packet the engine made for it not yet released by the driver (as when
// the goroutine that writes to the TUN waits for a CPU): no probe, counted
// as TCPSpuriousRtxHostQueues, and the RTO, armed when the segments were
// sent, fires at its own instant. Released in time, the same flight is
// probed at 2*SRTT + 2 ms.
func TestTailLossProbeNotSentWhileTheSegmentIsStillInTheHost(t *testing.T) {
	for _, held := range []bool{false, true} {
		t.Run(fmt.Sprintf("held %v", held), func(t *testing.T) {
			p := newPeer(t, nil)
			c, sa := p.acceptSACKAfter10ms()
			c.Write(p.now, make([]byte, 2*1460)) // two full segments: PTO = 2*10 + 2 ms
			sent := p.now
			var kept []*Packet
			if held {
				kept = p.e.Output(nil) // the driver has not written them yet
			} else {
				p.next()
				p.next()
			}
			p.advance(22 * time.Millisecond)
			if !held {
				r := p.next()
				if r.seq != sa.seq+1+1460 || len(r.payload) != 1460 || r.at.Sub(sent) != 22*time.Millisecond {
					t.Fatalf("probe %v at %v, want the last segment again 22 ms after the send", r, r.at.Sub(sent))
				}
				if n := c.Info().Counters.TailLossProbes; n != 1 {
					t.Fatalf("TailLossProbes = %d, want 1", n)
				}
				return
			}
			p.expectNone()
			st := p.e.Stats()
			if st.RtxHostQueues != 1 || st.LossProbes != 0 || c.Info().Counters.TailLossProbes != 0 {
				t.Fatalf("RtxHostQueues %d, LossProbes %d, TailLossProbes %d; want 1, 0, 0",
					st.RtxHostQueues, st.LossProbes, c.Info().Counters.TailLossProbes)
			}
			p.e.Release(kept) // written at last
			p.step()
			r := p.next()
			// RTO: SRTT + max(4*RTTVAR, 200 ms) = 210 ms from the send;
			// the head segment again.
			if r.seq != sa.seq+1 || len(r.payload) != 1460 || r.at.Sub(sent) != 210*time.Millisecond {
				t.Fatalf("retransmission %v at %v, want the first segment 210 ms after the send", r, r.at.Sub(sent))
			}
			if n := c.Info().Counters.Timeouts; n != 1 {
				t.Fatalf("Timeouts = %d, want 1", n)
			}
		})
	}
}

// RFC 6691: options count against the MSS. A data segment that carries
// SACK blocks carries correspondingly less data, so it still fits the
// path (found by 1,000 concurrent echoes over a 1500-byte link).
func TestDataSegmentWithSACKFitsMSS(t *testing.T) {
	p := newPeer(t, nil)
	syn := wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true, HasTS: true, TSVal: 1}
	c, iss := p.listenAndAccept(syn)
	base := peerISN + 1
	for i := 0; i < 3; i++ { // three holes: three SACK blocks
		p.send(tseg{flags: fA, seq: base + Seq(200*i+100), ack: iss + 1, wnd: 65535, payload: make([]byte, 50),
			opts: wire.TCPOptions{HasTS: true, TSVal: 2, TSEcr: 1}})
	}
	p.collectAll()
	c.SetNoDelay(p.now, true)
	c.Write(p.now, make([]byte, 4000))
	for _, s := range p.collectAll() {
		if s.opts.NumSACK == 0 {
			t.Fatalf("data segment without the SACK blocks: %v", s)
		}
		if opt := s.opts.EncodedLen(); len(s.payload)+opt > 1460 {
			t.Fatalf("segment carries %d bytes of data and %d of options: more than the 1460-byte MSS", len(s.payload), opt)
		}
	}
}

// RFC 6675 §2: on a SACK connection an ACK counts as a duplicate only if
// it SACKs new data. Copies of one ACK (the network duplicated it) and
// ACKs that only carry a D-SACK are no evidence of loss, so three of them
// do not start fast retransmit.
func TestDuplicatedSACKAckIsNotADupAck(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := acceptOnPath(t, p, sackSyn, 10*time.Millisecond)
	segs := sendSegments(t, p, c, 6)
	p.advance(10 * time.Millisecond)
	una := iss + 1
	sack := wire.TCPOptions{NumSACK: 1}
	sack.SACK[0] = wire.SACKBlock{Left: uint32(segs[1].seq), Right: uint32(ackFor(segs[1]))}
	for range 3 {
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: una, wnd: 65535, opts: sack})
	}
	// A D-SACK of data below the cumulative ACK, also three times.
	dsack := wire.TCPOptions{NumSACK: 2}
	dsack.SACK[0] = wire.SACKBlock{Left: uint32(una - 100), Right: uint32(una)}
	dsack.SACK[1] = sack.SACK[0]
	for range 3 {
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: una, wnd: 65535, opts: dsack})
	}
	p.expectNone()
	if in := c.Info().Counters; in.FastRetransmits != 0 || in.DupAcksIn != 1 {
		t.Fatalf("counters %+v: want one duplicate ACK counted and no fast retransmit", in)
	}
}

// A retransmission lost again is found without waiting for the RTO: once
// data sent after it is SACKed while it is still missing, it goes again
// (Linux's lost-retransmit detection; RFC 6675 alone would wait for the
// timer and collapse cwnd to one segment).
func TestLostRetransmissionSentAgainWithoutRTO(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true})
	mss := c.MSS()
	c.SetNoDelay(p.now, true)
	c.Write(p.now, make([]byte, 30*mss))
	segs := p.collectAll() // the initial window
	una := iss + 1
	sackUpTo := func(end Seq) {
		o := wire.TCPOptions{NumSACK: 1}
		o.SACK[0] = wire.SACKBlock{Left: uint32(una + Seq(mss)), Right: uint32(end)}
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: una, wnd: 65535, opts: o})
	}
	var rtx []tseg
	high := ackFor(segs[len(segs)-1]) // highest sequence number sent
	var sentHigh Seq                  // ... when the first retransmission went
	collect := func() {
		for _, s := range p.collectAll() {
			if s.seq == una {
				if len(rtx) == 0 {
					sentHigh = high
				}
				rtx = append(rtx, s)
			}
			high = MaxSeq(high, ackFor(s))
		}
	}
	// Segments 1..9 arrive, 0 is lost: fast retransmit of segment 0.
	for i := 1; i < len(segs); i++ {
		p.advance(time.Millisecond)
		sackUpTo(ackFor(segs[i]))
		collect()
	}
	if len(rtx) != 1 {
		t.Fatalf("%d retransmissions of the first segment after the SACKs, want 1", len(rtx))
	}
	if !high.GT(sentHigh) {
		t.Fatalf("no new data sent after the retransmission (sent up to %d)", high-una)
	}
	// That retransmission is lost too; data sent after it arrives and is
	// SACKed: the first segment must go again, before any RTO.
	p.advance(time.Millisecond)
	sackUpTo(sentHigh + Seq(mss))
	collect()
	if len(rtx) != 2 {
		t.Fatalf("%d retransmissions of the first segment after data sent later was SACKed, want 2", len(rtx))
	}
	in := c.Info().Counters
	if in.Timeouts != 0 || in.LostRetransmits != 1 {
		t.Fatalf("counters %+v: want no timeout and one lost retransmission", in)
	}
}

// With no new data to send, the evidence that a retransmission was lost is
// a later retransmission arriving first: SACKed while the earlier one is
// still missing, so the earlier one goes again without an RTO.
func TestLostRetransmissionFoundByALaterOne(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := acceptOnPath(t, p, sackSyn, 10*time.Millisecond)
	mss := c.MSS()
	segs := sendSegments(t, p, c, 10) // all the data there is
	p.advance(10 * time.Millisecond)
	una := iss + 1
	sack := func(blocks ...[2]Seq) {
		o := wire.TCPOptions{NumSACK: len(blocks)}
		for i, b := range blocks {
			o.SACK[i] = wire.SACKBlock{Left: uint32(b[0]), Right: uint32(b[1])}
		}
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: una, wnd: 65535, opts: o})
	}
	// Segments 0 and 1 are lost; 2..9 arrive.
	for i := 2; i < len(segs); i++ {
		p.advance(time.Millisecond)
		sack([2]Seq{segs[2].seq, ackFor(segs[i])})
	}
	count := map[Seq]int{}
	for _, s := range p.collectAll() {
		count[s.seq]++
	}
	if count[segs[0].seq] != 1 || count[segs[1].seq] != 1 {
		t.Fatalf("retransmissions %v, want segments 0 and 1 once each", count)
	}
	// Segment 1's retransmission arrives a round trip after it went,
	// segment 0's, sent before it, does not.
	p.advance(10 * time.Millisecond)
	sack([2]Seq{segs[1].seq, ackFor(segs[9])})
	again := p.collectAll()
	if len(again) == 0 || again[0].seq != segs[0].seq || len(again[0].payload) != mss {
		t.Fatalf("after the later retransmission was SACKed: sent %v, want segment 0 again", again)
	}
	if in := c.Info().Counters; in.Timeouts != 0 || in.LostRetransmits != 1 {
		t.Fatalf("counters %+v: want no timeout, one lost retransmission", in)
	}
}

// sackAck is the peer's ACK of ack with one SACK block from the start of
// segment from to the end of segment to.
func sackAck(ack Seq, from, to tseg) tseg {
	var o wire.TCPOptions
	o.SACK[0] = wire.SACKBlock{Left: uint32(from.seq), Right: uint32(ackFor(to))}
	o.NumSACK = 1
	return tseg{flags: fA, seq: peerISN + 1, ack: ack, wnd: 65535, opts: o}
}

// sackRecoveryConn accepts a SACK connection. With rtt > 0 it first sends
// one segment that the peer acknowledges rtt later, so the engine's
// smallest RTT is rtt.
func sackRecoveryConn(t *testing.T, rtt time.Duration) (*peer, *Conn) {
	p := newPeer(t, nil)
	c, _ := p.listenAndAccept(wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true})
	if rtt > 0 {
		warm := sendSegments(t, p, c, 1)
		p.advance(rtt)
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: ackFor(warm[0]), wnd: 65535})
	}
	return p, c
}

// dataSegs returns the segments of out that carry data.
func dataSegs(out []tseg) []tseg {
	var d []tseg
	for _, s := range out {
		if len(s.payload) > 0 {
			d = append(d, s)
		}
	}
	return d
}

// RFC 6582 §3.2 step 5 and RFC 6675's rules (the profile without RACK):
// after a partial ACK in fast recovery the first unacknowledged segment is
// deemed lost and retransmitted whole, also with SACK when no block shows
// the loss. Deeming only its first byte lost sent one-byte
// retransmissions, each answered by a delayed ACK one byte further on: the
// 1000-connection echo crawled at a byte per 200 ms.
func TestPartialAckRetransmitsWholeHeadSegment(t *testing.T) {
	prof := testProfile()
	prof.RACK = false
	p := newPeer(t, prof)
	c, _ := p.listenAndAccept(sackSyn)
	segs := sendSegments(t, p, c, 10)
	// Segment 0 is lost; 1-3 arrive and are SACKed: fast recovery.
	for k := 1; k <= 3; k++ {
		p.send(sackAck(segs[0].seq, segs[1], segs[k]))
	}
	r := p.expect(fA, segs[0].seq, peerISN+1)
	if len(r.payload) != len(segs[0].payload) {
		t.Fatalf("fast retransmission of %d bytes, want segment 0 whole (%d)", len(r.payload), len(segs[0].payload))
	}
	p.collectAll()
	// The retransmission fills the hole; segments 4-9 were lost too, and
	// nothing above them is SACKed: a partial ACK.
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ackFor(segs[3]), wnd: 65535})
	rtx := dataSegs(p.collectAll())
	if len(rtx) == 0 || rtx[0].seq != segs[4].seq || len(rtx[0].payload) != len(segs[4].payload) {
		t.Fatalf("after the partial ACK sent %v, want segment 4 (%d, %d bytes) whole", rtx, segs[4].seq, len(segs[4].payload))
	}
	if st := c.Info().Counters; st.Timeouts != 0 || st.FastRecoveries != 1 {
		t.Fatalf("counters %+v", st)
	}
}

// RFC 8985 §6.2 (RACK), with no reordering window during recovery as
// Linux's tcp_rack_reo_wnd allows while the path has shown no reordering:
// once a retransmission is delivered, everything sent before it and still
// missing is lost. A partial ACK that covers the fast retransmission a
// round trip after it went deems the six segments above it, neither
// acknowledged nor SACKed, lost at once; PRR then lets one go, as many as
// were delivered (RFC 6937, no slow-start bonus on an ACK that found new
// losses). An ACK sooner than the smallest RTT after the retransmission
// was caused by the original (Linux's tcp_rack_advance) and deems nothing
// lost: nothing goes.
func TestDeliveredRetransmissionMarksEarlierSentDataLost(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ackAfter time.Duration
		lost     uint32
	}{
		{"a round trip after the retransmission", 10 * time.Millisecond, 6},
		{"sooner than the smallest RTT", time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, c := sackRecoveryConn(t, 10*time.Millisecond)
			segs := sendSegments(t, p, c, 10)
			p.advance(10 * time.Millisecond)
			for k := 1; k <= 3; k++ {
				p.send(sackAck(segs[0].seq, segs[1], segs[k]))
			}
			p.expect(fA, segs[0].seq, peerISN+1)
			p.collectAll()
			p.advance(tc.ackAfter)
			// Segment 0's retransmission filled the hole; 4-9 were lost.
			p.send(tseg{flags: fA, seq: peerISN + 1, ack: ackFor(segs[3]), wnd: 65535})
			out := dataSegs(p.collectAll())
			if ti := c.TCPInfo(p.now); ti.Lost != tc.lost {
				t.Fatalf("%d segments deemed lost after the partial ACK, want %d", ti.Lost, tc.lost)
			}
			if tc.lost > 0 && (len(out) != 1 || out[0].seq != segs[4].seq) {
				t.Fatalf("after the partial ACK sent %v; want segment 4 (%d) alone", out, segs[4].seq)
			}
			if tc.lost == 0 && len(out) != 0 {
				t.Fatalf("after the partial ACK sent %v; want nothing", out)
			}
			if st := c.Info().Counters; st.Timeouts != 0 || st.FastRecoveries != 1 {
				t.Fatalf("counters %+v", st)
			}
		})
	}
}

// RFC 8985 §7.2: no probe timer runs during recovery, but once the ACK
// that ends recovery leaves data outstanding the probe is armed again, as
// Linux's tcp_ack does at its end (tcp_set_xmit_timer). New data sent in
// recovery whose tail is then lost draws a probe about two round trips
// later, not the RTO (before: the first sign was the RTO, 200 ms on).
func TestTailLossProbeArmedWhenRecoveryEnds(t *testing.T) {
	p, c := sackRecoveryConn(t, 10*time.Millisecond)
	segs := sendSegments(t, p, c, 10)
	c.Write(p.now, make([]byte, 4*c.MSS())) // more than cwnd allows now
	p.advance(10 * time.Millisecond)
	// The first two duplicate ACKs let new data out (RFC 3042); the
	// third starts recovery, whose recovery point is the end of that data.
	recoveryPoint := ackFor(segs[9])
	for k := 1; k <= 3; k++ {
		p.send(sackAck(segs[0].seq, segs[1], segs[k]))
		for _, s := range p.collectAll() {
			if k < 3 && ackFor(s).GT(recoveryPoint) {
				recoveryPoint = ackFor(s)
			}
		}
	}
	newData := 0
	for k := 4; k <= 9; k++ {
		p.send(sackAck(segs[0].seq, segs[1], segs[k]))
		for _, s := range p.collectAll() {
			if ackFor(s).GT(recoveryPoint) {
				newData++
			}
		}
	}
	if newData == 0 || c.Info().Counters.FastRecoveries != 1 {
		t.Fatalf("fast recovery sent %d new segments (counters %+v); the test needs some", newData, c.Info().Counters)
	}
	// The retransmission and the limited-transmit data arrive: the ACK
	// ends recovery; the new data sent during it is lost.
	p.advance(10 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: recoveryPoint, wnd: 65535})
	p.collectAll()
	ended := p.now
	p.advance(100 * time.Millisecond)
	var probes []time.Duration
	for _, s := range dataSegs(p.collectAll()) {
		probes = append(probes, s.at.Sub(ended))
	}
	st := c.Info().Counters
	if st.TailLossProbes != 1 || st.Timeouts != 0 || len(probes) != 1 {
		t.Fatalf("in the 100 ms after recovery ended: segments at %v, counters %+v; want one tail loss probe and no timeout", probes, st)
	}
}

// RFC 6937 §3 runs on every ACK "starting or during fast recovery": the
// ACK that starts recovery counts the data it delivered, so it may let new
// data out beside the fast retransmission (Linux's tcp_cwnd_reduction runs
// on it too). With only the retransmission in flight, the loss of its one
// ACK left nothing but the RTO: over --impair loss=2%,reorder=1%,dup=1%
// that was most of the 19-37 timeouts of a 100 MiB download.
func TestPRRCountsTheACKThatStartsRecovery(t *testing.T) {
	p, c := sackRecoveryConn(t, 0)
	segs := sendSegments(t, p, c, 10)
	c.Write(p.now, make([]byte, 10*c.MSS())) // more than cwnd lets out now
	p.collectAll()
	// One ACK SACKs segments 1-5: segment 0 is lost, recovery starts.
	p.send(sackAck(segs[0].seq, segs[1], segs[5]))
	out := p.collectAll()
	if c.Info().Counters.FastRecoveries != 1 {
		t.Fatalf("no fast recovery: %+v", c.Info().Counters)
	}
	newData := 0
	for _, s := range dataSegs(out) {
		if s.seq.GT(segs[9].seq) {
			newData++
		}
	}
	// ssthresh 0.7 * 10 segments, pipe 4 (segments 6-9): PRR-SSRB lets
	// min(7 - 4, 5 delivered + 1) = 3 segments go, the retransmission
	// and two new ones.
	if len(out) == 0 || out[0].seq != segs[0].seq || newData != 2 {
		t.Fatalf("in answer to the ACK that started recovery sent %v; want segment 0 again, then 2 new segments", out)
	}
}
