package tcpcore

import (
	"net/netip"
	"testing"
	"time"

	"tunstack/wire"
)

// An established connection's congestion controller is built when the
// connection first needs it (startCongestionControl, ccw): one that only
// completed its handshake, or only receives, holds none, so an idle
// connection is a CUBIC controller (240 bytes) smaller. Looking at it
// (tcp_info, the connection table, CongestionState) shows the controller
// it would be built as and builds nothing; the first data it sends builds
// it, in that state.
func TestIdleConnectionBuildsNoCongestionController(t *testing.T) {
	syn := wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true}
	check := func(t *testing.T, p *peer, c *Conn, what string) {
		t.Helper()
		if c.cc != nil || !c.ccDue {
			t.Fatalf("%s: controller built %v, due %v; want none built and one due", what, c.cc != nil, c.ccDue)
		}
		iw := 10 * c.sndMSS
		if in := c.Info(); in.CwndBytes != iw || in.Congestion != "cubic" || in.SSThreshBytes < congestionInfinity {
			t.Fatalf("%s: Info cwnd %d ssthresh %d %q, want the initial window %d, no ssthresh, cubic", what, in.CwndBytes, in.SSThreshBytes, in.Congestion, iw)
		}
		if st, ok := c.CongestionState(); !ok || st.CwndBytes != iw {
			t.Fatalf("%s: CongestionState %+v %v, want cwnd %d", what, st, ok, iw)
		}
		if ti := c.TCPInfo(p.now); ti.SndCwnd != 10 || ti.SndSsthresh != linuxInfiniteSsthresh {
			t.Fatalf("%s: tcp_info cwnd %d ssthresh %d, want 10 and Linux's infinite", what, ti.SndCwnd, ti.SndSsthresh)
		}
		if c.cc != nil {
			t.Fatalf("%s: looking at the connection built its controller", what)
		}
		// Nor does it make a controller to read: a metrics scrape reads
		// every connection's Info.
		if n := testing.AllocsPerRun(10, func() { c.Info(); c.CongestionState() }); n != 0 {
			t.Fatalf("%s: Info and CongestionState allocate %v times", what, n)
		}
	}

	t.Run("passive", func(t *testing.T) {
		p := newPeer(t, nil)
		c, iss := p.listenAndAccept(syn)
		check(t, p, c, "accepted")
		p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 1000)})
		p.advance(time.Second)
		p.expect(fA, iss+1, peerISN+1001)
		check(t, p, c, "after receiving data")
		c.Write(p.now, make([]byte, 100))
		p.expect(fPA, iss+1, peerISN+1001)
		if c.cc == nil || c.cc.CongestionWindow() != 10*c.sndMSS {
			t.Fatalf("after sending data: controller %v, want one built with the initial window", c.cc)
		}
	})
	t.Run("active", func(t *testing.T) {
		p := newPeer(t, nil)
		to := netip.AddrPortFrom(remoteIP, 80)
		c, err := p.e.Connect(p.now, netip.AddrPortFrom(localIP, 0), to, SockOpts{})
		if err != nil {
			t.Fatal(err)
		}
		p.activeOpen(c, to)
		check(t, p, c, "connected")
	})
}
