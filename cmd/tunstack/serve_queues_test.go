package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"tunstack/stack"
)

// TestServeQueuesEchoThousandConnections runs serve with 2 and with 4
// TUN queues, an engine shard on each, and has 1,000 kernel sockets echo
// through it at once: every byte comes back.
func TestServeQueuesEchoThousandConnections(t *testing.T) {
	for _, queues := range []int{2, 4} {
		t.Run(fmt.Sprint(queues, " queues"), func(t *testing.T) {
			s := startServe(t, "--queues", strconv.Itoa(queues), "--net6", "none")
			st := s.sess.network.(*stack.Stack)
			if st.Shards() != queues {
				t.Fatalf("the stack runs %d shards, want %d", st.Shards(), queues)
			}
			const conns = 1000
			addr := netip.AddrPortFrom(s.cfg.StackAddr, s.cfg.EchoPort).String()
			errs := make(chan error, conns)
			var wg sync.WaitGroup
			for i := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- echoQueued(s, addr, i)
				}()
			}
			wg.Wait()
			close(errs)
			failed := 0
			for err := range errs {
				if err != nil {
					if failed < 5 {
						t.Error(err)
					}
					failed++
				}
			}
			if failed > 0 {
				t.Fatalf("%d of %d connections failed", failed, conns)
			}
			t.Logf("%d segments passed between shards", st.IPStats().PassedOn)
		})
	}
}

// echoQueued connects from the namespace, sends 8 KiB particular to i,
// half-closes and checks that exactly those bytes come back.
func echoQueued(s *served, addr string, i int) error {
	var c net.Conn
	if err := s.ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 30*time.Second)
		return err
	}); err != nil {
		return fmt.Errorf("connection %d: %w", i, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	want := make([]byte, 8<<10)
	for j := range want {
		want[j] = byte(i*31 + j*7 + j>>8)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("connection %d: reading the echo: %w", i, err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("connection %d: writing: %w", i, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("connection %d: %d bytes came back, not the %d sent", i, len(got), len(want))
	}
	return nil
}

// TestServeQueuesFlowIdlePastExpiry dials 32 connections from a stack of
// 2 shards to a kernel listener, each from the shard whose turn it is,
// sends on each (the kernel then records the flow's queue), and lets them
// idle past the TUN's flow expiry (3 s without a write on the flow,
// Linux's TUN_FLOW_EXPIRE). The kernel then writes first: it puts each
// flow's packets on the queue of its hash, which for about half of them
// is the other shard's. Every message must still arrive, the segments
// passed to the shard that has the connection rather than reset. The
// chance that no flow moves is 2^-32.
func TestServeQueuesFlowIdlePastExpiry(t *testing.T) {
	s := startServe(t, "--queues", "2", "--net6", "none")
	st := s.sess.network.(*stack.Stack)
	var ln net.Listener
	if err := s.ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(s.cfg.HostAddr, 7777).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 32
	ours := make(map[string]net.Conn) // by the stack's local address
	for range n {
		c, err := st.Dial(ctx, "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ours[c.LocalAddr().String()] = c
	}
	var kernel []net.Conn
	for range n {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		kernel = append(kernel, c)
	}
	send := func(from, to net.Conn, msg string) {
		t.Helper()
		from.SetDeadline(time.Now().Add(30 * time.Second))
		to.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := from.Write([]byte(msg)); err != nil {
			t.Fatalf("%s: %v", msg, err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(to, got); err != nil {
			t.Fatalf("%s: %v", msg, err)
		}
		if string(got) != msg {
			t.Fatalf("%q arrived for %q", got, msg)
		}
	}
	for i, k := range kernel {
		send(ours[k.RemoteAddr().String()], k, fmt.Sprintf("from the stack, connection %d", i))
	}
	before := st.IPStats().PassedOn
	// Nothing to await: the kernel forgets each flow's queue once it has
	// not been written for 3 s (TUN_FLOW_EXPIRE), by its own timer, and
	// nothing of that is visible from user space. Until that timer runs
	// an expired entry still steers, and the timer runs at whole seconds
	// (round_jiffies_up), so a flow last written at U is forgotten at
	// some time up to U+4 s and a little: a pause of 4 s, what this test
	// first waited, ended before the cleanup in one make test run (no
	// flow had moved). 6 s leaves that second of rounding and a second
	// of timer slack on a loaded machine.
	time.Sleep(6 * time.Second)
	for i, k := range kernel {
		send(k, ours[k.RemoteAddr().String()], fmt.Sprintf("from the kernel, connection %d", i))
	}
	if after := st.IPStats().PassedOn; after == before {
		t.Errorf("no segment was passed between shards after the pause (PassedOn stayed %d): the kernel moved none of %d flows, or the stack did not pass them on", before, n)
	}
	if n := st.Stats().OutRsts; n != 0 {
		t.Errorf("the stack sent %d RSTs", n)
	}
}
