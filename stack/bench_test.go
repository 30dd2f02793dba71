package stack

import (
	"io"
	"testing"
)

// BenchmarkPipeBulk moves data one way over one connection between two
// stacks on an in-memory pipe; MB/s is the application-level goodput
// (b.SetBytes), measured until the receiver has read everything.
func BenchmarkPipeBulk(b *testing.B) {
	const chunk = 64 << 10
	p := newPair(b, 0, 9)
	c, s := p.connect(b, 5001)
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
