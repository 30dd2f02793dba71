package tcpcore

import (
	"math/bits"
	"net/netip"
)

// Bind rules: who may hold a local port, as Linux 6.x decides it
// (inet_csk_get_port, inet_csk_bind_conflict, inet_hash_connect,
// __inet_check_established, tcp_twsk_unique, reuseport_select_sock).
//
// Every socket that holds a port has a place in the port's bucket (Linux's
// inet_bind_bucket): a socket bound by Bind and not yet listening or
// connected, a listener, and every connection in every state, TIME-WAIT
// included, the ones a listener accepted among them. A bucket counts its
// sockets by what the rules read of them (bindClass), so a bind checks a
// handful of classes however many connections hold the port, and an
// ephemeral connect looks at one bucket and one connection per port it
// tries.

// bindClass is what the bind rules read of a socket holding a port.
type bindClass struct {
	addr      netip.Addr // the bound address, unmapped; 0.0.0.0 and :: are the wildcards of their families
	v6only    bool       // IPV6_V6ONLY on a socket bound to :: (set only there: it changes nothing elsewhere)
	reuseAddr bool       // SO_REUSEADDR (Linux sk_reuse; a connection keeps its socket's into TIME-WAIT, an accepted one its listener's)
	reusePort bool       // SO_REUSEPORT
	listener  bool       // in LISTEN
}

// bindCount is how many sockets of one class hold a port.
type bindCount struct {
	class bindClass
	n     int
}

// portBucket is Linux's inet_bind_bucket: the sockets holding one local
// port, counted by class.
type portBucket struct {
	owners []bindCount
	// explicit is set once a socket held the port through Bind (or
	// Listen, or Connect from a chosen port) rather than an ephemeral
	// connect, and stays set while the bucket lives. Linux behaviour
	// (__inet_hash_connect): a bucket that bind made has fastreuse or
	// fastreuseport >= 0, and the ephemeral port search passes such a
	// port by, so a connect never takes the port of a listener or of a
	// socket bound on purpose; buckets that connect made (-1) are shared
	// by connections to different destinations.
	explicit bool
}

// portHold is one socket's place in its port's bucket.
type portHold struct {
	class bindClass
	port  uint16
	held  bool
}

// bindConflict is Linux's inet_csk_bind_conflict for a socket of class me
// binding port: it conflicts with any socket holding the port whose
// address overlaps, unless both have SO_REUSEADDR and the other is not
// listening, or both have SO_REUSEPORT (Linux also asks the same owner,
// and the engine has one). self, when non-nil, is the socket's own place
// in the bucket, which it does not conflict with (listen(2) on a bound
// socket checks the port again with the socket in LISTEN). relax false is
// the check of a port Bind picks itself (inet_csk_find_open_port with
// ip_autobind_reuse off): then any overlapping socket conflicts.
func (e *Engine) bindConflict(port uint16, me bindClass, self *portHold, relax bool) bool {
	b := e.ports[port]
	if b == nil {
		return false
	}
	for _, o := range b.owners {
		n := o.n
		if self != nil && self.held && self.class == o.class {
			n--
		}
		if n == 0 || !overlaps(me, o.class) {
			continue
		}
		if !relax {
			return true
		}
		// Linux behaviour (inet_bind_conflict): sk->sk_reuse &&
		// sk2->sk_reuse && sk2->sk_state != TCP_LISTEN lets the two share
		// the port; a connection in TIME-WAIT is not listening, so it is
		// shared only when its socket had SO_REUSEADDR too.
		if me.reuseAddr && o.class.reuseAddr && !o.class.listener {
			continue
		}
		// Linux behaviour (inet_bind_conflict): SO_REUSEPORT on both,
		// same owner: listeners too may share, and form one group
		// (reuseport_add_sock).
		if me.reusePort && o.class.reusePort {
			continue
		}
		return true
	}
	return false
}

// hold puts h in port's bucket as class; explicit says the port was
// chosen or bound on purpose (portBucket.explicit).
func (e *Engine) hold(h *portHold, port uint16, class bindClass, explicit bool) {
	b := e.ports[port]
	if b == nil {
		b = e.newBucket()
		e.ports[port] = b
	}
	b.explicit = b.explicit || explicit
	b.add(class, 1)
	*h = portHold{port: port, class: class, held: true}
}

// release gives up h's place; the bucket goes when its last socket does
// (Linux inet_bind_bucket_destroy).
func (e *Engine) release(h *portHold) {
	if !h.held {
		return
	}
	h.held = false
	b := e.ports[h.port]
	if b.add(h.class, -1) == 0 {
		delete(e.ports, h.port)
		if len(e.spareBuckets) < maxSpareBuckets {
			b.explicit = false
			e.spareBuckets = append(e.spareBuckets, b)
		}
	}
}

// maxSpareBuckets bounds the buckets kept for reuse, so that a connect
// from a fresh ephemeral port allocates no bucket in the steady state.
const maxSpareBuckets = 64

func (e *Engine) newBucket() *portBucket {
	if n := len(e.spareBuckets); n > 0 {
		b := e.spareBuckets[n-1]
		e.spareBuckets[n-1] = nil
		e.spareBuckets = e.spareBuckets[:n-1]
		return b
	}
	return &portBucket{}
}

// reclass changes what the rules read of a socket holding its port (it
// starts listening, or its options changed before listen or connect).
func (e *Engine) reclass(h *portHold, class bindClass) {
	b := e.ports[h.port]
	b.add(h.class, -1)
	b.add(class, 1)
	h.class = class
}

// add counts d more sockets of class and returns the sockets left in the
// bucket.
func (b *portBucket) add(class bindClass, d int) int {
	i := 0
	for i < len(b.owners) && b.owners[i].class != class {
		i++
	}
	if i == len(b.owners) {
		b.owners = append(b.owners, bindCount{class: class})
	}
	b.owners[i].n += d
	if b.owners[i].n == 0 {
		last := len(b.owners) - 1
		b.owners[i] = b.owners[last]
		b.owners = b.owners[:last]
	}
	total := 0
	for _, o := range b.owners {
		total += o.n
	}
	return total
}

// Binding is a socket bound to a local address and port that neither
// listens nor connects yet: what bind(2) makes. It holds the port from
// Bind on, so a conflicting bind fails at once with EADDRINUSE, as on
// Linux, and not later at listen or connect. Listen or Connect on it
// uses its address and hands its place to the listener or connection;
// Close gives the port up. Engine.Listen and Engine.Connect with a
// non-zero local port are Bind and then Listen or Connect, for callers
// that need no separate step.
type Binding struct {
	e      *Engine
	hold   portHold
	used   bool // Listen or Connect succeeded, or Close was called
	mapped bool // bound to an IPv4-mapped address: its listener or connection reports mapped addresses
}

// Bind binds a socket to addr with the SO_REUSEADDR and SO_REUSEPORT of
// opts (Linux inet_bind, inet_csk_get_port). It fails with EADDRINUSE
// (ErrAddrInUse) when a socket holding the port conflicts (bindConflict).
// Port 0 picks a port of the profile's ephemeral range that no socket with
// an overlapping address holds, as Linux's inet_csk_find_open_port does
// with ip_autobind_reuse off, and fails with EADDRINUSE when there is
// none. A wildcard addr binds every address of the engine of its family:
// 0.0.0.0 the IPv4 ones, :: the IPv6 ones and, without opts.V6Only, the
// IPv4 ones too (dual stack, see overlaps). An IPv4-mapped addr binds its
// IPv4 address, for an IPv6 socket (mapped addresses reported).
func (e *Engine) Bind(now Time, addr netip.AddrPort, opts SockOpts) (*Binding, error) {
	a, mapped, ok := unmapAddr(addr.Addr())
	if !ok {
		return nil, ErrInvalid
	}
	class := bindClass{addr: a, reuseAddr: opts.ReuseAddr, reusePort: opts.ReusePort}
	class.v6only = opts.V6Only && a.Is6() && a.IsUnspecified()
	port := addr.Port()
	if port == 0 {
		var ok bool
		if port, ok = e.freePort(class); !ok {
			return nil, ErrAddrInUse
		}
	} else if e.bindConflict(port, class, nil, true) {
		return nil, ErrAddrInUse
	}
	b := &Binding{e: e, mapped: mapped}
	e.hold(&b.hold, port, class, true)
	return b, nil
}

// freePort walks the ephemeral range for a port that no socket with an
// overlapping address holds.
func (e *Engine) freePort(class bindClass) (uint16, bool) {
	lo, hi := uint32(e.prof.LocalPortMin), uint32(e.prof.LocalPortMax)
	n := hi - lo + 1
	for range n {
		e.nextEph++
		port := uint16(lo + e.nextEph%n)
		if !e.bindConflict(port, class, nil, false) {
			return port, true
		}
	}
	return 0, false
}

// Addr returns the bound address and port, IPv4-mapped if Bind was given
// a mapped address.
func (b *Binding) Addr() netip.AddrPort { return mapAddr(b.addr(), b.mapped) }

// addr is the bound address and port, unmapped.
func (b *Binding) addr() netip.AddrPort {
	return netip.AddrPortFrom(b.hold.class.addr, b.hold.port)
}

// Close unbinds a socket that did not listen or connect (close(2) on a
// bound socket). It does nothing after Listen or Connect, whose listener
// or connection then holds the port.
func (b *Binding) Close() {
	if !b.used {
		b.used = true
		b.e.release(&b.hold)
	}
}

// Unlisten stops listening as Close does, but keeps the port bound and
// returns the binding, which may listen again: Linux's tcp_disconnect on
// a listener that shutdown(SHUT_RD) reaches, for a socket the
// application bound (SOCK_BINDPORT_LOCK keeps the port).
func (l *Listener) Unlisten(now Time) *Binding {
	b := &Binding{e: l.e, hold: l.hold}
	l.hold = portHold{}
	l.Close(now)
	if b.hold.held {
		c := b.hold.class
		c.listener = false
		l.e.reclass(&b.hold, c)
	} else {
		b.used = true // the listener was closed already
	}
	return b
}

// Listen makes the bound socket a listener (listen(2)), with backlog
// capped as Engine.Listen caps it. opts are the socket's options now,
// SO_REUSEADDR and SO_REUSEPORT among them: as Linux's
// inet_csk_listen_start does, the port is checked again with the socket in
// LISTEN, so two sockets bound with SO_REUSEADDR cannot both listen
// (EADDRINUSE at the second listen), unless both have SO_REUSEPORT. On
// failure the socket stays bound.
func (b *Binding) Listen(now Time, backlog int, opts SockOpts) (*Listener, error) {
	e := b.e
	if b.used {
		return nil, ErrInvalid
	}
	if err := checkCongestion(opts.Congestion); err != nil {
		return nil, err
	}
	class := bindClass{addr: b.hold.class.addr, v6only: b.hold.class.v6only, reuseAddr: opts.ReuseAddr, reusePort: opts.ReusePort, listener: true}
	if e.bindConflict(b.hold.port, class, &b.hold, true) {
		return nil, ErrAddrInUse
	}
	backlog = min(max(backlog, 0), e.prof.Somaxconn)
	l := &Listener{e: e, addr: b.addr(), mapped: b.mapped, backlog: backlog, opts: opts, hold: b.hold}
	e.reclass(&l.hold, class)
	b.hold, b.used = portHold{}, true
	// Linux behaviour (reuseport_add_sock): a listener joins the group of
	// the listeners on the same address and port, at the end.
	e.lsns[l.addr] = append(e.lsns[l.addr], l)
	return l, nil
}

// Connect starts an active open from the bound address (connect(2) on a
// bound socket) with the socket's options now. The 4-tuple must be
// unused (Linux __inet_check_established), or EADDRNOTAVAIL
// (ErrAddrNotAvail); a connection in TIME-WAIT on it is taken over when
// it had timestamps, whatever the profile's TwReuse, as Linux's
// tcp_twsk_unique does for a port the application chose (twReuse). The
// binding must name an address: the engine does not route, so a socket
// bound to the wildcard has no source address to connect from (ErrInvalid;
// bind the address the route would give). On failure the socket stays
// bound, as on Linux.
func (b *Binding) Connect(now Time, remote netip.AddrPort, opts SockOpts) (*Conn, error) {
	e := b.e
	if b.used {
		return nil, ErrInvalid
	}
	local := b.addr()
	ra, rmapped, ok := unmapAddr(remote.Addr())
	if !ok || remote.Port() == 0 || local.Addr().IsUnspecified() || ra.Is4() != local.Addr().Is4() {
		return nil, ErrInvalid
	}
	remote = netip.AddrPortFrom(ra, remote.Port())
	if err := checkCongestion(opts.Congestion); err != nil {
		return nil, err
	}
	old := e.conns[newConnKey(local, remote)]
	if old != nil && !(old.state == TimeWait && e.twReuse(now, old, true)) {
		return nil, ErrAddrNotAvail
	}
	c := e.activeOpen(now, local, remote, &opts, old)
	c.mapped = b.mapped || rmapped
	c.hold, c.portLocked = b.hold, true
	e.reclass(&c.hold, bindClass{addr: local.Addr(), reuseAddr: opts.ReuseAddr, reusePort: opts.ReusePort})
	b.hold, b.used = portHold{}, true
	c.sendSyn(now)
	c.updateDeadline()
	return c, nil
}

// connectPort is Linux's inet_hash_connect for a connect without a bound
// port: it walks the profile's range (ip_local_port_range) from a keyed
// cursor (RFC 6056 §3.3.1's simple hash) and takes the first port that no
// socket bound on purpose holds (portBucket.explicit) and whose 4-tuple
// toward remote is free, or held by a connection in TIME-WAIT that
// tcp_tw_reuse lets it take over (returned as tw). ok is false when every
// port is taken toward remote.
func (e *Engine) connectPort(now Time, laddr netip.Addr, remote netip.AddrPort) (port uint16, tw *Conn, ok bool) {
	lo, hi := uint32(e.prof.LocalPortMin), uint32(e.prof.LocalPortMax)
	n := hi - lo + 1
	for range n {
		e.nextEph++
		port := uint16(lo + e.nextEph%n)
		if b := e.ports[port]; b != nil && b.explicit {
			continue
		}
		old := e.conns[newConnKey(netip.AddrPortFrom(laddr, port), remote)]
		if old == nil {
			return port, nil, true
		}
		if old.state == TimeWait && e.twReuse(now, old, false) {
			return port, old, true
		}
	}
	return 0, nil, false
}

// twReuse is Linux's tcp_twsk_unique: may a new active open take over tw,
// a connection in TIME-WAIT on the same 4-tuple? Only when the old
// connection had timestamps, so that PAWS keeps its old duplicates out of
// the new one (RFC 7323 §5.8 and Appendix B; activeOpen carries TS.Recent
// over and starts the new ISN beyond the old SND.NXT). bound is a connect
// from a port the application bound: then nothing more is asked. Otherwise
// the profile's TwReuse must allow it (2: only when either address is a
// loopback one) and the entry must have been in TIME-WAIT longer than
// TwReuseDelay, compared in whole milliseconds as Linux 6.13 and later
// compare tw_entry_stamp + tcp_tw_reuse_delay with tcp_clock_ms().
func (e *Engine) twReuse(now Time, tw *Conn, bound bool) bool {
	if !tw.tsOK {
		return false
	}
	if bound {
		return true
	}
	reuse := e.prof.TwReuse
	if reuse == 2 && !tw.key.local().Addr().IsLoopback() && !tw.key.remote().Addr().IsLoopback() {
		reuse = 0
	}
	const ms = 1e6
	return reuse != 0 && int64(now)/ms > int64(tw.timeWaitAt)/ms+int64(e.prof.TwReuseDelay)/ms
}

// reuseportHash is the hash of a SYN's 4-tuple that picks a listener of a
// SO_REUSEPORT group: Bob Jenkins' lookup3 final mix over the addresses
// and ports, keyed by the engine's secret, as Linux's inet_ehashfn
// (jhash_3words) is keyed by a boot-time secret.
func (e *Engine) reuseportHash(local, remote netip.AddrPort) uint32 {
	init := e.hashSeed + 0xdeadbeef + 3<<2
	a := hashAddr(local.Addr()) + init
	b := hashAddr(remote.Addr()) + init
	c := (uint32(local.Port())<<16 | uint32(remote.Port())) + init
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return c
}

// listenerFor is the listener a segment to local from remote belongs to:
// one on local's exact address before one on the wildcard of its family
// (Linux __inet_lookup_listener), and for IPv4 then a dual-stack one on
// the IPv6 wildcard (Linux behaviour: compute_score() lets an IPv6
// listener without IPV6_V6ONLY take IPv4, scoring it below IPv4 ones). Several listeners on one address are a
// SO_REUSEPORT group, and the SYN's 4-tuple picks one: Linux's
// reuseport_select_sock without a BPF program takes
// socks[reciprocal_scale(hash, num_socks)], the hash scaled to the group's
// size, so one 4-tuple always reaches the same listener while the group
// is unchanged.
func (e *Engine) listenerFor(local, remote netip.AddrPort) *Listener {
	g := e.lsns[local]
	if len(g) == 0 {
		if !local.Addr().Is4() {
			g = e.lsns[netip.AddrPortFrom(netip.IPv6Unspecified(), local.Port())]
		} else if g = e.lsns[netip.AddrPortFrom(netip.IPv4Unspecified(), local.Port())]; len(g) == 0 {
			return e.dualStackListener(local, remote)
		}
	}
	switch len(g) {
	case 0:
		return nil
	case 1:
		return g[0]
	}
	return g[reciprocalScale(e.reuseportHash(local, remote), len(g))]
}

// reciprocalScale maps h onto [0, n) as Linux's reciprocal_scale does:
// (h * n) >> 32.
func reciprocalScale(h uint32, n int) int {
	return int(uint64(h) * uint64(n) >> 32)
}

// leaveGroup removes l from its address's listeners. Linux behaviour
// (reuseport_detach_sock): the last listener of the group takes the
// place of the one that goes, so the rest keep their order.
func (e *Engine) leaveGroup(l *Listener) {
	g := e.lsns[l.addr]
	for i, m := range g {
		if m == l {
			last := len(g) - 1
			g[i], g[last] = g[last], nil
			g = g[:last]
			break
		}
	}
	if len(g) == 0 {
		delete(e.lsns, l.addr)
		return
	}
	e.lsns[l.addr] = g
}

// dualStackListener is the listener on the IPv6 wildcard of local's port
// that takes an IPv4 segment: of its SO_REUSEPORT group only those
// without IPV6_V6ONLY, picked among themselves by the 4-tuple's hash as
// listenerFor picks in a group.
func (e *Engine) dualStackListener(local, remote netip.AddrPort) *Listener {
	g := e.lsns[netip.AddrPortFrom(netip.IPv6Unspecified(), local.Port())]
	n := 0
	for _, l := range g {
		if !l.opts.V6Only {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	k := 0
	if n > 1 {
		k = reciprocalScale(e.reuseportHash(local, remote), n)
	}
	for _, l := range g {
		if !l.opts.V6Only {
			if k == 0 {
				return l
			}
			k--
		}
	}
	return nil
}
