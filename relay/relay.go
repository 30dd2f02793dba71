package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
	"unsafe"
)

// Config is how a Relay dials and splices.
type Config struct {
	// Dial opens the outbound connection to a Pending's Target
	// (NewDialer builds one: direct, bound to an interface or marked, or
	// through a SOCKS5 proxy). It must honour ctx's deadline.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// DialTimeout bounds the outbound connect; 0 is DefaultDialTimeout.
	DialTimeout time.Duration
	// MaxConns bounds the relayed connections at once, dialing ones
	// included; a SYN beyond it is refused with RST and counted
	// (Stats.MaxConnsRefused). 0 is no bound.
	MaxConns int
	// BufferSize is the one buffer per direction of each connection,
	// taken from a pool only while data is read and written (an idle
	// connection holds none: reader); 0 is DefaultBufferSize. It is all
	// the relay itself holds of a connection's data: a destination that
	// sends faster than the client reads fills it, the relay stops
	// reading the destination, and the outbound connection's window
	// closes.
	BufferSize int
	// BulkBufferSize is the buffer a direction reads into instead once
	// a read has filled BufferSize's (a bulk transfer), until a read
	// returns less than BufferSize; 0 is DefaultBulkBufferSize, and it is
	// never less than BufferSize. Fewer, larger reads and writes per
	// byte: fewer system calls on the outbound socket, fewer window
	// updates from the stack's reads and larger segment batches from its
	// writes. On tunstack's client legs, which lend their buffers, it is
	// instead the most read into the send buffer in one call (readLent);
	// what is written from their receive buffer in one call is
	// max(BulkBufferSize, LentWriteSize) (forwardLent).
	BulkBufferSize int
	// TunRTT, if set, reports the smoothed RTT of a client connection
	// (the TUN leg) for Conns.
	TunRTT func(net.Conn) (time.Duration, bool)
}

// DefaultDialTimeout is how long the relay waits for the destination to
// answer before it refuses the client's SYN as host unreachable. Linux's
// own connect to a destination that never answers takes about 127 s (six
// SYN retransmissions), during which the client's connect would hang: the
// relay gives up after 5 s instead, long enough for the outbound SYN to be
// retransmitted twice (Linux sends it again after 1 s and 3 s) when the
// first is lost, short enough that the client's connect fails fast with
// "no route to host" rather than timing out.
const DefaultDialTimeout = 5 * time.Second

// DefaultBufferSize is the buffer per direction: 32 KiB, as io.Copy's.
const DefaultBufferSize = 32 << 10

// DefaultBulkBufferSize is the buffer per direction in a bulk transfer:
// 256 KiB, four 64 KiB TSO/GSO batches of the stack's output and of the
// kernel socket's, read or written in one call. With 32 KiB a relayed bulk
// transfer took 15-20% more CPU per byte (relay-bulk-up).
const DefaultBulkBufferSize = 256 << 10

// LentWriteSize is the most of a tunstack client leg's receive buffer
// written to the destination in one call (forwardLent), unless
// BulkBufferSize is larger: the bytes are the stack's, lent in place, so
// a larger write costs the relay no memory, only delays the window's
// reopening by what it holds. Measured in alternating 3 s runs of
// relay-bulk-up (2026-12-04, medians of five), 1 MiB moved 20.4 Gbit/s
// against 18.9 with 256 KiB (serve's own bulk-up 25.5 in the same runs);
// 2 and 4 MiB measured the same as 1. The other direction, reading a kernel
// socket into the leg's send buffer, measured better at 256 KiB (28.7
// Gbit/s against 26.4 with 1 MiB), so BulkBufferSize stays its limit.
const LentWriteSize = 1 << 20

// Relay dials, for each Pending a Frontend hands it, the original
// destination, then answers the client's SYN (or refuses it as the
// destination did) and splices the two connections both ways.
type Relay struct {
	cfg  Config
	ctx  context.Context
	stop context.CancelFunc
	bufs sync.Pool    // BufferSize buffers
	bulk sync.Pool    // BulkBufferSize buffers
	held atomic.Int64 // buffers taken from bufs and not yet given back
	gos  atomic.Int64 // goroutines running for connections (Stats.Goroutines)
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[*record]struct{}
	stats Stats
}

// Stats are the relay's counters.
type Stats struct {
	Active          int    // connections dialing or relayed now
	Relayed         uint64 // connections relayed (both legs up)
	Refused         uint64 // SYNs refused because the destination failed (RefusedBy says how)
	RefusedBy       [4]uint64
	MaxConnsRefused uint64 // SYNs refused with RST because MaxConns connections were up
	AcceptFailed    uint64 // destination up, but the client's handshake did not complete
	Resets          uint64 // connections ended by a reset (or another error) on either leg
	BytesUp         uint64 // client to destination, finished connections included
	BytesDown       uint64 // destination to client
	BuffersHeld     int    // bulk buffers the connections hold now (none while they are idle)
	// Goroutines the connections run now: Handle's (dialing, or the
	// destination-to-client direction) and the client-to-destination
	// direction's while it has data to forward (splice). An idle
	// relayed connection on tunstack runs one.
	Goroutines int
}

// New returns a relay; Handle is the function to give Frontend.Intercept.
func New(cfg Config) (*Relay, error) {
	if cfg.Dial == nil {
		return nil, errors.New("relay: Config.Dial is nil: give a dialer (NewDialer makes one)")
	}
	if cfg.DialTimeout < 0 || cfg.MaxConns < 0 || cfg.BufferSize < 0 || cfg.BulkBufferSize < 0 {
		return nil, fmt.Errorf("relay: config %+v has a negative field: give 0 for the default", cfg)
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.BufferSize == 0 {
		cfg.BufferSize = DefaultBufferSize
	}
	if cfg.BulkBufferSize == 0 {
		cfg.BulkBufferSize = DefaultBulkBufferSize
	}
	cfg.BulkBufferSize = max(cfg.BulkBufferSize, cfg.BufferSize)
	r := &Relay{cfg: cfg, conns: make(map[*record]struct{})}
	r.ctx, r.stop = context.WithCancel(context.Background())
	size := cfg.BufferSize
	r.bufs.New = func() any { b := make([]byte, size); return &b }
	bulk := cfg.BulkBufferSize
	r.bulk.New = func() any { b := make([]byte, bulk); return &b }
	return r, nil
}

// Close aborts every relayed connection and waits for their goroutines;
// the Frontend should be closed first so that no new one starts.
func (r *Relay) Close() error {
	r.stop()
	r.mu.Lock()
	for rc := range r.conns {
		rc.abortBoth()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// Stats returns the counters.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Active = len(r.conns)
	s.BuffersHeld = int(r.held.Load())
	s.Goroutines = int(r.gos.Load())
	for rc := range r.conns {
		s.BytesUp += uint64(rc.up.Load())
		s.BytesDown += uint64(rc.down.Load())
	}
	return s
}

// Handle relays one held SYN: it is Frontend.Intercept's handler.
func (r *Relay) Handle(p Pending) {
	r.gos.Add(1)
	defer r.gos.Add(-1)
	r.mu.Lock()
	if r.ctx.Err() != nil {
		r.mu.Unlock()
		p.Refuse(RefuseReset)
		return
	}
	if r.cfg.MaxConns > 0 && len(r.conns) >= r.cfg.MaxConns {
		r.stats.MaxConnsRefused++
		r.mu.Unlock()
		p.Refuse(RefuseReset)
		return
	}
	rc := &record{client: p.Client(), target: p.Target(), started: time.Now()}
	rc.clientLeg.Store(legHandshake)
	rc.serverLeg.Store(legDialing)
	r.conns[rc] = struct{}{}
	r.wg.Add(1)
	r.mu.Unlock()
	spliced := false
	defer func() {
		if !spliced {
			r.finish(rc)
		}
	}()

	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.DialTimeout)
	out, err := r.cfg.Dial(ctx, "tcp", p.Target().String())
	cancel()
	if err == nil {
		// Set under the lock, which Close holds while it aborts what is
		// set: a Close from now on resets the outbound leg even while
		// Accept waits; one that came first refuses the SYN here.
		r.mu.Lock()
		rc.out = out
		if err = r.ctx.Err(); err != nil {
			abort(out)
		}
		r.mu.Unlock()
	}
	if err != nil {
		how := RefusalFor(err)
		rc.serverLeg.Store(legFailed)
		rc.clientLeg.Store(legRefused)
		r.mu.Lock()
		r.stats.Refused++
		r.stats.RefusedBy[how]++
		r.mu.Unlock()
		p.Refuse(how)
		return
	}
	rc.serverLeg.Store(legOpen)
	in, err := p.Accept()
	if err != nil {
		rc.clientLeg.Store(legFailed)
		r.mu.Lock()
		r.stats.AcceptFailed++
		r.mu.Unlock()
		abort(out)
		return
	}
	rc.clientLeg.Store(legOpen)
	r.mu.Lock()
	r.stats.Relayed++
	rc.in = in
	if r.ctx.Err() != nil {
		// Close ran while the legs came up, before in was set.
		rc.abortBoth()
	}
	r.mu.Unlock()
	spliced = true
	r.splice(rc, in, out)
}

// finish forgets a connection, keeps its byte counts in the totals, and
// lets Close's wait end.
func (r *Relay) finish(rc *record) {
	r.mu.Lock()
	delete(r.conns, rc)
	r.stats.BytesUp += uint64(rc.up.Load())
	r.stats.BytesDown += uint64(rc.down.Load())
	if rc.reset.Load() {
		r.stats.Resets++
	}
	r.mu.Unlock()
	r.wg.Done()
}

// splice copies both ways until both directions end. A FIN (EOF) from
// one side becomes CloseWrite on the other, and the other direction
// carries on; a reset or any other error on either leg aborts the other
// leg (SO_LINGER 0: it is reset too), so neither side mistakes a broken
// stream for a complete one.
//
// The destination-to-client direction runs on the calling goroutine. The
// client-to-destination direction, when the client leg can tell when it
// becomes readable (tunstack's stack.Conn: armable), has no goroutine
// while the client sends nothing: pumpUp is started by the stack when
// data, a FIN or a reset arrives, and returns when it has forwarded all
// there was. So an idle relayed connection costs one goroutine, the one
// waiting on the outbound socket. On other client legs (gVisor's) that
// direction is a pipe on a goroutine of its own. Whichever direction ends
// last closes both legs and forgets the connection (done).
func (r *Relay) splice(rc *record, in, out net.Conn) {
	rc.left.Store(2)
	if a, ok := in.(armable); ok {
		a.OnReadable(func() { r.pumpUp(rc, a, out) })
		if a.ArmRead() {
			go r.pumpUp(rc, a, out)
		}
	} else {
		r.gos.Add(1)
		go func() {
			defer r.gos.Add(-1)
			r.pipe(rc, out, in, &rc.up, &rc.serverLeg, &rc.clientLeg)
			r.done(rc, in, out)
		}()
	}
	r.pipe(rc, in, out, &rc.down, &rc.clientLeg, &rc.serverLeg)
	r.done(rc, in, out)
}

// done ends one direction of a connection; the second to end closes both
// legs (unless a reset already aborted them) and forgets the connection.
func (r *Relay) done(rc *record, in, out net.Conn) {
	if rc.left.Add(-1) != 0 {
		return
	}
	if !rc.reset.Load() {
		in.Close()
		out.Close()
		rc.clientLeg.Store(legClosed)
		rc.serverLeg.Store(legClosed)
	}
	r.finish(rc)
}

// armable is a client leg that starts a function of the relay's when it
// becomes readable (stack.Conn's OnReadable and ArmRead): see splice.
type armable interface {
	net.Conn
	OnReadable(func())
	ArmRead() bool
}

// pumpUp forwards what the client leg has to the destination, for as long
// as the leg has something to read, then arms the leg and returns: the
// stack starts it again when more arrives. What the leg lends in place
// (lender: tunstack's client legs, once more than their small first
// receive buffer has waited unread at once) is written from the stack's
// own buffer, up to LentWriteSize bytes at a time, with no copy into the
// relay's; anything else is read one pool buffer at a time (a bulk one after a
// read filled a BufferSize one: Config.BulkBufferSize).
// While the destination does not take what was read, the client leg is
// not read, so its receive window closes (backpressure through the
// windows only, as pipe).
func (r *Relay) pumpUp(rc *record, in armable, out net.Conn) {
	r.gos.Add(1)
	defer r.gos.Add(-1)
	ln, lends := in.(lender)
	for {
		if lends {
			if a, b := ln.Peek(max(r.cfg.BulkBufferSize, LentWriteSize)); len(a) > 0 {
				if r.forwardLent(rc, ln, out, a, b) {
					r.done(rc, in, out)
					return
				}
				if !in.ArmRead() {
					return
				}
				continue
			}
		}
		b := r.getBuf(rc.upBulk)
		n, err := in.Read(*b)
		rc.upBulk = n >= r.cfg.BufferSize
		end := r.forward(rc, out, (*b)[:n], err, &rc.up, &rc.serverLeg, &rc.clientLeg)
		r.putBuf(b)
		if end {
			r.done(rc, in, out)
			return
		}
		if !in.ArmRead() {
			return // armed: the stack starts pumpUp again
		}
	}
}

// lender is a client leg that lends its received bytes in place
// (stack.Conn's Peek and Consume), so that pumpUp writes them to the
// destination without copying them into a buffer of its own first.
type lender interface {
	Peek(max int) (a, b []byte)
	Consume(n int) error
}

// forwardLent writes the bytes in lent (a, then b) to out, then gives
// them back to in, and reports whether the direction has ended, as
// forward does. At most LentWriteSize bytes are lent at a time, so the
// client's window reopens in steps while a larger backlog is written.
func (r *Relay) forwardLent(rc *record, in lender, out net.Conn, a, b []byte) bool {
	var n int64
	var err error
	if len(b) == 0 {
		var k int
		k, err = out.Write(a)
		n = int64(k)
	} else {
		bufs := net.Buffers{a, b} // one writev on a kernel socket
		n, err = bufs.WriteTo(out)
	}
	rc.up.Add(n)
	if err != nil {
		r.writeFailed(rc, &rc.serverLeg)
		return true
	}
	if err := in.Consume(int(n)); err != nil {
		// The leg was closed meanwhile (an abort): end as a failed read.
		return r.forward(rc, out, nil, err, &rc.up, &rc.serverLeg, &rc.clientLeg)
	}
	return false
}

// getBuf takes a buffer from the pool, a BulkBufferSize one if bulk;
// putBuf gives it back.
func (r *Relay) getBuf(bulk bool) *[]byte {
	r.held.Add(1)
	if bulk && r.cfg.BulkBufferSize > r.cfg.BufferSize {
		return r.bulk.Get().(*[]byte)
	}
	return r.bufs.Get().(*[]byte)
}

func (r *Relay) putBuf(b *[]byte) {
	r.held.Add(-1)
	if len(*b) == r.cfg.BufferSize {
		r.bufs.Put(b)
	} else {
		r.bulk.Put(b)
	}
}

// pipe copies src to dst through one buffer at a time. The buffer is
// all that is held: while dst does not take what was read, src is not
// read, so src's receive window closes (backpressure through the windows
// only). From a kernel socket to a leg that lends its send buffer
// (tunstack's client legs) once that buffer has grown past its first
// small one, src is read straight into dst's send buffer instead
// (readLent).
func (r *Relay) pipe(rc *record, dst, src net.Conn, count *atomic.Int64, dstLeg, srcLeg *atomic.Int32) {
	rd := r.newReader(src)
	defer rd.release()
	sl, lends := dst.(sendLender)
	lends = lends && rd.raw != nil
	for {
		if lends {
			if end, done := r.readLent(rc, rd, sl, dst, count, dstLeg, srcLeg); done {
				if end {
					return
				}
				continue
			}
		}
		buf, n, err := rd.read()
		if r.forward(rc, dst, buf[:n], err, count, dstLeg, srcLeg) {
			return
		}
	}
}

// sendLender is a leg that lends the free space of its send buffer
// (stack.Conn's Lend and Commit), so that pipe reads a kernel socket
// straight into it, with no copy out of a buffer of the relay's.
type sendLender interface {
	Lend(max int) (a, b []byte, err error)
	Commit(n int) error
}

// readLent is one step of a transfer from a kernel socket (rd) to a leg
// that lends its send buffer (dst): it waits for room in dst's send buffer
// (Lend: backpressure as Write's, through the windows only), reads rd's
// socket into the room lent, at most BufferSize bytes in one readv, or
// BulkBufferSize after a read filled BufferSize or all the room lent (a
// bulk transfer), and commits what was read, which dst sends. It holds no
// buffer of the relay's, waiting or blocked. It reports done false when
// dst lent nothing (its send buffer is still its small first one, which
// Lend does not lend: a connection that has carried little): pipe reads
// into a pool buffer then. Otherwise end says whether the direction has
// ended, as forward does.
func (r *Relay) readLent(rc *record, rd *reader, sl sendLender, dst net.Conn, count *atomic.Int64, dstLeg, srcLeg *atomic.Int32) (end, done bool) {
	rd.release()
	want := r.cfg.BufferSize
	if rd.big {
		want = r.cfg.BulkBufferSize
	}
	a, b, err := sl.Lend(want)
	if err != nil {
		r.writeFailed(rc, dstLeg)
		return true, true
	}
	if len(a) == 0 {
		return false, false
	}
	n, rerr := rd.readv(a, b)
	if err := sl.Commit(n); err != nil {
		r.writeFailed(rc, dstLeg)
		return true, true
	}
	count.Add(int64(n))
	// Bulk while the reads fill BufferSize or all the room lent.
	rd.big = n >= r.cfg.BufferSize || n == len(a)+len(b)
	return r.forward(rc, dst, nil, rerr, count, dstLeg, srcLeg), true
}

// forward writes data, read from one leg with the result err, to dst,
// the other leg, and reports whether the direction has ended: at the
// source's EOF, after a CloseWrite on dst, or at an error on either side,
// after aborting both legs.
func (r *Relay) forward(rc *record, dst net.Conn, data []byte, err error, count *atomic.Int64, dstLeg, srcLeg *atomic.Int32) bool {
	if len(data) > 0 {
		if _, werr := dst.Write(data); werr != nil {
			r.writeFailed(rc, dstLeg)
			return true
		}
		count.Add(int64(len(data)))
	}
	if err == io.EOF {
		orLeg(srcLeg, legFinIn)
		// When the other direction has ended already, done closes both
		// legs next, and dst's Close sends the FIN (its own reads reached
		// EOF, so no unread data turns it into RST): a CloseWrite first
		// would cost a call for nothing.
		if rc.left.Load() > 1 {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
		}
		orLeg(dstLeg, legFinOut)
		return true
	}
	if err != nil {
		if !rc.reset.Load() {
			srcLeg.Store(legReset)
			rc.abortBoth()
		}
		return true
	}
	return false
}

// writeFailed ends a connection whose destination of one direction
// (dstLeg's) failed a write: it reset, or its keepalive gave up. The
// source learns it by a reset too.
func (r *Relay) writeFailed(rc *record, dstLeg *atomic.Int32) {
	if !rc.reset.Load() {
		dstLeg.Store(legReset)
		rc.abortBoth()
	}
}

// A reader reads one leg for a pipe. An idle connection should cost
// little, so it waits for data holding no buffer and takes one from the
// pool only to read what has arrived, giving it back when the pipe comes
// for the next read (what it read has been written by then):
//
//   - a kernel socket is read in place through its descriptor
//     (syscall.RawConn.Read): a read that would block gives the buffer
//     back and leaves Go's poller to wait for readability; a read that
//     returned BufferSize bytes or more makes the next read into a
//     BulkBufferSize buffer (Config.BulkBufferSize);
//   - any other connection (gVisor's client legs; a SOCKS5 upstream's is
//     its kernel socket to the proxy, NewDialer)
//     waits in a small buffer of the reader's own, and switches to a
//     pool buffer while reads fill it (a bulk transfer), back to the
//     small one once a read returns less than half.
//
// tunstack's client legs are not read by a reader: pumpUp reads them
// when the stack reports them readable (splice).
type reader struct {
	r     *Relay
	src   net.Conn
	raw   syscall.RawConn
	held  *[]byte // the pool buffer taken, if any
	small []byte
	bulk  bool // the last read filled its buffer: the next uses a pool buffer
	big   bool // the last read returned BufferSize or more: the next takes a BulkBufferSize buffer

	// readRaw's function for raw.Read, made once, and what it returns.
	rawFn func(fd uintptr) bool
	rawN  int
	rawE  error
	// readv's function for raw.Read, made once, and the spans it reads
	// into.
	readvFn func(fd uintptr) bool
	iov     [2]syscall.Iovec
	iovs    int
}

func (r *Relay) newReader(src net.Conn) *reader {
	rd := &reader{r: r, src: src}
	if sc, ok := src.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			rd.raw = raw
			rd.rawFn = rd.readFd
			rd.readvFn = rd.readvFd
		}
	}
	return rd
}

// read returns what src has next: n bytes in buf, and the end of the
// stream (io.EOF) or an error.
func (rd *reader) read() (buf []byte, n int, err error) {
	if rd.raw != nil {
		return rd.readRaw()
	}
	if !rd.bulk {
		rd.release()
		if rd.small == nil {
			rd.small = make([]byte, smallBufferSize)
		}
		buf = rd.small
	} else {
		rd.take()
		buf = *rd.held
	}
	n, err = rd.src.Read(buf)
	rd.bulk = n == len(buf) || (rd.bulk && n >= len(buf)/2)
	return buf, n, err
}

// readRaw reads a kernel socket through its descriptor, holding a buffer
// only while a read returns something.
func (rd *reader) readRaw() ([]byte, int, error) {
	rd.release()
	n, err := rd.rawRead(rd.rawFn, "read")
	if err != nil {
		return nil, 0, err
	}
	rd.big = n >= rd.r.cfg.BufferSize
	return *rd.held, n, nil
}

// rawRead runs fn (readFd or readvFd) through the socket's poller and
// returns the count it read, or io.EOF or the error with 0; op names the
// system call in the error.
func (rd *reader) rawRead(fn func(fd uintptr) bool, op string) (int, error) {
	rd.rawN, rd.rawE = 0, nil
	err := rd.raw.Read(fn)
	n, rerr := rd.rawN, rd.rawE
	switch {
	case err != nil:
		return 0, err // the connection was closed (an abort)
	case rerr != nil:
		return 0, os.NewSyscallError(op, rerr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readFd is raw.Read's function: one read into a pool buffer, given back
// if the read would block, so that the poller waits for readability
// without it.
func (rd *reader) readFd(fd uintptr) bool {
	rd.take()
	for {
		rd.rawN, rd.rawE = syscall.Read(int(fd), *rd.held)
		if rd.rawE != syscall.EINTR {
			break
		}
	}
	if rd.rawE == syscall.EAGAIN {
		rd.release()
		return false
	}
	return true
}

// readv reads a kernel socket into a, then b (b may be empty), waiting
// for data as readRaw does; it returns the count, and io.EOF or the error
// with 0.
func (rd *reader) readv(a, b []byte) (int, error) {
	rd.iov[0].Base = &a[0]
	rd.iov[0].SetLen(len(a))
	rd.iovs = 1
	if len(b) > 0 {
		rd.iov[1].Base = &b[0]
		rd.iov[1].SetLen(len(b))
		rd.iovs = 2
	}
	n, err := rd.rawRead(rd.readvFn, "readv")
	rd.iov = [2]syscall.Iovec{} // hold no pointer into the stack's buffer
	return n, err
}

// readvFd is readv's function for raw.Read: one readv, false if it would
// block, so that the poller waits for readability.
func (rd *reader) readvFd(fd uintptr) bool {
	for {
		n, _, e := syscall.Syscall(syscall.SYS_READV, fd, uintptr(unsafe.Pointer(&rd.iov[0])), uintptr(rd.iovs))
		rd.rawN = int(n)
		rd.rawE = nil
		if e != 0 {
			rd.rawN, rd.rawE = 0, e
		}
		if rd.rawE != syscall.EINTR {
			break
		}
	}
	return rd.rawE != syscall.EAGAIN
}

// take gets a pool buffer (a bulk one if big) unless one of that size
// is held; release gives it back.
func (rd *reader) take() {
	want := rd.r.cfg.BufferSize
	if rd.big {
		want = rd.r.cfg.BulkBufferSize
	}
	if rd.held != nil && len(*rd.held) == want {
		return
	}
	rd.release()
	rd.held = rd.r.getBuf(rd.big)
}

func (rd *reader) release() {
	if rd.held != nil {
		rd.r.putBuf(rd.held)
		rd.held = nil
	}
}

// smallBufferSize is the buffer a reader waits with when its source
// offers no wait without one (reader).
const smallBufferSize = 2 << 10

// record is one relayed connection, for the table and the counters.
type record struct {
	client, target netip.AddrPort
	started        time.Time
	up, down       atomic.Int64
	// The state of each leg: one of the leg* values, or legOpen with
	// legFinIn (its FIN received) and legFinOut (a FIN sent to it).
	clientLeg, serverLeg atomic.Int32
	reset                atomic.Bool
	upBulk               bool         // pumpUp's last read returned BufferSize or more: the next takes a bulk buffer
	left                 atomic.Int32 // directions still running (splice)

	// Set as each leg comes up (out once dialled, in once accepted);
	// guarded by Relay.mu. splice's goroutines, started after both are
	// set, read them without it.
	in, out net.Conn
}

// abortBoth resets the legs that are up. It may run more than once (the
// two directions and Close may each call it; closing a conn twice does no
// harm), so that a leg set after an earlier call is still reset. The
// caller may hold Relay.mu.
func (rc *record) abortBoth() {
	rc.reset.Store(true)
	if rc.in != nil {
		abort(rc.in)
	}
	if rc.out != nil {
		abort(rc.out)
	}
}

// abort closes c with SO_LINGER 0, so the peer gets RST.
func abort(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	c.Close()
}

const (
	legHandshake int32 = iota // the client's SYN held, or its handshake running
	legDialing                // the outbound connect under way
	legOpen                   // up; legFinIn and legFinOut may be added
	legRefused                // the client's SYN refused
	legFailed                 // the connect or handshake failed
	legReset                  // ended by a reset or an error
	legClosed                 // closed after both FINs

	legFinIn  int32 = 1 << 4 // the leg's FIN arrived
	legFinOut int32 = 1 << 5 // a FIN was sent on the leg (CloseWrite)
)

// orLeg adds a FIN flag to an open leg's state; the two directions of a
// connection may set flags on one leg at once.
func orLeg(leg *atomic.Int32, flag int32) {
	for {
		old := leg.Load()
		if old&^(legFinIn|legFinOut) != legOpen || leg.CompareAndSwap(old, old|flag) {
			return
		}
	}
}

func legText(s int32) string {
	switch s {
	case legHandshake:
		return "handshake"
	case legDialing:
		return "dialing"
	case legOpen:
		return "open"
	case legOpen | legFinIn:
		return "fin-in"
	case legOpen | legFinOut:
		return "fin-out"
	case legOpen | legFinIn | legFinOut:
		return "fin-both"
	case legRefused:
		return "refused"
	case legFailed:
		return "failed"
	case legReset:
		return "reset"
	case legClosed:
		return "closed"
	}
	return fmt.Sprintf("state-%d", s)
}

// ConnInfo is one relayed connection as the table shows it.
type ConnInfo struct {
	Client, Target       netip.AddrPort
	Age                  time.Duration
	BytesUp, BytesDown   int64  // client to destination, destination to client
	ClientLeg, ServerLeg string // handshake, dialing, open, fin-in (its FIN arrived), fin-out (a FIN sent to it), fin-both, refused, failed, reset, closed
	TunRTT               time.Duration
	HasTunRTT            bool
}

// Conns returns every connection dialing or relayed, oldest first.
func (r *Relay) Conns() []ConnInfo {
	// The client legs are taken under the lock, which Handle sets them
	// under; the RTTs are asked for after it is released.
	type entry struct {
		rc *record
		in net.Conn
	}
	r.mu.Lock()
	es := make([]entry, 0, len(r.conns))
	for rc := range r.conns {
		es = append(es, entry{rc, rc.in})
	}
	r.mu.Unlock()
	slices.SortFunc(es, func(a, b entry) int { return a.rc.started.Compare(b.rc.started) })
	now := time.Now()
	infos := make([]ConnInfo, 0, len(es))
	for _, e := range es {
		rc := e.rc
		ci := ConnInfo{Client: rc.client, Target: rc.target, Age: now.Sub(rc.started),
			BytesUp: rc.up.Load(), BytesDown: rc.down.Load(),
			ClientLeg: legText(rc.clientLeg.Load()), ServerLeg: legText(rc.serverLeg.Load())}
		if e.in != nil && r.cfg.TunRTT != nil {
			ci.TunRTT, ci.HasTunRTT = r.cfg.TunRTT(e.in)
		}
		infos = append(infos, ci)
	}
	return infos
}

// WriteTable prints every relayed connection (client, original
// destination, bytes each way, each leg's state, the TUN leg's RTT) and
// the counters.
func (r *Relay) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Client\tDestination\tAge\tUp\tDown\tClientLeg\tServerLeg\tTunRTT")
	for _, c := range r.Conns() {
		rtt := "-"
		if c.HasTunRTT {
			rtt = c.TunRTT.Round(10 * time.Microsecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", c.Client, c.Target, c.Age.Round(time.Millisecond),
			c.BytesUp, c.BytesDown, c.ClientLeg, c.ServerLeg, rtt)
	}
	tw.Flush()
	s := r.Stats()
	fmt.Fprintf(w, "relayed %d, active %d, refused %d (reset %d, host unreachable %d, net unreachable %d, dropped %d), max-conns refusals %d, handshakes failed %d, resets %d, bytes up %d, down %d\n",
		s.Relayed, s.Active, s.Refused, s.RefusedBy[RefuseReset], s.RefusedBy[RefuseHostUnreachable], s.RefusedBy[RefuseNetUnreachable], s.RefusedBy[RefuseDrop],
		s.MaxConnsRefused, s.AcceptFailed, s.Resets, s.BytesUp, s.BytesDown)
}

// RefusalFor is how a client's SYN is refused when the outbound connect
// failed with err, so that the client's connect fails at once with the
// error the destination gave the relay:
//
//   - refused (ECONNREFUSED; a SOCKS5 reply 5): RST, "connection refused";
//   - no route to the host (EHOSTUNREACH; SOCKS5 4 and 6, host unreachable
//     and TTL expired), and a connect that timed out (DialTimeout): ICMP
//     host unreachable, "no route to host";
//   - no route to the network (ENETUNREACH; SOCKS5 3): ICMP network
//     unreachable;
//   - anything else (a firewall's EACCES or EPERM, a SOCKS5 server's
//     refusal by rule or failure): RST.
//
// x/net's SOCKS5 client reports a reply code only as the text of the
// innermost error ("unknown error host unreachable"), so that error's
// whole text is matched against those it gives the three codes
// (socksReplies); other errors are not searched for such words.
func RefusalFor(err error) Refusal {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return RefuseReset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ETIMEDOUT),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return RefuseHostUnreachable
	case errors.Is(err, syscall.ENETUNREACH):
		return RefuseNetUnreachable
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return RefuseHostUnreachable
	}
	inner := err
	for u := errors.Unwrap(inner); u != nil; u = errors.Unwrap(inner) {
		inner = u
	}
	if how, ok := socksReplies[inner.Error()]; ok {
		return how
	}
	return RefuseReset
}

// socksReplies are the errors golang.org/x/net/proxy's SOCKS5 client
// returns for the reply codes (RFC 1928 §6) that say the destination
// cannot be reached, and the refusal each deserves.
var socksReplies = map[string]Refusal{
	"unknown error network unreachable": RefuseNetUnreachable,  // 3
	"unknown error host unreachable":    RefuseHostUnreachable, // 4
	"unknown error TTL expired":         RefuseHostUnreachable, // 6
}
