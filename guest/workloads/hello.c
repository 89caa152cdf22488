/*
 * hello - prints a greeting with what the VMM told it, and exits 0.
 */
#include "guest.h"

int guest_main(const struct guest_boot_info *bi)
{
	guest_printf("hello from vm%u of %u: %lu MiB of RAM, args '%s'\n", bi->vm_index,
		     bi->vm_count, bi->mem_bytes >> 20, bi->args);
	return 0;
}
