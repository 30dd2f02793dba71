// Package congestion holds the congestion controllers the engine can use,
// behind one small interface. Controllers are sans-IO like the engine: time
// comes in as a parameter and nothing here reads a clock.
//
// The controller decides the congestion window; loss detection and recovery
// (which segments to retransmit, when recovery ends) belong to the engine.
// Keeping the seam there means a new controller never touches tcpcore.
package congestion

import (
	"fmt"
	"strings"
	"time"
)

// Controller is a congestion-control algorithm. All sizes are in bytes.
type Controller interface {
	// Name is the algorithm's name as Linux's tcp_congestion_control spells it.
	Name() string
	// CongestionWindow is cwnd in bytes.
	CongestionWindow() int
	// SlowStartThreshold is ssthresh in bytes.
	SlowStartThreshold() int
	// OnAck is called for an ACK that acknowledges new data outside loss
	// recovery: ackedBytes newly acknowledged, rtt the latest sample (0 if
	// none), now the engine's time. flightBytes is the flight the window is
	// judged by (RFC 7661, Linux tcp_is_cwnd_limited): the largest flight
	// of the last round trip, in slow start twice that less one SMSS; a
	// controller does not grow a window that leaves an SMSS or more of it
	// free.
	OnAck(now time.Duration, ackedBytes, flightBytes int, rtt time.Duration)
	// OnLoss is called when loss is detected by duplicate ACKs or SACK
	// (RFC 5681 §3.2 step 2): the controller sets ssthresh and cwnd for
	// recovery.
	OnLoss(now time.Duration, flightBytes int)
	// OnRecoveryEnd is called when fast recovery completes (RFC 5681 §3.2 step 6).
	OnRecoveryEnd(now time.Duration)
	// OnRTO is called when the retransmission timer expires (RFC 5681 §3.1,
	// equation 4): ssthresh from flight, cwnd to the loss window.
	OnRTO(now time.Duration, flightBytes int)
	// OnIdleRestart is called before sending after an idle period longer than
	// the RTO (RFC 5681 §4.1): idle is the time since the last data was
	// sent, rto the retransmission timeout as it stands (backed off).
	OnIdleRestart(now, idle, rto time.Duration)
	// Undo restores the window from before the last reduction, after it was
	// shown spurious (RFC 3708-style, on D-SACK or timestamps evidence).
	Undo(now time.Duration)
	// SetMSS tells the controller the sender's maximum segment size.
	SetMSS(mss int)
	// Recovery is the loss recovery the algorithm is defined with; the
	// engine picks its recovery strategy from it (and from whether SACK
	// was negotiated) once per connection, never from the name.
	Recovery() Recovery
}

// Recovery is what an algorithm does after duplicate ACKs or SACK show a
// loss.
type Recovery int

const (
	// FastRecoveryPartialAcks is fast recovery that stays in recovery
	// across partial ACKs until the recovery point is acknowledged (RFC
	// 6582 NewReno; RFC 6675 with SACK). CUBIC and NewReno.
	FastRecoveryPartialAcks Recovery = iota
	// FastRecoveryFirstAck is RFC 5681 §3.2's fast recovery, left on the
	// first ACK of new data. Reno. With SACK the engine recovers by RFC
	// 6675 all the same, as Linux's Reno does.
	FastRecoveryFirstAck
	// NoFastRecovery retransmits and restarts slow start from one segment,
	// as after a timeout without the backoff. Tahoe.
	NoFastRecovery
)

// algorithms are the controllers New builds, by the name of Linux's
// tcp_congestion_control, each with the Recovery its controller reports,
// so that the recovery is known without building one (RecoveryOf).
var algorithms = []struct {
	name     string
	recovery Recovery
	build    func(Config) Controller
}{
	{"reno", FastRecoveryFirstAck, func(c Config) Controller { return NewReno(c, RenoStyle) }},
	{"newreno", FastRecoveryPartialAcks, func(c Config) Controller { return NewReno(c, NewRenoStyle) }},
	{"tahoe", NoFastRecovery, func(c Config) Controller { return NewReno(c, TahoeStyle) }},
	{"cubic", FastRecoveryPartialAcks, func(c Config) Controller { return NewCubic(c) }},
}

// Names lists the algorithms New knows, in the spelling of Linux's
// tcp_congestion_control.
func Names() []string {
	names := make([]string, len(algorithms))
	for i, a := range algorithms {
		names[i] = a.name
	}
	return names
}

// Config is what every controller is built from.
type Config struct {
	MSS int // sender maximum segment size, bytes
	// InitialWindowSegments is the initial window in segments; 0 means the
	// RFC 5681 §3.1 rule by MSS.
	InitialWindowSegments int
	// SlowStartLimitSegments is RFC 3465's L: the most cwnd grows per ACK
	// in slow start, in segments. 1 is RFC 5681 §3.1's min(N, SMSS); 0
	// means no limit, growth by everything the ACK acknowledges, as Linux
	// does (tcp_slow_start).
	SlowStartLimitSegments int
	// IdleRestartHalving selects how cwnd restarts after an idle period
	// longer than the RTO: false is RFC 5681 §4.1, cwnd = min(RW, cwnd)
	// at once; true is RFC 2861 §3 as Linux applies it
	// (tcp_cwnd_restart), cwnd halved once for each RTO of the idle
	// period, not below RW, and ssthresh raised to 3/4 of cwnd.
	IdleRestartHalving bool
	// HyStart turns on CUBIC's hybrid slow start as Linux runs it
	// (cubic_hystart.go); other controllers ignore it.
	HyStart bool
	// CubicLinuxGrowth makes CUBIC's congestion avoidance, reductions and
	// epochs follow Linux's tcp_cubic integer arithmetic (cubic_linux.go)
	// instead of RFC 9438's real-valued curve; other controllers ignore it.
	CubicLinuxGrowth bool
}

// restart is the window after an idle period of idle with the RTO rto,
// from cwnd and ssthresh (bytes): the new cwnd and ssthresh.
func (c Config) restart(cwnd, ssthresh int, idle, rto time.Duration) (int, int) {
	// RFC 5681 §4.1: the restart window RW = min(IW, cwnd).
	rw := min(c.InitialWindow(), cwnd)
	if !c.IdleRestartHalving || rto <= 0 || c.MSS <= 0 {
		return rw, ssthresh
	}
	// Linux behaviour (tcp_cwnd_restart, RFC 2861 §3), in whole segments
	// as Linux counts cwnd: ssthresh = max(ssthresh, 3/4 cwnd)
	// (tcp_current_ssthresh), then cwnd halves for each RTO the idle time
	// exceeds the first by, stopping at RW.
	segs := cwnd / c.MSS
	ssthresh = max(ssthresh, (segs>>1+segs>>2)*c.MSS)
	for idle -= rto; idle > 0 && segs*c.MSS > rw; idle -= rto {
		segs >>= 1
	}
	return max(segs*c.MSS, rw), ssthresh
}

// slowStartIncrease is how much an ACK of ackedBytes grows cwnd in slow
// start (RFC 3465 §2.2 with limit L).
func (c Config) slowStartIncrease(ackedBytes int) int {
	if c.SlowStartLimitSegments > 0 {
		return min(ackedBytes, c.SlowStartLimitSegments*c.MSS)
	}
	return ackedBytes
}

// InitialWindow returns the initial congestion window in bytes.
func (c Config) InitialWindow() int {
	if c.InitialWindowSegments > 0 {
		return c.InitialWindowSegments * c.MSS
	}
	// RFC 5681 §3.1, equation 1.
	switch {
	case c.MSS > 2190:
		return 2 * c.MSS
	case c.MSS > 1095:
		return 3 * c.MSS
	default:
		return 4 * c.MSS
	}
}

// InitialSSThresh is every controller's slow-start threshold until its
// first reduction: RFC 5681 §3.1's "arbitrarily high". A new controller's
// window is Config.InitialWindow.
const InitialSSThresh = 1 << 30

// New builds the named controller.
func New(name string, cfg Config) (Controller, error) {
	for _, a := range algorithms {
		if a.name == name {
			return a.build(cfg), nil
		}
	}
	return nil, unknown(name)
}

// RecoveryOf is the Recovery of the algorithm New builds for name, known
// without building one: an engine chooses its loss recovery when a
// connection is established and builds the controller only once the
// connection first needs it (an idle connection never does).
func RecoveryOf(name string) (Recovery, error) {
	for _, a := range algorithms {
		if a.name == name {
			return a.recovery, nil
		}
	}
	return 0, unknown(name)
}

func unknown(name string) error {
	return fmt.Errorf("congestion: unknown algorithm %q (known: %s)", name, strings.Join(Names(), ", "))
}
