package tcpcore

import (
	"errors"
	"io"
	"net/netip"
	"slices"
	"testing"
	"time"

	"tunstack/wire"
)

// FuzzEnginePair drives a client and a server engine over the simulated
// link of sim_test.go through a sequence of operations decoded from the
// input, two bytes each (an opcode and an argument): application writes,
// reads, shutdowns, closes and aborts on either side; drops, duplicates,
// reordering, truncations and bit flips of segments in flight; and time
// advances, small and large. After every step it checks the engines'
// invariants; after the sequence it makes the link perfect, lets both
// applications read to the end and close, and runs virtual time on until
// both engines hold no connection. See pairRun for what is checked.
func FuzzEnginePair(f *testing.F) {
	// The seed corpus in testdata/fuzz/FuzzEnginePair holds the inputs of
	// real scenarios; these are a few more, built from the opcodes.
	f.Add(pairOps(opAdvance, 20, opWriteA, 200, opAdvance, 50, opReadB, 255, opReadB, 255, opAdvance, 50, opShutA, 0))
	f.Add(pairOps(opAdvance, 20, opWriteA, 255, opFlush, 0, opDrop, 0, opAdvanceLong, 2, opReadB, 255))
	f.Add(pairOps(opAdvance, 20, opWriteB, 100, opFlush, 0, opFlip, 3, opAdvance, 9, opDup, 0, opReorder, 100, opAdvance, 255, opReadA, 255))
	f.Fuzz(func(t *testing.T, ops []byte) {
		pairRun(t, ops)
	})
}

// Opcodes of FuzzEnginePair's input. The opcode byte is taken modulo
// opCount, so every input decodes.
const (
	opWriteA      = iota // client writes (arg+1)*64 bytes
	opWriteB             // server writes (arg+1)*64 bytes
	opReadA              // client reads up to (arg+1)*128 bytes
	opReadB              // server reads up to (arg+1)*128 bytes
	opShutA              // client shutdown(SHUT_WR)
	opShutB              // server shutdown(SHUT_WR)
	opCloseA             // client close(2)
	opCloseB             // server close(2)
	opAbort              // abort the client (even arg) or the server (odd)
	opFlush              // put both engines' output on the link
	opDrop               // drop the segment in flight at index arg
	opDup                // duplicate it, the copy 1 ms later
	opReorder            // delay it by arg ms
	opTruncate           // cut it (arg selects where)
	opFlip               // flip one bit of it (arg selects which)
	opAdvance            // run arg+1 ms of virtual time
	opAdvanceLong        // run (arg%32+1)*10 s of virtual time
	opCount
)

func pairOps(b ...byte) []byte { return b }

// pairMaxOps bounds a run, so that every input executes in milliseconds.
const pairMaxOps = 300

// pairEnd is one side's application: its connection and what it wrote and
// read of each direction's byte stream.
type pairEnd struct {
	name        string
	c           *Conn
	dir         uint64 // stream this side writes (the other reads it)
	written     int
	read        int
	eof         bool
	err         error // first error other than ErrWouldBlock from a read or write
	shut        bool  // CloseWrite called
	closed      bool  // Close or Abort called
	closedEarly bool  // closed before reading to the end: the peer may see a reset
}

// pairByte is the byte at offset off of stream dir: a hash of the offset,
// so that a byte delivered at the wrong offset differs from the right one.
func pairByte(dir uint64, off int) byte {
	return byte((uint64(off)*0x9e3779b97f4a7c15 + dir*0xbf58476d1ce4e5b9) >> 56)
}

type pair struct {
	t        *testing.T
	s        *sim
	l        *Listener
	a, b     pairEnd
	extra    []*Conn // further connections the listener accepted (old duplicate SYNs)
	corrupt  int     // corrupt segments put on the link and not dropped
	aborted  bool    // an abort op ran
	writeBuf []byte
}

// pairRun checks, after every operation:
//   - SND.UNA <= SND.NXT <= SND.MAX on every open connection;
//   - the send and receive buffers within their limits (sndBufMax,
//     rcvBufMax, rcvSsthresh <= rcvBufMax);
//   - every byte an application reads is the byte the peer wrote at that
//     offset;
//   - no timer deadline in the past after Advance.
//
// At the end, with the link perfect: both connections Closed, both engines
// empty, every corrupt segment delivered counted as a header or checksum
// error (so dropped, never processed), and, when no abort, close before
// the end, or retransmission timeout happened, each side read the other's
// whole stream and its FIN with no error.
func pairRun(t *testing.T, ops []byte) {
	s := newSim(t, nil, 5*time.Millisecond, 0, 1)
	p := &pair{t: t, s: s}
	srvAddr := netip.AddrPortFrom(simB, 80)
	l, err := s.b.Listen(s.now, srvAddr, 16, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	p.l = l
	cli, err := s.a.Connect(s.now, netip.AddrPortFrom(simA, 0), srvAddr, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	p.a = pairEnd{name: "client", c: cli, dir: 1}
	p.b = pairEnd{name: "server", dir: 2}
	errsBefore := s.a.Stats().InErrs + s.a.Stats().InCsumErrors + s.b.Stats().InErrs + s.b.Stats().InCsumErrors

	for i := 0; i+1 < len(ops) && i/2 < pairMaxOps; i += 2 {
		p.op(ops[i]%opCount, ops[i+1])
		p.accept()
		p.check()
	}

	// The link is perfect from here on: what is in flight is delivered
	// (corrupt segments included, to be dropped by the engines), nothing
	// new is lost.
	end := s.now.Add(10 * time.Minute)
	for {
		p.accept()
		p.finish(&p.a)
		p.finish(&p.b)
		s.flush()
		if s.a.ConnCount() == 0 && s.b.ConnCount() == 0 && len(s.inflight) == 0 &&
			p.a.closed && (p.b.closed || p.b.c == nil) {
			break
		}
		if !p.step() {
			break
		}
		if s.now > end {
			t.Fatalf("engines not empty 10 minutes after the link became perfect: %d and %d connections, client %v, server %v",
				s.a.ConnCount(), s.b.ConnCount(), cli.State(), p.stateB())
		}
	}
	if !p.l.closed {
		p.l.Close(s.now)
		s.flush()
		for p.step() {
		}
	}
	if n := s.a.ConnCount() + s.b.ConnCount(); n != 0 {
		t.Fatalf("%d connections left at the end (client %v, server %v)", n, cli.State(), p.stateB())
	}
	for _, e := range []*pairEnd{&p.a, &p.b} {
		if e.c != nil && e.c.State() != Closed {
			t.Fatalf("%s ends in %v, want Closed", e.name, e.c.State())
		}
	}
	errsAfter := s.a.Stats().InErrs + s.a.Stats().InCsumErrors + s.b.Stats().InErrs + s.b.Stats().InCsumErrors
	if got := int(errsAfter - errsBefore); got != p.corrupt {
		t.Fatalf("%d corrupt segments delivered, the engines counted %d header or checksum errors", p.corrupt, got)
	}
	timedOut := errors.Is(p.a.err, ErrTimedOut) || errors.Is(p.b.err, ErrTimedOut)
	if p.aborted || p.a.closedEarly || p.b.closedEarly || timedOut {
		return // a reset or a timeout may cut either stream short
	}
	if p.b.c == nil {
		t.Fatalf("the server never accepted the connection (client state %v, error %v)", cli.State(), p.a.err)
	}
	for _, e := range []*pairEnd{&p.a, &p.b} {
		peer := p.peer(e)
		if e.err != nil || !e.eof || e.read != peer.written {
			t.Fatalf("%s read %d of the %d bytes the %s wrote (EOF %v, error %v)", e.name, e.read, peer.written, peer.name, e.eof, e.err)
		}
	}
}

func (p *pair) peer(e *pairEnd) *pairEnd {
	if e == &p.a {
		return &p.b
	}
	return &p.a
}

func (p *pair) stateB() State {
	if p.b.c == nil {
		return Closed
	}
	return p.b.c.State()
}

// accept takes the server's connection off the listener, and closes any
// further one an old duplicate SYN opened.
func (p *pair) accept() {
	for !p.l.closed {
		c, err := p.l.Accept(p.s.now)
		if err != nil || c == nil {
			return
		}
		if p.b.c == nil {
			p.b.c = c
			if p.a.closed {
				// The client closed during the handshake: nothing the
				// server now does about the stream can be checked.
				p.b.closedEarly = true
			}
			continue
		}
		p.extra = append(p.extra, c)
		c.Close(p.s.now)
	}
}

func (p *pair) op(code, arg byte) {
	s := p.s
	switch code {
	case opWriteA:
		p.write(&p.a, (int(arg)+1)*64)
	case opWriteB:
		p.write(&p.b, (int(arg)+1)*64)
	case opReadA:
		p.read(&p.a, (int(arg)+1)*128)
	case opReadB:
		p.read(&p.b, (int(arg)+1)*128)
	case opShutA:
		p.shut(&p.a)
	case opShutB:
		p.shut(&p.b)
	case opCloseA:
		p.close(&p.a)
	case opCloseB:
		p.close(&p.b)
	case opAbort:
		e := &p.a
		if arg%2 == 1 {
			e = &p.b
		}
		if e.c != nil && !e.closed {
			e.c.Abort(s.now)
			e.closed, e.closedEarly = true, true
			p.aborted = true
		}
	case opFlush:
		s.flush()
	case opDrop, opDup, opReorder, opTruncate, opFlip:
		s.flush()
		if len(s.inflight) == 0 {
			return
		}
		p.link(code, int(arg)%len(s.inflight), arg)
	case opAdvance:
		p.advance(time.Duration(arg+1) * time.Millisecond)
	case opAdvanceLong:
		p.advance(time.Duration(arg%32+1) * 10 * time.Second)
	}
}

// link impairs the segment in flight at index i. A mutated segment whose
// checksum still verifies (a corruption the Internet checksum cannot see:
// two flips that cancel, or a cut whose bytes sum to what the shorter
// pseudo-header lacks) is lost instead, since no receiver could tell it
// from a good one.
func (p *pair) link(code byte, i int, arg byte) {
	s := p.s
	pk := s.inflight[i]
	was := pairCorrupt(pk)
	switch code {
	case opDrop:
		s.inflight = slices.Delete(s.inflight, i, i+1)
		if was {
			p.corrupt--
		}
		return
	case opDup:
		d := pk
		d.data = slices.Clone(pk.data)
		d.at = d.at.Add(time.Millisecond)
		s.inflight = append(s.inflight, d)
		if was {
			p.corrupt++
		}
		return
	case opReorder:
		s.inflight[i].at = pk.at.Add(time.Duration(arg) * time.Millisecond)
		return
	case opTruncate:
		s.inflight[i].data = pk.data[:int(arg)*len(pk.data)/256]
	case opFlip:
		if len(pk.data) == 0 {
			return // truncated to nothing: no bit to flip
		}
		// The bit is spread over the whole segment by a multiplicative
		// hash of arg, header and payload alike.
		bit := int(uint32(arg)*2654435761>>8) % (8 * len(pk.data))
		pk.data[bit/8] ^= 1 << (bit % 8)
	}
	now := pairCorrupt(s.inflight[i])
	switch {
	case !now:
		s.inflight = slices.Delete(s.inflight, i, i+1)
		if was {
			p.corrupt--
		}
	case !was:
		p.corrupt++
	}
}

// pairCorrupt reports whether the engine must drop a segment as malformed
// or failing its checksum; everything the engines send passes.
func pairCorrupt(pk simPkt) bool {
	t := wire.TCP(pk.data)
	return t.Valid() != nil || !t.ChecksumValidAddr(pk.src, pk.dst)
}

// advance runs d of virtual time, event by event.
func (p *pair) advance(d time.Duration) {
	s := p.s
	until := s.now.Add(d)
	for {
		s.flush()
		next := noDeadline
		for _, pk := range s.inflight {
			next = min(next, pk.at)
		}
		for _, e := range []*Engine{s.a, s.b} {
			if dl, ok := e.NextDeadline(); ok {
				next = min(next, dl)
			}
		}
		if next > until {
			break
		}
		p.step()
	}
	s.now = max(s.now, until)
}

// step runs the simulation's next event and checks the deadlines Advance
// left.
func (p *pair) step() bool {
	if !p.s.step() {
		return false
	}
	for _, e := range []*Engine{p.s.a, p.s.b} {
		if dl, ok := e.NextDeadline(); ok && dl <= p.s.now {
			p.t.Fatalf("a timer is due at %v, at or before now %v, after Advance", time.Duration(dl), time.Duration(p.s.now))
		}
	}
	p.accept()
	p.check()
	return true
}

func (p *pair) write(e *pairEnd, n int) {
	if e.c == nil || e.closed {
		return
	}
	p.writeBuf = p.writeBuf[:0]
	for k := range n {
		p.writeBuf = append(p.writeBuf, pairByte(e.dir, e.written+k))
	}
	m, err := e.c.Write(p.s.now, p.writeBuf)
	if m < 0 || m > n {
		p.t.Fatalf("%s: Write of %d bytes returned %d", e.name, n, m)
	}
	e.written += m
	p.noteErr(e, err)
}

func (p *pair) read(e *pairEnd, n int) {
	if e.c == nil || e.closed {
		return
	}
	buf := make([]byte, n)
	for {
		m, err := e.c.Read(p.s.now, buf)
		for k := range m {
			if want := pairByte(p.peer(e).dir, e.read+k); buf[k] != want {
				p.t.Fatalf("%s read byte %d of the %s's stream as %#x, the %s wrote %#x",
					e.name, e.read+k, p.peer(e).name, buf[k], p.peer(e).name, want)
			}
		}
		e.read += m
		if e.read > p.peer(e).written {
			p.t.Fatalf("%s read %d bytes, the %s wrote %d", e.name, e.read, p.peer(e).name, p.peer(e).written)
		}
		if err == io.EOF {
			e.eof = true
			return
		}
		p.noteErr(e, err)
		if err != nil || m == 0 {
			return
		}
	}
}

func (p *pair) noteErr(e *pairEnd, err error) {
	if err != nil && !errors.Is(err, ErrWouldBlock) && !errors.Is(err, ErrPipe) && e.err == nil {
		e.err = err
	}
}

func (p *pair) shut(e *pairEnd) {
	if e.c == nil || e.closed || e.shut {
		return
	}
	e.shut = true
	e.c.CloseWrite(p.s.now)
}

func (p *pair) close(e *pairEnd) {
	if e.c == nil || e.closed {
		return
	}
	if !e.eof || e.c.Buffered() > 0 {
		// Unread data makes close(2) reset the connection, and data the
		// peer sends after our close is answered with a reset.
		e.closedEarly = true
	}
	e.closed = true
	e.c.Close(p.s.now)
}

// finish plays the application at the end: read everything, shut the
// sending side down, and close once the peer's FIN (or an error) arrived,
// or once nothing can arrive any more: the handshake is done, the link is
// empty and the peer's engine holds no connection, its connection having
// vanished without a word (an abort in LAST-ACK or CLOSING sends no RST,
// RFC 9293 §3.10.5; a retransmission timeout sends none either).
func (p *pair) finish(e *pairEnd) {
	if e.c == nil || e.closed {
		return
	}
	p.read(e, 64<<10)
	p.shut(e)
	peerEngine := p.s.a
	if e == &p.a {
		peerEngine = p.s.b
	}
	gone := e.c.Connected() && peerEngine.ConnCount() == 0 && len(p.s.inflight) == 0
	if e.eof || e.err != nil || e.c.State() == Closed || gone {
		p.close(e)
	}
}

// check verifies the invariants of every connection.
func (p *pair) check() {
	t := p.t
	conns := []*Conn{p.a.c}
	if p.b.c != nil {
		conns = append(conns, p.b.c)
	}
	conns = append(conns, p.extra...)
	for _, c := range conns {
		if c.state == Closed {
			continue
		}
		if c.sndNxt.LT(c.sndUna) || c.sndMax.LT(c.sndNxt) {
			t.Fatalf("%v: sequence invariant broken: SND.UNA %d SND.NXT %d SND.MAX %d", c.state, c.sndUna, c.sndNxt, c.sndMax)
		}
		if !c.sndBufLocked && c.sndBuf.Len() > c.sndBufMax {
			t.Fatalf("%v: send buffer holds %d bytes, limit %d", c.state, c.sndBuf.Len(), c.sndBufMax)
		}
		if c.rcvBuf.Len() > c.rcvBufMax || c.rcvSsthresh > c.rcvBufMax {
			t.Fatalf("%v: receive buffer holds %d bytes, rcv_ssthresh %d, limit %d", c.state, c.rcvBuf.Len(), c.rcvSsthresh, c.rcvBufMax)
		}
	}
}
