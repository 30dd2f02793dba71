package bench

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runIdle opens Options.IdleConns connections from the kernel peer to the
// stack, leaves them idle and measures what they cost.
//
// The peer's sockets are parked (fdPark): open, with no descriptor and no
// Go object, so on the user-space stacks the process's growth is the
// stack's alone: the live Go heap (after GC) and the resident set (after
// GC and returning free memory to the OS). On linux both ends are kernel
// sockets, the accepted ones parked too: the figure is half the growth of
// the slab caches a socket lives in (socketSlabs), per connection; slab
// memory is machine-wide, so other work shows in it.
//
// A client port serves one connection to a given server port, and the
// peer has about 64,000 of them (newEnv widens its range), so the stack
// listens on one port per idleConnsPerPort connections and the peer
// spreads its connections over them: Linux's connect(2) gives a port
// already in use toward another destination again (__inet_hash_connect
// checks that the 4-tuple is unique).
func runIdle(r *runCtx) (Sample, error) {
	n := r.o.IdleConns
	ports := (n + idleConnsPerPort - 1) / idleConnsPerPort
	park, err := newFDPark()
	if err != nil {
		return Sample{}, err
	}
	var (
		mu       sync.Mutex
		accepted = make([]net.Conn, 0, n)
		count    atomic.Int64
		wg       sync.WaitGroup
		lns      []net.Listener
		parkErr  atomic.Value
	)
	defer func() {
		park.close()
		for _, ln := range lns {
			ln.Close()
		}
		waitTimeout(&wg, 10*time.Second)
		mu.Lock()
		for _, c := range accepted {
			c.Close()
		}
		mu.Unlock()
	}()
	// linux's accepted sockets are kernel sockets: parked like the peer's.
	// The other stacks' are the memory measured, and stay referenced.
	parkAccepted := r.env.stack == "linux"
	for p := range ports {
		ln, err := r.env.server.Listen(r.env.family.serverAddrPort(idlePort+p), 4096)
		if err != nil {
			return Sample{}, fmt.Errorf("listen: %w", err)
		}
		lns = append(lns, ln)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				if parkAccepted {
					if err := parkConn(park, c); err != nil {
						parkErr.CompareAndSwap(nil, err)
					}
					c.Close()
				} else {
					mu.Lock()
					accepted = append(accepted, c)
					mu.Unlock()
				}
				count.Add(1)
			}
		}()
	}

	before := readMem()
	slab0, haveSlab := readSlabBytes(slabsFor(r.env.family))
	sock0 := r.serverSockstat()
	w := r.begin()
	t0 := time.Now()
	err = r.env.peerDo(func() error {
		for i := range n {
			fd, err := connectBlocking(r.env.family, idlePort+i%ports)
			if err != nil {
				return fmt.Errorf("connection %d: %w", i+1, err)
			}
			if err := park.park(fd); err != nil {
				return err
			}
			if r.ctx.Err() != nil {
				return r.ctx.Err()
			}
		}
		return park.flush()
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
	if err := park.flush(); err != nil {
		return Sample{}, err
	}
	if err, ok := parkErr.Load().(error); ok {
		return Sample{}, err
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

// idleConnsPerPort is how many of idle's connections go to one server
// port: well within the peer's 64,512 client ports, so that connect finds
// a free one at once.
const idleConnsPerPort = 25000

// parkConn parks the kernel socket under a net.Conn of the net package;
// the caller still closes c, which closes only its own descriptor.
func parkConn(p *fdPark, c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return fmt.Errorf("fd park: %T has no descriptor", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	if err := raw.Control(func(fd uintptr) { perr = p.parkDup(int(fd)) }); err != nil {
		return err
	}
	return perr
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
