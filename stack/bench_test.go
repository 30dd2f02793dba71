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

// BenchmarkPipeRR is one 1-byte request and its 1-byte reply over one
// connection between two stacks on an in-memory pipe: the hand-offs of
// a transaction (the link reader, the application's Read and Write, the
// link write) with no kernel in the way. A transaction allocates nothing.
func BenchmarkPipeRR(b *testing.B) {
	p := newPair(b, 0, 9)
	c, s := p.connect(b, 5002)
	go func() {
		buf := make([]byte, 1)
		for {
			if _, err := s.Read(buf); err != nil {
				return
			}
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	}()
	buf := []byte{'q'}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPipeCRR is a connection per transaction between two stacks on
// an in-memory pipe: connect, a 1-byte request, its reply, close. The
// server closes first, as an HTTP/1.0 server does, so the TIME-WAITs stay
// on its side and do not use up the client's ephemeral ports however many
// connections the benchmark makes. It counts both ends' allocations: a
// Conn each, the engine's connections, the context of the dial; the send
// and receive buffers come from the engines' pools.
func BenchmarkPipeCRR(b *testing.B) {
	p := newPair(b, 0, 9)
	ln, err := p.b.Listen(":5003", 128)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		buf := make([]byte, 1)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if _, err := io.ReadFull(c, buf); err == nil {
				c.Write(buf)
			}
			c.Close()
		}
	}()
	ctx := testContext(b, time.Minute)
	addr := addrB.String() + ":5003"
	buf := []byte{'q'}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := p.a.Dial(ctx, "tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		if n, err := c.Read(buf); n != 0 || err != io.EOF {
			b.Fatalf("after the reply read %d bytes, %v; want the server's FIN (EOF)", n, err)
		}
		c.Close()
	}
}

// BenchmarkPipeBulkLend is BenchmarkPipeBulk with the sender queueing by
// Lend and Commit (what the relay does when it reads a socket into the
// send buffer): each op commits 64 KiB, in as many Lends as the send
// buffer's room takes, each filled by the clear a read into it stands
// for. It allocates nothing.
func BenchmarkPipeBulkLend(b *testing.B) {
	const chunk = 64 << 10
	p := newPair(b, 0, 9)
	c, s := p.connect(b, 5004)
	got := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, s)
		got <- n
	}()
	// A first write past the small first buffer, so that Lend lends.
	first := make([]byte, 16<<10)
	if _, err := c.Write(first); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(chunk)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for done := 0; done < chunk; {
			x, y, err := c.Lend(chunk - done)
			if err != nil || len(x) == 0 {
				b.Fatalf("Lend: %d bytes, %v", len(x), err)
			}
			clear(x)
			clear(y)
			n := len(x) + len(y)
			if err := c.Commit(n); err != nil {
				b.Fatal(err)
			}
			done += n
		}
	}
	c.CloseWrite()
	if n := <-got; n != int64(b.N)*chunk+int64(len(first)) {
		b.Fatalf("receiver got %d bytes, want %d", n, int64(b.N)*chunk+int64(len(first)))
	}
}
