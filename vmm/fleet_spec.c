/*
 * fleet_spec.c - building and checking a fleet description.
 */
#include "fleet_spec.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest_abi.h"
#include "message.h"
#include "mm/memcg.h"

struct vm_group_spec *fleet_spec_add_group(struct fleet_spec *spec, const char *name,
					   const char *guest, const char *args, uint64_t mem_bytes,
					   unsigned count)
{
	struct vm_group_spec *groups =
		realloc(spec->groups, (spec->ngroups + 1) * sizeof(*spec->groups));
	if (!groups)
		return NULL;
	spec->groups = groups;
	struct vm_group_spec *g = &groups[spec->ngroups++];
	memset(g, 0, sizeof(*g));
	g->name = strdup(name ? name : "vm");
	g->guest = strdup(guest ? guest : "");
	g->args = strdup(args ? args : "");
	g->mem_bytes = mem_bytes;
	g->count = count;
	g->ksm = -1;
	return g;
}

void memory_settings_default(struct memory_settings *m)
{
	memset(m, 0, sizeof(*m));
	m->backing = BACKING_POOL;
	m->fault_around_bytes = FLEET_DEFAULT_FAULT_AROUND;
	m->fault_ahead_bytes = FLEET_DEFAULT_FAULT_AHEAD;
	m->tcg_mmu = TCG_MMU_OWNED;
	m->fault_spin_us = FLEET_DEFAULT_FAULT_SPIN_US;
}

void fleet_spec_init(struct fleet_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	memory_settings_default(&spec->memory);
	ksm_config_default(&spec->ksm);
	swap_settings_default(&spec->swap);
}

void swap_settings_default(struct swap_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->page_cluster = 8;
}

unsigned memory_settings_fault_around_pages(const struct memory_settings *m)
{
	if (m->thp)
		return 512;
	return (unsigned)(m->fault_around_bytes / 4096);
}

bool fleet_spec_group_ksm(const struct fleet_spec *spec, const struct vm_group_spec *group)
{
	return group->ksm < 0 ? spec->ksm_default : group->ksm != 0;
}

bool fleet_spec_any_ksm(const struct fleet_spec *spec)
{
	for (unsigned i = 0; i < spec->ngroups; i++)
		if (fleet_spec_group_ksm(spec, &spec->groups[i]))
			return true;
	return false;
}

uint64_t fleet_spec_group_high(const struct fleet_spec *spec, const struct vm_group_spec *g)
{
	return g->memory_high ? g->memory_high : spec->swap.memory_high;
}

uint64_t fleet_spec_group_max(const struct fleet_spec *spec, const struct vm_group_spec *g)
{
	return g->memory_max ? g->memory_max : spec->swap.memory_max;
}

int fleet_spec_group_oom_score_adj(const struct fleet_spec *spec, const struct vm_group_spec *g)
{
	return g->oom_score_adj_set ? g->oom_score_adj : spec->swap.oom_score_adj;
}

const char *fleet_spec_group_memory_image(const struct fleet_spec *spec,
					  const struct vm_group_spec *g)
{
	return g->memory_image ? g->memory_image : spec->memory_image;
}

bool fleet_spec_cgroup_path_ok(const char *path, char *err, size_t errlen)
{
	const char *p = *path == '/' ? path + 1 : path;
	do {
		size_t n = strcspn(p, "/");
		bool ok = n > 0 && n < MEMCG_NAME_MAX && strncmp(p, ".", n) != 0 &&
			  strncmp(p, "..", n) != 0;
		for (size_t i = 0; ok && i < n; i++)
			ok = isalnum((unsigned char)p[i]) || strchr("_-.", p[i]);
		if (!ok) {
			snprintf(err, errlen,
				 "bad cgroup path '%s': each component of 1 to %d letters, "
				 "digits, '_', '-' or '.', not '.' or '..', separated by '/'",
				 path, MEMCG_NAME_MAX - 1);
			return false;
		}
		p += n;
	} while (*p++ == '/');
	return true;
}

struct cgroup_spec *fleet_spec_cgroup(struct fleet_spec *spec, const char *path, char *err,
				      size_t errlen)
{
	if (!fleet_spec_cgroup_path_ok(path, err, errlen))
		return NULL;
	if (*path == '/')
		path++;
	for (unsigned i = 0; i < spec->ncgroups; i++)
		if (strcmp(spec->cgroups[i].path, path) == 0)
			return &spec->cgroups[i];
	struct cgroup_spec *all =
		realloc(spec->cgroups, (spec->ncgroups + 1) * sizeof(*spec->cgroups));
	if (!all) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	spec->cgroups = all;
	struct cgroup_spec *cg = &all[spec->ncgroups];
	memset(cg, 0, sizeof(*cg));
	if (!(cg->path = strdup(path))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	spec->ncgroups++;
	return cg;
}

bool fleet_spec_needs_reclaim(const struct fleet_spec *spec)
{
	if (spec->swap.path)
		return true;
	for (unsigned i = 0; i < spec->ncgroups; i++)
		if (spec->cgroups[i].memory_high || spec->cgroups[i].memory_max)
			return true;
	for (unsigned i = 0; i < spec->ngroups; i++)
		if (fleet_spec_group_high(spec, &spec->groups[i]) ||
		    fleet_spec_group_max(spec, &spec->groups[i]))
			return true;
	return false;
}

unsigned fleet_spec_vm_count(const struct fleet_spec *spec)
{
	unsigned n = 0;
	for (unsigned i = 0; i < spec->ngroups; i++)
		n += spec->groups[i].count;
	return n;
}

static int fleet_spec_check(const struct fleet_spec *spec, char *err, unsigned long errlen)
{
	if (spec->ngroups == 0) {
		snprintf(err, errlen, "no VMs to run");
		return -1;
	}
	unsigned long total = 0;
	for (unsigned i = 0; i < spec->ngroups; i++) {
		const struct vm_group_spec *g = &spec->groups[i];
		if (g->count == 0) {
			snprintf(err, errlen, "group '%s': the VM count must be at least 1",
				 g->name);
			return -1;
		}
		if (!g->guest[0]) {
			snprintf(err, errlen, "group '%s': no guest given", g->name);
			return -1;
		}
		if (g->mem_bytes < GUEST_MIN_MEM_BYTES || g->mem_bytes > GUEST_MAX_MEM_BYTES) {
			snprintf(err, errlen,
				 "group '%s': guest memory must be between %llu MiB and %llu GiB",
				 g->name, GUEST_MIN_MEM_BYTES >> 20, GUEST_MAX_MEM_BYTES >> 30);
			return -1;
		}
		if (g->mem_bytes % (2ull << 20)) {
			snprintf(err, errlen,
				 "group '%s': guest memory must be a multiple of 2 MiB", g->name);
			return -1;
		}
		if (strlen(g->args) >= GUEST_ARGS_MAX) {
			snprintf(err, errlen, "group '%s': guest arguments longer than %d bytes",
				 g->name, GUEST_ARGS_MAX - 1);
			return -1;
		}
		total += g->count;
	}
	const struct memory_settings *m = &spec->memory;
	uint64_t fa = m->fault_around_bytes;
	if (fa < 4096 || fa > (2ull << 20) || (fa & (fa - 1))) {
		snprintf(err, errlen,
			 "fault-around must be a power of two between 4K (off) and 2M, not %llu "
			 "bytes",
			 (unsigned long long)fa);
		return -1;
	}
	uint64_t ahead = m->fault_ahead_bytes;
	if (ahead && (ahead < 4096 || ahead > (2ull << 20) || (ahead & (ahead - 1)))) {
		snprintf(err, errlen,
			 "fault-ahead must be off or a power of two between 4K and 2M, not %llu "
			 "bytes",
			 (unsigned long long)ahead);
		return -1;
	}
	if (m->host_mem_bytes && (m->host_mem_bytes % 4096 || m->host_mem_bytes < (4ull << 20))) {
		snprintf(err, errlen,
			 "the host memory pool must be a multiple of 4K and at least 4M");
		return -1;
	}
	if (m->backing == BACKING_ANON && m->host_mem_bytes) {
		snprintf(err, errlen,
			 "--host-mem sizes the frame pool; it does not apply to the "
			 "anonymous backing");
		return -1;
	}
	if (m->backing == BACKING_ANON && fleet_spec_any_ksm(spec)) {
		snprintf(err, errlen,
			 "KSM merges frames of the VMM's pool; it does not work with "
			 "--backing anon");
		return -1;
	}
	if (spec->ksm.pages_to_scan == 0 || spec->ksm.max_page_sharing < 2) {
		snprintf(err, errlen, "KSM needs pages_to_scan >= 1 and max_page_sharing >= 2");
		return -1;
	}
	if (fleet_spec_needs_reclaim(spec) && m->backing == BACKING_ANON) {
		snprintf(err, errlen,
			 "swap and memory limits need the pool backing, not --backing anon");
		return -1;
	}
	if (spec->swap.bytes && !spec->swap.path) {
		snprintf(err, errlen, "--swap-size given without --swap FILE");
		return -1;
	}
	if (spec->swap.bytes && (spec->swap.bytes % 4096 || spec->swap.bytes < (1ull << 20))) {
		snprintf(err, errlen, "the swap size must be a multiple of 4K and at least 1M");
		return -1;
	}
	for (unsigned i = 0; i < spec->ngroups; i++) {
		const char *image = fleet_spec_group_memory_image(spec, &spec->groups[i]);
		struct stat st;
		if (!image)
			continue;
		if (stat(image, &st) || access(image, R_OK)) {
			snprintf(err, errlen, "memory image %s: %s", image, strerror(errno));
			return -1;
		}
		if (!S_ISREG(st.st_mode)) {
			snprintf(err, errlen, "memory image %s is not a regular file", image);
			return -1;
		}
		if ((uint64_t)st.st_size > spec->groups[i].mem_bytes) {
			snprintf(
				err, errlen,
				"memory image %s is %llu MiB, larger than group '%s''s %llu MiB of "
				"guest memory",
				image, (unsigned long long)((st.st_size + (1 << 20) - 1) >> 20),
				spec->groups[i].name,
				(unsigned long long)(spec->groups[i].mem_bytes >> 20));
			return -1;
		}
	}
	if (spec->swap.zswap_bytes && !spec->swap.path) {
		snprintf(err, errlen,
			 "--zswap caches pages on their way to swap: it needs --swap FILE");
		return -1;
	}
	for (unsigned i = 0; i < spec->ngroups; i++) {
		const struct vm_group_spec *g = &spec->groups[i];
		uint64_t high = fleet_spec_group_high(spec, g), max = fleet_spec_group_max(spec, g);
		int adj = fleet_spec_group_oom_score_adj(spec, g);
		if ((high && high % 4096) || (max && max % 4096)) {
			snprintf(err, errlen,
				 "group '%s': memory.high and memory.max must be multiples of 4K",
				 g->name);
			return -1;
		}
		if (high && max && high > max) {
			snprintf(err, errlen, "group '%s': memory.high is above memory.max",
				 g->name);
			return -1;
		}
		if (adj < -1000 || adj > 1000) {
			snprintf(err, errlen,
				 "group '%s': oom_score_adj must be between -1000 and 1000",
				 g->name);
			return -1;
		}
	}
	if (total > FLEET_MAX_VMS) {
		snprintf(err, errlen, "%lu VMs requested; at most %d are supported", total,
			 FLEET_MAX_VMS);
		return -1;
	}
	return 0;
}

void fleet_spec_free(struct fleet_spec *spec)
{
	for (unsigned i = 0; i < spec->ngroups; i++) {
		free(spec->groups[i].name);
		free(spec->groups[i].guest);
		free(spec->groups[i].args);
		free(spec->groups[i].memory_image);
		free(spec->groups[i].cgroup);
	}
	for (unsigned i = 0; i < spec->ncgroups; i++)
		free(spec->cgroups[i].path);
	free(spec->cgroups);
	free(spec->memory_image);
	free(spec->groups);
	free(spec->config_path);
	free(spec->json_path);
	free(spec->name);
	free(spec->swap.path);
	memset(spec, 0, sizeof(*spec));
}

int fleet_spec_validate(const struct fleet_spec *spec, char *err, unsigned long errlen)
{
	int rc = fleet_spec_check(spec, err, errlen);
	if (rc)
		message_one_line(err);
	return rc;
}

const char *tcg_mmu_name(enum tcg_mmu_choice choice)
{
	return choice == TCG_MMU_HOST ? "host" : "owned";
}

int tcg_mmu_parse(const char *text, enum tcg_mmu_choice *out)
{
	if (strcmp(text, "owned") == 0)
		*out = TCG_MMU_OWNED;
	else if (strcmp(text, "host") == 0)
		*out = TCG_MMU_HOST;
	else
		return -1;
	return 0;
}
