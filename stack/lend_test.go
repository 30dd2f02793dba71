package stack

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"tunstack/tcpcore"
)

// fillLent fills the first n bytes of the spans a, b from r, as a relay's
// readv does, and returns how many it filled.
func fillLent(t *testing.T, r io.Reader, a, b []byte, n int) int {
	t.Helper()
	got := 0
	for _, s := range [2][]byte{a, b} {
		k := min(len(s), n-got)
		if k <= 0 {
			break
		}
		if _, err := io.ReadFull(r, s[:k]); err != nil {
			t.Fatal(err)
		}
		got += k
	}
	return got
}

// TestLendCommit: a sender that writes a 4 MiB stream by Lend and Commit,
// filling each time a varying part of what was lent (all of it, or part
// of the first span, or into the second), through a small send buffer
// whose lent room wraps around the ring's end, delivers it byte-exact
// while the ACKs free room; what Lend does not lend (the first small
// buffer) goes by Write.
func TestLendCommit(t *testing.T) {
	p := newPair(t, 0, 21)
	c, s := p.connect(t, 7101)
	if err := c.SetWriteBuffer(48 << 10); err != nil {
		t.Fatal(err)
	}
	const total = 4 << 20
	done := make(chan [32]byte, 1)
	go func() {
		h := sha256.New()
		io.Copy(h, s)
		done <- sum(h)
	}()
	src := newPatternReader(total)
	sent, lent, wrapped, step := 0, 0, 0, 0
	for sent < total {
		step++
		a, b, err := c.Lend(min(total-sent, 40<<10))
		if err != nil {
			t.Fatal(err)
		}
		if len(a) == 0 {
			buf := make([]byte, min(total-sent, 1000))
			n := fillLent(t, src, buf, nil, len(buf))
			if _, err := c.Write(buf[:n]); err != nil {
				t.Fatal(err)
			}
			sent += n
			continue
		}
		room := len(a) + len(b)
		if room > 40<<10 || room > total-sent {
			t.Fatalf("lent %d bytes, asked for at most %d", room, min(total-sent, 40<<10))
		}
		want := room
		switch step % 3 {
		case 1:
			want = max(1, len(a)/2) // a part of the first span
		case 2:
			want = room - min(room-1, 777) // into the second span when there is one
		}
		n := fillLent(t, src, a, b, want)
		if len(b) > 0 && n > len(a) {
			wrapped++
		}
		if err := c.Commit(n); err != nil {
			t.Fatal(err)
		}
		sent += n
		lent += n
	}
	c.CloseWrite()
	if got := <-done; got != patternSHA256(total) {
		t.Fatal("the receiver's stream differs from what was committed")
	}
	// How often a commit crossed the ring's end depends on when the
	// ACKs came; TestLendWrapsAroundTheRing (tcpcore) makes it happen.
	t.Logf("%d commits of %d crossed the ring's end", wrapped, step)
	if lent < total-64<<10 {
		t.Fatalf("%d of %d bytes lent: the stream went by Write, the test checks too little", lent, total)
	}
}

// TestLendBackpressure: while the receiver reads nothing, Lend lends no
// more than the send buffer has room for, and once it is full Lend waits
// (here until its write deadline); when the receiver reads, Lend lends
// again, and every committed byte arrives.
func TestLendBackpressure(t *testing.T) {
	p := newPair(t, 0, 22)
	c, s := p.connect(t, 7102)
	src := newPatternReader(64 << 20)
	sent := 0
	for {
		c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		c.s.mu.Lock()
		room := c.tc.WriteBuffer() - c.tc.Unsent()
		c.s.mu.Unlock()
		a, b, err := c.Lend(1 << 20)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(a) == 0 {
			buf := make([]byte, 1000)
			n := fillLent(t, src, buf, nil, len(buf))
			if _, err := c.Write(buf[:n]); err != nil {
				t.Fatal(err)
			}
			sent += n
			continue
		}
		// The room is measured before Lend, which may wait for more: it
		// lends at most what the send buffer has room for when it lends,
		// and acknowledgments only add room.
		c.s.mu.Lock()
		nowRoom := c.tc.WriteBuffer() - c.tc.Unsent()
		c.s.mu.Unlock()
		if got := len(a) + len(b); got > nowRoom || got > 1<<20 {
			t.Fatalf("lent %d bytes with %d (before Lend %d) of room in the send buffer", got, nowRoom, room)
		}
		n := fillLent(t, src, a, b, len(a)+len(b))
		if err := c.Commit(n); err != nil {
			t.Fatal(err)
		}
		sent += n
		if sent > 32<<20 {
			t.Fatalf("%d bytes committed to a receiver that reads nothing", sent)
		}
	}
	c.s.mu.Lock()
	unsent, limit := c.tc.Unsent(), c.tc.WriteBuffer()
	c.s.mu.Unlock()
	if unsent > limit {
		t.Fatalf("%d bytes queued, more than the send buffer's %d", unsent, limit)
	}
	// The receiver reads: room comes back, Lend lends again.
	c.SetWriteDeadline(time.Time{})
	done := make(chan [32]byte, 1)
	go func() {
		h := sha256.New()
		io.Copy(h, s)
		done <- sum(h)
	}()
	a, b, err := c.Lend(1 << 20)
	if err != nil || len(a) == 0 {
		t.Fatalf("Lend once the receiver reads: %d+%d bytes, %v", len(a), len(b), err)
	}
	n := fillLent(t, src, a, b, len(a)+len(b))
	if err := c.Commit(n); err != nil {
		t.Fatal(err)
	}
	sent += n
	c.CloseWrite()
	if got := <-done; got != patternSHA256(int64(sent)) {
		t.Fatalf("the receiver's %d bytes differ from what was committed", sent)
	}
}

// growSendBuffer writes 8 KiB of 'a' on c, more than the first small
// send buffer holds, so that Lend lends; a fresh connection's Lend lends
// nothing.
func growSendBuffer(t *testing.T, c *Conn) []byte {
	t.Helper()
	if a, b, err := c.Lend(64 << 10); err != nil || a != nil || b != nil {
		t.Fatalf("Lend on a fresh connection: %d+%d bytes, %v; want nothing, the caller writes", len(a), len(b), err)
	}
	first := bytes.Repeat([]byte{'a'}, 8<<10)
	if _, err := c.Write(first); err != nil {
		t.Fatal(err)
	}
	return first
}

// TestLendRefusesWrite: between Lend and Commit, Write and a second Lend
// fail with tcpcore.ErrLent and queue nothing; after Commit, Write works
// and the bytes arrive in order: the lent ones, then the written ones.
func TestLendRefusesWrite(t *testing.T) {
	p := newPair(t, 0, 23)
	c, s := p.connect(t, 7103)
	first := growSendBuffer(t, c)
	a, _, err := c.Lend(64 << 10)
	if err != nil || len(a) < 4 {
		t.Fatalf("Lend after an 8 KiB write: %d bytes, %v", len(a), err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, tcpcore.ErrLent) {
		t.Fatalf("Write while lent: %v, want ErrLent", err)
	}
	if _, _, err := c.Lend(1); !errors.Is(err, tcpcore.ErrLent) {
		t.Fatalf("Lend while lent: %v, want ErrLent", err)
	}
	copy(a, "lent")
	if err := c.Commit(4); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Commit without Lend: %v, want EINVAL", err)
	}
	if _, err := c.Write([]byte("-written")); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	got, err := io.ReadAll(s)
	if want := string(first) + "lent-written"; err != nil || string(got) != want {
		t.Fatalf("received %d bytes ending %q, %v; want %d ending %q", len(got), got[max(0, len(got)-12):], err, len(want), "lent-written")
	}
}

// TestLendCloseAndAbort: a Close while room is lent makes Commit fail
// with net.ErrClosed (filling the spans after it is harmless: they are
// the dead connection's); a reset from the peer while room is lent makes
// Commit fail too, and nothing of it is sent.
func TestLendCloseAndAbort(t *testing.T) {
	p := newPair(t, 0, 24)
	c, _ := p.connect(t, 7104)
	growSendBuffer(t, c)
	a, b, err := c.Lend(64 << 10)
	if err != nil || len(a) == 0 {
		t.Fatalf("Lend: %d bytes, %v", len(a), err)
	}
	c.Close()
	for _, s := range [2][]byte{a, b} {
		for i := range s {
			s[i] = 'z'
		}
	}
	if err := c.Commit(len(a)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Commit after Close: %v, want net.ErrClosed", err)
	}
	if _, _, err := c.Lend(1); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Lend after Close: %v, want net.ErrClosed", err)
	}

	c2, s2 := p.connect(t, 7105)
	growSendBuffer(t, c2)
	a, _, err = c2.Lend(64 << 10)
	if err != nil || len(a) == 0 {
		t.Fatalf("Lend: %d bytes, %v", len(a), err)
	}
	s2.SetLinger(0)
	s2.Close() // RST
	// The reset arrives: Read, which lending does not hold back, says so.
	if _, err := c2.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after the peer's reset: %v, want ECONNRESET", err)
	}
	copy(a, "after the reset")
	c2.s.mu.Lock()
	before := c2.tc.Unsent()
	c2.s.mu.Unlock()
	err = c2.Commit(15)
	if !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Commit after a reset: %v, want EPIPE", err)
	}
	c2.s.mu.Lock()
	unsent := c2.tc.Unsent()
	c2.s.mu.Unlock()
	if unsent != before {
		t.Fatalf("%d bytes queued by a Commit after the reset", unsent-before)
	}
}
