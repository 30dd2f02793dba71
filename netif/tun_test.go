package netif_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"tunstack/internal/testtools"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"tunstack/lab/netns"
	"tunstack/netif"
	"tunstack/wire"
)

var (
	hostPrefix = netip.MustParsePrefix("198.18.0.1/24")
	stackIP    = netip.MustParseAddr("198.18.0.2")
)

// newNS gives the test a namespace of its own, deleted at the end.
func newNS(t *testing.T) *netns.NS {
	t.Helper()
	netns.RequireRoot(t)
	ns, err := netns.New("netif")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// openTUN opens a TUN device inside ns, closed at the end of the test.
func openTUN(t *testing.T, ns *netns.NS, cfg netif.TUNConfig) *netif.TUN {
	t.Helper()
	var tun *netif.TUN
	err := ns.Do(func() (err error) {
		tun, err = netif.OpenTUN(cfg)
		return err
	})
	if err != nil {
		t.Fatalf("OpenTUN in %s: %v", ns.Name(), err)
	}
	t.Cleanup(func() { tun.Close() })
	return tun
}

// sendDatagrams sends perFlow datagrams of msg on each of flows UDP
// sockets of ns's kernel, each a flow of its own, to the stack's address
// (198.18.0.2) port 9, through the TUN device.
func sendDatagrams(t *testing.T, ns *netns.NS, flows, perFlow int, msg []byte) {
	t.Helper()
	err := ns.Do(func() error {
		for range flows {
			c, err := net.Dial("udp4", "198.18.0.2:9")
			if err != nil {
				return err
			}
			defer c.Close()
			for range perFlow {
				if _, err := c.Write(msg); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readUntil reads from l until match accepts a valid IPv4 packet, and returns
// a copy of it. Other packets (IPv6 router solicitations the kernel sends on
// a new link, for one) are skipped.
func readUntil(t *testing.T, l netif.Link, match func(wire.IPv4) bool) wire.IPv4 {
	t.Helper()
	return wire.IPv4(readUntilPacket(t, l, func(p []byte) bool {
		ip := wire.IPv4(p)
		return ip.Valid() == nil && match(ip)
	}))
}

// readUntil6 is readUntil for IPv6 packets.
func readUntil6(t *testing.T, l netif.Link, match func(wire.IPv6) bool) wire.IPv6 {
	t.Helper()
	return wire.IPv6(readUntilPacket(t, l, func(p []byte) bool {
		ip := wire.IPv6(p)
		return ip.Valid() == nil && match(ip)
	}))
}

// readUntilPacket reads from l until match accepts a packet, and returns a
// copy of it.
func readUntilPacket(t *testing.T, l netif.Link, match func([]byte) bool) []byte {
	t.Helper()
	found := make(chan []byte, 1)
	failed := make(chan error, 1)
	go func() {
		bufs := [][]byte{make([]byte, l.MTU()), make([]byte, l.MTU())}
		sizes := make([]int, len(bufs))
		for {
			n, err := l.ReadPackets(bufs, sizes)
			if err != nil {
				failed <- err
				return
			}
			for i := range n {
				if p := bufs[i][:sizes[i]]; len(p) > 0 && match(p) {
					found <- bytes.Clone(p)
					return
				}
			}
		}
	}()
	select {
	case p := <-found:
		return p
	case err := <-failed:
		t.Fatalf("ReadPackets: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no matching packet within 5s")
	}
	return nil
}

func TestOpenTUNConfiguresAddressMTUAndLinkUp(t *testing.T) {
	ns := newNS(t)
	tun := openTUN(t, ns, netif.TUNConfig{Name: "tun0", HostAddr: hostPrefix, MTU: 1400})
	if tun.MTU() != 1400 || tun.Name() != "tun0" {
		t.Fatalf("MTU() = %d, Name() = %q", tun.MTU(), tun.Name())
	}
	err := ns.Do(func() error {
		link, err := netlink.LinkByName("tun0")
		if err != nil {
			return err
		}
		a := link.Attrs()
		if a.MTU != 1400 {
			t.Errorf("device MTU = %d, want 1400", a.MTU)
		}
		if a.Flags&net.FlagUp == 0 {
			t.Errorf("device flags %v, want up", a.Flags)
		}
		if link.Type() != "tuntap" {
			t.Errorf("device type %q, want tuntap", link.Type())
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		if len(addrs) != 1 || addrs[0].IPNet.String() != "198.18.0.1/24" {
			t.Errorf("device addresses %v, want [198.18.0.1/24]", addrs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var hostPrefix6 = netip.MustParsePrefix("fd00:7475:6e73::1/64")

// With HostAddr6 the device has IPv6 on, even where the namespace's default
// turns it off, and the address is usable as OpenTUN returns: not
// tentative (IFA_F_NODAD), a kernel socket can bind to it, and the kernel
// routes it to itself.
func TestOpenTUNConfiguresAnIPv6AddressUsableAtOnce(t *testing.T) {
	ns := newNS(t)
	err := ns.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	openTUN(t, ns, netif.TUNConfig{Name: "tun6", HostAddr: hostPrefix, HostAddr6: hostPrefix6})
	err = ns.Do(func() error {
		if v, err := os.ReadFile("/proc/sys/net/ipv6/conf/tun6/disable_ipv6"); err != nil || strings.TrimSpace(string(v)) != "0" {
			t.Errorf("disable_ipv6 on the device reads %q (%v), want 0", v, err)
		}
		// Bound at once, before anything else: a tentative address would
		// refuse it with EADDRNOTAVAIL.
		ln, err := net.Listen("tcp6", "[fd00:7475:6e73::1]:0")
		if err != nil {
			return fmt.Errorf("binding to the new address: %w", err)
		}
		ln.Close()
		link, err := netlink.LinkByName("tun6")
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		var found *netlink.Addr
		for i, a := range addrs {
			if a.IPNet.String() == hostPrefix6.String() {
				found = &addrs[i]
			}
		}
		if found == nil {
			t.Fatalf("device addresses %v, want %v among them", addrs, hostPrefix6)
		}
		if found.Flags&unix.IFA_F_NODAD == 0 || found.Flags&unix.IFA_F_TENTATIVE != 0 {
			t.Errorf("address flags %#x, want IFA_F_NODAD and not IFA_F_TENTATIVE", found.Flags)
		}
		rs, err := netlink.RouteGet(hostPrefix6.Addr().AsSlice())
		if err != nil || len(rs) == 0 || rs[0].Type != unix.RTN_LOCAL {
			t.Errorf("the kernel's route to %v is %v (%v), want a local one", hostPrefix6.Addr(), rs, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Below 1280 bytes Linux turns IPv6 off on a device (RFC 8200 §5's minimum
// link MTU), so OpenTUN refuses the pair before it creates anything.
func TestOpenTUNRefusesAnIPv6AddressBelowTheMinimumMTU(t *testing.T) {
	_, err := netif.OpenTUN(netif.TUNConfig{Name: "tunmtu", HostAddr6: hostPrefix6, MTU: 1279})
	if err == nil || !strings.Contains(err.Error(), "1280") {
		t.Fatalf("OpenTUN with MTU 1279 and an IPv6 address: %v, want an error naming 1280", err)
	}
	_, err = netif.OpenTUN(netif.TUNConfig{Name: "tunmtu", HostAddr6: netip.MustParsePrefix("::ffff:198.18.0.1/120")})
	if err == nil || !strings.Contains(err.Error(), "not a unicast IPv6 address") {
		t.Fatalf("OpenTUN with an IPv4-mapped HostAddr6: %v, want it refused", err)
	}
}

// The kernel's ping -6 crosses the TUN as ICMPv6 and is answered through it
// with wire's echo reply.
func TestKernelPing6SucceedsAgainstEchoReplyOverTUN(t *testing.T) {
	testtools.Need(t, "ping")
	ns := newNS(t)
	tun := openTUN(t, ns, netif.TUNConfig{HostAddr6: hostPrefix6})
	ping := ns.Command("ping", "-6", "-c", "1", "-W", "2", "fd00:7475:6e73::2")
	var out bytes.Buffer
	ping.Stdout, ping.Stderr = &out, &out
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	req := readUntil6(t, tun, func(p wire.IPv6) bool {
		return p.NextHeader() == wire.ProtoICMPv6 && wire.ICMPv6(p.Payload()).Type() == wire.ICMPv6EchoRequest
	})
	if req.SrcAddr() != hostPrefix6.Addr() {
		t.Errorf("echo request from %v, want %v", req.SrcAddr(), hostPrefix6.Addr())
	}
	reply := make([]byte, tun.MTU())
	n, err := wire.PutICMPv6EchoReply(reply, req, netip.Addr{}, 64)
	if err != nil {
		t.Fatalf("no reply to the kernel's echo request % x: %v", req, err)
	}
	if _, err := tun.WritePackets([][]byte{reply[:n]}); err != nil {
		t.Fatal(err)
	}
	if err := ping.Wait(); err != nil {
		t.Fatalf("ping -6 failed: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "1 received") {
		t.Fatalf("ping -6 output does not report the reply:\n%s", out.String())
	}
}

func TestTUNReadsUDPDatagramTheKernelSends(t *testing.T) {
	ns := newNS(t)
	tun := openTUN(t, ns, netif.TUNConfig{HostAddr: hostPrefix})
	msg := []byte("hello through the tun")
	sendDatagrams(t, ns, 1, 1, msg)
	p := readUntil(t, tun, func(p wire.IPv4) bool { return p.Protocol() == wire.ProtoUDP })
	if p.SrcAddr() != hostPrefix.Addr() || p.DstAddr() != stackIP {
		t.Errorf("datagram %v -> %v, want 198.18.0.1 -> 198.18.0.2", p.SrcAddr(), p.DstAddr())
	}
	udp := p.Payload()
	if len(udp) < 8 || binary.BigEndian.Uint16(udp[2:]) != 9 || !bytes.Equal(udp[8:], msg) {
		t.Errorf("UDP payload %q to port %d, want %q to port 9", udp[min(8, len(udp)):], binary.BigEndian.Uint16(udp[2:]), msg)
	}
}

func TestKernelPingSucceedsAgainstEchoReplyOverTUN(t *testing.T) {
	testtools.Need(t, "ping")
	ns := newNS(t)
	tun := openTUN(t, ns, netif.TUNConfig{HostAddr: hostPrefix})
	ping := ns.Command("ping", "-c", "1", "-W", "2", "198.18.0.2")
	var out bytes.Buffer
	ping.Stdout, ping.Stderr = &out, &out
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	req := readUntil(t, tun, func(p wire.IPv4) bool {
		return p.Protocol() == wire.ProtoICMP && wire.ICMPv4(p.Payload()).Type() == wire.ICMPEchoRequest
	})
	reply := make([]byte, tun.MTU())
	n, ok := netif.EchoReply(req, reply)
	if !ok {
		t.Fatalf("EchoReply refused the kernel's echo request % x", req)
	}
	if _, err := tun.WritePackets([][]byte{reply[:n]}); err != nil {
		t.Fatal(err)
	}
	if err := ping.Wait(); err != nil {
		t.Fatalf("ping failed: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "1 received") {
		t.Fatalf("ping output does not report the reply:\n%s", out.String())
	}
}

// waitBlockedInRead waits until some goroutine is parked in the runtime
// poller inside TUN.ReadPackets, so that a test closes a reader that is
// really blocked rather than one that has not started.
func waitBlockedInRead(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		stacks := string(buf[:runtime.Stack(buf, true)])
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "[IO wait") && strings.Contains(g, "(*TUN).ReadPackets") {
				return
			}
		}
		runtime.Gosched()
	}
	t.Fatal("reader never blocked in ReadPackets")
}

func TestTUNCloseUnblocksReadAndRemovesDevice(t *testing.T) {
	testtools.Need(t, "sysctl")
	ns := newNS(t)
	tun := openTUN(t, ns, netif.TUNConfig{Name: "tunclose0", HostAddr: hostPrefix})
	// Keep IPv6 chatter (router solicitations) from satisfying the read.
	if out, err := ns.Command("sysctl", "-qw", "net.ipv6.conf.tunclose0.disable_ipv6=1").CombinedOutput(); err != nil {
		t.Logf("disable IPv6 on tunclose0: %v %s", err, out)
	}
	errs := make(chan error, 1)
	go func() {
		bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
		for {
			if _, err := tun.ReadPackets(bufs, sizes); err != nil {
				errs <- err
				return
			}
		}
	}()
	waitBlockedInRead(t)
	if err := tun.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("blocked ReadPackets after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadPackets still blocked 5s after Close")
	}
	if _, err := tun.WritePackets([][]byte{make([]byte, 20)}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WritePackets after Close = %v, want net.ErrClosed", err)
	}
	err := ns.Do(func() error {
		if _, err := netlink.LinkByName("tunclose0"); err == nil {
			return errors.New("device still exists after Close")
		}
		routes, err := netlink.RouteGet(net.ParseIP("198.18.0.2"))
		if err == nil && len(routes) > 0 && routes[0].LinkIndex != 0 {
			return errors.New("route to 198.18.0.2 survived Close")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// linkSnapshot is what must not change about a device OpenTUN refuses.
func linkSnapshot(t *testing.T, ns *netns.NS, name string) string {
	t.Helper()
	var snap string
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		a := l.Attrs()
		snap = fmt.Sprintf("%s %s index=%d mtu=%d flags=%v addrs=%v", l.Type(), a.Name, a.Index, a.MTU, a.Flags, addrs)
		return nil
	})
	if err != nil {
		t.Fatalf("device %s in %s: %v", name, ns.Name(), err)
	}
	return snap
}

func TestOpenTUNOnExistingDeviceFailsBusyAndLeavesItAlone(t *testing.T) {
	ns := newNS(t)
	// Three kinds of existing device: a persistent TUN nobody holds (which
	// TUNSETIFF would attach to without IFF_TUN_EXCL), a TUN another
	// program holds open, and a device of another type.
	setup := [][]string{
		{"ip", "tuntap", "add", "mode", "tun", "name", "tunpersist0"},
		{"ip", "addr", "add", "10.99.0.1/24", "dev", "tunpersist0"},
		{"ip", "link", "add", "tunveth0", "type", "veth", "peer", "name", "tunveth1"},
	}
	for _, c := range setup {
		if out, err := ns.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	openTUN(t, ns, netif.TUNConfig{Name: "tunheld0", HostAddr: hostPrefix})
	for _, name := range []string{"tunpersist0", "tunheld0", "tunveth0"} {
		before := linkSnapshot(t, ns, name)
		err := ns.Do(func() error {
			tun, err := netif.OpenTUN(netif.TUNConfig{Name: name, HostAddr: netip.MustParsePrefix("198.19.0.1/24"), MTU: 1280})
			if err == nil {
				tun.Close()
			}
			return err
		})
		if !errors.Is(err, netif.ErrDeviceBusy) {
			t.Errorf("OpenTUN(%s) = %v, want ErrDeviceBusy", name, err)
			continue
		}
		if !strings.Contains(err.Error(), "device "+name+" is busy") {
			t.Errorf("error %q does not name the device", err)
		}
		if after := linkSnapshot(t, ns, name); after != before {
			t.Errorf("%s changed by the failed OpenTUN:\nbefore %s\nafter  %s", name, before, after)
		}
	}
	out, err := ns.Command("ip", "tuntap", "show").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "tunpersist0: tun persist") {
		t.Errorf("tunpersist0 lost its persist flag: %v\n%s", err, out)
	}
}

// TestOpenTUNWithoutCapNetAdminIsErrNotPermitted runs the test binary again
// as user nobody, forked from a thread inside the namespace so that the child
// starts there, and checks that it reports ErrNotPermitted.
func TestOpenTUNWithoutCapNetAdminIsErrNotPermitted(t *testing.T) {
	if os.Getenv("TUNSTACK_UNPRIVILEGED_CHILD") == "1" {
		_, err := netif.OpenTUN(netif.TUNConfig{Name: "tunnobody0"})
		// EACCES when /dev/net/tun is not world-writable, EPERM from
		// TUNSETIFF when it is.
		if !errors.Is(err, netif.ErrNotPermitted) || !(errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)) {
			t.Fatalf("OpenTUN as nobody = %v, want ErrNotPermitted wrapping EPERM or EACCES", err)
		}
		fmt.Println("CHILD-SAW:", err)
		return
	}
	ns := newNS(t)
	// The go test binary lives in a directory only root can enter.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // both made 0700 by the testing package
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "netif.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	var out []byte
	err = ns.Do(func() (err error) {
		cmd := exec.Command(bin, "-test.run=^TestOpenTUNWithoutCapNetAdminIsErrNotPermitted$", "-test.v")
		cmd.Env = append(os.Environ(), "TUNSTACK_UNPRIVILEGED_CHILD=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil || !bytes.Contains(out, []byte("CHILD-SAW: creating a TUN device needs root or CAP_NET_ADMIN: run with sudo")) {
		t.Fatalf("unprivileged child: %v\n%s", err, out)
	}
}

func TestTUNWriteAndReadDoNotAllocatePerPacket(t *testing.T) {
	for _, offload := range []bool{false, true} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) { testTUNNoAllocs(t, offload) })
	}
}

func testTUNNoAllocs(t *testing.T, offload bool) {
	testtools.Need(t, "sysctl")
	ns := newNS(t)
	tun := openTUN(t, ns, netif.TUNConfig{Name: "tunalloc0", HostAddr: hostPrefix, Offload: offload})
	if tun.Offload() != offload {
		t.Fatalf("Offload() = %v, want %v", tun.Offload(), offload)
	}
	ns.Command("sysctl", "-qw", "net.ipv6.conf.tunalloc0.disable_ipv6=1").Run()
	// An echo request from the stack's address to the kernel's: the kernel
	// answers each one through the TUN, so every write is matched by a read.
	req := make([]byte, wire.IPv4HeaderLen+64)
	wire.PutIPv4Header(req, wire.IPv4Fields{Src: stackIP.As4(), Dst: hostPrefix.Addr().As4(), Protocol: wire.ProtoICMP, TTL: 64}, 64)
	icmp := wire.ICMPv4(req[wire.IPv4HeaderLen:])
	icmp[0] = wire.ICMPEchoRequest
	icmp.SetChecksum()
	pkts := [][]byte{req}
	bufs, sizes := [][]byte{make([]byte, 1500), make([]byte, 1500)}, []int{0, 0}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := tun.WritePackets(pkts); err != nil {
			t.Fatal(err)
		}
		if _, err := tun.ReadPackets(bufs, sizes); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a write and a read allocate %.1f times, want 0", allocs)
	}
	if p := wire.IPv4(bufs[0][:sizes[0]]); p.Valid() != nil || p.Protocol() != wire.ProtoICMP {
		t.Fatalf("read % x, want the kernel's echo reply", bufs[0][:sizes[0]])
	}
	// The same through the descriptor seam.
	arena, dpkts, descs := make([]byte, tun.DescRoom()), make([][]byte, 1), make([]netif.Desc, 1)
	allocs = testing.AllocsPerRun(100, func() {
		if _, err := tun.WritePackets(pkts); err != nil {
			t.Fatal(err)
		}
		if _, err := tun.ReadDescs(arena, dpkts, descs); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a write and a descriptor read allocate %.1f times, want 0", allocs)
	}
	if p := wire.IPv4(dpkts[0]); p.Valid() != nil || p.Protocol() != wire.ProtoICMP || descs[0].GSO != netif.GSONone {
		t.Fatalf("read % x (%+v), want the kernel's echo reply", dpkts[0], descs[0])
	}
	if !offload {
		return
	}
	// Three segments of one flow go as one GSO packet (to a closed port:
	// the kernel answers with a reset, which nobody reads).
	run := make([][]byte, 3)
	for i := range run {
		p := make([]byte, wire.IPv4HeaderLen+wire.TCPHeaderLen+1000)
		wire.PutIPv4Header(p, wire.IPv4Fields{Src: stackIP.As4(), Dst: hostPrefix.Addr().As4(), Protocol: wire.ProtoTCP, TTL: 64, DontFrag: true}, len(p)-wire.IPv4HeaderLen)
		wire.PutTCPHeader(p[wire.IPv4HeaderLen:], wire.TCPFields{SrcPort: 40000, DstPort: 9, Seq: 1 + uint32(i)*1000, Ack: 1, Flags: wire.FlagACK, Window: 100}, 0)
		wire.TCP(p[wire.IPv4HeaderLen:]).ComputeChecksum(stackIP.As4(), hostPrefix.Addr().As4())
		run[i] = p
	}
	allocs = testing.AllocsPerRun(100, func() {
		if n, err := tun.WritePackets(run); err != nil || n != len(run) {
			t.Fatalf("WritePackets = %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a coalesced write allocates %.1f times, want 0", allocs)
	}
	if gsoPkts, gsoSegs := tun.GSOStats(); gsoPkts < 100 || gsoSegs != 3*gsoPkts {
		t.Fatalf("GSOStats = %d packets, %d segments; want each write of 3 coalesced", gsoPkts, gsoSegs)
	}
}
