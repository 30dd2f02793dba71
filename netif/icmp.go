package netif

import (
	"net/netip"

	"tunstack/wire"
)

// echoReplyTTL is the TTL of the echo replies we originate; 64 is what Linux
// uses, so traceroutes and captures read the same as against a Linux host.
const echoReplyTTL = 64

// EchoReply answers an ICMP echo request (RFC 792) so that `ping` works
// against the stack. Given a valid IPv4 packet carrying a valid echo request
// addressed to a unicast address, it writes the echo reply, same identifier,
// sequence number and data, source and destination swapped, into out and
// returns its length. It returns false for anything else, including when out
// is too small.
//
// The reply carries no IP options (RFC 1122 §3.2.2.6 lets us drop them), and
// fragments are not answered because they are not reassembled.
func EchoReply(req wire.IPv4, out []byte) (int, bool) {
	if req.Valid() != nil || req.Protocol() != wire.ProtoICMP || req.IsFragment() {
		return 0, false
	}
	msg := wire.ICMPv4(req.Payload())
	if !msg.Valid() || msg.Type() != wire.ICMPEchoRequest || msg.Code() != 0 {
		return 0, false
	}
	// RFC 1122 §3.2.2.6 allows ignoring echo requests to broadcast and
	// multicast addresses; answering them would need a unicast source we
	// do not know here.
	if dst := req.DstAddr(); dst.IsMulticast() || dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return 0, false
	}
	n := wire.IPv4HeaderLen + len(msg)
	if len(out) < n {
		return 0, false
	}
	wire.PutIPv4Header(out, wire.IPv4Fields{
		Src:      req.Dst(),
		Dst:      req.Src(),
		Protocol: wire.ProtoICMP,
		TTL:      echoReplyTTL,
		ID:       req.ID(),
		TOS:      req.TOS(),
	}, len(msg))
	reply := wire.ICMPv4(out[wire.IPv4HeaderLen:n])
	copy(reply, msg)
	reply[0], reply[1] = wire.ICMPEchoReply, 0
	reply.SetChecksum()
	return n, true
}
