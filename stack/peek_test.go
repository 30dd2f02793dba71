package stack

import (
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"testing"
)

// TestPeekConsume: a receiver that forwards by Peek and Consume, falling
// back to Read when Peek lends nothing, gets a 4 MiB stream byte-exact
// while the sender keeps sending (the lent spans are read outside the
// stack's lock as new data arrives); the end of the stream comes by Read;
// after Close, Peek lends nothing and Consume fails.
func TestPeekConsume(t *testing.T) {
	p := newPair(t, 0, 12)
	c, s := p.connect(t, 7002)
	const total = 4 << 20
	go func() {
		io.Copy(c, io.LimitReader(newPatternReader(total), total))
		c.CloseWrite()
	}()
	h := sha256.New()
	buf := make([]byte, 64<<10)
	lent, got := 0, 0
	for {
		// Wait without reading, so that what arrives is lent when it
		// can be; Read only what Peek does not lend.
		if err := s.WaitRead(); err != nil {
			t.Fatal(err)
		}
		a, b := s.Peek(128 << 10)
		if len(a) > 0 {
			// What a relay does with the spans: write them elsewhere,
			// outside the lock, while the stack takes more data.
			h.Write(a)
			h.Write(b)
			n := len(a) + len(b)
			if err := s.Consume(n); err != nil {
				t.Fatal(err)
			}
			lent += n
			got += n
			continue
		}
		n, err := s.Read(buf)
		h.Write(buf[:n])
		got += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got != total || sum(h) != patternSHA256(total) {
		t.Fatalf("received %d bytes, want %d, hash equal %v", got, total, sum(h) == patternSHA256(total))
	}
	if lent < total-64<<10 {
		t.Fatalf("Peek lent %d of %d bytes: the stream went by Read, the test checks too little", lent, total)
	}
	s.Close()
	if a, b := s.Peek(1); a != nil || b != nil {
		t.Fatal("Peek lent bytes of a closed connection")
	}
	if err := s.Consume(1); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Consume after Close: %v, want net.ErrClosed", err)
	}
}
