package netif

import (
	"testing"

	"golang.org/x/sys/unix"
)

// seqpacketTUN is a TUN without offload over one end of a SOCK_SEQPACKET
// socket pair, which keeps datagram boundaries as a TUN keeps packets;
// the test writes packets into the other end.
func seqpacketTUN(t *testing.T) (*TUN, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	tun := newTUN(fds[0], "seqpacket", 1500, false, false)
	if tun.raw, err = tun.file.SyscallConn(); err != nil {
		t.Fatalf("raw conn: %v", err)
	}
	t.Cleanup(func() {
		tun.file.Close()
		unix.Close(fds[1])
	})
	return tun, fds[1]
}

func sendPackets(t *testing.T, fd int, ids ...byte) {
	t.Helper()
	for _, id := range ids {
		if _, err := unix.Write(fd, []byte{id, 0, 0, 0}); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
}

// A read that finds packets queued reads them all; a read that had to
// wait returns with the packet that woke it, and the next read takes what
// came with it without waiting.
func TestTUNReadThatWaitedReturnsWithTheFirstPacket(t *testing.T) {
	reads := map[string]func(tun *TUN) ([]byte, int, error){
		"ReadPackets": func(tun *TUN) ([]byte, int, error) {
			bufs, sizes := make([][]byte, 8), make([]int, 8)
			for i := range bufs {
				bufs[i] = make([]byte, 1500)
			}
			n, err := tun.ReadPackets(bufs, sizes)
			var ids []byte
			for i := range n {
				ids = append(ids, bufs[i][0])
			}
			return ids, n, err
		},
		"ReadDescs": func(tun *TUN) ([]byte, int, error) {
			arena, pkts, descs := make([]byte, 8*1500), make([][]byte, 8), make([]Desc, 8)
			n, err := tun.ReadDescs(arena, pkts, descs)
			var ids []byte
			for i := range n {
				ids = append(ids, pkts[i][0])
			}
			return ids, n, err
		},
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			tun, peer := seqpacketTUN(t)
			waits := 0
			tun.onWait = func() { waits++ }

			sendPackets(t, peer, 1, 2, 3)
			ids, n, err := read(tun)
			if err != nil || n != 3 || string(ids) != "\x01\x02\x03" || waits != 0 {
				t.Fatalf("read of 3 queued packets = %v, %d, %v after %d waits; want packets 1 2 3 without waiting", ids, n, err, waits)
			}

			// The packets are sent while the read waits: the hook runs
			// in the read's callback, before the poller parks it, and
			// the poller then finds the socket readable.
			tun.onWait = func() {
				waits++
				sendPackets(t, peer, 4, 5, 6)
			}
			ids, n, err = read(tun)
			if err != nil || n != 1 || ids[0] != 4 || waits != 1 {
				t.Fatalf("read that waited = %v, %d, %v after %d waits; want packet 4 alone after 1 wait", ids, n, err, waits)
			}
			tun.onWait = func() { waits++ }
			ids, n, err = read(tun)
			if err != nil || n != 2 || string(ids) != "\x05\x06" || waits != 1 {
				t.Fatalf("next read = %v, %d, %v after %d waits; want packets 5 6 without waiting", ids, n, err, waits)
			}
		})
	}
}
