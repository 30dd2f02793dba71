package conformance

import (
	"fmt"
	"net/netip"
	"time"

	"tunstack/wire"
)

// How bursts of outbound data are seen.
//
// packetdrill's TUN offers TSO, so the kernel's TCP hands it TSO packets:
// one IP and TCP header, then the payload of several segments. Since Linux
// 4.x TCP always builds such packets (GSO), and a device without TSO only
// gets them cut into segments, so the TSO packet is the unit in which Linux
// decides what to send. The linux target shows these packets as they are.
// The in-process targets emit segments; the coalescer below merges them
// into the packets Linux would have handed the TUN. Then the runner, like
// packetdrill, aggregates consecutive packets into one script line.
//
// How Linux sizes a TSO packet (tcp_write_xmit, once per call, and for each
// packet it sends):
//
//   - tso_segs (tcp_tso_segs, tcp_tso_autosize): about a millisecond of
//     data at the pacing rate, pacing_rate >> sk_pacing_shift (10), where
//     the pacing rate is mss*cwnd/srtt times 2 in slow start (cwnd below
//     half ssthresh) and 1.2 after (tcp_update_pacing_rate); plus
//     gso_max_size (64 KiB) >> (min_rtt / 512 µs) (tcp_tso_rtt_log 9), a
//     whole 64 KiB on a path under half a millisecond, nothing past 16 ms;
//     at most 64 KiB, at least tcp_min_tso_segs (2). On a 10 ms path with
//     an initial window of ten 1460-byte segments that is 2 segments: what
//     packetdrill scripts with 10 ms round trips see. With a round trip of
//     zero it is 44.
//   - the congestion window (tcp_cwnd_test): min(cwnd/2, cwnd - in_flight)
//     segments, "at least 2 GSO packets in flight": an initial window of 10
//     goes out as 5+5 even when tso_segs is 44.
//   - the send window and Nagle (tcp_mss_split_point): the packet ends at
//     the window's edge; a partial last segment goes in only if Nagle lets
//     it go at all. The engines already stop there, so the coalescer only
//     needs to keep a run within what the stack sent.
//   - the queue's buffers (skbs): sendmsg builds them of size_goal bytes
//     (tcp_xmit_size_goal: half the peer's largest window, at most 64 KiB,
//     whole segments, at least one) and while a write runs it sends each
//     buffer as soon as it is full (tcp_push_one), before the next exists;
//     later, tcp_grow_skb lets the buffer at the head take bytes from the
//     one after it, but not further. So a packet sent during a write holds
//     at most size_goal bytes, one sent later at most twice that; this
//     matters only when the peer's window is small (under 4 segments, a
//     write goes out one segment per packet).
//   - tcp_tso_should_defer waits for a larger packet only when the previous
//     transmission was less than a millisecond ago and an ACK is due within
//     a millisecond: never with the round trips scripts use.
//   - every packet of more than one segment carries PSH (tcp_transmit_skb
//     forces it, for the receiver's GRO); in the segments a device without
//     TSO gets, PSH is then on the last segment of each TSO packet only.
//   - retransmissions are cut from the packets first sent (tcp_fragment),
//     never merged across them; loss probes and RTO retransmissions are
//     single segments.
//
// The coalescing rule. Within one batch (what a stack emits at one instant
// for one cause: an injected packet, a system call, a timer), consecutive
// segments of one connection are merged into one packet while
//
//   - they carry new data (sequence numbers past any sent before: a
//     retransmission is never merged, which is never coarser than Linux),
//     with contiguous sequence numbers;
//   - their headers are equal but for PSH, and FIN on the last (Linux
//     copies one header into every segment it cuts from a TSO packet);
//   - every segment but the last is as long as the first, the last no
//     longer;
//   - the packet stays within min(tso_segs, cwnd/2, cwnd - in_flight)
//     segments, in_flight counted before the packet from the highest
//     sequence number sent and the highest ACK received; within size_goal
//     bytes for a batch a system call produced, twice that otherwise; and
//     within 64 KiB.
//
// tso_segs comes from the stack. Our engine places PSH where Linux's
// segment view has it, at the end of each GSO-sized chunk it sizes with
// tcp_tso_autosize's rule (tcpcore's gsoChunkSegments), so on the tunstack
// target a packet ends at a segment with PSH, and a run that ends without
// one is not merged: it is what a Linux TSO packet can never look like.
// gVisor sets PSH differently, so for it tso_segs is computed with Linux's
// formula from gVisor's own cwnd, ssthresh and smoothed RTT (which stands
// in for the minimum RTT gVisor does not report).
//
// The merged packet has the first segment's headers, PSH (forced, as on
// Linux), FIN if the last segment had it, its lengths and checksums
// recomputed.
//
// What the runner does with the packets (aggregate, below) is
// packetdrill's own rule: when a script line expects more payload than the
// packet that came, the following packets of the same connection are added
// to it while they continue it (contiguous, same headers but PSH, FIN and
// CWR, each but the last as long as the one before) until the expected
// length is reached. So a line written for a whole burst matches whether a
// stack sends it as one TSO packet, as several, or segment by segment; a
// line written for one segment fails when the stack sent more in one
// packet. With --strict_segments the runner does not aggregate.

// flowKey names a connection from the stack's side.
type flowKey struct{ local, remote netip.AddrPort }

// burstInfo is what a target tells the coalescer about a connection that
// has just sent a burst.
type burstInfo struct {
	// Cwnd is the congestion window in segments; 0 if unknown, and then
	// it bounds nothing.
	Cwnd int
	// TSOSegs is Linux's tso_segs for the connection (linuxTSOSegs). 0
	// means the stack marks the end of each of its GSO-sized chunks with
	// PSH itself, and a packet ends at a PSH.
	TSOSegs int
}

// burstFlow is what the coalescer has learned about one connection from
// the packets it saw both ways.
type burstFlow struct {
	sndMax, sndUna   uint32 // highest sequence sent + 1; highest ACK received
	haveMax, haveUna bool
	ourWS, peerWS    int // window scale each side offered in its SYN; -1 none
	maxWnd           int // largest window the peer offered, bytes (tcp max_window)
}

// sndWscale is the shift applied to the peer's window field (RFC 7323
// §2.2: only when both SYNs carried the option).
func (f *burstFlow) sndWscale() int {
	if f.ourWS >= 0 && f.peerWS >= 0 {
		return f.peerWS
	}
	return 0
}

// burstCoalescer merges a target's segments into the packets Linux would
// have sent (see the rule above).
type burstCoalescer struct {
	flows map[flowKey]*burstFlow
	// info asks the target about a connection; mss is the payload of the
	// segments about to be merged.
	info func(k flowKey, mss int) burstInfo
}

func newBurstCoalescer(info func(k flowKey, mss int) burstInfo) *burstCoalescer {
	return &burstCoalescer{flows: map[flowKey]*burstFlow{}, info: info}
}

func (c *burstCoalescer) flow(k flowKey) *burstFlow {
	f := c.flows[k]
	if f == nil {
		f = &burstFlow{ourWS: -1, peerWS: -1}
		c.flows[k] = f
	}
	return f
}

// wscaleOf is the window scale option in a SYN's options, or -1.
func wscaleOf(t wire.TCP) int {
	var o wire.TCPOptions
	if wire.ParseTCPOptions(t.Options(), &o) != nil || !o.HasWScale {
		return -1
	}
	return int(o.WScale)
}

// seqAfter is a > b in sequence space (RFC 9293 §3.4).
func seqAfter(a, b uint32) bool { return int32(a-b) > 0 }

// inbound records a packet the target is about to hand the stack: the
// peer's window scale, its largest window and its highest ACK.
func (c *burstCoalescer) inbound(pkt []byte) {
	ip, t, ok := ipTCP(pkt)
	if !ok {
		return
	}
	k := flowKey{netip.AddrPortFrom(ip.dst, t.DstPort()), netip.AddrPortFrom(ip.src, t.SrcPort())}
	fl := t.Flags()
	if fl&wire.FlagRST != 0 {
		delete(c.flows, k)
		return
	}
	f := c.flow(k)
	if fl&wire.FlagSYN != 0 {
		f.peerWS = wscaleOf(t)
		if fl&wire.FlagACK != 0 {
			// Linux behaviour: an active opener's max_window starts at the
			// SYN-ACK's window, never scaled (RFC 7323 §2.2). A passive
			// opener's starts at the handshake's final ACK (its child
			// socket is made from it), so the SYN's window does not count.
			f.maxWnd = max(f.maxWnd, int(t.Window()))
		}
	} else if fl&wire.FlagACK != 0 {
		f.maxWnd = max(f.maxWnd, int(t.Window())<<f.sndWscale())
	}
	if fl&wire.FlagACK != 0 && (!f.haveUna || seqAfter(t.Ack(), f.sndUna)) {
		f.sndUna, f.haveUna = t.Ack(), true
	}
}

// sent records an outbound packet as sent.
func (f *burstFlow) sent(t wire.TCP) {
	end := t.Seq() + uint32(len(t.Payload()))
	if t.Flags()&(wire.FlagSYN|wire.FlagFIN) != 0 {
		end++
	}
	if !f.haveMax || seqAfter(end, f.sndMax) {
		f.sndMax, f.haveMax = end, true
	}
}

// batch coalesces what a target emitted at one instant for one cause;
// byCall says the cause was a system call (a write is being run). It
// returns the packets to hand the runner, in order, with the time of the
// first segment each holds.
func (c *burstCoalescer) batch(pkts []outbound, byCall bool) []outbound {
	out := make([]outbound, 0, len(pkts))
	for i := 0; i < len(pkts); {
		ip, t, ok := ipTCP(pkts[i].pkt)
		if !ok {
			out = append(out, pkts[i])
			i++
			continue
		}
		k := flowKey{netip.AddrPortFrom(ip.src, t.SrcPort()), netip.AddrPortFrom(ip.dst, t.DstPort())}
		f := c.flow(k)
		if t.Flags()&wire.FlagSYN != 0 {
			f.ourWS = wscaleOf(t)
		}
		n := 1
		if c.newData(f, t) {
			n = c.run(pkts[i:], f, k, byCall)
		}
		if n == 1 {
			out = append(out, pkts[i])
		} else {
			out = append(out, outbound{mergeSegments(pkts[i : i+n]), pkts[i].at})
		}
		for _, p := range pkts[i : i+n] {
			_, pt, _ := ipTCP(p.pkt)
			f.sent(pt)
		}
		i += n
	}
	return out
}

// newData reports whether t may start a merged packet: an ACK carrying
// new data, no SYN, RST or URG.
func (c *burstCoalescer) newData(f *burstFlow, t wire.TCP) bool {
	fl := t.Flags()
	if len(t.Payload()) == 0 || fl&wire.FlagACK == 0 || fl&(wire.FlagSYN|wire.FlagRST|wire.FlagURG) != 0 {
		return false
	}
	// Linux behaviour: retransmissions are cut from the packets first
	// sent, never merged across them; merging none is never coarser.
	return !f.haveMax || !seqAfter(f.sndMax, t.Seq())
}

// run returns how many segments from the start of pkts go into one packet
// (1: the first goes alone).
func (c *burstCoalescer) run(pkts []outbound, f *burstFlow, k flowKey, byCall bool) int {
	first := pkts[0].pkt
	h0, t0, _ := ipTCP(first)
	mss := len(t0.Payload())
	info := c.info(k, mss)
	// The IPv4 total length, or the IPv6 payload length, is 16 bits; the
	// first counts the IP header, the second does not.
	counted := len(first) - mss
	if h0.v6 {
		counted -= wire.IPv6HeaderLen
	}
	limit := (0xffff - counted) / mss
	if info.TSOSegs > 0 {
		limit = min(limit, info.TSOSegs)
	}
	if info.Cwnd > 0 {
		// Linux behaviour (tcp_cwnd_test): at most half the window per
		// packet, and no more than the window has room for.
		inFlight := 0
		if f.haveMax && f.haveUna && seqAfter(f.sndMax, f.sndUna) {
			inFlight = (int(f.sndMax-f.sndUna) + mss - 1) / mss
		}
		limit = min(limit, max(min(max(info.Cwnd/2, 1), info.Cwnd-inFlight), 1))
	}
	if f.maxWnd > 0 {
		// Linux behaviour: a write sends each size_goal buffer as it
		// fills; later the head buffer grows by the next one only.
		goal := sizeGoalSegs(f.maxWnd, mss)
		if !byCall {
			goal *= 2
		}
		limit = min(limit, goal)
	}
	pshEnds := info.TSOSegs == 0
	n, next := 1, t0.Seq()+uint32(mss)
	prev := t0
	for n < len(pkts) && n < limit {
		if pkts[n].at != pkts[0].at || len(prev.Payload()) != mss || prev.Flags()&wire.FlagFIN != 0 ||
			pshEnds && prev.Flags()&wire.FlagPSH != 0 {
			break
		}
		_, t, ok := ipTCP(pkts[n].pkt)
		if !ok || t.Seq() != next || len(t.Payload()) == 0 || len(t.Payload()) > mss || !sameSegmentHeaders(first, pkts[n].pkt) {
			break
		}
		next += uint32(len(t.Payload()))
		prev = t
		n++
	}
	// A stack that marks its own chunks ends each with PSH: a run that
	// stops short of one (and of the limit) is not a chunk.
	if pshEnds && n > 1 && n < limit && prev.Flags()&wire.FlagPSH == 0 {
		return 1
	}
	return n
}

// sameSegmentHeaders reports whether p's headers equal first's in every
// byte Linux copies from a TSO packet's header into the segments cut from
// it: all but the IP total length, id and checksum, the TCP sequence
// number and checksum, and PSH and FIN.
func sameSegmentHeaders(first, p []byte) bool {
	h0, t0, _ := ipTCP(first)
	h, t, _ := ipTCP(p)
	ip := h0.hdrLen
	hdr := ip + t0.DataOffset()
	if t.DataOffset() != t0.DataOffset() || h.v6 != h0.v6 {
		return false
	}
	if h0.v6 {
		// IPv6: version, traffic class and flow label; next header and
		// hop limit; addresses.
		if string(first[0:4]) != string(p[0:4]) || string(first[6:40]) != string(p[6:40]) {
			return false
		}
	} else if first[0] != p[0] || first[1] != p[1] || string(first[6:10]) != string(p[6:10]) || string(first[12:20]) != string(p[12:20]) {
		// IPv4: version/IHL and TOS; flags, TTL and protocol; addresses.
		return false
	}
	// TCP: ports; ack, data offset, flags but PSH and FIN, window; urgent
	// pointer and options.
	const pf = wire.FlagPSH | wire.FlagFIN
	return string(first[ip:ip+4]) == string(p[ip:ip+4]) && string(first[ip+8:ip+13]) == string(p[ip+8:ip+13]) &&
		first[ip+13]&^pf == p[ip+13]&^pf && string(first[ip+14:ip+16]) == string(p[ip+14:ip+16]) &&
		string(first[ip+18:hdr]) == string(p[ip+18:hdr])
}

// mergeSegments builds the TSO packet that carries segs: the first's
// headers with PSH, FIN from the last, the payloads in order, lengths and
// checksums computed.
func mergeSegments(segs []outbound) []byte {
	first := segs[0].pkt
	h, t0, _ := ipTCP(first)
	hdr := h.hdrLen + t0.DataOffset()
	b := append([]byte(nil), first[:hdr]...)
	for _, s := range segs {
		_, t, _ := ipTCP(s.pkt)
		b = append(b, t.Payload()...)
	}
	setIPLength(b)
	_, last, _ := ipTCP(segs[len(segs)-1].pkt)
	// Linux behaviour (tcp_transmit_skb): PSH on every packet of more than
	// one segment; FIN is the last segment's.
	b[h.hdrLen+13] = b[h.hdrLen+13]&^wire.FlagFIN | wire.FlagPSH | last.Flags()&wire.FlagFIN
	wire.TCP(b[h.hdrLen:]).ComputeChecksumAddr(h.src, h.dst)
	return b
}

// sizeGoalSegs is tcp_xmit_size_goal in segments of mss bytes: half the
// peer's largest window (the whole of one of 536 bytes or less,
// tcp_bound_to_half_wnd), at most 64 KiB (gso_max_size), whole segments,
// at least one.
func sizeGoalSegs(maxWnd, mss int) int {
	cutoff := maxWnd
	if maxWnd > 536 {
		cutoff = maxWnd / 2
	}
	return max(min(65536, cutoff)/mss, 1)
}

// linuxTSOSegs is tcp_tso_segs for a connection sending mss-byte segments
// with the given congestion state: about 1 ms of data at the pacing rate
// (sk_pacing_shift 10) plus 64 KiB halved per 512 µs of minimum RTT, at
// most 64 KiB, at least minSegs (tcp_min_tso_segs). Without an RTT sample
// the pacing rate is unlimited and so is the burst (64 KiB).
func linuxTSOSegs(mss, cwnd, ssthresh, packetsOut int, srtt, minRTT time.Duration, minSegs int) int {
	const gsoMaxSize = 65536
	if mss <= 0 {
		return max(minSegs, 1)
	}
	bytes := uint64(gsoMaxSize)
	if us := srtt.Microseconds(); us > 0 {
		// tcp_update_pacing_rate: mss*cwnd/srtt, times 2 in slow start
		// (cwnd below half ssthresh), 1.2 after.
		ratio := uint64(120)
		if cwnd < ssthresh/2 {
			ratio = 200
		}
		rate := uint64(mss) * ratio * uint64(max(cwnd, packetsOut)) * 10000 / uint64(us)
		bytes = rate >> 10
		if r := minRTT.Microseconds() >> 9; r < 32 {
			bytes += gsoMaxSize >> r
		}
	}
	bytes = min(bytes, gsoMaxSize)
	return max(int(bytes)/mss, minSegs, 1)
}

// aggregate is packetdrill's aggregation of consecutive outbound packets
// for a script line that expects more payload than got carries: next joins
// got if it continues it, and the result has got's sequence number and
// CWR and next's other headers (flags, options, window). lastLen is the
// payload of the last packet aggregated into got (got's own if none was),
// remaining how much payload the line still expects beyond got. The
// string says why next does not continue got ("" when it does).
func aggregate(got *seen, lastLen int, next *seen, remaining int) (*seen, string) {
	switch {
	case next.srcPort != got.srcPort || next.dstPort != got.dstPort:
		return nil, "a packet of another connection"
	case next.seq != got.seq+uint32(got.payload):
		return nil, fmt.Sprintf("its sequence number is %d bytes past the first's, not %d", next.seq-got.seq, got.payload)
	case next.tcp.DataOffset() != got.tcp.DataOffset():
		return nil, "its TCP header length differs"
	case (next.flags^got.flags)&^(wire.FlagPSH|wire.FlagFIN|wire.FlagCWR) != 0:
		return nil, fmt.Sprintf("flags %s after %s", FlagString(next.flags), FlagString(got.flags))
	case next.ack != got.ack:
		return nil, fmt.Sprintf("ack %d after %d", next.ack, got.ack)
	case next.tcp.Window() != got.tcp.Window():
		return nil, fmt.Sprintf("window %d after %d", next.tcp.Window(), got.tcp.Window())
	case next.tcp.Urgent() != got.tcp.Urgent():
		return nil, "its urgent pointer differs"
	case next.ip.tos != got.ip.tos || next.ip.ttl != got.ip.ttl || next.ip.flowLabel != got.ip.flowLabel:
		return nil, "its IP header differs"
	case next.payload < remaining && next.payload != lastLen:
		// Every packet but the last is as long as the one before.
		return nil, fmt.Sprintf("%d bytes after a packet of %d", next.payload, lastLen)
	}
	m := *next
	m.seq = got.seq
	m.payload = got.payload + next.payload
	m.flags = next.flags&^wire.FlagCWR | got.flags&wire.FlagCWR
	return &m, ""
}

// aggregateFor adds to got, which arrived at at, the packets that continue
// it while the script line ev expects more payload (aggregate), waiting for
// each until deadline. It returns the aggregate and the arrival time of
// its last packet, which is the time packetdrill checks.
func (r *runner) aggregateFor(ev *Event, got *seen, at, deadline time.Duration) (*seen, time.Duration, error) {
	want := ev.Packet
	last := got.payload
	for got.payload < want.Len {
		if len(r.queue) == 0 {
			if err := r.pumpUntil(deadline, true); err != nil {
				return nil, 0, err
			}
		}
		if len(r.queue) == 0 {
			return nil, 0, r.fail(ev, fmt.Sprintf("expected packet did not arrive whole by %.4fs: %d of its %d bytes came", deadline.Seconds(), got.payload, want.Len),
				PacketString(want), got.String(r.localISN))
		}
		q := r.queue[0]
		m, why := aggregate(got, last, q.pkt, want.Len-got.payload)
		if why != "" {
			return nil, 0, r.fail(ev, fmt.Sprintf("%d of the %d bytes expected came, then a packet that cannot continue them at %.4fs: %s", got.payload, want.Len, q.at.Seconds(), why),
				PacketString(want), q.pkt.String(r.localISN))
		}
		r.queue = r.queue[1:]
		r.trace("joined > %s", q.pkt.String(r.localISN))
		got, at, last = m, q.at, q.pkt.payload
	}
	return got, at, nil
}

// strictSegments reports whether the run asks, with packetdrill's
// --strict_segments (an option line or the command line), for one
// outbound packet per line: no aggregation.
func (r *runner) strictSegments() bool { return r.s.Config.StrictSegments }
