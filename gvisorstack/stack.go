// Package gvisorstack runs gVisor's netstack (IPv4, IPv6, ICMP, ICMPv6,
// TCP) on a netif.Link and offers it through the same stack.Network interface as our
// own stack, so that the demo site, labs, benchmarks and the conformance
// runner can use gVisor as the reference on the same link.
package gvisorstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	tstack "tunstack/stack"

	"tunstack/netif"
	"tunstack/policy"
)

const nicID tcpip.NICID = 1

// Config says where the stack sits on its link and how its TCP behaves.
type Config struct {
	// Addr is the stack's own IPv4 address, e.g. 198.18.0.2.
	Addr netip.Addr
	// Prefix is the on-link subnet (e.g. 198.18.0.0/24). The default route
	// also points at the link, since the link is the stack's only way out.
	// Zero means Addr/32.
	Prefix netip.Prefix
	// Addr6 is the stack's own IPv6 address, e.g. fd00:7475:6e73::2; the
	// zero value means no IPv6: the stack then drops IPv6 packets. It
	// must be a unicast IPv6 address: not IPv4-mapped, not unspecified,
	// not multicast, without a zone.
	Addr6 netip.Addr
	// Prefix6 is the on-link IPv6 subnet (e.g. fd00:7475:6e73::/64); the
	// default route for IPv6 points at the link too. Zero means Addr6/128.
	Prefix6 netip.Prefix
	// Profile selects the Options when Options is nil; nil means
	// policy.Linux().
	Profile *policy.Profile
	// Options, when non-nil, is used as given instead of
	// OptionsFromProfile(Profile).
	Options *Options
	// Clock, when non-nil, replaces the wall clock for every gVisor timer
	// (retransmission, TIME-WAIT, keepalive...), for example a
	// *faketime.ManualClock in virtual-time tests. Deadlines on net.Conn
	// (SetDeadline) still use the wall clock: they live in gonet.
	Clock tcpip.Clock
}

// Stack is gVisor's netstack on a netif.Link. It implements stack.Network.
type Stack struct {
	s    *stack.Stack
	ep   *linkEndpoint
	opts Options
	addr tcpip.Address
	// addr6 is the IPv6 address, the zero Address without one.
	addr6 tcpip.Address

	// relay is the intercepting relay frontend, nil until
	// Frontend.Intercept.
	relay atomic.Pointer[Frontend]

	mu        sync.Mutex
	closed    bool
	listeners map[*listener]struct{}
	conns     map[*Conn]struct{}
	closeErr  error
	closeOnce sync.Once
}

var _ tstack.Network = (*Stack)(nil)

// New builds a gVisor stack on link and starts moving packets. The Stack
// owns link from then on: Close closes it.
func New(link netif.Link, cfg Config) (*Stack, error) {
	if !cfg.Addr.Is4() {
		return nil, fmt.Errorf("gvisorstack: address %v is not IPv4", cfg.Addr)
	}
	prefix := cfg.Prefix
	if !prefix.IsValid() {
		prefix = netip.PrefixFrom(cfg.Addr, 32)
	}
	if !prefix.Addr().Is4() || !prefix.Contains(cfg.Addr) {
		return nil, fmt.Errorf("gvisorstack: prefix %v does not contain %v", prefix, cfg.Addr)
	}
	if link.MTU() < 68 {
		return nil, fmt.Errorf("gvisorstack: link MTU %d is below IPv4's minimum of 68", link.MTU())
	}
	prefix6, err := checkAddr6(cfg.Addr6, cfg.Prefix6, link.MTU())
	if err != nil {
		return nil, err
	}
	has6 := cfg.Addr6.IsValid()
	var opts Options
	switch {
	case cfg.Options != nil:
		opts = *cfg.Options
	case cfg.Profile != nil:
		opts = OptionsFromProfile(cfg.Profile)
	default:
		opts = OptionsFromProfile(policy.Linux())
	}

	netProtos := []stack.NetworkProtocolFactory{ipv4.NewProtocol}
	// UDP is registered only so that gVisor answers a datagram to a port
	// nobody listens on as Linux does, with ICMP port unreachable (RFC
	// 1122 §3.2.2.1), rather than protocol unreachable; the package opens
	// no UDP endpoint. A resolver pointed through the relay then fails at
	// once.
	transProtos := []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4}
	if has6 {
		// The zero ipv6.Options leave out what a TUN's point-to-point
		// link has no use for, and what would send packets the kernel
		// side does not expect: no duplicate address detection
		// (DupAddrDetectTransmits 0, so the address is usable at once),
		// no router solicitations, no link-local address of its own, no
		// MLD reports.
		netProtos = append(netProtos, ipv6.NewProtocolWithOptions(ipv6.Options{}))
		transProtos = append(transProtos, icmp.NewProtocol6)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   netProtos,
		TransportProtocols: transProtos,
		Clock:              cfg.Clock,
	})
	fail := func(err error) (*Stack, error) {
		s.Destroy()
		return nil, err
	}
	if err := opts.apply(s); err != nil {
		return fail(err)
	}
	ep := newLinkEndpoint(link, opts.ZeroWindowACKRepair, has6)
	if err := s.CreateNIC(nicID, ep); err != nil {
		return fail(fmt.Errorf("gvisorstack: create NIC: %s", err))
	}
	addr := tcpip.AddrFrom4(cfg.Addr.As4())
	pa := tcpip.ProtocolAddress{
		Protocol: ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{
			Address:   addr,
			PrefixLen: prefix.Bits(),
		},
	}
	if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
		return fail(fmt.Errorf("gvisorstack: add address %v: %s", cfg.Addr, err))
	}
	// The on-link route comes with the address; the default route sends
	// everything else down the same link, as a TUN's peer is the gateway.
	routes := []tcpip.Route{
		{Destination: pa.AddressWithPrefix.Subnet(), NIC: nicID},
		{Destination: anySubnet(4), NIC: nicID},
	}
	var addr6 tcpip.Address
	if has6 {
		addr6 = tcpip.AddrFrom16(cfg.Addr6.As16())
		pa6 := tcpip.ProtocolAddress{
			Protocol:          ipv6.ProtocolNumber,
			AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr6, PrefixLen: prefix6.Bits()},
		}
		if err := s.AddProtocolAddress(nicID, pa6, stack.AddressProperties{}); err != nil {
			return fail(fmt.Errorf("gvisorstack: add address %v: %s", cfg.Addr6, err))
		}
		routes = append(routes,
			tcpip.Route{Destination: pa6.AddressWithPrefix.Subnet(), NIC: nicID},
			tcpip.Route{Destination: anySubnet(16), NIC: nicID})
	}
	s.SetRouteTable(routes)
	st := &Stack{
		s:         s,
		ep:        ep,
		opts:      opts,
		addr:      addr,
		addr6:     addr6,
		listeners: make(map[*listener]struct{}),
		conns:     make(map[*Conn]struct{}),
	}
	// gVisor reads the TCP default handler without a lock while packets
	// arrive, so it is installed now, before the link starts, and
	// Frontend.Intercept only publishes the frontend it calls.
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, st.tcpDefault)
	ep.start()
	return st, nil
}

// anySubnet is 0.0.0.0/0 for size 4, ::/0 for size 16.
func anySubnet(size int) tcpip.Subnet {
	zero := make([]byte, size)
	var a tcpip.Address
	if size == 16 {
		a = tcpip.AddrFrom16Slice(zero)
	} else {
		a = tcpip.AddrFrom4Slice(zero)
	}
	sn, _ := tcpip.NewSubnet(a, tcpip.MaskFromBytes(zero))
	return sn
}

// checkAddr6 checks Config.Addr6 and Prefix6 and returns the prefix to use
// (Addr6/128 by default). Without Addr6 there is nothing to check.
func checkAddr6(a netip.Addr, prefix netip.Prefix, mtu int) (netip.Prefix, error) {
	if !a.IsValid() {
		if prefix.IsValid() {
			return prefix, fmt.Errorf("gvisorstack: Prefix6 %v without Addr6: give the stack's IPv6 address too", prefix)
		}
		return prefix, nil
	}
	if !a.Is6() || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" {
		return prefix, fmt.Errorf("gvisorstack: Addr6 %v is not a unicast IPv6 address: give one such as fd00:7475:6e73::2, or none for no IPv6", a)
	}
	if !prefix.IsValid() {
		prefix = netip.PrefixFrom(a, 128)
	}
	if !prefix.Addr().Is6() || prefix.Addr().Is4In6() || !prefix.Contains(a) {
		return prefix, fmt.Errorf("gvisorstack: Prefix6 %v does not contain %v", prefix, a)
	}
	if mtu < 1280 {
		// RFC 8200 §5: every link that carries IPv6 has an MTU of 1280
		// or more.
		return prefix, fmt.Errorf("gvisorstack: link MTU %d is below IPv6's minimum of 1280: use a larger MTU or no IPv6 address", mtu)
	}
	return prefix, nil
}

// Options returns the options the stack was built with.
func (st *Stack) Options() Options { return st.opts }

// GVisor returns the underlying gVisor stack, for tools (the conformance
// runner, benchmarks) that need what this package does not wrap.
func (st *Stack) GVisor() *stack.Stack { return st.s }

// Listen implements stack.Network on network "tcp" (sockAddr says how
// address reads). backlog bounds the accept queue: it holds backlog+1
// connections with Options.BacklogPlusOne (Linux), backlog without. A
// backlog below 1 or above Options.Somaxconn is Somaxconn.
func (st *Stack) Listen(address string, backlog int) (net.Listener, error) {
	return st.listen("tcp", address, backlog, tstack.ListenConfig{})
}

// ListenWith is Listen with SO_REUSEADDR, SO_REUSEPORT and IPV6_V6ONLY as
// lc sets them, set on gVisor's endpoint before it binds, and lc's
// keepalive set on each connection as Accept returns it (gVisor's accepted
// endpoints do not inherit it, so one waiting in the accept queue has
// none yet, as with Go's net.Listen); lc.Backlog 0 is
// Somaxconn. network is "tcp", "tcp4" or "tcp6"; ctx is checked before
// the listener opens.
func (st *Stack) ListenWith(ctx context.Context, lc tstack.ListenConfig, network, address string) (net.Listener, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return st.listen(network, address, lc.Backlog, lc)
}

func (st *Stack) listen(network, address string, backlog int, lc tstack.ListenConfig) (net.Listener, error) {
	if !tcpNetwork(network) {
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	sa, err := st.sockAddr(network, address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	fa := sa.fa
	if backlog < 1 || backlog > st.opts.Somaxconn {
		backlog = st.opts.Somaxconn
	}
	if err := st.checkOpen(); err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	var wq waiter.Queue
	ep, terr := st.s.NewEndpoint(tcp.ProtocolNumber, sa.proto, &wq)
	if terr != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: errnoOf(terr)}
	}
	if ka := lc.KeepAlive; ka.Idle < 0 || ka.Interval < 0 || ka.Count < 0 {
		ep.Close()
		return nil, &net.OpError{Op: "listen", Net: network, Addr: sa.tcpAddr(), Err: fmt.Errorf("keepalive %+v has a negative field: give 0 for gVisor's default", ka)}
	}
	ep.SocketOptions().SetReuseAddress(lc.ReuseAddr)
	ep.SocketOptions().SetReusePort(lc.ReusePort)
	// An IPv6 endpoint bound to [::] without V6Only takes IPv4 too
	// (gVisor binds it to 0.0.0.0 as well), as Linux's dual-stack socket
	// with bindv6only 0; its IPv4 connections are IPv4-mapped.
	ep.SocketOptions().SetV6Only(sa.proto == ipv6.ProtocolNumber && lc.V6Only)
	if terr := ep.Bind(fa); terr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "listen", Net: network, Addr: sa.tcpAddr(), Err: errnoOf(terr)}
	}
	queue := backlog
	if st.opts.BacklogPlusOne {
		queue++
	}
	if terr := ep.Listen(queue); terr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "listen", Net: network, Addr: sa.tcpAddr(), Err: errnoOf(terr)}
	}
	l := &listener{st: st, ep: ep, wq: &wq, done: make(chan struct{}), proto: sa.proto, keepAlive: lc.KeepAlive}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		ep.Close()
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.ErrClosed}
	}
	st.listeners[l] = struct{}{}
	st.mu.Unlock()
	return l, nil
}

// Dial implements stack.Network. network is "tcp", "tcp4" or "tcp6";
// address is "ip:port" (no name resolution), read as sockAddr says.
func (st *Stack) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return st.DialWith(ctx, tstack.Dialer{}, network, address)
}

// DialWith is Dial from d.LocalAddr (bound first when its port is not 0;
// the unspecified address is any of the stack's) with SO_REUSEADDR and
// SO_REUSEPORT as d sets them.
func (st *Stack) DialWith(ctx context.Context, d tstack.Dialer, network, address string) (net.Conn, error) {
	if !tcpNetwork(network) {
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	sa, err := st.sockAddr(network, address)
	if err == nil && (sa.fa.Addr.Len() == 0 || sa.fa.Port == 0) {
		err = fmt.Errorf("no host or port 0 in %q: give the address and port to dial", address)
	}
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	fa := sa.fa
	if err := st.checkOpen(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	raddr := sa.tcpAddr()
	var wq waiter.Queue
	ep, terr := st.s.NewEndpoint(tcp.ProtocolNumber, sa.proto, &wq)
	if terr != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: errnoOf(terr)}
	}
	ep.SocketOptions().SetReuseAddress(d.ReuseAddr)
	ep.SocketOptions().SetReusePort(d.ReusePort)
	if d.LocalAddr.Port() != 0 {
		la := tcpip.FullAddress{Port: d.LocalAddr.Port()}
		if a := d.LocalAddr.Addr(); a.IsValid() && !a.IsUnspecified() {
			la.Addr = addrOf(a, sa.proto)
		}
		if terr := ep.Bind(la); terr != nil {
			ep.Close()
			return nil, &net.OpError{Op: "dial", Net: network, Source: tcpAddr(la, sa.proto), Addr: raddr, Err: errnoOf(terr)}
		}
	}
	entry, notify := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)

	terr = ep.Connect(fa)
	if _, ok := terr.(*tcpip.ErrConnectStarted); ok {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: ctx.Err()}
		case <-notify:
		}
		terr = ep.LastError()
	}
	if terr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: errnoOf(terr)}
	}
	return st.track(ep, &wq)
}

// Close implements stack.Network: listeners are closed, connections are
// aborted (RST), gVisor's goroutines stop and the link is closed. Close
// returns when every goroutine the stack started has ended.
func (st *Stack) Close() error {
	st.closeOnce.Do(func() {
		st.mu.Lock()
		st.closed = true
		ls := st.listeners
		cs := st.conns
		st.listeners, st.conns = nil, nil
		st.mu.Unlock()
		for l := range ls {
			l.shutdown()
		}
		for c := range cs {
			c.abort()
		}
		// Stop the link first so that no packet arrives while gVisor is
		// tearing down; then Destroy aborts what is left and waits for
		// gVisor's processor goroutines.
		st.closeErr = st.ep.shutdown()
		st.s.Destroy()
		if errors.Is(st.closeErr, net.ErrClosed) {
			st.closeErr = nil
		}
	})
	return st.closeErr
}

func (st *Stack) checkOpen() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return net.ErrClosed
	}
	return nil
}

func (st *Stack) track(ep tcpip.Endpoint, wq *waiter.Queue) (*Conn, error) {
	c := &Conn{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep, st: st}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		ep.Abort()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: net.ErrClosed}
	}
	st.conns[c] = struct{}{}
	return c, nil
}

func (st *Stack) untrack(c *Conn) {
	st.mu.Lock()
	if st.conns != nil {
		delete(st.conns, c)
	}
	st.mu.Unlock()
}

func (st *Stack) untrackListener(l *listener) {
	st.mu.Lock()
	if st.listeners != nil {
		delete(st.listeners, l)
	}
	st.mu.Unlock()
}

// tcpNetwork reports whether network is one the stack serves.
func tcpNetwork(network string) bool {
	return network == "tcp" || network == "tcp4" || network == "tcp6"
}

// endpointAddr is where an endpoint binds or connects: its address (empty
// for the wildcard), and the network protocol the endpoint is created
// with.
type endpointAddr struct {
	fa    tcpip.FullAddress
	proto tcpip.NetworkProtocolNumber
}

func (a endpointAddr) tcpAddr() *net.TCPAddr { return tcpAddr(a.fa, a.proto) }

// sockAddr parses "ip:port" or ":port" for network "tcp", "tcp4" or
// "tcp6" as the net package reads them on Linux (and as our stack does):
// "tcp4" takes only IPv4 (an IPv4-mapped address is its IPv4 address) on
// an IPv4 endpoint; "tcp6" takes only IPv6 on an IPv6 endpoint, where an
// IPv4-mapped address reaches IPv4 through it; "tcp" takes either, the
// endpoint of the address's family. ":port" is the wildcard: 0.0.0.0 for
// "tcp4", [::] for "tcp6", and for "tcp" [::] (dual stack, as Go's
// Listen(":80") on Linux) when the stack has an IPv6 address, else
// 0.0.0.0. An IPv6 address needs Config.Addr6.
func (st *Stack) sockAddr(network, address string) (endpointAddr, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return endpointAddr{}, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return endpointAddr{}, fmt.Errorf("bad port %q", portStr)
	}
	has6 := st.addr6.Len() > 0
	ea := endpointAddr{fa: tcpip.FullAddress{Port: uint16(port)}, proto: ipv4.ProtocolNumber}
	if host == "" {
		if network == "tcp6" || network == "tcp" && has6 {
			ea.proto = ipv6.ProtocolNumber
		}
	} else {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return endpointAddr{}, fmt.Errorf("host %q is not an IP address (gvisorstack resolves no names)", host)
		}
		if ip.Zone() != "" {
			return endpointAddr{}, fmt.Errorf("%v has a zone: the stack has one link, give the address without %%%s", ip, ip.Zone())
		}
		switch network {
		case "tcp4":
			if ip = ip.Unmap(); !ip.Is4() {
				return endpointAddr{}, fmt.Errorf("%v is not IPv4: use network tcp6 or tcp", ip)
			}
		case "tcp6":
			if !ip.Is6() {
				return endpointAddr{}, fmt.Errorf("%v is not IPv6: use network tcp4 or tcp, or its mapped form [::ffff:%v]", ip, ip)
			}
		default:
			ip = ip.Unmap()
		}
		if ip.Is6() {
			ea.proto = ipv6.ProtocolNumber
		}
		if !ip.IsUnspecified() || ip.Is4In6() {
			ea.fa.Addr = addrOf(ip, ea.proto)
		}
	}
	if ea.proto == ipv6.ProtocolNumber && !has6 {
		return endpointAddr{}, fmt.Errorf("the stack has no IPv6 address: give it one (Config.Addr6) or use IPv4")
	}
	return ea, nil
}

// addrOf is a as gVisor's address on an endpoint of proto: 16 bytes on an
// IPv6 endpoint (an IPv4 address there in its mapped form), 4 on an IPv4
// one.
func addrOf(a netip.Addr, proto tcpip.NetworkProtocolNumber) tcpip.Address {
	if proto == ipv6.ProtocolNumber {
		return tcpip.AddrFrom16(a.As16())
	}
	return tcpip.AddrFrom4(a.Unmap().As4())
}

// tcpAddr is fa as a net.TCPAddr; an empty address is the wildcard of
// proto's family.
func tcpAddr(fa tcpip.FullAddress, proto tcpip.NetworkProtocolNumber) *net.TCPAddr {
	a := &net.TCPAddr{Port: int(fa.Port)}
	switch {
	case fa.Addr.Len() > 0:
		a.IP = net.IP(fa.Addr.AsSlice())
	case proto == ipv6.ProtocolNumber:
		a.IP = net.IPv6unspecified
	default:
		a.IP = net.IPv4zero
	}
	return a
}

// Stats are a few of gVisor's counters, for benchmarks and reports.
type Stats struct {
	SegmentsSent           uint64 // TCP segments sent, retransmissions included
	SegmentsReceived       uint64 // valid TCP segments received
	Retransmits            uint64 // TCP segments retransmitted
	FastRetransmits        uint64 // retransmissions by fast retransmit / recovery
	Timeouts               uint64 // RTO expirations
	TLPRecoveries          uint64 // tail-loss probes (RACK-TLP)
	SegmentsAckedWithDSACK uint64
	ResetsSent             uint64
	ResetsReceived         uint64
	ActiveOpens            uint64
	PassiveOpens           uint64
	FailedConnects         uint64
	ListenOverflowSynDrop  uint64 // SYNs dropped because the accept queue was full
	PacketsIn              uint64 // IP packets handed from the link to gVisor
	PacketsOut             uint64 // packets handed from gVisor to the link
	TxQueueDrops           uint64 // outbound packets dropped because the transmit queue was full
	// ZeroWindowACKRepairs counts the pure ACK copies the zero-window ACK
	// repair handed to gVisor (Options.ZeroWindowACKRepair); gVisor counts
	// them in SegmentsReceived, PacketsIn does not.
	ZeroWindowACKRepairs uint64
}

// Stats reads the counters.
func (st *Stack) Stats() Stats {
	t := st.s.Stats().TCP
	return Stats{
		SegmentsSent:           t.SegmentsSent.Value(),
		SegmentsReceived:       t.ValidSegmentsReceived.Value(),
		Retransmits:            t.Retransmits.Value(),
		FastRetransmits:        t.FastRetransmit.Value(),
		Timeouts:               t.Timeouts.Value(),
		TLPRecoveries:          t.TLPRecovery.Value(),
		SegmentsAckedWithDSACK: t.SegmentsAckedWithDSACK.Value(),
		ResetsSent:             t.ResetsSent.Value(),
		ResetsReceived:         t.ResetsReceived.Value(),
		ActiveOpens:            t.ActiveConnectionOpenings.Value(),
		PassiveOpens:           t.PassiveConnectionOpenings.Value(),
		FailedConnects:         t.FailedConnectionAttempts.Value(),
		ListenOverflowSynDrop:  t.ListenOverflowSynDrop.Value(),
		PacketsIn:              st.ep.rxPackets.Load(),
		PacketsOut:             st.ep.txPackets.Load(),
		TxQueueDrops:           st.ep.txDrops.Load(),
		ZeroWindowACKRepairs:   st.ep.zeroWindowRepairs(),
	}
}
