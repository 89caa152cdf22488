/*
 * xxh3.h - XXH3 at the widest vectors the CPU has.
 *
 * Debian's libxxhash builds its XXH3_64bits for the x86-64 baseline, SSE2.
 * The same library exports a runtime dispatch (XXH3_64bits_dispatch and
 * friends: AVX2 or AVX-512 when the CPU has them), and xxh_x86dispatch.h
 * makes XXH3_64bits and XXH3_64bits_withSeed name those. The hash values are
 * XXH3's either way. On the development machine (AVX2) a 4 KiB page hashes
 * 3-4x faster from cache and 1.2-1.3x faster from memory, where SSE2's
 * XXH3 was bound by the CPU, not by memory.
 *
 * Include this instead of <xxhash.h>.
 */
#ifndef IO_XXH3_H
#define IO_XXH3_H

#include <xxhash.h>
#if defined(__x86_64__)
#include <xxh_x86dispatch.h>
#endif

#endif
