package gvisorstack

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	tstack "tunstack/stack"
	"tunstack/tcpcore"
)

var _ tstack.Inspector = (*Stack)(nil)

// Sockets implements stack.Inspector from the TCP endpoints gVisor has
// registered in its demultiplexer: listeners, connections in any state
// (TIME-WAIT included, until gVisor's timer ends it) and those a listener
// has completed and not yet handed to Accept. Each is read through
// gVisor's own accessors, one endpoint at a time, so the snapshot is not
// taken at a single instant as ours is.
//
// What netstack reports: the state, the endpoints, the unread bytes
// (Recv-Q, ReceiveQueueSizeOption), the congestion controller's name, the
// segments sent and received, and the TCP_INFO fields tcpInfoOf maps (the
// state, RTO, RTT and RTTVar, cwnd, ssthresh, the congestion state,
// whether reordering was seen). What it does not, marked Unknown: Send-Q
// (netstack's send queue size option is not implemented for TCP), a
// listener's accept-queue length, backlog and SYN queue, the pending
// timer, the shutdown state, and the duplicate-ACK threshold
// (TCPInfo.Reordering). Every other TCP_INFO field is zero, which ss
// leaves out; a SYN-RECV or TIME-WAIT endpoint gets no TCP_INFO, as on
// Linux.
func (st *Stack) Sockets() []tstack.SocketInfo {
	var socks []tstack.SocketInfo
	for _, te := range st.s.RegisteredEndpoints() {
		ep, ok := te.(*tcp.Endpoint)
		if !ok {
			continue
		}
		socks = append(socks, socketOf(ep))
	}
	tstack.SortSockets(socks)
	return socks
}

// socketOf reads one endpoint.
func socketOf(ep *tcp.Endpoint) tstack.SocketInfo {
	si := tstack.SocketInfo{
		State:   stateOf(tcp.EndpointState(ep.State())),
		Unknown: tstack.UnknownSendQ | tstack.UnknownTimer | tstack.UnknownShutdown | tstack.UnknownReordering,
	}
	v6 := false
	if info, ok := ep.Info().(*stack.TransportEndpointInfo); ok {
		v6 = info.NetProto == header.IPv6ProtocolNumber
		si.Local = addrPort(info.ID.LocalAddress, info.ID.LocalPort, v6)
		si.Remote = addrPort(info.ID.RemoteAddress, info.ID.RemotePort, v6)
	}
	var cc tcpip.CongestionControlOption
	if ep.GetSockOpt(&cc) == nil {
		si.Congestion = string(cc)
	}
	switch si.State {
	case tcpcore.Listen:
		si.Unknown |= tstack.UnknownRecvQ | tstack.UnknownSynQueue
		si.Remote = addrPort(tcpip.Address{}, 0, v6)
	default:
		if n, err := ep.GetSockOptInt(tcpip.ReceiveQueueSizeOption); err == nil {
			si.RecvQ = n
		} else {
			si.Unknown |= tstack.UnknownRecvQ
		}
	}
	if si.State != tcpcore.TimeWait && si.State != tcpcore.SynReceived {
		ti := tcpInfoOf(ep)
		if stats, ok := ep.Stats().(*tcp.Stats); ok {
			ti.SegsOut = uint32(stats.SegmentsSent.Value())
			ti.SegsIn = uint32(stats.SegmentsReceived.Value())
		}
		si.TCPInfo = &ti
	}
	return si
}

// stateOf maps netstack's state to ours. Its protocol states are Linux's
// TCP_* numbers; its internal ones (initial, bound, connecting, error)
// are TCP_CLOSE to Linux, as gVisor's sentry reports them.
func stateOf(s tcp.EndpointState) tcpcore.State {
	switch s {
	case tcp.StateEstablished:
		return tcpcore.Established
	case tcp.StateSynSent:
		return tcpcore.SynSent
	case tcp.StateSynRecv:
		return tcpcore.SynReceived
	case tcp.StateFinWait1:
		return tcpcore.FinWait1
	case tcp.StateFinWait2:
		return tcpcore.FinWait2
	case tcp.StateTimeWait:
		return tcpcore.TimeWait
	case tcp.StateCloseWait:
		return tcpcore.CloseWait
	case tcp.StateLastAck:
		return tcpcore.LastAck
	case tcp.StateListen:
		return tcpcore.Listen
	case tcp.StateClosing:
		return tcpcore.Closing
	}
	return tcpcore.Closed
}

// addrPort converts a netstack address, empty for "any", to netip: 4 bytes
// are IPv4, 16 IPv6 (an IPv6 endpoint's IPv4 peer in its mapped form, as
// Linux shows it); "any" is the unspecified address of the endpoint's
// family (v6 for an IPv6 endpoint).
func addrPort(a tcpip.Address, port uint16, v6 bool) netip.AddrPort {
	switch {
	case a.Len() == 4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.As4()), port)
	case a.Len() == 16:
		return netip.AddrPortFrom(netip.AddrFrom16(a.As16()), port)
	case v6:
		return netip.AddrPortFrom(netip.IPv6Unspecified(), port)
	}
	return netip.AddrPortFrom(netip.IPv4Unspecified(), port)
}
