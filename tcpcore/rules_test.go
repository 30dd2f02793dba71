package tcpcore

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"tunstack/policy"
	"tunstack/wire"
)

// RFC 9293 §3.10.7.1: a SYN to a port with no listener gets
// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
func TestRSTForSynToClosedPort(t *testing.T) {
	p := newPeer(t, nil)
	p.send(tseg{flags: fS, seq: peerISN, wnd: 1000})
	p.expect(fRA, 0, peerISN+1)
}

// RFC 9293 §3.10.7.1: an ACK to a closed port gets <SEQ=SEG.ACK><CTL=RST>.
func TestRSTForAckToClosedPort(t *testing.T) {
	p := newPeer(t, nil)
	p.send(tseg{flags: fA, seq: peerISN, ack: 777, wnd: 1000})
	p.expect(fR, 777, 0)
}

// RFC 9293 §3.10.7.1: an RST is never answered.
func TestNoRSTForRST(t *testing.T) {
	p := newPeer(t, nil)
	p.send(tseg{flags: fR, seq: peerISN})
	p.send(tseg{flags: fRA, seq: peerISN, ack: 5})
	p.expectNone()
}

// RFC 9293 §3.10.7.2: an ACK reaching a listener gets <SEQ=SEG.ACK><CTL=RST>.
func TestRSTForAckToListener(t *testing.T) {
	p := newPeer(t, nil)
	p.e.Listen(p.now, local, 4, SockOpts{})
	p.send(tseg{flags: fA, seq: peerISN, ack: 4242, wnd: 1000})
	p.expect(fR, 4242, 0)
}

// RFC 9293 §3.10.7.4 (SYN-RECEIVED): an unacceptable ACK gets
// <SEQ=SEG.ACK><CTL=RST> and the half-open connection stays.
func TestRSTForBadAckInSynReceived(t *testing.T) {
	p := newPeer(t, nil)
	l, _ := p.e.Listen(p.now, local, 4, SockOpts{})
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa := p.next()
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 100, wnd: 65535})
	p.expect(fR, sa.seq+100, 0)
	if l.Stats().SynQueue != 1 {
		t.Fatalf("half-open connection lost")
	}
}

// RFC 9293 §3.10.7.3: in SYN-SENT an ACK that does not acknowledge our SYN
// gets <SEQ=SEG.ACK><CTL=RST>.
func TestRSTForBadAckInSynSent(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.e.Connect(p.now, local, remote, SockOpts{})
	syn := p.next()
	p.send(tseg{flags: fSA, seq: peerISN, ack: syn.seq + 5, wnd: 100})
	p.expect(fR, syn.seq+5, 0)
	if c.State() != SynSent {
		t.Fatalf("state %v", c.State())
	}
}

// RFC 9293 §3.10.7.3: RST with an acceptable ACK in SYN-SENT refuses the
// connection (ECONNREFUSED); without ACK it is ignored.
func TestRSTInSynSentRefuses(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.e.Connect(p.now, local, remote, SockOpts{})
	syn := p.next()
	p.send(tseg{flags: fR, seq: 0})
	if c.State() != SynSent {
		t.Fatalf("RST without ACK was accepted")
	}
	p.send(tseg{flags: fRA, seq: 0, ack: syn.seq + 1})
	if c.State() != Closed || !errors.Is(c.HardErr(), ErrConnRefused) {
		t.Fatalf("state %v err %v, want CLOSED/ECONNREFUSED", c.State(), c.HardErr())
	}
}

// RFC 5961 §3.2: an RST whose sequence number is in the window but not
// RCV.NXT draws a challenge ACK; the exact one resets (ECONNRESET).
func TestRSTInWindowNotExactGetsChallengeAck(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	p.send(tseg{flags: fR, seq: peerISN + 100})
	p.expect(fA, iss+1, peerISN+1)
	if c.State() != Established {
		t.Fatalf("state %v", c.State())
	}
	p.send(tseg{flags: fR, seq: peerISN + 1})
	if c.State() != Closed || !errors.Is(c.HardErr(), ErrConnReset) {
		t.Fatalf("state %v err %v", c.State(), c.HardErr())
	}
	if _, err := c.Read(p.now, make([]byte, 1)); !errors.Is(err, ErrConnReset) {
		t.Fatalf("Read after RST = %v", err)
	}
}

// RFC 9293 §3.10.7.4: an RST outside the window is dropped silently.
func TestRSTOutOfWindowIgnored(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.listenAndAccept(plainSyn)
	p.send(tseg{flags: fR, seq: peerISN + 1 + 10_000_000})
	p.expectNone()
	if c.State() != Established {
		t.Fatalf("state %v", c.State())
	}
}

// RFC 5961 §4.2: a SYN on an established connection draws a challenge ACK.
func TestSynOnEstablishedGetsChallengeAck(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	p.send(tseg{flags: fS, seq: peerISN + 50, wnd: 1000})
	p.expect(fA, iss+1, peerISN+1)
	if c.State() != Established {
		t.Fatalf("state %v", c.State())
	}
	// Rate limited: a second one within tcp_invalid_ratelimit gets nothing.
	p.send(tseg{flags: fS, seq: peerISN + 60, wnd: 1000})
	p.expectNone()
}

// RFC 9293 §3.10.7.4 acceptability: a segment beyond the window is not
// acceptable and is answered with an ACK; its data is not delivered.
func TestSegmentBeyondWindowAckedAndDropped(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	p.send(tseg{flags: fPA, seq: peerISN + 1 + 1<<20, ack: iss + 1, wnd: 1000, payload: []byte("far")})
	p.expect(fA, iss+1, peerISN+1)
	if c.Buffered() != 0 {
		t.Fatalf("out-of-window data delivered")
	}
}

// An old duplicate (already received) is acknowledged at once.
func TestOldDuplicateSegmentAckedAtOnce(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 1000, payload: []byte("abc")})
	p.out = nil
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 1000, payload: []byte("abc")})
	p.expect(fA, iss+1, peerISN+4)
	if c.Buffered() != 3 {
		t.Fatalf("buffered %d, want 3 (duplicate not dropped)", c.Buffered())
	}
}

// RFC 9293 §3.10.7.4 fifth check: an ACK for data never sent is answered
// with an ACK and the segment dropped.
func TestAckOfUnsentDataDropped(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1000, wnd: 1000, payload: []byte("abc")})
	p.expect(fA, iss+1, peerISN+1)
	if c.Buffered() != 0 {
		t.Fatalf("segment with a future ACK delivered its data")
	}
}

// Reassembly: out-of-order segments are held and delivered in order once
// the gap fills; overlapping and duplicate segments are trimmed; each
// out-of-order arrival and the gap filler are ACKed at once (RFC 5681 §4.2).
func TestReassemblyOutOfOrderOverlapDuplicate(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	msg := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	base := peerISN + 1
	seg := func(from, to int) {
		p.send(tseg{flags: fA, seq: base + Seq(from), ack: iss + 1, wnd: 65535, payload: msg[from:to]})
	}
	seg(20, 30)
	p.expect(fA, iss+1, base) // duplicate ACK for the hole
	seg(25, 36)               // overlaps the held block, extends it
	p.expect(fA, iss+1, base)
	seg(20, 30) // exact duplicate of held data
	p.expect(fA, iss+1, base)
	seg(5, 12) // second hole
	p.expect(fA, iss+1, base)
	if c.Buffered() != 0 {
		t.Fatalf("data delivered before the gap filled")
	}
	seg(0, 8) // overlaps the next block
	p.expect(fA, iss+1, base+12)
	seg(10, 22) // fills the last gap, overlapping both sides
	p.expect(fA, iss+1, base+36)
	got := make([]byte, 64)
	n, _ := c.Read(p.now, got)
	if !bytes.Equal(got[:n], msg) {
		t.Fatalf("reassembled %q, want %q", got[:n], msg)
	}
}

// RFC 2018 §4: with SACK negotiated the duplicate ACKs carry the held
// blocks, the most recent first.
func TestSACKBlocksReportHeldData(t *testing.T) {
	p := newPeer(t, nil)
	syn := wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true}
	_, iss := p.listenAndAccept(syn)
	base := peerISN + 1
	p.send(tseg{flags: fA, seq: base + 100, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
	a1 := p.expect(fA, iss+1, base)
	p.send(tseg{flags: fA, seq: base + 300, ack: iss + 1, wnd: 65535, payload: make([]byte, 50)})
	a2 := p.expect(fA, iss+1, base)
	if a1.opts.NumSACK != 1 || a1.opts.SACK[0] != (wire.SACKBlock{Left: uint32(base + 100), Right: uint32(base + 200)}) {
		t.Fatalf("first SACK = %+v", a1.opts)
	}
	if a2.opts.NumSACK != 2 || a2.opts.SACK[0].Left != uint32(base+300) || a2.opts.SACK[1].Left != uint32(base+100) {
		t.Fatalf("second SACK = %+v, want newest block first", a2.opts)
	}
}

// RFC 6298 §5: the retransmission timer fires at the RTO, doubles each
// time (§5.5), and the connection gives up with ETIMEDOUT after the
// profile's Retries2 retransmissions. Exact instants in virtual time.
func TestRTOBackoffInstantsAndGiveUp(t *testing.T) {
	prof := testProfile()
	prof.Retries2 = 5
	p := newPeer(t, prof)
	c, iss := p.listenAndAccept(plainSyn)
	rto := c.rtt.rto
	c.Write(p.now, []byte("hello"))
	first := p.expect(fPA, iss+1, peerISN+1)
	var gaps []time.Duration
	last := first.at
	for i := 0; i < prof.Retries2; i++ {
		p.step()
		r := p.expect(fPA, iss+1, peerISN+1)
		gaps = append(gaps, r.at.Sub(last))
		last = r.at
		if c.State() == Closed {
			break
		}
	}
	for i, g := range gaps {
		want := rto << i
		if want > prof.RTOMax {
			want = prof.RTOMax
		}
		if g != want {
			t.Fatalf("retransmission %d after %v, want %v (gaps %v)", i+1, g, want, gaps)
		}
	}
	p.step()
	if c.State() != Closed || !errors.Is(c.HardErr(), ErrTimedOut) {
		t.Fatalf("state %v err %v after %d retries, want CLOSED/ETIMEDOUT", c.State(), c.HardErr(), prof.Retries2)
	}
	p.expectNone() // Linux gives up without an RST
}

// Linux 6.x: the SYN is retransmitted at 1, 2, 3, 4, 5 s (tcp_syn_linear_timeouts=4
// keeps the initial RTO for four retransmissions), then backs off: 7, 11,
// 19, 35, 67 s; tcp_syn_retries=6 plus the 4 linear ones make 10, and the
// connect fails with ETIMEDOUT when the next timer fires, at 131 s. The rfc
// profile backs off from the first: 1, 3, 7, 15, 31, 63 s and gives up at
// 123 s.
func TestSynRetransmissionScheduleAndTimeout(t *testing.T) {
	testSynSchedule(t, testProfile(), []time.Duration{1, 2, 3, 4, 5, 7, 11, 19, 35, 67}, 131)
	rfc := policy.RFC()
	// The last wait is capped by the rfc profile's 60 s maximum RTO: 63+60.
	testSynSchedule(t, rfc, []time.Duration{1, 3, 7, 15, 31, 63}, 123)
}

func testSynSchedule(t *testing.T, prof *policy.Profile, want []time.Duration, giveUp time.Duration) {
	t.Helper()
	p := newPeer(t, prof)
	start := p.now
	c, _ := p.e.Connect(p.now, local, remote, SockOpts{})
	p.next()
	var at []time.Duration
	for i := 0; i < len(want); i++ {
		p.step()
		s := p.next()
		if s.flags != fS {
			t.Fatalf("retransmission %d is %v", i, s)
		}
		at = append(at, s.at.Sub(start))
	}
	for i := range want {
		if at[i] != want[i]*time.Second {
			t.Fatalf("%s: SYN retransmissions at %v, want %v s", prof.Name, at, want)
		}
	}
	p.step()
	if !errors.Is(c.HardErr(), ErrTimedOut) || p.now.Sub(start) != giveUp*time.Second {
		t.Fatalf("%s: connect error %v at %v, want ETIMEDOUT at %v s", prof.Name, c.HardErr(), p.now.Sub(start), giveUp)
	}
}

// The SYN-ACK is retransmitted at 1, 3, 7, 15, 31 s (five
// times, tcp_synack_retries=5); at 63 s the half-open entry is gone.
func TestSynAckRetransmissionScheduleAndDrop(t *testing.T) {
	p := newPeer(t, nil)
	l, _ := p.e.Listen(p.now, local, 4, SockOpts{})
	start := p.now
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	p.next()
	var at []time.Duration
	for i := 0; i < 5; i++ {
		p.advance(100 * time.Second)
		s := p.next()
		if s.flags != fSA {
			t.Fatalf("retransmission %d is %v", i, s)
		}
		at = append(at, s.at.Sub(start))
	}
	want := []time.Duration{1, 3, 7, 15, 31}
	for i := range want {
		if at[i] != want[i]*time.Second {
			t.Fatalf("SYN-ACK retransmissions at %v, want %v s", at, want)
		}
	}
	p.advance(31*time.Second + time.Second)
	if l.Stats().SynQueue != 0 || p.e.ConnCount() != 0 {
		t.Fatalf("half-open connection survived its SYN-ACK retries")
	}
	p.expectNone()
}

// RFC 7323 §5.3 R1 (PAWS): a segment whose TSval is older than TS.Recent
// is dropped and answered with an ACK.
func TestPAWSDropsOldTimestamp(t *testing.T) {
	p := newPeer(t, nil)
	syn := wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 5000}
	c, iss := p.listenAndAccept(syn)
	// listenAndAccept's ACK carried TSval 5001.
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 1000, payload: []byte("new"),
		opts: wire.TCPOptions{HasTS: true, TSVal: 6000, TSEcr: 1}})
	p.out = nil
	p.send(tseg{flags: fPA, seq: peerISN + 4, ack: iss + 1, wnd: 1000, payload: []byte("old"),
		opts: wire.TCPOptions{HasTS: true, TSVal: 5500, TSEcr: 1}})
	a := p.expect(fA, iss+1, peerISN+4)
	if a.opts.TSEcr != 6000 {
		t.Fatalf("ACK echoes %d, want TS.Recent 6000", a.opts.TSEcr)
	}
	if c.Buffered() != 3 || p.e.Stats().PAWSDrops != 1 {
		t.Fatalf("buffered %d, PAWS drops %d", c.Buffered(), p.e.Stats().PAWSDrops)
	}
}

// RFC 7323 §2: the window field is shifted by the negotiated scale in both
// directions, never in SYNs.
func TestWindowScaleArithmetic(t *testing.T) {
	p := newPeer(t, nil)
	syn := wire.TCPOptions{HasMSS: true, MSS: 1460, HasWScale: true, WScale: 3}
	l, _ := p.e.Listen(p.now, local, 4, SockOpts{})
	p.send(tseg{flags: fS, seq: peerISN, wnd: 1000, opts: syn})
	sa := p.next()
	if !sa.opts.HasWScale || sa.opts.WScale != 7 {
		t.Fatalf("SYN-ACK wscale %+v, want 7 for a 6 MiB maximum buffer", sa.opts)
	}
	if sa.wnd != 64240 {
		t.Fatalf("SYN-ACK window %d, want 64240 (65535 unscaled, in whole 1460-byte segments)", sa.wnd)
	}
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 2000})
	c, _ := l.Accept(p.now)
	if got := c.Info().SndWndBytes; got != 2000<<3 {
		t.Fatalf("send window %d, want %d (2000<<3)", got, 2000<<3)
	}
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 2000, payload: make([]byte, 1460)})
	p.out = nil // quick-ACK mode acknowledges the first at once
	p.send(tseg{flags: fPA, seq: peerISN + 1 + 1460, ack: sa.seq + 1, wnd: 2000, payload: make([]byte, 1460)})
	a := p.expect(fA, sa.seq+1, peerISN+1+2920)
	// The window is capped by rcv_ssthresh (the SYN-ACK's 64240, grown by
	// two MSS per full segment received) rather than the free space, and
	// rounded up to the scale's 128-byte granularity: ceil(70080/128).
	if want := (64240 + 2*2*1460 + 127) >> 7; int(a.wnd) != want {
		t.Fatalf("advertised %d, want %d", a.wnd, want)
	}
}

// Without a peer MSS option the send MSS is 536 (RFC 9293 §3.7.1).
func TestDefaultMSSWhenAbsent(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.listenAndAccept(wire.TCPOptions{})
	if c.MSS() != 536 {
		t.Fatalf("send MSS %d, want 536", c.MSS())
	}
}

// The peer's MSS bounds our segments; timestamps take 12 bytes of it.
func TestSegmentsRespectPeerMSS(t *testing.T) {
	p := newPeer(t, nil)
	syn := wire.TCPOptions{HasMSS: true, MSS: 1000, HasTS: true, TSVal: 1}
	c, iss := p.listenAndAccept(syn)
	c.SetNoDelay(p.now, true)
	c.Write(p.now, make([]byte, 3000))
	s1 := p.expect(fA, iss+1, peerISN+1)
	if len(s1.payload) != 988 {
		t.Fatalf("first segment carries %d bytes, want 1000-12", len(s1.payload))
	}
}

// Keepalive (RFC 1122 §4.2.3.6): after the idle time a probe with
// SEG.SEQ = SND.NXT-1 is sent every interval; after the count the
// connection is reset with ETIMEDOUT.
func TestKeepaliveProbesAndTimeout(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	start := p.now
	c.SetKeepAlive(p.now, true, 10*time.Second, 2*time.Second, 3)
	for i := 0; i < 3; i++ {
		p.advance(30 * time.Second)
		pr := p.expect(fA, iss, peerISN+1)
		want := 10*time.Second + time.Duration(i)*2*time.Second
		if pr.at.Sub(start) != want {
			t.Fatalf("probe %d at %v, want %v", i, pr.at.Sub(start), want)
		}
		_ = c
	}
	p.advance(30 * time.Second)
	p.expect(fRA, iss+1, peerISN+1)
	if !errors.Is(c.HardErr(), ErrTimedOut) {
		t.Fatalf("err %v, want ETIMEDOUT", c.HardErr())
	}
}

// An answered keepalive probe keeps the connection.
func TestKeepaliveAnsweredKeepsConnection(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.SetKeepAlive(p.now, true, 10*time.Second, 2*time.Second, 1)
	for i := 0; i < 5; i++ {
		p.advance(10 * time.Second)
		p.expect(fA, iss, peerISN+1)
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
	}
	if c.State() != Established {
		t.Fatalf("state %v", c.State())
	}
}

// A data read that reopens a small window sends a window update.
func TestWindowUpdateAfterRead(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAcceptWith(plainSyn, SockOpts{RcvBuf: 8192})
	seq := peerISN + 1
	for i := 0; i < 5; i++ {
		p.send(tseg{flags: fA, seq: seq, ack: iss + 1, wnd: 65535, payload: make([]byte, 1460)})
		seq += 1460
	}
	p.advance(time.Second)
	p.out = nil
	buf := make([]byte, 1<<16)
	c.Read(p.now, buf)
	a := p.expect(fA, iss+1, seq)
	if a.wnd == 0 {
		t.Fatalf("window update advertises zero")
	}
}

// With few retries Linux gives up on time, not count: tcp_syn_retries=2
// allows (2^3-1) * 1 s = 7 s since the first SYN, so the linear schedule
// sends SYNs at 0..5 s and the connect fails at 7 s (the packet-level
// check is conformance/scripts/handshake/connect-timeout-syn-retries.pkt).
func TestSynGiveUpTimeBoundsLinearRetransmissions(t *testing.T) {
	prof := testProfile()
	prof.SynRetries = 2
	testSynSchedule(t, prof, []time.Duration{1, 2, 3, 4, 5}, 7)
}

// RFC 7323 §3.2: timestamps are in use only if both SYNs carried them. A
// stack that left TSopt out of its SYN (tcp_timestamps=0) ignores a TSopt
// in the SYN-ACK and sends none afterwards.
func TestTimestampsInSynAckIgnoredWhenOurSynHadNone(t *testing.T) {
	prof := testProfile()
	prof.Timestamps = false
	p := newPeer(t, prof)
	c, err := p.e.Connect(p.now, local, remote, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	syn := p.next()
	if syn.opts.HasTS {
		t.Fatalf("SYN %v carries TSopt with timestamps off", syn)
	}
	p.advance(10 * time.Millisecond)
	p.send(tseg{flags: fSA, seq: peerISN, ack: syn.seq + 1, wnd: 65535,
		opts: wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 700}})
	ack := p.expect(fA, syn.seq+1, peerISN+1)
	c.Write(p.now, make([]byte, 100))
	data := p.next()
	if ack.opts.HasTS || data.opts.HasTS {
		t.Errorf("ACK %v / data %v carry TSopt although our SYN had none", ack, data)
	}
}
