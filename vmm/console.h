/*
 * console.h - a VM's console: bytes in, whole prefixed lines out.
 *
 * Guests write bytes (one port write each, or a buffer by hypercall). The
 * console collects them and prints each complete line as "vm3| text" on
 * stdout, under one process-wide lock so lines of different VMs never mix.
 * Overlong lines are cut at CONSOLE_LINE_MAX; unprintable bytes become '.'.
 */
#ifndef VMM_CONSOLE_H
#define VMM_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

#define CONSOLE_LINE_MAX 1024

struct console {
	char prefix[40];
	bool quiet;
	size_t len;
	char line[CONSOLE_LINE_MAX];
	unsigned long lines; /* lines written, printed or not */
};

void console_init(struct console *c, const char *name, bool quiet);
void console_feed(struct console *c, const char *buf, size_t len);
/* Prints an unterminated last line, if any. */
void console_flush(struct console *c);

/* A status line kept at the bottom of a terminal (the KSM progress line):
 * console lines are printed above it. */
void console_set_status(const char *text);
void console_clear_status(void);

/* Serialise a whole message on stdout/stderr with the console lines. */
void console_lock(void);
void console_unlock(void);

#endif
