package gvisorstack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"tunstack/netif"
	tstack "tunstack/stack"
	"tunstack/tcpcore"
	pkt "tunstack/wire"
)

// gVisor dual-stack: with Config.Addr6 the stack speaks IPv6 as well, and
// an endpoint on [::] takes IPv4 too unless IPV6_V6ONLY says otherwise.

func newDualPair(t testing.TB) *pair {
	return newPairConfig(t, Config{Prefix6: net6AB})
}

// serveEchoOnce accepts one connection from ln, echoes what it reads until EOF,
// and sends the accepted connection's remote address on the channel.
func serveEchoOnce(ln net.Listener) <-chan net.Addr {
	remote := make(chan net.Addr, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(remote)
			return
		}
		defer c.Close()
		remote <- c.RemoteAddr()
		io.Copy(c, c)
	}()
	return remote
}

// roundTrip writes msg on c, half-closes, and returns what comes back.
func roundTrip(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDualStackListenerOnAnyTakesBothFamilies(t *testing.T) {
	p := newDualPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, address := range []string{":7200", "[::]:7201"} {
		ln, err := p.b.Listen(address, 8)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		if got := ln.Addr().String(); got != "[::]:"+strings.TrimPrefix(address, "[::]")[1:] {
			t.Errorf("Listen(%q).Addr() = %s, want [::]:%d: dual stack on IPv6's wildcard", address, got, port)
		}
		for _, c := range []struct {
			network, to string
			from        netip.Addr
		}{
			{"tcp6", netip.AddrPortFrom(addr6B, uint16(port)).String(), addr6A},
			{"tcp", netip.AddrPortFrom(addr6B, uint16(port)).String(), addr6A},
			{"tcp4", netip.AddrPortFrom(addrB, uint16(port)).String(), addrA},
		} {
			remote := serveEchoOnce(ln)
			conn, err := p.a.Dial(ctx, c.network, c.to)
			if err != nil {
				t.Fatalf("Dial(%s, %s) to a listener on %s: %v", c.network, c.to, address, err)
			}
			if got := roundTrip(t, conn, "hello "+c.to); got != "hello "+c.to {
				t.Errorf("%s: echoed %q", c.to, got)
			}
			conn.Close()
			ra, ok := (<-remote).(*net.TCPAddr)
			// gVisor shows an IPv4 peer of a dual-stack listener as IPv4,
			// where Linux shows ::ffff:10.0.0.1; both are that address.
			if !ok || ra.AddrPort().Addr().Unmap() != c.from {
				t.Errorf("%s: the accepted connection's peer is %v, want %v", c.to, ra, c.from)
			}
		}
	}
}

func TestV6OnlyListenerLeavesIPv4ToAnother(t *testing.T) {
	p := newDualPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v6, err := p.b.ListenWith(ctx, tstack.ListenConfig{V6Only: true}, "tcp6", "[::]:7202")
	if err != nil {
		t.Fatal(err)
	}
	defer v6.Close()
	if _, err := p.a.Dial(ctx, "tcp4", "10.0.0.2:7202"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("IPv4 dial to a V6Only listener's port: %v, want ECONNREFUSED", err)
	}
	// Without V6Only the two would conflict; with it, 0.0.0.0 is free.
	v4, err := p.b.ListenWith(ctx, tstack.ListenConfig{}, "tcp4", ":7202")
	if err != nil {
		t.Fatalf("an IPv4 listener beside a V6Only one on the same port: %v", err)
	}
	defer v4.Close()
	for _, to := range []string{"10.0.0.2:7202", "[fd00:7475:6e73::2]:7202"} {
		ln := v4
		if strings.HasPrefix(to, "[") {
			ln = v6
		}
		serveEchoOnce(ln)
		conn, err := p.a.Dial(ctx, "tcp", to)
		if err != nil {
			t.Fatalf("Dial %s: %v", to, err)
		}
		if got := roundTrip(t, conn, to); got != to {
			t.Errorf("%s echoed %q", to, got)
		}
		conn.Close()
	}
	// A dual-stack listener cannot have the port while the IPv4 one does.
	if _, err := p.b.Listen("[::]:7202", 8); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("a dual-stack listener on a port with an IPv4 listener: %v, want EADDRINUSE", err)
	}
}

func TestHTTP8MiBEachWayOverIPv6(t *testing.T) {
	p := newDualPair(t)
	httpRoundTripTo(t, p, "[fd00:7475:6e73::1]", 8<<20)
	if st := p.b.Stats(); st.PacketsIn == 0 {
		t.Errorf("client stats %+v: nothing came in", st)
	}
}

func TestDialWithFromABoundIPv6Port(t *testing.T) {
	p := newDualPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := p.b.ListenWith(ctx, tstack.ListenConfig{}, "tcp6", "[fd00:7475:6e73::2]:7203")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	remote := serveEchoOnce(ln)
	d := tstack.Dialer{LocalAddr: netip.AddrPortFrom(addr6A, 41200)}
	c, err := p.a.DialWith(ctx, d, "tcp6", "[fd00:7475:6e73::2]:7203")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.LocalAddr().String(); got != "[fd00:7475:6e73::1]:41200" {
		t.Errorf("dialed from %s, want [fd00:7475:6e73::1]:41200", got)
	}
	if got := (<-remote).String(); got != "[fd00:7475:6e73::1]:41200" {
		t.Errorf("accepted from %s, want [fd00:7475:6e73::1]:41200", got)
	}
	// Sockets shows both ends with their IPv6 addresses.
	var found bool
	for _, si := range p.b.Sockets() {
		if si.State == tcpcore.Established && si.Remote == netip.MustParseAddrPort("[fd00:7475:6e73::1]:41200") {
			found = si.Local == netip.MustParseAddrPort("[fd00:7475:6e73::2]:7203")
		}
	}
	if !found {
		t.Errorf("Sockets lists no established [fd00:7475:6e73::2]:7203 <- [fd00:7475:6e73::1]:41200: %+v", p.b.Sockets())
	}
}

// Addresses and networks a dual-stack stack refuses, and an IPv4-only one's
// refusal of IPv6, each with a sentence that says what to give instead.
func TestIPv6AddressesAndNetworksAreChecked(t *testing.T) {
	ctx := context.Background()
	v4only := newPair(t, nil)
	if _, err := v4only.a.ListenWith(ctx, tstack.ListenConfig{}, "tcp6", ":80"); err == nil || !strings.Contains(err.Error(), "no IPv6 address") {
		t.Errorf("tcp6 listener on a stack without IPv6: %v, want it refused for want of an IPv6 address", err)
	}
	if _, err := v4only.a.Dial(ctx, "tcp", "[fd00:7475:6e73::2]:80"); err == nil || !strings.Contains(err.Error(), "no IPv6 address") {
		t.Errorf("dial to IPv6 from a stack without IPv6: %v, want it refused", err)
	}
	if ln, err := v4only.a.Listen(":7204", 1); err != nil || ln.Addr().String() != "0.0.0.0:7204" {
		t.Errorf("Listen(:7204) on a stack without IPv6 = %v, %v; want 0.0.0.0:7204", ln, err)
	}
	dual := newDualPair(t)
	for _, c := range []struct{ network, address, want string }{
		{"tcp4", "[fd00:7475:6e73::1]:80", "not IPv4"},
		{"tcp6", "10.0.0.1:80", "not IPv6"},
		{"tcp", "[fe80::1%tun0]:80", "zone"},
		{"udp6", "[::]:80", "unknown network"},
	} {
		if _, err := dual.a.ListenWith(ctx, tstack.ListenConfig{}, c.network, c.address); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ListenWith(%s, %s) = %v, want an error saying %q", c.network, c.address, err, c.want)
		}
	}
	for _, c := range []struct {
		cfg  Config
		mtu  int
		want string
	}{
		{Config{Addr: addrA, Addr6: netip.MustParseAddr("::ffff:10.0.0.1")}, 1500, "not a unicast IPv6 address"},
		{Config{Addr: addrA, Addr6: netip.MustParseAddr("ff02::1")}, 1500, "not a unicast IPv6 address"},
		{Config{Addr: addrA, Addr6: addr6A, Prefix6: netip.MustParsePrefix("fd00:1::/64")}, 1500, "does not contain"},
		{Config{Addr: addrA, Prefix6: net6AB}, 1500, "without Addr6"},
		{Config{Addr: addrA, Addr6: addr6A}, 1279, "minimum of 1280"},
	} {
		pa, pb := netif.NewPipe(c.mtu)
		s, err := New(pa, c.cfg)
		if err == nil {
			s.Close()
		}
		pa.Close()
		pb.Close()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v, MTU %d) = %v, want an error saying %q", c.cfg, c.mtu, err, c.want)
		}
	}
}

// gVisor answers an ICMPv6 echo request to its address, and sends nothing
// of IPv6's own on a link it has just come up on: no router solicitation,
// no duplicate address detection, no MLD report.
func TestAnswersICMPv6EchoAndSendsNothingUnasked(t *testing.T) {
	pa, pb := netif.NewPipe(testMTU)
	s, err := New(pa, Config{Addr: addrA, Prefix: netAB, Addr6: addr6A, Prefix6: net6AB})
	if err != nil {
		t.Fatal(err)
	}
	peer := newRawPeer(pb)
	defer func() {
		s.Close()
		<-peer.done
	}()
	if p := peer.next(300 * time.Millisecond); p != nil {
		t.Errorf("the stack sent % x unasked", p)
	}

	payload := []byte("tunstack ping -6")
	req := make([]byte, pkt.IPv6HeaderLen+pkt.ICMPv6HeaderLen+len(payload))
	pkt.PutIPv6Header(req, pkt.IPv6Fields{Src: addr6B.As16(), Dst: addr6A.As16(), NextHeader: pkt.ProtoICMPv6, HopLimit: 64}, len(req)-pkt.IPv6HeaderLen)
	icmp := pkt.ICMPv6(req[pkt.IPv6HeaderLen:])
	pkt.PutICMPv6Echo(icmp, pkt.ICMPv6EchoRequest, 0x1234, 7)
	copy(icmp.Body(), payload)
	icmp.ComputeChecksum(addr6B.As16(), addr6A.As16())
	if _, err := pb.WritePackets([][]byte{req}); err != nil {
		t.Fatal(err)
	}
	p := peer.next(5 * time.Second)
	if p == nil {
		t.Fatal("no echo reply")
	}
	ip := pkt.IPv6(p)
	if ip.Valid() != nil || ip.NextHeader() != pkt.ProtoICMPv6 {
		t.Fatalf("answer % x, want an ICMPv6 packet", p)
	}
	r := pkt.ICMPv6(ip.Payload())
	if r.Type() != pkt.ICMPv6EchoReply || r.Identifier() != 0x1234 || r.Sequence() != 7 || string(r.Body()) != string(payload) ||
		ip.SrcAddr() != addr6A || ip.DstAddr() != addr6B || !r.ChecksumValid(ip.Src(), ip.Dst()) {
		t.Fatalf("echo reply %v -> %v type %d id %#x seq %d body %q checksum valid %v",
			ip.SrcAddr(), ip.DstAddr(), r.Type(), r.Identifier(), r.Sequence(), r.Body(), r.ChecksumValid(ip.Src(), ip.Dst()))
	}
}
