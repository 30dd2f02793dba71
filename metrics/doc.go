// Package metrics exports a running stack's counters to Prometheus, and
// reads them back for `tunstack nstat`.
//
// Everything is read at scrape time, by a prometheus.Collector: the
// engine's stack-wide counters (tcpcore.Stats), the per-connection
// counters summed over every connection the application was given
// (stack.ConnTotals), the IP layer's counters of both families, the connections by
// state, the listeners' queues, two histograms of finished connections,
// the link's counters and the impairment's decisions. Nothing in the
// engine's path calls into this package.
//
// # Counters under Linux's names
//
// Counters (counters.go) is the one mapping table: each entry is a Linux
// nstat name, its Prometheus name (PromName: TcpActiveOpens is
// tunstack_tcp_active_opens_total), what it counts, and which field of
// our stack and of gVisor's tcpip.Stats feeds it. An entry counts the
// event Linux counts under that name; a stack that does not count it
// exports nothing under that name, never a constant zero. Two entries
// have no Linux counterpart, and their names say so:
// TcpExtTunstackMaxConnsDrop counts the SYNs and cookie ACKs our stack
// dropped at its cap on connections (serve --max-conns), and
// TcpExtTunstackPassedOn the segments one engine shard handed to another
// because the kernel had put them on the other's TUN queue (serve
// --queues above 1, the default on more than one CPU).
//
// Counters our stack takes from stack.ConnTotals (TcpExtTCPSackRecovery,
// TcpExtTCPRenoRecovery, TcpExtTCPDSACKRecv) cover the connections the
// application was given, finished ones included; a connection reset
// before accept returned it is not in them. Every other counter of ours
// is the engine's, over every connection.
//
// With gVisor's netstack (serve --stack gvisor), the names whose meaning
// its tcpip.Stats shares are exported from it. It has no counter for
// IpInReceives, IpOutRequests, Ip6InReceives or Ip6OutRequests (its
// IP.PacketsReceived and PacketsSent count both families together), nor
// for the other Ip6 counters, the Icmp6 ones or TcpExtOutOfWindowIcmps
// (its IP and ICMP error counters mix the families or other events),
// TcpAttemptFails (its FailedConnectionAttempts counts failed Listen calls
// too), TcpExtTW, TcpExtTWRecycled, TcpExtPAWSEstab, TcpExtDelayedACKs, TcpExtListenDrops,
// TcpExtTCPLossProbes, TcpExtTCPLossProbeRecovery (its TLPRecovery counts
// probes that started a SACK recovery), TcpExtTCPSpuriousRtxHostQueues, TcpExtTCPDSACKOldSent,
// TcpExtTCPDSACKOfoSent, TcpExtTCPDSACKRecv (it counts the segments a
// D-SACK covers: TcpExtTCPDSACKRecvSegs), the TcpExtTCPAbortOn* counters,
// TcpExtTCPReqQFullDrop, TcpExtTCPChallengeACK, TcpExtTCPSynRetrans,
// TcpExtTCPWinProbe, TcpExtTCPKeepAlive, TcpExtTCPZeroWindowDrop and
// TcpExtTunstackMaxConnsDrop (nor TcpExtTunstackPassedOn: it runs on one
// queue); nor for the histograms, the listener queues
// or any connection state but ESTABLISHED.
//
// NotCounted lists the nstat names of Linux's TCP and IP counters that
// our stack does not count, so that nothing is exported for them.
//
// # Gauges and histograms
//
//   - tunstack_tcp_connections{state}: connections the application holds
//     or has closed that the engine still runs, by state in ss's words
//     (established, time-wait, ...); connections not yet accepted are in
//     tunstack_tcp_listen_syn_queue and tunstack_tcp_listen_accept_queue,
//     by listener, with tunstack_tcp_listen_backlog.
//   - tunstack_tcp_connection_lifetime_seconds: for each finished
//     connection given to the application, the time from its creation
//     (Dial called, or Accept returned it) to the engine's CLOSED.
//   - tunstack_tcp_connection_final_srtt_seconds: the smoothed RTT each
//     finished connection had when it ended, if it took a sample. Live
//     connections' RTTs are not in a histogram, whose counts may only
//     grow: `tunstack ss -ti` shows them.
//
// # Link
//
// LinkCounter wraps the TUN device and counts the batches, packets and
// bytes read and written there (tunstack_link_*); the device's own
// counters give its offload work (tunstack_tun_*), and an impaired link
// its decisions per direction (tunstack_impair_packets_total). The
// kernel's own counters of the device (DeviceCounters, read through
// netlink) say what it dropped: tunstack_tun_tx_dropped_total counts the
// packets lost on their way into the stack because the device's queue
// was full, which `tunstack nstat` shows as TunTxDropped.
//
// # The process
//
// Beside tunstack's own names the endpoint serves the Go runtime's
// (go_goroutines, go_memstats_*, go_gc_* with the live heap after the
// last collection, go_gc_heap_live_bytes) and the process's (process_open_fds,
// process_resident_memory_bytes, ...), from client_golang's standard
// collectors; `tunstack soak` samples them to tell a leak from load.
//
// Serve runs the HTTP endpoint (/metrics) and Publish records its URL
// for the device, where Lookup finds it for `tunstack nstat --dev`.
package metrics

// NotCounted are the nstat names of Linux's IPv4 and TCP counters that
// our stack does not count, or counts for an event that differs from
// Linux's, and so does not export:
//
//   - IpInDelivers, IpInUnknownProtos: ICMP messages other than echo
//     requests are counted with unknown protocols, where Linux delivers
//     them to ICMP.
//   - IpReasm*, IpFrag*, IpForwDatagrams, IpOutNoRoutes, IpOutDiscards,
//     IpInDiscards: no reassembly, fragmentation, forwarding or routing.
//   - TcpExtEmbryonicRsts, TcpExtTWKilled, TcpExtPAWSActive: not counted.
//   - TcpExtTCPSlowStartRetrans: Linux leaves out the timer's own first
//     retransmission, which our count of retransmissions after a timeout
//     includes.
//   - TcpExtTCPLostRetransmit: Linux counts retransmissions found lost;
//     we count those sent again.
//   - TcpExtTCPSpuriousRTOs and the undo counters (TcpExtTCPFullUndo,
//     TcpExtTCPPartialUndo, TcpExtTCPDSACKUndo, TcpExtTCPLossUndo): we
//     count undos, not by Linux's kinds.
//   - TcpExtTCPSACKReneging, TcpExtTCPSACKReorder, TcpExtTCPRenoReorder,
//     TcpExtTCPTSReorder, TcpExtTCPOFOQueue, TcpExtTCPOFODrop,
//     TcpExtTCPPureAcks, TcpExtTCPHPHits, TcpExtTCPHPAcks,
//     TcpExtTCPOrigDataSent, TcpExtTCPDelivered,
//     TcpExtTCPWantZeroWindowAdv, TcpExtTCPToZeroWindowAdv,
//     TcpExtTCPFromZeroWindowAdv, TcpExtTCPAbortOnMemory,
//     TcpExtTCPAbortOnLinger, TcpExtTCPReqQFullDoCookies,
//     TcpExtTCPDSACKRecvSegs: not counted.
var NotCounted = []string{
	"IpInDelivers", "IpInUnknownProtos", "IpReasmReqds", "IpReasmOKs", "IpReasmFails", "IpFragOKs",
	"IpFragFails", "IpFragCreates", "IpForwDatagrams", "IpOutNoRoutes", "IpOutDiscards", "IpInDiscards",
	"TcpExtEmbryonicRsts", "TcpExtTWKilled", "TcpExtPAWSActive",
	"TcpExtTCPSlowStartRetrans", "TcpExtTCPLostRetransmit", "TcpExtTCPSpuriousRTOs",
	"TcpExtTCPFullUndo", "TcpExtTCPPartialUndo", "TcpExtTCPDSACKUndo", "TcpExtTCPLossUndo",
	"TcpExtTCPSACKReneging", "TcpExtTCPSACKReorder", "TcpExtTCPRenoReorder", "TcpExtTCPTSReorder",
	"TcpExtTCPOFOQueue", "TcpExtTCPOFODrop", "TcpExtTCPPureAcks", "TcpExtTCPHPHits", "TcpExtTCPHPAcks",
	"TcpExtTCPOrigDataSent", "TcpExtTCPDelivered", "TcpExtTCPWantZeroWindowAdv",
	"TcpExtTCPToZeroWindowAdv", "TcpExtTCPFromZeroWindowAdv", "TcpExtTCPAbortOnMemory",
	"TcpExtTCPAbortOnLinger", "TcpExtTCPReqQFullDoCookies", "TcpExtTCPDSACKRecvSegs",
}
