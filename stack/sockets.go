package stack

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"tunstack/tcpcore"
)

// Inspector is offered by a stack that can list its TCP sockets the way
// Linux's inet_diag lists the kernel's to ss: ours (Stack) and gVisor's
// (gvisorstack.Stack). tunstack serve answers `tunstack ss` from it.
type Inspector interface {
	// Sockets returns a snapshot of every TCP socket: listeners first,
	// then connections in any state, each group ordered by local then
	// remote address.
	Sockets() []SocketInfo
}

// SocketInfo is one socket as ss shows it.
type SocketInfo struct {
	// State is the RFC 9293 state; a listener's is tcpcore.Listen.
	State tcpcore.State
	// Local and Remote are the endpoints; a listener's Remote is the
	// unspecified address of its family and port 0, which ss prints as
	// 0.0.0.0:* or [::]:*. An IPv4 connection a dual-stack listener
	// accepted shows IPv4-mapped addresses, as ss shows Linux's.
	Local, Remote netip.AddrPort
	// RecvQ and SendQ are ss's Recv-Q and Send-Q as Linux's inet_diag
	// reports them: for a listener the accept queue's length and the
	// backlog; for a connection the bytes received and not read, and the
	// sequence space written and not acknowledged (tcpcore.Conn.Queues).
	RecvQ, SendQ int
	// SynQueue is a listener's count of half-open connections (Linux
	// keeps them as request sockets, which ss lists as SYN-RECV but does
	// not count on the listener).
	SynQueue int
	// Congestion names the congestion controller; "" if the stack does
	// not say.
	Congestion string
	// TCPInfo is the socket's struct tcp_info; nil where Linux has none
	// (TIME-WAIT, a passive open in the SYN queue) or the stack reports
	// none.
	TCPInfo *tcpcore.TCPInfo
	// Timer is the pending timer ss -o shows, and TimerLeft the time
	// until it fires.
	Timer     tcpcore.DiagTimer
	TimerLeft time.Duration
	// ShutRead and ShutWrite are the socket's shutdown state (ss -e's
	// <-> arrows): reading is shut once the peer's FIN arrived or the
	// application shut it, writing once the application did.
	ShutRead, ShutWrite bool
	// Unknown says which of the fields above the stack could not report;
	// they are zero and mean nothing.
	Unknown Unknown
}

// Unknown is a set of SocketInfo fields a stack cannot report.
type Unknown uint8

// The fields a stack may lack.
const (
	UnknownRecvQ Unknown = 1 << iota
	UnknownSendQ
	UnknownSynQueue
	UnknownTimer
	UnknownShutdown
	// UnknownReordering: TCPInfo.Reordering, the duplicate-ACK
	// threshold, is not reported (ss prints it whenever it is not 3).
	UnknownReordering
)

var _ Inspector = (*Stack)(nil)

// Sockets implements Inspector: every listener the application has open
// and every connection the engine runs, those in the SYN and accept queues
// and those the application has closed (finishing, TIME-WAIT) included.
// The whole snapshot is taken under the stack's lock at one instant, so
// the queues and counters of different sockets are consistent.
//
// On a stack of shards each shard's sockets are taken in one critical
// section of its own, and a listener shows once, with the queues of all
// its shards summed (groupListener.Stats).
func (s *Stack) Sockets() []SocketInfo {
	var socks []SocketInfo
	if g := s.grp; g != nil {
		for _, sh := range g.shards {
			socks = sh.sockets(socks, false)
		}
		for _, gl := range g.listeners() {
			socks = append(socks, listenerSocket(gl.parts[0].tl, gl.Stats()))
		}
	} else {
		socks = s.sockets(nil, true)
	}
	SortSockets(socks)
	return socks
}

// listenerSocket is the SocketInfo of a listener with queues st.
func listenerSocket(tl *tcpcore.Listener, st tcpcore.ListenerStats) SocketInfo {
	ti := tl.TCPInfo()
	peer := netip.IPv4Unspecified() // ss: 0.0.0.0:*, or [::]:* for an IPv6 listener
	if tl.Addr().Addr().Is6() {
		peer = netip.IPv6Unspecified()
	}
	return SocketInfo{
		State:      tcpcore.Listen,
		Local:      tl.Addr(),
		Remote:     netip.AddrPortFrom(peer, 0),
		RecvQ:      st.AcceptQueue,
		SendQ:      st.Backlog,
		SynQueue:   st.SynQueue,
		Congestion: tl.Congestion(),
		TCPInfo:    &ti,
	}
}

// sockets appends the shard's connections and, with listeners, its
// listeners to socks, in one critical section.
func (s *Stack) sockets(socks []SocketInfo, listeners bool) []SocketInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	conns := s.e.AppendConns(make([]*tcpcore.Conn, 0, s.e.ConnCount()))
	socks = slices.Grow(socks, len(s.lsns)+len(conns))
	if listeners {
		for l := range s.lsns {
			socks = append(socks, listenerSocket(l.tl, l.tl.Stats()))
		}
	}
	for _, c := range conns {
		si := SocketInfo{State: c.State(), Local: c.LocalAddr(), Remote: c.RemoteAddr(), Congestion: c.Congestion()}
		si.RecvQ, si.SendQ = c.Queues()
		si.Timer, si.TimerLeft = c.Timer(now)
		si.ShutRead, si.ShutWrite = c.Shutdown()
		// Linux behaviour (inet_diag_dump_one_icsk and its dump): only a
		// full socket carries tcp_info; TIME-WAIT and request sockets
		// are minisockets without one.
		if si.State != tcpcore.TimeWait && !c.IsRequest() {
			ti := c.TCPInfo(now)
			si.TCPInfo = &ti
		}
		socks = append(socks, si)
	}
	return socks
}

// SortSockets puts listeners first, then orders by local and remote
// address, the order Inspector.Sockets promises.
func SortSockets(socks []SocketInfo) {
	slices.SortFunc(socks, func(a, b SocketInfo) int {
		if la, lb := a.State == tcpcore.Listen, b.State == tcpcore.Listen; la != lb {
			if la {
				return -1
			}
			return 1
		}
		return cmp.Or(a.Local.Compare(b.Local), a.Remote.Compare(b.Remote))
	})
}
