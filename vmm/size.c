/*
 * size.c - byte size parsing and formatting.
 */
#include "size.h"
#include "message.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static int size_parse_text(const char *text, uint64_t *bytes, char *err, size_t errlen)
{
	const char *p = text;
	uint64_t value = 0;
	if (!isdigit((unsigned char)*p)) {
		snprintf(err, errlen,
			 "bad size '%s': expected a number with an optional K/M/G/T suffix", text);
		return -1;
	}
	for (; isdigit((unsigned char)*p); p++) {
		if (value > (UINT64_MAX - 9) / 10) {
			snprintf(err, errlen, "bad size '%s': too large", text);
			return -1;
		}
		value = value * 10 + (uint64_t)(*p - '0');
	}
	unsigned shift = 0;
	switch (toupper((unsigned char)*p)) {
	case 0:
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	default:
		snprintf(err, errlen, "bad size '%s': unknown suffix '%s' (use K, M, G or T)", text,
			 p);
		return -1;
	}
	if (shift) {
		p++;
		if (strcasecmp(p, "iB") == 0 || strcasecmp(p, "B") == 0)
			p += strlen(p);
	}
	if (*p) {
		snprintf(err, errlen, "bad size '%s': unexpected '%s' after the number", text, p);
		return -1;
	}
	if (shift && value > (UINT64_MAX >> shift)) {
		snprintf(err, errlen, "bad size '%s': too large", text);
		return -1;
	}
	*bytes = value << shift;
	return 0;
}

const char *size_format(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	unsigned u = 0;
	double v = (double)bytes;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0 || v == (double)(uint64_t)v)
		snprintf(buf, len, "%llu %s", (unsigned long long)v, units[u]);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

int size_parse(const char *text, uint64_t *bytes, char *err, size_t errlen)
{
	int rc = size_parse_text(text, bytes, err, errlen);
	if (rc)
		message_one_line(err);
	return rc;
}
