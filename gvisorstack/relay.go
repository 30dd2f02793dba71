package gvisorstack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"tunstack/policy"
	"tunstack/relay"
	twire "tunstack/wire"
)

// DefaultMaxInFlight is FrontendConfig.MaxInFlight's default: how many
// held SYNs (handshakes the relay has not yet accepted or refused) the
// frontend keeps at once, the bound tun2socks-style tools give gVisor's
// forwarder. SYNs beyond it are dropped, as a full SYN queue drops them,
// and counted in gVisor's TCP.ForwardMaxInFlightDrop.
const DefaultMaxInFlight = 2048

// FrontendConfig tunes a Frontend. The zero value is the configuration
// described at Frontend.
type FrontendConfig struct {
	// ReceiveWindow is the receive window gVisor's forwarder offers in
	// its SYN-ACKs, in bytes; 0 is the stack's default receive buffer
	// (Options.ReceiveBufferBytes), from which receive-buffer moderation
	// grows it.
	ReceiveWindow int
	// MaxInFlight bounds the held SYNs; 0 is DefaultMaxInFlight.
	MaxInFlight int
	// KeepAliveIdle, KeepAliveInterval and KeepAliveProbes are the
	// keepalive of every accepted connection; zero values are Linux's
	// defaults (policy.Linux(): 7200 s, 75 s, 9 probes). A negative
	// KeepAliveIdle turns keepalive off.
	KeepAliveIdle     time.Duration
	KeepAliveInterval time.Duration
	KeepAliveProbes   int
}

// Frontend is relay.Frontend on gVisor's netstack, configured as
// tun2socks-style tools configure it, so that tunstack's relay and a
// gVisor one are compared on the same link:
//
//   - the NIC is promiscuous (stack.SetPromiscuousMode), so gVisor takes
//     packets addressed to any destination, not only the stack's own
//     addresses, and spoofing (stack.SetSpoofing), so the endpoint of a
//     relayed connection sends from the destination the client dialled;
//   - the stack's route table (New) already sends both families' default
//     routes down the link, which covers every prefix given to Intercept,
//     so replies to any client leave by the TUN;
//   - a SYN to an address and port inside the prefixes that no endpoint
//     of the stack owns goes to gVisor's TCP forwarder (tcp.NewForwarder
//     as the transport protocol's default handler) with a receive window
//     and a bound on the SYNs held at once (FrontendConfig);
//   - the TCP options are the stack's (Options, from the profile): SACK
//     on, receive-buffer moderation on, the profile's congestion control
//     (CUBIC for linux), TCP_NODELAY by Go's convention; RACK stays off
//     for the reason OptionsFromProfile gives, where tun2socks turns it on;
//   - every accepted connection gets TCP keepalive, with Linux's defaults
//     unless FrontendConfig says otherwise, so that a NAT between the
//     client and the TUN keeps its mapping and a vanished client is
//     noticed.
//
// gVisor's forwarder holds the SYN unanswered until the relay decides:
// Pending.Accept is ForwarderRequest.CreateEndpoint, which sends the
// SYN-ACK and returns once the client's ACK completes the handshake;
// Refuse(RefuseReset) is Complete with a reset. gVisor has no call that
// answers a held SYN with an ICMP error, so for RefuseHostUnreachable and
// RefuseNetUnreachable the frontend builds the ICMP or ICMPv6 Destination
// Unreachable itself, quoting the client's SYN (which the frontend copies
// as gVisor hands it to the forwarder), and gVisor writes it to the link
// (stack.WriteRawPacket) from the stack's own address of that family; when
// that SYN's copy is not at hand (its header did not fit the quote, or an
// IPv6 SYN carried extension headers), the refusal is a reset instead.
// RefuseDrop completes the request without an answer; the client's next
// retransmitted SYN is then a new Pending.
type Frontend struct {
	st  *Stack
	cfg FrontendConfig

	mu       sync.Mutex
	started  bool
	prefixes []netip.Prefix
	fwd      *tcp.Forwarder
	handle   func(relay.Pending)
	// syns holds the client's SYN, as an ICMP error quotes it, per
	// handshake between gVisor handing the SYN to the forwarder and the
	// Pending that takes it; bounded by MaxInFlight.
	syns map[stack.TransportEndpointID][]byte

	closed atomic.Bool
}

var _ relay.Frontend = (*Frontend)(nil)

// Frontend returns a relay frontend on st. Nothing changes on the stack
// until Intercept; the stack's own listeners keep their connections.
func (st *Stack) Frontend(cfg FrontendConfig) (*Frontend, error) {
	if cfg.ReceiveWindow < 0 || cfg.MaxInFlight < 0 || cfg.KeepAliveInterval < 0 || cfg.KeepAliveProbes < 0 {
		return nil, fmt.Errorf("gvisorstack: frontend config %+v has a negative field: give 0 for the default", cfg)
	}
	if cfg.ReceiveWindow == 0 {
		cfg.ReceiveWindow = st.opts.ReceiveBufferBytes
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	linux := policy.Linux()
	if cfg.KeepAliveIdle == 0 {
		cfg.KeepAliveIdle = linux.KeepAliveIdle
	}
	if cfg.KeepAliveInterval == 0 {
		cfg.KeepAliveInterval = linux.KeepAliveInterval
	}
	if cfg.KeepAliveProbes == 0 {
		cfg.KeepAliveProbes = linux.KeepAliveProbes
	}
	return &Frontend{st: st, cfg: cfg, syns: make(map[stack.TransportEndpointID][]byte)}, nil
}

// RelayFrontend is Frontend with FrontendConfig's defaults, for a caller
// that runs the relay on whichever stack it built without knowing its
// configuration types.
func (st *Stack) RelayFrontend() (relay.Frontend, error) {
	return st.Frontend(FrontendConfig{})
}

// Intercept implements relay.Frontend. It may be called once; the prefixes
// of IPv6 need the stack's IPv6 address (Config.Addr6).
func (f *Frontend) Intercept(prefixes []netip.Prefix, handle func(relay.Pending)) error {
	if len(prefixes) == 0 {
		return errors.New("gvisorstack: no prefix to intercept: give at least one, such as 0.0.0.0/0")
	}
	if handle == nil {
		return errors.New("gvisorstack: Intercept needs a handler for the held SYNs")
	}
	ps := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() {
			return fmt.Errorf("gvisorstack: prefix %v is not valid: give an address and a length, such as 203.0.113.0/24", p)
		}
		p = p.Masked()
		if p.Addr().Is4In6() {
			return fmt.Errorf("gvisorstack: prefix %v is IPv4-mapped: give the IPv4 prefix itself", p)
		}
		if p.Addr().Is6() && f.st.addr6.Len() == 0 {
			return fmt.Errorf("gvisorstack: prefix %v is IPv6 but the stack has no IPv6 address: give it one (Config.Addr6)", p)
		}
		ps = append(ps, p)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started {
		return errors.New("gvisorstack: the frontend already intercepts: Intercept is called once")
	}
	if f.closed.Load() {
		return net.ErrClosed
	}
	if err := f.st.checkOpen(); err != nil {
		return err
	}
	s := f.st.s
	if err := s.SetPromiscuousMode(nicID, true); err != nil {
		return fmt.Errorf("gvisorstack: promiscuous mode: %s", err)
	}
	if err := s.SetSpoofing(nicID, true); err != nil {
		return fmt.Errorf("gvisorstack: spoofing: %s", err)
	}
	f.prefixes = ps
	f.handle = handle
	f.fwd = tcp.NewForwarder(s, f.cfg.ReceiveWindow, f.cfg.MaxInFlight, f.request)
	// Published after the fields above, which packet then reads without
	// a lock.
	if !f.st.relay.CompareAndSwap(nil, f) {
		return errors.New("gvisorstack: another frontend already intercepts on this stack: a stack has one")
	}
	f.started = true
	return nil
}

// tcpDefault is gVisor's TCP default handler, called for a segment no
// endpoint of the stack owns: it goes to the intercepting frontend, if
// any; false lets gVisor answer as for a closed port.
func (st *Stack) tcpDefault(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
	if f := st.relay.Load(); f != nil {
		return f.packet(id, pkt)
	}
	return false
}

// Close implements relay.Frontend: SYNs that arrive from now on are
// answered as by a closed port (RST); held ones still get their answer
// from the relay, and accepted connections stay open.
func (f *Frontend) Close() error {
	if f.closed.Swap(true) {
		return net.ErrClosed
	}
	return nil
}

// covers reports whether a is inside one of the intercepted prefixes.
func (f *Frontend) covers(a netip.Addr) bool {
	for _, p := range f.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// packet takes a segment no endpoint of the stack owns (tcpDefault).
func (f *Frontend) packet(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
	if f.closed.Load() {
		return false
	}
	target, ok := netip.AddrFromSlice(id.LocalAddress.AsSlice())
	if !ok || !f.covers(target) {
		// Not ours to relay: gVisor answers as for a closed port.
		return false
	}
	th := header.TCP(pkt.TransportHeader().Slice())
	if len(th) >= header.TCPMinimumSize && th.Flags() == header.TCPFlagSyn {
		f.keepSYN(id, pkt)
	}
	return f.fwd.HandlePacket(id, pkt)
}

// keepSYN copies the SYN pkt for an ICMP error that may quote it: the IPv4
// header and the TCP header (RFC 792 asks for the first 8 bytes of the
// datagram; Linux's tcp_v4_err reads the sequence number in them), or the
// whole IPv6 packet when it fits IPv6's minimum MTU with the error's
// headers (RFC 4443 §2.4(c)). A retransmitted SYN replaces the copy.
func (f *Frontend) keepSYN(id stack.TransportEndpointID, pkt *stack.PacketBuffer) {
	nh := pkt.NetworkHeader().Slice()
	th := pkt.TransportHeader().Slice()
	var q []byte
	switch pkt.NetworkProtocolNumber {
	case ipv4.ProtocolNumber:
		// Linux behaviour: icmp_send(): the quote is as much of the
		// datagram as keeps the error within 576 bytes.
		if len(nh)+len(th) > 576-twire.IPv4HeaderLen-twire.ICMPv4HeaderLen {
			return
		}
		q = make([]byte, 0, len(nh)+len(th))
		q = append(append(q, nh...), th...)
	case ipv6.ProtocolNumber:
		data := pkt.Data().AsRange().ToSlice()
		// Only a SYN without extension headers, whose fixed header's
		// payload length is the TCP segment, is quoted whole.
		if len(nh) != twire.IPv6HeaderLen || header.IPv6(nh).NextHeader() != uint8(header.TCPProtocolNumber) ||
			len(nh)+len(th)+len(data) > 1280-twire.IPv6HeaderLen-twire.ICMPv6HeaderLen {
			return
		}
		q = make([]byte, 0, len(nh)+len(th)+len(data))
		q = append(append(append(q, nh...), th...), data...)
	default:
		return
	}
	f.mu.Lock()
	if _, ok := f.syns[id]; ok || len(f.syns) < f.cfg.MaxInFlight {
		f.syns[id] = q
	}
	f.mu.Unlock()
}

// request is the forwarder's handler, one goroutine per held SYN.
func (f *Frontend) request(r *tcp.ForwarderRequest) {
	id := r.ID()
	client, _ := netip.AddrFromSlice(id.RemoteAddress.AsSlice())
	target, _ := netip.AddrFromSlice(id.LocalAddress.AsSlice())
	p := &pending{
		f:      f,
		r:      r,
		id:     id,
		client: netip.AddrPortFrom(client, id.RemotePort),
		target: netip.AddrPortFrom(target, id.LocalPort),
	}
	f.mu.Lock()
	p.syn = f.syns[id]
	f.mu.Unlock()
	f.handle(p)
}

// pending is a held SYN: relay.Pending on gVisor's ForwarderRequest.
type pending struct {
	f              *Frontend
	r              *tcp.ForwarderRequest
	id             stack.TransportEndpointID
	client, target netip.AddrPort
	syn            []byte // the client's SYN as keepSYN copied it; nil if none
	done           atomic.Bool
}

func (p *pending) Client() netip.AddrPort { return p.client }
func (p *pending) Target() netip.AddrPort { return p.target }

// finish releases the request; sendReset answers the SYN with RST.
func (p *pending) finish(sendReset bool) {
	p.r.Complete(sendReset)
	// A SYN retransmitted while the request was held left its copy here.
	p.f.mu.Lock()
	delete(p.f.syns, p.id)
	p.f.mu.Unlock()
}

// Accept implements relay.Pending.
func (p *pending) Accept() (net.Conn, error) {
	if p.done.Swap(true) {
		return nil, p.opError(errors.New("the SYN was already accepted or refused"))
	}
	var wq waiter.Queue
	ep, terr := p.r.CreateEndpoint(&wq)
	// The handshake is over either way: the client's ACK came, or it
	// gave up (RST) or never answered the SYN-ACK's retransmissions, and
	// there is nobody left to reset.
	p.finish(false)
	if terr != nil {
		return nil, p.opError(errnoOf(terr))
	}
	if p.f.cfg.KeepAliveIdle > 0 {
		if terr := setKeepAlive(ep, p.f.cfg.KeepAliveIdle, p.f.cfg.KeepAliveInterval, p.f.cfg.KeepAliveProbes); terr != nil {
			ep.Abort()
			return nil, p.opError(errnoOf(terr))
		}
	}
	c, err := p.f.st.track(ep, &wq)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Refuse implements relay.Pending.
func (p *pending) Refuse(how relay.Refusal) {
	if p.done.Swap(true) {
		return
	}
	switch how {
	case relay.RefuseDrop:
		p.finish(false)
	case relay.RefuseHostUnreachable, relay.RefuseNetUnreachable:
		if p.sendUnreachable(how == relay.RefuseHostUnreachable) {
			p.finish(false)
			return
		}
		p.finish(true)
	default:
		p.finish(true)
	}
}

// sendUnreachable writes an ICMP (ICMPv6) Destination Unreachable about
// the held SYN to the client: code host unreachable (address unreachable)
// or network unreachable (no route to destination). It reports false if
// it could not.
func (p *pending) sendUnreachable(host bool) bool {
	if p.syn == nil {
		return false
	}
	var (
		buf   []byte
		n     int
		err   error
		proto tcpip.NetworkProtocolNumber
	)
	if p.client.Addr().Is4() {
		// RFC 792: code 0 is net unreachable, 1 host unreachable.
		code := uint8(twire.ICMPNetUnreachable)
		if host {
			code = twire.ICMPHostUnreachable
		}
		buf = make([]byte, 576)
		n, err = twire.PutICMPv4DestUnreachable(buf, p.f.st.addr.As4(), 64, twire.IPv4(p.syn), code)
		proto = ipv4.ProtocolNumber
	} else {
		// RFC 4443 §3.1: code 0 is no route to destination, 3 address
		// unreachable.
		code := uint8(twire.ICMPv6NoRoute)
		if host {
			code = twire.ICMPv6AddressUnreachable
		}
		buf = make([]byte, 1280)
		n, err = twire.PutICMPv6DestUnreachable(buf, p.f.st.addr6.As16(), 64, twire.IPv6(p.syn), code)
		proto = ipv6.ProtocolNumber
	}
	if err != nil {
		return false
	}
	return p.f.st.s.WriteRawPacket(nicID, proto, buffer.MakeWithData(buf[:n])) == nil
}

func (p *pending) opError(err error) error {
	return &net.OpError{
		Op:     "accept",
		Net:    "tcp",
		Source: net.TCPAddrFromAddrPort(p.target),
		Addr:   net.TCPAddrFromAddrPort(p.client),
		Err:    err,
	}
}
