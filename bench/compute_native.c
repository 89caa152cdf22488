/*
 * compute_native.c - the compute guest's loop (compute_loop.h), run natively.
 *
 * A file of its own so that CMake can compile it with the guests' code
 * generation options (GUEST_CODEGEN_OPTIONS): the host runs the same source
 * compiled the same way as the guest, and the difference in time per
 * iteration is the accelerator's, not the compiler's.
 */
#include "compute_native.h"

#include "compute_loop.h"

static uint64_t compute_native_table[COMPUTE_TABLE_WORDS] __attribute__((aligned(64)));

uint64_t compute_native(uint64_t iterations)
{
	return compute_loop(compute_native_table, iterations);
}
