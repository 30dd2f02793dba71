// Package relay terminates TCP connections whatever their destination and
// opens a real connection to that destination for each, as tun2socks-style
// tools do: routes send a host's traffic into a TUN device, a user-space
// stack on the device takes every SYN, and the relay splices the client's
// connection to an outbound one it dialled to the original destination.
//
// The stack side is the Frontend: tunstack's engine (stack.Stack) and
// gVisor's netstack (gvisorstack) each provide one, so the same relay runs
// on both and they are compared on the same link.
package relay

import (
	"net"
	"net/netip"
)

// A Pending is a client's SYN that the stack holds unanswered until the
// relay knows whether the original destination answers: the handshake is
// lazy, so a client never sees "connected" for a destination that refuses.
// Exactly one of Accept or Refuse is called, once.
type Pending interface {
	// Client is the source of the SYN; Target is the destination it was
	// sent to (the address the relay dials).
	Client() netip.AddrPort
	Target() netip.AddrPort
	// Accept answers the SYN with a SYN-ACK and returns the connection
	// once the handshake completes. It fails if the client gave up or
	// the handshake does not complete; the relay then closes its
	// outbound leg.
	Accept() (net.Conn, error)
	// Refuse answers the SYN as the destination's failure deserves: a
	// reset, or an ICMP destination unreachable, so that the client's
	// connect fails at once with the matching error.
	Refuse(Refusal)
}

// A Refusal is how a held SYN is refused.
type Refusal int

const (
	// RefuseReset answers with RST: the client sees "connection
	// refused" (ECONNREFUSED), as when the destination itself resets.
	RefuseReset Refusal = iota
	// RefuseHostUnreachable answers with ICMP destination unreachable,
	// code host unreachable (ICMPv6: address unreachable): "no route
	// to host" (EHOSTUNREACH).
	RefuseHostUnreachable
	// RefuseNetUnreachable answers with ICMP network unreachable
	// (ICMPv6: no route to destination): ENETUNREACH.
	RefuseNetUnreachable
	// RefuseDrop answers nothing: the client retransmits its SYN and
	// times out, as through a destination that never answers. Used only
	// when the relay is told to (a full --max-conns may refuse instead).
	RefuseDrop
)

// A Frontend takes SYNs for any destination in the routed prefixes and
// hands each to the relay as a Pending.
type Frontend interface {
	// Intercept starts taking SYNs to any address and port inside
	// prefixes (both families may be given) and calls handle for each in
	// its own goroutine. The SYN queue, SYN cookies and their counters
	// apply as to a listener. It returns once interception is set up.
	Intercept(prefixes []netip.Prefix, handle func(Pending)) error
	// Close stops taking SYNs; connections already handed out stay open.
	Close() error
}
