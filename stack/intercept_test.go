package stack

import (
	"errors"
	"io"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tunstack/netif"
	"tunstack/relay"
	"tunstack/wire"
)

// Stack a plays the client host, b the relay's stack intercepting
// 203.0.113.0/24: a's connections to that prefix are held by b until the
// test, in the relay's place, decides.
func interceptPair(t *testing.T) (*pair, *Frontend, chan relay.Pending) {
	t.Helper()
	p := newPair(t, 0, 7)
	f, err := p.b.Frontend(FrontendConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan relay.Pending, 16)
	if err := f.Intercept([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, func(pd relay.Pending) { ch <- pd }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return p, f, ch
}

type dialResult struct {
	c   interface{ Close() error }
	err error
}

// dialAsync dials target from the client stack.
func dialAsync(t *testing.T, p *pair, target string) chan dialResult {
	ch := make(chan dialResult, 1)
	go func() {
		c, err := p.a.Dial(testContext(t, 30*time.Second), "tcp", target)
		ch <- dialResult{c, err}
	}()
	return ch
}

func TestFrontendAcceptCarriesData(t *testing.T) {
	p, f, pend := interceptPair(t)
	dial := dialAsync(t, p, "203.0.113.7:443")
	pd := <-pend
	if pd.Target() != netip.MustParseAddrPort("203.0.113.7:443") || pd.Client().Addr() != addrA {
		t.Fatalf("pending %v -> %v, want %v -> 203.0.113.7:443", pd.Client(), pd.Target(), addrA)
	}
	select {
	case r := <-dial:
		t.Fatalf("the client's dial returned (%v) before the relay decided", r.err)
	default:
	}
	sc, err := pd.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	r := <-dial
	if r.err != nil {
		t.Fatal(r.err)
	}
	cc := r.c.(*Conn)
	defer cc.Close()
	if got := cc.RemoteAddr().String(); got != "203.0.113.7:443" {
		t.Fatalf("client sees %s, want 203.0.113.7:443", got)
	}
	if _, err := cc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("relay side read %q, %v", buf, err)
	}
	if st := f.Stats(); st.Answered != 1 || st.Established != 1 || st.HeldNow != 0 {
		t.Fatalf("stats %+v, want one answered and established", st)
	}
}

func TestFrontendRefusals(t *testing.T) {
	p, f, pend := interceptPair(t)
	for _, tc := range []struct {
		how  relay.Refusal
		want syscall.Errno
	}{
		{relay.RefuseReset, syscall.ECONNREFUSED},
		{relay.RefuseHostUnreachable, syscall.EHOSTUNREACH},
		{relay.RefuseNetUnreachable, syscall.ENETUNREACH},
	} {
		dial := dialAsync(t, p, "203.0.113.9:80")
		(<-pend).Refuse(tc.how)
		r := <-dial
		if !errors.Is(r.err, tc.want) {
			t.Fatalf("refusal %d: dial error %v, want %v", tc.how, r.err, tc.want)
		}
	}
	if st := f.Stats(); st.Resets != 1 || st.UnreachablesSent != 2 || st.HeldNow != 0 {
		t.Fatalf("stats %+v, want one reset and two ICMP errors sent", st)
	}
}

// UDP to an intercepted address draws ICMP port unreachable quoting it,
// from the stack's address.
func TestFrontendUDPPortUnreachable(t *testing.T) {
	pa, pb := netif.NewPipe(testMTU)
	b, err := New(pb, Config{Addr: addrB})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	defer pa.Close()
	f, err := b.Frontend(FrontendConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Intercept([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, func(pd relay.Pending) { pd.Refuse(relay.RefuseReset) }); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	udp := make([]byte, wire.IPv4HeaderLen+8+4)
	wire.PutIPv4Header(udp, wire.IPv4Fields{Src: addrA.As4(), Dst: netip.MustParseAddr("203.0.113.53").As4(), Protocol: wire.ProtoUDP, TTL: 64}, 12)
	if _, err := pa.WritePackets([][]byte{udp}); err != nil {
		t.Fatal(err)
	}
	bufs, sizes := [][]byte{make([]byte, testMTU)}, []int{0}
	if _, err := pa.ReadPackets(bufs, sizes); err != nil {
		t.Fatal(err)
	}
	got := wire.IPv4(bufs[0][:sizes[0]])
	m := got.Payload()
	if got.Protocol() != wire.ProtoICMP || got.SrcAddr() != addrB || got.DstAddr() != addrA || m[0] != 3 || m[1] != 3 || string(m[8:]) != string(udp) {
		t.Fatalf("got %x, want ICMP port unreachable from %v to %v quoting the datagram", []byte(got), addrB, addrA)
	}
	if st := f.Stats(); st.PortUnreachables != 1 {
		t.Fatalf("stats %+v, want one port unreachable", st)
	}
}

// icmpCountLink records, as each ICMP packet is written through it, the
// PacketsOut of the stack writing.
type icmpCountLink struct {
	netif.Link
	s    atomic.Pointer[Stack]
	mu   sync.Mutex
	seen []uint64
}

func (l *icmpCountLink) WritePackets(pkts [][]byte) (int, error) {
	if s := l.s.Load(); s != nil {
		for _, p := range pkts {
			if p[0]>>4 == 4 && wire.IPv4(p).Protocol() == wire.ProtoICMP {
				l.mu.Lock()
				l.seen = append(l.seen, s.IPStats().PacketsOut)
				l.mu.Unlock()
			}
		}
	}
	return l.Link.WritePackets(pkts)
}

// A refusal's ICMP error is in PacketsOut by the time it reaches the
// link, as the reader's own replies are: whoever receives it finds it
// counted.
func TestFrontendUnreachableIsCountedBeforeItIsWritten(t *testing.T) {
	pa, pb := netif.NewPipe(testMTU)
	lb := &icmpCountLink{Link: pb}
	p := startPair(t, pa, lb, pa, pb, Config{Addr: addrA, Secret: [32]byte{1}}, Config{Addr: addrB, Secret: [32]byte{2}})
	lb.s.Store(p.b)
	f, err := p.b.Frontend(FrontendConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pend := make(chan relay.Pending, 1)
	if err := f.Intercept([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, func(pd relay.Pending) { pend <- pd }); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dial := dialAsync(t, p, "203.0.113.9:80")
	pd := <-pend
	// The SYN is held unanswered: b has nothing else to send.
	before := p.b.IPStats().PacketsOut
	pd.Refuse(relay.RefuseHostUnreachable)
	if r := <-dial; !errors.Is(r.err, syscall.EHOSTUNREACH) {
		t.Fatalf("dial error %v, want EHOSTUNREACH", r.err)
	}
	lb.mu.Lock()
	seen := slices.Clone(lb.seen)
	lb.mu.Unlock()
	if len(seen) != 1 || seen[0] != before+1 {
		t.Fatalf("PacketsOut as each ICMP error was written: %v, want [%d] (the error counted before it went out)", seen, before+1)
	}
	if got := p.b.IPStats().PacketsOut; got != before+1 {
		t.Errorf("PacketsOut %d after the refusal, want %d", got, before+1)
	}
}

// The link reader hands out the SYNs held in each batch it reads; a SYN
// that arrives once Close has returned is never handed out (it meets a
// closed port), even with SYNs arriving while Close runs.
func TestFrontendCloseEndsHandingOut(t *testing.T) {
	p := newPair(t, 0, 7)
	f, err := p.b.Frontend(FrontendConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// SYNs sent after Close returned go to port afterClose; the handler
	// refuses what it gets, so every dial ends at once either way.
	const afterClose = 60000
	var closed atomic.Bool
	var calls, late atomic.Int64
	if err := f.Intercept([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, func(pd relay.Pending) {
		if pd.Target().Port() == afterClose {
			late.Add(1)
		}
		calls.Add(1)
		pd.Refuse(relay.RefuseReset)
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)})
			for n := 0; n < 20; {
				port := uint16(1000 + n)
				if closed.Load() {
					port = afterClose
					n++
				}
				p.a.Dial(testContext(t, 30*time.Second), "tcp", netip.AddrPortFrom(target, port).String())
			}
		}()
	}
	// Close while SYNs keep coming, once some have been handed out.
	for calls.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	closed.Store(true)
	wg.Wait()
	if n := late.Load(); n != 0 {
		t.Fatalf("%d SYNs sent after Close returned were handed out", n)
	}
}
