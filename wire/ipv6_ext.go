package wire

import (
	"encoding/binary"
	"fmt"
)

// IPv6Action is what a receiving host does with a packet once
// WalkExtensionHeaders has read its extension headers.
type IPv6Action uint8

const (
	// IPv6Deliver: hand the upper-layer header at IPv6Chain.Offset to the
	// handler of IPv6Chain.Proto (TCP, ICMPv6, or No Next Header, which
	// has nothing to hand: RFC 8200 §4.7 says to ignore what follows).
	IPv6Deliver IPv6Action = iota
	// IPv6DropFragment: the packet is a fragment. Fragments are not
	// reassembled; the caller drops and counts it.
	IPv6DropFragment
	// IPv6Discard: an option's type says to discard the packet silently
	// (RFC 8200 §4.2).
	IPv6Discard
	// IPv6ParameterProblem: discard the packet and send an ICMPv6
	// Parameter Problem with IPv6Chain.Code and IPv6Chain.Pointer
	// (RFC 4443 §3.4), through PutICMPv6Error, which applies RFC 4443
	// §2.4(e)'s rules on when not to.
	IPv6ParameterProblem
)

func (a IPv6Action) String() string {
	switch a {
	case IPv6Deliver:
		return "deliver"
	case IPv6DropFragment:
		return "drop fragment"
	case IPv6Discard:
		return "discard"
	case IPv6ParameterProblem:
		return "parameter problem"
	}
	return fmt.Sprintf("IPv6Action(%d)", uint8(a))
}

// IPv6MaxExtHeaders is the most extension headers WalkExtensionHeaders
// reads before it gives up on a packet. RFC 8200 §4.1 says each extension
// header should occur at most once, the Destination Options header at most
// twice, so of the four the walk passes (hop-by-hop, destination options,
// routing, fragment) a conforming packet has at most five. Eight leaves
// room for a sender that repeats a header, which §4.1 asks receivers to
// tolerate; longer chains serve only to make receivers work or to hide
// the upper-layer header from filters. (The walk cannot loop whatever the
// limit: every header moves it at least 8 bytes forward.)
const IPv6MaxExtHeaders = 8

// IPv6MaxOptions is the most options other than padding that one
// hop-by-hop or destination options header may carry. Linux behaviour:
// ip6_parse_tlv(): the sysctls max_hbh_opts_number and max_dst_opts_number
// default to 8 (IP6_DEFAULT_MAX_HBH_OPTS_CNT, IP6_DEFAULT_MAX_DST_OPTS_CNT)
// and a header with more is dropped silently, to bound the work a packet
// can cause.
const IPv6MaxOptions = 8

// ipv6MaxPadding is the most option padding (Pad1 and PadN bytes) allowed
// in a row: padding exists to align the next option or the header's end to
// 8 bytes, so more than 7 bytes of it is never needed.
const ipv6MaxPadding = 7

// Option types known here (RFC 8200 §4.2). Every other type is unrecognised
// and handled by its two high-order bits: Router Alert (5, which the
// kernel's MLD reports carry) has them 00 and is skipped; Jumbo Payload
// (0xc2) has them 11 and draws a Parameter Problem, as jumbograms are not
// supported (IPv6MaxPayloadLen).
const (
	IPv6OptPad1 = 0
	IPv6OptPadN = 1
)

// Errors of the extension headers. Each wraps ErrMalformed; the packet is
// to be discarded and counted as a header error.
var (
	ErrIPv6ExtTruncated      = fmt.Errorf("%w: IPv6 extension header runs past the Payload Length", ErrMalformed)
	ErrIPv6TooManyExtHeaders = fmt.Errorf("%w: more than %d IPv6 extension headers", ErrMalformed, IPv6MaxExtHeaders)
	ErrIPv6BadOption         = fmt.Errorf("%w: IPv6 option runs past the end of its extension header", ErrMalformed)
	ErrIPv6TooManyOptions    = fmt.Errorf("%w: more than %d options in one IPv6 hop-by-hop or destination options header", ErrMalformed, IPv6MaxOptions)
	ErrIPv6Padding           = fmt.Errorf("%w: more than %d bytes of IPv6 option padding in a row", ErrMalformed, ipv6MaxPadding)
	ErrIPv6PadNData          = fmt.Errorf("%w: IPv6 PadN option with non-zero data", ErrMalformed)
)

// IPv6Chain is what WalkExtensionHeaders found. Offsets count from the
// first byte of the fixed header, as the Pointer of a Parameter Problem
// does (RFC 4443 §3.4).
type IPv6Chain struct {
	Action IPv6Action
	// Proto is the Next Header value the walk stopped at: the upper-layer
	// protocol for IPv6Deliver, the value that is not understood for a
	// Parameter Problem of code 1, and the fragment header's Next Header
	// for IPv6DropFragment.
	Proto uint8
	// Offset is where the header Proto names starts (at most the end of
	// the Payload Length: a No Next Header or a truncated chain may end
	// there).
	Offset int
	// ProtoField is the offset of the Next Header field holding Proto: 6
	// in the fixed header, else the first byte of an extension header.
	ProtoField int
	// ExtHeaders is the number of extension headers read.
	ExtHeaders int
	// Code and Pointer are the Parameter Problem's code and pointer for
	// IPv6ParameterProblem (RFC 4443 §3.4), zero otherwise.
	Code    uint8
	Pointer uint32
}

// Upper is the upper-layer part of p, a packet the walk delivered: from
// Offset to the end of the Payload Length.
func (c IPv6Chain) Upper(p IPv6) IPUpper {
	return IPUpper{Src: p.SrcAddr(), Dst: p.DstAddr(), Proto: c.Proto, Data: p[c.Offset : IPv6HeaderLen+int(p.PayloadLen())]}
}

// WalkExtensionHeaders checks p (Valid) and reads its extension headers in
// order (RFC 8200 §4) up to the upper-layer header: TCP, ICMPv6 or No Next
// Header. On the way:
//
//   - a hop-by-hop options header is read only right after the fixed
//     header (RFC 8200 §4.1); elsewhere it is an unrecognised Next Header;
//   - in hop-by-hop and destination options headers every option is
//     walked, and an unrecognised one acts by its type's two high-order
//     bits (RFC 8200 §4.2);
//   - a routing header with Segments Left 0 is skipped (RFC 8200 §4.4);
//     with Segments Left non-zero it is a Parameter Problem, as no routing
//     type is implemented here;
//   - a fragment header ends the walk with IPv6DropFragment, unless it is
//     an atomic fragment (offset 0, M flag clear), which is the whole
//     packet and is read through (RFC 6946 §4);
//   - any other Next Header value is not understood: Parameter Problem
//     code 1 pointing at the field that holds it (RFC 8200 §4, RFC 4443
//     §3.4). This stack has no UDP, so a UDP packet is one of these.
//
// A malformed header (one that runs past the Payload Length, an option
// past its header, too much padding, too many options or headers) is an
// error, with Action IPv6Discard. The walk allocates nothing.
func (p IPv6) WalkExtensionHeaders() (IPv6Chain, error) {
	if err := p.Valid(); err != nil {
		return IPv6Chain{Action: IPv6Discard}, err
	}
	end := IPv6HeaderLen + int(p.PayloadLen())
	c := IPv6Chain{Proto: p.NextHeader(), Offset: IPv6HeaderLen, ProtoField: 6}
	atomic := false // an atomic fragment header has been read
	for {
		switch c.Proto {
		case ProtoTCP, ProtoICMPv6, ProtoNoNextHeader:
			return c, nil
		case ProtoDestOpts, ProtoRouting, ProtoFragment:
		case ProtoHopByHop:
			if c.Offset != IPv6HeaderLen {
				// RFC 8200 §4.1: the hop-by-hop options header may only
				// follow the fixed header. Linux behaviour:
				// ip6_protocol_deliver_rcu(): elsewhere, Next Header 0
				// finds no handler and draws Parameter Problem code 1
				// at the field, as any unknown value does.
				return c.problem(ICMPv6UnrecognizedNextHeader, c.ProtoField), nil
			}
		default:
			// RFC 8200 §4: an unrecognised Next Header value: discard
			// and send Parameter Problem code 1 pointing at it (RFC 4443
			// §3.4).
			return c.problem(ICMPv6UnrecognizedNextHeader, c.ProtoField), nil
		}
		if c.ExtHeaders == IPv6MaxExtHeaders {
			return IPv6Chain{Action: IPv6Discard}, ErrIPv6TooManyExtHeaders
		}
		off := c.Offset
		if off+8 > end {
			// Every extension header is at least 8 bytes (RFC 8200 §4.3
			// to §4.6).
			return IPv6Chain{Action: IPv6Discard}, ErrIPv6ExtTruncated
		}
		hlen := 8 // the fragment header's fixed size (RFC 8200 §4.5)
		if c.Proto != ProtoFragment {
			// Hdr Ext Len: 8-byte units beyond the first 8 (RFC 8200
			// §4.3, §4.4, §4.6).
			hlen = (int(p[off+1]) + 1) * 8
		}
		if off+hlen > end {
			return IPv6Chain{Action: IPv6Discard}, ErrIPv6ExtTruncated
		}
		switch c.Proto {
		case ProtoHopByHop, ProtoDestOpts:
			act, ptr, err := p.walkOptions(off, hlen)
			if err != nil {
				return IPv6Chain{Action: IPv6Discard}, err
			}
			switch act {
			case IPv6Discard:
				c.Action = IPv6Discard
				return c, nil
			case IPv6ParameterProblem:
				return c.problem(ICMPv6UnrecognizedOption, ptr), nil
			}
		case ProtoRouting:
			// RFC 8200 §4.4: a routing header with Segments Left 0 is
			// ignored whatever its type. With Segments Left non-zero and
			// a type the node does not recognise (every type, here: this
			// host routes nothing) the packet is discarded with
			// Parameter Problem code 0 pointing at Segments Left. (Linux
			// drops types 3 and 4 silently while RPL and segment routing
			// are disabled, its default.)
			if p[off+3] != 0 {
				return c.problem(ICMPv6ErroneousHeaderField, off+3), nil
			}
		case ProtoFragment:
			// Linux behaviour: ipv6_frag_rcv(): a second fragment header
			// after an atomic one is a Parameter Problem code 0 pointing
			// at it.
			if atomic {
				return c.problem(ICMPv6ErroneousHeaderField, off), nil
			}
			// RFC 8200 §4.5: Fragment Offset is the top 13 bits of
			// bytes 2-3, M the lowest bit.
			if binary.BigEndian.Uint16(p[off+2:])&0xfff9 != 0 {
				c.Action = IPv6DropFragment
				c.Proto, c.ProtoField, c.Offset = p[off], off, off+hlen
				c.ExtHeaders++
				return c, nil
			}
			// RFC 6946 §4: offset 0 and M clear is an atomic fragment,
			// processed in isolation as the whole packet.
			atomic = true
		}
		c.Proto, c.ProtoField, c.Offset = p[off], off, off+hlen
		c.ExtHeaders++
	}
}

// problem is c as a Parameter Problem of the given code and pointer.
func (c IPv6Chain) problem(code uint8, pointer int) IPv6Chain {
	c.Action, c.Code, c.Pointer = IPv6ParameterProblem, code, uint32(pointer)
	return c
}

// walkOptions reads the options of the hop-by-hop or destination options
// header at p[off:off+hlen] (RFC 8200 §4.2), a sequence of TLVs after the
// Next Header and Hdr Ext Len bytes. It returns IPv6Deliver to go on,
// IPv6Discard to drop silently, or IPv6ParameterProblem and the offset of
// the option type to point at.
func (p IPv6) walkOptions(off, hlen int) (IPv6Action, int, error) {
	end := off + hlen
	pad, count := 0, 0
	for i := off + 2; i < end; {
		typ := p[i]
		if typ == IPv6OptPad1 {
			// RFC 8200 §4.2: Pad1 is a single byte, no length or data.
			// Linux behaviour: ip6_parse_tlv(): more than 7 bytes of
			// padding in a row drops the packet (RFC 4942 §2.1.9.5:
			// padding only aligns, to at most 8 bytes).
			if pad++; pad > ipv6MaxPadding {
				return IPv6Discard, 0, ErrIPv6Padding
			}
			i++
			continue
		}
		if i+2 > end || i+2+int(p[i+1]) > end {
			return IPv6Discard, 0, ErrIPv6BadOption
		}
		olen := 2 + int(p[i+1])
		if typ == IPv6OptPadN {
			if pad += olen; pad > ipv6MaxPadding {
				return IPv6Discard, 0, ErrIPv6Padding
			}
			// Linux behaviour: ip6_parse_tlv(): PadN data must be zero
			// (RFC 4942 §2.1.9.5 recommends checking it, as padding can
			// otherwise carry a covert channel).
			for _, b := range p[i+2 : i+olen] {
				if b != 0 {
					return IPv6Discard, 0, ErrIPv6PadNData
				}
			}
			i += olen
			continue
		}
		if count++; count > IPv6MaxOptions {
			return IPv6Discard, 0, ErrIPv6TooManyOptions
		}
		pad = 0
		// RFC 8200 §4.2: the two high-order bits of an unrecognised
		// option's type say what to do.
		switch typ >> 6 {
		case 0: // 00: skip over this option and go on
		case 1: // 01: discard the packet
			return IPv6Discard, 0, nil
		case 2: // 10: discard and send Parameter Problem code 2, whatever the destination
			return IPv6ParameterProblem, i, nil
		case 3: // 11: discard, and send Parameter Problem code 2 only if the destination is not multicast
			if p[24] == 0xff { // RFC 4291 §2.7: multicast is ff00::/8
				return IPv6Discard, 0, nil
			}
			return IPv6ParameterProblem, i, nil
		}
		i += olen
	}
	return IPv6Deliver, 0, nil
}

// skipExtHeaders finds the upper-layer protocol of p, a packet that may be
// truncated (an ICMPv6 error's quote) or malformed, by skipping extension
// headers without judging them, as Linux's ipv6_skip_exthdr() does. At a
// fragment header with a non-zero offset it stops, reporting
// ProtoFragment: the upper-layer header is in the first fragment.
// fragment reports that a fragment header was passed; ok is false when a
// header runs past the slice or the chain is longer than
// IPv6MaxExtHeaders.
func skipExtHeaders(p []byte) (proto uint8, off int, fragment, ok bool) {
	proto, off = p[6], IPv6HeaderLen
	for range IPv6MaxExtHeaders + 1 {
		switch proto {
		case ProtoHopByHop, ProtoDestOpts, ProtoRouting, ProtoFragment:
		default:
			return proto, off, fragment, true
		}
		if off+8 > len(p) {
			return proto, off, fragment, false
		}
		hlen := (int(p[off+1]) + 1) * 8
		if proto == ProtoFragment {
			hlen = 8
			v := binary.BigEndian.Uint16(p[off+2:])
			if v&0xfff8 != 0 {
				return ProtoFragment, off, true, true
			}
			fragment = fragment || v&1 != 0
		}
		proto, off = p[off], off+hlen
	}
	return proto, off, fragment, false
}
