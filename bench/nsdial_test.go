package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"tunstack/lab/netns"
	tcprelay "tunstack/relay"
)

// TestNSDialer: the relay benchmark's dialer connects from the namespace
// it was made for, though the dials run on threads outside it: to a
// listener on the namespace's own loopback (which no other namespace
// reaches), in both families; a closed port fails with ECONNREFUSED,
// which the relay turns into a reset; a dial whose context has ended
// fails at once. Root only.
func TestNSDialer(t *testing.T) {
	netns.RequireRoot(t)
	ns, err := netns.New("bench-nsdial")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var ln4, ln6 net.Listener
	if err := ns.Do(func() (err error) {
		if ln4, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
		ln6, err = net.Listen("tcp", "[::1]:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln4.Close()
	defer ln6.Close()
	d := newNSDialer(ns)
	defer d.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, ln := range []net.Listener{ln4, ln6} {
		go func() {
			for {
				s, err := ln.Accept()
				if err != nil {
					return
				}
				io.Copy(s, s)
				s.Close()
			}
		}()
		// More dials than the sockets made ahead: the maker tops them up.
		for i := range socketsAhead + 5 {
			c, err := d.dial(ctx, "tcp", ln.Addr().String())
			if err != nil {
				t.Fatalf("dial %d to %v in the namespace: %v", i, ln.Addr(), err)
			}
			if c.RemoteAddr().String() != ln.Addr().String() {
				t.Fatalf("connected to %v, want %v", c.RemoteAddr(), ln.Addr())
			}
			if _, err := c.Write([]byte("hi")); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 2)
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "hi" {
				t.Fatalf("echo %q, %v", got, err)
			}
			c.Close()
		}
	}
	closed := ln4.Addr().(*net.TCPAddr).AddrPort()
	ln4.Close()
	_, err = d.dial(ctx, "tcp", closed.String())
	if !errors.Is(err, syscall.ECONNREFUSED) || tcprelay.RefusalFor(err) != tcprelay.RefuseReset {
		t.Fatalf("dial to a closed port: %v, want ECONNREFUSED (a reset)", err)
	}
	done, stop := context.WithCancel(context.Background())
	stop()
	start := time.Now()
	if _, err := d.dial(done, "tcp", ln6.Addr().String()); err == nil {
		t.Fatal("a dial with its context ended succeeded")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("a dial with its context ended took %v", el)
	}
}
