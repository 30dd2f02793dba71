package tcpcore

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"tunstack/wire"
)

// quote is the invoking packet an ICMP error about our segment s would
// carry: the network header of the peer's family, from the engine to the
// peer, and the first 8 bytes of the TCP header (RFC 792's minimum).
func (p *peer) quote(s tseg) []byte {
	seg := s.encode(p.local, p.remote)[:8]
	if p.local.Addr().Is4() {
		q := make([]byte, wire.IPv4HeaderLen+len(seg))
		wire.PutIPv4Header(q, wire.IPv4Fields{Src: p.local.Addr().As4(), Dst: p.remote.Addr().As4(), Protocol: wire.ProtoTCP, TTL: 64, DontFrag: true}, 1500-wire.IPv4HeaderLen)
		copy(q[wire.IPv4HeaderLen:], seg)
		return q
	}
	q := make([]byte, wire.IPv6HeaderLen+len(seg))
	wire.PutIPv6Header(q, wire.IPv6Fields{Src: p.local.Addr().As16(), Dst: p.remote.Addr().As16(), NextHeader: wire.ProtoTCP, HopLimit: 64}, 1500-wire.IPv6HeaderLen)
	copy(q[wire.IPv6HeaderLen:], seg)
	return q
}

// inFlight sets up an established connection over f on a 1500-byte link
// with n bytes written and sent in full-sized segments, which it returns.
func inFlight(t *testing.T, f family, n int) (*peer, *Conn, Seq, []tseg) {
	t.Helper()
	p := newPeerFamily(t, nil, f, 1500)
	c, iss := p.listenAndAccept(wire.TCPOptions{HasMSS: true, MSS: 1460})
	if _, err := c.Write(p.now, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	p.collect()
	sent := p.out
	p.out = nil
	if len(sent) == 0 {
		t.Fatal("nothing sent")
	}
	return p, c, iss, sent
}

// checkResent checks that the segments the engine sent since the ICMP
// error cover [from, to) contiguously, each at most mss bytes, all at the
// instant now: no wait for the retransmission timer.
func checkResent(t *testing.T, p *peer, from, to Seq, mss int) {
	t.Helper()
	p.collect()
	next := from
	for _, s := range p.out {
		if s.at != p.now || s.seq != next || len(s.payload) > mss || len(s.payload) == 0 {
			t.Fatalf("resent %v (%d bytes), want seq %d, at most %d bytes, at %v", s, len(s.payload), next, mss, time.Duration(p.now))
		}
		next = next.Add(len(s.payload))
	}
	if next != to {
		t.Fatalf("resent up to %d, want up to %d (%d segments)", next, to, len(p.out))
	}
	p.out = nil
}

// A Packet Too Big quoting a segment in flight lowers the path MTU (RFC
// 8201 §4): the send MSS follows (1280 - 60 = 1220), TCP_INFO's pmtu
// shows it, and every segment in flight larger than the new MSS is sent
// again at once in segments that fit (Linux tcp_simple_retransmit), with
// no wait for the retransmission timer; new data then goes in 1220-byte
// segments.
func TestPacketTooBigLowersMSSAndRetransmitsAtOnce(t *testing.T) {
	p, c, iss, sent := inFlight(t, ipv6, 3*1440)
	if len(sent) != 3 || len(sent[0].payload) != 1440 {
		t.Fatalf("sent %v, want 3 segments of 1440", sent)
	}
	p.advance(5 * time.Millisecond)
	p.e.ICMPError(p.now, ICMPMessage{Kind: ICMPPacketTooBig, MTU: 1280, Quote: p.quote(sent[1])})
	if c.MSS() != 1220 || c.TCPInfo(p.now).PMTU != 1280 || p.e.Stats().PMTUUpdates != 1 {
		t.Fatalf("after PTB 1280: MSS %d PMTU %d stats %+v, want 1220 and 1280", c.MSS(), c.TCPInfo(p.now).PMTU, p.e.Stats())
	}
	checkResent(t, p, iss+1, iss+1+3*1440, 1220)
	if c.Info().Counters.Retransmits == 0 {
		t.Fatal("no retransmission counted")
	}
	// The peer acknowledges everything; new data is cut to the new MSS.
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1 + 3*1440, wnd: 65535})
	c.Write(p.now, make([]byte, 2000))
	if s := p.next(); s.seq != iss+1+3*1440 || len(s.payload) != 1220 {
		t.Fatalf("new data %v, want 1220 bytes", s)
	}
}

// An ICMP error whose quoted sequence number is not in SND.UNA..SND.NXT
// is ignored and counted (RFC 5927 §4.1, Linux OutOfWindowIcmps), as is
// one quoting no connection; a Packet Too Big below the IPv6 minimum MTU
// or not below the current path MTU changes nothing.
func TestPacketTooBigOutOfWindowIgnored(t *testing.T) {
	p, c, iss, sent := inFlight(t, ipv6, 2*1440)
	old := sent[0]
	old.seq = iss + 1 + 2*1440 + 1 // beyond SND.NXT
	p.e.ICMPError(p.now, ICMPMessage{Kind: ICMPPacketTooBig, MTU: 1280, Quote: p.quote(old)})
	old.seq = iss // below SND.UNA
	p.e.ICMPError(p.now, ICMPMessage{Kind: ICMPPacketTooBig, MTU: 1280, Quote: p.quote(old)})
	if st := p.e.Stats(); st.OutOfWindowICMPs != 2 || c.MSS() != 1440 || c.TCPInfo(p.now).PMTU != 1500 {
		t.Fatalf("out-of-window PTB taken: stats %+v, MSS %d", st, c.MSS())
	}
	q := p.quote(sent[0])
	q[wire.IPv6HeaderLen] ^= 1 // another source port: no such connection
	p.e.ICMPError(p.now, ICMPMessage{Kind: ICMPPacketTooBig, MTU: 1280, Quote: q})
	p.e.ICMPError(p.now, ICMPMessage{Kind: ICMPPacketTooBig, MTU: 1000, Quote: p.quote(sent[0])})
	p.e.ICMPError(p.now, ICMPMessage{Kind: ICMPPacketTooBig, MTU: 1500, Quote: p.quote(sent[0])})
	if st := p.e.Stats(); st.ICMPUnmatched != 1 || st.PMTUIgnored != 2 || st.PMTUUpdates != 0 || c.MSS() != 1440 {
		t.Fatalf("stats %+v MSS %d, want one unmatched, two ignored, MSS 1440", st, c.MSS())
	}
	p.expectNone()
}

// ICMPv4 Fragmentation Needed lowers an IPv4 connection's path MTU (RFC
// 1191) with the same immediate retransmission; a next-hop MTU below 552
// (or 0, from a router older than RFC 1191) is raised to 552, Linux's
// min_pmtu.
func TestFragNeededLowersIPv4PathMTU(t *testing.T) {
	p, c, iss, sent := inFlight(t, ipv4, 2*1460)
	p.e.ICMPError(p.now, ICMPMessage{Kind: ICMPFragNeeded, MTU: 1000, Quote: p.quote(sent[0])})
	if c.MSS() != 960 || c.TCPInfo(p.now).PMTU != 1000 {
		t.Fatalf("after frag-needed 1000: MSS %d PMTU %d, want 960 and 1000", c.MSS(), c.TCPInfo(p.now).PMTU)
	}
	checkResent(t, p, iss+1, iss+1+2*1460, 960)
	p.e.ICMPError(p.now, ICMPMessage{Kind: ICMPFragNeeded, MTU: 0, Quote: p.quote(sent[0])})
	if c.MSS() != 512 || c.TCPInfo(p.now).PMTU != 552 {
		t.Fatalf("after frag-needed 0: MSS %d PMTU %d, want 512 and 552", c.MSS(), c.TCPInfo(p.now).PMTU)
	}
	// Only the segments that no longer fit go again: the 960-byte ones,
	// in pieces of at most 512; the 500-byte ones fit in 552 and stay.
	p.collect()
	want := []struct{ off, n int }{{0, 512}, {512, 448}, {1460, 512}, {1972, 448}}
	if len(p.out) != len(want) {
		t.Fatalf("resent %v, want %v", p.out, want)
	}
	for i, w := range want {
		if s := p.out[i]; s.seq != iss+1+Seq(w.off) || len(s.payload) != w.n || s.at != p.now {
			t.Fatalf("resent %v, want offset %d, %d bytes, at %v", s, w.off, w.n, time.Duration(p.now))
		}
	}
	p.out = nil
	// A Packet Too Big quoting an IPv4 packet is no message of IPv4.
	p.e.ICMPError(p.now, ICMPMessage{Kind: ICMPPacketTooBig, MTU: 576, Quote: p.quote(sent[0])})
	if p.e.Stats().ICMPUnmatched != 1 || c.TCPInfo(p.now).PMTU != 552 {
		t.Fatalf("PTB over IPv4 taken: %+v", p.e.Stats())
	}
}

// Destination Unreachable in SYN-SENT fails the connect with the code's
// errno (Linux tcp_v6_err and tcp_v4_err: sk_err and tcp_done in
// SYN-SENT); on an established connection it is a soft error (Linux
// sk_err_soft): the connection goes on, SO_ERROR reports it once, and a
// later timeout reports it instead of ETIMEDOUT (tcp_write_err). Linux 6.18
// under the real packetdrill does both: connect's SO_ERROR is
// EHOSTUNREACH after host unreachable in SYN-SENT, and an established
// connection's SO_ERROR is EHOSTUNREACH after one.
func TestUnreachableHardInSynSentSoftWhenEstablished(t *testing.T) {
	p := newPeerFamily(t, nil, ipv6, 1500)
	c, err := p.e.Connect(p.now, local6, remote6, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	syn := p.next()
	p.advance(100 * time.Millisecond)
	p.e.ICMPError(p.now, ICMPMessage{Kind: ICMPUnreachable, Code: 4, Quote: p.quote(syn)}) // port unreachable
	if c.State() != Closed || !errors.Is(c.Err(), syscall.ECONNREFUSED) || p.e.Stats().AttemptFails != 1 {
		t.Fatalf("after port unreachable in SYN-SENT: state %v, stats %+v, want CLOSED with ECONNREFUSED", c.State(), p.e.Stats())
	}
	p.expectNone()

	q := newPeerFamily(t, nil, ipv4, 1500)
	ec, iss := q.listenAndAcceptWith(plainSyn, SockOpts{UserTimeout: 3 * time.Second})
	ec.Write(q.now, []byte("hello"))
	s := q.next()
	q.e.ICMPError(q.now, ICMPMessage{Kind: ICMPUnreachable, Code: 1, Quote: q.quote(s)}) // host unreachable
	if ec.State() != Established {
		t.Fatalf("host unreachable on an established connection: state %v", ec.State())
	}
	q.advance(10 * time.Second)
	if ec.State() != Closed || !errors.Is(ec.Err(), syscall.EHOSTUNREACH) {
		t.Fatalf("after the user timeout: state %v, want CLOSED reporting EHOSTUNREACH (iss %d)", ec.State(), iss)
	}
}

// SO_ERROR reports the soft error of an ICMP Destination Unreachable on
// an established connection once, and the connection goes on (Linux
// sk_getsockopt: xchg(&sk->sk_err_soft, 0)).
func TestUnreachableSoftErrorReportedOnceBySOError(t *testing.T) {
	p := newPeerFamily(t, nil, ipv6, 1500)
	c, iss := p.listenAndAccept(plainSyn)
	c.Write(p.now, []byte("hello"))
	s := p.next()
	p.e.ICMPError(p.now, ICMPMessage{Kind: ICMPUnreachable, Code: 3, Quote: p.quote(s)}) // address unreachable
	if err := c.Err(); !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Fatalf("SO_ERROR = %v, want EHOSTUNREACH", err)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("second SO_ERROR = %v, want nil", err)
	}
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 6, wnd: 65535})
	if c.State() != Established || c.Info().BytesInFlight != 0 {
		t.Fatalf("state %v in flight %d, want the connection going on", c.State(), c.Info().BytesInFlight)
	}
}

// A Packet Too Big during fast recovery ends it for loss recovery, as
// Linux's tcp_simple_retransmit moves CA_Recovery to CA_Loss: the window
// stays reduced (deflated to ssthresh, RFC 5681 §3.2 step 6) and the
// segments that no longer fit go again at once, cut to the new MSS.
func TestPacketTooBigDuringFastRecovery(t *testing.T) {
	p, c, iss, sent := inFlight(t, ipv6, 10*1440)
	if len(sent) != 10 {
		t.Fatalf("sent %d segments, want 10", len(sent))
	}
	for range 3 {
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
	}
	if fr := p.next(); fr.seq != iss+1 || len(fr.payload) != 1440 || c.recovery != recoveryFast {
		t.Fatalf("after 3 duplicate ACKs: %v, recovery %v; want the fast retransmission of the first segment", fr, c.recovery)
	}
	p.collect()
	p.out = nil
	p.e.ICMPError(p.now, ICMPMessage{Kind: ICMPPacketTooBig, MTU: 1280, Quote: p.quote(sent[0])})
	if c.recovery != recoveryLoss || c.ccw().CongestionWindow() != c.ccw().SlowStartThreshold() {
		t.Fatalf("recovery %v cwnd %d ssthresh %d, want loss recovery with cwnd = ssthresh", c.recovery, c.ccw().CongestionWindow(), c.ccw().SlowStartThreshold())
	}
	p.collect()
	if len(p.out) == 0 || p.out[0].seq != iss+1 {
		t.Fatalf("resent %v, want the first segment again at once", p.out)
	}
	for _, s := range p.out {
		if len(s.payload) > 1220 || s.at != p.now {
			t.Fatalf("resent %v (%d bytes), want at most 1220 bytes at %v", s, len(s.payload), time.Duration(p.now))
		}
	}
}

// RFC 6069 as Linux's tcp_ld_RTO_revert: a host unreachable for the
// segment at SND.UNA while the retransmission timer is backed off undoes
// one backoff step, the timer counting from the segment's last
// transmission; when that instant has passed, the segment goes at once.
func TestUnreachableRevertsRTOBackoff(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.Write(p.now, []byte("hello"))
	first := p.next()
	rto := c.Info().RTO
	p.step() // first retransmission after rto
	p.step() // second after 2*rto: backoff 2, next timeout 4*rto later
	p.next()
	second := p.next()
	if second.seq != iss+1 || c.backoff != 2 || c.rtoAt != second.at.Add(4*rto) {
		t.Fatalf("after two timeouts: %v, backoff %d, timer at %v; want it at %v", second, c.backoff, time.Duration(c.rtoAt), time.Duration(second.at.Add(4*rto)))
	}
	p.advance(rto / 2)
	p.e.ICMPError(p.now, ICMPMessage{Kind: ICMPUnreachable, Code: 1, Quote: p.quote(first)})
	if c.backoff != 1 || c.rtoAt != second.at.Add(2*rto) {
		t.Fatalf("after host unreachable: backoff %d, timer at %v; want 1 and %v", c.backoff, time.Duration(c.rtoAt), time.Duration(second.at.Add(2*rto)))
	}
	p.expectNone()
	// Once more, now past the reverted instant (rto after the last
	// transmission): the timer fires at once.
	p.advance(2*rto - rto/2)
	third := p.next()
	if third.seq != iss+1 || third.at != second.at.Add(2*rto) {
		t.Fatalf("third retransmission %v, want it at %v", third, time.Duration(second.at.Add(2*rto)))
	}
	p.advance(2*rto + rto/2) // backoff 2 again: the next timeout is 4*rto after the third, the reverted one 2*rto
	p.e.ICMPError(p.now, ICMPMessage{Kind: ICMPUnreachable, Code: 0, Quote: p.quote(first)})
	fourth := p.next()
	if fourth.seq != iss+1 || fourth.at != p.now || c.retries != 4 {
		t.Fatalf("after net unreachable past the reverted instant: %v, retries %d; want a retransmission at %v", fourth, c.retries, time.Duration(p.now))
	}
	// A port unreachable reverts nothing.
	before := c.rtoAt
	p.e.ICMPError(p.now, ICMPMessage{Kind: ICMPUnreachable, Code: 3, Quote: p.quote(first)})
	if c.rtoAt != before {
		t.Fatalf("port unreachable moved the timer from %v to %v", time.Duration(before), time.Duration(c.rtoAt))
	}
}
