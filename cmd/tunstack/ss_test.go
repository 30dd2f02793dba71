package main

// Tests of tunstack ss: the formatter and the filter parser against what
// iproute2's ss printed for kernel sockets (unit tests, no root), then
// namespaced tests against a running serve (root).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tunstack/control"
	"tunstack/internal/testtools"
	"tunstack/lab/netns"
	"tunstack/stack"
	"tunstack/tcpcore"
)

// kernelSockets are the sockets of a kernel namespace where a python
// http.server on 127.0.0.1:8000 sends a large file to a curl that reads it
// slowly, with their queues as the kernel's ss reported them.
func kernelSockets() []stack.SocketInfo {
	ap := netip.MustParseAddrPort
	return []stack.SocketInfo{
		{State: tcpcore.Listen, Local: ap("127.0.0.1:8000"), Remote: ap("0.0.0.0:0"), RecvQ: 0, SendQ: 5},
		{State: tcpcore.Established, Local: ap("127.0.0.1:8000"), Remote: ap("127.0.0.1:41330"), RecvQ: 0, SendQ: 3325297},
		{State: tcpcore.Established, Local: ap("127.0.0.1:41330"), Remote: ap("127.0.0.1:8000"), RecvQ: 2515084, SendQ: 0},
	}
}

func ssOutput(t *testing.T, socks []stack.SocketInfo, args ...string) string {
	t.Helper()
	o, err := parseSSArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	formatSS(&b, socks, o)
	return b.String()
}

func TestSSLayoutIsKernelSS(t *testing.T) {
	// Each want is what iproute2 6.1's ss printed for the same sockets,
	// trailing spaces included.
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-tan"}, "" +
			"State  Recv-Q  Send-Q  Local Address:Port  Peer Address:Port Process\n" +
			"LISTEN 0       5           127.0.0.1:8000       0.0.0.0:*           \n" +
			"ESTAB  0       3325297     127.0.0.1:8000     127.0.0.1:41330       \n" +
			"ESTAB  2515084 0           127.0.0.1:41330    127.0.0.1:8000        \n"},
		{[]string{"-tn"}, "" +
			"State Recv-Q  Send-Q  Local Address:Port  Peer Address:Port Process\n" +
			"ESTAB 0       3325297     127.0.0.1:8000     127.0.0.1:41330       \n" +
			"ESTAB 2515084 0           127.0.0.1:41330    127.0.0.1:8000        \n"},
		{[]string{"-tl"}, "" +
			"State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n" +
			"LISTEN 0      5          127.0.0.1:8000      0.0.0.0:*          \n"},
		// A single state in the filter leaves the State column out.
		{[]string{"-tan", "state", "established"}, "" +
			"Recv-Q  Send-Q  Local Address:Port  Peer Address:Port Process\n" +
			"0       3325297     127.0.0.1:8000     127.0.0.1:41330       \n" +
			"2515084 0           127.0.0.1:41330    127.0.0.1:8000        \n"},
	}
	for _, tt := range tests {
		if got := ssOutput(t, kernelSockets(), tt.args...); got != tt.want {
			t.Errorf("ss %q:\n%s\nwant (kernel ss):\n%s", tt.args, got, tt.want)
		}
	}

	// Without the header, the cells alone set the widths; the queues are
	// at least six wide. The same server once curl had gone, filtered.
	ap := netip.MustParseAddrPort
	later := []stack.SocketInfo{
		{State: tcpcore.Listen, Local: ap("127.0.0.1:8000"), Remote: ap("0.0.0.0:0"), RecvQ: 0, SendQ: 5},
		{State: tcpcore.FinWait1, Local: ap("127.0.0.1:8000"), Remote: ap("127.0.0.1:42066"), RecvQ: 0, SendQ: 974505},
		{State: tcpcore.Established, Local: ap("127.0.0.1:42066"), Remote: ap("127.0.0.1:8000"), RecvQ: 613219, SendQ: 0},
	}
	want := "" +
		"LISTEN     0      5      127.0.0.1:8000   0.0.0.0:*    \n" +
		"FIN-WAIT-1 0      974505 127.0.0.1:8000 127.0.0.1:42066\n"
	if got := ssOutput(t, later, "-tanH", "sport = :8000"); got != want {
		t.Errorf("ss -tanH 'sport = :8000':\n%s\nwant (kernel ss):\n%s", got, want)
	}
}

func TestSSTimerColumnIsKernelSS(t *testing.T) {
	ap := netip.MustParseAddrPort
	socks := []stack.SocketInfo{
		{State: tcpcore.Established, Local: ap("127.0.0.1:8000"), Remote: ap("127.0.0.1:42066"), SendQ: 3697115,
			Timer: tcpcore.TimerPersist, TimerLeft: 1076 * time.Millisecond, TCPInfo: &tcpcore.TCPInfo{}},
		{State: tcpcore.Established, Local: ap("127.0.0.1:42066"), Remote: ap("127.0.0.1:8000"), RecvQ: 595016,
			Timer: tcpcore.TimerKeepalive, TimerLeft: 57*time.Second + 400*time.Millisecond, TCPInfo: &tcpcore.TCPInfo{}},
	}
	want := "" +
		"State Recv-Q Send-Q  Local Address:Port  Peer Address:Port Process                   \n" +
		"ESTAB 0      3697115     127.0.0.1:8000     127.0.0.1:42066 timer:(persist,1.076ms,0)\n" +
		"ESTAB 595016 0           127.0.0.1:42066    127.0.0.1:8000  timer:(keepalive,57sec,0)\n"
	if got := ssOutput(t, socks, "-tno"); got != want {
		t.Errorf("got:\n%s\nwant (kernel ss -tno):\n%s", got, want)
	}
}

func TestSSTimerText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		1076 * time.Millisecond:               "1.076ms",
		57*time.Second + 400*time.Millisecond: "57sec",
		200 * time.Millisecond:                "200ms",
		5 * time.Second:                       "5sec",
		9*time.Second + 5*time.Millisecond:    "9.005ms",
		61 * time.Second:                      "1min1sec",
		61*time.Second + 500*time.Millisecond: "1min1sec",
		11*time.Minute + 30*time.Second:       "11min",
		0:                                     "",
	} {
		if got := ssTimerText(d); got != want {
			t.Errorf("ssTimerText(%v) = %q, want %q", d, got, want)
		}
	}
}

// kernelInfo is the struct tcp_info behind a line the kernel's ss -tni
// printed for the sending server of kernelSockets.
func kernelInfo() *tcpcore.TCPInfo {
	return &tcpcore.TCPInfo{
		State: 1, Options: tcpcore.TCPIOptTimestamps | tcpcore.TCPIOptSACK | tcpcore.TCPIOptWscale, SndWscale: 10, RcvWscale: 10,
		RTO: 212000, Backoff: 3, RTT: 10043, RTTVar: 17399, ATO: 40000,
		SndMSS: 65483, PMTU: 65535, RcvMSS: 536, AdvMSS: 65483, SndCwnd: 34, SndSsthresh: 8,
		BytesSent: 6360499, BytesRetrans: 2631, BytesAcked: 6357868, BytesReceived: 85,
		SegsOut: 155, SegsIn: 41, DataSegsOut: 151, DataSegsIn: 1,
		LastDataSent: 1892, LastDataRecv: 1972, LastAckRecv: 348,
		PacingRate: 21678860640 / 8, MaxPacingRate: ^uint64(0), DeliveryRate: 154809664 / 8, Delivered: 152,
		BusyTime: 1960000, RwndLimited: 1916000,
		TotalRetrans: 1, DSACKDups: 1, Reordering: 3, RcvSpace: 65483, RcvSsthresh: 65483,
		NotsentBytes: 3467968, MinRTT: 7,
	}
}

func TestSSInfoLineIsKernelSS(t *testing.T) {
	si := kernelSockets()[1]
	si.Congestion, si.TCPInfo = "bbr", kernelInfo()
	// What the kernel's ss printed, less its "bbr:(...)" field, which
	// reports BBR's own state (INET_DIAG_BBRINFO), not struct tcp_info.
	tests := []struct {
		args   []string
		want   string
		prefix bool // want is how the line starts
	}{
		{[]string{"-tni"}, " bbr wscale:10,10 rto:212 backoff:3 rtt:10.043/17.399 ato:40 mss:65483 pmtu:65535 rcvmss:536 advmss:65483 cwnd:34 ssthresh:8 bytes_sent:6360499 bytes_retrans:2631 bytes_acked:6357868 bytes_received:85 segs_out:155 segs_in:41 data_segs_out:151 data_segs_in:1 send 1773511501bps lastsnd:1892 lastrcv:1972 lastack:348 pacing_rate 21678860640bps delivery_rate 154809664bps delivered:152 busy:1960ms rwnd_limited:1916ms(97.8%) retrans:0/1 dsack_dups:1 rcv_space:65483 rcv_ssthresh:65483 notsent:3467968 minrtt:0.007", false},
		{[]string{"-ti"}, " bbr wscale:10,10 rto:212 backoff:3 rtt:10.043/17.399 ato:40 mss:65483 pmtu:65535 rcvmss:536 advmss:65483 cwnd:34 ssthresh:8 bytes_sent:6360499 bytes_retrans:2631 bytes_acked:6357868 bytes_received:85 segs_out:155 segs_in:41 data_segs_out:151 data_segs_in:1 send 1.77Gbps lastsnd:1892 lastrcv:1972 lastack:348 pacing_rate 21.7Gbps delivery_rate 155Mbps delivered:152 busy:1960ms rwnd_limited:1916ms(97.8%) retrans:0/1 dsack_dups:1 rcv_space:65483 rcv_ssthresh:65483 notsent:3467968 minrtt:0.007", false},
		{[]string{"-tnio"}, " ts sack bbr wscale:10,10 rto:212 backoff:3 ", true},
	}
	for _, tt := range tests {
		out := ssOutput(t, []stack.SocketInfo{si}, tt.args...)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		got := lines[len(lines)-1]
		if len(lines) != 3 || got != "\t"+tt.want && !(tt.prefix && strings.HasPrefix(got, "\t"+tt.want)) {
			t.Errorf("ss %q info line:\n%q\nwant (kernel ss):\n%q", tt.args, got, "\t"+tt.want)
		}
	}
}

func TestSSInfoLeavesOutWhatSSLeavesOut(t *testing.T) {
	ap := netip.MustParseAddrPort
	// A kernel SYN-SENT socket's line: no RTT sample (min_rtt ~0, which
	// ss leaves out), infinite ssthresh, reordering 3.
	syn := stack.SocketInfo{State: tcpcore.SynSent, Local: ap("198.18.0.1:40142"), Remote: ap("198.18.5.9:80"), SendQ: 1,
		Congestion: "bbr", TCPInfo: &tcpcore.TCPInfo{State: 2, RTO: 1000000, SndMSS: 524, PMTU: 65535, RcvMSS: 88, AdvMSS: 65495,
			SndCwnd: 1, SndSsthresh: 0x7fffffff, SegsOut: 2, LastDataSent: 20578276, LastDataRecv: 20578276, LastAckRecv: 20578276,
			DeliveryRateAppLimited: 1, Unacked: 1, Retrans: 1, TotalRetrans: 1, Lost: 1, Reordering: 3, RcvSsthresh: 65495,
			MinRTT: ^uint32(0), PacingRate: ^uint64(0), MaxPacingRate: ^uint64(0)}}
	want := "\t bbr rto:1000 mss:524 pmtu:65535 rcvmss:88 advmss:65495 cwnd:1 segs_out:2 lastsnd:20578276 lastrcv:20578276 lastack:20578276 app_limited unacked:1 retrans:1/1 lost:1 rcv_ssthresh:65495\n"
	if got := ssOutput(t, []stack.SocketInfo{syn}, "-tni", "state", "syn-sent"); !strings.HasSuffix(got, want) {
		t.Errorf("got:\n%q\nwant the line (kernel ss, less bbr:(...)):\n%q", got, want)
	}

	// A listener: Sacked is its backlog, not shown; Unacked its accept
	// queue; synq ends the line with -i, sits in the Process column with -e.
	l := stack.SocketInfo{State: tcpcore.Listen, Local: ap("198.18.0.2:80"), Remote: ap("0.0.0.0:0"), RecvQ: 2, SendQ: 128, SynQueue: 4,
		Congestion: "cubic", TCPInfo: &tcpcore.TCPInfo{State: 10, SndCwnd: 10, Unacked: 2, Sacked: 128, Reordering: 3,
			PacingRate: ^uint64(0), MaxPacingRate: ^uint64(0)}}
	if got := ssOutput(t, []stack.SocketInfo{l}, "-tlni"); !strings.HasSuffix(got, "\n\t cubic cwnd:10 unacked:2 synq:4\n") {
		t.Errorf("listener -i:\n%q", got)
	}
	if got := ssOutput(t, []stack.SocketInfo{l}, "-tlnie"); !strings.Contains(got, "0.0.0.0:*    synq:4 <->\n\t cubic cwnd:10 unacked:2\n") {
		t.Errorf("listener -ie:\n%q", got)
	}

	// A TIME-WAIT socket has no tcp_info: no line under it.
	tw := stack.SocketInfo{State: tcpcore.TimeWait, Local: ap("198.18.0.2:80"), Remote: ap("198.18.0.1:5000"),
		Timer: tcpcore.TimerTimeWait, TimerLeft: 59 * time.Second}
	if got := ssOutput(t, []stack.SocketInfo{tw}, "-tanie"); strings.Count(got, "\n") != 2 || !strings.Contains(got, "\nTIME-WAIT 0      0         198.18.0.2:80     198.18.0.1:5000 timer:(timewait,59sec,0)\n") {
		t.Errorf("TIME-WAIT:\n%q", got)
	}

	// gVisor's unknown queues print as -, its unknown reordering not at all.
	gv := stack.SocketInfo{State: tcpcore.Established, Local: ap("198.18.0.2:80"), Remote: ap("198.18.0.1:5000"),
		Unknown:    stack.UnknownSendQ | stack.UnknownReordering | stack.UnknownShutdown | stack.UnknownTimer,
		Congestion: "cubic", TCPInfo: &tcpcore.TCPInfo{State: 1, RTO: 201000, RTT: 500, RTTVar: 250, SndCwnd: 10}}
	if got := ssOutput(t, []stack.SocketInfo{gv}, "-tnie"); !strings.Contains(got, "\nESTAB 0      -         198.18.0.2:80     198.18.0.1:5000       \n\t cubic rto:201 rtt:0.5/0.25 cwnd:10\n") {
		t.Errorf("gVisor socket:\n%q", got)
	}
}

func TestSSShutdownArrows(t *testing.T) {
	for _, tt := range []struct {
		rd, wr bool
		want   string
	}{{false, false, " <->"}, {true, false, " -->"}, {false, true, " <--"}, {true, true, " ---"}} {
		si := stack.SocketInfo{State: tcpcore.Established, ShutRead: tt.rd, ShutWrite: tt.wr}
		if got := ssProcessText(&si, ssOptions{extended: true}); got != tt.want {
			t.Errorf("read shut %v, write shut %v: %q, want %q", tt.rd, tt.wr, got, tt.want)
		}
	}
}

func TestSSBandwidth(t *testing.T) {
	for _, tt := range []struct {
		bps     float64
		numeric bool
		want    string
	}{
		{87381333333.3, true, "87381333333"},
		{87381333333.3, false, "87.4G"},
		{207930894200, false, "208G"},
		{13797052624, false, "13.8G"},
		{154809664, false, "155M"},
		{999990, false, "1e+03K"},
		{115800, false, "116K"},
		{2.5e12, false, "2.5T"},
		{640, false, "640"},
	} {
		if got := ssBandwidth(tt.bps, tt.numeric); got != tt.want {
			t.Errorf("ssBandwidth(%v, %v) = %q, want %q", tt.bps, tt.numeric, got, tt.want)
		}
	}
}

func TestSSFilterSelects(t *testing.T) {
	ap := netip.MustParseAddrPort
	socks := []stack.SocketInfo{
		{State: tcpcore.Listen, Local: ap("198.18.0.2:80"), Remote: ap("0.0.0.0:0")},
		{State: tcpcore.Listen, Local: ap("198.18.0.2:7"), Remote: ap("0.0.0.0:0")},
		{State: tcpcore.Established, Local: ap("198.18.0.2:80"), Remote: ap("198.18.0.1:40000")},
		{State: tcpcore.Established, Local: ap("198.18.0.2:19"), Remote: ap("198.18.0.1:40001")},
		{State: tcpcore.SynSent, Local: ap("198.18.0.2:50000"), Remote: ap("198.18.0.1:80")},
		{State: tcpcore.SynReceived, Local: ap("198.18.0.2:80"), Remote: ap("198.18.0.1:40002")},
		{State: tcpcore.TimeWait, Local: ap("198.18.0.2:80"), Remote: ap("198.18.0.1:39999")},
		{State: tcpcore.CloseWait, Local: ap("198.18.0.2:7"), Remote: ap("10.1.0.1:40003")},
		{State: tcpcore.FinWait2, Local: ap("198.18.0.2:7"), Remote: ap("198.18.0.1:40004")},
	}
	// selected runs ss with args and returns the indexes it lists.
	selected := func(args ...string) []int {
		o, err := parseSSArgs(args)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		var idx []int
		for i := range socks {
			var b bytes.Buffer
			formatSS(&b, socks[i:i+1], o)
			if strings.Count(b.String(), "\n") > 1 {
				idx = append(idx, i)
			}
		}
		return idx
	}
	tests := []struct {
		args []string
		want []int
	}{
		{nil, []int{2, 3, 4, 7, 8}},
		{[]string{"-t"}, []int{2, 3, 4, 7, 8}},
		{[]string{"-l"}, []int{0, 1}},
		{[]string{"-a"}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},
		{[]string{"state", "established"}, []int{2, 3}},
		{[]string{"state", "listening"}, []int{0, 1}},
		{[]string{"state", "time-wait", "state", "syn-recv"}, []int{5, 6}},
		{[]string{"state", "bucket"}, []int{5, 6}},
		{[]string{"state", "connected"}, []int{2, 3, 4, 5, 6, 7, 8}},
		{[]string{"state", "synchronized"}, []int{2, 3, 5, 6, 7, 8}},
		{[]string{"state", "big"}, []int{0, 1, 2, 3, 4, 7, 8}},
		{[]string{"-a", "exclude", "listening"}, []int{2, 3, 4, 5, 6, 7, 8}},
		{[]string{"-a", "sport", "=", ":80"}, []int{0, 2, 5, 6}},
		{[]string{"-a", "sport = :80"}, []int{0, 2, 5, 6}},
		{[]string{"-a", "sport", "eq", "80"}, []int{0, 2, 5, 6}},
		{[]string{"dport = :80"}, []int{4}},
		{[]string{"-a", "dport", ">=", ":40001"}, []int{3, 5, 7, 8}},
		{[]string{"-a", "dport", "lt", ":40001", "dport", "gt", ":0"}, []int{2, 4, 6}},
		{[]string{"-a", "dport != :40000", "and", "src", "198.18.0.2:80"}, []int{0, 5, 6}},
		{[]string{"dst", "198.18.0.1"}, []int{2, 3, 4, 8}},
		{[]string{"dst", "10.0.0.0/8"}, []int{7}},
		{[]string{"dst", "!=", "198.18.0.0/24"}, []int{7}},
		{[]string{"-a", "src", ":7"}, []int{1, 7, 8}},
		{[]string{"-a", "src", "*:19"}, []int{3}},
		{[]string{"( sport = :19 or sport = :7 )"}, []int{3, 7, 8}},
		{[]string{"(sport = :19 or sport = :7)", "dst 198.18.0.1"}, []int{3, 8}},
		{[]string{"not", "sport", "=", ":7"}, []int{2, 3, 4}},
		{[]string{"!", "(", "sport", "=", ":7", "||", "dport", "=", ":80", ")"}, []int{2, 3}},
		{[]string{"sport = :80 or sport = :19 and dst 10.1.0.1"}, []int{2}},
		{[]string{"state", "established", "sport", "=", ":80"}, []int{2}},
	}
	for _, tt := range tests {
		if got := selected(tt.args...); !equalInts(got, tt.want) {
			t.Errorf("ss %q lists %v, want %v", tt.args, got, tt.want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSSArgumentErrorsSayWhatToDo(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-u"}, "-u asks for sockets other than TCP; the stack has only TCP sockets"},
		{[]string{"-6"}, "IPv4 only"},
		{[]string{"-tz"}, "there is no flag -z for ss; run tunstack ss --help"},
		{[]string{"--frob"}, "there is no flag --frob for ss"},
		{[]string{"--dev"}, "--dev needs a value after it"},
		{[]string{"state"}, "state needs a state after it, such as state established"},
		{[]string{"state", "open"}, `"open" is not a state; use one of established`},
		{[]string{"sport", "=", ":http"}, `":http" is not a port number; ports are numbers here (no service names)`},
		{[]string{"sport", ":80"}, "sport needs a comparison"},
		{[]string{"dport", "="}, "dport needs a comparison"},
		{[]string{"src"}, "src needs an address"},
		{[]string{"src", "example.com"}, `"example.com" is not an IPv4 address or prefix (no names are resolved)`},
		{[]string{"src", "<", "1.2.3.4"}, "src compares with = or != only"},
		{[]string{"(", "sport", "=", ":80"}, "opens a parenthesis it does not close"},
		{[]string{"sport", "=", ":80", ")"}, `the filter has ")" where it should end`},
		{[]string{"sport", "=", ":80", "and"}, "the filter ends where a condition should follow"},
		{[]string{"foo"}, `"foo" is not a filter condition`},
	}
	for _, tt := range tests {
		_, err := parseSSArgs(tt.args)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ss %q: %v, want a usage error with %q", tt.args, err, tt.want)
		}
	}
	if _, err := parseSSArgs([]string{"--help"}); !errors.Is(err, errHelp) {
		t.Errorf("--help: %v", err)
	}
}

func TestSSFlagsCombineAndPickTheServe(t *testing.T) {
	o, err := parseSSArgs([]string{"-tnie", "-H", "--dev", "tun3", "-N", "lab", "--socket=/tmp/x.sock", "sport", "=", ":80"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.numeric || !o.info || !o.extended || !o.noHeader || o.listening || o.all || o.dev != "tun3" || o.netns != "lab" || o.socket != "/tmp/x.sock" || o.filter.cond == nil {
		t.Errorf("parsed %+v", o)
	}
	if o, _ := parseSSArgs(nil); o.dev != "tun0" || o.netns != "" {
		t.Errorf("defaults %+v", o)
	}
	if got := ssWhere("tun0", ""); got != "" {
		t.Errorf("ssWhere default = %q", got)
	}
	if got := ssWhere("tun1", "lab"); got != " --dev tun1 --netns lab" {
		t.Errorf("ssWhere = %q", got)
	}
}

func TestSSWithoutAServeSaysHowToStartOne(t *testing.T) {
	path := t.TempDir() + "/tun9.sock"
	err := runSS(ssOptions{dev: "tun9", socket: path}, new(bytes.Buffer))
	want := "no tunstack serve answers on " + path + ": start one with `sudo tunstack serve --dev tun9`"
	if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Count(err.Error(), ". ") > 0 {
		t.Fatalf("err = %v, want one sentence starting %q", err, want)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"ss", "--socket", path}, &stdout, &stderr); code != 1 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "no tunstack serve answers on") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

// --- tunstack ss against a running serve (root, namespaced) ---

// ssRow is one socket of ss's output: its cells and its -i line.
type ssRow struct {
	state, recvQ, sendQ, local, peer, process string
	info                                      string
}

// parseSSOutput reads ss's output with the State column (any ss: ours or
// the kernel's).
func parseSSOutput(t *testing.T, out string) []ssRow {
	t.Helper()
	var rows []ssRow
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "State") {
		t.Fatalf("no header in:\n%s", out)
	}
	for _, line := range lines[1:] {
		if strings.HasPrefix(line, "\t") {
			if len(rows) == 0 {
				t.Fatalf("an info line before any socket in:\n%s", out)
			}
			rows[len(rows)-1].info = strings.TrimSpace(line)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 5 {
			t.Fatalf("line %q has %d fields", line, len(f))
		}
		rows = append(rows, ssRow{state: f[0], recvQ: f[1], sendQ: f[2], local: f[3], peer: f[4], process: strings.Join(f[5:], " ")})
	}
	return rows
}

// findRow returns the row whose local or peer address is addr.
func findRow(t *testing.T, rows []ssRow, local, peer string) ssRow {
	t.Helper()
	for _, r := range rows {
		if (local == "" || r.local == local) && (peer == "" || r.peer == peer) {
			return r
		}
	}
	t.Fatalf("no socket %s -> %s in %+v", local, peer, rows)
	return ssRow{}
}

// infoFields splits a -i line into its fields by name: "rtt:1/0.5" is rtt,
// "send 5Mbps" is send, "bbr:(...)" is bbr, a bare word (app_limited, ts,
// sack) is itself; the congestion controller's name, the line's first
// bare word, is left out, as it names the algorithm rather than a field.
func infoFields(info string) map[string]string {
	f := map[string]string{}
	toks := strings.Fields(info)
	for i := 0; i < len(toks); i++ {
		tok := toks[i]
		if k, v, ok := strings.Cut(tok, ":"); ok {
			f[k] = v
			continue
		}
		switch tok {
		case "send", "pacing_rate", "delivery_rate":
			if i+1 < len(toks) {
				f[tok] = toks[i+1]
				i++
			}
		case "ts", "sack", "ecn", "ecnseen", "fastopen", "app_limited":
			f[tok] = ""
		default:
			if i > 0 && !(i <= 5 && slices.Contains([]string{"ts", "sack", "ecn", "ecnseen", "fastopen"}, toks[i-1])) {
				f[tok] = ""
			}
		}
	}
	return f
}

// ssOf runs the tunstack binary's ss against serve s.
func ssOf(t *testing.T, s *served, args ...string) string {
	t.Helper()
	cmd := exec.Command(tunstackBinary(t), append([]string{"ss", "--netns", s.ns.Name()}, args...)...)
	code, stdout, stderr := runBinary(t, cmd, cmd.Start)
	if code != 0 {
		t.Fatalf("tunstack ss %q: exit %d: %s", args, code, stderr)
	}
	return stdout
}

// awaitSS runs tunstack ss until cond holds of its rows, and returns them.
// Nothing in the stack announces the states it waits for (a window filled,
// a transfer retransmitted), so it asks again every 50 ms, for at most a
// minute.
func awaitSS(t *testing.T, s *served, what string, cond func([]ssRow) bool, args ...string) []ssRow {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		rows := parseSSOutput(t, ssOf(t, s, args...))
		if cond(rows) {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("tunstack ss %q never showed %s; last:\n%+v", args, what, rows)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dialIn connects from inside ns with the socket options set before the
// handshake: a receive buffer (0 leaves it) and the congestion control.
func dialIn(t *testing.T, ns *netns.NS, addr string, rcvbuf int) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if rcvbuf > 0 {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			}
		})
		return errors.Join(err, serr)
	}}
	var c net.Conn
	if err := ns.Do(func() (err error) { c, err = d.Dial("tcp", addr); return err }); err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// echoOnce writes n bytes on c and reads them back.
func echoOnce(t *testing.T, c net.Conn, n int) {
	t.Helper()
	msg := bytes.Repeat([]byte("e"), n)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, msg); err != nil {
		t.Fatal(err)
	}
}

// kernelEchoPair makes a kernel connection in ns that looks like the idle
// one tunstack serves: a client on the loopback writes n bytes to a kernel
// echo server, reads them back, and both stay open. It returns the
// server's address.
func kernelEchoPair(t *testing.T, ns *netns.NS, n int) string {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { c.Close() })
		io.Copy(c, io.LimitReader(c, int64(n)))
	}()
	echoOnce(t, dialIn(t, ns, ln.Addr().String(), 0), n)
	return ln.Addr().String()
}

// ssInfoKeysNotCompared are the fields of ss -ti that the kernel's line
// for an idle echo connection and ours may differ in, each with why.
var ssInfoKeysNotCompared = map[string]string{
	"delivery_rate": "the engine has no delivery-rate sampler: TCPInfo.DeliveryRate is always 0, which ss leaves out",
	"app_limited":   "the same sampler's application-limited flag: always 0",
	"busy":          "the engine keeps no send-limit chronograph: TCPInfo.BusyTime is always 0",
	"rcv_space":     "the engine's receive auto-tuning measure starts at 0 and stays there until a window's worth of data was read in an RTT; Linux's starts at the initial window",
	"rcv_rtt":       "the engine samples the receiver's RTT from the timestamps of any data segment; Linux only from a segment of at least rcv_mss (tcp_rcv_rtt_measure_ts), which an echo's short message is not",
	"bbr":           "BBR's own state (INET_DIAG_BBRINFO), printed when the kernel's socket runs BBR, the namespace's default here; the engine has no BBR",
}

func TestSSShowsIdleAndZeroWindowConnectionsAsKernelSS(t *testing.T) {
	netns.RequireRoot(t)
	testtools.Need(t, "ss")
	s := startServe(t)
	stackAddr := func(port uint16) string { return netip.AddrPortFrom(s.cfg.StackAddr, port).String() }

	idle := dialIn(t, s.ns, stackAddr(s.cfg.EchoPort), 0)
	echoOnce(t, idle, 100)
	// A client that never reads chargen's endless output, with a small
	// receive buffer: its window closes, our Send-Q fills.
	stalled := dialIn(t, s.ns, stackAddr(s.cfg.ChargenPort), 4096)
	kernelServer := kernelEchoPair(t, s.ns, 100)

	stalledPeer := stalled.LocalAddr().String()
	rows := awaitSS(t, s, "the chargen connection at a zero window with data queued", func(rows []ssRow) bool {
		for _, r := range rows {
			if r.peer == stalledPeer {
				_, hasWnd := infoFields(r.info)["snd_wnd"]
				return r.sendQ != "0" && !hasWnd && strings.Contains(r.process, "timer:(persist,")
			}
		}
		return false
	}, "-tnio")

	st := findRow(t, rows, stackAddr(s.cfg.ChargenPort), stalledPeer)
	if st.state != "ESTAB" || st.recvQ != "0" {
		t.Errorf("stalled connection: %+v", st)
	}
	if n, err := strconv.Atoi(st.sendQ); err != nil || n <= 0 || infoFields(st.info)["notsent"] == "" {
		t.Errorf("stalled connection: Send-Q %s, want bytes queued (and notsent in %q)", st.sendQ, st.info)
	}
	in := findRow(t, rows, stackAddr(s.cfg.EchoPort), idle.LocalAddr().String())
	if in.state != "ESTAB" || in.recvQ != "0" || in.sendQ != "0" {
		t.Errorf("idle connection: %+v", in)
	}
	ours := infoFields(in.info)
	if ours["bytes_acked"] != "100" || ours["bytes_received"] != "100" || ours["bytes_sent"] != "100" {
		t.Errorf("idle connection's counters: %q", in.info)
	}

	// The same kind of connection in the kernel: the same fields, but for
	// those listed with a reason.
	out, err := s.ns.Command("ss", "-tnio").Output()
	if err != nil {
		t.Fatalf("kernel ss -tnio: %v", err)
	}
	kernel := infoFields(findRow(t, parseSSOutput(t, string(out)), kernelServer, "").info)
	var missing, extra []string
	for k := range kernel {
		if _, ok := ours[k]; !ok && ssInfoKeysNotCompared[k] == "" {
			missing = append(missing, k)
		}
	}
	for k := range ours {
		if _, ok := kernel[k]; !ok && ssInfoKeysNotCompared[k] == "" {
			extra = append(extra, k)
		}
	}
	if len(missing)+len(extra) > 0 {
		slices.Sort(missing)
		slices.Sort(extra)
		t.Errorf("-i fields the kernel prints and we do not: %q; we print and the kernel does not: %q\nours:   %s\nkernel: %s",
			missing, extra, in.info, findRow(t, parseSSOutput(t, string(out)), kernelServer, "").info)
	}
}

func TestSSListenersShowTheirQueues(t *testing.T) {
	netns.RequireRoot(t)
	// The services do not accept for an hour: connections wait in the
	// accept queue.
	s := startServe(t, "--accept-delay", "1h", "--backlog", "16")
	echo := netip.AddrPortFrom(s.cfg.StackAddr, s.cfg.EchoPort).String()
	for range 3 {
		dialIn(t, s.ns, echo, 0)
	}
	rows := awaitSS(t, s, "three connections in the echo listener's accept queue", func(rows []ssRow) bool {
		for _, r := range rows {
			if r.local == echo && r.state == "LISTEN" {
				return r.recvQ == "3"
			}
		}
		return false
	}, "-tlnie")
	l := findRow(t, rows, echo, "0.0.0.0:*")
	if l.sendQ != "16" || !strings.Contains(l.process, "synq:0") {
		t.Errorf("echo listener: %+v, want Send-Q 16 (the backlog) and synq:0", l)
	}
	if len(rows) != len(s.sess.listeners) {
		t.Errorf("ss -l lists %d sockets, want the %d listeners: %+v", len(rows), len(s.sess.listeners), rows)
	}
	// The queued connections are established sockets of their own.
	all := parseSSOutput(t, ssOf(t, s, "-tn", "sport", "=", fmt.Sprintf(":%d", s.cfg.EchoPort)))
	if len(all) != 3 || all[0].state != "ESTAB" {
		t.Errorf("queued connections: %+v", all)
	}
}

func TestSSShowsRetransmissionsUnderLoss(t *testing.T) {
	netns.RequireRoot(t)
	s := startServe(t, "--impair", "loss=2%,seed=5")
	c := dialIn(t, s.ns, netip.AddrPortFrom(s.cfg.StackAddr, s.cfg.HTTPPort).String(), 0)
	// A 4 MB download on a keep-alive connection, which stays open after.
	const size = 4_000_000
	if _, err := fmt.Fprintf(c, "GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n", size); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != size {
		t.Fatalf("read %d bytes of %d: %v", n, size, err)
	}
	row := findRow(t, parseSSOutput(t, ssOf(t, s, "-tni")), "", c.LocalAddr().String())
	if row.state != "ESTAB" {
		t.Errorf("state %s", row.state)
	}
	retrans, total, ok := strings.Cut(infoFields(row.info)["retrans"], "/")
	if n, err := strconv.Atoi(total); !ok || err != nil || n == 0 {
		t.Fatalf("a 4 MB transfer at 2%% loss shows no retransmission: retrans %s/%s in %q", retrans, total, row.info)
	}
	t.Logf("%s", row.info)
}

func TestSSOnGVisorSaysWhatItCannotReport(t *testing.T) {
	netns.RequireRoot(t)
	s := startServe(t, "--stack", "gvisor")
	c := dialIn(t, s.ns, netip.AddrPortFrom(s.cfg.StackAddr, s.cfg.EchoPort).String(), 0)
	echoOnce(t, c, 100)
	rows := parseSSOutput(t, ssOf(t, s, "-tani"))
	l := findRow(t, rows, netip.AddrPortFrom(s.cfg.StackAddr, s.cfg.EchoPort).String(), "0.0.0.0:*")
	if l.state != "LISTEN" || l.recvQ != "-" || l.sendQ != "-" {
		t.Errorf("gVisor listener: %+v, want LISTEN with unknown queues", l)
	}
	r := findRow(t, rows, "", c.LocalAddr().String())
	f := infoFields(r.info)
	if r.state != "ESTAB" || r.recvQ != "0" || r.sendQ != "-" || f["rtt"] == "" || f["cwnd"] == "" || f["segs_in"] == "" {
		t.Errorf("gVisor connection: %+v", r)
	}
}

func TestServeControlSocket(t *testing.T) {
	netns.RequireRoot(t)
	ns := newTestNS(t)
	path := control.SocketPath("tun0", ns.Name())

	// A serve that crashed left its socket behind: the next one takes over.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	s := startServeIn(t, ns)
	if !strings.Contains(s.out.String(), "sudo tunstack ss --netns "+ns.Name()+" -tni") || !strings.Contains(s.out.String(), "control socket "+path) {
		t.Errorf("the banner does not say how to run ss:\n%s", s.out)
	}
	for p, want := range map[string]fs.FileMode{path: fs.ModeSocket | 0o600, filepath.Dir(path): fs.ModeDir | 0o700} {
		if fi, err := os.Lstat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: %v, %v; want mode %v", p, fi.Mode(), err, want)
		}
	}

	// A second serve on the same device is refused, and says why.
	err = runServe(context.Background(), s.cfg, io.Discard, func(*serveSession) { t.Error("a second serve started on the same device") })
	if !errors.Is(err, control.ErrInUse) || !strings.Contains(err.Error(), "device tun0 is busy: another tunstack serve runs it (control socket in use: a server answers on "+path+"); stop it first or pick another --dev") {
		t.Errorf("second serve: %v", err)
	}

	// Garbage is answered with an error, and the connection closed.
	g, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	io.WriteString(g, "GET / HTTP/1.0\r\n\r\n")
	g.SetReadDeadline(time.Now().Add(30 * time.Second))
	answer, _ := io.ReadAll(g)
	var resp control.Response
	if err := json.Unmarshal(bytes.TrimSpace(answer), &resp); err != nil || !strings.Contains(resp.Error, "not a request") {
		t.Errorf("garbage got %q (%v)", answer, err)
	}

	// A client that stalls holds nothing up: the stack serves and ss
	// answers meanwhile; the stalled client is then disconnected.
	stall, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()
	io.WriteString(stall, `{"version":1,`)
	s.curl(t, "-o", "/dev/null", s.url("/bytes/1000000"))
	if rows := parseSSOutput(t, ssOf(t, s, "-tl")); len(rows) != len(s.sess.listeners) {
		t.Errorf("ss during the stall: %+v", rows)
	}
	stall.SetReadDeadline(time.Now().Add(control.RequestTimeout + 30*time.Second))
	answer, _ = io.ReadAll(stall)
	if !bytes.Contains(answer, []byte("no complete request line within")) {
		t.Errorf("stalled client got %q", answer)
	}

	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, filepath.Dir(path)} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there after serve stopped (%v)", p, err)
		}
	}
	cmd := exec.Command(tunstackBinary(t), "ss", "--netns", ns.Name())
	code, stdout, stderr := runBinary(t, cmd, cmd.Start)
	checkOneLineFailure(t, code, stdout, stderr, "no tunstack serve answers on "+path+": start one with `sudo tunstack serve --netns "+ns.Name()+"`")
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
}
