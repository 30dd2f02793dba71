package tcpcore

// ring is a byte ring buffer: the send buffer (unacknowledged and unsent
// bytes from SND.UNA on) and the receive buffer (in-order bytes the
// application has not read). Its capacity is fixed at allocation and can
// grow when the buffer size is raised; it never shrinks.
type ring struct {
	buf  []byte
	head int // index of the first byte
	n    int // bytes stored
}

func (r *ring) Len() int  { return r.n }
func (r *ring) Cap() int  { return len(r.buf) }
func (r *ring) Free() int { return len(r.buf) - r.n }

// grow raises the capacity to at least size, keeping the contents.
func (r *ring) grow(size int) {
	if size <= len(r.buf) {
		return
	}
	// Copy the whole ring, not just the stored bytes: out-of-order data may
	// sit beyond the length at its offset from the head.
	nb := make([]byte, size)
	c := copy(nb, r.buf[r.head:])
	copy(nb[c:], r.buf[:r.head])
	r.buf, r.head = nb, 0
}

// ringMinBytes is a ring's first capacity.
const ringMinBytes = 4096

// ensure grows the ring to hold at least need bytes, doubling from
// ringMinBytes, never beyond limit. Buffers follow use: a connection that
// carries one request and one reply never allocates a whole window's
// buffer (128 KiB to receive by default), which connection-heavy traffic
// would otherwise pay for in allocation, clearing and GC scanning.
func (r *ring) ensure(need, limit int) {
	if need <= len(r.buf) {
		return
	}
	size := max(2*len(r.buf), ringMinBytes)
	for size < need {
		size *= 2
	}
	r.grow(min(size, max(limit, need)))
}

// write appends as much of p as fits and returns the count.
func (r *ring) write(p []byte) int {
	n := min(len(p), r.Free())
	if n == 0 {
		return 0
	}
	tail := (r.head + r.n) % len(r.buf)
	c := copy(r.buf[tail:], p[:n])
	copy(r.buf, p[c:n])
	r.n += n
	return n
}

// writeAt copies p to offset off from the head without changing the length;
// used to place out-of-order data. The caller ensures off+len(p) <= Cap.
func (r *ring) writeAt(p []byte, off int) {
	pos := (r.head + off) % len(r.buf)
	c := copy(r.buf[pos:], p)
	copy(r.buf, p[c:])
}

// peek copies bytes starting off bytes from the head into p, returning the
// count (bounded by what is stored).
func (r *ring) peek(p []byte, off int) int {
	if off >= r.n {
		return 0
	}
	n := min(len(p), r.n-off)
	pos := (r.head + off) % len(r.buf)
	c := copy(p[:n], r.buf[pos:])
	copy(p[c:n], r.buf)
	return n
}

// extend counts n bytes already placed by writeAt as stored.
func (r *ring) extend(n int) { r.n += n }

// discard drops n bytes from the head.
func (r *ring) discard(n int) {
	if n > r.n {
		n = r.n
	}
	if n <= 0 {
		return
	}
	r.n -= n
	// The head moves even when the ring empties: bytes parked beyond the
	// length (out-of-order data) keep their offsets from it.
	r.head = (r.head + n) % len(r.buf)
}

// read copies up to len(p) bytes out and drops them.
func (r *ring) read(p []byte) int {
	n := r.peek(p, 0)
	r.discard(n)
	return n
}
