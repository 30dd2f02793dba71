package stack

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// A listener opened with ListenConfig.KeepAlive gives its keepalive to the
// connections it accepts: once the client vanishes (every packet it sends
// from then on lost, its RST included), the server's connection is probed
// and aborted, and its blocked Read returns ETIMEDOUT, no earlier than
// idle + count*interval after the client's last segment.
func TestListenConfigKeepAliveAbortsVanishedClient(t *testing.T) {
	const (
		idle  = 300 * time.Millisecond
		intvl = 100 * time.Millisecond
		count = 3
	)
	p := newPair(t, 0, 1)
	ln, err := p.b.ListenWith(testContext(t, 10*time.Second), ListenConfig{
		KeepAlive: net.KeepAliveConfig{Enable: true, Idle: idle, Interval: intvl, Count: count},
	}, "tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	cc, err := p.a.Dial(testContext(t, 10*time.Second), "tcp", addrB.String()+":7")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc := <-accepted
	if sc == nil {
		t.FailNow()
	}
	defer sc.Close()
	if _, err := cc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(sc, buf); err != nil {
		t.Fatal(err)
	}

	// The client vanishes: from now on nothing it sends arrives, not the
	// answers to the probes, not the RST of its abort.
	p.pa.SetDrop(func([]byte) bool { return true })
	vanished := time.Now()
	cc.(*Conn).SetLinger(0)
	cc.Close()

	// The deadline only keeps a broken build from hanging the test: the
	// probes end the connection well within it.
	sc.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = sc.Read(buf)
	took := time.Since(vanished)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection to the vanished client is still open after %v: no keepalive ended it", took)
	}
	if !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("read: %v, want ETIMEDOUT", err)
	}
	if min := idle + count*intvl; took < min {
		t.Fatalf("aborted %v after the client vanished, before idle + count*interval = %v", took, min)
	}
	if st := p.b.Stats(); st.KeepAlives != count {
		t.Fatalf("%d keepalive probes sent, want %d", st.KeepAlives, count)
	}
	if n := p.b.ConnCount(); n != 0 {
		t.Fatalf("%d connections left on the server, want 0", n)
	}
}

// Negative keepalive values are refused, not read as "the default" or
// "unchanged".
func TestListenConfigKeepAliveRefusesNegativeValues(t *testing.T) {
	p := newPair(t, 0, 1)
	for _, ka := range []net.KeepAliveConfig{
		{Enable: true, Idle: -time.Second},
		{Enable: true, Interval: -time.Second},
		{Enable: true, Count: -1},
	} {
		if ln, err := p.b.ListenWith(testContext(t, 10*time.Second), ListenConfig{KeepAlive: ka}, "tcp", ":7"); err == nil {
			ln.Close()
			t.Errorf("keepalive %+v accepted, want an error", ka)
		}
	}
}
