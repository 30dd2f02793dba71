package tcpcore

import (
	"net/netip"

	"tunstack/wire"
)

// Listener is a passive open (RFC 9293 §3.10.1 with a null foreign socket).
// Connections in the handshake sit in its SYN queue; completed ones wait in
// its accept queue until the application takes them.
type Listener struct {
	e       *Engine
	addr    netip.AddrPort // unmapped
	mapped  bool           // bound to an IPv4-mapped address: Addr and the connections report mapped addresses
	backlog int
	opts    SockOpts
	waker   Waker
	closed  bool

	synQueue    int     // connections in SYN-RECEIVED
	lastCookie  Time    // last SYN answered with a cookie (0: never)
	acceptQueue []*Conn // ESTABLISHED (or later), not yet accepted
	stats       ListenerStats
	hold        portHold     // the listener's place in its port's bucket (bind.go)
	icpt        *Interceptor // not nil: the queues of an Interceptor, which holds SYNs (intercept.go)
}

// ListenerStats is what `ss -lnt` and `netstat -s` show for a listener.
type ListenerStats struct {
	AcceptQueue   int    // Recv-Q: completed connections waiting for accept
	Backlog       int    // Send-Q: the backlog in force
	SynQueue      int    // half-open connections
	Overflows     uint64 // final ACKs dropped or reset because the accept queue was full
	Drops         uint64 // SYNs dropped for any reason
	SynQueueDrops uint64 // SYNs dropped because the SYN queue was full
	MaxConnsDrops uint64 // SYNs and cookie ACKs dropped because the engine held Config.MaxConns connections
	CookiesSent   uint64 // SYN-ACKs sent with a SYN cookie
	CookiesValid  uint64 // connections made from a valid cookie ACK
	CookiesFailed uint64 // ACKs whose cookie did not check out (answered with RST)
}

// Listen opens a listener on addr (an unspecified address listens on all
// of the engine's addresses): Bind and then Binding.Listen, so it fails
// with EADDRINUSE (ErrAddrInUse) when the bind rules say the port is
// taken (bind.go: a listener, or any connection on an overlapping address,
// TIME-WAIT included, unless SO_REUSEADDR or SO_REUSEPORT in opts
// allow sharing it). backlog is capped by the profile's somaxconn, as
// listen(2) does.
func (e *Engine) Listen(now Time, addr netip.AddrPort, backlog int, opts SockOpts) (*Listener, error) {
	if addr.Port() == 0 {
		return nil, ErrInvalid
	}
	if err := checkCongestion(opts.Congestion); err != nil {
		return nil, err
	}
	b, err := e.Bind(now, addr, opts)
	if err != nil {
		return nil, err
	}
	l, err := b.Listen(now, backlog, opts)
	if err != nil {
		b.Close()
	}
	return l, err
}

// Addr returns the listening address (IPv4-mapped if the listener was
// bound to a mapped address).
func (l *Listener) Addr() netip.AddrPort { return mapAddr(l.addr, l.mapped) }

// mapsChild reports whether a connection this listener makes from a
// segment to local reports mapped addresses: an IPv4 one reached through
// an IPv6 socket (the wildcard [::], or a mapped address).
func (l *Listener) mapsChild(local netip.AddrPort) bool {
	return local.Addr().Is4() && (l.mapped || l.addr.Addr().Is6())
}

// SetWaker attaches the driver's handle.
func (l *Listener) SetWaker(w Waker) { l.waker = w }

// SetBacklog changes the backlog (a second listen(2) call).
func (l *Listener) SetBacklog(n int) { l.backlog = min(max(n, 0), l.e.prof.Somaxconn) }

// Stats returns the listener's queue lengths and counters.
func (l *Listener) Stats() ListenerStats {
	s := l.stats
	s.AcceptQueue, s.Backlog, s.SynQueue = len(l.acceptQueue), l.backlog, l.synQueue
	return s
}

// Accept returns the oldest completed connection, or ErrWouldBlock.
func (l *Listener) Accept(now Time) (*Conn, error) {
	if l.closed {
		return nil, ErrClosed
	}
	if len(l.acceptQueue) == 0 {
		return nil, ErrWouldBlock
	}
	c := l.acceptQueue[0]
	copy(l.acceptQueue, l.acceptQueue[1:])
	l.acceptQueue[len(l.acceptQueue)-1] = nil
	l.acceptQueue = l.acceptQueue[:len(l.acceptQueue)-1]
	c.queued, c.parent, c.accepted = false, nil, true
	return c, nil
}

// Pending reports whether Accept would return without ErrWouldBlock.
func (l *Listener) Pending() bool { return l.closed || len(l.acceptQueue) > 0 }

// Close stops listening. Connections completed but not accepted are reset
// (Linux inet_csk_listen_stop; the listener-close experiment in
// docs/experiments.md); half-open ones are dropped
// silently, so a later ACK from their peer meets a closed port and gets RST.
func (l *Listener) Close(now Time) {
	if l.closed {
		return
	}
	l.closed = true
	e := l.e
	e.leaveGroup(l)
	e.release(&l.hold)
	for _, c := range l.acceptQueue {
		c.parent, c.queued = nil, false
		c.abort(now, ErrConnReset)
		c.destroy()
	}
	l.acceptQueue = nil
	for _, c := range e.conns {
		if c.parent == l && c.state == SynReceived {
			c.parent = nil // the SYN queue is emptied below
			c.state = Closed
			c.unlink()
		}
	}
	l.synQueue = 0
	e.wake(l.waker)
}

// acceptQueueFull is Linux's sk_acceptq_is_full: the queue holds backlog+1
// connections. Under the BSD account (BacklogBoundsBoth) the backlog bounds
// both queues together.
func (l *Listener) acceptQueueFull() bool {
	if l.e.prof.BacklogBoundsBoth {
		return len(l.acceptQueue)+l.synQueue >= l.bsdLimit()
	}
	return len(l.acceptQueue) > l.backlog
}

// bsdLimit is 4.4BSD's bound on both queues together: backlog*3/2 + 1
// (UNP §4.5, Figure 4.10).
func (l *Listener) bsdLimit() int { return l.backlog*3/2 + 1 }

// synQueueFull says a SYN may not get a half-open entry. Linux
// (tcp_conn_request, inet_csk_reqsk_queue_is_full) bounds the SYN queue by
// the listener's backlog, like the accept queue (backlog+1 entries): beyond
// it a SYN gets a cookie, or is dropped when cookies are off.
func (l *Listener) synQueueFull() bool {
	if l.e.prof.BacklogBoundsBoth {
		return len(l.acceptQueue)+l.synQueue >= l.bsdLimit()
	}
	return l.synQueue > l.backlog
}

// synBacklogNearlyFull is Linux's second bound, applied when cookies are
// off: with less than a quarter of tcp_max_syn_backlog left, new SYNs are
// dropped, keeping room for peers already in the queue.
func (l *Listener) synBacklogNearlyFull() bool {
	max := l.e.prof.MaxSynBacklog
	return !l.e.prof.SynCookies && max-l.synQueue < max>>2
}

// input handles a segment for the listening socket (RFC 9293 §3.10.7.2).
func (l *Listener) input(now Time, s *segment) {
	e := l.e
	switch {
	case s.has(wire.FlagRST):
		return // first: an incoming RST is ignored
	case s.has(wire.FlagACK) && !s.has(wire.FlagSYN):
		if l.lastCookie != 0 && now.Sub(l.lastCookie) < cookieValidAfterOverflow && !s.has(wire.FlagFIN) {
			if l.cookieAck(now, s) {
				return
			}
		}
		// second: any acknowledgment is bad in LISTEN: <SEQ=SEG.ACK><CTL=RST>
		e.sendReset(s.dst, s.src, s.ack, 0, wire.FlagRST)
		return
	case s.has(wire.FlagACK):
		e.sendReset(s.dst, s.src, s.ack, 0, wire.FlagRST)
		return
	case !s.has(wire.FlagSYN):
		return // fourth: other text or control, drop
	case s.has(wire.FlagFIN):
		// Linux behaviour (tcp_rcv_state_process in LISTEN): a SYN with FIN
		// is dropped unanswered. RFC 9293 §3.10.7.2 would open on the SYN
		// and ignore the FIN, but SYN+FIN is no legitimate opening, only a
		// scanner's probe, and answering it tells the scanner the port is
		// open.
		return
	}
	// third: SYN.
	if l.icpt != nil && l.icpt.repeated(s) {
		return
	}
	if l.atMaxConns() {
		return
	}
	if l.acceptQueueFull() {
		// Linux tcp_conn_request: with the accept queue full a new SYN is
		// dropped (LISTENOVERFLOWS + LISTENDROPS); the client retries.
		l.stats.Overflows++
		l.stats.Drops++
		e.stats.ListenOverflows++
		e.stats.ListenDrops++
		return
	}
	if l.synQueueFull() || l.synBacklogNearlyFull() {
		if e.prof.SynCookies && !e.prof.BacklogBoundsBoth {
			// RFC 4987 §3.6: answer without keeping state.
			l.sendCookieSynAck(now, s)
			return
		}
		l.stats.SynQueueDrops++
		l.stats.Drops++
		e.stats.SynQueueDrops++
		e.stats.ListenDrops++
		return
	}
	if l.icpt != nil {
		l.icpt.hold(now, s) // the lazy handshake: no SYN-ACK until the application decides
		return
	}
	c := e.newConn(now, s.dst, s.src, &l.opts)
	c.parent = l
	c.mapped = l.mapsChild(s.dst)
	l.synQueue++
	e.demuxAdd(c)
	l.holdChild(c)
	c.count()
	e.stats.PassiveOpens++
	c.passiveOpen(now, s)
}

// atMaxConns reports whether the engine holds Config.MaxConns connections
// already, and if so counts the segment that would have made one more as
// dropped. The cap has no RFC; at a full limit it does what Linux does at
// a full accept queue (tcp_conn_request, tcp_listendrop): drop the SYN
// unanswered, so the client retransmits it and gets in once a connection
// ends, rather than a reset that would fail its connect at once.
func (l *Listener) atMaxConns() bool {
	e := l.e
	if e.cfg.MaxConns == 0 || e.passiveConns < e.cfg.MaxConns {
		return false
	}
	l.stats.MaxConnsDrops++
	l.stats.Drops++
	e.stats.MaxConnsDrops++
	e.stats.ListenDrops++
	return true
}

// count holds c against Config.MaxConns; uncount lets it go (at
// TIME-WAIT, or when it leaves the engine). Both are idempotent.
func (c *Conn) count() {
	if !c.counted {
		c.counted = true
		c.e.passiveConns++
	}
}

func (c *Conn) uncount() {
	if c.counted {
		c.counted = false
		c.e.passiveConns--
	}
}

// cookieAck handles an ACK that may complete a cookie handshake. It
// reports whether the segment was consumed.
func (l *Listener) cookieAck(now Time, s *segment) bool {
	e := l.e
	idx, ok := e.checkCookie(now, s)
	if !ok {
		l.stats.CookiesFailed++
		e.stats.SynCookiesFailed++
		return false
	}
	if l.atMaxConns() {
		// A good cookie, but no room: dropped like the SYN it answers
		// would be now, so the client's retransmission may find room.
		return true
	}
	if l.acceptQueueFull() {
		// Linux: the cookie is good but there is no room; drop the ACK so
		// the client's retransmission may find room later.
		l.stats.Overflows++
		l.stats.Drops++
		e.stats.ListenOverflows++
		e.stats.ListenDrops++
		return true
	}
	c := l.cookieConn(now, s, idx)
	c.mapped = l.mapsChild(s.dst)
	e.demuxAdd(c)
	l.holdChild(c)
	c.count()
	l.synQueue++ // established() moves it to the accept queue
	l.stats.CookiesValid++
	e.stats.SynCookiesRecv++
	e.stats.PassiveOpens++
	c.input(now, s)
	return true
}

// holdChild gives a connection the listener made its place in the port's
// bucket, on its own local address and with the listener's SO_REUSEADDR
// and SO_REUSEPORT (Linux __inet_inherit_port: the child joins its
// listener's bind bucket, and sk_clone copies sk_reuse).
func (l *Listener) holdChild(c *Conn) {
	l.e.hold(&c.hold, l.hold.port, bindClass{addr: c.key.local().Addr(), reuseAddr: l.opts.ReuseAddr, reusePort: l.opts.ReusePort}, true)
}

// established moves a connection from the SYN queue to the accept queue;
// it reports false (and changes nothing) when the accept queue is full.
func (l *Listener) established(c *Conn) bool {
	if l.icpt != nil {
		return l.icpt.established(c)
	}
	if l.acceptQueueFull() {
		return false
	}
	l.synQueue--
	c.queued = true
	l.acceptQueue = append(l.acceptQueue, c)
	l.e.wake(l.waker)
	return true
}

// forget removes a connection that died before being accepted.
func (l *Listener) forget(c *Conn) {
	if c.queued {
		for i, q := range l.acceptQueue {
			if q == c {
				l.acceptQueue = append(l.acceptQueue[:i], l.acceptQueue[i+1:]...)
				break
			}
		}
		c.queued = false
	} else if c.state == SynReceived || c.state == Closed {
		if l.synQueue > 0 {
			l.synQueue--
		}
	}
	c.parent = nil
}
