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

// Dial opens a TCP connection to address ("198.18.0.1:80"; an IPv4 literal,
// since the stack has no resolver). It waits for the handshake; cancelling
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
	if network != "tcp" && network != "tcp4" {
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	remote, err := parseAddrPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	raddr := tcpAddr(remote)
	if remote.Addr().IsUnspecified() || remote.Port() == 0 {
		return nil, newOpError("dial", nil, raddr, syscall.EADDRNOTAVAIL)
	}
	local := d.LocalAddr
	if !local.IsValid() || local.Addr().IsUnspecified() {
		local = netip.AddrPortFrom(s.addr, local.Port())
	}
	if local.Addr().Unmap() != s.addr {
		// Linux: bind(2) of an address the host does not have.
		return nil, newOpError("dial", tcpAddr(local), raddr, syscall.EADDRNOTAVAIL)
	}
	local = netip.AddrPortFrom(s.addr, local.Port())
	if err := ctx.Err(); err != nil {
		return nil, newOpError("dial", nil, raddr, err)
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
	c := s.newConn(tc)
	for {
		if s.closed {
			s.mu.Unlock()
			return nil, c.opError("dial", net.ErrClosed)
		}
		if tc.Connected() {
			err := tc.HardErr()
			if err == nil && tc.State() == tcpcore.Closed {
				err = syscall.ECONNRESET // closed without a reason: treat as reset
			}
			if err == nil {
				s.unlockFlush()
				return c, nil
			}
			c.discard()
			s.unlockFlush()
			return nil, c.opError("dial", err)
		}
		wake := c.n.wait()
		s.unlockFlush() // sends the SYN
		select {
		case <-wake:
		case <-ctx.Done():
		}
		s.mu.Lock()
		if ctx.Err() != nil && !tc.Connected() {
			c.discard()
			s.unlockFlush()
			return nil, c.opError("dial", ctx.Err())
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

// parseAddrPort parses "ip:port" and ":port" (the unspecified address).
func parseAddrPort(address string) (netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("stack: bad port %q", portStr)
	}
	ip := netip.IPv4Unspecified()
	if host != "" {
		ip, err = netip.ParseAddr(host)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("stack: %q is not an IP address (the stack has no resolver)", host)
		}
		ip = ip.Unmap()
		if !ip.Is4() {
			return netip.AddrPort{}, fmt.Errorf("stack: %v is not IPv4", ip)
		}
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}
