package stack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"tunstack/tcpcore"
)

// Dial opens a TCP connection to address ("198.18.0.1:80" or
// "[fd00::1]:80": a literal, since the stack has no resolver), on network
// "tcp", "tcp4" or "tcp6" (parseAddrPort says how each reads it). An IPv6
// destination needs Config.Addr6: without it Dial fails with
// ENETUNREACH, as connect(2) does with no IPv6 route. It waits for the handshake; cancelling
// ctx aborts the attempt. A refused connection reports
// syscall.ECONNREFUSED, a handshake that timed out syscall.ETIMEDOUT, no
// free local port toward address syscall.EADDRNOTAVAIL.
func (s *Stack) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return s.DialWith(ctx, Dialer{}, network, address)
}

// Dialer holds what a Go program sets through net.Dialer's LocalAddr and
// Control (SO_REUSEADDR, SO_REUSEPORT before bind(2)), for DialWith.
type Dialer struct {
	// LocalAddr is the address to connect from. A zero port takes an
	// ephemeral port when connecting, toward the destination (as Linux
	// with IP_BIND_ADDRESS_NO_PORT: a port is shared by connections to
	// different destinations); the unspecified address is the stack's
	// own. A non-zero port is bound first, under the bind rules: it
	// fails with EADDRINUSE when another socket holds it and the
	// options do not let them share it, and the connect with
	// EADDRNOTAVAIL when the 4-tuple is in use (a connection in
	// TIME-WAIT on it that had timestamps is taken over, as Linux does
	// for a port the application chose).
	LocalAddr netip.AddrPort
	ReuseAddr bool // SO_REUSEADDR
	ReusePort bool // SO_REUSEPORT
}

// DialWith is Dial with d's local address and options.
func (s *Stack) DialWith(ctx context.Context, d Dialer, network, address string) (net.Conn, error) {
	if !tcpNetwork(network) {
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	remote, err := s.parseAddrPort(network, address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	raddr := tcpAddr(remote)
	if remote.Addr().IsUnspecified() || remote.Port() == 0 {
		return nil, newOpError("dial", nil, raddr, syscall.EADDRNOTAVAIL)
	}
	// The source is our address of the destination's family (an
	// IPv4-mapped destination is IPv4).
	own := s.addr
	if !remote.Addr().Unmap().Is4() {
		if !s.addr6.IsValid() {
			return nil, newOpError("dial", nil, raddr, syscall.ENETUNREACH)
		}
		own = s.addr6
	}
	local := d.LocalAddr
	if !local.IsValid() || local.Addr().IsUnspecified() {
		local = netip.AddrPortFrom(own, local.Port())
	}
	if local.Addr().Unmap() != own {
		// Linux: bind(2) of an address the host does not have, or
		// connect(2) from one of the other family.
		return nil, newOpError("dial", tcpAddr(local), raddr, syscall.EADDRNOTAVAIL)
	}
	local = netip.AddrPortFrom(own, local.Port())
	if err := ctx.Err(); err != nil {
		return nil, newOpError("dial", nil, raddr, err)
	}

	if s.grp != nil {
		s = s.grp.dialShard(local)
	}
	s.mu.Lock()
	if err := s.checkOpen(); err != nil {
		s.mu.Unlock()
		return nil, newOpError("dial", nil, raddr, err)
	}
	opts := tcpcore.SockOpts{NoDelay: true, ReuseAddr: d.ReuseAddr, ReusePort: d.ReusePort}
	tc, err := s.e.Connect(s.now(), local, remote, opts)
	if err != nil {
		s.unlockFlush()
		return nil, newOpError("dial", nil, raddr, err)
	}
	return s.newConn(tc).handshake(ctx, "dial")
}

// handshake waits until c's handshake ends, sending what the engine
// queued (its SYN or SYN-ACK) before each sleep, and returns c once it is
// established. Otherwise it returns the error op failed with, having
// discarded c: the engine's hard error, ECONNRESET for a connection
// closed without one, ctx's error if ctx ends first, net.ErrClosed if the
// stack closes. The caller holds s.mu; handshake releases it.
func (c *Conn) handshake(ctx context.Context, op string) (net.Conn, error) {
	s, tc := c.s, c.tc
	for {
		if s.closed {
			s.mu.Unlock()
			return nil, c.opError(op, net.ErrClosed)
		}
		if tc.Connected() {
			err := tc.HardErr()
			if err == nil && tc.State() == tcpcore.Closed {
				// The handshake ended without a reason the engine keeps:
				// the peer reset it, an ICMP error ended it, or the
				// retransmissions of our SYN or SYN-ACK ran out (a
				// request socket's silent end, Linux's too): treat it as
				// reset.
				err = syscall.ECONNRESET
			}
			if err == nil {
				s.unlockFlush()
				return c, nil
			}
			c.discard()
			s.unlockFlush()
			return nil, c.opError(op, err)
		}
		wake, gen := c.n.wait()
		s.unlockFlush() // sends the SYN or SYN-ACK
		select {
		case <-wake:
		case <-ctx.Done():
		}
		s.mu.Lock()
		c.n.done(gen)
		if ctx.Err() != nil && !tc.Connected() {
			c.discard()
			s.unlockFlush()
			return nil, c.opError(op, ctx.Err())
		}
	}
}

// discard drops a connection the application never got: the engine forgets
// it (with an RST if it got that far) and the stack stops listing it. The
// caller holds s.mu.
func (c *Conn) discard() {
	c.closed = true
	c.tc.Abort(c.s.now())
	c.s.retire(c)
}

// parseAddrPort parses "ip:port" and ":port" for network "tcp", "tcp4"
// or "tcp6", as the net package reads them on Linux: with "tcp" and
// "tcp4" an IPv4-mapped address is its IPv4 address; with "tcp6" it stays
// mapped, for an IPv6 socket that reaches IPv4 through it (the engine
// runs such a connection in IPv4 and reports mapped addresses); "tcp4"
// takes only IPv4 and "tcp6" only IPv6. ":port" is the wildcard: 0.0.0.0
// for "tcp4", [::] for "tcp6", and for "tcp" [::] (dual stack, as Go's
// Listen(":80") on Linux) when the stack has an IPv6 address, else
// 0.0.0.0.
func (s *Stack) parseAddrPort(network, address string) (netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("stack: bad port %q", portStr)
	}
	if host == "" {
		ip := netip.IPv4Unspecified()
		if network == "tcp6" || network == "tcp" && s.addr6.IsValid() {
			ip = netip.IPv6Unspecified()
		}
		return netip.AddrPortFrom(ip, uint16(port)), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("stack: %q is not an IP address (the stack has no resolver)", host)
	}
	if ip.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("stack: %v has a zone: the stack has one link, give the address without %%%s", ip, ip.Zone())
	}
	switch network {
	case "tcp4":
		if ip = ip.Unmap(); !ip.Is4() {
			return netip.AddrPort{}, fmt.Errorf("stack: %v is not IPv4: use network tcp6 or tcp", ip)
		}
	case "tcp6":
		if !ip.Is6() {
			return netip.AddrPort{}, fmt.Errorf("stack: %v is not IPv6: use network tcp4 or tcp, or its mapped form [::ffff:%v]", ip, ip)
		}
	default:
		ip = ip.Unmap()
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

// tcpNetwork reports whether network is one the stack serves.
func tcpNetwork(network string) bool {
	return network == "tcp" || network == "tcp4" || network == "tcp6"
}

// ownAddr reports whether a (unmapped) is one of the stack's addresses.
func (s *Stack) ownAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a == s.addr || s.addr6.IsValid() && a == s.addr6
}
