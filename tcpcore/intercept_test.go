package tcpcore

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"tunstack/policy"
	"tunstack/wire"
)

// The engine's own address is not in the intercepted prefix: the relay's
// destinations are other hosts' addresses.
var (
	icptPrefix  = netip.MustParsePrefix("203.0.113.0/24")
	icptTarget  = netip.AddrPortFrom(netip.MustParseAddr("203.0.113.7"), 443)
	icptPrefix6 = netip.MustParsePrefix("2001:db8:77::/48")
	icptTarget6 = netip.AddrPortFrom(netip.MustParseAddr("2001:db8:77::9"), 80)
)

// intercept opens an interceptor on the test prefixes with the given backlog.
func (p *peer) intercept(backlog int) *Interceptor {
	p.t.Helper()
	i, err := p.e.Intercept(p.now, []netip.Prefix{icptPrefix, icptPrefix6}, backlog, SockOpts{})
	if err != nil {
		p.t.Fatal(err)
	}
	return i
}

// synTo sends client i's SYN to target.
func (p *peer) synTo(i int, target netip.AddrPort, seq Seq) {
	p.t.Helper()
	from := clientAddr(i)
	if target.Addr().Is6() {
		from = netip.AddrPortFrom(remoteIP6, uint16(41000+i))
	}
	p.e.Input(p.now, from.Addr(), target.Addr(), tseg{flags: fS, seq: seq, wnd: 65535, opts: plainSyn}.encode(from, target))
	p.collect()
}

// takeOne takes exactly one held SYN.
func takeOne(t *testing.T, i *Interceptor) *HeldSyn {
	t.Helper()
	hs := i.Take()
	if len(hs) != 1 {
		t.Fatalf("Take gave %d held SYNs, want 1", len(hs))
	}
	return hs[0]
}

// The lazy handshake: the SYN is held unanswered, its retransmission is not
// a second hold, and the SYN-ACK leaves at the instant of the decision,
// with the SYN-ACK's retransmission timer counted from there.
func TestInterceptHoldsSynUntilAnswered(t *testing.T) {
	p := newPeer(t, nil)
	i := p.intercept(16)
	p.synTo(0, icptTarget, peerISN)
	p.expectNone()
	h := takeOne(t, i)
	if h.Client() != clientAddr(0) || h.Target() != icptTarget || h.At() != Time(time.Second) || h.Conn() != nil {
		t.Fatalf("held %v -> %v at %v, want %v -> %v at 1s", h.Client(), h.Target(), time.Duration(h.At()), clientAddr(0), icptTarget)
	}
	// The client retransmits its SYN 1 s later: still held, nothing said.
	p.advance(time.Second)
	p.synTo(0, icptTarget, peerISN)
	p.expectNone()
	if hs := i.Take(); len(hs) != 0 {
		t.Fatalf("a retransmitted SYN gave %d more held SYNs, want none", len(hs))
	}
	if st := i.Stats(); st.Held != 1 || st.SynRepeats != 1 || st.HeldNow != 1 || st.SynQueue != 1 {
		t.Fatalf("stats %+v, want one held SYN, one repeat", st)
	}
	p.advance(500 * time.Millisecond) // the destination answered: 2.5 s
	c, err := i.Answer(p.now, h)
	if err != nil {
		t.Fatal(err)
	}
	sa := p.next()
	if sa.flags != fSA || sa.ack != peerISN+1 || sa.at != Time(2500*time.Millisecond) || sa.src != icptTarget.Addr() {
		t.Fatalf("got %v from %v, want SYN-ACK ack=%d at 2.5s from %v", sa, sa.src, peerISN+1, icptTarget.Addr())
	}
	if c.State() != SynReceived {
		t.Fatalf("state %v after Answer, want SYN-RECEIVED", c.State())
	}
	// No ACK: the SYN-ACK is retransmitted 1 s after it was sent.
	p.step()
	if rt := p.next(); rt.flags != fSA || rt.seq != sa.seq || rt.at != Time(3500*time.Millisecond) {
		t.Fatalf("got %v, want the SYN-ACK again at 3.5s", rt)
	}
	p.e.Input(p.now, clientAddr(0).Addr(), icptTarget.Addr(), tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535}.encode(clientAddr(0), icptTarget))
	p.collect()
	if c.State() != Established {
		t.Fatalf("state %v after the ACK, want ESTABLISHED", c.State())
	}
	if st := i.Stats(); st.Answered != 1 || st.Established != 1 || st.HeldNow != 0 || st.SynQueue != 0 {
		t.Fatalf("stats %+v, want one answered and established, queues empty", st)
	}
	if n := p.e.Stats().PassiveEstablished; n != 1 {
		t.Fatalf("engine PassiveEstablished %d, want 1", n)
	}
	// Data flows to the client from the target's address.
	if _, err := c.Write(p.now, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if d := p.next(); string(d.payload) != "hi" || d.src != icptTarget.Addr() || d.seq != sa.seq+1 {
		t.Fatalf("got %v from %v, want 2 bytes from the target", d, d.src)
	}
	// Answering again is refused.
	if _, err := i.Answer(p.now, h); err != ErrInvalid {
		t.Fatalf("second Answer: %v, want ErrInvalid", err)
	}
}

// Reset answers the held SYN as a closed port would, at the decision's
// instant: <SEQ=0><ACK=ISN+1><CTL=RST,ACK>.
func TestInterceptResetRefusesHeldSyn(t *testing.T) {
	p := newPeer(t, nil)
	i := p.intercept(16)
	p.synTo(0, icptTarget, peerISN)
	h := takeOne(t, i)
	p.advance(30 * time.Millisecond)
	i.Reset(p.now, h)
	r := p.next()
	if r.flags != fRA || r.seq != 0 || r.ack != peerISN+1 || r.at != Time(time.Second+30*time.Millisecond) || r.src != icptTarget.Addr() {
		t.Fatalf("got %v from %v, want RST,ACK seq=0 ack=%d at 1.03s from the target", r, r.src, peerISN+1)
	}
	p.expectNone()
	if st := i.Stats(); st.Resets != 1 || st.HeldNow != 0 || st.SynQueue != 0 {
		t.Fatalf("stats %+v, want one reset and nothing held", st)
	}
	// Decided once: a second Reset sends nothing.
	i.Reset(p.now, h)
	p.expectNone()
}

// Unreachable forgets the SYN and leaves the ICMP error to the driver,
// which quotes the SYN's header as it arrived; Drop forgets it silently,
// and the client's next retransmission is a new hold.
func TestInterceptUnreachableAndDrop(t *testing.T) {
	p := newPeer(t, nil)
	i := p.intercept(16)
	p.synTo(0, icptTarget6, peerISN)
	h := takeOne(t, i)
	want := tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn}.encode(h.Client(), icptTarget6)
	if !bytes.Equal(h.Quote(), want[:wire.TCP(want).DataOffset()]) {
		t.Fatalf("quote %x, want the SYN's header %x", h.Quote(), want)
	}
	if !i.Unreachable(p.now, h) {
		t.Fatal("Unreachable on a held SYN said the driver has nothing to send")
	}
	if i.Unreachable(p.now, h) {
		t.Fatal("a second Unreachable asked for a second ICMP error")
	}
	p.expectNone()

	p.synTo(1, icptTarget, peerISN)
	h = takeOne(t, i)
	i.Drop(p.now, h)
	p.expectNone()
	p.advance(time.Second)
	p.synTo(1, icptTarget, peerISN)
	p.expectNone()
	if h2 := takeOne(t, i); h2 == h {
		t.Fatal("the retransmission after Drop gave back the dropped SYN")
	}
	if st := i.Stats(); st.Unreachables != 1 || st.Drops != 1 || st.Held != 3 || st.HeldNow != 1 {
		t.Fatalf("stats %+v, want one unreachable, one drop, three holds, one held now", st)
	}
}

// A new ISN from the client on a held 4-tuple replaces the held SYN: the
// SYN-ACK, when it comes, acknowledges the new one.
func TestInterceptNewISNReplacesHeldSyn(t *testing.T) {
	p := newPeer(t, nil)
	i := p.intercept(16)
	p.synTo(0, icptTarget, peerISN)
	h := takeOne(t, i)
	p.synTo(0, icptTarget, peerISN+5000)
	if hs := i.Take(); len(hs) != 0 {
		t.Fatalf("a new ISN gave %d more held SYNs, want none", len(hs))
	}
	if _, err := i.Answer(p.now, h); err != nil {
		t.Fatal(err)
	}
	if sa := p.next(); sa.flags != fSA || sa.ack != peerISN+5001 {
		t.Fatalf("got %v, want SYN-ACK ack=%d", sa, peerISN+5001)
	}
}

// The SYN queue bounds the held SYNs as it bounds a listener's half-open
// ones (backlog+1 entries, Linux's inet_csk_reqsk_queue_is_full); without
// cookies the next SYN is dropped and counted; with cookies it is answered
// at once with one, and the cookie ACK hands out an established connection.
func TestInterceptBoundAndCookies(t *testing.T) {
	noCookies := policy.Linux()
	noCookies.SynCookies = false
	p := newPeer(t, noCookies)
	i := p.intercept(2)
	for c := range 4 {
		p.synTo(c, icptTarget, peerISN)
	}
	p.expectNone()
	if hs := i.Take(); len(hs) != 3 {
		t.Fatalf("held %d SYNs with backlog 2, want 3", len(hs))
	}
	if st := i.Stats(); st.ListenerCounts.SynQueueDrops != 1 || st.ListenerCounts.Drops != 1 || p.e.Stats().SynQueueDrops != 1 {
		t.Fatalf("stats %+v, want the fourth SYN dropped and counted", st)
	}

	p = newPeer(t, nil)
	i = p.intercept(2)
	for c := range 3 {
		p.synTo(c, icptTarget, peerISN)
	}
	p.expectNone()
	if hs := i.Take(); len(hs) != 3 {
		t.Fatalf("held %d SYNs with backlog 2, want 3", len(hs))
	}
	p.synTo(3, icptTarget, peerISN)
	sa := p.next()
	if sa.flags != fSA || sa.ack != peerISN+1 {
		t.Fatalf("got %v, want a cookie SYN-ACK", sa)
	}
	p.e.Input(p.now, clientAddr(3).Addr(), icptTarget.Addr(), tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535}.encode(clientAddr(3), icptTarget))
	p.collect()
	h := takeOne(t, i)
	if h.Conn() == nil || h.Conn().State() != Established || h.Client() != clientAddr(3) || h.Target() != icptTarget {
		t.Fatalf("cookie connection %+v, want client 3's, established", h)
	}
	if c, err := i.Answer(p.now, h); err != nil || c != h.Conn() {
		t.Fatalf("Answer on a cookie connection: %v, %v", c, err)
	}
	if st := i.Stats(); st.CookieConns != 1 || st.ListenerCounts.CookiesSent != 1 || st.SynQueue != 3 {
		t.Fatalf("stats %+v, want one cookie connection, three still held", st)
	}
	if n := p.e.Stats().PassiveEstablished; n != 1 {
		t.Fatalf("engine PassiveEstablished %d, want 1 for the cookie connection", n)
	}
}

// Segments to the engine's own listeners go to them; addresses outside the
// prefixes get a closed port's RST; an ACK to an intercepted address with
// no connection gets <SEQ=SEG.ACK><CTL=RST> as in LISTEN.
func TestInterceptLeavesOtherAddressesAlone(t *testing.T) {
	p := newPeer(t, nil)
	i := p.intercept(16)
	if _, err := p.e.Listen(p.now, p.local, 4, SockOpts{}); err != nil {
		t.Fatal(err)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	if sa := p.next(); sa.flags != fSA || sa.src != localIP {
		t.Fatalf("got %v from %v, want the listener's SYN-ACK", sa, sa.src)
	}
	outside := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), 80)
	p.synTo(1, outside, peerISN)
	p.expect(fRA, 0, peerISN+1)
	p.e.Input(p.now, clientAddr(2).Addr(), icptTarget.Addr(), tseg{flags: fA, seq: peerISN + 1, ack: 777, wnd: 65535}.encode(clientAddr(2), icptTarget))
	p.collect()
	p.expect(fR, 777, 0)
	if hs := i.Take(); len(hs) != 0 {
		t.Fatalf("held %d SYNs, want none", len(hs))
	}
	// After Close, SYNs to the prefix are a closed port's again.
	i.Close(p.now)
	p.synTo(3, icptTarget, peerISN)
	p.expect(fRA, 0, peerISN+1)
}

// A client that resets during the answered handshake ends it: the
// application's connection closes with "connection refused", as an active
// open's would, and the SYN queue empties.
func TestInterceptClientResetEndsAnsweredHandshake(t *testing.T) {
	p := newPeer(t, nil)
	i := p.intercept(16)
	p.synTo(0, icptTarget, peerISN)
	h := takeOne(t, i)
	c, err := i.Answer(p.now, h)
	if err != nil {
		t.Fatal(err)
	}
	p.next()
	p.e.Input(p.now, clientAddr(0).Addr(), icptTarget.Addr(), tseg{flags: fR, seq: peerISN + 1, wnd: 0}.encode(clientAddr(0), icptTarget))
	p.collect()
	if c.State() != Closed {
		t.Fatalf("state %v after the client's RST, want CLOSED", c.State())
	}
	if st := i.Stats(); st.SynQueue != 0 {
		t.Fatalf("SYN queue %d after the handshake ended, want 0", st.SynQueue)
	}
}

// After Close, answering a SYN taken before it is refused with ErrClosed,
// which the driver turns into net.ErrClosed, and sends nothing: Close
// forgot the held SYN, so the client's retransmission gets a closed
// port's RST.
func TestInterceptAnswerAfterCloseIsErrClosed(t *testing.T) {
	p := newPeer(t, nil)
	i := p.intercept(16)
	p.synTo(0, icptTarget, peerISN)
	h := takeOne(t, i)
	i.Close(p.now)
	if c, err := i.Answer(p.now, h); err != ErrClosed || c != nil {
		t.Fatalf("Answer after Close: %v, %v; want nil, ErrClosed", c, err)
	}
	p.expectNone()
	if st := i.Stats(); st.Answered != 0 || st.HeldNow != 0 || st.SynQueue != 0 || p.e.ConnCount() != 0 {
		t.Fatalf("stats %+v, %d connections; want nothing answered, held or made", st, p.e.ConnCount())
	}
	p.synTo(0, icptTarget, peerISN)
	p.expect(fRA, 0, peerISN+1)
}
