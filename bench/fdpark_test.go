package bench

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// A parked socket stays open after the caller closed its descriptor, and
// closes with the park: the peer of each parked end sees no hang-up until
// then, and a hang-up after. 300 sockets cross a batch boundary, so both
// queued messages and the unsent rest are covered.
func TestParkedSocketsLiveUntilTheParkCloses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: the park lifts its socket buffers past the system's limits with SO_SNDBUFFORCE and SO_RCVBUFFORCE, which need root (CAP_NET_ADMIN), as bench itself does; run as root")
	}
	p, err := newFDPark()
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	var peers []int
	defer func() {
		for _, fd := range peers {
			unix.Close(fd)
		}
	}()
	for range n {
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, pair[1])
		if err := p.park(pair[0]); err != nil {
			t.Fatal(err)
		}
	}
	hungUp := func() int {
		k := 0
		for _, fd := range peers {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			// poll is never restarted after a signal (the runtime's
			// preemption): ask again.
			_, err := unix.Poll(pfd, 0)
			for err == unix.EINTR {
				_, err = unix.Poll(pfd, 0)
			}
			if err != nil {
				t.Fatal(err)
			}
			if pfd[0].Revents&(unix.POLLHUP|unix.POLLIN) != 0 {
				k++
			}
		}
		return k
	}
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	if k := hungUp(); k != 0 {
		t.Fatalf("%d of %d parked sockets closed while parked", k, n)
	}
	p.close()
	// The files are released as the closing thread returns to user space
	// (fput's task work): by the time close returns.
	if k := hungUp(); k != n {
		t.Fatalf("%d of %d parked sockets closed with the park, want all", k, n)
	}
}
