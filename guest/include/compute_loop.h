/*
 * compute_loop.h - the CPU-bound loop of the `compute` workload.
 *
 * The guest runs it to measure how fast guest code runs; bench_launch runs
 * the very same function natively on the host and compares the time per
 * iteration and the checksum. It is header-only and freestanding (fixed-width
 * types only) so that both sides compile the same source.
 *
 * Each iteration steps a xorshift64 generator (a serial chain of shifts and
 * xors), uses it to pick a word of a small table, reads it, mixes it with a
 * multiply and writes it back, and adds the result to a running sum. The
 * table index depends on the generator and each word on every earlier write
 * to it, so a compiler can neither fold the loop nor vectorise it, and the
 * loads and stores are real memory accesses (through the MMU the guest runs
 * on: KVM's EPT, or TCG's software TLB). The table is 8 KiB, so on the host
 * it stays in the L1 cache: the loop measures the CPU, not the memory.
 */
#ifndef COMPUTE_LOOP_H
#define COMPUTE_LOOP_H

#include <stdint.h>

#define COMPUTE_TABLE_WORDS 1024 /* a power of two */
#define COMPUTE_DEFAULT_ITERATIONS 100000000ull

/* Fills `table` (COMPUTE_TABLE_WORDS words), runs `iterations` iterations
 * and returns the checksum, a pure function of `iterations`. */
static inline uint64_t compute_loop(uint64_t *table, uint64_t iterations)
{
	uint64_t x = 0x9e3779b97f4a7c15ull, sum = 0;
	for (uint32_t i = 0; i < COMPUTE_TABLE_WORDS; i++)
		table[i] = x * (i + 1);
	for (uint64_t n = 0; n < iterations; n++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint64_t *slot = &table[x & (COMPUTE_TABLE_WORDS - 1)];
		uint64_t v = *slot + (x >> 32);
		v ^= v >> 29;
		v *= 0xbf58476d1ce4e5b9ull;
		*slot = v;
		sum += v ^ n;
	}
	return sum;
}

#endif
