package tcpcore

import (
	"bytes"
	"net/netip"
	"testing"

	"tunstack/policy"
)

// TestRingPoolRecyclesFirstBuffers: a ring's first buffer comes from the
// pool and goes back when the ring is freed or outgrows it, so a cycle of
// connections that never outgrow it allocates no ring buffer; trim lets
// go of the buffers unused for a whole period.
func TestRingPoolRecyclesFirstBuffers(t *testing.T) {
	var pool ringPool
	var r ring
	r.ensure(1, 1<<20, &pool)
	if r.Cap() != ringMinBytes {
		t.Fatalf("first capacity %d, want %d", r.Cap(), ringMinBytes)
	}
	first := &r.buf[0]
	r.write([]byte("q"))
	r.free(&pool)
	if r.Cap() != 0 || r.Len() != 0 || len(pool.free) != 1 {
		t.Fatalf("after free: ring cap %d len %d, pool %d buffers; want an empty ring and 1 pooled buffer", r.Cap(), r.Len(), len(pool.free))
	}
	var r2 ring
	r2.ensure(1, 1<<20, &pool)
	if &r2.buf[0] != first || len(pool.free) != 0 {
		t.Fatalf("the next ring did not take the pooled buffer (pool keeps %d)", len(pool.free))
	}
	cycle := func() {
		var r ring
		r.ensure(1, 1<<20, &pool)
		r.write([]byte("q"))
		r.free(&pool)
	}
	cycle()
	if n := testing.AllocsPerRun(100, cycle); n != 0 {
		t.Errorf("a ring that never outgrows its first buffer allocated %.1f times per use, want 0", n)
	}

	// Outgrowing the first buffer hands it back, contents moved.
	r2.write([]byte("abc"))
	r2.ensure(ringMinBytes+1, 1<<20, &pool)
	if r2.Cap() != 2*ringMinBytes {
		t.Fatalf("grown capacity %d, want %d", r2.Cap(), 2*ringMinBytes)
	}
	got := make([]byte, 3)
	if r2.read(got); string(got) != "abc" {
		t.Fatalf("after growing, read %q, want %q", got, "abc")
	}
	if len(pool.free) != 2 {
		t.Fatalf("the pool keeps %d buffers after a ring outgrew its first one, want 2", len(pool.free))
	}
	// A buffer of another size is not kept.
	r2.free(&pool)
	if len(pool.free) != 2 {
		t.Fatalf("the pool keeps %d buffers after a grown ring was freed, want still 2", len(pool.free))
	}

	// trim: the period that just ended used one of them.
	if kept := pool.trim(); kept != 2 {
		t.Fatalf("first trim kept %d buffers, want 2", kept)
	}
	if kept := pool.trim(); kept != 0 {
		t.Fatalf("a trim after an idle period kept %d buffers, want 0", kept)
	}
	for i, b := range pool.free[:cap(pool.free)] {
		if b != nil {
			t.Fatalf("the free list's backing array still points at a released buffer (slot %d)", i)
		}
	}
}

// TestFinishedConnectionBuffersServeTheNext: a connection that carried a
// request and a reply and closed gives its send and receive buffers to
// the engine, the next connection takes them instead of allocating, and
// it reads its own bytes, not the previous connection's.
func TestFinishedConnectionBuffersServeTheNext(t *testing.T) {
	p := newPeer(t, policy.Linux())
	l, err := p.e.Listen(p.now, p.local, 16, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	transact := func(req, resp string) *Conn {
		t.Helper()
		p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
		sa := p.next()
		iss := sa.seq
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
		c, err := l.Accept(p.now)
		if err != nil {
			t.Fatalf("accept: %v", err)
		}
		p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: []byte(req)})
		b := make([]byte, 16)
		n, err := c.Read(p.now, b)
		if err != nil || string(b[:n]) != req {
			t.Fatalf("read %q, %v; want %q", b[:n], err, req)
		}
		if _, err := c.Write(p.now, []byte(resp)); err != nil {
			t.Fatal(err)
		}
		// Linux behaviour: tcp_event_data_recv(): the first segments of a
		// connection are acknowledged at once (quick ACKs), so an ACK
		// of the request may come before the reply.
		for p.collect(); len(p.out) > 0 && p.out[0].flags == fA && len(p.out[0].payload) == 0; {
			p.out = p.out[1:]
		}
		p.expect(fPA, iss+1, peerISN+1+Seq(len(req)))
		// The peer acknowledges the reply and closes first; the
		// application reads the end and closes: LAST-ACK, then CLOSED.
		// The FIN's ACK waits for the delayed-ACK timer (Linux tcp_fin)
		// and rides on our FIN.
		fin := peerISN + 1 + Seq(len(req))
		p.send(tseg{flags: fFA, seq: fin, ack: iss + 1 + Seq(len(resp)), wnd: 65535})
		p.expectNone()
		if _, err := c.Read(p.now, b); err == nil {
			t.Fatalf("read after the peer's FIN succeeded, want the end of the stream")
		}
		c.Close(p.now)
		p.expect(fFA, iss+1+Seq(len(resp)), fin+1)
		p.send(tseg{flags: fA, seq: fin + 1, ack: iss + 2 + Seq(len(resp)), wnd: 65535})
		if c.State() != Closed {
			t.Fatalf("state %v after the last ACK, want CLOSED", c.State())
		}
		return c
	}
	transact("first request", "first reply")
	if n := len(p.e.rings.free); n != 2 {
		t.Fatalf("after one finished connection the engine keeps %d ring buffers, want its 2 (send and receive)", n)
	}
	pooled := [][]byte{p.e.rings.free[0], p.e.rings.free[1]}
	p.remote = netip.AddrPortFrom(p.remote.Addr(), p.remote.Port()+1) // a new connection
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa := p.next()
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535})
	c, err := l.Accept(p.now)
	if err != nil {
		t.Fatal(err)
	}
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535, payload: []byte("2nd")})
	if len(p.e.rings.free) != 1 || !slicesSame(c.rcvBuf.buf, pooled) {
		t.Fatalf("the second connection's receive buffer is not one of the first's (pool keeps %d)", len(p.e.rings.free))
	}
	b := make([]byte, 16)
	n, err := c.Read(p.now, b)
	if err != nil || !bytes.Equal(b[:n], []byte("2nd")) {
		t.Fatalf("the second connection read %q, %v; want %q", b[:n], err, "2nd")
	}
	if _, err := c.Read(p.now, b); err != ErrWouldBlock {
		t.Fatalf("a second read returned %v, want ErrWouldBlock: nothing of the first connection's bytes may show", err)
	}
}

func slicesSame(b []byte, among [][]byte) bool {
	for _, o := range among {
		if len(b) > 0 && len(o) > 0 && &b[0] == &o[0] {
			return true
		}
	}
	return false
}

// TestTimeWaitGivesBuffersBack: a connection that enters TIME-WAIT with
// everything acknowledged and read holds no send or receive buffer
// through the 2*MSL wait; the engine's pool has them.
func TestTimeWaitGivesBuffersBack(t *testing.T) {
	p := newPeer(t, policy.Linux())
	c, iss := p.listenAndAccept(plainSyn)
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: []byte("req")})
	b := make([]byte, 8)
	if n, err := c.Read(p.now, b); err != nil || n != 3 {
		t.Fatalf("read %d, %v; want the 3 bytes", n, err)
	}
	if _, err := c.Write(p.now, []byte("reply")); err != nil {
		t.Fatal(err)
	}
	if c.sndBuf.Cap() == 0 || c.rcvBuf.Cap() == 0 {
		t.Fatalf("buffers before the close: send %d, receive %d bytes; want both allocated", c.sndBuf.Cap(), c.rcvBuf.Cap())
	}
	c.Close(p.now)
	// The peer acknowledges the reply and the FIN and sends its own FIN.
	p.send(tseg{flags: fFA, seq: peerISN + 4, ack: iss + 1 + 5 + 1, wnd: 65535})
	if c.State() != TimeWait {
		t.Fatalf("state %v, want TIME-WAIT", c.State())
	}
	if c.sndBuf.Cap() != 0 || c.rcvBuf.Cap() != 0 {
		t.Fatalf("in TIME-WAIT the connection holds a %d-byte send and a %d-byte receive buffer, want none", c.sndBuf.Cap(), c.rcvBuf.Cap())
	}
	if n := len(p.e.rings.free); n != 2 {
		t.Fatalf("the engine's pool keeps %d ring buffers, want the connection's 2", n)
	}
	// The peer's FIN retransmitted is acknowledged again (RFC 9293
	// §3.10.7.4), with no buffer needed.
	p.collect()
	p.out = nil
	p.send(tseg{flags: fFA, seq: peerISN + 4, ack: iss + 1 + 5 + 1, wnd: 65535})
	p.expect(fA, iss+1+5+1, peerISN+5)
}
