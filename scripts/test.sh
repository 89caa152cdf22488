#!/bin/sh
# test.sh - builds and runs the whole test suite on a fresh Debian 12
# machine, as root: installs what is missing, checks that the C sources are
# clang-formatted, then runs every Criterion suite through CTest twice: in a
# normal build and in an AddressSanitizer + UndefinedBehaviorSanitizer build
# (cmake -DVMM_SANITIZE=ON).
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh qemu-system-x86 libvirt-daemon-system libvirt-clients libvirt-dev gnuplot-nox \
	clang-format

echo "== clang-format"
find vmm mm ksm io guest tests bench -name '*.[ch]' -print0 |
	xargs -0 clang-format --dry-run -Werror

echo "== build (RelWithDebInfo)"
./scripts/build.sh build
echo "== tests"
ctest --test-dir build --output-on-failure

echo "== build (ASan + UBSan)"
./scripts/build.sh build-sanitize -DVMM_SANITIZE=ON
echo "== tests under ASan + UBSan"
ctest --test-dir build-sanitize --output-on-failure
echo "== all tests passed"
