package stack

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"

	"tunstack/tcpcore"
)

// Errors reach the application the way the net package shapes them, so
// code written against *net.TCPConn needs no change (guide: Contracts,
// Errors):
//
//   - io.EOF bare, after the peer's FIN;
//   - net.ErrClosed inside a *net.OpError after Close;
//   - os.ErrDeadlineExceeded inside a *net.OpError (Timeout() is true);
//   - an errno (ECONNRESET, ECONNREFUSED, ETIMEDOUT, EPIPE, ...) inside an
//     *os.SyscallError inside a *net.OpError, so errors.Is finds it.
func (c *Conn) opError(op string, err error) error {
	return newOpError(op, tcpAddr(c.tc.LocalAddr()), tcpAddr(c.tc.RemoteAddr()), err)
}

func newOpError(op string, src, dst *net.TCPAddr, err error) error {
	oe := &net.OpError{Op: op, Net: "tcp", Err: engineError(op, err)}
	// A nil *net.TCPAddr in the interface would print "<nil>" and compare
	// non-nil; leave the fields nil instead.
	if src != nil {
		oe.Source = src
	}
	if dst != nil {
		oe.Addr = dst
	}
	return oe
}

// engineError translates an error of tcpcore or of the waits into what the
// net package would put inside its OpError.
func engineError(op string, err error) error {
	var errno syscall.Errno
	switch {
	case errors.Is(err, tcpcore.ErrClosed):
		return net.ErrClosed
	case errors.As(err, &errno):
		return os.NewSyscallError(op, errno)
	}
	return err
}

// ioError is the error of a Read or Write: io.EOF stays bare, as io.Reader
// callers compare it with ==.
func (c *Conn) ioError(op string, err error) error {
	if err == io.EOF {
		return io.EOF
	}
	return c.opError(op, err)
}

func tcpAddr(ap netip.AddrPort) *net.TCPAddr {
	if !ap.IsValid() {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}
