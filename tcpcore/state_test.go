package tcpcore

import (
	"errors"
	"io"
	"testing"
	"time"

	"tunstack/wire"
)

// RFC 9293 §3.5 Figure 6: passive open, LISTEN -> SYN-RECEIVED -> ESTABLISHED.
func TestPassiveOpenThreeWayHandshake(t *testing.T) {
	p := newPeer(t, nil)
	l, _ := p.e.Listen(p.now, local, 4, SockOpts{})
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa := p.next()
	if sa.flags != fSA || sa.ack != peerISN+1 || !sa.opts.HasMSS || sa.opts.MSS != 1460 {
		t.Fatalf("SYN-ACK = %v opts %+v", sa, sa.opts)
	}
	if got := l.Stats().SynQueue; got != 1 {
		t.Fatalf("SYN queue = %d, want 1", got)
	}
	if _, err := l.Accept(p.now); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("Accept before the final ACK = %v, want EAGAIN", err)
	}
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535})
	c, err := l.Accept(p.now)
	if err != nil || c.State() != Established {
		t.Fatalf("Accept = %v, %v", c, err)
	}
	p.expectNone()
}

// RFC 9293 §3.5 Figure 6: active open, CLOSED -> SYN-SENT -> ESTABLISHED.
func TestActiveOpenThreeWayHandshake(t *testing.T) {
	p := newPeer(t, nil)
	c, err := p.e.Connect(p.now, local, remote, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	syn := p.next()
	if syn.flags != fS || !syn.opts.HasMSS || !syn.opts.HasWScale || !syn.opts.SACKPermitted || !syn.opts.HasTS {
		t.Fatalf("SYN = %v %+v, want MSS, wscale, SACK-permitted and timestamps offered", syn, syn.opts)
	}
	if c.State() != SynSent || c.Connected() {
		t.Fatalf("state %v", c.State())
	}
	p.send(tseg{flags: fSA, seq: peerISN, ack: syn.seq + 1, wnd: 65535, opts: plainSyn})
	p.expect(fA, syn.seq+1, peerISN+1)
	if c.State() != Established || !c.Connected() {
		t.Fatalf("state %v after SYN-ACK", c.State())
	}
	if c.Info().Timestamps || c.Info().SACK || c.Info().SndWscale != 0 {
		t.Fatalf("options the peer did not offer were enabled: %+v", c.Info())
	}
}

// RFC 9293 §3.5 Figure 8: simultaneous open.
func TestSimultaneousOpen(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.e.Connect(p.now, local, remote, SockOpts{})
	syn := p.next()
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	if c.State() != SynReceived {
		t.Fatalf("state after crossing SYN = %v, want SYN-RECEIVED", c.State())
	}
	p.expect(fSA, syn.seq, peerISN+1)
	sackSyn := wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true}
	p.send(tseg{flags: fSA, seq: peerISN, ack: syn.seq + 1, wnd: 65535, opts: sackSyn})
	if c.State() != Established {
		t.Fatalf("state = %v, want ESTABLISHED", c.State())
	}
	// Figure 8 line 7: the SYN-ACK is acknowledged.
	p.expect(fA, syn.seq+1, peerISN+1)
}

// The ACK that completes a simultaneous open reports the peer's repeated
// SYN as a duplicate in a D-SACK block (RFC 2883; as Linux does).
func TestSimultaneousOpenAckCarriesDSACKOfTheSyn(t *testing.T) {
	p := newPeer(t, nil)
	_, _ = p.e.Connect(p.now, local, remote, SockOpts{})
	syn := p.next()
	sackSyn := wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: sackSyn})
	p.expect(fSA, syn.seq, peerISN+1)
	p.send(tseg{flags: fSA, seq: peerISN, ack: syn.seq + 1, wnd: 65535, opts: sackSyn})
	a := p.expect(fA, syn.seq+1, peerISN+1)
	if a.opts.NumSACK != 1 || a.opts.SACK[0].Left != uint32(peerISN) || a.opts.SACK[0].Right != uint32(peerISN+1) {
		t.Fatalf("ACK %v carries SACK %v, want one D-SACK block %d:%d", a, a.opts.SACK[:a.opts.NumSACK], peerISN, peerISN+1)
	}
}

// RFC 9293 §3.6 Figure 12: we close first: FIN-WAIT-1, FIN-WAIT-2,
// TIME-WAIT, and CLOSED after 2*MSL (the profile's TIME-WAIT length).
func TestActiveCloseThroughTimeWait(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.Close(p.now)
	p.expect(fFA, iss+1, peerISN+1)
	if c.State() != FinWait1 {
		t.Fatalf("state %v, want FIN-WAIT-1", c.State())
	}
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 2, wnd: 65535})
	if c.State() != FinWait2 {
		t.Fatalf("state %v, want FIN-WAIT-2", c.State())
	}
	p.send(tseg{flags: fFA, seq: peerISN + 1, ack: iss + 2, wnd: 65535})
	p.expect(fA, iss+2, peerISN+2)
	if c.State() != TimeWait {
		t.Fatalf("state %v, want TIME-WAIT", c.State())
	}
	entered := p.now
	// A retransmitted FIN is acknowledged again and restarts the timer.
	p.advance(10 * time.Second)
	p.send(tseg{flags: fFA, seq: peerISN + 1, ack: iss + 2, wnd: 65535})
	p.expect(fA, iss+2, peerISN+2)
	restarted := p.now
	p.advance(p.e.prof.TimeWaitLen - time.Millisecond)
	if c.State() != TimeWait || p.e.ConnCount() != 1 {
		t.Fatalf("left TIME-WAIT early (state %v, conns %d)", c.State(), p.e.ConnCount())
	}
	p.advance(time.Millisecond)
	if c.State() != Closed || p.e.ConnCount() != 0 {
		t.Fatalf("state %v conns %d at %v after restart (entered %v), want CLOSED at exactly TimeWaitLen",
			c.State(), p.e.ConnCount(), p.now.Sub(restarted), entered)
	}
	p.expectNone()
}

// RFC 9293 §3.6: the peer closes first: CLOSE-WAIT, LAST-ACK, CLOSED.
func TestPassiveCloseThroughLastAck(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	p.send(tseg{flags: fFA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
	p.expect(fA, iss+1, peerISN+2)
	if c.State() != CloseWait {
		t.Fatalf("state %v, want CLOSE-WAIT", c.State())
	}
	if _, err := c.Read(p.now, make([]byte, 10)); err != io.EOF {
		t.Fatalf("Read after FIN = %v, want io.EOF", err)
	}
	c.Close(p.now)
	p.expect(fFA, iss+1, peerISN+2)
	if c.State() != LastAck {
		t.Fatalf("state %v, want LAST-ACK", c.State())
	}
	p.send(tseg{flags: fA, seq: peerISN + 2, ack: iss + 2, wnd: 65535})
	if c.State() != Closed || p.e.ConnCount() != 0 {
		t.Fatalf("state %v, want CLOSED", c.State())
	}
}

// RFC 9293 §3.6 Figure 13: simultaneous close: FIN-WAIT-1 -> CLOSING ->
// TIME-WAIT.
func TestSimultaneousClose(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.Close(p.now)
	p.expect(fFA, iss+1, peerISN+1)
	p.send(tseg{flags: fFA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
	p.expect(fA, iss+2, peerISN+2)
	if c.State() != Closing {
		t.Fatalf("state %v, want CLOSING", c.State())
	}
	p.send(tseg{flags: fA, seq: peerISN + 2, ack: iss + 2, wnd: 65535})
	if c.State() != TimeWait {
		t.Fatalf("state %v, want TIME-WAIT", c.State())
	}
}

// A FIN that also acknowledges ours moves FIN-WAIT-1 straight to TIME-WAIT.
func TestFinWait1FinAckToTimeWait(t *testing.T) {
	p := newPeer(t, nil)
	p.timeWaitConn()
}

// close() with received data the application never read sends
// RST instead of FIN (RFC 2525 §2.17).
func TestCloseWithUnreadDataSendsRST(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: []byte("unread")})
	p.out = nil // the delayed or immediate ACK is not the point here
	c.Close(p.now)
	p.expect(fRA, iss+1, peerISN+7)
	if p.e.ConnCount() != 0 {
		t.Fatalf("connection still tracked after abortive close")
	}
}

// SO_LINGER with a zero timeout aborts with RST.
func TestCloseWithLingerZeroSendsRST(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.SetLinger(true, 0)
	c.Close(p.now)
	p.expect(fRA, iss+1, peerISN+1)
}

// close() with unsent data sends the data, then the FIN (here in
// the same segment), with Nagle off.
func TestCloseSendsQueuedDataThenFIN(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	if _, err := c.Write(p.now, []byte("first")); err != nil {
		t.Fatal(err)
	}
	p.expect(fPA, iss+1, peerISN+1)
	// Nagle holds this one: "first" is unacknowledged.
	c.Write(p.now, []byte("second"))
	p.expectNone()
	c.Close(p.now)
	s := p.expect(fFA|fP, iss+6, peerISN+1)
	if string(s.payload) != "second" {
		t.Fatalf("payload %q", s.payload)
	}
}

// shutdown(SHUT_WR): FIN goes out, reading continues (half close).
func TestCloseWriteHalfClose(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	if err := c.CloseWrite(p.now); err != nil {
		t.Fatal(err)
	}
	p.expect(fFA, iss+1, peerISN+1)
	if _, err := c.Write(p.now, []byte("x")); !errors.Is(err, ErrPipe) {
		t.Fatalf("Write after CloseWrite = %v, want EPIPE", err)
	}
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 2, wnd: 65535, payload: []byte("still here")})
	buf := make([]byte, 32)
	n, err := c.Read(p.now, buf)
	if err != nil || string(buf[:n]) != "still here" {
		t.Fatalf("Read in FIN-WAIT-2 = %q, %v", buf[:n], err)
	}
	if c.State() != FinWait2 {
		t.Fatalf("state %v", c.State())
	}
}

// A connection that is orphaned in FIN-WAIT-2 goes away after
// tcp_fin_timeout; one the application still holds does not.
func TestFinWait2TimeoutOnlyWhenOrphaned(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.Close(p.now)
	p.expect(fFA, iss+1, peerISN+1)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 2, wnd: 65535})
	p.advance(p.e.prof.FinTimeout - time.Millisecond)
	if c.State() != FinWait2 {
		t.Fatalf("state %v before the FIN timeout", c.State())
	}
	p.advance(time.Millisecond)
	if p.e.ConnCount() != 0 {
		t.Fatalf("orphaned FIN-WAIT-2 still tracked after %v", p.e.prof.FinTimeout)
	}

	p2 := newPeer(t, nil)
	c2, iss2 := p2.listenAndAccept(plainSyn)
	c2.CloseWrite(p2.now)
	p2.expect(fFA, iss2+1, peerISN+1)
	p2.send(tseg{flags: fA, seq: peerISN + 1, ack: iss2 + 2, wnd: 65535})
	p2.advance(10 * p2.e.prof.FinTimeout)
	if c2.State() != FinWait2 {
		t.Fatalf("half-closed connection left FIN-WAIT-2: %v", c2.State())
	}
}

var _ = wire.FlagACK

// The window our first ACK advertises after an active open is bounded by
// the receive buffer, whatever the two ISNs are (the right edge is set once
// IRS is known, not from the SYN's unknown RCV.NXT).
func TestActiveOpenFirstAckWindowWithinBuffer(t *testing.T) {
	for _, peerSeq := range []Seq{0, 1 << 31, 0x7fffffff, 0xfffff000, 12345} {
		p := newPeer(t, nil)
		c, _ := p.e.Connect(p.now, local, remote, SockOpts{})
		syn := p.next()
		p.send(tseg{flags: fSA, seq: peerSeq, ack: syn.seq + 1, wnd: 65535,
			opts: wire.TCPOptions{HasMSS: true, MSS: 1460, HasWScale: true, WScale: 7}})
		a := p.expect(fA, syn.seq+1, peerSeq+1)
		if adv := int(a.wnd) << 7; adv > c.rcvBufMax {
			t.Fatalf("peer ISN %d: first ACK advertises %d bytes, buffer is %d", peerSeq, adv, c.rcvBufMax)
		}
	}
}
