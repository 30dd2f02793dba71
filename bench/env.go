package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"tunstack/gvisorstack"
	"tunstack/lab/netns"
	"tunstack/netif"
	"tunstack/policy"
	"tunstack/stack"
	"tunstack/tcpcore"
	"tunstack/wire"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The addresses of the architecture contract: the kernel peer is the first
// address of the link, the stack under test the second, in each family:
// serve's IPv4 link and its IPv6 unique local prefix.
var (
	linkPrefix = netip.MustParsePrefix("198.18.0.0/24")
	peerAddr   = netip.MustParseAddr("198.18.0.1")
	serverAddr = netip.MustParseAddr("198.18.0.2")

	linkPrefix6 = netip.MustParsePrefix("fd00:7475:6e73::/64")
	peerAddr6   = netip.MustParseAddr("fd00:7475:6e73::1")
	serverAddr6 = netip.MustParseAddr("fd00:7475:6e73::2")
)

// family is the IP family a run's connections use: 4 or 6. An IPv6 run's
// link carries both families (the stacks need their IPv4 address), but
// every connection of the scenario is IPv6.
type family int

// server is the stack under test's address in the family.
func (f family) server() netip.Addr {
	if f == 6 {
		return serverAddr6
	}
	return serverAddr
}

// network is the Go network name of the family's TCP.
func (f family) network() string {
	if f == 6 {
		return "tcp6"
	}
	return "tcp4"
}

// serverAddrPort is the stack under test's address and port in the family.
func (f family) serverAddrPort(port int) string {
	return netip.AddrPortFrom(f.server(), uint16(port)).String()
}

// sockaddr is the stack under test's address and port for connect(2).
func (f family) sockaddr(port int) unix.Sockaddr {
	if f == 6 {
		return &unix.SockaddrInet6{Port: port, Addr: serverAddr6.As16()}
	}
	return &unix.SockaddrInet4{Port: port, Addr: serverAddr.As4()}
}

// domain is the family's socket(2) domain.
func (f family) domain() int {
	if f == 6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// linkMTU is the MTU of every link the benchmark builds, TUN and veth alike,
// so that every stack moves the same 1448-byte segments on the wire (the
// veth may still hand Linux larger GSO batches internally; see
// docs/performance.md).
const linkMTU = 1500

// devName is the device every environment creates, inside its own namespace.
const devName = "bench0"

// listener is what a scenario needs from the stack under test: the server
// side of every connection is the stack's, the client side a kernel socket.
type listener interface {
	Listen(address string, backlog int) (net.Listener, error)
}

// env is one stack under test with its kernel peer, built fresh for every
// run, each in network namespaces of its own:
//
//	tunstack, gvisor:  [ns: kernel peer 198.18.0.1, TUN bench0] -- [impairment] -- stack 198.18.0.2 (in this process)
//	linux:             [ns peer: veth bench0 198.18.0.1] -- veth -- [ns server: veth bench1 198.18.0.2]
//	linux, impaired:   [ns peer: TUN bench0 198.18.0.1] -- impairment -- relay -- [ns server: TUN bench0 198.18.0.2]
//
// The impaired linux path uses the same impairment code as the user-space
// stacks (this kernel has no netem), between two TUN devices joined by a
// user-space relay.
type env struct {
	stack  string // the base stack: tunstack, gvisor or linux
	family family // of the scenario's connections
	label  string // the stack label, variant included
	server listener
	peer   *netns.NS // the kernel peer's namespace: dial from inside peerDo

	// serverNS is the namespace whose kernel TCP is under test (linux only).
	serverNS *netns.NS
	// retrans reads the stack under test's retransmitted-segment counter.
	retrans func() uint64
	// timeouts reads how many times the stack under test's retransmission
	// timer expired; for tunstack, on the connections given (the stack's
	// side of the scenario's connections), which it sums.
	timeouts func(stackConns []net.Conn) uint64
	// segs reads the pure ACKs the stack under test sent and the data
	// segments it received.
	segs func() segCounts
	// impaired is the impaired link, if the run has one.
	impaired impairedLink
	// devices are the kernel's network devices of the path, whose drop
	// counters linkDrops sums.
	devices []nsDevice

	cleanups []func()
}

// newEnv builds the environment for one run of the stack sp names, with
// the variant's settings on prof. impair, if enabled, is applied between
// the link and the stack.
func newEnv(sp stackSpec, fam family, prof *policy.Profile, imp *impairment) (e *env, err error) {
	e = &env{stack: sp.base, label: sp.label, family: fam}
	defer func() {
		if err != nil {
			e.close()
			e = nil
		}
	}()
	switch sp.base {
	case "tunstack", "gvisor":
		err = e.buildTUN(sp.profile(prof), imp, sp.tunQueues(imp != nil))
	case "linux":
		if imp != nil {
			err = e.buildLinuxRelay(imp)
		} else {
			err = e.buildLinuxVeth()
		}
	default:
		err = fmt.Errorf("bench: unknown stack %q", sp.label)
	}
	if err != nil {
		return nil, err
	}
	// Kernel peers connect from ephemeral ports at a high rate (crr).
	err = e.peer.SetSysctls(netns.LoadGenerator)
	return e, err
}

// kernelCC is the kernel congestion control closest to the profile's. The
// machine's default may be another (BBR on some) and a namespace inherits
// it, yet only the first namespace may change the default to an algorithm
// outside net.ipv4.tcp_allowed_congestion_control: so every kernel socket
// of the benchmark, peer or server, sets TCP_CONGESTION itself (root may).
func kernelCC(prof *policy.Profile) string {
	if prof.Congestion == "cubic" {
		return "cubic"
	}
	return "reno"
}

// kernelCCName is kernelCC of the run's profile, set by Run.
var kernelCCName = "cubic"

// setCongestion sets TCP_CONGESTION on a socket before it connects or
// listens; a listener's choice passes to the connections it accepts.
func setCongestion(fd uintptr) error {
	return unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, kernelCCName)
}

// ccControl is setCongestion as a net.Dialer or net.ListenConfig Control.
func ccControl(network, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) { serr = setCongestion(fd) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("set TCP_CONGESTION %s: %w", kernelCCName, serr)
	}
	return nil
}

func (e *env) buildTUN(prof *policy.Profile, imp *impairment, queues int) error {
	if queues > 1 && imp != nil {
		return fmt.Errorf("bench: stack %q: the impairment runs on one link, not on %d queues: run lossy on tunstack", e.label, queues)
	}
	ns, err := netns.New("bench-" + e.stack)
	if err != nil {
		return err
	}
	e.peer = ns
	e.cleanups = append(e.cleanups, func() { ns.Close() })
	e.devices = []nsDevice{{ns, devName}}
	var tun *netif.TUN
	err = ns.Do(func() (err error) {
		// Offload: segments of one flow reach the kernel peer as GSO
		// packets, as in serve.
		c := e.tunConfig(peerAddr, peerAddr6, true)
		c.Queues = queues
		tun, err = netif.OpenTUN(c)
		return err
	})
	if err != nil {
		return err
	}
	var link netif.Link = tun
	if imp != nil {
		il, err := imp.wrap(tun)
		if err != nil {
			tun.Close()
			return err
		}
		link = il
		e.impaired = il
	}
	// Counted on the stack's side of the impairment: what the stack itself
	// sent and received.
	counted := &countingLink{Link: link}
	links := []netif.Link{counted}
	e.segs = counted.counts
	if queues > 1 {
		// One counting link per queue, summed.
		var all []*countingLink
		links = links[:0]
		for _, q := range tun.Queues() {
			c := &countingLink{Link: q}
			all = append(all, c)
			links = append(links, c)
		}
		e.segs = func() segCounts {
			var sum segCounts
			for _, c := range all {
				x := c.counts()
				sum.pureAcksOut += x.pureAcksOut
				sum.dataSegsIn += x.dataSegsIn
			}
			return sum
		}
	}
	s, err := e.startStack(links, prof, serverAddr, serverAddr6)
	if err != nil {
		return err
	}
	e.server = s
	return nil
}

// startStack runs the stack under test on link at addr (and addr6 in an
// IPv6 run), points the report's retransmission and timeout counts at it,
// and closes it with the environment. On an error it closes link.
func (e *env) startStack(links []netif.Link, prof *policy.Profile, addr, addr6 netip.Addr) (listener, error) {
	link := links[0]
	switch e.stack {
	case "tunstack":
		cfg := stack.Config{Addr: addr, Profile: prof}
		if e.family == 6 {
			cfg.Addr6 = addr6
		}
		s, err := stack.NewShards(links, cfg)
		if err != nil {
			link.Close()
			return nil, err
		}
		e.retrans = func() uint64 { return s.Stats().RetransSegs }
		e.timeouts = func(conns []net.Conn) uint64 {
			var n uint64
			for _, c := range conns {
				if ic, ok := c.(interface{ Info() tcpcore.Info }); ok {
					n += ic.Info().Counters.Timeouts
				}
			}
			return n
		}
		e.cleanups = append(e.cleanups, func() { s.Close() })
		return s, nil
	case "gvisor":
		o := gvisorOptions(prof)
		cfg := gvisorstack.Config{Addr: addr, Prefix: linkPrefix, Options: &o}
		if e.family == 6 {
			cfg.Addr6, cfg.Prefix6 = addr6, linkPrefix6
		}
		s, err := gvisorstack.New(link, cfg)
		if err != nil {
			link.Close()
			return nil, err
		}
		e.retrans = func() uint64 { return s.Stats().Retransmits }
		e.timeouts = func([]net.Conn) uint64 { return s.Stats().Timeouts }
		e.cleanups = append(e.cleanups, func() { s.Close() })
		return s, nil
	}
	link.Close()
	return nil, fmt.Errorf("bench: stack %q does not run on a TUN: give tunstack or gvisor", e.label)
}

// gvisorOptions are the options gVisor runs with in the benchmarks: the
// profile's, with the zero-window ACK repair on, without which an echo can
// hang for good under loss (docs/gvisor.md, "Zero-window ACK deadlock").
func gvisorOptions(prof *policy.Profile) gvisorstack.Options {
	o := gvisorstack.OptionsFromProfile(prof)
	o.ZeroWindowACKRepair = true
	return o
}

// tunConfig is the TUN device bench0 with the kernel side at addr, and for
// an IPv6 run at addr6 too. An IPv4 run leaves IPv6 off the device, so that
// its router solicitations and MLD reports do not add packets to the link.
func (e *env) tunConfig(addr, addr6 netip.Addr, offload bool) netif.TUNConfig {
	c := netif.TUNConfig{Name: devName, HostAddr: netip.PrefixFrom(addr, linkPrefix.Bits()), MTU: linkMTU, Offload: offload}
	if e.family == 6 {
		c.HostAddr6 = netip.PrefixFrom(addr6, linkPrefix6.Bits())
	}
	return c
}

// buildLinuxVeth joins two namespaces with a veth pair: kernel to kernel,
// the ceiling.
func (e *env) buildLinuxVeth() error {
	if err := e.linuxNamespaces(); err != nil {
		return err
	}
	p, s := e.peer.Name(), e.serverNS.Name()
	e.devices = []nsDevice{{e.peer, devName}, {e.serverNS, "bench1"}}
	cmds := [][]string{
		{"-n", p, "link", "add", devName, "mtu", fmt.Sprint(linkMTU), "type", "veth", "peer", "name", "bench1", "mtu", fmt.Sprint(linkMTU), "netns", s},
		{"-n", p, "addr", "add", netip.PrefixFrom(peerAddr, linkPrefix.Bits()).String(), "dev", devName},
		{"-n", s, "addr", "add", netip.PrefixFrom(serverAddr, linkPrefix.Bits()).String(), "dev", "bench1"},
		{"-n", p, "link", "set", devName, "up"},
		{"-n", s, "link", "set", "bench1", "up"},
	}
	if e.family == 6 {
		// nodad: the addresses are usable at once, without duplicate
		// address detection's second of waiting (RFC 4862 §5.4); nobody
		// else is on this wire.
		cmds = append(cmds,
			[]string{"-n", p, "addr", "add", netip.PrefixFrom(peerAddr6, linkPrefix6.Bits()).String(), "dev", devName, "nodad"},
			[]string{"-n", s, "addr", "add", netip.PrefixFrom(serverAddr6, linkPrefix6.Bits()).String(), "dev", "bench1", "nodad"})
	}
	for _, c := range cmds {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			return fmt.Errorf("bench: ip %s: %v: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// buildLinuxRelay joins two namespaces through two TUN devices and a relay
// in this process, with the impairment on the peer's TUN. The impairment's
// "in" direction carries the peer's packets toward the server and "out" the
// server's toward the peer, as on the user-space stacks' links.
func (e *env) buildLinuxRelay(imp *impairment) error {
	if err := e.linuxNamespaces(); err != nil {
		return err
	}
	e.devices = []nsDevice{{e.peer, devName}, {e.serverNS, devName}}
	var peerTUN, srvTUN *netif.TUN
	err := e.peer.Do(func() (err error) {
		peerTUN, err = netif.OpenTUN(e.tunConfig(peerAddr, peerAddr6, false))
		return err
	})
	if err != nil {
		return err
	}
	e.cleanups = append(e.cleanups, func() { peerTUN.Close() })
	err = e.serverNS.Do(func() (err error) {
		srvTUN, err = netif.OpenTUN(e.tunConfig(serverAddr, serverAddr6, false))
		return err
	})
	if err != nil {
		return err
	}
	e.cleanups = append(e.cleanups, func() { srvTUN.Close() })
	il, err := imp.wrap(peerTUN)
	if err != nil {
		return err
	}
	e.impaired = il
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); relay(il, srvTUN) }()
	go func() { defer wg.Done(); relay(srvTUN, il) }()
	e.cleanups = append(e.cleanups, func() {
		il.Close()
		srvTUN.Close()
		wg.Wait()
	})
	return nil
}

// relay copies IPv4 packets and IPv6 TCP segments from one link to the
// other until either closes. The kernels' other IPv6 packets (router
// solicitations, MLD reports) stay on their side: a TUN needs no neighbour
// discovery, and they are not part of what is measured.
func relay(from, to netif.Link) {
	const batch = 64
	bufs := make([][]byte, batch)
	sizes := make([]int, batch)
	for i := range bufs {
		bufs[i] = make([]byte, from.MTU())
	}
	pkts := make([][]byte, 0, batch)
	for {
		n, err := from.ReadPackets(bufs, sizes)
		if err != nil {
			return
		}
		pkts = pkts[:0]
		for i := range n {
			if p := bufs[i][:sizes[i]]; relayed(p) {
				pkts = append(pkts, p)
			}
		}
		if len(pkts) > 0 {
			if _, err := to.WritePackets(pkts); errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}
}

// relayed says whether relay passes a packet on: IPv4, or IPv6 whose next
// header is TCP.
func relayed(p []byte) bool {
	switch {
	case len(p) == 0:
		return false
	case p[0]>>4 == 4:
		return true
	case p[0]>>4 == 6 && len(p) >= wire.IPv6HeaderLen:
		return wire.IPv6(p).NextHeader() == wire.ProtoTCP
	}
	return false
}

func (e *env) linuxNamespaces() error {
	var err error
	if e.peer, err = netns.New("bench-linux-peer"); err != nil {
		return err
	}
	peer := e.peer
	e.cleanups = append(e.cleanups, func() { peer.Close() })
	if e.serverNS, err = netns.New("bench-linux-srv"); err != nil {
		return err
	}
	srv := e.serverNS
	e.cleanups = append(e.cleanups, func() { srv.Close() })
	e.server = kernelNet{srv, e.family}
	e.retrans = func() uint64 {
		c, _ := srv.TCPCounters()
		return c.Tcp["RetransSegs"]
	}
	e.timeouts = func([]net.Conn) uint64 {
		c, _ := srv.TCPCounters()
		return c.TcpExt["TCPTimeouts"]
	}
	e.segs = func() segCounts { return kernelSegCounts(srv, peer) }
	return nil
}

// kernelSegCounts counts segments from the kernel's MIB counters, each
// namespace's own. The pure ACKs the server sent are its OutSegs less the
// segments with new data (TCPOrigDataSent) and the resets (OutRsts):
// Linux adds to OutSegs every segment that carries new data or no sequence
// space at all (a pure ACK), not retransmissions, and every RST, in
// MSS-sized units, and a pure ACK is one segment. The data segments it
// received are the peer's: new data plus retransmissions it sent, in
// MSS-sized units, so that a GSO batch moved whole over the veth counts as
// the segments it stands for.
func kernelSegCounts(server, peer *netns.NS) segCounts {
	s, _ := server.TCPCounters() // a namespace not entered counts nothing
	p, _ := peer.TCPCounters()
	return segCounts{
		pureAcksOut: s.Tcp["OutSegs"] - s.TcpExt["TCPOrigDataSent"] - s.Tcp["OutRsts"],
		dataSegsIn:  p.TcpExt["TCPOrigDataSent"] + p.Tcp["RetransSegs"],
	}
}

// nsDevice is a kernel network device in a namespace.
type nsDevice struct {
	ns   *netns.NS
	name string
}

// linkDrops sums the packets the kernel dropped on the path's devices, both
// ways: on a TUN, tx_dropped counts packets the kernel could not queue for
// the user-space side because its queue (txqueuelen) was full, rx_dropped
// packets from the user-space side it could not take in.
func (e *env) linkDrops() uint64 {
	var total uint64
	for _, d := range e.devices {
		d.ns.Do(func() error {
			l, err := netlink.LinkByName(d.name)
			if err == nil && l.Attrs().Statistics != nil {
				total += l.Attrs().Statistics.TxDropped + l.Attrs().Statistics.RxDropped
			}
			return nil
		})
	}
	return total
}

// close undoes everything, last built first.
func (e *env) close() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	e.cleanups = nil
}

// peerDo runs fn on a thread inside the peer's namespace: sockets fn creates
// are the kernel peer's, and stay usable from any goroutine afterwards.
func (e *env) peerDo(fn func() error) error { return e.peer.Do(fn) }

// dial connects a kernel socket in the peer's namespace to the stack under
// test.
func (e *env) dial(ctx context.Context, port int) (net.Conn, error) {
	var c net.Conn
	err := e.peerDo(func() (err error) {
		c, err = dialServer(ctx, e.family, port)
		return err
	})
	return c, err
}

// dialServer connects to the stack under test from the calling thread's
// namespace.
func dialServer(ctx context.Context, fam family, port int) (net.Conn, error) {
	d := net.Dialer{Control: ccControl}
	return d.DialContext(ctx, fam.network(), fam.serverAddrPort(port))
}

// kernelNet is the stack under test when it is Linux: kernel sockets in the
// server namespace, used through Go's net package.
type kernelNet struct {
	ns     *netns.NS
	family family
}

func (k kernelNet) Listen(address string, backlog int) (net.Listener, error) {
	var ln net.Listener
	err := k.ns.Do(func() (err error) {
		// Go sizes the backlog from net.core.somaxconn itself.
		lc := net.ListenConfig{Control: ccControl}
		ln, err = lc.Listen(context.Background(), k.family.network(), address)
		return err
	})
	return ln, err
}
