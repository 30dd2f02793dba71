package gvisorstack

import (
	"context"
	"net"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/faketime"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"

	"gvisor.dev/gvisor/pkg/waiter"

	"tunstack/netif"
	"tunstack/policy"
)

// TestZeroWindowIgnoresACKsGVisor is a known-defect canary for two
// behaviours of gVisor's receiver that together deadlock an application
// whose reading waits on its writing, such as an echo server
// (docs/gvisor.md, "Zero-window ACK deadlock"):
//
//  1. gVisor rounds its receive window down to a multiple of its window
//     scale unit, both when it advertises the window and when it checks
//     that a segment is acceptable, counting from RCV.NXT. So the right edge
//     it offered earlier can move back by up to 2^scale-1 bytes: a peer that
//     fills the window it was offered sends the last bytes beyond the
//     window gVisor now accepts, and gVisor drops them. RFC 1122 4.2.2.16:
//     "A TCP receiver SHOULD NOT shrink the window" (Linux behaviour: it
//     rounds the offered window up to the scale unit, never down).
//  2. With the window at zero, gVisor drops a segment whose sequence number
//     is not RCV.NXT, or that carries data, without looking at its ACK
//     field. RFC 9293 3.10.7.4: "If the RCV.WND is zero, no segments will
//     be acceptable, but special allowance should be made to accept valid
//     ACKs, URGs, and RSTs."
//
// After 1 the peer's SND.NXT lies beyond gVisor's RCV.NXT, so every segment
// the peer sends, its pure ACKs (sequence number SND.NXT) as well as its
// retransmissions of the dropped bytes, is unacceptable while gVisor's
// window is zero, and by 2 none of their ACKs reach gVisor's sender. If the
// application waits for send-buffer space before it reads again, the
// buffer never drains, the window never reopens, and the connection stays
// stuck while both sides keep retransmitting. That is the hang of
// cmd/tunstack's TestServeGoClientEchoRoundTrips10MiB/gvisor, reproduced
// with loss on the link (docs/gvisor.md).
//
// The scenario, in virtual time with a hand-written peer that offers
// window scaling: gVisor's application writes 500 bytes and never reads;
// the peer fills every byte of window gVisor offers, in 1000-byte
// segments and a last one of less than a scale unit, without
// acknowledging the 500 bytes. Then it acknowledges them
// with a pure ACK whose sequence number is its SND.NXT, as Linux does.
// gVisor must ignore that ACK (it retransmits the 500 bytes at its RTO);
// the same ACK sent with sequence number RCV.NXT must be taken (no
// retransmission after it). If either assertion fails, gVisor has changed:
// docs/gvisor.md and this test must be revised.
func TestZeroWindowIgnoresACKsGVisor(t *testing.T) {
	o := OptionsFromProfile(policy.Linux())
	if o.ZeroWindowACKRepair {
		t.Fatal("OptionsFromProfile turns the zero-window ACK repair on; this canary is about gVisor's own behaviour")
	}
	z := newZeroWindowScene(t, o, 500, nil)
	w, r := z.w, z.r

	// A pure ACK of the 500 bytes at the peer's SND.NXT, as Linux sends it.
	r.ack(z.nxt)
	if got := retransmissions(w, z.nxt, 5*time.Second); got == 0 {
		t.Fatal("gVisor took the ACK carried by a segment beyond its zero window (it did not retransmit the acknowledged data in 5 s): " +
			"gVisor now accepts ACKs with a zero window as RFC 9293 3.10.7.4 asks; " +
			"revise docs/gvisor.md (\"Zero-window ACK deadlock\") and this test")
	}
	t.Logf("as expected for this gVisor version: the ACK at SND.NXT, %d bytes beyond the zero window, was ignored and the acknowledged data retransmitted", z.dropped)

	// The same ACK with sequence number RCV.NXT is taken: the defect is the
	// sequence number check, not the ACK.
	r.send(header.TCPFlagAck, z.rcvNxt, z.nxt, nil)
	w.settle()
	if got := retransmissions(w, z.nxt, 2*time.Minute); got != 0 {
		t.Fatalf("gVisor retransmitted the acknowledged data %d times after an ACK at RCV.NXT; the scenario no longer isolates the sequence number check", got)
	}
	if n := z.w.st.Stats().ZeroWindowACKRepairs; n != 0 {
		t.Fatalf("the repair is off but made %d ACK copies", n)
	}
}

// TestZeroWindowACKRepair is the canary's scenario with
// Options.ZeroWindowACKRepair on, and an application that has filled its
// send buffer, as the echo of the hang had: the ACKs the peer sends while
// gVisor's window is zero, on a retransmission of the dropped bytes and on
// a pure ACK at the peer's SND.NXT, reach gVisor's sender, so it
// retransmits no acknowledged data and its send buffer drains, while its
// receiver, unmodified, still shrinks its window and refuses the segments.
func TestZeroWindowACKRepair(t *testing.T) {
	o := OptionsFromProfile(policy.Linux())
	o.ZeroWindowACKRepair = true
	var sndBuf int
	z := newZeroWindowScene(t, o, 0, func(c *Conn) int {
		// Nagle would hold back the last, short segment; without it all
		// of the buffer is in flight.
		c.SetNoDelay(true)
		c.SetWriteBuffer(4096)
		sndBuf = int(c.ep.SocketOptions().GetSendBufferSize())
		return sndBuf
	})
	w, r := z.w, z.r
	writable := func() bool { return z.c.ep.Readiness(waiter.WritableEvents) != 0 }
	if writable() {
		t.Fatalf("gVisor's send buffer of %d bytes holds %d unacknowledged bytes and is still writable; the scenario needs it full", sndBuf, z.una.Size(z.nxt))
	}

	// The peer retransmits the bytes gVisor refused, at RCV.NXT, and
	// acknowledges gVisor's first 1000 bytes with them: a segment carrying
	// data, which gVisor refuses at a zero window.
	part := z.una.Add(1000)
	before := w.st.Stats().ZeroWindowACKRepairs
	r.sendData(header.TCPFlagAck, z.rcvNxt, part, nil, make([]byte, z.dropped))
	segs := w.settle()
	if n := w.st.Stats().ZeroWindowACKRepairs - before; n != 1 {
		t.Fatalf("the repair made %d ACK copies for the retransmission, want 1", n)
	}
	for _, sg := range segs {
		if sg.flags&header.TCPFlagAck != 0 && (sg.wnd != 0 || sg.ack != z.rcvNxt) {
			t.Fatalf("gVisor answered the retransmission with ACK %d window %d; want its zero window at %d still (the repair must not open it)",
				sg.ack, sg.wnd, z.rcvNxt)
		}
	}
	// gVisor keeps retransmitting what is unacknowledged, and nothing below.
	again := 0
	for elapsed := time.Duration(0); elapsed < 5*time.Second; elapsed += 100 * time.Millisecond {
		w.advance(100 * time.Millisecond)
		for _, sg := range w.settle() {
			if sg.len == 0 {
				continue
			}
			if sg.seq.LessThan(part) {
				t.Fatalf("gVisor retransmitted %d bytes at %d, below the %d the peer acknowledged on a segment it refused at its zero window: the repair did not hand it the ACK",
					sg.len, sg.seq-z.una, part-z.una)
			}
			again++
		}
	}
	if again == 0 {
		t.Fatal("gVisor did not retransmit its unacknowledged data in 5 s")
	}

	// A pure ACK of everything at the peer's SND.NXT, beyond the zero
	// window, as Linux sends it.
	r.ack(z.nxt)
	w.settle()
	if n := w.st.Stats().ZeroWindowACKRepairs - before; n != 2 {
		t.Fatalf("the repair made %d ACK copies for the two segments, want 2", n)
	}
	if !writable() {
		t.Fatal("gVisor's send buffer is still full after the peer acknowledged all of it: the repair did not hand gVisor the ACK")
	}
	if got := retransmissions(w, z.nxt, 2*time.Minute); got != 0 {
		t.Fatalf("gVisor retransmitted acknowledged data %d times", got)
	}
	// The application can write again, as the echo goroutine of the hang
	// could not.
	if n, err := z.c.Write(make([]byte, sndBuf)); err != nil || n != sndBuf {
		t.Fatalf("Write after the ACK: %d, %v", n, err)
	}
}

// zeroWindowScene is gVisor at a zero window, short of its peer's SND.NXT,
// with unacknowledged data of its own.
type zeroWindowScene struct {
	w        *wire
	r        *rawTCP
	c        *Conn
	una, nxt seqnum.Value // gVisor's unacknowledged data
	rcvNxt   seqnum.Value // gVisor's RCV.NXT, at its zero window
	dropped  seqnum.Size  // how far the peer's SND.NXT is beyond it
}

// newZeroWindowScene builds the scenario of TestZeroWindowIgnoresACKsGVisor
// on a stack with options o, in virtual time with a hand-written peer
// that offers window scaling: gVisor's application writes and never
// reads; the peer fills every byte of window gVisor offers, in 1000-byte
// segments and a last one of less than a scale unit, without
// acknowledging gVisor's data, and checks that gVisor ends at a zero
// window short of the peer's SND.NXT. The application writes written
// bytes, or, if prepare is not nil, as many as prepare returns after it
// has set up the connection.
func newZeroWindowScene(t *testing.T, o Options, written int, prepare func(*Conn) int) *zeroWindowScene {
	const (
		mss      = 1000
		peerWS   = 7
		maxSends = 20000
		peerISS  = 5000
	)
	clock := faketime.NewManualClock()
	pa, pb := netif.NewPipe(testMTU)
	s, err := New(pa, Config{Addr: addrA, Prefix: netAB, Options: &o, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	peer := newRawPeer(pb)
	t.Cleanup(func() {
		s.Close()
		<-peer.done
	})
	w := &wire{t: t, st: s, clock: clock, peer: peer}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dialed := make(chan net.Conn, 1)
	go func() {
		c, err := s.Dial(ctx, "tcp", "10.0.0.9:80")
		if err != nil {
			t.Error(err)
		}
		dialed <- c
	}()
	syn := w.first()
	if syn.flags != header.TCPFlagSyn {
		t.Fatalf("first segment has flags %v, want SYN", syn.flags)
	}
	if syn.ws < 1 {
		t.Fatalf("gVisor's SYN offers window scale %d; the scenario needs a scale of at least 1", syn.ws)
	}
	ws := syn.ws
	r := &rawTCP{
		w:   w,
		src: tcpip.AddrFrom4([4]byte{10, 0, 0, 9}), dst: tcpip.AddrFrom4(addrA.As4()),
		sport: 80, dport: syn.sport,
		sndNxt: peerISS, rcvNxt: syn.seq + 1,
		wnd: 0xffff, // 8 MiB with the peer's scale: gVisor's sending is never limited
	}
	w.advance(10 * time.Millisecond)
	opts := make([]byte, 12)
	n := header.EncodeMSSOption(mss, opts)
	n += header.EncodeNOP(opts[n:])
	n += header.EncodeWSOption(peerWS, opts[n:])
	r.send(header.TCPFlagSyn|header.TCPFlagAck, r.sndNxt, r.rcvNxt, opts[:n])
	r.sndNxt++
	nc := <-dialed
	if nc == nil {
		t.Fatal("dial failed")
	}
	t.Cleanup(func() { nc.Close() })
	c := nc.(*Conn)

	// gVisor's right edge: the largest it has offered, and the last.
	var maxEdge, lastAck seqnum.Value
	var lastWnd seqnum.Size
	haveAck := false
	take := func(segs []seg) {
		for _, sg := range segs {
			if sg.flags&header.TCPFlagAck == 0 {
				continue
			}
			wnd := seqnum.Size(sg.wnd) << ws
			edge := sg.ack.Add(wnd)
			if !haveAck || maxEdge.LessThan(edge) {
				maxEdge = edge
			}
			lastAck, lastWnd, haveAck = sg.ack, wnd, true
		}
	}
	take(w.settle()) // the handshake's ACK
	if !haveAck {
		t.Fatal("gVisor did not acknowledge the SYN-ACK")
	}

	// The application writes and never reads; the peer does not
	// acknowledge the data yet.
	if prepare != nil {
		written = prepare(c)
	}
	if _, err := c.Write(make([]byte, written)); err != nil {
		t.Fatal(err)
	}
	segs := w.settle()
	una := r.rcvNxt
	nxt := una
	for _, sg := range segs {
		if sg.seq != nxt || sg.len == 0 {
			t.Fatalf("gVisor sent %+v, want its %d bytes in order from %d", segs, written, una)
		}
		nxt = sg.end()
	}
	if int(una.Size(nxt)) != written {
		t.Fatalf("gVisor sent %d of the %d bytes written: %+v", una.Size(nxt), written, segs)
	}
	take(segs)

	// The peer sends into every byte of window offered, as a sender that
	// fills its peer's window does, and ends with a segment of less than
	// one scale unit, as Linux did when gVisor's window had grown by 72
	// bytes after a full-sized segment.
	tail := 1 << (ws - 1)
	payload := make([]byte, mss)
	sends := 0
	for r.sndNxt.LessThan(maxEdge) {
		if sends++; sends > maxSends {
			t.Fatalf("gVisor kept its window open through %d segments", maxSends)
		}
		size := int(r.sndNxt.Size(maxEdge))
		if size > tail {
			size = min(mss, size-tail)
		}
		r.sendData(header.TCPFlagAck, r.sndNxt, r.rcvNxt, nil, payload[:size])
		r.sndNxt = r.sndNxt.Add(seqnum.Size(size))
		take(w.settle())
	}
	dropped := lastAck.Size(r.sndNxt)
	t.Logf("gVisor (window scale %d) offered a right edge up to %d bytes past the peer's first byte, "+
		"then advertised window %d at RCV.NXT %d bytes in: it dropped the last %d bytes it had offered",
		ws, maxEdge-(peerISS+1), lastWnd, lastAck-(peerISS+1), dropped)
	if lastWnd != 0 || dropped == 0 {
		t.Fatalf("after the peer filled every byte of window gVisor offered, gVisor advertises %d bytes at %d bytes before the peer's SND.NXT, "+
			"want a zero window short of SND.NXT: gVisor no longer shrinks its window by rounding; "+
			"revise docs/gvisor.md (\"Zero-window ACK deadlock\") and this test", lastWnd, dropped)
	}
	return &zeroWindowScene{w: w, r: r, c: c, una: una, nxt: nxt, rcvNxt: lastAck, dropped: dropped}
}

// retransmissions advances virtual time by up to d in 100 ms steps and
// counts the segments that resend data below end.
func retransmissions(w *wire, end seqnum.Value, d time.Duration) int {
	w.t.Helper()
	n := 0
	for elapsed := time.Duration(0); elapsed < d; elapsed += 100 * time.Millisecond {
		w.advance(100 * time.Millisecond)
		for _, sg := range w.settle() {
			if sg.len > 0 && sg.seq.LessThan(end) {
				n++
			}
		}
	}
	return n
}
