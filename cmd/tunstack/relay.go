package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"tunstack/control"
	"tunstack/gvisorstack"
	"tunstack/lab/netns"
	"tunstack/netif"
	"tunstack/policy"
	"tunstack/relay"
	"tunstack/stack"
)

func init() {
	commands["relay"] = func(args []string) error {
		cfg, err := parseRelayFlags(args)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runRelay(ctx, cfg, os.Stdout, nil)
	}
}

// relayConfig is tunstack relay's command line.
type relayConfig struct {
	Dev                   string
	Net                   netip.Prefix
	HostAddr, StackAddr   netip.Addr
	Net6                  netip.Prefix // invalid: IPv6 off
	HostAddr6, StackAddr6 netip.Addr
	MTU                   int
	Routes                []netip.Prefix // routed into the TUN, and intercepted
	TunNetns, Netns       string
	Stack                 string
	Upstream              string
	OutIface              string
	OutMark               int
	PcapFile, TraceFile   string
	MaxConns              int
	DialTimeout           time.Duration
	MSS                   int
	// KeepAlive is the keepalive of both legs of every relayed
	// connection (--keepalive): Linux's defaults unless changed.
	KeepAlive net.KeepAliveConfig
}

// intercepted is what the stack takes SYNs for: the routes, or everything
// the TUN carries when no route is given.
func (c relayConfig) intercepted() []netip.Prefix {
	if len(c.Routes) > 0 {
		return c.Routes
	}
	ps := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	if c.Net6.IsValid() {
		ps = append(ps, netip.MustParsePrefix("::/0"))
	}
	return ps
}

func parseRelayFlags(args []string) (relayConfig, error) {
	var (
		netText     = "198.18.0.0/24"
		net6Text    = defaultNet6
		dialTimeout = relay.DefaultDialTimeout.String()
		routes      []string
		linux       = policy.Linux()
		cfg         = relayConfig{Dev: "tun0", MTU: 1500, Stack: "tunstack", Upstream: "direct",
			KeepAlive: net.KeepAliveConfig{Enable: true, Idle: linux.KeepAliveIdle, Interval: linux.KeepAliveInterval, Count: linux.KeepAliveProbes}}
	)
	defs := []flagDef{
		stringFlag("dev", &cfg.Dev, checkDevName),
		stringFlag("net", &netText, nil),
		stringFlag("net6", &net6Text, nil),
		intFlag("mtu", "a size in bytes", 576, 65535, "1500", &cfg.MTU),
		{name: "route", set: func(v string) error { routes = append(routes, v); return nil }},
		stringFlag("tun-netns", &cfg.TunNetns, checkNetnsName),
		stringFlag("netns", &cfg.Netns, checkNetnsName),
		oneOfFlag("stack", serveStacks, &cfg.Stack),
		stringFlag("upstream", &cfg.Upstream, nil),
		stringFlag("outbound-interface", &cfg.OutIface, checkDevName),
		intFlag("outbound-mark", "a firewall mark", 1, math.MaxInt32, "51820", &cfg.OutMark),
		stringFlag("pcap", &cfg.PcapFile, checkPcapFile),
		stringFlag("trace", &cfg.TraceFile, checkTraceFile),
		intFlag("max-conns", "a number of connections (0: no bound)", 0, math.MaxInt32, "10000", &cfg.MaxConns),
		stringFlag("dial-timeout", &dialTimeout, nil),
		intFlag("mss", "a segment size in bytes (0: the TUN's MTU decides)", 0, 65495, "1400", &cfg.MSS),
		keepAliveFlag("keepalive", "7200,75,9", &cfg.KeepAlive),
	}
	rest, err := parseFlags("relay", args, defs)
	if err != nil {
		return relayConfig{}, err
	}
	if len(rest) > 0 {
		return relayConfig{}, usagef("relay takes no arguments, but got %q; give destinations to relay as --route CIDR.", rest[0])
	}
	if cfg.Net, cfg.HostAddr, cfg.StackAddr, err = parseLinkNet(netText); err != nil {
		return relayConfig{}, err
	}
	if cfg.Net6, cfg.HostAddr6, cfg.StackAddr6, err = parseLinkNet6(net6Text); err != nil {
		return relayConfig{}, err
	}
	if cfg.Net6.IsValid() && cfg.MTU < 1280 {
		return relayConfig{}, usagef("--mtu %d is below IPv6's minimum of 1280, and IPv6 is on (--net6); give --mtu 1280 or more, or --net6 none.", cfg.MTU)
	}
	for _, r := range routes {
		p, err := netip.ParsePrefix(r)
		if err != nil || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return relayConfig{}, usagef("--route must be a prefix in CIDR form, as in --route 203.0.113.0/24 or --route 0.0.0.0/0, not %q.", r)
		}
		if p.Addr().Is6() && !cfg.Net6.IsValid() {
			return relayConfig{}, usagef("--route %s is IPv6 but IPv6 is off (--net6 none); drop the route or turn IPv6 on with --net6.", r)
		}
		p = p.Masked()
		if p.Bits() >= cfg.Net.Bits() && cfg.Net.Contains(p.Addr()) {
			return relayConfig{}, usagef("--route %s is inside the TUN link's own prefix %s; route other destinations, or move the link with --net.", r, cfg.Net)
		}
		cfg.Routes = append(cfg.Routes, p)
	}
	if cfg.OutIface != "" && cfg.OutMark != 0 {
		return relayConfig{}, usagef("--outbound-interface and --outbound-mark both keep the relay's own connections out of the TUN; give one of them.")
	}
	if cfg.Upstream != "direct" {
		if _, err := relay.NewDialer(relay.DialConfig{Upstream: cfg.Upstream}); err != nil {
			return relayConfig{}, usagef("--upstream must be direct or socks5://HOST:PORT, as in --upstream socks5://127.0.0.1:1080, not %q.", cfg.Upstream)
		}
	}
	if cfg.TunNetns != "" && cfg.TunNetns == cfg.Netns {
		return relayConfig{}, usagef("--tun-netns and --netns name the same namespace %s; drop --tun-netns to keep the TUN with the relay.", cfg.Netns)
	}
	if len(cfg.Routes) > 0 && cfg.TunNetns == "" && cfg.OutIface == "" && cfg.OutMark == 0 {
		// The routes send the relay's own outbound connections to
		// those destinations back into the TUN: a loop.
		return relayConfig{}, usagef("--route through a TUN in the relay's own namespace would loop the relay's outbound connections back into it; give --outbound-interface IF (the device they leave by) or --outbound-mark N (relay then installs a policy rule), or put the TUN in another namespace with --tun-netns NAME.")
	}
	if cfg.MSS != 0 && cfg.Stack != "tunstack" {
		return relayConfig{}, usagef("--mss needs --stack tunstack: %s's forwarder offers the MSS of the TUN's MTU; drop --mss, or lower --mtu instead.", cfg.Stack)
	}
	if cfg.TraceFile != "" && cfg.Stack != "tunstack" {
		return relayConfig{}, usagef("--trace needs --stack tunstack: %s reports no congestion events; drop --trace or use our stack.", cfg.Stack)
	}
	if cfg.DialTimeout, err = time.ParseDuration(dialTimeout); err != nil || cfg.DialTimeout <= 0 {
		return relayConfig{}, usagef("--dial-timeout must be a positive duration, as in --dial-timeout 5s, not %q.", dialTimeout)
	}
	return cfg, nil
}

// relaySession is one running relay.
type relaySession struct {
	cfg     relayConfig
	network stack.Network
	front   relay.Frontend
	r       *relay.Relay
	control string
}

// runRelay brings up the TUN link, the stack, its frontend and the relay,
// and runs until ctx ends; everything it configured is removed before it
// returns. ready, if not nil, is called once SYNs are taken.
func runRelay(ctx context.Context, cfg relayConfig, out io.Writer, ready func(*relaySession)) (err error) {
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	openNS := func(name, flag string) (*netns.NS, error) {
		if name == "" {
			return nil, nil
		}
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("--%s needs root to create or enter a network namespace: run with sudo", flag)
		}
		n, created, err := netns.OpenNamed(name)
		if err != nil {
			return nil, fmt.Errorf("cannot open network namespace %s: %w", name, err)
		}
		if created {
			cleanups = append(cleanups, func() { n.Close() })
		} else {
			cleanups = append(cleanups, n.Release)
		}
		return n, nil
	}
	// The relay's namespace holds its outbound sockets (and the TUN,
	// unless --tun-netns puts the TUN elsewhere).
	relayNS, err := openNS(cfg.Netns, "netns")
	if err != nil {
		return err
	}
	tunNS := relayNS
	if cfg.TunNetns != "" {
		if tunNS, err = openNS(cfg.TunNetns, "tun-netns"); err != nil {
			return err
		}
	}
	in := func(ns *netns.NS, fn func() error) error {
		if ns == nil {
			return fn()
		}
		return ns.Do(fn)
	}
	ctlNS := cfg.TunNetns
	if ctlNS == "" {
		ctlNS = cfg.Netns
	}
	ctl, err := control.Listen(control.SocketPath(cfg.Dev, ctlNS))
	if errors.Is(err, control.ErrInUse) {
		return fmt.Errorf("device %s is busy: another tunstack runs it (%w); stop it first or pick another --dev", cfg.Dev, err)
	}
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { ctl.Close() })

	tunCfg := netif.TUNConfig{Name: cfg.Dev, HostAddr: netip.PrefixFrom(cfg.HostAddr, cfg.Net.Bits()), MTU: cfg.MTU, Offload: true}
	if cfg.Net6.IsValid() {
		tunCfg.HostAddr6 = netip.PrefixFrom(cfg.HostAddr6, cfg.Net6.Bits())
	}
	var tun *netif.TUN
	if err := in(tunNS, func() (err error) { tun, err = netif.OpenTUN(tunCfg); return err }); err != nil {
		return err
	}
	cleanups = append(cleanups, func() { tun.Close() })
	// Loop safety with --outbound-mark, when the TUN shares the relay's
	// namespace: the routes go into routing table N, which a rule sends
	// every packet without mark N to; the relay's marked sockets skip the
	// rule and route by the main table, never into the TUN.
	table := 0
	if cfg.OutMark != 0 && cfg.TunNetns == "" && len(cfg.Routes) > 0 {
		table = cfg.OutMark
		var rules []*netlink.Rule
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			if fam == netlink.FAMILY_V6 && !cfg.Net6.IsValid() {
				continue
			}
			r := netlink.NewRule()
			r.Family, r.Mark, r.Invert, r.Table = fam, uint32(cfg.OutMark), true, table
			if err := in(tunNS, func() error { return netlink.RuleAdd(r) }); err != nil {
				return fmt.Errorf("cannot add the rule 'not fwmark %d lookup %d': %w", cfg.OutMark, table, err)
			}
			rules = append(rules, r)
		}
		cleanups = append(cleanups, func() {
			for _, r := range rules {
				in(tunNS, func() error { return netlink.RuleDel(r) })
			}
		})
	}
	for _, p := range cfg.Routes {
		rt := &netlink.Route{Dst: prefixNet(p), Table: table}
		err := in(tunNS, func() error {
			l, err := netlink.LinkByName(tun.Name())
			if err != nil {
				return err
			}
			rt.LinkIndex = l.Attrs().Index
			return netlink.RouteAdd(rt)
		})
		if err != nil {
			return fmt.Errorf("cannot route %s into %s: %w", p, tun.Name(), err)
		}
		// The routes go with the device; those in table N do too.
	}

	var link netif.Link = tun
	if cfg.PcapFile != "" {
		if link, err = startPcap(link, cfg.PcapFile, &cleanups); err != nil {
			return err
		}
	}
	var trace func(stack.TraceEvent)
	if cfg.TraceFile != "" {
		if trace, err = startTrace(cfg.TraceFile, out, &cleanups); err != nil {
			return err
		}
	}

	sess := &relaySession{cfg: cfg, control: ctl.Path()}
	var tunRTT func(net.Conn) (time.Duration, bool)
	switch cfg.Stack {
	case "gvisor":
		o := gvisorstack.OptionsFromProfile(policy.Linux())
		o.ZeroWindowACKRepair = true
		g, err := gvisorstack.New(link, gvisorstack.Config{Addr: cfg.StackAddr, Prefix: cfg.Net, Addr6: cfg.StackAddr6, Prefix6: cfg.Net6, Options: &o})
		if err != nil {
			return err
		}
		sess.network = g
		cleanups = append(cleanups, func() { g.Close() })
		gcfg := gvisorstack.FrontendConfig{KeepAliveIdle: -1} // negative: off
		if ka := cfg.KeepAlive; ka.Enable {
			gcfg = gvisorstack.FrontendConfig{KeepAliveIdle: ka.Idle, KeepAliveInterval: ka.Interval, KeepAliveProbes: ka.Count}
		}
		if sess.front, err = g.Frontend(gcfg); err != nil {
			return err
		}
	default:
		s, err := stack.New(link, stack.Config{Addr: cfg.StackAddr, Addr6: cfg.StackAddr6, Trace: trace})
		if err != nil {
			return err
		}
		sess.network = s
		cleanups = append(cleanups, func() { s.Close() })
		ka := cfg.KeepAlive
		f, err := s.Frontend(stack.FrontendConfig{
			// Keepalive on the client leg as on the outbound leg (Linux's
			// defaults unless --keepalive): a NAT between the client and
			// the TUN keeps its mapping, and a client that vanished is
			// noticed.
			KeepAlive: ka.Enable, KeepIdle: ka.Idle, KeepIntvl: ka.Interval, KeepCount: ka.Count,
			MaxSeg: cfg.MSS,
		})
		if err != nil {
			return err
		}
		sess.front = f
		tunRTT = func(c net.Conn) (time.Duration, bool) {
			if sc, ok := c.(*stack.Conn); ok {
				return sc.Info().SRTT, true
			}
			return 0, false
		}
		ctl.Serve(cfg.Stack, s)
	}

	dial, err := relay.NewDialer(relay.DialConfig{Upstream: cfg.Upstream, Interface: cfg.OutIface, Mark: cfg.OutMark,
		KeepAlive: cfg.KeepAlive, KeepAliveOff: !cfg.KeepAlive.Enable})
	if err != nil {
		return err
	}
	if relayNS != nil {
		// Outbound sockets are made in the relay's namespace; once made
		// they stay there whatever thread uses them.
		direct := dial
		dial = func(ctx context.Context, network, address string) (c net.Conn, err error) {
			err = relayNS.Do(func() error {
				c, err = direct(ctx, network, address)
				return err
			})
			return c, err
		}
	}
	r, err := relay.New(relay.Config{Dial: dial, DialTimeout: cfg.DialTimeout, MaxConns: cfg.MaxConns, TunRTT: tunRTT})
	if err != nil {
		return err
	}
	sess.r = r
	cleanups = append(cleanups, func() { r.Close() })
	if err := sess.front.Intercept(cfg.intercepted(), r.Handle); err != nil {
		return err
	}
	cleanups = append(cleanups, func() { sess.front.Close() })

	sess.printBanner(out)
	if ready != nil {
		ready(sess)
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "shutting down: removing", cfg.Dev)
			return nil
		case <-usr1:
			sess.printTable(out)
		}
	}
}

// prefixNet is p as netlink wants a route's destination.
func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// printTable prints the relayed connections and the counters (SIGUSR1).
func (s *relaySession) printTable(out io.Writer) {
	s.r.WriteTable(out)
	if f, ok := s.front.(*stack.Frontend); ok {
		st := f.Stats()
		fmt.Fprintf(out, "SYNs held %d (now %d, repeats %d), answered %d, established %d, reset %d, unreachable %d, dropped %d, cookie connections %d, SYN queue drops %d; UDP port unreachables %d, ICMP rate-limited %d\n",
			st.Held, st.HeldNow, st.SynRepeats, st.Answered, st.Established, st.Resets, st.Unreachables, st.Drops, st.CookieConns,
			st.ListenerCounts.SynQueueDrops, st.PortUnreachables, st.ICMPRateLimited)
	}
}

func (s *relaySession) printBanner(out io.Writer) {
	c := s.cfg
	fmt.Fprintf(out, "tunstack relay: %s stack on %s, MTU %d, upstream %s\n", c.Stack, c.Dev, c.MTU, c.Upstream)
	var ps []string
	for _, p := range c.intercepted() {
		ps = append(ps, p.String())
	}
	fmt.Fprintf(out, "  relaying TCP to %s\n", strings.Join(ps, ", "))
	if len(c.Routes) == 0 {
		fmt.Fprintf(out, "  no --route given: route what should be relayed into %s yourself\n", c.Dev)
	}
	if c.TunNetns != "" {
		fmt.Fprintf(out, "  %s is in network namespace %s; outbound connections leave from %s\n", c.Dev, c.TunNetns, nsText(c.Netns))
	} else if c.Netns != "" {
		fmt.Fprintf(out, "  running inside network namespace %s\n", c.Netns)
	}
	switch {
	case c.OutIface != "":
		fmt.Fprintf(out, "  outbound connections bound to %s (SO_BINDTODEVICE)\n", c.OutIface)
	case c.OutMark != 0 && c.TunNetns == "" && len(c.Routes) > 0:
		fmt.Fprintf(out, "  outbound connections marked %d; routes in table %d; rule: not fwmark %d lookup %d\n", c.OutMark, c.OutMark, c.OutMark, c.OutMark)
	case c.OutMark != 0:
		fmt.Fprintf(out, "  outbound connections marked %d (SO_MARK)\n", c.OutMark)
	}
	if c.MaxConns > 0 {
		fmt.Fprintf(out, "  at most %d connections; beyond, SYNs are refused with RST\n", c.MaxConns)
	}
	fmt.Fprintf(out, "  keepalive on both legs: %s (--keepalive IDLE,INTERVAL,COUNT)\n", keepAliveText(c.KeepAlive))
	fmt.Fprintf(out, "  UDP into %s is answered with ICMP port unreachable: keep DNS outside the TUN\n", c.Dev)
	fmt.Fprintf(out, "  kill -USR1 %d   (every relayed connection: destination, bytes, legs, RTT)\n", os.Getpid())
	if c.Stack == "tunstack" {
		fmt.Fprintf(out, "  sudo tunstack ss%s -tni   (the client-side sockets; control socket %s)\n", ssWhere(c.Dev, firstNonEmpty(c.TunNetns, c.Netns)), s.control)
	}
	fmt.Fprintln(out, "Ctrl-C stops it and removes", c.Dev)
}

func nsText(name string) string {
	if name == "" {
		return "this namespace"
	}
	return "namespace " + name
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
