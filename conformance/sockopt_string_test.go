package conformance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TCP_CONGESTION, a socket option whose value is a string. The script
// passes on Linux 6.18 under the real packetdrill: the name is the bytes
// up to the first NUL within optlen, optlen 0 is EINVAL, an unknown name
// ENOENT, getsockopt stores the name NUL-padded and cut to optlen, and a
// connection a listener accepts runs its listener's algorithm.
const ccSockopt = "`sysctl -q net.ipv4.tcp_rmem=\"4096 131072 6291456\" net.ipv4.tcp_congestion_control=reno`" + `
 0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 getsockopt(3, SOL_TCP, TCP_CONGESTION, "reno", [4]) = 0
+0 setsockopt(3, SOL_TCP, TCP_CONGESTION, "nosuchcc", 8) = -1 ENOENT (No such file or directory)
+0 setsockopt(3, SOL_TCP, TCP_CONGESTION, "cubic", 6) = 0
+0 setsockopt(3, SOL_TCP, TCP_CONGESTION, "cubicx", 5) = 0
+0 setsockopt(3, SOL_TCP, TCP_CONGESTION, "reno", 0) = -1 EINVAL (Invalid argument)
+0 getsockopt(3, SOL_TCP, TCP_CONGESTION, "cubic", [5]) = 0
+0 getsockopt(3, SOL_TCP, TCP_CONGESTION, "cu", [2]) = 0
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460,sackOK,nop,nop,nop,wscale 7>
+0 > S. 0:0(0) ack 1 win 64240 <mss 1460,nop,nop,sackOK,nop,wscale 7>
+.01 < . 1:1(0) ack 1 win 512
+0 accept(3, ..., ...) = 4
+0 getsockopt(4, SOL_TCP, TCP_CONGESTION, "cubic", [5]) = 0
+0 setsockopt(4, SOL_TCP, TCP_CONGESTION, "reno", 4) = 0
+0 getsockopt(4, SOL_TCP, TCP_CONGESTION, "reno", [4]) = 0
`

func runScriptOn(t *testing.T, stack, src string) *Result {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.pkt")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return Run(path, Options{Stack: stack})
}

func TestTCPCongestionSockoptTunstack(t *testing.T) {
	if r := runScriptOn(t, "tunstack", ccSockopt); r.Status != Pass {
		t.Fatalf("status %s, want PASS: %v", r.Status, r.Failure)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"child runs the listener's choice", `getsockopt(4, SOL_TCP, TCP_CONGESTION, "cubic", [5])`,
			`getsockopt(4, SOL_TCP, TCP_CONGESTION, "reno", [4])`, `getsockopt stored "cubi", expected "reno"`},
		{"optlen differs from the string", `"cu", [2]`, `"cu", [3]`, `the expected value "cu" is 2 bytes, not the optlen 3`},
		{"a name cut by optlen is unknown", `"cubicx", 5`, `"cubicx", 3`, "setsockopt returned -1, expected 0"},
		{"switch on the connection", `setsockopt(4, SOL_TCP, TCP_CONGESTION, "reno", 4)`,
			`setsockopt(4, SOL_TCP, TCP_CONGESTION, "cubic", 5)`, `getsockopt stored "cubi", expected "reno"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(ccSockopt, tc.from) {
				t.Fatalf("script has no %q", tc.from)
			}
			r := runScriptOn(t, "tunstack", strings.Replace(ccSockopt, tc.from, tc.to, 1))
			if r.Status != Fail || r.Failure == nil || !strings.Contains(r.Failure.Message, tc.want) {
				t.Fatalf("status %s failure %v, want FAIL with %q", r.Status, r.Failure, tc.want)
			}
		})
	}
}

// gVisor's sentry takes all optlen bytes as the name, NUL included, so
// "cubic" with optlen 6 is unknown (ENOENT), as is optlen 0; and gVisor
// gives an accepted connection the stack's default, not its listener's
// choice.
func TestTCPCongestionSockoptGvisor(t *testing.T) {
	src := strings.NewReplacer(
		`"cubic", 6) = 0`, `"cubic", 6) = -1 ENOENT (No such file or directory)`,
		`"reno", 0) = -1 EINVAL (Invalid argument)`, `"reno", 0) = -1 ENOENT (No such file or directory)`,
		"win 64240", "win 29184",
		`getsockopt(4, SOL_TCP, TCP_CONGESTION, "cubic", [5])`, `getsockopt(4, SOL_TCP, TCP_CONGESTION, "reno", [4])`,
	).Replace(ccSockopt)
	if r := runScriptOn(t, "gvisor", src); r.Status != Pass {
		t.Fatalf("status %s, want PASS: %v", r.Status, r.Failure)
	}
}
