package main

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"tunstack/netif"
)

func TestParseServeFlagsDefaultsFollowTheContract(t *testing.T) {
	cfg, err := parseServeFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := serveConfig{
		Dev: "tun0", Net: netip.MustParsePrefix("198.18.0.0/24"),
		HostAddr: netip.MustParseAddr("198.18.0.1"), StackAddr: netip.MustParseAddr("198.18.0.2"),
		Net6:      netip.MustParsePrefix("fd00:7475:6e73::/64"),
		HostAddr6: netip.MustParseAddr("fd00:7475:6e73::1"), StackAddr6: netip.MustParseAddr("fd00:7475:6e73::2"),
		MTU: 1500, Stack: "tunstack", ProfileName: "linux",
		HTTPPort: 80, EchoPort: 7, DiscardPort: 9, ChargenPort: 19, Backlog: 4096,
		KeepAlive: net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 15 * time.Second, Count: 9},
		Queues:    netif.DefaultQueues(),
	}
	if cfg.Profile == nil {
		t.Fatal("no profile")
	}
	cfg.Profile = nil
	if cfg != want {
		t.Fatalf("defaults\n got %+v\nwant %+v", cfg, want)
	}
}

func TestParseServeFlagsAcceptsEveryFlag(t *testing.T) {
	dir := t.TempDir()
	cfg, err := parseServeFlags([]string{
		"--dev", "tunx", "--net=10.9.8.77/29", "--net6", "none", "--netns", "ns-1.a_b", "--mtu", "576",
		"-stack", "gvisor", "--profile", "rfc", "--http", "8080", "--echo", "0",
		"--discard=1009", "--chargen", "65535", "--files", dir, "--backlog", "0",
		"--accept-delay", "250ms", "--pcap", filepath.Join(dir, "x.pcap"), "--impair", "loss=1%,seed=3",
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"dev", cfg.Dev, "tunx"},
		{"net is masked", cfg.Net, netip.MustParsePrefix("10.9.8.72/29")},
		{"host", cfg.HostAddr, netip.MustParseAddr("10.9.8.73")},
		{"stack addr", cfg.StackAddr, netip.MustParseAddr("10.9.8.74")},
		{"netns", cfg.Netns, "ns-1.a_b"},
		{"mtu", cfg.MTU, 576},
		{"stack", cfg.Stack, "gvisor"},
		{"profile", cfg.ProfileName, "rfc"},
		{"http", cfg.HTTPPort, uint16(8080)},
		{"echo", cfg.EchoPort, uint16(0)},
		{"discard", cfg.DiscardPort, uint16(1009)},
		{"chargen", cfg.ChargenPort, uint16(65535)},
		{"files", cfg.FilesDir, dir},
		{"backlog", cfg.Backlog, 0},
		{"accept-delay", cfg.AcceptDelay, 250 * time.Millisecond},
		{"pcap", cfg.PcapFile, filepath.Join(dir, "x.pcap")},
		{"impair", cfg.Impair, "loss=1%,seed=3"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if cfg.Profile == nil {
		t.Error("no profile for rfc")
	}
}

func TestParseServeFlagsRefusesBadValuesInOneSentence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain.txt")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		says string // part of the sentence
	}{
		{[]string{"--nope", "1"}, "no flag --nope"},
		{[]string{"--dev"}, "--dev needs a value"},
		{[]string{"extra"}, "takes no arguments"},
		{[]string{"--dev", ""}, "not a usable interface name"},
		{[]string{"--dev", "a-name-that-is-too-long"}, "1 to 15 characters"},
		{[]string{"--dev", "tun/0"}, "not a usable interface name"},
		{[]string{"--dev", "tun:0"}, "not a usable interface name"},
		{[]string{"--net", "banana"}, "IPv4 prefix in CIDR form"},
		{[]string{"--net", "198.18.0.1"}, "IPv4 prefix in CIDR form"},
		{[]string{"--net", "fd00::/64"}, "not IPv4"},
		{[]string{"--net", "::ffff:198.18.0.0/120"}, "not IPv4"},
		{[]string{"--net", "198.18.0.0/31"}, "no room for two hosts"},
		{[]string{"--net", "198.18.0.0/32"}, "no room for two hosts"},
		{[]string{"--netns", "a/b"}, "not a usable namespace name"},
		{[]string{"--netns", ".."}, "not a usable namespace name"},
		{[]string{"--netns", "a b"}, "not a usable namespace name"},
		{[]string{"--mtu", "575"}, "--mtu must be a size in bytes from 576 to 65535"},
		{[]string{"--mtu", "65536"}, "from 576 to 65535"},
		{[]string{"--mtu", "big"}, "from 576 to 65535"},
		{[]string{"--stack", "linux"}, "--stack must be tunstack or gvisor"},
		{[]string{"--profile", "bsd"}, "--profile must be classic, linux or rfc"},
		{[]string{"--http", "-1"}, "--http must be a port number"},
		{[]string{"--echo", "65536"}, "from 0 to 65535"},
		{[]string{"--discard", "x"}, "--discard must be a port number"},
		{[]string{"--chargen", "1.5"}, "--chargen must be a port number"},
		{[]string{"--http", "7"}, "--http and --echo both ask for port 7"},
		{[]string{"--discard", "19"}, "--discard and --chargen both ask for port 19"},
		{[]string{"--files", filepath.Join(dir, "missing")}, "does not exist"},
		{[]string{"--files", file}, "is a file, not a directory"},
		{[]string{"--backlog", "-1"}, "--backlog must be a number of connections of 0 or more"},
		{[]string{"--accept-delay", "-5ms"}, "--accept-delay must be a duration of 0 or more"},
		{[]string{"--accept-delay", "soon"}, "--accept-delay must be a duration"},
		{[]string{"--max-conns", "-1"}, "--max-conns must be a number of connections (0 for no cap) of 0 or more, as in --max-conns 1000"},
		{[]string{"--max-conns", "many"}, "--max-conns must be a number of connections"},
		{[]string{"--stack", "gvisor", "--max-conns", "10"}, "--max-conns needs --stack tunstack"},
		{[]string{"--pcap", ""}, "--pcap needs a file name"},
		{[]string{"--pcap", dir}, "is a directory"},
		{[]string{"--pcap", filepath.Join(dir, "no", "x.pcap")}, "does not exist"},
		{[]string{"--trace", ""}, "--trace needs a file name"},
		{[]string{"--trace", dir}, "is a directory"},
		{[]string{"--trace", filepath.Join(dir, "no", "t.jsonl")}, "does not exist"},
		{[]string{"--stack", "gvisor", "--trace", filepath.Join(dir, "t.jsonl")}, "--trace needs --stack tunstack"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseServeFlags(tt.args)
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v, want a usageError", err)
			}
			s := ue.Error()
			if !strings.Contains(s, tt.says) {
				t.Errorf("%q does not say %q", s, tt.says)
			}
			if strings.Count(s, ". ") != 0 || !strings.HasSuffix(s, ".") || strings.Contains(s, "\n") {
				t.Errorf("%q is not one sentence", s)
			}
		})
	}
}

func TestParseServeFlagsTakesATraceFileForOurStack(t *testing.T) {
	file := filepath.Join(t.TempDir(), "t.jsonl")
	cfg, err := parseServeFlags([]string{"--trace", file, "--stack", "tunstack"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TraceFile != file {
		t.Fatalf("TraceFile = %q, want %q", cfg.TraceFile, file)
	}
}

func TestParseServeFlagsZeroPortsMayRepeat(t *testing.T) {
	cfg, err := parseServeFlags([]string{"--echo", "0", "--discard", "0", "--chargen", "0"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EchoPort != 0 || cfg.DiscardPort != 0 || cfg.ChargenPort != 0 || cfg.HTTPPort != 80 {
		t.Fatalf("ports %d %d %d %d", cfg.HTTPPort, cfg.EchoPort, cfg.DiscardPort, cfg.ChargenPort)
	}
}

func TestParseServeFlagsHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		if _, err := parseServeFlags([]string{"--mtu", "1400", arg}); !errors.Is(err, errHelp) {
			t.Errorf("%s: err = %v, want errHelp", arg, err)
		}
	}
}

func TestParseFlagsMixesFlagsAndArgumentsUntilDoubleDash(t *testing.T) {
	var stack string
	var asJSON bool
	defs := []flagDef{oneOfFlag("stack", []string{"tunstack", "gvisor", "linux"}, &stack), boolFlag("json", &asJSON)}
	rest, err := parseFlags("lab", []string{"handshake", "--stack", "linux", "--json", "--", "--not-a-flag", "-"}, defs)
	if err != nil {
		t.Fatal(err)
	}
	if stack != "linux" || !asJSON || strings.Join(rest, " ") != "handshake --not-a-flag -" {
		t.Fatalf("stack %q json %v rest %q", stack, asJSON, rest)
	}
	if _, err := parseFlags("lab", []string{"--json=false"}, defs); err != nil || asJSON {
		t.Fatalf("--json=false: %v, json %v", err, asJSON)
	}
	if _, err := parseFlags("lab", []string{"--json=maybe"}, defs); err == nil {
		t.Fatal("--json=maybe was accepted")
	}
}

func TestServeCommandPassesTheParsedConfig(t *testing.T) {
	var got serveConfig
	cmd := serveCommand(func(cfg serveConfig) error { got = cfg; return nil })
	if err := cmd([]string{"--http", "8080"}); err != nil {
		t.Fatal(err)
	}
	if got.HTTPPort != 8080 {
		t.Fatalf("run got port %d", got.HTTPPort)
	}
	called := false
	cmd = serveCommand(func(serveConfig) error { called = true; return nil })
	if err := cmd([]string{"--mtu", "1"}); err == nil || called {
		t.Fatalf("a bad flag ran serve (err %v)", err)
	}
}

// --max-conns reaches the stack's configuration; 0 (no cap) is the
// default, and gVisor takes 0 too.
func TestParseServeFlagsMaxConns(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int
	}{
		{nil, 0},
		{[]string{"--max-conns", "1000"}, 1000},
		{[]string{"--stack", "gvisor", "--max-conns", "0"}, 0},
	} {
		cfg, err := parseServeFlags(c.args)
		if err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		if cfg.MaxConns != c.want {
			t.Errorf("%q: MaxConns %d, want %d", c.args, cfg.MaxConns, c.want)
		}
	}
}

// TestDefaultQueuesOnePerCPU: serve's default is one queue per CPU the
// runtime runs on, never more than a TUN takes (netif's
// TestQueuesForOnePerCPU checks the rule on other CPU counts).
func TestDefaultQueuesOnePerCPU(t *testing.T) {
	q, err := serveQueues(serveConfig{Stack: "tunstack"})
	if err != nil {
		t.Fatal(err)
	}
	if want := min(runtime.GOMAXPROCS(0), netif.MaxQueues); q != want {
		t.Errorf("serve without --queues opens %d queues where the runtime runs on %d CPUs, want %d", q, runtime.GOMAXPROCS(0), want)
	}
}
