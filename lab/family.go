package lab

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"tunstack/wire"
)

// linkAddrs are a topology's addresses in one IP family: the link's
// prefix, the kernel clients' side and the server's.
type linkAddrs struct {
	family         int // 4 or 6
	net            netip.Prefix
	client, server netip.Addr
}

// The IPv6 link is serve's unique local prefix (RFC 4193), the clients
// its first address and the server its second, as in IPv4.
var (
	addrs4 = linkAddrs{4, linkNet, clientAddr, serverAddr}
	addrs6 = linkAddrs{6, netip.MustParsePrefix("fd00:7475:6e73::/64"), netip.MustParseAddr("fd00:7475:6e73::1"), netip.MustParseAddr("fd00:7475:6e73::2")}
)

// checkFamily accepts 0 (IPv4), 4 and 6.
func checkFamily(f int) error {
	switch f {
	case 0, 4, 6:
		return nil
	}
	return fmt.Errorf("lab: unknown IP family %d; use 4 or 6", f)
}

// addrsFor is the topology's addresses in family f (0 is IPv4).
func addrsFor(f int) linkAddrs {
	if f == 6 {
		return addrs6
	}
	return addrs4
}

// tcpNetwork is Go's network name for TCP in a's family.
func tcpNetwork(a netip.Addr) string {
	if a.Is4() {
		return "tcp4"
	}
	return "tcp6"
}

// socketDomain is socket(2)'s domain for a's family.
func socketDomain(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// sockaddrOf is ap for bind(2) and connect(2).
func sockaddrOf(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// sockaddrPort is the port of an IPv4 or IPv6 socket address; 0 for
// another kind.
func sockaddrPort(sa unix.Sockaddr) uint16 {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return uint16(a.Port)
	case *unix.SockaddrInet6:
		return uint16(a.Port)
	}
	return 0
}

// ipTCP finds the TCP segment in a captured IPv4 or IPv6 packet: its
// addresses and the segment, header and payload, as far as the IP header
// says it goes. ok is false for anything else, IPv6 with extension headers
// before TCP included (no stack under test sends them, and the kernel's
// MLD reports, which carry a hop-by-hop header, are not TCP).
func ipTCP(data []byte) (src, dst netip.Addr, seg wire.TCP, ok bool) {
	if len(data) == 0 {
		return src, dst, nil, false
	}
	switch data[0] >> 4 {
	case 4:
		ip := wire.IPv4(data)
		if ip.Valid() != nil || ip.Protocol() != wire.ProtoTCP {
			return src, dst, nil, false
		}
		seg = wire.TCP(ip.Payload())
		src, dst = ip.SrcAddr(), ip.DstAddr()
	case 6:
		ip := wire.IPv6(data)
		if ip.Valid() != nil || ip.NextHeader() != wire.ProtoTCP {
			return src, dst, nil, false
		}
		seg = wire.TCP(ip.Payload())
		src, dst = ip.SrcAddr(), ip.DstAddr()
	default:
		return src, dst, nil, false
	}
	if seg.Valid() != nil {
		return src, dst, nil, false
	}
	return src, dst, seg, true
}
