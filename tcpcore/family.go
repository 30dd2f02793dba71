package tcpcore

import (
	"encoding/binary"
	"net/netip"

	"tunstack/wire"
)

// Address families. The engine runs IPv4 and IPv6 connections side by
// side; what differs between them is gathered here: which addresses it
// takes, the header sizes behind the MSS and the path MTU floor, how bound
// addresses overlap, and the SYN-cookie MSS table. The representation of
// dual-stack sockets is described in the package documentation (engine.go).

// ipv6MinAdvMSS is the least MSS an IPv6 connection advertises: the IPv6
// minimum link MTU less the IPv6 and TCP headers (RFC 8200 §5: 1280 - 60).
// Linux behaviour: ip6_default_advmss() raises the route's MSS to the
// sysctl ip6_rt_min_advmss, which defaults to IPV6_MIN_MTU - 20 - 40.
const ipv6MinAdvMSS = wire.IPv6MinMTU - wire.IPv6HeaderLen - wire.TCPHeaderLen

// ipv4MinPMTU is the least path MTU an IPv4 connection takes from an ICMP
// Fragmentation Needed. Linux behaviour: __ip_rt_update_pmtu() raises a
// smaller next-hop MTU to the sysctl min_pmtu, 552 by default (512 + 40),
// so a forged or broken ICMP cannot shrink segments to nothing.
const ipv4MinPMTU = 552

// plainAddr reports whether a is an address the engine keys connections
// by: IPv4, or IPv6 that is not IPv4-mapped and has no zone.
func plainAddr(a netip.Addr) bool {
	return a.Is4() || (a.Is6() && !a.Is4In6() && a.Zone() == "")
}

// unmapAddr takes an address an application gave: an IPv4-mapped IPv6
// address (::ffff:a.b.c.d) is the IPv4 address it maps, reported mapped
// again to the application (mapped true), as a Linux IPv6 socket reaches
// IPv4 through such addresses. ok is false for an address the engine
// cannot use (invalid, zoned).
func unmapAddr(a netip.Addr) (u netip.Addr, mapped, ok bool) {
	if a.Is4In6() {
		a, mapped = a.Unmap(), true
	}
	return a, mapped, plainAddr(a)
}

// mapAddr is the form of ap an application that reached it through an
// IPv6 socket sees: IPv4 addresses as IPv4-mapped IPv6 ones.
func mapAddr(ap netip.AddrPort, mapped bool) netip.AddrPort {
	if !mapped || !ap.Addr().Is4() {
		return ap
	}
	return netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
}

// ipHeaderLen is the network header in front of a segment of the family
// of a: 20 for IPv4, 40 for IPv6 (no options nor extension headers are
// sent).
func ipHeaderLen(a netip.Addr) int {
	if a.Is4() {
		return wire.IPv4HeaderLen
	}
	return wire.IPv6HeaderLen
}

// linkMSS is the MSS the engine advertises for a connection of the family
// of a: the link MTU less the network and TCP headers, at least
// ipv6MinAdvMSS for IPv6.
func (e *Engine) linkMSS(a netip.Addr) int {
	if a.Is4() {
		return e.ourMSS
	}
	return e.ourMSS6
}

// defaultPeerMSS is the send MSS a connection of the family of a assumes
// when the peer's SYN carries no MSS option: RFC 9293 §3.7.1, 536 for IPv4
// (the profile's DefaultSendMSS) and 1220 for IPv6 (the IPv6 minimum MTU
// less 60). Linux behaviour: tcp_v6_connect() and the IPv6 request sock
// ops set mss_clamp to IPV6_MIN_MTU - 60 where IPv4 has TCP_MSS_DEFAULT.
func (e *Engine) defaultPeerMSS(a netip.Addr) int {
	if a.Is4() {
		return e.prof.DefaultSendMSS
	}
	return ipv6MinAdvMSS
}

// linkPMTU is the path MTU a connection of the family of a starts with:
// the link MTU, and for IPv6 at least the minimum link MTU (RFC 8200 §5),
// which is all an IPv6 link may offer.
func (e *Engine) linkPMTU(a netip.Addr) int {
	if a.Is4() {
		return e.cfg.MTU
	}
	return max(e.cfg.MTU, wire.IPv6MinMTU)
}

// overlaps reports whether sockets of two bind classes can receive the
// same segments (Linux inet_rcv_saddr_equal with both wildcards matching).
// Within a family: equal addresses, or either is the wildcard. Across
// families only an IPv6 wildcard that is not IPV6_V6ONLY overlaps, with
// every IPv4 address: Linux behaviour (ipv4_rcv_saddr_equal,
// ipv6_rcv_saddr_equal): such a socket receives IPv4 too, while an IPv6
// socket bound to a specific (unmapped) address is made IPV6_V6ONLY by
// __inet6_bind() and never does.
func overlaps(a, b bindClass) bool {
	if a.addr.Is4() == b.addr.Is4() {
		return a.addr == b.addr || a.addr.IsUnspecified() || b.addr.IsUnspecified()
	}
	v6 := a
	if a.addr.Is4() {
		v6 = b
	}
	return v6.dualStack()
}

// dualStack reports whether a socket of this class receives IPv4 as well:
// bound to the IPv6 wildcard without IPV6_V6ONLY.
func (b bindClass) dualStack() bool {
	return b.addr.Is6() && b.addr.IsUnspecified() && !b.v6only
}

// cookieMSS4 and cookieMSS6 are the MSS values a SYN cookie can name, per
// family (Linux msstab in syncookies.c and in ipv6/syncookies.c: the IPv6
// table starts at the IPv6 minimum MTU less 60).
var (
	cookieMSS4 = [...]int{536, 1300, 1440, 1460}
	cookieMSS6 = [...]int{1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60}
)

// cookieTable is the MSS table of the family of a.
func cookieTable(a netip.Addr) []int {
	if a.Is4() {
		return cookieMSS4[:]
	}
	return cookieMSS6[:]
}

// hashAddr folds an address into 32 bits for reuseportHash: IPv4 as is;
// IPv6 as the XOR of its four words, as Linux's ipv6_addr_hash() folds an
// address before its jhash.
func hashAddr(a netip.Addr) uint32 {
	if a.Is4() {
		b := a.As4()
		return binary.BigEndian.Uint32(b[:])
	}
	b := a.As16()
	return binary.BigEndian.Uint32(b[0:]) ^ binary.BigEndian.Uint32(b[4:]) ^
		binary.BigEndian.Uint32(b[8:]) ^ binary.BigEndian.Uint32(b[12:])
}
