#!/bin/sh
# kvm_pass.sh VMM SUITE [ARGS...] - the KVM pass of an end-to-end suite.
# Runs SUITE with VMM_TEST_ACCEL=kvm where the vmm binary can use KVM, and
# otherwise says why and exits 77, which CTest reports as a skipped test (the
# TCG pass of the same suite runs everywhere).
vmm=$1
shift
if ! why=$("$vmm" run --accel kvm --quiet hello 2>&1 >/dev/null); then
	echo "SKIP: the KVM pass needs a usable /dev/kvm: ${why#vmm: }"
	exit 77
fi
VMM_TEST_ACCEL=kvm exec "$@"
