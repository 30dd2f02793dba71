package stack

import (
	"net/netip"
	"time"

	"tunstack/tcpcore"
)

// Metrics is one consistent reading of everything the stack counts, taken
// under one hold of the stack's lock, for an exporter such as package
// metrics to read at scrape time. Nothing is counted for it on the data
// path: the engine's counters are read as they are, and the two
// histograms of finished connections are filled when a connection
// retires (connstats.go), once per connection.
type Metrics struct {
	Engine tcpcore.Stats        // the engine's stack-wide counters
	Conns  tcpcore.ConnCounters // ConnTotals: per-connection counters over every connection given to the application
	IP     IPStats

	// States counts the connections the application holds or has closed
	// that the engine still runs (AllConns), by state. Connections not
	// yet accepted are in the listeners' queues instead.
	States map[tcpcore.State]int
	// Listeners are the open listeners' queues.
	Listeners []ListenerMetrics

	// Lifetime is the time from the connection's creation (Dial called,
	// or Accept returned it) to the engine's CLOSED, of every connection
	// given to the application that has ended. FinalSRTT is the smoothed
	// RTT each of them had at that moment, for those that took an RTT
	// sample. Both are in seconds.
	Lifetime, FinalSRTT Histogram
}

// ListenerMetrics are one listener's queues.
type ListenerMetrics struct {
	Addr netip.AddrPort
	tcpcore.ListenerStats
}

// Histogram counts observations in buckets with fixed upper bounds, as
// Prometheus's histograms do: Counts[i] is the number of observations at
// most Bounds[i] and above Bounds[i-1] (not cumulative); observations
// above the last bound count only in Count.
type Histogram struct {
	Bounds []float64 // upper bounds, increasing
	Counts []uint64  // len(Bounds)
	Count  uint64
	Sum    float64
}

// LifetimeBounds are the buckets of Metrics.Lifetime, in seconds: from a
// request-response on a fast link to connections that stay for hours.
var LifetimeBounds = []float64{0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600}

// SRTTBounds are the buckets of Metrics.FinalSRTT, in seconds: from a
// namespace's TUN device (tens of microseconds) to a satellite path.
var SRTTBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

func newHistogram(bounds []float64) Histogram {
	return Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds))}
}

func (h *Histogram) observe(v float64) {
	h.Count++
	h.Sum += v
	for i, b := range h.Bounds {
		if v <= b {
			h.Counts[i]++
			return
		}
	}
}

func (h Histogram) clone() Histogram {
	h.Counts = append([]uint64(nil), h.Counts...)
	return h
}

// closedHistograms are the histograms of finished connections, guarded by
// s.mu. The zero value is ready: the buckets are made on first use.
type closedHistograms struct {
	lifetime, srtt Histogram
}

// observeRetired books a connection that retire is forgetting. The caller
// holds s.mu.
func (s *Stack) observeRetired(c *Conn) {
	h := &s.hist
	if h.lifetime.Bounds == nil {
		h.lifetime, h.srtt = newHistogram(LifetimeBounds), newHistogram(SRTTBounds)
	}
	h.lifetime.observe(time.Duration(s.now() - c.created).Seconds())
	if srtt := c.tc.Info().SRTT; srtt > 0 {
		h.srtt.observe(srtt.Seconds())
	}
}

// Metrics reads every counter, gauge and histogram the stack keeps. On a
// stack of shards it sums the shards' readings, each taken in one
// critical section of its shard, and lists each listener once with the
// queues of all its shards summed.
func (s *Stack) Metrics() Metrics {
	if g := s.grp; g != nil {
		return g.metrics()
	}
	return s.metrics(true)
}

// metrics reads one shard; listeners says whether to list its listeners.
func (s *Stack) metrics(listeners bool) Metrics {
	m := Metrics{IP: s.ipStats1(), States: make(map[tcpcore.State]int)}
	s.mu.Lock()
	defer s.mu.Unlock()
	m.Engine = s.e.Stats()
	m.Conns = s.finished
	for _, set := range []map[*Conn]struct{}{s.conns, s.closing} {
		for c := range set {
			addCounters(&m.Conns, c.tc.Info().Counters)
			m.States[c.tc.State()]++
		}
	}
	for l := range s.lsns {
		if !listeners {
			break
		}
		m.Listeners = append(m.Listeners, ListenerMetrics{Addr: l.tl.Addr(), ListenerStats: l.tl.Stats()})
	}
	if s.hist.lifetime.Bounds == nil {
		m.Lifetime, m.FinalSRTT = newHistogram(LifetimeBounds), newHistogram(SRTTBounds)
	} else {
		m.Lifetime, m.FinalSRTT = s.hist.lifetime.clone(), s.hist.srtt.clone()
	}
	return m
}
