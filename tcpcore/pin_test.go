package tcpcore

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"tunstack/wire"
)

// zcConn opens a connection on an engine with Config.ZeroCopyChunks and
// completes its handshake with a peer that offers a window of 2 MB. It
// returns the connection, its 4-tuple and the time reached.
func zcConn(t *testing.T, e *Engine, now Time, so SockOpts) (*Conn, netip.AddrPort, netip.AddrPort, Time) {
	t.Helper()
	l, r := ipv4.addrs()
	c, err := e.Connect(now, netip.AddrPortFrom(l.Addr(), 0), r, so)
	if err != nil {
		t.Fatal(err)
	}
	syn := e.Output(nil)
	sa := wire.TCP(syn[0].Segment())
	local := netip.AddrPortFrom(l.Addr(), sa.SrcPort())
	e.Release(syn)
	now = now.Add(time.Millisecond)
	e.Input(now, r.Addr(), l.Addr(), tseg{flags: fSA, seq: peerISN, ack: Seq(sa.Seq()) + 1, wnd: 65535,
		opts: wire.TCPOptions{HasMSS: true, MSS: 1460, HasWScale: true, WScale: 7}}.encode(r, local))
	e.Release(e.Output(nil))
	if c.State() != Established {
		t.Fatalf("handshake left the connection in %v", c.State())
	}
	return c, local, r, now
}

// zcEngine makes an engine with zero-copy chunks.
func zcEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := NewEngine(Config{Profile: testProfile(), MTU: 1500, Secret: [32]byte{7}, ChecksumOffload: true, SegmentOffload: true, ZeroCopyChunks: true})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// payload returns a zero-copy packet's payload, copied.
func payload(p *Packet) []byte {
	a, b := p.Tail()
	return append(append([]byte(nil), a...), b...)
}

type countWaker struct{ n int }

func (w *countWaker) Wake() { w.n++ }

// A zero-copy chunk's payload is the send ring itself, and the driver
// writes it after Output while input and the application go on: bytes
// the peer acknowledges before the chunk is Released (it may acknowledge
// anything up to SND.NXT, which counts them already) are not overwritten
// by the writes that follow. Write stops short of them, and Release wakes
// the writer, whose next Write then fills the ring.
func TestZeroCopyChunkKeepsItsBytesUntilRelease(t *testing.T) {
	e := zcEngine(t)
	c, local, remote, now := zcConn(t, e, Time(time.Second), SockOpts{})
	var w countWaker
	c.SetWaker(&w)
	first := bytes.Repeat([]byte{0xa1}, 12_000)
	n, err := c.Write(now, first)
	if err != nil || n != len(first) {
		t.Fatalf("Write took %d of %d bytes (%v)", n, len(first), err)
	}
	held := e.Output(nil)
	var want [][]byte
	top := c.sndUna
	for _, p := range held {
		if p.TailLen() == 0 {
			t.Fatalf("packet %s carries no tail: want a zero-copy chunk", describe(p.Segment()))
		}
		want = append(want, payload(p))
		s := wire.TCP(p.Segment())
		top = MaxSeq(top, Seq(s.Seq()).Add(p.TailLen()))
	}
	if top != c.sndNxt || c.sndNxt.Sub(c.sndUna) != len(first) {
		t.Fatalf("the chunks end at %d, SND.NXT %d, SND.UNA %d: want all %d bytes sent", top, c.sndNxt, c.sndUna, len(first))
	}
	// The peer acknowledges all of it while the chunks are still held.
	now = now.Add(time.Millisecond)
	e.Input(now, remote.Addr(), local.Addr(), tseg{flags: fA, seq: peerISN + 1, ack: top, wnd: 65535}.encode(remote, local))
	if c.sndBuf.Len() != 0 {
		t.Fatalf("the ACK left %d bytes in the send buffer", c.sndBuf.Len())
	}
	capBefore := c.sndBuf.Cap()
	// Fill what the ring has: without the pins the second write would
	// wrap onto the bytes the held chunks point at.
	second := bytes.Repeat([]byte{0x5e}, capBefore)
	wrote := 0
	for wrote < len(second) {
		n, err := c.Write(now, second[wrote:])
		wrote += n
		if err == ErrWouldBlock {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if c.sndBuf.Cap() != capBefore {
		t.Fatalf("the ring grew from %d to %d bytes: the test needs it to stay", capBefore, c.sndBuf.Cap())
	}
	if free := c.sndBuf.Free(); free < len(first) {
		t.Fatalf("the ring has %d bytes free after Write stopped, want the %d the held chunks pin", free, len(first))
	}
	for i, p := range held {
		if got := payload(p); !bytes.Equal(got, want[i]) {
			t.Fatalf("held chunk %d changed before Release: %d bytes differ", i, diffCount(got, want[i]))
		}
	}
	for _, x := range e.Wakeups() { // those of the ACK and the writes
		x.Wake()
	}
	w.n = 0
	e.Release(held)
	for _, x := range e.Wakeups() {
		x.Wake()
	}
	if w.n == 0 {
		t.Fatal("Release of chunks whose bytes held a Write back woke nobody")
	}
	n, err = c.Write(now, second[wrote:])
	if err != nil || n == 0 {
		t.Fatalf("after Release, Write took %d bytes (%v): want the space the chunks held", n, err)
	}
	e.Release(e.Output(nil))
}

// A zero-copy chunk held by the driver keeps its bytes when its
// connection ends and its send ring is freed: the ring's buffer does not
// go back to the engine's pool, where the next connection would write its
// own data over the chunk's.
func TestZeroCopyChunkKeepsItsBytesPastItsConnection(t *testing.T) {
	e := zcEngine(t)
	c, _, _, now := zcConn(t, e, Time(time.Second), SockOpts{})
	first := bytes.Repeat([]byte{0xc3}, 3000) // within the ring's first, pooled, buffer
	if n, err := c.Write(now, first); err != nil || n != len(first) {
		t.Fatalf("Write took %d of %d bytes (%v)", n, len(first), err)
	}
	if c.sndBuf.Cap() != ringMinBytes {
		t.Fatalf("the send ring holds %d bytes, want the pooled %d", c.sndBuf.Cap(), ringMinBytes)
	}
	held := e.Output(nil)
	var want [][]byte
	for _, p := range held {
		if p.TailLen() > 0 {
			want = append(want, payload(p))
		}
	}
	if len(want) == 0 {
		t.Fatal("no zero-copy chunk was sent")
	}
	c.Abort(now) // the connection ends: its buffers are freed
	if c.State() != Closed {
		t.Fatalf("Abort left %v", c.State())
	}
	e.Release(e.Output(nil)) // the RST
	// A new connection takes a first buffer from the pool and fills it.
	d, _, _, now := zcConn(t, e, now.Add(time.Millisecond), SockOpts{})
	other := bytes.Repeat([]byte{0x3c}, ringMinBytes)
	if _, err := d.Write(now, other); err != nil {
		t.Fatal(err)
	}
	i := 0
	for _, p := range held {
		if p.TailLen() == 0 {
			continue
		}
		if got := payload(p); !bytes.Equal(got, want[i]) {
			t.Fatalf("held chunk %d changed after its connection ended: %d bytes differ", i, diffCount(got, want[i]))
		}
		i++
	}
	e.Release(held)
	e.Release(e.Output(nil))
	if len(e.pins) != 0 {
		t.Fatalf("%d chunks still pinned after every packet was released", len(e.pins))
	}
}

func diffCount(a, b []byte) int {
	n := max(len(a), len(b)) - min(len(a), len(b))
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}
