package stack

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"tunstack/netif"
	"tunstack/policy"
	"tunstack/tcpcore"
	"tunstack/wire"
)

// Config says where the stack sits on its link and how its TCP behaves.
type Config struct {
	// Addr is the stack's own IPv4 address, e.g. 198.18.0.2.
	Addr netip.Addr
	// Addr6 is the stack's own IPv6 address, e.g. fd00::2; the zero
	// value means the stack has no IPv6 address and drops IPv6 packets.
	// It must be a plain IPv6 address: not IPv4-mapped, not unspecified,
	// not multicast.
	Addr6 netip.Addr
	// Profile is the TCP policy; nil means policy.Linux().
	Profile *policy.Profile
	// Secret keys ISNs and SYN cookies; the zero value is replaced by
	// random bytes. Tests fix it to replay a run.
	Secret [32]byte
	// Trace, if set, receives every congestion event of every connection
	// and samples of the congestion state of the application's
	// connections between them (see TraceEvent), in order. It is called
	// with the stack's lock held, so it must return quickly and must not
	// call the Stack or its connections; serve --trace queues the event
	// for a writer goroutine. On a stack of shards (NewShards) each shard
	// calls it under its own lock, so calls from different shards run
	// concurrently; each connection's events stay in order.
	Trace func(TraceEvent)
	// MaxConns caps the connections the stack's listeners hold at once,
	// half-open ones included and TIME-WAIT not (tcpcore.Config.MaxConns):
	// a SYN beyond it is dropped unanswered and counted in
	// tcpcore.Stats.MaxConnsDrops. 0 means no cap. NewShards divides it
	// between the shards.
	MaxConns int
}

// Stack runs one tcpcore.Engine on a netif.Link with the real clock. It
// implements Network.
//
// Concurrency: one mutex (mu) owns the engine and everything the engine
// points back into (the notifiers). Every engine call is made under it and
// followed by unlockFlush, which hands out wakeups, re-arms the one timer and
// writes the engine's output to the link outside the lock. Three kinds of
// goroutine make engine calls: the link reader (ip.go's readLoop), the
// timer (timer.go) and the applications' blocking calls (conn.go,
// listener.go).
type Stack struct {
	link  netif.Link
	addr  netip.Addr
	addr6 netip.Addr // zero: no IPv6
	mtu   int
	epoch time.Time // origin of tcpcore.Time: now() is the monotonic time since

	mu     sync.Mutex
	e      *tcpcore.Engine
	closed bool
	conns  map[*Conn]struct{}     // open application connections, dialing ones included
	lsns   map[*listener]struct{} // open listeners

	// Connections the application closed that the engine still runs, and
	// the summed counters of those it has finished (connstats.go).
	closing  map[*Conn]struct{}
	finished tcpcore.ConnCounters
	hist     closedHistograms // lifetime and final SRTT of the finished ones (metrics.go)

	// Tracing (trace.go), only with Config.Trace: the events the engine
	// reported during the current engine call, and the connections by
	// 4-tuple, to add their RTT estimates.
	trace  func(TraceEvent)
	traceq []tcpcore.CongestionEvent
	byKey  map[flow]*Conn

	// Output: at most one goroutine writes to the link at a time (the one
	// that finds writing false); the others leave their packets in the
	// engine's output queue for it, so packets leave in the order the
	// engine produced them. See unlockFlush.
	writing bool
	out     ipWriter          // used only by the goroutine that set writing
	batch   []*tcpcore.Packet // the writer's batch, reused (Output appends to it)
	// flushReq hands the writer's role, with a bulk batch in batch, to
	// flushLoop (flush.go); nil until start.
	flushReq chan struct{}

	tm engineTimer

	done chan struct{} // closed by Close: goroutines exit
	wg   sync.WaitGroup

	ipStats    ipCounters
	icmp6Limit icmpv6Limiter // used by the reader only (ipv6.go)

	// The OnReadable functions of the connections that have one
	// (notify.go), kept here rather than in every Conn.
	onReadable map[*Conn]func()

	front *Frontend // the relay frontend intercepting, nil if none (intercept.go); guarded by mu

	// Shards (shards.go): grp is the group of stacks this one is a shard
	// of, nil for a stack of one engine; ho the packets its reader
	// passes on to other shards; handing is set, under mu, while a
	// packet another shard's reader passed on is delivered here.
	grp     *group
	ho      handoff
	handing bool
	// claimed says that the reader's current segment claimed the flow
	// claim for this shard (passOn); settleClaim clears it.
	claimed bool
	claim   flow
}

var _ Network = (*Stack)(nil)

// New starts a stack on link. The Stack owns link from then on: Close
// closes it.
func New(link netif.Link, cfg Config) (*Stack, error) {
	cfg, err := cfg.complete()
	if err != nil {
		return nil, err
	}
	s, err := newShard(link, cfg, time.Now())
	if err != nil {
		return nil, err
	}
	s.start()
	return s, nil
}

// complete checks what does not depend on the link and fills in the
// defaults: the Linux profile, a random secret.
func (cfg Config) complete() (Config, error) {
	if cfg.Profile == nil {
		cfg.Profile = policy.Linux()
	}
	if cfg.Secret == [32]byte{} {
		if _, err := rand.Read(cfg.Secret[:]); err != nil {
			return cfg, fmt.Errorf("stack: secret: %w", err)
		}
	}
	return cfg, nil
}

// newShard makes a stack of one engine on link, its clock starting at
// epoch, without starting its goroutines (start). cfg is complete.
func newShard(link netif.Link, cfg Config, epoch time.Time) (*Stack, error) {
	if !cfg.Addr.Is4() {
		return nil, fmt.Errorf("stack: address %v is not IPv4", cfg.Addr)
	}
	if a := cfg.Addr6; a.IsValid() && (!a.Is6() || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() || a.Zone() != "") {
		return nil, fmt.Errorf("stack: Addr6 %v is not a unicast IPv6 address: give one such as fd00::2, or leave it zero for no IPv6", a)
	}
	if cfg.Addr6.IsValid() && link.MTU() < wire.IPv6MinMTU {
		// RFC 8200 §5: IPv6 needs links of at least 1280 bytes (Linux
		// turns IPv6 off on a device with a smaller MTU).
		return nil, fmt.Errorf("stack: link MTU %d is below IPv6's minimum of %d: raise the MTU or leave Addr6 zero", link.MTU(), wire.IPv6MinMTU)
	}
	mtu := link.MTU()
	s := &Stack{
		link:    link,
		addr:    cfg.Addr,
		addr6:   cfg.Addr6,
		mtu:     mtu,
		epoch:   epoch,
		conns:   make(map[*Conn]struct{}),
		lsns:    make(map[*listener]struct{}),
		closing: make(map[*Conn]struct{}),
		done:    make(chan struct{}),
	}
	ecfg := tcpcore.Config{Profile: cfg.Profile, MTU: mtu, Secret: cfg.Secret, MaxConns: cfg.MaxConns, Demux: s.onDemux}
	if dw, ok := link.(netif.DescWriter); ok {
		// The link finishes the checksums (ipWriter), and if it takes
		// GSO packets the engine hands it chunks of segments.
		ecfg.ChecksumOffload = true
		ecfg.SegmentOffload = netif.WritesGSO(dw)
		// A link that takes GSO packets takes their payload as a tail
		// too (netif.Desc.Tail): the chunks leave it in the send ring.
		ecfg.ZeroCopyChunks = ecfg.SegmentOffload
		s.out.dw = dw
	}
	if cfg.Trace != nil {
		s.trace = cfg.Trace
		s.byKey = make(map[flow]*Conn)
		ecfg.Trace = s.onEngineTrace
	}
	e, err := tcpcore.NewEngine(ecfg)
	if err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	s.e = e
	s.out.flowKey = flowKey(cfg.Secret)
	s.tm.init()
	return s, nil
}

// start starts the shard's goroutines: its link reader, its timer and
// its bulk writer.
func (s *Stack) start() {
	s.wg.Add(3)
	s.flushReq = make(chan struct{}, 1)
	go s.readLoop()
	go s.timerLoop()
	go s.flushLoop()
}

// Addr returns the stack's IPv4 address.
func (s *Stack) Addr() netip.Addr { return s.addr }

// Addr6 returns the stack's IPv6 address, the zero Addr if it has none.
func (s *Stack) Addr6() netip.Addr { return s.addr6 }

// now is the engine's clock: monotonic nanoseconds since New.
func (s *Stack) now() tcpcore.Time { return tcpcore.Time(time.Since(s.epoch)) }

// durationUntil is how long from now until the engine instant t.
func (s *Stack) durationUntil(t tcpcore.Time) time.Duration {
	return t.Sub(s.now())
}

// unlockFlush finishes every critical section that called the engine: it
// runs the wakeups (under the lock, since Wake touches engine state),
// re-arms the timer if the engine's next deadline moved earlier, and
// releases the lock. If no other goroutine is writing to the link, it
// becomes the writer and sends the engine's output, taking the lock again
// only to collect more output and to Release what it sent.
//
// One writer at a time keeps the packets in the order the engine made them
// (reordering our own segments would cost the peer duplicate ACKs), and a
// goroutine that finds a writer busy returns at once instead of queueing on
// the link. The price: the writer may send others' packets before it
// returns, bounded by what the engine can produce meanwhile (windows and
// send buffers). A batch of bulk data goes to the stack's own writer
// instead (handOff, flush.go), and the caller returns to making more.
func (s *Stack) unlockFlush() {
	if s.trace != nil {
		s.deliverTrace()
	}
	for _, w := range s.e.Wakeups() {
		w.Wake()
	}
	if !s.closed {
		s.rearmTimer()
	}
	if s.writing {
		s.mu.Unlock()
		return
	}
	s.writing = true
	for {
		s.batch = s.e.Output(s.batch[:0])
		if len(s.batch) == 0 {
			break
		}
		if s.handOff() {
			return
		}
		s.writeBatch()
	}
	s.writing = false
	s.mu.Unlock()
}

// writeBatch writes the writer's batch to the link outside the lock, then
// releases it. The caller holds mu and is the writer; it holds mu again
// on return.
func (s *Stack) writeBatch() {
	s.mu.Unlock()
	s.out.write(s, s.batch)
	s.mu.Lock()
	s.e.Release(s.batch)
	// Releasing a zero-copy chunk may let a Write held back by it go on
	// (tcpcore's pins).
	for _, w := range s.e.Wakeups() {
		w.Wake()
	}
	s.armTrim()
}

// Stats returns the engine's counters (summed over the shards).
func (s *Stack) Stats() tcpcore.Stats {
	if s.grp != nil {
		return sumOver(s.grp, (*Stack).stats)
	}
	return s.stats()
}

func (s *Stack) stats() tcpcore.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.e.Stats()
}

// Conns returns a snapshot of every open application connection (dialed,
// dialing or accepted, and not yet closed), for tests, labs and the CLI.
func (s *Stack) Conns() []tcpcore.Info {
	if s.grp != nil {
		return concatOver(s.grp, (*Stack).conns1)
	}
	return s.conns1()
}

func (s *Stack) conns1() []tcpcore.Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	infos := make([]tcpcore.Info, 0, len(s.conns))
	for c := range s.conns {
		infos = append(infos, c.tc.Info())
	}
	return infos
}

// ConnCount returns how many connections the engine tracks in any state,
// TIME-WAIT and orphans included.
func (s *Stack) ConnCount() int {
	if s.grp != nil {
		return sumOver(s.grp, (*Stack).connCount)
	}
	return s.connCount()
}

func (s *Stack) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.e.ConnCount()
}

// HeldConns returns how many connections count against Config.MaxConns
// (tcpcore.Engine.HeldConns).
func (s *Stack) HeldConns() int {
	if s.grp != nil {
		return sumOver(s.grp, (*Stack).heldConns)
	}
	return s.heldConns()
}

func (s *Stack) heldConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.e.HeldConns()
}

// Close stops the stack: open connections are aborted (RST), listeners
// closed, the goroutines stopped and the link closed. Blocked calls return
// net.ErrClosed. Close waits for the stack's goroutines to exit. On a
// stack of shards it closes every shard, the first one last (on a
// multiqueue TUN, closing the first queue removes the device).
func (s *Stack) Close() error {
	if g := s.grp; g != nil {
		var err error
		for i := len(g.shards) - 1; i >= 0; i-- {
			err = cmp.Or(err, g.shards[i].close())
		}
		return err
	}
	return s.close()
}

func (s *Stack) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	now := s.now()
	// The aborted connections answer every later call with net.ErrClosed
	// (the engine's ErrClosed); their own Close still succeeds once.
	for c := range s.conns {
		c.tc.Abort(now)
		c.n.Wake()
		c.fireReadable()
	}
	// Every connection ends here; count them as finished.
	for c := range s.conns {
		s.retire(c)
	}
	for c := range s.closing {
		s.retire(c)
	}
	clear(s.conns)
	for l := range s.lsns {
		l.closed = true
		l.tl.Close(now)
		l.n.Wake()
		if l.group != nil {
			l.group.shut()
		}
	}
	clear(s.lsns)
	s.closed = true // after the aborts, so their RSTs are still flushed
	s.unlockFlush()

	close(s.done)
	err := s.link.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	s.wg.Wait()
	return err
}

// checkOpen reports net.ErrClosed once Close has run. The caller holds mu.
func (s *Stack) checkOpen() error {
	if s.closed {
		return net.ErrClosed
	}
	return nil
}
