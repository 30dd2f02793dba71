package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"tunstack/relay"
	"tunstack/tcpcore"
	"tunstack/wire"
)

// FrontendConfig is how a Frontend's connections toward the clients are
// set up. Zero values take the profile's defaults.
type FrontendConfig struct {
	// Backlog bounds the SYN queue: SYNs held for the relay's decision
	// and handshakes answered but not complete (listen(2)'s backlog,
	// capped by the profile's somaxconn; 0 is somaxconn). Beyond it a
	// SYN gets a SYN cookie (tcpcore.Interceptor).
	Backlog int
	// KeepAlive turns on TCP keepalive on every client connection, with
	// KeepIdle, KeepIntvl and KeepCount (0: the profile's, Linux's 7200
	// s, 75 s and 9).
	KeepAlive bool
	KeepIdle  time.Duration
	KeepIntvl time.Duration
	KeepCount int
	// MaxSeg caps the MSS offered to the clients (TCP_MAXSEG), so that a
	// client sends segments that fit the outbound path; 0 is the link's.
	MaxSeg int
	// RcvBuf and SndBuf fix the buffers of the client connections
	// (SO_RCVBUF, SO_SNDBUF); 0 lets them grow to the profile's limits.
	RcvBuf, SndBuf int
}

// Frontend is relay.Frontend on tunstack's engine: a tcpcore.Interceptor
// on the stack's engine, so SYNs to any address inside the prefixes are
// held unanswered until the relay decides (the lazy handshake). While it
// intercepts, the stack takes packets to those addresses, which are not
// its own: TCP goes to the engine, UDP is answered with ICMP port
// unreachable (the relay carries TCP only, and a resolver pointed through
// it then fails at once), and anything else is dropped as not for us.
type Frontend struct {
	s   *Stack
	cfg FrontendConfig

	// Guarded by s.mu.
	icpt     *tcpcore.Interceptor
	prefixes []netip.Prefix
	handle   func(relay.Pending)
	closed   bool
	limit    icmpv6Limiter // ICMP errors of both families, per client (Linux's per-peer token bucket)

	wg sync.WaitGroup // SYNs taken (held) and not yet handed out

	portUnreachables, unreachablesSent, icmpRateLimited uint64 // guarded by s.mu
}

var _ relay.Frontend = (*Frontend)(nil)

// Frontend returns a relay frontend on the stack. Nothing changes until
// Intercept. A stack has at most one intercepting frontend.
func (s *Stack) Frontend(cfg FrontendConfig) (*Frontend, error) {
	if cfg.Backlog < 0 || cfg.KeepIdle < 0 || cfg.KeepIntvl < 0 || cfg.KeepCount < 0 || cfg.MaxSeg < 0 || cfg.RcvBuf < 0 || cfg.SndBuf < 0 {
		return nil, fmt.Errorf("stack: frontend config %+v has a negative field: give 0 for the default", cfg)
	}
	if s.grp != nil {
		return nil, fmt.Errorf("stack: a relay frontend runs on a stack of one engine, not on %d shards: start the stack with New on one link (one queue)", len(s.grp.shards))
	}
	return &Frontend{s: s, cfg: cfg}, nil
}

// Intercept implements relay.Frontend: it may be called once. IPv6
// prefixes need the stack's IPv6 address (Config.Addr6), whose family the
// connections' segments and the ICMPv6 errors go out in.
func (f *Frontend) Intercept(prefixes []netip.Prefix, handle func(relay.Pending)) error {
	if len(prefixes) == 0 {
		return errors.New("stack: no prefix to intercept: give at least one, such as 0.0.0.0/0")
	}
	if handle == nil {
		return errors.New("stack: Intercept needs a handler for the held SYNs")
	}
	s := f.s
	ps := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() {
			return fmt.Errorf("stack: prefix %v is not valid: give an address and a length, such as 203.0.113.0/24", p)
		}
		p = p.Masked()
		if p.Addr().Is4In6() {
			return fmt.Errorf("stack: prefix %v is IPv4-mapped: give the IPv4 prefix itself", p)
		}
		if p.Addr().Is6() && !s.addr6.IsValid() {
			return fmt.Errorf("stack: prefix %v is IPv6 but the stack has no IPv6 address: give it one (Config.Addr6)", p)
		}
		ps = append(ps, p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	if f.closed {
		return net.ErrClosed
	}
	if f.icpt != nil {
		return errors.New("stack: the frontend already intercepts: Intercept is called once")
	}
	if s.front != nil {
		return errors.New("stack: the stack already has a frontend: a stack intercepts through one")
	}
	opts := tcpcore.SockOpts{
		NoDelay:   true, // Go's net package turns Nagle off on every connection
		KeepAlive: f.cfg.KeepAlive, KeepIdle: f.cfg.KeepIdle, KeepIntvl: f.cfg.KeepIntvl, KeepCount: f.cfg.KeepCount,
		MaxSeg: f.cfg.MaxSeg, RcvBuf: f.cfg.RcvBuf, SndBuf: f.cfg.SndBuf,
	}
	backlog := f.cfg.Backlog
	if backlog == 0 {
		backlog = s.e.Profile().Somaxconn
	}
	icpt, err := s.e.Intercept(s.now(), ps, backlog, opts)
	if err != nil {
		return fmt.Errorf("stack: intercept: %w", err)
	}
	f.icpt, f.prefixes, f.handle = icpt, ps, handle
	s.front = f
	return nil
}

// held takes the SYNs the engine has held (and the connections SYN
// cookies completed) since the last call, for hand. The link reader calls
// it at the end of each batch of input, which is where the engine holds
// them, still holding s.mu; it hands them out once it has released the
// lock, so the relay's handler starts on the reader's own wakeup, with no
// goroutine woken in between. Those taken count in f.wg until handed
// out, so that Close, which waits for f.wg, returns only once no handler
// can start any more.
func (f *Frontend) held() []*tcpcore.HeldSyn {
	if f.closed || f.icpt == nil {
		return nil
	}
	hs := f.icpt.Take()
	if len(hs) > 0 {
		f.wg.Add(1)
	}
	return hs
}

// hand gives each SYN held to the relay's handler in a goroutine of its
// own. The caller (the reader) does not hold s.mu.
func (f *Frontend) hand(hs []*tcpcore.HeldSyn) {
	defer f.wg.Done()
	for _, h := range hs {
		p := &pending{f: f, h: h}
		if f.s.ownAddr(h.Target().Addr()) {
			// A port of the stack's own with no listener: a closed
			// port's answer, not a relayed connection back to us.
			p.Refuse(relay.RefuseReset)
			continue
		}
		go f.handle(p)
	}
}

// Close implements relay.Frontend: SYNs that arrive from now on meet a
// closed port (RST), held ones are forgotten unanswered (the client's next
// retransmission gets the RST), and connections already handed out stay
// open.
func (f *Frontend) Close() error {
	s := f.s
	s.mu.Lock()
	if f.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	f.closed = true
	if f.icpt != nil {
		// s.front stays: the stack still takes the packets of the
		// connections handed out, and the engine answers new SYNs to
		// the prefixes as a closed port.
		f.icpt.Close(s.now())
	}
	s.unlockFlush()
	f.wg.Wait()
	return nil
}

// FrontendStats are a frontend's counters.
type FrontendStats struct {
	tcpcore.InterceptStats
	PortUnreachables uint64 // UDP datagrams to intercepted addresses answered with ICMP port unreachable
	UnreachablesSent uint64 // held SYNs refused with ICMP destination unreachable
	ICMPRateLimited  uint64 // ICMP errors not sent: over the per-client rate limit
}

// Stats returns the frontend's counters.
func (f *Frontend) Stats() FrontendStats {
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	st := FrontendStats{PortUnreachables: f.portUnreachables, UnreachablesSent: f.unreachablesSent, ICMPRateLimited: f.icmpRateLimited}
	if f.icpt != nil {
		st.InterceptStats = f.icpt.Stats()
	}
	return st
}

// covers reports whether a is inside an intercepted prefix. The caller
// holds s.mu.
func (f *Frontend) covers(a netip.Addr) bool {
	for _, p := range f.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// input takes a packet to an intercepted address (covers), not the
// stack's: TCP goes to the engine, UDP is answered with ICMP port
// unreachable (RFC 1122 §3.2.2.1, RFC 4443 §3.1 code 4). It reports
// whether it took the packet. m is what the link said of it, as for
// input4. The caller (the reader) holds s.mu.
func (f *Frontend) input(now tcpcore.Time, u wire.IPUpper, invoking []byte, m tcpcore.InputMeta, rp *replies) bool {
	if m.SegSize > 0 && u.Proto != wire.ProtoTCP {
		return false // a GSO packet is TCP
	}
	s := f.s
	switch u.Proto {
	case wire.ProtoTCP:
		s.ipStats.tcpIn.Add(1)
		s.e.InputGRO(now, u.Src, u.Dst, u.Data, m)
		return true
	case wire.ProtoUDP:
		if !f.limit.allow(now, u.Src) {
			f.icmpRateLimited++
			return true
		}
		out := rp.buf()
		if out == nil {
			f.icmpRateLimited++
			return true
		}
		var n int
		if u.Src.Is4() {
			n, _ = wire.PutICMPv4DestUnreachable(out, s.addr.As4(), ipTTL, wire.IPv4(invoking), wire.ICMPPortUnreachable)
		} else {
			n, _ = wire.PutICMPv6DestUnreachable(out, s.addr6.As16(), ipv6HopLimit, wire.IPv6(invoking), wire.ICMPv6PortUnreachable)
		}
		if n > 0 {
			f.portUnreachables++
			rp.add(n, relayUnreachable)
		}
		return true
	}
	return false
}

// pending is relay.Pending on a held SYN of the engine's interceptor.
type pending struct {
	f *Frontend
	h *tcpcore.HeldSyn
}

func (p *pending) Client() netip.AddrPort { return p.h.Client() }
func (p *pending) Target() netip.AddrPort { return p.h.Target() }

// Accept implements relay.Pending: the SYN-ACK goes now, and Accept waits
// for the client's ACK. It fails with ECONNRESET if the client resets,
// ETIMEDOUT if the SYN-ACK's retransmissions give up, net.ErrClosed if the
// frontend or the stack closes first.
func (p *pending) Accept() (net.Conn, error) {
	f, s := p.f, p.f.s
	s.mu.Lock()
	if err := s.checkOpen(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if f.icpt == nil {
		s.mu.Unlock()
		return nil, net.ErrClosed
	}
	tc, err := f.icpt.Answer(s.now(), p.h)
	if err != nil {
		s.unlockFlush()
		if err == tcpcore.ErrClosed {
			return nil, net.ErrClosed
		}
		return nil, fmt.Errorf("stack: accept %v -> %v: %w", p.h.Client(), p.h.Target(), err)
	}
	// The relay's Accept has no deadline of its own: the SYN-ACK's
	// retransmissions bound the wait.
	c := s.newConn(tc)
	c.keepAlive = p.f.cfg.KeepAlive // the engine's connection took it from the interceptor's options
	return c.handshake(context.Background(), "accept")
}

// Refuse implements relay.Pending.
func (p *pending) Refuse(how relay.Refusal) {
	f, s := p.f, p.f.s
	s.mu.Lock()
	if f.icpt == nil || s.closed {
		s.mu.Unlock()
		return
	}
	now := s.now()
	var icmp []byte
	switch how {
	case relay.RefuseHostUnreachable, relay.RefuseNetUnreachable:
		// An IPv6 SYN reached the engine only if the stack has an IPv6
		// address (input6 drops every IPv6 packet otherwise), so the
		// ICMPv6 error has its source.
		client := p.h.Client().Addr()
		if !f.icpt.Unreachable(now, p.h) {
			break
		}
		if !f.limit.allow(now, client) {
			f.icmpRateLimited++
			break
		}
		icmp = f.unreachable(p.h, how == relay.RefuseHostUnreachable)
		if icmp != nil {
			f.unreachablesSent++
		}
	case relay.RefuseDrop:
		f.icpt.Drop(now, p.h)
	default:
		f.icpt.Reset(now, p.h)
	}
	s.unlockFlush()
	if icmp != nil {
		s.writeOwn([][]byte{icmp})
	}
}

// unreachable builds the ICMP or ICMPv6 destination unreachable about a
// held SYN, from the stack's own address of the SYN's family: the stack
// is the router that finds no way to the destination. The invoking packet
// it quotes is the SYN's IP header, rebuilt from the SYN's addresses (the
// header's own TTL, identification and flow label are not kept), and the
// SYN's TCP header as it arrived, which is what the client's stack matches
// the error with (addresses, ports, and the sequence number: Linux's
// tcp_v4_err and tcp_v6_err). The caller holds s.mu.
func (f *Frontend) unreachable(h *tcpcore.HeldSyn, host bool) []byte {
	s := f.s
	q := h.Quote()
	client, target := h.Client().Addr(), h.Target().Addr()
	if client.Is4() {
		inv := make([]byte, wire.IPv4HeaderLen+len(q))
		wire.PutIPv4Header(inv, wire.IPv4Fields{Src: client.As4(), Dst: target.As4(), Protocol: wire.ProtoTCP, TTL: ipTTL, DontFrag: true}, len(q))
		copy(inv[wire.IPv4HeaderLen:], q)
		code := uint8(wire.ICMPNetUnreachable)
		if host {
			code = wire.ICMPHostUnreachable
		}
		out := make([]byte, wire.IPv4HeaderLen+wire.ICMPv4HeaderLen+len(inv))
		n, err := wire.PutICMPv4DestUnreachable(out, s.addr.As4(), ipTTL, wire.IPv4(inv), code)
		if err != nil {
			return nil
		}
		return out[:n]
	}
	inv := make([]byte, wire.IPv6HeaderLen+len(q))
	wire.PutIPv6Header(inv, wire.IPv6Fields{Src: client.As16(), Dst: target.As16(), NextHeader: wire.ProtoTCP, HopLimit: ipv6HopLimit}, len(q))
	copy(inv[wire.IPv6HeaderLen:], q)
	code := uint8(wire.ICMPv6NoRoute)
	if host {
		code = wire.ICMPv6AddressUnreachable
	}
	out := make([]byte, wire.IPv6MinMTU)
	n, err := wire.PutICMPv6DestUnreachable(out, s.addr6.As16(), ipv6HopLimit, wire.IPv6(inv), code)
	if err != nil {
		return nil
	}
	return out[:n]
}
