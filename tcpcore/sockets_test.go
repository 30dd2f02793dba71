package tcpcore

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// activeLocal is the local end of the tests' active opens, apart from the
// listeners' port.
var activeLocal = netip.AddrPortFrom(localIP, 5555)

// Recv-Q and Send-Q as Linux's inet_diag reports them through a
// connection's life: a SYN or FIN not yet acknowledged counts one in
// Send-Q, unread bytes are Recv-Q, a request or TIME-WAIT socket reports
// none.
func TestQueuesAsInetDiag(t *testing.T) {
	p := newPeer(t, nil)
	queues := func(c *Conn, recvQ, sendQ int) {
		t.Helper()
		if r, s := c.Queues(); r != recvQ || s != sendQ {
			t.Fatalf("%v: Recv-Q %d, Send-Q %d; want %d, %d", c.State(), r, s, recvQ, sendQ)
		}
	}

	// Active open: the SYN is the Send-Q.
	a, err := p.e.Connect(p.now, activeLocal, remote, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	p.next()
	queues(a, 0, 1)
	a.Abort(p.now)
	p.collect()

	c, iss := p.listenAndAccept(plainSyn)
	queues(c, 0, 0)
	if n, err := c.Write(p.now, make([]byte, 1000)); n != 1000 || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	p.next()
	queues(c, 0, 1000)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1 + 400, wnd: 65535})
	queues(c, 0, 600)
	p.send(tseg{flags: fPA, seq: peerISN + 1, ack: iss + 1 + 400, wnd: 65535, payload: make([]byte, 300)})
	queues(c, 300, 600)
	if n, _ := c.Read(p.now, make([]byte, 100)); n != 100 {
		t.Fatalf("read %d", n)
	}
	queues(c, 200, 600)
	if rd, wr := c.Shutdown(); rd || wr {
		t.Fatalf("shutdown %v, %v before any FIN", rd, wr)
	}
	// Our FIN follows the data: one more in Send-Q until acknowledged.
	if err := c.CloseWrite(p.now); err != nil {
		t.Fatal(err)
	}
	queues(c, 200, 601)
	if rd, wr := c.Shutdown(); rd || !wr {
		t.Fatalf("shutdown %v, %v after CloseWrite", rd, wr)
	}
	p.send(tseg{flags: fA, seq: peerISN + 301, ack: iss + 1 + 1000 + 1, wnd: 65535})
	queues(c, 200, 0) // FIN-WAIT-2
	p.send(tseg{flags: fFA, seq: peerISN + 301, ack: iss + 1 + 1000 + 1, wnd: 65535})
	if rd, wr := c.Shutdown(); !rd || !wr {
		t.Fatalf("shutdown %v, %v after both FINs", rd, wr)
	}
	// Linux behaviour (tcp_time_wait): the connection becomes a TIME-WAIT
	// minisocket, which reports nothing queued.
	queues(c, 0, 0)

	// TIME-WAIT reports nothing queued, and its own timer.
	tw, _ := newPeerTimeWait(t)
	queues(tw.c, 0, 0)
	if kind, left := tw.c.Timer(tw.p.now); kind != TimerTimeWait || left != tw.p.e.Profile().TimeWaitLen {
		t.Fatalf("TIME-WAIT timer %v %v, want timewait %v", kind, left, tw.p.e.Profile().TimeWaitLen)
	}
}

type twConn struct {
	p *peer
	c *Conn
}

func newPeerTimeWait(t *testing.T) (twConn, Seq) {
	p := newPeer(t, nil)
	c, iss := p.timeWaitConn()
	return twConn{p, c}, iss
}

// A passive open is a request socket until the handshake completes (no
// queues, no tcp_info for ss); then it waits in the accept queue as a full
// socket. AppendConns lists both, and the engine's other connections.
func TestAppendConnsListsQueuedConnections(t *testing.T) {
	p := newPeer(t, nil)
	l, err := p.e.Listen(p.now, local, 16, SockOpts{Congestion: "reno"})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Congestion(); got != "reno" {
		t.Errorf("listener congestion %q", got)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa := p.next()
	conns := p.e.AppendConns(nil)
	if len(conns) != 1 || conns[0].State() != SynReceived || !conns[0].IsRequest() {
		t.Fatalf("after the SYN: %d connections, first %v", len(conns), conns)
	}
	if r, s := conns[0].Queues(); r != 0 || s != 0 {
		t.Fatalf("request socket Recv-Q %d Send-Q %d", r, s)
	}
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535})
	conns = p.e.AppendConns(conns[:0])
	if len(conns) != 1 || conns[0].State() != Established || conns[0].IsRequest() || conns[0].Congestion() != "reno" {
		t.Fatalf("after the handshake: %v", conns)
	}
	if st := l.Stats(); st.AcceptQueue != 1 {
		t.Fatalf("accept queue %d", st.AcceptQueue)
	}
	other, err := p.e.Connect(p.now, activeLocal, remote, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if conns = p.e.AppendConns(conns[:0]); len(conns) != 2 || !slices.Contains(conns, other) {
		t.Fatalf("with an active open too: %v", conns)
	}
}

// The timer ss shows, each at its exact instant in virtual time: the
// retransmission timer first, then persist, then keepalive.
func TestTimerAsInetDiag(t *testing.T) {
	p := newPeer(t, nil)
	a, err := p.e.Connect(p.now, activeLocal, remote, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	p.next()
	if kind, left := a.Timer(p.now); kind != TimerRetrans || left != p.e.Profile().InitialRTO {
		t.Fatalf("SYN-SENT: %v %v, want on %v", kind, left, p.e.Profile().InitialRTO)
	}
	p.now = p.now.Add(300 * time.Millisecond)
	if _, left := a.Timer(p.now); left != p.e.Profile().InitialRTO-300*time.Millisecond {
		t.Fatalf("SYN-SENT 300 ms later: %v left", left)
	}

	c, iss := p.listenAndAccept(plainSyn)
	if kind, _ := c.Timer(p.now); kind != TimerOff {
		t.Fatalf("idle: %v", kind)
	}
	c.SetKeepAlive(p.now, true, 7*time.Second, time.Second, 3)
	if kind, left := c.Timer(p.now); kind != TimerKeepalive || left != 7*time.Second {
		t.Fatalf("keepalive: %v %v", kind, left)
	}
	// A zero window with data waiting: the persist timer.
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 0})
	c.Write(p.now, make([]byte, 100))
	p.collect()
	if kind, _ := c.Timer(p.now); kind != TimerPersist {
		t.Fatalf("zero window: %v", kind)
	}
	// Once the window opens the data goes and the retransmission timer
	// takes precedence.
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
	p.next()
	if kind, _ := c.Timer(p.now); kind != TimerRetrans {
		t.Fatalf("data in flight: %v", kind)
	}
	if TimerPersist.String() != "persist" || TimerRetrans.String() != "on" || DiagTimer(9).String() != "unknown" {
		t.Error("timer names")
	}
}
