package tcpcore

import (
	"errors"
	"io"
	"testing"
	"time"

	"tunstack/wire"
)

// The tests of this file each check one rule where the engine does what
// Linux does, named after the rule.

// Linux behaviour: a SYN with FIN set reaching a listener is dropped
// without a SYN-ACK or an RST; a plain SYN afterwards opens normally.
func TestSynFinToListenerDropped(t *testing.T) {
	p := newPeer(t, nil)
	l, err := p.e.Listen(p.now, local, 16, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	p.send(tseg{flags: fS | fF, seq: peerISN, wnd: 65535, opts: plainSyn})
	p.expectNone()
	if p.e.ConnCount() != 0 || l.Stats().SynQueue != 0 {
		t.Fatalf("SYN+FIN left %d connections, SYN queue %d; want none", p.e.ConnCount(), l.Stats().SynQueue)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	if sa := p.next(); sa.flags != fSA || sa.ack != peerISN+1 {
		t.Fatalf("plain SYN answered with %v, want a SYN-ACK of %d", sa, peerISN+1)
	}
}

// RFC 1122 §4.2.2.16 with Linux's tcp_acceptable_seq: once the peer moves
// its right window edge back below SND.NXT, a pure ACK carries the edge as
// its sequence number, not SND.NXT; no new data goes until the window
// reopens.
func TestAckSeqIsRightEdgeOfShrunkWindow(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAcceptWith(plainSyn, SockOpts{NoDelay: true})
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 4000})
	if n, err := c.Write(p.now, make([]byte, 1000)); n != 1000 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	p.expect(fPA, iss+1, peerISN+1)
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 4000, payload: make([]byte, 10)})
	p.expect(fA, iss+1001, peerISN+11)
	// The peer now offers 500 bytes from SND.UNA: its edge is iss+501.
	p.send(tseg{flags: fPA, seq: peerISN + 11, ack: iss + 1, wnd: 500, payload: make([]byte, 10)})
	p.expect(fA, iss+501, peerISN+21)
	if n, err := c.Write(p.now, make([]byte, 500)); n != 500 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	p.expectNone()
	p.send(tseg{flags: fA, seq: peerISN + 21, ack: iss + 1001, wnd: 4000})
	if d := p.expect(fPA, iss+1001, peerISN+21); len(d.payload) != 500 {
		t.Fatalf("sent %v, want the 500 bytes held back", d)
	}
}

// Linux behaviour (tcp_send_active_reset): the RST of an abort takes the
// same sequence number as an ACK, the right edge of a shrunk window.
func TestAbortRSTSeqIsRightEdgeOfShrunkWindow(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAcceptWith(plainSyn, SockOpts{NoDelay: true})
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 4000})
	c.Write(p.now, make([]byte, 1000))
	p.expect(fPA, iss+1, peerISN+1)
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 500, payload: make([]byte, 10)})
	p.expect(fA, iss+501, peerISN+11)
	c.Abort(p.now)
	p.expect(fRA, iss+501, peerISN+11)
}

// Linux behaviour (tcp_timewait_state_process): data that reaches
// TIME-WAIT past the peer's FIN is not taken but answered, every time and
// without rate limit, by an ACK of the FIN, and restarts the 2 MSL timer.
func TestTimeWaitDataAnsweredWithAckEveryTime(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.timeWaitConn()
	for i := range 2 {
		p.advance(100 * time.Millisecond)
		p.send(tseg{flags: fPA, seq: peerISN + 2, ack: iss + 2, wnd: 65535, payload: make([]byte, 100)})
		p.expect(fA, iss+2, peerISN+2)
		p.expectNone()
		if c.State() != TimeWait {
			t.Fatalf("after data %d: state %v, want TIME-WAIT", i+1, c.State())
		}
	}
	// The data restarted the 2 MSL timer.
	last := p.now
	p.advance(p.e.Profile().TimeWaitLen - time.Millisecond)
	if c.State() != TimeWait {
		t.Fatalf("TIME-WAIT ended %v after the last data, before 2 MSL", p.now.Sub(last))
	}
	p.advance(time.Millisecond)
	if c.State() != Closed {
		t.Fatalf("state %v 2 MSL after the last data, want CLOSED", c.State())
	}
}

// Linux behaviour: after shutdown(SHUT_RD) data that arrives is still
// acknowledged and queued; a read returns it, and only then end of file.
func TestShutdownReadStillQueuesArrivingData(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.CloseRead(p.now)
	buf := make([]byte, 1000)
	if n, err := c.Read(p.now, buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after SHUT_RD = %d, %v; want 0, EOF", n, err)
	}
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
	p.expect(fA, iss+1, peerISN+101)
	if n, err := c.Read(p.now, buf); n != 100 || err != nil {
		t.Fatalf("Read of the data that came after SHUT_RD = %d, %v; want 100", n, err)
	}
	if n, err := c.Read(p.now, buf); n != 0 || err != io.EOF {
		t.Fatalf("Read once it is drained = %d, %v; want 0, EOF", n, err)
	}
}

// RFC 1122 §4.2.2.13 as Linux applies it (tcp_rcv_state_process): new
// data for a connection that shut down both directions, in FIN-WAIT, is
// answered with RST and the connection reports ECONNRESET.
func TestShutdownBothThenDataResets(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.CloseRead(p.now)
	if err := c.CloseWrite(p.now); err != nil {
		t.Fatal(err)
	}
	p.expect(fFA, iss+1, peerISN+1)
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 2, wnd: 65535, payload: make([]byte, 100)})
	p.expect(fR, iss+2, 0)
	if c.State() != Closed || !errors.Is(c.HardErr(), ErrConnReset) {
		t.Fatalf("state %v, error %v; want CLOSED, ECONNRESET", c.State(), c.HardErr())
	}
}

// Linux behaviour (TCP_NAGLE_PUSH): setting TCP_NODELAY on a corked
// socket sends what is queued at once; the cork stays, so what is written
// next is held again until TCP_CORK is cleared.
func TestNoDelayWhileCorkedPushesQueuedData(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.SetCork(p.now, true)
	c.Write(p.now, make([]byte, 100))
	p.expectNone()
	p.advance(50 * time.Millisecond)
	c.SetNoDelay(p.now, true)
	if d := p.expect(fPA, iss+1, peerISN+1); len(d.payload) != 100 || d.at != p.now {
		t.Fatalf("sent %v, want the 100 corked bytes at once", d)
	}
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 101, wnd: 65535})
	c.Write(p.now, make([]byte, 100))
	p.advance(50 * time.Millisecond)
	p.expectNone()
	c.SetCork(p.now, false)
	if d := p.expect(fPA, iss+101, peerISN+1); len(d.payload) != 100 {
		t.Fatalf("sent %v, want the second 100 bytes when uncorked", d)
	}
}

// RFC 7323 §5.3 with Linux's exemption for disordered ACKs
// (tcp_disordered_ack): a pure duplicate ACK that changes no window, whose
// TSval lags TS.Recent by less than the RTO in 1200 Hz ticks, is taken
// silently; one that lags by more fails PAWS and is answered.
func TestPAWSExemptsSlightlyOldPureAck(t *testing.T) {
	p := newPeer(t, nil)
	syn := wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 1000}
	p.advance(10 * time.Millisecond)
	c, iss := p.listenAndAccept(syn)
	// Move TS.Recent to 2000 with an ACK at RCV.NXT.
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535,
		opts: wire.TCPOptions{HasTS: true, TSVal: 2000, TSEcr: 1}})
	p.expectNone()
	rto := c.Info().RTO
	lag := uint32(rto*1200/time.Second) - 1
	p.advance(10 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535,
		opts: wire.TCPOptions{HasTS: true, TSVal: 2000 - lag, TSEcr: 1}})
	p.expectNone()
	if d := p.e.Stats().PAWSDrops; d != 0 {
		t.Fatalf("ACK %d ticks old (RTO %v) counted as a PAWS drop", lag, rto)
	}
	p.advance(10 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535,
		opts: wire.TCPOptions{HasTS: true, TSVal: 2000 - lag - 2, TSEcr: 1}})
	if a := p.expect(fA, iss+1, peerISN+1); a.opts.TSEcr != 2000 {
		t.Fatalf("PAWS answer echoes %d, want TS.Recent 2000", a.opts.TSEcr)
	}
	if d := p.e.Stats().PAWSDrops; d != 1 {
		t.Fatalf("PAWS drops %d, want 1", d)
	}
	// A segment with data gets no exemption, however little it lags.
	p.advance(10 * time.Millisecond)
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: []byte("x"),
		opts: wire.TCPOptions{HasTS: true, TSVal: 1990, TSEcr: 1}})
	p.expect(fA, iss+1, peerISN+1)
	if c.Buffered() != 0 {
		t.Fatalf("PAWS let %d bytes in", c.Buffered())
	}
}

// Linux behaviour (tcp_synack_rtt_meas): the ACK that completes a passive
// open is the first RTT sample, timestamps or not, so the RTO after the
// handshake follows the path rather than staying at the initial 1 s.
func TestPassiveOpenWithTimestampsSamplesRTTFromSynAck(t *testing.T) {
	p := newPeer(t, nil)
	l, err := p.e.Listen(p.now, local, 16, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	syn := wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 1000}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: syn})
	sa := p.next()
	p.advance(10 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535, opts: tsEcho(syn, sa)})
	c, err := l.Accept(p.now)
	if err != nil {
		t.Fatal(err)
	}
	if in := c.Info(); in.SRTT != 10*time.Millisecond || in.RTO != 210*time.Millisecond {
		t.Fatalf("after a 10 ms handshake SRTT %v, RTO %v; want 10ms, 210ms", in.SRTT, in.RTO)
	}
}

// RFC 5681 §4.2 and RFC 2018 as Linux applies them (tcp_data_queue_ofo
// holds a FIN with the data before it): data with FIN beyond a hole is
// acknowledged at once with a SACK block that covers the FIN; the
// connection stays ESTABLISHED until the hole fills, and then the ACK
// covers the FIN.
func TestOutOfOrderFinIsSACKed(t *testing.T) {
	p := newPeer(t, nil)
	syn := wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true}
	c, iss := p.listenAndAccept(syn)
	p.send(tseg{flags: fFA | fP, seq: peerISN + 101, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
	a := p.expect(fA, iss+1, peerISN+1)
	if a.opts.NumSACK != 1 || a.opts.SACK[0] != (wire.SACKBlock{Left: uint32(peerISN + 101), Right: uint32(peerISN + 202)}) {
		t.Fatalf("SACK blocks %v, want one %d-%d", a.opts.SACK[:a.opts.NumSACK], peerISN+101, peerISN+202)
	}
	if c.State() != Established || c.Readable() {
		t.Fatalf("state %v, readable %v; want ESTABLISHED with nothing to read", c.State(), c.Readable())
	}
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
	if a := p.expect(fA, iss+1, peerISN+202); a.opts.NumSACK != 0 {
		t.Fatalf("ACK still carries SACK blocks %v", a.opts.SACK[:a.opts.NumSACK])
	}
	buf := make([]byte, 1000)
	if n, err := c.Read(p.now, buf); n != 200 || err != nil {
		t.Fatalf("Read = %d, %v; want 200", n, err)
	}
	if n, err := c.Read(p.now, buf); n != 0 || err != io.EOF {
		t.Fatalf("Read = %d, %v; want EOF", n, err)
	}
	if c.State() != CloseWait {
		t.Fatalf("state %v, want CLOSE-WAIT", c.State())
	}
}

// RFC 5681 §4.2 for a FIN alone beyond a hole: it is acknowledged at once,
// with a SACK block of its one sequence number, as Linux does.
func TestOutOfOrderBareFinAckedAtOnce(t *testing.T) {
	p := newPeer(t, nil)
	syn := wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true}
	c, iss := p.listenAndAccept(syn)
	p.send(tseg{flags: fFA, seq: peerISN + 101, ack: iss + 1, wnd: 65535})
	a := p.expect(fA, iss+1, peerISN+1)
	if a.opts.NumSACK != 1 || a.opts.SACK[0] != (wire.SACKBlock{Left: uint32(peerISN + 101), Right: uint32(peerISN + 102)}) {
		t.Fatalf("SACK blocks %v, want one %d-%d", a.opts.SACK[:a.opts.NumSACK], peerISN+101, peerISN+102)
	}
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 100)})
	p.expect(fA, iss+1, peerISN+102)
	if c.Buffered() != 100 || c.State() != CloseWait {
		t.Fatalf("buffered %d, state %v; want 100 bytes and CLOSE-WAIT", c.Buffered(), c.State())
	}
}

// Linux behaviour (tcp_snd_wnd_test tests a multi-segment TSO buffer by
// its first segment): after close, the FIN rides on the last data segment
// of a two-segment chunk even though that data reaches the peer's window
// edge; a FIN that would go alone waits for window.
func TestFinRidesOnChunkThatFillsWindow(t *testing.T) {
	p := newPeer(t, nil)
	// A 1000-byte window: segments of 500 (half the largest window), sent
	// two to a chunk.
	c, iss := p.acceptWithWindow(1000)
	c.Write(p.now, make([]byte, 3000))
	p.expect(fA, iss+1, peerISN+1)
	p.expect(fPA, iss+501, peerISN+1)
	c.Close(p.now)
	p.expectNone()
	for _, seq := range []Seq{1001, 2001} {
		p.advance(10 * time.Millisecond)
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + seq, wnd: 1000})
		p.expect(fA, iss+seq, peerISN+1)
		last := fPA
		if seq == 2001 {
			last |= fF
		}
		if s := p.expect(last, iss+seq+500, peerISN+1); len(s.payload) != 500 {
			t.Fatalf("sent %v, want 500 bytes", s)
		}
	}
	p.expectNone()
}

// RFC 9293 §3.8.6: a FIN with no data to ride on needs window; once
// everything sent fills the peer's window, the FIN waits for the ACK that
// opens it.
func TestLoneFinWaitsForWindow(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.acceptWithWindow(1000)
	c.Write(p.now, make([]byte, 1000))
	p.expect(fA, iss+1, peerISN+1)
	p.expect(fPA, iss+501, peerISN+1)
	c.Close(p.now)
	p.expectNone()
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1001, wnd: 1000})
	p.expect(fFA, iss+1001, peerISN+1)
}

// acceptWithWindow completes a passive open (plainSyn) whose SYN and ACK
// offer wnd bytes, and returns the connection and the engine's ISN.
func (p *peer) acceptWithWindow(wnd uint16) (*Conn, Seq) {
	p.t.Helper()
	l, err := p.e.Listen(p.now, local, 16, SockOpts{})
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: wnd, opts: plainSyn})
	sa := p.next()
	p.advance(10 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: wnd})
	c, err := l.Accept(p.now)
	if err != nil {
		p.t.Fatal(err)
	}
	return c, sa.seq
}

// Linux behaviour (__tcp_select_window, called by __tcp_ack_snd_check
// before its quick-ACK test): an in-order segment that leaves the receive
// buffer more than half full ends quick-ACK mode, so with the window not
// growing it is acknowledged by the delayed-ACK timer; it is queued whole
// even past the window's right edge, since the buffer has room. One that
// leaves half the buffer free is acknowledged at once.
func TestQuickAckModeEndsWhenBufferMoreThanHalfFull(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAcceptWith(plainSyn, SockOpts{RcvBuf: 8192})
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 3000)})
	if a := p.next(); a.ack != peerISN+3001 || a.at != p.now {
		t.Fatalf("ACK %v, want ack %d at once (%v)", a, peerISN+3001, p.now)
	}
	buf := make([]byte, 10000)
	c.Read(p.now, buf)
	p.out = nil            // a window update, maybe
	p.advance(time.Second) // an idle second: quick-ACK mode again
	start := p.now
	p.send(tseg{flags: fPA, seq: peerISN + 3001, ack: iss + 1, wnd: 65535, payload: make([]byte, 8000)})
	p.expectNone()
	p.step()
	if a := p.next(); a.ack != peerISN+8001+3000 || a.at.Sub(start) != p.e.Profile().DelAckMin {
		t.Fatalf("ACK %v at +%v, want ack %d after %v", a, a.at.Sub(start), peerISN+11001, p.e.Profile().DelAckMin)
	}
	if n, _ := c.Read(p.now, buf); n != 8000 {
		t.Fatalf("Read = %d, want the whole 8000-byte segment", n)
	}
}

// Linux behaviour (sock_setsockopt, tcp_sendmsg, sk_stream_memory_free):
// SO_SNDBUF 4096 is a limit of 8192 on the queue's truesize, each buffer
// charged its payload and 832 bytes; a write starts a buffer of one
// segment (half the peer's 4000-byte window is less than two) while the
// charge is below the limit. So a write queues four segments, 5840 bytes,
// and the ACK of two frees room for two more.
func TestSndBufSetHoldsWhatLinuxQueues(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.acceptWithWindow(4000)
	c.SetWriteBuffer(4096)
	if n, err := c.Write(p.now, make([]byte, 8760)); n != 5840 || err != nil {
		t.Fatalf("Write = %d, %v; want 5840", n, err)
	}
	if c.Writable() {
		t.Fatalf("writable with the queue full")
	}
	p.expect(fA, iss+1, peerISN+1)
	p.expect(fPA, iss+1461, peerISN+1)
	p.advance(10 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 2921, wnd: 4000})
	p.expect(fA, iss+2921, peerISN+1)
	p.expect(fPA, iss+4381, peerISN+1)
	if !c.Writable() {
		t.Fatalf("not writable after the ACK freed two buffers")
	}
	if n, err := c.Write(p.now, make([]byte, 8760)); n != 2920 || err != nil {
		t.Fatalf("Write after the ACK = %d, %v; want 2920", n, err)
	}
}

// Linux behaviour: a write after the previous one was sent starts a buffer
// of its own, so small writes are charged 832 bytes each: with SO_SNDBUF
// 4096 (8192) ten 1-byte writes in flight fill the queue.
func TestSndBufChargesEachSentWriteItsOwnBuffer(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.listenAndAcceptWith(plainSyn, SockOpts{NoDelay: true, SndBuf: 4096})
	for i := range 10 {
		if n, err := c.Write(p.now, []byte{1}); n != 1 || err != nil {
			t.Fatalf("write %d = %d, %v; want 1", i+1, n, err)
		}
		p.next()
	}
	if n, err := c.Write(p.now, []byte{1}); n != 0 || err != ErrWouldBlock {
		t.Fatalf("eleventh write = %d, %v; want EAGAIN", n, err)
	}
}

// Linux behaviour (tcp_sendmsg): a write that queued data before the
// connection failed returns the count and leaves the error for the next
// call; KeepErr puts back the error that a driver's later call consumed.
func TestKeepErrLeavesTheErrorForTheNextCall(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.acceptWithWindow(4000)
	c.SetWriteBuffer(4096)
	c.Write(p.now, make([]byte, 20000))
	p.collectAll()
	p.send(tseg{flags: fRA, seq: peerISN + 1, ack: iss + 1})
	_, err := c.Write(p.now, make([]byte, 100))
	if !errors.Is(err, ErrConnReset) {
		t.Fatalf("Write after the reset = %v, want ECONNRESET", err)
	}
	c.KeepErr(err)
	if _, err := c.Write(p.now, make([]byte, 100)); !errors.Is(err, ErrConnReset) {
		t.Fatalf("Write after KeepErr = %v, want ECONNRESET again", err)
	}
	if _, err := c.Write(p.now, make([]byte, 100)); !errors.Is(err, ErrPipe) {
		t.Fatalf("Write once the error was reported = %v, want EPIPE", err)
	}
}
