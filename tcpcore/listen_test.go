package tcpcore

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"tunstack/policy"
	"tunstack/wire"
)

// client is one simulated remote host port talking to the listener.
func clientAddr(i int) netip.AddrPort { return netip.AddrPortFrom(remoteIP, uint16(41000+i)) }

func (p *peer) sendFrom(from netip.AddrPort, s tseg) {
	p.t.Helper()
	p.e.Input(p.now, from.Addr(), p.local.Addr(), s.encode(from, p.local))
	p.collect()
}

// handshake runs SYN / SYN-ACK / ACK from client i and returns the
// engine's ISN (from the SYN-ACK) or fails if no SYN-ACK came.
func (p *peer) handshake(i int, opts wire.TCPOptions) Seq {
	p.t.Helper()
	p.sendFrom(clientAddr(i), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: opts})
	sa := p.next()
	if sa.flags != fSA {
		p.t.Fatalf("client %d: got %v, want SYN-ACK", i, sa)
	}
	p.sendFrom(clientAddr(i), tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535, opts: tsEcho(opts, sa)})
	return sa.seq
}

// Linux: the accept queue holds backlog+1 connections; the final ACK of
// the next handshake is dropped, its SYN-ACK retransmitted, and once the
// application accepts, the next ACK completes it (seeds 000 and 001).
func TestAcceptQueueHoldsBacklogPlusOneAndDropsFinalAck(t *testing.T) {
	p := newPeer(t, nil)
	l, _ := p.e.Listen(p.now, local, 2, SockOpts{})
	// Two clients complete; two more SYNs arrive while the accept queue
	// still has room, and both get half-open entries.
	p.handshake(0, plainSyn)
	p.handshake(1, plainSyn)
	var isn [4]Seq
	for i := 2; i < 4; i++ {
		p.sendFrom(clientAddr(i), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
		isn[i] = p.next().seq
	}
	for i := 2; i < 4; i++ {
		p.sendFrom(clientAddr(i), tseg{flags: fA, seq: peerISN + 1, ack: isn[i] + 1, wnd: 65535})
	}
	iss := isn[3]
	p.expectNone()
	st := l.Stats()
	if st.AcceptQueue != 3 || st.Backlog != 2 || st.SynQueue != 1 || st.Overflows != 1 {
		t.Fatalf("after overflow %+v, want the 4th left half-open with one overflow", st)
	}
	// The SYN-ACK is retransmitted 1 s after the first.
	p.advance(time.Second)
	p.expect(fSA, iss, peerISN+1)
	if _, err := l.Accept(p.now); err != nil {
		t.Fatal(err)
	}
	// The client answers the retransmitted SYN-ACK with a duplicate ACK.
	p.sendFrom(clientAddr(3), tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
	if st := l.Stats(); st.AcceptQueue != 3 || st.SynQueue != 0 {
		t.Fatalf("after accept %+v, want the 4th moved to the accept queue", st)
	}
}

// Linux tcp_conn_request: a SYN arriving while the accept queue is full is
// dropped without an answer.
func TestSynDroppedWhenAcceptQueueFull(t *testing.T) {
	p := newPeer(t, nil)
	l, _ := p.e.Listen(p.now, local, 0, SockOpts{})
	p.handshake(0, plainSyn) // backlog 0 still holds one
	p.sendFrom(clientAddr(1), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	p.expectNone()
	if st := l.Stats(); st.Drops != 1 || st.AcceptQueue != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// tcp_abort_on_overflow: the final ACK of an overflowing handshake is
// answered with RST instead of being dropped: <SEQ=SEG.ACK><CTL=RST>, as
// for any segment with ACK that has no connection (RFC 9293 §3.10.7.1).
func TestAbortOnOverflowResets(t *testing.T) {
	prof := testProfile()
	prof.AbortOnOverflow = true
	p := newPeer(t, prof)
	p.e.Listen(p.now, local, 0, SockOpts{})
	p.handshake(0, plainSyn)
	// The SYN of client 1 arrives before the queue filled: start it first.
	p2 := newPeer(t, prof)
	l2, _ := p2.e.Listen(p2.now, local, 0, SockOpts{})
	p2.sendFrom(clientAddr(1), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa := p2.next()
	p2.handshake(0, plainSyn)
	p2.sendFrom(clientAddr(1), tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535})
	p2.expect(fR, sa.seq+1, 0)
	if st := l2.Stats(); st.Overflows != 1 || st.SynQueue != 0 || st.AcceptQueue != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Linux (inet_csk_reqsk_queue_is_full): the SYN queue, like the accept
// queue, holds backlog+1 entries; beyond it, without cookies, SYNs are
// dropped.
func TestSynQueueBoundedByBacklogDropsWithoutCookies(t *testing.T) {
	prof := testProfile()
	prof.SynCookies = false
	p := newPeer(t, prof)
	l, _ := p.e.Listen(p.now, local, 1, SockOpts{})
	for i := 0; i < 3; i++ {
		p.sendFrom(clientAddr(i), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	}
	p.next()
	p.next()
	p.expectNone()
	if st := l.Stats(); st.SynQueue != 2 || st.SynQueueDrops != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Linux tcp_conn_request, cookies off: once less than a quarter of
// tcp_max_syn_backlog is left, new SYNs are dropped whatever the backlog.
func TestSynBacklogLastQuarterDroppedWithoutCookies(t *testing.T) {
	prof := testProfile()
	prof.SynCookies = false
	prof.MaxSynBacklog = 8
	p := newPeer(t, prof)
	l, _ := p.e.Listen(p.now, local, 100, SockOpts{})
	for i := 0; i < 8; i++ {
		p.sendFrom(clientAddr(i), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	}
	for i := 0; i < 7; i++ {
		p.next()
	}
	p.expectNone()
	if st := l.Stats(); st.SynQueue != 7 || st.SynQueueDrops != 1 {
		t.Fatalf("stats %+v, want 7 half-open (8 - 7 < 8/4 stops the 8th) and one drop", st)
	}
}

// RFC 4987 §3.6: with the SYN queue full and cookies on, the SYN-ACK
// carries a cookie and no state is kept; the ACK that returns it creates
// the connection, with the MSS from the cookie's table and window scale
// and SACK-permitted from the timestamp bits.
func TestSynCookieRoundTrip(t *testing.T) {
	prof := testProfile()
	p := newPeer(t, prof)
	l, _ := p.e.Listen(p.now, local, 0, SockOpts{}) // SYN queue holds one
	p.sendFrom(clientAddr(0), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	p.next() // fills the SYN queue
	syn := wire.TCPOptions{HasMSS: true, MSS: 1400, SACKPermitted: true, HasTS: true, TSVal: 777, HasWScale: true, WScale: 9}
	p.sendFrom(clientAddr(1), tseg{flags: fS, seq: 5000, wnd: 65535, opts: syn})
	sa := p.next()
	if sa.flags != fSA || sa.ack != 5001 || !sa.opts.HasTS || sa.opts.TSEcr != 777 || !sa.opts.HasWScale || !sa.opts.SACKPermitted {
		t.Fatalf("cookie SYN-ACK %v %+v", sa, sa.opts)
	}
	if p.e.ConnCount() != 1 || l.Stats().CookiesSent != 1 {
		t.Fatalf("state kept for a cookie SYN: conns %d stats %+v", p.e.ConnCount(), l.Stats())
	}
	p.advance(3 * time.Second) // the cookie survives a short delay
	p.out = nil                // SYN-ACK retransmissions of client 0
	p.sendFrom(clientAddr(1), tseg{flags: fA, seq: 5001, ack: sa.seq + 1, wnd: 100,
		opts: wire.TCPOptions{HasTS: true, TSVal: 778, TSEcr: sa.opts.TSVal}})
	st := l.Stats()
	if st.CookiesValid != 1 || st.AcceptQueue != 1 {
		t.Fatalf("cookie ACK not accepted: %+v", st)
	}
	c, _ := l.Accept(p.now)
	in := c.Info()
	if in.SndMSS != 1300-12 || !in.SACK || !in.Timestamps || in.SndWscale != 9 || in.SndWndBytes != 100<<9 {
		t.Fatalf("cookie connection %+v, want MSS 1300 (table) less TS, SACK, TS, peer wscale 9", in)
	}
}

// A forged ACK during the cookie period is answered with RST.
func TestSynCookieForgedAckGetsRST(t *testing.T) {
	prof := testProfile()
	p := newPeer(t, prof)
	l, _ := p.e.Listen(p.now, local, 0, SockOpts{}) // SYN queue holds one
	p.sendFrom(clientAddr(0), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	p.sendFrom(clientAddr(1), tseg{flags: fS, seq: 5000, wnd: 65535, opts: plainSyn})
	p.out = nil
	p.sendFrom(clientAddr(2), tseg{flags: fA, seq: 9001, ack: 123456, wnd: 100})
	p.expect(fR, 123456, 0)
	if l.Stats().CookiesFailed != 1 || l.Stats().AcceptQueue != 0 {
		t.Fatalf("stats %+v", l.Stats())
	}
}

// The rfc profile follows the BSD account (UNP §4.5): backlog bounds both
// queues together (4.4BSD's 3*backlog/2+1), and a SYN beyond it is ignored.
func TestRFCProfileBacklogBoundsBothQueues(t *testing.T) {
	p := newPeer(t, policy.RFC())
	l, _ := p.e.Listen(p.now, local, 2, SockOpts{})
	p.handshake(0, plainSyn)
	p.handshake(1, plainSyn)
	for i := 2; i < 4; i++ {
		p.sendFrom(clientAddr(i), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
		p.next()
	}
	p.sendFrom(clientAddr(4), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	p.expectNone()
	if st := l.Stats(); st.AcceptQueue+st.SynQueue != 4 || st.Drops != 1 {
		t.Fatalf("stats %+v, want 4 in both queues together and one drop", st)
	}
}

// Closing a listener resets every completed connection not yet
// accepted; half-open ones vanish, and their later ACK meets a closed port.
func TestListenerCloseResetsQueuedConnections(t *testing.T) {
	p := newPeer(t, nil)
	l, _ := p.e.Listen(p.now, local, 8, SockOpts{})
	iss0 := p.handshake(0, plainSyn)
	p.sendFrom(clientAddr(1), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa1 := p.next()
	l.Close(p.now)
	p.expect(fRA, iss0+1, peerISN+1)
	p.expectNone()
	if p.e.ConnCount() != 0 {
		t.Fatalf("%d connections left after listener close", p.e.ConnCount())
	}
	p.sendFrom(clientAddr(1), tseg{flags: fA, seq: peerISN + 1, ack: sa1.seq + 1, wnd: 65535})
	p.expect(fR, sa1.seq+1, 0)
	if _, err := l.Accept(p.now); err != ErrClosed {
		t.Fatalf("Accept after Close = %v", err)
	}
}

// Data that arrives with or after the final ACK, before accept, is
// readable once the application accepts.
func TestDataBeforeAcceptIsReadable(t *testing.T) {
	p := newPeer(t, nil)
	l, _ := p.e.Listen(p.now, local, 8, SockOpts{})
	iss := p.handshake(0, plainSyn)
	p.sendFrom(clientAddr(0), tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: []byte("early")})
	c, _ := l.Accept(p.now)
	buf := make([]byte, 16)
	n, err := c.Read(p.now, buf)
	if err != nil || string(buf[:n]) != "early" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
}

// listen(2) caps the backlog at somaxconn.
func TestBacklogCappedBySomaxconn(t *testing.T) {
	prof := testProfile()
	prof.Somaxconn = 5
	p := newPeer(t, prof)
	l, _ := p.e.Listen(p.now, local, 1000, SockOpts{})
	if l.Stats().Backlog != 5 {
		t.Fatalf("backlog %d, want 5", l.Stats().Backlog)
	}
}

// Linux keeps a completed connection that its peer reset in the accept
// queue: it still counts against the backlog (a SYN meanwhile is dropped
// as the queue is full), accept returns it, and the application's first
// read reports ECONNRESET.
func TestResetConnectionStaysInAcceptQueue(t *testing.T) {
	p := newPeer(t, nil)
	l, _ := p.e.Listen(p.now, local, 0, SockOpts{}) // holds backlog+1 = 1
	iss := p.handshake(0, plainSyn)
	p.sendFrom(clientAddr(0), tseg{flags: fRA, seq: peerISN + 1, ack: iss + 1})
	if st := l.Stats(); st.AcceptQueue != 1 {
		t.Fatalf("accept queue %d after the reset, want 1 (the reset connection stays)", st.AcceptQueue)
	}
	p.sendFrom(clientAddr(1), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	p.expectNone() // accept queue full: the SYN is dropped
	c, err := l.Accept(p.now)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	if _, err := c.Read(p.now, make([]byte, 10)); !errors.Is(err, ErrConnReset) {
		t.Fatalf("Read on the reset connection = %v, want ECONNRESET", err)
	}
	p.sendFrom(clientAddr(1), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	if sa := p.next(); sa.flags != fSA || sa.ack != peerISN+1 {
		t.Fatalf("after accept the SYN got %v, want a SYN-ACK", sa)
	}
}
