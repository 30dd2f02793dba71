package gvisorstack

import (
	"context"
	"net"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	tstack "tunstack/stack"
)

// ListenWith's KeepAlive is set on each connection Accept returns (gVisor's
// accepted endpoints do not inherit the listener's): SO_KEEPALIVE on, with
// the idle time, interval and count asked for; without it, none.
func TestListenWithKeepAliveSetsAcceptedConnections(t *testing.T) {
	p := newPair(t, nil)
	ka := net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 4}
	for port, on := range map[string]bool{"9": true, "10": false} {
		lc := tstack.ListenConfig{}
		if on {
			lc.KeepAlive = ka
		}
		ln, err := p.a.ListenWith(context.Background(), lc, "tcp", ":"+port)
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				t.Error(err)
			}
			accepted <- c
		}()
		nc, err := p.b.Dial(context.Background(), "tcp", "10.0.0.1:"+port)
		if err != nil {
			t.Fatal(err)
		}
		c := <-accepted
		if c == nil {
			t.FailNow()
		}
		ep := c.(*Conn).ep
		if got := ep.SocketOptions().GetKeepAlive(); got != on {
			t.Errorf("keepalive %v on the accepted connection, want %v", got, on)
		}
		if on {
			var idle tcpip.KeepaliveIdleOption
			var intvl tcpip.KeepaliveIntervalOption
			if err := ep.GetSockOpt(&idle); err != nil || time.Duration(idle) != ka.Idle {
				t.Errorf("idle %v (%v), want %v", time.Duration(idle), err, ka.Idle)
			}
			if err := ep.GetSockOpt(&intvl); err != nil || time.Duration(intvl) != ka.Interval {
				t.Errorf("interval %v (%v), want %v", time.Duration(intvl), err, ka.Interval)
			}
			if n, err := ep.GetSockOptInt(tcpip.KeepaliveCountOption); err != nil || n != ka.Count {
				t.Errorf("count %d (%v), want %d", n, err, ka.Count)
			}
		}
		nc.Close()
		c.Close()
		ln.Close()
	}
}
