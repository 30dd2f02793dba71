package conformance

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"tunstack/wire"
)

// Config is what a script runs with: packetdrill's options, set on the
// command line or by the script's option lines. Processing follows
// packetdrill's: the defaults, then the script's options in order, then the
// command line's in order (so the command line wins), then the addresses
// left unset get their defaults.
type Config struct {
	IPVersion string // "ipv4" (also when none is given), "ipv4-mapped-ipv6" or "ipv6"

	// LocalIP and RemoteIP are the addresses on the wire: the stack's
	// and the scripted peer's. IPv4 (ipv4, ipv4-mapped-ipv6): by
	// default a random host of 192.168.0.0/16 and 192.0.2.1; IPv6: a
	// random host of fd3d:fa7b:d17d::/96 and 2001:db8::1.
	LocalIP  netip.Addr
	RemoteIP netip.Addr
	// RemotePrefix is the network routed to the peer: --remote_ip's
	// "/len" (all address bits when it has none), default 192.0.2.0/24
	// (IPv6: 2001:db8::/32).
	RemotePrefix netip.Prefix
	// LocalPrefixLen is the local address's network: the netmask's
	// length for IPv4, 48 for IPv6 (packetdrill's, whatever the options).
	LocalPrefixLen int
	GatewayIP      netip.Addr // default 192.168.0.1 (IPv6: fd3d:fa7b:d17d:8888::)
	Netmask        netip.Addr // of the local IPv4 address; default 255.255.0.0

	// BindIP and ConnectIP are the addresses the script's sockets bind
	// and connect to, and SocketFamily6 their family: for ipv4 the wire
	// addresses and AF_INET, for ipv6 the wire addresses and AF_INET6,
	// for ipv4-mapped-ipv6 the IPv4 wire addresses mapped into IPv6
	// (::ffff:a.b.c.d) and AF_INET6 (packetdrill's config.c table).
	BindIP, ConnectIP netip.Addr
	SocketFamily6     bool

	BindPort    uint16 // bind(..., ...) binds this port (8080)
	ConnectPort uint16 // connect(..., ...) goes to this port (8080)
	MTU         int    // of the link (1500)
	// MSS, when not 0, is the segment size packetdrill gives the kernel
	// for inbound TCP packets longer than it (a GSO packet); no target
	// here does that, so setting it only adds a note.
	MSS int

	Tolerance        time.Duration // --tolerance_usecs (4 ms)
	TolerancePercent float64       // --tolerance_percent (12.5)
	TSTick           time.Duration // --tcp_ts_tick_usecs; 0: TS val is not checked

	// Defines are the -D / --define NAME=VALUE symbols: a WORD of the
	// script's events equal to NAME is read as VALUE (an integer, a
	// "string", a `command` or another word).
	Defines map[string]string
	// InitScripts are the --init_scripts commands, run with /bin/sh -c
	// before the script's own init command.
	InitScripts []string
	Verbose     bool
	DryRun      bool // parse and configure only
	// StrictSegments: each outbound line matches one packet; by default
	// a line may take the packets that continue the one that came.
	StrictSegments bool

	// Notes say which options were accepted without effect here, and why.
	Notes []string

	// The address options as written, parsed when the options are done.
	localText, remoteText, gatewayText, netmaskText string
}

// The defaults packetdrill uses for IPv6: a unique local address
// (RFC 4193) for the stack, the documentation prefix (RFC 3849) for the
// peer.
const (
	defaultRemoteText6  = "2001:db8::1/32"
	defaultLocalBase6   = "fd3d:fa7b:d17d::"
	defaultGatewayText6 = "fd3d:fa7b:d17d:8888::"
	localPrefixLen6     = 48
)

// The defaults packetdrill uses for IPv4.
const (
	defaultRemoteText  = "192.0.2.1/24"
	defaultLocalBase   = "192.168.0.0"
	defaultGatewayText = "192.168.0.1"
	defaultNetmaskText = "255.255.0.0"
	defaultPort        = 8080
	defaultTolerance   = 4 * time.Millisecond
	defaultTolPercent  = 12.5
	defaultMTU         = 1500
)

// DefaultConfig is the configuration before any option.
func DefaultConfig() Config {
	return Config{
		BindPort: defaultPort, ConnectPort: defaultPort, MTU: defaultMTU,
		Tolerance: defaultTolerance, TolerancePercent: defaultTolPercent,
		Defines: map[string]string{},
	}
}

// optionArg says whether a packetdrill option takes a value.
type optionArg int

const (
	argNone optionArg = iota
	argRequired
)

// optionSpec is one option packetdrill knows. apply sets it on c; nil
// means the option makes packetdrill run in a mode this runner does not
// have.
type optionSpec struct {
	arg   optionArg
	apply func(c *Config, v string) error
}

// noted accepts an option that changes nothing here, noting why.
func noted(why string) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		c.Notes = append(c.Notes, why)
		return nil
	}
}

// portOption sets a port from --name=N, which must be 1 to 65535.
func portOption(name string, dst func(c *Config) *uint16) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		p := atoi(v)
		if p <= 0 || p > 0xffff {
			return fmt.Errorf("bad --%s: %s", name, v)
		}
		*dst(c) = uint16(p)
		return nil
	}
}

// packetdrillOptions are packetdrill's options, with the value rules it applies.
// Numbers are read as C's atoi reads them (leading digits, 0 without any).
var packetdrillOptions = map[string]optionSpec{
	"ip_version": {argRequired, func(c *Config, v string) error {
		switch v {
		case "ipv4", "ipv4-mapped-ipv6", "ipv6":
			c.IPVersion = v
			return nil
		}
		return fmt.Errorf("bad --ip_version: %s", v)
	}},
	"bind_port":    {argRequired, portOption("bind_port", func(c *Config) *uint16 { return &c.BindPort })},
	"connect_port": {argRequired, portOption("connect_port", func(c *Config) *uint16 { return &c.ConnectPort })},
	"remote_ip":    {argRequired, func(c *Config, v string) error { c.remoteText = v; return nil }},
	"local_ip":     {argRequired, func(c *Config, v string) error { c.localText = v; return nil }},
	// A TUN link has no link layer: the gateway and the netmask change
	// nothing a stack under test sees.
	"gateway_ip": {argRequired, func(c *Config, v string) error {
		c.gatewayText = v
		c.Notes = append(c.Notes, "--gateway_ip: checked, no effect on a TUN link")
		return nil
	}},
	"netmask_ip": {argRequired, func(c *Config, v string) error {
		c.netmaskText = v
		c.Notes = append(c.Notes, "--netmask_ip: checked, and used for the default local address only")
		return nil
	}},
	"mss": {argRequired, func(c *Config, v string) error {
		if c.MSS = int(atoi(v)); c.MSS <= 0 {
			return fmt.Errorf("bad --mss: %s", v)
		}
		return nil
	}},
	"mtu": {argRequired, func(c *Config, v string) error {
		if c.MTU = int(atoi(v)); c.MTU < 0 {
			return fmt.Errorf("bad --mtu: %s", v)
		}
		return nil
	}},
	"init_scripts": {argRequired, func(c *Config, v string) error {
		// Commands separated by commas; a later --init_scripts replaces
		// an earlier one.
		c.InitScripts = strings.Split(v, ",")
		return nil
	}},
	"tolerance_usecs": {argRequired, func(c *Config, v string) error {
		n := atoi(v)
		if n <= 0 {
			return fmt.Errorf("bad --tolerance_usecs: %s", v)
		}
		c.Tolerance = time.Duration(n) * time.Microsecond
		return nil
	}},
	"tolerance_percent": {argRequired, func(c *Config, v string) error {
		f := atof(v)
		if f < 0 || f > 100 {
			return fmt.Errorf("bad --tolerance_percent: %s", v)
		}
		c.TolerancePercent = f
		return nil
	}},
	"tcp_ts_tick_usecs": {argRequired, func(c *Config, v string) error {
		n := atoi(v)
		if n < 0 || n > 1_000_000 {
			return fmt.Errorf("bad --tcp_ts_tick_usecs: %s", v)
		}
		c.TSTick = time.Duration(n) * time.Microsecond
		return nil
	}},
	"define": {argRequired, func(c *Config, v string) error {
		name, val, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return fmt.Errorf("bad definition: %s", v)
		}
		c.Defines[name] = val
		return nil
	}},
	"verbose": {argNone, func(c *Config, _ string) error { c.Verbose = true; return nil }},
	"dry_run": {argNone, func(c *Config, _ string) error { c.DryRun = true; return nil }},
	"speed": {argRequired, func(c *Config, v string) error {
		if n, err := strconv.ParseUint(v, 10, 32); err != nil || strings.HasPrefix(v, "+") {
			return fmt.Errorf("bad --speed: %s", v)
		} else {
			c.Notes = append(c.Notes, fmt.Sprintf("--speed=%d: not applied; the link has no speed here", n))
		}
		return nil
	}},
	"code_command":      {argRequired, noted("--code_command: not applied; %{ }% blocks run with python3")},
	"code_format":       {argRequired, noted("--code_format: not applied; %{ }% blocks are Python")},
	"code_sockopt":      {argRequired, noted("--code_sockopt: not applied; %{ }% blocks read each target's own tcp_info")},
	"tcp_ts_ecr_scaled": {argNone, noted("--tcp_ts_ecr_scaled: not applied; an inbound TS ecr is mapped as described in the runner's semantics")},
	"strict_segments":   {argNone, func(c *Config, _ string) error { c.StrictSegments = true; return nil }},
	"non_fatal":         {argRequired, noted("--non_fatal: not applied; every mismatch fails the script")},
	"debug":             {argNone, noted("--debug: no effect here")},
	// Modes this runner does not have: a remote machine, a shared
	// library in place of the kernel, no local address, PSP.
	"wire_client":      {argNone, nil},
	"wire_server":      {argNone, nil},
	"wire_server_ip":   {argRequired, nil},
	"wire_server_at":   {argRequired, nil},
	"wire_server_port": {argRequired, nil},
	"wire_client_dev":  {argRequired, nil},
	"wire_server_dev":  {argRequired, nil},
	"so_filename":      {argRequired, nil},
	"so_flags":         {argRequired, nil},
	"is_anyip":         {argNone, nil},
	"send_omit_free":   {argNone, nil},
	"psp_udp_port":     {argRequired, nil},
}

// errUnsupportedMode marks an option packetdrill knows but this runner
// cannot honour.
var errUnsupportedMode = errors.New("not supported by this runner")

// Apply sets one option, checking it as packetdrill does; its messages
// are packetdrill's.
func (c *Config) Apply(o Option) error {
	spec, ok := packetdrillOptions[o.Name]
	if !ok {
		return fmt.Errorf("option '%s' unknown", o.Name)
	}
	if o.HasValue && spec.arg == argNone {
		return fmt.Errorf("option '%s' forbids an argument", o.Name)
	}
	if !o.HasValue && spec.arg == argRequired {
		return fmt.Errorf("option '%s' requires an argument", o.Name)
	}
	if spec.apply == nil {
		return fmt.Errorf("option '%s' is %w", o.Name, errUnsupportedMode)
	}
	return spec.apply(c, o.Value)
}

// OptionTakesValue reports whether the packetdrill option name exists and
// whether it takes a value, for command-line parsing.
func OptionTakesValue(name string) (known, takesValue bool) {
	spec, ok := packetdrillOptions[name]
	return ok, spec.arg == argRequired
}

// finish parses the addresses and fills in the defaults of those left
// unset, as packetdrill does once all options are in: the wire addresses
// are IPv6 for ipv6, IPv4 otherwise; the sockets' addresses are those,
// mapped into IPv6 for ipv4-mapped-ipv6. An IPv6 run does not use
// --netmask_ip (packetdrill's local network is then always a /48), but a
// given one is still checked as an IPv4 netmask.
func (c *Config) finish() error {
	if c.IPVersion == "" {
		c.IPVersion = "ipv4"
	}
	v4 := c.IPVersion != "ipv6"
	defRemote, defGateway := defaultRemoteText6, defaultGatewayText6
	if v4 {
		defRemote, defGateway = defaultRemoteText, defaultGatewayText
		if c.netmaskText == "" {
			c.netmaskText = defaultNetmaskText
		}
	}
	if c.remoteText == "" {
		c.remoteText = defRemote
	}
	if c.gatewayText == "" {
		c.gatewayText = defGateway
	}
	var err error
	if c.netmaskText != "" {
		if c.Netmask, err = parseIP(c.netmaskText, true); err != nil {
			return err
		}
	}
	switch {
	case c.localText != "":
		if c.LocalIP, err = parseIP(c.localText, v4); err != nil {
			return err
		}
	case v4:
		c.LocalIP = randomLocal(c.Netmask)
	default:
		c.LocalIP = randomLocal6()
	}
	c.LocalPrefixLen = localPrefixLen6
	if v4 {
		c.LocalPrefixLen = maskLen(c.Netmask)
	}
	if c.RemotePrefix, err = parsePrefix(c.remoteText, v4); err != nil {
		return err
	}
	c.RemoteIP = c.RemotePrefix.Addr()
	c.RemotePrefix = c.RemotePrefix.Masked()
	if c.GatewayIP, err = parseIP(c.gatewayText, v4); err != nil {
		return err
	}
	c.BindIP, c.ConnectIP, c.SocketFamily6 = c.LocalIP, c.RemoteIP, c.IPVersion != "ipv4"
	if c.IPVersion == "ipv4-mapped-ipv6" {
		c.BindIP, c.ConnectIP = netip.AddrFrom16(c.LocalIP.As16()), netip.AddrFrom16(c.RemoteIP.As16())
	}
	return nil
}

// randomLocal6 picks the default IPv6 local address as packetdrill does:
// fd3d:fa7b:d17d:: with a random last 32 bits, never all zeros nor all
// ones, so that runs side by side do not collide.
func randomLocal6() netip.Addr {
	b := netip.MustParseAddr(defaultLocalBase6).As16()
	rnd := rand.Uint32()
	switch rnd {
	case 0:
		rnd++
	case ^uint32(0):
		rnd--
	}
	binary.BigEndian.PutUint32(b[12:], rnd)
	return netip.AddrFrom16(b)
}

// maskLen is the number of leading one bits of an IPv4 netmask.
func maskLen(m netip.Addr) int {
	a := m.As4()
	return bits.LeadingZeros32(^binary.BigEndian.Uint32(a[:]))
}

func parseIP(s string, v4 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case v4 && (err != nil || !a.Is4()):
		return a, fmt.Errorf("bad IPv4 address: %s", s)
	case !v4 && (err != nil || !a.Is6() || a.Zone() != ""):
		return a, fmt.Errorf("bad IPv6 address: %s", s)
	}
	return a, nil
}

// parsePrefix reads ADDRESS[/LEN]; without /LEN the prefix is the whole
// address.
func parsePrefix(s string, v4 bool) (netip.Prefix, error) {
	addr, lenText, hasLen := strings.Cut(s, "/")
	a, err := parseIP(addr, v4)
	if err != nil {
		return netip.Prefix{}, err
	}
	bits := a.BitLen()
	if hasLen {
		n, err := strconv.Atoi(lenText)
		if err != nil || n < 0 || n > bits {
			return netip.Prefix{}, fmt.Errorf("bad prefix length in prefix '%s'", s)
		}
		bits = n
	}
	return netip.PrefixFrom(a, bits), nil
}

// randomLocal picks the default local address as packetdrill does: a
// random host in 192.168.0.0 under the netmask, never .0 (the network),
// .1 (the gateway) or the last (broadcast), so that runs side by side do
// not collide.
func randomLocal(netmask netip.Addr) netip.Addr {
	base := netip.MustParseAddr(defaultLocalBase).As4()
	prefix := maskLen(netmask)
	addr := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	if prefix < 31 {
		rnd := rand.Uint32()
		if prefix > 0 {
			hostMask := uint32(1)<<(32-prefix) - 1
			rnd &= hostMask
			if rnd < 2 {
				rnd = 2
			}
			if rnd == hostMask {
				rnd--
			}
		}
		addr |= rnd
	}
	return netip.AddrFrom4([4]byte{byte(addr >> 24), byte(addr >> 16), byte(addr >> 8), byte(addr)})
}

// atoi reads a number as C's atoi does: blanks, a sign, then the digits
// there are; 0 when there are none.
func atoi(s string) int64 {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	var n int64
	for i := 0; i < len(s) && isDigit(s[i]) && n < 1<<40; i++ {
		n = n*10 + int64(s[i]-'0')
	}
	if neg {
		return -n
	}
	return n
}

// atof reads a number as C's atof does: the longest leading part that is
// a decimal number; 0 when there is none.
func atof(s string) float64 {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	for end := len(s); end > 0; end-- {
		if f, err := strconv.ParseFloat(s[:end], 64); err == nil && !strings.ContainsAny(s[:end], "_xXpPnN") {
			return f
		}
	}
	return 0
}

// CheckCommandLine applies command-line options to a default
// configuration, so that a bad flag is reported before any script runs,
// as packetdrill does.
func CheckCommandLine(cmdline []Option) error {
	c := DefaultConfig()
	for _, o := range cmdline {
		if err := c.Apply(o); err != nil {
			return err
		}
	}
	return c.finish()
}

// commandLine is the command line's packetdrill options: Args, then
// ToleranceUsecs as --tolerance_usecs.
func (o Options) commandLine() []Option {
	args := append([]Option(nil), o.Args...)
	if o.ToleranceUsecs > 0 {
		args = append(args, Option{Name: "tolerance_usecs", Value: strconv.Itoa(o.ToleranceUsecs), HasValue: true})
	}
	return args
}

// minMTU is the smallest MTU an IPv4 link may have (RFC 791: every
// module must take a 68-byte datagram).
const minMTU = 68

// configure takes the run's settings from the script's Config and returns
// the target's; false means the script is not run (it was skipped, or
// failed).
func (r *runner) configure() (TargetConfig, bool) {
	c := &r.s.Config
	r.res.Notes = append(r.res.Notes, c.Notes...)
	switch {
	case c.DryRun:
		r.res.Status, r.res.Reason = Skip, "--dry_run: parsed and configured, not run"
		return TargetConfig{}, false
	case c.MTU < minMTU:
		r.failAt(0, fmt.Sprintf("--mtu=%d: below IPv4's minimum of %d bytes (RFC 791)", c.MTU, minMTU), "", "")
		return TargetConfig{}, false
	case c.IPVersion == "ipv6" && c.MTU < wire.IPv6MinMTU:
		r.failAt(0, fmt.Sprintf("--mtu=%d: below IPv6's minimum link MTU of %d bytes (RFC 8200 §5)", c.MTU, wire.IPv6MinMTU), "", "")
		return TargetConfig{}, false
	}
	if c.MSS != 0 {
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("--mss=%d: inbound packets are injected as written; packetdrill hands the kernel those longer than %d bytes as GSO packets of %d-byte segments", c.MSS, c.MSS, c.MSS))
	}
	r.tolerance, r.tolPct, r.tsTick = c.Tolerance, c.TolerancePercent, c.TSTick
	r.local, r.remote = c.LocalIP, c.RemoteIP
	r.localPort = c.BindPort
	return TargetConfig{LocalIP: c.LocalIP, RemoteIP: c.RemoteIP, LocalPrefixLen: c.LocalPrefixLen, RemotePrefix: c.RemotePrefix,
		BindIP: c.BindIP, ConnectIP: c.ConnectIP, SocketFamily6: c.SocketFamily6,
		BindPort: c.BindPort, ConnectPort: c.ConnectPort, MTU: c.MTU, ScriptDir: filepath.Dir(r.s.Path), NoTSO: r.opt.NoTSO}, true
}
