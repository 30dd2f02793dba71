package relay_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"tunstack/relay"
)

// BenchmarkRelayCRR is one connect, 1-byte request, 1-byte response and
// close through the relay in process (a client stack, the relay's stack,
// a loopback server), one connection at a time: the relay's and its
// stack's share of a relayed connection's cost, without namespaces.
func BenchmarkRelayCRR(b *testing.B) {
	e := newEnv(b, relay.Config{})
	ln := e.server(b, "203.0.113.30:80")
	serveEach(ln, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 1)
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		c.Write(buf)
		io.Copy(io.Discard, c)
	})
	buf := []byte{'q'}
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := e.client.Dial(ctx, "tcp", "203.0.113.30:80")
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
