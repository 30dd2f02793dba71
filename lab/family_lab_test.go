package lab

import (
	"net/netip"
	"testing"

	"tunstack/lab/netns"
)

// The labs over IPv6: the same experiments, every connection between
// fd00:7475:6e73::1 (the kernel clients) and ::2 (the stack under test),
// on our stack and on Linux, with the checks their IPv4 runs have.
func TestLabsOverIPv6(t *testing.T) {
	netns.RequireRoot(t)
	if testing.Short() {
		t.Skip("the IPv6 labs take about 30 s of real time; not in -short")
	}
	needTshark(t)

	t.Run("backlog", func(t *testing.T) {
		t.Parallel()
		backlogLikeLinux(t, Options{Family: 6})
	})

	// Zero windows each way, as TestLabZeroWindow checks on IPv4: every
	// transfer arrives intact and its receiver's window closes and reopens,
	// on our stack and on Linux.
	for _, stack := range []string{"tunstack", "linux"} {
		t.Run("zero-window/"+stack, func(t *testing.T) {
			t.Parallel()
			res := runExperiment(t, "zero-window", stack, Options{Family: 6})
			checkZeroWindowTransfers(t, res)
			checkAllIPv6(t, res)
		})
	}
}

// checkAllIPv6 fails unless res ran over IPv6 and its capture has
// packets: the lab keeps only those to and from the server's address,
// which in IPv6 is addrs6.server.
func checkAllIPv6(t *testing.T, res *Result) {
	t.Helper()
	if res.Family != 6 {
		t.Errorf("the result says IPv%d, want IPv6", res.Family)
	}
	if len(res.Capture.Packets) == 0 {
		t.Fatal("the capture has no packets of the experiment")
	}
}

// ipTCP reads both families, and nothing but TCP.
func TestIPTCPReadsBothFamilies(t *testing.T) {
	for _, c := range []struct{ src, dst netip.AddrPort }{
		{netip.MustParseAddrPort("198.19.0.5:1234"), netip.MustParseAddrPort("198.18.0.2:8000")},
		{netip.MustParseAddrPort("[fd00:7475:6e73::1:5]:1234"), netip.MustParseAddrPort("[fd00:7475:6e73::2]:8000")},
	} {
		b := make([]byte, synLen6)
		n := PutSYN(b, c.src, c.dst, 1, 2, 3)
		src, dst, seg, ok := ipTCP(b[:n])
		if !ok || src != c.src.Addr() || dst != c.dst.Addr() || seg.SrcPort() != c.src.Port() || seg.DstPort() != c.dst.Port() {
			t.Errorf("%v -> %v: ipTCP = %v, %v, ports %v, ok %v", c.src, c.dst, src, dst, seg, ok)
		}
		if _, _, _, ok := ipTCP(b[:n-1]); ok {
			t.Errorf("%v -> %v: a packet one byte short of its header's length was read", c.src, c.dst)
		}
		b[0] = b[0]&0x0f | 5<<4
		if _, _, _, ok := ipTCP(b[:n]); ok {
			t.Errorf("%v -> %v: IP version 5 was read", c.src, c.dst)
		}
	}
}
