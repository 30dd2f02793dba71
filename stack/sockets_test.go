package stack

import (
	"io"
	"testing"
	"time"

	"tunstack/tcpcore"
)

// Sockets lists the listeners with their queues, connections waiting in an
// accept queue, and the application's connections with their unread bytes.
func TestSocketsListsListenersAndConnections(t *testing.T) {
	p := newPair(t, 0, 1)
	ln, err := p.b.Listen(":81", 8) // never accepts
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	queued, err := p.a.Dial(testContext(t, 30*time.Second), "tcp", addrB.String()+":81")
	if err != nil {
		t.Fatal(err)
	}
	defer queued.Close()
	// The pipe keeps order: b completes the next handshake after it took
	// the first's last ACK, so the first waits in :81's accept queue.
	c, s := p.connect(t, 80)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	socks := p.b.Sockets()
	if len(socks) != 3 {
		t.Fatalf("%d sockets, want the listener and two connections: %+v", len(socks), socks)
	}
	l := socks[0]
	if l.State != tcpcore.Listen || l.Local.Port() != 81 || l.RecvQ != 1 || l.SendQ != 8 || l.SynQueue != 0 || l.TCPInfo == nil || l.Congestion != "cubic" {
		t.Errorf("listener: %+v", l)
	}
	for _, si := range socks[1:] {
		if si.State != tcpcore.Established || si.TCPInfo == nil || si.TCPInfo.State != 1 || si.Unknown != 0 {
			t.Errorf("connection: %+v", si)
		}
		switch si.Remote.String() {
		case c.LocalAddr().String():
			// "hello" arrived in one segment and one byte of it was read.
			if si.RecvQ != 4 || si.SendQ != 0 || si.Local.Port() != 80 {
				t.Errorf("accepted connection: Recv-Q %d Send-Q %d on %v, want 4, 0 on port 80", si.RecvQ, si.SendQ, si.Local)
			}
		case queued.LocalAddr().String():
			if si.RecvQ != 0 || si.SendQ != 0 || si.Local.Port() != 81 {
				t.Errorf("queued connection: %+v", si)
			}
		default:
			t.Errorf("a connection from %v, which nobody made", si.Remote)
		}
	}
}
