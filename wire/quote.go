package wire

// QuotedUpper reads the invoking packet an ICMP or ICMPv6 error quotes
// (RFC 792: the IP header and at least 8 bytes of its data; RFC 4443
// §2.4(c): as much of it as fits in the minimum MTU): the addresses of
// either family, the upper-layer protocol and what the quote holds of the
// upper-layer header, which may be truncated. For IPv6 the extension
// headers are skipped without being judged, as Linux's
// ipv6_skip_exthdr() does for a quote; a quote of a non-first fragment
// carries no upper-layer header and is not ok. ok is false when the quote
// is no IPv4 or IPv6 header, or holds fewer than 8 bytes of upper-layer
// data (the ports and a TCP sequence number need 8).
func QuotedUpper(q []byte) (u IPUpper, ok bool) {
	if len(q) < 1 {
		return IPUpper{}, false
	}
	switch q[0] >> 4 {
	case 4:
		p := IPv4(q)
		if len(q) < IPv4HeaderLen {
			return IPUpper{}, false
		}
		hl := p.HeaderLen()
		if hl < IPv4HeaderLen || hl+8 > len(q) || p.FlagsFrag()&0x1fff != 0 {
			return IPUpper{}, false
		}
		return IPUpper{Src: p.SrcAddr(), Dst: p.DstAddr(), Proto: p.Protocol(), Data: q[hl:]}, true
	case 6:
		if len(q) < IPv6HeaderLen {
			return IPUpper{}, false
		}
		p := IPv6(q)
		proto, off, _, good := skipExtHeaders(q)
		if !good || proto == ProtoFragment || off+8 > len(q) {
			return IPUpper{}, false
		}
		return IPUpper{Src: p.SrcAddr(), Dst: p.DstAddr(), Proto: proto, Data: q[off:]}, true
	}
	return IPUpper{}, false
}
