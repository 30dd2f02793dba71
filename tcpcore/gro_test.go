package tcpcore

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"

	"tunstack/wire"
)

// groUnit is a run of consecutive segments a peer sends with one header, as
// a TSO packet: its first sequence number (relative to the peer's ISN + 1),
// its length in bytes and its flags (PSH and FIN go to the last segment).
type groUnit struct {
	off, n int
	flags  uint8
}

const groSegSize = 1000

// groScript has in-order data, a hole whose later data is SACKed, a unit
// that duplicates data already received (D-SACK) while filling the hole,
// a unit entirely below RCV.NXT, and a last unit with a short segment and
// a FIN.
var groScript = []groUnit{
	{0, 4 * groSegSize, fPA},
	{6 * groSegSize, 4 * groSegSize, fA},            // segments 6-9: out of order
	{2 * groSegSize, 6 * groSegSize, fA},            // 2-3 again (D-SACK), 4-5 fill the hole, 6-7 again
	{0, 2 * groSegSize, fA},                         // all duplicate
	{10 * groSegSize, 2*groSegSize + 300, fPA | fF}, // 10, 11 and a short 12, with FIN
}

// groData is the byte the peer sends at stream offset i.
func groData(i int) byte { return byte(i*7 + i/251) }

// runGRO plays groScript against a fresh engine over family f and returns
// what the engine sent, its counters and the bytes the application read.
// With gro each unit goes in as one InputGRO call; without, the unit is
// cut into the segments Linux's tcp_gso_segment() makes and they go in
// one by one. Either way the driver collects the output once per unit,
// as the runtime does once per link batch.
func runGRO(t *testing.T, f family, gro bool) ([]tseg, Stats, []byte) {
	t.Helper()
	p := newPeerFamily(t, nil, f, 1500)
	syn := wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 1, SACKPermitted: true, HasWScale: true, WScale: 7}
	c, iss := p.listenAndAccept(syn)
	p.out = nil
	for k, u := range groScript {
		payload := make([]byte, u.n)
		for i := range payload {
			payload[i] = groData(u.off + i)
		}
		opts := wire.TCPOptions{HasTS: true, TSVal: uint32(100 + k), TSEcr: 1}
		p.feedUnit(tseg{flags: u.flags, seq: peerISN + 1 + Seq(u.off), ack: iss + 1, wnd: 65535, opts: opts, payload: payload}, gro)
		p.collect()
		p.advance(3 * time.Millisecond)
	}
	var got []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(p.now, buf)
		got = append(got, buf[:n]...)
		if n == 0 || err != nil {
			break
		}
	}
	p.collect()
	return p.out, p.e.Stats(), got
}

// feedUnit gives the engine the run of segments u, whose payload is cut
// into groSegSize segments: with gro as one GRO unit, InputGRO's single
// call; without, as the segments Linux's tcp_gso_segment() cuts from it
// (the header repeated with each one's sequence number, FIN and PSH on
// the last), one by one.
func (p *peer) feedUnit(u tseg, gro bool) {
	if gro {
		p.e.InputGRO(p.now, p.remote.Addr(), p.local.Addr(), u.encode(p.remote, p.local), InputMeta{SegSize: groSegSize})
		return
	}
	n := len(u.payload)
	for off := 0; off < n; off += groSegSize {
		s := u
		if off+groSegSize < n {
			s.flags &^= fF | fP
		}
		s.seq, s.payload = u.seq.Add(off), u.payload[off:min(off+groSegSize, n)]
		p.e.Input(p.now, p.remote.Addr(), p.local.Addr(), s.encode(p.remote, p.local))
	}
}

// sameOutput fails t unless GRO input sent the same segments, with the
// same options, and counted the same as segment-by-segment input.
func sameOutput(t *testing.T, segOut, groOut []tseg, segStats, groStats Stats) {
	t.Helper()
	if fmt.Sprint(segOut) != fmt.Sprint(groOut) || !reflect.DeepEqual(optsOf(segOut), optsOf(groOut)) {
		t.Errorf("segments out differ:\nsegment by segment:\n%v\nGRO:\n%v", lines(segOut), lines(groOut))
	}
	if segStats != groStats {
		t.Errorf("counters differ:\nsegment by segment %+v\nGRO                %+v", segStats, groStats)
	}
}

// TestGROInputSameAsSegments checks that a GRO unit is taken exactly as
// the segments cut from it: the same ACKs with the same SACK and D-SACK
// blocks at the same instants, the same counters, the same bytes.
func TestGROInputSameAsSegments(t *testing.T) {
	for _, f := range []family{ipv4, ipv6} {
		t.Run(f.String(), func(t *testing.T) {
			segOut, segStats, segRead := runGRO(t, f, false)
			groOut, groStats, groRead := runGRO(t, f, true)
			if len(segOut) == 0 {
				t.Fatal("the engine sent nothing: the script tests nothing")
			}
			// The script must exercise SACK and D-SACK, or equality
			// would prove little.
			var sacks, dsack bool
			for _, s := range segOut {
				if s.opts.NumSACK > 0 {
					sacks = true
					// RFC 2883 §4: a D-SACK block is the first one and
					// lies below the cumulative ACK.
					if Seq(s.opts.SACK[0].Left).LT(s.ack) {
						dsack = true
					}
				}
			}
			if !sacks || !dsack {
				t.Fatalf("segment-by-segment input sent SACK %v, D-SACK %v: the script should provoke both", sacks, dsack)
			}
			sameOutput(t, segOut, groOut, segStats, groStats)
			if !bytes.Equal(segRead, groRead) {
				t.Errorf("read %d bytes segment by segment, %d with GRO, or different bytes", len(segRead), len(groRead))
			}
			want := groScript[len(groScript)-1].off + groScript[len(groScript)-1].n
			if len(groRead) != want {
				t.Errorf("read %d bytes, want %d", len(groRead), want)
			}
			for i, b := range groRead {
				if b != groData(i) {
					t.Fatalf("byte %d is %d, want %d", i, b, groData(i))
				}
			}
		})
	}
}

func optsOf(segs []tseg) []wire.TCPOptions {
	o := make([]wire.TCPOptions, len(segs))
	for i, s := range segs {
		o[i] = s.opts
	}
	return o
}

func lines(segs []tseg) string {
	var b bytes.Buffer
	for _, s := range segs {
		fmt.Fprintf(&b, "  %v sack=%v\n", s, s.opts.SACK[:s.opts.NumSACK])
	}
	return b.String()
}

// TestGROBadChecksumDropsUnit checks that a GRO unit whose checksum does
// not match is dropped as a whole and counted once, and that with the
// link vouching for the checksum (a TSO packet the kernel built) it is
// not verified.
func TestGROBadChecksumDropsUnit(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	payload := bytes.Repeat([]byte{'x'}, 3*groSegSize)
	b := tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: payload}.encode(p.remote, p.local)
	b[len(b)-1] ^= 0xff // one byte of the last segment
	before := p.e.Stats()
	p.e.InputGRO(p.now, p.remote.Addr(), p.local.Addr(), b, InputMeta{SegSize: groSegSize})
	p.expectNone()
	st := p.e.Stats()
	if d := st.InCsumErrors - before.InCsumErrors; d != 1 {
		t.Errorf("InCsumErrors rose by %d, want 1 for the whole unit", d)
	}
	if d := st.SegsIn - before.SegsIn; d != 3 {
		t.Errorf("SegsIn rose by %d, want the unit's 3 segments", d)
	}
	if n, _ := c.Read(p.now, make([]byte, 8192)); n != 0 {
		t.Errorf("read %d bytes of a unit with a bad checksum", n)
	}
	// The same bytes, vouched for by the link, are taken: one ACK for
	// the three segments at once.
	p.e.InputGRO(p.now, p.remote.Addr(), p.local.Addr(), b, InputMeta{SegSize: groSegSize, ChecksumOK: true})
	p.expect(fA, iss+1, peerISN+1+3*groSegSize)
	if st2 := p.e.Stats(); st2.InCsumErrors != st.InCsumErrors {
		t.Errorf("InCsumErrors rose for a unit the link vouched for")
	}
	if n, _ := c.Read(p.now, make([]byte, 8192)); n != len(payload) {
		t.Errorf("read %d bytes, want %d", n, len(payload))
	}
}

// TestGROUnitOutlivingItsConnection checks a unit whose first segment ends
// the connection: data to a connection the application closed is answered
// with RST and ends it (RFC 1122 §4.2.2.13), and the rest of the unit goes
// where lone segments would, to the listener, which answers each ACK with
// <SEQ=SEG.ACK><CTL=RST>, exactly as the segments cut from the unit.
func TestGROUnitOutlivingItsConnection(t *testing.T) {
	run := func(gro bool) ([]tseg, Stats) {
		p := newPeer(t, nil)
		c, iss := p.listenAndAccept(plainSyn)
		c.Close(p.now)
		fin := p.expect(fA|fF, iss+1, peerISN+1)
		p.out = nil
		payload := bytes.Repeat([]byte{'x'}, 3*groSegSize)
		u := tseg{flags: fPA, seq: peerISN + 1, ack: fin.seq + 1, wnd: 65535, payload: payload}
		if gro {
			p.e.InputGRO(p.now, p.remote.Addr(), p.local.Addr(), u.encode(p.remote, p.local), InputMeta{SegSize: groSegSize})
		} else {
			for off := 0; off < len(payload); off += groSegSize {
				s := u
				s.seq, s.payload = u.seq.Add(off), payload[off:off+groSegSize]
				if off+groSegSize < len(payload) {
					s.flags &^= fP
				}
				p.e.Input(p.now, p.remote.Addr(), p.local.Addr(), s.encode(p.remote, p.local))
			}
		}
		p.collect()
		if c.State() != Closed {
			t.Fatalf("gro %v: state %v after data to a closed socket, want CLOSED", gro, c.State())
		}
		return p.out, p.e.Stats()
	}
	segOut, segStats := run(false)
	groOut, groStats := run(true)
	if len(segOut) != 3 || segOut[0].flags&fR == 0 || segOut[1].flags != fR || segOut[2].flags != fR {
		t.Fatalf("segment by segment sent\n%v\nwant the connection's RST and the listener's two", lines(segOut))
	}
	if fmt.Sprint(segOut) != fmt.Sprint(groOut) {
		t.Errorf("segments out differ:\nsegment by segment:\n%v\nGRO:\n%v", lines(segOut), lines(groOut))
	}
	if segStats != groStats {
		t.Errorf("counters differ:\nsegment by segment %+v\nGRO                %+v", segStats, groStats)
	}
}

// groSendUnit is a GRO unit the peer sends while the connection has data
// of its own: before it, the application writes write bytes; the unit's
// segments acknowledge ack bytes of what was sent and advertise wnd.
type groSendUnit struct {
	write int
	groUnit
	ack int
	wnd uint16
}

// groSendScript has a unit acknowledging nothing of a flight, one
// acknowledging all of it (its later segments find nothing outstanding),
// one closing the window with nothing outstanding, one reopening it with
// data waiting (sent by the unit's first segment, so the later ones find
// it outstanding) and one acknowledging part of that.
var groSendScript = []groSendUnit{
	{write: 10 * 1448, groUnit: groUnit{0, 4 * groSegSize, fA}, ack: 0, wnd: 65535},
	{groUnit: groUnit{4 * groSegSize, 4 * groSegSize, fA}, ack: 10 * 1448, wnd: 65535},
	{groUnit: groUnit{8 * groSegSize, 4 * groSegSize, fPA}, ack: 10 * 1448, wnd: 0},
	{write: 6 * 1448, groUnit: groUnit{12 * groSegSize, 4 * groSegSize, fA}, ack: 10 * 1448, wnd: 65535},
	{groUnit: groUnit{16 * groSegSize, 4 * groSegSize, fPA}, ack: 13 * 1448, wnd: 65535},
}

// sendState is what a connection's send side holds: what the window
// update of RFC 9293 §3.10.7.4 and the ACK processing leave behind.
type sendState struct {
	una, nxt, max, wl1, wl2 Seq
	wnd, maxWnd             int
	persistAt, rtoAt        Time
}

// runGROSending plays groSendScript as runGRO plays groScript and returns
// in addition the connection's send state after each unit.
func runGROSending(t *testing.T, gro bool) ([]tseg, Stats, []sendState) {
	t.Helper()
	p := newPeerFamily(t, nil, ipv4, 1500)
	syn := wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 1, SACKPermitted: true, HasWScale: true, WScale: 7}
	c, iss := p.listenAndAccept(syn)
	p.out = nil
	var states []sendState
	for k, u := range groSendScript {
		if u.write > 0 {
			if n, err := c.Write(p.now, make([]byte, u.write)); n != u.write || err != nil {
				t.Fatalf("unit %d: Write = %d, %v", k, n, err)
			}
			p.collect()
		}
		payload := make([]byte, u.n)
		opts := wire.TCPOptions{HasTS: true, TSVal: uint32(100 + k), TSEcr: 1}
		p.feedUnit(tseg{flags: u.flags, seq: peerISN + 1 + Seq(u.off), ack: iss + 1 + Seq(u.ack), wnd: u.wnd, opts: opts, payload: payload}, gro)
		p.collect()
		states = append(states, sendState{c.sndUna, c.sndNxt, c.sndMax, c.sndWl1, c.sndWl2,
			c.sndWnd, c.maxSndWnd, c.persistAt, c.rtoAt})
		p.advance(3 * time.Millisecond)
	}
	return p.out, p.e.Stats(), states
}

// TestGROInputSameAsSegmentsWhileSending checks GRO input against
// segment-by-segment input on a connection that sends too: the ACKs the
// segments carry acknowledge nothing, all or part of a flight, close and
// reopen the window, and a GRO unit must leave the same segments out, the
// same counters and, after each unit, the same send state (SND.UNA,
// SND.NXT, SND.WL1/WL2, the window, the timers). A unit's later segments
// that find nothing outstanding take processAck's short way (quietRepeat):
// this is what holds it to the long one.
func TestGROInputSameAsSegmentsWhileSending(t *testing.T) {
	segOut, segStats, segStates := runGROSending(t, false)
	groOut, groStats, groStates := runGROSending(t, true)
	var sent, zeroWnd bool
	for _, s := range segOut {
		sent = sent || len(s.payload) > 0
	}
	for _, st := range segStates {
		zeroWnd = zeroWnd || st.wnd == 0
	}
	if !sent || !zeroWnd {
		t.Fatalf("segment-by-segment: sent data %v, window closed %v: the script should do both", sent, zeroWnd)
	}
	sameOutput(t, segOut, groOut, segStats, groStats)
	for i := range segStates {
		if segStates[i] != groStates[i] {
			t.Errorf("after unit %d, send state segment by segment %+v, GRO %+v", i, segStates[i], groStates[i])
		}
	}
}
