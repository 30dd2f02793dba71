package conformance

import (
	"fmt"
	"strings"
	"testing"

	"tunstack/internal/testtools"
)

func TestTCPInfoVarsLayout(t *testing.T) {
	b := make([]byte, 280)
	b[0] = 1                 // state
	b[6] = 7 | 9<<4          // snd_wscale 7, rcv_wscale 9
	b[80] = 10               // snd_cwnd
	b[240], b[241] = 0x34, 1 // total_rto
	b[272] = 5               // received_ce_bytes, the last field
	v := tcpInfoVars(b)
	for name, want := range map[string]uint64{"tcpi_state": 1, "tcpi_snd_wscale": 7, "tcpi_rcv_wscale": 9,
		"tcpi_snd_cwnd": 10, "tcpi_total_rto": 0x134, "tcpi_received_ce_bytes": 5} {
		if v[name] != want {
			t.Errorf("%s = %d, want %d", name, v[name], want)
		}
	}
	if short := tcpInfoVars(b[:104]); short["tcpi_total_retrans"] != 0 || len(short) >= len(v) {
		t.Errorf("a 104-byte struct gave %d fields (of %d)", len(short), len(v))
	} else if _, ok := short["tcpi_pacing_rate"]; ok {
		t.Error("a 104-byte struct has tcpi_pacing_rate")
	}
}

// TCPInfo gives the replay target a tcp_info, so that the runner's
// handling of %{ }% blocks can be tested without a stack.
func (f *replayTarget) TCPInfo(fd int) (map[string]uint64, error) {
	return map[string]uint64{"tcpi_state": 1, "tcpi_rto": 1, "tcpi_snd_cwnd": 10, "tcpi_segs_out": uint64(len(f.injected))}, nil
}

func TestCodeBlocksRunAfterTheEvents(t *testing.T) {
	testtools.Need(t, "python3")
	const sock = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
	for _, tc := range []struct {
		name, script string
		line         int    // 0: PASS
		msg          string // part of the failure
	}{
		{"pass", sock + "+0 %{ assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd }%\n", 0, ""},
		{"failed assert", sock + "+0 %{ assert tcpi_snd_cwnd == 10 }%\n+0 %{\nassert tcpi_rto == 2, tcpi_rto\n}%\n", 3, "AssertionError: 1"},
		{"names persist", sock + "+0 %{ first = tcpi_segs_out }%\n+0 < S 0:0(0) win 1000\n+0 %{ assert tcpi_segs_out == first + 1, (first, tcpi_segs_out) }%\n", 0, ""},
		{"values at the block's time", sock + "+0 %{ assert tcpi_segs_out == 0 }%\n+0 < S 0:0(0) win 1000\n", 0, ""},
		{"field missing", sock + "+0 %{ assert tcpi_snd_mss == 1460 }%\n", 2, "does not provide"},
		{"no socket", "+0 %{ assert True }%\n", 1, "no socket under test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := runReplay(t, tc.script, nil)
			if tc.line == 0 {
				if res.Status != Pass {
					t.Fatalf("want PASS, got %s: %v", res.Status, res.Failure)
				}
				return
			}
			if res.Status != Fail || res.Failure == nil || !strings.HasSuffix(res.Failure.Where, fmt.Sprintf("s.pkt:%d", tc.line)) ||
				!strings.Contains(res.Failure.Message, tc.msg) {
				t.Fatalf("want FAIL at line %d with %q, got %s %+v", tc.line, tc.msg, res.Status, res.Failure)
			}
		})
	}
}

// packetdrill's socket under test: the latest socket(); a SYN to it while
// it listens makes the coming connection the one, named by accept.
func TestSocketUnderTest(t *testing.T) {
	var u sockUnderTest
	call := func(src string, ret int64) {
		ev := parseOne(t, src)
		u.call(ev.Syscall, CallResult{Ret: ret})
	}
	call("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3", 3)
	if !u.named || u.fd != 3 {
		t.Fatalf("after socket: %+v", u)
	}
	u.packet(parseOne(t, "0 < S 0:0(0) win 1000").Packet) // not listening: no change
	if u.fd != 3 || u.child {
		t.Fatalf("a SYN to a socket that does not listen moved it: %+v", u)
	}
	call("0 listen(3, 1) = 0", 0)
	u.packet(parseOne(t, "0 < . 1:1(0) ack 1 win 1000").Packet) // not a SYN
	if u.fd != 3 || u.child {
		t.Fatalf("an ACK moved the socket under test: %+v", u)
	}
	u.packet(parseOne(t, "0 < S 0:0(0) win 1000").Packet)
	if u.named || !u.child {
		t.Fatalf("after a SYN to the listener: %+v", u)
	}
	call("0 accept(3, ..., ...) = 4", 4)
	if !u.named || u.fd != 4 {
		t.Fatalf("after accept: %+v", u)
	}
	call("0 accept(3, ..., ...) = 5", 5) // a second accept does not move it
	call("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 6", -1)
	if u.fd != 4 {
		t.Fatalf("a failed socket() or a later accept moved it: %+v", u)
	}
}
