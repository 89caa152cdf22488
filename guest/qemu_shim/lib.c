/*
 * lib.c - the few C library functions the shim (and the compiler) needs.
 *
 * General registers only (the SSE registers belong to the guest), and no
 * `rep` string instructions for bulk work: QEMU's TCG runs one iteration of
 * a `rep` instruction per translated block, so plain 8-byte loads and stores
 * in a loop are many times faster there. (The shim is built with
 * -fno-tree-loop-distribute-patterns so that GCC does not turn these loops
 * back into calls to themselves.)
 */
#include "shim.h"

void *memset(void *dst, int c, size_t n)
{
	uint8_t *d = dst;
	uint64_t pattern = 0x0101010101010101ull * (uint8_t)c;
	while (n && ((uintptr_t)d & 7)) {
		*d++ = (uint8_t)c;
		n--;
	}
	for (; n >= 32; n -= 32, d += 32) {
		uint64_t *w = (uint64_t *)d;
		w[0] = pattern;
		w[1] = pattern;
		w[2] = pattern;
		w[3] = pattern;
	}
	for (; n; n--)
		*d++ = (uint8_t)c;
	return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	if ((((uintptr_t)d ^ (uintptr_t)s) & 7) == 0) {
		while (n && ((uintptr_t)d & 7)) {
			*d++ = *s++;
			n--;
		}
		for (; n >= 32; n -= 32, d += 32, s += 32) {
			uint64_t *w = (uint64_t *)d;
			const uint64_t *r = (const uint64_t *)s;
			w[0] = r[0];
			w[1] = r[1];
			w[2] = r[2];
			w[3] = r[3];
		}
	}
	for (; n; n--)
		*d++ = *s++;
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}
