package relay_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"tunstack/netif"
	"tunstack/relay"
	"tunstack/stack"
)

// The relay in process: stack a is the client host, stack b the relay's
// stack on the other end of a pipe, intercepting 203.0.113.0/24; the
// relay's outbound connections go to kernel sockets on loopback, to which
// dial maps each intercepted destination.
type env struct {
	client *stack.Stack
	front  *stack.Frontend
	r      *relay.Relay

	mu      sync.Mutex
	targets map[string]string // intercepted "ip:port" -> loopback address
	wrap    func(net.Conn) net.Conn
}

// wrapDial has every outbound connection from now on passed through f.
func (e *env) wrapDial(f func(net.Conn) net.Conn) {
	e.mu.Lock()
	e.wrap = f
	e.mu.Unlock()
}

// dialTarget dials the loopback address standing for the intercepted
// address (server), through the wrapper of wrapDial if one is set; an
// address no server stands for is unreachable.
func (e *env) dialTarget(ctx context.Context, network, address string) (net.Conn, error) {
	to, ok := e.target(address)
	e.mu.Lock()
	wrap := e.wrap
	e.mu.Unlock()
	if !ok {
		return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.EHOSTUNREACH}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, to)
	if err == nil && wrap != nil {
		c = wrap(c)
	}
	return c, err
}

// target is the loopback address that stands for the intercepted address.
func (e *env) target(address string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	to, ok := e.targets[address]
	return to, ok
}

// envVia is newEnv with the relay's outbound connections made directly
// ("direct") or through a SOCKS5 proxy ("socks5": relay.NewDialer's
// client, and socksForwarder as the proxy, which reaches the targets).
func envVia(t *testing.T, via string) *env {
	t.Helper()
	if via == "direct" {
		return newEnv(t, relay.Config{})
	}
	var e *env
	var ready sync.WaitGroup
	ready.Add(1)
	url := socksForwarder(t, func(address string) (string, bool) {
		ready.Wait()
		return e.target(address)
	})
	dial, err := relay.NewDialer(relay.DialConfig{Upstream: url})
	if err != nil {
		t.Fatal(err)
	}
	e = newEnv(t, relay.Config{Dial: dial})
	ready.Done()
	return e
}

func newEnv(t testing.TB, cfg relay.Config) *env {
	t.Helper()
	pa, pb := netif.NewPipe(1500)
	a, err := stack.New(pa, stack.Config{Addr: netip.MustParseAddr("198.18.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := stack.New(pb, stack.Config{Addr: netip.MustParseAddr("198.18.0.2")})
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	e := &env{client: a, targets: map[string]string{}}
	if cfg.Dial == nil {
		// Unless the caller's dial reaches the targets its own way
		// (envVia's, through a SOCKS5 proxy).
		cfg.Dial = e.dialTarget
	}
	cfg.TunRTT = func(c net.Conn) (time.Duration, bool) {
		sc, ok := c.(*stack.Conn)
		if !ok {
			return 0, false
		}
		return sc.Info().SRTT, true
	}
	e.r, err = relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.front, err = b.Frontend(stack.FrontendConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.front.Intercept([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, e.r.Handle); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.front.Close()
		e.r.Close()
		a.Close()
		b.Close()
	})
	return e
}

// server listens on loopback and stands for the destination target.
func (e *env) server(t testing.TB, target string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	e.mu.Lock()
	e.targets[target] = ln.Addr().String()
	e.mu.Unlock()
	return ln
}

func (e *env) dial(t *testing.T, target string) (*stack.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := e.client.Dial(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c.(*stack.Conn), nil
}

// serveEach accepts connections on ln until it is closed, each handled
// by handle on a goroutine of its own.
func serveEach(ln net.Listener, handle func(c net.Conn)) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
}

// deadlines bounds every wait on the connections: a FIN or a reset the
// relay fails to pass on fails the test instead of hanging it.
func deadlines(cs ...net.Conn) {
	for _, c := range cs {
		c.SetDeadline(time.Now().Add(10 * time.Second))
	}
}

func accept(t *testing.T, ln net.Listener) *net.TCPConn {
	t.Helper()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// Both half-closes, directly and through a SOCKS5 proxy: the client's FIN
// reaches the server while the
// server's reply still flows to the client, and the other way round.
func TestRelayHalfCloseBothWays(t *testing.T) {
	for _, via := range []string{"direct", "socks5"} {
		t.Run(via, func(t *testing.T) { testHalfCloseBothWays(t, envVia(t, via)) })
	}
}

func testHalfCloseBothWays(t *testing.T, e *env) {
	ln := e.server(t, "203.0.113.10:80")
	req := bytes.Repeat([]byte("q"), 300_000)
	reply := bytes.Repeat([]byte("r"), 500_000)

	// Client first: it sends, shuts down writing, and reads the reply.
	c, err := e.dial(t, "203.0.113.10:80")
	if err != nil {
		t.Fatal(err)
	}
	s := accept(t, ln)
	deadlines(c, s)
	go func() {
		c.Write(req)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, req) {
		t.Fatalf("server read %d bytes (%v), want the %d-byte request then EOF", len(got), err, len(req))
	}
	go func(s net.Conn) { // its own s: the test reuses the variable below
		s.Write(reply)
		s.Close()
	}(s)
	got, err = io.ReadAll(c)
	if err != nil || !bytes.Equal(got, reply) {
		t.Fatalf("client read %d bytes (%v), want the %d-byte reply then EOF", len(got), err, len(reply))
	}

	// Server first: it sends and shuts down writing; the client still
	// sends after reading the server's EOF.
	c, err = e.dial(t, "203.0.113.10:80")
	if err != nil {
		t.Fatal(err)
	}
	s = accept(t, ln)
	deadlines(c, s)
	go func() {
		s.Write(reply)
		s.CloseWrite()
	}()
	got, err = io.ReadAll(c)
	if err != nil || !bytes.Equal(got, reply) {
		t.Fatalf("client read %d bytes (%v), want the reply then EOF", len(got), err)
	}
	go func() {
		c.Write(req)
		c.CloseWrite()
	}()
	got, err = io.ReadAll(s)
	if err != nil || !bytes.Equal(got, req) {
		t.Fatalf("server read %d bytes (%v) after its own FIN, want the request then EOF", len(got), err)
	}
}

// The destination's answers reach the client's connect: a closed port is
// "connection refused", an unreachable one "no route to host", and the
// client never sees "connected" for either.
func TestRelayRefusals(t *testing.T) {
	e := newEnv(t, relay.Config{})
	ln := e.server(t, "203.0.113.11:80")
	ln.Close() // nothing listens there now
	if _, err := e.dial(t, "203.0.113.11:80"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial to a closed port: %v, want ECONNREFUSED", err)
	}
	if _, err := e.dial(t, "203.0.113.12:80"); !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Fatalf("dial to an unreachable host: %v, want EHOSTUNREACH", err)
	}
	st := e.r.Stats()
	if st.Refused != 2 || st.RefusedBy[relay.RefuseReset] != 1 || st.RefusedBy[relay.RefuseHostUnreachable] != 1 || st.Relayed != 0 {
		t.Fatalf("stats %+v, want one reset and one host unreachable", st)
	}
}

// Directly and through a SOCKS5 proxy, a reset from the server
// mid-transfer reaches the client as a reset, and
// a client's reset reaches the server as one.
func TestRelayResetBothWays(t *testing.T) {
	for _, via := range []string{"direct", "socks5"} {
		t.Run(via, func(t *testing.T) { testResetBothWays(t, envVia(t, via)) })
	}
}

func testResetBothWays(t *testing.T, e *env) {
	ln := e.server(t, "203.0.113.13:80")
	c, err := e.dial(t, "203.0.113.13:80")
	if err != nil {
		t.Fatal(err)
	}
	s := accept(t, ln)
	deadlines(c, s)
	if _, err := s.Write(make([]byte, 100_000)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 100_000)); err != nil {
		t.Fatal(err)
	}
	s.SetLinger(0)
	s.Close()
	if _, err := io.Copy(io.Discard, c); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read after the server's reset: %v, want ECONNRESET", err)
	}

	c, err = e.dial(t, "203.0.113.13:80")
	if err != nil {
		t.Fatal(err)
	}
	s = accept(t, ln)
	deadlines(c, s)
	c.Write([]byte("x"))
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	c.SetLinger(0)
	c.Close()
	if _, err := io.Copy(io.Discard, s); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("server read after the client's reset: %v, want ECONNRESET", err)
	}
}

// --max-conns: beyond it a SYN is refused with RST and counted.
func TestRelayMaxConns(t *testing.T) {
	e := newEnv(t, relay.Config{MaxConns: 1})
	ln := e.server(t, "203.0.113.14:80")
	c, err := e.dial(t, "203.0.113.14:80")
	if err != nil {
		t.Fatal(err)
	}
	s := accept(t, ln)
	if _, err := e.dial(t, "203.0.113.14:80"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial beyond max-conns: %v, want ECONNREFUSED", err)
	}
	if st := e.r.Stats(); st.MaxConnsRefused != 1 || st.Active != 1 {
		t.Fatalf("stats %+v, want one refusal and one active", st)
	}
	var tbl bytes.Buffer
	e.r.WriteTable(&tbl)
	if !bytes.Contains(tbl.Bytes(), []byte("203.0.113.14:80")) || !bytes.Contains(tbl.Bytes(), []byte("max-conns refusals 1")) {
		t.Fatalf("table lacks the connection or the refusal:\n%s", tbl.String())
	}
	c.Close()
	s.Close()
}

// Many connections at once, each carrying 256 KiB both ways, byte-exact.
func TestRelayConcurrent(t *testing.T) {
	e := newEnv(t, relay.Config{})
	ln := e.server(t, "203.0.113.15:7")
	serveEach(ln, func(c net.Conn) {
		io.Copy(c, c) // echo, through the half-close
		c.(*net.TCPConn).CloseWrite()
		c.Close()
	})
	const n, size = 50, 256 << 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := e.dial(t, "203.0.113.15:7")
			if err != nil {
				errs <- err
				return
			}
			data := bytes.Repeat([]byte{byte(i)}, size)
			go func() {
				c.Write(data)
				c.CloseWrite()
			}()
			h := sha256.New()
			m, err := io.Copy(h, c)
			if err != nil || m != size || !bytes.Equal(h.Sum(nil), sha(data)) {
				errs <- errors.New("echo mismatch")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func sha(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// fakePending is a held SYN without a stack: Accept is the test's.
type fakePending struct {
	accept  func() (net.Conn, error)
	refused chan relay.Refusal
}

func (p *fakePending) Client() netip.AddrPort { return netip.MustParseAddrPort("198.18.0.1:40000") }
func (p *fakePending) Target() netip.AddrPort { return netip.MustParseAddrPort("203.0.113.20:80") }
func (p *fakePending) Accept() (net.Conn, error) {
	return p.accept()
}
func (p *fakePending) Refuse(how relay.Refusal) { p.refused <- how }

// expectEOF reads c until it ends, and fails unless it ends with EOF (the
// relay closed or aborted the leg) within the test's patience.
func expectEOF(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("%s: %v, want the relay to close it (EOF)", what, err)
	}
}

// The table (Conns) may be read while a connection comes up: the client
// leg's RTT is asked for only once the leg is there, and with -race no
// access of the connection's record is unordered with Handle's.
func TestRelayConnsWhileConnecting(t *testing.T) {
	dialing, dialed := make(chan struct{}), make(chan struct{})
	accepting, accepted := make(chan struct{}), make(chan struct{})
	out, outPeer := net.Pipe()
	in, inPeer := net.Pipe()
	r, err := relay.New(relay.Config{
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			close(dialing)
			<-dialed
			return out, nil
		},
		TunRTT: func(c net.Conn) (time.Duration, bool) { return 3 * time.Millisecond, c == in },
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		r.Handle(&fakePending{accept: func() (net.Conn, error) {
			close(accepting)
			<-accepted
			return in, nil
		}})
		close(done)
	}()
	<-dialing
	if cs := r.Conns(); len(cs) != 1 || cs[0].ServerLeg != "dialing" || cs[0].ClientLeg != "handshake" || cs[0].HasTunRTT {
		t.Fatalf("table while dialing: %+v, want one connection dialing, no RTT", cs)
	}
	close(dialed)
	<-accepting
	if cs := r.Conns(); len(cs) != 1 || cs[0].ServerLeg != "open" || cs[0].ClientLeg != "handshake" || cs[0].HasTunRTT {
		t.Fatalf("table during the handshake: %+v, want the outbound leg open, no RTT", cs)
	}
	close(accepted)
	// Read at once, as Handle takes the client leg: nothing ordered this
	// read before or after Handle's but the relay's own locking.
	r.Conns()
	// A byte across proves the splice runs, so both legs are set.
	go inPeer.Write([]byte("x"))
	if _, err := io.ReadFull(outPeer, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if cs := r.Conns(); len(cs) != 1 || cs[0].ServerLeg != "open" || cs[0].ClientLeg != "open" || !cs[0].HasTunRTT || cs[0].TunRTT != 3*time.Millisecond {
		t.Fatalf("table once relayed: %+v, want one open connection with the client leg's 3ms RTT", cs)
	}
	inPeer.Close()
	outPeer.Close()
	<-done
	r.Close()
}

// Close during the client's handshake resets the outbound leg at once and
// the client leg as soon as the handshake completes, and returns then: it
// does not wait for either peer to end the connection.
func TestRelayCloseWhileAccepting(t *testing.T) {
	out, outPeer := net.Pipe()
	in, inPeer := net.Pipe()
	accepting, release := make(chan struct{}), make(chan struct{})
	r, err := relay.New(relay.Config{
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) { return out, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan struct{})
	go func() {
		r.Handle(&fakePending{accept: func() (net.Conn, error) {
			close(accepting)
			<-release
			return in, nil
		}})
		close(handled)
	}()
	<-accepting
	closed := make(chan struct{})
	go func() {
		r.Close()
		close(closed)
	}()
	expectEOF(t, outPeer, "outbound leg after Close, the handshake still running")
	close(release)
	expectEOF(t, inPeer, "client leg after Close, once the handshake completed")
	<-handled
	<-closed
	if st := r.Stats(); st.Relayed != 1 || st.Resets != 1 || st.Active != 0 {
		t.Fatalf("stats %+v, want the connection relayed, then reset by Close", st)
	}
}

// Close during the outbound connect, which then succeeds anyway: the SYN
// is refused with a reset and the outbound leg closed.
func TestRelayCloseWhileDialing(t *testing.T) {
	out, outPeer := net.Pipe()
	dialing := make(chan struct{})
	var r *relay.Relay
	r, err := relay.New(relay.Config{
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			close(dialing)
			<-ctx.Done() // Close cancels it; this connect completed anyway
			return out, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan relay.Refusal, 1)
	accepted := relay.Refusal(-1)
	p := &fakePending{
		accept: func() (net.Conn, error) {
			refused <- accepted
			return nil, errors.New("accepted after Close")
		},
		refused: refused,
	}
	go r.Handle(p)
	<-dialing
	r.Close()
	if how := <-refused; how != relay.RefuseReset {
		t.Fatalf("SYN answered as %d (-1: accepted), want refused with RefuseReset", how)
	}
	expectEOF(t, outPeer, "outbound leg dialled as Close ran")
}

// An idle relayed connection holds no buffer: each direction waits for
// data holding none and gives its buffer back once a read is not bulk;
// one whose destination does not take the data holds its buffer (and no
// more) until it does, except that the client-to-destination direction
// on tunstack writes from the stack's receive buffer (lent) and holds
// none even then. Through a kernel socket the pipe waits on Go's
// poller; an outbound connection that is no syscall.Conn (a wrapper
// that hides its socket) is waited on with the pipe's small buffer,
// outside the pool.
func TestRelayIdleHoldsNoBuffer(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		name := "kernel socket"
		if wrap {
			name = "opaque net.Conn"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, relay.Config{})
			if wrap {
				e.wrapDial(func(c net.Conn) net.Conn { return struct{ net.Conn }{c} })
			}
			ln := e.server(t, "203.0.113.16:80")
			c, err := e.dial(t, "203.0.113.16:80")
			if err != nil {
				t.Fatal(err)
			}
			s := accept(t, ln)
			bulk := bytes.Repeat([]byte("b"), 256<<10)
			for _, dir := range []struct {
				from, to net.Conn
			}{{c, s}, {s, c}, {c, s}, {s, c}} {
				go dir.from.Write(bulk)
				if _, err := io.ReadFull(dir.to, make([]byte, len(bulk))); err != nil {
					t.Fatal(err)
				}
				bulk = bulk[:1] // then one byte each way: not bulk
			}
			awaitHeld(t, e.r, 0)

			// The client stops reading: the relay's write toward it
			// blocks once the windows and buffers are full, holding the
			// buffer it read into; from a kernel socket the relay reads
			// straight into the client leg's send buffer (grown past its
			// first by the bulk before), so it holds none, and the bytes
			// it forwards before the window closes are the proof that it
			// runs.
			down := e.r.Stats().BytesDown
			go s.Write(make([]byte, 8<<20))
			if wrap {
				awaitHeld(t, e.r, 1)
			} else {
				awaitStat(t, e.r, "KiB more down (at most 64)", func(st relay.Stats) int { return min(int(st.BytesDown-down)>>10, 64) }, 64)
				if h := e.r.Stats().BuffersHeld; h != 0 {
					t.Fatalf("forwarding toward the client from a kernel socket, the relay holds %d buffers, want 0 (read into the stack's send buffer)", h)
				}
			}
			if _, err := io.ReadFull(c, make([]byte, 8<<20)); err != nil {
				t.Fatal(err)
			}
			// A byte after the bulk: a pipe on an opaque connection waits
			// in its pool buffer until a read is not bulk.
			if _, err := s.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			awaitHeld(t, e.r, 0)

			// The server stops reading: the relay's write toward it
			// blocks (its goroutine for that direction stays), writing
			// from the stack's buffer: no buffer of the relay's held.
			go c.Write(make([]byte, 8<<20))
			awaitStat(t, e.r, "goroutines", func(st relay.Stats) int { return st.Goroutines }, 2)
			if _, err := io.ReadFull(s, make([]byte, 1<<20)); err != nil {
				t.Fatal(err)
			}
			if h := e.r.Stats().BuffersHeld; h != 0 {
				t.Fatalf("blocked toward the destination, the relay holds %d buffers, want 0 (lent from the stack)", h)
			}
			if _, err := io.ReadFull(s, make([]byte, 7<<20)); err != nil {
				t.Fatal(err)
			}
			awaitHeld(t, e.r, 0)
		})
	}
}

// awaitHeld waits until the relay's pipes hold want buffers.
func awaitHeld(t *testing.T, r *relay.Relay, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for r.Stats().BuffersHeld != want {
		if time.Now().After(deadline) {
			t.Fatalf("the relay's pipes hold %d buffers, want %d", r.Stats().BuffersHeld, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// An idle relayed connection on tunstack runs one goroutine, the one
// waiting on the outbound socket: the client-to-destination direction has
// none while the client sends nothing, and runs one only while it
// forwards. Once the destination's FIN has been passed on, an idle
// connection runs none, and it is still relayed the other way.
func TestRelayIdleOneGoroutine(t *testing.T) {
	e := newEnv(t, relay.Config{})
	ln := e.server(t, "203.0.113.17:80")
	c, err := e.dial(t, "203.0.113.17:80")
	if err != nil {
		t.Fatal(err)
	}
	s := accept(t, ln)
	awaitStat(t, e.r, "goroutines", func(st relay.Stats) int { return st.Goroutines }, 1)
	for _, dir := range []struct {
		from, to net.Conn
	}{{c, s}, {s, c}, {c, s}} {
		if _, err := dir.from.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(dir.to, make([]byte, 4)); err != nil {
			t.Fatal(err)
		}
		awaitStat(t, e.r, "goroutines", func(st relay.Stats) int { return st.Goroutines }, 1)
	}
	s.CloseWrite()
	expectEOF(t, c, "the destination's FIN")
	awaitStat(t, e.r, "goroutines", func(st relay.Stats) int { return st.Goroutines }, 0)
	if _, err := c.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(s, got); err != nil || string(got) != "late" {
		t.Fatalf("after the destination's FIN the server read %q, %v; want \"late\"", got, err)
	}
	awaitStat(t, e.r, "goroutines", func(st relay.Stats) int { return st.Goroutines }, 0)
	if a := e.r.Stats().Active; a != 1 {
		t.Fatalf("%d connections active after one half-close, want 1", a)
	}
	c.CloseWrite()
	expectEOF(t, s, "the client's FIN")
	awaitStat(t, e.r, "active connections", func(st relay.Stats) int { return st.Active }, 0)
}

// awaitStat waits until f of the relay's counters is want.
func awaitStat(t *testing.T, r *relay.Relay, what string, f func(relay.Stats) int, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for f(r.Stats()) != want {
		if time.Now().After(deadline) {
			t.Fatalf("the relay has %d %s, want %d", f(r.Stats()), what, want)
		}
		time.Sleep(time.Millisecond)
	}
}
