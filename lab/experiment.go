package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"tunstack/netif"
	"tunstack/policy"
	"tunstack/stack"
)

// Options say what to run an experiment on and how. Zero values take the
// experiment's defaults; Backlog takes -1 for its default, since 0 is a
// backlog worth trying.
type Options struct {
	Stack       string          // tunstack, gvisor or linux
	Family      int             // IP family of every connection: 4 or 6; 0 is 4
	Profile     *policy.Profile // for tunstack and gvisor; nil means policy.Linux()
	ProfileName string          // for the report; "" means linux
	Pcap        io.Writer       // if not nil, receives the capture (pcap, LINKTYPE_RAW)

	Backlog int           // listen(2) backlog; -1: the experiment's default
	Clients int           // number of kernel clients; 0: default
	Hold    time.Duration // when the server acts (accepts, closes) or clients write; 0: default
	Delay   time.Duration // one-way delay from clients to server; 0: defaultDelay

	// Impair impairs the wire between the clients and the server with
	// netif's SPEC (loss, reorder, dup, delay, rate...), the same for every
	// stack; its "out" direction is what the server sends. The zero value
	// takes the experiment's default, which is none for most.
	Impair netif.ImpairSpec

	// Set by an experiment, not by callers: targeted rules on the wire and
	// extra sysctls for the kernel server's namespace.
	rules         []netif.SegmentRule // Out: a segment the server sends
	serverSysctls [][2]string

	// Log, if not nil, gets a line when the experiment starts, saying what
	// it does and about how long it takes.
	Log io.Writer

	// Trace, if not nil, receives the congestion events of the tunstack
	// server's connections (stack.Config.Trace; the other stacks have
	// none), for the lab's plots (RecordForPlots).
	Trace func(stack.TraceEvent)
}

// defaultDelay is the wire's client-to-server delay: long enough that SYNs
// sent back to back arrive before the first SYN-ACK is answered, short
// against every timer involved (the smallest is the 200 ms minimum RTO).
const defaultDelay = 5 * time.Millisecond

// endGrace separates the experiment's last packets from teardown's.
const endGrace = 100 * time.Millisecond

// Params are an experiment's resolved settings.
type Params struct {
	Backlog int
	Clients int
	Hold    time.Duration
}

// experiment is one entry of the lab.
type experiment struct {
	name     string
	title    string // what it shows, one line
	claim    string // the claim it checks, stated on its own: printed above the verdict
	defaults Params
	// duration estimates the run's wall time, for the start line.
	duration func(Params) time.Duration
	check    func(Params) error
	run      func(*run) error
	verdict  func(*Result) []string
	// profile, if not nil, adjusts (a clone of) the profile the user-space
	// stacks start with, e.g. a smaller default receive buffer.
	profile func(*policy.Profile)
	// options, if not nil, fills in the experiment's own defaults (delay,
	// impairment, wire rules) before the topology is built.
	options func(*Options)
	// print, if not nil, writes the report instead of the common one
	// (whose packet-by-packet timeline suits a handful of segments, not a
	// bulk transfer).
	print func(*Result, io.Writer)
}

var experiments = []*experiment{backlogExperiment, synackExperiment, listenerCloseExperiment, synFloodExperiment, zeroWindowExperiment, nagleDelackExperiment, slowStartExperiment, fastRetransmitExperiment, sackExperiment, dsackExperiment, timeWaitExperiment}

// Names lists the experiments, in the order the docs present them.
func Names() []string {
	var n []string
	for _, e := range experiments {
		n = append(n, e.name)
	}
	return n
}

// Stacks lists the stacks an experiment can run on.
func Stacks() []string { return slices.Clone(stackNames) }

// UnknownExperimentError is returned by Run for a name the lab does not
// know; its message lists the known ones.
type UnknownExperimentError struct{ Name string }

func (e *UnknownExperimentError) Error() string {
	return fmt.Sprintf("there is no experiment %q; the lab knows %s", e.Name, strings.Join(Names(), ", "))
}

func lookup(name string) *experiment {
	for _, e := range experiments {
		if e.name == name {
			return e
		}
	}
	return nil
}

// ClientRecord is what happened to one client, from its own calls and the
// server's. Times are since the experiment started.
type ClientRecord struct {
	N    int
	Port uint16

	ConnectCalled  time.Duration
	ConnectDone    time.Duration // when connect() returned, if it did
	Connected      bool          // connect() returned 0
	ConnectPending bool          // still blocked when the experiment ended
	ConnectErr     error

	Accepted   bool
	AcceptedAt time.Duration
	Received   int // bytes the server read after accepting

	WriteAt  time.Duration
	WriteErr error
	ReadAt   time.Duration
	ReadN    int
	ReadErr  error // io.EOF, an errno, or errTimeout
}

// ConnectTook is how long connect() blocked.
func (c *ClientRecord) ConnectTook() time.Duration { return c.ConnectDone - c.ConnectCalled }

// QueueSnapshot is a listener's queues at one moment.
type QueueSnapshot struct {
	At    time.Duration
	Label string
	Queue Queue
}

// Result is a finished experiment.
type Result struct {
	Experiment string
	Title      string
	Claim      string // the claim the experiment checks
	Stack      string
	Family     int // 4 or 6
	Profile    string
	Params     Params
	Delay      time.Duration
	Impair     netif.ImpairSpec // what the wire did besides the delay
	Sysctls    []string

	Events   []Event // calls and packets, in time order
	Clients  []*ClientRecord
	Capture  *Capture
	Counters []Counter
	Queues   []QueueSnapshot
	// Marks are named instants of the run (hold, wave2, close...).
	Marks   map[string]time.Duration
	Verdict []string
	// Data is what an experiment measured beyond the common records
	// (*ZeroWindowData, *NagleData); nil for the others.
	Data any
}

// family is the experiment's IP family, 4 for a Result from before the
// field.
func (r *Result) family() int {
	if r.Family == 6 {
		return 6
	}
	return 4
}

// Client returns client n's record.
func (r *Result) Client(n int) *ClientRecord {
	for _, c := range r.Clients {
		if c.N == n {
			return c
		}
	}
	return nil
}

// run is the state of one experiment while it runs.
type run struct {
	opts   *Options
	params Params
	ctx    context.Context
	tl     *timeline
	topo   *topology
	srv    server
	target netip.AddrPort

	mu      sync.Mutex
	atEnd   []func() error // run after the experiment's end mark, before teardown
	clients []*client
	queues  []QueueSnapshot
	marks   map[string]time.Duration
	data    any // becomes Result.Data
}

// Run runs the named experiment and returns what happened. It needs root:
// it creates network namespaces and TUN devices, and removes them before
// returning, on failure too.
func Run(ctx context.Context, name string, o Options) (*Result, error) {
	e := lookup(name)
	if e == nil {
		return nil, &UnknownExperimentError{Name: name}
	}
	if !slices.Contains(stackNames, o.Stack) {
		return nil, fmt.Errorf("lab: unknown stack %q; use %s", o.Stack, strings.Join(stackNames, ", "))
	}
	if err := checkFamily(o.Family); err != nil {
		return nil, err
	}
	if o.Family == 0 {
		o.Family = 4
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("lab: experiments need root to create network namespaces and TUN devices; run as root or with sudo")
	}
	p := e.defaults
	if o.Backlog >= 0 {
		p.Backlog = o.Backlog
	}
	if o.Clients > 0 {
		p.Clients = o.Clients
	}
	if o.Hold > 0 {
		p.Hold = o.Hold
	}
	if e.check != nil {
		if err := e.check(p); err != nil {
			return nil, err
		}
	}
	if e.options != nil {
		e.options(&o)
	}
	if o.Delay <= 0 {
		o.Delay = defaultDelay
	}
	o.Profile = profileOrLinux(o.Profile)
	if e.profile != nil {
		o.Profile = o.Profile.Clone()
		e.profile(o.Profile)
	}
	if o.ProfileName == "" {
		o.ProfileName = "linux"
	}
	if o.Log != nil {
		fmt.Fprintf(o.Log, "lab %s on %s over IPv%d: %s; about %.0f s.\n", e.name, o.Stack, o.Family, describeParams(p), e.duration(p).Seconds())
	}

	topo, err := newTopology(ctx, &o)
	if err != nil {
		return nil, err
	}
	r := &run{
		opts:   &o,
		params: p,
		ctx:    ctx,
		topo:   topo,
		srv:    topo.srv,
		target: netip.AddrPortFrom(topo.addrs.server, serverPort),
		marks:  map[string]time.Duration{},
	}
	r.tl = newTimeline()
	runErr := e.run(r)
	// The packets that the experiment's last calls caused may still be
	// crossing the wire (its delay, the relay); a moment's grace keeps the
	// packets of the experiment's last instant.
	time.Sleep(endGrace)
	end := r.tl.now()
	counters := r.srv.counters()
	for _, fn := range r.atEnd {
		fn()
	}
	for _, c := range r.clients {
		c.close()
	}
	topo.close()
	if runErr != nil {
		return nil, runErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lab %s interrupted: %w", e.name, err)
	}

	ports := map[uint16]int{}
	var recs []*ClientRecord
	for _, c := range r.clients {
		ports[c.port] = c.n
		recs = append(recs, c.rec)
	}
	capture, err := parseCapture(bytes.NewReader(topo.capture.Bytes()), r.target, ports, r.tl.start)
	if err != nil {
		return nil, err
	}
	// Teardown resets whatever is still open; those packets are the lab's
	// doing, not the experiment's, and are left out.
	capture.Packets = slices.DeleteFunc(capture.Packets, func(p Packet) bool { return p.At > end })
	r.tl.merge(capture)

	res := &Result{
		Experiment: e.name,
		Title:      e.title,
		Claim:      e.claim,
		Stack:      o.Stack,
		Family:     o.Family,
		Profile:    o.ProfileName,
		Params:     p,
		Delay:      o.Delay,
		Impair:     o.Impair,
		Sysctls:    topo.sysctls,
		Events:     r.tl.sorted(),
		Clients:    recs,
		Capture:    capture,
		Counters:   counters,
		Queues:     r.queues,
		Marks:      r.marks,
		Data:       r.data,
	}
	if o.Stack == "linux" {
		res.Profile = "kernel"
	}
	res.Verdict = e.verdict(res)
	return res, nil
}

func describeParams(p Params) string {
	if p == (Params{}) {
		return "one kernel client"
	}
	return fmt.Sprintf("backlog %d, %d clients, hold %s", p.Backlog, p.Clients, p.Hold)
}

// openClients makes n clients numbered from first.
func (r *run) openClients(first, n int) ([]*client, error) {
	cs, err := openClients(r.ctx, r.topo.clientNS, socketDomain(r.target.Addr()), first, n)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	for _, c := range cs {
		c.rec = &ClientRecord{N: c.n}
		r.clients = append(r.clients, c)
	}
	r.mu.Unlock()
	return cs, nil
}

// connectAll starts every client's connect back to back, from one
// goroutine, so that their SYNs leave together.
func (r *run) connectAll(cs []*client) {
	for _, c := range cs {
		c.startConnect(r.tl, r.target)
	}
}

// clientByPort finds the client that owns a local port.
func (r *run) clientByPort(port uint16) *client {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.clients {
		if c.port == port {
			return c
		}
	}
	return nil
}

// snapshot records the listener's queues, as `ss -lnt` would show them.
func (r *run) snapshot(l listener, label string) {
	q := l.queue()
	at := r.tl.now()
	r.mu.Lock()
	r.queues = append(r.queues, QueueSnapshot{At: at, Label: label, Queue: q})
	r.mu.Unlock()
	if q.AcceptQueue < 0 {
		r.tl.addAt(at, "server", "queues (%s): not visible on this stack", label)
		return
	}
	r.tl.addAt(at, "server", "queues (%s): %s", label, q)
}

// closeAtEnd closes l once the experiment is over: what it resets then is
// teardown, not part of what the experiment shows.
func (r *run) closeAtEnd(l listener) {
	r.mu.Lock()
	r.atEnd = append(r.atEnd, l.close)
	r.mu.Unlock()
}

// mark names the current instant.
func (r *run) mark(name string) time.Duration {
	at := r.tl.now()
	r.mu.Lock()
	r.marks[name] = at
	r.mu.Unlock()
	return at
}

// sleepUntil waits until the experiment's relative time t.
func (r *run) sleepUntil(t time.Duration) {
	if d := t - r.tl.now(); d > 0 {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-r.ctx.Done():
		}
	}
}

// acceptOne accepts one connection (waiting up to timeout), reads what the
// client sent and closes it, recording each call: the server loop of the
// backlog experiment. It reports false when nothing was accepted.
func (r *run) acceptOne(l listener, timeout time.Duration) (bool, error) {
	sc, err := l.accept(timeout)
	if err == errTimeout {
		return false, nil
	}
	if err != nil {
		r.tl.add("server", "accept() = %v", err)
		return false, err
	}
	at := r.tl.now()
	port := sc.remotePort()
	c := r.clientByPort(port)
	if c == nil {
		r.tl.addAt(at, "server", "accept() = a connection from unknown port %d", port)
	} else {
		c.rec.Accepted, c.rec.AcceptedAt = true, at
		r.tl.addAt(at, "server", "accept() = client %d (port %d)", c.n, port)
	}
	buf := make([]byte, 512)
	n, err := sc.read(buf, 2*time.Second)
	switch {
	case err == errTimeout:
		r.tl.add("server", "recv() still blocked after 2 s")
	case err != nil:
		r.tl.add("server", "recv() = %v", describeErrno(err))
	default:
		if c != nil {
			c.rec.Received = n
		}
		r.tl.add("server", "recv() = %d %q", n, buf[:n])
	}
	sc.close()
	r.tl.add("server", "close(client %s)", clientNum(c))
	return true, nil
}

func clientNum(c *client) string {
	if c == nil {
		return "?"
	}
	return fmt.Sprint(c.n)
}

// Print writes the report: settings, timeline, counters and verdict.
func (r *Result) Print(w io.Writer) {
	if e := lookup(r.Experiment); e != nil && e.print != nil {
		e.print(r, w)
		return
	}
	fmt.Fprintf(w, "== lab %s on %s over IPv%d (profile %s)\n", r.Experiment, r.Stack, r.family(), r.Profile)
	fmt.Fprintf(w, "%s\n", r.Title)
	fmt.Fprintf(w, "claim: %s\n", r.Claim)
	fmt.Fprintf(w, "settings: %s; clients -> server delay %s; %s\n", describeParams(r.Params), r.Delay, strings.Join(r.Sysctls, ", "))
	fmt.Fprintf(w, "\ntimeline (seconds since start; wire lines are the capture at the server):\n")
	printTimeline(w, r.Events)
	fmt.Fprintf(w, "\ncounters: %s\n", formatCounters(r.Counters))
	fmt.Fprintf(w, "\nverdict:\n")
	for _, v := range r.Verdict {
		fmt.Fprintf(w, "  - %s\n", v)
	}
}
