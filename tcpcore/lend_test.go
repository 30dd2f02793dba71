package tcpcore

import (
	"bytes"
	"testing"
	"time"

	"tunstack/wire"
)

// Lend lends the send ring's free space, but not the bytes behind the
// head that zero-copy chunks the driver still holds point at (the peer
// acknowledged them before the chunks were released): filling all that
// was lent and committing it leaves the chunks' bytes as they were, as
// Write does (TestZeroCopyChunkKeepsItsBytesUntilRelease). Meanwhile
// Write and Lend are refused with ErrLent, and a Commit of more than the
// room with ErrInvalid.
func TestLendLeavesPinnedBytes(t *testing.T) {
	e, c, now, held, want := ackedButHeld(t)
	first := 12_000
	capBefore := c.sndBuf.Cap()
	a, b, err := c.Lend(capBefore)
	if err != nil || len(a) == 0 {
		t.Fatalf("Lend: %d+%d bytes, %v", len(a), len(b), err)
	}
	if c.sndBuf.Cap() != capBefore {
		t.Fatalf("the ring grew from %d to %d bytes: the test needs it to stay", capBefore, c.sndBuf.Cap())
	}
	lent := len(a) + len(b)
	if lent > capBefore-first {
		t.Fatalf("lent %d bytes of a %d-byte ring whose chunks pin %d", lent, capBefore, first)
	}
	if _, err := c.Write(now, []byte{1}); err != ErrLent {
		t.Fatalf("Write while lent: %v, want ErrLent", err)
	}
	if _, _, err := c.Lend(1); err != ErrLent {
		t.Fatalf("Lend while lent: %v, want ErrLent", err)
	}
	for _, s := range [2][]byte{a, b} {
		for i := range s {
			s[i] = 0x5e
		}
	}
	for i, p := range held {
		if got := payload(p); !bytes.Equal(got, want[i]) {
			t.Fatalf("held chunk %d changed by filling what Lend lent: %d bytes differ", i, diffCount(got, want[i]))
		}
	}
	if err := c.Commit(now, capBefore); err != ErrInvalid {
		t.Fatalf("Commit of the whole ring over pinned bytes: %v, want ErrInvalid", err)
	}
	if c.sndBuf.Len() != 0 {
		t.Fatalf("a refused Commit queued %d bytes", c.sndBuf.Len())
	}
	a, b, err = c.Lend(capBefore)
	if err != nil || len(a)+len(b) != lent {
		t.Fatalf("Lend again: %d+%d bytes, %v; want %d", len(a), len(b), err, lent)
	}
	if err := c.Commit(now, lent); err != nil {
		t.Fatal(err)
	}
	if c.sndBuf.Len() != lent {
		t.Fatalf("Commit of %d bytes left %d in the send buffer", lent, c.sndBuf.Len())
	}
	// What Commit queued goes out, byte for byte what was lent.
	e.Release(held)
	sent := sentPayload(e)
	if len(sent) == 0 || !bytes.Equal(sent, bytes.Repeat([]byte{0x5e}, len(sent))) {
		t.Fatalf("sent %d bytes after Commit, want the committed 0x5e bytes", len(sent))
	}
}

// Lend lends the free space after the tail and, past the ring's end, the
// space before the head: filled with a pattern and committed, the bytes go
// out in order, the second span's after the first's.
func TestLendWrapsAroundTheRing(t *testing.T) {
	e, err := NewEngine(Config{Profile: testProfile(), MTU: 1500, Secret: [32]byte{7}, ChecksumOffload: true, SegmentOffload: true})
	if err != nil {
		t.Fatal(err)
	}
	c, local, remote, now := zcConn(t, e, Time(time.Second), SockOpts{})
	if n, err := c.Write(now, make([]byte, 10_000)); err != nil || n != 10_000 {
		t.Fatalf("Write took %d bytes (%v)", n, err)
	}
	e.Release(e.Output(nil))
	now = now.Add(time.Millisecond)
	e.Input(now, remote.Addr(), local.Addr(), tseg{flags: fA, seq: peerISN + 1, ack: c.sndNxt, wnd: 65535}.encode(remote, local))
	e.Release(e.Output(nil))
	if c.sndBuf.Len() != 0 || c.sndBuf.head == 0 {
		t.Fatalf("after the ACK the ring holds %d bytes from %d: want it empty with its head past 0", c.sndBuf.Len(), c.sndBuf.head)
	}
	ring := c.sndBuf.Cap()
	a, b, err := c.Lend(ring)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || len(a)+len(b) != ring || c.sndBuf.Cap() != ring {
		t.Fatalf("Lend of the empty %d-byte ring lent %d+%d bytes (ring now %d): want all of it, wrapping", ring, len(a), len(b), c.sndBuf.Cap())
	}
	n := len(a) + len(b)/2
	want := make([]byte, n)
	for i := range want {
		want[i] = byte(i*7 + i/251)
	}
	copy(b, want[copy(a, want):])
	if err := c.Commit(now, n); err != nil {
		t.Fatal(err)
	}
	var sent []byte
	for len(sent) < n {
		out := e.Output(nil)
		if len(out) == 0 {
			break
		}
		for _, p := range out {
			s := wire.TCP(p.Segment())
			sent = append(sent, s.Payload()...)
			sent = append(sent, payload(p)...)
		}
		e.Release(out)
		now = now.Add(time.Millisecond)
		e.Input(now, remote.Addr(), local.Addr(), tseg{flags: fA, seq: peerISN + 1, ack: c.sndNxt, wnd: 65535}.encode(remote, local))
	}
	if !bytes.Equal(sent, want) {
		t.Fatalf("sent %d bytes, want the %d committed (%d differ in the common part)", len(sent), n, diffCount(sent[:min(len(sent), n)], want[:min(len(sent), n)]))
	}
}

// When Lend grows the ring while zero-copy chunks still hold bytes of the
// old one (acknowledged, not yet released by the driver), those bytes stay
// in the old buffer and all of the new one past the tail is free: Commit
// takes everything Lend lent, and the bytes go out as filled, while the
// chunks keep theirs.
func TestCommitTakesAllLentAfterLendGrewAPinnedRing(t *testing.T) {
	e, c, now, held, want := ackedButHeld(t)
	if pinned, behind := c.sndPins(); !pinned || behind == 0 {
		t.Fatalf("no chunk holds acknowledged bytes (pinned %v, %d behind): the test needs them held", pinned, behind)
	}
	capBefore := c.sndBuf.Cap()
	c.sndBufMax = 4 * capBefore // as expandSndBuf raises it with the window
	a, b, err := c.Lend(c.sndBufMax)
	if err != nil {
		t.Fatal(err)
	}
	if c.sndBuf.Cap() <= capBefore {
		t.Fatalf("the ring stayed at %d bytes: the test needs Lend to grow it", capBefore)
	}
	lent := len(a) + len(b)
	if lent != c.sndBufMax {
		t.Fatalf("lent %d bytes, want the whole send buffer of %d", lent, c.sndBufMax)
	}
	for _, s := range [2][]byte{a, b} {
		for i := range s {
			s[i] = 0x5e
		}
	}
	if err := c.Commit(now, lent); err != nil {
		t.Fatalf("Commit of all %d lent bytes with the old ring's chunks still held: %v", lent, err)
	}
	if c.sndBuf.Len() != lent {
		t.Fatalf("Commit of %d bytes left %d in the send buffer", lent, c.sndBuf.Len())
	}
	for i, p := range held {
		if got := payload(p); !bytes.Equal(got, want[i]) {
			t.Fatalf("held chunk %d changed: %d bytes differ", i, diffCount(got, want[i]))
		}
	}
	e.Release(held)
	sent := sentPayload(e)
	if len(sent) == 0 || !bytes.Equal(sent, bytes.Repeat([]byte{0x5e}, len(sent))) {
		t.Fatalf("sent %d bytes after Commit, want the committed 0x5e bytes", len(sent))
	}
}

// ackedButHeld makes a connection on an engine with zero-copy chunks that
// wrote 12,000 bytes of 0xa1, sent them as chunks the driver still holds
// (held, with their payloads in want), and had them all acknowledged: the
// send buffer is empty and the chunks pin its bytes behind the head.
func ackedButHeld(t *testing.T) (e *Engine, c *Conn, now Time, held []*Packet, want [][]byte) {
	t.Helper()
	e = zcEngine(t)
	c, local, remote, now := zcConn(t, e, Time(time.Second), SockOpts{})
	first := bytes.Repeat([]byte{0xa1}, 12_000)
	if n, err := c.Write(now, first); err != nil || n != len(first) {
		t.Fatalf("Write took %d of %d bytes (%v)", n, len(first), err)
	}
	held = e.Output(nil)
	for _, p := range held {
		if p.TailLen() == 0 {
			t.Fatalf("packet %s carries no tail: want a zero-copy chunk", describe(p.Segment()))
		}
		want = append(want, payload(p))
	}
	now = now.Add(time.Millisecond)
	e.Input(now, remote.Addr(), local.Addr(), tseg{flags: fA, seq: peerISN + 1, ack: c.sndNxt, wnd: 65535}.encode(remote, local))
	if c.sndBuf.Len() != 0 {
		t.Fatalf("the ACK left %d bytes in the send buffer", c.sndBuf.Len())
	}
	return e, c, now, held, want
}

// sentPayload is the payload of what e sends next, in order: each
// packet's own bytes, then its zero-copy tail.
func sentPayload(e *Engine) []byte {
	var sent []byte
	out := e.Output(nil)
	for _, p := range out {
		if s := wire.TCP(p.Segment()); len(s.Payload()) > 0 {
			sent = append(sent, s.Payload()...)
		}
		sent = append(sent, payload(p)...)
	}
	e.Release(out)
	return sent
}
