package tcpcore

import (
	"io"
	"math"
	"net/netip"
	"time"

	"tunstack/congestion"
	"tunstack/wire"
)

// Conn is one connection's transmission control block (RFC 9293 §3.3.1)
// and its application interface. All methods are non-blocking and take the
// current time; a driver blocks an application by waiting for a Wakeup.
type Conn struct {
	// The small fields of Conn and of the structs it embeds are grouped
	// so that padding does not grow it: an idle connection is mostly this
	// struct, which Go allocates with an 8-byte header in a size class:
	// 1152 bytes, the next being 1280 (TestConnFitsItsSizeClass).
	e     *Engine
	key   connKey
	ccDue bool // established: cc is built at its first use (ccw)
	waker Waker

	// Listener that created this connection, while it sits in the SYN queue
	// or the accept queue; nil once accepted or for active opens.
	parent *Listener

	state     State
	inWakeups bool
	touched   bool // in the engine's touched list (trace.go)
	queued    bool // in parent's accept queue
	accepted  bool // handed to the application (or actively opened)
	appClosed bool // Close was called: the application is gone (orphan)
	// counted: a listener made this connection and it is held against
	// Config.MaxConns, until it reaches TIME-WAIT or leaves the engine.
	counted bool

	// hold is the connection's place in its port's bucket (bind.go),
	// from the SYN until it leaves the engine, TIME-WAIT included.
	// portLocked marks a port the application bound (Binding.Connect):
	// as Linux's SOCK_BINDPORT_LOCK, the socket keeps it after the
	// connection closes, until the application closes it too.
	portLocked bool
	hold       portHold

	sender          // send sequence space and buffer (sender.go, output.go)
	receiver        // receive sequence space, buffer, window and ACK policy (receiver.go, receiver_ack.go)
	recoveryControl // loss recovery (recovery.go, rack.go, rack_queue.go, tlp.go)
	timers          // timers, RTT estimation and probes (timers.go, rtt.go)
	infoTrack       // what only TCPInfo reports (tcpinfo_track.go)

	cc congestion.Controller // built when the connection is established

	// --- Negotiated options ---
	sndMSS     int    // largest payload we send, bytes (peer MSS less our option overhead)
	peerMSS    int    // MSS the peer advertised
	tsRecentAt Time   // when TS.Recent was set (for the 24-day PAWS rule)
	timeWaitAt Time   // when the connection entered TIME-WAIT (twReuse)
	tsRecent   uint32 // RFC 7323 §4.3 TS.Recent
	tsOffset   uint32
	sndWscale  uint8 // shift applied to the peer's window field
	rcvWscale  uint8 // shift applied to our window field
	wsOK       bool
	tsOK       bool
	sackOK     bool
	// tsInherited: TS.Recent came from the connection in TIME-WAIT this
	// active open took over (activeOpen), and PAWS applies to a SYN in
	// SYN-SENT.
	tsInherited bool
	// mapped: the connection is IPv4 but its application reached it
	// through an IPv6 socket (a dual-stack listener, or a connect to an
	// IPv4-mapped address), so its addresses are reported IPv4-mapped.
	mapped bool
	active bool // we sent the SYN (Connect), rather than a listener's SYN-ACK

	// linkMSS is the MSS the link allows the connection's family, what
	// we advertise (Engine.linkMSS); pmtu is the path MTU, the link's
	// until an ICMP error lowers it (pmtu.go).
	linkMSS, pmtu int

	// --- Socket options ---
	noDelay   bool
	cork      bool
	keepAlive bool
	lingerOn  bool
	kaCount   int32 // TCP_KEEPCNT; a larger count is kept as MaxInt32, which no connection reaches
	kaIdle    time.Duration
	kaIntvl   time.Duration
	// SO_LINGER's time, TCP_MAXSEG, TCP_USER_TIMEOUT and TCP_CONGESTION
	// are in rareState: most connections leave them at their defaults.

	// info holds the counters every connection moves, segments and bytes,
	// and an idle one too, keepalive probes; rare the others
	// (retransmissions, recoveries, probes of a window or a tail,
	// out-of-order and duplicate segments), the errors, what TCPInfo
	// reports of retransmissions, reordering and timeouts, the socket
	// options above, the clocks of TCP_USER_TIMEOUT, zero-window probing,
	// fast recovery's PRR state and the ranges of out-of-order data
	// received, made when the first of them is needed (rareW): an idle
	// connection uses none of them, and their 432 bytes would be a third
	// of it. Counters puts the counters together.
	info baseCounters
	rare *rareState
}

// rareState is what a connection holds only once something uncommon has
// happened to it: a loss, a retransmission, a probe, reordering,
// out-of-order data, an error.
type rareState struct {
	ConnCounters // the rare ones: SegsIn, SegsOut, BytesAcked, BytesReceived and KeepAlivesSent are in Conn.info

	sndLent int // bytes of the send buffer's free space lent (Lend, lend.go) until Commit, the most it takes; 0: none lent

	// For TCPInfo (tcpinfo_track.go).
	bytesRetrans uint64 // payload bytes retransmitted
	dsackDups    uint64 // segments the peer reported received twice (D-SACK)
	reordSeen    uint64 // reorderings detected
	rcvOOOPack   uint64 // segments received out of order

	totalRTO           uint64 // retransmission timeouts that retransmitted
	totalRTORecoveries uint64 // episodes of them: the first timeout after an ACK of new data
	totalRTOTime       time.Duration
	rtoEpisodeAt       Time // start of the current episode; 0 outside one

	err     error // pending error (SO_ERROR), reported once to the application
	hardErr error // terminal error: every later call returns it
	// softErr is the last ICMP error on a synchronized connection (Linux
	// sk_err_soft): reported instead of ETIMEDOUT if the connection
	// times out, or by Err (SO_ERROR), which clears it (pmtu.go).
	softErr error

	// Socket options set away from their defaults (a listener's pass to
	// the connections it makes), read through rareR: a connection without
	// a rareState has them at their defaults.
	ccName      string        // the controller TCP_CONGESTION chose, "" for the profile's
	linger      time.Duration // SO_LINGER's time
	userMSS     int           // TCP_MAXSEG, 0 for none
	userTimeout time.Duration // TCP_USER_TIMEOUT, 0 when off (usertimeout.go)

	userTimeoutClock // when TCP_USER_TIMEOUT counts from (usertimeout.go)

	// Zero-window probing (timers.go): unanswered probes, reset by any
	// acceptable ACK, and doublings of the persist interval, reset when
	// the window opens.
	probes, persistBackoff int

	prr prrState // fast recovery's RFC 6937 state (recovery.go)

	ooo reassembly // out-of-order data received (reassembly.go)
}

// noRare is the rareState of every connection that has none yet: all its
// fields at their defaults. It is only ever read (rareR); writes go
// through rareW, which makes the connection's own.
var noRare rareState

// rareR returns the connection's rareState to read, the defaults before
// it is made.
func (c *Conn) rareR() *rareState {
	if c.rare == nil {
		return &noRare
	}
	return c.rare
}

// rareW returns the connection's rareState to write to, made at the first
// call.
func (c *Conn) rareW() *rareState {
	if c.rare == nil {
		c.rare = new(rareState)
	}
	return c.rare
}

// baseCounters are the ConnCounters every connection moves, idle ones
// included.
type baseCounters struct {
	SegsIn, SegsOut, BytesAcked, BytesReceived uint64
	KeepAlivesSent                             uint64
}

// counters returns the connection's rare counters to add to, made at the
// first call.
func (c *Conn) counters() *ConnCounters {
	return &c.rareW().ConnCounters
}

// Counters returns every counter of the connection.
func (c *Conn) Counters() ConnCounters {
	var k ConnCounters
	if c.rare != nil {
		k = c.rare.ConnCounters
	}
	k.SegsIn, k.SegsOut, k.BytesAcked, k.BytesReceived = c.info.SegsIn, c.info.SegsOut, c.info.BytesAcked, c.info.BytesReceived
	k.KeepAlivesSent = c.info.KeepAlivesSent
	return k
}

// ConnCounters are per-connection counters.
type ConnCounters struct {
	SegsIn, SegsOut uint64
	BytesAcked      uint64 // payload bytes the peer acknowledged
	BytesReceived   uint64 // in-order payload bytes received
	// Retransmits counts every segment sent again; each is of exactly one
	// of the six kinds below, which add up to it (rtxkind.go).
	Retransmits       uint64
	RTORetransmits    uint64 // in loss recovery, after a retransmission timeout
	FastRetransmits   uint64 // in fast recovery: the fast retransmission and the holes after it
	LostRetransmits   uint64 // retransmissions found lost in fast recovery and sent again, without an RTO
	RescueRetransmits uint64 // RFC 6675 NextSeg rule 4's rescue, at most one per recovery
	TLPRetransmits    uint64 // tail loss probes that resent the last segment (a probe of new data is no retransmission)
	SYNRetransmits    uint64 // SYN and SYN-ACK retransmissions
	Timeouts          uint64 // retransmission timer expirations
	FastRecoveries    uint64 // fast recovery episodes
	SACKRecoveries    uint64 // of which SACK-based (RFC 6675)
	DSACKsSent        uint64 // D-SACK blocks we sent (RFC 2883)
	DSACKsReceived    uint64 // D-SACK blocks the peer sent
	SpuriousUndos     uint64 // window reductions undone as spurious
	TailLossProbes    uint64 // RFC 8985 probes sent, of new data or resending the last segment
	ZeroWindowProbes  uint64
	KeepAlivesSent    uint64
	DupAcksIn         uint64
	OutOfOrderSegs    uint64
}

// Info is a snapshot of a connection for diagnostics (like TCP_INFO).
type Info struct {
	State                State
	Local, Remote        netip.AddrPort
	SRTT, RTTVar, RTO    time.Duration
	CwndBytes            int
	SSThreshBytes        int
	SndMSS, RcvMSS       int
	SndWndBytes          int
	RcvWndBytes          int
	BytesInFlight        int
	SndWscale, RcvWscale uint8
	Timestamps, SACK     bool
	Congestion           string
	Counters             ConnCounters
}

// SockOpts are the options an application sets before connecting or on a
// listener (inherited by accepted connections).
type SockOpts struct {
	NoDelay   bool
	RcvBuf    int // bytes; 0 = profile default
	SndBuf    int // bytes; 0 = profile default
	KeepAlive bool
	KeepIdle  time.Duration // 0 = profile default
	KeepIntvl time.Duration
	KeepCount int
	LingerOn  bool
	Linger    time.Duration
	MaxSeg    int // TCP_MAXSEG: caps the MSS we advertise; 0 = none
	// UserTimeout is TCP_USER_TIMEOUT (usertimeout.go); 0 = off. Accepted
	// connections inherit a listener's, as on Linux.
	UserTimeout time.Duration
	// Congestion is TCP_CONGESTION, the congestion controller by name
	// (congestion.Names); "" = the profile's. Connections a listener
	// accepts inherit its choice, as on Linux.
	Congestion string
	// ReuseAddr and ReusePort are SO_REUSEADDR and SO_REUSEPORT, read by
	// the bind rules (bind.go) when the socket binds, listens or
	// connects. Connections a listener accepts inherit them, and a
	// connection keeps them into TIME-WAIT, as on Linux.
	ReuseAddr bool
	ReusePort bool
	// V6Only is IPV6_V6ONLY: a socket bound to the IPv6 wildcard [::]
	// takes IPv6 only, and no longer conflicts with IPv4 sockets on its
	// port. Without it such a socket is dual-stack (Linux's default,
	// bindv6only 0). It changes nothing for other addresses: a specific
	// IPv6 address is IPv6-only anyway.
	V6Only bool
}

func (e *Engine) newConn(now Time, local, remote netip.AddrPort, o *SockOpts) *Conn {
	p := e.prof
	c := &Conn{
		e:      e,
		key:    newConnKey(local, remote),
		timers: newTimers(),
		recoveryControl: recoveryControl{
			ev: &e.ev,
		},
		noDelay:  !p.Nagle,
		kaIdle:   p.KeepAliveIdle,
		kaIntvl:  p.KeepAliveInterval,
		kaCount:  int32(min(p.KeepAliveProbes, math.MaxInt32)),
		tsOffset: e.isn.tsOffset(local, remote),
	}
	c.sndBufMax, c.rcvBufMax = p.SndBuf, p.RcvBuf
	c.dupThresh = int32(p.DupThresh)
	if o != nil {
		c.applyOpts(o)
	}
	c.rtt.init(p)
	c.linkMSS = e.linkMSS(local.Addr())
	c.pmtu = e.linkPMTU(local.Addr())
	c.rcvMSS = min(c.linkMSS, p.DefaultSendMSS)
	return c
}

func (c *Conn) applyOpts(o *SockOpts) {
	c.noDelay = o.NoDelay || !c.e.prof.Nagle && !o.NoDelay
	if o.NoDelay {
		c.noDelay = true
	}
	if o.RcvBuf > 0 {
		c.rcvBufMax = clampBuf(o.RcvBuf, c.e.prof.RcvBufMax)
		c.rcvBufLocked = true
	}
	if o.SndBuf > 0 {
		c.sndBufMax = clampBuf(o.SndBuf, c.e.prof.SndBufMax)
		c.sndBufLocked = true
	}
	c.keepAlive = o.KeepAlive
	if o.KeepIdle > 0 {
		c.kaIdle = o.KeepIdle
	}
	if o.KeepIntvl > 0 {
		c.kaIntvl = o.KeepIntvl
	}
	if o.KeepCount > 0 {
		c.kaCount = int32(min(o.KeepCount, math.MaxInt32))
	}
	c.lingerOn = o.LingerOn
	// The connection is new: rareState is made only for what is set.
	if o.Linger != 0 {
		c.rareW().linger = o.Linger
	}
	if o.MaxSeg != 0 {
		c.rareW().userMSS = o.MaxSeg
	}
	if o.Congestion != "" {
		c.rareW().ccName = o.Congestion
	}
	if ut := max(o.UserTimeout, 0).Truncate(time.Millisecond); ut != 0 {
		c.rareW().userTimeout = ut
	}
}

func clampBuf(v, max int) int {
	const minBuf = 2048
	if v < minBuf {
		return minBuf
	}
	if v > max {
		return max
	}
	return v
}

// SetWaker attaches the driver's handle.
func (c *Conn) SetWaker(w Waker) { c.waker = w }

func (c *Conn) wake() {
	if !c.inWakeups && c.waker != nil {
		c.inWakeups = true
		c.e.wakeups = append(c.e.wakeups, connWaker{c})
	}
}

// connWaker defers to the Conn's waker and clears its queued flag, so a
// connection appears once per batch of wakeups.
type connWaker struct{ c *Conn }

func (w connWaker) Wake() {
	w.c.inWakeups = false
	if w.c.waker != nil {
		w.c.waker.Wake()
	}
}

// State returns the connection's RFC 9293 state.
func (c *Conn) State() State { return c.state }

// LocalAddr and RemoteAddr return the connection's endpoints as its
// application sees them: IPv4-mapped when it reached an IPv4 peer through
// an IPv6 socket (the package documentation says when).
func (c *Conn) LocalAddr() netip.AddrPort  { return mapAddr(c.key.local(), c.mapped) }
func (c *Conn) RemoteAddr() netip.AddrPort { return mapAddr(c.key.remote(), c.mapped) }

// Read copies received in-order data into p. It returns ErrWouldBlock when
// nothing is available yet, io.EOF after the peer's FIN once the data is
// drained, and the connection's error after a reset or timeout.
func (c *Conn) Read(now Time, p []byte) (int, error) {
	if c.appClosed {
		return 0, ErrClosed
	}
	if c.rcvBuf.Len() > 0 {
		n := c.rcvBuf.read(p)
		c.afterRead(now, n)
		return n, nil
	}
	if err := c.Err(); err != nil {
		return 0, err
	}
	if c.finRcvd || c.rdShut || c.state == Closed {
		// After a reset has been reported once, reads see end of file, as
		// on Linux.
		return 0, io.EOF
	}
	return 0, ErrWouldBlock
}

// inOrderUnread counts received in-order bytes the application has not
// read. Out-of-order bytes sit in rcvBuf beyond its length (see
// reassembly) and are not counted until the gap before them fills.
func (c *Conn) inOrderUnread() int { return c.rcvBuf.Len() }

// Readable reports whether Read would return without ErrWouldBlock.
func (c *Conn) Readable() bool {
	return c.inOrderUnread() > 0 || c.rareR().hardErr != nil || c.finRcvd || c.rdShut || c.state == Closed
}

// Buffered returns the bytes ready to read.
func (c *Conn) Buffered() int { return c.inOrderUnread() }

// Write queues as much of p as the send buffer takes and returns the count.
// It returns ErrWouldBlock when the buffer is full, ErrPipe after
// CloseWrite, and the connection's error after a reset or timeout.
func (c *Conn) Write(now Time, p []byte) (int, error) {
	if c.rareR().sndLent > 0 && !c.appClosed {
		return 0, ErrLent
	}
	n, err := c.sndMakeRoom(len(p))
	if err != nil {
		return 0, err
	}
	c.sndBuf.write(p[:n])
	c.sndQueued(now, n)
	return n, nil
}

// writeErr is the error a write gets in the connection's state, nil if
// it may queue bytes: Write's, Lend's and Commit's checks.
func (c *Conn) writeErr() error {
	if c.appClosed {
		return ErrClosed
	}
	if err := c.Err(); err != nil {
		return err
	}
	if c.wrShut || c.rareR().hardErr != nil {
		// Linux: once the error was reported (here or by SO_ERROR), writes
		// on the dead connection fail with EPIPE.
		return ErrPipe
	}
	switch c.state {
	case SynSent, SynReceived:
		// Linux blocks writes until the handshake completes.
		return ErrWouldBlock
	case Established, CloseWait:
		return nil
	}
	return ErrPipe
}

// sndMakeRoom makes room in the send buffer for up to want bytes and
// returns how many it may take, or the error a write gets: Write's checks
// and sizing, shared with Lend (lend.go).
func (c *Conn) sndMakeRoom(want int) (int, error) {
	if err := c.writeErr(); err != nil {
		return 0, err
	}
	// SO_SNDBUF bounds the queue (sndRoom); the ring grows to hold it as
	// needed.
	n := c.sndRoom(want)
	if n == 0 && want > 0 {
		return 0, ErrWouldBlock
	}
	if len(c.e.pins) > 0 {
		// Zero-copy chunks may still hold bytes of the ring (pin.go):
		// its buffer does not go back to the pool if it grows, and
		// the bytes they hold behind the head are not overwritten.
		if pinned, behind := c.sndPins(); pinned {
			buf := c.sndBuf.buf
			c.sndBuf.ensure(c.sndBuf.Len()+n, c.sndRingLimit(), nil)
			if len(buf) == len(c.sndBuf.buf) { // not grown: the same buffer
				n = min(n, c.sndBuf.Free()-behind)
				if n <= 0 {
					return 0, ErrWouldBlock
				}
			}
			return n, nil
		}
	}
	c.sndBuf.ensure(c.sndBuf.Len()+n, c.sndRingLimit(), &c.e.rings)
	return n, nil
}

// sndQueued sends what n bytes just added at the end of the send buffer
// allow.
func (c *Conn) sndQueued(now Time, n int) {
	c.queueUnits(n)
	c.pushQueued = false // what this write adds is corked again (see SetNoDelay)
	c.output(now)
	c.updateDeadline()
}

// WriteMore is Write with MSG_MORE: the caller has more to send, so the
// partial segment at the end of p is held as TCP_CORK would hold it (and
// for at most as long), but only by this write; the next Write without it,
// an ACK or a timer sends it under the usual rules.
func (c *Conn) WriteMore(now Time, p []byte) (int, error) {
	c.writeMore = true
	defer func() { c.writeMore = false }()
	return c.Write(now, p)
}

// Writable reports whether Write would accept at least one byte or return
// an error.
func (c *Conn) Writable() bool {
	if c.rareR().hardErr != nil || c.wrShut || c.appClosed {
		return true
	}
	switch c.state {
	case Established, CloseWait:
		if c.sndBufLocked {
			return c.sndWritable()
		}
		return c.sndBuf.Len() < c.sndBufMax
	case SynSent, SynReceived:
		return false
	}
	return true
}

// Unsent returns bytes written but not yet acknowledged (SIOCOUTQ).
func (c *Conn) Unsent() int { return c.sndBuf.Len() }

// Connected reports whether the handshake finished (or failed: then Err
// has the reason). A dialer waits for this.
func (c *Conn) Connected() bool { return c.state != SynSent && c.state != SynReceived }

// Err returns the pending error once and clears it (getsockopt SO_ERROR,
// Linux's sock_error): the first call after a reset or timeout reports it,
// later ones see nil, so reads then see EOF and writes EPIPE. With no
// pending error it reports, once, the soft error an ICMP message left on
// a synchronized connection (pmtu.go). Linux behaviour (sk_getsockopt
// SO_ERROR): sock_error, else xchg(&sk->sk_err_soft, 0).
func (c *Conn) Err() error {
	r := c.rare
	if r == nil {
		return nil
	}
	err := r.err
	r.err = nil
	if err == nil {
		err, r.softErr = r.softErr, nil
	}
	return err
}

// KeepErr puts back the connection's error that a call (Write, Err)
// returned and cleared, for a driver that makes several calls of one
// system call: when the first ones took data, the system call returns the
// count and the error waits for the next one, as Linux's tcp_sendmsg
// returns what it copied and leaves sk_err set. Any other error is
// ignored.
func (c *Conn) KeepErr(err error) {
	if err != nil && err == c.rareR().hardErr {
		c.rare.err = err
	}
}

// HardErr returns the terminal error without clearing anything.
func (c *Conn) HardErr() error { return c.rareR().hardErr }

// CloseWrite shuts down the sending direction (shutdown(SHUT_WR)): queued
// data is sent, then a FIN; reading goes on.
func (c *Conn) CloseWrite(now Time) error {
	if c.appClosed {
		return ErrClosed
	}
	if c.rareR().hardErr != nil {
		return ErrNotConnected
	}
	switch c.state {
	case SynSent:
		c.wrShut = true
		c.finQueued = true // FIN follows once established
		return nil
	case Closed, Listen:
		return ErrNotConnected
	}
	c.shutWrite(now)
	c.output(now)
	c.updateDeadline()
	return nil
}

// CloseRead shuts down the receiving direction (shutdown(SHUT_RD)): once
// the queued data is read, reads return io.EOF instead of blocking. As on
// Linux, data that arrives later is still acknowledged and queued for
// reading, until the sending direction is shut down too: then new data
// resets the connection (checkText).
func (c *Conn) CloseRead(now Time) error {
	if c.appClosed {
		return ErrClosed
	}
	c.rdShut = true
	c.wake()
	return nil
}

func (c *Conn) shutWrite(now Time) {
	if c.wrShut && c.finQueued {
		return
	}
	c.wrShut, c.finQueued = true, true
	switch c.state {
	case Established, SynReceived:
		c.setState(FinWait1)
	case CloseWait:
		c.setState(LastAck)
	}
}

// Close releases the connection (close(2)). Unread received data, or
// SO_LINGER with a zero timeout, abort it with RST (RFC 9293 §3.10.4, RFC
// 2525 §2.17); otherwise queued data is sent with Nagle off, then a FIN.
// With SO_LINGER on, the driver waits until LingerDone.
func (c *Conn) Close(now Time) {
	if c.appClosed {
		return
	}
	c.appClosed = true
	c.rdShut = true
	c.noDelay = true // flush with Nagle off, as Linux's tcp_close does
	c.cork = false
	switch c.state {
	case Closed:
		c.destroy()
		return
	case SynSent:
		// RFC 9293 §3.10.4: CLOSE in SYN-SENT deletes the TCB, sending
		// nothing; a SYN-ACK arriving later finds no connection and is
		// answered by RST (§3.10.7.1).
		c.closeWith(nil)
		c.destroy()
		return
	case TimeWait:
		return
	}
	if c.inOrderUnread() > 0 || (c.lingerOn && c.rareR().linger == 0) {
		// Linux __tcp_close: unread data counts TCPAbortOnClose, checked
		// first; a zero linger counts TCPAbortOnData.
		if c.inOrderUnread() > 0 {
			c.e.stats.AbortOnClose++ // TCPAbortOnClose
		} else {
			c.e.stats.AbortOnData++ // TCPAbortOnData
		}
		if c.state != Closed {
			c.abort(now, nil)
		}
		c.destroy()
		return
	}
	if c.lingerOn {
		c.lingerAt = now.Add(c.rareR().linger)
	}
	c.shutWrite(now)
	if c.state == FinWait2 {
		c.closeAt = now.Add(c.e.prof.FinTimeout)
	}
	c.output(now)
	c.updateDeadline()
}

// LingerDone reports whether a lingering Close may return: everything sent
// (FIN included) is acknowledged, the connection ended, or the linger time
// passed.
func (c *Conn) LingerDone(now Time) bool {
	if c.state == Closed || c.state == TimeWait || c.state == FinWait2 || c.state == Closing && c.finAcked() {
		return true
	}
	if c.finSent && c.finAcked() {
		return true
	}
	return c.lingerAt != noDeadline && now >= c.lingerAt
}

// LingerDeadline is when a lingering Close gives up waiting.
func (c *Conn) LingerDeadline() Time { return c.lingerAt }

// Abort resets the connection at once (RST) whatever its state.
func (c *Conn) Abort(now Time) {
	if c.state != Closed && c.state != TimeWait {
		c.abort(now, nil)
	}
	c.appClosed = true
	c.destroy()
}

// abort sends RST if the state calls for one (RFC 9293 §3.10.5 ABORT) and
// closes with err.
func (c *Conn) abort(now Time, err error) {
	switch c.state {
	case SynReceived, Established, FinWait1, FinWait2, CloseWait:
		// Linux behaviour (tcp_send_active_reset): the RST takes the
		// sequence number an ACK would (acceptableSeq), so that a peer that
		// shrank its window still accepts it.
		c.e.sendReset(c.key.local(), c.key.remote(), c.acceptableSeq(), c.rcvNxt, wire.FlagRST|wire.FlagACK)
	}
	c.closeWith(err)
}

// SetNoDelay turns Nagle's algorithm off (true) or on. Turning it on
// sends what is queued at once, even under TCP_CORK, whose hold applies
// again to what is written next. Linux behaviour: __tcp_sock_set_nodelay
// sets TCP_NAGLE_PUSH, which tcp_nagle_test obeys before the cork, and
// which the next buffer a write starts clears; here the next write clears
// it, which differs only when the window kept part of the pushed data
// back and the write appends to it.
func (c *Conn) SetNoDelay(now Time, on bool) {
	c.noDelay = on
	if on {
		c.pushQueued = true
		c.output(now)
		c.updateDeadline()
	}
}

// SetCork holds partial segments while on (TCP_CORK); turning it off
// pushes what is queued.
func (c *Conn) SetCork(now Time, on bool) {
	c.cork = on
	if !on {
		c.output(now)
		c.updateDeadline()
	}
}

// SetQuickAck is TCP_QUICKACK. On forces immediate ACKs for the next
// segments and sends a pending delayed ACK now; off enters delayed-ACK
// mode, in which even the connection's first segments wait for the
// delayed-ACK timer or a second full segment (Linux's pingpong mode, which
// ends when the timer fires).
func (c *Conn) SetQuickAck(now Time, on bool) {
	if !on {
		c.pingpong = true
		return
	}
	c.pingpong = false
	c.quickAcks = int32(max(int(c.quickAcks), c.e.prof.QuickAcks, 1))
	if c.delackAt != noDeadline {
		c.ackNow = true
		c.output(now)
		c.updateDeadline()
	}
}

// SetKeepAlive enables or disables keepalive probes with the given idle,
// interval and count (zero values keep the current ones).
func (c *Conn) SetKeepAlive(now Time, on bool, idle, intvl time.Duration, count int) {
	c.keepAlive = on
	if idle > 0 {
		c.kaIdle = idle
	}
	if intvl > 0 {
		c.kaIntvl = intvl
	}
	if count > 0 {
		c.kaCount = int32(min(count, math.MaxInt32))
	}
	c.armKeepalive(now)
	c.updateDeadline()
}

// SetLinger sets SO_LINGER.
func (c *Conn) SetLinger(on bool, d time.Duration) {
	c.lingerOn = on
	if d != 0 || c.rare != nil {
		c.rareW().linger = d
	}
}

// SetReadBuffer sets SO_RCVBUF (bytes, bounded by the profile).
func (c *Conn) SetReadBuffer(n int) {
	c.rcvBufLocked = true
	c.rcvBufMax = clampBuf(n, c.e.prof.RcvBufMax)
}

// SetWriteBuffer sets SO_SNDBUF (bytes, bounded by the profile). From
// then on the queue is bounded as Linux bounds it (sndbuf.go): by twice
// n, counted with Linux's overhead per buffer.
func (c *Conn) SetWriteBuffer(n int) {
	was := c.sndBufLocked
	c.sndBufLocked = true
	c.sndBufMax = clampBuf(n, c.e.prof.SndBufMax)
	if !was {
		c.rebuildUnits()
	}
}

// ReadBuffer and WriteBuffer return SO_RCVBUF and SO_SNDBUF.
func (c *Conn) ReadBuffer() int  { return c.rcvBufMax }
func (c *Conn) WriteBuffer() int { return c.sndBufMax }

// NoDelay reports TCP_NODELAY; MSS reports the send MSS (TCP_MAXSEG).
func (c *Conn) NoDelay() bool { return c.noDelay }
func (c *Conn) MSS() int      { return c.sndMSS }

// Info returns a diagnostic snapshot.
func (c *Conn) Info() Info {
	in := Info{
		State: c.state, Local: c.LocalAddr(), Remote: c.RemoteAddr(),
		SRTT: c.rtt.srtt, RTTVar: c.rtt.rttvar, RTO: c.rtt.rto,
		SndMSS: c.sndMSS, RcvMSS: c.rcvMSS, SndWndBytes: c.sndWnd,
		RcvWndBytes: c.rcvAdv.Sub(c.rcvNxt), BytesInFlight: c.pipe(),
		SndWscale: c.sndWscale, RcvWscale: c.rcvWscale,
		Timestamps: c.tsOK, SACK: c.sackOK, Counters: c.Counters(),
	}
	if c.hasCC() {
		in.CwndBytes, in.SSThreshBytes, in.Congestion = c.ccState()
	}
	return in
}

// setState moves to s and wakes the application, which may be waiting on
// the change. It removes nothing: closeWith does that for CLOSED.
func (c *Conn) setState(s State) {
	c.state = s
	c.wake()
}

// closeWith moves to CLOSED, records err for the application and releases
// the connection's place in the engine.
func (c *Conn) closeWith(err error) {
	switch c.state {
	case Established, CloseWait:
		// EstabResets: Linux tcp_set_state counts every move from
		// ESTABLISHED or CLOSE-WAIT straight to CLOSED (reset, abort,
		// timeout), and no other.
		c.e.stats.EstabResets++
	}
	if err == ErrTimedOut && c.state != Closed {
		c.e.stats.AbortOnTimeout++ // TCPAbortOnTimeout: Linux tcp_write_err, a timer gave up
		if se := c.rareR().softErr; se != nil {
			// Linux behaviour (tcp_write_err): a connection that times
			// out reports the last ICMP error it met, else ETIMEDOUT.
			err = se
		}
	}
	if err != nil && c.rareR().hardErr == nil {
		r := c.rareW()
		r.hardErr, r.err = err, err
	}
	c.state = Closed
	c.disarm()
	c.unlink()
	c.wake()
}

// unlink removes the connection from the demux table, its listener's
// SYN queue and the timer heap, and gives up its port unless the
// application bound it and still has the socket (portLocked). A
// completed connection waiting in the accept queue stays there, as in
// Linux: accept still returns it, and the application learns from its
// first call that the peer reset it.
func (c *Conn) unlink() {
	e := c.e
	c.uncount()
	if e.conns[c.key] == c {
		e.demuxRemove(c)
	}
	if !c.portLocked || c.appClosed {
		e.release(&c.hold)
	}
	if c.parent != nil && !c.queued {
		c.parent.forget(c)
	}
	c.deadline = noDeadline
	e.timers.remove(c)
}

// destroy frees buffers once neither the application nor the protocol
// needs the connection.
func (c *Conn) destroy() {
	if c.state == Closed {
		c.unlink()
		c.sndBuf.free(c.sndRingPool())
		c.rcvBuf.free(&c.e.rings)
		if c.rare != nil {
			c.rare.ooo.reset()
		}
	}
}
