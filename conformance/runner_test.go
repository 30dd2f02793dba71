package conformance

import (
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

func runReplay(t *testing.T, src string, out []outPkt) (*Result, *replayTarget) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "s.pkt")
	os.WriteFile(path, []byte(src), 0o644)
	fake := &replayTarget{out: out}
	RegisterTarget("replay-test", func(TargetConfig) (Target, error) { return fake, nil })
	defer delete(targets, "replay-test")
	return Run(path, Options{Stack: "replay-test"}), fake
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
		{"wrong options", base + "+.1 > P. 1:101(100) ack 1 <nop>\n",
			[]outPkt{{synack, 0}, {data, 200 * time.Millisecond}}, "options <>, expected <nop>"},
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
		{"code block", base + "%{ assert tcpi_rto == 1 }%\n", []outPkt{{synack, 0}}, ""},
		{"errno", base + "+0 close(3) = -1 EBADF (Bad file descriptor)\n", []outPkt{{synack, 0}}, "close returned 0, expected -1"},
		{"icmp", base + "+0 < icmp unreachable port_unreachable [1:1(0)]\n", []outPkt{{synack, 0}}, "\"icmp\" packets are not supported"},
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
