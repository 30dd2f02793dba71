package stack

import (
	"errors"
	"io"
	"syscall"
	"testing"
	"time"
)

// awaitFired waits for one start of an OnReadable function.
func awaitFired(t *testing.T, fired chan struct{}, what string) {
	t.Helper()
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatalf("OnReadable's function not started after %s", what)
	}
}

// An armed connection starts its OnReadable function when data, the
// peer's FIN, a reset or its own Close makes it readable; one that is
// readable already is not armed and says so.
func TestArmRead(t *testing.T) {
	p := newPair(t, 0, 11)
	c, s := p.connect(t, 7001)
	fired := make(chan struct{}, 4)
	s.OnReadable(func() {
		// It runs outside the stack's lock: the Conn's methods work.
		_ = s.LocalAddr()
		s.ArmRead()
		fired <- struct{}{}
	})
	if s.ArmRead() {
		t.Fatal("ArmRead reports a connection readable before anything arrived")
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	awaitFired(t, fired, "data arrived")
	if !s.ArmRead() {
		t.Fatal("ArmRead armed a connection with unread data")
	}
	if n, err := s.Read(make([]byte, 8)); n != 4 || err != nil {
		t.Fatalf("Read = %d, %v; want the 4 bytes sent", n, err)
	}
	if s.ArmRead() {
		t.Fatal("ArmRead reports a drained connection readable")
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	awaitFired(t, fired, "the peer's FIN")
	if _, err := s.Read(make([]byte, 8)); err != io.EOF {
		t.Fatalf("Read after the peer's FIN = %v, want EOF", err)
	}
	if !s.ArmRead() {
		t.Fatal("ArmRead armed a connection whose FIN arrived")
	}

	// A reset from the peer.
	c2, s2 := p.connect(t, 7002)
	s2.OnReadable(func() { fired <- struct{}{} })
	if s2.ArmRead() {
		t.Fatal("ArmRead reports a new connection readable")
	}
	c2.SetLinger(0)
	c2.Close()
	awaitFired(t, fired, "the peer's reset")
	if _, err := s2.Read(make([]byte, 8)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after the peer's reset = %v, want ECONNRESET", err)
	}

	// The connection's own Close, and the stack's.
	_, s3 := p.connect(t, 7003)
	s3.OnReadable(func() { fired <- struct{}{} })
	if s3.ArmRead() {
		t.Fatal("ArmRead reports a new connection readable")
	}
	s3.Close()
	awaitFired(t, fired, "Close")
	if !s3.ArmRead() {
		t.Fatal("ArmRead armed a closed connection")
	}
	_, s4 := p.connect(t, 7004)
	s4.OnReadable(func() { fired <- struct{}{} })
	if s4.ArmRead() {
		t.Fatal("ArmRead reports a new connection readable")
	}
	p.b.Close()
	awaitFired(t, fired, "the stack's Close")
}

// Without an OnReadable function ArmRead never arms: it reports true, so
// that the caller reads (and blocks) as without it.
func TestArmReadWithoutFunction(t *testing.T) {
	p := newPair(t, 0, 12)
	_, s := p.connect(t, 7005)
	if !s.ArmRead() {
		t.Fatal("ArmRead armed a connection that has no OnReadable function")
	}
}
