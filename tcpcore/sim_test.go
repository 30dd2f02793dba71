package tcpcore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"tunstack/policy"
	"tunstack/wire"
)

// sim connects two engines through a virtual link with a fixed one-way
// delay and optional seeded loss. Time jumps from event to event.
type sim struct {
	t        testing.TB
	a, b     *Engine
	now      Time
	delay    time.Duration
	loss     float64
	rng      *rand.Rand
	inflight []simPkt
	dropped  int
	// Optional impairments, per packet: reordering (an extra delay),
	// duplication, and a bottleneck (rate in bytes/s with a packet queue
	// that drops on overflow), each direction its own queue.
	reorder float64
	dup     float64
	// spike is the probability that a packet is held up 250 ms to 1 s:
	// long enough for the sender's timer to fire first, so that its
	// retransmission is spurious and the original's arrival undoes the
	// reduction (F-RTO, timestamps, D-SACK).
	spike      float64
	rateBps    float64
	queueLimit int
	busyUntil  map[*Engine]Time
	queued     map[*Engine][]Time // departure times of queued packets
	queueDrops int
	// What a capture on the link would call retransmissions: segments each
	// engine sent whose sequence range it had sent before (rtxCapture).
	cap rtxCapture
	// resendLimit, if not zero, fails the test as soon as one byte has
	// been retransmitted more often than that (transfer sets it).
	resendLimit uint16
	// counters of the sending connection of the last transfer
	aFast, aRTO uint64
	aUndo       uint64
	lastRcvBuf  int // receiver's buffer at the end of the last transfer
	// capacities of the sender's send ring and the receiver's receive ring
	// at the end of the last transfer
	lastSndRing, lastRcvRing int
}

type simPkt struct {
	at       Time
	to       *Engine
	src, dst netip.Addr
	data     []byte
}

var (
	simA = netip.MustParseAddr("10.0.0.1")
	simB = netip.MustParseAddr("10.0.0.2")
)

func newSim(t testing.TB, prof *policy.Profile, delay time.Duration, loss float64, seed uint64) *sim {
	if prof == nil {
		prof = policy.Linux()
	}
	chunks, zc := *simChunks, *simChunks && *simZeroCopy
	a, err := NewEngine(Config{Profile: prof, MTU: 1500, Secret: [32]byte{1}, ChecksumOffload: chunks, SegmentOffload: chunks, ZeroCopyChunks: zc})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewEngine(Config{Profile: prof, MTU: 1500, Secret: [32]byte{2}, ChecksumOffload: chunks, SegmentOffload: chunks, ZeroCopyChunks: zc})
	return &sim{t: t, a: a, b: b, now: Time(time.Second), delay: delay, loss: loss,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (s *sim) other(e *Engine) *Engine {
	if e == s.a {
		return s.b
	}
	return s.a
}

// flush moves every engine's output onto the link.
func (s *sim) flush() {
	for _, e := range []*Engine{s.a, s.b} {
		pkts := e.Output(nil)
		for _, p := range pkts {
			if p.ChecksumPartial() {
				// -sim.chunks: the link cuts chunks and finishes
				// checksums, as a TUN does.
				for _, seg := range cutChunk(p) {
					wire.TCP(seg).SetChecksum(wire.Fold(wire.Checksum(seg, 0)))
					s.send(e, p.Src, p.Dst, seg)
				}
				continue
			}
			s.send(e, p.Src, p.Dst, p.Segment())
		}
		e.Release(pkts)
		for _, w := range e.Wakeups() {
			w.Wake()
		}
	}
}

// send puts segment seg, which e sent, on the link (or loses it).
func (s *sim) send(e *Engine, src, dst netip.Addr, seg []byte) {
	s.cap.note(e, seg)
	s.checkResends()
	if s.loss > 0 && s.rng.Float64() < s.loss {
		s.dropped++
		return
	}
	at, ok := s.bottleneck(e, len(seg)+20)
	if !ok {
		s.queueDrops++
		return
	}
	at = at.Add(s.delay)
	if s.reorder > 0 && s.rng.Float64() < s.reorder {
		at = at.Add(time.Duration(1+s.rng.IntN(3)) * s.delay / 2)
	}
	if s.spike > 0 && s.rng.Float64() < s.spike {
		at = at.Add(250*time.Millisecond + time.Duration(s.rng.IntN(750))*time.Millisecond)
	}
	pkt := simPkt{at: at, to: s.other(e), src: src, dst: dst, data: append([]byte(nil), seg...)}
	s.inflight = append(s.inflight, pkt)
	if s.dup > 0 && s.rng.Float64() < s.dup {
		pkt.at = pkt.at.Add(time.Millisecond)
		s.inflight = append(s.inflight, pkt)
	}
}

// step runs the next event (a delivery or a timer) and reports false when
// nothing is left to happen.
func (s *sim) step() bool {
	s.flush()
	next := noDeadline
	for _, p := range s.inflight {
		next = min(next, p.at)
	}
	for _, e := range []*Engine{s.a, s.b} {
		if d, ok := e.NextDeadline(); ok {
			next = min(next, d)
		}
	}
	if next == noDeadline {
		return false
	}
	if next > s.now {
		s.now = next
	}
	kept := s.inflight[:0]
	var due []simPkt
	for _, p := range s.inflight {
		if p.at <= s.now {
			due = append(due, p)
		} else {
			kept = append(kept, p)
		}
	}
	s.inflight = kept
	for _, p := range due {
		p.to.Input(s.now, p.src, p.dst, p.data)
	}
	s.a.Advance(s.now)
	s.b.Advance(s.now)
	s.flush()
	return true
}

// runUntil steps until cond holds, failing after limit of virtual time.
func (s *sim) runUntil(cond func() bool, limit time.Duration) {
	s.t.Helper()
	end := s.now.Add(limit)
	for !cond() {
		if !s.step() || s.now > end {
			s.t.Fatalf("condition not reached by %v of virtual time (now %v)", limit, time.Duration(s.now))
		}
	}
}

// transfer moves n pseudo-random bytes from a connection on engine a to
// one on engine b through the simulated link, then closes both directions,
// and checks SHA-256 equality.
func transfer(t testing.TB, s *sim, n int) {
	t.Helper()
	s.resendLimit = maxResendsPerByte
	la := netip.AddrPortFrom(simB, 80)
	l, err := s.b.Listen(s.now, la, 128, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := s.a.Connect(s.now, netip.AddrPortFrom(simA, 0), la, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	// The client writes once it is connected, as applications do, and
	// the server's application accepts when it can: a client that waited
	// for the server's accept would wait for good when its handshake's
	// last ACK and every retransmission of the SYN-ACK it answers are
	// lost (the server's SYN-RECV gives up, Linux tcp_synack_retries, and
	// only data from the client would complete the handshake). The
	// handshake has the whole of the SYN's retransmission schedule (Linux
	// tcp_syn_retries of 6 gives up after 127 s).
	s.runUntil(func() bool { return cli.Connected() || cli.State() == Closed }, 3*time.Minute)
	if cli.State() != Established {
		t.Fatalf("client state %v err %v after %d SYN retransmissions", cli.State(), cli.HardErr(), cli.Info().Counters.SYNRetransmits)
	}
	var srv *Conn
	src := make([]byte, n)
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	want := sha256.Sum256(src)
	h := sha256.New()
	got := 0
	sent := 0
	buf := make([]byte, 32<<10)
	eof := false
	s.runUntil(func() bool {
		for sent < n {
			m, err := cli.Write(s.now, src[sent:min(sent+16<<10, n)])
			if errors.Is(err, ErrWouldBlock) {
				break
			}
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			sent += m
			if sent == n {
				cli.Close(s.now)
			}
		}
		if srv == nil {
			if srv, _ = l.Accept(s.now); srv == nil {
				return false
			}
		}
		for {
			m, err := srv.Read(s.now, buf)
			if m > 0 {
				h.Write(buf[:m])
				got += m
			}
			if err == io.EOF {
				eof = true
				break
			}
			if errors.Is(err, ErrWouldBlock) {
				break
			}
			if err != nil {
				t.Fatalf("read after %d bytes: %v", got, err)
			}
		}
		return eof
	}, 30*time.Minute)
	if got != n || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("received %d of %d bytes, sha256 match %v", got, n, bytes.Equal(h.Sum(nil), want[:]))
	}
	s.aFast, s.aRTO = cli.Info().Counters.FastRetransmits, cli.Info().Counters.RTORetransmits
	s.aUndo = cli.Info().Counters.SpuriousUndos
	s.lastRcvBuf = srv.ReadBuffer()
	s.lastSndRing, s.lastRcvRing = cli.sndBuf.Cap(), srv.rcvBuf.Cap()
	srv.Close(s.now)
	s.runUntil(func() bool { return s.a.ConnCount() == 0 && s.b.ConnCount() == 0 },
		2*s.a.prof.TimeWaitLen+time.Minute)
	checkRetransmitKinds(t, "sender", cli.Info().Counters, s.cap.seen[s.a])
	checkRetransmitKinds(t, "receiver", srv.Info().Counters, s.cap.seen[s.b])
}

// rtxCapture counts, per sending engine, the segments a capture would call
// retransmissions: SYN, data or FIN whose sequence range starts below the
// highest sequence number that flow had sent before. It knows nothing of
// the engine's reasons, only what went on the wire.
type rtxCapture struct {
	high map[rtxFlow]Seq
	seen map[*Engine]uint64
	// Per flow, how many times each byte of its payload went out again:
	// base is the flow's first sequence number, sent[i] counts byte
	// base+i's retransmissions (grown on demand).
	base map[rtxFlow]Seq
	sent map[rtxFlow][]uint16
	// later marks the flows whose SYN started over with another ISN: a
	// second connection on the same ports, such as the one an old
	// duplicate SYN opens after the first has closed. Its retransmissions
	// are not counted in seen, which is the first connection's.
	later map[rtxFlow]bool
	// The most retransmissions of any one byte, and where.
	maxResend    uint16
	maxResendAt  Seq
	maxResendBy  *Engine
	maxResendLen int // length of the segment that set it
}

type rtxFlow struct {
	from         *Engine
	sport, dport uint16
}

func (r *rtxCapture) note(from *Engine, seg []byte) {
	if r.high == nil {
		r.high, r.seen = map[rtxFlow]Seq{}, map[*Engine]uint64{}
		r.base, r.sent = map[rtxFlow]Seq{}, map[rtxFlow][]uint16{}
		r.later = map[rtxFlow]bool{}
	}
	t := wire.TCP(seg)
	span := len(t.Payload())
	if t.Flags()&wire.FlagSYN != 0 {
		span++
	}
	if t.Flags()&wire.FlagFIN != 0 {
		span++
	}
	if span == 0 || t.Flags()&wire.FlagRST != 0 {
		return // ACKs, window probes and keepalives occupy no sequence space
	}
	f := rtxFlow{from, t.SrcPort(), t.DstPort()}
	seq := Seq(t.Seq())
	high, ok := r.high[f]
	if ok && t.Flags()&wire.FlagSYN != 0 && seq != r.base[f] {
		ok = false
		r.later[f] = true
		delete(r.sent, f)
	}
	if !ok {
		r.base[f] = seq
	}
	if ok && seq.LT(high) {
		if !r.later[f] {
			r.seen[from]++
		}
		r.countResent(f, seq, t.Flags()&wire.FlagSYN != 0, len(t.Payload()), high)
	}
	if end := seq.Add(span); !ok || end.GT(high) {
		r.high[f] = end
	}
}

// countResent counts one retransmission of each payload byte of a segment
// that starts at seq below the flow's highest sequence number high (the
// part above high is sent for the first time).
func (r *rtxCapture) countResent(f rtxFlow, seq Seq, syn bool, n int, high Seq) {
	if syn {
		seq = seq.Add(1)
	}
	end := seq.Add(n)
	if end.GT(high) {
		end = high
	}
	base := r.base[f]
	if n == 0 || !seq.LT(end) || seq.LT(base) {
		return
	}
	from, to := int(seq.Sub(base)), int(end.Sub(base))
	c := r.sent[f]
	if to > len(c) {
		c = append(c, make([]uint16, to-len(c))...)
		r.sent[f] = c
	}
	for i := from; i < to; i++ {
		c[i]++
		if c[i] > r.maxResend {
			r.maxResend, r.maxResendAt, r.maxResendBy, r.maxResendLen = c[i], base.Add(i), f.from, n
		}
	}
}

// maxResendsPerByte bounds how many times the simulations may send one
// byte again. A retransmission is lost with the link's loss probability
// (at most 10% in the scenarios), so a byte that needs more than a dozen
// resends on such a link is not unlucky: its sender is looping, as a
// connection that fast-retransmits the same data hundreds of times in one
// recovery does.
const maxResendsPerByte = 12

// checkResends fails when some byte went out more than s.resendLimit
// times again (0: no limit).
func (s *sim) checkResends() {
	s.t.Helper()
	r := &s.cap
	if s.resendLimit == 0 || r.maxResend <= s.resendLimit {
		return
	}
	who := "b (receiver)"
	if r.maxResendBy == s.a {
		who = "a (sender)"
	}
	s.t.Fatalf("engine %s retransmitted a byte %d times (more than %d) by %v of virtual time: sequence %d, last in a segment of %d bytes; the sender loops in recovery",
		who, r.maxResend, s.resendLimit, time.Duration(s.now), r.maxResendAt, r.maxResendLen)
}

// checkRetransmitKinds checks that a connection's retransmissions are each
// of exactly one kind (the kinds add up to Retransmits) and that they are
// the retransmissions seen on the wire.
func checkRetransmitKinds(t testing.TB, who string, c ConnCounters, onWire uint64) {
	t.Helper()
	kinds := c.RTORetransmits + c.FastRetransmits + c.LostRetransmits + c.RescueRetransmits + c.TLPRetransmits + c.SYNRetransmits
	if kinds != c.Retransmits || c.Retransmits != onWire {
		t.Fatalf("%s: %d retransmissions on the wire; counters: Retransmits %d, by kind %d (rto %d, fast %d, lost %d, rescue %d, tlp %d, syn %d)",
			who, onWire, c.Retransmits, kinds, c.RTORetransmits, c.FastRetransmits, c.LostRetransmits, c.RescueRetransmits, c.TLPRetransmits, c.SYNRetransmits)
	}
}

func TestBulkTransferNoLoss(t *testing.T) {
	s := newSim(t, nil, 5*time.Millisecond, 0, 1)
	transfer(t, s, 8<<20)
	if r := s.a.Stats().RetransSegs; r != 0 {
		t.Fatalf("%d retransmissions on a lossless link", r)
	}
}

func TestBulkTransferWithLoss(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		s := newSim(t, nil, 10*time.Millisecond, 0.05, seed)
		transfer(t, s, 2<<20)
		if s.a.Stats().RetransSegs == 0 {
			t.Fatalf("seed %d: no retransmissions at 5%% loss (dropped %d)", seed, s.dropped)
		}
	}
}

func TestBulkTransferRFCProfile(t *testing.T) {
	s := newSim(t, policy.RFC(), 20*time.Millisecond, 0.02, 3)
	transfer(t, s, 1<<20)
}

// RFC 9293 §3.4: sequence numbers wrap modulo 2^32; a transfer that starts
// just below 2^32 crosses zero without noticing.
func TestSequenceWrapAround(t *testing.T) {
	s := newSim(t, nil, time.Millisecond, 0.01, 9)
	isnA, isnB := Seq(0xffffffff-20000), Seq(0xffffffff-3)
	s.a.isn.fixed, s.b.isn.fixed = &isnA, &isnB
	transfer(t, s, 1<<20)
}

// bottleneck returns when a packet of n bytes leaves the sender's
// bottleneck queue, or false when the queue is full (tail drop).
func (s *sim) bottleneck(from *Engine, n int) (Time, bool) {
	if s.rateBps == 0 {
		return s.now, true
	}
	if s.busyUntil == nil {
		s.busyUntil, s.queued = map[*Engine]Time{}, map[*Engine][]Time{}
	}
	q := s.queued[from]
	k := 0
	for k < len(q) && q[k] <= s.now {
		k++
	}
	q = q[k:]
	if len(q) >= s.queueLimit {
		s.queued[from] = q
		return 0, false
	}
	start := max(s.now, s.busyUntil[from])
	done := start.Add(time.Duration(float64(n) / s.rateBps * float64(time.Second)))
	s.busyUntil[from] = done
	s.queued[from] = append(q, done)
	return done, true
}
