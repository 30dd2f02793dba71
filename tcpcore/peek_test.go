package tcpcore

import (
	"bytes"
	"testing"
	"time"
)

// TestPeekLendsStableSpans: Peek lends the unread bytes without consuming
// them; they stay as they were while more data arrives (appended after
// them, wrapping around the buffer's end), while the buffer grows, and
// after the connection is closed and its buffers freed; Consume drops
// them as Read would, and what is left reads in order.
func TestPeekLendsStableSpans(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	seq := peerISN + 1
	var sent []byte // every byte the peer sent, in order
	next := byte(0)
	send := func(n int) {
		t.Helper()
		for n > 0 {
			k := min(n, 1000)
			b := make([]byte, k)
			for i := range b {
				b[i] = next
				next = next*7 + 1
			}
			p.send(tseg{flags: fA, seq: seq, ack: iss + 1, wnd: 65535, payload: b})
			seq = seq.Add(k)
			sent = append(sent, b...)
			n -= k
		}
		p.advance(time.Second)
		p.out = nil
	}
	read := 0 // bytes of sent consumed so far
	join := func(a, b []byte) []byte { return append(append([]byte(nil), a...), b...) }

	// A first buffer (ringMinBytes), which the engine recycles, is not lent.
	send(3000)
	if c.rcvBuf.Cap() != ringMinBytes {
		t.Fatalf("receive buffer of %d bytes after 3000, want the first %d", c.rcvBuf.Cap(), ringMinBytes)
	}
	if a, b, ok := c.Peek(1 << 20); ok || a != nil || b != nil {
		t.Fatalf("Peek lent %d+%d bytes of a first buffer, which the engine may give another connection", len(a), len(b))
	}
	send(3000) // the buffer grows to 8192
	a, b, ok := c.Peek(1 << 20)
	if !ok || !bytes.Equal(join(a, b), sent) {
		t.Fatalf("Peek lent %d+%d bytes (ok %v), want the %d unread", len(a), len(b), ok, len(sent))
	}
	if a, b, _ := c.Peek(100); len(a)+len(b) != 100 {
		t.Fatalf("Peek(100) lent %d bytes", len(a)+len(b))
	}
	// 1000 bytes stay unread, so the ring is not emptied (an emptied
	// one starts again at its buffer's start: rcvRewind).
	if err := c.Consume(p.now, 5000); err != nil {
		t.Fatal(err)
	}
	read = 5000
	p.out = nil
	// More data wraps around the end of the 8192-byte buffer.
	send(5000)
	if c.rcvBuf.Cap() != 2*ringMinBytes {
		t.Fatalf("buffer %d bytes, want still %d (this step is to wrap, not grow)", c.rcvBuf.Cap(), 2*ringMinBytes)
	}
	a, b, ok = c.Peek(1 << 20)
	if !ok || len(b) == 0 || !bytes.Equal(join(a, b), sent[read:]) {
		t.Fatalf("wrapped: Peek lent %d+%d bytes (ok %v), want %d in two spans", len(a), len(b), ok, len(sent)-read)
	}
	lent := join(a, b)
	// The buffer grows while the spans are lent: they still hold the bytes.
	send(20000)
	if c.rcvBuf.Cap() <= 2*ringMinBytes {
		t.Fatalf("buffer %d bytes: it did not grow", c.rcvBuf.Cap())
	}
	if !bytes.Equal(join(a, b), lent) {
		t.Fatal("the lent spans changed when the buffer grew")
	}
	c.Consume(p.now, 1000)
	read += 1000
	got := make([]byte, len(sent))
	n, err := c.Read(p.now, got)
	if err != nil || !bytes.Equal(got[:n], sent[read:]) {
		t.Fatalf("after Consume, Read returned %d bytes (%v), not the %d left in order", n, err, len(sent)-read)
	}
	// Closed with bytes lent: the buffer is freed, the spans still hold them.
	send(10000)
	a, b, _ = c.Peek(1 << 20)
	lent = join(a, b)
	c.Close(p.now)
	p.out = nil
	if !bytes.Equal(join(a, b), lent) || !bytes.Equal(lent, sent[len(sent)-10000:]) {
		t.Fatal("the lent spans changed when the connection was closed")
	}
	if err := c.Consume(p.now, 10); err != ErrClosed {
		t.Fatalf("Consume after Close: %v, want ErrClosed", err)
	}
	if a, _, ok := c.Peek(1 << 20); ok || a != nil {
		t.Fatal("Peek lent bytes after Close")
	}
}

// TestConsumeActsAsRead: two engines take the same segments; on one the
// application reads, on the other it peeks and consumes as much: both
// send the same segments after (the window updates), at the same instants.
func TestConsumeActsAsRead(t *testing.T) {
	lent := 0
	run := func(consume bool) []tseg {
		p := newPeer(t, nil)
		c, iss := p.listenAndAccept(plainSyn)
		seq := peerISN + 1
		var out []tseg
		buf := make([]byte, 1<<20)
		for round := 0; round < 20; round++ {
			for range 20 {
				p.send(tseg{flags: fA, seq: seq, ack: iss + 1, wnd: 65535, payload: make([]byte, 1460)})
				seq = seq.Add(1460)
			}
			p.advance(10 * time.Millisecond)
			n := c.Buffered() - 1000 // leaves some unread each round
			if consume {
				a, b, ok := c.Peek(n)
				if ok {
					if len(a)+len(b) != n {
						t.Fatalf("round %d: Peek lent %d bytes, want %d", round, len(a)+len(b), n)
					}
					c.Consume(p.now, n)
					lent++
				} else if k, _ := c.Read(p.now, buf[:n]); k != n {
					t.Fatalf("round %d: read %d, want %d", round, k, n)
				}
			} else if k, _ := c.Read(p.now, buf[:n]); k != n {
				t.Fatalf("round %d: read %d, want %d", round, k, n)
			}
			p.advance(10 * time.Millisecond)
			out = append(out, p.out...)
			p.out = nil
		}
		return out
	}
	read, consumed := run(false), run(true)
	if lent < 15 {
		t.Fatalf("Peek lent in %d of 20 rounds: the test checks too little", lent)
	}
	if len(read) == 0 {
		t.Fatal("no segment sent after the reads: nothing compared")
	}
	if len(read) != len(consumed) {
		t.Fatalf("reading sent %d segments, consuming %d", len(read), len(consumed))
	}
	for i := range read {
		if read[i].String() != consumed[i].String() {
			t.Fatalf("segment %d: reading sent %v, consuming %v", i, read[i], consumed[i])
		}
	}
}
