package tcpcore

import "tunstack/wire"

// sender is the send half of a connection (RFC 9293 §3.3.1, Figure 3):
// the send sequence space, the send buffer, and the state of the send
// policy (Nagle in Minshall's form, TCP_CORK, PSH per GSO-sized chunk) and
// of window validation. Conn embeds it; output.go sends from it.
//
// Invariants:
//   - SND.UNA <= SND.NXT <= SND.MAX. Nothing rewinds SND.NXT: every
//     retransmission goes through retransmit, the probes or the SYN path.
//   - sndBuf holds the bytes from sndBufSeq on: unacknowledged, then
//     unsent; sndBufSeq is SND.UNA once the SYN is acknowledged (our FIN,
//     which has no byte, may lie one beyond the buffer's end).
//   - sndBuf.Len() <= sndBufMax when the engine sizes the buffer; one the
//     application sized holds what Linux's accounting lets in (sndbuf.go).
type sender struct {
	iss       Seq
	sndUna    Seq // oldest unacknowledged
	sndNxt    Seq // next to send
	sndMax    Seq // highest sequence number sent + 1
	sndWnd    int // peer's window, bytes, already scaled
	sndWl1    Seq // SEG.SEQ of the last window update
	sndWl2    Seq // SEG.ACK of the last window update
	maxSndWnd int // largest window the peer offered, bytes (RFC 1122 §4.2.3.4)

	sndBuf    ring // bytes from sndBufSeq on: unacknowledged, then unsent
	sndBufSeq Seq  // sequence number of sndBuf's first byte
	// maxFlight is the largest flight (bytes) of the round trip that ends
	// when SND.UNA reaches flightRoundEnd (RFC 7661 window validation).
	flightRoundEnd Seq
	maxFlight      int
	sndBufMax      int      // SO_SNDBUF, bytes
	units          sndUnits // the queue's buffers as Linux cuts them, while sndBufLocked (sndbuf.go)
	segsSincePush  int      // new-data segments of the packet being sent, in this output pass (a FIN on a packet's later segment needs no window)
	pushEvery      int      // the packet ends after this many segments (packetSegments, sized per packet); 0: never
	lastSend       Time     // last data transmission, for idle restart
	sndSml         Seq      // end of the last sub-MSS segment sent (Minshall's Nagle)
	// inHost counts the packets carrying the connection's sequence space
	// (data, SYN or FIN) that the engine made and the driver has not
	// released yet: segments that have not left the host, which a tail
	// loss probe does not resend (onTLP).
	inHost       int32
	sndBufLocked bool // SO_SNDBUF set by the application: no auto-tuning, Linux's accounting (sndbuf.go)
	corkExpired  bool
	writeMore    bool // inside WriteMore: the write's partial tail is held as under TCP_CORK
	pushQueued   bool // TCP_NODELAY was set: what is queued goes out past TCP_CORK (until the next write)
	finQueued    bool // application shut down writing: FIN follows the data
	finSent      bool // FIN transmitted at least once
	wrShut       bool // no more writes accepted
}

// validatedFlight is the flight a congestion controller judges cwnd by
// (RFC 7661 §4; Linux tcp_is_cwnd_limited): the largest flight of the
// last round trip, not just the flight at this ACK. A controller takes a
// window with less than one SMSS free as used (congestion.Controller's
// OnAck).
func (c *Conn) validatedFlight(flight int) int {
	f := max(flight, c.maxFlight)
	if cc := c.ccw(); cc.CongestionWindow() < cc.SlowStartThreshold() {
		// Linux behaviour (tcp_is_cwnd_limited): in slow start cwnd
		// counts as used while it is below twice the largest flight, so
		// a window the application nearly fills still grows; one exactly
		// twice the flight does not. Twice the flight less one SMSS is
		// what makes the controllers' test say so.
		f = 2*f - c.sndMSS
	}
	return f
}

// noteFlight records the flight after sending new data: the round trip's
// largest, restarted once the previous one's data is acknowledged (Linux
// tcp_cwnd_validate's max_packets_out and cwnd_usage_seq).
func (c *Conn) noteFlight() {
	flight := c.sndMax.Sub(c.sndUna)
	if c.sndUna.GE(c.flightRoundEnd) || flight > c.maxFlight {
		c.maxFlight = flight
		c.flightRoundEnd = c.sndNxt
	}
}

// expandSndBuf grows the send buffer with the congestion window (Linux
// tcp_sndbuf_expand): twice cwnd keeps a full window in flight while the
// next one is written. Grow-only, bounded by the profile's SndBufMax, and
// off once the application set SO_SNDBUF.
func (c *Conn) expandSndBuf() {
	if c.sndBufLocked {
		return
	}
	if want := min(2*c.cwnd(), c.e.prof.SndBufMax); want > c.sndBufMax {
		c.sndBufMax = want
		c.wake() // more room to write
	}
}

// sndRingLimit is the capacity the send ring may double up to: the
// profile's maximum while expandSndBuf may raise sndBufMax to it, the
// application's SO_SNDBUF once set. sndRoom keeps what the ring holds
// within sndBufMax whatever its capacity.
func (c *Conn) sndRingLimit() int {
	if c.sndBufLocked {
		return c.sndBufMax
	}
	return max(c.sndBufMax, c.e.prof.SndBufMax)
}

// segSize is the payload that fits in the next segment: the send MSS (the
// peer's MSS less the timestamp option) less the SACK blocks the segment
// will carry. RFC 6691: options count against the MSS; Linux's
// tcp_current_mss does the same, so data segments that carry SACK or
// D-SACK blocks shrink rather than overflow the path.
//
// Like Linux (tcp_bound_to_half_wnd), a segment is also no larger than
// half the largest window the peer has offered, so that a peer with a
// small window gets at least two segments per window and can ACK every
// other one; it is never cut below 68 bytes less the TCP header.
func (c *Conn) segSize() int {
	n := c.sndMSS
	if c.sackOK {
		var blocks int
		if c.rare != nil {
			blocks = len(c.rare.ooo.blocks)
		}
		if c.dsackPending {
			blocks++
		}
		if blocks > 0 {
			maxBlocks := wire.MaxSACKBlocks
			if c.tsOK {
				maxBlocks = 3
			}
			n -= 4 + 8*min(blocks, maxBlocks)
		}
	}
	cutoff := c.maxSndWnd
	if cutoff > 536 {
		cutoff /= 2
	}
	if cutoff > 0 && n > cutoff {
		hdr := 20 // TCP header; timestamps add 12
		if c.tsOK {
			hdr += 12
		}
		n = max(cutoff, 68-hdr) // Linux: 68 - tcp_header_len
	}
	return n
}

// packetSegments is how many segments the packet that starts at SND.NXT
// holds, as Linux's tcp_write_xmit bounds each TSO packet it builds:
// tso_segs (gsoChunkSegments); half the congestion window, "at least two
// packets in flight", and the room the window has left, room bytes
// (tcp_cwnd_test); the send window (tcp_mss_split_point). Always at least
// one; 0 for profiles without GSO chunks (PushEverySegments 0).
func (c *Conn) packetSegments(mss, room int) int {
	segs := c.gsoChunkSegments()
	if segs == 0 || mss <= 0 {
		return segs
	}
	if c.hasCC() {
		// In flight plus room is cwnd, or in fast recovery the window
		// PRR allows, as Linux sets snd_cwnd (tcp_cwnd_reduction).
		cwnd := c.pipe() + max(room, 0)
		segs = min(segs, max(cwnd/c.sndMSS/2, 1), max(room/c.sndMSS, 1))
	}
	if wnd := c.sndUna.Add(c.sndWnd).Sub(c.sndNxt); wnd > 0 {
		segs = min(segs, (wnd+mss-1)/mss)
	}
	return max(segs, 1)
}

// gsoChunkSegments is how many segments Linux puts in one TSO/GSO chunk
// at the connection's present rate (tcp_tso_autosize), and so how often
// it sets PSH in a long write: about a millisecond of data at the pacing
// rate (sk_pacing_shift 10), which is cwnd/SRTT times 2 in slow start and
// 1.2 after (tcp_update_pacing_rate), plus up to a whole 64 KiB chunk
// when the minimum RTT is below half a millisecond (tcp_tso_rtt_log 9);
// never fewer than PushEverySegments (tcp_min_tso_segs) nor more than 64
// KiB. On a 10 ms path with ten segments in flight that is two segments,
// which is what packetdrill scripts see; on a TUN next door it is 44.
func (c *Conn) gsoChunkSegments() int {
	const gsoMaxBytes = 65536
	minSegs := c.e.prof.PushEverySegments
	if minSegs == 0 || !c.rtt.hasSample || c.rtt.srtt <= 0 || !c.hasCC() {
		return minSegs
	}
	cc := c.ccw()
	cwnd := cc.CongestionWindow()
	ratio := 1.2
	if cwnd < cc.SlowStartThreshold()/2 {
		ratio = 2
	}
	rate := float64(max(cwnd, c.outstanding())) / c.rtt.srtt.Seconds() * ratio
	bytes := int(rate) >> 10
	if r := c.rtt.minRTT.Microseconds() >> 9; r < 32 {
		bytes += gsoMaxBytes >> r
	}
	bytes = min(bytes, gsoMaxBytes)
	return max(bytes/max(c.sndMSS, 1), minSegs)
}
