package relay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"tunstack/relay"
)

// socksServer answers every CONNECT with reply code rep (RFC 1928 §6).
// It returns the socks5:// URL to reach it.
func socksServer(t *testing.T, rep byte) string {
	t.Helper()
	return socksProxy(t, func(c *net.TCPConn, _ netip.AddrPort) {
		c.Write([]byte{5, rep, 0, 1, 0, 0, 0, 0, 0, 0})
		c.Close()
	})
}

// socksProxy is the server side of a SOCKS5 proxy up to its reply: the
// no-authentication method exchange (RFC 1928 §3) and a CONNECT to an
// IPv4 address (§4), which connect answers (and then owns c). It returns
// the socks5:// URL to reach it.
func socksProxy(t *testing.T, connect func(c *net.TCPConn, dst netip.AddrPort)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	serveEach(ln, func(conn net.Conn) {
		c := conn.(*net.TCPConn)
		// VER NMETHODS METHODS...
		hdr := make([]byte, 2)
		if _, err := io.ReadFull(c, hdr); err != nil {
			c.Close()
			return
		}
		if _, err := io.ReadFull(c, make([]byte, hdr[1])); err != nil {
			c.Close()
			return
		}
		c.Write([]byte{5, 0}) // no authentication
		// VER CMD RSV ATYP=1 DST.ADDR(4) DST.PORT(2)
		req := make([]byte, 10)
		if _, err := io.ReadFull(c, req); err != nil || req[1] != 1 || req[3] != 1 {
			c.Close()
			return
		}
		connect(c, netip.AddrPortFrom(netip.AddrFrom4([4]byte(req[4:8])), uint16(req[8])<<8|uint16(req[9])))
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

// socksForwarder is a SOCKS5 proxy (RFC 1928, no authentication, CONNECT
// to an IPv4 address) that connects to resolve(DST.ADDR:DST.PORT) and
// splices the two connections as a proxy that keeps TCP's semantics does:
// a FIN from either side is passed on as a half-close, a reset as a reset
// (SO_LINGER 0). It returns the socks5:// URL to reach it.
func socksForwarder(t *testing.T, resolve func(address string) (string, bool)) string {
	t.Helper()
	return socksProxy(t, func(client *net.TCPConn, dst netip.AddrPort) {
		to, ok := resolve(dst.String())
		var server *net.TCPConn
		if ok {
			if sc, err := net.Dial("tcp", to); err == nil {
				server = sc.(*net.TCPConn)
			}
		}
		if server == nil {
			client.Write([]byte{5, 4, 0, 1, 0, 0, 0, 0, 0, 0}) // host unreachable
			client.Close()
			return
		}
		client.Write([]byte{5, 0, 0, 1, 127, 0, 0, 1, 0, 0})
		done := make(chan struct{})
		pass := func(dst, src *net.TCPConn) {
			defer func() { done <- struct{}{} }()
			if _, err := io.Copy(dst, src); err != nil {
				dst.SetLinger(0) // a reset (or a failed write) passes on as one
				dst.Close()
				src.SetLinger(0)
				src.Close()
				return
			}
			dst.CloseWrite()
		}
		go pass(server, client)
		go pass(client, server)
		<-done
		<-done
		client.Close()
		server.Close()
	})
}
