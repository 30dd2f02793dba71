package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"tunstack/metrics"
	"tunstack/netif"
	"tunstack/policy"
)

// flagDef is one command-line flag. A flag with isBool set takes no value
// (--json) or an explicit one (--json=false); any other flag takes the next
// argument or the part after '='.
type flagDef struct {
	name   string
	isBool bool
	// set receives the value and returns a usageError that says what is
	// wrong with it and what to give instead.
	set func(value string) error
}

// parseFlags reads the flags in args and returns the other arguments in
// order. Flags and arguments may be mixed (tunstack lab NAME --stack gvisor),
// which the standard flag package does not allow; "--" ends the flags.
// Names take one dash or two; the flag h or help in any spelling (-h,
// --h, -help, --help, with or without a value) returns errHelp.
func parseFlags(cmd string, args []string, defs []flagDef) (positional []string, err error) {
	byName := make(map[string]flagDef, len(defs))
	for _, d := range defs {
		byName[d.name] = d
	}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return append(positional, args[i+1:]...), nil
		}
		if len(arg) < 2 || arg[0] != '-' {
			positional = append(positional, arg)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-"), "=")
		if name == "h" || name == "help" {
			return nil, errHelp
		}
		d, ok := byName[name]
		if !ok {
			return nil, usagef("there is no flag --%s for %s; run tunstack help to see the flags it takes.", name, cmd)
		}
		switch {
		case d.isBool && !hasValue:
			value = "true"
		case !hasValue:
			if i+1 == len(args) {
				return nil, usagef("--%s needs a value after it, as --%s VALUE or --%s=VALUE.", name, name, name)
			}
			i++
			value = args[i]
		}
		if err := d.set(value); err != nil {
			return nil, err
		}
	}
	return positional, nil
}

// boolFlag sets *dst from a --name or --name=true|false flag.
func boolFlag(name string, dst *bool) flagDef {
	return flagDef{name: name, isBool: true, set: func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return usagef("--%s takes true or false, not %q; give --%s alone for true.", name, v, name)
		}
		*dst = b
		return nil
	}}
}

// intFlag sets *dst to a whole number in [lo, hi]; what says what the
// number is for the error sentence, as in "a port number".
func intFlag(name, what string, lo, hi int, example string, dst *int) flagDef {
	return flagDef{name: name, set: func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			rng := fmt.Sprintf("from %d to %d", lo, hi)
			if hi == math.MaxInt32 {
				rng = fmt.Sprintf("of %d or more", lo)
			}
			return usagef("--%s must be %s %s, as in --%s %s, not %q.", name, what, rng, name, example, v)
		}
		*dst = n
		return nil
	}}
}

// oneOfFlag sets *dst to one of the allowed words.
func oneOfFlag(name string, allowed []string, dst *string) flagDef {
	return flagDef{name: name, set: func(v string) error {
		for _, a := range allowed {
			if v == a {
				*dst = v
				return nil
			}
		}
		return usagef("--%s must be %s, not %q.", name, orList(allowed), v)
	}}
}

// stringFlag sets *dst after check, which returns a usageError or nil.
func stringFlag(name string, dst *string, check func(string) error) flagDef {
	return flagDef{name: name, set: func(v string) error {
		if check != nil {
			if err := check(v); err != nil {
				return err
			}
		}
		*dst = v
		return nil
	}}
}

// serveKeepAlive is serve's keepalive unless --keepalive says otherwise:
// what Go's net.Listen gives every accepted connection on Linux (probes
// after 15 s idle, every 15 s, 9 of them; net.KeepAliveConfig), so that
// serve treats a client that vanished (its RST lost, its host gone) as a
// Go server on the kernel does, where Linux's listen(2) alone leaves
// keepalive off and such a connection stays ESTABLISHED for good.
var serveKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 15 * time.Second, Count: 9}

// Linux's bounds on the keepalive socket options (do_tcp_setsockopt:
// MAX_TCP_KEEPIDLE and MAX_TCP_KEEPINTVL are 32767 s, MAX_TCP_KEEPCNT
// 127).
const (
	maxKeepAliveTime  = 32767 * time.Second
	maxKeepAliveCount = 127
)

// keepAliveFlag sets *dst from IDLE,INTERVAL,COUNT (durations as in 15s or
// whole seconds as in 15, and a number of probes), or turns keepalive off
// with off or 0. example is the flag's default, for the error sentence.
func keepAliveFlag(name, example string, dst *net.KeepAliveConfig) flagDef {
	return flagDef{name: name, set: func(v string) error {
		if v == "off" || v == "0" {
			*dst = net.KeepAliveConfig{}
			return nil
		}
		bad := func(why string) error {
			return usagef("--%s takes IDLE,INTERVAL,COUNT, as in --%s %s (probes after IDLE idle, every INTERVAL, COUNT unanswered ones abort), or off; %q %s.", name, name, example, v, why)
		}
		parts := strings.Split(v, ",")
		if len(parts) != 3 {
			return bad("does not have three parts")
		}
		var times [2]time.Duration
		for i, p := range parts[:2] {
			d, err := time.ParseDuration(p)
			if n, nerr := strconv.Atoi(p); nerr == nil {
				d, err = time.Duration(n)*time.Second, nil
			}
			if err != nil || d < time.Millisecond || d > maxKeepAliveTime {
				return bad(fmt.Sprintf("has %q, which is not a duration from 1ms to %v", p, maxKeepAliveTime))
			}
			times[i] = d
		}
		count, err := strconv.Atoi(parts[2])
		if err != nil || count < 1 || count > maxKeepAliveCount {
			return bad(fmt.Sprintf("has the count %q, which is not a number from 1 to %d", parts[2], maxKeepAliveCount))
		}
		*dst = net.KeepAliveConfig{Enable: true, Idle: times[0], Interval: times[1], Count: count}
		return nil
	}}
}

// keepAliveText is how the banners show a keepalive configuration, in
// --keepalive's own form.
func keepAliveText(ka net.KeepAliveConfig) string {
	if !ka.Enable {
		return "off"
	}
	return fmt.Sprintf("%v,%v,%d", ka.Idle, ka.Interval, ka.Count)
}

// orList writes "a", "a or b", "a, b or c".
func orList(words []string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// serveConfig is everything `tunstack serve` was asked to do, validated.
type serveConfig struct {
	Dev       string       // TUN device name
	Net       netip.Prefix // IPv4 prefix of the link, masked to its network address
	HostAddr  netip.Addr   // the kernel's side of the TUN: the first address of Net
	StackAddr netip.Addr   // our stack's address: the second address of Net
	// IPv6: Net6 is the link's IPv6 prefix, masked; the zero Prefix (from
	// --net6 none) turns IPv6 off, and then HostAddr6 and StackAddr6 are
	// zero too.
	Net6       netip.Prefix
	HostAddr6  netip.Addr // the kernel's side: Net6's ::1
	StackAddr6 netip.Addr // our stack's: Net6's ::2
	Netns      string     // network namespace to run in; "" for the current one
	MTU        int        // link MTU in bytes (largest IP packet)

	Stack       string          // "tunstack" or "gvisor"
	ProfileName string          // "linux" or "rfc"
	Profile     *policy.Profile // a fresh copy of the named profile

	// Ports of the services; 0 turns a service off.
	HTTPPort, EchoPort, DiscardPort, ChargenPort uint16

	FilesDir    string        // directory served under /files/; "" for none
	Backlog     int           // accept queue length of each listener, in connections
	AcceptDelay time.Duration // wait before each Accept
	MaxConns    int           // connections the stack's listeners hold at once; 0: no cap
	Queues      int           // TUN queues, one engine shard each
	// KeepAlive is the keepalive every listener gives the connections it
	// accepts (--keepalive): on by default with Go's net.Listen's 15 s,
	// 15 s and 9, so that a client that vanished is aborted after 150 s.
	KeepAlive  net.KeepAliveConfig
	PcapFile   string           // capture file; "" for none
	TraceFile  string           // congestion events as JSON lines; "" for none
	Impair     string           // impairment SPEC as given; "" for none
	ImpairSpec netif.ImpairSpec // Impair, parsed
	Metrics    string           // HOST:PORT to serve Prometheus metrics on; "" for none
}

// serveStacks are the stacks serve can run; Linux is compared with, not served.
var serveStacks = []string{"tunstack", "gvisor"}

// defaultBacklog is serve's accept queue per listener when --backlog is not
// given: Linux's default net.core.somaxconn (4096 since Linux 5.4), which
// is the backlog a Go server's net.Listen asks for on Linux, so the demo
// services queue what such a server would. With 128, a burst of 1,000 new
// connections overflowed the HTTP listener and the clients retransmitted
// their SYNs a second later.
const defaultBacklog = 4096

// parseServeFlags parses the arguments after `tunstack serve`.
func parseServeFlags(args []string) (serveConfig, error) {
	var (
		netText     = "198.18.0.0/24"
		net6Text    = defaultNet6
		mtu         = 1500
		profileName = "linux"
		ports       = map[string]*int{"http": new(80), "echo": new(7), "discard": new(9), "chargen": new(19)}
		acceptDelay = "0s"
		cfg         = serveConfig{Dev: "tun0", Stack: "tunstack", Backlog: defaultBacklog, KeepAlive: serveKeepAlive}
	)
	defs := []flagDef{
		stringFlag("dev", &cfg.Dev, checkDevName),
		stringFlag("net", &netText, nil),
		stringFlag("net6", &net6Text, nil),
		stringFlag("netns", &cfg.Netns, checkNetnsName),
		intFlag("mtu", "a size in bytes", 576, 65535, "1500", &mtu),
		oneOfFlag("stack", serveStacks, &cfg.Stack),
		oneOfFlag("profile", policy.Names(), &profileName),
		stringFlag("files", &cfg.FilesDir, checkFilesDir),
		intFlag("backlog", "a number of connections", 0, math.MaxInt32, strconv.Itoa(defaultBacklog), &cfg.Backlog),
		stringFlag("accept-delay", &acceptDelay, nil),
		intFlag("max-conns", "a number of connections (0 for no cap)", 0, math.MaxInt32, "1000", &cfg.MaxConns),
		keepAliveFlag("keepalive", "15s,15s,9", &cfg.KeepAlive),
		intFlag("queues", "a number of queues", 1, netif.MaxQueues, "2", &cfg.Queues),
		stringFlag("pcap", &cfg.PcapFile, checkPcapFile),
		stringFlag("trace", &cfg.TraceFile, checkTraceFile),
		stringFlag("impair", &cfg.Impair, checkImpairSpec),
		stringFlag("metrics", &cfg.Metrics, checkMetricsAddr),
	}
	for _, name := range []string{"http", "echo", "discard", "chargen"} {
		defs = append(defs, intFlag(name, "a port number (0 turns the service off)", 0, 65535, strconv.Itoa(*ports[name]), ports[name]))
	}
	rest, err := parseFlags("serve", args, defs)
	if err != nil {
		return serveConfig{}, err
	}
	if len(rest) > 0 {
		return serveConfig{}, usagef("serve takes no arguments, but got %q; give its settings as flags, such as --http 8080.", rest[0])
	}

	if cfg.Net, cfg.HostAddr, cfg.StackAddr, err = parseLinkNet(netText); err != nil {
		return serveConfig{}, err
	}
	if cfg.Net6, cfg.HostAddr6, cfg.StackAddr6, err = parseLinkNet6(net6Text); err != nil {
		return serveConfig{}, err
	}
	if cfg.Net6.IsValid() && mtu < 1280 {
		// RFC 8200 §5: an IPv6 link carries 1280-byte packets; Linux
		// turns IPv6 off on a device with a smaller MTU.
		return serveConfig{}, usagef("--mtu %d is below IPv6's minimum of 1280, and IPv6 is on (--net6); give --mtu 1280 or more, or --net6 none.", mtu)
	}
	cfg.MTU = mtu
	cfg.ProfileName = profileName
	if cfg.Profile, err = policy.ByName(profileName); err != nil {
		return serveConfig{}, usagef("--profile %q is not available (%v); use %s.", profileName, err, orList(policy.Names()))
	}
	cfg.HTTPPort, cfg.EchoPort = uint16(*ports["http"]), uint16(*ports["echo"])
	cfg.DiscardPort, cfg.ChargenPort = uint16(*ports["discard"]), uint16(*ports["chargen"])
	if err := checkDistinctPorts(ports); err != nil {
		return serveConfig{}, err
	}
	if cfg.Impair != "" {
		if cfg.ImpairSpec, err = netif.ParseImpairSpec(cfg.Impair); err != nil {
			return serveConfig{}, usagef("--impair %q: %v", cfg.Impair, err)
		}
	}
	if cfg.TraceFile != "" && cfg.Stack != "tunstack" {
		return serveConfig{}, usagef("--trace needs --stack tunstack: %s reports no congestion events; drop --trace or use our stack.", cfg.Stack)
	}
	if cfg.MaxConns > 0 && cfg.Stack != "tunstack" {
		// gVisor's netstack has no cap on its connections to set, only
		// per-listener backlogs.
		return serveConfig{}, usagef("--max-conns needs --stack tunstack: %s's netstack has no connection cap; drop --max-conns or use our stack.", cfg.Stack)
	}
	if cfg.Queues, err = serveQueues(cfg); err != nil {
		return serveConfig{}, err
	}
	if cfg.AcceptDelay, err = time.ParseDuration(acceptDelay); err != nil || cfg.AcceptDelay < 0 {
		return serveConfig{}, usagef("--accept-delay must be a duration of 0 or more, as in --accept-delay 50ms, not %q.", acceptDelay)
	}
	return cfg, nil
}

// serveQueues is how many TUN queues serve opens, one engine shard on
// each (stack.NewShards): --queues, or by default netif.DefaultQueues (one
// per CPU). gVisor's stack, a capture and an impairment each run on one
// link, so they take one queue: by default, and --queues above 1 with
// them is refused.
// --max-conns takes one queue by default too.
func serveQueues(cfg serveConfig) (int, error) {
	var oneLink string
	switch {
	case cfg.Stack != "tunstack":
		oneLink = "--stack " + cfg.Stack + " runs on one queue"
	case cfg.PcapFile != "":
		oneLink = "--pcap captures one link"
	case cfg.Impair != "":
		oneLink = "--impair impairs one link"
	}
	switch {
	case cfg.Queues == 0 && (oneLink != "" || cfg.MaxConns > 0):
		// --max-conns caps one engine exactly; shards divide the cap,
		// which --queues asks for explicitly.
		return 1, nil
	case cfg.Queues == 0:
		return netif.DefaultQueues(), nil
	case cfg.Queues > 1 && oneLink != "":
		return 0, usagef("--queues %d: %s; give --queues 1 or drop --queues.", cfg.Queues, oneLink)
	}
	return cfg.Queues, nil
}

// parseLinkNet checks that text is an IPv4 prefix with room for the host's
// and the stack's addresses, and returns the masked prefix and both.
func parseLinkNet(text string) (prefix netip.Prefix, host, stack netip.Addr, err error) {
	p, perr := netip.ParsePrefix(text)
	switch {
	case perr != nil:
		err = usagef("--net must be an IPv4 prefix in CIDR form, as in --net 198.18.0.0/24, not %q.", text)
	case !p.Addr().Is4():
		err = usagef("--net %s is not IPv4, and the link speaks IPv4 only; give an IPv4 prefix such as 198.18.0.0/24.", text)
	case p.Bits() > 30:
		// A /30 has exactly two usable addresses besides network and broadcast.
		err = usagef("--net %s has no room for two hosts; use a prefix of /30 or shorter, such as 198.18.0.0/24.", text)
	}
	if err != nil {
		return
	}
	prefix = p.Masked()
	host = prefix.Addr().Next()
	stack = host.Next()
	return prefix, host, stack, nil
}

// defaultNet6 is serve's IPv6 prefix: a unique local /64 (RFC 4193) whose
// global ID spells "tuns" in ASCII (74 75 6e 73), beside 198.18.0.0/24.
const defaultNet6 = "fd00:7475:6e73::/64"

// parseLinkNet6 reads --net6: "none" turns IPv6 off (all zero); otherwise
// text must be an IPv6 prefix with room for ::1 (the host's) and ::2 (the
// stack's), which it returns with the prefix masked.
func parseLinkNet6(text string) (prefix netip.Prefix, host, stack netip.Addr, err error) {
	if text == "none" {
		return
	}
	p, perr := netip.ParsePrefix(text)
	switch {
	case perr != nil:
		err = usagef("--net6 must be an IPv6 prefix in CIDR form, as in --net6 %s, or none to turn IPv6 off, not %q.", defaultNet6, text)
	case !p.Addr().Is6() || p.Addr().Is4In6():
		err = usagef("--net6 %s is not IPv6; give an IPv6 prefix such as %s, or none to turn IPv6 off.", text, defaultNet6)
	case p.Addr().Zone() != "":
		err = usagef("--net6 %s has a zone; give the prefix without %%%s, as in %s.", text, p.Addr().Zone(), defaultNet6)
	case p.Bits() > 126:
		// A /126 holds ::0 to ::3: the two addresses and room around them.
		err = usagef("--net6 %s has no room for ::1 and ::2; use a prefix of /126 or shorter, such as %s.", text, defaultNet6)
	case p.Addr().IsMulticast() || p.Masked().Addr().IsLinkLocalUnicast() || p.Masked().Addr().IsLoopback():
		err = usagef("--net6 %s is not a unicast prefix a link can be given; use a unique local prefix such as %s.", text, defaultNet6)
	}
	if err != nil {
		return
	}
	prefix = p.Masked()
	host = prefix.Addr().Next()
	stack = host.Next()
	return prefix, host, stack, nil
}

// checkDistinctPorts refuses two enabled services on one port.
func checkDistinctPorts(ports map[string]*int) error {
	order := []string{"http", "echo", "discard", "chargen"}
	for i, a := range order {
		for _, b := range order[i+1:] {
			if p := *ports[a]; p != 0 && p == *ports[b] {
				return usagef("--%s and --%s both ask for port %d; give each service its own port, or 0 to turn one off.", a, b, p)
			}
		}
	}
	return nil
}

// checkImpairSpec validates --impair with the link's own parser, whose
// error names the bad item and what is accepted.
func checkImpairSpec(v string) error {
	if _, err := netif.ParseImpairSpec(v); err != nil {
		return usagef("--impair %q: %v", v, err)
	}
	return nil
}

// checkDevName applies Linux's rule for interface names: 1 to 15 bytes,
// not "." or "..", and no '/', ':' or white space.
func checkDevName(v string) error {
	bad := v == "" || len(v) > 15 || v == "." || v == ".." || strings.ContainsAny(v, "/: \t\n\r\v\f")
	if bad {
		return usagef("--dev %q is not a usable interface name; use 1 to 15 characters without '/', ':' or spaces, as in --dev tun0.", v)
	}
	return nil
}

// checkNetnsName allows names that are safe as a file under /run/netns and
// in a shell command line.
func checkNetnsName(v string) error {
	ok := v != "" && len(v) <= 64 && v != "." && v != ".."
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			ok = false
		}
	}
	if !ok {
		return usagef("--netns %q is not a usable namespace name; use up to 64 letters, digits, '-', '_' or '.', as in --netns tunstack.", v)
	}
	return nil
}

func checkFilesDir(v string) error {
	fi, err := os.Stat(v)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return usagef("--files %q does not exist; give the directory to serve under /files/.", v)
	case err != nil:
		return usagef("--files %q cannot be read (%v); give a directory you can read.", v, err)
	case !fi.IsDir():
		return usagef("--files %q is a file, not a directory; give the directory that holds it.", v)
	}
	return nil
}

func checkMetricsAddr(v string) error {
	if err := metrics.CheckAddr(v); err != nil {
		return usagef("--metrics %v.", err)
	}
	return nil
}

func checkPcapFile(v string) error  { return checkOutputFile("pcap", "serve.pcap", v) }
func checkTraceFile(v string) error { return checkOutputFile("trace", "trace.jsonl", v) }

// checkOutputFile checks what can be checked of a file serve will create,
// before it is created: that it is not a directory and that its directory
// exists. example is a file name to suggest.
func checkOutputFile(flag, example, v string) error {
	if v == "" {
		return usagef("--%s needs a file name, as in --%s %s.", flag, flag, example)
	}
	if fi, err := os.Stat(v); err == nil && fi.IsDir() {
		return usagef("--%s %q is a directory; give a file name inside it, as in --%s %s.", flag, v, flag, filepath.Join(v, example))
	}
	dir := filepath.Dir(v)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("--%s %q cannot be created because the directory %q does not exist; create it or choose another path.", flag, v, dir)
	}
	return nil
}

// serveCommand makes the commands entry for serve from the function that
// runs it: serve.go registers commands["serve"] = serveCommand(runServe).
func serveCommand(run func(serveConfig) error) func(args []string) error {
	return func(args []string) error {
		cfg, err := parseServeFlags(args)
		if err != nil {
			return err
		}
		return run(cfg)
	}
}
