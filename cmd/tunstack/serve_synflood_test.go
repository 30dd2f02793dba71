package main

// The SYN-flood check: 10,000 SYNs from spoofed sources that never
// answer, injected inside serve's namespace, while real curl clients keep
// getting answers, with SYN cookies on (the linux profile); the state the
// flood leaves behind, and so the memory, stays bounded.

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"tunstack/lab"
	"tunstack/stack"
	"tunstack/tcpcore"
)

const (
	floodSYNs = 10000
	// floodRate paces the flood so that it lasts long enough for curl
	// clients to run during it (about four seconds); each burst stays far
	// below the TUN's queue (txqueuelen 500), so the kernel has no reason
	// to drop a SYN before our stack reads it, and the test checks it did
	// not.
	floodRate     = 2500 // SYNs per second
	floodTick     = 10 * time.Millisecond
	floodMaxBurst = 100 // SYNs per tick at most, when a tick comes late
	curlWorkers   = 4
)

// floodSources are the spoofed sources: 198.19.0.0/16 is the other half of
// RFC 2544's benchmarking range, so no real host has them, and nothing in
// the namespace does either. The raw socket's packets are routed by their
// destination (198.18.0.2, through the TUN), whatever their source; our
// stack's SYN-ACKs to 198.19.x.y come back into the kernel through the
// TUN, for an address it does not own, and with forwarding off (set below)
// the kernel drops them (counted as InAddrErrors): the sources never
// answer, as a real flood's do not. Addresses inside 198.18.0.0/24 would
// do the same, but a separate prefix cannot be mistaken for the host side.
var floodSources = netip.MustParsePrefix("198.19.0.0/16")

func TestServeSYNFloodCookiesKeepCurlServedAndStateBounded(t *testing.T) {
	// One queue: the bounds checked below are one engine's (with several
	// shards each has a SYN queue of the backlog's size).
	s := startServe(t, "--profile", "linux", "--backlog", "128", "--queues", "1")
	prof := s.cfg.Profile
	if !prof.SynCookies || prof.BacklogBoundsBoth {
		t.Fatalf("the linux profile should answer a full SYN queue with cookies (SynCookies %v, BacklogBoundsBoth %v)", prof.SynCookies, prof.BacklogBoundsBoth)
	}
	// The SYN queue's bound: as in Linux (inet_csk_reqsk_queue_is_full),
	// the queue holds backlog+1 half-open connections (129 for the
	// backlog of 128 given here), and never more than tcp_max_syn_backlog; the
	// checks below want it filled to no more than that, then held there
	// while cookies answer the rest.
	synQueueBound := min(s.cfg.Backlog+1, prof.MaxSynBacklog)
	if synQueueBound >= floodSYNs {
		t.Fatalf("the flood's %d SYNs would not overflow the profile's SYN queue of %d", floodSYNs, synQueueBound)
	}
	st, ok := s.sess.network.(*stack.Stack)
	if !ok {
		t.Fatalf("serve runs %T, want *stack.Stack", s.sess.network)
	}
	httpStats := httpListenerStats(t, s)

	// Forwarding off: the kernel drops the SYN-ACKs for the spoofed
	// sources instead of trying to route them anywhere.
	if err := s.ns.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0"), 0o644)
	}); err != nil {
		t.Fatalf("turning forwarding off in the namespace: %v", err)
	}

	// Requests before the flood: what the first ones allocate once (the
	// HTTP server's pools) lands in the baseline rather than in the
	// growth, and their times are the flood's reference.
	quiet := runCurls(s, curlWorkers, nil, func(done int) bool { return done < 3 })
	quiet.wait()
	if len(quiet.errs) > 0 {
		t.Fatalf("curl fails before any flood:\n%s", strings.Join(quiet.errs, "\n"))
	}
	heapBefore := liveHeap()
	goroutinesBefore := runtime.NumGoroutine()
	engBefore := st.Stats()
	ipBefore := st.IPStats()
	lnBefore := httpStats()
	tunBefore := tunCounters(t, s)
	kernelBefore := kernelIPCounter(t, s, "InAddrErrors")

	var inj *lab.SYNInjector
	dst := netip.AddrPortFrom(s.cfg.StackAddr, s.cfg.HTTPPort)
	if err := s.ns.Do(func() (err error) {
		inj, err = lab.NewSYNInjector(dst, floodSources, 5)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer inj.Close()

	// The sampler records the highs while the flood runs: the SYN queue,
	// the connections the engine holds, and the Go heap with its garbage.
	var (
		samplerStop = make(chan struct{})
		samplerDone = make(chan struct{})
		maxSynQueue int
		maxConns    int
		peakHeap    runtime.MemStats
	)
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			maxSynQueue = max(maxSynQueue, httpStats().SynQueue)
			maxConns = max(maxConns, st.ConnCount())
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.HeapInuse {
				peakHeap = ms
			}
			select {
			case <-samplerStop:
				return
			case <-tick.C:
			}
		}
	}()
	// The sampler's results are read once it has stopped.
	stopSampler := sync.OnceFunc(func() {
		close(samplerStop)
		<-samplerDone
	})
	defer stopSampler()

	// The curl clients start once the SYN queue is full, so every
	// connection they make during the flood can only be answered with a
	// cookie, and go on until the flood has been sent.
	var (
		curlStart     = make(chan struct{})
		startCurls    sync.Once
		floodDone     atomic.Bool
		cookiesAtFill uint64
	)
	flooded := runCurls(s, curlWorkers, curlStart, func(int) bool { return !floodDone.Load() })
	// On a failure below, the clients still get to finish.
	defer flooded.wait()
	defer startCurls.Do(func() { close(curlStart) })
	defer floodDone.Store(true)

	floodStart := time.Now()
	var fillAfter time.Duration
	var enobufs int
	tick := time.NewTicker(floodTick)
	for inj.Sent() < floodSYNs {
		<-tick.C
		due := min(floodSYNs, uint64(time.Since(floodStart)*floodRate/time.Second))
		if n := min(int(due)-int(inj.Sent()), floodMaxBurst); n > 0 {
			if _, err := inj.Send(n); errors.Is(err, unix.ENOBUFS) {
				enobufs++ // the device queue is full: the rest goes next tick
			} else if err != nil {
				t.Fatalf("injecting SYN %d: %v", inj.Sent(), err)
			}
		}
		// The queue is full when the listener starts answering with
		// cookies.
		if fillAfter == 0 {
			if ls := httpStats(); ls.CookiesSent > lnBefore.CookiesSent {
				fillAfter = time.Since(floodStart)
				cookiesAtFill = ls.CookiesValid
				startCurls.Do(func() { close(curlStart) })
			}
		}
	}
	tick.Stop()
	floodTime := time.Since(floodStart)
	floodDone.Store(true)
	startCurls.Do(func() { close(curlStart) }) // the queue never filled: the checks below say so
	flooded.wait()
	curlTime := time.Since(floodStart)

	// After the flood the spoofed half-open entries still fill the SYN
	// queue (they live through five SYN-ACK retransmissions, about a
	// minute), so a new client still needs a cookie, and still gets in.
	if out := s.curl(t, s.url("/")); !bytes.Contains(out, []byte("served by tunstack.")) {
		t.Fatalf("request after the flood: unexpected body:\n%s", out)
	}
	stopSampler()

	engAfter := st.Stats()
	ipAfter := st.IPStats()
	lnAfter := httpStats()
	tunAfter := tunCounters(t, s)
	kernelAfter := kernelIPCounter(t, s, "InAddrErrors")
	connsAfter := st.ConnCount()
	heapAfter := liveHeap()
	goroutinesAfter := runtime.NumGoroutine()

	// strayCause is what a stray ACK to the listener answers (see the
	// cookie check below): the stack's retransmissions, SYN-ACKs aside.
	strayCause := (engAfter.RetransSegs - engAfter.SynRetrans) - (engBefore.RetransSegs - engBefore.SynRetrans)
	halfOpened := (engAfter.PassiveOpens - engAfter.SynCookiesRecv) - (engBefore.PassiveOpens - engBefore.SynCookiesRecv)
	cookiesSent := lnAfter.CookiesSent - lnBefore.CookiesSent
	cookiesValid := lnAfter.CookiesValid - lnBefore.CookiesValid
	growth := int64(heapAfter.HeapAlloc) - int64(heapBefore.HeapAlloc)
	connSize := unsafe.Sizeof(tcpcore.Conn{})
	// A half-open connection costs at least a tcpcore.Conn (connSize,
	// logged below; its map entry and timer-heap slot come on top, about 1.7 KiB
	// in all as measured). Keeping one per flood SYN would cost more than
	// floodSYNs of them, over 10 MiB; the design keeps at most the SYN
	// queue's bound (backlog+1, 129 for serve's default, about 0.2 MiB) and
	// answers the rest with cookies, which keep nothing. The bound is half
	// that leak's floor, broken by keeping even half the flood.
	heapBound := int64(floodSYNs * connSize / 2)
	// The peak counts garbage too, which the GC lets grow to about the live
	// heap again before it collects (GOGC=100); 64 MiB is far above that,
	// and a flood that made the stack buffer or allocate per SYN at scale
	// (a 16 KiB send ring each would be 160 MiB) would still break it.
	const peakBound = 64 * mib
	peakGrowth := int64(peakHeap.HeapInuse) - int64(heapBefore.HeapInuse)

	filled := "never"
	if fillAfter > 0 {
		filled = "after " + fillAfter.Round(time.Millisecond).String()
	}
	t.Logf("flood: %d SYNs from %s to %s in %v (%.0f SYN/s asked, ENOBUFS %d times); SYN queue full %s",
		inj.Sent(), floodSources, dst, floodTime.Round(time.Millisecond), float64(floodRate), enobufs, filled)
	t.Logf("TUN %s: kernel to stack tx_packets +%d, tx_dropped +%d; stack read %d packets, wrote %d (link write errors %d); kernel InAddrErrors +%d (our SYN-ACKs to the spoofed sources, dropped)",
		s.cfg.Dev, tunAfter.TxPackets-tunBefore.TxPackets, tunAfter.TxDropped-tunBefore.TxDropped,
		ipAfter.PacketsIn-ipBefore.PacketsIn, ipAfter.PacketsOut-ipBefore.PacketsOut, ipAfter.LinkWriteErrors-ipBefore.LinkWriteErrors, kernelAfter-kernelBefore)
	t.Logf("http listener: SYN queue max %d (bound %d), now %d; half-open entries made %d; cookies sent %d, valid %d, failed %d (retransmissions other than SYN-ACKs %d); drops %d, SYN-queue drops %d, overflows %d",
		maxSynQueue, synQueueBound, lnAfter.SynQueue, halfOpened, cookiesSent, cookiesValid, lnAfter.CookiesFailed-lnBefore.CookiesFailed, strayCause,
		lnAfter.Drops-lnBefore.Drops, lnAfter.SynQueueDrops-lnBefore.SynQueueDrops, lnAfter.Overflows-lnBefore.Overflows)
	t.Logf("curl: %d of %d GET / succeeded during the flood (%d clients, %v from the flood's start until the last finished); connections on a valid cookie since the queue filled %d (those requests and 1 after the flood)",
		len(flooded.durs), flooded.started(), curlWorkers, curlTime.Round(time.Millisecond), lnAfter.CookiesValid-cookiesAtFill)
	t.Logf("curl time per request (process start to exit): before the flood median %v, max %v (%d requests); during it median %v, max %v",
		quiet.median(), quiet.max(), len(quiet.durs), flooded.median(), flooded.max())
	t.Logf("engine connections: max %d during the flood, %d after; goroutines %d before, %d after",
		maxConns, connsAfter, goroutinesBefore, goroutinesAfter)
	t.Logf("Go heap (live after GC): %.1f MiB before, %.1f MiB after, growth %.2f MiB (bound %.1f MiB = %d SYNs x %d-byte tcpcore.Conn / 2); peak during the flood: %.1f MiB in use (%.1f MiB allocated, live and garbage), %.1f MiB from the OS",
		mibOf(heapBefore.HeapAlloc), mibOf(heapAfter.HeapAlloc), float64(growth)/mib, float64(heapBound)/mib, floodSYNs, connSize,
		mibOf(peakHeap.HeapInuse), mibOf(peakHeap.HeapAlloc), mibOf(peakHeap.Sys))

	// Every SYN crossed the TUN into the stack: the kernel queued each one
	// (no ENOBUFS left unsent, since Sent counts queued SYNs only) and the
	// TUN dropped none on the way to our reader.
	if d := tunAfter.TxDropped - tunBefore.TxDropped; d != 0 {
		t.Errorf("the TUN dropped %d packets on their way to the stack: the flood was not all delivered", d)
	}
	// And the listener answered every one: with a SYN-queue entry or a
	// cookie, never by dropping it.
	if got := halfOpened + cookiesSent; got < floodSYNs {
		t.Errorf("the listener answered %d SYNs (%d half-open, %d cookies), want at least the flood's %d", got, halfOpened, cookiesSent, floodSYNs)
	}
	if d := lnAfter.Drops - lnBefore.Drops; d != 0 {
		t.Errorf("the listener dropped %d SYNs or ACKs; with cookies on it should answer them all", d)
	}
	if maxSynQueue == 0 || maxSynQueue > synQueueBound {
		t.Errorf("SYN queue peaked at %d, want it filled, and to no more than %d", maxSynQueue, synQueueBound)
	}
	// The spoofed entries wait out their SYN-ACK retries (about a
	// minute), so the queue is still as full as it got.
	if lnAfter.SynQueue != maxSynQueue {
		t.Errorf("SYN queue holds %d after the flood, want it still at its peak %d", lnAfter.SynQueue, maxSynQueue)
	}
	if want := uint64(floodSYNs - maxSynQueue); cookiesSent < want {
		t.Errorf("%d cookies sent, want at least %d (every flood SYN beyond the queue's %d)", cookiesSent, want, maxSynQueue)
	}
	// A failed cookie ACK is not always a bad cookie. As Linux counts
	// SyncookiesFailed (cookie_v4_check, within two minutes of the
	// listener's last overflow), it is any ACK that reaches the listener
	// and does not validate, a stray ACK of a connection already gone
	// included, and it is answered with an RST. Under load our FIN of a
	// closing curl connection can be retransmitted before the client's
	// ACK of the first copy reaches the stack; that ACK ends the
	// connection (LAST-ACK), and the client, in TIME-WAIT, answers the
	// second copy with another ACK, which finds only the listener (seen
	// in a capture: FIN, FIN again 255 ms later, the client's ACK, its
	// second ACK 245 ms after the first, the RST). Every such stray
	// answers a retransmission of ours: the TUN neither duplicates nor
	// invents segments, the spoofed sources never answer, and a client
	// in TIME-WAIT sends nothing unprompted. So failures beyond the
	// stack's retransmissions other than SYN-ACKs are bad cookies.
	if f, rtx := lnAfter.CookiesFailed-lnBefore.CookiesFailed, strayCause; f > rtx {
		t.Errorf("%d cookie ACKs failed validation, more than the %d retransmissions (SYN-ACKs aside) whose answers could be stray ACKs of connections already gone; curl's cookies must all check out", f, rtx)
	}

	if len(flooded.errs) > 0 {
		t.Errorf("%d of %d curl requests failed during the flood:\n%s", len(flooded.errs), flooded.started(), strings.Join(flooded.errs, "\n"))
	}
	if len(flooded.durs) < curlWorkers {
		t.Errorf("%d curl requests succeeded during the flood, want at least one per client (%d)", len(flooded.durs), curlWorkers)
	}
	// Each curl makes one connection, and from the moment the queue
	// filled each had to come in on a cookie.
	if got, want := lnAfter.CookiesValid-cookiesAtFill, uint64(len(flooded.durs))+1; got < want {
		t.Errorf("%d connections came in on a valid cookie after the SYN queue filled, want at least the %d successful curl requests", got, want)
	}

	// Bounded state: the engine holds the SYN queue's entries and the few
	// connections curl has open or closing, never one per flood SYN.
	if slack := 4 * curlWorkers; maxConns > maxSynQueue+slack || connsAfter > maxSynQueue+slack {
		t.Errorf("the engine held up to %d connections (%d after the flood), want at most the SYN queue's %d plus %d for curl", maxConns, connsAfter, maxSynQueue, slack)
	}
	if growth > heapBound {
		t.Errorf("live Go heap grew by %.2f MiB over the flood, more than the %.2f MiB bound: per-SYN state is kept", float64(growth)/mib, float64(heapBound)/mib)
	}
	if peakGrowth > peakBound {
		t.Errorf("Go heap in use peaked %.1f MiB above the baseline during the flood, more than %d MiB", float64(peakGrowth)/mib, peakBound/mib)
	}
}

// httpListenerStats returns a function reading the HTTP listener's queues.
func httpListenerStats(t *testing.T, s *served) func() tcpcore.ListenerStats {
	t.Helper()
	for _, l := range s.sess.listeners {
		if l.name != "http" {
			continue
		}
		if st, ok := l.ln.(interface{ Stats() tcpcore.ListenerStats }); ok {
			return st.Stats
		}
		t.Fatalf("the http listener (%T) has no queue statistics", l.ln)
	}
	t.Fatal("serve has no http listener")
	return nil
}

// curlIndex fetches / with the real curl in the namespace and checks the
// page; it returns how long curl took.
func curlIndex(s *served) (time.Duration, error) {
	cmd := s.ns.Command("curl", append(slices.Clone(curlArgs), s.url("/"))...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("curl after %v: %v: %s", d.Round(time.Millisecond), err, bytes.TrimSpace(stderr.Bytes()))
	}
	if !bytes.Contains(out, []byte("served by tunstack.")) {
		return d, fmt.Errorf("curl: unexpected body %q", out)
	}
	return d, nil
}

// liveHeap collects garbage and returns the memory statistics, so that
// HeapAlloc is the live heap.
func liveHeap() runtime.MemStats {
	runtime.GC()
	runtime.GC() // finalizers queued by the first may free more
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

func mibOf(n uint64) float64 { return float64(n) / mib }

// tunCounters reads the TUN device's counters inside serve's namespace.
func tunCounters(t *testing.T, s *served) netlink.LinkStatistics {
	t.Helper()
	var stats netlink.LinkStatistics
	if err := s.ns.Do(func() error {
		l, err := netlink.LinkByName(s.cfg.Dev)
		if err != nil {
			return err
		}
		if l.Attrs().Statistics == nil {
			return fmt.Errorf("%s has no statistics", s.cfg.Dev)
		}
		stats = *l.Attrs().Statistics
		return nil
	}); err != nil {
		t.Fatalf("reading %s's counters: %v", s.cfg.Dev, err)
	}
	return stats
}

// kernelIPCounter reads one of the namespace's Ip: counters in
// /proc/net/snmp (netstat -s's source).
func kernelIPCounter(t *testing.T, s *served, name string) uint64 {
	t.Helper()
	out, err := s.ns.Command("cat", "/proc/net/snmp").Output()
	if err != nil {
		t.Fatalf("reading /proc/net/snmp in the namespace: %v", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		rest, ok := strings.CutPrefix(line, "Ip: ")
		if !ok {
			continue
		}
		if names == nil {
			names = strings.Fields(rest)
			continue
		}
		if i := slices.Index(names, name); i >= 0 {
			var v uint64
			if f := strings.Fields(rest); i < len(f) {
				if _, err := fmt.Sscan(f[i], &v); err == nil {
					return v
				}
			}
		}
		break
	}
	t.Fatalf("/proc/net/snmp has no Ip: %s", name)
	return 0
}

// curlRuns are curl clients fetching / in a loop, and what they got.
type curlRuns struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	n    int             // requests started
	durs []time.Duration // of the successful requests
	errs []string
}

// runCurls starts workers clients in the namespace. Each waits for start
// (nil: starts at once), then makes requests while more(requests it has
// made) says so, and at least one.
func runCurls(s *served, workers int, start <-chan struct{}, more func(done int) bool) *curlRuns {
	r := &curlRuns{}
	for range workers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if start != nil {
				<-start
			}
			for done := 0; done == 0 || more(done); done++ {
				r.mu.Lock()
				r.n++
				r.mu.Unlock()
				d, err := curlIndex(s)
				r.mu.Lock()
				if err != nil {
					r.errs = append(r.errs, err.Error())
				} else {
					r.durs = append(r.durs, d)
				}
				r.mu.Unlock()
			}
		}()
	}
	return r
}

// wait waits for every client to finish; the fields are final after it.
func (r *curlRuns) wait() { r.wg.Wait() }

func (r *curlRuns) started() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *curlRuns) median() time.Duration {
	if len(r.durs) == 0 {
		return 0
	}
	d := slices.Clone(r.durs)
	slices.Sort(d)
	return d[len(d)/2].Round(time.Millisecond)
}

func (r *curlRuns) max() time.Duration {
	if len(r.durs) == 0 {
		return 0
	}
	return slices.Max(r.durs).Round(time.Millisecond)
}
