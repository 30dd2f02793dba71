package bench

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// runIdle opens Options.IdleConns connections from the kernel peer to the
// stack, leaves them idle and measures what they cost. If the process may
// not hold enough descriptors (linux needs two per connection and the hard
// RLIMIT_NOFILE cannot always be raised), it opens as many as fit and says
// so in the conns metric.
//
// The peer's sockets are bare descriptors (no Go objects), so on the
// user-space stacks the process's growth is the stack's alone: the live Go
// heap (after GC) and the resident set (after GC and returning free memory
// to the OS). On linux both ends are kernel sockets: the figure is half the
// growth of the slab caches a socket lives in (socketSlabs), per
// connection; slab memory is machine-wide, so other work shows in it.
func runIdle(r *runCtx) (Sample, error) {
	n := r.o.IdleConns
	// Descriptors: one per connection for the peer, one more for linux's
	// accepted sockets, and room for everything else.
	perConn := 1
	if r.env.stack == "linux" {
		perConn = 2
	}
	const spare = 512
	limit, err := fileLimitFor(uint64(perConn*n + spare))
	if err != nil {
		return Sample{}, fmt.Errorf("file limit: %w", err)
	}
	if fit := (int(limit) - spare) / perConn; fit < n {
		// The figure is per connection; fewer connections change it little,
		// and the conns metric says how many there were.
		n = fit
	}
	if n < 1 {
		return Sample{}, fmt.Errorf("the file limit (%d) leaves no room for connections", limit)
	}
	ln, err := r.env.server.Listen(r.env.family.serverAddrPort(idlePort), 4096)
	if err != nil {
		return Sample{}, fmt.Errorf("listen: %w", err)
	}
	var (
		mu       sync.Mutex
		accepted = make([]net.Conn, 0, n)
		count    atomic.Int64
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
			count.Add(1)
		}
	}()
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
		ln.Close()
		waitTimeout(&wg, 10*time.Second)
		mu.Lock()
		for _, c := range accepted {
			c.Close()
		}
		mu.Unlock()
	}()
	fds = make([]int, 0, n)

	before := readMem()
	slab0, haveSlab := readSlabBytes(slabsFor(r.env.family))
	sock0 := r.serverSockstat()
	w := r.begin()
	t0 := time.Now()
	err = r.env.peerDo(func() error {
		for i := range n {
			fd, err := connectBlocking(r.env.family, idlePort)
			if err != nil {
				return fmt.Errorf("connection %d: %w", i+1, err)
			}
			fds = append(fds, fd)
			if r.ctx.Err() != nil {
				return r.ctx.Err()
			}
		}
		return nil
	})
	if err != nil {
		return Sample{}, err
	}
	for count.Load() < int64(n) {
		if r.ctx.Err() != nil {
			return Sample{}, fmt.Errorf("only %d of %d connections were accepted", count.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	openSecs := time.Since(t0).Seconds()
	// Let the last ACKs land and any per-connection timers settle.
	if err := r.sleep(500 * time.Millisecond); err != nil {
		return Sample{}, err
	}
	after := readMem()
	slab1, _ := readSlabBytes(slabsFor(r.env.family))
	sock1 := r.serverSockstat()
	we := r.end(w)

	per := func(a, b uint64, div int) float64 { return (float64(a) - float64(b)) / float64(div) }
	m := map[string]float64{
		"conns":           float64(n),
		"open_s":          openSecs,
		"heap_b_per_conn": per(after.heapBytes, before.heapBytes, n),
		"rss_b_per_conn":  per(after.rssBytes, before.rssBytes, n),
		"cpu_user_s":      we.cpu.user.Seconds(),
		"cpu_sys_s":       we.cpu.sys.Seconds(),
		"retrans":         float64(we.retrans),
	}
	if haveSlab {
		// Both ends' sockets on linux; on the user-space stacks only the
		// peer's, which is reported for reference.
		m["slab_b_per_socket"] = per(slab1, slab0, 2*n)
		if r.env.stack != "linux" {
			m["slab_b_per_socket"] = per(slab1, slab0, n)
		}
	}
	m["sockstat_mem_pages"] = float64(sock1) - float64(sock0)
	value := m["rss_b_per_conn"] / 1024
	if r.env.stack == "linux" {
		if !haveSlab {
			return Sample{}, &SkipError{"/proc/slabinfo cannot be read here, and linux's per-socket memory comes from it"}
		}
		value = m["slab_b_per_socket"] / 1024
	}
	return Sample{Value: value, Metrics: m}, nil
}

// serverSockstat reads the TCP "mem" pages of sockstat from the server's
// namespace (linux) or the peer's (the others). The counter is kept for the
// whole machine by the kernel; it is socket buffer memory.
func (r *runCtx) serverSockstat() uint64 {
	ns := r.env.peer
	if r.env.serverNS != nil {
		ns = r.env.serverNS
	}
	var v uint64
	ns.Do(func() error { v = readSockstatMemPages(); return nil })
	return v
}

// connectBlocking opens a kernel TCP socket in the calling thread's
// namespace and connects it to the stack under test, blocking the thread.
func connectBlocking(fam family, port int) (int, error) {
	fd, err := unix.Socket(fam.domain(), unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := setCongestion(uintptr(fd)); err != nil {
		unix.Close(fd)
		return -1, err
	}
	// A blocking connect gives up after SO_SNDTIMEO.
	tv := unix.Timeval{Sec: 10}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	err = unix.Connect(fd, fam.sockaddr(port))
	if err == unix.EINTR {
		// A signal (the Go runtime's preemption) interrupted the wait; the
		// handshake goes on in the kernel, and a socket with a send timeout
		// does not restart connect: wait for it here.
		err = waitConnected(fd, 10*time.Second)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// waitConnected waits until the connect in progress on fd completes or
// fails, at most d.
func waitConnected(fd int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return unix.ETIMEDOUT
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			continue // the deadline check above ends it
		}
		soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return err
		}
		if soErr != 0 {
			return unix.Errno(soErr)
		}
		return nil
	}
}
