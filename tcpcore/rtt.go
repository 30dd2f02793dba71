package tcpcore

import (
	"time"

	"tunstack/policy"
)

// rttEstimator keeps SRTT, RTTVAR and the RTO of RFC 6298.
type rttEstimator struct {
	srtt, rttvar time.Duration
	minRTT       time.Duration // smallest sample seen (Linux tcp_min_rtt)
	rto          time.Duration // current RTO before backoff
	min, max     time.Duration
	hasSample    bool
	varFloor     bool // Linux: RTO = SRTT + max(4*RTTVAR, RTOMin)
}

func (r *rttEstimator) init(p *policy.Profile) {
	r.min, r.max, r.varFloor = p.RTOMin, p.RTOMax, p.RTOVarFloor
	r.rto = p.InitialRTO // RFC 6298 §2.1
}

// sample folds in one measurement R.
func (r *rttEstimator) sample(rtt time.Duration) {
	if rtt <= 0 {
		rtt = time.Microsecond
	}
	if !r.hasSample || rtt < r.minRTT {
		r.minRTT = rtt
	}
	if !r.hasSample {
		// RFC 6298 §2.2: SRTT = R, RTTVAR = R/2.
		r.srtt, r.rttvar, r.hasSample = rtt, rtt/2, true
	} else {
		// RFC 6298 §2.3 with alpha = 1/8, beta = 1/4; RTTVAR first.
		d := r.srtt - rtt
		if d < 0 {
			d = -d
		}
		r.rttvar = (3*r.rttvar + d) / 4
		r.srtt = (7*r.srtt + rtt) / 8
	}
	var rto time.Duration
	if r.varFloor {
		rto = r.srtt + max(4*r.rttvar, r.min)
	} else {
		// RFC 6298 §2.3: RTO = SRTT + max(G, K*RTTVAR), G negligible here.
		rto = r.srtt + 4*r.rttvar
	}
	r.rto = r.clamp(rto)
}

// clamp applies RFC 6298 §2.4 (minimum) and §2.5 (maximum).
func (r *rttEstimator) clamp(d time.Duration) time.Duration {
	if d < r.min {
		d = r.min
	}
	if d > r.max {
		d = r.max
	}
	return d
}

// backedOff returns the RTO doubled n times (RFC 6298 §5.5), bounded by the
// maximum.
func (r *rttEstimator) backedOff(n int) time.Duration {
	d := r.rto
	for i := 0; i < n && d < r.max; i++ {
		d *= 2
	}
	if d > r.max {
		d = r.max
	}
	return d
}
