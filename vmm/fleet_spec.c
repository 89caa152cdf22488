/*
 * fleet_spec.c - building and checking a fleet description.
 */
#include "fleet_spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest_abi.h"

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
	m->fault_spin_us = FLEET_DEFAULT_FAULT_SPIN_US;
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

unsigned fleet_spec_vm_count(const struct fleet_spec *spec)
{
	unsigned n = 0;
	for (unsigned i = 0; i < spec->ngroups; i++)
		n += spec->groups[i].count;
	return n;
}

int fleet_spec_validate(const struct fleet_spec *spec, char *err, unsigned long errlen)
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
	}
	free(spec->groups);
	free(spec->config_path);
	free(spec->json_path);
	memset(spec, 0, sizeof(*spec));
}
