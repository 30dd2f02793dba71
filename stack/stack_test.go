package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"tunstack/netif"
	"tunstack/tcpcore"
	"tunstack/wire"
)

// TestConcurrentEcho runs 1000 connections at once, each echoing 64 KiB.
// The initial windows overflow the pipe's 1024-packet queue, so it is also
// a test of loss recovery under burst loss: it found the one-byte head
// retransmission (TestPartialAckRetransmitsWholeHeadSegment), which made a
// connection crawl at one byte per delayed ACK. On failure it prints the
// server side of each stuck connection; set TUNSTACK_TEST_PCAP to capture
// stack b's link.
func TestConcurrentEcho(t *testing.T) {
	const conns, size = 1000, 64 << 10
	p := newPair(t, 0, 3)
	ln, err := p.b.Listen(":7", conns)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var srv sync.WaitGroup
	srv.Add(1)
	go func() {
		defer srv.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv.Add(1)
			go func() {
				defer srv.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()

	// A hang guard, not a time target: the run takes seconds, but on a
	// machine that starves the stacks (the race detector, other tests) the
	// blast of 1000 initial windows through the pipe's 1024-packet queue
	// gives RTT samples of seconds, so a connection that then loses a
	// retransmission waits an RTO of a minute or more, as it would on
	// Linux. Every byte must still come back.
	ctx := testContext(t, 4*time.Minute)
	start := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- echoOnce(ctx, p.a, p.b, i, size)
		}()
	}
	wg.Wait()
	close(errc)
	failed := 0
	for err := range errc {
		if err != nil {
			if failed < 5 {
				t.Error(err)
			}
			failed++
		}
	}
	if failed > 0 {
		t.Logf("a conns: %d, b conns: %d", p.a.ConnCount(), p.b.ConnCount())
		for _, in := range p.b.Conns() {
			if in.State.String() != "ESTABLISHED" || in.BytesInFlight > 0 {
				t.Logf("b: %+v", in)
			}
		}
		t.Logf("pipe a→b %+v, b→a %+v", p.pa.Stats(), p.pb.Stats())
		t.Logf("ip a %+v\nip b %+v", p.a.IPStats(), p.b.IPStats())
		t.Logf("tcp a %+v\ntcp b %+v", p.a.Stats(), p.b.Stats())
		t.Fatalf("%d of %d connections failed", failed, conns)
	}
	t.Logf("%d connections x %d KiB echoed in %v; listener %+v", conns, size>>10, time.Since(start), ln.(Listener).Stats())
	ln.Close()
	srv.Wait()
}

func echoOnce(ctx context.Context, s, peer *Stack, i, size int) error {
	c, err := s.Dial(ctx, "tcp", "198.18.0.2:7")
	if err != nil {
		return fmt.Errorf("conn %d: dial: %w", i, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	data := bytes.Repeat([]byte{byte(i), byte(i >> 8), 0xa5, 0x5a}, size/4)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		werr <- err
	}()
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		// The server's side of this connection, while it still exists.
		var srv []tcpcore.Info
		for _, in := range peer.Conns() {
			if in.Remote == c.LocalAddr().(*net.TCPAddr).AddrPort() {
				srv = append(srv, in)
			}
		}
		return fmt.Errorf("conn %d: read: %w; %+v; server side %+v", i, err, c.(*Conn).Info(), srv)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("conn %d: write: %w", i, err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("conn %d: echoed data differs", i)
	}
	return nil
}

// TestPing checks that the stack answers ICMP echo requests addressed to
// it, and drops other packets counting them.
func TestPing(t *testing.T) {
	host, link := netif.NewPipe(testMTU)
	s, err := New(link, Config{Addr: addrB})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	req := make([]byte, wire.IPv4HeaderLen+8+4)
	msg := wire.ICMPv4(req[wire.IPv4HeaderLen:])
	msg[0] = wire.ICMPEchoRequest
	copy(msg[4:], []byte{0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'})
	msg.SetChecksum()
	wire.PutIPv4Header(req, wire.IPv4Fields{Src: addrA.As4(), Dst: addrB.As4(), Protocol: wire.ProtoICMP, TTL: 64}, len(msg))
	// A UDP packet first: it must be dropped, not answered.
	udp := append([]byte(nil), req...)
	wire.PutIPv4Header(udp, wire.IPv4Fields{Src: addrA.As4(), Dst: addrB.As4(), Protocol: wire.ProtoUDP, TTL: 64}, len(msg))
	if _, err := host.WritePackets([][]byte{udp, req}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, testMTU)
	sizes := make([]int, 1)
	if _, err := host.ReadPackets([][]byte{buf}, sizes); err != nil {
		t.Fatal(err)
	}
	reply := wire.IPv4(buf[:sizes[0]])
	if reply.Valid() != nil || reply.Protocol() != wire.ProtoICMP || reply.SrcAddr() != addrB || reply.DstAddr() != addrA {
		t.Fatalf("reply is not ICMP from %v to %v: % x", addrB, addrA, reply)
	}
	rm := wire.ICMPv4(reply.Payload())
	if !rm.Valid() || rm.Type() != wire.ICMPEchoReply || !bytes.Equal(rm[4:], msg[4:]) {
		t.Fatalf("bad echo reply % x", rm)
	}
	if st := s.IPStats(); st.EchoReplies != 1 || st.OtherProtocol != 1 {
		t.Errorf("IPStats = %+v; want 1 echo reply and 1 other-protocol drop", st)
	}
}

// TestStackCloseLeavesNoGoroutines runs traffic, closes the stacks and
// checks that none of the package's goroutines survive.
func TestStackCloseLeavesNoGoroutines(t *testing.T) {
	p := newPair(t, 0, 5)
	c, s := p.connect(t, 80)
	go io.Copy(io.Discard, s)
	if _, err := c.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		blocked <- err
	}()
	if err := p.a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-blocked; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked Read: %v, want net.ErrClosed", err)
	}
	// Close waits for the stack's goroutines, but a goroutine that has run
	// its last statement may still be listed for an instant; yield to the
	// scheduler a bounded number of times before calling it a leak.
	var leaked []string
	for range 1000 {
		leaked = stackGoroutines()
		if len(leaked) == 0 {
			return
		}
		runtime.Gosched()
	}
	t.Fatalf("goroutines left after Close:\n%s", strings.Join(leaked, "\n\n"))
}

// stackGoroutines lists goroutines running this package's stack
// machinery (the reader and the timer), not the test's own.
func stackGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "stack.(*Stack).readLoop") || strings.Contains(g, "stack.(*Stack).timerLoop") {
			out = append(out, g)
		}
	}
	return out
}

// TestInputArmsThePoolTrim: a batch of input that makes no engine Output
// still arms the trim of the engine's pools, since input that ends
// connections (a reset) gives their buffers to the pool without any
// Output to arm it. The batch here is an echo request, which the reader
// answers itself, after the batch, so its reply shows the batch done.
func TestInputArmsThePoolTrim(t *testing.T) {
	host, link := netif.NewPipe(testMTU)
	s, err := New(link, Config{Addr: addrB})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.mu.Lock()
	s.tm.trimEvery = time.Hour // so that the trim cannot run and disarm before the check
	armed := s.tm.trimArmed
	s.mu.Unlock()
	if armed {
		t.Fatal("the trim is armed before any input or output")
	}
	req := make([]byte, wire.IPv4HeaderLen+8)
	msg := wire.ICMPv4(req[wire.IPv4HeaderLen:])
	msg[0] = wire.ICMPEchoRequest
	msg.SetChecksum()
	wire.PutIPv4Header(req, wire.IPv4Fields{Src: addrA.As4(), Dst: addrB.As4(), Protocol: wire.ProtoICMP, TTL: 64}, len(msg))
	if _, err := host.WritePackets([][]byte{req}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, testMTU)
	sizes := make([]int, 1)
	if _, err := host.ReadPackets([][]byte{buf}, sizes); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	armed = s.tm.trimArmed
	s.mu.Unlock()
	if !armed {
		t.Fatal("after a batch of input the pools' trim is not armed")
	}
}
