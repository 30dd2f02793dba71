package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"tunstack/control"
	"tunstack/demo"
	"tunstack/gvisorstack"
	"tunstack/lab/netns"
	"tunstack/metrics"
	"tunstack/netif"
	"tunstack/policy"
	"tunstack/stack"
	"tunstack/tcpcore"
)

func init() {
	commands["serve"] = func(args []string) error {
		cfg, err := parseServeFlags(args)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runServe(ctx, cfg, os.Stdout, nil)
	}
}

// runServe brings up the TUN link, the chosen stack and the demo services,
// and runs until ctx ends. Everything it configured is removed before it
// returns, on success and on error alike. ready, if not nil, is called once
// the services accept connections (tests use it instead of waiting).
func runServe(ctx context.Context, cfg serveConfig, out io.Writer, ready func(*serveSession)) (err error) {
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()

	// The namespace, if asked for: the TUN device is created inside it, and
	// once its file descriptor is open the device stays there whatever
	// thread uses it.
	var ns *netns.NS
	if cfg.Netns != "" {
		if os.Geteuid() != 0 {
			return errors.New("--netns needs root to create or enter a network namespace: run with sudo")
		}
		n, created, err := netns.OpenNamed(cfg.Netns)
		if err != nil {
			return fmt.Errorf("cannot open network namespace %s: %w", cfg.Netns, err)
		}
		ns = n
		if created {
			cleanups = append(cleanups, func() { n.Close() })
		} else {
			cleanups = append(cleanups, n.Release)
		}
	}
	// The control socket (tunstack ss) is claimed before the device: a
	// live one means another serve runs this device, which it says
	// plainly.
	ctl, err := control.Listen(control.SocketPath(cfg.Dev, cfg.Netns))
	if errors.Is(err, control.ErrInUse) {
		return fmt.Errorf("device %s is busy: another tunstack serve runs it (%w); stop it first or pick another --dev", cfg.Dev, err)
	}
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { ctl.Close() })
	tunCfg := netif.TUNConfig{Name: cfg.Dev, HostAddr: netip.PrefixFrom(cfg.HostAddr, cfg.Net.Bits()), MTU: cfg.MTU, Offload: true, Queues: cfg.Queues}
	if cfg.Net6.IsValid() {
		tunCfg.HostAddr6 = netip.PrefixFrom(cfg.HostAddr6, cfg.Net6.Bits())
	}
	var tun *netif.TUN
	open := func() (err error) {
		tun, err = netif.OpenTUN(tunCfg)
		return err
	}
	if ns != nil {
		err = ns.Do(open)
	} else {
		err = open()
	}
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { tun.Close() })

	// The capture point sits between impairment and the stack: the pcap
	// shows what the engine received after inbound impairment and what it
	// sent before outbound impairment; `tcpdump -i DEV` shows the wire.
	// One link per queue, each read by its own engine shard; a capture
	// and an impairment (one queue, serveQueues) wrap the only one.
	var links []netif.Link
	var linkCounter *metrics.LinkCounter
	for _, q := range tun.Queues() {
		var l netif.Link = q
		if cfg.Metrics != "" {
			// Counted at the device, below the impairment.
			if linkCounter == nil {
				linkCounter = metrics.NewLinkCounter(q)
				l = linkCounter
			} else {
				l = linkCounter.Queue(q)
			}
		}
		links = append(links, l)
	}
	link := links[0]
	var impaired *netif.ImpairedLink
	if cfg.ImpairSpec.Enabled() {
		il, err := netif.NewImpairedLink(link, cfg.ImpairSpec)
		if err != nil {
			return fmt.Errorf("cannot start the impairment: %w", err)
		}
		link, impaired = il, il
		cleanups = append(cleanups, func() { il.Close() })
	}
	if cfg.PcapFile != "" {
		if link, err = startPcap(link, cfg.PcapFile, &cleanups); err != nil {
			return err
		}
	}

	// The trace writer outlives the stack (cleanups run in reverse), so
	// every event the stack reports is written before its summary.
	var trace func(stack.TraceEvent)
	if cfg.TraceFile != "" {
		if trace, err = startTrace(cfg.TraceFile, out, &cleanups); err != nil {
			return err
		}
	}

	links[0] = link
	network, err := newNetwork(cfg, links, trace)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { network.Close() })
	if insp, ok := network.(stack.Inspector); ok {
		ctl.Serve(cfg.Stack, insp)
	}

	sess := &serveSession{cfg: cfg, network: network, tun: tun, started: time.Now(), control: ctl.Path()}
	errc := make(chan error, 8) // one per listener at most: four services, two families
	if err := sess.startServices(errc); err != nil {
		return err
	}
	cleanups = append(cleanups, sess.stopServices)
	if cfg.Metrics != "" {
		stop, err := sess.serveMetrics(ns, metrics.Source{Network: network, Link: linkCounter, TUN: tun, Impaired: impaired})
		if err != nil {
			return err
		}
		cleanups = append(cleanups, stop)
	}
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
		case err := <-errc:
			return err
		case <-usr1:
			sess.printDevice(out)
			sess.printListeners(out)
			sess.printConns(out)
		}
	}
}

// newNetwork builds the stack that serves on links, the TUN's queues (one
// for gVisor); trace, if not nil, receives our stack's congestion events
// (flags refuse --trace on gVisor).
func newNetwork(cfg serveConfig, links []netif.Link, trace func(stack.TraceEvent)) (stack.Network, error) {
	switch cfg.Stack {
	case "gvisor":
		prof := cfg.Profile
		if prof == nil {
			prof = policy.Linux()
		}
		o := gvisorstack.OptionsFromProfile(prof)
		// Without the repair an echo can hang for good under loss
		// (docs/gvisor.md, "Zero-window ACK deadlock").
		o.ZeroWindowACKRepair = true
		return gvisorstack.New(links[0], gvisorstack.Config{Addr: cfg.StackAddr, Prefix: cfg.Net, Addr6: cfg.StackAddr6, Prefix6: cfg.Net6, Options: &o})
	default:
		return stack.NewShards(links, stack.Config{Addr: cfg.StackAddr, Addr6: cfg.StackAddr6, Profile: cfg.Profile, Trace: trace, MaxConns: cfg.MaxConns})
	}
}

// serveSession is one running serve: its stack and listeners.
type serveSession struct {
	cfg       serveConfig
	network   stack.Network
	tun       *netif.TUN
	started   time.Time
	listeners []namedListener
	http      *http.Server
	metrics   *metrics.Server // with --metrics
	// metricsUnpublished is why the metrics' URL could not be recorded
	// for `tunstack nstat --dev`, if it could not.
	metricsUnpublished error
	control            string // the control socket's path
}

type namedListener struct {
	name string
	ln   net.Listener
}

// serveReadHeaderTimeout bounds the wait for a request's header on the
// demo site, from the connection's start or from a keep-alive request's
// first bytes; at it the server closes the connection without a response.
const serveReadHeaderTimeout = 30 * time.Second

// configurableNetwork is a stack.Network whose listeners take options:
// both of serve's stacks.
type configurableNetwork interface {
	ListenWith(ctx context.Context, lc stack.ListenConfig, network, address string) (net.Listener, error)
}

// listenWith opens a listener on address with lc's options, which only a
// configurableNetwork takes; lc.Backlog 0 is the stack's somaxconn.
func listenWith(n stack.Network, lc stack.ListenConfig, address string) (net.Listener, error) {
	cn, ok := n.(configurableNetwork)
	if !ok {
		return nil, fmt.Errorf("the stack %T takes no listener options", n)
	}
	return cn.ListenWith(context.Background(), lc, "tcp", address)
}

// listen opens the listeners of service name on port: one on the stack's
// IPv4 address and, with IPv6 on, one on its IPv6 address, a socket per
// family as nginx and sshd open them on Linux (their IPv6 socket is
// IPV6_V6ONLY), rather than one dual-stack socket on [::] as a Go
// server's net.Listen(":80") is. So each family's connections keep their
// own addresses: an IPv4 client is 198.18.0.1 in ss, the trace, the
// metrics and the capture, not ::ffff:198.18.0.1, and everything that
// reads the IPv4 side reads as it did without IPv6. Each listener has its
// own accept queue of --backlog.
func (s *serveSession) listen(name string, port uint16) ([]net.Listener, error) {
	addrs := []netip.Addr{s.cfg.StackAddr}
	if s.cfg.Net6.IsValid() {
		addrs = append(addrs, s.cfg.StackAddr6)
	}
	var lns []net.Listener
	for _, a := range addrs {
		addr := netip.AddrPortFrom(a, port).String()
		ln, err := listenWith(s.network, stack.ListenConfig{Backlog: s.cfg.Backlog, KeepAlive: s.cfg.KeepAlive}, addr)
		if err != nil {
			return nil, fmt.Errorf("cannot listen on %s for %s: %w", addr, name, err)
		}
		s.listeners = append(s.listeners, namedListener{name, ln})
		if s.cfg.AcceptDelay > 0 {
			ln = &delayedListener{Listener: ln, until: s.started.Add(s.cfg.AcceptDelay), closed: make(chan struct{})}
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func (s *serveSession) startServices(errc chan<- error) error {
	type service struct {
		name  string
		port  uint16
		serve func(net.Listener) error
	}
	s.http = &http.Server{
		Handler:           demo.NewSiteHandler(demo.SiteConfig{StackName: s.cfg.Stack, FilesDir: s.cfg.FilesDir}),
		ReadHeaderTimeout: serveReadHeaderTimeout,
	}
	services := []service{
		{"http", s.cfg.HTTPPort, func(ln net.Listener) error {
			if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				return err
			}
			return nil
		}},
		{"echo", s.cfg.EchoPort, demo.ServeEcho},
		{"discard", s.cfg.DiscardPort, demo.ServeDiscard},
		{"chargen", s.cfg.ChargenPort, demo.ServeChargen},
	}
	for _, svc := range services {
		if svc.port == 0 {
			continue
		}
		lns, err := s.listen(svc.name, svc.port)
		if err != nil {
			s.stopServices()
			return err
		}
		for _, ln := range lns {
			go func() {
				if err := svc.serve(ln); err != nil {
					errc <- fmt.Errorf("%s service stopped: %w", svc.name, err)
				}
			}()
		}
	}
	return nil
}

func (s *serveSession) stopServices() {
	if s.http != nil {
		s.http.Close()
	}
	for _, l := range s.listeners {
		l.ln.Close()
	}
}

func (s *serveSession) printBanner(out io.Writer) {
	c := s.cfg
	fmt.Fprintf(out, "tunstack serve: %s stack (profile %s) on %s, MTU %d\n", c.Stack, c.ProfileName, c.Dev, c.MTU)
	if c.Queues > 1 {
		fmt.Fprintf(out, "  %d queues, an engine shard on each (--queues)\n", c.Queues)
	}
	where := ""
	if c.Netns != "" {
		where = "ip netns exec " + c.Netns + " "
		fmt.Fprintf(out, "  running inside network namespace %s\n", c.Netns)
	}
	if c.Net6.IsValid() {
		fmt.Fprintf(out, "  host (kernel) side %s and %s, stack %s and %s\n", c.HostAddr, c.HostAddr6, c.StackAddr, c.StackAddr6)
	} else {
		fmt.Fprintf(out, "  host (kernel) side %s, stack %s (IPv6 off)\n", c.HostAddr, c.StackAddr)
	}
	if c.ImpairSpec.Enabled() {
		fmt.Fprintf(out, "  impairment: %s\n", c.ImpairSpec)
	}
	for _, l := range s.listeners {
		fmt.Fprintf(out, "  %-8s %s\n", l.name, l.ln.Addr())
	}
	if c.AcceptDelay > 0 {
		fmt.Fprintf(out, "  the services start calling Accept after %v\n", c.AcceptDelay)
	}
	fmt.Fprintf(out, "  keepalive on accepted connections: %s (--keepalive IDLE,INTERVAL,COUNT)\n", keepAliveText(c.KeepAlive))
	if c.MaxConns > 0 {
		fmt.Fprintf(out, "  at most %d connections at once (--max-conns); SYNs beyond are dropped and counted\n", c.MaxConns)
	}
	fmt.Fprintln(out, "try:")
	if c.HTTPPort != 0 {
		base := "http://" + netip.AddrPortFrom(c.StackAddr, c.HTTPPort).String()
		if c.HTTPPort == 80 {
			base = "http://" + c.StackAddr.String()
		}
		fmt.Fprintf(out, "  %scurl %s/\n", where, base)
		fmt.Fprintf(out, "  %scurl -o /dev/null %s/bytes/100000000\n", where, base)
		if c.Net6.IsValid() {
			base6 := "http://" + netip.AddrPortFrom(c.StackAddr6, c.HTTPPort).String()
			if c.HTTPPort == 80 {
				base6 = "http://[" + c.StackAddr6.String() + "]"
			}
			// Quoted: the brackets are a glob to the shell.
			fmt.Fprintf(out, "  %scurl -6 '%s/'\n", where, base6)
		}
	}
	fmt.Fprintf(out, "  %sping -c 3 %s\n", where, c.StackAddr)
	if c.Net6.IsValid() {
		fmt.Fprintf(out, "  %sping -6 -c 3 %s\n", where, c.StackAddr6)
	}
	fmt.Fprintf(out, "  %stcpdump -n -i %s\n", where, c.Dev)
	if c.Net6.IsValid() {
		fmt.Fprintf(out, "  %stcpdump -n -i %s ip6   (IPv6 only)\n", where, c.Dev)
	}
	if c.PcapFile != "" {
		fmt.Fprintf(out, "  tshark -r %s\n", c.PcapFile)
	}
	if c.TraceFile != "" {
		fmt.Fprintf(out, "  tail -f %s   (congestion events, one JSON line each)\n", c.TraceFile)
	}
	fmt.Fprintf(out, "  sudo tunstack ss%s -tni   (its sockets, as ss shows the kernel's; control socket %s)\n", ssWhere(c.Dev, c.Netns), s.control)
	if s.metrics != nil {
		fmt.Fprintf(out, "  %scurl %s   (Prometheus metrics; %stunstack nstat: them under nstat's names)\n", where, s.metrics.URL(), where)
		if s.metricsUnpublished != nil {
			fmt.Fprintf(out, "    (not recorded for tunstack nstat --dev: %v; give it --metrics %s)\n", s.metricsUnpublished, s.metrics.URL())
		}
	}
	fmt.Fprintf(out, "  kill -USR1 %d   (the device's drops, like ip -s link; listener queues, like ss -lnt; per-connection counters)\n", os.Getpid())
	fmt.Fprintln(out, "Ctrl-C stops it and removes", c.Dev)
}

// serveMetrics serves the metrics on --metrics, in the namespace serve runs
// the device in, and records their URL for `tunstack nstat --dev`. stop
// undoes both.
func (s *serveSession) serveMetrics(ns *netns.NS, src metrics.Source) (stop func(), err error) {
	var ln net.Listener
	listen := func() (err error) {
		ln, err = net.Listen("tcp", s.cfg.Metrics)
		return err
	}
	if ns != nil {
		err = ns.Do(listen)
	} else {
		err = listen()
	}
	if err != nil {
		return nil, fmt.Errorf("cannot serve metrics on %s: %w; pick another --metrics address", s.cfg.Metrics, err)
	}
	s.metrics = metrics.Serve(ln, src)
	var unpublish func()
	publish := func() (err error) {
		unpublish, err = metrics.Publish(s.cfg.Dev, s.metrics.URL())
		return err
	}
	if ns != nil {
		err = ns.Do(publish)
	} else {
		err = publish()
	}
	if err != nil {
		// Only `tunstack nstat --dev` needs the record: the banner says
		// so, and --metrics URL still works.
		s.metricsUnpublished = err
		unpublish = func() {}
	}
	return func() {
		unpublish()
		s.metrics.Close()
	}, nil
}

// printDevice prints the TUN device's queue and what the kernel dropped
// on it, as `ip -s link show DEV` shows them: TX dropped are packets that
// never reached the stack because the queue was full.
func (s *serveSession) printDevice(out io.Writer) {
	qlen, err := s.tun.TxQueueLen()
	if err != nil {
		fmt.Fprintf(out, "device %s: %v\n", s.cfg.Dev, err)
		return
	}
	ds, err := s.tun.DeviceStats()
	if err != nil {
		fmt.Fprintf(out, "device %s: %v\n", s.cfg.Dev, err)
		return
	}
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Device\tTxQueueLen\tTxPackets\tTxDropped\tRxPackets\tRxDropped")
	fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\n", s.cfg.Dev, qlen, ds.TxPackets, ds.TxDropped, ds.RxPackets, ds.RxDropped)
	tw.Flush()
}

// listenerStats is offered by listeners that can show their queues.
type listenerStats interface {
	Stats() tcpcore.ListenerStats
}

// printListeners prints each listener's queues the way `ss -lnt` shows
// them: Recv-Q is the accept queue, Send-Q the backlog.
func (s *serveSession) printListeners(out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Service\tLocal\tRecv-Q\tSend-Q\tSYN-Q\tOverflows\tDrops\tMaxConnsDrops")
	for _, l := range s.listeners {
		if st, ok := l.ln.(listenerStats); ok {
			x := st.Stats()
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", l.name, l.ln.Addr(), x.AcceptQueue, x.Backlog, x.SynQueue, x.Overflows, x.Drops, x.MaxConnsDrops)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t-\t%d\t-\t-\t-\t-\n", l.name, l.ln.Addr(), s.cfg.Backlog)
		}
	}
	tw.Flush()
}

// connStats is offered by stacks that report their connections: ours.
type connStats interface {
	AllConns() []tcpcore.Info
	ConnTotals() tcpcore.ConnCounters
}

// printConns prints, for every connection, its congestion state and its
// loss-recovery counters, then the counters summed over every connection
// since serve started.
func (s *serveSession) printConns(out io.Writer) {
	cs, ok := s.network.(connStats)
	if !ok {
		fmt.Fprintf(out, "per-connection counters: the %s stack does not report them\n", s.cfg.Stack)
		return
	}
	infos := cs.AllConns()
	slices.SortFunc(infos, func(a, b tcpcore.Info) int {
		if c := a.Local.Compare(b.Local); c != 0 {
			return c
		}
		return a.Remote.Compare(b.Remote)
	})
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Local\tRemote\tState\tCwnd\tSSThresh\tSRTT\tRTO\t"+strings.Join(counterColumns, "\t"))
	for _, in := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n",
			in.Local, in.Remote, in.State, in.CwndBytes, ssthreshText(in.SSThreshBytes),
			in.SRTT.Round(10*time.Microsecond), in.RTO.Round(time.Millisecond), counterCells(in.Counters))
	}
	fmt.Fprintf(tw, "all since start\t\t\t\t\t\t\t%s\n", counterCells(cs.ConnTotals()))
	tw.Flush()
}

// counterColumns head the table's counter cells: every retransmission is
// in exactly one of the first six (Retx is their sum), then the loss
// recovery episodes and D-SACKs.
var counterColumns = []string{"Retx", "FastRetx", "RTORetx", "LostRetx", "RescueRetx", "TLPRetx", "SYNRetx",
	"Timeouts", "SACKRecov", "DSACKsOut", "DSACKsIn", "Undos"}

// counterCells are c's cells under counterColumns, tab-separated.
func counterCells(c tcpcore.ConnCounters) string {
	vals := []uint64{c.Retransmits, c.FastRetransmits, c.RTORetransmits, c.LostRetransmits, c.RescueRetransmits, c.TLPRetransmits, c.SYNRetransmits,
		c.Timeouts, c.SACKRecoveries, c.DSACKsSent, c.DSACKsReceived, c.SpuriousUndos}
	cells := make([]string, len(vals))
	for i, v := range vals {
		cells[i] = strconv.FormatUint(v, 10)
	}
	return strings.Join(cells, "\t")
}

// ssthreshText shows the initial "arbitrarily high" ssthresh (RFC 5681
// §3.1; the controllers start it at 1 GiB, which no window reaches) as inf.
func ssthreshText(b int) string {
	if b >= 1<<30 {
		return "inf"
	}
	return strconv.Itoa(b)
}

// delayedListener makes the application start calling Accept only once
// its time comes, so connections pile up in the accept queue meanwhile
// (the backlog experiment in docs/experiments.md).
type delayedListener struct {
	net.Listener
	until  time.Time
	closed chan struct{}
}

func (l *delayedListener) Accept() (net.Conn, error) {
	if d := time.Until(l.until); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	return l.Listener.Accept()
}

func (l *delayedListener) Close() error {
	select {
	case <-l.closed:
	default:
		close(l.closed)
	}
	return l.Listener.Close()
}
