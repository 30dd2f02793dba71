package tcpcore

import (
	"net/netip"
	"slices"

	"tunstack/congestion"
	"tunstack/wire"
)

// Connect starts an active open (RFC 9293 §3.10.1) from local to remote and
// sends the SYN. Both addresses are of one family; an IPv4-mapped IPv6
// address stands for its IPv4 address, and the connection then reports its
// addresses mapped (see the package documentation). A zero local port picks an ephemeral one as Linux's
// inet_hash_connect does (connectPort): EADDRNOTAVAIL (ErrAddrNotAvail)
// when every port of the range is taken toward remote. A non-zero one is
// Bind and then Binding.Connect: EADDRINUSE when the bind conflicts,
// EADDRNOTAVAIL when the 4-tuple is taken.
func (e *Engine) Connect(now Time, local, remote netip.AddrPort, opts SockOpts) (*Conn, error) {
	ra, rmapped, rok := unmapAddr(remote.Addr())
	la, lmapped, lok := unmapAddr(local.Addr())
	if !rok || !lok || remote.Port() == 0 || la.IsUnspecified() || la.Is4() != ra.Is4() {
		return nil, ErrInvalid // from an address of its own, to one of the same family
	}
	mapped := rmapped || lmapped
	remote, local = netip.AddrPortFrom(ra, remote.Port()), netip.AddrPortFrom(la, local.Port())
	if err := checkCongestion(opts.Congestion); err != nil {
		return nil, err
	}
	if local.Port() != 0 {
		b, err := e.Bind(now, local, opts)
		if err != nil {
			return nil, err
		}
		b.mapped = mapped
		c, err := b.Connect(now, remote, opts)
		if err != nil {
			b.Close()
		}
		return c, err
	}
	port, tw, ok := e.connectPort(now, local.Addr(), remote)
	if !ok {
		e.stats.ConnectNoPort++
		return nil, ErrAddrNotAvail
	}
	local = netip.AddrPortFrom(local.Addr(), port)
	c := e.activeOpen(now, local, remote, &opts, tw)
	c.mapped = mapped
	e.hold(&c.hold, port, bindClass{addr: local.Addr(), reuseAddr: opts.ReuseAddr, reusePort: opts.ReusePort}, false)
	c.sendSyn(now)
	c.updateDeadline()
	return c, nil
}

// activeOpen makes the connection of an active open from local to remote,
// in SYN-SENT, ready to send its SYN; the caller gives it its place in the
// port's bucket. tw, when not nil, is the connection in TIME-WAIT on the
// same 4-tuple that the new one takes over (twReuse): as Linux's
// tcp_twsk_unique, the new ISN is the old SND.NXT + 65535 + 2, beyond any
// sequence number the old connection used, and the new connection starts
// with the old TS.Recent, so a SYN of the old incarnation crossing ours is
// rejected by PAWS (RFC 7323 §5.8).
func (e *Engine) activeOpen(now Time, local, remote netip.AddrPort, opts *SockOpts, tw *Conn) *Conn {
	c := e.newConn(now, local, remote, opts)
	c.accepted = true
	c.active = true
	c.iss = e.isn.isn(now, local, remote)
	if tw != nil {
		e.stats.TimeWaitReused++
		c.iss = tw.sndNxt.Add(65535 + 2)
		if c.iss == 0 {
			// Linux behaviour (tcp_twsk_unique): 0 becomes 1, since
			// tcp_v4_connect reads a write_seq of 0 as none chosen.
			c.iss = 1
		}
		c.tsRecent, c.tsRecentAt, c.tsInherited = tw.tsRecent, tw.tsRecentAt, true
		tw.closeWith(nil)
	}
	e.demuxAdd(c)
	e.stats.ActiveOpens++
	c.sndUna, c.sndNxt, c.sndMax = c.iss, c.iss, c.iss
	c.recoveryPoint, c.lostPoint, c.sndSml, c.tlpHighSeq = c.iss, c.iss, c.iss, c.iss
	c.sndBufSeq = c.iss.Add(1)
	c.rcvWscale = c.chooseRcvWscale()
	c.state = SynSent
	c.synStart = now
	return c
}

// chooseRcvWscale is the smallest shift that lets the advertised window
// cover the largest receive buffer the connection may grow to (RFC 7323
// §2.3, at most 14). A buffer the application fixed with SO_RCVBUF never
// grows, so it alone decides, as in Linux (tcp_select_initial_window with
// the window clamp of a locked buffer): a small SO_RCVBUF gets scale 0.
func (c *Conn) chooseRcvWscale() uint8 {
	if !c.e.prof.WindowScaling {
		return 0
	}
	limit := max(c.e.prof.RcvBufMax, c.rcvBufMax)
	if c.rcvBufLocked {
		limit = c.rcvBufMax
	}
	var s uint8
	for s < 14 && 65535<<s < limit {
		s++
	}
	return s
}

// advertisedMSS is the MSS option we send: the link's for the connection's
// family (linkMSS), lowered by TCP_MAXSEG.
func (c *Conn) advertisedMSS() int {
	m := c.linkMSS
	if um := c.rareR().userMSS; um > 0 && um < m {
		m = um
	}
	return m
}

// synOptions fills the options of our SYN or SYN-ACK. For a SYN-ACK only
// what the peer offered is echoed (RFC 7323 §2.2, §3.2; RFC 2018 §2).
func (c *Conn) synOptions(now Time, o *wire.TCPOptions, synAck bool) {
	p := c.e.prof
	*o = wire.TCPOptions{HasMSS: true, MSS: uint16(c.advertisedMSS())}
	if (!synAck && p.WindowScaling) || (synAck && c.wsOK) {
		o.HasWScale, o.WScale = true, c.rcvWscale
	}
	if (!synAck && p.SACK) || (synAck && c.sackOK) {
		o.SACKPermitted = true
	}
	if (!synAck && p.Timestamps) || (synAck && c.tsOK) {
		// Linux behaviour (tcp_syn_options): every SYN echoes TS.Recent,
		// which is 0 on a first SYN and, on a SYN that took over a
		// TIME-WAIT entry (twReuse), the entry's last TS val from the peer.
		o.HasTS, o.TSVal, o.TSEcr = true, c.tsNow(now), c.tsRecent
	}
}

// tsNow is our timestamp clock: milliseconds plus the connection's offset
// (RFC 7323 §5.4 allows 1 ms to 1 s per tick).
func (c *Conn) tsNow(now Time) uint32 {
	return uint32(int64(now)/1e6) + c.tsOffset
}

// sendSyn (re)transmits our SYN or SYN-ACK.
func (c *Conn) sendSyn(now Time) {
	synAck := c.state == SynReceived
	var o wire.TCPOptions
	c.synOptions(now, &o, synAck)
	flags := wire.FlagSYN
	var ack Seq
	if synAck {
		flags |= wire.FlagACK
		ack = c.rcvNxt
		c.lastAckSent = c.rcvNxt
	}
	wnd := c.synWindow(synAck)
	c.rcvSsthresh = wnd
	c.rcvAdv = c.rcvNxt.Add(wnd)
	c.emit(now, c.iss, ack, flags, uint16(wnd), &o, 0, 0)
	if c.sndNxt == c.iss {
		c.sndNxt = c.iss.Add(1)
		c.sndMax = c.sndNxt
		c.noteSent(now, c.sndNxt)
	}
	if c.rtoAt == noDeadline {
		c.rtoAt = now.Add(c.rtt.backedOff(c.backoff))
	}
	if c.retries == 0 {
		// Time the first SYN or SYN-ACK (Karn: never a retransmission),
		// with timestamps too: the ACK that completes the handshake is
		// the connection's first RTT sample, as in Linux (tcp_synack_rtt_meas
		// for a passive open, tcp_clean_rtx_queue for an active one).
		c.rttTiming, c.rttSeq, c.rttTime = true, c.iss, now
	}
}

// synWindow is the window our SYN or SYN-ACK offers: the receive buffer,
// at most 65535 since a SYN's window is never scaled (RFC 7323 §2.2), and,
// as Linux's tcp_select_initial_window does, rounded down to whole
// segments of the MSS we expect to receive, less the timestamp option
// where the connection knows it will carry one: a SYN-ACK that agreed to
// timestamps, and a SYN that took over a TIME-WAIT entry with timestamps
// (Linux tcp_connect_init subtracts the option when ts_recent_stamp is
// set).
func (c *Conn) synWindow(synAck bool) int {
	wnd := min(c.rcvBufMax, 65535)
	mss := c.advertisedMSS()
	if (synAck && c.tsOK) || (!synAck && c.tsInherited && c.e.prof.Timestamps) {
		mss -= 12 // the timestamp option, aligned: 10 bytes and two NOPs
	}
	if wnd > mss {
		wnd -= wnd % mss
	}
	return wnd
}

// learnSynOptions applies the options of the peer's SYN (RFC 9293 §3.7.1,
// RFC 7323, RFC 2018) and sizes the connection.
func (c *Conn) learnSynOptions(now Time, s *segment, weOffered bool) {
	p := c.e.prof
	o := s.opts
	c.peerMSS = c.e.defaultPeerMSS(c.key.remote().Addr()) // RFC 9293 §3.7.1: 536 (IPv6: 1220) when absent
	// Linux behaviour (tcp_parse_options): an MSS option of 0 is ignored,
	// as if absent; any other below tcp_min_snd_mss is raised to it
	// (__tcp_mtu_to_mss).
	if o.HasMSS && o.MSS != 0 {
		c.peerMSS = max(int(o.MSS), p.MinSendMSS)
	}
	c.wsOK = o.HasWScale && p.WindowScaling && weOffered
	if c.wsOK {
		c.sndWscale = min(o.WScale, 14) // RFC 7323 §2.3: treat > 14 as 14
	} else {
		c.sndWscale, c.rcvWscale = 0, 0
	}
	c.sackOK = o.SACKPermitted && p.SACK && weOffered
	c.tsOK = o.HasTS && p.Timestamps && weOffered
	if c.tsOK {
		c.tsRecent, c.tsRecentAt = o.TSVal, now
	}
	c.setSndMSS()
}

// setSndMSS derives the payload size of a full segment: the peer's MSS
// bounded by the path MTU less the network and TCP headers, less the fixed
// options we put on every segment (RFC 9293 §3.7.1: the MSS counts no
// options). Linux behaviour (__tcp_mtu_to_mss): the path's share is never
// below tcp_min_snd_mss (the profile's MinSendMSS), in either family.
func (c *Conn) setSndMSS() {
	c.sndMSS = c.mssForMTU(c.pmtu)
	c.rcvMSS = min(c.rcvMSS, c.sndMSS)
	if c.hasCC() {
		c.ccw().SetMSS(c.sndMSS)
	}
}

// startCongestionControl chooses the connection's loss recovery and makes
// its congestion controller due, once, when the handshake completes: a
// half-open connection in the SYN queue carries neither. The controller
// itself is built at its first use (ccw), in the state it would have had
// if built here: nothing reaches it in between, and what would (a new
// MSS, a TCP_CONGESTION switch) builds it first. So an established
// connection that never moves data, an idle one, holds no controller (a
// CUBIC one is 240 bytes). The profile's controller name was checked by
// Profile.Validate when the engine was made, and a TCP_CONGESTION choice
// by checkCongestion when it was made, so neither lookup can fail.
func (c *Conn) startCongestionControl() {
	rec, err := congestion.RecoveryOf(c.congestionName())
	if err != nil {
		panic("tcpcore: " + err.Error() + " in a validated profile")
	}
	c.ccDue = true
	c.lossRecovery = chooseLossRecovery(rec, c.sackOK)
}

// hasCC reports whether the connection has a congestion controller, built
// or due (established).
func (c *Conn) hasCC() bool { return c.cc != nil || c.ccDue }

// ccw is the connection's congestion controller, built if it was due and
// not yet built; nil before the handshake completes.
func (c *Conn) ccw() congestion.Controller {
	if c.cc == nil && c.ccDue {
		c.cc = c.newController()
	}
	return c.cc
}

// cwnd is the congestion window in bytes, without building a controller
// that is only due: a new one's is the initial window (every algorithm
// starts there); 0 before the handshake completes. Sending asks it for
// every segment, so it asks a built controller for its window alone.
func (c *Conn) cwnd() int {
	if c.cc != nil {
		return c.cc.CongestionWindow()
	}
	cwnd, _, _ := c.ccState()
	return cwnd
}

// ccState is what a look that changes nothing (tcp_info, a trace, the
// connection table, the send checks) reads of the controller: its window,
// threshold and name, those of a new one while it is only due, so that
// the look builds nothing; zeros before the handshake completes.
func (c *Conn) ccState() (cwnd, ssthresh int, name string) {
	switch {
	case c.cc != nil:
		return c.cc.CongestionWindow(), c.cc.SlowStartThreshold(), c.cc.Name()
	case c.ccDue:
		return c.congestionConfig().InitialWindow(), congestion.InitialSSThresh, c.congestionName()
	}
	return 0, 0, ""
}

func (c *Conn) newController() congestion.Controller {
	cc, err := congestion.New(c.congestionName(), c.congestionConfig())
	if err != nil {
		panic("tcpcore: " + err.Error() + " in a validated profile")
	}
	return cc
}

func (c *Conn) congestionConfig() congestion.Config {
	return congestion.Config{
		MSS:                    c.sndMSS,
		InitialWindowSegments:  c.e.prof.InitialCwndSegments,
		SlowStartLimitSegments: c.e.prof.SlowStartLimitSegments,
		IdleRestartHalving:     c.e.prof.IdleRestartHalving,
		HyStart:                c.e.prof.HyStart,
		CubicLinuxGrowth:       c.e.prof.CubicLinuxGrowth,
	}
}

// congestionName is the controller the connection runs or will run: the
// socket's TCP_CONGESTION choice, else the profile's.
func (c *Conn) congestionName() string {
	if n := c.rareR().ccName; n != "" {
		return n
	}
	return c.e.prof.Congestion
}

// Congestion is TCP_CONGESTION: the name of the connection's congestion
// controller.
func (c *Conn) Congestion() string {
	if c.cc != nil {
		return c.cc.Name()
	}
	return c.congestionName()
}

// CheckCongestion is Linux's answer to a TCP_CONGESTION name: ENOENT
// (ErrNoCongestion) for an algorithm the engine does not have
// (tcp_set_congestion_control).
func CheckCongestion(name string) error {
	if !slices.Contains(congestion.Names(), name) {
		return ErrNoCongestion
	}
	return nil
}

// checkCongestion checks SockOpts.Congestion, where "" is the profile's
// controller.
func checkCongestion(name string) error {
	if name == "" {
		return nil
	}
	return CheckCongestion(name)
}

// SetCongestion is setsockopt TCP_CONGESTION: it chooses the connection's
// congestion controller by name (congestion.Names). Before the handshake
// completes the choice waits for the controller to be built. On an
// established connection the new controller takes over at once, as Linux's
// tcp_reinit_congestion_control does: cwnd and ssthresh carry over, the
// algorithm's own state starts afresh, and the connection recovers from
// loss as the new algorithm is defined to (chooseLossRecovery).
func (c *Conn) SetCongestion(name string) error {
	if err := CheckCongestion(name); err != nil {
		return err
	}
	if !c.hasCC() {
		c.rareW().ccName = name
		return nil
	}
	if name == c.Congestion() {
		// Linux: asking for the algorithm in use changes nothing.
		c.rareW().ccName = name
		return nil
	}
	cc, err := congestion.Continue(name, c.congestionConfig(), c.ccw())
	if err != nil {
		return err
	}
	c.rareW().ccName, c.cc = name, cc
	c.lossRecovery = chooseLossRecovery(cc.Recovery(), c.sackOK)
	return nil
}

// SetCongestion is TCP_CONGESTION on a listener: the connections it makes
// from then on run the named controller (Linux's tcp_ca_openreq_child: a
// child inherits the algorithm its listener set).
func (l *Listener) SetCongestion(name string) error {
	if err := CheckCongestion(name); err != nil {
		return err
	}
	l.opts.Congestion = name
	return nil
}

// passiveOpen handles the SYN that created this connection from a listener
// (RFC 9293 §3.10.7.2, third check): record IRS, answer SYN-ACK.
func (c *Conn) passiveOpen(now Time, s *segment) {
	c.irs = s.seq
	c.rcvNxt = s.seq.Add(1)
	c.rcvWscale = c.chooseRcvWscale()
	c.learnSynOptions(now, s, true)
	c.iss = c.e.isn.isn(now, c.key.local(), c.key.remote())
	if c.e.twISN != 0 {
		c.iss, c.e.twISN = c.e.twISN, 0
	}
	c.sndUna, c.sndNxt, c.sndMax = c.iss, c.iss, c.iss
	c.recoveryPoint, c.lostPoint, c.sndSml, c.tlpHighSeq = c.iss, c.iss, c.iss, c.iss
	c.sndBufSeq = c.iss.Add(1)
	// The SYN's window is never scaled (RFC 7323 §2.2).
	c.sndWnd = int(s.wnd)
	c.sndWl1, c.sndWl2 = s.seq, c.iss
	c.maxSndWnd = c.sndWnd
	c.state = SynReceived
	c.sendSyn(now)
	c.updateDeadline()
}

// established finishes a handshake.
func (c *Conn) becomeEstablished(now Time) {
	c.startCongestionControl()
	c.noteEstablished(now)
	c.retries, c.backoff = 0, 0
	c.rtoAt = noDeadline
	c.setState(Established)
	if c.finQueued {
		// shutdown(SHUT_WR) during the handshake.
		c.setState(FinWait1)
	}
	c.armKeepalive(now)
}
