package tcpcore

// Every retransmitted segment is of exactly one kind, counted in its own
// ConnCounters field and in Retransmits, so that the kinds add up to what a
// capture shows: a segment whose sequence range was sent before.

type rtxKind uint8

const (
	rtxRTO    rtxKind = iota // loss recovery after a timeout (RFC 6298 §5.4, RFC 6675 §5.1)
	rtxFast                  // fast recovery: RFC 5681 §3.2, RFC 6582, RFC 6675 NextSeg rules 1-3
	rtxLost                  // a retransmission found lost, sent again (rack.go)
	rtxRescue                // RFC 6675 NextSeg rule 4
	rtxTLP                   // RFC 8985 §7.3 probe resending the last segment
	rtxSYN                   // SYN or SYN-ACK (RFC 9293 §3.8.1, RFC 6298 §5)
)

// traceEvent is the --trace event of a kind traced one by one: kinds that
// come once per episode at most. The first fast retransmission is traced
// as the episode's start ("fast-retransmit") and a timeout as "rto"; the
// retransmissions that follow them are counted, not traced.
func (k rtxKind) traceEvent() string {
	switch k {
	case rtxLost:
		return "lost-retransmit"
	case rtxRescue:
		return "rescue"
	case rtxTLP:
		return "tlp"
	}
	return ""
}

// countRetransmit books one retransmitted segment of kind k.
func (c *Conn) countRetransmit(now Time, k rtxKind) {
	c.e.stats.RetransSegs++
	c.counters().Retransmits++
	switch k {
	case rtxRTO:
		c.counters().RTORetransmits++
	case rtxFast:
		c.counters().FastRetransmits++
	case rtxLost:
		c.counters().LostRetransmits++
	case rtxRescue:
		c.counters().RescueRetransmits++
	case rtxTLP:
		c.counters().TLPRetransmits++
	case rtxSYN:
		c.counters().SYNRetransmits++
		c.e.stats.SynRetrans++ // TCPSynRetrans: Linux __tcp_retransmit_skb for a SYN, tcp_rtx_synack
	}
	if k == rtxFast || k == rtxLost || k == rtxRescue {
		// TCPFastRetrans: Linux tcp_xmit_retransmit_queue counts every
		// segment it resends outside the loss state; ours are these kinds.
		c.e.stats.FastRetrans++
	}
	if ev := k.traceEvent(); ev != "" {
		c.trace(now, ev)
	}
}
