#!/bin/sh
# install-deps.sh - installs the Debian 12 packages the build and tests need,
# then provides unicorn >= 2.1 for the TCG backend (scripts/fetch-unicorn.sh).
# Idempotent: runs apt-get only when something is missing. Needs root.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="build-essential cmake pkg-config liburing-dev libxxhash-dev libcriterion-dev \
libjson-c-dev liblz4-dev debian-archive-keyring"

missing=""
for p in $PACKAGES "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing packages:$missing; run as root to install them" >&2
		exit 1
	fi
	echo "install-deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
./scripts/fetch-unicorn.sh
