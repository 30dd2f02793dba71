package main

// Hostile peers against tunstack serve over its TUN: a population of idle
// connections against --max-conns. Each case logs one line per stack for
// the reliability report:
//
//	RELIABILITY {"case":..., "stack":..., "outcome":..., "figures":{...}}

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tunstack/internal/testtools"
	"tunstack/lab/netns"
	"tunstack/metrics"
	"tunstack/stack"
	"tunstack/tcpcore"
)

// reliabilityLine is one case's result on one stack, as the reliability
// report's generator reads it from the test log.
type reliabilityLine struct {
	Case    string            `json:"case"`
	Stack   string            `json:"stack"` // tunstack, linux or gvisor
	Outcome string            `json:"outcome"`
	Figures map[string]string `json:"figures"`
}

// logReliability writes r as the report's one machine-readable line.
func logReliability(t *testing.T, r reliabilityLine) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("encoding the reliability line: %v", err)
	}
	t.Logf("RELIABILITY %s", b)
}

// idleConns are kernel TCP sockets opened from a namespace that never send:
// connect(2) started without waiting, each left as the kernel takes it.
type idleConns struct {
	fds []int
}

// open starts n more non-blocking connects to dst from inside ns. The
// sockets are created in ns (a socket keeps the namespace it was made in).
func (ic *idleConns) open(ns *netns.NS, dst netip.AddrPort, n int) error {
	sa := &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
	return ns.Do(func() error {
		for range n {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("socket %d: %w", len(ic.fds), err)
			}
			ic.fds = append(ic.fds, fd)
			if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
				return fmt.Errorf("connect %d to %s: %w", len(ic.fds), dst, err)
			}
		}
		return nil
	})
}

// states counts the sockets by their kernel TCP state (TCP_INFO's
// tcpi_state, Linux's TCP_* numbers).
func (ic *idleConns) states(t *testing.T) map[uint8]int {
	t.Helper()
	n := map[uint8]int{}
	for _, fd := range ic.fds {
		ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			t.Fatalf("TCP_INFO: %v", err)
		}
		n[ti.State]++
	}
	return n
}

// Close closes every socket: the established ones send their FIN.
func (ic *idleConns) Close() {
	for _, fd := range ic.fds {
		unix.Close(fd)
	}
	ic.fds = nil
}

// Linux's TCP states as tcpi_state gives them.
const (
	linuxEstablished = 1
	linuxSynSent     = 2
)

// awaitCondition polls cond every 10 ms until it holds or limit has
// passed, and reports whether it held.
func awaitCondition(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// A population of connections that complete the handshake and never send
// meets --max-conns: the stack holds exactly the cap, drops every SYN
// beyond it unanswered (the clients stay in SYN-SENT and retry), counts
// each drop, and a curl arriving meanwhile gets no answer either; once the
// idle clients go away the stack holds nothing, and curl is served. The
// idle connections go to the discard service, which keeps a connection as
// long as its peer does, and curl to the HTTP one: the cap is over all
// the stack's listeners.
func TestHostileIdleConnsMeetMaxConns(t *testing.T) {
	netns.RequireRoot(t)
	testtools.Need(t, "curl")
	const (
		maxConns = 1000
		idle     = 1200
	)
	s := startServe(t, "--max-conns", strconv.Itoa(maxConns), "--metrics", "127.0.0.1:0")
	st, ok := s.sess.network.(*stack.Stack)
	if !ok {
		t.Fatalf("serve runs %T, want *stack.Stack", s.sess.network)
	}
	// A request first, so the HTTP server's first allocations are in the
	// baseline.
	if _, err := curlIndex(s); err != nil {
		t.Fatalf("curl before any idle connection: %v", err)
	}
	if !awaitCondition(10*time.Second, func() bool { return st.HeldConns() == 0 }) {
		t.Fatalf("the first request's connection is still held (%d held)", st.HeldConns())
	}
	heapBefore := liveHeap()
	before := st.Stats()

	// The clients arrive in batches smaller than the SYN queue (backlog
	// 128), each once the stack has taken or refused the one before, so
	// every one that gets in is held from its SYN on: a burst that
	// overflowed the SYN queue would be answered with cookies, and a
	// cookie client that never sends is connected on its side only,
	// holding nothing here (the SYN-flood test covers that path).
	dst := netip.AddrPortFrom(s.cfg.StackAddr, s.cfg.DiscardPort)
	discardQueues := func() tcpcore.ListenerStats {
		for _, l := range s.sess.listeners {
			if x, ok := l.ln.(listenerStats); ok && l.name == "discard" && l.ln.Addr().String() == dst.String() {
				return x.Stats()
			}
		}
		t.Fatalf("serve has no discard listener on %s", dst)
		return tcpcore.ListenerStats{}
	}
	ic := &idleConns{}
	t.Cleanup(ic.Close)
	const batch = 100
	for len(ic.fds) < idle {
		if err := ic.open(s.ns, dst, min(batch, idle-len(ic.fds))); err != nil {
			t.Fatalf("opening idle connections: %v", err)
		}
		opened := len(ic.fds)
		// Taken (held, with the handshake complete and accepted) or
		// refused (a SYN dropped for the cap) each.
		if !awaitCondition(30*time.Second, func() bool {
			q := discardQueues()
			return st.HeldConns() == min(opened, maxConns) && q.SynQueue == 0 && q.AcceptQueue == 0 &&
				st.Stats().MaxConnsDrops-before.MaxConnsDrops >= uint64(max(opened-maxConns, 0))
		}) {
			t.Fatalf("with %d idle clients the stack holds %d connections (discard's queues %+v) and dropped %d SYNs for the cap, want %d held and at least %d drops; client sockets by state %v",
				opened, st.HeldConns(), discardQueues(), st.Stats().MaxConnsDrops-before.MaxConnsDrops, min(opened, maxConns), max(opened-maxConns, 0), ic.states(t))
		}
	}
	held := st.HeldConns()
	heapFull := liveHeap()
	states := ic.states(t)
	if c := discardQueues().CookiesSent; c != 0 {
		t.Errorf("discard sent %d SYN cookies: the batches overflowed its SYN queue", c)
	}
	// Every client beyond the cap is still in SYN-SENT, retrying.
	estab, synSent := states[linuxEstablished], states[linuxSynSent]
	if estab != maxConns || synSent != idle-maxConns {
		t.Errorf("client sockets by state %v, want %d ESTABLISHED (state %d) and %d in SYN-SENT (state %d)",
			states, maxConns, linuxEstablished, idle-maxConns, linuxSynSent)
	}

	// curl at the cap: its SYN is dropped like the others', and within
	// two seconds (its first SYN and one retransmission) nothing answers.
	cmd := s.ns.Command("curl", append(slices.Clone(curlArgs), "--connect-timeout", "2", s.url("/"))...)
	err := cmd.Run()
	var exit *exec.ExitError
	curlAtCap := "yes"
	if errors.As(err, &exit) && exit.ExitCode() == 28 { // curl: operation timed out
		curlAtCap = "no"
	} else {
		t.Errorf("curl with the cap reached: %v, want it to time out connecting (exit 28)", err)
	}

	// The idle clients leave: every connection the stack held ends (the
	// discard service closes on their FIN), and none is left counted.
	ic.Close()
	if !awaitCondition(30*time.Second, func() bool { return st.HeldConns() == 0 }) {
		t.Fatalf("%d connections still held after the idle clients closed", st.HeldConns())
	}
	curlAfter := "yes"
	if _, err := curlIndex(s); err != nil {
		curlAfter = "no"
		t.Errorf("curl after the idle clients left: %v", err)
	}
	after := st.Stats()
	ls := make(map[string]uint64)
	for _, l := range s.sess.listeners {
		if x, ok := l.ln.(listenerStats); ok {
			ls[l.name] += x.Stats().MaxConnsDrops
		}
	}
	drops := after.MaxConnsDrops - before.MaxConnsDrops
	if ls["discard"]+ls["http"] != drops || ls["http"] == 0 {
		t.Errorf("listeners counted %v MaxConnsDrops, want them to add up to the engine's %d, the http one's curl included", ls, drops)
	}
	// The drops are in the metrics under their own name.
	_, fams := s.scrape(t)
	if v := value(t, fams, metrics.PromName("TcpExtTunstackMaxConnsDrop")); v != float64(after.MaxConnsDrops) {
		t.Errorf("metric TcpExtTunstackMaxConnsDrop is %v, want the engine's %d", v, after.MaxConnsDrops)
	}
	perConn := (int64(heapFull.HeapAlloc) - int64(heapBefore.HeapAlloc)) / maxConns
	t.Logf("%d idle connections to %s with --max-conns %d: %d held, %d SYNs and cookie ACKs dropped for the cap (%d of them curl's); client states %v; live heap %.1f MiB before, %.1f MiB at the cap (%d bytes per held connection)",
		idle, dst, maxConns, held, drops, ls["http"], states, mibOf(heapBefore.HeapAlloc), mibOf(heapFull.HeapAlloc), perConn)
	logReliability(t, reliabilityLine{
		Case:  "max-conns",
		Stack: "tunstack",
		Outcome: fmt.Sprintf("%d idle connections against --max-conns %d: %d held, the other %d and a curl had every SYN dropped unanswered and stayed in SYN-SENT; once the idle ones closed curl was served",
			idle, maxConns, held, synSent),
		Figures: map[string]string{
			"idle_conns":          strconv.Itoa(idle),
			"held_at_cap":         strconv.Itoa(held),
			"syns_dropped":        strconv.FormatUint(drops, 10),
			"clients_syn_sent":    strconv.Itoa(synSent),
			"heap_per_conn_bytes": strconv.FormatInt(perConn, 10),
			"curl_served_at_cap":  curlAtCap,
			"curl_served_after":   curlAfter,
		},
	})
}
