package stack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

func TestDialClosedPortIsRefused(t *testing.T) {
	p := newPair(t, 0, 1)
	_, err := p.a.Dial(testContext(t, 30*time.Second), "tcp", "198.18.0.2:9")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Dial to a closed port: %v, want ECONNREFUSED", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" {
		t.Errorf("error %#v is not a dial *net.OpError", err)
	}
	if n := len(p.a.Conns()); n != 0 {
		t.Errorf("refused dial left %d connections listed", n)
	}
}

func TestDialContextCancelAbortsAttempt(t *testing.T) {
	p := newPair(t, 0, 1)
	p.pa.SetDrop(func([]byte) bool { return true }) // the SYN never arrives
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.a.Dial(ctx, "tcp", "198.18.0.2:80")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial: %v, want context.DeadlineExceeded", err)
	}
	if n := p.a.ConnCount(); n != 0 {
		t.Errorf("engine still tracks %d connections after the aborted dial", n)
	}
}

func TestReadDeadlineExceeded(t *testing.T) {
	p := newPair(t, 0, 1)
	c, _ := p.connect(t, 80)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	n, err := c.Read(make([]byte, 10))
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %d, %v; want 0, os.ErrDeadlineExceeded", n, err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read error %v: Timeout() is not true", err)
	}
	// Clearing the deadline makes the connection usable again.
	c.SetReadDeadline(time.Time{})
}

func TestDeadlineMovedWhileReadBlocked(t *testing.T) {
	p := newPair(t, 0, 1)
	c, _ := p.connect(t, 80)
	c.SetReadDeadline(time.Now().Add(time.Hour))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		errc <- err
	}()
	// Whether or not the Read is already blocked, moving the deadline into
	// the past must end it with a timeout.
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v, want os.ErrDeadlineExceeded", err)
	}
}

// A Read that blocked before any deadline was set waits on its wakeup
// alone (the deadlines are made by the first set); setting one then must
// still end it.
func TestFirstDeadlineEndsBlockedRead(t *testing.T) {
	p := newPair(t, 0, 1)
	c, _ := p.connect(t, 80)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		errc <- err
	}()
	for blocked := false; !blocked; runtime.Gosched() {
		c.s.mu.Lock()
		blocked = c.n.waiters > 0
		c.s.mu.Unlock()
	}
	if c.dl.Load() != nil {
		t.Fatal("the connection has deadlines before any was set")
	}
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v, want os.ErrDeadlineExceeded", err)
	}
}

func TestWriteDeadlineExceeded(t *testing.T) {
	p := newPair(t, 0, 1)
	c, _ := p.connect(t, 80)
	// Nobody reads on the other side: the windows and buffers fill, then
	// Write must time out rather than block. The buffer is made before
	// the deadline is set: zeroing 64 MiB (under the race detector, on a
	// loaded machine) took the whole 100 ms before Write began, and Write
	// then rightly queued nothing.
	buf := make([]byte, 64<<20)
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := c.Write(buf)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write = %d, %v; want os.ErrDeadlineExceeded", n, err)
	}
	if n == 0 || n >= 64<<20 {
		t.Errorf("Write queued %d bytes before timing out", n)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	p := newPair(t, 0, 1)
	c, _ := p.connect(t, 80)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		errc <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
}

func TestCloseWriteHalfClose(t *testing.T) {
	p := newPair(t, 0, 1)
	c, s := p.connect(t, 80)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s) // ends on io.EOF
	if err != nil || string(got) != "hello" {
		t.Fatalf("peer read %q, %v; want \"hello\", nil", got, err)
	}
	if n, err := s.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after FIN = %d, %v; want 0, io.EOF", n, err)
	}
	// The peer can still write back, and we can still read.
	if _, err := s.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	got, err = io.ReadAll(c)
	if err != nil || string(got) != "world" {
		t.Fatalf("read back %q, %v; want \"world\", nil", got, err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("Write after CloseWrite: %v, want EPIPE", err)
	}
}

func TestLingerZeroResetsPeer(t *testing.T) {
	p := newPair(t, 0, 1)
	c, s := p.connect(t, 80)
	if err := c.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Read(make([]byte, 10))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("peer Read: %v, want ECONNRESET", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Errorf("error %#v is not a read *net.OpError", err)
	}
}

func TestLingerCloseWaitsForAck(t *testing.T) {
	p := newPair(t, 0, 1)
	c, s := p.connect(t, 80)
	const size = 1 << 20
	data := bytes.Repeat([]byte("linger!!"), size/8)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(s)
		got <- b
	}()
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.SetLinger(30)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("peer got %d bytes, want %d", len(b), len(data))
	}
}

func TestLingerCloseGivesUpAtTimeout(t *testing.T) {
	p := newPair(t, 0, 1)
	c, _ := p.connect(t, 80)
	if _, err := c.Write([]byte("never acknowledged")); err != nil {
		t.Fatal(err)
	}
	p.pa.SetDrop(func([]byte) bool { return true })
	c.SetLinger(1)
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second || d > 10*time.Second {
		t.Fatalf("lingering Close returned after %v, want about 1s", d)
	}
}

func TestListenerCloseUnblocksAccept(t *testing.T) {
	p := newPair(t, 0, 1)
	ln, err := p.b.Listen("198.18.0.2:81", 8)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := ln.Addr().(*net.TCPAddr); !ok || a.Port != 81 {
		t.Errorf("Addr = %v", ln.Addr())
	}
	errc := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		errc <- err
	}()
	ln.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if _, err := p.b.Listen("198.18.0.9:81", 8); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Errorf("Listen on a foreign address: %v, want EADDRNOTAVAIL", err)
	}
}

func TestConnOptionsAndInfo(t *testing.T) {
	p := newPair(t, 0, 1)
	c, s := p.connect(t, 80)
	for name, err := range map[string]error{
		"SetNoDelay":         c.SetNoDelay(false),
		"SetKeepAlive":       c.SetKeepAlive(true),
		"SetKeepAlivePeriod": c.SetKeepAlivePeriod(30 * time.Second),
		"SetReadBuffer":      c.SetReadBuffer(256 << 10),
		"SetWriteBuffer":     c.SetWriteBuffer(256 << 10),
	} {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	in := c.Info()
	if in.Local.Addr() != addrA || in.Remote.Port() != 80 || in.State.String() != "ESTABLISHED" {
		t.Errorf("Info = %+v", in)
	}
	if c.LocalAddr().(*net.TCPAddr).Port != int(in.Local.Port()) {
		t.Errorf("LocalAddr %v does not match Info %v", c.LocalAddr(), in.Local)
	}
	if len(p.a.Conns()) != 1 || len(p.b.Conns()) != 1 {
		t.Errorf("Conns: a %d, b %d; want 1 each", len(p.a.Conns()), len(p.b.Conns()))
	}
}

func TestStackCloseUnblocksCalls(t *testing.T) {
	p := newPair(t, 0, 1)
	c, _ := p.connect(t, 80)
	ln, err := p.b.Listen(":82", 8)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 2)
	go func() {
		_, err := c.Read(make([]byte, 1))
		errc <- err
	}()
	go func() {
		_, err := ln.Accept()
		errc <- err
	}()
	p.a.Close()
	p.b.Close()
	for range 2 {
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked call after Stack.Close: %v, want net.ErrClosed", err)
		}
	}
	if _, err := p.a.Dial(context.Background(), "tcp", "198.18.0.2:80"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial after Close: %v, want net.ErrClosed", err)
	}
}

// WaitRead returns only once a Read would not block: after data (which
// it leaves for Read), after the peer's FIN (Read then sees EOF), and with
// Read's errors for a passed deadline or a closed connection.
func TestWaitRead(t *testing.T) {
	p := newPair(t, 0, 1)
	c, s := p.connect(t, 80)
	waited := make(chan error, 1)
	go func() { waited <- c.WaitRead() }()
	// Whether WaitRead is blocked yet or not, it may return only after
	// the data is in: a Read right after it must not block.
	if _, err := s.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("WaitRead with data arriving: %v", err)
	}
	if c.tc.Buffered() != 5 {
		t.Fatalf("after WaitRead %d bytes are buffered, want the 5 sent", c.tc.Buffered())
	}
	if err := c.WaitRead(); err != nil {
		t.Fatalf("WaitRead with data waiting: %v", err)
	}
	b := make([]byte, 10)
	if n, err := c.Read(b); n != 5 || err != nil || string(b[:n]) != "hello" {
		t.Fatalf("Read after WaitRead = %d %q, %v; want the 5 bytes sent", n, b[:n], err)
	}

	c.SetReadDeadline(time.Now().Add(-time.Second))
	if err := c.WaitRead(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("WaitRead past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	c.SetReadDeadline(time.Time{})

	go func() { waited <- c.WaitRead() }()
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("WaitRead with the peer's FIN arriving: %v", err)
	}
	if n, err := c.Read(b); n != 0 || err != io.EOF {
		t.Fatalf("Read after the FIN = %d, %v; want 0, EOF", n, err)
	}

	c.Close()
	if err := c.WaitRead(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WaitRead on a closed connection: %v, want net.ErrClosed", err)
	}
}
