package gvisorstack

import (
	"context"
	"io"
	"testing"

	"tunstack/tcpcore"
)

// TCPInfo maps netstack's TCP_INFO into tcpcore's struct: an established
// connection that exchanged data has a state, an RTT and a window.
func TestConnTCPInfo(t *testing.T) {
	p := newPair(t, nil)
	ln, err := p.a.Listen(":9", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			io.Copy(c, c)
		}
	}()
	nc, err := p.b.Dial(context.Background(), "tcp", "10.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := nc.(*Conn)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	ti := c.TCPInfo()
	if ti.State != 1 || ti.RTO == 0 || ti.SndCwnd == 0 || ti.CAState != tcpcore.TCPCAOpen {
		t.Fatalf("state %d rto %d cwnd %d ca_state %d", ti.State, ti.RTO, ti.SndCwnd, ti.CAState)
	}
	c.Close()
	if ti := c.TCPInfo(); ti.State == 1 {
		t.Fatalf("state %d after Close", ti.State)
	}
}
