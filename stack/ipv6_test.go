package stack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"tunstack/netif"
	"tunstack/tcpcore"
	"tunstack/wire"
)

var (
	addrA6 = netip.MustParseAddr("fd00::1") // the client side in tests
	addrB6 = netip.MustParseAddr("fd00::2") // the server side in tests
)

// newPair6 is newPair with an IPv6 address on each stack as well.
func newPair6(t testing.TB) *pair {
	t.Helper()
	pa, pb := netif.NewPipe(testMTU)
	ca := Config{Addr: addrA, Addr6: addrA6, Secret: [32]byte{1}}
	cb := Config{Addr: addrB, Addr6: addrB6, Secret: [32]byte{2}}
	return startPair(t, pa, pb, pa, pb, ca, cb)
}

// dialAccept dials network address from p.a and returns that connection
// and the one ln accepted for it, both closed when the test ends.
func (p *pair) dialAccept(t testing.TB, ln net.Listener, timeout time.Duration, network, address string) (c, s net.Conn) {
	t.Helper()
	acc := acceptOne(ln)
	c, err := p.a.Dial(testContext(t, timeout), network, address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s = <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { s.Close() })
	return c, s
}

// acceptOne accepts one connection on ln in the background.
func acceptOne(ln net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

// echoThrough sends n bytes from c to s and back and checks them.
func echoThrough(t *testing.T, c, s net.Conn, n int) {
	t.Helper()
	go io.Copy(s, s)
	want := make([]byte, n)
	for i := range want {
		want[i] = byte(i * 7)
	}
	go c.Write(want)
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("echoed data differs")
	}
}

// Two stacks talk TCP over IPv6: "tcp6" listen and dial, data both ways,
// IPv6 addresses on both connections, in Sockets() and in TCP_INFO's
// view (an IPv6 path MTU of the link's 1500 bytes, MSS 1440 less
// timestamps).
func TestIPv6EchoOverPipe(t *testing.T) {
	p := newPair6(t)
	ln, err := p.b.ListenWith(context.Background(), ListenConfig{}, "tcp6", "[fd00::2]:8080")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, s := p.dialAccept(t, ln, 30*time.Second, "tcp6", "[fd00::2]:8080")
	echoThrough(t, c, s, 200_000)

	cl, cr := c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()
	sl, sr := s.LocalAddr().(*net.TCPAddr).AddrPort(), s.RemoteAddr().(*net.TCPAddr).AddrPort()
	if cl.Addr() != addrA6 || cr != netip.AddrPortFrom(addrB6, 8080) || sl != cr || sr != cl {
		t.Fatalf("dialed %v -> %v, accepted %v <- %v", cl, cr, sl, sr)
	}
	ti := c.(*Conn).TCPInfo()
	if ti.PMTU != 1500 || ti.SndMSS != 1440-12 {
		t.Fatalf("TCP_INFO pmtu %d snd_mss %d, want 1500 and 1428", ti.PMTU, ti.SndMSS)
	}
	found := false
	for _, si := range p.a.Sockets() {
		if si.Local == cl && si.Remote == cr && si.State == tcpcore.Established && si.TCPInfo != nil && si.TCPInfo.PMTU == 1500 {
			found = true
		}
	}
	if !found {
		t.Fatalf("Sockets() of the dialer does not list %v -> %v: %+v", cl, cr, p.a.Sockets())
	}
	for _, si := range p.b.Sockets() {
		if si.State == tcpcore.Listen && (si.Local != netip.AddrPortFrom(addrB6, 8080) || si.Remote != netip.AddrPortFrom(netip.IPv6Unspecified(), 0)) {
			t.Fatalf("listener listed as %v <- %v, want [fd00::2]:8080 <- [::]:0", si.Local, si.Remote)
		}
	}
	if st := p.b.IPStats(); st.TCPIn == 0 || st.Malformed6 != 0 || st.NoIPv6 != 0 {
		t.Fatalf("server IPStats %+v", st)
	}
}

// With an IPv6 address, Listen(":port") listens on [::] and is
// dual-stack: an IPv4 client is accepted and shows IPv4-mapped addresses
// on the server, while an IPv6 client is accepted as one. With V6Only the
// IPv4 client is refused.
func TestDualStackAcceptOverPipe(t *testing.T) {
	p := newPair6(t)
	ln, err := p.b.Listen(":8080", 16)
	if err != nil {
		t.Fatal(err)
	}
	if got := ln.Addr().(*net.TCPAddr).AddrPort(); got != netip.MustParseAddrPort("[::]:8080") {
		t.Fatalf("Listen(:8080) on a dual-stack stack is at %v, want [::]:8080", got)
	}
	c4, s4 := p.dialAccept(t, ln, 30*time.Second, "tcp", "198.18.0.2:8080")
	wantR := netip.AddrPortFrom(netip.AddrFrom16(addrA.As16()), c4.LocalAddr().(*net.TCPAddr).AddrPort().Port())
	if got := s4.RemoteAddr().(*net.TCPAddr).AddrPort(); got != wantR {
		t.Fatalf("IPv4 client accepted as %v, want %v", got, wantR)
	}
	if got := s4.LocalAddr().(*net.TCPAddr).AddrPort(); got != netip.MustParseAddrPort("[::ffff:198.18.0.2]:8080") {
		t.Fatalf("IPv4 connection's local address %v, want [::ffff:198.18.0.2]:8080", got)
	}
	if got := c4.RemoteAddr().(*net.TCPAddr).AddrPort(); got != netip.MustParseAddrPort("198.18.0.2:8080") {
		t.Fatalf("the client sees %v, want plain IPv4", got)
	}
	echoThrough(t, c4, s4, 50_000)

	_, s6 := p.dialAccept(t, ln, 30*time.Second, "tcp", "[fd00::2]:8080")
	if got := s6.RemoteAddr().(*net.TCPAddr).AddrPort().Addr(); got != addrA6 {
		t.Fatalf("IPv6 client accepted as %v, want %v", got, addrA6)
	}
	ln.Close()

	ln6, err := p.b.ListenWith(context.Background(), ListenConfig{V6Only: true}, "tcp6", "[::]:8081")
	if err != nil {
		t.Fatal(err)
	}
	defer ln6.Close()
	ln4, err := p.b.ListenWith(context.Background(), ListenConfig{}, "tcp4", ":8082")
	if err != nil {
		t.Fatal(err)
	}
	defer ln4.Close()
	if _, err := p.b.ListenWith(context.Background(), ListenConfig{}, "tcp6", "[::]:8082"); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("dual-stack [::]:8082 beside 0.0.0.0:8082 = %v, want EADDRINUSE", err)
	}
	if _, err := p.a.Dial(testContext(t, 30*time.Second), "tcp4", "198.18.0.2:8081"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("IPv4 dial to a V6Only listener = %v, want ECONNREFUSED", err)
	}
}

// An IPv6 destination without an IPv6 address fails as Linux's connect
// does with no route, and the networks read addresses as the net package
// does.
func TestIPv6NetworksAndNoAddr6(t *testing.T) {
	host, link := netif.NewPipe(testMTU)
	defer host.Close()
	s, err := New(link, Config{Addr: addrB})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := testContext(t, 30*time.Second)
	if _, err := s.Dial(ctx, "tcp", "[fd00::1]:80"); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("IPv6 dial without Addr6 = %v, want ENETUNREACH", err)
	}
	if _, err := s.Dial(ctx, "tcp6", "198.18.0.1:80"); err == nil {
		t.Error("tcp6 dial to an IPv4 literal succeeded")
	}
	if _, err := s.Dial(ctx, "tcp4", "[fd00::1]:80"); err == nil {
		t.Error("tcp4 dial to an IPv6 literal succeeded")
	}
	ln, err := s.Listen(":80", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := ln.Addr().String(); got != "0.0.0.0:80" {
		t.Errorf("Listen(:80) without Addr6 at %s, want 0.0.0.0:80", got)
	}
	if _, err := New(netif.Link(mtuLink{link, 1000}), Config{Addr: addrB, Addr6: addrB6}); err == nil {
		t.Error("IPv6 accepted on a 1000-byte link")
	}
}

// mtuLink reports another MTU than its link's.
type mtuLink struct {
	netif.Link
	mtu int
}

func (l mtuLink) MTU() int { return l.mtu }

// icmpv6Echo builds an echo request from src to dst.
func icmpv6Echo(src, dst netip.Addr, seq uint16, data string) []byte {
	b := make([]byte, wire.IPv6HeaderLen+wire.ICMPv6HeaderLen+len(data))
	msg := wire.ICMPv6(b[wire.IPv6HeaderLen:])
	wire.PutICMPv6Echo(msg, wire.ICMPv6EchoRequest, 0x77, seq)
	copy(msg[wire.ICMPv6HeaderLen:], data)
	msg.ComputeChecksum(src.As16(), dst.As16())
	wire.PutIPv6Header(b, wire.IPv6Fields{Src: src.As16(), Dst: dst.As16(), NextHeader: wire.ProtoICMPv6, HopLimit: 64}, len(msg))
	return b
}

// The stack answers ICMPv6 echo requests to its address; ignores the
// router solicitations and MLD reports the kernel sends on a TUN device,
// counting them; and answers a packet with an unknown next header (UDP:
// the stack has none) with a Parameter Problem, code 1, pointing at the
// Next Header field, at most 6 in a burst to one source (Linux's
// icmpv6 rate limit: one a second, XRLIM_BURST_FACTOR 6).
func TestICMPv6EchoNDAndParameterProblem(t *testing.T) {
	host, link := netif.NewPipe(testMTU)
	s, err := New(link, Config{Addr: addrB, Addr6: addrB6})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	rs := make([]byte, wire.IPv6HeaderLen+8)
	wire.PutICMPv6Header(rs[wire.IPv6HeaderLen:], wire.ICMPv6RouterSolicit, 0, 0)
	allRouters := netip.MustParseAddr("ff02::2")
	linkLocal := netip.MustParseAddr("fe80::1")
	wire.ICMPv6(rs[wire.IPv6HeaderLen:]).ComputeChecksum(linkLocal.As16(), allRouters.As16())
	wire.PutIPv6Header(rs, wire.IPv6Fields{Src: linkLocal.As16(), Dst: allRouters.As16(), NextHeader: wire.ProtoICMPv6, HopLimit: 255}, 8)

	udp := make([]byte, wire.IPv6HeaderLen+8)
	wire.PutIPv6Header(udp, wire.IPv6Fields{Src: addrA6.As16(), Dst: addrB6.As16(), NextHeader: wire.ProtoUDP, HopLimit: 64}, 8)

	pkts := [][]byte{icmpv6Echo(addrA6, addrB6, 1, "ping"), rs}
	for range 8 {
		pkts = append(pkts, udp)
	}
	// A last echo request: its reply comes after every answer to the
	// packets before it, so the test knows they were all read.
	pkts = append(pkts, icmpv6Echo(addrA6, addrB6, 2, "last"))
	if _, err := host.WritePackets(pkts); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for len(got) < 8 { // echo, 6 parameter problems, echo
		bufs := [][]byte{make([]byte, testMTU)}
		sizes := make([]int, 1)
		if _, err := host.ReadPackets(bufs, sizes); err != nil {
			t.Fatal(err)
		}
		got = append(got, bufs[0][:sizes[0]])
	}
	for i, b := range got {
		r := wire.IPv6(b)
		c, err := r.WalkExtensionHeaders()
		if err != nil || c.Proto != wire.ProtoICMPv6 || r.SrcAddr() != addrB6 || r.DstAddr() != addrA6 || r.HopLimit() != 64 {
			t.Fatalf("reply %d: % x", i, b)
		}
		msg := wire.ICMPv6(c.Upper(r).Data)
		if !msg.ChecksumValid(r.Src(), r.Dst()) {
			t.Fatalf("reply %d: bad checksum", i)
		}
		switch i {
		case 0, 7:
			data := map[int]string{0: "ping", 7: "last"}[i]
			if msg.Type() != wire.ICMPv6EchoReply || msg.Identifier() != 0x77 || string(msg.Body()) != data {
				t.Fatalf("reply %d: %d %q, want echo reply %q", i, msg.Type(), msg.Body(), data)
			}
		default:
			if msg.Type() != wire.ICMPv6ParameterProblem || msg.Code() != wire.ICMPv6UnrecognizedNextHeader || msg.Pointer() != 6 || !bytes.Equal(msg.Body(), udp) {
				t.Fatalf("reply %d: type %d code %d pointer %d, want parameter problem 1 at 6 quoting the packet", i, msg.Type(), msg.Code(), msg.Pointer())
			}
		}
	}
	st := s.IPStats()
	if st.EchoReplies6 != 2 || st.NDIgnored != 1 || st.ParamProblems6 != 6 || st.RateLimited6 != 2 {
		t.Fatalf("IPStats %+v: want 2 echo replies, 1 ND ignored, 6 parameter problems, 2 rate-limited", st)
	}
}

// A Packet Too Big (IPv6) or Fragmentation Needed (IPv4) lowers the path
// MTU: the link between the stacks drops every packet of the family above
// the path MTU and, like a router, answers each with the ICMP error. The
// transfer completes only because the sender takes the message, cuts its
// segments to the new MSS and resends what was dropped; TCP_INFO's pmtu
// shows the path MTU. IPv6: 1280, MSS 1220 (1208 with timestamps); IPv4:
// 1000, MSS 960 (948).
func TestPathMTUShrinksSegmentsOverPipe(t *testing.T) {
	for _, tc := range []struct {
		name     string
		network  string
		dst      string
		pathMTU  int
		mss      uint32
		icmpFrom netip.Addr
	}{
		{"IPv6 Packet Too Big", "tcp6", "[fd00::2]:8080", 1280, 1220, netip.MustParseAddr("fd00::fe")},
		{"IPv4 Fragmentation Needed", "tcp4", "198.18.0.2:8080", 1000, 960, netip.MustParseAddr("198.18.0.254")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair6(t)
			dropped := make(chan []byte, 256)
			p.pa.SetDrop(func(pkt []byte) bool {
				if len(pkt) > tc.pathMTU {
					select {
					case dropped <- append([]byte(nil), pkt...):
					default: // the router's ICMP is best-effort too
					}
					return true
				}
				return false
			})
			done := make(chan struct{})
			defer close(done)
			go func() {
				for {
					select {
					case <-done:
						return
					case pkt := <-dropped:
						if msg := routerError(tc.icmpFrom, pkt, tc.pathMTU); msg != nil {
							p.pb.WritePackets([][]byte{msg}) // toward stack a
						}
					}
				}
			}()
			ln, err := p.b.ListenWith(context.Background(), ListenConfig{}, tc.network, tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c, s := p.dialAccept(t, ln, 60*time.Second, tc.network, tc.dst)
			want := make([]byte, 300_000)
			for i := range want {
				want[i] = byte(i)
			}
			go c.Write(want)
			got := make([]byte, len(want))
			s.SetReadDeadline(time.Now().Add(60 * time.Second))
			if _, err := io.ReadFull(s, got); err != nil {
				t.Fatalf("transfer through a %d-byte path: %v (dialer IPStats %+v)", tc.pathMTU, err, p.a.IPStats())
			}
			if !bytes.Equal(got, want) {
				t.Fatal("data differs")
			}
			ti := c.(*Conn).TCPInfo()
			if ti.PMTU != uint32(tc.pathMTU) || ti.SndMSS != tc.mss-12 {
				t.Fatalf("TCP_INFO pmtu %d snd_mss %d, want %d and %d", ti.PMTU, ti.SndMSS, tc.pathMTU, tc.mss-12)
			}
			if st := p.a.IPStats(); st.ICMPErrorsIn == 0 {
				t.Fatalf("no ICMP error reached the sender: %+v", st)
			}
			if f := p.pa.Stats().FilteredPackets; f == 0 {
				t.Fatal("the path dropped nothing: the test did not exercise PMTU discovery")
			}
		})
	}
}

// routerError is what a router at from sends about pkt, too big for its
// next hop of mtu bytes: an ICMPv6 Packet Too Big (RFC 4443 §3.2) or an
// ICMPv4 Fragmentation Needed with the next-hop MTU (RFC 1191 §4) quoting
// the IP header and 8 bytes of data.
func routerError(from netip.Addr, pkt []byte, mtu int) []byte {
	if from.Is6() {
		out := make([]byte, wire.IPv6MinMTU)
		n, err := wire.PutICMPv6PacketTooBig(out, from.As16(), 64, wire.IPv6(pkt), uint32(mtu))
		if err != nil {
			return nil
		}
		return out[:n]
	}
	in := wire.IPv4(pkt)
	quote := in[:in.HeaderLen()+8]
	out := make([]byte, wire.IPv4HeaderLen+8+len(quote))
	msg := wire.ICMPv4(out[wire.IPv4HeaderLen:])
	msg[0], msg[1] = 3, 4 // destination unreachable, fragmentation needed
	msg[6], msg[7] = byte(mtu>>8), byte(mtu)
	copy(msg[8:], quote)
	msg.SetChecksum()
	wire.PutIPv4Header(out, wire.IPv4Fields{Src: from.As4(), Dst: in.Src(), Protocol: wire.ProtoICMP, TTL: 64}, len(msg))
	return out
}
