package wire

import "encoding/binary"

// ICMPv4 message types used here (RFC 792).
const (
	ICMPEchoReply       = 0
	ICMPDestUnreachable = 3
	ICMPEchoRequest     = 8
)

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
