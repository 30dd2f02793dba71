package tcpcore

import (
	"fmt"
	"testing"
	"time"

	"tunstack/wire"
)

// TestFullBufferOffersZeroWindow: a peer sends as fast as our window lets
// it while the application never reads. The window we offer shrinks, never
// promises a byte the buffer cannot hold, reaches 0 once the peer has
// filled what was promised, and stays 0 through the peer's zero-window
// probes (RFC 9293 §3.8.6.2.2, RFC 1122 §4.2.3.3, Linux __tcp_select_window).
// Reading then reopens it with a window update.
func TestFullBufferOffersZeroWindow(t *testing.T) {
	for _, tc := range []struct {
		rcvBuf    int // 0: the profile's default (131072 for linux)
		rcvBufMax int // the profile's ceiling, which sets our window scale
		mss       uint16
	}{
		{0, 0, 1460},          // the linux profile's buffers (scale 7), a Linux client's MSS
		{10000, 0, 1460},      // a buffer that is no multiple of the scale's unit
		{65536, 65535, 1000},  // no window scaling
		{30000, 1 << 30, 536}, // scale 14: one unit is more than the whole buffer
	} {
		t.Run(fmt.Sprintf("rcvbuf=%d,max=%d,mss=%d", tc.rcvBuf, tc.rcvBufMax, tc.mss), func(t *testing.T) {
			prof := testProfile()
			if tc.rcvBufMax != 0 {
				prof.RcvBufMax = tc.rcvBufMax
				prof.RcvBuf = min(prof.RcvBuf, tc.rcvBufMax)
			}
			p := newPeer(t, prof)
			syn := wire.TCPOptions{HasMSS: true, MSS: tc.mss, HasWScale: true, WScale: 7, SACKPermitted: true}
			c, iss := p.listenAndAcceptWith(syn, SockOpts{RcvBuf: tc.rcvBuf})
			buf := c.ReadBuffer()
			start := peerISN + 1         // nothing is read, so the buffer starts here
			seq, edge := start, c.rcvAdv // what the SYN-ACK offered
			checkEdge := func(a tseg) {
				t.Helper()
				right := a.ack.Add(int(a.wnd) << c.rcvWscale)
				if right.Sub(start) > buf {
					t.Fatalf("%v offers bytes up to %d past the buffer's start, beyond its %d bytes", a, right.Sub(start), buf)
				}
				if c.rcvAdv.Sub(start) > buf {
					t.Fatalf("the engine's right edge is %d bytes past the buffer's start; the buffer holds %d", c.rcvAdv.Sub(start), buf)
				}
				// The peer may fill the largest edge it was ever offered:
				// a window once offered is not taken back.
				if right.GT(edge) {
					edge = right
				}
			}
			for round := 0; seq.LT(edge); round++ {
				if round > 1000 {
					t.Fatalf("the window never closed: offered up to %d, peer at %d", edge.Sub(start), seq.Sub(start))
				}
				for seq.LT(edge) {
					n := min(int(tc.mss), edge.Sub(seq))
					p.send(tseg{flags: fA, seq: seq, ack: iss + 1, wnd: 65535, payload: make([]byte, n)})
					seq = seq.Add(n)
				}
				p.advance(time.Second) // the delayed ACK, if one is held
				for _, a := range p.out {
					checkEdge(a)
				}
				p.out = nil
			}
			if seq.Sub(start) > buf || c.inOrderUnread() != seq.Sub(start) || c.rcvAdv != seq {
				t.Fatalf("peer sent %d bytes, %d are in a %d-byte buffer, the engine's edge is %d bytes past them",
					seq.Sub(start), c.inOrderUnread(), buf, c.rcvAdv.Sub(seq))
			}
			// Zero-window probes, Linux's form (SND.UNA-1, no data) and one
			// carrying a new byte: each answered with window 0, the byte
			// not taken.
			// Probes without data are answered at most once per
			// InvalidRateLimit, as other out-of-window segments are.
			for i := 0; i < 3; i++ {
				p.advance(p.e.prof.InvalidRateLimit)
				p.send(tseg{flags: fA, seq: seq.Add(-1), ack: iss + 1, wnd: 65535})
				if a := p.expect(fA, iss+1, seq); a.wnd != 0 {
					t.Fatalf("probe %d answered with window %d, want 0", i+1, a.wnd)
				}
				p.send(tseg{flags: fA, seq: seq.Add(-1), ack: iss + 1, wnd: 65535})
				p.expectNone()
			}
			p.send(tseg{flags: fA, seq: seq, ack: iss + 1, wnd: 65535, payload: []byte{1}})
			if a := p.expect(fA, iss+1, seq); a.wnd != 0 {
				t.Fatalf("a probe with a byte was answered with window %d, want 0", a.wnd)
			}
			// Reading everything reopens the window at once.
			n, _ := c.Read(p.now, make([]byte, buf))
			if n != seq.Sub(start) {
				t.Fatalf("read %d bytes, want %d", n, seq.Sub(start))
			}
			a := p.expect(fA, iss+1, seq)
			if a.wnd == 0 {
				t.Fatal("no window update after the application read the whole buffer")
			}
			start = seq // the buffer now starts where the peer is
			checkEdge(a)
		})
	}
}

// TestAckHeldBackUntilTheWindowGrows: past quick-ACK mode, two full
// segments that the application has not read do not draw the
// every-second-segment ACK, since it would only repeat a shrinking window
// (Linux __tcp_ack_snd_check); the delayed ACK stays armed, and the read
// that grows the window sends the held-back ACK at once (Linux
// tcp_cleanup_rbuf) instead of leaving it to the timer.
func TestAckHeldBackUntilTheWindowGrows(t *testing.T) {
	p := newPeer(t, nil)
	syn := wire.TCPOptions{HasMSS: true, MSS: 1000, HasWScale: true, WScale: 7, SACKPermitted: true}
	c, iss := p.listenAndAcceptWith(syn, SockOpts{RcvBuf: 8192})
	seq := peerISN + 1
	send := func() {
		p.send(tseg{flags: fA, seq: seq, ack: iss + 1, wnd: 65535, payload: make([]byte, 1000)})
		seq += 1000
	}
	// Quick-ACK mode: half the 7000-byte window in 1000-byte segments.
	for i := 0; i < 3; i++ {
		send()
		p.expect(fA, iss+1, seq)
	}
	send()
	send()
	p.expectNone()
	if c.delackAt == noDeadline {
		t.Fatal("no delayed ACK armed for the two segments held back")
	}
	// A read too small to call for a window update of its own.
	p.advance(time.Millisecond)
	if n, _ := c.Read(p.now, make([]byte, 1000)); n != 1000 {
		t.Fatalf("read %d bytes, want 1000", n)
	}
	a := p.expect(fA, iss+1, seq)
	if a.at != p.now {
		t.Fatalf("the held-back ACK went at %v, want at the read, %v", time.Duration(a.at), time.Duration(p.now))
	}
	if a.wnd == 0 {
		t.Fatal("the ACK after the read offers no window")
	}
}
