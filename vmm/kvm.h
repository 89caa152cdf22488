/*
 * kvm.h - access to /dev/kvm: opening it with a clear error, and the
 * constants our Debian headers (6.1) lack but the running kernel uses.
 */
#ifndef VMM_KVM_H
#define VMM_KVM_H

#include <stddef.h>

#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT 39
#endif

struct kvm_system {
	int fd;
	int vcpu_mmap_size;
};

/* Opens /dev/kvm (or $VMM_KVM_DEVICE, for tests) and checks the API version. On failure writes a
 * one-line reason (missing device, no permission, wrong API) into err and returns -1. */
int kvm_system_open(struct kvm_system *kvm, char *err, size_t errlen);
void kvm_system_close(struct kvm_system *kvm);

#endif
