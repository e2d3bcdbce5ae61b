#!/usr/bin/env bash
# Installs from Debian the packages named as arguments, only those whose
# command is missing, so a second run does not touch apt at all. With no
# arguments, what `make bench` compares smoothserve with and loads it with:
# nginx-light, haproxy, caddy, wrk and nghttp2-client (h2load, for the HTTP/2
# rows), and linux-perf for the tables of where the CPU goes. `make
# conformance` names the two it compares with: nginx-light haproxy.
#
# The packages would start their own nginx, haproxy and caddy on port 80 (and
# keep them running at every boot). The benchmark and the conformance suite
# start their own, on free ports, so the install goes through a policy-rc.d
# that forbids starting services — the usual Debian way (see
# /usr/share/doc/init-system-helpers/README.policy-rc.d).
set -euo pipefail

# The command that shows a package is installed.
declare -A command_of=([nginx-light]=nginx [haproxy]=haproxy [caddy]=caddy [wrk]=wrk [nghttp2-client]=h2load [linux-perf]=perf)
if [ $# -eq 0 ]; then
	set -- nginx-light haproxy caddy wrk nghttp2-client linux-perf
fi
missing=()
for pkg in "$@"; do
	if [ -z "${command_of[$pkg]+set}" ]; then
		echo "install-deps: unknown package $pkg (known: ${!command_of[*]})" >&2
		exit 2
	fi
	command -v "${command_of[$pkg]}" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]} from Debian" >&2

policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# written by smoothserve bench/install-deps.sh for the time of an install\nexit 101\n' |
		"${sudo[@]}" tee "$policy" >/dev/null
	"${sudo[@]}" chmod 755 "$policy"
	made_policy=1
fi
cleanup() {
	if [ -n "$made_policy" ]; then
		"${sudo[@]}" rm -f "$policy"
	fi
}
trap cleanup EXIT

# An apt-get update only when the package lists are too old to know a package.
if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
	"${sudo[@]}" apt-get update -q
fi
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
