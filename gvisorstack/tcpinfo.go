package gvisorstack

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"tunstack/tcpcore"
)

// TCPInfo returns what gVisor's netstack reports of the connection
// (tcpip.TCPInfoOption) in tcpcore's struct tcp_info, mapped as gVisor's
// own sentry maps it for getsockopt(TCP_INFO): the state (netstack numbers
// its states as Linux does; its internal ones, which a connected Conn only
// reaches on error, are TCP_CLOSE), RTO, RTT and RTTVar in microseconds,
// cwnd and ssthresh in segments, the congestion state (RTO recovery is
// Loss, fast and SACK recovery are Recovery), and ReordSeen 1 once
// netstack's RACK saw reordering. netstack reports nothing else, so every
// other field is zero.
func (c *Conn) TCPInfo() tcpcore.TCPInfo { return tcpInfoOf(c.ep) }

// tcpInfoOf is Conn.TCPInfo for any of gVisor's TCP endpoints, listeners
// included (Stack.Sockets).
func tcpInfoOf(ep tcpip.Endpoint) tcpcore.TCPInfo {
	var v tcpip.TCPInfoOption
	if err := ep.GetSockOpt(&v); err != nil {
		return tcpcore.TCPInfo{State: linuxClose}
	}
	t := tcpcore.TCPInfo{
		State:       linuxClose,
		RTO:         uint32(v.RTO / time.Microsecond),
		RTT:         uint32(v.RTT / time.Microsecond),
		RTTVar:      uint32(v.RTTVar / time.Microsecond),
		SndSsthresh: v.SndSsthresh,
		SndCwnd:     v.SndCwnd,
	}
	if v.State >= 1 && v.State <= 11 {
		t.State = uint8(v.State)
	}
	switch v.CcState {
	case tcpip.RTORecovery:
		t.CAState = tcpcore.TCPCALoss
	case tcpip.FastRecovery, tcpip.SACKRecovery:
		t.CAState = tcpcore.TCPCARecovery
	case tcpip.Disorder:
		t.CAState = tcpcore.TCPCADisorder
	}
	if v.ReorderSeen {
		t.ReordSeen = 1
	}
	return t
}

const linuxClose = 7 // Linux TCP_CLOSE
