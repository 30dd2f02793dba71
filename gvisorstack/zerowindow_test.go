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
	const (
		mss      = 1000
		peerWS   = 7
		written  = 500
		maxSends = 20000
		peerISS  = 5000
	)
	o := OptionsFromProfile(policy.Linux())
	clock := faketime.NewManualClock()
	pa, pb := netif.NewPipe(testMTU)
	s, err := New(pa, Config{Addr: addrA, Prefix: netAB, Options: &o, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	peer := newRawPeer(pb)
	defer func() {
		s.Close()
		<-peer.done
	}()
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
	c := <-dialed
	if c == nil {
		t.Fatal("dial failed")
	}
	defer c.Close()

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
	if _, err := c.Write(make([]byte, written)); err != nil {
		t.Fatal(err)
	}
	segs := w.settle()
	if len(segs) != 1 || segs[0].len != written || segs[0].seq != r.rcvNxt {
		t.Fatalf("gVisor sent %+v, want one segment of %d bytes at %d", segs, written, r.rcvNxt)
	}
	data := segs[0]
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

	// A pure ACK of the 500 bytes at the peer's SND.NXT, as Linux sends it.
	r.ack(data.end())
	if got := retransmissions(w, data, 5*time.Second); got == 0 {
		t.Fatal("gVisor took the ACK carried by a segment beyond its zero window (it did not retransmit the acknowledged data in 5 s): " +
			"gVisor now accepts ACKs with a zero window as RFC 9293 3.10.7.4 asks; " +
			"revise docs/gvisor.md (\"Zero-window ACK deadlock\") and this test")
	}
	t.Logf("as expected for this gVisor version: the ACK at SND.NXT, %d bytes beyond the zero window, was ignored and the acknowledged data retransmitted", dropped)

	// The same ACK with sequence number RCV.NXT is taken: the defect is the
	// sequence number check, not the ACK.
	r.send(header.TCPFlagAck, lastAck, data.end(), nil)
	w.settle()
	if got := retransmissions(w, data, 2*time.Minute); got != 0 {
		t.Fatalf("gVisor retransmitted the acknowledged data %d times after an ACK at RCV.NXT; the scenario no longer isolates the sequence number check", got)
	}
}

// retransmissions advances virtual time by up to d in 100 ms steps and
// counts the segments that resend data's bytes.
func retransmissions(w *wire, data seg, d time.Duration) int {
	w.t.Helper()
	n := 0
	for elapsed := time.Duration(0); elapsed < d; elapsed += 100 * time.Millisecond {
		w.advance(100 * time.Millisecond)
		for _, sg := range w.settle() {
			if sg.seq == data.seq && sg.len > 0 {
				n++
			}
		}
	}
	return n
}
