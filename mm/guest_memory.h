/*
 * guest_memory.h - one VM's guest physical memory, as the VMM owns it.
 *
 * A VM sees RAM at guest physical 0..bytes. The host realises it as one
 * contiguous host virtual range that KVM uses as the VM's memory slot. How
 * that range is backed is the backing's business:
 *   GUEST_MEMORY_ANON  plain anonymous memory (the kernel picks the pages);
 *                      the baseline the frame pool is measured against.
 * Set-up code (the loader, the boot area) writes through guest_memory_write()
 * and guest_memory_zero(); device emulation on the vCPU thread reads guest
 * buffers with guest_memory_read(). Both check bounds.
 */
#ifndef MM_GUEST_MEMORY_H
#define MM_GUEST_MEMORY_H

#include <stddef.h>
#include <stdint.h>

enum guest_memory_backing {
	GUEST_MEMORY_ANON = 0,
};

struct guest_memory_config {
	uint64_t bytes; /* multiple of 2 MiB */
	enum guest_memory_backing backing;
};

struct guest_memory;

int guest_memory_create(struct guest_memory **out, const struct guest_memory_config *cfg, char *err,
			size_t errlen);
void guest_memory_destroy(struct guest_memory *mem);

void *guest_memory_host_base(const struct guest_memory *mem);
uint64_t guest_memory_size(const struct guest_memory *mem);

/* Return 0, or -1 if [gpa, gpa+len) is not inside guest RAM. */
int guest_memory_write(struct guest_memory *mem, uint64_t gpa, const void *src, size_t len);
int guest_memory_zero(struct guest_memory *mem, uint64_t gpa, size_t len);
int guest_memory_read(struct guest_memory *mem, uint64_t gpa, void *dst, size_t len);

#endif
