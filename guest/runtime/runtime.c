/*
 * runtime.c - entry, exit, hypercall wrappers, argument parsing, PRNG and the
 * few C library functions a freestanding guest needs.
 */
#include "guest.h"

static const struct guest_boot_info *boot_info;

void guest_runtime_start(const struct guest_boot_info *bi);

void guest_runtime_start(const struct guest_boot_info *bi)
{
	boot_info = bi;
	if (bi->magic != GUEST_BOOT_MAGIC) {
		guest_printf("guest: bad boot info magic\n");
		guest_exit(3);
	}
	guest_exit(guest_main(bi));
}

void guest_exit(int code)
{
	__asm__ volatile("outl %%eax, %%dx" : : "a"(code), "d"((uint16_t)GUEST_PORT_EXIT));
	for (;;)
		__asm__ volatile("pause");
}

void guest_write(const char *buf, size_t len)
{
	guest_hypercall(GUEST_HC_WRITE, (uint64_t)buf, len, 0);
}

uint64_t guest_clock_ns(void)
{
	return guest_hypercall(GUEST_HC_CLOCK_NS, 0, 0, 0);
}

void guest_sleep_ns(uint64_t ns)
{
	guest_hypercall(GUEST_HC_SLEEP_NS, ns, 0, 0);
}

void guest_report(const char *key, uint64_t value)
{
	guest_hypercall(GUEST_HC_REPORT, (uint64_t)key, value, 0);
}

void guest_declare_buffer(const void *buf, uint64_t len)
{
	guest_hypercall(GUEST_HC_DECLARE_BUFFER, (uint64_t)buf, len, 0);
}

/* --- arguments --- */

/* Finds `key` as a whole word key in the argument string; returns a pointer
 * to its value (after '=') or NULL. */
static const char *arg_find(const char *args, const char *key)
{
	size_t klen = strlen(key);
	const char *p = args;
	while (*p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		const char *word = p;
		while (*p && *p != ' ')
			p++;
		if ((size_t)(p - word) > klen && strncmp(word, key, klen) == 0 && word[klen] == '=')
			return word + klen + 1;
	}
	return NULL;
}

const char *guest_arg_str(const struct guest_boot_info *bi, const char *key)
{
	return arg_find(bi->args, key);
}

static int digit_value(char c, int base)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (base == 16 && c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (base == 16 && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int guest_arg_u64(const struct guest_boot_info *bi, const char *key, uint64_t *value)
{
	const char *v = arg_find(bi->args, key);
	if (!v)
		return -1;
	uint64_t x = 0;
	int base = 10, digits = 0;
	if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
		base = 16;
		v += 2;
	}
	for (; *v && *v != ' '; v++, digits++) {
		int d = digit_value(*v, base);
		if (d < 0)
			break;
		x = x * base + d;
	}
	if (digits == 0 || (*v && *v != ' ')) {
		guest_printf("error: argument %s= needs a number\n", key);
		guest_exit(2);
	}
	*value = x;
	return 0;
}

void guest_args_check(const struct guest_boot_info *bi, const char *program,
		      const char *const *allowed)
{
	const char *p = bi->args;
	while (*p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		const char *word = p;
		while (*p && *p != ' ' && *p != '=')
			p++;
		size_t len = p - word;
		int ok = 0;
		for (const char *const *a = allowed; *a; a++)
			if (strlen(*a) == len && strncmp(*a, word, len) == 0 && *p == '=')
				ok = 1;
		if (!ok) {
			char name[64];
			size_t n = len < sizeof(name) - 1 ? len : sizeof(name) - 1;
			memcpy(name, word, n);
			name[n] = 0;
			guest_printf("error: %s: unknown argument '%s' (expected key=value)\n",
				     program, name);
			guest_exit(2);
		}
		while (*p && *p != ' ')
			p++;
	}
}

/* --- PRNG --- */

void guest_prng_seed(struct guest_prng *r, uint64_t seed)
{
	r->state = seed ? seed : 0x853c49e6748fea9bull;
}

uint64_t guest_prng_next(struct guest_prng *r)
{
	uint64_t x = r->state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->state = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* --- libc pieces --- */

void *memset(void *dst, int c, size_t n)
{
	void *ret = dst; /* rep stosb advances %rdi */
	__asm__ volatile("rep stosb" : "+D"(dst), "+c"(n) : "a"(c) : "memory");
	return ret;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	void *ret = dst;
	__asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
	return ret;
}

void *memmove(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	if (d < s)
		return memcpy(dst, src, n);
	while (n--)
		d[n] = s[n];
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

int strncmp(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i] != b[i])
			return (unsigned char)a[i] < (unsigned char)b[i] ? -1 : 1;
		if (!a[i])
			return 0;
	}
	return 0;
}
