package stack

import (
	"io"
	"testing"
	"time"
)

// BenchmarkPipeBulk moves data one way over one connection between two
// stacks on an in-memory pipe; MB/s is the application-level goodput
// (b.SetBytes), measured until the receiver has read everything.
func BenchmarkPipeBulk(b *testing.B) {
	p := newPair(b, 0, 9)
	c, s := p.connect(b, 5001)
	benchmarkBulk(b, c, s)
}

// BenchmarkPipeBulk6 is BenchmarkPipeBulk over IPv6: the difference is the
// per-segment cost of the IPv6 header, its checksum and its flow label.
func BenchmarkPipeBulk6(b *testing.B) {
	p := newPair6(b)
	ln, err := p.b.Listen("[fd00::2]:5001", 16)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	acc := acceptOne(ln)
	dc, err := p.a.Dial(testContext(b, 30*time.Second), "tcp6", "[fd00::2]:5001")
	if err != nil {
		b.Fatal(err)
	}
	sc := <-acc
	if sc == nil {
		b.Fatal("accept failed")
	}
	b.Cleanup(func() { dc.Close(); sc.Close() })
	benchmarkBulk(b, dc.(*Conn), sc)
}

// benchmarkBulk writes b.N chunks from c, which s reads and discards.
func benchmarkBulk(b *testing.B, c *Conn, s io.Reader) {
	const chunk = 64 << 10
	got := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, s)
		got <- n
	}()
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.CloseWrite()
	if n := <-got; n != int64(b.N)*chunk {
		b.Fatalf("receiver got %d bytes, want %d", n, int64(b.N)*chunk)
	}
	b.StopTimer()
	in := c.Info()
	b.ReportMetric(float64(in.Counters.Retransmits), "retrans")
}
