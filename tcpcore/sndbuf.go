package tcpcore

// Linux's send buffer accounting, for a send buffer the application sized
// with SO_SNDBUF. RFC 9293 §3.10.2 leaves the buffer's size and accounting
// to the implementation ("if there is insufficient space to remember this
// buffer, ... the call blocks"); SO_SNDBUF is Linux's option, and a
// program that sets it gets the queue Linux gives:
//
//   - The value set is doubled (sock_setsockopt: half of the buffer is for
//     Linux's own overhead), and never less than SOCK_MIN_SNDBUF.
//   - What the queue is charged is its buffers' truesize (sk_wmem_queued):
//     their payload plus a fixed overhead for each buffer (skb).
//   - tcp_sendmsg fills the last buffer while it is unsent and holds less
//     than the size goal (tcp_xmit_size_goal: as many whole segments as half
//     the peer's largest window and 64 KiB allow, at least one), without
//     looking at the charge; it starts a new buffer only while the charge is
//     below the limit (sk_stream_memory_free).
//   - Sending cuts a buffer where the send stops (tso_fragment, at the end
//     of each TSO chunk and where the window or cwnd stops it), each part
//     then a buffer of its own; an ACK frees the buffers it covers whole.
//
// So with SO_SNDBUF 4096 and 1460-byte segments a write queues four
// segments (3 * (1460+832) < 8192 <= 4 * (1460+832)), 5840 bytes, not 4096
// (conformance/scripts/blocking/write-woken-by-ack.pkt). A buffer the engine
// sizes itself (no SO_SNDBUF) is counted in payload bytes (expandSndBuf).

const (
	// sndUnitOverhead is what Linux charges a TCP send buffer (skb) beyond
	// its payload: struct sk_buff (256), struct skb_shared_info (320) and
	// the head that holds the headers (256), as ss -m shows on Linux 6.18
	// x86-64 for a queue of one 1-byte write: w833.
	sndUnitOverhead = 832
	// sockMinSndBuf is Linux's SOCK_MIN_SNDBUF: twice a buffer of 2048
	// bytes of payload with its struct sk_buff.
	sockMinSndBuf = 2 * (2048 + 256)
	// gsoMaxSize bounds the size goal (Linux's GSO_LEGACY_MAX_SIZE).
	gsoMaxSize = 65536
)

// sndUnits are the ends of the send queue's buffers, oldest first, kept
// only while sndBufLocked: ends[head:] are live, ends[sent] is the first
// buffer not wholly sent. The first live buffer starts at sndBufSeq (at
// SND.UNA), each other one where the one before it ends.
type sndUnits struct {
	ends []Seq
	head int
	sent int
}

func (u *sndUnits) count() int { return len(u.ends) - u.head }

func (u *sndUnits) reset() { u.ends, u.head, u.sent = u.ends[:0], 0, 0 }

// sndBufLimit is the charge at which a write may start no new buffer:
// Linux's sk_sndbuf for SO_SNDBUF set to sndBufMax.
func (c *Conn) sndBufLimit() int { return max(2*c.sndBufMax, sockMinSndBuf) }

// sndCharge is the queue's truesize as Linux counts it.
func (c *Conn) sndCharge() int { return c.sndBuf.Len() + sndUnitOverhead*c.units.count() }

// sizeGoal is Linux's tcp_xmit_size_goal: the payload a write puts in one
// buffer.
func (c *Conn) sizeGoal() int {
	mss := c.segSize()
	goal := gsoMaxSize
	if w := c.maxSndWnd; w > 0 {
		// tcp_bound_to_half_wnd
		if w > 536 {
			w /= 2
		}
		goal = min(goal, w)
	}
	return max(goal/mss*mss, mss)
}

// unitStart is where the live buffer i starts.
func (c *Conn) unitStart(i int) Seq {
	if i == c.units.head {
		return c.sndBufSeq
	}
	return c.units.ends[i-1]
}

// tailRoom is what a write may still add to the last buffer: Linux appends
// to it while it is unsent and short of the size goal.
func (c *Conn) tailRoom(goal int) int {
	if c.units.count() == 0 {
		return 0
	}
	last := len(c.units.ends) - 1
	start := c.unitStart(last)
	if start.LT(c.sndNxt) {
		return 0 // sent, or being sent
	}
	return max(goal-c.units.ends[last].Sub(start), 0)
}

// sndRoom is how many of want bytes a write may queue now.
func (c *Conn) sndRoom(want int) int {
	if !c.sndBufLocked {
		return min(want, max(c.sndBufMax-c.sndBuf.Len(), 0))
	}
	goal := c.sizeGoal()
	take := min(want, c.tailRoom(goal))
	charge := c.sndCharge() + take
	limit := c.sndBufLimit()
	if take == want || charge >= limit {
		return take
	}
	// New buffers while the charge is below the limit, each of up to goal
	// bytes.
	unit := goal + sndUnitOverhead
	units := (limit - charge + unit - 1) / unit
	return take + min(want-take, units*goal)
}

// queueUnits records n bytes just written at the end of the queue: the
// last buffer takes what it may (tailRoom), new buffers of the size goal
// the rest.
func (c *Conn) queueUnits(n int) {
	if !c.sndBufLocked || n <= 0 {
		return
	}
	goal := c.sizeGoal()
	if t := min(n, c.tailRoom(goal)); t > 0 {
		last := len(c.units.ends) - 1
		c.units.ends[last] = c.units.ends[last].Add(t)
		n -= t
	}
	end := c.sndBufSeq.Add(c.sndBuf.Len() - n)
	for n > 0 {
		t := min(n, goal)
		end = end.Add(t)
		c.units.ends = append(c.units.ends, end)
		n -= t
	}
}

// splitUnitAt cuts the buffer that x falls strictly inside at x, as Linux
// splits a buffer where a send stops (tso_fragment). x is SND.NXT, which
// only moves forward.
func (c *Conn) splitUnitAt(x Seq) {
	if !c.sndBufLocked {
		return
	}
	u := &c.units
	for u.sent < len(u.ends) && u.ends[u.sent].LE(x) {
		u.sent++
	}
	if u.sent == len(u.ends) || !c.unitStart(u.sent).LT(x) {
		return
	}
	u.ends = append(u.ends, 0)
	copy(u.ends[u.sent+1:], u.ends[u.sent:])
	u.ends[u.sent] = x
	u.sent++
}

// freeUnits drops the buffers SND.UNA covers whole (Linux's
// tcp_clean_rtx_queue; one acknowledged in part stays, charged for its
// overhead and the bytes left).
func (c *Conn) freeUnits() {
	u := &c.units
	for u.head < len(u.ends) && u.ends[u.head].LE(c.sndUna) {
		u.head++
	}
	u.sent = max(u.sent, u.head)
	switch {
	case u.head == len(u.ends):
		u.reset()
	case u.head >= 64 && 2*u.head >= len(u.ends):
		n := copy(u.ends, u.ends[u.head:])
		u.ends = u.ends[:n]
		u.sent -= u.head
		u.head = 0
	}
}

// rebuildUnits cuts what is queued into buffers of the size goal, sent
// ones apart from unsent ones, when the application sets SO_SNDBUF on a
// connection with data already queued.
func (c *Conn) rebuildUnits() {
	c.units.reset()
	goal := c.sizeGoal()
	end := c.sndBufSeq.Add(c.sndBuf.Len())
	for at := c.sndBufSeq; at.LT(end); {
		next := at.Add(goal)
		if at.LT(c.sndNxt) && c.sndNxt.LT(next) {
			next = c.sndNxt
		}
		next = MinSeq(next, end)
		c.units.ends = append(c.units.ends, next)
		at = next
	}
	c.units.sent = 0
	c.splitUnitAt(c.sndNxt)
}

// sndWritable is poll's POLLOUT for a sized send buffer, Linux's
// __sk_stream_is_writeable: free room of at least half the charge.
func (c *Conn) sndWritable() bool {
	charge := c.sndCharge()
	return c.sndBufLimit()-charge >= charge/2
}
