package stack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"tunstack/netif"
	"tunstack/policy"
)

// SO_REUSEADDR and SO_REUSEPORT through ListenWith and DialWith, and the
// bind errors they meet, on two stacks joined by a pipe.

// closeFirst closes first, then second, each with SO_LINGER so that the
// Close returns once the peer acknowledged its FIN: when both returned,
// first is in TIME-WAIT (second's FIN was acknowledged from there).
func closeFirst(t *testing.T, first, second net.Conn) {
	t.Helper()
	first.(*Conn).SetLinger(10)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(second); err != nil {
		t.Fatalf("read to the FIN: %v", err)
	}
	second.(*Conn).SetLinger(10)
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
}

// dialAccept dials from a to b's listener ln with d and returns both ends.
func dialAccept(t *testing.T, p *pair, ln net.Listener, d Dialer) (c, s net.Conn) {
	t.Helper()
	ch := make(chan net.Conn, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		ch <- s
	}()
	c, err := p.a.DialWith(testContext(t, 30*time.Second), d, "tcp", to(ln))
	if err != nil {
		t.Fatal(err)
	}
	s = <-ch
	if s == nil {
		t.FailNow()
	}
	return c, s
}

// to is the address to dial for ln: the stack b's address and ln's port.
func to(ln net.Listener) string {
	return netip.AddrPortFrom(addrB, uint16(ln.Addr().(*net.TCPAddr).Port)).String()
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

// A server restarted on a port its accepted connections hold in
// TIME-WAIT needs SO_REUSEADDR, set on the old listener as on the new.
func TestListenWithReuseAddrRestartsOverTimeWait(t *testing.T) {
	p := newPair(t, 0, 1)
	ctx := testContext(t, 30*time.Second)
	lc := ListenConfig{ReuseAddr: true}
	ln, err := p.b.ListenWith(ctx, lc, "tcp", addrB.String()+":7000")
	if err != nil {
		t.Fatal(err)
	}
	c, s := dialAccept(t, p, ln, Dialer{})
	ln.Close()
	closeFirst(t, s, c) // the server closes first: its end is in TIME-WAIT
	_, err = p.b.Listen(addrB.String()+":7000", 8)
	wantErrno(t, "listen without SO_REUSEADDR over TIME-WAIT", err, syscall.EADDRINUSE)
	ln2, err := p.b.ListenWith(ctx, lc, "tcp", ":7000")
	if err != nil {
		t.Fatalf("listen with SO_REUSEADDR over TIME-WAIT: %v", err)
	}
	ln2.Close()
}

// Listeners with SO_REUSEPORT share a port and each takes the
// connections its 4-tuples hash to; one without it cannot join; once one
// closes, the other takes every new connection.
func TestListenWithReusePortSharesConnections(t *testing.T) {
	p := newPair(t, 0, 2)
	ctx := testContext(t, 30*time.Second)
	lc := ListenConfig{ReusePort: true, Backlog: 64}
	var lns [2]net.Listener
	for i := range lns {
		ln, err := p.b.ListenWith(ctx, lc, "tcp", ":7001")
		if err != nil {
			t.Fatalf("listener %d with SO_REUSEPORT: %v", i, err)
		}
		lns[i] = ln
	}
	_, err := p.b.Listen(":7001", 8)
	wantErrno(t, "listen without SO_REUSEPORT next to the group", err, syscall.EADDRINUSE)

	type accepted struct {
		i int
		c net.Conn
	}
	ch := make(chan accepted)
	for i, ln := range lns {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				ch <- accepted{i, c}
			}
		}()
	}
	const n = 24
	var got [2]int
	for range n {
		c, err := p.a.Dial(ctx, "tcp", addrB.String()+":7001")
		if err != nil {
			t.Fatal(err)
		}
		a := <-ch
		got[a.i]++
		a.c.Close()
		c.Close()
	}
	if got[0] == 0 || got[1] == 0 {
		t.Fatalf("connections per listener %v: one of the group took none", got)
	}
	lns[0].Close()
	for range 4 {
		c, err := p.a.Dial(ctx, "tcp", addrB.String()+":7001")
		if err != nil {
			t.Fatal(err)
		}
		if a := <-ch; a.i != 1 {
			t.Fatalf("a connection reached the closed listener %d", a.i)
		}
		c.Close()
	}
	lns[1].Close()
}

// A Dialer with a local port binds it: a second connection from it to the
// same destination fails with EADDRNOTAVAIL, one to another destination
// shares the port (both with SO_REUSEADDR), one without SO_REUSEADDR gets
// EADDRINUSE, and an address the stack does not have EADDRNOTAVAIL.
func TestDialWithLocalPort(t *testing.T) {
	p := newPair(t, 0, 3)
	ctx := testContext(t, 30*time.Second)
	ln1, err := p.b.Listen(":7002", 8)
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := p.b.Listen(":7003", 8)
	if err != nil {
		t.Fatal(err)
	}
	d := Dialer{LocalAddr: netip.AddrPortFrom(addrA, 41000), ReuseAddr: true}
	c, _ := dialAccept(t, p, ln1, d)
	if got := c.LocalAddr().(*net.TCPAddr).Port; got != 41000 {
		t.Fatalf("dialed from port %d, want 41000", got)
	}
	_, err = p.a.DialWith(ctx, d, "tcp", to(ln1))
	wantErrno(t, "second dial on the 4-tuple", err, syscall.EADDRNOTAVAIL)
	dialAccept(t, p, ln2, d)
	_, err = p.a.DialWith(ctx, Dialer{LocalAddr: d.LocalAddr}, "tcp", to(ln2))
	wantErrno(t, "dial from the port without SO_REUSEADDR", err, syscall.EADDRINUSE)
	_, err = p.a.DialWith(ctx, Dialer{LocalAddr: netip.MustParseAddrPort("198.18.0.9:41001")}, "tcp", to(ln2))
	wantErrno(t, "dial from an address the stack does not have", err, syscall.EADDRNOTAVAIL)
}

// A Dialer from the port of a connection in TIME-WAIT to the same
// destination takes it over (timestamps on, as in the linux profile),
// counted in Stats.TimeWaitReused.
func TestDialFromBoundPortTakesOverTimeWait(t *testing.T) {
	p := newPair(t, 0, 4)
	ln, err := p.b.Listen(":7004", 8)
	if err != nil {
		t.Fatal(err)
	}
	d := Dialer{LocalAddr: netip.AddrPortFrom(addrA, 41002), ReuseAddr: true}
	c, s := dialAccept(t, p, ln, d)
	closeFirst(t, c, s) // the client closes first: its end is in TIME-WAIT
	c2, _ := dialAccept(t, p, ln, d)
	if got := c2.LocalAddr().(*net.TCPAddr).Port; got != 41002 {
		t.Fatalf("dialed from port %d, want 41002", got)
	}
	if n := p.a.Stats().TimeWaitReused; n != 1 {
		t.Fatalf("TimeWaitReused %d, want 1", n)
	}
}

// With every ephemeral port in use toward a destination, Dial fails with
// EADDRNOTAVAIL, counted in Stats.ConnectNoPort.
func TestDialPortsExhaustedGiveAddrNotAvail(t *testing.T) {
	prof := policy.Linux()
	prof.LocalPortMin, prof.LocalPortMax = 50000, 50003
	pa, pb := netif.NewPipe(testMTU)
	p := startPair(t, pa, pb, pa, pb, Config{Addr: addrA, Profile: prof, Secret: [32]byte{5}}, Config{Addr: addrB, Secret: [32]byte{6}})
	ln, err := p.b.Listen(":7005", 8)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		dialAccept(t, p, ln, Dialer{})
	}
	_, err = p.a.Dial(testContext(t, 30*time.Second), "tcp", to(ln))
	wantErrno(t, "dial with the range taken", err, syscall.EADDRNOTAVAIL)
	if n := p.a.Stats().ConnectNoPort; n != 1 {
		t.Fatalf("ConnectNoPort %d, want 1", n)
	}
}

// ListenWith and DialWith check the network and the context as the net
// package does.
func TestListenWithAndDialWithCheckArguments(t *testing.T) {
	p := newPair(t, 0, 5)
	if _, err := p.b.ListenWith(context.Background(), ListenConfig{}, "udp", ":7006"); err == nil {
		t.Fatal("ListenWith accepted network udp")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.b.ListenWith(ctx, ListenConfig{}, "tcp", ":7006")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("ListenWith with a cancelled context: %v", err)
	}
	ln, err := p.b.ListenWith(context.Background(), ListenConfig{}, "tcp4", ":7006")
	if err != nil {
		t.Fatal(err)
	}
	if got := ln.(Listener).Stats().Backlog; got != policy.Linux().Somaxconn {
		t.Fatalf("backlog %d with Backlog 0, want somaxconn %d", got, policy.Linux().Somaxconn)
	}
	ln.Close()
}
