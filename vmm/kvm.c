/*
 * kvm.c - opening /dev/kvm.
 */
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int kvm_system_open(struct kvm_system *kvm, char *err, size_t errlen)
{
	/* VMM_KVM_DEVICE lets tests point at a missing or wrong device. */
	const char *path = getenv("VMM_KVM_DEVICE") ? getenv("VMM_KVM_DEVICE") : "/dev/kvm";
	kvm->fd = open(path, O_RDWR | O_CLOEXEC);
	if (kvm->fd < 0) {
		if (errno == ENOENT)
			snprintf(err, errlen,
				 "%s does not exist: KVM is not available on this host", path);
		else if (errno == EACCES || errno == EPERM)
			snprintf(err, errlen,
				 "no permission to open %s: run as root or join the kvm group",
				 path);
		else
			snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	int api = ioctl(kvm->fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		snprintf(err, errlen, "%s speaks KVM API %d, expected %d", path, api,
			 KVM_API_VERSION);
		close(kvm->fd);
		return -1;
	}
	kvm->vcpu_mmap_size = ioctl(kvm->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (kvm->vcpu_mmap_size <= 0) {
		snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE failed: %s", strerror(errno));
		close(kvm->fd);
		return -1;
	}
	return 0;
}

void kvm_system_close(struct kvm_system *kvm)
{
	if (kvm->fd >= 0)
		close(kvm->fd);
	kvm->fd = -1;
}
