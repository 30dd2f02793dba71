package tcpcore

// ring is a byte ring buffer: the send buffer (unacknowledged and unsent
// bytes from SND.UNA on) and the receive buffer (in-order bytes the
// application has not read). Its capacity is fixed at allocation and can
// grow when the buffer size is raised; it never shrinks.
type ring struct {
	buf  []byte
	head int32 // index of the first byte
	n    int32 // bytes stored (buffers are far below 2 GiB: policy's SndBufMax, RcvBufMax)
}

func (r *ring) Len() int  { return int(r.n) }
func (r *ring) Cap() int  { return len(r.buf) }
func (r *ring) Free() int { return len(r.buf) - int(r.n) }

// grow raises the capacity to at least size, keeping the contents. A
// first buffer of ringMinBytes comes from pool, and the ring's buffer of
// that size goes back to it once outgrown.
func (r *ring) grow(size int, pool *ringPool) {
	if size <= len(r.buf) {
		return
	}
	var nb []byte
	if len(r.buf) == 0 && size == ringMinBytes {
		nb = pool.get()
	} else {
		nb = make([]byte, size)
	}
	// Copy the whole ring, not just the stored bytes: out-of-order data may
	// sit beyond the length at its offset from the head.
	c := copy(nb, r.buf[r.head:])
	copy(nb[c:], r.buf[:r.head])
	pool.put(r.buf)
	r.buf, r.head = nb, 0
}

// free gives the ring's buffer back to pool (if it is of the size pool
// keeps) and empties the ring; the connection is over.
func (r *ring) free(pool *ringPool) {
	pool.put(r.buf)
	*r = ring{}
}

// ringMinBytes is a ring's first capacity.
const ringMinBytes = 4096

// ensure grows the ring to hold at least need bytes, doubling from
// ringMinBytes, never beyond limit (or need, if more). The caller passes
// the most the buffer may ever be allowed to hold (the profile's maximum
// while auto-tuning may still raise the connection's own limit), not
// today's limit: auto-tuning raises that in steps of a few segments, and
// a ring sized to each step would copy its whole content at every one
// (in 8+8 bulk streams over a sub-millisecond path, 7% of the process's
// CPU went to those copies). Doubling copies each byte at most about
// once in all, and the capacity is at most twice what the connection may
// hold, which its own limit still bounds. Buffers follow use: a connection that
// carries one request and one reply never allocates a whole window's
// buffer (128 KiB to receive by default), which connection-heavy traffic
// would otherwise pay for in allocation, clearing and GC scanning. The
// first buffer comes from pool, so that a connection that never outgrows
// it, as one carrying a request and its reply, allocates nothing there
// once the engine has finished others like it.
func (r *ring) ensure(need, limit int, pool *ringPool) {
	if need <= len(r.buf) {
		return
	}
	size := max(2*len(r.buf), ringMinBytes)
	for size < need {
		size *= 2
	}
	r.grow(min(size, max(limit, need)), pool)
}

// ringPool recycles the rings' first buffers (ringMinBytes each) within
// one engine, as packetPool does the packets' buffers: a finished
// connection's send and receive buffers serve the next connection. It
// needs no lock (the engine has one owner at a time). A buffer comes back
// with the bytes of the connection that used it; a ring reads only bytes
// it stored or placed (peek stops at its length, and out-of-order data is
// read only once placed), as it never reads a fresh buffer's zeros.
type ringPool struct{ freeList[[]byte] }

func (rp *ringPool) get() []byte {
	if rp == nil {
		return make([]byte, ringMinBytes)
	}
	if b, ok := rp.pop(); ok {
		return b
	}
	return make([]byte, ringMinBytes)
}

// put keeps b if it is a first buffer; others go to the garbage
// collector. A nil pool keeps nothing: a send ring whose bytes a
// zero-copy chunk still holds (sndRingPool) lets its buffer go to the
// collector, which frees it only once the chunk is gone too.
func (rp *ringPool) put(b []byte) {
	if rp == nil {
		return
	}
	if len(b) == ringMinBytes && cap(b) == ringMinBytes {
		rp.push(b)
	}
}

// write appends as much of p as fits and returns the count.
func (r *ring) write(p []byte) int {
	n := min(len(p), r.Free())
	if n == 0 {
		return 0
	}
	tail := (int(r.head) + int(r.n)) % len(r.buf)
	c := copy(r.buf[tail:], p[:n])
	copy(r.buf, p[c:n])
	r.n += int32(n)
	return n
}

// writeAt copies p to offset off from the head without changing the length;
// used to place out-of-order data. The caller ensures off+len(p) <= Cap.
func (r *ring) writeAt(p []byte, off int) {
	pos := (int(r.head) + off) % len(r.buf)
	c := copy(r.buf[pos:], p)
	copy(r.buf, p[c:])
}

// peek copies bytes starting off bytes from the head into p, returning the
// count (bounded by what is stored).
func (r *ring) peek(p []byte, off int) int {
	if off >= int(r.n) {
		return 0
	}
	n := min(len(p), int(r.n)-off)
	pos := (int(r.head) + off) % len(r.buf)
	c := copy(p[:n], r.buf[pos:])
	copy(p[c:n], r.buf)
	return n
}

// spans returns the n bytes stored from offset off on as they lie in the
// buffer: one slice, or two where they wrap its end. The caller ensures
// off+n <= Len.
func (r *ring) spans(off, n int) (a, b []byte) {
	pos := (int(r.head) + off) % len(r.buf)
	if end := pos + n; end <= len(r.buf) {
		return r.buf[pos:end], nil
	}
	return r.buf[pos:], r.buf[:n-(len(r.buf)-pos)]
}

// freeSpans returns the first n bytes of free space after the stored
// bytes as they lie in the buffer: one slice, or two where they wrap its
// end. The caller ensures n <= Free.
func (r *ring) freeSpans(n int) (a, b []byte) {
	tail := (int(r.head) + int(r.n)) % len(r.buf)
	if end := tail + n; end <= len(r.buf) {
		return r.buf[tail:end:end], nil
	}
	return r.buf[tail:], r.buf[: n-(len(r.buf)-tail) : n-(len(r.buf)-tail)]
}

// extend counts n bytes already placed by writeAt as stored.
func (r *ring) extend(n int) { r.n += int32(n) }

// discard drops n bytes from the head.
func (r *ring) discard(n int) {
	if n > int(r.n) {
		n = int(r.n)
	}
	if n <= 0 {
		return
	}
	r.n -= int32(n)
	// The head moves even when the ring empties: bytes parked beyond the
	// length (out-of-order data) keep their offsets from it.
	r.head = int32((int(r.head) + n) % len(r.buf))
}

// read copies up to len(p) bytes out and drops them.
func (r *ring) read(p []byte) int {
	n := r.peek(p, 0)
	r.discard(n)
	return n
}
