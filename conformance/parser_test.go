package conformance

import (
	"strings"
	"testing"
	"time"

	"tunstack/wire"
)

// Scripts in the shapes found in packetdrill's own suite and in the wild.
var goodScripts = map[string]string{
	"passive": "--tolerance_usecs=10000\n--ip_version=ipv4\n`../common/defaults.sh`\n" + `
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0
+0  < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
+0  > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>
+.1 < . 1:1(0) ack 1 win 257
+0  accept(3, ..., ...) = 4
`,
	"comments": `/* a block
comment over lines */
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3 // trailing
// whole line
+.1 close(3) = 0`,
	"active": `0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0 > S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 8>
+.1 < S. 0:0(0) ack 1 win 5792 <mss 1460,sackOK,TS val 700 ecr 100,nop,wscale 7>
+0 > . 1:1(0) ack 1 <nop,nop,TS val 200 ecr 700>
+0 getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0`,
	"ranges-blocking": `0.100...0.300 accept(3, ..., ...) = 4
+.2~+.3 > P. 1:1001(1000) ack 1
1.0~1.5 > . 1:1(0) ack 1
* > F. 1:1(0) ack 1 <...>
+0 < R 5:5(0) win 0
+0 < - 1:1(0) win 0
+0 < FP. 1:11(10) ack 1 urg 3 win 100 <sack 1:5 10:20,eol>
+0 < EW. 1:1(0) ack 1 win 100
+0 < U. 1:1(0) ack 1 win 100 urg 1`,
	"syscall-args": `0 setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0
+0 poll([{fd=4, events=POLLIN|POLLOUT, revents=POLLOUT}], 1, 0) = 1
+0 setsockopt(3, SOL_TCP, TCP_CONGESTION, "cubic", 5) = 0
+0 write(4, ..., 0x10) = 16
+0 connect(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.0.2.1")}, 16) = 0
+0 getsockopt(4, SOL_SOCKET, SO_ERROR, [ECONNRESET], [4]) = 0
+0 read(4, ..., 100) = -1 EAGAIN (Resource temporarily unavailable)`,
	"shell-code": "0 `sysctl -q net.ipv4.tcp_sack=0; echo 1 > /proc/sys/net/ipv4/tcp_dsack`\n" + `
+0 %{
assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd
assert tcpi_rto == 1000000
}%
%{ print(tcpi_ca_state) }%
`,
}

func TestParseGoodScripts(t *testing.T) {
	for name, src := range goodScripts {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(name+".pkt", src); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseDetails(t *testing.T) {
	s, err := Parse("p.pkt", goodScripts["passive"])
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Options) != 2 || s.Options[0].Name != "tolerance_usecs" || s.Options[0].Value != "10000" || s.Options[1].Value != "ipv4" {
		t.Errorf("options: %+v", s.Options)
	}
	if s.Events[0].Shell == nil || s.Events[0].Shell.Command != "../common/defaults.sh" {
		t.Errorf("shell: %+v", s.Events[0])
	}
	syn := s.Events[5].Packet
	if syn.Dir != Inbound || syn.Flags != wire.FlagSYN || !syn.HasWin || syn.Win != 32792 || len(syn.Opts) != 6 {
		t.Errorf("SYN: %+v", syn)
	}
	if syn.Opts[0].Kind != OptKindMSS || syn.Opts[0].Value != 1000 || syn.Opts[5].Kind != OptKindWScale || syn.Opts[5].Value != 7 {
		t.Errorf("SYN options: %+v", syn.Opts)
	}
	sa := s.Events[6].Packet
	if sa.Dir != Outbound || sa.Flags != wire.FlagSYN|wire.FlagACK || !sa.HasAck || sa.Ack != 1 || sa.HasWin {
		t.Errorf("SYN-ACK: %+v", sa)
	}
	if e := s.Events[7]; e.Time.Kind != TimeRelative || e.Time.Start != 100*time.Millisecond || e.Line != 11 {
		t.Errorf("event time/line: %+v", e)
	}

	s, err = Parse("r.pkt", goodScripts["ranges-blocking"])
	if err != nil {
		t.Fatal(err)
	}
	acc := s.Events[0]
	if acc.Time.Start != 100*time.Millisecond || !acc.Syscall.HasEnd || acc.Syscall.EndTime != 300*time.Millisecond {
		t.Errorf("blocking call: %+v %+v", acc.Time, acc.Syscall)
	}
	if r := s.Events[1].Time; r.Kind != TimeRelative || !r.HasRange || r.Start != 200*time.Millisecond || r.End != 300*time.Millisecond {
		t.Errorf("relative range: %+v", r)
	}
	if r := s.Events[2].Time; r.Kind != TimeAbsolute || !r.HasRange || r.End != 1500*time.Millisecond {
		t.Errorf("absolute range: %+v", r)
	}
	if s.Events[3].Time.Kind != TimeAny || !s.Events[3].Packet.OptionsAny {
		t.Errorf("any: %+v", s.Events[3])
	}
	if p := s.Events[5].Packet; p.Flags != 0 || p.FlagStr != "-" {
		t.Errorf("no flags: %+v", p)
	}
	fp := s.Events[6].Packet
	if fp.Flags != wire.FlagFIN|wire.FlagPSH|wire.FlagACK || fp.Len != 10 || fp.Urg != 3 || len(fp.Opts[0].Blocks) != 2 || fp.Opts[1].Kind != OptKindEOL {
		t.Errorf("FP.: %+v", fp)
	}
	if p := s.Events[7].Packet; p.Flags != wire.FlagECE|wire.FlagCWR|wire.FlagACK {
		t.Errorf("EW.: %+v", p)
	}

	s, err = Parse("a.pkt", goodScripts["syscall-args"])
	if err != nil {
		t.Fatal(err)
	}
	l := s.Events[0].Syscall.Args[3]
	if v, _ := StructField(l, "linger"); l.Kind != ExprStruct || v.Int != 0 {
		t.Errorf("linger: %s", l)
	}
	pes, err := PollEntries(s.Events[1].Syscall.Args[0])
	if err != nil || len(pes) != 1 || pes[0].FD != 4 || pes[0].Events != 5 || pes[0].Revents != 4 {
		t.Errorf("poll: %+v %v", pes, err)
	}
	if a := s.Events[2].Syscall.Args[3]; a.Kind != ExprString || a.Name != "cubic" {
		t.Errorf("string: %s", a)
	}
	if v, _ := IntValue(s.Events[3].Syscall.Args[2]); v != 16 {
		t.Errorf("hex: %d", v)
	}
	if v, _ := PointerInt(s.Events[5].Syscall.Args[3]); v != 104 {
		t.Errorf("[ECONNRESET] = %d", v)
	}
	rd := s.Events[6].Syscall
	if v, _ := IntValue(rd.Result); v != -1 || rd.Errno != "EAGAIN" || rd.Note != "Resource temporarily unavailable" {
		t.Errorf("errno: %+v", rd)
	}

	s, err = Parse("c.pkt", goodScripts["shell-code"])
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Events) != 3 || s.Events[1].Code == nil || !strings.Contains(s.Events[1].Code.Code, "tcpi_rto") || s.Events[2].Code == nil {
		t.Errorf("code blocks: %+v", s.Events)
	}
}

func TestParseErrorsNameLineAndExpectation(t *testing.T) {
	cases := []struct{ src, want string }{
		{"0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 > S. 0:0 ack 1", "x.pkt:2: expected \"(\""},
		{"\n\n0 < S 0:10(5) win 100", "x.pkt:3: sequence range 0:10 does not match length 5"},
		{"0 < SX 0:0(0)", "x.pkt:1: bad TCP flags \"SX\""},
		{"0 < S 0:0(0) <mss 1460,bogus 3>", "x.pkt:1: unknown TCP option \"bogus\""},
		{"0 < S 0:0(0) <TS 1 ecr 2>", "x.pkt:1: expected val after TS"},
		{"0 close(3)", "x.pkt:1: expected = result after close(...)"},
		{"hello", "x.pkt:1: expected an event time"},
		{"0 < S 0:0(0) win 70000", "x.pkt:1: window 70000 does not fit"},
		{"0 `echo", "x.pkt:1: unterminated shell command"},
		{"/* open\n\n", "x.pkt:1: unterminated /* comment"},
		{"0 %{ x", "x.pkt:1: unterminated %{ code block"},
		{"0 close(3) = 0\n--mss=1000", "x.pkt:2: option --mss=1000 must come before the first event"},
		{"0~+1 close(3) = 0", "both ends of a time range"},
		{"0 write(4, ..., [1, ) = 0", "x.pkt:1: expected an argument"},
		{"... read(4, ..., 1) = 1", "x.pkt:1: expected an event time"},
		{"0.5...0.1 read(4, ..., 1) = 1", "end time comes before its start"},
	}
	for _, c := range cases {
		_, err := Parse("x.pkt", c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", c.src, err, c.want)
		}
	}
}

func TestParseSuiteScripts(t *testing.T) {
	files := suiteScripts(t)
	for _, f := range files {
		s, err := ParseFile(f)
		if err != nil {
			t.Error(err)
			continue
		}
		if len(s.Events) == 0 || s.Events[0].Shell == nil {
			t.Errorf("%s: expected the defaults shell line first", f)
		}
	}
}
