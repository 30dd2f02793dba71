package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"tunstack/lab/netns"
	"tunstack/stack"
	"tunstack/tcpcore"
)

// relay --keepalive sets both legs of a relayed connection: the client
// leg on our stack (its keepalive timer armed at the idle time) and the
// outbound kernel socket (ss -o shows its keepalive timer); off sets
// neither.
func TestRelayKeepAliveOnBothLegs(t *testing.T) {
	netns.RequireRoot(t)
	for _, c := range []struct {
		flag string
		on   bool
		idle time.Duration
	}{{"20s,5s,3", true, 20 * time.Second}, {"off", false, 0}} {
		t.Run(c.flag, func(t *testing.T) {
			l := startRelayLab(t, true, "--keepalive", c.flag)
			const port = 9400
			ln := l.listen(t, port)
			accepted := make(chan net.Conn, 1)
			go func() {
				s, err := ln.Accept()
				if err == nil {
					accepted <- s
				}
				close(accepted)
			}()
			cc, err := l.dial(t, port)
			if err != nil {
				t.Fatal(err)
			}
			sc := <-accepted
			if sc != nil {
				defer sc.Close() // both legs stay up while they are looked at
			}
			if err := echoRoundTripVia(cc, sc); err != nil {
				t.Fatal(err)
			}

			// The echo's reply to the client may still be unacknowledged
			// (the retransmission timer, shown first, is then on): wait for
			// the client's ACK, after which the leg is idle and its pending
			// timer is the one under test.
			st := l.sess.network.(*stack.Stack)
			var client *stack.SocketInfo
			idle := awaitCondition(5*time.Second, func() bool {
				client = nil
				for _, si := range st.Sockets() {
					if si.State == tcpcore.Established && si.Local.Port() == port {
						client = &si
					}
				}
				return client != nil && client.SendQ == 0 && client.Timer != tcpcore.TimerRetrans
			})
			if client == nil {
				t.Fatalf("no established client leg to port %d on the relay's stack: %+v", port, st.Sockets())
			}
			if !idle {
				t.Fatalf("client leg never went idle in 5 s: Send-Q %d, timer %v with %v left", client.SendQ, client.Timer, client.TimerLeft)
			}
			if armed := client.Timer == tcpcore.TimerKeepalive; armed != c.on || (c.on && (client.TimerLeft <= 0 || client.TimerLeft > c.idle)) {
				t.Errorf("client leg's timer %v with %v left; want keepalive %v within %v", client.Timer, client.TimerLeft, c.on, c.idle)
			}

			out, err := l.relayNS.Command("ss", "-tnoH", "state", "established", "dst", fmt.Sprintf("%s:%d", relayServerIP, port)).CombinedOutput()
			if err != nil {
				t.Fatalf("ss in the relay's namespace: %v: %s", err, out)
			}
			if !strings.Contains(string(out), relayServerIP) {
				t.Fatalf("no outbound connection to %s:%d in ss: %q", relayServerIP, port, out)
			}
			if armed := strings.Contains(string(out), "timer:(keepalive"); armed != c.on {
				t.Errorf("outbound leg: keepalive timer %v, want %v: %q", armed, c.on, out)
			}
		})
	}
}

// echoRoundTripVia sends a message on c that the server side s echoes
// back, so that both legs of the relayed connection have carried data;
// both stay open.
func echoRoundTripVia(c *net.TCPConn, s net.Conn) error {
	if s == nil {
		return fmt.Errorf("the server accepted nothing")
	}
	go func() {
		buf := make([]byte, 4)
		if _, err := s.Read(buf); err == nil {
			s.Write(buf)
		}
	}()
	return echoRoundTrip(c, "ping")
}
