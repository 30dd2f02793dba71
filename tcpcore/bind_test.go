package tcpcore

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"tunstack/policy"
	"tunstack/wire"
)

// The bind rules (bind.go), one test per rule, in virtual time.

// inject sends s from from to to, whatever the peer's usual addresses.
func (p *peer) inject(from, to netip.AddrPort, s tseg) {
	p.t.Helper()
	p.e.Input(p.now, from.Addr(), to.Addr(), s.encode(from, to))
	p.collect()
}

// activeOpen completes the handshake of c, whose SYN the engine just
// sent to to; the peer's SYN-ACK carries timestamps when the SYN did. It
// returns the SYN.
func (p *peer) activeOpen(c *Conn, to netip.AddrPort) tseg {
	p.t.Helper()
	syn := p.next()
	if syn.flags != fS {
		p.t.Fatalf("got %v, want the SYN", syn)
	}
	o := wire.TCPOptions{HasMSS: true, MSS: 1460}
	if syn.opts.HasTS {
		o.HasTS, o.TSVal, o.TSEcr = true, 500, syn.opts.TSVal
	}
	p.inject(to, c.LocalAddr(), tseg{flags: fSA, seq: peerISN, ack: syn.seq + 1, wnd: 65535, opts: o})
	p.expect(fA, syn.seq+1, peerISN+1)
	if c.State() != Established {
		p.t.Fatalf("state %v after the handshake, want ESTABLISHED", c.State())
	}
	return syn
}

// activeTimeWait opens c (its SYN just sent to to), closes it first and
// takes it to TIME-WAIT with the peer's FIN. It returns our SYN and FIN.
func (p *peer) activeTimeWait(c *Conn, to netip.AddrPort) (syn, fin tseg) {
	p.t.Helper()
	syn = p.activeOpen(c, to)
	c.Close(p.now)
	fin = p.expect(fFA, syn.seq+1, peerISN+1)
	o := wire.TCPOptions{}
	if fin.opts.HasTS {
		o = wire.TCPOptions{HasTS: true, TSVal: 501, TSEcr: fin.opts.TSVal}
	}
	p.inject(to, c.LocalAddr(), tseg{flags: fFA, seq: peerISN + 1, ack: syn.seq + 2, wnd: 65535, opts: o})
	p.expect(fA, syn.seq+2, peerISN+2)
	if c.State() != TimeWait {
		p.t.Fatalf("state %v, want TIME-WAIT", c.State())
	}
	return syn, fin
}

// onePortProfile is the linux profile with tcp_tw_reuse set to reuse and
// an ephemeral range of one port, so that every connect toward one
// destination needs the same 4-tuple.
func onePortProfile(reuse int) *policy.Profile {
	prof := policy.Linux()
	prof.TwReuse = reuse
	prof.LocalPortMin, prof.LocalPortMax = 50000, 50000
	return prof
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func mustListen(t *testing.T, p *peer, addr netip.AddrPort, opts SockOpts) *Listener {
	t.Helper()
	l, err := p.e.Listen(p.now, addr, 64, opts)
	if err != nil {
		t.Fatalf("listen on %v: %v", addr, err)
	}
	return l
}

// A connection in TIME-WAIT holds its port: without SO_REUSEADDR a bind or
// listen on it fails with EADDRINUSE until TIME-WAIT ends; SO_REUSEADDR
// on the new socket alone is not enough, since the old socket did not set
// it (Linux's inet_bind_conflict asks both).
func TestBindConflictsWithTimeWaitWithoutReuseAddr(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.timeWaitConn()
	p.e.lsns[local][0].Close(p.now)
	_, err := p.e.Bind(p.now, local, SockOpts{})
	wantErr(t, "bind over TIME-WAIT", err, ErrAddrInUse)
	_, err = p.e.Listen(p.now, local, 8, SockOpts{ReuseAddr: true})
	wantErr(t, "listen with SO_REUSEADDR over a TIME-WAIT entry without it", err, ErrAddrInUse)
	_, err = p.e.Bind(p.now, netip.AddrPortFrom(netip.IPv4Unspecified(), local.Port()), SockOpts{})
	wantErr(t, "bind of the wildcard over TIME-WAIT", err, ErrAddrInUse)
	// Another address of the engine does not overlap the connection's.
	other := netip.AddrPortFrom(netip.MustParseAddr("192.168.0.2"), local.Port())
	if b, err := p.e.Bind(p.now, other, SockOpts{}); err != nil {
		t.Fatalf("bind of another address: %v", err)
	} else {
		b.Close()
	}
	p.advance(p.e.prof.TimeWaitLen)
	if c.State() != Closed {
		t.Fatalf("state %v after TIME-WAIT's length, want CLOSED", c.State())
	}
	if _, err := p.e.Listen(p.now, local, 8, SockOpts{}); err != nil {
		t.Fatalf("listen once TIME-WAIT ended: %v", err)
	}
}

// A listener restarted with SO_REUSEADDR binds over the TIME-WAIT entries
// its predecessor, which had it too, left behind; without it, EADDRINUSE.
func TestBindSharesTimeWaitWhenBothHaveReuseAddr(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.listenAndAcceptWith(plainSyn, SockOpts{ReuseAddr: true})
	p.e.lsns[local][0].Close(p.now)
	c.Close(p.now)
	p.next()
	p.send(tseg{flags: fFA, seq: peerISN + 1, ack: c.sndNxt, wnd: 65535})
	p.next()
	if c.State() != TimeWait {
		t.Fatalf("state %v, want TIME-WAIT", c.State())
	}
	_, err := p.e.Listen(p.now, local, 8, SockOpts{})
	wantErr(t, "listen without SO_REUSEADDR", err, ErrAddrInUse)
	l, err := p.e.Listen(p.now, local, 8, SockOpts{ReuseAddr: true})
	if err != nil {
		t.Fatalf("listen with SO_REUSEADDR over TIME-WAIT: %v", err)
	}
	if c.State() != TimeWait {
		t.Fatalf("the bind changed the TIME-WAIT entry: %v", c.State())
	}
	l.Close(p.now)
}

// An established connection holds its port as TIME-WAIT does: a new
// listener needs SO_REUSEADDR on both.
func TestBindConflictsWithEstablishedConnection(t *testing.T) {
	p := newPeer(t, nil)
	p.listenAndAcceptWith(plainSyn, SockOpts{ReuseAddr: true})
	p.e.lsns[local][0].Close(p.now)
	_, err := p.e.Bind(p.now, local, SockOpts{})
	wantErr(t, "bind over an established connection", err, ErrAddrInUse)
	if _, err := p.e.Bind(p.now, local, SockOpts{ReuseAddr: true}); err != nil {
		t.Fatalf("bind with SO_REUSEADDR on both: %v", err)
	}
}

// SO_REUSEADDR never shares a port with a listener (Linux: sk2->sk_state
// != TCP_LISTEN).
func TestBindConflictsWithListenerDespiteReuseAddr(t *testing.T) {
	p := newPeer(t, nil)
	mustListen(t, p, local, SockOpts{ReuseAddr: true})
	_, err := p.e.Bind(p.now, local, SockOpts{ReuseAddr: true})
	wantErr(t, "bind next to a listener", err, ErrAddrInUse)
}

// Two sockets bound with SO_REUSEADDR share the port until one listens;
// the second listen then fails (listen(2) checks the port again, in
// LISTEN) and leaves the socket bound.
func TestTwoBoundWithReuseAddrOnlyOneListens(t *testing.T) {
	p := newPeer(t, nil)
	opts := SockOpts{ReuseAddr: true}
	a, err := p.e.Bind(p.now, local, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.e.Bind(p.now, local, opts)
	if err != nil {
		t.Fatalf("second bind with SO_REUSEADDR: %v", err)
	}
	if _, err := a.Listen(p.now, 8, opts); err != nil {
		t.Fatalf("first listen: %v", err)
	}
	_, err = b.Listen(p.now, 8, opts)
	wantErr(t, "second listen", err, ErrAddrInUse)
	_, err = p.e.Bind(p.now, local, SockOpts{})
	wantErr(t, "bind without SO_REUSEADDR next to the two", err, ErrAddrInUse)
	if b.Addr() != local {
		t.Fatalf("the failed listen unbound the socket: %v", b.Addr())
	}
	b.Close()
}

// Without SO_REUSEPORT two listeners cannot share an address and port;
// with it on both they can, and a third without it cannot join.
func TestReusePortLetsListenersShareAPort(t *testing.T) {
	p := newPeer(t, nil)
	mustListen(t, p, local, SockOpts{})
	_, err := p.e.Listen(p.now, local, 8, SockOpts{})
	wantErr(t, "second listener", err, ErrAddrInUse)

	q := newPeer(t, nil)
	rp := SockOpts{ReusePort: true}
	mustListen(t, q, local, rp)
	mustListen(t, q, local, rp)
	_, err = q.e.Listen(q.now, local, 8, SockOpts{})
	wantErr(t, "listener without SO_REUSEPORT next to the group", err, ErrAddrInUse)
	_, err = q.e.Listen(q.now, local, 8, SockOpts{ReuseAddr: true})
	wantErr(t, "listener with SO_REUSEADDR only", err, ErrAddrInUse)
	if n := len(q.e.lsns[local]); n != 2 {
		t.Fatalf("%d listeners on %v, want 2", n, local)
	}
}

// The wildcard overlaps every address: a listener on 0.0.0.0 blocks a
// bind of any address on its port, and a listener on one address blocks a
// bind of the wildcard but not of another address.
func TestBindWildcardConflictsWithSpecific(t *testing.T) {
	any := netip.AddrPortFrom(netip.IPv4Unspecified(), local.Port())
	other := netip.AddrPortFrom(netip.MustParseAddr("192.168.0.2"), local.Port())

	p := newPeer(t, nil)
	mustListen(t, p, any, SockOpts{})
	_, err := p.e.Bind(p.now, local, SockOpts{})
	wantErr(t, "bind of an address under a wildcard listener", err, ErrAddrInUse)
	_, err = p.e.Bind(p.now, other, SockOpts{ReuseAddr: true})
	wantErr(t, "bind of another address under a wildcard listener", err, ErrAddrInUse)

	q := newPeer(t, nil)
	mustListen(t, q, local, SockOpts{})
	_, err = q.e.Bind(q.now, any, SockOpts{})
	wantErr(t, "bind of the wildcard over a listener on one address", err, ErrAddrInUse)
	mustListen(t, q, other, SockOpts{})
}

// With SO_REUSEPORT a wildcard listener and one on an address coexist; a
// SYN to the address reaches the listener on it, a SYN to another address
// the wildcard one.
func TestListenerOnAddressBeforeWildcard(t *testing.T) {
	p := newPeer(t, nil)
	rp := SockOpts{ReusePort: true}
	lw := mustListen(t, p, netip.AddrPortFrom(netip.IPv4Unspecified(), local.Port()), rp)
	la := mustListen(t, p, local, rp)
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	other := netip.AddrPortFrom(netip.MustParseAddr("192.168.0.2"), local.Port())
	p.inject(remote, other, tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	if la.Stats().SynQueue != 1 || lw.Stats().SynQueue != 1 {
		t.Fatalf("SYN queues: on the address %d, on the wildcard %d; want 1 and 1", la.Stats().SynQueue, lw.Stats().SynQueue)
	}
}

// A SO_REUSEPORT group hands each SYN to the listener its 4-tuple's hash
// scaled to the group's size picks (Linux reuseport_select_sock:
// socks[reciprocal_scale(hash, n)]); a listener that closes leaves its
// place to the group's last one, and the group shrinks.
func TestReusePortSpreadsByHash(t *testing.T) {
	p := newPeer(t, nil)
	rp := SockOpts{ReusePort: true}
	group := []*Listener{mustListen(t, p, local, rp), mustListen(t, p, local, rp), mustListen(t, p, local, rp)}
	synFrom := func(base uint16, n int) []int {
		t.Helper()
		got := make([]int, len(group))
		for i := range n {
			from := netip.AddrPortFrom(remoteIP, base+uint16(i))
			want := group[reciprocalScale(p.e.reuseportHash(local, from), len(group))]
			before := want.Stats().SynQueue
			p.inject(from, local, tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
			if want.Stats().SynQueue != before+1 {
				t.Fatalf("the SYN from %v did not reach the listener its hash picks", from)
			}
			for j, l := range group {
				if l == want {
					got[j]++
				}
			}
		}
		return got
	}
	spread := synFrom(40000, 60)
	for i, n := range spread {
		if n == 0 {
			t.Fatalf("listener %d of 3 got none of 60 SYNs (%v)", i, spread)
		}
	}
	group[0].Close(p.now)
	group = []*Listener{group[2], group[1]}
	if g := p.e.lsns[local]; len(g) != 2 || g[0] != group[0] || g[1] != group[1] {
		t.Fatalf("after the first listener closed the group is %v, want the last in its place", g)
	}
	spread = synFrom(41000, 40)
	if spread[0] == 0 || spread[1] == 0 {
		t.Fatalf("SYNs after the close went %v", spread)
	}
}

// With tcp_tw_reuse=1 a connect takes over a TIME-WAIT entry on its
// 4-tuple when the old connection had timestamps and entered TIME-WAIT
// more than tcp_tw_reuse_delay (1 s) ago, compared in whole milliseconds
// (Linux 6.13+ tcp_twsk_unique). The new ISN is the old SND.NXT + 65537;
// the new timestamps continue above the old ones, and TS.Recent carries
// over.
func TestTwReuseTakesOverTimeWaitAfterOneSecond(t *testing.T) {
	p := newPeer(t, onePortProfile(1))
	to := netip.AddrPortFrom(remoteIP, 80)
	from := netip.AddrPortFrom(localIP, 0)
	old, err := p.e.Connect(p.now, from, to, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	syn, fin := p.activeTimeWait(old, to)

	p.advance(time.Second)
	_, err = p.e.Connect(p.now, from, to, SockOpts{})
	wantErr(t, "connect 1 s after TIME-WAIT began", err, ErrAddrNotAvail)
	if s := p.e.Stats(); s.ConnectNoPort != 1 || s.TimeWaitReused != 0 {
		t.Fatalf("ConnectNoPort %d TimeWaitReused %d, want 1 and 0", s.ConnectNoPort, s.TimeWaitReused)
	}
	p.advance(time.Millisecond)
	c, err := p.e.Connect(p.now, from, to, SockOpts{})
	if err != nil {
		t.Fatalf("connect 1.001 s after TIME-WAIT began: %v", err)
	}
	if c.LocalAddr() != old.LocalAddr() || old.State() != Closed {
		t.Fatalf("new connection from %v, old one %v; want the old port and the old one closed", c.LocalAddr(), old.State())
	}
	if p.e.Stats().TimeWaitReused != 1 {
		t.Fatalf("TimeWaitReused %d, want 1", p.e.Stats().TimeWaitReused)
	}
	s2 := p.next()
	if s2.flags != fS || s2.seq != syn.seq+2+65535+2 {
		t.Fatalf("got %v, want a SYN at the old SND.NXT %d + 65537", s2, syn.seq+2)
	}
	if !s2.opts.HasTS || int32(s2.opts.TSVal-fin.opts.TSVal) <= 0 {
		t.Fatalf("new SYN's TSval %d not above the old connection's last %d", s2.opts.TSVal, fin.opts.TSVal)
	}
	if c.tsRecent != 501 {
		t.Fatalf("TS.Recent %d, want the old connection's 501", c.tsRecent)
	}
	// Linux tcp_syn_options and tcp_connect_init: the takeover SYN echoes
	// the inherited TS.Recent, and its window counts segments without the
	// timestamp option it knows the connection will carry.
	if s2.opts.TSEcr != 501 {
		t.Fatalf("new SYN's TS ecr %d, want the inherited TS.Recent 501", s2.opts.TSEcr)
	}
	if mss, w := c.advertisedMSS()-12, int(s2.wnd); w%mss != 0 || w+mss <= min(65535, c.rcvBufMax) {
		t.Fatalf("new SYN's window %d, want whole segments of %d (MSS less the timestamp option), as many as fit", w, mss)
	}
	if syn.opts.TSEcr != 0 || int(syn.wnd)%c.advertisedMSS() != 0 {
		t.Fatalf("first SYN's TS ecr %d window %d, want 0 and whole segments of the MSS %d", syn.opts.TSEcr, syn.wnd, c.advertisedMSS())
	}
	if p.e.ConnCount() != 1 {
		t.Fatalf("%d connections, want only the new one", p.e.ConnCount())
	}
}

// Without timestamps on the old connection nothing makes reuse safe, and
// tcp_tw_reuse does not take the entry over, however long it waited.
func TestTwReuseRefusedWithoutTimestamps(t *testing.T) {
	prof := onePortProfile(1)
	prof.Timestamps = false
	p := newPeer(t, prof)
	to := netip.AddrPortFrom(remoteIP, 80)
	from := netip.AddrPortFrom(localIP, 0)
	old, err := p.e.Connect(p.now, from, to, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	p.activeTimeWait(old, to)
	p.advance(30 * time.Second)
	_, err = p.e.Connect(p.now, from, to, SockOpts{})
	wantErr(t, "connect over TIME-WAIT without timestamps", err, ErrAddrNotAvail)
	if old.State() != TimeWait || p.e.Stats().TimeWaitReused != 0 {
		t.Fatalf("old connection %v, TimeWaitReused %d", old.State(), p.e.Stats().TimeWaitReused)
	}
	p.advance(p.e.prof.TimeWaitLen)
	if _, err := p.e.Connect(p.now, from, to, SockOpts{}); err != nil {
		t.Fatalf("connect once TIME-WAIT ended: %v", err)
	}
}

// tcp_tw_reuse=0 never takes a TIME-WAIT entry over for a connect without
// a bound port.
func TestTwReuseZeroNeverTakesOver(t *testing.T) {
	p := newPeer(t, onePortProfile(0))
	to := netip.AddrPortFrom(remoteIP, 80)
	from := netip.AddrPortFrom(localIP, 0)
	old, _ := p.e.Connect(p.now, from, to, SockOpts{})
	p.activeTimeWait(old, to)
	p.advance(10 * time.Second)
	_, err := p.e.Connect(p.now, from, to, SockOpts{})
	wantErr(t, "connect with tcp_tw_reuse=0", err, ErrAddrNotAvail)
}

// tcp_tw_reuse=2, the linux profile's default, takes an entry over only
// when either address is a loopback one.
func TestTwReuseTwoOnlyForLoopback(t *testing.T) {
	for _, tc := range []struct {
		from, to string
		reused   bool
	}{
		{"192.168.0.1", "192.0.2.1", false},
		{"127.0.0.1", "127.0.0.2", true},
		{"192.168.0.1", "127.0.0.1", true},
	} {
		p := newPeer(t, onePortProfile(2))
		to := netip.AddrPortFrom(netip.MustParseAddr(tc.to), 80)
		from := netip.AddrPortFrom(netip.MustParseAddr(tc.from), 0)
		old, err := p.e.Connect(p.now, from, to, SockOpts{})
		if err != nil {
			t.Fatal(err)
		}
		p.activeTimeWait(old, to)
		p.advance(2 * time.Second)
		_, err = p.e.Connect(p.now, from, to, SockOpts{})
		if (err == nil) != tc.reused {
			t.Errorf("%s to %s: connect over TIME-WAIT gave %v, want reuse %v", tc.from, tc.to, err, tc.reused)
		}
	}
}

// A connect from a port the application bound takes over a TIME-WAIT
// entry of its 4-tuple at once when the old connection had timestamps,
// whatever tcp_tw_reuse says (Linux calls tcp_twsk_unique without twp);
// without timestamps it fails with EADDRNOTAVAIL.
func TestConnectFromBoundPortTakesOverTimeWaitWithTimestamps(t *testing.T) {
	for _, ts := range []bool{true, false} {
		prof := onePortProfile(0)
		prof.Timestamps = ts
		p := newPeer(t, prof)
		to := netip.AddrPortFrom(remoteIP, 80)
		opts := SockOpts{ReuseAddr: true}
		old, err := p.e.Connect(p.now, local, to, opts)
		if err != nil {
			t.Fatal(err)
		}
		syn, _ := p.activeTimeWait(old, to)
		b, err := p.e.Bind(p.now, local, opts)
		if err != nil {
			t.Fatalf("timestamps %v: bind with SO_REUSEADDR over TIME-WAIT: %v", ts, err)
		}
		c, err := b.Connect(p.now, to, opts)
		if !ts {
			wantErr(t, "connect over TIME-WAIT without timestamps", err, ErrAddrNotAvail)
			if b.Addr() != local {
				t.Fatalf("the failed connect unbound the socket")
			}
			continue
		}
		if err != nil {
			t.Fatalf("connect from the bound port over TIME-WAIT: %v", err)
		}
		if s := p.next(); s.seq != syn.seq+2+65537 || c.LocalAddr() != local {
			t.Fatalf("got %v from %v, want a SYN at %d from %v", s, c.LocalAddr(), syn.seq+2+65537, local)
		}
		if p.e.Stats().TimeWaitReused != 1 {
			t.Fatalf("TimeWaitReused %d, want 1", p.e.Stats().TimeWaitReused)
		}
	}
}

// A second connection on a 4-tuple that is in use fails with
// EADDRNOTAVAIL even when both sockets could bind the port (SO_REUSEADDR);
// toward another destination the port serves both.
func TestConnectOnTakenTupleGivesAddrNotAvail(t *testing.T) {
	p := newPeer(t, nil)
	to := netip.AddrPortFrom(remoteIP, 80)
	opts := SockOpts{ReuseAddr: true}
	c, err := p.e.Connect(p.now, local, to, opts)
	if err != nil {
		t.Fatal(err)
	}
	p.activeOpen(c, to)
	_, err = p.e.Connect(p.now, local, to, opts)
	wantErr(t, "second connect on the same 4-tuple", err, ErrAddrNotAvail)
	_, err = p.e.Connect(p.now, local, to, SockOpts{})
	wantErr(t, "connect from the port without SO_REUSEADDR", err, ErrAddrInUse)
	if _, err := p.e.Connect(p.now, local, netip.AddrPortFrom(remoteIP, 81), opts); err != nil {
		t.Fatalf("connect from the same port to another destination: %v", err)
	}
}

// Connects without a bound port take every port of the range toward one
// destination but the ones bound on purpose (a listener's), then fail with
// EADDRNOTAVAIL, counted; toward another destination the same ports serve
// again.
func TestEphemeralPortsExhaustedGiveAddrNotAvail(t *testing.T) {
	prof := policy.Linux()
	prof.LocalPortMin, prof.LocalPortMax = 50000, 50009
	p := newPeer(t, prof)
	mustListen(t, p, netip.AddrPortFrom(localIP, 50003), SockOpts{})
	to := netip.AddrPortFrom(remoteIP, 80)
	from := netip.AddrPortFrom(localIP, 0)
	ports := map[uint16]bool{}
	ok := 0
	for i := range 10 {
		c, err := p.e.Connect(p.now, from, to, SockOpts{})
		if err != nil {
			wantErr(t, "connect with no port left", err, ErrAddrNotAvail)
			if i != 9 {
				t.Fatalf("connect %d failed, want 9 to succeed", i+1)
			}
			break
		}
		ok++
		ports[c.LocalAddr().Port()] = true
	}
	if ok != 9 || len(ports) != 9 || ports[50003] {
		t.Fatalf("%d connects succeeded on ports %v; want 9 distinct ports, 50003 (the listener's) not among them", ok, ports)
	}
	if n := p.e.Stats().ConnectNoPort; n != 1 {
		t.Fatalf("ConnectNoPort %d, want 1", n)
	}
	c, err := p.e.Connect(p.now, from, netip.AddrPortFrom(remoteIP, 81), SockOpts{})
	if err != nil || !ports[c.LocalAddr().Port()] {
		t.Fatalf("connect to another destination: %v from %v, want one of the ports in use", err, c)
	}
}

// An ephemeral connect does not take a port a socket merely bound, and a
// bind does not take a port a connection holds unless both have
// SO_REUSEADDR.
func TestEphemeralConnectAndBindKeepApart(t *testing.T) {
	prof := policy.Linux()
	prof.LocalPortMin, prof.LocalPortMax = 50000, 50000
	p := newPeer(t, prof)
	only := netip.AddrPortFrom(localIP, 50000)
	b, err := p.e.Bind(p.now, only, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.e.Connect(p.now, netip.AddrPortFrom(localIP, 0), netip.AddrPortFrom(remoteIP, 80), SockOpts{})
	wantErr(t, "connect with the one port bound", err, ErrAddrNotAvail)
	b.Close()
	c, err := p.e.Connect(p.now, netip.AddrPortFrom(localIP, 0), netip.AddrPortFrom(remoteIP, 80), SockOpts{})
	if err != nil {
		t.Fatalf("connect once the bind was closed: %v", err)
	}
	_, err = p.e.Bind(p.now, c.LocalAddr(), SockOpts{ReuseAddr: true})
	wantErr(t, "bind of a connected port, SO_REUSEADDR on the bind only", err, ErrAddrInUse)
}

// A port the application bound stays bound after its connection is reset,
// until the application closes the socket (Linux SOCK_BINDPORT_LOCK); an
// ephemeral port goes with the connection.
func TestBoundPortKeptUntilApplicationCloses(t *testing.T) {
	p := newPeer(t, nil)
	to := netip.AddrPortFrom(remoteIP, 80)
	c, err := p.e.Connect(p.now, local, to, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	syn := p.next()
	p.inject(to, local, tseg{flags: fRA, ack: syn.seq + 1})
	if c.State() != Closed {
		t.Fatalf("state %v after RST, want CLOSED", c.State())
	}
	_, err = p.e.Bind(p.now, local, SockOpts{})
	wantErr(t, "bind while the refused socket is open", err, ErrAddrInUse)
	c.Close(p.now)
	b, err := p.e.Bind(p.now, local, SockOpts{})
	if err != nil {
		t.Fatalf("bind once the socket was closed: %v", err)
	}
	b.Close()
	if len(p.e.ports) != 0 {
		t.Fatalf("ports still held: %v", p.e.ports)
	}
}

// Bind to port 0 takes a port of the ephemeral range that nothing on an
// overlapping address holds.
func TestBindPortZeroPicksAFreePort(t *testing.T) {
	prof := policy.Linux()
	prof.LocalPortMin, prof.LocalPortMax = 50000, 50001
	p := newPeer(t, prof)
	mustListen(t, p, netip.AddrPortFrom(localIP, 50000), SockOpts{})
	b, err := p.e.Bind(p.now, netip.AddrPortFrom(localIP, 0), SockOpts{ReuseAddr: true})
	if err != nil || b.Addr().Port() != 50001 {
		t.Fatalf("bind to port 0: %v on %v, want port 50001", err, b)
	}
	_, err = p.e.Bind(p.now, netip.AddrPortFrom(localIP, 0), SockOpts{ReuseAddr: true})
	wantErr(t, "bind to port 0 with the range taken", err, ErrAddrInUse)
}

// A connection taken over from TIME-WAIT carries the old TS.Recent into
// SYN-SENT: a SYN of the old incarnation (older timestamp) cannot start a
// simultaneous open (Linux tcp_rcv_synsent_state_process's PAWS check);
// one with a newer timestamp can.
func TestTwReuseInheritedTimestampRejectsOldSyn(t *testing.T) {
	p := newPeer(t, onePortProfile(1))
	to := netip.AddrPortFrom(remoteIP, 80)
	from := netip.AddrPortFrom(localIP, 0)
	old, _ := p.e.Connect(p.now, from, to, SockOpts{})
	p.activeTimeWait(old, to)
	p.advance(2 * time.Second)
	c, err := p.e.Connect(p.now, from, to, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	syn := p.next()
	stale := wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 400}
	p.inject(to, c.LocalAddr(), tseg{flags: fS, seq: 7000, wnd: 65535, opts: stale})
	p.expectNone()
	if c.State() != SynSent {
		t.Fatalf("state %v after an old SYN, want SYN-SENT", c.State())
	}
	fresh := wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 600}
	p.inject(to, c.LocalAddr(), tseg{flags: fS, seq: 7000, wnd: 65535, opts: fresh})
	if c.State() != SynReceived {
		t.Fatalf("state %v after a newer SYN, want SYN-RECEIVED", c.State())
	}
	p.expect(fSA, syn.seq, 7001)
}

// BenchmarkPassiveOpen is the cost of one SYN to a listener (lookup,
// connection, SYN-ACK, its place in the port's bucket) and of its
// teardown.
func BenchmarkPassiveOpen(b *testing.B) {
	e, err := NewEngine(Config{Profile: policy.Linux(), MTU: 1500, Secret: [32]byte{1}})
	if err != nil {
		b.Fatal(err)
	}
	now := Time(time.Second)
	if _, err := e.Listen(now, local, 4096, SockOpts{}); err != nil {
		b.Fatal(err)
	}
	syns := make([][]byte, 1024)
	for i := range syns {
		from := netip.AddrPortFrom(remoteIP, uint16(20000+i))
		syns[i] = tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn}.encode(from, local)
	}
	var out []*Packet // reused, as a driver does
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := i % len(syns)
		e.Input(now, remoteIP, localIP, syns[k])
		e.conns[newConnKey(local, netip.AddrPortFrom(remoteIP, uint16(20000+k)))].Abort(now)
		out = e.Output(out[:0])
		e.Release(out)
	}
}

// BenchmarkActiveOpen is the cost of one connect from an ephemeral port
// (the port search, connection, SYN) and of its teardown.
func BenchmarkActiveOpen(b *testing.B) {
	e, err := NewEngine(Config{Profile: policy.Linux(), MTU: 1500, Secret: [32]byte{1}})
	if err != nil {
		b.Fatal(err)
	}
	now := Time(time.Second)
	from, to := netip.AddrPortFrom(localIP, 0), netip.AddrPortFrom(remoteIP, 80)
	// Half the range in use toward the destination, as on a busy client.
	for range (e.prof.LocalPortMax - e.prof.LocalPortMin) / 2 {
		if _, err := e.Connect(now, from, to, SockOpts{}); err != nil {
			b.Fatal(err)
		}
	}
	var out []*Packet // reused, as a driver does
	out = e.Output(out[:0])
	e.Release(out)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := e.Connect(now, from, to, SockOpts{})
		if err != nil {
			b.Fatal(err)
		}
		c.Abort(now)
		out = e.Output(out[:0])
		e.Release(out)
	}
}

// A listener the application bound keeps its port when it stops
// listening through shutdown (Unlisten, Linux tcp_disconnect), and may
// listen again; a SYN meanwhile meets no listener.
func TestUnlistenKeepsPortBound(t *testing.T) {
	p := newPeer(t, nil)
	l := mustListen(t, p, local, SockOpts{})
	b := l.Unlisten(p.now)
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	p.expect(fRA, 0, peerISN+1)
	_, err := p.e.Bind(p.now, local, SockOpts{})
	wantErr(t, "bind while unlistened", err, ErrAddrInUse)
	if _, err := b.Listen(p.now, 8, SockOpts{}); err != nil {
		t.Fatalf("listen again: %v", err)
	}
}
