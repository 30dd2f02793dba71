package tcpcore

import (
	"testing"
	"time"

	"tunstack/wire"
)

// FuzzEngineInput feeds arbitrary segments to an engine holding a listener
// and an established connection, over IPv4 or IPv6. The engine must never
// panic, must keep SND.UNA <= SND.NXT <= SND.MAX, and must only emit
// well-formed segments in the connection's family. Over IPv6 the segment
// is also fed to ICMPError as the quote of a Packet Too Big or a
// Destination Unreachable, which must hold the same invariants.
func FuzzEngineInput(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		r, l := remote, local
		if v6 {
			r, l = remote6, local6
		}
		f.Add(tseg{flags: fS, seq: 5, wnd: 100, opts: plainSyn}.encode(r, l), uint16(0), v6)
		f.Add(tseg{flags: fPA, seq: peerISN + 1, ack: 1, wnd: 100, payload: []byte("data")}.encode(r, l), uint16(1), v6)
		f.Add(tseg{flags: fR, seq: peerISN + 1}.encode(r, l), uint16(2), v6)
		f.Add(tseg{flags: fA, seq: peerISN + 1, opts: wire.TCPOptions{NumSACK: 2, SACK: [4]wire.SACKBlock{{Left: 1, Right: 2}, {Left: 5, Right: 9}}}}.encode(r, l), uint16(3), v6)
	}
	f.Fuzz(func(t *testing.T, seg []byte, advanceMs uint16, v6 bool) {
		fam := ipv4
		if v6 {
			fam = ipv6
		}
		p := newPeerFamily(t, nil, fam, 1500)
		remote, local := p.remote, p.local
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
			wire.TCP(seg).ComputeChecksumAddr(remote.Addr(), local.Addr())
		}
		p.e.Input(p.now, remote.Addr(), local.Addr(), seg)
		p.collect()
		if v6 {
			// The same bytes as the TCP part of a quote of our packet,
			// ports turned around so that it names the connection.
			q := make([]byte, wire.IPv6HeaderLen+len(seg))
			wire.PutIPv6Header(q, wire.IPv6Fields{Src: local.Addr().As16(), Dst: remote.Addr().As16(), NextHeader: wire.ProtoTCP, HopLimit: 64}, len(seg))
			copy(q[wire.IPv6HeaderLen:], seg)
			if len(seg) >= 4 {
				q[40], q[41], q[42], q[43] = seg[2], seg[3], seg[0], seg[1]
			}
			kind := ICMPPacketTooBig
			if advanceMs%3 == 1 {
				kind = ICMPUnreachable
			}
			p.e.ICMPError(p.now, ICMPMessage{Kind: kind, Code: uint8(advanceMs), MTU: uint32(advanceMs) * 3, Quote: q})
			p.collect()
		}
		p.advance(0)
		p.now = p.now.Add(0)
		p.advance(msDuration(advanceMs))
		if c.state != Closed && (c.sndNxt.LT(c.sndUna) || c.sndMax.LT(c.sndNxt)) {
			t.Fatalf("sequence invariant broken: una %d nxt %d max %d", c.sndUna, c.sndNxt, c.sndMax)
		}
	})
}

func msDuration(ms uint16) (d time.Duration) { return time.Duration(ms) * 1e6 }
