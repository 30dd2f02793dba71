package conformance

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"tunstack/policy"
	"tunstack/wire"
)

// Scripts written for gVisor's behaviour (its SYN-ACK window is 20 MSS,
// 29184 with window scale 7; no delayed ACK; SYN backoff 1, 2, 4 s).

const gvPassiveOpen = `
 0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460,sackOK,nop,nop,nop,wscale 7>
+0 > S. 0:0(0) ack 1 win 29184 <mss 1460,nop,nop,sackOK,nop,wscale 7>
+.01 < . 1:1(0) ack 1 win 512
+0 accept(3, ..., ...) = 4
`

const gvDataAndClose = gvPassiveOpen + `
+0 < P. 1:101(100) ack 1 win 512
+0 > . 1:1(0) ack 101
+0 read(4, ..., 1000) = 100
+0 write(4, ..., 10) = 10
+0 > P. 1:11(10) ack 101
+.01 < . 101:101(0) ack 11 win 512
+0 close(4) = 0
+0 > F. 11:11(0) ack 101
+.01 < F. 101:101(0) ack 12 win 512
+0 > . 12:12(0) ack 102
`

const gvBlockingReadPoll = gvPassiveOpen + `
+0...0.050 read(4, ..., 1000) = 500
+.05 < P. 1:501(500) ack 1 win 512
+0 > . 1:1(0) ack 501
+0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 read(4, ..., 2000) = -1 EAGAIN (Resource temporarily unavailable)
+0 poll([{fd=4, events=POLLIN, revents=0}], 1, 0) = 0
+0...0.030 poll([{fd=4, events=POLLIN, revents=POLLIN}], 1, 1000) = 1
+.03 < P. 501:601(100) ack 1 win 512
+0 > . 1:1(0) ack 601
+0 read(4, ..., 2000) = 100
`

const gvHalfCloseOptions = gvPassiveOpen + `
+0 setsockopt(4, SOL_SOCKET, SO_RCVBUF, [65536], 4) = 0
+0 getsockopt(4, SOL_SOCKET, SO_RCVBUF, [131072], [4]) = 0
+0 getsockopt(4, IPPROTO_TCP, TCP_NODELAY, [0], [4]) = 0
+0 shutdown(4, SHUT_WR) = 0
+0 > F. 1:1(0) ack 1
+.01 < . 1:1(0) ack 2 win 512
+0 write(4, ..., 10) = -1 EPIPE (Broken pipe)
+0 < F. 1:1(0) ack 2 win 512
+0 > . 2:2(0) ack 2
+0 read(4, ..., 1000) = 0
`

const gvLingerZero = gvPassiveOpen + `
+0 setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0
+0 close(4) = 0
+0 > R. 1:1(0) ack 1
`

const gvSynBackoff = `
 0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0 > S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
+1 > S 0:0(0) <mss 1460,sackOK,TS val 1100 ecr 0,nop,wscale 7>
+2 > S 0:0(0) <mss 1460,sackOK,TS val 3100 ecr 0,nop,wscale 7>
+4 > S 0:0(0) <mss 1460,sackOK,TS val 7100 ecr 0,nop,wscale 7>
+.1 < S. 0:0(0) ack 1 win 65535 <mss 1460,nop,wscale 7>
+0 > . 1:1(0) ack 1
+0 getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0
+0 connect(3, ..., ...) = 0
+0 connect(3, ..., ...) = -1 EISCONN (Transport endpoint is already connected)
`

const gvConnectRefused = `
 0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0...0.050 connect(3, ..., ...) = -1 ECONNREFUSED (Connection refused)
+0 > S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
+.05 < R. 0:0(0) ack 1 win 0
`

func runGvisor(t *testing.T, src string) *Result {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.pkt")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return Run(path, Options{Stack: "gvisor"})
}

func TestGvisorTargetPassesScripts(t *testing.T) {
	for name, src := range map[string]string{
		"data and close":         gvDataAndClose,
		"blocking read and poll": gvBlockingReadPoll,
		"half close and options": gvHalfCloseOptions,
		"linger zero":            gvLingerZero,
		"SYN backoff":            gvSynBackoff,
		"connect refused":        gvConnectRefused,
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			r := runGvisor(t, src)
			if r.Status != Pass {
				t.Fatalf("status %s, want PASS: %v", r.Status, r.Failure)
			}
			// Virtual time: seven seconds of SYN backoff take milliseconds.
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v of real time; the target should run in virtual time", d)
			}
		})
	}
}

func TestGvisorTargetMustFailScripts(t *testing.T) {
	for _, tc := range []struct {
		name, src, from, to string
		line                int // line of the failure in the edited script
		want                string
	}{
		{"wrong flag", gvDataAndClose, "> P. 1:11(10) ack 101", "> F. 1:11(10) ack 101", 15, "flags P., expected F."},
		{"wrong ack", gvDataAndClose, "> . 1:1(0) ack 101", "> . 1:1(0) ack 100", 12, "ack 101, expected 100"},
		{"Linux's window", gvDataAndClose, "win 29184", "win 64240", 7, "window 29184, expected 64240"},
		{"late packet", gvSynBackoff, "+2 > S", "+1.5 > S", 7, "expected packet did not arrive by"},
		{"early packet", gvSynBackoff, "+2 > S", "+2.5 > S", 7, "packet arrived too early at 3.0000s"},
		{"Linux's linear SYN timeouts", gvSynBackoff, "+2 > S", "+1 > S", 7, "expected packet did not arrive by 2.1250s"},
		{"wrong errno", gvConnectRefused, "ECONNREFUSED (Connection refused)", "ETIMEDOUT (Connection timed out)", 3, "connect failed with ECONNREFUSED, expected ETIMEDOUT"},
		{"wrong SO_RCVBUF", gvHalfCloseOptions, "[131072]", "[65536]", 12, "argument 4 holds 131072, expected 65536"},
		{"missing last ACK", gvDataAndClose, "+0 > . 12:12(0) ack 102\n", "", 19, "unexpected packet from the stack at 0.0300s, after the last line"},
		{"read blocks", gvBlockingReadPoll, "+0...0.050 read(4, ..., 1000) = 500", "+0 read(4, ..., 1000) = 500", 11, "read blocked for more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(tc.src, tc.from) {
				t.Fatalf("script has no %q", tc.from)
			}
			start := time.Now()
			r := runGvisor(t, strings.Replace(tc.src, tc.from, tc.to, 1))
			if r.Status != Fail || r.Failure == nil {
				t.Fatalf("status %s, want FAIL", r.Status)
			}
			if !strings.Contains(r.Failure.Message, tc.want) {
				t.Errorf("failure %q, want it to contain %q", r.Failure.Message, tc.want)
			}
			if want := ":" + strconv.Itoa(tc.line); !strings.HasSuffix(r.Failure.Where, want) {
				t.Errorf("failure at %s, want line %d", r.Failure.Where, tc.line)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v of real time", d)
			}
		})
	}
}

// TestGvisorTargetTimersAreExact drives the target directly: gVisor's SYN
// retransmissions come at exactly 1, 3 and 7 s of virtual time, every run.
func TestGvisorTargetTimersAreExact(t *testing.T) {
	for run := 0; run < 3; run++ {
		tg, err := newGvisorTarget(TargetConfig{Profile: policy.Linux(), LocalIP: DefaultLocalIP, RemoteIP: DefaultRemoteIP,
			BindPort: 8080, ConnectPort: 8080, MTU: 1500})
		if err != nil {
			t.Fatal(err)
		}
		call := func(src string) CallResult {
			s, err := Parse("t.pkt", "0 "+src)
			if err != nil {
				t.Fatal(err)
			}
			sc := s.Events[0].Syscall
			c := &Call{Name: sc.Name, Args: sc.Args, WantFD: -1}
			if v, err := IntValue(sc.Result); err == nil && sc.Name == "socket" {
				c.WantFD = int(v)
			}
			return <-tg.Syscall(c)
		}
		call("socket(..., SOCK_STREAM|SOCK_NONBLOCK, IPPROTO_TCP) = 3")
		if r := call("connect(3, ..., ...) = -1"); r.Errno != "EINPROGRESS" {
			t.Fatalf("connect: %+v, want EINPROGRESS", r)
		}
		var times []time.Duration
		for len(times) < 4 {
			pkt, at, ok, err := tg.Outbound(10 * time.Second)
			if err != nil || !ok {
				t.Fatalf("outbound: ok %v err %v after %v", ok, err, times)
			}
			if wire.TCP(wire.IPv4(pkt).Payload()).Flags() == wire.FlagSYN {
				times = append(times, at)
			}
		}
		want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}
		for i := range want {
			if times[i] != want[i] {
				t.Errorf("run %d: SYNs at %v, want %v", run, times, want)
				break
			}
		}
		if err := tg.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
}
