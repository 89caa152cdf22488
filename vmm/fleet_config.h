/*
 * fleet_config.h - JSON fleet descriptions (`vmm run --config FILE`).
 *
 * The file is JSON with comments (json-c accepts // and block comments):
 *
 *   {
 *     "groups": [
 *       { "name": "web", "guest": "pattern", "args": "mb=16 shared=50",
 *         "mem": "64M", "count": 8 }
 *     ]
 *   }
 *
 * Per group: "guest" (required), "count" (default 1), "mem" (size string or
 * bytes, default 64M), "args" (a string, or an array of strings joined with
 * spaces), "name" (default "group<i>"). Unknown keys are errors naming the
 * key, so a typo never silently does nothing. Top-level "mem" sets the
 * default for every group; top-level "memory" holds the fleet's memory
 * settings (backing, host_mem, fault_around, fault_ahead, thp,
 * min_free_kbytes, watermark_scale_factor), "ksm" the scanner's (enabled,
 * pages_to_scan, sleep_millisecs, rate, max_page_sharing, use_zero_pages,
 * dirty_log) and "swap" the swap device's (file, size, keep, zswap,
 * page_cluster) with default limits (memory_high, memory_max, oom_score_adj).
 * Groups may set "ksm", "memory_high", "memory_max" and "oom_score_adj"
 * (each VM's own limits), and "cgroup": the path of the cgroup their VMs go
 * under. Top-level "cgroups" gives cgroups settings by path, as cgroup v2
 * names them (memory.min, memory.low, memory.high, memory.max,
 * memory.swap.max, memory.oom.group):
 *
 *   "cgroups": {"tenants": {"memory.max": "1G"},
 *               "tenants/a": {"memory.high": "400M", "memory.oom.group": true}}
 *
 * A path a group names but "cgroups" does not is a cgroup without limits,
 * and so are the missing parents of a path.
 */
#ifndef VMM_FLEET_CONFIG_H
#define VMM_FLEET_CONFIG_H

#include <stddef.h>

#include "fleet_spec.h"

int fleet_config_load(const char *path, struct fleet_spec *spec, char *err, size_t errlen);
/* Same, from a string; `origin` names it in messages. */
int fleet_config_parse(const char *text, const char *origin, struct fleet_spec *spec, char *err,
		       size_t errlen);

#endif
