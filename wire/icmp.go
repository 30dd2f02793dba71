package wire

import (
	"encoding/binary"
	"errors"
)

// ICMPv4 message types used here (RFC 792).
const (
	ICMPEchoReply       = 0
	ICMPDestUnreachable = 3
	ICMPEchoRequest     = 8
)

// ICMPv4 Destination Unreachable codes (RFC 792, RFC 1122 §3.2.2.1).
const (
	ICMPNetUnreachable  = 0
	ICMPHostUnreachable = 1
	ICMPPortUnreachable = 3
)

// ICMPv4HeaderLen is the length of an ICMPv4 header: type, code,
// checksum and the 4-byte word that follows (unused in a Destination
// Unreachable).
const ICMPv4HeaderLen = 8

// icmpv4MaxError is the size an ICMPv4 error is kept within (RFC 1812
// §4.3.2.3: as much of the invoking datagram as fits in 576 bytes).
const icmpv4MaxError = 576

// ErrICMPShortBuffer is returned by PutICMPv4DestUnreachable for an out
// that cannot hold the error.
var ErrICMPShortBuffer = errors.New("wire: output buffer too small for the ICMP error: give it 576 bytes")

// ICMPv4 is a view over an ICMPv4 message (the IPv4 payload).
type ICMPv4 []byte

func (m ICMPv4) Type() uint8 { return m[0] }
func (m ICMPv4) Code() uint8 { return m[1] }

// Valid checks the minimum length and the checksum.
func (m ICMPv4) Valid() bool {
	return len(m) >= 8 && Fold(Checksum(m, 0)) == 0
}

// SetChecksum recomputes the message checksum in place.
func (m ICMPv4) SetChecksum() {
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], Fold(Checksum(m, 0)))
}

// PutICMPv4DestUnreachable writes into out an IPv4 packet from src, with
// the given TTL, to invoking's source, carrying an ICMP Destination
// Unreachable of the given code about invoking, and returns its length.
// The message quotes invoking's header and as much of its data (up to its
// Total Length) as keeps the error within 576 bytes: RFC 792 asks for the
// header and 64 bits of data, RFC 1812 §4.3.2.3 for as much as fits. It
// writes nothing and returns ErrMalformed for an invoking shorter than an
// IPv4 header, ErrICMPShortBuffer for an out that cannot hold the whole
// error (576 bytes always can).
func PutICMPv4DestUnreachable(out []byte, src [4]byte, ttl uint8, invoking IPv4, code uint8) (int, error) {
	if len(invoking) < IPv4HeaderLen {
		return 0, ErrMalformed
	}
	q := []byte(invoking)
	if l := int(invoking.TotalLen()); l < len(q) {
		q = q[:l]
	}
	q = q[:min(len(q), icmpv4MaxError-IPv4HeaderLen-ICMPv4HeaderLen)]
	n := IPv4HeaderLen + ICMPv4HeaderLen + len(q)
	if len(out) < n {
		return 0, ErrICMPShortBuffer
	}
	PutIPv4Header(out, IPv4Fields{Src: src, Dst: invoking.Src(), Protocol: ProtoICMP, TTL: ttl}, n-IPv4HeaderLen)
	m := ICMPv4(out[IPv4HeaderLen:n])
	clear(m[:ICMPv4HeaderLen])
	m[0], m[1] = ICMPDestUnreachable, code
	copy(m[ICMPv4HeaderLen:], q)
	m.SetChecksum()
	return n, nil
}
