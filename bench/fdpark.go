package bench

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// fdPark keeps sockets open without holding their descriptors. A process
// may hold no more descriptors than RLIMIT_NOFILE, whose hard limit only
// CAP_SYS_RESOURCE raises (a container's root often lacks it), and idle
// needs one or two per connection for 100,000 connections. A descriptor
// sent with SCM_RIGHTS over a UNIX socket and not yet received keeps its
// open file (and so the socket) alive in the receiving socket's queue
// (unix(7)), and the sender may close its own copy: the socket lives on
// without a descriptor in any process, in the same kernel objects as
// before (its sock, inode, file and dentry, which idle's slab figure
// counts). Closing the park closes the pair and with it every parked
// socket.
//
// The kernel bounds the descriptors in flight per user by RLIMIT_NOFILE
// too, but not for a process with CAP_SYS_ADMIN (unix(7), ETOOMANYREFS),
// which creating network namespaces needs anyway.
type fdPark struct {
	mu    sync.Mutex
	pair  [2]int // [0] sends, [1] holds the queue
	batch []int  // descriptors owned by the park, not yet sent
	n     int    // sockets parked, batch included
}

// parkBatch is how many descriptors one message carries: the kernel
// takes at most SCM_MAX_FD (253) in one.
const parkBatch = 250

func newFDPark() (*fdPark, error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("fd park: socketpair: %w", err)
	}
	p := &fdPark{pair: [2]int{pair[0], pair[1]}}
	// Every message waits in the queue, which the socket buffers bound:
	// lift them (root may exceed net.core.wmem_max and rmem_max with the
	// FORCE options).
	if err := unix.SetsockoptInt(pair[0], unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 1<<30); err != nil {
		p.close()
		return nil, fmt.Errorf("fd park: SO_SNDBUFFORCE: %w", err)
	}
	if err := unix.SetsockoptInt(pair[1], unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<30); err != nil {
		p.close()
		return nil, fmt.Errorf("fd park: SO_RCVBUFFORCE: %w", err)
	}
	return p, nil
}

// park takes ownership of fd: the park closes it once it is queued (or
// at close). The socket stays open until the park closes.
func (p *fdPark) park(fd int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.batch = append(p.batch, fd)
	p.n++
	if len(p.batch) < parkBatch {
		return nil
	}
	return p.flushLocked()
}

// parkDup parks a duplicate of fd, which stays the caller's.
func (p *fdPark) parkDup(fd int) error {
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fd park: dup: %w", err)
	}
	return p.park(d)
}

// flush queues the descriptors not yet sent.
func (p *fdPark) flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flushLocked()
}

func (p *fdPark) flushLocked() error {
	if len(p.batch) == 0 {
		return nil
	}
	err := unix.Sendmsg(p.pair[0], []byte{0}, unix.UnixRights(p.batch...), nil, unix.MSG_DONTWAIT)
	if err != nil {
		return fmt.Errorf("fd park: sending %d descriptors (%d parked): %w", len(p.batch), p.n, err)
	}
	for _, fd := range p.batch {
		unix.Close(fd)
	}
	p.batch = p.batch[:0]
	return nil
}

// close closes every parked socket.
func (p *fdPark) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, fd := range p.batch {
		unix.Close(fd)
	}
	p.batch = nil
	unix.Close(p.pair[0])
	unix.Close(p.pair[1])
}
