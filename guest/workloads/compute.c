/*
 * compute - a CPU-bound integer loop: how fast guest code runs.
 *
 *   compute iterations=N
 *
 * Runs compute_loop() (guest/include/compute_loop.h) for N iterations
 * (default 100M) over a table at the start of its heap, reports `iterations`,
 * `compute_ns` (the loop alone, from the VMM's clock) and `checksum`, prints
 * one line and exits 0. bench_launch runs the same function natively on the
 * host: the checksums must match, and the times per iteration compare the
 * accelerator (KVM, or TCG's emulation) with the host CPU.
 */
#include "compute_loop.h"
#include "guest.h"

int guest_main(const struct guest_boot_info *bi)
{
	static const char *const allowed[] = {"iterations", NULL};
	guest_args_check(bi, "compute", allowed);
	uint64_t iterations = COMPUTE_DEFAULT_ITERATIONS;
	if (guest_arg_str(bi, "iterations") && guest_arg_u64(bi, "iterations", &iterations)) {
		guest_printf("error: compute: iterations must be a number\n");
		return 2;
	}
	/* The table is the start of the heap: reached through a pointer, as on
	 * the host (a static array would be addressed absolutely here and
	 * RIP-relative in the host's PIE, and the code would differ). It is
	 * touched before the clock starts so that its first-touch fault, a
	 * round trip to the VMM, is not timed. */
	uint64_t *table = (uint64_t *)bi->heap_start;
	memset(table, 0, COMPUTE_TABLE_WORDS * sizeof(*table));
	uint64_t t0 = guest_clock_ns();
	uint64_t checksum = compute_loop(table, iterations);
	uint64_t ns = guest_clock_ns() - t0;
	guest_report("iterations", iterations);
	guest_report("compute_ns", ns);
	guest_report("checksum", checksum);
	guest_printf("compute: %lu iterations in %lu us, checksum 0x%016lx\n", iterations,
		     ns / 1000, checksum);
	return 0;
}
