// Command tunstack runs the user-space TCP endpoint and its tools:
//
//	tunstack serve   the demo site and classic services on a TUN device
//	tunstack drill   packetdrill-syntax conformance scripts
//	tunstack lab     experiments in a network namespace with kernel peers
//	tunstack bench   benchmarks side by side with gVisor and Linux
//	tunstack ss      the sockets of a running serve, as ss shows the kernel's
//	tunstack nstat   a running serve's counters, as nstat shows the kernel's
//	tunstack plot    time-sequence and congestion-window graphs of a capture
//	tunstack soak    a long loaded run of serve, checked for leaks
//	tunstack reliability-doc  docs/reliability.md from test logs and run records
//
// Each command lives in its own file and registers itself in commands from
// that file's init, so this file knows none of them but help.
package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// commands maps a command name to the function that runs it with the
// arguments after the name. Files register into it from init, for example
// serve.go: commands["serve"] = serveCommand(runServe).
var commands = map[string]func(args []string) error{}

// knownCommands are the commands of the CLI contract, in usage order.
var knownCommands = []string{"serve", "drill", "lab", "bench"}

func init() {
	commands["help"] = func([]string) error { return errHelp }
}

// errHelp asks main to print the usage on standard output and exit 0.
var errHelp = errors.New("help requested")

// usageError is a mistake in the command line, told in one sentence that
// says what is wrong and what to do; main prints it and exits 2.
type usageError struct{ sentence string }

func (e *usageError) Error() string { return e.sentence }

func usagef(format string, args ...any) error {
	return &usageError{sentence: fmt.Sprintf(format, args...)}
}

const usageText = `Usage:
  tunstack serve [--dev tun0] [--net CIDR] [--net6 CIDR|none] [--netns NAME] [--mtu 1500]
                 [--stack tunstack|gvisor] [--profile linux|rfc|classic]
                 [--http 80] [--echo 7] [--discard 9] [--chargen 19] [--files DIR]
                 [--backlog 4096] [--accept-delay DURATION] [--max-conns N]
                 [--keepalive 15s,15s,9|off] [--queues N] [--pcap FILE] [--impair SPEC]
                 [--metrics HOST:PORT]
  tunstack relay [--dev tun0] [--route CIDR]... [--tun-netns NAME] [--netns NAME]
                 [--stack tunstack|gvisor] [--upstream direct|socks5://HOST:PORT]
                 [--outbound-interface IF | --outbound-mark N] [--pcap FILE]
                 [--trace FILE] [--max-conns N] [--dial-timeout 5s] [--mss N]
                 [--keepalive 7200,75,9|off] [--net CIDR] [--net6 CIDR|none] [--mtu 1500]
  tunstack drill [--stack tunstack|gvisor|linux] [--profile P] [--json] [--trace]
                 [--no-tso] [--keep-going] [packetdrill's own flags: --tolerance_usecs N,
                 --local_ip A, --remote_ip A, -D NAME=VALUE, ...] SCRIPT.pkt...
  tunstack oracle --packetdrill PATH [--json] SCRIPT.pkt...
  tunstack lab   NAME [--stack tunstack|gvisor|linux] [--family 4|6] [--pcap FILE] [--plot DIR]
  tunstack lab   --list
  tunstack bench [--stack tunstack,gvisor,linux] [--family 4|6|both] [--json]
  tunstack ss    [-tlaineoH] [--dev tun0 | --netns NAME | --socket PATH] [FILTER]
                 (tunstack ss --help says more)
  tunstack plot  [--conn LOCAL-REMOTE|all] [--from S] [--to S] [--trace FILE]
                 -o OUT.svg|OUT.png [CAPTURE.pcap]
  tunstack nstat [-a] [-z] [--dev tun0 | --metrics URL] [PATTERN...]
  tunstack soak  [--duration 30m] [--conns 1000] [--impair SPEC] [--stack tunstack|gvisor]
                 [--out docs/reliability] [--every 10s] [--settle 4m] [--max-bytes 65536]
                 [--think 1s] [--seed N] [--pcap FILE]
  tunstack reliability-doc [--out docs/reliability.md] [--runs FILE] [--soak FILE]
                 [--no-drill] TESTLOG...
  tunstack reliability-doc --record fuzz|sim [--target NAME] [--finding TEXT] LOG
  tunstack help

serve flags:
  --dev NAME            TUN device to create (default tun0)
  --net CIDR            IPv4 prefix of the link; the host side gets its first
                        address, the stack its second (default 198.18.0.0/24:
                        host 198.18.0.1, stack 198.18.0.2)
  --net6 CIDR|none      IPv6 prefix of the link; the host side gets ::1, the
                        stack ::2 (default fd00:7475:6e73::/64); none turns
                        IPv6 off. With it every service listens once on [::],
                        for both families, and --mtu is 1280 or more
  --netns NAME          run the whole endpoint inside this network namespace,
                        created if missing and removed on exit if created
  --mtu BYTES           link MTU, 576 to 65535 (default 1500)
  --stack NAME          TCP stack: tunstack or gvisor (default tunstack)
  --profile NAME        policy profile: linux, rfc or classic (default linux)
  --http PORT           demo site port (default 80)
  --echo PORT           echo, RFC 862 (default 7)
  --discard PORT        discard, RFC 863 (default 9)
  --chargen PORT        chargen, RFC 864 (default 19)
                        a port of 0 turns that service off
  --files DIR           serve DIR under /files/ on the demo site
  --backlog N           accept queue length of each listener (default 4096;
                        0 is the stack's somaxconn, as with net.ListenConfig)
  --accept-delay D      wait D before each Accept, to let the backlog fill (default 0)
  --max-conns N         hold at most N connections at once, half-open included;
                        SYNs beyond are dropped and counted (default 0: no cap);
                        with several queues each shard holds N/queues
  --keepalive I,N,C     keepalive on every accepted connection: probes after I
                        idle, every N, abort after C unanswered ones (an RST,
                        the connection ends); I and N as 15s or whole seconds.
                        Default 15s,15s,9, what Go's net.Listen sets, so a
                        client that vanished is gone after 150 s; off or 0
                        turns it off (Linux's listen(2) default)
  --queues N            open the TUN with N queues, an engine shard reading
                        each (default: one per CPU; 1 with --stack gvisor,
                        --pcap or --impair, which run on one link, and with
                        --max-conns, which then caps one engine exactly)
  --pcap FILE           write every packet crossing the link to FILE
  --impair SPEC         impair the link, as in loss=1%,delay=20ms,seed=1
  --metrics HOST:PORT   serve Prometheus metrics at http://HOST:PORT/metrics

relay flags (README.md, "relay", walks through them):
  --route CIDR          route CIDR into the TUN and relay TCP to it (repeat it);
                        without any, TCP to every address the TUN carries is
                        relayed and routing it there is up to you
  --tun-netns NAME      create the TUN in this namespace (the clients'); the
                        relay's outbound connections stay in its own
  --netns NAME          run the relay (its outbound sockets, and the TUN unless
                        --tun-netns) in this namespace
  --upstream U          direct (default) or socks5://HOST:PORT
  --outbound-interface IF  bind outbound sockets to IF (SO_BINDTODEVICE)
  --outbound-mark N     mark outbound sockets N (SO_MARK); with --route in the
                        relay's namespace the routes go into table N and the
                        rule 'not fwmark N lookup N' is installed, and removed
                        on exit
  --max-conns N         relay at most N connections; beyond, SYNs get RST
  --dial-timeout D      give up on a destination after D and answer the client
                        ICMP host unreachable (default 5s)
  --mss N               lower the MSS offered to clients to N bytes
  --keepalive I,N,C     keepalive on both legs of every relayed connection, as
                        serve's (default 7200,75,9: Linux's tcp_keepalive_time,
                        _intvl and _probes); off or 0 turns it off

soak flags (root: it runs serve in a network namespace of its own):
  --duration D          how long the clients run (default 30m)
  --conns N             clients, each one connection at a time (default 1000)
  --impair SPEC         serve's --impair (default loss=1%,reorder=1%,dup=0.5%,delay=5ms)
  --out DIR             where soak.json, soak.svg and serve.log go (default docs/reliability)
  --every D             sampling interval of heap, goroutines, connections, fds (default 10s)
  --settle D            longest wait after the load for the connections to end (default 4m)

plot flags:
  --conn C              the connection to draw, LOCAL-REMOTE as in
                        198.18.0.2:80-198.18.0.1:40000 (either end first), or all;
                        default the one that carried the most data
  --from S, --to S      the seconds of the capture to show (default all of it)
  --trace FILE          serve --trace's file: cwnd, ssthresh, flight and SRTT
                        under the time-sequence graph, on the same time axis
  -o FILE               the drawing, SVG or PNG by its extension

Flags take their value as --name VALUE or --name=VALUE.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit status: 0 on success
// and for help, 2 for a mistake in the command line, 1 for any other error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "tunstack: give a command, such as tunstack serve.")
		fmt.Fprint(stderr, usageText)
		return 2
	}
	name := args[0]
	if name == "-h" || name == "-help" || name == "--help" {
		name = "help"
	}
	cmd, ok := commands[name]
	if !ok {
		if slices.Contains(knownCommands, name) {
			fmt.Fprintf(stderr, "tunstack: the %s command is not in this build yet; this one has %s.\n", name, available())
		} else {
			fmt.Fprintf(stderr, "tunstack: unknown command %q; use one of %s.\n", name, strings.Join(append(slices.Clone(knownCommands), "help"), ", "))
		}
		fmt.Fprint(stderr, usageText)
		return 2
	}
	err := cmd(args[1:])
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		fmt.Fprint(stdout, usageText)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "tunstack %s: %s\n", name, ue.sentence)
		return 2
	default:
		fmt.Fprintf(stderr, "tunstack %s: %v\n", name, err)
		return 1
	}
}

// available lists the registered commands, in usage order.
func available() string {
	var have []string
	for _, n := range append(slices.Clone(knownCommands), "help") {
		if _, ok := commands[n]; ok {
			have = append(have, n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(commands)) {
		if !slices.Contains(have, n) {
			have = append(have, n)
		}
	}
	return strings.Join(have, ", ")
}
