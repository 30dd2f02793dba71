package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"tunstack/lab/netns"
	"tunstack/netif"
)

func init() { RegisterTarget("linux", newLinuxTarget) }

// linuxTarget runs a script against the kernel's own TCP, as packetdrill
// does: a fresh network namespace holds a TUN device, tun0 as packetdrill
// names it (scripts run tc and ethtool on it by that name), with the local
// address; the remote prefix is routed into the TUN; inbound packets are
// written to it, outbound ones read from it; system calls are real socket
// calls on sockets created inside the namespace. Time is real.
//
// Like packetdrill's, the TUN carries virtio-net headers and offers TSO
// (IPv4, IPv6, ECN) and checksum offload, so the kernel's TCP hands it each
// TSO packet whole, many segments' payload behind one header, and the
// runner sees those packets as they are (netif's WholeTSO: header
// stripped, checksum completed). With TargetConfig.NoTSO the device offers
// no offload, and the kernel cuts every TSO packet into segments before
// the TUN sees it.
type linuxTarget struct {
	cfg   TargetConfig
	ns    *netns.NS
	tun   *netif.TUN
	start time.Time

	out  chan outPkt
	done chan struct{}
	wg   sync.WaitGroup

	mu  sync.Mutex
	fds map[int]int // script descriptor -> real descriptor
}

type outPkt struct {
	b  []byte
	at time.Duration
}

// linuxTUN is the test device's name. It lives in the target's own
// namespace, so the name cannot clash with a device of the host.
const linuxTUN = "tun0"

func newLinuxTarget(cfg TargetConfig) (Target, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: the linux target needs root to create a network namespace and a TUN device", ErrNotAvailable)
	}
	ns, err := netns.New("drill")
	if err != nil {
		return nil, err
	}
	t := &linuxTarget{cfg: cfg, ns: ns, out: make(chan outPkt, 4096), done: make(chan struct{}), fds: map[int]int{}}
	err = ns.Do(func() error {
		// packetdrill's link: the local address in its network (IPv4:
		// the netmask's, IPv6: a /48, which netif adds without duplicate
		// address detection, IFA_F_NODAD, so that it is usable at once).
		tc := netif.TUNConfig{Name: linuxTUN, MTU: cfg.MTU, Offload: !cfg.NoTSO, WholeTSO: true}
		if local := netip.PrefixFrom(cfg.LocalIP, cfg.LocalPrefixLen); cfg.LocalIP.Is6() {
			tc.HostAddr6 = local
		} else {
			tc.HostAddr = local
		}
		tun, err := netif.OpenTUN(tc)
		if err != nil {
			return err
		}
		t.tun = tun
		if !cfg.NoTSO && !tun.Offload() {
			return fmt.Errorf("the kernel refused TSO offload on the TUN (IFF_VNET_HDR, TUNSETOFFLOAD), so it cannot show TSO packets as packetdrill sees them; run with --no-tso")
		}
		link, err := netlink.LinkByName(linuxTUN)
		if err != nil {
			return err
		}
		remote := cfg.RemotePrefix
		dst := &net.IPNet{IP: remote.Addr().AsSlice(), Mask: net.CIDRMask(remote.Bits(), remote.Addr().BitLen())}
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}); err != nil {
			return fmt.Errorf("route %v via %s: %w", dst, linuxTUN, err)
		}
		if !cfg.LocalIP.Is6() {
			// No IPv6 on an IPv4 run's link: its neighbour discovery
			// would only be noise on the TUN. (An IPv6 run's router
			// solicitations and MLD reports are not TCP: the runner
			// passes them by.)
			for _, f := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/" + linuxTUN + "/disable_ipv6"} {
				_ = os.WriteFile(f, []byte("1"), 0o644)
			}
		}
		return nil
	})
	if err != nil {
		if t.tun != nil {
			t.tun.Close()
		}
		ns.Close()
		return nil, fmt.Errorf("linux target: set up namespace: %w", err)
	}
	t.start = time.Now()
	t.wg.Add(1)
	go t.reader()
	return t, nil
}

func (t *linuxTarget) Name() string       { return "linux" }
func (t *linuxTarget) Now() time.Duration { return time.Since(t.start) }
func (t *linuxTarget) RealTime() bool     { return true }

func (t *linuxTarget) reader() {
	defer t.wg.Done()
	buf := make([]byte, 65536) // a whole TSO packet: at most 65535 bytes
	bufs, sizes := [][]byte{buf}, []int{0}
	for {
		n, err := t.tun.ReadPackets(bufs, sizes)
		if err != nil {
			return
		}
		at := t.Now()
		for i := 0; i < n; i++ {
			select {
			case t.out <- outPkt{bytes.Clone(bufs[i][:sizes[i]]), at}:
			case <-t.done:
				return
			}
		}
	}
}

func (t *linuxTarget) Inject(pkt []byte) error {
	_, err := t.tun.WritePackets([][]byte{pkt})
	return err
}

func (t *linuxTarget) Outbound(deadline time.Duration) ([]byte, time.Duration, bool, error) {
	select {
	case p := <-t.out:
		return p.b, p.at, true, nil
	default:
	}
	wait := deadline - t.Now()
	if wait <= 0 {
		return nil, 0, false, nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case p := <-t.out:
		return p.b, p.at, true, nil
	case <-timer.C:
		return nil, 0, false, nil
	}
}

// Shell runs the line as packetdrill does, with /bin/sh -c (system(3)),
// in dir, with the runner's environment plus PACKETDRILL_PID (packetdrill
// sets it to its own pid, an id scripts may use for the run; here it is
// the runner's pid); and inside the namespace, so sysctl writes land in
// the test's namespace only.
func (t *linuxTarget) Shell(command, dir string) error {
	cmd := t.ns.Command("/bin/sh", "-c", command)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), fmt.Sprintf("PACKETDRILL_PID=%d", os.Getpid()))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (t *linuxTarget) Close() error {
	close(t.done)
	t.mu.Lock()
	for _, fd := range t.fds {
		// shutdown wakes calls blocked in accept or read; close alone does not.
		unix.Shutdown(fd, unix.SHUT_RDWR)
		unix.Close(fd)
	}
	t.fds = map[int]int{}
	t.mu.Unlock()
	var errs []error
	if err := t.tun.Close(); err != nil {
		errs = append(errs, err)
	}
	t.wg.Wait()
	if err := t.ns.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (t *linuxTarget) Syscall(call *Call) <-chan CallResult {
	ch := make(chan CallResult, 1)
	go func() {
		res := t.run(call)
		res.At = t.Now()
		ch <- res
	}()
	return ch
}
