package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tunstack/policy"
)

func TestScanShellFollowsRelativeScripts(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "common"), 0o755)
	os.MkdirAll(filepath.Join(dir, "tcp"), 0o755)
	os.WriteFile(filepath.Join(dir, "common", "defaults.sh"), []byte(`#!/bin/bash
# comment
sysctl -q net.ipv4.tcp_sack=0
sysctl -w net.ipv4.tcp_rmem="4096 87380 6291456" net.ipv4.tcp_timestamps=0
echo 3 > /proc/sys/net/ipv4/tcp_early_retrans
tc qdisc replace dev tun0 root pfifo limit 1000
`), 0o755)
	sc := ScanShell("../common/defaults.sh && sysctl -q net.ipv4.tcp_syn_retries=2", filepath.Join(dir, "tcp"), "x.pkt:1")
	var got []string
	for _, s := range sc.Sysctls {
		got = append(got, s.String())
	}
	want := "net.ipv4.tcp_sack=0 net.ipv4.tcp_rmem=4096 87380 6291456 net.ipv4.tcp_timestamps=0 net.ipv4.tcp_early_retrans=3 net.ipv4.tcp_syn_retries=2"
	if strings.Join(got, " ") != want {
		t.Errorf("sysctls:\n got %q\nwant %q", strings.Join(got, " "), want)
	}
	if len(sc.Other) != 0 || len(sc.NoOps) != 1 || !strings.HasPrefix(sc.NoOps[0], "tc qdisc replace dev tun0 root pfifo limit 1000: traffic control") {
		t.Errorf("other commands %q, no-ops %q", sc.Other, sc.NoOps)
	}
	if !strings.Contains(sc.Sysctls[0].Where, "defaults.sh:3") {
		t.Errorf("where: %s", sc.Sysctls[0].Where)
	}
	// A script that is not there is reported, not dropped.
	sc = ScanShell("../missing.sh", dir, "x.pkt:1")
	if len(sc.Other) != 1 {
		t.Errorf("missing script: %+v", sc)
	}
}

// TestScanShellForms: the forms sysctl writes take in shell lines, each
// read as the shell would run it.
func TestScanShellForms(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "vars.sh"), []byte("RMEM=\"4096 87380 $((6*1024*1024))\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "tcp.conf"), []byte("# comment\nnet.ipv4.tcp_sack = 0\n; other comment\n-net.ipv4.tcp_ecn=1\n"), 0o644)
	cases := []struct {
		cmd, sysctls string // sysctls as name=value joined by " | "
		other, noops int
	}{
		{cmd: "sysctl -q net.ipv4.tcp_sack=0 net.ipv4.tcp_dsack=0", sysctls: "net.ipv4.tcp_sack=0 | net.ipv4.tcp_dsack=0"},
		{cmd: "sysctl -w net/ipv4/tcp_sack=1", sysctls: "net.ipv4.tcp_sack=1"},
		{cmd: "sysctl net.ipv4.tcp_sack=1", sysctls: "net.ipv4.tcp_sack=1"},
		{cmd: "sysctl -e -q -w net.core.rmem_max=$((15*1024*1024))", sysctls: "net.core.rmem_max=15728640"},
		{cmd: `sysctl -q net.ipv4.tcp_rmem="4096 $((1<<17)) $(( (1 << 20) * 6 ))"`, sysctls: "net.ipv4.tcp_rmem=4096 131072 6291456"},
		{cmd: `sysctl -q 'net.ipv4.tcp_wmem=4096  16384 4194304'`, sysctls: "net.ipv4.tcp_wmem=4096 16384 4194304"},
		{cmd: `sysctl -q net.ipv4.tcp_rmem="4096 87380 6291456" 2>/dev/null`, sysctls: "net.ipv4.tcp_rmem=4096 87380 6291456"},
		{cmd: "sysctl -n net.ipv4.tcp_sack", sysctls: ""},
		{cmd: "sysctl -p tcp.conf", sysctls: "net.ipv4.tcp_sack=0 | net.ipv4.tcp_ecn=1"},
		{cmd: "echo 1 > /proc/sys/net/ipv4/tcp_sack", sysctls: "net.ipv4.tcp_sack=1"},
		{cmd: "echo -n 0 >/proc/sys/net/ipv4/tcp_sack", sysctls: "net.ipv4.tcp_sack=0"},
		{cmd: `echo "4096 87380 6291456" >> /proc/sys/net/ipv4/tcp_rmem`, sysctls: "net.ipv4.tcp_rmem=4096 87380 6291456"},
		{cmd: "echo 2 | tee /proc/sys/net/ipv4/tcp_syn_retries > /dev/null", sysctls: "net.ipv4.tcp_syn_retries=2"},
		{cmd: "printf 3 > /proc/sys/net/ipv4/tcp_retries2", sysctls: "net.ipv4.tcp_retries2=3"},
		{cmd: "N=3; sysctl -q net.ipv4.tcp_retries2=$N; sysctl -q net.ipv4.tcp_syn_retries=${N}", sysctls: "net.ipv4.tcp_retries2=3 | net.ipv4.tcp_syn_retries=3"},
		{cmd: "N=4 && echo $((N + 1)) > /proc/sys/net/ipv4/tcp_retries2", sysctls: "net.ipv4.tcp_retries2=5"},
		{cmd: ". ./vars.sh; sysctl -q net.ipv4.tcp_rmem=\"$RMEM\"", sysctls: "net.ipv4.tcp_rmem=4096 87380 6291456"},
		{cmd: "sh ./vars.sh; sysctl -q net.ipv4.tcp_rmem=\"$RMEM\"", other: 1}, // a child shell's variables are its own
		{cmd: "sysctl -q net.ipv4.tcp_sack=$(cat x)", other: 1},
		{cmd: "sysctl -q net.ipv4.tcp_sack=`cat x`", other: 1},
		{cmd: "cat x > /proc/sys/net/ipv4/tcp_sack", other: 1},
		{cmd: "ip link set dev tun0 mtu 1400", other: 1},
		{cmd: "tc qdisc add dev tun0 root netem delay 10ms; ethtool -K tun0 tso off; ip tcp_metrics flush all; sleep 1", noops: 4},
		{cmd: "true; echo hello; : ; set -e", sysctls: ""},
		{cmd: "# a comment; sysctl -q net.ipv4.tcp_sack=0", sysctls: ""},
		{cmd: "sysctl -q net.ipv4.tcp_sack=0 # set\nsysctl -q \\\n  net.ipv4.tcp_dsack=0", sysctls: "net.ipv4.tcp_sack=0 | net.ipv4.tcp_dsack=0"},
	}
	for _, c := range cases {
		sc := ScanShell(c.cmd, dir, "x.pkt:1")
		var got []string
		for _, s := range sc.Sysctls {
			got = append(got, s.String())
		}
		if strings.Join(got, " | ") != c.sysctls || len(sc.Other) != c.other || len(sc.NoOps) != c.noops {
			t.Errorf("%q:\n got sysctls %q, other %q, no-ops %q\nwant sysctls %q, %d other, %d no-ops", c.cmd, strings.Join(got, " | "), sc.Other, sc.NoOps, c.sysctls, c.other, c.noops)
		}
	}
}

func TestShellArithmetic(t *testing.T) {
	sh := &shellScanner{vars: map[string]string{"X": "7", "E": ""}}
	for expr, want := range map[string]int64{
		"15*1024*1024": 15728640, "1<<20": 1 << 20, "(1+2)*3": 9, "2**10": 1024, "2**3**2": 512, "7/2": 3, "-7%3": -1,
		"0x10 + 010": 24, "~0": -1, "!0": 1, "1<2 && 3>=3": 1, "5 & 3 | 8 ^ 1": 9, "X * 2": 14, "$X + 1": 8, "E + 1": 1,
	} {
		if got, err := sh.arith(expr); err != nil || got != want {
			t.Errorf("$((%s)) = %d, %v; want %d", expr, got, err, want)
		}
	}
	for _, bad := range []string{"1/0", "1 +", "(1", "Y + 1"} {
		if v, err := sh.arith(bad); err == nil {
			t.Errorf("$((%s)) = %d, want an error", bad, v)
		}
	}
}

func TestApplySysctlsMapsKnobsAndReportsTheRest(t *testing.T) {
	p := policy.Linux()
	in := []Sysctl{
		{Name: "net.ipv4.tcp_rmem", Value: "4096 87380 6291456"},
		{Name: "net.ipv4.tcp_wmem", Value: "4096 65536 4194304"},
		{Name: "net.ipv4.tcp_timestamps", Value: "0"},
		{Name: "net.ipv4.tcp_sack", Value: "0"},
		{Name: "net.ipv4.tcp_dsack", Value: "0"},
		{Name: "net.ipv4.tcp_window_scaling", Value: "0"},
		{Name: "net.ipv4.tcp_syn_retries", Value: "2"},
		{Name: "net.ipv4.tcp_synack_retries", Value: "3"},
		{Name: "net.ipv4.tcp_congestion_control", Value: "cubic"},
		{Name: "net.ipv4.tcp_syncookies", Value: "0"},
		{Name: "net.ipv4.tcp_slow_start_after_idle", Value: "0"},
		{Name: "net.ipv4.tcp_abort_on_overflow", Value: "1"},
		{Name: "net.ipv4.tcp_max_syn_backlog", Value: "64"},
		{Name: "net.core.somaxconn", Value: "32"},
		{Name: "net.ipv4.tcp_fin_timeout", Value: "10"},
		{Name: "net.ipv4.tcp_keepalive_time", Value: "60"},
		{Name: "net.ipv4.tcp_keepalive_intvl", Value: "5"},
		{Name: "net.ipv4.tcp_keepalive_probes", Value: "3"},
		{Name: "net.ipv4.tcp_retries2", Value: "8"},
		{Name: "net.ipv4.tcp_recovery", Value: "1"},
		{Name: "net.ipv4.tcp_timestamps", Value: "x"},
	}
	applied, unmapped := ApplySysctls(p, in)
	if len(applied) != 19 {
		t.Errorf("applied %d, want 19: %+v", len(applied), applied)
	}
	if len(unmapped) != 2 || unmapped[0].String() != "net.ipv4.tcp_recovery=1" || !strings.Contains(unmapped[1].Value, "expected an integer") {
		t.Errorf("unmapped: %+v", unmapped)
	}
	if p.RcvBuf != 87380 || p.RcvBufMax != 6291456 || p.SndBuf != 65536 || p.Timestamps || p.SACK || p.DSACK || p.WindowScaling ||
		p.SynRetries != 2 || p.SynAckRetries != 3 || p.Congestion != "cubic" || p.SynCookies || p.SlowStartAfterIdle ||
		!p.AbortOnOverflow || p.MaxSynBacklog != 64 || p.Somaxconn != 32 || p.FinTimeout != 10*time.Second ||
		p.KeepAliveIdle != time.Minute || p.KeepAliveInterval != 5*time.Second || p.KeepAliveProbes != 3 || p.Retries2 != 8 {
		t.Errorf("profile not updated: %+v", p)
	}
}

// Linux 6.x's tail-loss-probe and RTO-bound sysctls, with the ranges
// Linux accepts (measured: tcp_early_retrans 0 to 4, tcp_rto_min_us from
// 1, tcp_rto_max_ms 1000 to 120000).
func TestApplySysctlsTLPAndRTOBounds(t *testing.T) {
	for v, on := range map[string]bool{"0": false, "1": false, "2": false, "3": true, "4": true} {
		p := policy.Linux()
		p.TailLossProbe = !on
		applied, unmapped := ApplySysctls(p, []Sysctl{{Name: "net.ipv4.tcp_early_retrans", Value: v}})
		if len(applied) != 1 || len(unmapped) != 0 || applied[0].Knob != "TailLossProbe" || p.TailLossProbe != on {
			t.Errorf("tcp_early_retrans=%s: TailLossProbe %v (applied %+v, unmapped %+v), want %v", v, p.TailLossProbe, applied, unmapped, on)
		}
	}

	p := policy.Linux()
	applied, unmapped := ApplySysctls(p, []Sysctl{
		{Name: "net.ipv4.tcp_rto_min_us", Value: "50000"},
		{Name: "net.ipv4.tcp_rto_max_ms", Value: "1000"},
	})
	if len(applied) != 2 || len(unmapped) != 0 {
		t.Fatalf("applied %+v, unmapped %+v", applied, unmapped)
	}
	if p.RTOMin != 50*time.Millisecond || p.TLPDelAckAllowance != 50*time.Millisecond || p.RTOMax != time.Second {
		t.Errorf("RTOMin %v, TLPDelAckAllowance %v, RTOMax %v; want 50ms, 50ms, 1s", p.RTOMin, p.TLPDelAckAllowance, p.RTOMax)
	}
	if p.DelAckMax != 49*time.Millisecond || p.DelAckMin != 40*time.Millisecond {
		t.Errorf("delayed ACK bounds %v..%v, want 40ms..49ms (tcp_delack_max: rto_min less a jiffy)", p.DelAckMin, p.DelAckMax)
	}
	if err := p.Validate(); err != nil {
		t.Error(err)
	}

	p = policy.Linux()
	ApplySysctls(p, []Sysctl{{Name: "net.ipv4.tcp_rto_min_us", Value: "5000"}})
	if p.DelAckMax != 4*time.Millisecond || p.DelAckMin != 4*time.Millisecond || p.Validate() != nil {
		t.Errorf("rto_min 5 ms: delayed ACK bounds %v..%v, want 4ms..4ms", p.DelAckMin, p.DelAckMax)
	}

	for _, bad := range []Sysctl{
		{Name: "net.ipv4.tcp_early_retrans", Value: "5"},
		{Name: "net.ipv4.tcp_early_retrans", Value: "-1"},
		{Name: "net.ipv4.tcp_rto_min_us", Value: "0"},
		{Name: "net.ipv4.tcp_rto_max_ms", Value: "999"},
		{Name: "net.ipv4.tcp_rto_max_ms", Value: "120001"},
		{Name: "net.ipv4.tcp_rto_min_us", Value: "200000000"}, // above RTOMax 120 s
	} {
		p := policy.Linux()
		before := *p
		applied, unmapped := ApplySysctls(p, []Sysctl{bad})
		if len(applied) != 0 || len(unmapped) != 1 || *p != before {
			t.Errorf("%s: applied %+v, unmapped %+v; want it reported and the profile unchanged", bad, applied, unmapped)
		}
	}
}

// The port range and TIME-WAIT reuse sysctls, with the values Linux 6.18
// accepts (measured in a new namespace: ip_local_port_range LOW HIGH with
// 1024 <= LOW <= HIGH <= 65535, tcp_tw_reuse 0 to 2, tcp_tw_reuse_delay 1
// to 60000 ms).
func TestApplySysctlsPortRangeAndTwReuse(t *testing.T) {
	p := policy.Linux()
	applied, unmapped := ApplySysctls(p, []Sysctl{
		{Name: "net.ipv4.ip_local_port_range", Value: "40000 40000"},
		{Name: "net.ipv4.tcp_tw_reuse", Value: "1"},
		{Name: "net.ipv4.tcp_tw_reuse_delay", Value: "250"},
	})
	if len(applied) != 3 || len(unmapped) != 0 {
		t.Fatalf("applied %+v, unmapped %+v", applied, unmapped)
	}
	if p.LocalPortMin != 40000 || p.LocalPortMax != 40000 || p.TwReuse != 1 || p.TwReuseDelay != 250*time.Millisecond {
		t.Errorf("ports %d-%d, TwReuse %d, TwReuseDelay %v; want 40000-40000, 1, 250ms", p.LocalPortMin, p.LocalPortMax, p.TwReuse, p.TwReuseDelay)
	}
	if err := p.Validate(); err != nil {
		t.Error(err)
	}
	for _, v := range []string{"0", "2"} {
		p := policy.Linux()
		p.TwReuse = 1
		ApplySysctls(p, []Sysctl{{Name: "net.ipv4.tcp_tw_reuse", Value: v}})
		if fmt.Sprint(p.TwReuse) != v {
			t.Errorf("tcp_tw_reuse=%s: TwReuse %d", v, p.TwReuse)
		}
	}

	for _, bad := range []Sysctl{
		{Name: "net.ipv4.ip_local_port_range", Value: "1023 2000"},
		{Name: "net.ipv4.ip_local_port_range", Value: "40001 40000"},
		{Name: "net.ipv4.ip_local_port_range", Value: "1024 65536"},
		{Name: "net.ipv4.ip_local_port_range", Value: "40000"},
		{Name: "net.ipv4.tcp_tw_reuse", Value: "3"},
		{Name: "net.ipv4.tcp_tw_reuse", Value: "-1"},
		{Name: "net.ipv4.tcp_tw_reuse_delay", Value: "0"},
		{Name: "net.ipv4.tcp_tw_reuse_delay", Value: "60001"},
	} {
		p := policy.Linux()
		before := *p
		applied, unmapped := ApplySysctls(p, []Sysctl{bad})
		if len(applied) != 0 || len(unmapped) != 1 || *p != before {
			t.Errorf("%s: applied %+v, unmapped %+v; want it reported and the profile unchanged", bad, applied, unmapped)
		}
	}
}

func TestPerNamespace(t *testing.T) {
	if PerNamespace("net.ipv4.tcp_mem") || !PerNamespace("net.ipv4.tcp_sack") {
		t.Error("tcp_mem is init-namespace only; tcp_sack is per namespace")
	}
}
