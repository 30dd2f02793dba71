package gvisorstack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	tstack "tunstack/stack"
)

// ListenWith and DialWith pass SO_REUSEADDR and SO_REUSEPORT to gVisor's
// endpoints, whose bind errors come back as errnos.

func TestListenWithReusePortOnGVisor(t *testing.T) {
	p := newPair(t, nil)
	ctx := context.Background()
	rp := tstack.ListenConfig{ReusePort: true}
	l1, err := p.b.ListenWith(ctx, rp, "tcp", ":7100")
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	l2, err := p.b.ListenWith(ctx, rp, "tcp", ":7100")
	if err != nil {
		t.Fatalf("second listener with SO_REUSEPORT: %v", err)
	}
	defer l2.Close()
	if _, err := p.b.ListenWith(ctx, tstack.ListenConfig{}, "tcp", ":7100"); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("listener without SO_REUSEPORT next to the group: %v, want EADDRINUSE", err)
	}
}

func TestDialWithLocalPortOnGVisor(t *testing.T) {
	p := newPair(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := p.b.Listen(":7101", 8)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	d := tstack.Dialer{LocalAddr: netip.AddrPortFrom(addrA, 41100)}
	c, err := p.a.DialWith(ctx, d, "tcp", "10.0.0.2:7101")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.LocalAddr().(*net.TCPAddr).Port; got != 41100 {
		t.Fatalf("dialed from port %d, want 41100", got)
	}
	if _, err := p.a.DialWith(ctx, d, "tcp", "10.0.0.2:7101"); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second dial from the bound port without SO_REUSEADDR: %v, want EADDRINUSE", err)
	}
}
