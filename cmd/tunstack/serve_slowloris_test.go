package main

// A slow-loris population against the HTTP service: kernel sockets in the
// client's namespace, half of them trickling an unfinished request a byte
// at a time, half silent after the handshake, with curl fetching the site
// all the while; on tunstack over its TUN (with --max-conns), on gVisor
// over its TUN, and on Linux (a kernel listener in a second namespace
// serving the same site with the same header timeout).

import (
	"bufio"
	"flag"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tunstack/internal/testtools"
	"tunstack/lab/netns"
	"tunstack/stack"
)

var (
	lorisConns = flag.Int("loris.conns", 300, "connections in each of TestHostileSlowLorisKeepsCurlServed's two populations (trickling, silent); make reliability runs 10000")
	lorisHold  = flag.Duration("loris.hold", 5*time.Second, "how long TestHostileSlowLorisKeepsCurlServed holds the whole population while curl runs")
)

const (
	// lorisEvery is how often each trickling connection sends its byte.
	lorisEvery = 3 * time.Second
	// lorisBatch is how many connects start at once: far below the
	// listeners' backlog (4096), so every SYN is queued, none answered
	// with a cookie.
	lorisBatch = 250
	// lorisPrefix is what a trickling connection sends first: a request
	// whose headers never end; then one byte of the last header's value
	// at a time.
	lorisPrefix = "GET / HTTP/1.1\r\nHost: loris\r\nX-Loris: "
	// lorisReserve is --max-conns's room above the population: curl's
	// connections, one at a time, and their closing.
	lorisReserve = 16
	// lorisOver is how many more silent connections are opened once the
	// population is held, against the cap.
	lorisOver = 100
)

// lorisTarget is one server of the site under attack and what can be read
// of it; a nil func is a figure that stack does not give.
type lorisTarget struct {
	stack    string
	ns       *netns.NS // the clients'
	http     netip.AddrPort
	maxConns int // --max-conns; 0 for no cap
	// held is how many connections the server holds.
	held func() int
	// acceptQueue is the HTTP listener's accept queue.
	acceptQueue func() (int, error)
	// refusals are the server's counters of connections it refused or
	// queued no more of, by name.
	refusals func() map[string]uint64
	// mem is the server processes' live heap, goroutine stacks and
	// resident set, in bytes.
	mem func(t *testing.T) [3]int64
}

// lorisServers is how many processes serve the site on Linux, sharing its
// port through SO_REUSEPORT: each holds a socket per connection it
// accepted, and one process's RLIMIT_NOFILE is less than the population.
const lorisServers = 2

// inProcessMem is this process's live heap and goroutine stacks: serve
// runs in the test's process. Its resident set is not measured (-1): the
// process reuses pages that earlier tests made resident, so the growth of
// its resident set says nothing of the population (gVisor's, measured
// after tunstack's in the same process, came to less than its own
// goroutine stacks); the Linux servers, processes of their own, report
// theirs.
func inProcessMem(t *testing.T) [3]int64 {
	t.Helper()
	ms := liveHeap()
	return [3]int64{int64(ms.HeapAlloc), int64(ms.StackInuse), -1}
}

func newLorisTarget(t *testing.T, name string, n int) *lorisTarget {
	t.Helper()
	switch name {
	case "tunstack":
		capConns := 2*n + lorisReserve
		s := startServe(t, "--stack", "tunstack", "--max-conns", strconv.Itoa(capConns))
		st, ok := s.sess.network.(*stack.Stack)
		if !ok {
			t.Fatalf("serve runs %T, want *stack.Stack", s.sess.network)
		}
		httpAddr := netip.AddrPortFrom(s.cfg.StackAddr, s.cfg.HTTPPort)
		var httpLn listenerStats
		for _, l := range s.sess.listeners {
			if x, ok := l.ln.(listenerStats); ok && l.name == "http" && l.ln.Addr().String() == httpAddr.String() {
				httpLn = x
			}
		}
		if httpLn == nil {
			t.Fatalf("serve has no HTTP listener on %s", httpAddr)
		}
		return &lorisTarget{stack: name, ns: s.ns, http: httpAddr, maxConns: capConns, mem: inProcessMem,
			held:        st.HeldConns,
			acceptQueue: func() (int, error) { return httpLn.Stats().AcceptQueue, nil },
			refusals: func() map[string]uint64 {
				q := httpLn.Stats()
				return map[string]uint64{"max_conns_drops": st.Stats().MaxConnsDrops, "accept_overflows": q.Overflows,
					"syn_drops": q.Drops, "cookies_sent": q.CookiesSent}
			}}
	case "gvisor":
		s := startServe(t, "--stack", "gvisor")
		return &lorisTarget{stack: name, ns: s.ns, http: netip.AddrPortFrom(s.cfg.StackAddr, s.cfg.HTTPPort), mem: inProcessMem}
	}
	cns, sns, _, server := kernelPair(t)
	addr := netip.AddrPortFrom(server, 80)
	var servers []*helperProc
	for i := range lorisServers {
		h := startHelper(t, sns, "loris-server", fmt.Sprintf("HTTP server %d", i+1), "LORIS_ADDR="+addr.String())
		if _, err := h.answer("listen"); err != nil {
			t.Fatal(err)
		}
		servers = append(servers, h)
	}
	inNS := func(path string) ([]byte, error) {
		var b []byte
		err := sns.Do(func() (err error) {
			b, err = os.ReadFile(path)
			return err
		})
		return b, err
	}
	sockstat := func(field string) uint64 {
		b, err := inNS("/proc/thread-self/net/sockstat")
		if err != nil {
			t.Fatalf("reading the server namespace's sockstat: %v", err)
		}
		v, ok := sockstatField(b, field)
		if !ok {
			t.Fatalf("no TCP %s in the server namespace's sockstat", field)
		}
		return v
	}
	return &lorisTarget{stack: name, ns: cns, http: addr,
		// Every TCP socket of the server's namespace but the listeners.
		held: func() int { return int(sockstat("inuse")) - lorisServers },
		acceptQueue: func() (int, error) {
			b, err := inNS("/proc/thread-self/net/tcp")
			if err != nil {
				return 0, err
			}
			q, ok := listenRecvQ(b, addr.Port())
			if !ok {
				return 0, fmt.Errorf("no listener on port %d in the server namespace's /proc/net/tcp", addr.Port())
			}
			return q, nil
		},
		refusals: func() map[string]uint64 {
			c, err := sns.TCPCounters()
			if err != nil {
				t.Fatalf("reading the server's counters: %v", err)
			}
			return map[string]uint64{"ListenOverflows": c.TcpExt["ListenOverflows"], "ListenDrops": c.TcpExt["ListenDrops"],
				"SyncookiesSent": c.TcpExt["SyncookiesSent"], "TCPReqQFullDrop": c.TcpExt["TCPReqQFullDrop"]}
		},
		mem: func(t *testing.T) [3]int64 {
			var sum [3]int64
			for _, h := range servers {
				a, err := h.do("mem")
				if err != nil {
					t.Fatal(err)
				}
				var m [3]int64
				if _, err := fmt.Sscan(a, &m[0], &m[1], &m[2]); err != nil {
					t.Fatalf("%s's memory %q: %v", h.name, a, err)
				}
				for i := range sum {
					sum[i] += m[i]
				}
			}
			return sum
		},
	}
}

// sockstatField reads a field of the TCP line of /proc/net/sockstat
// ("TCP: inuse 5 orphan 0 tw 0 alloc 7 mem 1").
func sockstatField(b []byte, field string) (uint64, bool) {
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "TCP:" {
			continue
		}
		for i := 1; i+1 < len(f); i += 2 {
			if f[i] == field {
				v, err := strconv.ParseUint(f[i+1], 10, 64)
				return v, err == nil
			}
		}
	}
	return 0, false
}

// listenRecvQ reads the accept queues of the listeners on port from
// /proc/net/tcp, added up: a LISTEN socket's rx_queue is its accept queue.
func listenRecvQ(b []byte, port uint16) (int, bool) {
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sum, found := 0, false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// sl local_address rem_address st tx_queue:rx_queue ...
		if len(f) < 5 || f[3] != "0A" || !strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) {
			continue
		}
		_, rx, ok := strings.Cut(f[4], ":")
		if !ok {
			return 0, false
		}
		q, err := strconv.ParseUint(rx, 16, 32)
		if err != nil {
			return 0, false
		}
		sum, found = sum+int(q), true
	}
	return sum, found
}

// curlLoop fetches / from the site every 200 ms until ended: the
// legitimate client the attack must not keep out.
type curlLoop struct {
	stop chan struct{}
	done chan struct{}
	res  curlResult
}

// curlResult is what a curlLoop got.
type curlResult struct {
	ok      int
	slowest time.Duration
	errs    []string
}

func startCurlLoop(ns *netns.NS, url string) *curlLoop {
	c := &curlLoop{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			start := time.Now()
			out, err := ns.Command("curl", "-sS", "--fail", "--noproxy", "*", "--max-time", "10", "-o", "/dev/null", url).CombinedOutput()
			if d := time.Since(start); err != nil {
				c.res.errs = append(c.res.errs, fmt.Sprintf("%v: %s", err, strings.TrimSpace(string(out))))
			} else {
				c.res.ok++
				c.res.slowest = max(c.res.slowest, d)
			}
			select {
			case <-c.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return c
}

// end stops the loop and returns what it got.
func (c *curlLoop) end() curlResult {
	close(c.stop)
	<-c.done
	return c.res
}

// A slow-loris population, -loris.conns connections that trickle a
// request whose headers never end, a byte every three seconds each, and as
// many that complete the handshake and never send, against the site, with
// curl fetching it every 200 ms from the same namespace throughout. On
// each stack every attacker is held (none refused or reset while the
// header timeout has not passed), the accept queue drains as they come,
// and every curl is served; the figures are the memory each attacker
// costs the server (heap, goroutine stacks, resident set: the HTTP
// server's goroutine and buffers and, for tunstack and gVisor, the TCP
// connection; for Linux the kernel's TCP memory besides), the accept
// queue's peak and the refusal counters. tunstack runs with --max-conns at
// the population plus a reserve for curl; once the population is held,
// more silent clients fill the reserve and every SYN beyond it is dropped
// and counted: the stack holds exactly the cap, which bounds what an
// attacker can make it hold. make test runs a small population; make
// reliability runs 10,000 of each.
func TestHostileSlowLorisKeepsCurlServed(t *testing.T) {
	netns.RequireRoot(t)
	testtools.Need(t, "curl")
	n := *lorisConns
	if n < 1 {
		t.Fatalf("-loris.conns %d: give at least 1", n)
	}
	for _, name := range hostileStacks {
		t.Run(name, func(t *testing.T) { runSlowLoris(t, name, n) })
	}
}

func runSlowLoris(t *testing.T, name string, n int) {
	lt := newLorisTarget(t, name, n)
	url := "http://" + lt.http.String() + "/"
	// One request first, so the HTTP server's first allocations are in
	// the baseline.
	if out, err := lt.ns.Command("curl", "-sS", "--fail", "--noproxy", "*", "--max-time", "10", "-o", "/dev/null", url).CombinedOutput(); err != nil {
		t.Fatalf("curl before the attack: %v: %s", err, out)
	}
	trick := startHelper(t, lt.ns, "loris-clients", "trickling clients", "LORIS_DST="+lt.http.String(), "LORIS_TRICKLE=1")
	silent := startHelper(t, lt.ns, "loris-clients", "silent clients", "LORIS_DST="+lt.http.String())
	mem0 := lt.mem(t)
	ref0 := lt.refusalsNow()

	// The accept queue is sampled every 20 ms from the first connect to
	// the end of the hold.
	var queuePeak atomic.Int64
	var queueErr atomic.Pointer[error]
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		if lt.acceptQueue == nil {
			return
		}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			q, err := lt.acceptQueue()
			if err != nil {
				queueErr.CompareAndSwap(nil, &err)
				return
			}
			if int64(q) > queuePeak.Load() {
				queuePeak.Store(int64(q))
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()
	endSampling := sync.OnceFunc(func() { close(stopSampling); <-sampled })
	defer endSampling()

	curls := startCurlLoop(lt.ns, url)
	endCurls := sync.OnceValues(func() (curlResult, error) { return curls.end(), nil })
	defer endCurls()
	start := time.Now()
	opened := 0
	// populate opens n connections from h in batches, each established on
	// the client's side, and held on the server's where it says, before
	// the next starts.
	populate := func(h *helperProc) {
		for done := 0; done < n; {
			k := min(lorisBatch, n-done)
			if _, err := h.do("open " + strconv.Itoa(k)); err != nil {
				t.Fatalf("after %v with %d connections up: %v (server refusals %v)", time.Since(start).Round(time.Millisecond), opened, err, lt.refusalsNow())
			}
			opened += k
			done += k
			if lt.held != nil && !awaitCondition(60*time.Second, func() bool { return lt.held() >= opened }) {
				t.Fatalf("the server holds %d connections of the %d established (refusals %v)", lt.held(), opened, lt.refusalsNow())
			}
		}
	}
	populate(trick)
	if _, err := trick.do("start"); err != nil {
		t.Fatal(err)
	}
	populate(silent)
	built := time.Since(start)
	// The whole population must be held within the HTTP service's header
	// timeout, or the service's own defence would be what this measures.
	if built+*lorisHold >= serveReadHeaderTimeout {
		t.Fatalf("building the population took %v; with -loris.hold %v that passes the %v header timeout: give a shorter -loris.hold",
			built.Round(time.Millisecond), *lorisHold, serveReadHeaderTimeout)
	}
	hold := time.NewTimer(*lorisHold)
	<-hold.C
	mem1 := lt.mem(t)
	stTrick, stSilent := trick.states(t, 0), silent.states(t, 0)
	heldNow := -1
	if lt.held != nil {
		heldNow = lt.held()
	}
	trickled, err := trick.do("stop")
	if err != nil {
		t.Fatal(err)
	}
	var writes, writeErrs int64
	if _, err := fmt.Sscan(trickled, &writes, &writeErrs); err != nil {
		t.Fatalf("the trickler's count %q: %v", trickled, err)
	}
	endSampling()
	if p := queueErr.Load(); p != nil {
		t.Errorf("reading the accept queue: %v", *p)
	}
	cr, _ := endCurls()
	attackRefusals := diffCounts(ref0, lt.refusalsNow())

	for what, st := range map[string]map[uint8]int{"trickling": stTrick, "silent": stSilent} {
		if st[linuxEstablished] != n {
			t.Errorf("after holding the population %v the %s clients' sockets are by state %v, want all %d ESTABLISHED (state %d): the server closed or reset some",
				*lorisHold, what, st, n, linuxEstablished)
		}
	}
	if lt.held != nil && heldNow < 2*n {
		t.Errorf("the server holds %d connections, want the whole population, %d", heldNow, 2*n)
	}
	if writeErrs != 0 {
		t.Errorf("%d of the trickled bytes could not be written: %s", writeErrs, trickled)
	}
	if writes == 0 {
		t.Errorf("the trickling clients wrote nothing while the population was held %v: the attack did not run", *lorisHold)
	}
	if len(cr.errs) > 0 || cr.ok == 0 {
		t.Errorf("curl during the attack: %d served, %d failed: %q", cr.ok, len(cr.errs), cr.errs)
	}
	for k, v := range attackRefusals {
		if v != 0 {
			t.Errorf("the server counted %d %s during the attack, want none: the population is below every limit", v, k)
		}
	}

	conns := int64(2 * n)
	per := func(i int) int64 { return (mem1[i] - mem0[i]) / conns }
	figs := map[string]any{
		"trickling":           strconv.Itoa(n),
		"silent":              strconv.Itoa(n),
		"built_in_s":          fmt.Sprintf("%.1f", built.Seconds()),
		"heap_per_conn_bytes": strconv.FormatInt(per(0), 10),
		"stack_per_conn":      strconv.FormatInt(per(1), 10),
		"curls_served":        fmt.Sprintf("%d of %d", cr.ok, cr.ok+len(cr.errs)),
		"slowest_curl_ms":     strconv.FormatInt(cr.slowest.Milliseconds(), 10),
		"bytes_trickled":      strconv.FormatInt(writes+int64(n*len(lorisPrefix)), 10),
	}
	if lt.acceptQueue != nil {
		figs["accept_queue_peak"] = strconv.FormatInt(queuePeak.Load(), 10)
	}
	if lt.held != nil {
		figs["held"] = strconv.Itoa(heldNow)
	}
	var refusalText []string
	for _, k := range slices.Sorted(maps.Keys(attackRefusals)) {
		figs[k] = strconv.FormatUint(attackRefusals[k], 10)
		refusalText = append(refusalText, fmt.Sprintf("%s %d", k, attackRefusals[k]))
	}
	// Each held connection has at least its goroutine and its
	// connection's state; 32 KiB of either would be buffers held idle.
	for i, what := range []string{"live heap", "goroutine stack"} {
		if v := per(i); v <= 0 || v > 32<<10 {
			t.Errorf("%s per held connection %d bytes (%d before, %d held), want above 0 and at most %d", what, v, mem0[i], mem1[i], 32<<10)
		}
	}
	server := "the server's process"
	memText := fmt.Sprintf("%d B of heap and %d B of goroutine stack", per(0), per(1))
	if lt.stack == "linux" {
		server = fmt.Sprintf("the %d server processes", lorisServers)
	}
	if mem0[2] >= 0 && mem1[2] >= 0 {
		figs["rss_per_conn_bytes"] = strconv.FormatInt(per(2), 10)
		memText = fmt.Sprintf("%d B of heap, %d B of goroutine stack and %d B of resident set", per(0), per(1), per(2))
	}
	outcome := fmt.Sprintf("%d connections trickling a request a byte every %v and %d silent ones, built in %.1f s and held %v: all held and still established, %s per connection in %s; ",
		n, lorisEvery, n, built.Seconds(), *lorisHold, memText, server)
	if lt.acceptQueue != nil {
		outcome += fmt.Sprintf("accept queue peak %d, refusals %s; ", queuePeak.Load(), strings.Join(refusalText, ", "))
	}
	outcome += fmt.Sprintf("curl served %d of %d times throughout (slowest %v)", cr.ok, cr.ok+len(cr.errs), cr.slowest.Round(time.Millisecond))
	if lt.maxConns > 0 {
		outcome += capPhase(t, lt, silent, figs)
	}
	t.Logf("%s: %s", name, outcome)
	logReliability(t, reliabilityEntry{Case: "slow-loris population", Stack: name, Outcome: outcome, Figures: figs})
	// Linux and gVisor have no cap on connections to set: what the same
	// population did to them is their column of the max-conns case.
	switch name {
	case "linux":
		logReliability(t, reliabilityEntry{Case: "max-conns", Stack: name,
			Outcome: fmt.Sprintf("no cap on a listener's connections: the slow-loris population's %d were all held (%d by the kernel), nothing refused; what bounds them is each server process's descriptors (RLIMIT_NOFILE, so %d processes share the port with SO_REUSEPORT) and tcp_mem",
				2*n, heldNow, lorisServers),
			Figures: map[string]any{"held": strconv.Itoa(heldNow)}})
	case "gvisor":
		logReliability(t, reliabilityEntry{Case: "max-conns", Stack: name,
			Outcome: fmt.Sprintf("no cap on connections in its netstack (serve refuses --max-conns with --stack gvisor): the slow-loris population's %d were all held, nothing refused", 2*n),
			Figures: map[string]any{"held": strconv.Itoa(2 * n)}})
	}
}

// capPhase opens lorisOver more silent connections against --max-conns,
// with the population held: the reserve fills, the stack then holds
// exactly the cap, and every SYN beyond it is dropped unanswered and
// counted. It returns the outcome's words for it.
func capPhase(t *testing.T, lt *lorisTarget, silent *helperProc, figs map[string]any) string {
	t.Helper()
	pop := 2 * *lorisConns
	// curl's last connection ends first.
	if !awaitCondition(30*time.Second, func() bool { return lt.held() == pop }) {
		t.Fatalf("the stack holds %d connections after curl stopped, want the population, %d", lt.held(), pop)
	}
	drops0 := lt.refusals()["max_conns_drops"]
	if _, err := silent.do("open-nowait " + strconv.Itoa(lorisOver)); err != nil {
		t.Fatal(err)
	}
	room := lt.maxConns - pop
	if !awaitCondition(30*time.Second, func() bool {
		return lt.held() == lt.maxConns && lt.refusals()["max_conns_drops"]-drops0 >= uint64(lorisOver-room)
	}) {
		t.Fatalf("with %d more clients against --max-conns %d the stack holds %d and dropped %d SYNs for the cap, want %d held and at least %d drops; their sockets by state %v",
			lorisOver, lt.maxConns, lt.held(), lt.refusals()["max_conns_drops"]-drops0, lt.maxConns, lorisOver-room, silent.states(t, lorisOver))
	}
	heldAtCap := lt.held()
	drops := lt.refusals()["max_conns_drops"] - drops0
	st := silent.states(t, lorisOver)
	if st[linuxEstablished] != room || st[linuxSynSent] != lorisOver-room {
		t.Errorf("of the %d clients beyond the population, by state %v, want %d ESTABLISHED and %d in SYN-SENT", lorisOver, st, room, lorisOver-room)
	}
	figs["max_conns"] = strconv.Itoa(lt.maxConns)
	figs["held_at_cap"] = strconv.Itoa(heldAtCap)
	figs["cap_drops"] = strconv.FormatUint(drops, 10)
	return fmt.Sprintf("; %d more against --max-conns %d: %d held (the cap), the other %d left in SYN-SENT, %d SYNs dropped and counted (TcpExtTunstackMaxConnsDrop)",
		lorisOver, lt.maxConns, heldAtCap, st[linuxSynSent], drops)
}

func (lt *lorisTarget) refusalsNow() map[string]uint64 {
	if lt.refusals == nil {
		return nil
	}
	return lt.refusals()
}

// diffCounts is after less before, by name.
func diffCounts(before, after map[string]uint64) map[string]uint64 {
	if after == nil {
		return nil
	}
	d := map[string]uint64{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}
