/*
 * map_count.c - reading and raising vm.max_map_count.
 */
#include "map_count.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MAX_MAP_COUNT_PATH "/proc/sys/vm/max_map_count"

static uint64_t original_limit;

uint64_t map_count_limit(void)
{
	unsigned long long v = 0;
	FILE *f = fopen(MAX_MAP_COUNT_PATH, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

uint64_t map_count_vmas(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return 0;
	uint64_t lines = 0;
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		for (size_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	fclose(f);
	return lines;
}

static int write_limit(uint64_t value)
{
	FILE *f = fopen(MAX_MAP_COUNT_PATH, "w");
	if (!f)
		return -1;
	int ok = fprintf(f, "%llu\n", (unsigned long long)value) > 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

int map_count_ensure(uint64_t needed, char *err, size_t errlen)
{
	uint64_t limit = map_count_limit();
	if (limit == 0 || limit >= needed)
		return 0;
	if (write_limit(needed) != 0) {
		snprintf(
			err, errlen,
			"this fleet may need up to %llu host mappings but vm.max_map_count is %llu "
			"and cannot be raised (%s); run as root or set "
			"'sysctl vm.max_map_count=%llu'",
			(unsigned long long)needed, (unsigned long long)limit, strerror(errno),
			(unsigned long long)needed);
		return -1;
	}
	if (!original_limit)
		original_limit = limit;
	return 0;
}

void map_count_restore(void)
{
	if (original_limit) {
		write_limit(original_limit);
		original_limit = 0;
	}
}
