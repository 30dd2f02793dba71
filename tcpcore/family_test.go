package tcpcore

import (
	"errors"
	"net/netip"
	"testing"

	"tunstack/wire"
)

// An IPv6 connection runs as an IPv4 one does: the passive open answers
// in IPv6 from the address the SYN reached, data flows both ways with
// checksums over the IPv6 pseudo-header (decode checks every segment),
// and the active open sends its SYN in IPv6.
func TestIPv6HandshakeAndDataBothWays(t *testing.T) {
	p := newPeerFamily(t, nil, ipv6, 1500)
	c, iss := p.listenAndAccept(plainSyn)
	if c.LocalAddr() != local6 || c.RemoteAddr() != remote6 {
		t.Fatalf("accepted %v <- %v, want %v <- %v", c.LocalAddr(), c.RemoteAddr(), local6, remote6)
	}
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: []byte("ping")})
	if a := p.expect(fA, iss+1, peerISN+5); a.src != localIP6 || a.at != p.now {
		t.Fatalf("ACK %v from %v, want it at once in IPv6", a, a.src)
	}
	buf := make([]byte, 16)
	if n, err := c.Read(p.now, buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("Read = %q, %v; want ping", buf[:n], err)
	}
	if _, err := c.Write(p.now, []byte("pong")); err != nil {
		t.Fatal(err)
	}
	s := p.expect(fPA, iss+1, peerISN+5)
	if string(s.payload) != "pong" || s.src != localIP6 || s.dst != remoteIP6 || s.at != p.now {
		t.Fatalf("got %v %q from %v to %v, want pong from %v to %v at once", s, s.payload, s.src, s.dst, localIP6, remoteIP6)
	}

	a, err := p.e.Connect(p.now, netip.AddrPortFrom(localIP6, 0), netip.AddrPortFrom(remoteIP6, 443), SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	syn := p.next()
	if syn.flags != fS || syn.src != localIP6 || syn.dst != remoteIP6 || !syn.opts.HasMSS || syn.opts.MSS != 1440 {
		t.Fatalf("active open sent %v MSS %d from %v to %v, want a SYN with MSS 1440 in IPv6", syn, syn.opts.MSS, syn.src, syn.dst)
	}
	if !a.LocalAddr().Addr().Is6() || a.LocalAddr().Addr().Is4In6() || a.RemoteAddr() != netip.AddrPortFrom(remoteIP6, 443) {
		t.Fatalf("active open %v -> %v", a.LocalAddr(), a.RemoteAddr())
	}
}

// The MSS we advertise is the link MTU less the network and TCP headers
// of the family: 1460 for IPv4 and 1440 for IPv6 on a 1500-byte link.
func TestMSSPerFamilyIsMTUMinusHeaders(t *testing.T) {
	for _, tc := range []struct {
		f   family
		mss uint16
	}{{ipv4, 1460}, {ipv6, 1440}} {
		p := newPeerFamily(t, nil, tc.f, 1500)
		if _, err := p.e.Listen(p.now, p.local, 16, SockOpts{}); err != nil {
			t.Fatal(err)
		}
		p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: wire.TCPOptions{HasMSS: true, MSS: 9000}})
		sa := p.next()
		if sa.flags != fSA || sa.opts.MSS != tc.mss {
			t.Errorf("%v: SYN-ACK %v advertises MSS %d, want %d", tc.f, sa, sa.opts.MSS, tc.mss)
		}
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535})
		c := p.e.conns[newConnKey(p.local, p.remote)]
		if c == nil || c.MSS() != int(tc.mss) || c.TCPInfo(p.now).PMTU != 1500 {
			t.Fatalf("%v: connection %v, want send MSS %d and PMTU 1500", tc.f, c, tc.mss)
		}
	}
}

// An IPv6 connection never advertises nor sizes its segments below 1220
// bytes, the IPv6 minimum link MTU (RFC 8200 §5) less 60, however small
// the link's MTU (Linux ip6_rt_min_advmss); IPv4 follows the link.
func TestIPv6MSSNeverBelow1220(t *testing.T) {
	p := newPeerFamily(t, nil, ipv6, 1000)
	c, iss := p.listenAndAccept(wire.TCPOptions{HasMSS: true, MSS: 1440})
	if c.MSS() != 1220 || c.TCPInfo(p.now).PMTU != 1280 {
		t.Fatalf("IPv6 on a 1000-byte link: send MSS %d PMTU %d, want 1220 and 1280", c.MSS(), c.TCPInfo(p.now).PMTU)
	}
	if _, err := c.Write(p.now, make([]byte, 3000)); err != nil {
		t.Fatal(err)
	}
	if s := p.next(); s.seq != iss+1 || len(s.payload) != 1220 {
		t.Fatalf("first data segment %v, want 1220 bytes", s)
	}

	p4 := newPeerFamily(t, nil, ipv4, 1000)
	p4.e.Listen(p4.now, local, 16, SockOpts{})
	p4.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	if sa := p4.next(); sa.opts.MSS != 960 {
		t.Fatalf("IPv4 on a 1000-byte link advertises %d, want 960", sa.opts.MSS)
	}
}

// A peer whose SYN or SYN-ACK carries no MSS option gets segments of the
// family's default MSS: 536 bytes over IPv4, 1220 over IPv6 (RFC 9293
// §3.7.1; Linux tcp_v6_connect and the IPv6 request sock ops), on a passive
// open, an active open and a SYN cookie's connection alike.
func TestDefaultMSSWhenAbsentPerFamily(t *testing.T) {
	for _, tc := range []struct {
		f   family
		mss int
	}{{ipv4, 536}, {ipv6, 1220}} {
		p := newPeerFamily(t, nil, tc.f, 1500)
		c, iss := p.listenAndAccept(wire.TCPOptions{})
		if c.MSS() != tc.mss {
			t.Errorf("%v passive open: send MSS %d, want %d", tc.f, c.MSS(), tc.mss)
		}
		c.SetNoDelay(p.now, true)
		c.Write(p.now, make([]byte, 2000))
		if s := p.next(); s.seq != iss+1 || len(s.payload) != tc.mss {
			t.Errorf("%v passive open: first segment %v carries %d bytes, want %d", tc.f, s, len(s.payload), tc.mss)
		}

		q := newPeerFamily(t, nil, tc.f, 1500)
		a, err := q.e.Connect(q.now, q.local, q.remote, SockOpts{})
		if err != nil {
			t.Fatal(err)
		}
		syn := q.next()
		q.send(tseg{flags: fSA, seq: peerISN, ack: syn.seq + 1, wnd: 65535})
		q.next() // the ACK
		if a.MSS() != tc.mss {
			t.Errorf("%v active open: send MSS %d, want %d", tc.f, a.MSS(), tc.mss)
		}
	}

	p := newPeerFamily(t, nil, ipv6, 1500)
	l, _ := p.e.Listen(p.now, local6, 0, SockOpts{}) // SYN queue holds one
	p.sendFrom(netip.AddrPortFrom(remoteIP6, 41000), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	p.next() // fills the SYN queue
	client := netip.AddrPortFrom(remoteIP6, 41001)
	p.sendFrom(client, tseg{flags: fS, seq: 5000, wnd: 65535})
	sa := p.next()
	p.sendFrom(client, tseg{flags: fA, seq: 5001, ack: sa.seq + 1, wnd: 65535})
	c, err := l.Accept(p.now)
	if err != nil || l.Stats().CookiesValid != 1 {
		t.Fatalf("cookie connection: %v, stats %+v", err, l.Stats())
	}
	if c.MSS() != 1220 {
		t.Errorf("IPv6 cookie connection without a peer MSS: send MSS %d, want 1220", c.MSS())
	}
}

// A listener on [::] (without V6Only) takes IPv4 segments to its port:
// the connection runs in IPv4 (its segments leave in IPv4) and reports
// IPv4-mapped addresses, as Linux shows them to an IPv6 socket. With
// V6Only the IPv4 SYN meets no listener and is reset.
func TestDualStackListenerAcceptsIPv4Mapped(t *testing.T) {
	p := newPeer(t, nil)
	l, err := p.e.Listen(p.now, netip.MustParseAddrPort("[::]:8080"), 16, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa := p.next()
	if sa.flags != fSA || sa.src != localIP || sa.dst != remoteIP || sa.opts.MSS != 1460 {
		t.Fatalf("SYN-ACK %v from %v to %v MSS %d, want IPv4 from %v to %v with MSS 1460", sa, sa.src, sa.dst, sa.opts.MSS, localIP, remoteIP)
	}
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535})
	c, err := l.Accept(p.now)
	if err != nil {
		t.Fatal(err)
	}
	wantL, wantR := netip.MustParseAddrPort("[::ffff:192.168.0.1]:8080"), netip.MustParseAddrPort("[::ffff:192.0.2.1]:40000")
	if c.LocalAddr() != wantL || c.RemoteAddr() != wantR || c.Info().Local != wantL || c.Info().Remote != wantR {
		t.Fatalf("accepted %v <- %v (info %v <- %v), want %v <- %v", c.LocalAddr(), c.RemoteAddr(), c.Info().Local, c.Info().Remote, wantL, wantR)
	}
	c.Write(p.now, []byte("x"))
	if s := p.next(); s.src != localIP || s.dst != remoteIP {
		t.Fatalf("data went from %v to %v, want IPv4", s.src, s.dst)
	}

	q := newPeer(t, nil)
	if _, err := q.e.Listen(q.now, netip.MustParseAddrPort("[::]:8080"), 16, SockOpts{V6Only: true}); err != nil {
		t.Fatal(err)
	}
	q.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	q.expect(fRA, 0, peerISN+1)
}

// An IPv4 listener on the port comes first; the dual-stack one takes the
// IPv4 segments only when none does (Linux compute_score ranks AF_INET
// higher). Here they share the port through SO_REUSEPORT.
func TestIPv4ListenerBeforeDualStackOne(t *testing.T) {
	p := newPeer(t, nil)
	rp := SockOpts{ReusePort: true}
	l6, err := p.e.Listen(p.now, netip.MustParseAddrPort("[::]:8080"), 16, rp)
	if err != nil {
		t.Fatal(err)
	}
	l4, err := p.e.Listen(p.now, netip.MustParseAddrPort("0.0.0.0:8080"), 16, rp)
	if err != nil {
		t.Fatal(err)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	p.next()
	if l4.Stats().SynQueue != 1 || l6.Stats().SynQueue != 0 {
		t.Fatalf("SYN went to the IPv6 listener (v4 %+v, v6 %+v)", l4.Stats(), l6.Stats())
	}
}

// The bind rules across families (Linux inet_rcv_saddr_equal): [::] and
// 0.0.0.0 on one port conflict either way round, and so do [::] and a
// specific IPv4 address, unless the IPv6 socket is V6Only; a specific
// IPv6 address never conflicts with IPv4 sockets.
func TestBindConflictsAcrossFamiliesAndV6Only(t *testing.T) {
	any4, any6 := netip.MustParseAddrPort("0.0.0.0:80"), netip.MustParseAddrPort("[::]:80")
	one4, one6 := netip.AddrPortFrom(localIP, 80), netip.AddrPortFrom(localIP6, 80)
	v6only := SockOpts{V6Only: true}
	for _, tc := range []struct {
		name         string
		first        netip.AddrPort
		firstOpts    SockOpts
		second       netip.AddrPort
		secondOpts   SockOpts
		wantConflict bool
	}{
		{"[::] then 0.0.0.0", any6, SockOpts{}, any4, SockOpts{}, true},
		{"0.0.0.0 then [::]", any4, SockOpts{}, any6, SockOpts{}, true},
		{"[::] then an IPv4 address", any6, SockOpts{}, one4, SockOpts{}, true},
		{"an IPv4 address then [::]", one4, SockOpts{}, any6, SockOpts{}, true},
		{"V6Only [::] then 0.0.0.0", any6, v6only, any4, SockOpts{}, false},
		{"0.0.0.0 then V6Only [::]", any4, SockOpts{}, any6, v6only, false},
		{"V6Only [::] then [::]", any6, v6only, any6, SockOpts{}, true},
		{"V6Only [::] then an IPv6 address", any6, v6only, one6, SockOpts{}, true},
		{"an IPv6 address then 0.0.0.0", one6, SockOpts{}, any4, SockOpts{}, false},
		{"0.0.0.0 then an IPv6 address", any4, SockOpts{}, one6, SockOpts{}, false},
		{"a mapped IPv4 address then its IPv4 address", netip.MustParseAddrPort("[::ffff:192.168.0.1]:80"), SockOpts{}, one4, SockOpts{}, true},
	} {
		p := newPeer(t, nil)
		if _, err := p.e.Listen(p.now, tc.first, 16, tc.firstOpts); err != nil {
			t.Fatalf("%s: first listen: %v", tc.name, err)
		}
		_, err := p.e.Listen(p.now, tc.second, 16, tc.secondOpts)
		if got := errors.Is(err, ErrAddrInUse); got != tc.wantConflict || (err != nil && !got) {
			t.Errorf("%s: second listen = %v, want conflict %v", tc.name, err, tc.wantConflict)
		}
	}
}

// A SYN cookie over IPv6 hashes the full addresses and names its MSS from
// the IPv6 table (Linux msstab of cookie_v6: 1220, 1420, 1440, 8940): the
// peer's 1440 comes back exactly.
func TestSynCookieOverIPv6(t *testing.T) {
	p := newPeerFamily(t, nil, ipv6, 1500)
	l, _ := p.e.Listen(p.now, local6, 0, SockOpts{}) // SYN queue holds one
	client := func(i int) netip.AddrPort { return netip.AddrPortFrom(remoteIP6, uint16(41000+i)) }
	p.sendFrom(client(0), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	p.next() // fills the SYN queue
	syn := wire.TCPOptions{HasMSS: true, MSS: 1440, SACKPermitted: true, HasTS: true, TSVal: 777, HasWScale: true, WScale: 7}
	p.sendFrom(client(1), tseg{flags: fS, seq: 5000, wnd: 65535, opts: syn})
	sa := p.next()
	if sa.flags != fSA || sa.ack != 5001 || sa.src != localIP6 || l.Stats().CookiesSent != 1 || p.e.ConnCount() != 1 {
		t.Fatalf("cookie SYN-ACK %v from %v, stats %+v, conns %d", sa, sa.src, l.Stats(), p.e.ConnCount())
	}
	// The same SYN from another IPv6 address gets another cookie: the
	// hash covers all 128 bits.
	other := netip.AddrPortFrom(netip.MustParseAddr("2001:db8:2::2"), client(1).Port())
	p.e.Input(p.now, other.Addr(), localIP6, tseg{flags: fS, seq: 5000, wnd: 65535, opts: syn}.encode(other, local6))
	if sa2 := p.next(); sa2.seq == sa.seq {
		t.Fatalf("cookie %d for %v equals the one for %v", sa2.seq, other, client(1))
	}
	p.sendFrom(client(1), tseg{flags: fA, seq: 5001, ack: sa.seq + 1, wnd: 100,
		opts: wire.TCPOptions{HasTS: true, TSVal: 778, TSEcr: sa.opts.TSVal}})
	if st := l.Stats(); st.CookiesValid != 1 || st.AcceptQueue != 1 {
		t.Fatalf("cookie ACK not accepted: %+v", st)
	}
	c, _ := l.Accept(p.now)
	if in := c.Info(); in.SndMSS != 1440-12 || !in.SACK || in.SndWscale != 7 || in.Remote != client(1) {
		t.Fatalf("cookie connection %+v, want MSS 1440 (IPv6 table) less TS, SACK, wscale 7", in)
	}
}

// An IPv4-mapped remote address in Connect opens an IPv4 connection that
// reports mapped addresses, as connect(2) on an IPv6 socket to
// ::ffff:a.b.c.d does.
func TestConnectToMappedAddressRunsIPv4(t *testing.T) {
	p := newPeer(t, nil)
	c, err := p.e.Connect(p.now, netip.MustParseAddrPort("[::ffff:192.168.0.1]:0"), netip.MustParseAddrPort("[::ffff:192.0.2.1]:443"), SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	syn := p.next()
	if syn.src != localIP || syn.dst != remoteIP || syn.opts.MSS != 1460 {
		t.Fatalf("SYN %v from %v to %v MSS %d, want IPv4 with MSS 1460", syn, syn.src, syn.dst, syn.opts.MSS)
	}
	if !c.RemoteAddr().Addr().Is4In6() || c.RemoteAddr().Addr().Unmap() != remoteIP || !c.LocalAddr().Addr().Is4In6() {
		t.Fatalf("connection %v -> %v, want mapped addresses", c.LocalAddr(), c.RemoteAddr())
	}
}
