/*
 * console.c - console output of the shim: bytes to GUEST_PORT_CONSOLE (QEMU's
 * isa-debugcon), and a small printf.
 *
 * The shim's own lines (`@boot`, `@report`, `@exit`, errors) must start at
 * the beginning of a line for the harness to parse them, but they interleave
 * with the guest's output. So every byte the shim writes on the guest's
 * behalf goes through con_write(), which remembers whether the last byte was
 * a newline; con_line_start() adds one if it was not. (A guest writing to the
 * console port directly, which the TSS bitmap allows, bypasses this; our
 * guests write through GUEST_HC_WRITE.)
 *
 * con_printf() and con_vprintf() know %s %c %d %u %x with the l and ll modifiers, and %p.
 */
#include "shim.h"

static int at_line_start = 1;

void con_write(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		outb(GUEST_PORT_CONSOLE, (uint8_t)buf[i]);
	if (len)
		at_line_start = buf[len - 1] == '\n';
}

void con_line_start(void)
{
	if (!at_line_start)
		con_write("\n", 1);
}

static void put_unsigned(uint64_t v, unsigned base)
{
	char digits[24];
	int n = 0;
	do {
		unsigned d = (unsigned)(v % base);
		digits[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	char out[24];
	for (int i = 0; i < n; i++)
		out[i] = digits[n - 1 - i];
	con_write(out, (size_t)n);
}

void con_vprintf(const char *fmt, va_list ap)
{
	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			const char *q = p;
			while (*q && *q != '%')
				q++;
			con_write(p, (size_t)(q - p));
			p = q - 1;
			continue;
		}
		p++;
		int longs = 0;
		while (*p == 'l') {
			longs++;
			p++;
		}
		switch (*p) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			con_write(s, strlen(s));
			break;
		}
		case 'c': {
			char c = (char)va_arg(ap, int);
			con_write(&c, 1);
			break;
		}
		case 'd': {
			int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
			if (v < 0) {
				con_write("-", 1);
				put_unsigned(-(uint64_t)v, 10);
			} else {
				put_unsigned((uint64_t)v, 10);
			}
			break;
		}
		case 'u':
		case 'x':
			put_unsigned(longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned),
				     *p == 'u' ? 10 : 16);
			break;
		case 'p':
			con_write("0x", 2);
			put_unsigned((uint64_t)(uintptr_t)va_arg(ap, void *), 16);
			break;
		case '%':
			con_write("%", 1);
			break;
		default: /* unknown conversion: print it as is */
			con_write("%", 1);
			if (!*p)
				p--;
			else
				con_write(p, 1);
			break;
		}
	}
}

void con_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	con_vprintf(fmt, ap);
	va_end(ap);
}
