#!/usr/bin/env bash
# Installs the programs the tests run, as listed in internal/testtools/tools.list.
# As root, each missing program's Debian package is installed (apt-get, no
# prompts). Without root nothing is installed: the script names what is
# missing, and the tests that need it skip, each naming the program and its
# package. `make test` and .ci/run both start with this script.
set -euo pipefail
cd "$(dirname "$0")/.."

list=internal/testtools/tools.list
missing_cmds=()
missing_pkgs=()
while read -r cmd pkg _; do
	[[ -z "$cmd" || "$cmd" == \#* ]] && continue
	if ! command -v "$cmd" >/dev/null 2>&1; then
		missing_cmds+=("$cmd")
		# One package may provide several programs; install it once.
		if [[ " ${missing_pkgs[*]-} " != *" $pkg "* ]]; then
			missing_pkgs+=("$pkg")
		fi
	fi
done <"$list"

if ((${#missing_pkgs[@]} == 0)); then
	echo "test-tools: every program the tests run is installed"
	exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
	echo "test-tools: not root, so not installing: ${missing_cmds[*]} (Debian packages: ${missing_pkgs[*]});" \
		"the tests that need them will skip. \`sudo make test\` installs them."
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "test-tools: missing ${missing_cmds[*]} and there is no apt-get to install" \
		"${missing_pkgs[*]}; install them with this system's package manager." >&2
	exit 1
fi

echo "test-tools: installing ${missing_pkgs[*]} (for ${missing_cmds[*]})"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no, without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -q </dev/null
apt-get install -y -q --no-install-recommends "${missing_pkgs[@]}" </dev/null
