package tcpcore

import (
	"errors"
	"syscall"
)

// Errors returned by the engine's application calls are the errnos a Linux
// socket would return, so that callers can test them with errors.Is exactly
// as with the net package.
var (
	ErrWouldBlock   error = syscall.EAGAIN       // nothing to read, no room to write, nothing to accept
	ErrConnRefused  error = syscall.ECONNREFUSED // RST in answer to our SYN
	ErrConnReset    error = syscall.ECONNRESET   // RST on a synchronized connection
	ErrTimedOut     error = syscall.ETIMEDOUT    // retransmissions or keepalive probes gave up
	ErrPipe         error = syscall.EPIPE        // write after our side was shut down
	ErrNotConnected error = syscall.ENOTCONN     // call needs a connection that is not there
	ErrAddrInUse    error = syscall.EADDRINUSE   // local address and port taken
	ErrAddrNotAvail error = syscall.EADDRNOTAVAIL
	ErrInvalid      error = syscall.EINVAL
	ErrNoCongestion error = syscall.ENOENT // TCP_CONGESTION names no controller the engine has
	// ErrClosed is returned by calls on a Conn or Listener the application
	// already closed.
	ErrClosed = errors.New("tcpcore: use of closed endpoint")
	// ErrLent is returned by Write and Lend while the send buffer's free
	// space is lent (Lend), until Commit.
	ErrLent = errors.New("tcpcore: send buffer lent: Commit first")
)
