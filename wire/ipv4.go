package wire

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// IP protocol numbers used here.
const (
	ProtoICMP = 1
	ProtoTCP  = 6
	ProtoUDP  = 17
)

// IPv4HeaderLen is the length of an IPv4 header without options.
const IPv4HeaderLen = 20

// IPv4 is a view over an IPv4 packet. Check Valid before using accessors.
type IPv4 []byte

// ErrMalformed reports a packet whose header lengths do not add up.
var ErrMalformed = errors.New("wire: malformed packet")

// Valid checks version, header length, total length and the header checksum.
func (p IPv4) Valid() error {
	if len(p) < IPv4HeaderLen || p[0]>>4 != 4 {
		return ErrMalformed
	}
	hl := p.HeaderLen()
	tl := int(p.TotalLen())
	if hl < IPv4HeaderLen || hl > len(p) || tl < hl || tl > len(p) {
		return ErrMalformed
	}
	if Fold(Checksum(p[:hl], 0)) != 0 {
		return errors.New("wire: bad IPv4 header checksum")
	}
	return nil
}

func (p IPv4) HeaderLen() int      { return int(p[0]&0x0f) * 4 }
func (p IPv4) TOS() uint8          { return p[1] }
func (p IPv4) TotalLen() uint16    { return binary.BigEndian.Uint16(p[2:]) }
func (p IPv4) ID() uint16          { return binary.BigEndian.Uint16(p[4:]) }
func (p IPv4) FlagsFrag() uint16   { return binary.BigEndian.Uint16(p[6:]) }
func (p IPv4) TTL() uint8          { return p[8] }
func (p IPv4) Protocol() uint8     { return p[9] }
func (p IPv4) Src() [4]byte        { return [4]byte(p[12:16]) }
func (p IPv4) Dst() [4]byte        { return [4]byte(p[16:20]) }
func (p IPv4) SrcAddr() netip.Addr { return netip.AddrFrom4(p.Src()) }
func (p IPv4) DstAddr() netip.Addr { return netip.AddrFrom4(p.Dst()) }
func (p IPv4) Payload() []byte     { return p[p.HeaderLen():p.TotalLen()] }

// IsFragment reports whether the packet is part of a fragmented datagram
// (More Fragments set or a non-zero offset). Fragments are not reassembled.
func (p IPv4) IsFragment() bool { return p.FlagsFrag()&0x3fff != 0 }

// IPv4Fields are the values PutIPv4Header writes.
type IPv4Fields struct {
	Src, Dst [4]byte
	Protocol uint8
	TTL      uint8
	ID       uint16
	TOS      uint8
	DontFrag bool
}

// PutIPv4Header writes a 20-byte IPv4 header for a payload of payloadLen
// bytes into b[:20] and computes its checksum.
func PutIPv4Header(b []byte, f IPv4Fields, payloadLen int) {
	_ = b[IPv4HeaderLen-1]
	b[0] = 0x45
	b[1] = f.TOS
	binary.BigEndian.PutUint16(b[2:], uint16(IPv4HeaderLen+payloadLen))
	binary.BigEndian.PutUint16(b[4:], f.ID)
	var ff uint16
	if f.DontFrag {
		ff = 0x4000
	}
	binary.BigEndian.PutUint16(b[6:], ff)
	b[8] = f.TTL
	b[9] = f.Protocol
	b[10], b[11] = 0, 0
	copy(b[12:16], f.Src[:])
	copy(b[16:20], f.Dst[:])
	binary.BigEndian.PutUint16(b[10:], Fold(Checksum(b[:IPv4HeaderLen], 0)))
}

// SetTotalLen sets the Total Length to n and recomputes the header
// checksum, for a packet whose payload was cut or joined after its header
// was written.
func (p IPv4) SetTotalLen(n int) {
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	p[10], p[11] = 0, 0
	binary.BigEndian.PutUint16(p[10:], Fold(Checksum(p[:p.HeaderLen()], 0)))
}
