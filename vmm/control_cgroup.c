/*
 * control_cgroup.c - the control socket's cgroup files (control_cgroup.h).
 */
#include "control_cgroup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet.h"
#include "mm/frame_table.h"
#include "size.h"

enum cgroup_file {
	CG_CURRENT,
	CG_PEAK,
	CG_MIN,
	CG_LOW,
	CG_HIGH,
	CG_MAX,
	CG_OOM_GROUP,
	CG_EVENTS,
	CG_EVENTS_LOCAL,
	CG_PRESSURE,
	CG_SWAP_CURRENT,
	CG_SWAP_PEAK,
	CG_SWAP_MAX,
	CG_SWAP_EVENTS,
	CG_RECLAIM,
	CG_FILES
};

static const struct {
	const char *name;
	const char *access;
} files[CG_FILES] = {
	[CG_CURRENT] = {"memory.current", "ro"},
	[CG_PEAK] = {"memory.peak", "rw"},
	[CG_MIN] = {"memory.min", "rw"},
	[CG_LOW] = {"memory.low", "rw"},
	[CG_HIGH] = {"memory.high", "rw"},
	[CG_MAX] = {"memory.max", "rw"},
	[CG_OOM_GROUP] = {"memory.oom.group", "rw"},
	[CG_EVENTS] = {"memory.events", "ro"},
	[CG_EVENTS_LOCAL] = {"memory.events.local", "ro"},
	[CG_PRESSURE] = {"memory.pressure", "ro"},
	[CG_SWAP_CURRENT] = {"memory.swap.current", "ro"},
	[CG_SWAP_PEAK] = {"memory.swap.peak", "rw"},
	[CG_SWAP_MAX] = {"memory.swap.max", "rw"},
	[CG_SWAP_EVENTS] = {"memory.swap.events", "ro"},
	[CG_RECLAIM] = {"memory.reclaim", "wo"},
};

/* Passes of reclaim a write tries before giving up, as Linux's
 * MAX_RECLAIM_RETRIES. */
#define WRITE_RECLAIM_RETRIES 16

bool control_cgroup_is_key(const char *key)
{
	return strncmp(key, "cgroup/", 7) == 0;
}

/* The cgroup and file a key names; -1 with err if none. */
static int parse_key(struct fleet *fleet, const char *key, struct fleet_cgroup **cg, int *file,
		     char *err, size_t errlen)
{
	const char *name = strrchr(key, '/') + 1;
	char path[256];
	snprintf(path, sizeof(path), "%.*s", (int)(name - key - 7), key + 7);
	size_t n = strlen(path);
	if (n && path[n - 1] == '/')
		path[n - 1] = 0;
	for (*file = 0; *file < CG_FILES; (*file)++)
		if (strcmp(files[*file].name, name) == 0)
			break;
	*cg = fleet_cgroups_find(&fleet->cgroups, path);
	if (*file == CG_FILES || !*cg) {
		snprintf(err, errlen, "no key '%s' in this fleet: %s (see: keys)", key,
			 !*cg ? "no such cgroup" : "no such cgroup file");
		return -1;
	}
	return 0;
}

static void events_text(const struct memory_events *ev, char *out, size_t len)
{
	snprintf(out, len, "low %llu high %llu max %llu oom %llu oom_kill %llu oom_group_kill %llu",
		 (unsigned long long)ev->low, (unsigned long long)ev->high,
		 (unsigned long long)ev->max, (unsigned long long)ev->oom,
		 (unsigned long long)ev->oom_kill, (unsigned long long)ev->oom_group_kill);
}

static void limit_text(uint64_t pages, char *out, size_t len)
{
	if (pages == PAGE_COUNTER_MAX)
		snprintf(out, len, "max");
	else
		snprintf(out, len, "%llu", (unsigned long long)(pages * FRAME_SIZE));
}

/* memory.pressure's two lines, on one. */
static void pressure_text(struct memcg *cg, char *out, size_t len)
{
	struct psi_stats ps;
	memcg_pressure(cg, &ps);
	snprintf(out, len,
		 "some avg10=%.2f avg60=%.2f avg300=%.2f total=%llu "
		 "full avg10=%.2f avg60=%.2f avg300=%.2f total=%llu",
		 ps.some_avg[0], ps.some_avg[1], ps.some_avg[2],
		 (unsigned long long)ps.some_total_us, ps.full_avg[0], ps.full_avg[1],
		 ps.full_avg[2], (unsigned long long)ps.full_total_us);
}

static void file_text(const struct fleet_cgroup *cg, int file, char *out, size_t len)
{
	const struct page_counter *c = &cg->memcg->counter;
	struct memory_events hier, local;
	switch (file) {
	case CG_PRESSURE:
		pressure_text(cg->memcg, out, len);
		return;
	case CG_SWAP_CURRENT:
		snprintf(out, len, "%llu",
			 (unsigned long long)(page_counter_read(&cg->memcg->swap) * FRAME_SIZE));
		return;
	case CG_SWAP_PEAK:
		snprintf(out, len, "%llu",
			 (unsigned long long)(page_counter_peak(&cg->memcg->swap) * FRAME_SIZE));
		return;
	case CG_SWAP_MAX:
		limit_text(page_counter_max(&cg->memcg->swap), out, len);
		return;
	case CG_SWAP_EVENTS:
		snprintf(out, len, "max %llu fail %llu",
			 (unsigned long long)__atomic_load_n(&cg->memcg->swap_max_events,
							     __ATOMIC_RELAXED),
			 (unsigned long long)__atomic_load_n(&cg->memcg->swap_fail_events,
							     __ATOMIC_RELAXED));
		return;
	case CG_CURRENT:
		snprintf(out, len, "%llu", (unsigned long long)(page_counter_read(c) * FRAME_SIZE));
		return;
	case CG_PEAK:
		snprintf(out, len, "%llu", (unsigned long long)(page_counter_peak(c) * FRAME_SIZE));
		return;
	case CG_MIN:
		limit_text(page_counter_min(c), out, len);
		return;
	case CG_LOW:
		limit_text(page_counter_low(c), out, len);
		return;
	case CG_HIGH:
		limit_text(page_counter_high(c), out, len);
		return;
	case CG_MAX:
		limit_text(page_counter_max(c), out, len);
		return;
	case CG_OOM_GROUP:
		snprintf(out, len, "%d", memcg_oom_group_set(cg->memcg) ? 1 : 0);
		return;
	case CG_EVENTS:
	case CG_EVENTS_LOCAL:
		memcg_read_events(cg->memcg, &hier, &local);
		events_text(file == CG_EVENTS ? &hier : &local, out, len);
		return;
	}
	out[0] = 0;
}

int control_cgroup_get(struct fleet *fleet, const char *key, char *out, size_t len, char *err,
		       size_t errlen)
{
	struct fleet_cgroup *cg;
	int file;
	if (parse_key(fleet, key, &cg, &file, err, errlen))
		return -1;
	if (file == CG_RECLAIM) {
		snprintf(err, errlen, "%s is write-only (set it to a size to reclaim)", key);
		return -1;
	}
	file_text(cg, file, out, len);
	return 0;
}

/* Reclaims from the VMs under cg until `pages` are freed or a pass frees
 * nothing WRITE_RECLAIM_RETRIES times. Returns pages freed. */
static uint64_t reclaim_pages(struct fleet *fleet, struct memcg *cg, uint64_t pages)
{
	uint64_t freed = 0;
	for (int fails = 0; freed < pages && fails < WRITE_RECLAIM_RETRIES;) {
		size_t got = reclaim_memcg(fleet->reclaim, cg, pages - freed);
		freed += got;
		fails += got == 0;
	}
	return freed;
}

/* Reclaims cg down to `limit` pages (as memory_high_write and
 * memory_max_write do); returns the excess left. */
static uint64_t reclaim_to(struct fleet *fleet, struct memcg *cg, uint64_t limit)
{
	uint64_t usage = memcg_usage(cg);
	if (limit == PAGE_COUNTER_MAX || usage <= limit)
		return 0;
	reclaim_pages(fleet, cg, usage - limit);
	usage = memcg_usage(cg);
	return usage > limit ? usage - limit : 0;
}

static int parse_limit(const char *value, uint64_t *pages, char *err, size_t errlen)
{
	if (strcmp(value, "max") == 0) {
		*pages = PAGE_COUNTER_MAX;
		return 0;
	}
	uint64_t bytes;
	if (size_parse(value, &bytes, err, errlen))
		return -1;
	*pages = bytes / FRAME_SIZE;
	return 0;
}

int control_cgroup_set(struct fleet *fleet, const char *key, const char *value, char *out,
		       size_t len, char *err, size_t errlen)
{
	struct fleet_cgroup *cg;
	int file;
	if (parse_key(fleet, key, &cg, &file, err, errlen))
		return -1;
	if (strcmp(files[file].access, "ro") == 0) {
		snprintf(err, errlen, "%s is read-only", key);
		return -1;
	}
	struct page_counter *c = &cg->memcg->counter;
	char why[160];
	uint64_t pages = 0;
	if (file == CG_PEAK) {
		page_counter_reset_peak(c);
	} else if (file == CG_SWAP_PEAK) {
		page_counter_reset_peak(&cg->memcg->swap);
	} else if (file == CG_SWAP_MAX) {
		if (parse_limit(value, &pages, why, sizeof(why))) {
			snprintf(err, errlen, "%s: bad value '%s': %s", key, value, why);
			return -1;
		}
		page_counter_set_max(&cg->memcg->swap, pages);
	} else if (file == CG_OOM_GROUP) {
		if (strcmp(value, "0") && strcmp(value, "1")) {
			snprintf(err, errlen, "%s: bad value '%s': expected 0 or 1", key, value);
			return -1;
		}
		memcg_set_oom_group(cg->memcg, value[0] == '1');
	} else if (file == CG_MIN || file == CG_LOW) {
		if (parse_limit(value, &pages, why, sizeof(why))) {
			snprintf(err, errlen, "%s: bad value '%s': %s", key, value, why);
			return -1;
		}
		if (file == CG_MIN)
			page_counter_set_min(c, pages);
		else
			page_counter_set_low(c, pages);
	} else {
		if (!fleet->reclaim) {
			snprintf(err, errlen,
				 "%s: this fleet runs without reclaim: start it with swap or a "
				 "limit (--swap, --memory-max, --memory-high, or a cgroup's)",
				 key);
			return -1;
		}
		if (parse_limit(value, &pages, why, sizeof(why)) ||
		    (file == CG_RECLAIM && pages == PAGE_COUNTER_MAX)) {
			snprintf(err, errlen, "%s: bad value '%s': %s", key, value,
				 file == CG_RECLAIM && pages == PAGE_COUNTER_MAX ? "expected a size"
										 : why);
			return -1;
		}
		if (file == CG_RECLAIM) {
			uint64_t got = reclaim_pages(fleet, cg->memcg, pages);
			if (got < pages) {
				snprintf(err, errlen,
					 "%s: reclaimed %llu of %llu bytes: nothing more could be "
					 "evicted",
					 key, (unsigned long long)(got * FRAME_SIZE),
					 (unsigned long long)(pages * FRAME_SIZE));
				return -1;
			}
			snprintf(out, len, "%llu", (unsigned long long)(got * FRAME_SIZE));
			return 0;
		}
		if (file == CG_HIGH) {
			page_counter_set_high(c, pages);
			reclaim_to(fleet, cg->memcg, pages);
		} else {
			page_counter_set_max(c, pages);
			if (reclaim_to(fleet, cg->memcg, pages)) /* reclaim could not */
				reclaim_oom(fleet->reclaim, cg->memcg, NULL);
		}
	}
	file_text(cg, file, out, len);
	return 0;
}

/* A file's value as JSON: numbers, "max", and objects for the events and
 * the pressure. */
static json_object *file_json(const struct fleet_cgroup *cg, int file, const char *text)
{
	if (file == CG_EVENTS || file == CG_EVENTS_LOCAL || file == CG_PRESSURE ||
	    file == CG_SWAP_EVENTS) {
		/* "k v k v ..." or "some k=v ... full k=v ..." */
		json_object *o = json_object_new_object(), *into = o;
		char copy[256], *save = NULL;
		snprintf(copy, sizeof(copy), "%s", text);
		for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
			char *eq = strchr(w, '=');
			if (file == CG_PRESSURE && !eq) {
				into = json_object_new_object();
				json_object_object_add(o, w, into);
			} else if (eq) {
				*eq = 0;
				json_object_object_add(
					into, w,
					strcmp(w, "total") == 0
						? json_object_new_int64(strtoll(eq + 1, NULL, 10))
						: json_object_new_double(strtod(eq + 1, NULL)));
			} else {
				char *n = strtok_r(NULL, " ", &save);
				json_object_object_add(
					o, w, json_object_new_int64(n ? strtoll(n, NULL, 10) : 0));
			}
		}
		return o;
	}
	(void)cg;
	if (strcmp(text, "max") == 0)
		return json_object_new_string(text);
	return json_object_new_int64(strtoll(text, NULL, 10));
}

void control_cgroup_each(struct fleet *fleet,
			 void (*emit)(void *ctx, const char *key, const char *access,
				      const char *text, json_object *json),
			 void *ctx)
{
	for (unsigned i = 0; i < fleet->cgroups.n; i++) {
		const struct fleet_cgroup *cg = &fleet->cgroups.all[i];
		for (int f = 0; f < CG_FILES; f++) {
			char key[300], value[256];
			snprintf(key, sizeof(key), "cgroup%s%s%s", i ? cg->path : "", "/",
				 files[f].name);
			if (f == CG_RECLAIM) {
				emit(ctx, key, files[f].access, NULL, NULL);
				continue;
			}
			file_text(cg, f, value, sizeof(value));
			emit(ctx, key, files[f].access, value, file_json(cg, f, value));
		}
	}
}
