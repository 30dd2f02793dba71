package relay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"tunstack/relay"
)

// socksServer answers every CONNECT with reply code rep (RFC 1928 §6),
// after the no-authentication method exchange (§3). It returns the
// socks5:// URL to reach it.
func socksServer(t *testing.T, rep byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	serveEach(ln, func(c net.Conn) {
		defer c.Close()
		// VER NMETHODS METHODS...
		hdr := make([]byte, 2)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		if _, err := io.ReadFull(c, make([]byte, hdr[1])); err != nil {
			return
		}
		c.Write([]byte{5, 0}) // no authentication
		// VER CMD RSV ATYP=1 DST.ADDR(4) DST.PORT(2)
		if _, err := io.ReadFull(c, make([]byte, 10)); err != nil {
			return
		}
		c.Write([]byte{5, rep, 0, 1, 0, 0, 0, 0, 0, 0})
	})
	return "socks5://" + ln.Addr().String()
}

// Each way an outbound connect fails is refused as RefusalFor says: the
// system's errors by errno, a SOCKS5 proxy's reply codes as x/net's client
// reports them.
func TestRefusalFor(t *testing.T) {
	for _, c := range []struct {
		err  error
		want relay.Refusal
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, relay.RefuseReset},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}, relay.RefuseHostUnreachable},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}, relay.RefuseNetUnreachable},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ETIMEDOUT)}, relay.RefuseHostUnreachable},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EACCES)}, relay.RefuseReset},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), relay.RefuseHostUnreachable},
		{fmt.Errorf("dial: %w", os.ErrDeadlineExceeded), relay.RefuseHostUnreachable},
		{context.Canceled, relay.RefuseReset},
		// Text that names a reply but is not the SOCKS5 client's report
		// of one is not taken for it.
		{errors.New("upstream said: host unreachable"), relay.RefuseReset},
	} {
		if got := relay.RefusalFor(c.err); got != c.want {
			t.Errorf("RefusalFor(%v) = %d, want %d", c.err, got, c.want)
		}
	}

	for rep, want := range map[byte]relay.Refusal{
		1: relay.RefuseReset,           // general SOCKS server failure
		2: relay.RefuseReset,           // connection not allowed by ruleset
		3: relay.RefuseNetUnreachable,  // network unreachable
		4: relay.RefuseHostUnreachable, // host unreachable
		5: relay.RefuseReset,           // connection refused
		6: relay.RefuseHostUnreachable, // TTL expired
		7: relay.RefuseReset,           // command not supported
		8: relay.RefuseReset,           // address type not supported
	} {
		dial, err := relay.NewDialer(relay.DialConfig{Upstream: socksServer(t, rep)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := dial(ctx, "tcp", "203.0.113.1:80")
		cancel()
		if err == nil {
			c.Close()
			t.Fatalf("SOCKS5 reply %d: the connect succeeded", rep)
		}
		if got := relay.RefusalFor(err); got != want {
			t.Errorf("SOCKS5 reply %d (%v): RefusalFor = %d, want %d", rep, err, got, want)
		}
	}
}
