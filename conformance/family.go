package conformance

import (
	"fmt"
	"net/netip"

	"tunstack/wire"

	"golang.org/x/sys/unix"
)

// Both IP families. A script is run with IPv4 or IPv6 on the wire
// (--ip_version): the packets the runner builds and the packets it reads
// are of that family, and everything that differs between the two headers
// is gathered here. What a script writes about a packet's IP header means
// the same in both, as in packetdrill: (tos N) and [ect0] are the IPv4 TOS
// byte or the IPv6 Traffic Class (RFC 8200 §7: the same DSCP and ECN bits,
// RFC 3168 §5), (ttl N) the TTL or the Hop Limit, and (flowlabel N) is
// IPv6's only.

// ipHdr is the IP header of a TCP packet of either family.
type ipHdr struct {
	v6        bool
	src, dst  netip.Addr
	tos       uint8  // IPv4 TOS, IPv6 Traffic Class
	ttl       uint8  // IPv4 TTL, IPv6 Hop Limit
	flowLabel uint32 // IPv6 only
	hdrLen    int    // 20 or 40: no IPv4 options, no IPv6 extension headers
}

// ipTCP reads pkt as an IPv4 or IPv6 packet whose payload is a TCP
// segment, with no IPv4 options or fragmentation and no IPv6 extension
// headers (no stack compared here puts either on a TCP segment, nor do the
// scripts); ok is false for anything else.
func ipTCP(pkt []byte) (ipHdr, wire.TCP, bool) {
	if len(pkt) == 0 {
		return ipHdr{}, nil, false
	}
	var h ipHdr
	var payload []byte
	switch pkt[0] >> 4 {
	case 4:
		ip := wire.IPv4(pkt)
		if ip.Valid() != nil || ip.Protocol() != wire.ProtoTCP || ip.IsFragment() || ip.HeaderLen() != wire.IPv4HeaderLen {
			return ipHdr{}, nil, false
		}
		h = ipHdr{src: ip.SrcAddr(), dst: ip.DstAddr(), tos: ip.TOS(), ttl: ip.TTL(), hdrLen: wire.IPv4HeaderLen}
		payload = ip.Payload()
	case 6:
		ip := wire.IPv6(pkt)
		if ip.Valid() != nil || ip.NextHeader() != wire.ProtoTCP {
			return ipHdr{}, nil, false
		}
		h = ipHdr{v6: true, src: ip.SrcAddr(), dst: ip.DstAddr(), tos: ip.TrafficClass(), ttl: ip.HopLimit(),
			flowLabel: ip.FlowLabel(), hdrLen: wire.IPv6HeaderLen}
		payload = ip.Payload()
	default:
		return ipHdr{}, nil, false
	}
	t := wire.TCP(payload)
	if t.Valid() != nil {
		return ipHdr{}, nil, false
	}
	return h, t, true
}

// ipHeaderLen is the IP header in front of a TCP segment between
// addresses of a's family: 20 bytes for IPv4, 40 for IPv6.
func ipHeaderLen(a netip.Addr) int {
	if a.Is4() {
		return wire.IPv4HeaderLen
	}
	return wire.IPv6HeaderLen
}

// ipFields is what putIPHeader writes.
type ipFields struct {
	src, dst  netip.Addr // both IPv4 or both IPv6
	tos, ttl  uint8
	flowLabel uint32
	ipID      uint16 // IPv4 only: IPv6 has no identification outside a fragment header (RFC 8200 §4.5)
}

// putIPHeader writes the IP header of a TCP packet of segLen bytes at the
// start of b, ipHeaderLen(f.src) long, in f.src's family: IPv4 with DF set
// and its checksum, or IPv6 with the Next Header TCP.
func putIPHeader(b []byte, f ipFields, segLen int) {
	if f.src.Is4() {
		wire.PutIPv4Header(b, wire.IPv4Fields{Src: f.src.As4(), Dst: f.dst.As4(), Protocol: wire.ProtoTCP,
			TTL: f.ttl, TOS: f.tos, ID: f.ipID, DontFrag: true}, segLen)
		return
	}
	wire.PutIPv6Header(b, wire.IPv6Fields{Src: f.src.As16(), Dst: f.dst.As16(), NextHeader: wire.ProtoTCP,
		HopLimit: f.ttl, TrafficClass: f.tos, FlowLabel: f.flowLabel}, segLen)
}

// setIPLength sets the length fields of the IP header at the start of b
// (of the family of its version nibble) for a packet of len(b) bytes, and
// recomputes an IPv4 header's checksum.
func setIPLength(b []byte) {
	if b[0]>>4 == 6 {
		wire.IPv6(b).SetPayloadLen(len(b) - wire.IPv6HeaderLen)
		return
	}
	wire.IPv4(b).SetTotalLen(len(b))
}

// flowLabels pairs the flow labels a script writes on outbound IPv6
// packets with the ones the stack chose, as packetdrill does: a script
// cannot know a stack's (random) label, so the first labelled line binds
// its label to the stack's; a later line with the same label expects the
// same one, a line with another label a different one (the stack changed
// its label, as Linux does on a retransmission timeout, RFC 6437 §3 leaving
// it free to). Unlabelled lines (label 0) are not checked, and an IPv4
// packet has no label. packetdrill keeps the pair per socket; the runner
// keeps one per run, as scripts test one socket at a time.
type flowLabels struct{ script, live uint32 }

// check compares a packet's label live with the script's; "" when it fits.
func (f *flowLabels) check(script, live uint32) string {
	switch {
	case live == 0:
		return "flowlabel unmarked in the packet"
	case f.script == 0, script != f.script && live != f.live:
		f.script, f.live = script, live
		return ""
	case script != f.script:
		return "expected a different flowlabel but got the same"
	case live != f.live:
		return fmt.Sprintf("inconsistent flowlabels: expected %#x, got %#x", f.live, live)
	}
	return ""
}

// socketDomain is the domain of the run's sockets and its name, what a
// socket() whose domain is "..." gets (packetdrill's socket_domain):
// AF_INET6 for ipv6 and ipv4-mapped-ipv6 (family6), else AF_INET.
func socketDomain(family6 bool) (int, string) {
	if family6 {
		return unix.AF_INET6, "AF_INET6"
	}
	return unix.AF_INET, "AF_INET"
}
