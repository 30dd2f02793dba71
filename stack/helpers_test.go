package stack

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"tunstack/netif"
)

var (
	addrA = netip.MustParseAddr("198.18.0.1") // the client side in tests
	addrB = netip.MustParseAddr("198.18.0.2") // the server side in tests
)

const testMTU = 1500

// pair is two stacks joined by an in-memory pipe.
type pair struct {
	a, b   *Stack
	pa, pb *netif.PipeEnd // pa is a's end: what a writes, b reads
}

// newPair starts two stacks on a pipe. With loss > 0 each direction drops
// packets with that probability, seeded so that a failure replays.
func newPair(t testing.TB, loss float64, seed uint64) *pair {
	t.Helper()
	pa, pb := netif.NewPipe(testMTU)
	if loss > 0 {
		pa.SetLoss(loss, seed)
		pb.SetLoss(loss, seed+1)
	}
	var secret [32]byte
	binary.LittleEndian.PutUint64(secret[:], seed+1)
	ca := Config{Addr: addrA, Secret: secret}
	secret[8] = 1
	cb := Config{Addr: addrB, Secret: secret}
	return startPair(t, pa, pb, pa, pb, ca, cb)
}

// startPair starts stack a on link la and b on lb (pa and pb are the pipe
// ends underneath, for their counters), both closed when the test ends.
// With TUNSTACK_TEST_PCAP=FILE, a debugging aid, every packet stack b reads
// and writes is captured to FILE for tshark.
func startPair(t testing.TB, la, lb netif.Link, pa, pb *netif.PipeEnd, ca, cb Config) *pair {
	t.Helper()
	if f := os.Getenv("TUNSTACK_TEST_PCAP"); f != "" {
		w, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		tap, err := netif.NewPcapTap(lb, w)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		lb = tap
	}
	a, err := New(la, ca)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(lb, cb)
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	return &pair{a: a, b: b, pa: pa, pb: pb}
}

// testContext is a safety net against hangs, not a way to wait: every test
// finishes on conditions long before it.
func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// connect returns a connected pair of Conns: c dialed from p.a, s accepted
// on p.b.
func (p *pair) connect(t testing.TB, port int) (c, s *Conn) {
	t.Helper()
	ln, err := p.b.Listen(":"+itoa(port), 16)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	dc, err := p.a.Dial(testContext(t, 30*time.Second), "tcp", addrB.String()+":"+itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() {
		dc.Close()
		r.c.Close()
	})
	return dc.(*Conn), r.c.(*Conn)
}

func itoa(n int) string { return strconv.Itoa(n) }

// patternBlock is the base of the deterministic test payload: 1 MiB of
// seeded random bytes. Block i of a pattern stream is this block with its
// first 8 bytes replaced by i, so that misplaced blocks change the hash.
var patternBlock = func() []byte {
	b := make([]byte, 1<<20)
	r := rand.NewChaCha8([32]byte{'t', 'u', 'n'})
	r.Read(b)
	return b
}()

// patternReader yields n bytes of the pattern.
type patternReader struct {
	off, n int64
	block  []byte
}

func newPatternReader(n int64) *patternReader {
	return &patternReader{n: n, block: append([]byte(nil), patternBlock...)}
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	bs := int64(len(r.block))
	i, o := r.off/bs, r.off%bs
	if o == 0 {
		binary.LittleEndian.PutUint64(r.block, uint64(i))
	}
	k := copy(p, r.block[o:min(bs, o+r.n-r.off)])
	r.off += int64(k)
	return k, nil
}

// patternSHA256 is the SHA-256 of n bytes of the pattern.
func patternSHA256(n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, newPatternReader(n))
	return sum(h)
}

func sum(h hash.Hash) (s [32]byte) {
	h.Sum(s[:0])
	return s
}
