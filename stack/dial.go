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
// syscall.ECONNREFUSED, a handshake that timed out syscall.ETIMEDOUT.
func (s *Stack) Dial(ctx context.Context, network, address string) (net.Conn, error) {
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
	if err := ctx.Err(); err != nil {
		return nil, newOpError("dial", nil, raddr, err)
	}

	s.mu.Lock()
	if err := s.checkOpen(); err != nil {
		s.mu.Unlock()
		return nil, newOpError("dial", nil, raddr, err)
	}
	tc, err := s.e.Connect(s.now(), netip.AddrPortFrom(s.addr, 0), remote, tcpcore.SockOpts{NoDelay: true})
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
