package tcpcore

import "encoding/binary"

// TCPInfo mirrors Linux's struct tcp_info (include/uapi/linux/tcp.h as of
// Linux 6.18: 280 bytes), field for field and in Linux's units: times in
// microseconds except where a field says otherwise, sizes in bytes, counts
// in segments. Conn.TCPInfo fills it the way Linux's tcp_get_info does;
// Bytes lays it out as the binary struct a getsockopt(TCP_INFO) returns.
//
// Fields this engine does not track are zero; each says why in its comment.
type TCPInfo struct {
	State       uint8 // Linux's TCP_* state number (TCP_ESTABLISHED = 1, ...)
	CAState     uint8 // TCP_CA_Open, Disorder, CWR, Recovery or Loss
	Retransmits uint8 // RTO expirations of the current outstanding data (icsk_retransmits)
	Probes      uint8 // unanswered zero-window or keepalive probes
	Backoff     uint8 // RTO or persist-timer doublings
	Options     uint8 // TCPIOpt* bits
	SndWscale   uint8 // 4 bits on the wire
	RcvWscale   uint8 // 4 bits on the wire
	// DeliveryRateAppLimited (1 bit) and FastopenClientFail (2 bits): zero,
	// the engine has no delivery-rate sampler and no TCP Fast Open.
	DeliveryRateAppLimited uint8
	FastopenClientFail     uint8

	RTO    uint32 // µs
	ATO    uint32 // µs, delayed-ACK timeout
	SndMSS uint32
	RcvMSS uint32

	Unacked uint32 // segments in flight
	Sacked  uint32 // segments SACKed
	Lost    uint32 // segments marked lost
	Retrans uint32 // retransmitted segments still in flight
	Fackets uint32 // always zero on Linux since 4.x; zero here too

	LastDataSent uint32 // ms since the last data segment was sent
	LastAckSent  uint32 // zero: Linux does not remember it either
	LastDataRecv uint32 // ms since the last data segment arrived
	LastAckRecv  uint32 // ms since the last ACK arrived

	PMTU        uint32 // path MTU the connection uses
	RcvSsthresh uint32 // window clamp the receiver grows its advertisement toward
	RTT         uint32 // µs, smoothed
	RTTVar      uint32 // µs
	SndSsthresh uint32 // segments
	SndCwnd     uint32 // segments
	AdvMSS      uint32 // MSS we advertised
	Reordering  uint32 // duplicate-ACK threshold, segments

	RcvRTT   uint32 // µs, receiver-side RTT estimate
	RcvSpace uint32 // bytes, receive-buffer auto-tuning's space

	TotalRetrans uint32 // segments retransmitted over the connection's life

	PacingRate    uint64 // bytes/s
	MaxPacingRate uint64 // bytes/s (SO_MAX_PACING_RATE; ~0 when unset)
	BytesAcked    uint64
	BytesReceived uint64
	SegsOut       uint32
	SegsIn        uint32

	NotsentBytes uint32
	MinRTT       uint32 // µs
	DataSegsIn   uint32
	DataSegsOut  uint32

	DeliveryRate uint64 // bytes/s

	BusyTime      uint64 // µs
	RwndLimited   uint64 // µs
	SndbufLimited uint64 // µs

	Delivered   uint32
	DeliveredCE uint32

	BytesSent    uint64
	BytesRetrans uint64
	DSACKDups    uint32
	ReordSeen    uint32

	RcvOOOPack uint32

	SndWnd uint32 // bytes, the peer's window after scaling
	RcvWnd uint32 // bytes, the window we last advertised

	Rehash             uint32
	TotalRTO           uint16
	TotalRTORecoveries uint16
	TotalRTOTime       uint32 // ms

	// Accurate ECN counters (Linux 6.18): zero, the engine negotiates no
	// ECN.
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
// produces: 276 bytes of fields and 4 of tail padding (the struct holds
// 64-bit fields, so its size is a multiple of 8). Linux copies
// min(optlen, size) bytes, so a caller with an older, shorter struct gets
// its prefix.
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
	return append(b, 0, 0, 0, 0) // tail padding
}

// TCPInfo returns the connection's struct tcp_info at now.
func (c *Conn) TCPInfo(now Time) TCPInfo {
	var t TCPInfo
	c.fillTCPInfo(now, &t)
	return t
}

// fillTCPInfo computes each field as Linux's tcp_get_info does.
func (c *Conn) fillTCPInfo(now Time, t *TCPInfo) {
	t.State = linuxState(c.state)
}

// linuxState maps an RFC 9293 state to Linux's TCP_* number.
func linuxState(s State) uint8 {
	switch s {
	case Established:
		return 1
	case SynSent:
		return 2
	case SynReceived:
		return 3
	case FinWait1:
		return 4
	case FinWait2:
		return 5
	case TimeWait:
		return 6
	case CloseWait:
		return 8
	case LastAck:
		return 9
	case Listen:
		return 10
	case Closing:
		return 11
	}
	return 7 // TCP_CLOSE
}
