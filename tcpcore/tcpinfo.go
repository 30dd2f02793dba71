package tcpcore

import (
	"encoding/binary"
	"time"

	"tunstack/congestion"
)

// TCPInfo mirrors Linux's struct tcp_info (include/uapi/linux/tcp.h as of
// Linux 6.18: 280 bytes), field for field and in Linux's units: RTO, ATO
// and the RTTs in microseconds, the ages of the last activity and
// TotalRTOTime in milliseconds, sizes and windows in bytes, the other
// counts in segments. Conn.TCPInfo fills it as Linux's tcp_get_info does,
// from what the engine tracks; Bytes lays it out as the binary struct a
// getsockopt(TCP_INFO) returns.
//
// Where the engine differs from Linux the field reports the engine:
//   - RTT and RTTVar come from the engine's RFC 6298 estimator (Linux's
//     mdev differs in how it weighs falling samples); MinRTT is the
//     smallest sample of the connection's life (Linux's is windowed over
//     five minutes), ^0 before any sample as in Linux.
//   - Unacked, Sacked, Lost and Retrans count the segments as they were
//     first sent (a SYN or FIN alone counts one); a retransmission that
//     merges segments does not merge them here. Sacked without SACK is the
//     duplicate ACKs, as in Linux. Retrans leaves out a tail loss probe's
//     retransmission, which the engine does not track once sent.
//   - Delivered is the segments cumulatively acknowledged plus those SACKed
//     now; the engine forgets SACKs at a retransmission timeout, Linux
//     keeps them.
//   - RcvSpace is the engine's receive auto-tuning measure, which starts
//     at 0 (Linux starts it at the initial window).
//   - ReordSeen counts the reorderings the engine acts on: D-SACKs that
//     show a recovery's every retransmission spurious.
//   - TotalRTOTime ends an episode of timeouts at the next ACK of new data
//     (when Retransmits resets).
//   - SndMSS is 0 until the peer's SYN gave its MSS; before the handshake
//     completes the ages of the last activity are 0 and SndCwnd is the
//     initial window.
//
// Always zero, because the engine has no such mechanism: FastopenClientFail
// and TCPIOptSYNData (no TCP Fast Open), CAState CWR, DeliveredCE,
// TCPIOptECN and TCPIOptECNSeen and the AccECN counters (no ECN),
// DeliveryRate and DeliveryRateAppLimited (no delivery-rate sampler),
// BusyTime, RwndLimited and SndbufLimited (no send-limit chronograph),
// Rehash (no flow hash to rethink). Zero in Linux too: Fackets and
// LastAckSent.
type TCPInfo struct {
	State       uint8 // Linux's TCP_* state number (TCP_ESTABLISHED = 1, ...)
	CAState     uint8 // TCPCA*: Open, Disorder, CWR, Recovery or Loss
	Retransmits uint8 // retransmission timeouts since the last ACK of new data (icsk_retransmits)
	Probes      uint8 // unanswered zero-window or keepalive probes (icsk_probes_out)
	Backoff     uint8 // doublings of the RTO or the persist interval (icsk_backoff)
	Options     uint8 // TCPIOpt* bits
	SndWscale   uint8 // peer's window scale; 4 bits in the binary struct
	RcvWscale   uint8 // our window scale; 4 bits in the binary struct
	// One bit and two bits in the binary struct.
	DeliveryRateAppLimited uint8
	FastopenClientFail     uint8

	RTO    uint32 // µs, backed off
	ATO    uint32 // µs, delayed-ACK timeout
	SndMSS uint32 // payload of a full segment we send
	RcvMSS uint32 // estimate of the peer's segment size

	Unacked uint32 // segments sent, not cumulatively acknowledged
	Sacked  uint32 // of which SACKed
	Lost    uint32 // of which deemed lost
	Retrans uint32 // of which retransmitted
	Fackets uint32

	LastDataSent uint32 // ms since a segment with data was sent
	LastAckSent  uint32
	LastDataRecv uint32 // ms since in-order data arrived
	LastAckRecv  uint32 // ms since an acceptable ACK arrived

	PMTU        uint32 // the path MTU: the link's until an ICMP error lowers it
	RcvSsthresh uint32 // bytes, cap on the window we advertise
	RTT         uint32 // µs, smoothed
	RTTVar      uint32 // µs
	SndSsthresh uint32 // segments; 0x7fffffff while unset
	SndCwnd     uint32 // segments
	AdvMSS      uint32 // MSS we advertised, less the timestamp option as Linux keeps it
	Reordering  uint32 // duplicate-ACK threshold, segments

	RcvRTT   uint32 // µs, receiver-side RTT estimate (timestamps)
	RcvSpace uint32 // bytes

	TotalRetrans uint32 // segments retransmitted, SYNs included

	PacingRate    uint64 // bytes/s; ^0 before an RTT sample
	MaxPacingRate uint64 // bytes/s; ^0, no SO_MAX_PACING_RATE
	BytesAcked    uint64 // sequence space, SYN and FIN included
	BytesReceived uint64 // sequence space, FIN included
	SegsOut       uint32
	SegsIn        uint32

	NotsentBytes uint32 // written, not yet sent
	MinRTT       uint32 // µs
	DataSegsIn   uint32
	DataSegsOut  uint32 // retransmissions included

	DeliveryRate uint64

	BusyTime      uint64
	RwndLimited   uint64
	SndbufLimited uint64

	Delivered   uint32
	DeliveredCE uint32

	BytesSent    uint64 // payload bytes, retransmissions included
	BytesRetrans uint64 // payload bytes retransmitted
	DSACKDups    uint32 // segments the peer reported receiving twice
	ReordSeen    uint32

	RcvOOOPack uint32 // segments received out of order

	SndWnd uint32 // bytes, the peer's window after scaling
	RcvWnd uint32 // bytes, the window of our last ACK

	Rehash             uint32
	TotalRTO           uint16 // retransmission timeouts
	TotalRTORecoveries uint16 // episodes of them
	TotalRTOTime       uint32 // ms spent in those episodes

	ReceivedCE       uint32
	DeliveredE1Bytes uint32
	DeliveredE0Bytes uint32
	DeliveredCEBytes uint32
	ReceivedE1Bytes  uint32
	ReceivedE0Bytes  uint32
	ReceivedCEBytes  uint32
}

// Bits of TCPInfo.Options (Linux's TCPI_OPT_*).
const (
	TCPIOptTimestamps = 1
	TCPIOptSACK       = 2
	TCPIOptWscale     = 4
	TCPIOptECN        = 8
	TCPIOptECNSeen    = 16
	TCPIOptSYNData    = 32
	TCPIOptUSec       = 64
	TCPIOptTFOChild   = 128
)

// Linux's congestion-avoidance states (TCPInfo.CAState).
const (
	TCPCAOpen     = 0
	TCPCADisorder = 1
	TCPCACWR      = 2
	TCPCARecovery = 3
	TCPCALoss     = 4
)

// TCPInfoSize is the size of Linux 6.18's struct tcp_info, which Bytes
// produces: the fields above in 276 bytes, then 4 bytes that are always
// zero here (the struct's size is a multiple of 8 as it holds 64-bit
// fields). Linux copies min(optlen, size) bytes, so a caller with an
// older, shorter struct gets its prefix.
const TCPInfoSize = 280

// Bytes lays the snapshot out as Linux's binary struct tcp_info on a
// little-endian machine: same offsets, same size (TCPInfoSize).
func (t *TCPInfo) Bytes() []byte { return t.AppendBytes(make([]byte, 0, TCPInfoSize)) }

// AppendBytes appends the binary struct tcp_info to b.
func (t *TCPInfo) AppendBytes(b []byte) []byte {
	le := binary.LittleEndian
	b = append(b, t.State, t.CAState, t.Retransmits, t.Probes, t.Backoff, t.Options,
		t.SndWscale&0xf|t.RcvWscale<<4, t.DeliveryRateAppLimited&1|(t.FastopenClientFail&3)<<1)
	for _, v := range [...]uint32{t.RTO, t.ATO, t.SndMSS, t.RcvMSS,
		t.Unacked, t.Sacked, t.Lost, t.Retrans, t.Fackets,
		t.LastDataSent, t.LastAckSent, t.LastDataRecv, t.LastAckRecv,
		t.PMTU, t.RcvSsthresh, t.RTT, t.RTTVar, t.SndSsthresh, t.SndCwnd, t.AdvMSS, t.Reordering,
		t.RcvRTT, t.RcvSpace, t.TotalRetrans} {
		b = le.AppendUint32(b, v)
	}
	for _, v := range [...]uint64{t.PacingRate, t.MaxPacingRate, t.BytesAcked, t.BytesReceived} {
		b = le.AppendUint64(b, v)
	}
	for _, v := range [...]uint32{t.SegsOut, t.SegsIn, t.NotsentBytes, t.MinRTT, t.DataSegsIn, t.DataSegsOut} {
		b = le.AppendUint32(b, v)
	}
	for _, v := range [...]uint64{t.DeliveryRate, t.BusyTime, t.RwndLimited, t.SndbufLimited} {
		b = le.AppendUint64(b, v)
	}
	b = le.AppendUint32(b, t.Delivered)
	b = le.AppendUint32(b, t.DeliveredCE)
	b = le.AppendUint64(b, t.BytesSent)
	b = le.AppendUint64(b, t.BytesRetrans)
	for _, v := range [...]uint32{t.DSACKDups, t.ReordSeen, t.RcvOOOPack, t.SndWnd, t.RcvWnd, t.Rehash} {
		b = le.AppendUint32(b, v)
	}
	b = le.AppendUint16(b, t.TotalRTO)
	b = le.AppendUint16(b, t.TotalRTORecoveries)
	for _, v := range [...]uint32{t.TotalRTOTime, t.ReceivedCE, t.DeliveredE1Bytes, t.DeliveredE0Bytes,
		t.DeliveredCEBytes, t.ReceivedE1Bytes, t.ReceivedE0Bytes, t.ReceivedCEBytes} {
		b = le.AppendUint32(b, v)
	}
	return append(b, 0, 0, 0, 0)
}

// TCPInfo returns the connection's struct tcp_info at now.
func (c *Conn) TCPInfo(now Time) TCPInfo {
	var t TCPInfo
	c.fillTCPInfo(now, &t)
	return t
}

// fillTCPInfo computes each field as Linux's tcp_get_info does, from
// what the engine tracks.
func (c *Conn) fillTCPInfo(now Time, t *TCPInfo) {
	t.State = c.state.Linux()
	t.CAState = c.caState()
	t.Retransmits = sat8(c.retries)
	t.Probes = sat8(c.rareR().probes + int(c.kaProbes))
	t.Backoff = sat8(max(c.backoff, c.rareR().persistBackoff))
	t.Options, t.SndWscale, t.RcvWscale = c.tcpiOptions()
	c.fillTimes(now, t)
	c.fillSegments(t)
	c.fillWindows(t)
	c.fillCounters(t)
}

// caState is Linux's icsk_ca_state: Open, or Disorder while SACKed (or,
// without SACK, duplicate-ACKed), lost or retransmitted data is
// outstanding (tcp_try_keep_open, recovery.go's disorder);
// Recovery in fast recovery; Loss after a retransmission timeout. CWR is
// never reported: it follows ECN or local congestion, which the engine
// does not have.
func (c *Conn) caState() uint8 {
	switch c.recovery {
	case recoveryFast:
		return TCPCARecovery
	case recoveryLoss:
		return TCPCALoss
	}
	if c.disorder || c.sacked() > 0 {
		return TCPCADisorder
	}
	return TCPCAOpen
}

// tcpiOptions is tcpi_options with the window scales, which Linux reports
// only when scaling was negotiated.
func (c *Conn) tcpiOptions() (opts, snd, rcv uint8) {
	if c.tsOK {
		opts |= TCPIOptTimestamps
	}
	if c.sackOK {
		opts |= TCPIOptSACK
	}
	if c.wsOK {
		opts |= TCPIOptWscale
		snd, rcv = c.sndWscale, c.rcvWscale
	}
	return opts, snd, rcv
}

// fillTimes sets the timer values (µs) and the ages of the last activity
// (ms, as Linux's jiffies_to_msecs gives them). Before the handshake
// completes the ages are zero: Linux has no meaningful value then either.
func (c *Conn) fillTimes(now Time, t *TCPInfo) {
	p := c.e.prof
	// icsk_rto is the backed-off RTO (tcp_retransmit_timer doubles it).
	t.RTO = usec(c.rtt.backedOff(c.backoff))
	t.ATO = usec(min(c.ato, p.DelAckMax))
	t.RTT = usec(c.rtt.srtt)
	t.RTTVar = usec(c.rtt.rttvar)
	t.MinRTT = ^uint32(0) // Linux: no sample yet
	if c.rtt.hasSample {
		t.MinRTT = usec(c.rtt.minRTT)
	}
	t.RcvRTT = usec(c.rcvRTT)
	if c.establishedAt == 0 {
		return
	}
	t.LastDataSent = msec(now.Sub(c.lastDataOut))
	t.LastDataRecv = msec(now.Sub(max(c.lastDataRecv, c.establishedAt)))
	t.LastAckRecv = msec(now.Sub(c.lastAckIn))
	var r rareState
	if c.rare != nil {
		r = *c.rare
	}
	rtoTime := r.totalRTOTime
	if r.rtoEpisodeAt != 0 {
		rtoTime += now.Sub(r.rtoEpisodeAt)
	}
	t.TotalRTOTime = msec(rtoTime)
}

// fillSegments sets the sizes and the counts Linux keeps in segments.
func (c *Conn) fillSegments(t *TCPInfo) {
	t.SndMSS = uint32(c.sndMSS)
	t.RcvMSS = uint32(c.rcvMSS)
	t.AdvMSS = uint32(c.advertisedMSS())
	if c.tsOK {
		// Linux behaviour: advmss loses the timestamp option once
		// timestamps are agreed, on either side of the handshake.
		t.AdvMSS -= 12
	}
	t.PMTU = uint32(c.pmtu) // the path MTU: the link's, lowered by ICMP (pmtu.go)
	t.Reordering = uint32(c.dupThresh)
	t.Unacked = c.segments(c.sndUna, c.sndMax, nil)
	// Lost, Retrans, Sacked: the segments deemed lost, with a
	// retransmission in flight, SACKed (Linux lost_out, retrans_out,
	// sacked_out; recovery's record, rack_queue.go).
	t.Lost = uint32(c.txq.lost.segs)
	t.Retrans = uint32(c.txq.retrans.segs)
	if c.sackOK {
		t.Sacked = uint32(c.txq.sacked.segs)
	} else {
		// Each duplicate ACK stands for a segment, with at least one hole
		// left (Linux tcp_limit_reno_sacked).
		t.Sacked = uint32(max(min(c.renoSacked, int(t.Unacked)-max(int(t.Lost), 1)), 0))
	}
	t.SndCwnd = uint32(c.initialCwndSegments())
	t.SndSsthresh = linuxInfiniteSsthresh
	if cwnd, ssthresh, _ := c.ccState(); c.hasCC() && c.sndMSS > 0 {
		t.SndCwnd = uint32(cwnd / c.sndMSS)
		if c.recovery == recoveryFast {
			// Linux's snd_cwnd in recovery is the window PRR sets
			// (tcp_cwnd_reduction; recovery.go's prr.cwnd).
			t.SndCwnd = uint32(c.rareR().prr.cwnd)
		}
		if ssthresh < congestionInfinity {
			t.SndSsthresh = uint32(ssthresh / c.sndMSS)
		}
	}
}

// segments counts, in segments as Linux counts packets, the part of
// [lo, hi) that part says qualifies (part(a, b) is how many bytes of [a, b)
// do; nil: all of them), one sent segment at a time (segEnds): a segment
// counts ceil(bytes/MSS), a SYN or FIN alone counts 1. lo is SND.UNA or
// above.
func (c *Conn) segments(lo, hi Seq, part func(a, b Seq) int) uint32 {
	var n uint32
	start := lo
	for i := 0; i < int(c.sent.n) && start.LT(hi); i++ {
		end := c.sent.at(i)
		if end.GT(start) {
			n += c.segCount(start, MinSeq(end, hi), part)
			start = end
		}
	}
	if start.LT(hi) {
		n += c.segCount(start, hi, part)
	}
	return n
}

func (c *Conn) segCount(a, b Seq, part func(a, b Seq) int) uint32 {
	n := b.Sub(a)
	if part != nil {
		n = part(a, b)
	}
	if fin := c.finSeq(); n > 1 && c.finSent && a.LE(fin) && fin.LT(b) {
		n-- // the FIN rides on a data segment
	}
	if n <= 0 {
		return 0
	}
	mss := max(c.sndMSS, 1)
	return uint32((n + mss - 1) / mss)
}

// congestionInfinity is the congestion controllers' "arbitrarily high"
// initial ssthresh (RFC 5681 §3.1), reported as Linux's
// TCP_INFINITE_SSTHRESH.
const (
	congestionInfinity    = congestion.InitialSSThresh
	linuxInfiniteSsthresh = 0x7fffffff
)

// initialCwndSegments is the window a connection starts with, in
// segments, before its controller exists (Linux sets snd_cwnd to
// TCP_INIT_CWND when the socket is made).
func (c *Conn) initialCwndSegments() int {
	mss := c.sndMSS
	if mss == 0 {
		mss = c.e.prof.DefaultSendMSS
	}
	cfg := congestion.Config{MSS: mss, InitialWindowSegments: c.e.prof.InitialCwndSegments}
	return cfg.InitialWindow() / mss
}

// fillWindows sets the window fields, in bytes.
func (c *Conn) fillWindows(t *TCPInfo) {
	t.SndWnd = uint32(max(c.sndWnd, 0))
	// Linux rcv_wnd is the window of the last ACK sent, from the RCV.NXT
	// it carried (rcv_wup).
	t.RcvWnd = uint32(max(c.rcvAdv.Sub(c.lastAckSent), 0))
	t.RcvSsthresh = uint32(c.rcvSsthresh)
	t.RcvSpace = uint32(c.rcvSpace)
	t.NotsentBytes = uint32(max(c.sndBuf.Len()-max(c.sndNxt.Sub(c.sndBufSeq), 0), 0))
	t.PacingRate, t.MaxPacingRate = c.pacingRate(t), ^uint64(0)
}

// pacingRate is the rate Linux's tcp_update_pacing_rate sets, in bytes
// per second: MSS * max(cwnd, packets in flight) / SRTT, times 2 in slow
// start below half ssthresh and 1.2 after (tcp_pacing_ss_ratio,
// tcp_pacing_ca_ratio). The engine does not pace, but sizes its bursts by
// this rate (gsoChunkSegments). ~0, Linux's "unlimited", before an RTT
// sample.
func (c *Conn) pacingRate(t *TCPInfo) uint64 {
	if !c.hasCC() || !c.rtt.hasSample || c.rtt.srtt <= 0 {
		return ^uint64(0)
	}
	ratio := uint64(120)
	if t.SndCwnd < t.SndSsthresh/2 {
		ratio = 200
	}
	// bytes/s = MSS * segments * ratio/100 / (SRTT ns / 1e9)
	return uint64(c.sndMSS) * uint64(max(t.SndCwnd, t.Unacked)) * ratio * 1e7 / uint64(c.rtt.srtt)
}

// fillCounters sets the per-connection counters. Linux counts bytes
// acknowledged and received in sequence space, so the FIN counts one
// (tcp_snd_una_update, tcp_rcv_nxt_update), and so does an active open's
// SYN; a passive open's SYN-ACK is acknowledged before the socket exists
// and a SYN's RCV.NXT is set without counting.
func (c *Conn) fillCounters(t *TCPInfo) {
	t.BytesAcked = c.info.BytesAcked
	if c.active && c.sndUna.GT(c.iss) && c.state != SynSent {
		t.BytesAcked++ // our SYN
	}
	if c.finAcked() {
		t.BytesAcked++
	}
	t.BytesReceived = c.info.BytesReceived
	if c.finRcvd {
		t.BytesReceived++
	}
	t.SegsOut, t.SegsIn = c.linuxSegs()
	t.DataSegsOut, t.DataSegsIn = uint32(c.dataSegsOut), uint32(c.dataSegsIn)
	t.TotalRetrans = uint32(c.rareR().Retransmits)
	var r rareState
	if c.rare != nil {
		r = *c.rare
	}
	t.BytesSent, t.BytesRetrans = c.bytesSent, r.bytesRetrans
	// Linux tp->delivered: segments acknowledged, cumulatively or by SACK.
	t.Delivered = uint32(c.delivered) + t.Sacked
	t.DSACKDups = uint32(r.dsackDups)
	t.ReordSeen = uint32(r.reordSeen)
	t.RcvOOOPack = uint32(r.rcvOOOPack)
	t.TotalRTO = uint16(r.totalRTO) // 16 bits wide in Linux too, and wrap there
	t.TotalRTORecoveries = uint16(r.totalRTORecoveries)
}

// linuxSegs is SegsOut and SegsIn as Linux counts them. A passive open's
// socket is made by the handshake's last ACK: the SYN-ACKs were the
// request's, not its own, and it starts having received the SYN and that
// ACK (tcp_create_openreq_child, tcp_child_process).
func (c *Conn) linuxSegs() (out, in uint32) {
	out, in = uint32(c.info.SegsOut), uint32(c.info.SegsIn)
	if c.active || c.establishedAt == 0 {
		return out, in
	}
	return out - uint32(c.segsOutAtEst), in - uint32(c.segsInAtEst) + 2
}

func usec(d time.Duration) uint32 { return uint32(min(max(d.Microseconds(), 0), 1<<32-1)) }
func msec(d time.Duration) uint32 { return uint32(min(max(d.Milliseconds(), 0), 1<<32-1)) }
func sat8(n int) uint8            { return uint8(min(max(n, 0), 255)) }

// TCPInfo returns a listener's struct tcp_info as Linux's tcp_get_info
// fills it for a socket in LISTEN: the state, the pacing rates (unset),
// the reordering threshold and the initial window, and two fields with a
// listener's meaning: Unacked is the accept queue's length and Sacked the
// backlog.
func (l *Listener) TCPInfo() TCPInfo {
	p := l.e.prof
	cfg := congestion.Config{MSS: p.DefaultSendMSS, InitialWindowSegments: p.InitialCwndSegments}
	return TCPInfo{
		State:         10, // TCP_LISTEN
		PacingRate:    ^uint64(0),
		MaxPacingRate: ^uint64(0),
		Reordering:    uint32(p.DupThresh),
		SndCwnd:       uint32(cfg.InitialWindow() / p.DefaultSendMSS),
		Unacked:       uint32(len(l.acceptQueue)),
		Sacked:        uint32(l.backlog),
	}
}
