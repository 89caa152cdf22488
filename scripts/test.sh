#!/bin/sh
# test.sh - builds and runs the whole test suite on a fresh Debian 12
# machine, as root: installs what is missing, checks that the C sources are
# clang-formatted, then runs every Criterion suite through CTest: in a normal
# build, in an AddressSanitizer + UndefinedBehaviorSanitizer build
# (cmake -DVMM_SANITIZE=ON), and the end-to-end suites (their owned-page-table
# and KVM passes) once more against a
# ThreadSanitizer build of the vmm binary (cmake -DVMM_TSAN=ON; the suites'
# own runners stay uninstrumented: Criterion cannot run under TSan), and
# last runs the libFuzzer targets for a short fixed time (scripts/fuzz.sh).
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh qemu-system-x86 libvirt-daemon-system libvirt-clients libvirt-dev gnuplot-nox \
	clang-format clang libclang-rt-14-dev

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

echo "== build (ThreadSanitizer: the vmm binary)"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVMM_TSAN=ON >/dev/null
cmake --build build-tsan --target vmm -j "$(nproc)"
# The TCG passes on the owned page table (vmm's default there), whose vCPU
# threads serve their own faults; the host-mapping passes' threads meet in
# userfaultfd, which TSan cannot see, and they run under ASan above.
echo "== end-to-end tests against the ThreadSanitizer vmm"
VMM_TEST_VMM="$PWD/build-tsan/vmm/vmm" TSAN_OPTIONS="second_deadlock_stack=1" \
	ctest --test-dir build --output-on-failure -R 'e2e_.*_(tcg|kvm)$'
echo "== fuzzers (the config, size and ELF parsers)"
./scripts/fuzz.sh
echo "== all tests passed"
