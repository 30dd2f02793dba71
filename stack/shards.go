package stack

import (
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"tunstack/netif"
	"tunstack/tcpcore"
	"tunstack/wire"
)

// A stack of shards runs one engine per link, for the queues of a
// multiqueue TUN device: each shard is a Stack of its own (engine, lock,
// reader goroutine, timer, output) on its queue, and the first shard is
// the Stack the application holds, whose calls go to the group:
//
//   - Listen opens the listener on every shard's engine, as a group of
//     SO_REUSEPORT sockets is opened on Linux, and Accept takes from
//     whichever shard's accept queue has a connection (groupListener).
//     Each shard's part has the whole backlog: a shard's queues are its
//     own, so the SYN path takes no lock but its shard's, and the
//     kernel's hash spreads a few hundred connections unevenly over the
//     queues, so a backlog divided by the shards would overflow one
//     shard while the others have room (Linux's reuseport sockets have a
//     backlog each for the same reason). The listener holds at most
//     shards times the backlog; its Stats sum the parts' queues and
//     counters and report the backlog of one.
//   - Dial opens the connection on the next shard in turn and sends on
//     that shard's queue; the kernel's TUN then steers the answers to
//     that queue (netif/tun_multiqueue.go). Each shard takes its own
//     slice of the ephemeral port range, so two shards never pick one
//     4-tuple; a Dial from a chosen port goes to the first shard, so
//     that the bind rules between chosen ports are one engine's.
//   - The counters, the connections, the metrics and the sockets are the
//     sums and unions of the shards'.
//
// Linux behaviour (tun_automq_select_queue): the kernel puts a packet on
// the queue its flow was last written on, or on the queue of the flow's
// hash when the flow was not written for three seconds or never was, so a
// flow's packets can arrive on a queue other than its shard's: a dialed
// flow after being idle, or a passive one whose client retransmits its
// final ACK late. A reader that gets a segment (or an ICMP error quoting
// one) of a connection its engine does not have passes it on to the shard
// whose engine has it, instead of letting its engine answer with RST; a
// segment no shard has a connection for (a SYN to a listener, or one to
// reset) stays on the shard it arrived on.
//
// Which shard has a flow is kept in the group's owner table, a map from
// 4-tuple to shard in stripes of their own locks, which each engine
// updates as connections enter and leave it (tcpcore.Config.Demux): a
// reader asks it, under one stripe's lock, only for a segment its own
// engine has no connection for, and never locks another shard to find the
// owner. A segment of a flow no shard has claims the flow for the shard
// that reads it, in the same step as the look-up, before its engine sees
// it: when a client's SYN and its retransmission arrive on two queues at
// once (the kernel moved the flow between them, or a duplicate came on
// the other), one shard claims the flow and the other passes its copy
// on, so two engines never both open a connection on one 4-tuple. A
// claim whose segment opened nothing (a SYN the listener dropped, a
// segment answered with RST) is given up at once.

// NewShards starts a stack of len(links) shards, one per link: the queues
// of a multiqueue TUN device (netif.TUN.Queues), or any links that reach
// the same peer. With one link it is New. The Stack owns the links from
// then on: Close closes them all, the first last.
//
// Config applies to every shard, with two differences: each shard takes
// 1/len(links) of the profile's ephemeral port range, and MaxConns is
// split between them (rounded up), so the cap holds for each shard's
// listeners and the stack may hold up to len(links)-1 connections more
// than MaxConns when the kernel's hash spreads them unevenly.
func NewShards(links []netif.Link, cfg Config) (*Stack, error) {
	switch len(links) {
	case 0:
		return nil, fmt.Errorf("stack: no link: give at least one (one per queue)")
	case 1:
		return New(links[0], cfg)
	}
	cfg, err := cfg.complete()
	if err != nil {
		return nil, err
	}
	n := len(links)
	lo, hi := int(cfg.Profile.LocalPortMin), int(cfg.Profile.LocalPortMax)
	span := hi - lo + 1
	if span < n {
		return nil, fmt.Errorf("stack: the ephemeral port range %d-%d has fewer ports than the %d shards: widen it or use fewer queues", lo, hi, n)
	}
	epoch := time.Now()
	g := &group{lsns: make(map[*groupListener]struct{})}
	for i, link := range links {
		c := cfg
		p := cfg.Profile.Clone()
		p.LocalPortMin, p.LocalPortMax = uint16(lo+i*span/n), uint16(lo+(i+1)*span/n-1)
		c.Profile = p
		if cfg.MaxConns > 0 {
			c.MaxConns = (cfg.MaxConns + n - 1) / n
		}
		sh, err := newShard(link, c, epoch)
		if err != nil {
			return nil, fmt.Errorf("shard %d: %w", i, err)
		}
		sh.grp = g
		g.shards = append(g.shards, sh)
	}
	for _, sh := range g.shards {
		sh.start()
	}
	return g.shards[0], nil
}

// Shards returns how many engines the stack runs: 1 for New, the number
// of links for NewShards.
func (s *Stack) Shards() int {
	if s.grp == nil {
		return 1
	}
	return len(s.grp.shards)
}

// group is the set of shards of one stack.
type group struct {
	shards []*Stack
	owners owners        // which shard has each flow
	next   atomic.Uint32 // the shard the next Dial takes, in turn

	mu   sync.Mutex
	lsns map[*groupListener]struct{} // the open listeners
}

// dialShard is the shard a Dial from local opens its connection on.
func (g *group) dialShard(local netip.AddrPort) *Stack {
	if local.Port() != 0 {
		// A chosen port: the first shard's engine applies the bind rules
		// to every chosen port, as one engine would.
		return g.shards[0]
	}
	return g.shards[int(g.next.Add(1)-1)%len(g.shards)]
}

// ownerStripes is how many locks the owner table is split under: enough
// that the shards' readers, a few, rarely wait for one another.
const ownerStripes = 64

// owners maps each flow a shard's engine has (or a shard has claimed) to
// that shard. Every stripe holds the flows whose hash falls on it.
type owners struct {
	stripes [ownerStripes]ownerStripe
}

type ownerStripe struct {
	mu sync.Mutex
	m  map[flow]*Stack
	_  [48]byte // a cache line of its own: the readers lock stripes concurrently
}

func (o *owners) stripe(f flow) *ownerStripe {
	a := f.remote.Addr().As16()
	h := uint32(f.remote.Port())<<16 | uint32(f.local.Port())
	h ^= uint32(a[12])<<24 | uint32(a[13])<<16 | uint32(a[14])<<8 | uint32(a[15])
	return &o.stripes[(h*0x9E3779B1)>>26] // Fibonacci hashing onto 64 stripes
}

// claim returns the shard that owns f, making it s if none does.
func (o *owners) claim(f flow, s *Stack) *Stack {
	st := o.stripe(f)
	st.mu.Lock()
	defer st.mu.Unlock()
	if to, ok := st.m[f]; ok {
		return to
	}
	if st.m == nil {
		st.m = make(map[flow]*Stack)
	}
	st.m[f] = s
	return s
}

// release gives f up if s owns it.
func (o *owners) release(f flow, s *Stack) {
	st := o.stripe(f)
	st.mu.Lock()
	if st.m[f] == s {
		delete(st.m, f)
	}
	st.mu.Unlock()
}

// lookup returns the shard that owns f, nil if none does.
func (o *owners) lookup(f flow) *Stack {
	st := o.stripe(f)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.m[f]
}

// onDemux is the shard engine's tcpcore.Config.Demux: it keeps the owner
// table in step with the engine's connections. It runs under s.mu. A
// flow another shard already owns keeps its owner (two engines never
// both hold a flow the table routes by: passOn sees to that for every
// connection made from a segment).
func (s *Stack) onDemux(local, remote netip.AddrPort, added bool) {
	if s.grp == nil {
		return
	}
	f := flow{local, remote}
	if added {
		s.grp.owners.claim(f, s)
	} else {
		s.grp.owners.release(f, s)
	}
}

// listeners returns the open listeners.
func (g *group) listeners() []*groupListener {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*groupListener, 0, len(g.lsns))
	for gl := range g.lsns {
		out = append(out, gl)
	}
	return out
}

// metrics sums the shards' readings and lists each listener once.
func (g *group) metrics() Metrics {
	m := Metrics{States: make(map[tcpcore.State]int)}
	for i, sh := range g.shards {
		mi := sh.metrics(false)
		addFields(&m.Engine, mi.Engine)
		addFields(&m.Conns, mi.Conns)
		addFields(&m.IP, mi.IP)
		for st, n := range mi.States {
			m.States[st] += n
		}
		if i == 0 {
			m.Lifetime, m.FinalSRTT = mi.Lifetime, mi.FinalSRTT
			continue
		}
		m.Lifetime.add(mi.Lifetime)
		m.FinalSRTT.add(mi.FinalSRTT)
	}
	for _, gl := range g.listeners() {
		m.Listeners = append(m.Listeners, ListenerMetrics{Addr: gl.parts[0].tl.Addr(), ListenerStats: gl.Stats()})
	}
	return m
}

// add adds o's observations to h; both have the same bounds.
func (h *Histogram) add(o Histogram) {
	for i := range h.Counts {
		h.Counts[i] += o.Counts[i]
	}
	h.Count += o.Count
	h.Sum += o.Sum
}

// sumOver sums f over the shards, field by field for a struct.
func sumOver[T any](g *group, f func(*Stack) T) T {
	var t T
	for _, sh := range g.shards {
		addFields(&t, f(sh))
	}
	return t
}

// concatOver joins f's slices over the shards.
func concatOver[T any](g *group, f func(*Stack) []T) []T {
	var out []T
	for _, sh := range g.shards {
		out = append(out, f(sh)...)
	}
	return out
}

// addFields adds src to *dst: a number, or a struct (or array) of them,
// field by field. It goes by reflection so that a counter added to
// tcpcore.Stats or IPStats is summed without a change here.
func addFields[T any](dst *T, src T) {
	addValue(reflect.ValueOf(dst).Elem(), reflect.ValueOf(src))
}

func addValue(d, s reflect.Value) {
	switch d.Kind() {
	case reflect.Struct:
		for i := range d.NumField() {
			if d.Field(i).CanSet() {
				addValue(d.Field(i), s.Field(i))
			}
		}
	case reflect.Array:
		for i := range d.Len() {
			addValue(d.Index(i), s.Index(i))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		d.SetUint(d.Uint() + s.Uint())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		d.SetInt(d.Int() + s.Int())
	case reflect.Float32, reflect.Float64:
		d.SetFloat(d.Float() + s.Float())
	}
}

// groupListener is the listener of a stack of shards: one engine
// listener per shard (parts, in the shards' order), whose engines all
// wake it. Accept takes from each part in turn, starting one further on
// each call, so that no shard's queue waits behind another's.
type groupListener struct {
	g     *group
	parts []*listener
	addr  *net.TCPAddr

	sig     chan struct{} // capacity 1: a part has something new
	inside  atomic.Int32  // Accept calls in progress
	next    atomic.Uint32 // the part the next Accept tries first
	done    chan struct{} // closed once the listener or the stack closes
	doneOne sync.Once
}

var _ Listener = (*groupListener)(nil)

// listen opens a listener on every shard.
func (g *group) listen(ap netip.AddrPort, laddr *net.TCPAddr, backlog int, opts tcpcore.SockOpts) (net.Listener, error) {
	gl := &groupListener{g: g, sig: make(chan struct{}, 1), done: make(chan struct{})}
	for _, sh := range g.shards {
		l, err := sh.listenOn(ap, laddr, backlog, opts, gl)
		if err != nil {
			gl.Close()
			return nil, err
		}
		gl.parts = append(gl.parts, l)
	}
	gl.addr = gl.parts[0].addr
	g.mu.Lock()
	g.lsns[gl] = struct{}{}
	g.mu.Unlock()
	return gl, nil
}

// Wake implements tcpcore.Waker for every part's engine listener: it is
// called under that shard's lock, and leaves a token if none is there.
func (gl *groupListener) Wake() {
	select {
	case gl.sig <- struct{}{}:
	default:
	}
}

// shut wakes every Accept for good: the listener or its stack closed.
func (gl *groupListener) shut() {
	gl.doneOne.Do(func() { close(gl.done) })
}

// Accept takes a connection from any shard, waiting until one has one.
// A token left by a part's Wake after Accept looked at that part stays
// in sig, so no connection is missed; an Accept that took one passes a
// token on while other Accepts are inside, since one token may stand for
// several connections.
func (gl *groupListener) Accept() (net.Conn, error) {
	gl.inside.Add(1)
	defer gl.inside.Add(-1)
	n := len(gl.parts)
	for {
		start := int(gl.next.Add(1) - 1)
		for k := range n {
			l := gl.parts[(start+k)%n]
			l.s.mu.Lock()
			c, err := l.acceptLocked()
			l.s.mu.Unlock()
			if err == nil && gl.inside.Load() > 1 {
				gl.Wake()
			}
			if err != tcpcore.ErrWouldBlock {
				return c, err
			}
		}
		select {
		case <-gl.sig:
		case <-gl.done:
		}
	}
}

// Close closes every part: their accept queues are reset, as Close of a
// listener of one engine does.
func (gl *groupListener) Close() error {
	closed := 0
	for _, l := range gl.parts {
		s := l.s
		s.mu.Lock()
		if l.closed {
			s.mu.Unlock()
			continue
		}
		l.closed = true
		delete(s.lsns, l)
		l.tl.Close(s.now())
		closed++
		s.unlockFlush() // the RSTs for the accept queue
	}
	gl.g.mu.Lock()
	delete(gl.g.lsns, gl)
	gl.g.mu.Unlock()
	gl.shut()
	if closed == 0 && len(gl.parts) > 0 {
		return gl.parts[0].opError(net.ErrClosed)
	}
	return nil
}

// Addr returns the listening address, a *net.TCPAddr.
func (gl *groupListener) Addr() net.Addr { return gl.addr }

// Stats sums the parts' queues and counters, each read under its
// shard's lock; Backlog is the one each part has, the backlog Listen was
// given (capped by somaxconn), so the accept queue, summed, can be
// longer than it when the shards all hold connections.
func (gl *groupListener) Stats() tcpcore.ListenerStats {
	var st tcpcore.ListenerStats
	for _, l := range gl.parts {
		l.s.mu.Lock()
		x := l.tl.Stats()
		l.s.mu.Unlock()
		backlog := x.Backlog
		addFields(&st, x)
		st.Backlog = backlog
	}
	return st
}

// flow is a connection's 4-tuple as the engine keys it. The zero flow
// is none: segmentFlow and quotedFlow return it for a packet they cannot
// read one from.
type flow struct{ local, remote netip.AddrPort }

// segmentFlow is the flow of an inbound TCP segment from src to dst.
func segmentFlow(src, dst netip.Addr, tcp []byte) flow {
	if len(tcp) < 4 {
		return flow{} // the engine drops it
	}
	t := wire.TCP(tcp)
	return flow{netip.AddrPortFrom(dst, t.DstPort()), netip.AddrPortFrom(src, t.SrcPort())}
}

// quotedFlow is the flow of the segment of ours an ICMP error quotes.
func quotedFlow(quote []byte) flow {
	u, ok := wire.QuotedUpper(quote)
	if !ok || u.Proto != wire.ProtoTCP {
		return flow{}
	}
	t := wire.TCP(u.Data) // QuotedUpper: at least 8 bytes
	return flow{netip.AddrPortFrom(u.Src, t.SrcPort()), netip.AddrPortFrom(u.Dst, t.DstPort())}
}

// handoff holds, in the order they arrived, the packets of one read
// batch that the reader's engine has no connection for, copied out of
// the reader's arena. Only the shard's reader uses it.
type handoff struct {
	buf  []byte
	pkts []handed
}

type handed struct {
	off, n int
	to     *Stack
	m      tcpcore.InputMeta
}

// passOn keeps pkt for passOnAll if its flow f is another shard's (the
// owner table says so). A flow no shard has becomes this shard's (claim)
// when claim is set, a TCP segment's, and the caller then calls
// settleClaim once its engine has taken the segment; an ICMP error about
// a flow no shard has claims nothing. The caller (the reader) holds s.mu
// and calls it only on a stack of shards (s.grp set), so that a single
// engine reads no flow out of its segments; a packet another shard passed
// on is delivered as it is.
func (s *Stack) passOn(pkt []byte, f flow, claim bool, m tcpcore.InputMeta) bool {
	if s.handing || !f.local.IsValid() || s.e.HasConn(f.local, f.remote) {
		return false
	}
	var to *Stack
	if claim {
		to = s.grp.owners.claim(f, s)
		if to == s {
			s.claimed, s.claim = true, f
			return false
		}
	} else if to = s.grp.owners.lookup(f); to == nil || to == s {
		return false
	}
	h := &s.ho
	h.pkts = append(h.pkts, handed{off: len(h.buf), n: len(pkt), to: to, m: m})
	h.buf = append(h.buf, pkt...)
	return true
}

// settleClaim gives up the flow passOn claimed if the segment that
// claimed it made no connection. The caller holds s.mu.
func (s *Stack) settleClaim() {
	if !s.claimed {
		return
	}
	s.claimed = false
	if f := s.claim; !s.e.HasConn(f.local, f.remote) {
		s.grp.owners.release(f, s)
	}
}

// passOnAll delivers the packets passOn kept, each to the shard that
// owned its flow. The caller holds no lock. If that shard's connection
// ended in between, its engine answers the packet as one for no
// connection of its own.
func (s *Stack) passOnAll() {
	h := &s.ho
	for _, p := range h.pkts {
		to := p.to
		s.ipStats.passedOn.Add(1)
		to.mu.Lock()
		to.handing = true
		to.inputIP(to.now(), h.buf[p.off:p.off+p.n], p.m)
		to.handing = false
		to.armTrim() // as readLoop: the input may have ended a connection
		to.unlockFlush()
	}
	h.pkts, h.buf = h.pkts[:0], h.buf[:0]
}

// inputIP takes one TCP segment or ICMP error another shard's reader
// passed on. The caller holds s.mu.
func (s *Stack) inputIP(now tcpcore.Time, b []byte, m tcpcore.InputMeta) {
	var none replies // nothing passed on is answered by the reader
	if b[0]>>4 == 4 {
		s.input4(now, wire.IPv4(b), m, &none)
	} else {
		s.input6(now, wire.IPv6(b), m, &none)
	}
}
