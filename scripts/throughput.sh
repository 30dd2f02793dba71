#!/usr/bin/env bash
# Measures curl download and upload throughput through the TUN device, for
# each stack `tunstack serve` runs, with serve's default settings (MTU 1500,
# profile linux). Measured and reported, never asserted.
#
#   sudo scripts/throughput.sh                 # 1 GB each way, best of 3
#   sudo SIZE=100000000 RUNS=5 STACKS=gvisor scripts/throughput.sh
#
# Each stack runs in a network namespace of its own (tsbench-PID-STACK),
# which serve creates and deletes; nothing is configured in the machine's own
# namespace. Download: GET /bytes/SIZE to /dev/null. Upload: POST /upload of
# a SIZE-byte file (sparse, so reading it costs nothing), whose byte count the
# server's answer must confirm.
set -euo pipefail

SIZE=${SIZE:-1000000000}
RUNS=${RUNS:-3}
STACKS=${STACKS:-"tunstack gvisor"}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

if [ "$(id -u)" -ne 0 ]; then
	echo "throughput.sh needs root to create network namespaces and TUN devices: run it with sudo." >&2
	exit 1
fi

cd "$(dirname "$0")/.."
work=$(mktemp -d)
serve_pid=""
ns=""
cleanup() {
	if [ -n "$serve_pid" ]; then
		kill -TERM "$serve_pid" 2>/dev/null || true
		wait "$serve_pid" 2>/dev/null || true
	fi
	if [ -n "$ns" ] && [ -e "/run/netns/$ns" ]; then
		ip netns delete "$ns" || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

"$GO" build -o "$work/tunstack" ./cmd/tunstack
truncate -s "$SIZE" "$work/upload.bin"
curl_args=(-sS --fail --noproxy '*' --max-time 600)
url=http://198.18.0.2

# best prints the largest of its arguments.
best() { printf '%s\n' "$@" | sort -g | tail -1; }
# mbs turns bytes per second into MB/s and Gbit/s.
mbs() { awk -v b="$1" 'BEGIN { printf "%8.1f MB/s (%5.2f Gbit/s)", b / 1e6, b * 8 / 1e9 }'; }

printf 'curl through the TUN, %s bytes each way, best of %s, %s\n' "$SIZE" "$RUNS" "$(uname -sr)"
for stack in $STACKS; do
	ns="tsbench-$$-$stack"
	"$work/tunstack" serve --netns "$ns" --stack "$stack" >"$work/serve.out" 2>&1 &
	serve_pid=$!
	# serve prints "try:" once it accepts connections; give it 10 s.
	for _ in $(seq 100); do
		grep -q '^try:' "$work/serve.out" && break
		kill -0 "$serve_pid" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q '^try:' "$work/serve.out"; then
		echo "serve --stack $stack did not start:" >&2
		cat "$work/serve.out" >&2
		exit 1
	fi

	down=() up=()
	for _ in $(seq "$RUNS"); do
		down+=("$(ip netns exec "$ns" curl "${curl_args[@]}" -o /dev/null -w '%{speed_download}' "$url/bytes/$SIZE")")
		answer=$(ip netns exec "$ns" curl "${curl_args[@]}" -T "$work/upload.bin" -X POST -H 'Expect:' \
			-w '\n%{speed_upload}' "$url/upload")
		if ! grep -q "\"bytes\":$SIZE," <<<"$answer"; then
			echo "upload on $stack: the server did not read $SIZE bytes: $answer" >&2
			exit 1
		fi
		up+=("$(tail -1 <<<"$answer")")
	done
	printf '%-9s download %s   upload %s\n' "$stack" "$(mbs "$(best "${down[@]}")")" "$(mbs "$(best "${up[@]}")")"
	printf '%-9s   runs: download %s; upload %s (bytes/s)\n' "" "${down[*]}" "${up[*]}"

	kill -TERM "$serve_pid"
	wait "$serve_pid" || true
	serve_pid=""
	if [ -e "/run/netns/$ns" ]; then
		echo "serve left namespace $ns behind; deleting it" >&2
		ip netns delete "$ns"
	fi
	ns=""
done
