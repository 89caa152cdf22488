/*
 * guest_memory.c - guest RAM backings.
 */
#include "guest_memory.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct guest_memory {
	enum guest_memory_backing backing;
	uint64_t bytes;
	uint8_t *host_base;
};

int guest_memory_create(struct guest_memory **out, const struct guest_memory_config *cfg, char *err,
			size_t errlen)
{
	struct guest_memory *mem = calloc(1, sizeof(*mem));
	if (!mem) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	mem->backing = cfg->backing;
	mem->bytes = cfg->bytes;
	mem->host_base = mmap(NULL, cfg->bytes, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem->host_base == MAP_FAILED) {
		snprintf(err, errlen, "cannot reserve %llu MiB of guest memory: %s",
			 (unsigned long long)(cfg->bytes >> 20), strerror(errno));
		free(mem);
		return -1;
	}
	*out = mem;
	return 0;
}

void guest_memory_destroy(struct guest_memory *mem)
{
	if (!mem)
		return;
	munmap(mem->host_base, mem->bytes);
	free(mem);
}

void *guest_memory_host_base(const struct guest_memory *mem)
{
	return mem->host_base;
}

uint64_t guest_memory_size(const struct guest_memory *mem)
{
	return mem->bytes;
}

static int in_range(const struct guest_memory *mem, uint64_t gpa, size_t len)
{
	return gpa <= mem->bytes && len <= mem->bytes - gpa;
}

int guest_memory_write(struct guest_memory *mem, uint64_t gpa, const void *src, size_t len)
{
	if (!in_range(mem, gpa, len))
		return -1;
	memcpy(mem->host_base + gpa, src, len);
	return 0;
}

int guest_memory_zero(struct guest_memory *mem, uint64_t gpa, size_t len)
{
	if (!in_range(mem, gpa, len))
		return -1;
	memset(mem->host_base + gpa, 0, len);
	return 0;
}

int guest_memory_read(struct guest_memory *mem, uint64_t gpa, void *dst, size_t len)
{
	if (!in_range(mem, gpa, len))
		return -1;
	memcpy(dst, mem->host_base + gpa, len);
	return 0;
}
