// Package wire holds zero-copy views over IPv4, ICMP and TCP headers and the
// Internet checksum. It is a leaf package: every layer that reads or writes a
// packet (netif, tcpcore, the conformance runner) shares this one codec.
package wire

import "encoding/binary"

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
