// Package gvisorstack runs gVisor's netstack (IPv4, ICMP, TCP) on a
// netif.Link and offers it through the same stack.Network interface as our
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

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
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
	var opts Options
	switch {
	case cfg.Options != nil:
		opts = *cfg.Options
	case cfg.Profile != nil:
		opts = OptionsFromProfile(cfg.Profile)
	default:
		opts = OptionsFromProfile(policy.Linux())
	}

	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, icmp.NewProtocol4},
		Clock:              cfg.Clock,
	})
	fail := func(err error) (*Stack, error) {
		s.Destroy()
		return nil, err
	}
	if err := opts.apply(s); err != nil {
		return fail(err)
	}
	ep := newLinkEndpoint(link, opts.ZeroWindowACKRepair)
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
	s.SetRouteTable([]tcpip.Route{
		{Destination: pa.AddressWithPrefix.Subnet(), NIC: nicID},
		{Destination: anySubnet(), NIC: nicID},
	})
	st := &Stack{
		s:         s,
		ep:        ep,
		opts:      opts,
		addr:      addr,
		listeners: make(map[*listener]struct{}),
		conns:     make(map[*Conn]struct{}),
	}
	ep.start()
	return st, nil
}

// header0 is 0.0.0.0/0.
func anySubnet() tcpip.Subnet {
	sn, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{}), tcpip.MaskFromBytes([]byte{0, 0, 0, 0}))
	return sn
}

// Options returns the options the stack was built with.
func (st *Stack) Options() Options { return st.opts }

// GVisor returns the underlying gVisor stack, for tools (the conformance
// runner, benchmarks) that need what this package does not wrap.
func (st *Stack) GVisor() *stack.Stack { return st.s }

// Listen implements stack.Network. address is "host:port" with host empty,
// 0.0.0.0 or the stack's own address. backlog bounds the accept queue: it
// holds backlog+1 connections with Options.BacklogPlusOne (Linux), backlog
// without. A backlog below 1 or above Options.Somaxconn is Somaxconn.
func (st *Stack) Listen(address string, backlog int) (net.Listener, error) {
	return st.listen("tcp", address, backlog, tstack.ListenConfig{})
}

// ListenWith is Listen with SO_REUSEADDR and SO_REUSEPORT as lc sets them,
// set on gVisor's endpoint before it binds; lc.Backlog 0 is Somaxconn.
// network is "tcp" or "tcp4"; ctx is checked before the listener opens.
func (st *Stack) ListenWith(ctx context.Context, lc tstack.ListenConfig, network, address string) (net.Listener, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return st.listen(network, address, lc.Backlog, lc)
}

func (st *Stack) listen(network, address string, backlog int, lc tstack.ListenConfig) (net.Listener, error) {
	if network != "tcp" && network != "tcp4" {
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	fa, err := st.parseAddr(address, true)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: err}
	}
	if backlog < 1 || backlog > st.opts.Somaxconn {
		backlog = st.opts.Somaxconn
	}
	if err := st.checkOpen(); err != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: err}
	}
	var wq waiter.Queue
	ep, terr := st.s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: errnoOf(terr)}
	}
	ep.SocketOptions().SetReuseAddress(lc.ReuseAddr)
	ep.SocketOptions().SetReusePort(lc.ReusePort)
	if terr := ep.Bind(fa); terr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: tcpAddr(fa), Err: errnoOf(terr)}
	}
	queue := backlog
	if st.opts.BacklogPlusOne {
		queue++
	}
	if terr := ep.Listen(queue); terr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: tcpAddr(fa), Err: errnoOf(terr)}
	}
	l := &listener{st: st, ep: ep, wq: &wq, done: make(chan struct{})}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		ep.Close()
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: net.ErrClosed}
	}
	st.listeners[l] = struct{}{}
	st.mu.Unlock()
	return l, nil
}

// Dial implements stack.Network. network is "tcp" or "tcp4"; address is
// "ip:port" (no name resolution).
func (st *Stack) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return st.DialWith(ctx, tstack.Dialer{}, network, address)
}

// DialWith is Dial from d.LocalAddr (bound first when its port is not 0;
// the unspecified address is any of the stack's) with SO_REUSEADDR and
// SO_REUSEPORT as d sets them.
func (st *Stack) DialWith(ctx context.Context, d tstack.Dialer, network, address string) (net.Conn, error) {
	if network != "tcp" && network != "tcp4" {
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	fa, err := st.parseAddr(address, false)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if err := st.checkOpen(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	raddr := tcpAddr(fa)
	var wq waiter.Queue
	ep, terr := st.s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: errnoOf(terr)}
	}
	ep.SocketOptions().SetReuseAddress(d.ReuseAddr)
	ep.SocketOptions().SetReusePort(d.ReusePort)
	if d.LocalAddr.Port() != 0 {
		la := tcpip.FullAddress{Port: d.LocalAddr.Port()}
		if a := d.LocalAddr.Addr(); a.IsValid() && !a.IsUnspecified() {
			la.Addr = tcpip.AddrFrom4(a.Unmap().As4())
		}
		if terr := ep.Bind(la); terr != nil {
			ep.Close()
			return nil, &net.OpError{Op: "dial", Net: network, Source: tcpAddr(la), Addr: raddr, Err: errnoOf(terr)}
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

// parseAddr parses "ip:port". For a listener the host may be empty or
// unspecified (bind to any).
func (st *Stack) parseAddr(address string, listen bool) (tcpip.FullAddress, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return tcpip.FullAddress{}, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return tcpip.FullAddress{}, fmt.Errorf("bad port %q", portStr)
	}
	fa := tcpip.FullAddress{NIC: 0, Port: uint16(port)}
	if host == "" {
		if !listen {
			return tcpip.FullAddress{}, fmt.Errorf("missing host in %q", address)
		}
		return fa, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return tcpip.FullAddress{}, fmt.Errorf("host %q is not an IP address (gvisorstack resolves no names)", host)
	}
	ip = ip.Unmap()
	if !ip.Is4() {
		return tcpip.FullAddress{}, fmt.Errorf("%v is not IPv4", ip)
	}
	if listen && ip.IsUnspecified() {
		return fa, nil
	}
	if !listen && port == 0 {
		return tcpip.FullAddress{}, fmt.Errorf("port 0 in %q", address)
	}
	fa.Addr = tcpip.AddrFrom4(ip.As4())
	return fa, nil
}

func tcpAddr(fa tcpip.FullAddress) *net.TCPAddr {
	a := &net.TCPAddr{Port: int(fa.Port)}
	if fa.Addr.Len() > 0 {
		a.IP = net.IP(fa.Addr.AsSlice())
	} else {
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
	PacketsIn              uint64 // IPv4 packets handed from the link to gVisor
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
