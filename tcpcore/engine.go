// Package tcpcore is the TCP engine: a sans-IO implementation of RFC 9293
// with the extensions a modern stack needs (RFC 7323 options, RFC 6298
// timers, RFC 5681 congestion control through package congestion, RFC 5961
// hardening, RFC 6528 ISNs).
//
// The engine never reads a clock, sleeps, starts goroutines or does I/O.
// A driver feeds it inbound segments (Input) and time (Advance), collects the
// segments it produced (Output) and the sockets whose state changed
// (Wakeups), and arms one timer for NextDeadline. Applications call the
// non-blocking methods of Conn and Listener; blocking is the driver's job.
//
// One Engine has one owner at a time; it holds no locks.
//
// Families: the engine runs IPv4 and IPv6 connections side by side
// (family.go). A connection is keyed by its real addresses, unmapped: an
// IPv4 connection is keyed by IPv4 addresses and its segments go out in
// IPv4 (Packet.Src and Dst say the family), whoever opened it. Dual-stack
// sockets follow Linux with bindv6only 0: a listener on the IPv6 wildcard
// [::] without SockOpts.V6Only also takes IPv4 segments to its port when
// no IPv4 listener does, and the connections it makes from them carry a
// mapped flag, so that LocalAddr, RemoteAddr and Info report their
// addresses IPv4-mapped (::ffff:a.b.c.d) as Linux shows them to an IPv6
// socket; a Connect or Bind given an IPv4-mapped address runs IPv4 and
// reports mapped addresses too. The bind rules see the real family
// (overlaps in family.go): [::] conflicts with 0.0.0.0 and every IPv4
// address on its port unless it is V6Only.
package tcpcore

import (
	"errors"
	"net/netip"

	"tunstack/policy"
	"tunstack/wire"
)

// Config is what an Engine is built from.
type Config struct {
	Profile *policy.Profile
	// MTU is the link MTU in bytes; the MSS we advertise is MTU minus the
	// network and TCP headers: MTU - 40 for IPv4, MTU - 60 for IPv6 but
	// at least 1220 (ipv6MinAdvMSS). It is also where every connection's
	// path MTU starts (pmtu.go).
	MTU int
	// Secret keys the ISN generator (RFC 6528) and SYN cookies. The driver
	// fills it from a random source; tests fix it for determinism.
	Secret [32]byte
	// Trace, if set, is called synchronously with every congestion event
	// (for `--trace FILE`); it must not call back into the engine.
	Trace func(CongestionEvent)
	// ChecksumOffload leaves each outbound segment's TCP checksum for the
	// link to finish, as Linux leaves it to a device with checksum
	// offload (CHECKSUM_PARTIAL): the field holds the pseudo-header sum
	// over the segment's length, folded and not complemented, and
	// Packet.ChecksumPartial says so. Only for a driver whose link
	// completes it (a TUN with virtio headers, through netif.DescWriter).
	ChecksumOffload bool
	// SegmentOffload, with ChecksumOffload, queues runs of data segments
	// of one connection as one Packet each, a chunk: one TCP header and
	// the payloads of up to MaxChunkSegments segments, contiguous, that
	// the link cuts back into the segments (Packet.SegmentSize), as Linux
	// hands a device with TSO one packet per chunk (tcp_write_xmit). Only
	// for a driver whose link takes GSO packets (a TUN with virtio
	// headers, through netif.GSOWriter).
	SegmentOffload bool
	// ZeroCopyChunks, with SegmentOffload, leaves a chunk's payload in
	// the connection's send ring: the Packet holds the header and the
	// ring's spans (Packet.Tail), which the link writes behind it, and
	// the engine keeps those bytes as they are until the packet is
	// Released (pin.go). Only for a driver whose link writes a packet
	// and its tail as one (netif.Desc.Tail).
	ZeroCopyChunks bool
	// MaxConns caps the connections the engine's listeners hold at once:
	// half-open and established ones, and those closing until they reach
	// TIME-WAIT (which keeps only a 4-tuple's timer and is bounded
	// separately by its 2*MSL). A SYN that would make one more is dropped
	// unanswered and counted in Stats.MaxConnsDrops, as Linux drops a SYN
	// at a full accept queue (tcp_conn_request): the client retransmits
	// its SYN and gets in once a connection has ended. 0 means no cap.
	// Active opens are not counted: the application bounds its own. An
	// Interceptor's SYNs are checked when they arrive and its connections
	// counted once answered, so the SYNs it holds undecided when the cap
	// is reached (bounded by its backlog) may take it past the cap.
	MaxConns int
	// Demux, if set, is called synchronously each time a connection
	// enters the engine's demultiplexing table (added true) or leaves it,
	// with its 4-tuple, so that a driver running several engines on one
	// address can keep a table of which engine has which flow (HasConn
	// asks one engine). It must not call back into the engine.
	Demux func(local, remote netip.AddrPort, added bool)
}

// Waker is the driver's handle on a socket: the engine calls nothing on it
// but collects it in Wakeups when the socket's state changes in a way a
// blocked application call may care about.
type Waker interface{ Wake() }

// Stats are engine-wide counters (Linux's netstat -s names in comments).
type Stats struct {
	SegsIn, SegsOut  uint64 // InSegs, OutSegs
	RetransSegs      uint64 // RetransSegs
	InErrs           uint64 // InErrs: bad header
	InCsumErrors     uint64 // InCsumErrors
	OutRsts          uint64 // OutRsts
	ActiveOpens      uint64 // ActiveOpens
	PassiveOpens     uint64 // PassiveOpens
	AttemptFails     uint64 // AttemptFails
	EstabResets      uint64 // EstabResets
	ListenOverflows  uint64 // ListenOverflows (accept queue full)
	ListenDrops      uint64 // ListenDrops
	SynQueueDrops    uint64 // SYNs dropped because the SYN queue was full
	PAWSDrops        uint64 // PAWSEstab
	ChallengeACKs    uint64 // TCPChallengeACK
	OutOfWindowDrops uint64 // segments failing the acceptability test
	ZeroWindowDrops  uint64 // data that reached a zero receive window (TCPZeroWindowDrop)
	TimeWaitRecycled uint64 // TIME-WAIT connections a SYN from the peer reopened (passive side)
	TimeWaitReused   uint64 // TWRecycled: TIME-WAIT connections an active open took over (twReuse: tcp_tw_reuse, or a bound port)
	ConnectNoPort    uint64 // connects without a bound port that found no free port toward their destination (EADDRNOTAVAIL)
	MaxConnsDrops    uint64 // SYNs and cookie ACKs dropped because Config.MaxConns connections were held (no Linux counterpart; counted in ListenDrops too)
	SynCookiesSent   uint64 // SyncookiesSent
	SynCookiesRecv   uint64 // SyncookiesRecv
	SynCookiesFailed uint64 // SyncookiesFailed

	// ICMP errors fed to ICMPError (pmtu.go).
	OutOfWindowICMPs uint64 // OutOfWindowIcmps: the quoted sequence number was not in SND.UNA..SND.NXT
	ICMPUnmatched    uint64 // ICMP InErrors: the quote named no connection, or was unreadable
	PMTUIgnored      uint64 // Packet Too Big or Fragmentation Needed that lowered nothing (IPv6: below 1280)
	PMTUUpdates      uint64 // path MTU lowered

	// Counted for package metrics, each as Linux counts the counter named
	// in its comment (package metrics maps them onto nstat's names).
	PassiveEstablished uint64 // PassiveOpens as Linux counts it: handshakes completed into the accept queue, not SYNs taken
	Timeouts           uint64 // TCPTimeouts: retransmission timer expirations, SYN, SYN-ACK and the last one included
	FastRetrans        uint64 // TCPFastRetrans: segments retransmitted in fast recovery
	SynRetrans         uint64 // TCPSynRetrans: SYN and SYN-ACK retransmissions
	LossProbes         uint64 // TCPLossProbes: tail loss probes sent
	LossProbeRecovery  uint64 // TCPLossProbeRecovery: probes whose ACK showed they repaired a loss
	RtxHostQueues      uint64 // TCPSpuriousRtxHostQueues: probes not sent because the segment had not left the host
	DSACKOldSent       uint64 // TCPDSACKOldSent: D-SACKs sent for data below RCV.NXT
	DSACKOfoSent       uint64 // TCPDSACKOfoSent: D-SACKs sent for data already held out of order
	DelayedACKs        uint64 // DelayedACKs: ACKs the delayed-ACK timer sent
	TimeWaitExpired    uint64 // TW: TIME-WAIT connections whose timer ran out
	KeepAlives         uint64 // TCPKeepAlive: keepalive probes sent
	WinProbes          uint64 // TCPWinProbe: zero-window probes sent
	AbortOnData        uint64 // TCPAbortOnData: RST for data after close, or close with SO_LINGER 0
	AbortOnClose       uint64 // TCPAbortOnClose: RST for a close with unread data
	AbortOnTimeout     uint64 // TCPAbortOnTimeout: connections a timer gave up on
}

// connKey is a connection's 4-tuple as the connection table keys it: the
// addresses as 16 bytes and whether each is IPv4, 38 bytes where two
// netip.AddrPort take 64, since every idle connection holds one in its
// Conn and one in the table's slot. (Zones are not kept: packets carry
// none.)
type connKey struct {
	la, ra [16]byte
	lp, rp uint16
	l4, r4 bool
}

func newConnKey(local, remote netip.AddrPort) connKey {
	return connKey{la: local.Addr().As16(), ra: remote.Addr().As16(), lp: local.Port(), rp: remote.Port(),
		l4: local.Addr().Is4(), r4: remote.Addr().Is4()}
}

func keyAddr(a [16]byte, port uint16, is4 bool) netip.AddrPort {
	ip := netip.AddrFrom16(a)
	if is4 {
		ip = ip.Unmap()
	}
	return netip.AddrPortFrom(ip, port)
}

// local and remote are the key's addresses.
func (k connKey) local() netip.AddrPort  { return keyAddr(k.la, k.lp, k.l4) }
func (k connKey) remote() netip.AddrPort { return keyAddr(k.ra, k.rp, k.r4) }

// Engine is one TCP endpoint: its connections, listeners and timers.
type Engine struct {
	cfg     Config
	prof    *policy.Profile
	ourMSS  int // MSS we advertise on IPv4: MTU - 40
	ourMSS6 int // MSS we advertise on IPv6: MTU - 60, at least 1220
	conns   map[connKey]*Conn
	// lsns holds the listeners by address; several on one address are a
	// SO_REUSEPORT group, in Linux's order (bind.go).
	lsns map[netip.AddrPort][]*Listener
	// intercepts take SYNs to whole prefixes (intercept.go).
	intercepts []*Interceptor
	// ports holds every socket that holds a local port (bind.go).
	ports        map[uint16]*portBucket
	spareBuckets []*portBucket // emptied buckets kept for reuse
	timers       timerHeap
	// ev is the record of the ACK event being processed, which each
	// connection's ev points at (recovery.go).
	ev  ackEvent
	out []*Packet
	// ackLater holds connections with an ACK for in-order data owed, sent
	// when the driver next collects Output: one ACK for all the segments
	// of a batch the driver fed in, as Linux's GRO gives one ACK for the
	// segments it merged. Tests and drivers that collect after every
	// segment see no difference.
	ackLater []*Conn
	pool     packetPool
	rings    ringPool // the rings' first buffers, recycled (buffer.go)
	// With Config.SegmentOffload: chunkPool holds buffers of
	// MaxChunkBytes, and chunk the packet of e.out that the next data
	// segment may extend (emitChunk).
	chunkPool packetPool
	chunk     openChunk
	// pins are the zero-copy chunks made and not yet Released
	// (Config.ZeroCopyChunks, pin.go).
	pins     []*Packet
	wakeups  []Waker
	touched  []*Conn // with Config.Trace only: see Touched (trace.go)
	stats    Stats
	isn      isnGen
	nextEph  uint32 // ephemeral port cursor
	hashSeed uint32 // keys reuseportHash
	// twISN, when non-zero, is the ISN the next passive open takes: set
	// while a SYN that reopened a TIME-WAIT connection goes to the
	// listener (see timeWaitSyn).
	twISN Seq
	// passiveConns counts the connections held against Config.MaxConns:
	// those with counted set (listen.go).
	passiveConns int

	// scratch space reused for every inbound segment, so Input allocates
	// nothing.
	rxOpts wire.TCPOptions
}

// openChunk is the chunk the next data segment may extend
// (Config.SegmentOffload): its packet, nil when there is none, and what
// its header was encoded from, which the segment's must equal.
type openChunk struct {
	pkt     *Packet
	conn    *Conn
	next    Seq // the sequence number that continues it
	ack     Seq
	wnd     uint16
	hasOpts bool
	opts    wire.TCPOptions
}

// NewEngine returns an engine with no connections.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Profile == nil {
		cfg.Profile = policy.Linux()
	}
	if err := cfg.Profile.Validate(); err != nil {
		return nil, err
	}
	if cfg.MTU < 68+wire.TCPHeaderLen {
		return nil, errors.New("tcpcore: MTU too small for TCP")
	}
	if cfg.MaxConns < 0 {
		return nil, errors.New("tcpcore: MaxConns must be 0 (no cap) or more")
	}
	if cfg.SegmentOffload && !cfg.ChecksumOffload {
		return nil, errors.New("tcpcore: SegmentOffload needs ChecksumOffload: the link that cuts chunks into segments finishes their checksums")
	}
	if cfg.ZeroCopyChunks && !cfg.SegmentOffload {
		return nil, errors.New("tcpcore: ZeroCopyChunks needs SegmentOffload: only chunks leave their payload in the send ring")
	}
	e := &Engine{
		cfg:     cfg,
		prof:    cfg.Profile,
		ourMSS:  cfg.MTU - wire.IPv4HeaderLen - wire.TCPHeaderLen,
		ourMSS6: max(cfg.MTU-wire.IPv6HeaderLen-wire.TCPHeaderLen, ipv6MinAdvMSS),
		conns:   make(map[connKey]*Conn),
		lsns:    make(map[netip.AddrPort][]*Listener),
		ports:   make(map[uint16]*portBucket),
		isn:     isnGen{secret: cfg.Secret},
	}
	e.pool.size = wire.TCPHeaderLen + wire.TCPMaxOptionLen + max(e.ourMSS, e.ourMSS6)
	e.chunkPool.size = MaxChunkBytes
	e.nextEph = e.isn.portOffset()
	e.hashSeed = e.isn.hash(netip.AddrPort{}, netip.AddrPort{}, 3)
	return e, nil
}

// Profile returns the policy the engine runs with.
func (e *Engine) Profile() *policy.Profile { return e.prof }

// Stats returns a copy of the engine counters.
func (e *Engine) Stats() Stats { return e.stats }

// Output appends the segments produced since the last call to dst and
// returns the extended slice, as append does. The driver owns the
// packets until it hands them back with Release; the engine keeps its own
// queue, so a driver that reuses dst allocates nothing per batch.
func (e *Engine) Output(dst []*Packet) []*Packet {
	for i, c := range e.ackLater {
		e.ackLater[i] = nil
		if c.ackBatched && c.state != Closed {
			c.sendAck(c.ackBatchedAt)
			c.updateDeadline()
		}
		c.ackBatched = false
	}
	e.ackLater = e.ackLater[:0]
	e.closeChunk() // the driver owns the packets now
	dst = append(dst, e.out...)
	clear(e.out) // the driver owns them now
	e.out = e.out[:0]
	return dst
}

// Release returns packets obtained from Output to the engine's pool and
// clears their places in pkts, which stays the caller's.
func (e *Engine) Release(pkts []*Packet) {
	for i, p := range pkts {
		if p.owner != nil {
			e.unpin(p)
		}
		if c := p.from; c != nil {
			c.inHost--
			p.from = nil
		}
		if p.segs > 0 && cap(p.buf) == Headroom+e.chunkPool.size {
			e.chunkPool.put(p)
		} else {
			e.pool.put(p)
		}
		pkts[i] = nil
	}
}

// TrimPool lets go of the packet buffers (segments' and chunks') that no
// Output has needed since the previous call, and of the connections'
// first send and receive buffers that no new connection has needed since,
// and returns how many buffers of every kind the engine still keeps. The pools grow to the
// largest burst the engine has produced (of packets, of connections); a
// driver calls this
// every so often while it returns non-zero (the stack, once a second), so
// that a burst's buffers go back to the garbage collector once the load
// has passed instead of staying for good, while a steady load, which
// reuses them, keeps its buffers and allocates nothing.
func (e *Engine) TrimPool() int { return e.pool.trim() + e.rings.trim() + e.chunkPool.trim() }

// Wakeups returns the sockets whose application-visible state changed since
// the last call. The slice is reused: consume it before the next engine call.
func (e *Engine) Wakeups() []Waker {
	w := e.wakeups
	e.wakeups = e.wakeups[:0]
	return w
}

// NextDeadline is the earliest instant at which Advance has work to do; ok
// is false when no timer is armed.
func (e *Engine) NextDeadline() (t Time, ok bool) {
	if len(e.timers) == 0 {
		return 0, false
	}
	return e.timers[0].deadline, true
}

// Advance runs every timer due at or before now.
func (e *Engine) Advance(now Time) {
	for len(e.timers) > 0 && e.timers[0].deadline <= now {
		c := e.timers[0]
		c.onTimers(now)
	}
}

// ConnCount returns the number of connections the engine tracks (all
// states but LISTEN, including TIME-WAIT and the SYN queues).
func (e *Engine) ConnCount() int { return len(e.conns) }

// Input processes one inbound TCP segment (header, options and payload)
// carried from src to dst. It is InputGRO with no metadata: one segment,
// its checksum verified here.
func (e *Engine) Input(now Time, src, dst netip.Addr, b []byte) {
	e.InputGRO(now, src, dst, b, InputMeta{})
}

// InputMeta is what the link knows about an inbound segment that the
// engine would otherwise work out, or could not.
type InputMeta struct {
	// SegSize, when positive and shorter than the payload, makes the
	// segment a GRO unit: its payload is that of consecutive segments of
	// SegSize bytes each (the last may be shorter) that share its header,
	// as a TSO packet from the kernel carries them. The engine takes them
	// one by one, in order, exactly as it would take the segments that
	// cutting the unit yields (sequence numbers counted up from the
	// header's, FIN and PSH on the last only, CWR on the first only), so
	// ACKs, SACK and D-SACK are those of segment-by-segment input; the
	// header is checked, its options parsed and its checksum verified
	// once for the whole unit.
	SegSize int
	// ChecksumOK says the link vouches for the TCP checksum, so the
	// engine does not verify it: Linux behaviour (skb_csum_unnecessary()):
	// a packet the kernel built on this host (CHECKSUM_PARTIAL, the TUN's
	// NEEDS_CSUM) or whose checksum a device verified (DATA_VALID) is not
	// checked again.
	ChecksumOK bool
}

// InputGRO processes one inbound TCP segment, or a GRO unit of several
// (InputMeta.SegSize), carried from src to dst.
func (e *Engine) InputGRO(now Time, src, dst netip.Addr, b []byte, m InputMeta) {
	t := wire.TCP(b)
	if t.Valid() != nil {
		e.stats.SegsIn++
		e.stats.InErrs++
		return
	}
	payload := t.Payload()
	nseg := 1
	if m.SegSize > 0 && len(payload) > m.SegSize {
		nseg = (len(payload) + m.SegSize - 1) / m.SegSize
	}
	// Every segment of a unit counts as received, as when cut, also when
	// the unit is dropped as a whole below.
	e.stats.SegsIn += uint64(nseg)
	// Checksums: the engine verifies every inbound segment's TCP checksum
	// over the pseudo-header of its family (RFC 9293 §3.1 for IPv4, RFC
	// 8200 §8.1 for IPv6) unless the link vouches for it (ChecksumOK), and
	// computes every outbound one (finishPacket). A GRO unit's checksum
	// covers the whole unit, so one bad byte drops all of it, counted once
	// (Linux behaviour: tcp_v4_rcv() drops a bad GRO skb as one, one
	// TCP_MIB_CSUMERRORS). Both addresses are of one family and unmapped
	// (an IPv4-mapped address never appears in an IPv6 header of a real
	// packet, RFC 4291 §2.5.5.2); anything else is dropped as an error.
	if !plainAddr(src) || !plainAddr(dst) || src.Is4() != dst.Is4() {
		e.stats.InErrs++
		return
	}
	if !m.ChecksumOK && !t.ChecksumValidAddr(src, dst) {
		e.stats.InCsumErrors++
		return
	}
	opts := &e.rxOpts
	if t.DataOffset() > wire.TCPHeaderLen {
		// Linux behaviour (tcp_parse_options): an option whose length is
		// below 2 or runs past the header ends the parsing; the options
		// before it count and the segment is processed, not dropped.
		// (Linux skips a known option of the wrong length and reads on;
		// the parser stops there too.)
		_ = wire.ParseTCPOptions(t.Options(), opts)
	} else {
		*opts = wire.TCPOptions{}
	}
	seg := segment{
		seq:     Seq(t.Seq()),
		ack:     Seq(t.Ack()),
		flags:   t.Flags(),
		wnd:     t.Window(),
		payload: payload,
		opts:    opts,
		src:     netip.AddrPortFrom(src, t.SrcPort()),
		dst:     netip.AddrPortFrom(dst, t.DstPort()),
		hdr:     t[:t.DataOffset()],
	}
	if nseg == 1 {
		e.deliver(now, &seg)
		return
	}
	// A GRO unit, taken as the segments Linux's tcp_gso_segment() cuts
	// from it: each carries the header with its own sequence number; FIN
	// and PSH stay on the last, CWR on the first. Each goes where a lone
	// segment would: to the connection the one before it reached while
	// that connection is still the 4-tuple's (every way out of e.conns,
	// unlink and Listener.Close, leaves it CLOSED), else looked up
	// afresh, so a segment that ends the connection sends the rest where
	// a lone segment would go.
	flags, seq := seg.flags, Seq(t.Seq())
	var c *Conn
	for i := range nseg {
		off := i * m.SegSize
		seg.seq = seq.Add(off)
		seg.payload = payload[off:min(off+m.SegSize, len(payload))]
		seg.flags = flags
		if i < nseg-1 {
			seg.flags &^= wire.FlagFIN | wire.FlagPSH
		}
		if i > 0 {
			seg.flags &^= wire.FlagCWR
		}
		if c != nil && c.state != Closed {
			seg.repeat = true
			c.input(now, &seg)
		} else {
			c = e.deliver(now, &seg)
		}
	}
}

// deliver hands a decoded segment to its connection, else to a listener,
// else answers it with a reset. It returns the connection that took it,
// nil if none did.
func (e *Engine) deliver(now Time, seg *segment) *Conn {
	if c := e.conns[newConnKey(seg.dst, seg.src)]; c != nil {
		c.input(now, seg)
		return c
	}
	if l := e.listenerFor(seg.dst, seg.src); l != nil {
		l.input(now, seg)
		return nil
	}
	if l := e.interceptFor(seg.dst.Addr()); l != nil {
		l.input(now, seg)
		return nil
	}
	e.resetFor(now, seg)
	return nil
}

// resetFor answers a segment that reached no connection (RFC 9293
// §3.10.7.1, "If the state is CLOSED"): an RST is never answered; an ACK
// gets <SEQ=SEG.ACK><CTL=RST>; anything else <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
func (e *Engine) resetFor(now Time, s *segment) {
	if s.flags&wire.FlagRST != 0 {
		return
	}
	if s.flags&wire.FlagACK != 0 {
		e.sendReset(s.dst, s.src, s.ack, 0, wire.FlagRST)
		return
	}
	e.sendReset(s.dst, s.src, 0, s.seq.Add(s.segLen()), wire.FlagRST|wire.FlagACK)
}

// sendReset emits a bare RST (or RST+ACK) with no options.
func (e *Engine) sendReset(local, remote netip.AddrPort, seq, ack Seq, flags uint8) {
	e.stats.OutRsts++
	p := e.newPacket(local, remote)
	b := p.buf[Headroom:]
	wire.PutTCPHeader(b, wire.TCPFields{
		SrcPort: local.Port(), DstPort: remote.Port(),
		Seq: uint32(seq), Ack: uint32(ack), Flags: flags,
	}, 0)
	e.finishPacket(p, wire.TCPHeaderLen)
}

func (e *Engine) newPacket(local, remote netip.AddrPort) *Packet {
	p := e.pool.get()
	p.Src, p.Dst = local.Addr(), remote.Addr()
	return p
}

// finishPacket computes the checksum of a segment of n bytes over the
// pseudo-header of its family and queues it. Both addresses are of one
// family and unmapped: Listen, Connect and Input admit no other.
func (e *Engine) finishPacket(p *Packet, n int) {
	p.end = Headroom + n
	seg := wire.TCP(p.buf[Headroom:p.end])
	if e.cfg.ChecksumOffload {
		// The sum from the TCP header on, over the field as it is, is the
		// checksum: what virtio's NEEDS_CSUM with csum_start at the TCP
		// header asks the receiver of the packet to add.
		seg.SetChecksum(^wire.Fold(wire.PseudoHeaderSumAddr(p.Src, p.Dst, wire.ProtoTCP, n)))
		p.partial = true
	} else {
		seg.ComputeChecksumAddr(p.Src, p.Dst)
		p.partial = false
	}
	e.stats.SegsOut++
	e.closeChunk()
	e.out = append(e.out, p)
}

// closeChunk ends the open chunk, if any: no segment joins it any more,
// and its checksum field gets the partial sum over its whole TCP length,
// as Linux's tcp_v4_send_check leaves it for a TSO packet (the device, or
// tcp_gso_segment, adjusts it per segment). Segments that joined it did
// not touch the field; it is set once here, when the length is final.
func (e *Engine) closeChunk() {
	if p := e.chunk.pkt; p != nil {
		seg := wire.TCP(p.buf[Headroom:p.end])
		seg.SetChecksum(^wire.Fold(wire.PseudoHeaderSumAddr(p.Src, p.Dst, wire.ProtoTCP, len(seg)+p.TailLen())))
	}
	e.chunk.pkt, e.chunk.conn = nil, nil
}

func (e *Engine) wake(w Waker) {
	if w != nil {
		e.wakeups = append(e.wakeups, w)
	}
}

// segment is an inbound segment, decoded once in Input. It lives on the
// stack of Input; nothing keeps a pointer to it.
type segment struct {
	seq, ack Seq
	flags    uint8
	wnd      uint16
	payload  []byte
	opts     *wire.TCPOptions
	src, dst netip.AddrPort
	hdr      []byte // the TCP header as received, options included (an Interceptor quotes it)
	// repeat marks a segment cut from a GRO unit after its first: it
	// carries the ACK, window and options of the segment before it, which
	// the same connection has just processed (InputGRO).
	repeat bool
}

func (s *segment) has(f uint8) bool { return s.flags&f != 0 }

// segLen is SEG.LEN: payload plus one for SYN and one for FIN.
func (s *segment) segLen() int {
	n := len(s.payload)
	if s.has(wire.FlagSYN) {
		n++
	}
	if s.has(wire.FlagFIN) {
		n++
	}
	return n
}

// HeldConns returns how many connections are held against
// Config.MaxConns: those a listener made, from the SYN until TIME-WAIT or
// CLOSED.
func (e *Engine) HeldConns() int { return e.passiveConns }
