#!/usr/bin/env bash
# Installs from Debian what `make conformance` compares smoothserve with:
# nginx-light and haproxy, only those missing (a second run does not touch
# apt). As bench/install-deps.sh does, through a policy-rc.d that forbids
# starting services: the packages would start their own nginx and haproxy
# on port 80; the suite starts its own, on free ports.
set -euo pipefail

declare -A command_of=([nginx-light]=nginx [haproxy]=haproxy)
missing=()
for pkg in nginx-light haproxy; do
	command -v "${command_of[$pkg]}" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	sudo=(sudo)
fi
echo "conformance: installing ${missing[*]} from Debian" >&2

policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# written by smoothserve conformance/install-deps.sh for the time of an install\nexit 101\n' |
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

if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
	"${sudo[@]}" apt-get update -q
fi
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
