/*
 * fault_inject.c - armed failures, counted per kind (see fault_inject.h).
 */
#include "fault_inject.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[FAULT_KINDS] = {
	[FAULT_MMAP] = "mmap",
	[FAULT_UFFD_REGISTER] = "uffd-register",
	[FAULT_UFFD_WP] = "uffd-wp",
	[FAULT_PUNCH_HOLE] = "punch-hole",
	[FAULT_FRAME_ALLOC] = "frame-alloc",
	[FAULT_ALLOC] = "alloc",
	[FAULT_URING_SUBMIT] = "uring-submit",
	[FAULT_WRITE_EIO] = "write-eio",
	[FAULT_READ_EIO] = "read-eio",
	[FAULT_SHORT_READ] = "short-read",
	[FAULT_CORRUPT] = "corrupt",
};

/* Per kind, all atomic: failures left, the period, operations seen since
 * arming, failures injected. */
static struct {
	uint64_t left, every, seen, injected;
} state[FAULT_KINDS];
static int armed; /* any kind armed: the fast path's one load */

const char *fault_inject_name(enum fault_kind kind)
{
	return (unsigned)kind < FAULT_KINDS ? names[kind] : "?";
}

void fault_inject_set(enum fault_kind kind, uint64_t count, uint64_t every)
{
	if ((unsigned)kind >= FAULT_KINDS)
		return;
	__atomic_store_n(&state[kind].every, every ? every : 1, __ATOMIC_RELAXED);
	__atomic_store_n(&state[kind].seen, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&state[kind].left, count, __ATOMIC_RELEASE);
	if (count)
		__atomic_store_n(&armed, 1, __ATOMIC_RELEASE);
}

void fault_inject_reset(void)
{
	for (int k = 0; k < FAULT_KINDS; k++) {
		__atomic_store_n(&state[k].left, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&state[k].injected, 0, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&armed, 0, __ATOMIC_RELEASE);
}

bool fault_inject_hit(enum fault_kind kind)
{
	if (!__atomic_load_n(&armed, __ATOMIC_RELAXED) || (unsigned)kind >= FAULT_KINDS)
		return false;
	uint64_t left = __atomic_load_n(&state[kind].left, __ATOMIC_ACQUIRE);
	if (!left)
		return false;
	uint64_t every = __atomic_load_n(&state[kind].every, __ATOMIC_RELAXED);
	uint64_t seen = __atomic_add_fetch(&state[kind].seen, 1, __ATOMIC_RELAXED);
	if (seen % every)
		return false;
	/* Take one of the failures left, if another thread has not. */
	while (left) {
		if (__atomic_compare_exchange_n(&state[kind].left, &left, left - 1, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			__atomic_add_fetch(&state[kind].injected, 1, __ATOMIC_RELAXED);
			return true;
		}
	}
	return false;
}

uint64_t fault_inject_count(enum fault_kind kind)
{
	return (unsigned)kind < FAULT_KINDS
		       ? __atomic_load_n(&state[kind].injected, __ATOMIC_RELAXED)
		       : 0;
}

uint64_t fault_inject_total(void)
{
	uint64_t total = 0;
	for (int k = 0; k < FAULT_KINDS; k++)
		total += fault_inject_count((enum fault_kind)k);
	return total;
}

/* A whole number in text[0..len), at most `max`. */
static int parse_number(const char *text, size_t len, uint64_t max, uint64_t *out)
{
	if (len == 0 || len > 19)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(text[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

int fault_inject_parse(const char *spec, char *err, size_t errlen)
{
	const char *p = spec;
	while (*p) {
		size_t len = strcspn(p, ",");
		const char *colon = memchr(p, ':', len);
		size_t name_len = colon ? (size_t)(colon - p) : len;
		int kind = -1;
		for (int k = 0; k < FAULT_KINDS; k++)
			if (strlen(names[k]) == name_len && strncmp(p, names[k], name_len) == 0)
				kind = k;
		uint64_t count = 1, every = 1;
		int bad = kind < 0;
		if (!bad && colon) {
			const char *c = colon + 1, *end = p + len;
			const char *colon2 = memchr(c, ':', (size_t)(end - c));
			bad = parse_number(c, (size_t)((colon2 ? colon2 : end) - c), 1ull << 40,
					   &count) ||
			      (colon2 && (parse_number(colon2 + 1, (size_t)(end - colon2 - 1),
						       1ull << 40, &every) ||
					  every == 0));
		}
		if (bad) {
			char kinds[400] = "";
			for (int k = 0; k < FAULT_KINDS; k++)
				snprintf(kinds + strlen(kinds), sizeof(kinds) - strlen(kinds),
					 "%s%s", k ? ", " : "", names[k]);
			snprintf(err, errlen,
				 "VMM_FAULT: bad entry '%.*s': expected KIND:COUNT[:EVERY] with "
				 "KIND one of %s",
				 (int)len, p, kinds);
			return -1;
		}
		fault_inject_set((enum fault_kind)kind, count, every);
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}
