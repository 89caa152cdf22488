#!/bin/sh
# fetch-unicorn.sh - provides unicorn >= 2.1 (QEMU's TCG as a C library), the
# emulated CPU the VMM runs guests on where /dev/kvm is not usable.
#
# A system unicorn >= 2.1 (pkg-config) is used as it is. Otherwise Debian 13's
# libunicorn-dev and libunicorn2t64 (2.1.1; they need only libc6 >= 2.34, so
# they run on Debian 12, whose own 2.0.1 ignores the frame address in page
# table entries) are fetched with `apt-get download` through a private
# sources list built from this machine's Debian mirror with the suite set to
# trixie, and unpacked into .deps/unicorn, where CMake finds libunicorn.a.
# Nothing is installed and the system's apt sources are not touched.
# Idempotent: does nothing when .deps/unicorn already holds 2.1 or newer.
set -eu
cd "$(dirname "$0")/.."
dest=.deps/unicorn
pc=$dest/usr/lib/x86_64-linux-gnu/pkgconfig

if pkg-config --atleast-version=2.1 unicorn 2>/dev/null; then
	exit 0
fi
if [ -f "$pc/unicorn.pc" ] &&
	PKG_CONFIG_PATH=$pc pkg-config --atleast-version=2.1 unicorn 2>/dev/null; then
	exit 0
fi

# The machine's own Debian mirror, as apt knows it (deb822 or one-line form).
mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources \
	2>/dev/null | grep -v security | head -n 1)
if [ -z "$mirror" ]; then
	mirror=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\).*/\2/p' \
		/etc/apt/sources.list 2>/dev/null | grep -v security | head -n 1)
fi
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$work/lists/partial" "$work/archives/partial"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$keyring] $mirror trixie main" >"$work/sources.list"
apt_opts="-o Dir::Etc::sourcelist=$work/sources.list -o Dir::Etc::sourceparts=- \
-o Dir::State::Lists=$work/lists -o APT::Get::List-Cleanup=0 \
-o Dir::Cache::archives=$work/archives -o APT::Sandbox::User=root"
echo "fetch-unicorn: downloading libunicorn-dev and libunicorn2t64 from $mirror (trixie)"
# shellcheck disable=SC2086
apt-get $apt_opts update -qq >/dev/null
# shellcheck disable=SC2086
(cd "$work" && apt-get $apt_opts download -qq libunicorn-dev libunicorn2t64 >/dev/null)
rm -rf "$dest.new"
mkdir -p "$dest.new"
for deb in "$work"/libunicorn*.deb; do
	dpkg-deb -x "$deb" "$dest.new"
done
if ! PKG_CONFIG_PATH=$dest.new/usr/lib/x86_64-linux-gnu/pkgconfig \
	pkg-config --atleast-version=2.1 unicorn; then
	echo "fetch-unicorn: the downloaded unicorn is older than 2.1" >&2
	exit 1
fi
rm -rf "$dest"
mv "$dest.new" "$dest"
echo "fetch-unicorn: unicorn $(PKG_CONFIG_PATH=$pc pkg-config --modversion unicorn) in $dest"
