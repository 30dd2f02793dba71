package tcpcore

import (
	"net/netip"

	"tunstack/wire"
)

// An Interceptor is a promiscuous passive open with a lazy handshake, what
// a transparent relay needs: it takes a SYN to any address and port inside
// its prefixes (addresses that are not the engine's own), as a listener
// would, but holds the SYN unanswered until the application has decided
// what the destination deserves: Answer sends the SYN-ACK and runs the
// normal handshake, Reset answers RST, Drop forgets the SYN, and
// Unreachable forgets it so that the driver can answer with an ICMP
// destination unreachable quoting it (Quote). A client therefore never
// sees "connected" for a destination that refuses.
//
// The queues are a listener's (Listener, unbound and unlisted): held SYNs
// and answered handshakes count in its SYN queue, bounded by the backlog;
// beyond it a SYN gets a SYN cookie, as a listener's would (RFC 4987
// §3.6), or is dropped and counted when cookies are off. A cookie is a
// SYN-ACK, so under that overflow the handshake is eager: the connection
// a valid cookie ACK completes is handed out established (HeldSyn.Conn),
// and refusing it resets it.
//
// The application must decide every HeldSyn it takes: a held SYN has no
// timer of its own (the client's retransmissions only find it held).
type Interceptor struct {
	l        *Listener
	prefixes []netip.Prefix
	held     map[connKey]*HeldSyn
	fresh    []*HeldSyn // held SYNs and cookie connections not yet taken
	stats    InterceptStats
}

// InterceptStats counts what an Interceptor did.
type InterceptStats struct {
	Held           uint64 // SYNs held for a decision
	SynRepeats     uint64 // SYNs that repeated a held one (retransmissions, or a new ISN replacing it): no second hold
	Answered       uint64 // held SYNs answered with SYN-ACK
	Resets         uint64 // held SYNs (or cookie connections) refused with RST
	Unreachables   uint64 // held SYNs refused with an ICMP destination unreachable
	Drops          uint64 // held SYNs dropped unanswered
	CookieConns    uint64 // connections completed from a SYN cookie, handed out established
	Established    uint64 // answered handshakes that completed
	HeldNow        int    // SYNs held at this moment
	SynQueue       int    // held SYNs and answered handshakes not yet complete
	ListenerCounts ListenerStats
}

// A HeldSyn is a client's SYN an Interceptor holds unanswered, or (Conn
// not nil) a connection a SYN cookie completed.
type HeldSyn struct {
	i              *Interceptor
	client, target netip.AddrPort
	at             Time // when the SYN (first) arrived
	irs            Seq
	wnd            uint16
	opts           wire.TCPOptions
	hdr            [wire.TCPHeaderLen + wire.TCPMaxOptionLen]byte
	hdrLen         int
	conn           *Conn
	done           bool
}

// Client is the SYN's source; Target its destination.
func (h *HeldSyn) Client() netip.AddrPort { return h.client }

// Target is the address and port the SYN was sent to.
func (h *HeldSyn) Target() netip.AddrPort { return h.target }

// At is when the SYN first arrived (zero for a cookie connection, whose
// SYN was not kept).
func (h *HeldSyn) At() Time { return h.at }

// Conn is the established connection a SYN cookie completed, nil for a
// held SYN.
func (h *HeldSyn) Conn() *Conn { return h.conn }

// Quote is the SYN's TCP header, options included, as it arrived: what an
// ICMP error about it quotes after the IP header (RFC 792 asks for the
// first 64 bits; RFC 4443 §3.1 for as much as fits, which this is).
func (h *HeldSyn) Quote() []byte { return h.hdr[:h.hdrLen] }

// Intercept starts taking SYNs to any address inside prefixes (IPv4 and
// IPv6 prefixes may be mixed; they must be valid and not IPv4-mapped).
// backlog bounds the SYN queue as listen(2)'s does, capped by somaxconn;
// opts are the socket options of the connections made. Segments to an
// address that has a connection or a listener go to it first.
func (e *Engine) Intercept(now Time, prefixes []netip.Prefix, backlog int, opts SockOpts) (*Interceptor, error) {
	if len(prefixes) == 0 {
		return nil, ErrInvalid
	}
	for _, p := range prefixes {
		if !p.IsValid() || p.Addr().Is4In6() {
			return nil, ErrInvalid
		}
	}
	if err := checkCongestion(opts.Congestion); err != nil {
		return nil, err
	}
	i := &Interceptor{
		prefixes: append([]netip.Prefix(nil), prefixes...),
		held:     make(map[connKey]*HeldSyn),
	}
	i.l = &Listener{e: e, backlog: min(max(backlog, 0), e.prof.Somaxconn), opts: opts, icpt: i}
	e.intercepts = append(e.intercepts, i)
	return i, nil
}

// interceptFor is the interceptor whose prefixes hold dst, nil if none.
func (e *Engine) interceptFor(dst netip.Addr) *Listener {
	for _, i := range e.intercepts { // Close takes an interceptor out
		for _, p := range i.prefixes {
			if p.Contains(dst) {
				return i.l
			}
		}
	}
	return nil
}

// SetWaker attaches the driver's handle, woken when Take has something.
func (i *Interceptor) SetWaker(w Waker) { i.l.waker = w }

// Stats returns the interceptor's counters and its listener's.
func (i *Interceptor) Stats() InterceptStats {
	s := i.stats
	s.HeldNow, s.SynQueue, s.ListenerCounts = len(i.held), i.l.synQueue, i.l.Stats()
	return s
}

// Take returns the SYNs held and the cookie connections completed since
// the last call, oldest first; each must be decided once.
func (i *Interceptor) Take() []*HeldSyn {
	f := i.fresh
	i.fresh = nil
	return f
}

// repeated handles a SYN whose 4-tuple has a held SYN; it reports whether
// it did. The same ISN is the client's retransmission: the SYN is still
// held and nothing is answered (the answer comes with the decision). A new
// ISN is a new attempt by the client on the same 4-tuple: it replaces the
// held SYN, so the answer, when it comes, acknowledges the SYN the client
// is now waiting on. Neither is a second hold.
func (i *Interceptor) repeated(s *segment) bool {
	h := i.held[newConnKey(s.dst, s.src)]
	if h == nil {
		return false
	}
	i.stats.SynRepeats++
	if s.seq != h.irs {
		h.record(s)
	}
	return true
}

// hold keeps a SYN the listener's queue checks admitted.
func (i *Interceptor) hold(now Time, s *segment) {
	h := &HeldSyn{i: i, client: s.src, target: s.dst, at: now}
	h.record(s)
	i.held[newConnKey(s.dst, s.src)] = h
	i.l.synQueue++
	i.stats.Held++
	i.fresh = append(i.fresh, h)
	i.l.e.wake(i.l.waker)
}

// record copies what answering the SYN later needs: its sequence number,
// window and options, and its header for a quote.
func (h *HeldSyn) record(s *segment) {
	h.irs, h.wnd, h.opts = s.seq, s.wnd, *s.opts
	h.hdrLen = copy(h.hdr[:], s.hdr)
}

// settle removes a held SYN from the queue once decided; it reports false
// if it was decided before (or its interceptor closed).
func (h *HeldSyn) settle() bool {
	if h.done {
		return false
	}
	h.done = true
	i := h.i
	if h.conn == nil && i.held[newConnKey(h.target, h.client)] == h {
		delete(i.held, newConnKey(h.target, h.client))
		if i.l.synQueue > 0 {
			i.l.synQueue--
		}
	}
	return true
}

// Answer sends the SYN-ACK for a held SYN and returns the connection, in
// SYN-RECEIVED until the client's ACK completes it (its waker is woken
// then, or when the handshake fails: the SYN-ACK retransmissions give up,
// the client resets). The connection is the application's from now on, as
// an accepted one is. For a cookie connection it returns that connection.
// After Close it returns ErrClosed (Close forgot the held SYNs and reset
// the cookie connections not yet taken); for a SYN decided before,
// ErrInvalid.
func (i *Interceptor) Answer(now Time, h *HeldSyn) (*Conn, error) {
	if h.i != i {
		return nil, ErrInvalid
	}
	if i.l.closed {
		return nil, ErrClosed
	}
	if !h.settle() {
		return nil, ErrInvalid
	}
	if h.conn != nil {
		return h.conn, nil
	}
	e := i.l.e
	key := newConnKey(h.target, h.client)
	if e.conns[key] != nil {
		return nil, ErrAddrInUse
	}
	c := e.newConn(now, h.target, h.client, &i.l.opts)
	c.parent, c.accepted = i.l, true
	e.demuxAdd(c)
	c.count() // held against Config.MaxConns, which its SYN was checked against
	// The connection holds its port as a listener's child would (bind.go),
	// so that an active open from this engine never takes its 4-tuple.
	e.hold(&c.hold, h.target.Port(), bindClass{addr: h.target.Addr()}, true)
	i.l.synQueue++ // in the SYN queue until established (settle took the held SYN out)
	i.stats.Answered++
	e.stats.PassiveOpens++
	seg := segment{seq: h.irs, flags: wire.FlagSYN, wnd: h.wnd, opts: &h.opts, src: h.client, dst: h.target}
	c.passiveOpen(now, &seg)
	return c, nil
}

// Reset refuses a held SYN with <SEQ=0><ACK=SEG.SEQ+1><CTL=RST,ACK>, the
// answer of a closed port (RFC 9293 §3.10.7.1), so the client's connect
// fails with "connection refused". A cookie connection is aborted (RST).
func (i *Interceptor) Reset(now Time, h *HeldSyn) {
	if h.i != i || !h.settle() {
		return
	}
	i.stats.Resets++
	if h.conn != nil {
		h.conn.Abort(now)
		return
	}
	i.l.e.sendReset(h.target, h.client, 0, h.irs.Add(1), wire.FlagRST|wire.FlagACK)
}

// Unreachable forgets a held SYN that the driver answers with an ICMP
// destination unreachable quoting it (Quote); the engine writes no ICMP.
// A cookie connection, already established, is aborted (RST) instead. It
// reports whether the driver is to send the ICMP error.
func (i *Interceptor) Unreachable(now Time, h *HeldSyn) bool {
	if h.i != i || !h.settle() {
		return false
	}
	if h.conn != nil {
		i.stats.Resets++
		h.conn.Abort(now)
		return false
	}
	i.stats.Unreachables++
	return true
}

// Drop forgets a held SYN unanswered: the client retransmits and times
// out. A cookie connection is aborted (RST).
func (i *Interceptor) Drop(now Time, h *HeldSyn) {
	if h.i != i || !h.settle() {
		return
	}
	if h.conn != nil {
		i.stats.Resets++
		h.conn.Abort(now)
		return
	}
	i.stats.Drops++
}

// established takes a connection whose handshake completed out of the SYN
// queue: an answered one is already the application's; a cookie one is
// handed out through Take. Nothing waits in an accept queue.
func (i *Interceptor) established(c *Conn) bool {
	l := i.l
	if l.synQueue > 0 {
		l.synQueue--
	}
	c.parent = nil
	if c.accepted {
		i.stats.Established++
		return true
	}
	c.accepted = true
	i.stats.CookieConns++
	i.fresh = append(i.fresh, &HeldSyn{i: i, client: c.key.remote(), target: c.key.local(), conn: c})
	l.e.wake(l.waker)
	return true
}

// Close stops intercepting. Held SYNs are forgotten unanswered (the
// client's retransmission then meets no one, and gets RST); answered
// handshakes go on as the application's; cookie connections not yet
// taken are reset.
func (i *Interceptor) Close(now Time) {
	l := i.l
	if l.closed {
		return
	}
	l.closed = true
	e := l.e
	for k, h := range i.held {
		h.done = true
		delete(i.held, k)
	}
	for _, h := range i.fresh {
		if h.conn != nil && !h.done {
			h.done = true
			h.conn.Abort(now)
		}
	}
	i.fresh = nil
	for _, c := range e.conns {
		if c.parent == l {
			c.parent = nil
		}
	}
	l.synQueue = 0
	for j, m := range e.intercepts {
		if m == i {
			e.intercepts = append(e.intercepts[:j], e.intercepts[j+1:]...)
			break
		}
	}
	e.wake(l.waker)
}
