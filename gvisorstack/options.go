package gvisorstack

import (
	"fmt"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"tunstack/policy"
)

// Options are the gVisor TCP settings a Stack is built with. Each maps to
// one gVisor transport-protocol option (tcpip.*Option, set through
// stack.SetTransportProtocolOption) or, for the socket-level defaults, to a
// per-endpoint socket option set when a connection is created. A zero value
// means "gVisor's own default" only where the field says so; use
// DefaultOptions or OptionsFromProfile to start from a full set.
//
// docs/gvisor.md lists every field with its gVisor option, its default per
// profile, and where gVisor cannot follow the profile.
type Options struct {
	// SACK offers SACK-permitted in SYNs (tcpip.TCPSACKEnabled).
	SACK bool
	// CongestionControl is "reno" or "cubic" (tcpip.CongestionControlOption).
	CongestionControl string
	// RACK enables RACK-TLP loss detection, RFC 8985
	// (tcpip.TCPRecovery = TCPRACKLossDetection); off means the classic
	// three-duplicate-ACK rule with SACK or NewReno recovery.
	// OptionsFromProfile turns it off: with it on, this gVisor version can
	// stop retransmitting a lost tail (see OptionsFromProfile).
	RACK bool
	// ModerateReceiveBuffer enables receive-buffer auto-tuning
	// (tcpip.TCPModerateReceiveBufferOption), like Linux tcp_moderate_rcvbuf.
	ModerateReceiveBuffer bool

	// Buffer sizes in bytes (tcpip.TCPSendBufferSizeRangeOption and
	// tcpip.TCPReceiveBufferSizeRangeOption). gVisor requires
	// 4096 <= default <= max. The receive maximum also decides the
	// window-scale factor gVisor offers.
	SendBufferBytes       int
	SendBufferMaxBytes    int
	ReceiveBufferBytes    int
	ReceiveBufferMaxBytes int

	// DelayedAck is the profile's wish to delay ACKs. gVisor has no
	// delayed-ACK timer (gVisor issue 387): it ACKs after each batch of
	// segments it processes. The field is kept so that a profile converts
	// losslessly, and Unsupported reports it; it changes nothing.
	DelayedAck bool
	// NoDelay is the default of TCP_NODELAY for new connections; false
	// means Nagle's algorithm is on (tcpip.TCPDelayEnabled = !NoDelay).
	NoDelay bool

	// RTOMin and RTOMax bound the retransmission timeout
	// (tcpip.TCPMinRTOOption, tcpip.TCPMaxRTOOption). gVisor's SYN timer
	// ignores both: it starts at 1 s and backs off to 120 s (connect.go).
	RTOMin time.Duration
	RTOMax time.Duration
	// SynRetries is how many times a SYN is retransmitted before connect
	// fails (tcpip.TCPSynRetriesOption; gVisor requires >= 1).
	SynRetries int
	// MaxRetries is how many times a data segment is retransmitted before
	// the connection is dropped (tcpip.TCPMaxRetriesOption; tcp_retries2).
	MaxRetries int
	// TimeWait is the TIME-WAIT duration (tcpip.TCPTimeWaitTimeoutOption).
	TimeWait time.Duration
	// FinTimeout is the FIN-WAIT-2 lifetime (tcpip.TCPLingerTimeoutOption,
	// Linux tcp_fin_timeout).
	FinTimeout time.Duration
	// TimeWaitReuse is Linux's tcp_tw_reuse in gVisor's terms
	// (tcpip.TCPTimeWaitReuseOption): 0 never, 1 any connect, 2 only
	// between loopback addresses. gVisor takes an entry over once a
	// second has passed since the entry last recorded its peer's
	// timestamp (transport/tcp/endpoint.go, recentTSTime), where Linux
	// 6.13 and later count TwReuseDelay from the entry's start.
	TimeWaitReuse int
	// PortMin and PortMax are the ephemeral port range, inclusive
	// (stack.SetPortRange; Linux ip_local_port_range).
	PortMin, PortMax uint16

	// Somaxconn caps Listen's backlog, and is the backlog used when Listen
	// is given one below 1.
	Somaxconn int
	// BacklogPlusOne makes the accept queue hold backlog+1 connections, as
	// Linux does and as gVisor's own listen(2) arranges
	// (sentry/syscalls/linux/sys_socket.go); off, it holds backlog. Either
	// way gVisor answers SYNs with cookies once backlog handshakes are
	// pending (transport/tcp/accept.go).
	BacklogPlusOne bool

	// Timestamps and WindowScaling record the profile's wish; gVisor always
	// offers both in its SYN (connect.go, handshake.start: TS is true, WS
	// follows the receive buffer). Unsupported reports a wish to turn them off.
	Timestamps    bool
	WindowScaling bool
	// DSACK records the profile's wish to send D-SACK blocks (RFC 2883).
	// gVisor reads D-SACK from its peer but never sends one: its receiver
	// discards SACK blocks below RCV.NXT (transport/tcp/sack.go,
	// UpdateSACKBlocks). Unsupported reports DSACK = true.
	DSACK bool

	// ZeroWindowACKRepair works around gVisor's zero-window ACK deadlock
	// (docs/gvisor.md, "Zero-window ACK deadlock"): while gVisor's last
	// advertised window on a connection is zero at acknowledgment number
	// A, an inbound segment of that connection that carries the ACK flag
	// and data, a FIN, or a sequence number other than A, which gVisor
	// drops before its sender sees the ACK, is preceded on its way into
	// gVisor by a pure ACK copy of it at sequence number A (same ACK
	// number, window and options), which gVisor accepts and whose ACK it
	// processes, as RFC 9293 3.10.7.4 asks of a receiver at a zero window.
	// It is not a gVisor option but a change of the packets gVisor
	// receives, done by this package's link endpoint; gVisor itself is
	// unmodified. DefaultOptions and OptionsFromProfile leave it off, so
	// the conformance gvisor target, compared line by line as the
	// reference, shows gVisor's own behaviour; serve and the benchmarks
	// turn it on, since without it an echo can hang for good under loss.
	ZeroWindowACKRepair bool
}

// DefaultOptions returns gVisor's own defaults (transport/tcp/protocol.go,
// newProtocol) with Go's net package conventions for the socket defaults
// (TCP_NODELAY on). RACK is on, as in gVisor, and so exposed to the tail-loss
// defect described at OptionsFromProfile; nothing in this module builds a
// stack from DefaultOptions (serve, bench, the labs and the conformance
// gvisor target all use OptionsFromProfile).
func DefaultOptions() Options {
	return Options{
		SACK:                  true,
		CongestionControl:     "reno",
		RACK:                  true,
		ModerateReceiveBuffer: true,
		SendBufferBytes:       tcp.DefaultSendBufferSize,
		SendBufferMaxBytes:    tcp.MaxBufferSize,
		ReceiveBufferBytes:    tcp.DefaultReceiveBufferSize,
		ReceiveBufferMaxBytes: tcp.MaxBufferSize,
		DelayedAck:            false,
		NoDelay:               true,
		RTOMin:                tcp.MinRTO,
		RTOMax:                tcp.MaxRTO,
		SynRetries:            tcp.DefaultSynRetries,
		MaxRetries:            tcp.MaxRetries,
		TimeWait:              tcp.DefaultTCPTimeWaitTimeout,
		FinTimeout:            tcp.DefaultTCPLingerTimeout,
		TimeWaitReuse:         2,     // tcpip.TCPTimeWaitReuseLoopbackOnly, gVisor's default
		PortMin:               16000, // gVisor's default range (pkg/tcpip/ports)
		PortMax:               65535,
		Somaxconn:             4096,
		BacklogPlusOne:        true,
		Timestamps:            true,
		WindowScaling:         true,
	}
}

// OptionsFromProfile returns the Options that come closest to profile p.
// Where gVisor has no equivalent the field still carries the profile's
// value, and Unsupported names it.
func OptionsFromProfile(p *policy.Profile) Options {
	o := DefaultOptions()
	o.SACK = p.SACK
	switch p.Congestion {
	case "cubic":
		o.CongestionControl = "cubic"
	default:
		// gVisor's "reno" is NewReno-style recovery (reno_recovery.go),
		// the closest match for "reno", "newreno" and "tahoe".
		o.CongestionControl = "reno"
	}
	// RACK is off for every profile, although Linux enables it by default
	// (tcp_recovery=1). In this gVisor version, a retransmission that
	// RACK's loss detection makes during recovery is not recorded as
	// retransmitted when the pipe is recomputed, so the ACK that ends
	// recovery can leave gVisor's count of segments in flight at zero
	// while data and the FIN are still unacknowledged. The tail loss probe
	// sent next then leaves the retransmission timer unarmed, because
	// gVisor arms it only when that count is positive: if the tail and
	// the probe are lost, the connection never retransmits again (against
	// RFC 6298 5.1 and RFC 8985 7.3). TestRACKTailLossStallsGVisor shows
	// it, and fails once a gVisor version no longer stalls. With RACK off
	// gVisor uses its classic recovery: fast retransmit after three
	// duplicate ACKs (or once the SACK scoreboard marks the first
	// unacknowledged segment lost), then RFC 6675 SACK recovery, or
	// NewReno without SACK. Options.RACK still turns RACK on for a caller
	// that sets it explicitly.
	o.RACK = false
	o.ModerateReceiveBuffer = true
	o.SendBufferBytes = max(p.SndBuf, tcp.MinBufferSize)
	o.SendBufferMaxBytes = max(p.SndBufMax, o.SendBufferBytes)
	o.ReceiveBufferBytes = max(p.RcvBuf, tcp.MinBufferSize)
	o.ReceiveBufferMaxBytes = max(p.RcvBufMax, o.ReceiveBufferBytes)
	o.DelayedAck = p.DelayedAck
	o.NoDelay = !p.Nagle
	o.RTOMin = p.RTOMin
	o.RTOMax = p.RTOMax
	o.SynRetries = max(p.SynRetries, 1)
	o.MaxRetries = p.Retries2
	o.TimeWait = p.TimeWaitLen
	o.FinTimeout = p.FinTimeout
	o.TimeWaitReuse = p.TwReuse
	o.PortMin, o.PortMax = p.LocalPortMin, p.LocalPortMax
	if p.Somaxconn > 0 {
		o.Somaxconn = p.Somaxconn
	}
	o.BacklogPlusOne = !p.BacklogBoundsBoth
	o.Timestamps = p.Timestamps
	o.WindowScaling = p.WindowScaling
	o.DSACK = p.DSACK
	return o
}

// Unsupported lists the fields whose value gVisor cannot honour; the stack
// runs with gVisor's behaviour for them instead.
func (o Options) Unsupported() []string {
	var u []string
	if o.DelayedAck {
		u = append(u, "DelayedAck: gVisor has no delayed-ACK timer")
	}
	if !o.Timestamps {
		u = append(u, "Timestamps: gVisor always offers RFC 7323 timestamps")
	}
	if !o.WindowScaling {
		u = append(u, "WindowScaling: gVisor always offers a window scale")
	}
	if o.DSACK {
		u = append(u, "DSACK: gVisor never sends D-SACK blocks")
	}
	return u
}

// apply sets the options on s's TCP protocol.
func (o Options) apply(s *stack.Stack) error {
	sack := tcpip.TCPSACKEnabled(o.SACK)
	cc := tcpip.CongestionControlOption(o.CongestionControl)
	var recovery tcpip.TCPRecovery
	if o.RACK {
		recovery = tcpip.TCPRACKLossDetection
	}
	moderate := tcpip.TCPModerateReceiveBufferOption(o.ModerateReceiveBuffer)
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: o.SendBufferBytes, Max: o.SendBufferMaxBytes}
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: o.ReceiveBufferBytes, Max: o.ReceiveBufferMaxBytes}
	delay := tcpip.TCPDelayEnabled(!o.NoDelay)
	// Max before min: gVisor rejects a minimum above the current maximum.
	rtoMax := tcpip.TCPMaxRTOOption(o.RTOMax)
	rtoMin := tcpip.TCPMinRTOOption(o.RTOMin)
	synRetries := tcpip.TCPSynRetriesOption(o.SynRetries)
	maxRetries := tcpip.TCPMaxRetriesOption(o.MaxRetries)
	timeWait := tcpip.TCPTimeWaitTimeoutOption(o.TimeWait)
	linger := tcpip.TCPLingerTimeoutOption(o.FinTimeout)
	twReuse := [...]tcpip.TCPTimeWaitReuseOption{tcpip.TCPTimeWaitReuseDisabled, tcpip.TCPTimeWaitReuseGlobal, tcpip.TCPTimeWaitReuseLoopbackOnly}

	if o.RTOMin <= 0 || o.RTOMax < o.RTOMin {
		return fmt.Errorf("gvisorstack: RTO bounds must satisfy 0 < RTOMin (%v) <= RTOMax (%v)", o.RTOMin, o.RTOMax)
	}
	if o.SynRetries < 1 || o.SynRetries > 255 {
		return fmt.Errorf("gvisorstack: SynRetries %d out of gVisor's range 1..255", o.SynRetries)
	}
	if o.MaxRetries < 1 {
		return fmt.Errorf("gvisorstack: MaxRetries %d must be at least 1", o.MaxRetries)
	}
	if o.TimeWaitReuse < 0 || o.TimeWaitReuse > 2 {
		return fmt.Errorf("gvisorstack: TimeWaitReuse %d must be 0, 1 or 2, as tcp_tw_reuse", o.TimeWaitReuse)
	}
	tw := twReuse[o.TimeWaitReuse]
	if o.PortMin == 0 || o.PortMax < o.PortMin {
		return fmt.Errorf("gvisorstack: ephemeral port range %d..%d must satisfy 0 < PortMin <= PortMax", o.PortMin, o.PortMax)
	}
	if err := s.SetPortRange(o.PortMin, o.PortMax); err != nil {
		return fmt.Errorf("gvisorstack: gVisor rejects the port range %d..%d: %s", o.PortMin, o.PortMax, err)
	}
	settings := []struct {
		name string
		opt  tcpip.SettableTransportProtocolOption
	}{
		{"SACK", &sack},
		{"CongestionControl " + o.CongestionControl, &cc},
		{"RACK", &recovery},
		{"ModerateReceiveBuffer", &moderate},
		{fmt.Sprintf("send buffer %d..%d", o.SendBufferBytes, o.SendBufferMaxBytes), &snd},
		{fmt.Sprintf("receive buffer %d..%d", o.ReceiveBufferBytes, o.ReceiveBufferMaxBytes), &rcv},
		{"NoDelay", &delay},
		{"RTOMax", &rtoMax},
		{"RTOMin", &rtoMin},
		{"SynRetries", &synRetries},
		{"MaxRetries", &maxRetries},
		{"TimeWait", &timeWait},
		{"FinTimeout", &linger},
		{fmt.Sprintf("TimeWaitReuse %d", o.TimeWaitReuse), &tw},
	}
	for _, st := range settings {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, st.opt); err != nil {
			return fmt.Errorf("gvisorstack: gVisor rejects %s: %s", st.name, err)
		}
	}
	return nil
}
