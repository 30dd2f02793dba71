package tcpcore

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"tunstack/policy"
	"tunstack/wire"
)

// The engine tests run in virtual time: a scripted peer injects segments
// and reads back exactly what the engine sent and when.

var (
	localIP  = netip.MustParseAddr("192.168.0.1")
	remoteIP = netip.MustParseAddr("192.0.2.1")
	local    = netip.AddrPortFrom(localIP, 8080)
	remote   = netip.AddrPortFrom(remoteIP, 40000)

	// The IPv6 pair a peer of family ipv6 uses (newPeerFamily).
	localIP6  = netip.MustParseAddr("2001:db8::1")
	remoteIP6 = netip.MustParseAddr("2001:db8:2::1")
	local6    = netip.AddrPortFrom(localIP6, 8080)
	remote6   = netip.AddrPortFrom(remoteIP6, 40000)
)

// family is the address family a peer runs over.
type family uint8

const (
	ipv4 family = iota
	ipv6
)

func (f family) String() string { return [...]string{"IPv4", "IPv6"}[f] }

// addrs are the engine's and the peer's addresses in the family.
func (f family) addrs() (netip.AddrPort, netip.AddrPort) {
	if f == ipv6 {
		return local6, remote6
	}
	return local, remote
}

// tseg is a segment in test notation.
type tseg struct {
	flags   uint8
	seq     Seq
	ack     Seq
	wnd     uint16
	opts    wire.TCPOptions
	payload []byte
	at      Time // when the engine sent it (outbound only)
	// src and dst are the packet's addresses (outbound only): the
	// family the engine sent it in.
	src, dst netip.Addr
}

func (s tseg) String() string {
	var f strings.Builder
	for _, x := range []struct {
		b uint8
		c string
	}{{wire.FlagSYN, "S"}, {wire.FlagFIN, "F"}, {wire.FlagRST, "R"}, {wire.FlagPSH, "P"}, {wire.FlagACK, "."}} {
		if s.flags&x.b != 0 {
			f.WriteString(x.c)
		}
	}
	return fmt.Sprintf("%v %s seq=%d ack=%d win=%d len=%d", time.Duration(s.at), f.String(), s.seq, s.ack, s.wnd, len(s.payload))
}

func (s tseg) has(f uint8) bool { return s.flags&f != 0 }

// encode builds the wire form from src to dst with a valid checksum.
func (s tseg) encode(src, dst netip.AddrPort) []byte {
	ol := s.opts.EncodedLen()
	b := make([]byte, wire.TCPHeaderLen+ol+len(s.payload))
	n := wire.EncodeTCPOptions(b[wire.TCPHeaderLen:], &s.opts)
	wire.PutTCPHeader(b, wire.TCPFields{SrcPort: src.Port(), DstPort: dst.Port(),
		Seq: uint32(s.seq), Ack: uint32(s.ack), Flags: s.flags, Window: s.wnd}, n)
	copy(b[wire.TCPHeaderLen+n:], s.payload)
	b = b[:wire.TCPHeaderLen+n+len(s.payload)]
	wire.TCP(b).ComputeChecksumAddr(src.Addr(), dst.Addr())
	return b
}

func decode(t testing.TB, p *Packet, at Time) tseg {
	t.Helper()
	seg := wire.TCP(p.Segment())
	if err := seg.Valid(); err != nil {
		t.Fatalf("engine sent a malformed segment: %v", err)
	}
	if p.Src.Is4() != p.Dst.Is4() || p.Src.Is4In6() || p.Dst.Is4In6() {
		t.Fatalf("engine sent a packet from %v to %v: addresses of one family, unmapped, expected", p.Src, p.Dst)
	}
	if !seg.ChecksumValidAddr(p.Src, p.Dst) {
		t.Fatalf("engine sent a bad checksum")
	}
	var o wire.TCPOptions
	if err := wire.ParseTCPOptions(seg.Options(), &o); err != nil {
		t.Fatalf("engine sent malformed options: %v", err)
	}
	return tseg{flags: seg.Flags(), seq: Seq(seg.Seq()), ack: Seq(seg.Ack()), wnd: seg.Window(),
		opts: o, payload: append([]byte(nil), seg.Payload()...), at: at, src: p.Src, dst: p.Dst}
}

// peer drives one engine from the remote side, over one family: the
// engine at local (or local6), the peer at remote (or remote6).
type peer struct {
	t             *testing.T
	e             *Engine
	now           Time
	out           []tseg // sent by the engine, not yet examined
	local, remote netip.AddrPort
}

func testProfile() *policy.Profile { return policy.Linux() }

func newPeer(t *testing.T, prof *policy.Profile) *peer {
	t.Helper()
	return newPeerFamily(t, prof, ipv4, 1500)
}

// newPeerFamily is newPeer over family f on a link of the given MTU.
func newPeerFamily(t *testing.T, prof *policy.Profile, f family, mtu int) *peer {
	t.Helper()
	if prof == nil {
		prof = testProfile()
	}
	e, err := NewEngine(Config{Profile: prof, MTU: mtu, Secret: [32]byte{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	l, r := f.addrs()
	return &peer{t: t, e: e, now: Time(time.Second), local: l, remote: r}
}

func (p *peer) collect() {
	pkts := p.e.Output(nil)
	for _, pk := range pkts {
		p.out = append(p.out, decode(p.t, pk, p.now))
	}
	p.e.Release(pkts)
	for _, w := range p.e.Wakeups() {
		w.Wake()
	}
}

// send injects s from the remote peer.
func (p *peer) send(s tseg) {
	p.t.Helper()
	p.e.Input(p.now, p.remote.Addr(), p.local.Addr(), s.encode(p.remote, p.local))
	p.collect()
}

// advance moves virtual time forward by d, running every timer on the way
// at its exact instant.
func (p *peer) advance(d time.Duration) {
	end := p.now.Add(d)
	for i := 0; ; i++ {
		if i > 1_000_000 {
			p.t.Fatalf("timers do not make progress at %v", time.Duration(p.now))
		}
		dl, ok := p.e.NextDeadline()
		if !ok || dl > end {
			break
		}
		if dl > p.now {
			p.now = dl
		}
		p.e.Advance(p.now)
		p.collect()
	}
	p.now = end
}

// step moves virtual time to the engine's next deadline and runs it.
func (p *peer) step() {
	p.t.Helper()
	dl, ok := p.e.NextDeadline()
	if !ok {
		p.t.Fatalf("no timer armed at %v", time.Duration(p.now))
	}
	if dl > p.now {
		p.now = dl
	}
	p.e.Advance(p.now)
	p.collect()
}

// expect pops the next segment the engine sent and checks it with f.
func (p *peer) next() tseg {
	p.t.Helper()
	p.collect() // output of application calls made since the last event
	if len(p.out) == 0 {
		p.t.Fatalf("expected a segment from the engine at %v, got none", time.Duration(p.now))
	}
	s := p.out[0]
	p.out = p.out[1:]
	return s
}

func (p *peer) expectNone() {
	p.t.Helper()
	p.collect()
	if len(p.out) != 0 {
		p.t.Fatalf("engine sent unexpected segment(s): %v", p.out)
	}
}

func (p *peer) expect(flags uint8, seq, ack Seq) tseg {
	p.t.Helper()
	s := p.next()
	if s.flags != flags || s.seq != seq || (flags&wire.FlagACK != 0 && s.ack != ack) {
		p.t.Fatalf("got %v, want flags %s seq=%d ack=%d", s, tseg{flags: flags}, seq, ack)
	}
	return s
}

const (
	fS  = wire.FlagSYN
	fA  = wire.FlagACK
	fF  = wire.FlagFIN
	fR  = wire.FlagRST
	fP  = wire.FlagPSH
	fSA = wire.FlagSYN | wire.FlagACK
	fFA = wire.FlagFIN | wire.FlagACK
	fPA = wire.FlagPSH | wire.FlagACK
	fRA = wire.FlagRST | wire.FlagACK
)

const peerISN Seq = 1000

// listenAndAccept opens a listener, completes a handshake from the peer
// (with opts on its SYN) and returns the accepted connection and the
// engine's ISN.
func (p *peer) listenAndAccept(synOpts wire.TCPOptions) (*Conn, Seq) {
	p.t.Helper()
	return p.listenAndAcceptWith(synOpts, SockOpts{})
}

func (p *peer) listenAndAcceptWith(synOpts wire.TCPOptions, so SockOpts) (*Conn, Seq) {
	p.t.Helper()
	l, err := p.e.Listen(p.now, p.local, 16, so)
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: synOpts})
	sa := p.next()
	if sa.flags != fSA || sa.ack != peerISN+1 {
		p.t.Fatalf("got %v, want SYN-ACK ack=%d", sa, peerISN+1)
	}
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535, opts: tsEcho(synOpts, sa)})
	c, err := l.Accept(p.now)
	if err != nil {
		p.t.Fatalf("accept after handshake: %v", err)
	}
	return c, sa.seq
}

// tsEcho gives the options of the peer's next segment: a timestamp echoing
// the engine's if timestamps are in use.
func tsEcho(peerOpts wire.TCPOptions, from tseg) wire.TCPOptions {
	if !peerOpts.HasTS || !from.opts.HasTS {
		return wire.TCPOptions{}
	}
	return wire.TCPOptions{HasTS: true, TSVal: peerOpts.TSVal + 1, TSEcr: from.opts.TSVal}
}

// plainSyn is a SYN with only an MSS: no timestamps, SACK or scaling, so
// tests can reason about bare sequence numbers.
var plainSyn = wire.TCPOptions{HasMSS: true, MSS: 1460}

// timeWaitConn closes an accepted connection first and answers with a FIN
// that acknowledges ours: FIN-WAIT-1 straight to TIME-WAIT (checked). It
// returns the connection and the engine's ISN.
func (p *peer) timeWaitConn() (*Conn, Seq) {
	p.t.Helper()
	c, iss := p.listenAndAccept(plainSyn)
	c.Close(p.now)
	p.expect(fFA, iss+1, peerISN+1)
	p.send(tseg{flags: fFA, seq: peerISN + 1, ack: iss + 2, wnd: 65535})
	p.expect(fA, iss+2, peerISN+2)
	if c.State() != TimeWait {
		p.t.Fatalf("state %v, want TIME-WAIT", c.State())
	}
	return c, iss
}
