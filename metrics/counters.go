package metrics

import (
	gvtcpip "gvisor.dev/gvisor/pkg/tcpip"

	"tunstack/stack"
)

// Counter is one stack-wide counter under its Linux nstat name. Ours and
// GVisor read it from a stack's counters at scrape time; nil means that
// stack does not count that event, and the counter is then not exported
// for it at all (never as a constant zero). OursFrom and GVisorFrom name
// the fields that feed it.
type Counter struct {
	Nstat string // Linux's name as nstat prints it: Ip*, Tcp*, TcpExt*
	Help  string // what is counted, in our words

	OursFrom string
	Ours     func(*stack.Metrics) uint64

	GVisorFrom string
	GVisor     func(*gvtcpip.Stats) uint64
}

// Name is the counter's Prometheus name, derived from Nstat by PromName.
func (c Counter) Name() string { return PromName(c.Nstat) }

// Counters is the mapping table, in the order nstat prints Linux's
// counters (/proc/net/snmp's Ip and Tcp lines, /proc/net/snmp6's Ip6 and
// Icmp6 ones, then /proc/net/netstat's TcpExt line). Each entry counts the event Linux counts under that name,
// at the same point; where ours differs in a detail, Help says how.
var Counters = []Counter{
	{Nstat: "IpInReceives", Help: "IPv4 packets read from the link, before any check (packets of no known version included); IPv6 ones are Ip6InReceives.",
		OursFrom: "stack.IPStats.PacketsIn - PacketsIn6", Ours: func(m *stack.Metrics) uint64 { return m.IP.PacketsIn - m.IP.PacketsIn6 }},
	{Nstat: "IpInHdrErrors", Help: "Packets dropped because their IPv4 header did not check out.",
		OursFrom: "stack.IPStats.Malformed", Ours: func(m *stack.Metrics) uint64 { return m.IP.Malformed },
		GVisorFrom: "IP.MalformedPacketsReceived", GVisor: func(s *gvtcpip.Stats) uint64 { return s.IP.MalformedPacketsReceived.Value() }},
	{Nstat: "IpInAddrErrors", Help: "Packets dropped because their destination is not the stack's address.",
		OursFrom: "stack.IPStats.NotForUs", Ours: func(m *stack.Metrics) uint64 { return m.IP.NotForUs },
		GVisorFrom: "IP.InvalidDestinationAddressesReceived", GVisor: func(s *gvtcpip.Stats) uint64 { return s.IP.InvalidDestinationAddressesReceived.Value() }},
	{Nstat: "IpInDelivers", Help: "Packets handed to a transport protocol.",
		GVisorFrom: "IP.PacketsDelivered", GVisor: func(s *gvtcpip.Stats) uint64 { return s.IP.PacketsDelivered.Value() }},
	{Nstat: "IpOutRequests", Help: "IPv4 packets the stack sent: TCP segments and ICMP messages (ours counts the segments the link took, and its ICMP messages as it builds them, as Linux does, the link refusing one or not); IPv6 ones are Ip6OutRequests.",
		OursFrom: "stack.IPStats.PacketsOut - PacketsOut6", Ours: func(m *stack.Metrics) uint64 { return m.IP.PacketsOut - m.IP.PacketsOut6 }},

	{Nstat: "TcpActiveOpens", Help: "Connections that sent a SYN to open actively.",
		OursFrom: "tcpcore.Stats.ActiveOpens", Ours: func(m *stack.Metrics) uint64 { return m.Engine.ActiveOpens },
		GVisorFrom: "TCP.ActiveConnectionOpenings", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.ActiveConnectionOpenings.Value() }},
	{Nstat: "TcpPassiveOpens", Help: "Passive opens completed: the final ACK of a handshake made a connection for the accept queue.",
		OursFrom: "tcpcore.Stats.PassiveEstablished", Ours: func(m *stack.Metrics) uint64 { return m.Engine.PassiveEstablished },
		GVisorFrom: "TCP.PassiveConnectionOpenings", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.PassiveConnectionOpenings.Value() }},
	{Nstat: "TcpAttemptFails", Help: "Opens that failed: SYN-SENT or SYN-RECEIVED ended by a reset, a timeout, or a SYN to a half-open request.",
		OursFrom: "tcpcore.Stats.AttemptFails", Ours: func(m *stack.Metrics) uint64 { return m.Engine.AttemptFails }},
	{Nstat: "TcpEstabResets", Help: "Connections that went from ESTABLISHED or CLOSE-WAIT straight to CLOSED: reset, aborted or timed out.",
		OursFrom: "tcpcore.Stats.EstabResets", Ours: func(m *stack.Metrics) uint64 { return m.Engine.EstabResets },
		GVisorFrom: "TCP.EstablishedResets", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.EstablishedResets.Value() }},
	{Nstat: "TcpInSegs", Help: "TCP segments received, those with errors included.",
		OursFrom: "tcpcore.Stats.SegsIn", Ours: func(m *stack.Metrics) uint64 { return m.Engine.SegsIn },
		GVisorFrom: "TCP.ValidSegmentsReceived + InvalidSegmentsReceived + ChecksumErrors", GVisor: func(s *gvtcpip.Stats) uint64 {
			return s.TCP.ValidSegmentsReceived.Value() + s.TCP.InvalidSegmentsReceived.Value() + s.TCP.ChecksumErrors.Value()
		}},
	{Nstat: "TcpOutSegs", Help: "TCP segments sent, retransmissions and resets included.",
		OursFrom: "tcpcore.Stats.SegsOut", Ours: func(m *stack.Metrics) uint64 { return m.Engine.SegsOut },
		GVisorFrom: "TCP.SegmentsSent", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.SegmentsSent.Value() }},
	{Nstat: "TcpRetransSegs", Help: "TCP segments sent again, of any kind (SYN and SYN-ACK included).",
		OursFrom: "tcpcore.Stats.RetransSegs", Ours: func(m *stack.Metrics) uint64 { return m.Engine.RetransSegs },
		GVisorFrom: "TCP.Retransmits", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.Retransmits.Value() }},
	{Nstat: "TcpInErrs", Help: "TCP segments dropped as malformed: a bad header, bad options, or a bad checksum.",
		OursFrom: "tcpcore.Stats.InErrs + InCsumErrors", Ours: func(m *stack.Metrics) uint64 { return m.Engine.InErrs + m.Engine.InCsumErrors },
		GVisorFrom: "TCP.InvalidSegmentsReceived + ChecksumErrors", GVisor: func(s *gvtcpip.Stats) uint64 {
			return s.TCP.InvalidSegmentsReceived.Value() + s.TCP.ChecksumErrors.Value()
		}},
	{Nstat: "TcpOutRsts", Help: "Segments sent with RST.",
		OursFrom: "tcpcore.Stats.OutRsts", Ours: func(m *stack.Metrics) uint64 { return m.Engine.OutRsts },
		GVisorFrom: "TCP.ResetsSent", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.ResetsSent.Value() }},
	{Nstat: "TcpInCsumErrors", Help: "TCP segments dropped for a bad checksum.",
		OursFrom: "tcpcore.Stats.InCsumErrors", Ours: func(m *stack.Metrics) uint64 { return m.Engine.InCsumErrors },
		GVisorFrom: "TCP.ChecksumErrors", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.ChecksumErrors.Value() }},

	{Nstat: "Ip6InReceives", Help: "IPv6 packets read from the link, before any check.",
		OursFrom: "stack.IPStats.PacketsIn6", Ours: func(m *stack.Metrics) uint64 { return m.IP.PacketsIn6 }},
	{Nstat: "Ip6InHdrErrors", Help: "IPv6 packets dropped for a bad header or extension header chain (too short, a chain that runs past the packet or is too long, a bad option or field, a multicast source); those answered with a Parameter Problem about a field or an option included.",
		OursFrom: "stack.IPStats.Malformed6", Ours: func(m *stack.Metrics) uint64 { return m.IP.Malformed6 }},
	{Nstat: "Ip6InTruncatedPkts", Help: "IPv6 packets dropped because their Payload Length runs past what the link read.",
		OursFrom: "stack.IPStats.Truncated6", Ours: func(m *stack.Metrics) uint64 { return m.IP.Truncated6 }},
	{Nstat: "Ip6InAddrErrors", Help: "IPv6 packets dropped because their destination is not the stack's address (nor, but for TCP, a multicast group).",
		OursFrom: "stack.IPStats.NotForUs6", Ours: func(m *stack.Metrics) uint64 { return m.IP.NotForUs6 }},
	{Nstat: "Ip6InUnknownProtos", Help: "IPv6 packets whose Next Header no protocol takes, answered with a Parameter Problem (rate limits permitting).",
		OursFrom: "stack.IPStats.UnknownNext6", Ours: func(m *stack.Metrics) uint64 { return m.IP.UnknownNext6 }},
	{Nstat: "Ip6OutRequests", Help: "IPv6 packets the stack sent: TCP segments, ICMPv6 echo replies and errors (ours counts the segments the link took, and its ICMPv6 messages as it builds them, as Linux does, the link refusing one or not).",
		OursFrom: "stack.IPStats.PacketsOut6", Ours: func(m *stack.Metrics) uint64 { return m.IP.PacketsOut6 }},

	{Nstat: "Icmp6InMsgs", Help: "ICMPv6 messages received, bad ones included.",
		OursFrom: "stack.IPStats.ICMPv6In", Ours: func(m *stack.Metrics) uint64 { return m.IP.ICMPv6In }},
	{Nstat: "Icmp6InErrors", Help: "ICMPv6 messages dropped: too short, a bad checksum, or an error (Packet Too Big, Destination Unreachable) whose quote names none of the stack's connections.",
		OursFrom: "stack.IPStats.ICMPv6InErrors", Ours: func(m *stack.Metrics) uint64 { return m.IP.ICMPv6InErrors }},
	{Nstat: "Icmp6OutMsgs", Help: "ICMPv6 messages sent: echo replies and Parameter Problems (ours counts them as it builds them, as Linux does, the link refusing one or not; a relay frontend's Destination Unreachables are in its own counters, not here).",
		OursFrom: "stack.IPStats.EchoReplies6 + ParamProblems6", Ours: func(m *stack.Metrics) uint64 { return m.IP.EchoReplies6 + m.IP.ParamProblems6 }},

	{Nstat: "TcpExtSyncookiesSent", Help: "SYN-ACKs sent with a SYN cookie.",
		OursFrom: "tcpcore.Stats.SynCookiesSent", Ours: func(m *stack.Metrics) uint64 { return m.Engine.SynCookiesSent },
		GVisorFrom: "TCP.ListenOverflowSynCookieSent", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.ListenOverflowSynCookieSent.Value() }},
	{Nstat: "TcpExtSyncookiesRecv", Help: "ACKs that carried a valid SYN cookie.",
		OursFrom: "tcpcore.Stats.SynCookiesRecv", Ours: func(m *stack.Metrics) uint64 { return m.Engine.SynCookiesRecv },
		GVisorFrom: "TCP.ListenOverflowSynCookieRcvd", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.ListenOverflowSynCookieRcvd.Value() }},
	{Nstat: "TcpExtSyncookiesFailed", Help: "ACKs to a listener whose SYN cookie did not check out.",
		OursFrom: "tcpcore.Stats.SynCookiesFailed", Ours: func(m *stack.Metrics) uint64 { return m.Engine.SynCookiesFailed },
		GVisorFrom: "TCP.ListenOverflowInvalidSynCookieRcvd", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.ListenOverflowInvalidSynCookieRcvd.Value() }},
	{Nstat: "TcpExtOutOfWindowIcmps", Help: "ICMP and ICMPv6 errors about a connection dropped because the sequence number they quote is not in flight (RFC 5927 §4.1).",
		OursFrom: "tcpcore.Stats.OutOfWindowICMPs", Ours: func(m *stack.Metrics) uint64 { return m.Engine.OutOfWindowICMPs }},
	{Nstat: "TcpExtTW", Help: "TIME-WAIT connections whose timer ran out.",
		OursFrom: "tcpcore.Stats.TimeWaitExpired", Ours: func(m *stack.Metrics) uint64 { return m.Engine.TimeWaitExpired }},
	{Nstat: "TcpExtTWRecycled", Help: "TIME-WAIT connections an active open took over for its 4-tuple.",
		OursFrom: "tcpcore.Stats.TimeWaitReused", Ours: func(m *stack.Metrics) uint64 { return m.Engine.TimeWaitReused }},
	{Nstat: "TcpExtPAWSEstab", Help: "Segments of synchronized connections dropped by PAWS (an old timestamp).",
		OursFrom: "tcpcore.Stats.PAWSDrops", Ours: func(m *stack.Metrics) uint64 { return m.Engine.PAWSDrops }},
	{Nstat: "TcpExtDelayedACKs", Help: "ACKs sent by the delayed-ACK timer.",
		OursFrom: "tcpcore.Stats.DelayedACKs", Ours: func(m *stack.Metrics) uint64 { return m.Engine.DelayedACKs }},
	{Nstat: "TcpExtListenOverflows", Help: "SYNs and final ACKs dropped because a listener's accept queue was full.",
		OursFrom: "tcpcore.Stats.ListenOverflows", Ours: func(m *stack.Metrics) uint64 { return m.Engine.ListenOverflows },
		GVisorFrom: "TCP.ListenOverflowSynDrop + ListenOverflowAckDrop", GVisor: func(s *gvtcpip.Stats) uint64 {
			return s.TCP.ListenOverflowSynDrop.Value() + s.TCP.ListenOverflowAckDrop.Value()
		}},
	{Nstat: "TcpExtListenDrops", Help: "SYNs and final ACKs a listener dropped for any reason, accept-queue overflows included.",
		OursFrom: "tcpcore.Stats.ListenDrops", Ours: func(m *stack.Metrics) uint64 { return m.Engine.ListenDrops }},
	{Nstat: "TcpExtTCPRenoRecovery", Help: "Fast recoveries entered without SACK (by duplicate ACKs), on the connections given to the application.",
		OursFrom: "stack.ConnTotals FastRecoveries - SACKRecoveries", Ours: func(m *stack.Metrics) uint64 { return m.Conns.FastRecoveries - m.Conns.SACKRecoveries },
		GVisorFrom: "TCP.FastRecovery", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.FastRecovery.Value() }},
	{Nstat: "TcpExtTCPSackRecovery", Help: "Fast recoveries entered with SACK, on the connections given to the application.",
		OursFrom: "stack.ConnTotals SACKRecoveries", Ours: func(m *stack.Metrics) uint64 { return m.Conns.SACKRecoveries },
		GVisorFrom: "TCP.SACKRecovery", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.SACKRecovery.Value() }},
	{Nstat: "TcpExtTCPFastRetrans", Help: "Segments retransmitted in fast recovery (not after a timeout, not by a tail loss probe).",
		OursFrom: "tcpcore.Stats.FastRetrans", Ours: func(m *stack.Metrics) uint64 { return m.Engine.FastRetrans },
		GVisorFrom: "TCP.FastRetransmit", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.FastRetransmit.Value() }},
	{Nstat: "TcpExtTCPTimeouts", Help: "Retransmission timer expirations: data, SYN and SYN-ACK, the one that gives up included.",
		OursFrom: "tcpcore.Stats.Timeouts", Ours: func(m *stack.Metrics) uint64 { return m.Engine.Timeouts },
		GVisorFrom: "TCP.Timeouts", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.Timeouts.Value() }},
	{Nstat: "TcpExtTCPLossProbes", Help: "Tail loss probes sent.",
		OursFrom: "tcpcore.Stats.LossProbes", Ours: func(m *stack.Metrics) uint64 { return m.Engine.LossProbes }},
	{Nstat: "TcpExtTCPLossProbeRecovery", Help: "Tail loss probes that repaired a loss: the ACK went past the probe with no sign both copies arrived.",
		OursFrom: "tcpcore.Stats.LossProbeRecovery", Ours: func(m *stack.Metrics) uint64 { return m.Engine.LossProbeRecovery }},
	{Nstat: "TcpExtTCPSpuriousRtxHostQueues", Help: "Tail loss probes not sent because the segment they would resend had not left the host (its packet not yet written to the link).",
		OursFrom: "tcpcore.Stats.RtxHostQueues", Ours: func(m *stack.Metrics) uint64 { return m.Engine.RtxHostQueues }},
	{Nstat: "TcpExtTCPDSACKOldSent", Help: "D-SACKs decided for duplicate data below RCV.NXT.",
		OursFrom: "tcpcore.Stats.DSACKOldSent", Ours: func(m *stack.Metrics) uint64 { return m.Engine.DSACKOldSent }},
	{Nstat: "TcpExtTCPDSACKOfoSent", Help: "D-SACKs decided for duplicate data already held out of order.",
		OursFrom: "tcpcore.Stats.DSACKOfoSent", Ours: func(m *stack.Metrics) uint64 { return m.Engine.DSACKOfoSent }},
	{Nstat: "TcpExtTCPDSACKRecv", Help: "ACKs that carried a D-SACK block, on the connections given to the application.",
		OursFrom: "stack.ConnTotals DSACKsReceived", Ours: func(m *stack.Metrics) uint64 { return m.Conns.DSACKsReceived }},
	{Nstat: "TcpExtTCPAbortOnData", Help: "Resets sent for data arriving after close, or for a close with SO_LINGER 0.",
		OursFrom: "tcpcore.Stats.AbortOnData", Ours: func(m *stack.Metrics) uint64 { return m.Engine.AbortOnData }},
	{Nstat: "TcpExtTCPAbortOnClose", Help: "Resets sent because the application closed with data unread.",
		OursFrom: "tcpcore.Stats.AbortOnClose", Ours: func(m *stack.Metrics) uint64 { return m.Engine.AbortOnClose }},
	{Nstat: "TcpExtTCPAbortOnTimeout", Help: "Connections a timer gave up on: retransmission, zero-window probing or keepalive.",
		OursFrom: "tcpcore.Stats.AbortOnTimeout", Ours: func(m *stack.Metrics) uint64 { return m.Engine.AbortOnTimeout }},
	{Nstat: "TcpExtTCPSpuriousRTOs", Help: "Retransmission timeouts found spurious.",
		GVisorFrom: "TCP.SpuriousRTORecovery", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.SpuriousRTORecovery.Value() }},
	{Nstat: "TcpExtTCPReqQFullDrop", Help: "SYNs dropped because the SYN queue was full and SYN cookies were off.",
		OursFrom: "tcpcore.Stats.SynQueueDrops", Ours: func(m *stack.Metrics) uint64 { return m.Engine.SynQueueDrops }},
	{Nstat: "TcpExtTunstackMaxConnsDrop", Help: "SYNs and SYN-cookie ACKs dropped because the stack held its cap of connections (serve --max-conns); ours alone, Linux has no such cap or counter.",
		OursFrom: "tcpcore.Stats.MaxConnsDrops", Ours: func(m *stack.Metrics) uint64 { return m.Engine.MaxConnsDrops }},
	{Nstat: "TcpExtTunstackPassedOn", Help: "Segments, and ICMP errors about them, that arrived on one TUN queue for a connection another queue's engine shard runs (the kernel moved the flow) and were handed to that shard; ours alone, Linux has no shards of one device to hand between.",
		OursFrom: "stack.IPStats.PassedOn", Ours: func(m *stack.Metrics) uint64 { return m.IP.PassedOn }},
	{Nstat: "TcpExtTCPChallengeACK", Help: "Challenge ACKs sent (RFC 5961) for a suspicious RST, SYN or ACK.",
		OursFrom: "tcpcore.Stats.ChallengeACKs", Ours: func(m *stack.Metrics) uint64 { return m.Engine.ChallengeACKs }},
	{Nstat: "TcpExtTCPSynRetrans", Help: "SYN and SYN-ACK retransmissions.",
		OursFrom: "tcpcore.Stats.SynRetrans", Ours: func(m *stack.Metrics) uint64 { return m.Engine.SynRetrans }},
	{Nstat: "TcpExtTCPWinProbe", Help: "Zero-window probes sent.",
		OursFrom: "tcpcore.Stats.WinProbes", Ours: func(m *stack.Metrics) uint64 { return m.Engine.WinProbes }},
	{Nstat: "TcpExtTCPKeepAlive", Help: "Keepalive probes sent.",
		OursFrom: "tcpcore.Stats.KeepAlives", Ours: func(m *stack.Metrics) uint64 { return m.Engine.KeepAlives }},
	{Nstat: "TcpExtTCPZeroWindowDrop", Help: "Segments whose data was dropped because the receive window was zero.",
		OursFrom: "tcpcore.Stats.ZeroWindowDrops", Ours: func(m *stack.Metrics) uint64 { return m.Engine.ZeroWindowDrops }},
	{Nstat: "TcpExtTCPDSACKRecvSegs", Help: "Segments the peer reported as duplicates in D-SACK blocks.",
		GVisorFrom: "TCP.SegmentsAckedWithDSACK", GVisor: func(s *gvtcpip.Stats) uint64 { return s.TCP.SegmentsAckedWithDSACK.Value() }},
}
