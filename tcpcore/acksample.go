package tcpcore

import (
	"time"

	"tunstack/congestion"
)

// ackSample gives a controller that wants one (congestion.AckSampler) the
// RTT sample Linux gives a congestion control's pkts_acked hook for every
// ACK of new data (tcp_clean_rtx_queue's ca_rtt_us): the time since the
// newest segment the ACK acknowledges in full was first sent. Karn's rule
// as Linux applies it: none when the ACK covers retransmitted data, unless
// timestamps measured it (tsRTT, tcp_ack_update_rtt). prevUna is SND.UNA
// before the ACK. The ACK of our SYN gives none: Linux initialises the
// controller after it, which clears what that sample set
// (tcp_init_congestion_control).
func (c *Conn) ackSample(now Time, prevUna Seq, tsRTT time.Duration) {
	if prevUna == c.iss {
		return
	}
	s, ok := c.ccw().(congestion.AckSampler)
	if !ok {
		return
	}
	var rtt time.Duration
	switch {
	case c.ackedSentAt != 0 && (c.rareR().bytesRetrans == 0 || prevUna.GE(c.rare.rtxHigh)):
		rtt = now.Sub(c.ackedSentAt)
	case c.tsOK && tsRTT > 0:
		rtt = tsRTT
	}
	s.OnAckSample(time.Duration(now), rtt, uint32(c.sndUna), uint32(c.sndNxt))
}
