package main

import (
	"net"
	"testing"
	"time"

	"tunstack/stack"
)

// serve's listeners give keepalive to the connections they accept: a
// client that vanishes after an echo round trip (its host's address goes,
// so nothing it sends reaches the stack any more, and the stack's probes
// reach nobody) is probed --keepalive's count times and its connection
// aborted, no earlier than idle + count*interval after it vanished, and
// not left ESTABLISHED for good as it is with --keepalive off.
func TestServeKeepAliveAbortsVanishedClient(t *testing.T) {
	const (
		idle  = time.Second
		intvl = 500 * time.Millisecond
		count = 2
	)
	s := startServe(t, "--keepalive", "1s,500ms,2", "--net6", "none")
	st := s.sess.network.(*stack.Stack)
	c := s.dial(t, s.cfg.EchoPort)
	if err := echoRoundTrip(c, "ping"); err != nil {
		t.Fatal(err)
	}
	if n := st.ConnCount(); n != 1 {
		t.Fatalf("%d connections on the stack after the round trip, want 1", n)
	}
	vanished := time.Now()
	ipIn(t, s.ns, "addr", "del", s.cfg.HostAddr.String()+"/24", "dev", s.cfg.Dev)

	if !awaitCondition(30*time.Second, func() bool { return st.ConnCount() == 0 }) {
		t.Fatalf("the connection to the vanished client is still there after 30 s: %+v", st.Conns())
	}
	if took, min := time.Since(vanished), idle+count*intvl; took < min {
		t.Fatalf("aborted %v after the client vanished, before idle + count*interval = %v", took, min)
	}
	if ka := st.Stats().KeepAlives; ka != count {
		t.Fatalf("%d keepalive probes sent, want %d", ka, count)
	}
}

// --keepalive off leaves the vanished client's connection ESTABLISHED:
// the control of the test above. It waits as long as the aborting one
// needs and twice more.
func TestServeKeepAliveOffKeepsVanishedClient(t *testing.T) {
	s := startServe(t, "--keepalive", "off", "--net6", "none")
	st := s.sess.network.(*stack.Stack)
	c := s.dial(t, s.cfg.EchoPort)
	if err := echoRoundTrip(c, "ping"); err != nil {
		t.Fatal(err)
	}
	ipIn(t, s.ns, "addr", "del", s.cfg.HostAddr.String()+"/24", "dev", s.cfg.Dev)
	if awaitCondition(3*(time.Second+2*500*time.Millisecond), func() bool { return st.ConnCount() == 0 }) {
		t.Fatalf("the connection ended without keepalive")
	}
	if ka := st.Stats().KeepAlives; ka != 0 {
		t.Fatalf("%d keepalive probes sent with --keepalive off", ka)
	}
}

// The serve and relay flag: IDLE,INTERVAL,COUNT, durations or whole
// seconds, Linux's bounds; off and 0 turn keepalive off.
func TestKeepAliveFlag(t *testing.T) {
	good := map[string]net.KeepAliveConfig{
		"15s,15s,9":     {Enable: true, Idle: 15 * time.Second, Interval: 15 * time.Second, Count: 9},
		"7200,75,9":     {Enable: true, Idle: 7200 * time.Second, Interval: 75 * time.Second, Count: 9},
		"1s,500ms,2":    {Enable: true, Idle: time.Second, Interval: 500 * time.Millisecond, Count: 2},
		"32767,1,127":   {Enable: true, Idle: 32767 * time.Second, Interval: time.Second, Count: 127},
		"off":           {},
		"0":             {},
		"2m,30s,1":      {Enable: true, Idle: 2 * time.Minute, Interval: 30 * time.Second, Count: 1},
		"100ms,1ms,127": {Enable: true, Idle: 100 * time.Millisecond, Interval: time.Millisecond, Count: 127},
	}
	for v, want := range good {
		got := serveKeepAlive
		if err := keepAliveFlag("keepalive", "15s,15s,9", &got).set(v); err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", v, got, err, want)
		}
	}
	for _, v := range []string{"", "on", "15s,15s", "15s,15s,9,1", "0,15,9", "15,0,9", "15,15,0", "15,15,128",
		"32768,15,9", "-1,15,9", "15,15,x", "15x,15,9", "100us,1s,3"} {
		got := serveKeepAlive
		err := keepAliveFlag("keepalive", "15s,15s,9", &got).set(v)
		if err == nil {
			t.Errorf("%q accepted as %+v", v, got)
			continue
		}
		if _, ok := err.(*usageError); !ok || got != serveKeepAlive {
			t.Errorf("%q: %v (a %T), config now %+v; want a usage error and the config unchanged", v, err, err, got)
		}
	}
	cfg, err := parseServeFlags(nil)
	if err != nil || cfg.KeepAlive != serveKeepAlive {
		t.Errorf("serve's default keepalive %+v (%v), want %+v", cfg.KeepAlive, err, serveKeepAlive)
	}
	rc, err := parseRelayFlags([]string{"--keepalive", "off"})
	if err != nil || rc.KeepAlive.Enable {
		t.Errorf("relay --keepalive off: %+v, %v", rc.KeepAlive, err)
	}
	rc, err = parseRelayFlags(nil)
	if want := (net.KeepAliveConfig{Enable: true, Idle: 7200 * time.Second, Interval: 75 * time.Second, Count: 9}); err != nil || rc.KeepAlive != want {
		t.Errorf("relay's default keepalive %+v (%v), want Linux's %+v", rc.KeepAlive, err, want)
	}
}
