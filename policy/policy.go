// Package policy holds every tunable the TCP engine uses, grouped into named
// profiles. The RFCs leave room in many places (timer bounds, retry counts,
// buffer sizes); a profile says how that room is used. The engine never
// contains a policy literal: it reads a *Profile.
package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"tunstack/congestion"
)

// Profile is one complete set of engine tunables. Units are in the names or
// the comments. A Profile is read-only once handed to an engine; use Clone to
// derive a variant.
type Profile struct {
	Name string

	// --- Retransmission (RFC 6298) ---

	InitialRTO time.Duration // RTO before any RTT sample (RFC 6298 §2.1: 1 s)
	RTOMin     time.Duration // lower bound on the RTO (Linux TCP_RTO_MIN 200 ms; RFC 6298 §2.4: 1 s)
	RTOMax     time.Duration // upper bound on the RTO (Linux TCP_RTO_MAX 120 s; RFC 6298 §2.5 allows >= 60 s)
	// RTOVarFloor selects Linux's formula RTO = SRTT + max(4*RTTVAR, RTOMin)
	// instead of RFC 6298's RTO = max(SRTT + 4*RTTVAR, RTOMin).
	RTOVarFloor bool
	// Retries2 is how many retransmissions of a data segment are made before
	// the connection is given up with ETIMEDOUT (Linux tcp_retries2).
	Retries2 int
	// SynRetries is how many times an active open retransmits its SYN
	// (Linux tcp_syn_retries).
	SynRetries int
	// SynAckRetries is how many times a passive open retransmits its SYN-ACK
	// (Linux tcp_synack_retries).
	SynAckRetries int
	// SynLinearTimeouts is how many SYN retransmissions keep the initial
	// RTO before exponential backoff starts (Linux 6.x
	// tcp_syn_linear_timeouts, default 4); 0 backs off from the first.
	SynLinearTimeouts int

	// --- Connection lifetime ---

	MSL         time.Duration // maximum segment lifetime (RFC 9293 §3.4.2: 2 min)
	TimeWaitLen time.Duration // TIME-WAIT duration (2*MSL in the RFC; Linux fixes 60 s)
	FinTimeout  time.Duration // FIN-WAIT-2 lifetime of an orphaned connection (Linux tcp_fin_timeout)

	KeepAliveIdle     time.Duration // idle time before the first probe (tcp_keepalive_time)
	KeepAliveInterval time.Duration // time between unanswered probes (tcp_keepalive_intvl)
	KeepAliveProbes   int           // unanswered probes before the connection is dropped (tcp_keepalive_probes)

	// --- Segment sizes and options ---

	DefaultSendMSS int  // MSS assumed when the peer sends none (RFC 9293 §3.7.1: 536)
	MinSendMSS     int  // floor on the peer's advertised MSS (Linux tcp_min_snd_mss 48)
	WindowScaling  bool // offer RFC 7323 window scaling (tcp_window_scaling)
	Timestamps     bool // offer RFC 7323 timestamps (tcp_timestamps)
	SACK           bool // offer SACK-permitted (RFC 2018; tcp_sack)
	DSACK          bool // send D-SACK blocks (RFC 2883; tcp_dsack)

	// --- Buffers (bytes) ---

	SndBuf    int // default send buffer (tcp_wmem[1])
	SndBufMax int // ceiling for SO_SNDBUF / auto-tuning (tcp_wmem[2])
	RcvBuf    int // default receive buffer (tcp_rmem[1])
	RcvBufMax int // ceiling for SO_RCVBUF / auto-tuning (tcp_rmem[2]); decides the window-scale factor
	// OOOMaxSegments bounds the out-of-order queue by segment count, whatever
	// the byte space says, so a peer cannot make us keep tiny fragments.
	OOOMaxSegments int

	// --- Congestion control (RFC 5681) ---

	Congestion string // controller name: "reno", "newreno", "cubic", "tahoe"
	// InitialCwndSegments is the initial window in segments; 0 means RFC
	// 5681 §3.1's rule (2 to 4 segments by SMSS).
	InitialCwndSegments int
	// DupThresh is the initial duplicate-ACK threshold for fast
	// retransmit (RFC 5681 §3.2: 3; Linux tcp_reordering).
	DupThresh int
	// MaxReordering caps DupThresh as reordering is detected (Linux
	// tcp_max_reordering).
	MaxReordering int
	// RACK detects losses by time (RFC 8985 RACK, as Linux with
	// tcp_recovery=1): a segment is lost once a segment sent after it
	// was delivered and a reordering window has passed, which also
	// finds lost retransmissions; the reordering window is armed as a
	// timer. Without SACK it means Linux's NewReno (RFC 6582) whatever
	// the congestion controller. Off: RFC 6675's DupThresh rule (IsLost)
	// decides, with its rescue retransmission, and the controller's own
	// recovery rule applies without SACK.
	RACK bool
	// FRTO detects spurious retransmission timeouts with F-RTO (RFC 5682,
	// as Linux with tcp_frto=1 or 2): after a timeout's first
	// retransmission is acknowledged, new data goes out instead of more
	// retransmissions, and an ACK of data never retransmitted then shows
	// the timeout was spurious, which undoes the window reduction. Off:
	// RFC 5681 §3.1 and RFC 6298 §5, the outstanding data is resent.
	FRTO bool
	// SlowStartAfterIdle resets cwnd to the restart window after an idle
	// period longer than the RTO (RFC 5681 §4.1; tcp_slow_start_after_idle).
	// SlowStartLimitSegments caps cwnd growth per ACK in slow start, in
	// segments (RFC 3465's L). RFC 5681 §3.1 says 1; Linux has no cap
	// (tcp_slow_start grows by every segment acknowledged): 0.
	SlowStartLimitSegments int
	SlowStartAfterIdle     bool
	// IdleRestartHalving makes the restart after idle (SlowStartAfterIdle)
	// halve cwnd once for each RTO of idleness, down to the restart
	// window, and raise ssthresh to 3/4 of cwnd, as Linux's
	// tcp_cwnd_restart does (RFC 2861 §3). Off: RFC 5681 §4.1, cwnd =
	// min(RW, cwnd) at once.
	IdleRestartHalving bool
	// HyStart lets CUBIC leave slow start before the first loss, on a
	// round trip whose RTT rose or a long train of closely spaced ACKs, as
	// Linux's tcp_cubic does by default (its hystart module parameter).
	// RFC 9438 has no such rule (§4.10 allows RFC 9406's HyStart++).
	HyStart bool
	// CubicLinuxGrowth runs CUBIC's congestion avoidance in Linux's
	// tcp_cubic integer arithmetic: the target W_max - C·(K-t)³ floored
	// in whole segments with t from the epoch start plus the minimum RTT,
	// one segment per cwnd/(target-cwnd) acknowledged, an integer
	// Reno-friendly estimate, and the epoch moved over idle time when
	// sending resumes. Off: RFC 9438's real-valued curve.
	CubicLinuxGrowth bool

	// --- ACK and send policy ---

	DelayedAck bool          // delay ACKs (RFC 1122 §4.2.3.2)
	DelAckMin  time.Duration // delayed-ACK timer floor (Linux TCP_DELACK_MIN 40 ms)
	DelAckMax  time.Duration // delayed-ACK timer ceiling (Linux TCP_DELACK_MAX 200 ms; RFC: < 500 ms)
	QuickAcks  int           // segments ACKed at once at the start of a connection (Linux quick-ACK mode, up to 16)
	// AckSecondOnlyIfWindowGrows sends the every-second-segment ACK only
	// when it would offer at least the window last announced, as Linux's
	// __tcp_ack_snd_check does: while the application does not read, the
	// ACK waits for the delayed-ACK timer instead of repeating a shrinking
	// window. Without it (RFC 1122 §4.2.3.2) every second full-sized
	// segment is acknowledged at once.
	AckSecondOnlyIfWindowGrows bool
	// PingPongOnFin enters delayed-ACK ("pingpong") mode when the peer's
	// FIN arrives in ESTABLISHED, so the FIN, bare or with data, is ACKed
	// by the delayed-ACK timer, on the bet that our reply or FIN will
	// carry the ACK (Linux tcp_fin); before any data has been received
	// that timer's timeout is 0. Without it a FIN is acknowledged at once.
	PingPongOnFin bool
	Nagle         bool          // Nagle's algorithm on by default (RFC 896)
	CorkLimit     time.Duration // longest TCP_CORK may hold a partial segment (Linux 200 ms)
	// TailLossProbe sends a probe 2*SRTT after the last transmission when
	// nothing else would reveal a lost tail (RFC 8985 §7; Linux
	// tcp_early_retrans=3). Like Linux, only on SACK connections.
	TailLossProbe bool
	// TLPDelAckAllowance is added to the probe timeout when a single
	// segment is outstanding, for the peer's delayed ACK (RFC 8985
	// WCDelAckT; Linux TCP_RTO_MIN).
	TLPDelAckAllowance time.Duration
	// PushEverySegments sets PSH at the end of each GSO-sized chunk of a
	// burst, besides the segment that empties the send queue, as Linux's
	// TSO/GSO chunks do: a chunk is about 1 ms of data at the pacing rate
	// (tcp_tso_autosize), at least this many segments (tcp_min_tso_segs,
	// 2). 0 marks only the segment that empties the queue.
	PushEverySegments int
	InvalidRateLimit  time.Duration // minimum gap between challenge/out-of-window ACKs per connection (tcp_invalid_ratelimit)

	// --- Zero-window probing (RFC 9293 §3.8.6.1) ---

	// ProbeNewByte sends one new byte as the zero-window probe instead of
	// Linux's SND.UNA-1 probe that carries no new data.
	ProbeNewByte bool
	// MaxZeroWindowProbes ends the connection with RST when the window is
	// still zero after that many probes, answered or not, as some
	// implementations do; 0 means Linux's rule: only Retries2
	// unanswered probes end it.
	MaxZeroWindowProbes int

	// --- Listen queues ---

	Somaxconn       int  // cap on listen()'s backlog (net.core.somaxconn)
	MaxSynBacklog   int  // tcp_max_syn_backlog: without cookies, SYNs are dropped once less than a quarter of it is left (the SYN queue itself holds backlog+1, as the accept queue)
	AbortOnOverflow bool // RST instead of dropping the final ACK when the accept queue is full (tcp_abort_on_overflow)
	SynCookies      bool // RFC 4987 SYN cookies when the SYN queue is full (tcp_syncookies=1)
	// BacklogBoundsBoth makes backlog bound the SYN and accept queues
	// together, as the BSD account (UNP) has it; otherwise only the accept
	// queue, which holds backlog+1 entries as in Linux.
	BacklogBoundsBoth bool

	// --- Ports ---

	LocalPortMin uint16 // ephemeral port range start (ip_local_port_range)
	LocalPortMax uint16 // ephemeral port range end
	// TwReuse is tcp_tw_reuse: whether an active open whose 4-tuple is
	// held by a connection in TIME-WAIT may take that entry over (Linux
	// tcp_twsk_unique). 0: never, the connect looks for another port; 1:
	// when the old connection had timestamps and entered TIME-WAIT more
	// than TwReuseDelay ago; 2: as 1 but only toward or from a loopback
	// address (127.0.0.0/8), Linux's default. Timestamps are what make it
	// safe: the new connection's timestamps continue the old one's, so
	// PAWS (RFC 7323 §5, Appendix B) rejects the old connection's
	// duplicates, and its ISN is the old SND.NXT + 65537, beyond them. A
	// connect from a port bound explicitly takes over a TIME-WAIT entry
	// with timestamps whatever TwReuse says, as in Linux. Linux's
	// tcp_tw_recycle, removed in 4.12 because it dropped SYNs from clients
	// behind one NAT whose timestamp clocks disagree, is not built.
	TwReuse int
	// TwReuseDelay is tcp_tw_reuse_delay (Linux 6.13 and later, 1 s):
	// how long an entry must have been in TIME-WAIT before TwReuse may
	// take it over (before 6.13 Linux waited for the second after the
	// peer's last timestamp).
	TwReuseDelay time.Duration
}

// Linux returns the profile of a Linux 6.x kernel with its default sysctls.
func Linux() *Profile {
	return &Profile{
		Name:                "linux",
		InitialRTO:          time.Second,
		RTOMin:              200 * time.Millisecond,
		RTOMax:              120 * time.Second,
		RTOVarFloor:         true,
		Retries2:            15,
		SynRetries:          6,
		SynAckRetries:       5,
		SynLinearTimeouts:   4,
		TailLossProbe:       true,
		TLPDelAckAllowance:  200 * time.Millisecond,
		PushEverySegments:   2,
		MSL:                 30 * time.Second,
		TimeWaitLen:         60 * time.Second,
		FinTimeout:          60 * time.Second,
		KeepAliveIdle:       7200 * time.Second,
		KeepAliveInterval:   75 * time.Second,
		KeepAliveProbes:     9,
		DefaultSendMSS:      536,
		MinSendMSS:          48,
		WindowScaling:       true,
		Timestamps:          true,
		SACK:                true,
		DSACK:               true,
		SndBuf:              16384,
		SndBufMax:           4194304,
		RcvBuf:              131072,
		RcvBufMax:           6291456,
		OOOMaxSegments:      1024,
		Congestion:          "cubic",
		InitialCwndSegments: 10,
		DupThresh:           3,
		MaxReordering:       300,
		RACK:                true,
		FRTO:                true,
		SlowStartAfterIdle:  true,
		IdleRestartHalving:  true,
		HyStart:             true,
		CubicLinuxGrowth:    true,
		DelayedAck:          true,
		DelAckMin:           40 * time.Millisecond,
		DelAckMax:           200 * time.Millisecond,
		QuickAcks:           16,
		PingPongOnFin:       true,
		Nagle:               true,
		CorkLimit:           200 * time.Millisecond,
		InvalidRateLimit:    500 * time.Millisecond,
		ProbeNewByte:        false,
		Somaxconn:           4096,
		MaxSynBacklog:       1024,
		SynCookies:          true,
		LocalPortMin:        32768,
		LocalPortMax:        60999,
		TwReuse:             2,
		TwReuseDelay:        time.Second,

		AckSecondOnlyIfWindowGrows: true,
	}
}

// RFC returns a profile that uses the values the RFCs themselves give where
// they give one, and conservative choices where they only bound it.
func RFC() *Profile {
	p := Linux()
	p.Name = "rfc"
	p.RTOMin = time.Second          // RFC 6298 §2.4
	p.RTOMax = 60 * time.Second     // RFC 6298 §2.5
	p.RTOVarFloor = false           // RFC 6298 §2.3
	p.MSL = 2 * time.Minute         // RFC 9293 §3.4.2
	p.TimeWaitLen = 4 * time.Minute // RFC 9293 §3.6: 2*MSL
	p.InitialCwndSegments = 0       // RFC 5681 §3.1
	p.SlowStartLimitSegments = 1    // RFC 5681 §3.1: cwnd += min(N, SMSS)
	p.DelAckMin = 200 * time.Millisecond
	p.DelAckMax = 200 * time.Millisecond // RFC 1122 §4.2.3.2 (< 0.5 s)
	p.QuickAcks = 0
	p.AckSecondOnlyIfWindowGrows = false
	p.PingPongOnFin = false // RFC 9293 §3.10.7.4: acknowledge the FIN
	p.ProbeNewByte = true   // RFC 9293 §3.8.6.1: probe with new data
	p.BacklogBoundsBoth = true
	p.SynLinearTimeouts = 0
	p.TailLossProbe = false
	p.RACK = false // RFC 6675 §4 IsLost (DupThresh)
	p.FRTO = false // RFC 5681 §3.1 and RFC 6298 §5: resend after a timeout
	p.PushEverySegments = 0
	p.SynCookies = false
	p.SlowStartAfterIdle = true
	p.IdleRestartHalving = false // RFC 5681 §4.1
	p.HyStart = false            // RFC 9438: slow start until the first loss
	p.CubicLinuxGrowth = false   // RFC 9438 §4.2-§4.5: the real-valued curve
	p.LocalPortMin = 49152       // RFC 6335 §6
	p.LocalPortMax = 65535
	// RFC 9293 §3.6 holds a 4-tuple in TIME-WAIT for 2 MSL, and only a
	// SYN from the peer may reopen it early (RFC 1122 §4.2.2.13, RFC
	// 6191: the passive side); no RFC lets an active open take it over,
	// so the rfc profile never does.
	p.TwReuse = 0
	return p
}

// Classic is the textbook sender: the rfc profile with slow start from a
// single segment (cwnd = 1 SMSS, as RFC 2001 and the classic accounts of
// TCP have it) and Reno's fast retransmit and recovery.
func Classic() *Profile {
	p := RFC()
	p.Name = "classic"
	p.InitialCwndSegments = 1
	p.Congestion = "reno"
	return p
}

var profiles = map[string]func() *Profile{
	"linux":   Linux,
	"rfc":     RFC,
	"classic": Classic,
}

// Names lists the known profile names.
func Names() []string {
	var n []string
	for k := range profiles {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// ByName returns a fresh copy of the named profile.
func ByName(name string) (*Profile, error) {
	f, ok := profiles[name]
	if !ok {
		return nil, fmt.Errorf("unknown profile %q (known: %v)", name, Names())
	}
	return f(), nil
}

// Clone returns an independent copy of p.
func (p *Profile) Clone() *Profile {
	c := *p
	return &c
}

// Validate reports the first value that cannot work.
func (p *Profile) Validate() error {
	switch {
	case p.InitialRTO <= 0 || p.RTOMin <= 0 || p.RTOMax < p.RTOMin:
		return fmt.Errorf("policy %s: RTO bounds must satisfy 0 < RTOMin <= RTOMax and InitialRTO > 0", p.Name)
	case p.Retries2 < 1 || p.SynRetries < 0 || p.SynAckRetries < 0:
		return fmt.Errorf("policy %s: retry counts must not be negative (Retries2 >= 1)", p.Name)
	case p.SndBuf <= 0 || p.RcvBuf <= 0 || p.SndBufMax < p.SndBuf || p.RcvBufMax < p.RcvBuf:
		return fmt.Errorf("policy %s: buffer sizes must be positive and below their maxima", p.Name)
	case p.DefaultSendMSS < p.MinSendMSS || p.MinSendMSS < 1:
		return fmt.Errorf("policy %s: MSS floor must be positive and below the default MSS", p.Name)
	case p.LocalPortMin == 0 || p.LocalPortMax < p.LocalPortMin:
		return fmt.Errorf("policy %s: ephemeral port range is empty", p.Name)
	case p.TwReuse < 0 || p.TwReuse > 2:
		return fmt.Errorf("policy %s: TwReuse is %d; give 0 (never), 1 (always) or 2 (loopback only), as tcp_tw_reuse", p.Name, p.TwReuse)
	case p.TwReuseDelay < 0:
		return fmt.Errorf("policy %s: TwReuseDelay must not be negative", p.Name)
	case p.DelAckMin > p.DelAckMax:
		return fmt.Errorf("policy %s: DelAckMin exceeds DelAckMax", p.Name)
	case !slices.Contains(congestion.Names(), p.Congestion):
		return fmt.Errorf("policy %s: no congestion controller named %q; give one of %s", p.Name, p.Congestion, strings.Join(congestion.Names(), ", "))
	}
	return nil
}
