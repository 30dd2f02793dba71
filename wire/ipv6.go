package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// IPv6 Next Header values (RFC 8200 §4 and the IANA protocol numbers):
// the extension headers the walk in ipv6_ext.go reads, and the upper
// layers it stops at. TCP (ProtoTCP) is the same value in both families.
const (
	ProtoHopByHop     = 0  // Hop-by-Hop Options header (RFC 8200 §4.3)
	ProtoRouting      = 43 // Routing header (RFC 8200 §4.4)
	ProtoFragment     = 44 // Fragment header (RFC 8200 §4.5)
	ProtoICMPv6       = 58 // ICMPv6 (RFC 4443)
	ProtoNoNextHeader = 59 // nothing follows (RFC 8200 §4.7)
	ProtoDestOpts     = 60 // Destination Options header (RFC 8200 §4.6)
)

// IPv6HeaderLen is the length of the fixed IPv6 header (RFC 8200 §3).
const IPv6HeaderLen = 40

// IPv6MinMTU is the smallest link MTU IPv6 allows (RFC 8200 §5): every link
// carries a 1280-byte packet, so an ICMPv6 error that fits in it always
// reaches its destination (RFC 4443 §2.4(c)).
const IPv6MinMTU = 1280

// IPv6MaxPayloadLen is the largest Payload Length the fixed header can
// state. Jumbograms (RFC 2675), which say 0 there and carry the length in a
// hop-by-hop option, are not supported: a TUN device's MTU is at most
// 65535, so none can arrive.
const IPv6MaxPayloadLen = 65535

// Errors of the fixed header. Each wraps ErrMalformed.
var (
	ErrIPv6Short     = fmt.Errorf("%w: IPv6 packet shorter than the 40-byte fixed header", ErrMalformed)
	ErrIPv6Version   = fmt.Errorf("%w: IP version field is not 6", ErrMalformed)
	ErrIPv6Truncated = fmt.Errorf("%w: IPv6 Payload Length runs past the end of the packet", ErrMalformed)
)

// IPv6 is a view over an IPv6 packet: the fixed header, the extension
// headers and the upper-layer data. Check Valid before using accessors;
// WalkExtensionHeaders (ipv6_ext.go) finds the upper-layer header.
type IPv6 []byte

// Valid checks the version, that the fixed header is there, and that the
// Payload Length fits in the slice (RFC 8200 §3).
func (p IPv6) Valid() error {
	if len(p) < IPv6HeaderLen {
		return ErrIPv6Short
	}
	if p[0]>>4 != 6 {
		return ErrIPv6Version
	}
	if IPv6HeaderLen+int(p.PayloadLen()) > len(p) {
		// Linux behaviour: ip6_rcv_core(): a packet shorter than its
		// Payload Length is dropped (counted as truncated).
		return ErrIPv6Truncated
	}
	return nil
}

// TrafficClass is the 8-bit Traffic Class (RFC 8200 §7): DSCP and ECN.
func (p IPv6) TrafficClass() uint8 { return p[0]<<4 | p[1]>>4 }

// FlowLabel is the 20-bit Flow Label (RFC 8200 §6).
func (p IPv6) FlowLabel() uint32 { return binary.BigEndian.Uint32(p[0:]) & 0x000fffff }

func (p IPv6) PayloadLen() uint16  { return binary.BigEndian.Uint16(p[4:]) }
func (p IPv6) NextHeader() uint8   { return p[6] }
func (p IPv6) HopLimit() uint8     { return p[7] }
func (p IPv6) Src() [16]byte       { return [16]byte(p[8:24]) }
func (p IPv6) Dst() [16]byte       { return [16]byte(p[24:40]) }
func (p IPv6) SrcAddr() netip.Addr { return netip.AddrFrom16(p.Src()) }
func (p IPv6) DstAddr() netip.Addr { return netip.AddrFrom16(p.Dst()) }

// Payload is everything after the fixed header up to the Payload Length:
// the extension headers and the upper-layer data. Bytes beyond the Payload
// Length (a link's padding) are not part of it, as Linux trims them
// (ip6_rcv_core() calls pskb_trim_rcsum() to 40 + Payload Length).
func (p IPv6) Payload() []byte { return p[IPv6HeaderLen : IPv6HeaderLen+int(p.PayloadLen())] }

// Packet is the packet without the bytes beyond the Payload Length, the
// part an ICMPv6 error quotes and the walk reads.
func (p IPv6) Packet() IPv6 { return p[:IPv6HeaderLen+int(p.PayloadLen())] }

// IPv6Fields are the values PutIPv6Header writes.
type IPv6Fields struct {
	Src, Dst     [16]byte
	NextHeader   uint8
	HopLimit     uint8
	TrafficClass uint8
	FlowLabel    uint32 // the low 20 bits are written
}

// PutIPv6Header writes the 40-byte fixed header for a payload (extension
// headers and upper-layer data) of payloadLen bytes, at most
// IPv6MaxPayloadLen, into b[:40]. IPv6 has no header checksum (RFC 8200 §3:
// the upper layers' pseudo-header covers the addresses).
func PutIPv6Header(b []byte, f IPv6Fields, payloadLen int) {
	_ = b[IPv6HeaderLen-1]
	binary.BigEndian.PutUint32(b[0:], 6<<28|uint32(f.TrafficClass)<<20|f.FlowLabel&0x000fffff)
	binary.BigEndian.PutUint16(b[4:], uint16(payloadLen))
	b[6] = f.NextHeader
	b[7] = f.HopLimit
	copy(b[8:24], f.Src[:])
	copy(b[24:40], f.Dst[:])
}

// SetPayloadLen sets the Payload Length to n, for a packet whose payload
// was cut or joined after its header was written (there is no header
// checksum to redo).
func (p IPv6) SetPayloadLen(n int) { binary.BigEndian.PutUint16(p[4:], uint16(n)) }

// IPUpper is the upper-layer part of an IP packet of either family, what
// an engine handling both wants: the addresses, the protocol, and the
// upper-layer header with its data. IPv4.Upper and IPv6Chain.Upper make
// one.
type IPUpper struct {
	Src, Dst netip.Addr
	Proto    uint8
	Data     []byte
}

// PseudoHeaderSum is the checksum contribution of the pseudo-header for
// Data: RFC 9293 §3.1's for IPv4, RFC 8200 §8.1's for IPv6.
func (u IPUpper) PseudoHeaderSum() uint32 {
	return PseudoHeaderSumAddr(u.Src, u.Dst, u.Proto, len(u.Data))
}

// Upper is the IPv4 packet's upper-layer part. Check Valid first.
func (p IPv4) Upper() IPUpper {
	return IPUpper{Src: p.SrcAddr(), Dst: p.DstAddr(), Proto: p.Protocol(), Data: p.Payload()}
}
