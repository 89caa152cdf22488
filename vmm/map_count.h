/*
 * map_count.h - the process's VMA budget (vm.max_map_count).
 *
 * Every run of guest pages mapped to non-neighbouring frames is a separate
 * host mapping (VMA), and Linux caps a process at vm.max_map_count of them
 * (65530 by default). Before a fleet starts, the VMM estimates the worst case
 * it may need; if the limit is lower it raises the sysctl when it can (root)
 * and puts the old value back at exit, or refuses with a message saying what
 * to set. Overlapping runs share the sysctl through a registry in /run/vmm
 * (map_count.c): none lowers it under another, the last restores it.
 */
#ifndef VMM_MAP_COUNT_H
#define VMM_MAP_COUNT_H

#include <stddef.h>
#include <stdint.h>

/* Current vm.max_map_count, or 0 if unreadable. */
uint64_t map_count_limit(void);
/* Number of VMAs of this process now (lines of /proc/self/maps). */
uint64_t map_count_vmas(void);
/* Makes sure the limit is at least `needed`. Returns 0, or -1 with a
 * one-line reason. Raised limits are restored by map_count_restore(). */
int map_count_ensure(uint64_t needed, char *err, size_t errlen);
void map_count_restore(void);

/* Test hook: another sysctl file and registry directory. */
void map_count_set_paths(const char *sysctl, const char *registry);

#endif
