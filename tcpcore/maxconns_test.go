package tcpcore

import (
	"testing"
	"time"
)

// newCappedPeer is newPeer whose engine holds at most maxConns passively
// opened connections.
func newCappedPeer(t *testing.T, maxConns int) *peer {
	t.Helper()
	p := newPeer(t, nil)
	e, err := NewEngine(Config{Profile: testProfile(), MTU: 1500, Secret: [32]byte{1, 2, 3}, MaxConns: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	p.e = e
	return p
}

// Config.MaxConns counts half-open and established connections; a SYN
// beyond it is dropped unanswered (as Linux drops a SYN at a full accept
// queue) and counted; a connection that is reset, or reaches TIME-WAIT,
// makes room, and the waiting client's retransmitted SYN gets in.
func TestMaxConnsDropsSynsBeyondTheCapUntilAConnectionEnds(t *testing.T) {
	p := newCappedPeer(t, 2)
	l, err := p.e.Listen(p.now, local, 8, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	p.handshake(0, plainSyn)
	// Client 1 stays half-open: it counts as much as an established one.
	p.sendFrom(clientAddr(1), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa1 := p.next()
	if sa1.flags != fSA {
		t.Fatalf("client 1: got %v, want SYN-ACK", sa1)
	}
	if n := p.e.HeldConns(); n != 2 {
		t.Fatalf("held %d connections, want 2", n)
	}
	// Client 2 finds the cap reached: no answer at all.
	p.sendFrom(clientAddr(2), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	p.expectNone()
	st, ls := p.e.Stats(), l.Stats()
	if st.MaxConnsDrops != 1 || st.ListenDrops != 1 || ls.MaxConnsDrops != 1 || ls.Drops != 1 {
		t.Fatalf("after one SYN over the cap: engine MaxConnsDrops %d ListenDrops %d, listener MaxConnsDrops %d Drops %d; want 1 each",
			st.MaxConnsDrops, st.ListenDrops, ls.MaxConnsDrops, ls.Drops)
	}
	if ls.SynQueue != 1 || ls.AcceptQueue != 1 {
		t.Fatalf("queues %+v, want client 1 half-open and client 0 waiting for accept", ls)
	}

	// Client 0 resets its connection: one place comes free, and client
	// 2's retransmitted SYN takes it.
	p.sendFrom(clientAddr(0), tseg{flags: fR, seq: peerISN + 1})
	if n := p.e.HeldConns(); n != 1 {
		t.Fatalf("held %d connections after a reset, want 1", n)
	}
	p.sendFrom(clientAddr(2), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa2 := p.next()
	if sa2.flags != fSA {
		t.Fatalf("client 2's retransmitted SYN: got %v, want SYN-ACK", sa2)
	}
	p.sendFrom(clientAddr(2), tseg{flags: fA, seq: peerISN + 1, ack: sa2.seq + 1, wnd: 65535})
	p.sendFrom(clientAddr(1), tseg{flags: fA, seq: peerISN + 1, ack: sa1.seq + 1, wnd: 65535})
	p.expectNone()
	if n := p.e.HeldConns(); n != 2 {
		t.Fatalf("held %d connections, want 2", n)
	}

	// The application closes client 1's connection first; once the peer's
	// FIN arrives it sits in TIME-WAIT, which is not held against the cap.
	// The accept queue is in handshake order: client 0 (reset, which
	// accept still returns, as Linux's does), client 2, client 1.
	var c1 *Conn
	for _, want := range []int{0, 2, 1} {
		c, err := l.Accept(p.now)
		if err != nil {
			t.Fatal(err)
		}
		if c.RemoteAddr() != clientAddr(want) {
			t.Fatalf("accepted %v, want client %d %v", c.RemoteAddr(), want, clientAddr(want))
		}
		c1 = c
	}
	c1.Close(p.now)
	fin := p.next()
	if fin.flags != fFA {
		t.Fatalf("after close: got %v, want FIN", fin)
	}
	p.sendFrom(clientAddr(1), tseg{flags: fFA, seq: peerISN + 1, ack: fin.seq + 1, wnd: 65535})
	p.expect(fA, fin.seq+1, peerISN+2)
	if c1.State() != TimeWait {
		t.Fatalf("client 1's connection is %v, want TIME-WAIT", c1.State())
	}
	if n := p.e.HeldConns(); n != 1 {
		t.Fatalf("held %d connections with one in TIME-WAIT, want 1", n)
	}
	p.sendFrom(clientAddr(3), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	if s := p.next(); s.flags != fSA {
		t.Fatalf("client 3 with a place free: got %v, want SYN-ACK", s)
	}
	// Full again: the next SYN is dropped, and TIME-WAIT's end frees
	// nothing more.
	p.sendFrom(clientAddr(4), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	p.expectNone()
	p.advance(time.Minute + time.Second)
	if n, drops := p.e.HeldConns(), p.e.Stats().MaxConnsDrops; n != 2 || drops != 2 {
		t.Fatalf("held %d connections and dropped %d SYNs, want 2 and 2", n, drops)
	}
}

// A SYN-queue overflow answered with a cookie does not get around the cap:
// the cookie's ACK is dropped while the cap is reached, and makes the
// connection once there is room.
func TestMaxConnsHoldsForCookieConnections(t *testing.T) {
	p := newCappedPeer(t, 2)
	// Backlog 0: the SYN queue holds one half-open connection, so the
	// second SYN is answered with a cookie.
	l, err := p.e.Listen(p.now, local, 0, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	p.sendFrom(clientAddr(0), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa0 := p.next()
	p.sendFrom(clientAddr(1), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa1 := p.next()
	if sa0.flags != fSA || sa1.flags != fSA || l.Stats().CookiesSent != 1 {
		t.Fatalf("SYN-ACKs %v and %v, cookies sent %d; want the second answered with a cookie", sa0, sa1, l.Stats().CookiesSent)
	}
	// A third handshake fills the cap before the cookie's ACK comes: the
	// half-open one completes and is accepted, then client 2 opens.
	p.sendFrom(clientAddr(0), tseg{flags: fA, seq: peerISN + 1, ack: sa0.seq + 1, wnd: 65535})
	if _, err := l.Accept(p.now); err != nil {
		t.Fatal(err)
	}
	p.handshake(2, plainSyn)
	if _, err := l.Accept(p.now); err != nil {
		t.Fatal(err)
	}
	if n := p.e.HeldConns(); n != 2 {
		t.Fatalf("held %d connections, want 2", n)
	}
	p.sendFrom(clientAddr(1), tseg{flags: fA, seq: peerISN + 1, ack: sa1.seq + 1, wnd: 65535})
	p.expectNone()
	if st := l.Stats(); st.CookiesValid != 0 || st.MaxConnsDrops != 1 {
		t.Fatalf("cookie ACK at the cap: %+v, want it dropped (MaxConnsDrops 1, no connection made)", st)
	}
	// Client 0 leaves; the cookie's ACK, sent again, now makes client 1's
	// connection.
	p.sendFrom(clientAddr(0), tseg{flags: fR, seq: peerISN + 1})
	p.sendFrom(clientAddr(1), tseg{flags: fA, seq: peerISN + 1, ack: sa1.seq + 1, wnd: 65535})
	if st := l.Stats(); st.CookiesValid != 1 || p.e.HeldConns() != 2 {
		t.Fatalf("cookie ACK with room: %+v, held %d; want the connection made", st, p.e.HeldConns())
	}
}

// Closing a listener drops its half-open connections (Linux
// inet_csk_listen_stop) and, with them, their places under the cap and
// their ports: a listener opened again on the port takes SYNs at once.
func TestMaxConnsListenerCloseFreesHalfOpen(t *testing.T) {
	p := newCappedPeer(t, 2)
	l, err := p.e.Listen(p.now, local, 8, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	for c := range 2 {
		p.sendFrom(clientAddr(c), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
		if sa := p.next(); sa.flags != fSA {
			t.Fatalf("client %d: got %v, want SYN-ACK", c, sa)
		}
	}
	if n := p.e.HeldConns(); n != 2 {
		t.Fatalf("held %d connections, want 2", n)
	}
	l.Close(p.now)
	if n, cc := p.e.HeldConns(), p.e.ConnCount(); n != 0 || cc != 0 {
		t.Fatalf("after the listener closed: held %d connections, %d in the engine; want 0 and 0", n, cc)
	}
	if _, err := p.e.Listen(p.now, local, 8, SockOpts{}); err != nil {
		t.Fatalf("listening again on the port: %v", err)
	}
	p.sendFrom(clientAddr(2), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa2 := p.next()
	if sa2.flags != fSA {
		t.Fatalf("client 2 after the close: got %v, want SYN-ACK", sa2)
	}
	// The dropped half-open connections keep no timers: in the next
	// minute only client 2's SYN-ACK is sent again (at 1, 3, 7, 15 and
	// 31 s).
	p.advance(time.Minute)
	rtx := p.collectAll()
	for _, s := range rtx {
		if s.flags != fSA || s.seq != sa2.seq {
			t.Fatalf("after the close: %v, want only client 2's SYN-ACK (seq %d) again", s, sa2.seq)
		}
	}
	if len(rtx) != 5 {
		t.Fatalf("client 2's SYN-ACK went again %d times in a minute, want 5", len(rtx))
	}
}
