package stack

import (
	"errors"
	"net/netip"
	"time"

	"tunstack/tcpcore"
	"tunstack/wire"
)

// ipv6HopLimit is the hop limit of the IPv6 packets we originate, Linux's
// default (net.ipv6.conf.*.hop_limit, 64).
const ipv6HopLimit = 64

// input6 takes one IPv6 packet. Without an IPv6 address (Config.Addr6
// zero) every one is dropped and counted. Otherwise the header is checked
// and the extension headers walked (wire.IPv6.WalkExtensionHeaders):
// fragments are dropped (not reassembled), an unrecognised next header or
// option draws the ICMPv6 Parameter Problem the walk names, rate-limited;
// TCP to our address goes to the engine; ICMPv6 echo requests are
// answered; Packet Too Big and Destination Unreachable about our segments
// go to the engine; the neighbour discovery and MLD messages the kernel
// sends on a TUN device are ignored and counted. The caller holds s.mu.
//
// m is what the link said of the packet, as for input4.
func (s *Stack) input6(now tcpcore.Time, pkt wire.IPv6, m tcpcore.InputMeta, rp *replies) {
	st := &s.ipStats
	if !s.addr6.IsValid() {
		st.noIPv6.Add(1)
		return
	}
	chain, err := pkt.WalkExtensionHeaders()
	switch {
	case errors.Is(err, wire.ErrIPv6Truncated):
		// Linux behaviour: ip6_rcv_core(): a Payload Length past the
		// packet is IPSTATS_MIB_INTRUNCATEDPKTS, not a header error.
		st.truncated6.Add(1)
		return
	case err != nil:
		st.malformed6.Add(1) // Linux: IPSTATS_MIB_INHDRERRORS
		return
	}
	src, dst := pkt.SrcAddr(), pkt.DstAddr()
	if src.IsMulticast() {
		// Linux behaviour (ip6_rcv_core): a multicast source is a header
		// error.
		st.malformed6.Add(1)
		return
	}
	ours := dst == s.addr6
	// A unicast destination not ours is a relay frontend's to take, or
	// not for us.
	relayed := !ours && !dst.IsMulticast()
	if relayed && (s.front == nil || !s.front.covers(dst)) {
		st.notForUs6.Add(1)
		return
	}
	switch chain.Action {
	case wire.IPv6DropFragment:
		st.fragments6.Add(1)
		return
	case wire.IPv6Discard:
		st.optionDiscards6.Add(1)
		return
	case wire.IPv6ParameterProblem:
		if chain.Code == wire.ICMPv6UnrecognizedNextHeader {
			// Linux behaviour: ip6_input_finish(): no protocol for the
			// next header is IPSTATS_MIB_INUNKNOWNPROTOS.
			st.unknownNext6.Add(1)
		} else {
			// Linux behaviour: ip6_parse_tlv() and the extension
			// header handlers count a bad field or option as
			// IPSTATS_MIB_INHDRERRORS.
			st.malformed6.Add(1)
		}
		s.paramProblem6(now, pkt, chain, rp)
		return
	}
	u := chain.Upper(pkt)
	if relayed {
		// A relay frontend takes TCP and UDP to the addresses it
		// intercepts (intercept.go).
		if !s.front.input(now, u, pkt, m, rp) {
			st.notForUs6.Add(1)
		}
		return
	}
	switch u.Proto {
	case wire.ProtoTCP:
		if !ours {
			st.notForUs6.Add(1) // TCP is unicast only
			return
		}
		if s.grp != nil && s.passOn(pkt, segmentFlow(u.Src, u.Dst, u.Data), true, m) {
			return // to the shard that has its connection (shards.go)
		}
		st.tcpIn.Add(1)
		s.e.InputGRO(now, u.Src, u.Dst, u.Data, m)
		s.settleClaim()
	case wire.ProtoICMPv6:
		if m.SegSize > 0 {
			st.otherProto6.Add(1) // a GSO packet is TCP
			return
		}
		if msg := wire.ICMPv6(u.Data); s.grp != nil && ours && len(msg) >= 8 &&
			(msg.Type() == wire.ICMPv6PacketTooBig || msg.Type() == wire.ICMPv6DestUnreachable) {
			// An error about a segment of ours goes to the shard that
			// has its connection (shards.go), before it is counted.
			if s.passOn(pkt, quotedFlow(msg[8:]), false, m) {
				return
			}
		}
		s.icmp6(now, pkt, u, ours, rp)
	default:
		st.otherProto6.Add(1) // No Next Header: nothing to deliver (RFC 8200 §4.7)
	}
}

// icmp6 takes an ICMPv6 message (RFC 4443).
func (s *Stack) icmp6(now tcpcore.Time, pkt wire.IPv6, u wire.IPUpper, ours bool, rp *replies) {
	st := &s.ipStats
	msg := wire.ICMPv6(u.Data)
	// Linux behaviour: icmpv6_rcv() counts every message in InMsgs
	// first, then a bad checksum or a short message in InErrors.
	st.icmp6In.Add(1)
	if msg.Valid() != nil || !msg.ChecksumValid(pkt.Src(), pkt.Dst()) {
		st.icmp6InErrors.Add(1)
		return
	}
	switch {
	case msg.IsNeighborDiscoveryOrMLD():
		// A TUN device has no link-layer addresses: nothing to resolve,
		// nothing to answer.
		st.ndIgnored.Add(1)
	case msg.Type() == wire.ICMPv6EchoRequest:
		// RFC 4443 §4.2: every echo request to us is answered; one to a
		// multicast address from our unicast address (Linux's default,
		// net.ipv6.icmp.echo_ignore_multicast 0).
		out := rp.buf()
		if out == nil {
			return
		}
		n, err := wire.PutICMPv6EchoReply(out, pkt, s.addr6, ipv6HopLimit)
		if err != nil {
			st.otherProto6.Add(1)
			return
		}
		rp.add(n, echoReply6)
	case ours && msg.Type() == wire.ICMPv6PacketTooBig:
		st.icmpErrorsIn.Add(1)
		s.icmp6Error(now, tcpcore.ICMPMessage{Kind: tcpcore.ICMPPacketTooBig, MTU: msg.MTU(), Quote: msg.Body()})
	case ours && msg.Type() == wire.ICMPv6DestUnreachable:
		st.icmpErrorsIn.Add(1)
		s.icmp6Error(now, tcpcore.ICMPMessage{Kind: tcpcore.ICMPUnreachable, Code: msg.Code(), Quote: msg.Body()})
	default:
		st.otherProto6.Add(1)
	}
}

// icmp6Error hands an ICMPv6 error to the engine and counts it in
// ICMPv6InErrors if it named none of our connections: Linux behaviour,
// tcp_v6_err(): a quote that matches no socket is ICMP6_MIB_INERRORS.
func (s *Stack) icmp6Error(now tcpcore.Time, m tcpcore.ICMPMessage) {
	before := s.e.Stats().ICMPUnmatched
	s.e.ICMPError(now, m)
	if s.e.Stats().ICMPUnmatched != before {
		s.ipStats.icmp6InErrors.Add(1)
	}
}

// paramProblem6 answers a packet the walk rejected with the Parameter
// Problem it names (RFC 8200 §4, RFC 4443 §3.4), unless RFC 4443 §2.4(e)
// forbids it (wire.PutICMPv6Error checks) or the rate limit holds it back
// (RFC 4443 §2.4(f)).
func (s *Stack) paramProblem6(now tcpcore.Time, pkt wire.IPv6, chain wire.IPv6Chain, rp *replies) {
	st := &s.ipStats
	out := rp.buf()
	if out == nil {
		st.rateLimited6.Add(1) // the batch's reply buffers are used up
		return
	}
	n, err := wire.PutICMPv6ParameterProblem(out, s.addr6.As16(), ipv6HopLimit, pkt, chain.Code, chain.Pointer)
	if err != nil {
		st.otherProto6.Add(1) // dropped, and no error may be sent about it
		return
	}
	if !s.icmp6Limit.allow(now, pkt.SrcAddr()) {
		st.rateLimited6.Add(1)
		return
	}
	rp.add(n, paramProblem6)
}

// icmpv6Limiter limits the ICMPv6 errors we send, per destination, as
// Linux's icmpv6_xrlim_allow() does with inet_peer_xrlim_allow(): a token
// bucket per peer that fills at one token per net.ipv6.icmp.ratelimit
// (1000 ms by default) and holds at most XRLIM_BURST_FACTOR (6) of them,
// full for a peer not seen before; each error takes one. Linux also
// shortens the interval for destinations reached through wider route
// prefixes and applies a global limit (icmp_msgs_per_sec); the stack has
// no routes, and its only errors are Parameter Problems, so neither is
// copied. Echo replies are not errors and are not limited (Linux's
// ratemask covers error types only, Packet Too Big apart).
type icmpv6Limiter struct {
	peers map[netip.Addr]icmpBucket
}

type icmpBucket struct {
	tokens time.Duration // accumulated time: one error costs icmpv6RateLimit
	last   tcpcore.Time
}

const (
	icmpv6RateLimit  = time.Second // net.ipv6.icmp.ratelimit
	icmpv6BurstScale = 6           // XRLIM_BURST_FACTOR
	// icmpv6MaxPeers bounds the table; past it the table starts afresh,
	// which at worst lets each peer a new burst, as Linux's inet_peer
	// cache forgets peers under pressure.
	icmpv6MaxPeers = 4096
)

func (l *icmpv6Limiter) allow(now tcpcore.Time, dst netip.Addr) bool {
	b, ok := l.peers[dst]
	if !ok {
		if l.peers == nil || len(l.peers) >= icmpv6MaxPeers {
			l.peers = make(map[netip.Addr]icmpBucket)
		}
		b = icmpBucket{tokens: icmpv6BurstScale * icmpv6RateLimit, last: now}
	}
	b.tokens = min(b.tokens+now.Sub(b.last), icmpv6BurstScale*icmpv6RateLimit)
	b.last = now
	allowed := b.tokens >= icmpv6RateLimit
	if allowed {
		b.tokens -= icmpv6RateLimit
	}
	l.peers[dst] = b
	return allowed
}

// frame6 writes the IPv6 header of an IPv6 segment: hop limit 64 and a
// flow label per connection (flowLabel).
func (w *ipWriter) frame6(p *tcpcore.Packet) []byte {
	b := p.WithHeader(wire.IPv6HeaderLen)
	src, dst := p.Src.As16(), p.Dst.As16()
	wire.PutIPv6Header(b, wire.IPv6Fields{
		Src: src, Dst: dst, NextHeader: wire.ProtoTCP, HopLimit: ipv6HopLimit,
		FlowLabel: w.flowLabel(&src, &dst, p.Segment()),
	}, len(b)-wire.IPv6HeaderLen+p.TailLen())
	return b
}

// flowLabel is the flow label of a connection's packets: RFC 6437 §3's
// recommendation, a keyed hash of the addresses and ports, the same for
// every packet of the flow, never zero. Linux behaviour
// (ip6_make_flowlabel with net.ipv6.auto_flowlabels 1): every TCP flow
// gets a label from a per-socket random hash, which Linux changes after a
// retransmission timeout to try another path; here the label stays.
func (w *ipWriter) flowLabel(src, dst *[16]byte, seg []byte) uint32 {
	h := 2166136261 ^ w.flowKey // FNV-1a, keyed
	for _, c := range src {
		h = (h ^ uint32(c)) * 16777619
	}
	for _, c := range dst {
		h = (h ^ uint32(c)) * 16777619
	}
	for _, c := range seg[:4] { // source and destination ports
		h = (h ^ uint32(c)) * 16777619
	}
	if l := h & 0xfffff; l != 0 {
		return l
	}
	return 1
}
