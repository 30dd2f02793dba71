package conformance

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tunstack/wire"
)

// replayTarget is a virtual-time target that sends scripted packets at
// scripted times and answers every call with 0: enough to test the runner's
// matching and timing without a stack or root.
type replayTarget struct {
	cfg      TargetConfig // what the run created it with
	now      time.Duration
	out      []outPkt
	injected [][]byte
}

func (f *replayTarget) Name() string       { return "replay" }
func (f *replayTarget) Now() time.Duration { return f.now }
func (f *replayTarget) Inject(p []byte) error {
	f.injected = append(f.injected, p)
	return nil
}
func (f *replayTarget) Outbound(deadline time.Duration) ([]byte, time.Duration, bool, error) {
	if len(f.out) > 0 && f.out[0].at <= deadline {
		p := f.out[0]
		f.out = f.out[1:]
		if p.at > f.now {
			f.now = p.at
		}
		return p.b, p.at, true, nil
	}
	if deadline > f.now {
		f.now = deadline
	}
	return nil, 0, false, nil
}
func (f *replayTarget) Syscall(c *Call) <-chan CallResult {
	ch := make(chan CallResult, 1)
	res := CallResult{At: f.now}
	if c.WantFD >= 0 {
		res.Ret = int64(c.WantFD)
	}
	ch <- res
	return ch
}
func (f *replayTarget) Shell(string, string) error { return ErrNoShell }
func (f *replayTarget) Close() error               { return nil }

// stackPacket builds a packet from the stack (192.168.0.1:8080) to the peer.
func stackPacket(flags uint8, seq, ack uint32, payload int, opts []byte) []byte {
	tcpLen := wire.TCPHeaderLen + len(opts) + payload
	b := make([]byte, wire.IPv4HeaderLen+tcpLen)
	src, dst := DefaultLocalIP.As4(), DefaultRemoteIP.As4()
	wire.PutIPv4Header(b, wire.IPv4Fields{Src: src, Dst: dst, Protocol: wire.ProtoTCP, TTL: 64}, tcpLen)
	t := wire.TCP(b[wire.IPv4HeaderLen:])
	wire.PutTCPHeader(t, wire.TCPFields{SrcPort: 8080, DstPort: 40000, Seq: seq, Ack: ack, Flags: flags, Window: 1000}, len(opts))
	copy(t[wire.TCPHeaderLen:], opts)
	t.ComputeChecksum(src, dst)
	return b
}

// runReplayArgs runs src against a replay target that sends out, with the
// command-line options args.
func runReplayArgs(t *testing.T, src string, out []outPkt, args ...Option) (*Result, *replayTarget) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "s.pkt")
	os.WriteFile(path, []byte(src), 0o644)
	fake := &replayTarget{out: out}
	RegisterTarget("replay-test", func(c TargetConfig) (Target, error) { fake.cfg = c; return fake, nil })
	defer delete(targets, "replay-test")
	return Run(path, Options{Stack: "replay-test", Args: args}), fake
}

// runReplay is runReplayArgs over IPv4 with the replay target at
// DefaultLocalIP, where its packets come from (a script's own local
// address is otherwise random, as packetdrill's is).
func runReplay(t *testing.T, src string, out []outPkt) (*Result, *replayTarget) {
	t.Helper()
	return runReplayArgs(t, src, out, Option{Name: "local_ip", Value: DefaultLocalIP.String(), HasValue: true})
}

const isn = 1_000_000

func TestRunnerReplay(t *testing.T) {
	synack := stackPacket(wire.FlagSYN|wire.FlagACK, isn, 1, 0, []byte{2, 4, 5, 0xb4})
	data := stackPacket(wire.FlagPSH|wire.FlagACK, isn+1, 1, 100, nil)
	base := "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < S 0:0(0) win 1000 <mss 1460>\n+0 > S. 0:0(0) ack 1 <mss 1460>\n+.1 < . 1:1(0) ack 1 win 1000\n"
	cases := []struct {
		name, script string
		out          []outPkt
		want         string // "" for PASS, else a substring of the failure
	}{
		{"pass", base + "+.1 > P. 1:101(100) ack 1 win 1000\n",
			[]outPkt{{synack, time.Millisecond}, {data, 201 * time.Millisecond}}, ""},
		{"wrong flag", base + "+.1 > F. 1:101(100) ack 1\n",
			[]outPkt{{synack, 0}, {data, 200 * time.Millisecond}}, "flags P., expected F."},
		{"wrong ack", base + "+.1 > P. 1:101(100) ack 7\n",
			[]outPkt{{synack, 0}, {data, 200 * time.Millisecond}}, "ack 1, expected 7"},
		{"wrong window", base + "+.1 > P. 1:101(100) ack 1 win 9\n",
			[]outPkt{{synack, 0}, {data, 200 * time.Millisecond}}, "window 1000, expected 9"},
		{"wrong options", base + "+.1 > P. 1:101(100) ack 1 <nop,nop,nop,nop>\n",
			[]outPkt{{synack, 0}, {data, 200 * time.Millisecond}}, "options <>, expected <nop,nop,nop,nop>"},
		{"late", base + "+.1 > P. 1:101(100) ack 1\n",
			[]outPkt{{synack, 0}, {data, 400 * time.Millisecond}}, "expected packet did not arrive by 0.2125s"},
		{"early", base + "+.5 > P. 1:101(100) ack 1\n",
			[]outPkt{{synack, 0}, {data, 150 * time.Millisecond}}, "packet arrived too early at 0.1500s"},
		{"unexpected before inbound", base + "+.5 < . 1:1(0) ack 1 win 1000\n",
			[]outPkt{{synack, 0}, {data, 150 * time.Millisecond}}, "unexpected packet from the stack at 0.1500s, before this line"},
		{"extra at end", base,
			[]outPkt{{synack, 0}, {data, 101 * time.Millisecond}}, "unexpected packet from the stack at 0.1010s, after the last line"},
		{"range", base + "+.1~+.3 > P. 1:101(100) ack 1\n",
			[]outPkt{{synack, 0}, {data, 380 * time.Millisecond}}, ""},
		{"code block without a time", base + "%{ assert tcpi_rto == 1 }%\n", []outPkt{{synack, 0}}, "parse error: a %{ code block }% needs a time"},
		{"errno", base + "+0 close(3) = -1 EBADF (Bad file descriptor)\n", []outPkt{{synack, 0}}, "close returned 0, expected -1"},
		{"icmp", base + "+0 < icmp unreachable port_unreachable [1:1(0)]\n", []outPkt{{synack, 0}}, "cannot run this line: icmp packets are not supported by this runner"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, fake := runReplay(t, c.script, c.out)
			if c.want == "" {
				if res.Status != Pass {
					t.Fatalf("want PASS, got %s: %v", res.Status, res.Failure)
				}
				return
			}
			if res.Status != Fail || res.Failure == nil || !strings.Contains(res.Failure.Message, c.want) {
				t.Fatalf("want FAIL with %q, got %s %+v", c.want, res.Status, res.Failure)
			}
			_ = fake
		})
	}
}

func TestRunnerInboundMapping(t *testing.T) {
	// The SYN-ACK carries TS val 5555 for the script's 100: an inbound ecr
	// of 100 must go out as 5555, and ack 1 as ISN+1.
	ts := []byte{1, 1, 8, 10, 0, 0, 0x15, 0xb3, 0, 0, 0, 7}
	synack := stackPacket(wire.FlagSYN|wire.FlagACK, isn, 1, 0, ts)
	src := "0 < S 0:0(0) win 1000 <nop,nop,TS val 7 ecr 0>\n+0 > S. 0:0(0) ack 1 <nop,nop,TS val 100 ecr 7>\n+.1 < . 1:1(0) ack 1 win 1000 <nop,nop,TS val 8 ecr 100>\n"
	res, fake := runReplay(t, src, []outPkt{{synack, 0}})
	if res.Status != Pass {
		t.Fatalf("%v", res.Failure)
	}
	ack := wire.TCP(wire.IPv4(fake.injected[1]).Payload())
	var o wire.TCPOptions
	wire.ParseTCPOptions(ack.Options(), &o)
	if ack.Ack() != isn+1 || o.TSEcr != 5555 || o.TSVal != 8 || ack.DstPort() != 8080 {
		t.Errorf("ack %d ecr %d val %d port %d", ack.Ack(), o.TSEcr, o.TSVal, ack.DstPort())
	}
	if !ack.ChecksumValid(DefaultRemoteIP.As4(), DefaultLocalIP.As4()) {
		t.Error("bad checksum")
	}
}

// TestRunnerNewRemotePortPerListenerSYN: as in packetdrill, a SYN to a
// listening socket under test comes from a new remote port, while a SYN
// once the listener has taken one (the socket under test is then its
// connection) keeps that connection's port.
func TestRunnerNewRemotePortPerListenerSYN(t *testing.T) {
	src := "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 listen(3, 1) = 0\n" +
		"+0 < S 0:0(0) win 1000\n+0 < S 0:0(0) win 1000\n" +
		"+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 4\n+0 listen(4, 1) = 0\n+0 < S 0:0(0) win 1000\n"
	res, fake := runReplay(t, src, nil)
	if res.Status != Pass || len(fake.injected) != 3 {
		t.Fatalf("%s %v, %d packets injected", res.Status, res.Failure, len(fake.injected))
	}
	port := func(i int) uint16 { return wire.TCP(wire.IPv4(fake.injected[i]).Payload()).SrcPort() }
	if port(0) != port(1) {
		t.Errorf("the second SYN of one connection came from port %d, the first from %d", port(1), port(0))
	}
	if port(2) == port(0) {
		t.Errorf("the SYN to the second listener came from the first connection's port %d", port(2))
	}
}

func TestUnknownStackNamesTheKnownOnes(t *testing.T) {
	for _, name := range []string{"tunstack", "gvisor", "linux"} {
		if _, err := LookupTarget(name); err != nil {
			t.Errorf("LookupTarget(%q): %v", name, err)
		}
	}
	_, err := LookupTarget("bsd")
	if err == nil || !strings.Contains(err.Error(), `no stack "bsd"`) || !strings.Contains(err.Error(), "tunstack") {
		t.Fatalf("LookupTarget(bsd) = %v, want an error naming the known stacks", err)
	}
}

// shellTarget is a replay target that runs shell lines by recording them:
// each takes a second of the target's clock (which must not count as
// script time), and "false" fails.
// shellTarget records the shell lines it is given and runs none of them.
type shellTarget struct {
	replayTarget
	ran []string
}

func (f *shellTarget) Shell(cmd, dir string) error {
	f.ran = append(f.ran, cmd)
	f.now += time.Second
	if cmd == "false" {
		return errors.New("exit status 1")
	}
	return nil
}

func runShell(t *testing.T, src string, args ...Option) (*Result, *shellTarget) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.pkt")
	os.WriteFile(path, []byte(src), 0o644)
	fake := &shellTarget{}
	RegisterTarget("shell-test", func(TargetConfig) (Target, error) { return fake, nil })
	defer delete(targets, "shell-test")
	return Run(path, Options{Stack: "shell-test", Args: args}), fake
}

func TestRunnerInitAndCleanupCommands(t *testing.T) {
	const events = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+.1 close(3) = 0\n"
	cases := []struct {
		name, src string
		args      []Option
		ran       string // the commands run, in order
		fail      string // "": PASS; else where:message
	}{
		{name: "init, events, cleanup", src: "`echo init`\n" + events + "`echo cleanup`\n",
			ran: "echo init|echo cleanup"},
		{name: "init scripts first", src: "`echo init`\n" + events,
			args: []Option{{Name: "init_scripts", Value: "echo a,echo b", HasValue: true}}, ran: "echo a|echo b|echo init"},
		{name: "cleanup after a failure", src: "`echo init`\n" + events + "+0 close(3) = -1 EBADF (Bad file descriptor)\n`echo cleanup`\n",
			ran: "echo init|echo cleanup", fail: "s.pkt:4:close returned 0, expected -1"},
		{name: "no cleanup without an init command", src: events + "`echo cleanup`\n", ran: ""},
		{name: "init fails", src: "`false`\n" + events, ran: "false", fail: "s.pkt:1:error executing init command: exit status 1"},
		{name: "init script fails", src: events, args: []Option{{Name: "init_scripts", Value: "false", HasValue: true}},
			ran: "false", fail: "s.pkt:error executing init script 'false'"},
		{name: "cleanup fails", src: "`echo init`\n" + events + "`false`\n", ran: "echo init|false", fail: "s.pkt:4:error executing cleanup command"},
		{name: "timed shell lines are events", src: "`echo init`\n" + events + "+.1 `echo timed`\n+.1 close(3) = 0\n",
			ran: "echo init|echo timed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, fake := runShell(t, c.src, c.args...)
			if got := strings.Join(fake.ran, "|"); got != c.ran {
				t.Errorf("ran %q, want %q", got, c.ran)
			}
			if c.fail == "" {
				if res.Status != Pass {
					t.Fatalf("want PASS, got %s: %v", res.Status, res.Failure)
				}
				return
			}
			where, msg, _ := strings.Cut(c.fail, ":")
			if strings.Count(c.fail, ":") > 1 {
				n, m, _ := strings.Cut(msg, ":")
				where, msg = where+":"+n, m
			}
			if res.Status != Fail || !strings.HasSuffix(res.Failure.Where, where) || !strings.Contains(res.Failure.Message, msg) {
				t.Fatalf("want FAIL at %s with %q, got %s %+v", where, msg, res.Status, res.Failure)
			}
		})
	}
}

func TestRunnerTolerance(t *testing.T) {
	synack := stackPacket(wire.FlagSYN|wire.FlagACK, isn, 1, 0, []byte{2, 4, 5, 0xb4})
	// Expected 1 s after the SYN, sent 100 ms late: inside the default
	// 12.5% of the gap, outside 5%.
	src := "0 < S 0:0(0) win 1000 <mss 1460>\n+1 > S. 0:0(0) ack 1 <mss 1460>\n"
	out := []outPkt{{synack, 1100 * time.Millisecond}}
	pct := func(v string) Option { return Option{Name: "tolerance_percent", Value: v, HasValue: true} }
	for _, c := range []struct {
		name   string
		script string
		args   []Option
		pass   bool
	}{
		{"default 12.5%", src, nil, true},
		{"5% on the command line", src, []Option{pct("5")}, false},
		{"5% in the script", "--tolerance_percent=5\n" + src, nil, false},
		{"the command line wins", "--tolerance_percent=5\n" + src, []Option{pct("20")}, true},
		{"tolerance_usecs", "--tolerance_percent=0\n--tolerance_usecs=150000\n" + src, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.pkt")
			os.WriteFile(path, []byte(c.script), 0o644)
			fake := &replayTarget{out: append([]outPkt(nil), out...)}
			RegisterTarget("replay-tol", func(TargetConfig) (Target, error) { return fake, nil })
			defer delete(targets, "replay-tol")
			args := append(c.args, Option{Name: "local_ip", Value: DefaultLocalIP.String(), HasValue: true})
			res := Run(path, Options{Stack: "replay-tol", Args: args})
			if (res.Status == Pass) != c.pass {
				t.Fatalf("status %s, want pass=%v: %v", res.Status, c.pass, res.Failure)
			}
		})
	}
}

func TestRunnerSkipsAndNotes(t *testing.T) {
	// An IPv6 run on a link below IPv6's minimum MTU fails before any
	// command runs (an IPv4 one of the same MTU runs).
	res, fake := runShell(t, "--ip_version=ipv6\n--mtu=1000\n`echo init`\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
	if res.Status != Fail || res.Failure == nil || !strings.Contains(res.Failure.Message, "below IPv6's minimum link MTU of 1280") || len(fake.ran) != 0 {
		t.Errorf("ipv6 with --mtu=1000: %s %v, ran %q", res.Status, res.Failure, fake.ran)
	}
	res, fake = runShell(t, "`echo init`\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n", Option{Name: "dry_run"})
	if res.Status != Skip || !strings.Contains(res.Reason, "--dry_run") || len(fake.ran) != 0 {
		t.Errorf("dry run: %s %q, ran %q", res.Status, res.Reason, fake.ran)
	}
	res, _ = runShell(t, "--mss=1000\n--code_format=python\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
	notes := strings.Join(res.Notes, "\n")
	if res.Status != Pass || !strings.Contains(notes, "--mss=1000: inbound packets are injected as written") || !strings.Contains(notes, "--code_format: not applied") {
		t.Errorf("notes: %s\n%s", res.Status, notes)
	}
}

// The tc and ip lines below are never executed: the tunstack target runs no
// shell (it interprets sysctls into its profile and notes the rest), so
// nothing here touches the machine's own network namespace.
func TestRunnerShellSettings(t *testing.T) {
	src := "`sysctl -q net.ipv4.tcp_sack=0 && tc qdisc add dev tun0 root netem delay 10ms`\n" +
		"0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 `sysctl -q net.ipv4.tcp_timestamps=0`\n" +
		"`sysctl -q net.ipv4.tcp_sack=1 && ip link set dev tun0 down`\n"
	path := filepath.Join(t.TempDir(), "s.pkt")
	os.WriteFile(path, []byte(src), 0o644)
	res := Run(path, Options{Stack: "tunstack"})
	if res.Status != Pass {
		t.Fatalf("%s: %v", res.Status, res.Failure)
	}
	applied := strings.Join(res.Applied, "\n")
	notes := strings.Join(res.Notes, "\n")
	if !strings.Contains(applied, "net.ipv4.tcp_sack=0 -> SACK") || !strings.Contains(applied, "net.ipv4.tcp_timestamps=0 -> Timestamps") || strings.Contains(applied, "tcp_sack=1") {
		t.Errorf("applied:\n%s", applied)
	}
	if !strings.Contains(notes, "s.pkt:1: not run on an in-process stack: tc qdisc add dev tun0 root netem delay 10ms: traffic control") ||
		!strings.Contains(notes, "net.ipv4.tcp_sack=1 (") || !strings.Contains(notes, "in the cleanup command, which runs after the last event; not applied") {
		t.Errorf("notes:\n%s", notes)
	}
}

// With KeepGoing a run goes past a mismatch: the differing packet is taken
// as sent, an unexpected packet is set aside and its line still runs, and
// the result counts the lines that matched, the first mismatch being the
// verdict's failure.
func TestRunnerKeepGoingComparesTheRestOfTheScript(t *testing.T) {
	synack := stackPacket(wire.FlagSYN|wire.FlagACK, isn, 1, 0, []byte{2, 4, 5, 0xb4})
	data := stackPacket(wire.FlagPSH|wire.FlagACK, isn+1, 1, 100, nil)
	extra := stackPacket(wire.FlagACK, isn+101, 1, 0, nil)
	more := stackPacket(wire.FlagPSH|wire.FlagACK, isn+101, 1, 100, nil)
	script := "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n" + // 1 matches
		"+0 < S 0:0(0) win 1000 <mss 1460>\n" + // 2 matches
		"+0 > S. 0:0(0) ack 1 win 9 <mss 1460>\n" + // 3 window differs
		"+.1 < . 1:1(0) ack 1 win 1000\n" + // 4 matches
		"+.1 > P. 1:101(100) ack 1\n" + // 5 matches
		"+.2 < . 1:1(0) ack 101 win 1000\n" + // 6 an unexpected packet comes first
		"+0 > P. 101:201(100) ack 1\n" // 7 matches
	dir := t.TempDir()
	path := filepath.Join(dir, "s.pkt")
	os.WriteFile(path, []byte(script), 0o644)
	out := func() []outPkt {
		return []outPkt{{synack, 0}, {data, 200 * time.Millisecond}, {extra, 250 * time.Millisecond}, {more, 400 * time.Millisecond}}
	}
	fake := &replayTarget{out: out()}
	RegisterTarget("replay-test", func(TargetConfig) (Target, error) { return fake, nil })
	defer delete(targets, "replay-test")
	local := Option{Name: "local_ip", Value: DefaultLocalIP.String(), HasValue: true}
	res := Run(path, Options{Stack: "replay-test", Args: []Option{local}, KeepGoing: true})
	if res.Status != Fail || res.Failure == nil || !strings.Contains(res.Failure.Message, "window 1000, expected 9") {
		t.Fatalf("want FAIL at the window, got %s %+v", res.Status, res.Failure)
	}
	if res.Lines != 7 || res.Matched != 5 || len(res.Mismatches) != 2 {
		t.Fatalf("lines %d matched %d mismatches %d, want 7, 5 and 2: %+v", res.Lines, res.Matched, len(res.Mismatches), res.Mismatches)
	}
	if m := res.Mismatches[1]; !strings.HasSuffix(m.Where, ":6") || !strings.Contains(m.Message, "unexpected packet from the stack at 0.2500s") {
		t.Errorf("second mismatch %+v, want the unexpected packet before line 6", m)
	}
	if len(fake.injected) != 3 {
		t.Errorf("%d packets injected, want 3: line 6 still runs after the unexpected packet", len(fake.injected))
	}
	// Without KeepGoing the same run stops at the first mismatch.
	fake2 := &replayTarget{out: out()}
	RegisterTarget("replay-test", func(TargetConfig) (Target, error) { return fake2, nil })
	res = Run(path, Options{Stack: "replay-test", Args: []Option{local}})
	if res.Status != Fail || len(res.Mismatches) != 0 || res.Matched != 2 || !strings.Contains(res.Failure.Message, "window 1000, expected 9") {
		t.Errorf("without KeepGoing: %s, matched %d, %d mismatches, %+v; want FAIL at the window after 2 matched lines", res.Status, res.Matched, len(res.Mismatches), res.Failure)
	}
}
