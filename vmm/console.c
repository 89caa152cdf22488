/*
 * console.c - line-buffered guest consoles.
 */
#include "console.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t output_lock = PTHREAD_MUTEX_INITIALIZER;
static char status_line[256];

void console_lock(void)
{
	pthread_mutex_lock(&output_lock);
}

void console_unlock(void)
{
	pthread_mutex_unlock(&output_lock);
}

void console_init(struct console *c, const char *name, bool quiet)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->prefix, sizeof(c->prefix), "%s| ", name);
	c->quiet = quiet;
}

static void emit_line(struct console *c)
{
	c->lines++;
	if (!c->quiet) {
		console_lock();
		if (status_line[0])
			fputs("\r\033[K", stdout);
		fputs(c->prefix, stdout);
		fwrite(c->line, 1, c->len, stdout);
		fputc('\n', stdout);
		if (status_line[0])
			fputs(status_line, stdout);
		fflush(stdout);
		console_unlock();
	}
	c->len = 0;
}

void console_set_status(const char *text)
{
	console_lock();
	snprintf(status_line, sizeof(status_line), "%s", text);
	fputs("\r\033[K", stdout);
	fputs(status_line, stdout);
	fflush(stdout);
	console_unlock();
}

void console_clear_status(void)
{
	console_lock();
	if (status_line[0]) {
		fputs("\r\033[K", stdout);
		fflush(stdout);
	}
	status_line[0] = 0;
	console_unlock();
}

void console_feed(struct console *c, const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char ch = buf[i];
		if (ch == '\n') {
			emit_line(c);
			continue;
		}
		if (ch == '\r')
			continue;
		if ((unsigned char)ch < 0x20 && ch != '\t')
			ch = '.';
		c->line[c->len++] = ch;
		if (c->len == CONSOLE_LINE_MAX)
			emit_line(c);
	}
}

void console_flush(struct console *c)
{
	if (c->len)
		emit_line(c);
}
