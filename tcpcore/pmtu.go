package tcpcore

import (
	"net/netip"
	"syscall"
	"time"

	"tunstack/wire"
)

// ICMP errors about our segments: path MTU discovery (RFC 1191 for IPv4,
// RFC 8201 for IPv6) and destination unreachable, as Linux's tcp_v4_err()
// and tcp_v6_err() take them. The driver parses the ICMP message and
// hands the engine what it says with the quote of our packet; the engine
// checks the quote against its connections (RFC 5927 §4.1: the 4-tuple
// names a connection and the quoted sequence number is one in flight),
// so a blind attacker must guess a sequence number to be heard.

// ICMPKind is what an ICMP error says about a packet we sent.
type ICMPKind uint8

const (
	// ICMPPacketTooBig is an ICMPv6 Packet Too Big (RFC 4443 §3.2):
	// the packet exceeded a link's MTU, given in MTU.
	ICMPPacketTooBig ICMPKind = iota + 1
	// ICMPFragNeeded is an ICMPv4 Destination Unreachable with code 4,
	// fragmentation needed and DF set (RFC 1191 §4): MTU is the
	// next-hop MTU, 0 from a router older than RFC 1191.
	ICMPFragNeeded
	// ICMPUnreachable is any other Destination Unreachable, ICMPv4
	// (RFC 792) or ICMPv6 (RFC 4443 §3.1) after the quote's family, with
	// its code in Code.
	ICMPUnreachable
)

// ICMPMessage is an ICMP error as the driver received it.
type ICMPMessage struct {
	Kind ICMPKind
	Code uint8  // the message's code (ICMPUnreachable)
	MTU  uint32 // the MTU field (ICMPPacketTooBig, ICMPFragNeeded)
	// Quote is the invoking packet the message carries: its IP header
	// (IPv6 with any extension headers) and at least the first 8 bytes of
	// its TCP header.
	Quote []byte
}

// ICMPError takes an ICMP error about a segment we sent (Linux
// tcp_v4_err, tcp_v6_err):
//
//   - the quote must name a connection (its source is our address and
//     port) and its sequence number must lie in SND.UNA..SND.NXT, both
//     included (RFC 5927 §4.1; Linux between(seq, snd_una, snd_nxt)), or
//     the message is ignored and counted (ICMPUnmatched,
//     OutOfWindowICMPs); a connection in TIME-WAIT ignores it, and a
//     passive open still in its listener's SYN queue takes it only if it
//     quotes our SYN-ACK's ISS (Linux tcp_req_err);
//   - Packet Too Big and Fragmentation Needed lower the connection's path
//     MTU (reducePMTU);
//   - Destination Unreachable in SYN-SENT (or in SYN-RECEIVED of a
//     simultaneous open) is a hard error: the connection is closed with
//     the errno of the code, and connect reports it. Linux behaviour
//     (tcp_v4_err, tcp_v6_err: case TCP_SYN_SENT sets sk_err and calls
//     tcp_done whatever the code). A passive open in the SYN queue is
//     dropped silently for the codes Linux treats as fatal there
//     (tcp_req_err: IPv4 network and host unreachable; IPv6's fatal codes
//     of icmpv6_err_convert), as POSIX wants no network error from
//     accept. On a synchronized connection it is a soft error (RFC 1122
//     §4.2.3.9; Linux sk_err_soft): the connection keeps retransmitting;
//     SO_ERROR (Conn.Err) reports it once, and if the connection times
//     out before that it reports this error instead of ETIMEDOUT; a
//     network or host unreachable for the segment at SND.UNA undoes one
//     RTO backoff step (RFC 6069, rtoRevert).
func (e *Engine) ICMPError(now Time, m ICMPMessage) {
	u, ok := wire.QuotedUpper(m.Quote)
	if !ok || u.Proto != wire.ProtoTCP || !plainAddr(u.Src) || !plainAddr(u.Dst) || u.Src.Is4() != u.Dst.Is4() {
		e.stats.ICMPUnmatched++
		return
	}
	v4 := u.Src.Is4()
	if (m.Kind == ICMPPacketTooBig && v4) || (m.Kind == ICMPFragNeeded && !v4) {
		e.stats.ICMPUnmatched++ // the message's family does not match the quote's
		return
	}
	t := wire.TCP(u.Data) // at least 8 bytes: ports and sequence number
	local := netip.AddrPortFrom(u.Src, t.SrcPort())
	remote := netip.AddrPortFrom(u.Dst, t.DstPort())
	c := e.conns[newConnKey(local, remote)]
	if c == nil || c.state == Closed {
		e.stats.ICMPUnmatched++
		return
	}
	if c.state == TimeWait {
		return // Linux: a TIME-WAIT socket ignores ICMP errors
	}
	seq := Seq(t.Seq())
	if c.IsRequest() {
		// Linux behaviour (tcp_req_err): a request socket checks the
		// quote against the ISN of its SYN-ACK.
		if seq != c.iss {
			e.stats.OutOfWindowICMPs++
			return
		}
		if m.Kind == ICMPUnreachable && unreachFatal(v4, m.Code) {
			l := c.parent
			l.stats.Drops++
			e.stats.ListenDrops++
			c.closeWith(nil)
		}
		return
	}
	if seq.LT(c.sndUna) || seq.GT(c.sndNxt) {
		e.stats.OutOfWindowICMPs++
		return
	}
	switch m.Kind {
	case ICMPPacketTooBig, ICMPFragNeeded:
		c.reducePMTU(now, int(min(m.MTU, 1<<20)))
		return
	case ICMPUnreachable:
	default:
		e.stats.ICMPUnmatched++
		return
	}
	err := unreachErr(v4, m.Code)
	if err == nil {
		e.stats.ICMPUnmatched++ // Linux: an ICMPv4 code above 15 is ignored
		return
	}
	switch {
	case c.state == SynSent, c.state == SynReceived && c.parent == nil:
		e.stats.AttemptFails++ // Linux tcp_done in SYN-SENT: TCP_MIB_ATTEMPTFAILS
		c.closeWith(err)
	default:
		c.rareW().softErr = err
		c.wake()
		if unreachRevertsRTO(v4, m.Code) {
			c.rtoRevert(now, seq)
		}
	}
}

// rtoRevert is RFC 6069 as Linux's tcp_ld_RTO_revert(): an ICMP network
// or host unreachable (IPv4 codes 0 and 1, IPv6 no route) for the segment
// at SND.UNA while its retransmission timer is backed off shows the
// connection is disconnected rather than the network congested, so one
// backoff step is undone and the timer re-armed from the segment's last
// transmission with the shorter timeout; if that instant has passed, the
// timer fires now.
func (c *Conn) rtoRevert(now Time, seq Seq) {
	if seq != c.sndUna || c.retries == 0 || c.backoff == 0 || c.txq.len() == 0 || c.rtoAt == noDeadline {
		return
	}
	c.backoff--
	at := c.txq.at(0).sentAt.Add(c.rtt.backedOff(c.backoff))
	if at > now {
		c.rtoAt = at
		c.updateDeadline()
		return
	}
	// Linux: "RTO revert clocked out retransmission. Will retransmit
	// now": the timer runs as if it had fired (tcp_retransmit_timer).
	c.rtoAt = now
	c.onTimers(now)
}

// unreachRevertsRTO says whether a Destination Unreachable may revert the
// RTO backoff (Linux tcp_v4_err: ICMP_NET_UNREACH and ICMP_HOST_UNREACH;
// tcp_v6_err: ICMPV6_NOROUTE).
func unreachRevertsRTO(v4 bool, code uint8) bool {
	if v4 {
		return code == 0 || code == 1
	}
	return code == 0
}

// reducePMTU is Linux's tcp_v4_mtu_reduced / tcp_v6_mtu_reduced for a
// next-hop MTU of mtu: the path MTU only goes down, and not below the
// family's floor; the send MSS follows it (tcp_sync_mss), and what was
// sent in segments that no longer fit is deemed lost and sent again at
// once (simpleRetransmit), without waiting for the retransmission timer.
func (c *Conn) reducePMTU(now Time, mtu int) {
	e := c.e
	if c.key.local().Addr().Is4() {
		if mtu < ipv4MinPMTU {
			// Linux behaviour (__ip_rt_update_pmtu): raised to min_pmtu;
			// tcp_v4_mtu_reduced keeps EMSGSIZE as the soft error, as
			// the path may still not carry that much.
			mtu = ipv4MinPMTU
			c.rareW().softErr = syscall.EMSGSIZE
		}
	} else {
		if mtu < wire.IPv6MinMTU {
			// RFC 8201 §4: a node does not reduce the path MTU below the
			// IPv6 minimum link MTU. Linux behaviour (tcp_v6_err):
			// TCP drops such a Packet Too Big outright.
			e.stats.PMTUIgnored++
			return
		}
		if c.mssForMTU(mtu) >= c.sndMSS && c.state != SynSent {
			// Linux behaviour (tcp_v6_mtu_reduced): a message that
			// would not lower the MSS in use changes nothing.
			e.stats.PMTUIgnored++
			return
		}
	}
	if mtu >= c.pmtu {
		e.stats.PMTUIgnored++ // RFC 1191 §3, RFC 8201 §4: the PMTU only decreases on a Packet Too Big
		return
	}
	e.stats.PMTUUpdates++
	c.pmtu = mtu
	if c.state == SynSent {
		return // the MSS is set from the path MTU when the SYN-ACK comes
	}
	c.setSndMSS()
	if c.hasCC() {
		c.simpleRetransmit(now)
	}
}

// mssForMTU is the send MSS a path MTU of mtu gives (setSndMSS): the
// peer's MSS bounded by what mtu leaves for the connection's family (the
// path MTU less the network and TCP headers, at least the profile's
// MinSendMSS: Linux __tcp_mtu_to_mss, tcp_min_snd_mss, in both families)
// and by TCP_MAXSEG, less the timestamp option every segment carries.
func (c *Conn) mssForMTU(mtu int) int {
	m := min(c.peerMSS, max(mtu-ipHeaderLen(c.key.local().Addr())-wire.TCPHeaderLen, c.e.prof.MinSendMSS))
	if um := c.rareR().userMSS; um > 0 {
		m = min(m, um)
	}
	if c.tsOK {
		m -= 12
	}
	return max(m, 8)
}

// simpleRetransmit is Linux's tcp_simple_retransmit after the path MTU
// went down: every segment in flight with more data than the new MSS is
// deemed lost, for it was dropped on the way; if any is, the connection
// enters loss recovery without touching the congestion window (the data
// in the network did not grow, only its units shrank) and retransmits
// them now, cut to the new MSS. Unlike Linux, ssthresh is left as it is:
// the congestion controller has no call to set it alone.
func (c *Conn) simpleRetransmit(now Time) {
	q := &c.txq
	for i := 0; i < q.len(); i++ {
		r := q.at(i)
		if _, n, _, _ := c.rangeToSend(r.start, r.end); n > c.sndMSS {
			c.markLost(r)
		}
	}
	if q.lost.segs == 0 {
		return
	}
	if c.recovery != recoveryLoss {
		// Linux: high_seq = snd_nxt, undo_marker = 0, CA_Loss.
		if c.recovery == recoveryFast {
			// Fast recovery ends here; its window stays reduced, as
			// Linux's cwnd stays where PRR brought it: the controller
			// deflates to ssthresh (RFC 5681 §3.2 step 6).
			c.ccw().OnRecoveryEnd(time.Duration(now))
		}
		c.recovery = recoveryLoss
		c.recoveryPoint = c.sndMax
		c.undoPossible = false
		c.disorder = false
		c.rtxRunEnd = c.sndUna - 1
	}
	c.output(now)
	c.updateDeadline()
}

// unreachErr is the errno of a Destination Unreachable code (Linux
// icmp_err_convert for IPv4, icmpv6_err_convert for IPv6); nil for an
// IPv4 code Linux ignores (above 15).
func unreachErr(v4 bool, code uint8) error {
	if v4 {
		switch code {
		case 0, 6, 9, 11: // net unreachable, net unknown, net prohibited, net unreachable for TOS
			return syscall.ENETUNREACH
		case 1, 10, 12, 13, 14, 15: // host unreachable, host prohibited, for TOS, filtered, precedence
			return syscall.EHOSTUNREACH
		case 2:
			return syscall.ENOPROTOOPT // protocol unreachable
		case 3:
			return syscall.ECONNREFUSED // port unreachable
		case 4:
			return syscall.EMSGSIZE
		case 5:
			return syscall.EOPNOTSUPP // source route failed
		case 7:
			return syscall.EHOSTDOWN // host unknown
		case 8:
			return syscall.ENONET // host isolated
		}
		return nil
	}
	switch code {
	case 0:
		return syscall.ENETUNREACH // no route
	case 1, 5, 6:
		return syscall.EACCES // administratively prohibited, policy failed, reject route
	case 2, 3:
		return syscall.EHOSTUNREACH // beyond scope, address unreachable
	case 4:
		return syscall.ECONNREFUSED // port unreachable
	}
	return syscall.EPROTO
}

// unreachFatal says whether a Destination Unreachable drops a passive
// open in the SYN queue (Linux tcp_req_err's abort): for IPv4 network and
// host unreachable; for IPv6 the codes icmpv6_err_convert calls fatal.
func unreachFatal(v4 bool, code uint8) bool {
	if v4 {
		return code == 0 || code == 1
	}
	switch code {
	case 0, 2, 3:
		return false
	}
	return true
}
