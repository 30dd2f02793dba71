package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sockFile is a raw kernel socket that waits through Go's netpoller.
//
// The lab makes its own system calls on kernel sockets (connect without
// waiting, listen with an exact backlog, accept only when told), but it
// must never wait for them in a blocking poll(2): a thread blocked in a
// system call keeps its P until the runtime's monitor takes it back, which
// on a two-core machine delays the goroutines that carry packets across the
// wire by milliseconds and skews every timestamp of the experiment. Waiting
// in the netpoller costs no thread.
type sockFile struct {
	f    *os.File
	rc   syscall.RawConn
	ctx  context.Context
	stop func() bool // unregisters the cancellation hook
}

// errCanceled is what waits return once the experiment is cancelled.
var errCanceled = errors.New("experiment cancelled")

// newSockFile takes ownership of the non-blocking socket fd. When ctx is
// cancelled every wait on it returns errCanceled.
func newSockFile(ctx context.Context, fd int, name string) (*sockFile, error) {
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lab: %s socket: %w", name, err)
	}
	s := &sockFile{f: f, rc: rc, ctx: ctx}
	s.stop = context.AfterFunc(ctx, func() { f.SetDeadline(time.Unix(1, 0)) })
	return s, nil
}

// mapErr turns a deadline into errTimeout (or errCanceled) and unwraps
// *os.PathError, so callers see the errno.
func (s *sockFile) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		if s.ctx.Err() != nil {
			return errCanceled
		}
		return errTimeout
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// waitRead calls op until it stops returning EAGAIN, waiting for
// readability in between, for at most timeout.
func (s *sockFile) waitRead(timeout time.Duration, op func(fd int) error) error {
	s.f.SetReadDeadline(time.Now().Add(timeout))
	var opErr error
	err := s.rc.Read(func(fd uintptr) bool {
		opErr = op(int(fd))
		return opErr != unix.EAGAIN && opErr != unix.EINTR
	})
	if err != nil {
		return s.mapErr(err)
	}
	return opErr
}

// waitConnected waits for a non-blocking connect(2) to finish, for at most
// timeout, and returns its outcome (SO_ERROR).
func (s *sockFile) waitConnected(timeout time.Duration) error {
	s.f.SetWriteDeadline(time.Now().Add(timeout))
	var result error
	err := s.rc.Write(func(fd uintptr) bool {
		soErr, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		switch {
		case err != nil:
			result = err
			return true
		case soErr != 0:
			result = unix.Errno(soErr)
			return true
		}
		// No error yet: connected if it has a peer, else keep waiting.
		_, err = unix.Getpeername(int(fd))
		return err == nil
	})
	if err != nil {
		return s.mapErr(err)
	}
	return result
}

// read reads what is there, waiting at most timeout; io.EOF on FIN.
func (s *sockFile) read(p []byte, timeout time.Duration) (int, error) {
	s.f.SetReadDeadline(time.Now().Add(timeout))
	n, err := s.f.Read(p)
	if err == io.EOF {
		return 0, io.EOF
	}
	return n, s.mapErr(err)
}

// write writes p once (the sockets' buffers are far larger than the
// experiments' messages).
func (s *sockFile) write(p []byte) (int, error) {
	s.f.SetWriteDeadline(time.Now().Add(time.Second))
	n, err := s.f.Write(p)
	return n, s.mapErr(err)
}

// control runs fn on the descriptor.
func (s *sockFile) control(fn func(fd int)) {
	s.rc.Control(func(fd uintptr) { fn(int(fd)) })
}

func (s *sockFile) close() error {
	s.stop()
	return s.f.Close()
}
