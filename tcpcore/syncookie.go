package tcpcore

import (
	"net/netip"
	"time"

	"tunstack/wire"
)

// SYN cookies (RFC 4987 §3.6): when the SYN queue is full, the listener
// answers a SYN without keeping any state, encoding what it must remember
// in the ISS of its SYN-ACK. The final ACK (SEG.ACK-1 = ISS) brings it back.
//
// The layout follows Linux's cookie_v4 (cookie_v6 for IPv6, with its own
// MSS table, cookieTable): ISS = H1 + ISN_peer + (t << 24) +
// ((H2(t) + mssIndex) & 0xffffff), with t a minute counter, so a cookie is
// valid for a few minutes and forging one means guessing keyed hashes.
// What 32 bits cannot carry (window scale, SACK-permitted) rides in the low
// six bits of our timestamp when the peer uses timestamps, and is lost
// otherwise, as in Linux.

const (
	cookieBits   = 24
	cookieMask   = 1<<cookieBits - 1
	cookiePeriod = time.Minute
	// cookieMaxAge is how many periods a cookie stays valid (Linux
	// MAX_SYNCOOKIE_AGE).
	cookieMaxAge = 2
	// cookieValidAfterOverflow is how long after the last SYN-queue
	// overflow a listener still checks ACKs for cookies (Linux
	// TCP_SYNCOOKIE_VALID); otherwise such an ACK gets an RST.
	cookieValidAfterOverflow = 2 * time.Minute

	tsOptBits  = 6 // low TSval bits carrying wscale (4) and SACK (1)
	tsOptMask  = 1<<tsOptBits - 1
	tsNoWscale = 0xf
)

// cookieMSSIndex is the largest entry of the MSS table (cookieTable, per
// family) not above mss, the first one if none is.
func cookieMSSIndex(table []int, mss int) int {
	i := len(table) - 1
	for i > 0 && table[i] > mss {
		i--
	}
	return i
}

func (g *isnGen) cookieHash(local, remote netip.AddrPort, count uint32) uint32 {
	return g.hash(local, remote, byte(3+count%251)) + count*0x9e3779b9
}

// cookieISS computes the ISS for a stateless SYN-ACK.
func (e *Engine) cookieISS(now Time, local, remote netip.AddrPort, peerISN Seq, mssIdx int) Seq {
	count := uint32(int64(now) / int64(cookiePeriod))
	h1 := e.isn.hash(local, remote, 3)
	h2 := e.isn.cookieHash(local, remote, count)
	return Seq(h1 + uint32(peerISN) + count<<cookieBits + ((h2 + uint32(mssIdx)) & cookieMask))
}

// checkCookie validates the ACK of a cookie SYN-ACK and returns the MSS
// index it carried.
func (e *Engine) checkCookie(now Time, s *segment) (mssIdx int, ok bool) {
	iss := uint32(s.ack) - 1
	peerISN := uint32(s.seq) - 1
	h1 := e.isn.hash(s.dst, s.src, 3)
	diff := iss - h1 - peerISN
	count := uint32(int64(now) / int64(cookiePeriod))
	sent := diff >> cookieBits
	if count-sent > cookieMaxAge {
		return 0, false
	}
	// The counter's high bits were lost in the shift; rebuild the full
	// counter from the current one.
	full := count - ((count - sent) & (1<<(32-cookieBits) - 1))
	h2 := e.isn.cookieHash(s.dst, s.src, full)
	data := (diff - h2) & cookieMask
	if data >= uint32(len(cookieTable(s.dst.Addr()))) {
		return 0, false
	}
	return int(data), true
}

// cookieTSVal folds the options a cookie cannot carry into our TSval: the
// peer's window-scale shift (or "none") and SACK-permitted. Our own shift
// needs no room: it follows from the buffer size and is chosen again.
func cookieTSVal(ts uint32, o *wire.TCPOptions) uint32 {
	opts := uint32(tsNoWscale)
	if o.HasWScale {
		opts = uint32(min(o.WScale, 14))
	}
	if o.SACKPermitted {
		opts |= 1 << 4
	}
	v := ts&^tsOptMask | opts
	if int32(v-ts) > 0 {
		v -= tsOptMask + 1 // never run ahead of our clock
	}
	return v
}

// sendCookieSynAck answers a SYN statelessly (RFC 4987 §3.6).
func (l *Listener) sendCookieSynAck(now Time, s *segment) {
	e := l.e
	l.lastCookie = now
	l.stats.CookiesSent++
	e.stats.SynCookiesSent++
	mss := e.linkMSS(s.dst.Addr())
	if l.opts.MaxSeg > 0 && l.opts.MaxSeg < mss {
		mss = l.opts.MaxSeg
	}
	// A throwaway TCB builds the SYN-ACK exactly as a real one would; it
	// is never linked into the engine. It takes the peer's MSS as a real
	// one does (learnSynOptions: the family's default when absent or 0),
	// and the cookie encodes that.
	c := e.newConn(now, s.dst, s.src, &l.opts)
	c.irs, c.rcvNxt = s.seq, s.seq.Add(1)
	c.rcvWscale = c.chooseRcvWscale()
	c.learnSynOptions(now, s, true)
	idx := cookieMSSIndex(cookieTable(s.dst.Addr()), min(c.peerMSS, mss))
	iss := e.cookieISS(now, s.dst, s.src, s.seq, idx)
	c.iss, c.sndUna, c.sndNxt, c.sndMax = iss, iss, iss, iss
	c.state = SynReceived
	var o wire.TCPOptions
	c.synOptions(now, &o, true)
	if o.HasTS {
		o.TSVal = cookieTSVal(o.TSVal, s.opts)
	} else {
		// Without timestamps the cookie cannot carry these (Linux too).
		o.HasWScale, o.SACKPermitted = false, false
	}
	c.emit(now, iss, c.rcvNxt, wire.FlagSYN|wire.FlagACK, uint16(c.synWindow(true)), &o, 0, 0)
}

// cookieConn builds the connection a valid cookie ACK stands for.
func (l *Listener) cookieConn(now Time, s *segment, mssIdx int) *Conn {
	e := l.e
	c := e.newConn(now, s.dst, s.src, &l.opts)
	c.parent = l
	c.iss = s.ack.Add(-1)
	// As if our SYN-ACK were outstanding: the ACK being processed
	// acknowledges it and completes the handshake.
	c.sndUna, c.sndNxt, c.sndMax = c.iss, s.ack, s.ack
	c.noteSent(now, s.ack)
	c.recoveryPoint, c.lostPoint, c.sndSml, c.tlpHighSeq = c.iss, c.iss, c.iss, c.iss
	c.sndBufSeq = s.ack
	c.irs = s.seq.Add(-1)
	c.rcvNxt = s.seq
	c.rcvWscale = c.chooseRcvWscale()
	c.peerMSS = cookieTable(s.dst.Addr())[mssIdx]
	if s.opts.HasTS && s.opts.TSEcr != 0 && e.prof.Timestamps {
		c.tsOK = true
		c.tsRecent, c.tsRecentAt = s.opts.TSVal, now
		opts := s.opts.TSEcr & tsOptMask
		if ws := opts & 0xf; ws != tsNoWscale && e.prof.WindowScaling {
			c.wsOK = true
			c.sndWscale = uint8(ws)
		} else {
			c.rcvWscale = 0
		}
		c.sackOK = opts&(1<<4) != 0 && e.prof.SACK
	} else {
		c.rcvWscale = 0
	}
	c.setSndMSS()
	c.rcvSsthresh = c.synWindow(true)
	c.rcvAdv = c.rcvNxt.Add(c.rcvSsthresh)
	c.sndWnd = int(s.wnd) << c.sndWscale
	c.sndWl1, c.sndWl2 = s.seq, s.ack
	c.maxSndWnd = c.sndWnd
	c.state = SynReceived
	return c
}
