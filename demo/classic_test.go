package demo

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"testing"
	"time"
)

// startService runs serve on a kernel listener; at cleanup it closes the
// listener and checks that serve returns nil.
func startService(t *testing.T, serve func(net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(ln) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v after its listener closed, want nil", err)
		}
	})
	return ln.Addr().String()
}

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func TestEchoSendsBackEveryByteThenCloses(t *testing.T) {
	c := dialTCP(t, startService(t, ServeEcho))
	sent := make([]byte, 1<<20)
	rng := rand.New(rand.NewChaCha8([32]byte{2}))
	for i := range sent {
		sent[i] = byte(rng.Uint32())
	}
	writeErr := make(chan error, 1)
	go func() {
		_, err := c.Write(sent)
		if err == nil {
			err = c.CloseWrite()
		}
		writeErr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sent) {
		t.Fatalf("echo returned %d bytes that differ from the %d sent", len(got), len(sent))
	}
}

func TestDiscardReadsEverythingAndSendsNothing(t *testing.T) {
	c := dialTCP(t, startService(t, ServeDiscard))
	if _, err := c.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || len(got) != 0 {
		t.Fatalf("discard answered %d bytes (%v), want a clean close with none", len(got), err)
	}
}

func TestChargenSendsRFC864Lines(t *testing.T) {
	c := dialTCP(t, startService(t, ServeChargen))
	br := bufio.NewReader(c)
	const line0 = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefg\r\n"
	const line1 = "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh\r\n"
	// Line 24 reaches the ring's end: characters 24..94 then 0.
	const line24 = "8" + "9:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~ \r\n"
	var lines []string
	for range 2*95 + 1 {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	if lines[0] != line0 || lines[1] != line1 || lines[24] != line24 {
		t.Fatalf("lines 0, 1, 24:\n%q\n%q\n%q", lines[0], lines[1], lines[24])
	}
	for i, l := range lines {
		if len(l) != 74 {
			t.Fatalf("line %d has %d bytes, want 72 + CR LF", i, len(l))
		}
		if l != lines[i%95] {
			t.Fatalf("line %d differs from line %d: the pattern's period is 95 lines", i, i%95)
		}
	}
}

func TestChargenIgnoresWhatItReceives(t *testing.T) {
	c := dialTCP(t, startService(t, ServeChargen))
	if _, err := c.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || len(l) != 74 {
		t.Fatalf("first line after sending 1 MiB: %q, %v", l, err)
	}
}

func TestServeClosesOpenConnectionsWhenListenerCloses(t *testing.T) {
	for name, serve := range map[string]func(net.Listener) error{"echo": ServeEcho, "discard": ServeDiscard, "chargen": ServeChargen} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- serve(ln) }()
			c := dialTCP(t, ln.Addr().String())
			// A byte from echo or chargen proves the server holds the connection.
			switch name {
			case "echo":
				if _, err := c.Write([]byte{'x'}); err != nil {
					t.Fatal(err)
				}
				fallthrough
			case "chargen":
				if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
					t.Fatal(err)
				}
			}
			ln.Close()
			if err := <-done; err != nil {
				t.Fatalf("serve returned %v, want nil", err)
			}
			// Whatever chargen sent before is drained; then the close shows.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = io.Copy(io.Discard, c)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("after serve returned, the client read %v, want EOF or reset", err)
			}
		})
	}
}

func TestServeReturnsOtherAcceptErrors(t *testing.T) {
	want := errors.New("link gone")
	if err := ServeEcho(failingListener{want}); !errors.Is(err, want) {
		t.Fatalf("ServeEcho = %v, want %v", err, want)
	}
}

type failingListener struct{ err error }

func (l failingListener) Accept() (net.Conn, error) { return nil, l.err }
func (l failingListener) Close() error              { return nil }
func (l failingListener) Addr() net.Addr            { return &net.TCPAddr{} }
