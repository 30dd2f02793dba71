package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"tunstack/lab/netns"
)

// client is one kernel TCP client in the clients' namespace. It uses raw
// non-blocking sockets rather than Go's net.Dialer so that several
// connect() calls leave back to back (their SYNs share one instant), and
// so that the time connect() completes is observed directly.
type client struct {
	n    int
	fd   int // owned by s once wrapped
	s    *sockFile
	port uint16
	rec  *ClientRecord
}

// openClients creates n sockets inside ns; they stay in it whatever thread
// uses them afterwards.
func openClients(ctx context.Context, ns *netns.NS, domain, first, n int) ([]*client, error) {
	cs := make([]*client, 0, n)
	err := ns.Do(func() error {
		for i := range n {
			fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("client socket: %w", err)
			}
			cs = append(cs, &client{n: first + i, fd: fd})
		}
		return nil
	})
	if err == nil {
		for _, c := range cs {
			if c.s, err = newSockFile(ctx, c.fd, clientName(c.n)); err != nil {
				break
			}
		}
	}
	if err != nil {
		for _, c := range cs {
			if c.s != nil {
				c.s.close()
			} else {
				unix.Close(c.fd)
			}
		}
		return nil, err
	}
	return cs, nil
}

// startConnect calls connect(2) without waiting: the SYN leaves, and the
// socket's local port is known from then on.
func (c *client) startConnect(tl *timeline, to netip.AddrPort) error {
	var err error
	c.s.control(func(fd int) {
		err = unix.Connect(fd, sockaddrOf(to))
	})
	at := tl.now()
	if err != nil && err != unix.EINPROGRESS {
		c.rec.ConnectErr = err
		tl.addAt(at, clientName(c.n), "connect() failed at once: %v", err)
		return err
	}
	c.s.control(func(fd int) {
		if sa, err := unix.Getsockname(fd); err == nil {
			c.port = sockaddrPort(sa)
		}
	})
	c.rec.Port = c.port
	c.rec.ConnectCalled = at
	tl.addAt(at, clientName(c.n), "connect() to %v from port %d", to, c.port)
	return nil
}

// waitConnect waits until connect(2) completes or timeout passes, and
// records when and how it returned.
func (c *client) waitConnect(tl *timeline, timeout time.Duration) error {
	if c.rec.ConnectErr != nil {
		return c.rec.ConnectErr
	}
	err := c.s.waitConnected(timeout)
	at := tl.now()
	if err == errTimeout || err == errCanceled {
		c.rec.ConnectPending = true
		tl.addAt(at, clientName(c.n), "connect() still blocked after %s", secs(at-c.rec.ConnectCalled))
		return err
	}
	c.rec.ConnectDone = at
	if err != nil {
		c.rec.ConnectErr = err
		tl.addAt(at, clientName(c.n), "connect() = %v after %s", err, secs(at-c.rec.ConnectCalled))
		return err
	}
	c.rec.Connected = true
	tl.addAt(at, clientName(c.n), "connect() = 0 after %s", secs(at-c.rec.ConnectCalled))
	return nil
}

// write sends p and records what write(2) returned.
func (c *client) write(tl *timeline, p []byte) error {
	n, err := c.s.write(p)
	at := tl.now()
	c.rec.WriteAt = at
	if err != nil {
		c.rec.WriteErr = err
		tl.addAt(at, clientName(c.n), "write(%q) = %v", p, err)
		return err
	}
	tl.addAt(at, clientName(c.n), "write(%q) = %d", p, n)
	return nil
}

// read waits up to timeout for what the server does next: data, EOF (its
// close) or an error (its RST).
func (c *client) read(tl *timeline, timeout time.Duration) {
	buf := make([]byte, 512)
	n, err := c.s.read(buf, timeout)
	at := tl.now()
	c.rec.ReadAt = at
	switch {
	case err == errTimeout || err == errCanceled:
		c.rec.ReadErr = err
		tl.addAt(at, clientName(c.n), "read() still blocked after %s", secs(timeout))
	case err == io.EOF:
		c.rec.ReadErr = io.EOF
		tl.addAt(at, clientName(c.n), "read() = 0 (EOF)")
	case err != nil:
		c.rec.ReadErr = err
		tl.addAt(at, clientName(c.n), "read() = %v", describeErrno(err))
	default:
		c.rec.ReadN = n
		tl.addAt(at, clientName(c.n), "read() = %d", n)
	}
}

func (c *client) close() { c.s.close() }

// describeErrno names an errno the way C programmers know it.
func describeErrno(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		if name := unix.ErrnoName(e); name != "" {
			return fmt.Sprintf("%s (%v)", name, err)
		}
	}
	return err.Error()
}
