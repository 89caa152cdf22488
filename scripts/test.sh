#!/bin/sh
# test.sh - builds and runs the whole test suite on a fresh Debian 12
# machine, as root: installs what is missing, checks that the C sources are
# clang-formatted, then runs every Criterion suite through CTest: in a normal
# build, in an AddressSanitizer + UndefinedBehaviorSanitizer build
# (cmake -DVMM_SANITIZE=ON; the KVM passes and the QEMU smoke suites only in
# the normal build), and the end-to-end suites (their owned-page-table passes,
# and every pass of the stress suite) once more against a
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
# Not again here: the KVM passes (the normal build ran them; their memory
# code, host mappings, runs under ASan in the TCG host-mapping passes), and
# the sanitizer build has neither the benches nor the QEMU and libvirt smoke
# suites (tests/CMakeLists.txt). Together 90 s of the 10 minutes with KVM.
ctest --test-dir build-sanitize --output-on-failure -E '^e2e_.*_kvm$'

echo "== build (ThreadSanitizer: the vmm binary)"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVMM_TSAN=ON >/dev/null
cmake --build build-tsan --target vmm -j "$(nproc)"
# The TCG passes on the owned page table (vmm's default there), whose vCPU
# threads serve their own faults; the host-mapping passes' threads meet in
# userfaultfd, which TSan cannot see, and they run under ASan above. The
# stress suite on every pass, host mappings and KVM too: TSan's slowness
# opens windows the normal build hides (it found fault-ahead losing a
# guest's writes when a uffd registration failed).
echo "== end-to-end tests against the ThreadSanitizer vmm"
VMM_TEST_VMM="$PWD/build-tsan/vmm/vmm" TSAN_OPTIONS="second_deadlock_stack=1" \
	ctest --test-dir build --output-on-failure -R 'e2e_.*_tcg$|e2e_stress_'
echo "== fuzzers (the config, size and ELF parsers)"
./scripts/fuzz.sh
echo "== all tests passed"
