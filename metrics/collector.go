package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"tunstack/netif"
	"tunstack/stack"
	"tunstack/tcpcore"
)

// Source is what a Collector reads. Network is required; the links are
// optional.
type Source struct {
	// Network is the stack: ours (*stack.Stack, through its Metrics
	// method) or gVisor's (*gvisorstack.Stack, through GVisor).
	Network stack.Network
	// Link counts at the device (NewLinkCounter around it).
	Link *LinkCounter
	// TUN is the device, for its offload counters.
	TUN *netif.TUN
	// Impaired is the impairment between the device and the stack.
	Impaired *netif.ImpairedLink
}

// ourStack and gvisorStack are what the collector asks of each kind of
// stack.
type ourStack interface{ Metrics() stack.Metrics }
type gvisorStack interface{ GVisor() *gvstack.Stack }

// Collector is a prometheus.Collector over a Source: it reads every value
// when scraped.
type Collector struct {
	src Source

	counters map[string]*prometheus.Desc // by nstat name

	conns                         *prometheus.Desc
	acceptQueue, synQueue, backlg *prometheus.Desc
	lifetime, finalSRTT           *prometheus.Desc

	link    [8]*prometheus.Desc // in LinkStats's field order
	tun     [5]*prometheus.Desc
	device  []*prometheus.Desc // DeviceCounters in order
	impair  *prometheus.Desc
	queueHi *prometheus.Desc
}

// NewCollector returns a collector of src.
func NewCollector(src Source) *Collector {
	c := &Collector{src: src, counters: make(map[string]*prometheus.Desc)}
	for _, k := range Counters {
		c.counters[k.Nstat] = prometheus.NewDesc(k.Name(), k.Help+" Linux: "+k.Nstat+".", nil, nil)
	}
	c.conns = prometheus.NewDesc("tunstack_tcp_connections",
		"Connections the application holds or has closed that the stack still runs, by state (ss's names); those not yet accepted are in the listen queues.", []string{"state"}, nil)
	c.acceptQueue = prometheus.NewDesc("tunstack_tcp_listen_accept_queue",
		"Connections a listener has completed that wait for accept (ss's Recv-Q).", []string{"local"}, nil)
	c.synQueue = prometheus.NewDesc("tunstack_tcp_listen_syn_queue",
		"Half-open connections a listener holds (SYN received, SYN-ACK sent).", []string{"local"}, nil)
	c.backlg = prometheus.NewDesc("tunstack_tcp_listen_backlog",
		"The accept queue's bound in force (ss's Send-Q).", []string{"local"}, nil)
	c.lifetime = prometheus.NewDesc("tunstack_tcp_connection_lifetime_seconds",
		"Finished connections given to the application, by the time from their creation (dial, or accept) to CLOSED.", nil, nil)
	c.finalSRTT = prometheus.NewDesc("tunstack_tcp_connection_final_srtt_seconds",
		"Finished connections given to the application that took an RTT sample, by their smoothed RTT at the end.", nil, nil)
	for i, d := range []struct{ name, help string }{
		{"tunstack_link_reads_total", "Reads from the device that returned packets (a batch each)."},
		{"tunstack_link_read_packets_total", "Packets read from the device (a TSO packet counts once: the stack takes it whole)."},
		{"tunstack_link_read_bytes_total", "Bytes of the packets read from the device."},
		{"tunstack_link_read_errors_total", "Reads from the device that failed."},
		{"tunstack_link_writes_total", "Writes to the device that sent packets (a batch each)."},
		{"tunstack_link_write_packets_total", "Packets written to the device (before GSO coalescing: a chunk of segments the stack hands over whole counts as its segments)."},
		{"tunstack_link_write_bytes_total", "Bytes of the packets written to the device (a chunk's as its segments would have)."},
		{"tunstack_link_write_errors_total", "Writes to the device that failed."},
	} {
		c.link[i] = prometheus.NewDesc(d.name, d.help, nil, nil)
	}
	for i, d := range []struct{ name, help string }{
		{"tunstack_tun_gso_writes_total", "GSO packets written: runs of segments coalesced into one write."},
		{"tunstack_tun_gso_write_segments_total", "Segments those GSO packets carried."},
		{"tunstack_tun_tso_reads_total", "TSO packets the kernel handed over in one read."},
		{"tunstack_tun_tso_read_segments_total", "Segments those TSO packets carried."},
		{"tunstack_tun_read_drops_total", "Packets read from the device that could not be used (a GSO kind not asked for, or one that does not parse)."},
	} {
		c.tun[i] = prometheus.NewDesc(d.name, d.help, nil, nil)
	}
	for _, d := range DeviceCounters {
		c.device = append(c.device, prometheus.NewDesc(d.Name(), d.Help+" tunstack nstat: "+d.Nstat+".", nil, nil))
	}
	c.impair = prometheus.NewDesc("tunstack_impair_packets_total",
		"The impairment's decisions, per direction (in: toward the stack, out: toward the device): packets entered, delivered, lost, duplicated, reordered, delayed, dropped by the queue, refused by the link.",
		[]string{"direction", "decision"}, nil)
	c.queueHi = prometheus.NewDesc("tunstack_impair_queue_max_packets",
		"The deepest the impairment's bottleneck queue has been, per direction.", []string{"direction"}, nil)
	return c
}

// Describe implements prometheus.Collector. It describes every metric the
// collector may send; which ones it sends depends on the stack.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, k := range Counters {
		if c.counts(k) {
			ch <- c.counters[k.Nstat]
		}
	}
	if _, ok := c.src.Network.(ourStack); ok {
		for _, d := range []*prometheus.Desc{c.acceptQueue, c.synQueue, c.backlg, c.lifetime, c.finalSRTT} {
			ch <- d
		}
	}
	ch <- c.conns
	if c.src.Link != nil {
		for _, d := range c.link {
			ch <- d
		}
	}
	if c.src.TUN != nil {
		for _, d := range c.tun {
			ch <- d
		}
		for _, d := range c.device {
			ch <- d
		}
	}
	if c.src.Impaired != nil {
		ch <- c.impair
		ch <- c.queueHi
	}
}

// counts reports whether the source's stack counts k.
func (c *Collector) counts(k Counter) bool {
	switch c.src.Network.(type) {
	case ourStack:
		return k.Ours != nil
	case gvisorStack:
		return k.GVisor != nil
	}
	return false
}

// Collect implements prometheus.Collector: one reading of everything.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	switch n := c.src.Network.(type) {
	case ourStack:
		m := n.Metrics()
		for _, k := range Counters {
			if k.Ours != nil {
				counter(c.counters[k.Nstat], k.Ours(&m))
			}
		}
		for _, st := range connStates {
			gauge(c.conns, float64(m.States[st.state]), st.name)
		}
		for _, l := range m.Listeners {
			a := l.Addr.String()
			gauge(c.acceptQueue, float64(l.AcceptQueue), a)
			gauge(c.synQueue, float64(l.SynQueue), a)
			gauge(c.backlg, float64(l.Backlog), a)
		}
		histogram(ch, c.lifetime, m.Lifetime)
		histogram(ch, c.finalSRTT, m.FinalSRTT)
	case gvisorStack:
		s := n.GVisor().Stats()
		for _, k := range Counters {
			if k.GVisor != nil {
				counter(c.counters[k.Nstat], k.GVisor(&s))
			}
		}
		// gVisor keeps a count of ESTABLISHED connections only.
		gauge(c.conns, float64(s.TCP.CurrentEstablished.Value()), "established")
	}
	if l := c.src.Link; l != nil {
		s := l.Stats()
		for i, v := range []uint64{s.Reads, s.ReadPackets, s.ReadBytes, s.ReadErrors, s.Writes, s.WritePackets, s.WriteBytes, s.WriteErrors} {
			counter(c.link[i], v)
		}
	}
	if t := c.src.TUN; t != nil {
		gw, gws := t.GSOStats()
		tr, trs := t.GSOReadStats()
		for i, v := range []uint64{gw, gws, tr, trs, t.GSODrops()} {
			counter(c.tun[i], v)
		}
		// A device whose counters cannot be read (it is being removed)
		// exports none of them rather than zeros.
		if ds, err := t.DeviceStats(); err == nil {
			for i, d := range DeviceCounters {
				counter(c.device[i], d.From(ds))
			}
		}
	}
	if il := c.src.Impaired; il != nil {
		st := il.Stats()
		for _, d := range []struct {
			name string
			s    netif.ImpairDirStats
		}{{"in", st.In}, {"out", st.Out}} {
			for _, v := range []struct {
				decision string
				n        uint64
			}{
				{"entered", d.s.InPackets}, {"delivered", d.s.DeliveredPackets}, {"lost", d.s.LostPackets},
				{"duplicated", d.s.DuplicatedPackets}, {"reordered", d.s.ReorderedPackets}, {"delayed", d.s.DelayedPackets},
				{"queue_dropped", d.s.QueueDropPackets}, {"link_refused", d.s.LinkErrorPackets},
			} {
				counter(c.impair, v.n, d.name, v.decision)
			}
			gauge(c.queueHi, float64(d.s.MaxQueuePackets), d.name)
		}
	}
}

// connStates are the states tunstack_tcp_connections reports, under the
// names iproute2's ss gives them.
var connStates = []struct {
	state tcpcore.State
	name  string
}{
	{tcpcore.SynSent, "syn-sent"}, {tcpcore.SynReceived, "syn-recv"}, {tcpcore.Established, "established"},
	{tcpcore.FinWait1, "fin-wait-1"}, {tcpcore.FinWait2, "fin-wait-2"}, {tcpcore.CloseWait, "close-wait"},
	{tcpcore.Closing, "closing"}, {tcpcore.LastAck, "last-ack"}, {tcpcore.TimeWait, "time-wait"},
}

// histogram sends h as a Prometheus histogram (cumulative buckets).
func histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, h stack.Histogram) {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		buckets[b] = cum
	}
	ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets)
}

// Registry returns a registry holding a collector of src, and the Go
// runtime's and the process's standard metrics (go_goroutines,
// go_memstats_*, the garbage collector's go_gc_* with the live heap after
// the last cycle, go_gc_heap_live_bytes, process_open_fds,
// process_resident_memory_bytes, ...) from client_golang's collectors,
// which `tunstack soak` samples to see whether a long run leaks.
func Registry(src Source) *prometheus.Registry {
	r := prometheus.NewPedanticRegistry()
	r.MustRegister(NewCollector(src),
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsGC)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}
