// Package wire holds zero-copy views over IPv4, IPv6 (with its extension
// headers), ICMP, ICMPv6 and TCP headers and the Internet checksum. It is a
// leaf package: every layer that reads or writes a packet (netif, tcpcore,
// the conformance runner) shares this one codec.
package wire

import (
	"encoding/binary"
	"net/netip"
)

// Checksum folds the one's-complement sum of b into initial (RFC 1071) and
// returns the unfolded 32-bit accumulator; call Fold to finish.
func Checksum(b []byte, initial uint32) uint32 {
	sum := uint64(initial)
	for len(b) >= 32 {
		sum += uint64(binary.BigEndian.Uint32(b[0:])) + uint64(binary.BigEndian.Uint32(b[4:])) +
			uint64(binary.BigEndian.Uint32(b[8:])) + uint64(binary.BigEndian.Uint32(b[12:])) +
			uint64(binary.BigEndian.Uint32(b[16:])) + uint64(binary.BigEndian.Uint32(b[20:])) +
			uint64(binary.BigEndian.Uint32(b[24:])) + uint64(binary.BigEndian.Uint32(b[28:]))
		b = b[32:]
	}
	for len(b) >= 4 {
		sum += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	for sum>>32 != 0 {
		sum = (sum & 0xffffffff) + (sum >> 32)
	}
	return uint32(sum)
}

// Fold reduces a Checksum accumulator to the 16-bit one's-complement sum and
// complements it, giving the value to store in a header.
func Fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return ^uint16(sum)
}

// PseudoHeaderSum is the checksum contribution of the IPv4 pseudo-header
// (RFC 9293 §3.1) for a transport segment of the given length.
func PseudoHeaderSum(src, dst [4]byte, proto uint8, length int) uint32 {
	sum := uint32(binary.BigEndian.Uint16(src[0:])) + uint32(binary.BigEndian.Uint16(src[2:])) +
		uint32(binary.BigEndian.Uint16(dst[0:])) + uint32(binary.BigEndian.Uint16(dst[2:])) +
		uint32(proto) + uint32(length)
	return sum
}

// PseudoHeaderSum6 is the checksum contribution of the IPv6 pseudo-header
// (RFC 8200 §8.1) for an upper-layer packet of the given length, the
// length the upper-layer header and data have (not the IPv6 Payload
// Length, which also counts extension headers): the source and
// destination addresses, the length as 32 bits and the Next Header value
// of the upper layer, zero-padded to 32 bits. TCP (RFC 9293 §3.1) and
// ICMPv6 (RFC 4443 §2.3) both use it.
func PseudoHeaderSum6(src, dst [16]byte, proto uint8, length int) uint32 {
	var sum uint32
	for i := 0; i < 16; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(src[i:])) + uint32(binary.BigEndian.Uint16(dst[i:]))
	}
	return sum + uint32(length)>>16 + uint32(length)&0xffff + uint32(proto)
}

// PseudoHeaderSumAddr is the pseudo-header's checksum contribution for
// either family: PseudoHeaderSum when both addresses are IPv4, else
// PseudoHeaderSum6 over their 16-byte forms (an IPv4-mapped IPv6 address
// such as ::ffff:192.0.2.1 is an IPv6 address on the wire, and is summed as
// one). Zones are ignored. src and dst are of one family in every packet.
func PseudoHeaderSumAddr(src, dst netip.Addr, proto uint8, length int) uint32 {
	if src.Is4() && dst.Is4() {
		return PseudoHeaderSum(src.As4(), dst.As4(), proto, length)
	}
	return PseudoHeaderSum6(src.As16(), dst.As16(), proto, length)
}
