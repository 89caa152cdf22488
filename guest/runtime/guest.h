/*
 * guest.h - the freestanding guest runtime (no libc).
 *
 * A guest provides `int guest_main(const struct guest_boot_info *bi)`; the
 * runtime's entry calls it and passes its return value to guest_exit().
 * Output goes through the VMM's console (a whole line per hypercall);
 * arguments are `key=value` words of the boot-info argument string.
 */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "guest_abi.h"

int guest_main(const struct guest_boot_info *bi);

/* --- port I/O and hypercalls --- */
static inline void guest_outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint64_t guest_hypercall(uint32_t nr, uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t ret;
	__asm__ volatile("outl %%eax, %%dx"
			 : "=a"(ret)
			 : "a"(nr), "d"((uint16_t)GUEST_PORT_HYPERCALL), "D"(a), "S"(b), "c"(c)
			 : "memory");
	return ret;
}

__attribute__((noreturn)) void guest_exit(int code);
void guest_write(const char *buf, size_t len);
uint64_t guest_clock_ns(void);
void guest_sleep_ns(uint64_t ns);
void guest_report(const char *key, uint64_t value);
void guest_declare_buffer(const void *buf, uint64_t len);

/* --- console --- */
int guest_vsnprintf(char *out, size_t size, const char *fmt, va_list ap);
int guest_snprintf(char *out, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void guest_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --- arguments: "key=value" words --- */
/* Returns 0 and stores the value, or -1 if the key is absent. Numbers accept
 * decimal and 0x hex. On a malformed number the guest prints an error and
 * exits with code 2. */
int guest_arg_u64(const struct guest_boot_info *bi, const char *key, uint64_t *value);
/* The value of `key` (up to the next space), or NULL if the key is absent. */
const char *guest_arg_str(const struct guest_boot_info *bi, const char *key);
/* Exits with code 2 naming the first word whose key is not in `allowed`
 * (a NULL-terminated list). */
void guest_args_check(const struct guest_boot_info *bi, const char *program,
		      const char *const *allowed);

/* --- a fast PRNG (xorshift64*) --- */
struct guest_prng {
	uint64_t state;
};
void guest_prng_seed(struct guest_prng *r, uint64_t seed);
uint64_t guest_prng_next(struct guest_prng *r);

/* --- the C library pieces the compiler may call --- */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);

#endif
