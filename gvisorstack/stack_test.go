package gvisorstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/faketime"

	"tunstack/netif"
	"tunstack/policy"
)

const testMTU = 1500

var (
	addrA = netip.MustParseAddr("10.0.0.1")
	addrB = netip.MustParseAddr("10.0.0.2")
	netAB = netip.MustParsePrefix("10.0.0.0/24")
	// With IPv6 (newPairConfig with Prefix6 set): a's and b's addresses.
	addr6A = netip.MustParseAddr("fd00:7475:6e73::1")
	addr6B = netip.MustParseAddr("fd00:7475:6e73::2")
	net6AB = netip.MustParsePrefix("fd00:7475:6e73::/64")
)

// pair is two gVisor stacks on the two ends of one pipe.
type pair struct {
	a, b     *Stack
	pa, pb   *netif.PipeEnd
	closeAll func()
}

func newPair(t testing.TB, opts *Options) *pair {
	return newPairConfig(t, Config{Options: opts})
}

// newPairConfig is newPair with cfg's Options, Profile and Clock; with
// cfg.Prefix6 set, the stacks have IPv6 addresses too (addr6A, addr6B).
func newPairConfig(t testing.TB, cfg Config) *pair {
	t.Helper()
	pa, pb := netif.NewPipe(testMTU)
	cfg.Prefix = netAB
	cfg.Addr = addrA
	if cfg.Prefix6.IsValid() {
		cfg.Addr6 = addr6A
	}
	a, err := New(pa, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = addrB
	if cfg.Prefix6.IsValid() {
		cfg.Addr6 = addr6B
	}
	b, err := New(pb, cfg)
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	p := &pair{a: a, b: b, pa: pa, pb: pb}
	var once sync.Once
	p.closeAll = func() {
		once.Do(func() {
			a.Close()
			b.Close()
		})
	}
	t.Cleanup(p.closeAll)
	return p
}

// pattern returns n deterministic pseudo-random bytes.
func pattern(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// httpRoundTrip serves on p.a and uploads and downloads size bytes from p.b.
func httpRoundTrip(t *testing.T, p *pair, size int) {
	t.Helper()
	httpRoundTripTo(t, p, "10.0.0.1", size)
}

// httpRoundTripTo is httpRoundTrip to p.a's address host (a URL's host:
// an IPv6 address in brackets).
func httpRoundTripTo(t *testing.T, p *pair, host string, size int) {
	t.Helper()
	down := pattern(size, 1)
	up := pattern(size, 2)

	ln, err := p.a.Listen(":80", 128)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"bytes": n, "sha256": hex.EncodeToString(h.Sum(nil))})
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(down)))
		w.Write(down)
	})
	srv := &http.Server{Handler: mux}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()

	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return p.b.Dial(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Minute}

	resp, err := client.Post("http://"+host+"/upload", "application/octet-stream", bytes.NewReader(up))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Bytes  int
		SHA256 string
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got.Bytes != size || got.SHA256 != sum(up) {
		t.Fatalf("upload: server saw %d bytes sha256 %s, sent %d bytes sha256 %s", got.Bytes, got.SHA256, size, sum(up))
	}

	resp, err = client.Get("http://" + host + "/bytes")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(size) || hex.EncodeToString(h.Sum(nil)) != sum(down) {
		t.Fatalf("download: got %d bytes sha256 %x, want %d bytes sha256 %s", n, h.Sum(nil), size, sum(down))
	}
}

func TestHTTP16MiBEachWay(t *testing.T) {
	p := newPair(t, nil)
	httpRoundTrip(t, p, 16<<20)
	t.Logf("client stats: %+v", p.b.Stats())
}

func TestHTTP16MiBEachWayWith2PercentLoss(t *testing.T) {
	p := newPair(t, nil)
	p.pa.SetLoss(0.02, 1)
	p.pb.SetLoss(0.02, 2)
	httpRoundTrip(t, p, 16<<20)
	sa, sb := p.a.Stats(), p.b.Stats()
	t.Logf("server stats: %+v", sa)
	t.Logf("client stats: %+v", sb)
	if sa.Retransmits == 0 || sb.Retransmits == 0 {
		t.Errorf("2%% loss but retransmits are %d (server) and %d (client)", sa.Retransmits, sb.Retransmits)
	}
	if lost := p.pa.Stats().LostPackets + p.pb.Stats().LostPackets; lost == 0 {
		t.Error("pipe lost no packets")
	}
}

func TestConcurrentEcho200x64KiB(t *testing.T) {
	const conns, size = 200, 64 << 10
	p := newPair(t, nil)
	ln, err := p.a.Listen("10.0.0.1:7", conns)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echoOnce(ctx, p.b, "10.0.0.1:7", pattern(size, uint64(i)))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// echoOnce sends msg, half-closes, and checks that exactly msg comes back.
func echoOnce(ctx context.Context, n *Stack, addr string, msg []byte) error {
	c, err := n.Dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		if err == nil {
			err = c.(*Conn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo: got %d bytes, want %d (sha256 %s vs %s)", len(got), len(msg), sum(got), sum(msg))
	}
	return nil
}

func TestDialRefusedIsECONNREFUSED(t *testing.T) {
	p := newPair(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.b.Dial(ctx, "tcp", "10.0.0.1:9")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Dial to a closed port: %v, want ECONNREFUSED", err)
	}
}

func TestDialRejectsOtherNetworks(t *testing.T) {
	p := newPair(t, nil)
	if _, err := p.b.Dial(context.Background(), "udp", "10.0.0.1:9"); err == nil {
		t.Fatal("Dial udp succeeded")
	}
}

func TestResetIsECONNRESET(t *testing.T) {
	p := newPair(t, nil)
	ln, err := p.a.Listen(":9", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	c, err := p.b.Dial(context.Background(), "tcp", "10.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	// SO_LINGER 0: Close sends RST.
	sc.(*Conn).SetLinger(0)
	sc.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after peer's RST: %v, want ECONNRESET", err)
	}
}

func TestConnAfterCloseIsErrClosed(t *testing.T) {
	p := newPair(t, nil)
	ln, err := p.a.Listen(":9", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	c, err := p.b.Dial(context.Background(), "tcp4", "10.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
	ln.Close()
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

func TestSocketOptions(t *testing.T) {
	p := newPair(t, nil)
	ln, err := p.a.Listen(":9", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	nc, err := p.b.Dial(context.Background(), "tcp", "10.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := nc.(*Conn)
	for name, err := range map[string]error{
		"SetNoDelay":         c.SetNoDelay(false),
		"SetKeepAlive":       c.SetKeepAlive(true),
		"SetKeepAlivePeriod": c.SetKeepAlivePeriod(30 * time.Second),
		"SetLinger":          c.SetLinger(5),
		"SetReadBuffer":      c.SetReadBuffer(256 << 10),
		"SetWriteBuffer":     c.SetWriteBuffer(256 << 10),
	} {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !c.ep.SocketOptions().GetDelayOption() {
		t.Error("SetNoDelay(false) did not enable Nagle")
	}
	if !c.ep.SocketOptions().GetKeepAlive() {
		t.Error("SetKeepAlive(true) did not stick")
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
}

func TestListenBacklogBoundsAcceptQueue(t *testing.T) {
	for _, plusOne := range []bool{true, false} {
		t.Run(fmt.Sprintf("BacklogPlusOne=%v", plusOne), func(t *testing.T) {
			o := DefaultOptions()
			o.BacklogPlusOne = plusOne
			want := 2
			if plusOne {
				want = 3
			}
			testBacklog(t, &o, 2, want)
		})
	}
}

// testBacklog dials backlog+3 connections to a listener nobody accepts
// from, then counts what the accept queue holds. Time is frozen (a
// ManualClock), so no SYN or SYN-ACK is retransmitted and the count is
// exactly the queue's capacity. Counting dials that complete would not do:
// the client completes on the SYN-ACK whether or not the server later
// drops the final ACK for a full queue.
func testBacklog(t *testing.T, o *Options, backlog, want int) {
	p := newPairConfig(t, Config{Options: o, Clock: faketime.NewManualClock()})
	ln, err := p.a.Listen(":80", backlog)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range backlog + 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		c, err := p.b.Dial(ctx, "tcp", "10.0.0.1:80")
		cancel()
		if err == nil {
			conns = append(conns, c)
		}
	}
	// Every dial that completed sent its final ACK: wait until the
	// listener has taken each one, into the accept queue (a passive
	// opening) or dropped for a full queue, before anything is accepted
	// and makes room. gVisor counts the second only among its dropped
	// packets (transport/tcp/connect.go, synRcvdState; with cookies also
	// ListenOverflowAckDrop), beside the SYNs it dropped for a full queue.
	st := p.a.GVisor().Stats()
	opened := func() int { return int(st.TCP.PassiveConnectionOpenings.Value()) }
	acksDropped := func() int { return int(st.DroppedPackets.Value() - st.TCP.ListenOverflowSynDrop.Value()) }
	deadline := time.Now().Add(5 * time.Second)
	for opened()+acksDropped() < len(conns) {
		if time.Now().After(deadline) {
			t.Fatalf("%d dials completed, the listener took %d final ACKs into its queue and dropped %d", len(conns), opened(), acksDropped())
		}
		time.Sleep(time.Millisecond)
	}

	accepted := make(chan net.Conn)
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	got := 0
	timeout := time.After(5 * time.Second)
collect:
	for got < opened() {
		select {
		case c := <-accepted:
			got++
			conns = append(conns, c)
		case <-timeout:
			break collect
		}
	}
	ln.Close()
	for c := range accepted {
		got++ // more than the queue took: counted, so the check below fails
		conns = append(conns, c)
	}
	if got != want {
		t.Errorf("accept queue held %d connections with backlog %d, want %d", got, backlog, want)
	}
	tcp := st.TCP
	if tcp.ListenOverflowSynDrop.Value()+tcp.ListenOverflowAckDrop.Value() == 0 {
		t.Error("nothing counted as dropped for a full accept queue")
	}
}

func TestOptionsFromProfile(t *testing.T) {
	lin := OptionsFromProfile(policy.Linux())
	// RACK is off for every profile: TestRACKTailLossStallsGVisor.
	if !lin.SACK || lin.RACK || lin.NoDelay || lin.RTOMin != 200*time.Millisecond || lin.ReceiveBufferMaxBytes != 6291456 {
		t.Errorf("linux options: %+v", lin)
	}
	rfc := OptionsFromProfile(policy.RFC())
	if rfc.RACK || rfc.RTOMin != time.Second || rfc.RTOMax != 60*time.Second {
		t.Errorf("rfc options: %+v", rfc)
	}
	if u := lin.Unsupported(); len(u) != 2 || !strings.HasPrefix(u[0], "DelayedAck") || !strings.HasPrefix(u[1], "DSACK") {
		t.Errorf("linux Unsupported = %q, want DelayedAck and DSACK", u)
	}
	if u := DefaultOptions().Unsupported(); len(u) != 0 {
		t.Errorf("DefaultOptions().Unsupported() = %q, want none", u)
	}
	for _, prof := range []*policy.Profile{policy.Linux(), policy.RFC()} {
		o := OptionsFromProfile(prof)
		o.CongestionControl = "cubic"
		pa, pb := netif.NewPipe(testMTU)
		defer pb.Close()
		s, err := New(pa, Config{Addr: addrA, Options: &o})
		if err != nil {
			t.Fatalf("%s: %v", prof.Name, err)
		}
		s.Close()
	}
}

func TestBadOptionsFailNew(t *testing.T) {
	o := DefaultOptions()
	o.CongestionControl = "bbr"
	pa, pb := netif.NewPipe(testMTU)
	defer pb.Close()
	if s, err := New(pa, Config{Addr: addrA, Options: &o}); err == nil {
		s.Close()
		t.Fatal("New accepted congestion control bbr")
	}
	if _, err := New(pa, Config{Addr: netip.MustParseAddr("::1")}); err == nil {
		t.Fatal("New accepted an IPv6 address")
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	// Warm up once so that goroutines gVisor starts once per process (if
	// any) are in the baseline.
	func() {
		p := newPair(t, nil)
		if err := echoOnce(context.Background(), p.b, "10.0.0.1:1", nil); err == nil {
			t.Fatal("dial to a closed port succeeded")
		}
		p.closeAll()
	}()
	settle := func(limit int) int {
		var n int
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if n = runtime.NumGoroutine(); n <= limit {
				break
			}
		}
		return n
	}
	// Baseline: the count once it has stopped changing.
	base := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n == base {
			break
		}
		base = n
	}

	p := newPair(t, nil)
	ln, err := p.a.Listen(":7", 16)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 8 {
		if err := echoOnce(ctx, p.b, "10.0.0.1:7", pattern(100<<10, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Leave connections open on both sides and a listener blocked in
	// Accept: Close must end them all.
	var open []net.Conn
	for range 4 {
		c, err := p.b.Dial(ctx, "tcp", "10.0.0.1:7")
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	if n := runtime.NumGoroutine(); n <= base {
		t.Fatalf("goroutines while running: %d, baseline %d; the count checks nothing", n, base)
	}
	p.closeAll()
	for _, c := range open {
		if _, err := c.Write([]byte("x")); err == nil {
			t.Error("Write on a connection of a closed stack succeeded")
		}
	}
	if n := settle(base); n > base {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after Close, baseline %d:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}
