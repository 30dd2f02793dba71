package stack

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync/atomic"

	"tunstack/netif"
	"tunstack/tcpcore"
	"tunstack/wire"
)

// The IP layer: the link delivers IP packets of either family; readLoop
// tells them apart by the version nibble and hands each to its family's
// input (ipv4.go, ipv6.go), which passes TCP to the engine, answers echo
// requests and feeds ICMP errors about our packets to the engine; the
// writer puts the header of each segment's family in front of it.

// readBatch is how many packets the reader takes from the link per call:
// enough to amortize the lock and the output flush over a window's worth of
// ACKs, small enough that the buffers (readBatch*MTU) stay modest.
const readBatch = 64

// IPStats counts what the IP layer did with the packets the link
// delivered, and how link writes went. The first group counts IPv4 and
// both families together where noted; the second IPv6 alone.
type IPStats struct {
	PacketsIn       uint64 // packets read from the link, both families (PacketsIn6 of them IPv6)
	TCPIn           uint64 // TCP segments handed to the engine, both families
	EchoReplies     uint64 // ICMP echo requests answered
	Malformed       uint64 // failed IPv4 header validation, or an IPv4 version nibble that is neither 4 nor 6
	Fragments       uint64 // dropped: fragments are not reassembled
	NotForUs        uint64 // dropped: destination is not our address
	OtherProtocol   uint64 // dropped: not TCP nor an ICMP message we take
	ICMPErrorsIn    uint64 // ICMP and ICMPv6 errors about our packets handed to the engine (both families)
	PacketsOut      uint64 // packets written to the link, both families (PacketsOut6 of them IPv6)
	LinkWriteErrors uint64 // WritePackets calls that failed
	LinkReadErrors  uint64 // ReadPackets failures other than a closed link (input stops)

	PacketsIn6      uint64 // IPv6 packets read from the link
	PacketsOut6     uint64 // IPv6 packets written to the link
	NoIPv6          uint64 // IPv6 packets dropped because Config.Addr6 is zero
	Malformed6      uint64 // dropped: a bad IPv6 header or extension header chain (Linux's Ip6InHdrErrors), Parameter Problems about a field or an option included
	Truncated6      uint64 // dropped: the Payload Length runs past what the link read (Ip6InTruncatedPkts)
	UnknownNext6    uint64 // dropped with a Parameter Problem: an unrecognised Next Header (Ip6InUnknownProtos)
	Fragments6      uint64 // dropped: IPv6 fragments are not reassembled
	NotForUs6       uint64 // dropped: destination is not our IPv6 address
	OptionDiscards6 uint64 // dropped silently as an unrecognised option's type asks (RFC 8200 §4.2)
	EchoReplies6    uint64 // ICMPv6 echo requests answered
	ICMPv6In        uint64 // ICMPv6 messages received, bad ones included (Icmp6InMsgs)
	ICMPv6InErrors  uint64 // ICMPv6 messages dropped: short, a bad checksum, or an error that named none of our connections (Icmp6InErrors)
	NDIgnored       uint64 // router and neighbour solicitations, advertisements and MLD reports, ignored
	OtherProtocol6  uint64 // dropped: no next header, or an ICMPv6 message we do not take
	ParamProblems6  uint64 // ICMPv6 Parameter Problems sent (unknown next header, option or field)
	RateLimited6    uint64 // ICMPv6 errors not sent: over the rate limit (icmpv6Limiter)

	// PassedOn counts, on a stack of shards (NewShards), the TCP
	// segments and ICMP errors about them that arrived on one shard's
	// link for a connection another shard runs, and went to that shard.
	PassedOn uint64
}

type ipCounters struct {
	packetsIn, tcpIn, echoReplies, malformed, fragments, notForUs, otherProto atomic.Uint64
	icmpErrorsIn, packetsOut, linkWriteErrors, linkReadErrors                 atomic.Uint64

	packetsIn6, packetsOut6                                                  atomic.Uint64
	noIPv6, malformed6, fragments6, notForUs6, optionDiscards6, echoReplies6 atomic.Uint64
	truncated6, unknownNext6, icmp6In, icmp6InErrors                         atomic.Uint64
	ndIgnored, otherProto6, paramProblems6, rateLimited6                     atomic.Uint64

	passedOn atomic.Uint64
}

// IPStats returns the IP layer's counters.
func (s *Stack) IPStats() IPStats {
	if s.grp != nil {
		return sumOver(s.grp, (*Stack).ipStats1)
	}
	return s.ipStats1()
}

func (s *Stack) ipStats1() IPStats {
	c := &s.ipStats
	return IPStats{
		PacketsIn: c.packetsIn.Load(), TCPIn: c.tcpIn.Load(), EchoReplies: c.echoReplies.Load(),
		Malformed: c.malformed.Load(), Fragments: c.fragments.Load(), NotForUs: c.notForUs.Load(),
		OtherProtocol: c.otherProto.Load(), ICMPErrorsIn: c.icmpErrorsIn.Load(), PacketsOut: c.packetsOut.Load(),
		LinkWriteErrors: c.linkWriteErrors.Load(), LinkReadErrors: c.linkReadErrors.Load(),

		PacketsIn6: c.packetsIn6.Load(), PacketsOut6: c.packetsOut6.Load(),
		NoIPv6: c.noIPv6.Load(), Malformed6: c.malformed6.Load(), Fragments6: c.fragments6.Load(),
		NotForUs6: c.notForUs6.Load(), OptionDiscards6: c.optionDiscards6.Load(), EchoReplies6: c.echoReplies6.Load(),
		NDIgnored: c.ndIgnored.Load(), OtherProtocol6: c.otherProto6.Load(), ParamProblems6: c.paramProblems6.Load(),
		RateLimited6: c.rateLimited6.Load(), Truncated6: c.truncated6.Load(), UnknownNext6: c.unknownNext6.Load(),
		ICMPv6In: c.icmp6In.Load(), ICMPv6InErrors: c.icmp6InErrors.Load(),
		PassedOn: c.passedOn.Load(),
	}
}

// replies collects the packets the reader answers with itself (echo
// replies, ICMPv6 Parameter Problems), written after the batch, in
// buffers allocated once.
type replies struct {
	bufs [][]byte
	out  [][]byte
	kind []replyKind // what each of out is, for the counters
}

type replyKind uint8

const (
	echoReply4 replyKind = iota
	echoReply6
	paramProblem6
	relayUnreachable // a relay frontend's ICMP or ICMPv6 port unreachable (intercept.go)
)

// buf returns the buffer for the next reply, nil if the batch's are used.
func (r *replies) buf() []byte {
	if len(r.out) == len(r.bufs) {
		return nil
	}
	return r.bufs[len(r.out)]
}

func (r *replies) add(n int, k replyKind) {
	r.out = append(r.out, r.bufs[len(r.out)][:n])
	r.kind = append(r.kind, k)
}

// readLoop is the link reader: it reads packets in batches, with their
// descriptors (netif.DescReader: a link without them is read through
// ReadPackets), into an arena allocated once, demultiplexes them by IP
// version (ipv4.go, ipv6.go), and flushes the engine's output once per
// batch rather than once per packet. A TSO packet from the TUN goes to
// the engine whole, as one GRO unit, its checksum trusted where the
// kernel built it.
func (s *Stack) readLoop() {
	defer s.wg.Done()
	dr := netif.NewDescReader(s.link)
	// Room for a batch of full-sized packets, and for several reads of
	// the largest TSO packet where the link delivers those.
	arena := make([]byte, max(readBatch*s.mtu, 4*dr.DescRoom()))
	pkts := make([][]byte, readBatch)
	descs := make([]netif.Desc, readBatch)
	// One reply at most per packet read; an ICMPv6 error needs room for
	// the minimum MTU (New refuses IPv6 on a smaller link).
	rp := replies{bufs: make([][]byte, readBatch), out: make([][]byte, 0, readBatch), kind: make([]replyKind, 0, readBatch)}
	for i := range rp.bufs {
		rp.bufs[i] = make([]byte, s.mtu)
	}
	st := &s.ipStats
	waker := netif.ReadWakerOf(s.link)
	drain := false // this read was woken before it began: it took what was queued, without waiting
	for {
		n, err := dr.ReadDescs(arena, pkts, descs)
		if err != nil {
			// A closed link ends the stack's input. Any other read error
			// means a broken link; retrying would spin, so it ends input
			// too, counted so that it is not silent.
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				st.linkReadErrors.Add(1)
			}
			s.readerStopped()
			return
		}
		st.packetsIn.Add(uint64(n))
		rp.out, rp.kind = rp.out[:0], rp.kind[:0]
		s.mu.Lock()
		now := s.now()
		for i := range n {
			b, d := pkts[i], descs[i]
			m := tcpcore.InputMeta{ChecksumOK: d.Csum != netif.CsumNone}
			if d.GSO != netif.GSONone {
				m.SegSize = d.GSOSize
			}
			switch {
			case len(b) > 0 && b[0]>>4 == 4:
				s.input4(now, wire.IPv4(b), m, &rp)
			case len(b) > 0 && b[0]>>4 == 6:
				st.packetsIn6.Add(1)
				s.input6(now, wire.IPv6(b), m, &rp)
			default:
				st.malformed.Add(1)
			}
		}
		if s.tm.toReader {
			// Timers fell due (timer.go, engineTimer): they run once
			// the input the link held then is in. Until then every
			// read is woken before it begins, so that it takes what
			// is queued without waiting, a full batch if there is one
			// (a read that waited returns with the one packet that
			// woke it); a woken read short of a full batch ended on
			// an empty queue (or on a full arena, after a TSO packet:
			// the timers then run a batch early). The queue held at
			// most QueueLen packets when they fell due.
			s.tm.sinceDue += n
			if drain && n < readBatch || s.tm.sinceDue >= waker.QueueLen() {
				s.tm.toReader = false
				s.e.Advance(s.now())
			}
		}
		drain = s.tm.toReader
		// Input that ends connections (a reset, the last ACK) gives
		// their buffers to the engine's pool without any Output to
		// arm the trim.
		s.armTrim()
		var held []*tcpcore.HeldSyn
		front := s.front
		if front != nil {
			held = front.held()
		}
		s.unlockFlush()
		if len(s.ho.pkts) > 0 {
			s.passOnAll()
		}
		if len(rp.out) > 0 {
			s.writeReplies(&rp)
		}
		if len(held) > 0 {
			front.hand(held)
		}
		if drain {
			waker.WakeRead()
		}
	}
}

// readerStopped hands the timers back to the timer loop when the reader
// ends: timers it was to run fire at once there.
func (s *Stack) readerStopped() {
	s.mu.Lock()
	s.tm.readerGone = true
	if s.tm.toReader {
		s.tm.toReader = false
		s.rearmTimer()
	}
	s.mu.Unlock()
}

// writeReplies counts the reader's own answers and writes them.
func (s *Stack) writeReplies(rp *replies) {
	st := &s.ipStats
	for _, k := range rp.kind {
		switch k {
		case echoReply4:
			st.echoReplies.Add(1)
		case echoReply6:
			st.echoReplies6.Add(1)
		case paramProblem6:
			st.paramProblems6.Add(1)
		}
	}
	s.writeOwn(rp.out)
}

// writeOwn writes packets the stack built itself, not the engine: the
// reader's replies and the relay frontend's ICMP errors. They are counted
// before the write, as Linux counts an ICMP message when it builds it
// (icmp_out_count() before the packet goes to the device): whoever
// receives one must find it already in the counters, and one the device
// refuses still counts, with the write error beside it.
func (s *Stack) writeOwn(pkts [][]byte) {
	st := &s.ipStats
	st.packetsOut.Add(uint64(len(pkts)))
	if n6 := countIPv6(pkts); n6 > 0 {
		st.packetsOut6.Add(uint64(n6))
	}
	if _, err := s.link.WritePackets(pkts); err != nil {
		st.linkWriteErrors.Add(1)
	}
}

// ipWriter puts the network header of each segment's family in front of
// it, in the headroom the engine left for it (IPv4 in ipv4.go, IPv6 in
// ipv6.go), and writes the batch to the link. Only the goroutine holding
// the stack's writing flag uses it, so its scratch slice and ID counter
// need no lock.
//
// On a link that takes descriptors (netif.DescWriter) the engine leaves
// checksums partial (tcpcore.Config.ChecksumOffload) and each packet goes
// with a descriptor saying so, for the link or the kernel to finish.
type ipWriter struct {
	id      uint16           // IPv4 identification, incremented per packet
	flowKey uint32           // keys the IPv6 flow labels (flowLabel)
	pkts    [][]byte         // scratch: the framed packets of one batch
	dw      netif.DescWriter // the link's, if it takes descriptors
	descs   []netif.Desc     // scratch: pkts' descriptors, with dw
}

func (w *ipWriter) write(s *Stack, batch []*tcpcore.Packet) {
	w.pkts, w.descs = w.pkts[:0], w.descs[:0]
	for _, p := range batch {
		d := netif.Desc{CsumStart: wire.IPv4HeaderLen}
		if p.Src.Is4() {
			w.pkts = append(w.pkts, w.frame4(p))
		} else {
			w.pkts = append(w.pkts, w.frame6(p))
			d.CsumStart = wire.IPv6HeaderLen
		}
		if w.dw != nil {
			if p.ChecksumPartial() {
				d.Csum = netif.CsumPartial
			}
			// A zero-copy chunk's payload (tcpcore.Config.ZeroCopyChunks,
			// on with GSO) follows its header in the send buffer.
			d.Tail[0], d.Tail[1] = p.Tail()
			if size := p.SegmentSize(); size > 0 {
				// A chunk (tcpcore.Config.SegmentOffload, on when
				// the link takes GSO packets).
				d.GSO, d.GSOSize = netif.GSOTCPv4, size
				if p.Dst.Is6() {
					d.GSO = netif.GSOTCPv6
				}
			}
			w.descs = append(w.descs, d)
		}
	}
	// A link may refuse one packet (too big for it) and report how many
	// it sent before that one; the rest of the batch still goes out.
	for off := 0; off < len(w.pkts); {
		var n int
		var err error
		if w.dw != nil {
			n, err = w.dw.WriteDescs(w.pkts[off:], w.descs[off:])
		} else {
			n, err = s.link.WritePackets(w.pkts[off:])
		}
		// Counted in segments, a chunk as the segments it carries.
		segs, segs6 := 0, 0
		for i, p := range batch[off : off+n] {
			segs += p.Segments()
			if w.pkts[off+i][0]>>4 == 6 {
				segs6 += p.Segments()
			}
		}
		s.ipStats.packetsOut.Add(uint64(segs))
		if segs6 > 0 {
			s.ipStats.packetsOut6.Add(uint64(segs6))
		}
		off += n
		if err == nil {
			break
		}
		s.ipStats.linkWriteErrors.Add(1)
		if errors.Is(err, net.ErrClosed) {
			break
		}
		off++ // skip the refused packet
	}
	clear(w.pkts) // do not keep the engine's buffers reachable
	clear(w.descs)
}

// countIPv6 counts the IPv6 packets of a batch, by their version nibble.
func countIPv6(pkts [][]byte) int {
	n := 0
	for _, b := range pkts {
		if b[0]>>4 == 6 {
			n++
		}
	}
	return n
}

// flowKey derives the IPv6 flow-label key from the stack's secret.
func flowKey(secret [32]byte) uint32 {
	return binary.BigEndian.Uint32(secret[28:]) ^ 0x9e3779b9
}
