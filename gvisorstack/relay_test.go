package gvisorstack

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"tunstack/netif"
	"tunstack/relay"
	tstack "tunstack/stack"
	twire "tunstack/wire"
)

// The relay frontend is tested with tunstack's own stack as the client on
// the other end of a pipe: it sends SYNs to addresses nobody on the link
// owns, and checks ICMP errors against its SYN as Linux does, so a quote
// with the wrong sequence number would leave its dial hanging.

var relayPrefixes = []netip.Prefix{
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// relayPair is a client stack (ours) and a gVisor stack whose frontend
// intercepts relayPrefixes and sends every held SYN on pending.
type relayPair struct {
	client  *tstack.Stack
	gv      *Stack
	fe      *Frontend
	pending chan relay.Pending
}

func newRelayPair(t *testing.T) *relayPair {
	t.Helper()
	pa, pb := netif.NewPipe(testMTU)
	client, err := tstack.New(pa, tstack.Config{Addr: addrA, Addr6: addr6A})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	gv, err := New(pb, Config{Addr: addrB, Prefix: netAB, Addr6: addr6B, Prefix6: net6AB})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gv.Close() })
	fe, err := gv.Frontend(FrontendConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rp := &relayPair{client: client, gv: gv, fe: fe, pending: make(chan relay.Pending, 16)}
	if err := fe.Intercept(relayPrefixes, func(p relay.Pending) { rp.pending <- p }); err != nil {
		t.Fatal(err)
	}
	return rp
}

type dialResult struct {
	c   net.Conn
	err error
}

// dial starts a client dial to target and returns where its result goes.
func (rp *relayPair) dial(t *testing.T, target netip.AddrPort) <-chan dialResult {
	t.Helper()
	done := make(chan dialResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := rp.client.Dial(ctx, "tcp", target.String())
		done <- dialResult{c, err}
	}()
	return done
}

// held waits for the frontend to hand out the SYN to target, and checks
// that the client's dial has not completed: the SYN-ACK waits for Accept.
func (rp *relayPair) held(t *testing.T, target netip.AddrPort, dial <-chan dialResult) relay.Pending {
	t.Helper()
	var p relay.Pending
	select {
	case p = <-rp.pending:
	case r := <-dial:
		t.Fatalf("dial to %v returned (%v, %v) before the frontend handed out its SYN", target, r.c, r.err)
	case <-time.After(10 * time.Second):
		t.Fatalf("no SYN to %v handed out in 10 s", target)
	}
	if p.Target() != target {
		t.Errorf("Target() = %v, want %v", p.Target(), target)
	}
	if want := addrA; target.Addr().Is6() {
		want = addr6A
		if p.Client().Addr() != want {
			t.Errorf("Client() = %v, want an address of %v", p.Client(), want)
		}
	} else if p.Client().Addr() != want {
		t.Errorf("Client() = %v, want an address of %v", p.Client(), want)
	}
	select {
	case r := <-dial:
		t.Fatalf("dial to %v returned (%v, %v) while its SYN was held", target, r.c, r.err)
	default:
	}
	return p
}

func waitDial(t *testing.T, dial <-chan dialResult) dialResult {
	t.Helper()
	select {
	case r := <-dial:
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("dial did not return in 15 s")
	}
	return dialResult{}
}

func TestFrontendAcceptsSYNToAnyAddressBothFamilies(t *testing.T) {
	rp := newRelayPair(t)
	for _, target := range []netip.AddrPort{
		netip.MustParseAddrPort("203.0.113.7:80"),
		netip.MustParseAddrPort("[2001:db8::7]:443"),
	} {
		t.Run(target.String(), func(t *testing.T) {
			dial := rp.dial(t, target)
			p := rp.held(t, target, dial)
			accepted := make(chan dialResult, 1)
			go func() {
				c, err := p.Accept()
				accepted <- dialResult{c, err}
			}()
			cr := waitDial(t, dial)
			if cr.err != nil {
				t.Fatalf("dial %v: %v", target, cr.err)
			}
			defer cr.c.Close()
			ar := waitDial(t, accepted)
			if ar.err != nil {
				t.Fatalf("Accept: %v", ar.err)
			}
			defer ar.c.Close()
			if got := ar.c.LocalAddr().(*net.TCPAddr).AddrPort(); got != target {
				t.Errorf("relay side LocalAddr = %v, want the target %v", got, target)
			}
			if got := ar.c.RemoteAddr().(*net.TCPAddr).AddrPort(); got != p.Client() {
				t.Errorf("relay side RemoteAddr = %v, want Client() %v", got, p.Client())
			}
			if got := cr.c.RemoteAddr().(*net.TCPAddr).AddrPort(); got != target {
				t.Errorf("client side RemoteAddr = %v, want %v", got, target)
			}
			if _, err := p.Accept(); err == nil {
				t.Error("a second Accept succeeded")
			}
			// Both directions, and a half-close each way.
			up, down := pattern(300<<10, 1), pattern(200<<10, 2)
			go func() {
				cr.c.Write(up)
				cr.c.(interface{ CloseWrite() error }).CloseWrite()
			}()
			cr.c.SetDeadline(time.Now().Add(20 * time.Second))
			ar.c.SetDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(ar.c)
			if err != nil || string(got) != string(up) {
				t.Fatalf("relay side read %d bytes (%v), want the client's %d", len(got), err, len(up))
			}
			// The client reads while the relay side writes: 200 KiB is more
			// than the client's receive window (128 KiB) and gVisor's
			// send buffer (16 KiB, the Linux profile's, which gVisor grows
			// only as the congestion window grows) hold before it reads.
			type readResult struct {
				b   []byte
				err error
			}
			read := make(chan readResult, 1)
			go func() {
				b, err := io.ReadAll(cr.c)
				read <- readResult{b, err}
			}()
			if _, err := ar.c.Write(down); err != nil {
				t.Fatal(err)
			}
			ar.c.(interface{ CloseWrite() error }).CloseWrite()
			rr := <-read
			if rr.err != nil || string(rr.b) != string(down) {
				t.Fatalf("client read %d bytes (%v), want the relay's %d", len(rr.b), rr.err, len(down))
			}
		})
	}
}

func TestFrontendRefusals(t *testing.T) {
	rp := newRelayPair(t)
	port := uint16(9000)
	for _, tc := range []struct {
		how  relay.Refusal
		want syscall.Errno
	}{
		{relay.RefuseReset, syscall.ECONNREFUSED},
		{relay.RefuseHostUnreachable, syscall.EHOSTUNREACH},
		{relay.RefuseNetUnreachable, syscall.ENETUNREACH},
	} {
		for _, a := range []string{"203.0.113.9", "2001:db8::9"} {
			port++
			target := netip.AddrPortFrom(netip.MustParseAddr(a), port)
			t.Run(target.String(), func(t *testing.T) {
				dial := rp.dial(t, target)
				p := rp.held(t, target, dial)
				p.Refuse(tc.how)
				start := time.Now()
				r := waitDial(t, dial)
				if r.err == nil {
					r.c.Close()
					t.Fatalf("dial %v succeeded after Refuse(%v)", target, tc.how)
				}
				if !errors.Is(r.err, tc.want) {
					t.Fatalf("dial %v after Refuse(%v): %v, want %v", target, tc.how, r.err, tc.want)
				}
				// The answer is immediate: a retransmitted SYN would
				// have come a second later at the earliest.
				if d := time.Since(start); d >= time.Second {
					t.Errorf("dial failed %v after the refusal, want at once", d)
				}
				if _, err := p.Accept(); err == nil {
					t.Error("Accept after Refuse succeeded")
				}
			})
		}
	}
}

func TestFrontendLeavesOtherAddressesAndStopsOnClose(t *testing.T) {
	rp := newRelayPair(t)
	// Outside the prefixes: gVisor answers as a closed port.
	outside := netip.MustParseAddrPort("198.51.100.1:80")
	r := waitDial(t, rp.dial(t, outside))
	if !errors.Is(r.err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %v outside the prefixes: (%v, %v), want ECONNREFUSED", outside, r.c, r.err)
	}
	// The stack's own listener keeps its connections.
	ln, err := rp.gv.Listen(":7000", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	remote := serveEchoOnce(ln)
	r = waitDial(t, rp.dial(t, netip.AddrPortFrom(addrB, 7000)))
	if r.err != nil {
		t.Fatalf("dial the stack's own listener: %v", r.err)
	}
	if got := roundTrip(t, r.c, "own"); got != "own" {
		t.Errorf("echo from the stack's listener = %q", got)
	}
	r.c.Close()
	<-remote

	target := netip.MustParseAddrPort("203.0.113.20:22")
	dial := rp.dial(t, target)
	p := rp.held(t, target, dial)
	go p.Accept()
	r = waitDial(t, dial)
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.Close()
	if err := rp.fe.Close(); err != nil {
		t.Fatal(err)
	}
	after := netip.MustParseAddrPort("203.0.113.21:22")
	if r := waitDial(t, rp.dial(t, after)); !errors.Is(r.err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %v after Close: (%v, %v), want ECONNREFUSED", after, r.c, r.err)
	}
	select {
	case p := <-rp.pending:
		t.Fatalf("SYN to %v handed out after Close", p.Target())
	default:
	}
	if err := rp.fe.Intercept(relayPrefixes, func(relay.Pending) {}); err == nil {
		t.Error("Intercept after Close succeeded")
	}
}

func TestFrontendInterceptRejectsBadPrefixes(t *testing.T) {
	pa, pb := netif.NewPipe(testMTU)
	defer pa.Close()
	gv, err := New(pb, Config{Addr: addrB, Prefix: netAB})
	if err != nil {
		t.Fatal(err)
	}
	defer gv.Close()
	fe, err := gv.RelayFrontend()
	if err != nil {
		t.Fatal(err)
	}
	h := func(relay.Pending) {}
	for _, ps := range [][]netip.Prefix{
		nil,
		{{}},
		{netip.MustParsePrefix("::ffff:203.0.113.0/120")},
		{netip.MustParsePrefix("2001:db8::/32")}, // no IPv6 address
	} {
		if err := fe.Intercept(ps, h); err == nil {
			t.Errorf("Intercept(%v) succeeded", ps)
		}
	}
	if err := fe.Intercept([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, h); err != nil {
		t.Fatal(err)
	}
	if err := fe.Intercept([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, h); err == nil {
		t.Error("a second Intercept succeeded")
	}
	other, err := gv.Frontend(FrontendConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Intercept([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, h); err == nil {
		t.Error("a second frontend intercepts on the same stack")
	}
}

// TestFrontendAnswersUDPWithPortUnreachable: the relay carries TCP only,
// and a datagram to an intercepted address gets ICMP port unreachable, so
// that a resolver pointed through the relay fails at once.
func TestFrontendAnswersUDPWithPortUnreachable(t *testing.T) {
	pa, pb := netif.NewPipe(testMTU)
	gv, err := New(pb, Config{Addr: addrB, Prefix: netAB})
	if err != nil {
		t.Fatal(err)
	}
	defer gv.Close()
	fe, err := gv.RelayFrontend()
	if err != nil {
		t.Fatal(err)
	}
	if err := fe.Intercept(relayPrefixes[:1], func(p relay.Pending) { p.Refuse(relay.RefuseReset) }); err != nil {
		t.Fatal(err)
	}
	dst := netip.MustParseAddr("203.0.113.53")
	dgram := make([]byte, twire.IPv4HeaderLen+8+4)
	twire.PutIPv4Header(dgram, twire.IPv4Fields{Src: addrA.As4(), Dst: dst.As4(), Protocol: 17, TTL: 64}, 8+4)
	udp := dgram[twire.IPv4HeaderLen:]
	binary.BigEndian.PutUint16(udp[0:], 5353)
	binary.BigEndian.PutUint16(udp[2:], 53)
	binary.BigEndian.PutUint16(udp[4:], 8+4) // checksum 0: none, as IPv4 allows
	copy(udp[8:], "ping")
	if _, err := pa.WritePackets([][]byte{dgram}); err != nil {
		t.Fatal(err)
	}
	bufs, sizes := [][]byte{make([]byte, testMTU)}, []int{0}
	done := make(chan error, 1)
	go func() {
		_, err := pa.ReadPackets(bufs, sizes)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to a UDP datagram in 10 s")
	}
	ip := twire.IPv4(bufs[0][:sizes[0]])
	if err := ip.Valid(); err != nil || ip.Protocol() != twire.ProtoICMP {
		t.Fatalf("answer is not ICMP (%v): % x", err, bufs[0][:sizes[0]])
	}
	icmp := twire.ICMPv4(ip.Payload())
	if !icmp.Valid() || icmp.Type() != twire.ICMPDestUnreachable || icmp.Code() != 3 {
		t.Fatalf("ICMP type %d code %d, want destination unreachable (3), port unreachable (3)", icmp.Type(), icmp.Code())
	}
	if q := twire.IPv4(icmp[8:]); len(q) < twire.IPv4HeaderLen || q.DstAddr() != dst || ip.DstAddr() != addrA {
		t.Errorf("the error goes to %v and quotes a datagram to %v, want to %v about %v", ip.DstAddr(), q.DstAddr(), addrA, dst)
	}
}
