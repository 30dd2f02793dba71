package bench

import (
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strings"

	"tunstack/gvisorstack"
	"tunstack/lab/netns"
	"tunstack/netif"
	"tunstack/policy"
	tcprelay "tunstack/relay"
	"tunstack/stack"
)

// The relay scenarios measure `tunstack relay`'s data path: the relay
// package on tunstack's or gVisor's frontend, in this process as bench
// runs the stacks, between a kernel client and a kernel server:
//
//	tunstack, gvisor:  [ns client: kernel, TUN bench0 198.18.0.1] -- stack 198.18.0.3 + relay -- [ns relay: veth bench0 198.18.0.1] -- veth -- [ns server: veth bench1 198.18.0.2]
//	linux:             [ns client: veth bench0 198.18.0.1] -- veth -- [ns server: veth bench1 198.18.0.2]
//
// The client connects to 198.18.0.2 as in every other scenario; through
// the relay, its route sends that into the TUN, the frontend holds the
// SYN, the relay dials 198.18.0.2 from the relay namespace (kernel TCP
// over the veth) and splices the two; a -v6 run does the same with
// fd00:7475:6e73::1, ::3 and ::2, the link carrying both families. linux
// is the direct kernel path
// without a relay, the ceiling. The scenarios' code is that of bulk-down,
// bulk-up, crr and idle, with the kernel server as the listener: only the
// environment differs.

// relayStackAddr and relayStackAddr6 are the relay stack's own addresses
// on the TUN's link: not the destination's, which the stack takes only
// through its frontend.
var (
	relayStackAddr  = netip.MustParseAddr("198.18.0.3")
	relayStackAddr6 = netip.MustParseAddr("fd00:7475:6e73::3")
)

// relayScenarios are reported after the scenarios of bench.go.
var relayScenarios = []*scenario{
	{name: "relay-bulk-down", short: "through the relay: a kernel server sends to a kernel client",
		unit: "Gbit/s", higherBetter: true, run: runBulkDown, env: newRelayEnv,
		about: "one connection through the relay, a kernel server sends to a kernel client as fast as it can; goodput counted by the client over the window; linux is the direct kernel path without a relay"},
	{name: "relay-bulk-up", short: "through the relay: a kernel client sends to a kernel server",
		unit: "Gbit/s", higherBetter: true, run: runBulkUp, env: newRelayEnv,
		about: "one connection through the relay, a kernel client sends to a kernel server as fast as it can; goodput counted by the server's reader over the window; linux is the direct kernel path"},
	{name: "relay-crr", short: "through the relay: connect, request, response, close",
		unit: "conn/s", higherBetter: true, run: runCRR, env: newRelayEnv,
		about: "crr through the relay: the kernel client connects, writes 1 byte, reads the kernel server's 1-byte answer and closes, one connection at a time; each connection is held by the frontend until the relay's own connect to the server succeeds; linux is the direct kernel path"},
	{name: "relay-idle", short: "idle relayed connections: memory per connection",
		unit: "KiB/conn", higherBetter: false, run: runRelayIdle, env: newRelayEnv,
		about: "established idle connections through the relay (Options.IdleConns, as many as the descriptor limit allows at three per connection); memory per connection: process RSS growth after GC, which holds the relay stack, the relay's goroutines and buffers, and Go's objects of the outbound and the server's sockets (their kernel memory is not counted); linux: kernel slab per socket of the direct path"},
}

func init() { scenarios = append(scenarios, relayScenarios...) }

// isRelayScenario reports whether name is one of the relay scenarios, in
// either family.
func isRelayScenario(name string) bool {
	for _, s := range relayScenarios {
		if s.name == BaseScenario(name) {
			return true
		}
	}
	return false
}

// newRelayEnv builds a relay scenario's environment: for linux the direct
// path (newEnv's veth), for tunstack and gVisor the relay between the
// client's TUN and the server's veth.
func newRelayEnv(sp stackSpec, fam family, prof *policy.Profile, _ *impairment) (e *env, err error) {
	if sp.base == "linux" {
		return newEnv(sp, fam, prof, nil)
	}
	if sp.queues > 1 {
		// stack.Frontend runs on one engine.
		return nil, fmt.Errorf("bench: stack %q: the relay frontend runs on one queue: run the relay scenarios on tunstack", sp.label)
	}
	e = &env{stack: sp.base, label: sp.label, family: fam}
	defer func() {
		if err != nil {
			e.close()
			e = nil
		}
	}()
	// The destination's side: the relay namespace (the veth's first end,
	// 198.18.0.1) and the server namespace (198.18.0.2).
	if err := e.buildLinuxVeth(); err != nil {
		return nil, err
	}
	relayNS := e.peer
	if err := e.buildRelay(sp.profile(prof), relayNS); err != nil {
		return nil, err
	}
	// The client connects at a high rate (crr) and so does the relay
	// toward the server: both namespaces get the whole port range and
	// TIME-WAIT reuse, as newEnv gives its peer.
	for _, ns := range []*netns.NS{e.peer, relayNS} {
		if err := ns.SetSysctls(netns.LoadGenerator); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// buildRelay puts the client in a namespace of its own behind a TUN whose
// other side is the stack under test with its relay frontend; the relay
// dials from relayNS. It replaces e.peer with the client's namespace and
// counts the stack under test as buildTUN does.
func (e *env) buildRelay(prof *policy.Profile, relayNS *netns.NS) error {
	ns, err := netns.New("bench-relay-" + e.stack)
	if err != nil {
		return err
	}
	e.peer = ns
	e.cleanups = append(e.cleanups, func() { ns.Close() })
	e.devices = append(e.devices, nsDevice{ns, devName})
	var tun *netif.TUN
	err = ns.Do(func() (err error) {
		// On the TUN's link, 198.18.0.2 is the client's next hop: its
		// packets to the server go into the TUN.
		tun, err = netif.OpenTUN(e.tunConfig(peerAddr, peerAddr6, true))
		return err
	})
	if err != nil {
		return err
	}
	counted := &countingLink{Link: tun}
	e.segs = counted.counts
	st, err := e.startStack([]netif.Link{counted}, prof, relayStackAddr, relayStackAddr6)
	if err != nil {
		return err
	}
	var fe tcprelay.Frontend
	switch s := st.(type) {
	case *stack.Stack:
		// Keepalive on the client connections, as `tunstack relay` has it.
		fe, err = s.Frontend(stack.FrontendConfig{KeepAlive: true})
	case *gvisorstack.Stack:
		fe, err = s.Frontend(gvisorstack.FrontendConfig{})
	}
	if err != nil {
		return err
	}
	dialer := newNSDialer(relayNS)
	e.cleanups = append(e.cleanups, dialer.close)
	rl, err := tcprelay.New(tcprelay.Config{Dial: dialer.dial})
	if err != nil {
		return err
	}
	e.cleanups = append(e.cleanups, func() { rl.Close() })
	// The frontend stops first (cleanups run last first), then the relay
	// aborts what is left, then the stack closes.
	e.cleanups = append(e.cleanups, func() { fe.Close() })
	prefixes := []netip.Prefix{netip.PrefixFrom(serverAddr, 32)}
	if e.family == 6 {
		prefixes = append(prefixes, netip.PrefixFrom(serverAddr6, 128))
	}
	return fe.Intercept(prefixes, rl.Handle)
}

// runRelayIdle is idle through the relay. A relayed connection holds
// three descriptors in this process (the client's, the relay's outbound
// socket, the server's accepted one), so the descriptor limit is raised
// for three per connection and the count lowered if it cannot be.
func runRelayIdle(r *runCtx) (Sample, error) {
	if r.env.stack == "linux" {
		return runIdle(r)
	}
	const spare = 512
	n := r.o.IdleConns
	limit, err := fileLimitFor(uint64(3*n + spare))
	if err != nil {
		return Sample{}, fmt.Errorf("file limit: %w", err)
	}
	n = min(n, (int(limit)-spare)/3)
	if n < 1 {
		return Sample{}, fmt.Errorf("the file limit (%d) leaves no room for relayed connections", limit)
	}
	o := *r.o
	o.IdleConns = n
	rr := *r
	rr.o = &o
	return runIdle(&rr)
}

// servedScenario is the scenario a relay scenario is measured over, the
// same traffic without the relay: bulk-down for relay-bulk-down (and for
// bulk-down itself); a name's family suffix stays.
func servedScenario(name string) string { return strings.TrimPrefix(name, "relay-") }

// relayTarget is what a relay scenario's tunstack figure is held to: at
// least (at most, for memory) vsGVisor times gVisor's relay, and at least
// vsServe times tunstack's own figure in the scenario without the relay
// (0: no such target).
type relayTarget struct {
	vsGVisor, vsServe float64
}

var relayTargets = map[string]relayTarget{
	"relay-bulk-down": {vsGVisor: 3, vsServe: 0.7},
	"relay-bulk-up":   {vsGVisor: 3, vsServe: 0.7},
	"relay-crr":       {vsGVisor: 1.5},
	"relay-idle":      {vsGVisor: 0.5},
}

// relayHeader and relayRows are the relay table: each relay scenario's
// figure per stack, tunstack's over gVisor's, each stack's relay figure
// over its own figure without the relay (bulk-down, bulk-up, crr, idle of
// the same run; for linux the same kernel path, so about 1), and on
// tunstack's rows the targets and whether they are met.
var relayHeader = []string{"scenario", "stack", "figure", "tunstack/gvisor", "relay/serve", "target", "runs"}

func relayRows(results []Result) [][]string {
	figs := indexFigures(results)
	var out [][]string
	for _, r := range results {
		if !isRelayScenario(r.Scenario) {
			continue
		}
		w := rows([]Result{r})[0]
		if !r.Measured() {
			out = append(out, []string{r.Scenario, r.Stack, w.figure, "", "", "", ""})
			continue
		}
		serve := servedScenario(r.Scenario)
		vsServe := ratio(r.Value, figs.metric(serve, r.Stack, ""))
		var vsG, target string
		if baseStack(r.Stack) == "tunstack" {
			g := ratio(r.Value, figs.metric(r.Scenario, "gvisor", ""))
			vsG = formatRatio(g)
			base := BaseScenario(r.Scenario)
			target = relayTargets[base].judge(g, vsServe, base == "relay-idle")
		}
		out = append(out, []string{r.Scenario, r.Stack, w.figure, vsG, formatRatio(vsServe), target, w.runs})
	}
	return out
}

// judge says whether the ratios meet the target; lowerBetter for memory.
func (t relayTarget) judge(vsGVisor, vsServe float64, lowerBetter bool) string {
	var parts []string
	verdict := func(v float64, ok bool) string {
		switch {
		case math.IsNaN(v):
			return "not measured"
		case ok:
			return "met"
		}
		return "NOT met"
	}
	if t.vsGVisor > 0 {
		if lowerBetter {
			parts = append(parts, fmt.Sprintf("≤ %gx gvisor: %s", t.vsGVisor, verdict(vsGVisor, vsGVisor <= t.vsGVisor)))
		} else {
			parts = append(parts, fmt.Sprintf("≥ %gx gvisor: %s", t.vsGVisor, verdict(vsGVisor, vsGVisor >= t.vsGVisor)))
		}
	}
	if t.vsServe > 0 {
		parts = append(parts, fmt.Sprintf("≥ %gx serve: %s", t.vsServe, verdict(vsServe, vsServe >= t.vsServe)))
	}
	return strings.Join(parts, "; ")
}

// writeRelayText writes the relay table under the text results, if any
// relay scenario ran.
func writeRelayText(w io.Writer, results []Result) error {
	rs := relayRows(results)
	if len(rs) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nThrough the relay (relay/serve: over the same stack's figure without the relay):\n")
	return writeTextTable(w, relayHeader, rs)
}

// writeRelayMarkdown writes the relay section of docs/performance.md, if
// any relay scenario ran.
func writeRelayMarkdown(w io.Writer, results []Result) {
	rs := relayRows(results)
	if len(rs) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("### Through the relay (`tunstack relay`)\n\n")
	p("The relay package runs in this process on each stack's frontend, as `tunstack relay --stack tunstack|gvisor` runs it: a kernel client in a namespace of its own connects to 198.18.0.2 through a TUN (its side 198.18.0.1); the stack under test (198.18.0.3) holds the SYN, the relay connects to 198.18.0.2 with kernel TCP from a relay namespace over a veth to the server's namespace, answers the client and splices the two. ")
	p("gVisor's frontend is its TCP forwarder configured as tun2socks-style tools configure it (docs/gvisor.md). ")
	p("linux is the direct kernel path without a relay: the client's namespace joined to the server's by a veth, the ceiling. ")
	p("tunstack/gvisor is tunstack's relay over gVisor's: above 1 is better for rates and throughput, below 1 for memory. ")
	p("relay/serve is a stack's relay figure over its own figure without the relay in the same run (relay-bulk-down over bulk-down, and so on): what relaying costs. The two scenarios' runs are interleaved (run 1 of bulk-down on every stack, then run 1 of relay-bulk-down, then run 2...), so the ratio compares runs taken moments apart. ")
	p("The targets: relay bulk both ways at least 3x gVisor's relay and at least 0.7x tunstack's own serve bulk; relay-crr at least 1.5x gVisor's; memory per idle relayed connection at most half of gVisor's.\n\n")
	writeMarkdownGrid(w, relayHeader, rs)
	p("\n")
	var short []string
	for _, row := range rs {
		if strings.Contains(row[5], "NOT met") && !slices.Contains(short, row[0]) {
			short = append(short, row[0])
		}
	}
	for _, sc := range short {
		p("**%s, below target.** %s\n\n", sc, shortfallText(sc))
	}
}

// withRelay is a chart panel's groups: the scenarios given, then the relay
// scenario of each that ran (relay-bulk-down after bulk-down's group...).
func withRelay(results []Result, groups ...string) []string {
	out := slices.Clone(groups)
	for _, g := range groups {
		if slices.ContainsFunc(results, func(r Result) bool { return r.Scenario == "relay-"+g }) {
			out = append(out, "relay-"+g)
		}
	}
	return out
}
