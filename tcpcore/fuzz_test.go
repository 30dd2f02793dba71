package tcpcore

import (
	"testing"
	"time"

	"tunstack/wire"
)

// FuzzEngineInput feeds arbitrary segments to an engine holding a listener
// and an established connection. The engine must never panic, must keep
// SND.UNA <= SND.NXT <= SND.MAX, and must only emit well-formed segments.
func FuzzEngineInput(f *testing.F) {
	f.Add(tseg{flags: fS, seq: 5, wnd: 100, opts: plainSyn}.encode(remote, local), uint16(0))
	f.Add(tseg{flags: fPA, seq: peerISN + 1, ack: 1, wnd: 100, payload: []byte("data")}.encode(remote, local), uint16(1))
	f.Add(tseg{flags: fR, seq: peerISN + 1}.encode(remote, local), uint16(2))
	f.Add(tseg{flags: fA, seq: peerISN + 1, opts: wire.TCPOptions{NumSACK: 2, SACK: [4]wire.SACKBlock{{Left: 1, Right: 2}, {Left: 5, Right: 9}}}}.encode(remote, local), uint16(3))
	f.Fuzz(func(t *testing.T, seg []byte, advanceMs uint16) {
		p := newPeer(t, nil)
		c, iss := p.listenAndAccept(wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 1, SACKPermitted: true})
		c.Write(p.now, []byte("some data in flight"))
		if len(seg) >= wire.TCPHeaderLen {
			// Aim at the connection half the time: fix the ports and, if
			// the ACK bit is set, steer the ack near our ISN.
			seg[0], seg[1] = byte(remote.Port()>>8), byte(remote.Port())
			seg[2], seg[3] = byte(local.Port()>>8), byte(local.Port())
			if advanceMs%2 == 0 {
				a := uint32(iss) + uint32(seg[8])
				seg[8], seg[9], seg[10], seg[11] = byte(a>>24), byte(a>>16), byte(a>>8), byte(a)
			}
			wire.TCP(seg).ComputeChecksum(remoteIP.As4(), localIP.As4())
		}
		p.e.Input(p.now, remoteIP, localIP, seg)
		p.collect()
		p.advance(0)
		p.now = p.now.Add(0)
		p.advance(msDuration(advanceMs))
		if c.state != Closed && (c.sndNxt.LT(c.sndUna) || c.sndMax.LT(c.sndNxt)) {
			t.Fatalf("sequence invariant broken: una %d nxt %d max %d", c.sndUna, c.sndNxt, c.sndMax)
		}
	})
}

func msDuration(ms uint16) (d time.Duration) { return time.Duration(ms) * 1e6 }
