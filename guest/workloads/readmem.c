/*
 * readmem - touches every page of free guest RAM once, by reading it.
 *
 *   readmem hold=T
 *
 * Reads the first word of every page of its heap, in order, so that each
 * page is faulted in (restored from the VM's memory image when it has one,
 * see `vmm run --memory-image`) without changing its content; declares the
 * heap as its buffer, reports `pages`, `read_ns` and `first_word_sum` (the
 * sum of those words, so a test can check what the guest saw), then sleeps
 * T ms (default 0) so that KSM can merge what it read, and exits 0.
 */
#include "guest.h"

int guest_main(const struct guest_boot_info *bi)
{
	static const char *const allowed[] = {"hold", NULL};
	guest_args_check(bi, "readmem", allowed);
	uint64_t hold = 0;
	if (guest_arg_str(bi, "hold") && guest_arg_u64(bi, "hold", &hold)) {
		guest_printf("error: readmem: hold must be a number of milliseconds\n");
		return 2;
	}
	const volatile uint64_t *heap = (const volatile uint64_t *)bi->heap_start;
	uint64_t pages = (bi->heap_end - bi->heap_start) / GUEST_PAGE_SIZE;
	guest_declare_buffer((const void *)bi->heap_start, pages * GUEST_PAGE_SIZE);
	uint64_t t0 = guest_clock_ns(), sum = 0;
	for (uint64_t i = 0; i < pages; i++)
		sum += heap[i * (GUEST_PAGE_SIZE / sizeof(uint64_t))];
	uint64_t ns = guest_clock_ns() - t0;
	guest_report("pages", pages);
	guest_report("read_ns", ns);
	guest_report("first_word_sum", sum);
	guest_printf("readmem: read %lu pages in %lu us\n", pages, ns / 1000);
	if (hold)
		guest_sleep_ns(hold * 1000000ull);
	return 0;
}
