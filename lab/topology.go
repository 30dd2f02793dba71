package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"tunstack/gvisorstack"
	"tunstack/lab/netns"
	"tunstack/netif"
	"tunstack/policy"
	"tunstack/stack"
)

// The addresses of the architecture contract: the clients are the kernel
// side of the link, the server is the second address.
var (
	linkNet    = netip.MustParsePrefix("198.18.0.0/24")
	clientAddr = netip.MustParseAddr("198.18.0.1")
	serverAddr = netip.MustParseAddr("198.18.0.2")
)

// serverPort is the port every experiment's server listens on.
const serverPort = 8000

const linkMTU = 1500

// topology is one experiment's network:
//
//	tunstack, gvisor:  [client ns: kernel clients, TUN lab0 198.18.0.1] -- wire -- user-space stack 198.18.0.2
//	linux:             [client ns: kernel clients, TUN lab0 198.18.0.1] -- wire -- [server ns: TUN lab0 198.18.0.2, kernel listener]
//
// In every case the clients are the same kernel sockets behind the same
// TUN, the wire (a user-space hop with the fixed client-to-server delay)
// is the same, and the capture is taken where the server meets the wire,
// so timestamps are the server's view. For linux the two TUNs are joined
// by a relay rather than a veth pair so that Linux's packets take the same
// kind of path as the user-space stacks' do.
type topology struct {
	addrs    linkAddrs // the family the experiment runs in
	clientNS *netns.NS
	srv      server
	sysctls  []string // what was set, for the report

	capture *bytes.Buffer // the pcap, complete after close
	cleanup []func()

	// The wire's targeted rules and its SPEC impairment (one ImpairedLink,
	// each field nil when the wire has none of that), and what the capture
	// is written by; the congestion-control labs read them.
	rules    *netif.ImpairedLink
	impaired *netif.ImpairedLink
	tap      *netif.PcapTap
	// The user-space stack under test, for its counters; nil for linux.
	tunstack *stack.Stack
	gvisor   *gvisorstack.Stack
}

// stackNames are the stacks a lab can put under test.
var stackNames = []string{"tunstack", "gvisor", "linux"}

// clientSysctls are the client-side settings the experiments rely on, at
// Linux's defaults, set explicitly so that a changed default shows.
var clientSysctls = [][2]string{
	{"net/ipv4/tcp_syn_retries", "6"},
	{"net/ipv4/tcp_syncookies", "1"},
}

// linuxServerSysctls are the kernel listener's settings, at Linux's defaults.
var linuxServerSysctls = [][2]string{
	{"net/ipv4/tcp_synack_retries", "5"},
	{"net/ipv4/tcp_syncookies", "1"},
	{"net/ipv4/tcp_abort_on_overflow", "0"},
	{"net/core/somaxconn", "4096"},
}

func newTopology(ctx context.Context, o *Options) (t *topology, err error) {
	t = &topology{addrs: addrsFor(o.Family), capture: &bytes.Buffer{}}
	built := t // the error returns set t to nil
	defer func() {
		if err != nil {
			built.close()
		}
	}()
	if t.clientNS, err = netns.New("lab-" + o.Stack + "-c"); err != nil {
		return nil, err
	}
	t.cleanup = append(t.cleanup, func() { t.clientNS.Close() })
	clientTUN, err := openTUNIn(t.clientNS, t.addrs.family, clientAddr, addrs6.client)
	if err != nil {
		return nil, err
	}
	if err := setSysctls(t.clientNS, clientSysctls, "client", &t.sysctls); err != nil {
		clientTUN.Close()
		return nil, err
	}
	// The wire, from the clients' side: the fixed delay, the lab's
	// targeted rules, then the SPEC impairment, whose "out" direction is
	// what the server sends and "in" what it receives, on every stack.
	// The rules and the SPEC share one ImpairedLink, which applies the
	// rules on its clients' side, as the order above says.
	delayed, err := delayClients(clientTUN, o.Delay)
	if err != nil {
		clientTUN.Close()
		return nil, err
	}
	var wire netif.Link = delayed
	if len(o.rules) > 0 || o.Impair.Enabled() {
		il, err := netif.NewImpairedLink(wire, o.Impair, netif.WithSegmentRules(o.rules...))
		if err != nil {
			wire.Close()
			return nil, err
		}
		wire = il
		if len(o.rules) > 0 {
			t.rules = il
		}
		if o.Impair.Enabled() {
			t.impaired = il
		}
	}
	var capW io.Writer = t.capture
	if o.Pcap != nil {
		capW = io.MultiWriter(t.capture, o.Pcap)
	}

	switch o.Stack {
	case "tunstack", "gvisor":
		tap, err := netif.NewPcapTap(wire, capW, netif.PcapStampAtHandOver())
		if err != nil {
			wire.Close()
			return nil, err
		}
		t.tap = tap
		if o.Stack == "tunstack" {
			cfg := stack.Config{Addr: serverAddr, Profile: o.Profile.Clone(), Trace: o.Trace}
			if t.addrs.family == 6 {
				cfg.Addr6 = addrs6.server
			}
			s, err := stack.New(tap, cfg)
			if err != nil {
				tap.Close()
				return nil, err
			}
			t.cleanup = append(t.cleanup, func() { s.Close() })
			t.srv, t.tunstack = newTunstackServer(s), s
		} else {
			cfg := gvisorstack.Config{Addr: serverAddr, Prefix: linkNet, Profile: o.Profile.Clone()}
			if t.addrs.family == 6 {
				cfg.Addr6, cfg.Prefix6 = addrs6.server, addrs6.net
			}
			s, err := gvisorstack.New(tap, cfg)
			if err != nil {
				tap.Close()
				return nil, err
			}
			t.cleanup = append(t.cleanup, func() { s.Close() })
			t.srv, t.gvisor = newGVisorServer(s), s
		}
	case "linux":
		serverNS, err := netns.New("lab-linux-s")
		if err != nil {
			wire.Close()
			return nil, err
		}
		t.cleanup = append(t.cleanup, func() { serverNS.Close() })
		serverTUN, err := openTUNIn(serverNS, t.addrs.family, serverAddr, addrs6.server)
		if err != nil {
			wire.Close()
			return nil, err
		}
		if err := setSysctls(serverNS, append(slices.Clone(linuxServerSysctls), o.serverSysctls...), "server", &t.sysctls); err != nil {
			wire.Close()
			serverTUN.Close()
			return nil, err
		}
		tap, err := netif.NewPcapTap(serverTUN, capW, netif.PcapStampAtHandOver())
		if err != nil {
			wire.Close()
			serverTUN.Close()
			return nil, err
		}
		t.tap = tap
		r := startRelay(wire, tap)
		t.cleanup = append(t.cleanup, func() {
			wire.Close()
			tap.Close()
			r.wait()
		})
		t.srv = &kernelServer{ns: serverNS, addr: t.addrs.server, ctx: ctx}
	default:
		wire.Close()
		return nil, fmt.Errorf("lab: unknown stack %q; use %s", o.Stack, strings.Join(stackNames, ", "))
	}
	return t, nil
}

// close tears everything down, in reverse order: stacks (which close their
// links), then namespaces.
func (t *topology) close() {
	for i := len(t.cleanup) - 1; i >= 0; i-- {
		t.cleanup[i]()
	}
	t.cleanup = nil
}

// captureSnapshot returns the capture so far, taken while the tap is
// paused so that it can be read while packets still flow.
func (t *topology) captureSnapshot() []byte {
	var b []byte
	t.tap.Paused(func() { b = bytes.Clone(t.capture.Bytes()) })
	return b
}

// The wire between the clients and the server adds a fixed one-way delay to
// every packet going from the clients to the server, the same for every
// stack. Without it the experiments would not be repeatable: a kernel
// client's connect() puts its SYN on a TUN queue, and whether the next
// client's SYN reaches the server before the first handshake completes
// depends on goroutine scheduling. With a few milliseconds of path, SYNs
// sent together arrive together, as they would across any real network,
// and "six clients at once" means the same thing on every run.

// delayClients returns the clients' TUN with every packet it delivers
// (what the clients send) held back d, in order; what is written to it
// (what the server sends) passes straight through.
func delayClients(clientTUN netif.Link, d time.Duration) (*netif.ImpairedLink, error) {
	return netif.NewImpairedLink(clientTUN, netif.ImpairSpec{Delay: d, Dir: netif.ImpairIn})
}

// openTUNIn creates the TUN device lab0 inside ns with the kernel side at
// addr/24, and for an IPv6 experiment (family 6) at addr6/64 too. In IPv4
// IPv6 is turned off first, so its neighbour discovery does not add
// packets to the wire; in IPv6 the device sends no router solicitations
// (its MLD reports remain, and the labs read only TCP from the capture).
// Without GSO offload: the labs are about what each segment does to the
// kernel peer (a duplicate, a hole, a probe), so every segment reaches it
// on its own, as on a wire.
func openTUNIn(ns *netns.NS, family int, addr, addr6 netip.Addr) (*netif.TUN, error) {
	var tun *netif.TUN
	err := ns.Do(func() error {
		cfg := netif.TUNConfig{Name: "lab0", HostAddr: netip.PrefixFrom(addr, linkNet.Bits()), MTU: linkMTU}
		if family == 6 {
			// Before the device exists, so that it starts with the setting.
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/default/router_solicitations", []byte("0"), 0o644); err != nil {
				return fmt.Errorf("lab: turn off router solicitations: %w", err)
			}
			cfg.HostAddr6 = netip.PrefixFrom(addr6, addrs6.net.Bits())
		} else {
			for _, f := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"} {
				_ = os.WriteFile(f, []byte("1"), 0o644)
			}
		}
		var err error
		tun, err = netif.OpenTUN(cfg)
		return err
	})
	return tun, err
}

// setSysctls writes each setting inside ns and notes it as side: name=value.
func setSysctls(ns *netns.NS, kv [][2]string, side string, note *[]string) error {
	if err := ns.SetSysctls(kv); err != nil {
		return fmt.Errorf("lab: in the %s namespace: %w", side, err)
	}
	for _, s := range kv {
		*note = append(*note, fmt.Sprintf("%s %s=%s", side, strings.ReplaceAll(s[0], "/", "."), s[1]))
	}
	return nil
}

// profileOrLinux returns p, or the Linux profile if p is nil.
func profileOrLinux(p *policy.Profile) *policy.Profile {
	if p == nil {
		return policy.Linux()
	}
	return p
}
