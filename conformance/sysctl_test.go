package conformance

import (
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
	if len(sc.Other) != 1 || !strings.HasPrefix(sc.Other[0], "tc qdisc") {
		t.Errorf("other commands: %q", sc.Other)
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
		{Name: "net.ipv4.tcp_early_retrans", Value: "3"},
		{Name: "net.ipv4.tcp_timestamps", Value: "x"},
	}
	applied, unmapped := ApplySysctls(p, in)
	if len(applied) != 19 {
		t.Errorf("applied %d, want 19: %+v", len(applied), applied)
	}
	if len(unmapped) != 2 || unmapped[0].String() != "net.ipv4.tcp_early_retrans=3" || !strings.Contains(unmapped[1].Value, "expected an integer") {
		t.Errorf("unmapped: %+v", unmapped)
	}
	if p.RcvBuf != 87380 || p.RcvBufMax != 6291456 || p.SndBuf != 65536 || p.Timestamps || p.SACK || p.DSACK || p.WindowScaling ||
		p.SynRetries != 2 || p.SynAckRetries != 3 || p.Congestion != "cubic" || p.SynCookies || p.SlowStartAfterIdle ||
		!p.AbortOnOverflow || p.MaxSynBacklog != 64 || p.Somaxconn != 32 || p.FinTimeout != 10*time.Second ||
		p.KeepAliveIdle != time.Minute || p.KeepAliveInterval != 5*time.Second || p.KeepAliveProbes != 3 || p.Retries2 != 8 {
		t.Errorf("profile not updated: %+v", p)
	}
}

func TestPerNamespace(t *testing.T) {
	if PerNamespace("net.ipv4.tcp_mem") || !PerNamespace("net.ipv4.tcp_sack") {
		t.Error("tcp_mem is init-namespace only; tcp_sack is per namespace")
	}
}
