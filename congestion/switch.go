package congestion

import "fmt"

// Continue builds the named controller to take over a connection from
// old, as Linux's tcp_reinit_congestion_control does when TCP_CONGESTION
// changes the algorithm of a connection under way: cwnd and ssthresh are
// the connection's and carry over; the new algorithm's own state (CUBIC's
// curve, W_max and HyStart round, Reno's byte count, what Undo would
// restore) starts afresh, as Linux clears the algorithm's private area and
// prior_ssthresh.
func Continue(name string, cfg Config, old Controller) (Controller, error) {
	c, err := New(name, cfg)
	if err != nil {
		return nil, err
	}
	h, ok := c.(windowHolder)
	if !ok {
		return nil, fmt.Errorf("congestion: %s cannot take over a window", name)
	}
	h.takeWindow(old.CongestionWindow(), old.SlowStartThreshold())
	return c, nil
}

// windowHolder is a controller whose window can be set from outside, for
// Continue.
type windowHolder interface {
	takeWindow(cwndBytes, ssthreshBytes int)
}

func (r *Reno) takeWindow(cwndBytes, ssthreshBytes int) {
	r.cwndBytes, r.ssthreshBytes = cwndBytes, ssthreshBytes
}

func (c *Cubic) takeWindow(cwndBytes, ssthreshBytes int) {
	c.cwndBytes, c.ssthreshBytes = float64(cwndBytes), ssthreshBytes
}
