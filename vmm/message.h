/*
 * message.h - keeping a one-line message one line.
 *
 * Errors about bad input quote the input ("bad size '...'", "unknown key
 * '...'"), and input may hold a newline or other control characters: an
 * error would then span lines, or drive a terminal. Every parser's error
 * goes through message_one_line() before it is returned: control characters
 * become '?'.
 */
#ifndef VMM_MESSAGE_H
#define VMM_MESSAGE_H

static inline void message_one_line(char *message)
{
	for (unsigned char *p = (unsigned char *)message; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
}

#endif
