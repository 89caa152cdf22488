/*
 * crash - misbehaves on purpose, for testing how the VMM reports guest
 * failures. kind=pf (write to the unmapped null page), ud (invalid opcode),
 * gp (hlt at CPL 3), de (divide by zero), exit (exit with code=N).
 */
#include "guest.h"

int guest_main(const struct guest_boot_info *bi)
{
	static const char *const allowed[] = {"kind", "code", NULL};
	guest_args_check(bi, "crash", allowed);
	const char *a = bi->args;
	uint64_t code = 7;
	guest_arg_u64(bi, "code", &code);
	if (strncmp(a, "kind=pf", 7) == 0) {
		uint64_t address = 8;
		__asm__ volatile("movq $1, (%0)" : : "r"(address) : "memory");
	} else if (strncmp(a, "kind=ud", 7) == 0) {
		__asm__ volatile("ud2");
	} else if (strncmp(a, "kind=gp", 7) == 0) {
		__asm__ volatile("hlt");
	} else if (strncmp(a, "kind=de", 7) == 0) {
		uint64_t zero = 0, low = 1, high = 0;
		__asm__ volatile("divq %2" : "+a"(low), "+d"(high) : "r"(zero));
	} else if (strncmp(a, "kind=exit", 9) == 0) {
		return (int)code;
	}
	guest_printf("crash: nothing happened (args '%s')\n", a);
	return 0;
}
