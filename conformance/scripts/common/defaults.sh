#!/bin/sh
# Linux 6.x defaults the conformance scripts assume, set inside the test's
# own network namespace (a new namespace inherits some of these from the
# host, e.g. tcp_rmem, tcp_wmem and tcp_congestion_control, so they are set
# explicitly). Every value here is mapped onto a policy knob by the runner,
# or reported as unmapped.
sysctl -q net.ipv4.tcp_timestamps=1
sysctl -q net.ipv4.tcp_sack=1
sysctl -q net.ipv4.tcp_dsack=1
sysctl -q net.ipv4.tcp_window_scaling=1
sysctl -q net.ipv4.tcp_rmem="4096 131072 6291456"
sysctl -q net.ipv4.tcp_wmem="4096 16384 4194304"
sysctl -q net.ipv4.tcp_congestion_control=reno
sysctl -q net.ipv4.tcp_syn_retries=6
sysctl -q net.ipv4.tcp_synack_retries=5
sysctl -q net.ipv4.tcp_retries2=15
sysctl -q net.ipv4.tcp_slow_start_after_idle=1
sysctl -q net.ipv4.tcp_syncookies=1
sysctl -q net.ipv4.tcp_abort_on_overflow=0
sysctl -q net.ipv4.tcp_fin_timeout=60
sysctl -q net.ipv4.tcp_ecn=0
sysctl -q net.ipv4.tcp_fastopen=0
sysctl -q net.ipv4.tcp_early_retrans=3
sysctl -q net.ipv4.tcp_recovery=1
sysctl -q net.ipv4.tcp_reordering=3
sysctl -q net.ipv4.tcp_no_metrics_save=1
sysctl -q net.ipv4.tcp_min_tso_segs=2
sysctl -q net.ipv4.tcp_invalid_ratelimit=500
sysctl -q net.ipv4.tcp_syn_linear_timeouts=4
