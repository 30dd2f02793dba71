package tcpcore

import (
	"errors"
	"testing"
	"time"
)

// A listener's SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT
// are inherited by the connections it accepts (Linux: the child socket is
// a clone of the listener's, inet_csk_clone_lock). A client that vanished
// after its request, its RST lost, is then probed after the idle time,
// every interval, and aborted with an RST and ETIMEDOUT at idle +
// count*interval after the last segment it sent (RFC 1122 §4.2.3.6; Linux
// tcp_keepalive_timer). The values are Go's net.Listen's, which tunstack
// serve gives its listeners.
func TestListenerKeepAliveAbortsVanishedPeer(t *testing.T) {
	const (
		idle  = 15 * time.Second
		intvl = 15 * time.Second
		count = 9
	)
	p := newPeer(t, nil)
	c, iss := p.listenAndAcceptWith(plainSyn, SockOpts{NoDelay: true, KeepAlive: true, KeepIdle: idle, KeepIntvl: intvl, KeepCount: count})

	// A request and its reply, as an echo exchange.
	p.send(tseg{flags: fA | fP, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: []byte("ping")})
	buf := make([]byte, 16)
	if n, err := c.Read(p.now, buf); n != 4 || err != nil {
		t.Fatalf("read %d, %v; want the 4 bytes of the request", n, err)
	}
	if _, err := c.Write(p.now, buf[:4]); err != nil {
		t.Fatal(err)
	}
	reply := p.next()
	if len(reply.payload) == 0 { // the quick ACK of the request, sent first
		reply = p.next()
	}
	if len(reply.payload) != 4 || reply.ack != peerISN+5 {
		t.Fatalf("got %v, want the 4-byte reply acknowledging the request", reply)
	}
	// The client's ACK of the reply is the last segment it sends; its
	// RST (the client closing with SO_LINGER 0, or its host going away)
	// is lost on the way.
	p.send(tseg{flags: fA, seq: peerISN + 5, ack: iss + 5, wnd: 65535})
	last := p.now
	p.out = nil

	p.advance(idle + count*intvl + time.Hour)
	for i := range count {
		pr := p.expect(fA, iss+4, peerISN+5) // SEG.SEQ = SND.NXT-1, no data
		if want := idle + time.Duration(i)*intvl; pr.at.Sub(last) != want {
			t.Fatalf("probe %d at %v after the client's last segment, want %v", i+1, pr.at.Sub(last), want)
		}
	}
	rst := p.expect(fRA, iss+5, peerISN+5)
	if want := idle + count*intvl; rst.at.Sub(last) != want {
		t.Fatalf("RST at %v after the client's last segment, want idle + count*interval = %v", rst.at.Sub(last), want)
	}
	p.expectNone()
	if c.State() != Closed || !errors.Is(c.HardErr(), ErrTimedOut) {
		t.Fatalf("state %v, error %v; want Closed with ETIMEDOUT", c.State(), c.HardErr())
	}
	if st := p.e.Stats(); st.KeepAlives != count || st.AbortOnTimeout != 1 {
		t.Fatalf("KeepAlives %d, AbortOnTimeout %d; want %d and 1", st.KeepAlives, st.AbortOnTimeout, count)
	}
	if _, ok := p.e.NextDeadline(); ok {
		t.Fatalf("a timer is still armed after the abort")
	}
}

// Without SO_KEEPALIVE on the listener (Linux's listen(2) default) the
// same vanished client holds its connection ESTABLISHED for good: nothing
// is sent, and no timer is armed.
func TestListenerWithoutKeepAliveKeepsVanishedPeer(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAcceptWith(plainSyn, SockOpts{NoDelay: true})
	p.send(tseg{flags: fA | fP, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: []byte("ping")})
	p.advance(time.Second) // the delayed ACK of the request
	p.out = nil
	p.advance(24 * time.Hour)
	p.expectNone()
	if c.State() != Established {
		t.Fatalf("state %v after a day, want Established", c.State())
	}
}
