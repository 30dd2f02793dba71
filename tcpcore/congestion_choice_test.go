package tcpcore

import (
	"errors"
	"syscall"
	"testing"
)

// TCP_CONGESTION (SockOpts.Congestion, Conn.SetCongestion,
// Listener.SetCongestion): a per-socket choice of congestion controller.

// Linux behaviour (tcp_ca_openreq_child): a connection a listener accepts
// runs the controller its listener chose, whether chosen before listen()
// or after.
func TestTCPCongestionListenerChoiceInherited(t *testing.T) {
	prof := testProfile()
	prof.Congestion = "reno"
	p := newPeer(t, prof)
	c, _ := p.listenAndAcceptWith(plainSyn, SockOpts{Congestion: "cubic"})
	if got := c.Congestion(); got != "cubic" {
		t.Fatalf("accepted connection runs %q, want the listener's cubic", got)
	}
	if got := c.Info().Congestion; got != "cubic" {
		t.Fatalf("Info().Congestion = %q, want cubic", got)
	}

	p = newPeer(t, nil) // the linux profile's default is cubic
	l, err := p.e.Listen(p.now, local, 16, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetCongestion("reno"); err != nil {
		t.Fatal(err)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa := p.next()
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535})
	c, err = l.Accept(p.now)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Congestion(); got != "reno" {
		t.Fatalf("accepted connection runs %q, want reno set on the listener after listen", got)
	}
}

// Linux behaviour (tcp_set_congestion_control): a name the stack has no
// algorithm for fails with ENOENT, and nothing changes.
func TestTCPCongestionUnknownNameENOENT(t *testing.T) {
	p := newPeer(t, nil)
	if _, err := p.e.Listen(p.now, local, 16, SockOpts{Congestion: "bbr"}); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Listen with bbr: %v, want ENOENT", err)
	}
	if _, err := p.e.Connect(p.now, local, remote, SockOpts{Congestion: "vegas"}); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Connect with vegas: %v, want ENOENT", err)
	}
	c, _ := p.listenAndAccept(plainSyn)
	for _, name := range []string{"bbr", "", "CUBIC"} {
		if err := c.SetCongestion(name); !errors.Is(err, syscall.ENOENT) {
			t.Fatalf("SetCongestion(%q): %v, want ENOENT", name, err)
		}
	}
	if got := c.Congestion(); got != "cubic" {
		t.Fatalf("after failed choices the connection runs %q, want cubic", got)
	}
}

// Linux behaviour (tcp_reinit_congestion_control): choosing another
// algorithm on an established connection switches at once; cwnd and
// ssthresh carry over, and the next loss is answered by the new
// algorithm: CUBIC's beta 0.7 where Reno would halve (RFC 9438 §4.6, RFC
// 5681 §3.2).
func TestTCPCongestionSwitchWhenEstablished(t *testing.T) {
	prof := testProfile()
	prof.Congestion = "reno"
	p := newPeer(t, prof)
	c, iss := p.listenAndAccept(plainSyn)
	cwnd, ssthresh := c.Info().CwndBytes, c.Info().SSThreshBytes
	if err := c.SetCongestion("cubic"); err != nil {
		t.Fatal(err)
	}
	in := c.Info()
	if in.Congestion != "cubic" || in.CwndBytes != cwnd || in.SSThreshBytes != ssthresh {
		t.Fatalf("after the switch: %s cwnd %d ssthresh %d, want cubic with cwnd %d ssthresh %d",
			in.Congestion, in.CwndBytes, in.SSThreshBytes, cwnd, ssthresh)
	}
	sendSegments(t, p, c, 6)
	cwnd = c.Info().CwndBytes
	for i := 0; i < 3; i++ {
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
	}
	p.expect(fA, iss+1, peerISN+1)
	if got, want := c.Info().SSThreshBytes, cwnd*7/10; got != want {
		t.Fatalf("ssthresh %d after a loss, want CUBIC's 0.7 * cwnd %d = %d", got, cwnd, want)
	}
	// Asking for the algorithm in use changes nothing.
	before := c.Info()
	if err := c.SetCongestion("cubic"); err != nil {
		t.Fatal(err)
	}
	if after := c.Info(); after.CwndBytes != before.CwndBytes || after.SSThreshBytes != before.SSThreshBytes {
		t.Fatalf("re-choosing cubic changed the window: %+v -> %+v", before, after)
	}
}

// A choice made on a connection before its handshake completes is the
// controller it is built with.
func TestTCPCongestionChosenBeforeHandshake(t *testing.T) {
	p := newPeer(t, nil)
	c, err := p.e.Connect(p.now, local, remote, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetCongestion("reno"); err != nil {
		t.Fatal(err)
	}
	syn := p.expect(fS, c.iss, 0)
	p.send(tseg{flags: fSA, seq: peerISN, ack: syn.seq + 1, wnd: 65535, opts: plainSyn})
	p.expect(fA, syn.seq+1, peerISN+1)
	if got := c.Info().Congestion; got != "reno" {
		t.Fatalf("connection runs %q, want reno chosen in SYN-SENT", got)
	}
}
