package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ICMPv6 message types (RFC 4443 §2.1; RFC 4861 §4 for neighbour
// discovery, RFC 3810 §5.2 for MLDv2). Types below 128 are errors.
const (
	ICMPv6DestUnreachable  = 1
	ICMPv6PacketTooBig     = 2
	ICMPv6TimeExceeded     = 3
	ICMPv6ParameterProblem = 4
	ICMPv6EchoRequest      = 128
	ICMPv6EchoReply        = 129
	ICMPv6RouterSolicit    = 133
	ICMPv6NeighborSolicit  = 135
	ICMPv6NeighborAdvert   = 136
	ICMPv6Redirect         = 137
	ICMPv6MLDv2Report      = 143
)

// Destination Unreachable codes (RFC 4443 §3.1).
const (
	ICMPv6NoRoute            = 0
	ICMPv6AdminProhibited    = 1
	ICMPv6BeyondScope        = 2
	ICMPv6AddressUnreachable = 3
	ICMPv6PortUnreachable    = 4
)

// Parameter Problem codes (RFC 4443 §3.4).
const (
	ICMPv6ErroneousHeaderField   = 0
	ICMPv6UnrecognizedNextHeader = 1
	ICMPv6UnrecognizedOption     = 2
)

// ICMPv6HeaderLen is the length of the part of an ICMPv6 message this
// package reads: type, code, checksum and the 4-byte word every message
// type here starts its body with (echo identifier and sequence, MTU,
// pointer, or unused). Linux behaviour: icmpv6_rcv(): a shorter message is
// dropped.
const ICMPv6HeaderLen = 8

// icmpv6MaxQuote is the most of an invoking packet an ICMPv6 error quotes:
// what fits, after the error's own IPv6 and ICMPv6 headers, in the minimum
// MTU (RFC 4443 §2.4(c)).
const icmpv6MaxQuote = IPv6MinMTU - IPv6HeaderLen - ICMPv6HeaderLen

// ErrICMPv6Short reports a message shorter than ICMPv6HeaderLen.
var ErrICMPv6Short = fmt.Errorf("%w: ICMPv6 message shorter than 8 bytes", ErrMalformed)

// ICMPv6 is a view over an ICMPv6 message (the upper-layer part of an IPv6
// packet, IPv6Chain.Upper). Check Valid before using accessors.
type ICMPv6 []byte

// Valid checks the length. The checksum needs the addresses: ChecksumValid.
func (m ICMPv6) Valid() error {
	if len(m) < ICMPv6HeaderLen {
		return ErrICMPv6Short
	}
	return nil
}

func (m ICMPv6) Type() uint8      { return m[0] }
func (m ICMPv6) Code() uint8      { return m[1] }
func (m ICMPv6) Checksum() uint16 { return binary.BigEndian.Uint16(m[2:]) }

// IsError reports an error message (RFC 4443 §2.1: types 0 to 127).
func (m ICMPv6) IsError() bool { return m[0] < 128 }

// Identifier and Sequence are an echo request's or reply's (RFC 4443 §4).
func (m ICMPv6) Identifier() uint16 { return binary.BigEndian.Uint16(m[4:]) }
func (m ICMPv6) Sequence() uint16   { return binary.BigEndian.Uint16(m[6:]) }

// MTU is a Packet Too Big message's MTU (RFC 4443 §3.2).
func (m ICMPv6) MTU() uint32 { return binary.BigEndian.Uint32(m[4:]) }

// Pointer is a Parameter Problem message's pointer (RFC 4443 §3.4).
func (m ICMPv6) Pointer() uint32 { return binary.BigEndian.Uint32(m[4:]) }

// Body is what follows the first 8 bytes: an echo message's data, or the
// part of the invoking packet an error message quotes (RFC 4443 §3), which
// may be cut short and so fail IPv6.Valid.
func (m ICMPv6) Body() []byte { return m[ICMPv6HeaderLen:] }

// IsNeighborDiscoveryOrMLD reports the messages the kernel sends on a TUN
// device by itself once the interface is up: Router Solicitation,
// Neighbor Solicitation (duplicate address detection) and Advertisement
// (RFC 4861 §4.1, §4.3, §4.4), and MLDv2 reports (RFC 3810 §5.2). A TUN
// device has no link-layer addresses, so there is nothing to resolve or
// answer: the caller ignores and counts them.
func (m ICMPv6) IsNeighborDiscoveryOrMLD() bool {
	switch m[0] {
	case ICMPv6RouterSolicit, ICMPv6NeighborSolicit, ICMPv6NeighborAdvert, ICMPv6MLDv2Report:
		return true
	}
	return false
}

// ChecksumValid verifies the checksum, which covers the IPv6 pseudo-header
// (RFC 4443 §2.3).
func (m ICMPv6) ChecksumValid(src, dst [16]byte) bool {
	return Fold(Checksum(m, PseudoHeaderSum6(src, dst, ProtoICMPv6, len(m)))) == 0
}

// ComputeChecksum fills in the checksum, which covers the IPv6
// pseudo-header (RFC 4443 §2.3).
func (m ICMPv6) ComputeChecksum(src, dst [16]byte) {
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], Fold(Checksum(m, PseudoHeaderSum6(src, dst, ProtoICMPv6, len(m)))))
}

// PutICMPv6Header writes the first 8 bytes of a message into b[:8]: type,
// code, a zero checksum, and the 32-bit word that follows (MTU for Packet
// Too Big, pointer for Parameter Problem, zero for the other errors).
// Append the body and call ComputeChecksum.
func PutICMPv6Header(b []byte, typ, code uint8, word uint32) {
	_ = b[ICMPv6HeaderLen-1]
	b[0], b[1], b[2], b[3] = typ, code, 0, 0
	binary.BigEndian.PutUint32(b[4:], word)
}

// PutICMPv6Echo writes the first 8 bytes of an echo request or reply
// (RFC 4443 §4.1, §4.2) into b[:8], checksum zeroed. Append the data and
// call ComputeChecksum.
func PutICMPv6Echo(b []byte, typ uint8, id, seq uint16) {
	PutICMPv6Header(b, typ, 0, uint32(id)<<16|uint32(seq))
}

// Reasons PutICMPv6Error and PutICMPv6EchoReply give for not answering.
var (
	ErrICMPv6ToError        = errors.New("wire: no ICMPv6 error is sent about an ICMPv6 error or redirect message (RFC 4443 §2.4(e.1), (e.2))")
	ErrICMPv6ToMulticast    = errors.New("wire: no ICMPv6 error is sent about a packet to a multicast address, except Packet Too Big and Parameter Problem code 2 for an option of type 10xxxxxx (RFC 4443 §2.4(e.3))")
	ErrICMPv6BadSource      = errors.New("wire: the packet's source (unspecified or multicast) names no single node to answer (RFC 4443 §2.4(e.6))")
	ErrICMPv6NoLocal        = errors.New("wire: an echo request to a multicast address is answered from a unicast address of ours: pass one as local")
	ErrICMPv6ShortBuffer    = errors.New("wire: output buffer too small for the ICMPv6 message: give it 1280 bytes for an error, the request's length for an echo reply")
	ErrICMPv6NotEchoRequest = errors.New("wire: not an ICMPv6 echo request")
	ErrICMPv6Checksum       = fmt.Errorf("%w: bad ICMPv6 checksum", ErrMalformed)
)

// ICMPv6ErrorFields are the values PutICMPv6Error writes besides the quote.
type ICMPv6ErrorFields struct {
	// Src is the error's source: the invoking packet's destination when
	// that was one of our unicast addresses (RFC 4443 §2.2). The error
	// goes to the invoking packet's source.
	Src      [16]byte
	HopLimit uint8
	Type     uint8
	Code     uint8
	// Param is the word after the checksum: the MTU of a Packet Too Big,
	// the pointer of a Parameter Problem, zero for the other errors.
	Param uint32
}

// PutICMPv6Error writes into out an IPv6 packet carrying the ICMPv6 error
// f about invoking, and returns its length. The message quotes as much of
// invoking (up to its Payload Length) as fits in the minimum MTU and in
// out (RFC 4443 §2.4(c)); a 1280-byte out always holds the whole error.
//
// It returns an error, and writes nothing, where RFC 4443 §2.4(e) forbids
// the message: invoking is an ICMPv6 error or a redirect; invoking went to
// a multicast address (but for the two exceptions); its source is
// unspecified or multicast. The caller also limits the rate of the errors
// it sends (RFC 4443 §2.4(f)).
func PutICMPv6Error(out []byte, f ICMPv6ErrorFields, invoking IPv6) (int, error) {
	if err := invoking.Valid(); err != nil {
		return 0, err
	}
	inv := invoking.Packet()
	if err := icmpv6ErrorAllowed(inv, f.Type, f.Code, f.Param); err != nil {
		return 0, err
	}
	const hdrs = IPv6HeaderLen + ICMPv6HeaderLen
	if len(out) < hdrs {
		return 0, ErrICMPv6ShortBuffer
	}
	// RFC 4443 §2.4(c): as much of the invoking packet as possible
	// without the error exceeding the minimum IPv6 MTU.
	quote := min(len(inv), icmpv6MaxQuote, len(out)-hdrs)
	msg := ICMPv6(out[IPv6HeaderLen : hdrs+quote])
	PutIPv6Header(out, IPv6Fields{Src: f.Src, Dst: inv.Src(), NextHeader: ProtoICMPv6, HopLimit: f.HopLimit}, len(msg))
	PutICMPv6Header(msg, f.Type, f.Code, f.Param)
	copy(msg[ICMPv6HeaderLen:], inv[:quote])
	msg.ComputeChecksum(f.Src, inv.Src())
	return hdrs + quote, nil
}

// PutICMPv6PacketTooBig writes a Packet Too Big for invoking, which did
// not fit a link of the given MTU (RFC 4443 §3.2); see PutICMPv6Error.
func PutICMPv6PacketTooBig(out []byte, src [16]byte, hopLimit uint8, invoking IPv6, mtu uint32) (int, error) {
	return PutICMPv6Error(out, ICMPv6ErrorFields{Src: src, HopLimit: hopLimit, Type: ICMPv6PacketTooBig, Param: mtu}, invoking)
}

// PutICMPv6DestUnreachable writes a Destination Unreachable of the given
// code for invoking (RFC 4443 §3.1); see PutICMPv6Error.
func PutICMPv6DestUnreachable(out []byte, src [16]byte, hopLimit uint8, invoking IPv6, code uint8) (int, error) {
	return PutICMPv6Error(out, ICMPv6ErrorFields{Src: src, HopLimit: hopLimit, Type: ICMPv6DestUnreachable, Code: code}, invoking)
}

// PutICMPv6ParameterProblem writes a Parameter Problem of the given code
// pointing at the given offset of invoking (RFC 4443 §3.4), as
// WalkExtensionHeaders reports them; see PutICMPv6Error.
func PutICMPv6ParameterProblem(out []byte, src [16]byte, hopLimit uint8, invoking IPv6, code uint8, pointer uint32) (int, error) {
	return PutICMPv6Error(out, ICMPv6ErrorFields{Src: src, HopLimit: hopLimit, Type: ICMPv6ParameterProblem, Code: code, Param: pointer}, invoking)
}

// icmpv6ErrorAllowed applies RFC 4443 §2.4(e) to an error of the given
// type, code and parameter about inv.
func icmpv6ErrorAllowed(inv IPv6, typ, code uint8, param uint32) error {
	dst, src := inv.Dst(), inv.Src()
	// RFC 4443 §2.4(e.3): not about a packet to a multicast address,
	// except Packet Too Big (for path MTU discovery) and Parameter Problem
	// code 2 for an option whose type's high-order bits are 10 (RFC 8200
	// §4.2 asks for that one whatever the destination).
	if dst[0] == 0xff {
		exception := typ == ICMPv6PacketTooBig ||
			typ == ICMPv6ParameterProblem && code == ICMPv6UnrecognizedOption &&
				param < uint32(len(inv)) && inv[param]>>6 == 2
		if !exception {
			return ErrICMPv6ToMulticast
		}
	}
	// RFC 4443 §2.4(e.6): not to a source that names no single node.
	if src[0] == 0xff || src == [16]byte{} {
		return ErrICMPv6BadSource
	}
	// RFC 4443 §2.4(e.1), (e.2): not about an ICMPv6 error or a redirect.
	proto, off, fragment, ok := skipExtHeaders(inv)
	if !ok || proto != ProtoICMPv6 {
		// Linux behaviour: is_ineligible(): a chain it cannot read
		// through, or a later fragment (whose first fragment holds the
		// ICMPv6 header, RFC 8200 §4.5), does not stop the error.
		return nil
	}
	if off >= len(inv) {
		// Linux behaviour: is_ineligible(): an ICMPv6 header that is
		// not there stops the error, unless the packet is a first
		// fragment.
		if fragment {
			return nil
		}
		return ErrICMPv6ToError
	}
	if t := inv[off]; t < 128 || t == ICMPv6Redirect {
		return ErrICMPv6ToError
	}
	return nil
}

// PutICMPv6EchoReply writes into out the IPv6 packet answering req when req is
// a valid echo request (RFC 4443 §4.1): an echo reply with the request's
// identifier, sequence number and data (RFC 4443 §4.2), its traffic class
// (as Linux's icmpv6_echo_reply() copies it), the given hop limit, and
// no extension headers. It returns the reply's length.
//
// The reply's source is the request's destination. A request to a
// multicast address is answered from local, which must be a unicast
// address of the interface it came in on (RFC 4443 §4.2: an Echo Reply
// SHOULD be sent to it, from such an address); with local not an IPv6
// unicast address, it is not answered. A request from an unspecified or
// multicast source, or whose walk (WalkExtensionHeaders) does not deliver
// it, or with a bad checksum, is not answered either. The reply is never
// bigger than the request.
func PutICMPv6EchoReply(out []byte, req IPv6, local netip.Addr, hopLimit uint8) (int, error) {
	c, err := req.WalkExtensionHeaders()
	if err != nil {
		return 0, err
	}
	if c.Action != IPv6Deliver || c.Proto != ProtoICMPv6 {
		return 0, ErrICMPv6NotEchoRequest
	}
	msg := ICMPv6(c.Upper(req).Data)
	if err := msg.Valid(); err != nil {
		return 0, err
	}
	if msg.Type() != ICMPv6EchoRequest || msg.Code() != 0 {
		return 0, ErrICMPv6NotEchoRequest
	}
	src, dst := req.Src(), req.Dst()
	if !msg.ChecksumValid(src, dst) {
		return 0, ErrICMPv6Checksum
	}
	if src[0] == 0xff || src == [16]byte{} {
		return 0, ErrICMPv6BadSource
	}
	from := dst
	if dst[0] == 0xff {
		if !local.Is6() || local.Is4In6() || local.IsUnspecified() || local.IsMulticast() {
			return 0, ErrICMPv6NoLocal
		}
		from = local.As16()
	}
	n := IPv6HeaderLen + len(msg)
	if len(out) < n {
		return 0, ErrICMPv6ShortBuffer
	}
	PutIPv6Header(out, IPv6Fields{Src: from, Dst: src, NextHeader: ProtoICMPv6, HopLimit: hopLimit, TrafficClass: req.TrafficClass()}, len(msg))
	reply := ICMPv6(out[IPv6HeaderLen:n])
	copy(reply, msg)
	reply[0], reply[1] = ICMPv6EchoReply, 0
	reply.ComputeChecksum(from, src)
	return n, nil
}
