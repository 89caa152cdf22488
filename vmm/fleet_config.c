/*
 * fleet_config.c - parsing JSON fleet descriptions with json-c.
 */
#include "fleet_config.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "size.h"

#define CONFIG_MAX_BYTES (1 << 20)

static int parse_size_value(json_object *v, uint64_t *out, const char *where, char *err,
			    size_t errlen)
{
	if (json_object_is_type(v, json_type_int)) {
		int64_t n = json_object_get_int64(v);
		if (n < 0) {
			snprintf(err, errlen, "%s: size must not be negative", where);
			return -1;
		}
		*out = (uint64_t)n;
		return 0;
	}
	if (json_object_is_type(v, json_type_string)) {
		char why[200];
		if (size_parse(json_object_get_string(v), out, why, sizeof(why))) {
			snprintf(err, errlen, "%s: %s", where, why);
			return -1;
		}
		return 0;
	}
	snprintf(err, errlen, "%s: expected a size such as \"64M\"", where);
	return -1;
}

/* "args": "a=1 b=2" or ["a=1", "b=2"]; returns a malloc'd string. */
static char *parse_args_value(json_object *v, const char *where, char *err, size_t errlen)
{
	if (json_object_is_type(v, json_type_string))
		return strdup(json_object_get_string(v));
	if (!json_object_is_type(v, json_type_array)) {
		snprintf(err, errlen, "%s: expected a string or an array of strings", where);
		return NULL;
	}
	size_t n = json_object_array_length(v), len = 1;
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(v, i);
		if (!json_object_is_type(s, json_type_string)) {
			snprintf(err, errlen, "%s[%zu]: expected a string", where, i);
			return NULL;
		}
		len += strlen(json_object_get_string(s)) + 1;
	}
	char *out = calloc(1, len);
	for (size_t i = 0; out && i < n; i++) {
		if (i)
			strcat(out, " ");
		strcat(out, json_object_get_string(json_object_array_get_idx(v, i)));
	}
	return out;
}

/* "memory": {"backing": "pool", "host_mem": "1G", "fault_around": "64K",
 *            "thp": false, "min_free_kbytes": 0, "watermark_scale_factor": 10} */
static int parse_memory_settings(json_object *o, struct memory_settings *m, const char *where,
				 char *err, size_t errlen)
{
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "%s: expected an object", where);
		return -1;
	}
	json_object_object_foreach (o, key, v) {
		char field[512];
		snprintf(field, sizeof(field), "%s.%s", where, key);
		if (strcmp(key, "backing") == 0 && json_object_is_type(v, json_type_string)) {
			const char *b = json_object_get_string(v);
			if (strcmp(b, "pool") == 0)
				m->backing = BACKING_POOL;
			else if (strcmp(b, "anon") == 0)
				m->backing = BACKING_ANON;
			else {
				snprintf(err, errlen, "%s: '%s' is not pool or anon", field, b);
				return -1;
			}
		} else if (strcmp(key, "host_mem") == 0) {
			if (parse_size_value(v, &m->host_mem_bytes, field, err, errlen))
				return -1;
		} else if (strcmp(key, "fault_around") == 0) {
			if (parse_size_value(v, &m->fault_around_bytes, field, err, errlen))
				return -1;
		} else if (strcmp(key, "fault_ahead") == 0) {
			if (json_object_is_type(v, json_type_string) &&
			    strcmp(json_object_get_string(v), "off") == 0)
				m->fault_ahead_bytes = 0;
			else if (parse_size_value(v, &m->fault_ahead_bytes, field, err, errlen))
				return -1;
		} else if (strcmp(key, "tcg_mmu") == 0 &&
			   json_object_is_type(v, json_type_string) &&
			   tcg_mmu_parse(json_object_get_string(v), &m->tcg_mmu) == 0) {
			/* parsed */
		} else if (strcmp(key, "thp") == 0 && json_object_is_type(v, json_type_boolean)) {
			m->thp = json_object_get_boolean(v);
		} else if (strcmp(key, "min_free_kbytes") == 0 &&
			   json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0) {
			m->min_free_kbytes = (uint64_t)json_object_get_int64(v);
		} else if (strcmp(key, "watermark_scale_factor") == 0 &&
			   json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0 &&
			   json_object_get_int64(v) <= 3000) {
			m->watermark_scale_factor = (uint32_t)json_object_get_int64(v);
		} else {
			snprintf(err, errlen,
				 "%s: unknown key or bad value '%s' (known: backing, host_mem, "
				 "fault_around, fault_ahead, tcg_mmu, thp, min_free_kbytes, "
				 "watermark_scale_factor)",
				 where, key);
			return -1;
		}
	}
	return 0;
}

/* oom_score_adj: an integer in -1000..1000, checked before it is narrowed. */
static int json_oom_score_adj(json_object *v, int *out)
{
	if (!json_object_is_type(v, json_type_int))
		return -1;
	int64_t n = json_object_get_int64(v);
	if (n < -1000 || n > 1000)
		return -1;
	*out = (int)n;
	return 0;
}

static int json_uint(json_object *v, uint64_t max, uint64_t *out)
{
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
	    (uint64_t)json_object_get_int64(v) > max)
		return -1;
	*out = (uint64_t)json_object_get_int64(v);
	return 0;
}

/* "ksm": {"enabled": true, "pages_to_scan": 100, "sleep_millisecs": 20,
 *         "rate": "max", "max_page_sharing": 256, "use_zero_pages": true,
 *         "dirty_log": true, "smart_scan": true} */
static int parse_ksm_settings(json_object *o, struct fleet_spec *spec, const char *where, char *err,
			      size_t errlen)
{
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "%s: expected an object", where);
		return -1;
	}
	struct ksm_config *k = &spec->ksm;
	json_object_object_foreach (o, key, v) {
		uint64_t n;
		int ok = 1;
		if (strcmp(key, "enabled") == 0 && json_object_is_type(v, json_type_boolean))
			spec->ksm_default = json_object_get_boolean(v);
		else if (strcmp(key, "use_zero_pages") == 0 &&
			 json_object_is_type(v, json_type_boolean))
			k->use_zero_pages = json_object_get_boolean(v);
		else if (strcmp(key, "dirty_log") == 0 && json_object_is_type(v, json_type_boolean))
			k->dirty_log = json_object_get_boolean(v);
		else if (strcmp(key, "smart_scan") == 0 &&
			 json_object_is_type(v, json_type_boolean))
			k->smart_scan = json_object_get_boolean(v);
		else if (strcmp(key, "rate") == 0 && json_object_is_type(v, json_type_string) &&
			 (strcmp(json_object_get_string(v), "max") == 0 ||
			  strcmp(json_object_get_string(v), "normal") == 0))
			k->max_rate = strcmp(json_object_get_string(v), "max") == 0;
		else if (strcmp(key, "advisor") == 0 && json_object_is_type(v, json_type_string) &&
			 (strcmp(json_object_get_string(v), "scan-time") == 0 ||
			  strcmp(json_object_get_string(v), "none") == 0))
			k->advisor = strcmp(json_object_get_string(v), "scan-time") == 0;
		else if (strcmp(key, "advisor_target_scan_time") == 0 &&
			 json_uint(v, 86400, &n) == 0 && n > 0)
			k->advisor_target_scan_ms = (unsigned)(n * 1000);
		else if (strcmp(key, "advisor_max_cpu") == 0 && json_uint(v, 100, &n) == 0 && n > 0)
			k->advisor_max_cpu = (unsigned)n;
		else if (strcmp(key, "advisor_min_pages_to_scan") == 0 &&
			 json_uint(v, 1u << 20, &n) == 0 && n > 0)
			k->advisor_min_pages = (unsigned)n;
		else if (strcmp(key, "advisor_max_pages_to_scan") == 0 &&
			 json_uint(v, 1u << 20, &n) == 0 && n > 0)
			k->advisor_max_pages = (unsigned)n;
		else if (strcmp(key, "pages_to_scan") == 0 && json_uint(v, 1u << 20, &n) == 0)
			k->pages_to_scan = (unsigned)n;
		else if (strcmp(key, "sleep_millisecs") == 0 && json_uint(v, 1u << 20, &n) == 0)
			k->sleep_millisecs = (unsigned)n;
		else if (strcmp(key, "max_page_sharing") == 0 && json_uint(v, 1u << 20, &n) == 0)
			k->max_page_sharing = (unsigned)n;
		else
			ok = 0;
		if (!ok) {
			snprintf(
				err, errlen,
				"%s: unknown key or bad value '%s' (known: enabled, pages_to_scan, "
				"sleep_millisecs, rate, max_page_sharing, use_zero_pages, "
				"dirty_log, smart_scan, advisor, advisor_target_scan_time, "
				"advisor_max_cpu, advisor_min_pages_to_scan, "
				"advisor_max_pages_to_scan)",
				where, key);
			return -1;
		}
	}
	return 0;
}

/* "swap": {"file": "/var/tmp/vmm.swap", "size": "1G", "keep": false,
 *          "zswap": "64M", "page_cluster": 8, "memory_high": "48M",
 *          "memory_max": "64M", "oom_score_adj": 0} (limits: every VM) */
static int parse_swap_settings(json_object *o, struct swap_settings *sw, const char *where,
			       char *err, size_t errlen)
{
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "%s: expected an object", where);
		return -1;
	}
	json_object_object_foreach (o, key, v) {
		char field[512];
		snprintf(field, sizeof(field), "%s.%s", where, key);
		uint64_t n;
		if (strcmp(key, "file") == 0 && json_object_is_type(v, json_type_string)) {
			free(sw->path);
			sw->path = strdup(json_object_get_string(v));
		} else if (strcmp(key, "size") == 0) {
			if (parse_size_value(v, &sw->bytes, field, err, errlen))
				return -1;
		} else if (strcmp(key, "zswap") == 0) {
			if (parse_size_value(v, &sw->zswap_bytes, field, err, errlen))
				return -1;
		} else if (strcmp(key, "memory_high") == 0) {
			if (parse_size_value(v, &sw->memory_high, field, err, errlen))
				return -1;
		} else if (strcmp(key, "memory_max") == 0) {
			if (parse_size_value(v, &sw->memory_max, field, err, errlen))
				return -1;
		} else if (strcmp(key, "keep") == 0 && json_object_is_type(v, json_type_boolean)) {
			sw->keep = json_object_get_boolean(v);
		} else if (strcmp(key, "page_cluster") == 0 && json_uint(v, 64, &n) == 0) {
			sw->page_cluster = (unsigned)n;
		} else if (strcmp(key, "oom_score_adj") == 0 &&
			   json_object_is_type(v, json_type_int)) {
			if (json_oom_score_adj(v, &sw->oom_score_adj)) {
				snprintf(err, errlen, "%s.%s: must be between -1000 and 1000",
					 where, key);
				return -1;
			}
		} else {
			snprintf(
				err, errlen,
				"%s: unknown key or bad value '%s' (known: file, size, keep, zswap, "
				"page_cluster, memory_high, memory_max, oom_score_adj)",
				where, key);
			return -1;
		}
	}
	return 0;
}

/* "cgroups": {"tenants": {"memory.max": "1G"},
 *             "tenants/a": {"memory.high": "400M", "memory.oom.group": true}}
 * Keys are paths below the fleet's root cgroup; groups name theirs with
 * "cgroup". */
static int parse_cgroups(json_object *o, struct fleet_spec *spec, const char *where, char *err,
			 size_t errlen)
{
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "%s: expected an object of cgroup paths", where);
		return -1;
	}
	json_object_object_foreach (o, path, settings) {
		char at[300];
		snprintf(at, sizeof(at), "%s.%s", where, path);
		char why[200];
		struct cgroup_spec *cg = fleet_spec_cgroup(spec, path, why, sizeof(why));
		if (!cg) {
			snprintf(err, errlen, "%s: %s", at, why);
			return -1;
		}
		if (!json_object_is_type(settings, json_type_object)) {
			snprintf(err, errlen, "%s: expected an object of settings", at);
			return -1;
		}
		json_object_object_foreach (settings, key, v) {
			char field[400];
			snprintf(field, sizeof(field), "%s.%s", at, key);
			if (strcmp(key, "memory.min") == 0) {
				if (parse_size_value(v, &cg->memory_min, field, err, errlen))
					return -1;
			} else if (strcmp(key, "memory.low") == 0) {
				if (parse_size_value(v, &cg->memory_low, field, err, errlen))
					return -1;
			} else if (strcmp(key, "memory.high") == 0) {
				if (parse_size_value(v, &cg->memory_high, field, err, errlen))
					return -1;
			} else if (strcmp(key, "memory.swap.max") == 0) {
				if (parse_size_value(v, &cg->memory_swap_max, field, err, errlen))
					return -1;
				cg->memory_swap_max_set = true;
			} else if (strcmp(key, "memory.max") == 0) {
				if (parse_size_value(v, &cg->memory_max, field, err, errlen))
					return -1;
			} else if (strcmp(key, "memory.oom.group") == 0 &&
				   json_object_is_type(v, json_type_boolean)) {
				cg->oom_group = json_object_get_boolean(v);
			} else {
				snprintf(err, errlen,
					 "%s: unknown key or bad value '%s' (known: memory.min, "
					 "memory.low, memory.high, memory.max, memory.swap.max, "
					 "memory.oom.group)",
					 at, key);
				return -1;
			}
		}
	}
	return 0;
}

static int parse_group(json_object *g, unsigned index, uint64_t default_mem, const char *origin,
		       struct fleet_spec *spec, char *err, size_t errlen)
{
	char where[128];
	snprintf(where, sizeof(where), "%s: groups[%u]", origin, index);
	if (!json_object_is_type(g, json_type_object)) {
		snprintf(err, errlen, "%s: expected an object", where);
		return -1;
	}
	char name[64];
	snprintf(name, sizeof(name), "group%u", index);
	const char *guest = NULL;
	char *args = NULL;
	uint64_t mem = default_mem;
	int64_t count = 1;
	int ksm = -1;
	uint64_t high = 0, max = 0;
	int adj = 0;
	bool adj_set = false;
	const char *image = NULL, *cgroup = NULL;
	int rc = -1;

	json_object_object_foreach (g, key, v) {
		char field[200];
		snprintf(field, sizeof(field), "%s.%s", where, key);
		if (strcmp(key, "name") == 0 && json_object_is_type(v, json_type_string)) {
			snprintf(name, sizeof(name), "%s", json_object_get_string(v));
		} else if (strcmp(key, "guest") == 0 && json_object_is_type(v, json_type_string)) {
			guest = json_object_get_string(v);
		} else if (strcmp(key, "args") == 0) {
			free(args);
			args = parse_args_value(v, field, err, errlen);
			if (!args)
				goto out;
		} else if (strcmp(key, "mem") == 0) {
			if (parse_size_value(v, &mem, field, err, errlen))
				goto out;
		} else if (strcmp(key, "ksm") == 0 && json_object_is_type(v, json_type_boolean)) {
			ksm = json_object_get_boolean(v);
		} else if (strcmp(key, "memory_high") == 0) {
			if (parse_size_value(v, &high, field, err, errlen))
				goto out;
		} else if (strcmp(key, "memory_max") == 0) {
			if (parse_size_value(v, &max, field, err, errlen))
				goto out;
		} else if (strcmp(key, "oom_score_adj") == 0 &&
			   json_object_is_type(v, json_type_int)) {
			if (json_oom_score_adj(v, &adj)) {
				snprintf(err, errlen, "%s: must be between -1000 and 1000", field);
				goto out;
			}
			adj_set = true;
		} else if (strcmp(key, "memory_image") == 0 &&
			   json_object_is_type(v, json_type_string)) {
			image = json_object_get_string(v);
		} else if (strcmp(key, "cgroup") == 0 && json_object_is_type(v, json_type_string)) {
			cgroup = json_object_get_string(v);
			char why[200];
			if (strcmp(cgroup, "/") != 0 &&
			    !fleet_spec_cgroup_path_ok(cgroup, why, sizeof(why))) {
				snprintf(err, errlen, "%s: %s", field, why);
				goto out;
			}
		} else if (strcmp(key, "count") == 0 && json_object_is_type(v, json_type_int)) {
			count = json_object_get_int64(v);
			if (count < 1 || count > FLEET_MAX_VMS) {
				snprintf(err, errlen, "%s: must be between 1 and %d", field,
					 FLEET_MAX_VMS);
				goto out;
			}
		} else if (strcmp(key, "name") == 0 || strcmp(key, "guest") == 0 ||
			   strcmp(key, "count") == 0) {
			snprintf(err, errlen, "%s: wrong type (%s)", field,
				 strcmp(key, "count") == 0 ? "expected a number"
							   : "expected a string");
			goto out;
		} else {
			snprintf(
				err, errlen,
				"%s: unknown key '%s' or a value of the wrong type (known: name, guest, "
				"args, mem, count, ksm, memory_high, memory_max, oom_score_adj, "
				"memory_image, cgroup)",
				where, key);
			goto out;
		}
	}
	if (!guest) {
		snprintf(err, errlen, "%s: \"guest\" is required", where);
		goto out;
	}
	struct vm_group_spec *group =
		fleet_spec_add_group(spec, name, guest, args ? args : "", mem, (unsigned)count);
	if (!group) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	group->ksm = ksm;
	group->memory_high = high;
	group->memory_max = max;
	group->oom_score_adj = adj;
	group->oom_score_adj_set = adj_set;
	if (image && !(group->memory_image = strdup(image))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (cgroup && strcmp(cgroup, "/") != 0) {
		if (*cgroup == '/')
			cgroup++;
		if (!(group->cgroup = strdup(cgroup))) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	rc = 0;
out:
	free(args);
	return rc;
}

static int fleet_config_parse_text(const char *text, const char *origin, struct fleet_spec *spec,
				   char *err, size_t errlen)
{
	json_tokener *tok = json_tokener_new();
	json_object *root = json_tokener_parse_ex(tok, text, (int)strlen(text) + 1);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	if (!root || jerr != json_tokener_success) {
		size_t offset = json_tokener_get_parse_end(tok);
		unsigned line = 1;
		for (size_t i = 0; i < offset && text[i]; i++)
			line += text[i] == '\n';
		snprintf(err, errlen, "%s:%u: invalid JSON: %s", origin, line,
			 json_tokener_error_desc(jerr));
		json_tokener_free(tok);
		json_object_put(root);
		return -1;
	}
	json_tokener_free(tok);

	int rc = -1;
	uint64_t default_mem = FLEET_DEFAULT_MEM;
	json_object *groups = NULL;
	if (!json_object_is_type(root, json_type_object)) {
		snprintf(err, errlen, "%s: expected a JSON object at the top level", origin);
		goto out;
	}
	json_object_object_foreach (root, key, v) {
		char field[200];
		snprintf(field, sizeof(field), "%s: %s", origin, key);
		if (strcmp(key, "groups") == 0) {
			groups = v;
		} else if (strcmp(key, "mem") == 0) {
			if (parse_size_value(v, &default_mem, field, err, errlen))
				goto out;
		} else if (strcmp(key, "memory") == 0) {
			if (parse_memory_settings(v, &spec->memory, field, err, errlen))
				goto out;
		} else if (strcmp(key, "ksm") == 0) {
			if (parse_ksm_settings(v, spec, field, err, errlen))
				goto out;
		} else if (strcmp(key, "swap") == 0) {
			if (parse_swap_settings(v, &spec->swap, field, err, errlen))
				goto out;
		} else if (strcmp(key, "cgroups") == 0) {
			if (parse_cgroups(v, spec, field, err, errlen))
				goto out;
		} else if (strcmp(key, "accel") == 0) {
			if (!json_object_is_type(v, json_type_string) ||
			    accel_choice_parse(json_object_get_string(v), &spec->accel)) {
				snprintf(err, errlen, "%s: expected \"auto\", \"kvm\" or \"tcg\"",
					 field);
				goto out;
			}
		} else {
			snprintf(err, errlen,
				 "%s: unknown top-level key '%s' (known: groups, mem, memory, ksm, "
				 "swap, cgroups, accel)",
				 origin, key);
			goto out;
		}
	}
	if (!groups || !json_object_is_type(groups, json_type_array) ||
	    json_object_array_length(groups) == 0) {
		snprintf(err, errlen, "%s: \"groups\" must be a non-empty array", origin);
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(groups); i++)
		if (parse_group(json_object_array_get_idx(groups, i), (unsigned)i, default_mem,
				origin, spec, err, errlen))
			goto out;
	rc = 0;
out:
	json_object_put(root);
	return rc;
}

int fleet_config_load(const char *path, struct fleet_spec *spec, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot read config %s: %s", path, strerror(errno));
		return -1;
	}
	char *text = malloc(CONFIG_MAX_BYTES + 1);
	size_t n = text ? fread(text, 1, CONFIG_MAX_BYTES + 1, f) : 0;
	fclose(f);
	if (!text || n > CONFIG_MAX_BYTES) {
		snprintf(err, errlen, "config %s is larger than 1 MiB", path);
		free(text);
		return -1;
	}
	text[n] = 0;
	int rc = fleet_config_parse(text, path, spec, err, errlen);
	free(text);
	return rc;
}

int fleet_config_parse(const char *text, const char *origin, struct fleet_spec *spec, char *err,
		       size_t errlen)
{
	int rc = fleet_config_parse_text(text, origin, spec, err, errlen);
	if (rc)
		message_one_line(err);
	return rc;
}
