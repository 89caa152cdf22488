/*
 * fleet_cgroups.c - the fleet's cgroup tree (fleet_cgroups.h).
 */
#include "fleet_cgroups.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fleet_cgroup *fleet_cgroups_find(const struct fleet_cgroups *t, const char *path)
{
	if (!t->n)
		return NULL;
	if (*path == '/')
		path++;
	for (unsigned i = 0; i < t->n; i++)
		if (strcmp(t->all[i].path + 1, path) == 0)
			return &t->all[i];
	return NULL;
}

static struct fleet_cgroup *add(struct fleet_cgroups *t, const char *path, struct memcg *parent,
				const char *name, const struct cgroup_spec *cs)
{
	struct fleet_cgroup *all = realloc(t->all, (t->n + 1) * sizeof(*t->all));
	if (!all)
		return NULL;
	t->all = all;
	struct fleet_cgroup *cg = &all[t->n];
	memset(cg, 0, sizeof(*cg));
	size_t len = strlen(path) + 2;
	cg->path = malloc(len);
	cg->memcg = memcg_create(parent, name, cs ? cs->memory_high / 4096 : 0,
				 cs ? cs->memory_max / 4096 : 0);
	if (!cg->path || !cg->memcg) {
		free(cg->path);
		memcg_destroy(cg->memcg);
		return NULL;
	}
	snprintf(cg->path, len, "/%s", path);
	if (cs) {
		memcg_set_oom_group(cg->memcg, cs->oom_group);
		page_counter_set_min(&cg->memcg->counter, cs->memory_min / 4096);
		page_counter_set_low(&cg->memcg->counter, cs->memory_low / 4096);
		if (cs->memory_swap_max_set)
			page_counter_set_max(&cg->memcg->swap, cs->memory_swap_max / 4096);
	}
	t->n++;
	return cg;
}

/* The cgroup at `path` (no leading '/'), made with its missing parents. */
static struct fleet_cgroup *make(struct fleet_cgroups *t, const struct fleet_spec *spec,
				 const char *path)
{
	struct fleet_cgroup *cg = fleet_cgroups_find(t, path);
	if (cg)
		return cg;
	const char *slash = strrchr(path, '/');
	struct fleet_cgroup *parent;
	if (slash) {
		char parent_path[512];
		snprintf(parent_path, sizeof(parent_path), "%.*s", (int)(slash - path), path);
		parent = make(t, spec, parent_path);
	} else {
		parent = &t->all[0];
	}
	if (!parent)
		return NULL;
	const struct cgroup_spec *cs = NULL;
	for (unsigned i = 0; i < spec->ncgroups; i++)
		if (strcmp(spec->cgroups[i].path, path) == 0)
			cs = &spec->cgroups[i];
	struct memcg *parent_memcg = parent->memcg; /* add() may move the array */
	return add(t, path, parent_memcg, slash ? slash + 1 : path, cs);
}

int fleet_cgroups_build(struct fleet_cgroups *t, const struct fleet_spec *spec, char *err,
			size_t errlen)
{
	memset(t, 0, sizeof(*t));
	if (!add(t, "", NULL, "", NULL))
		goto nomem;
	for (unsigned i = 0; i < spec->ncgroups; i++)
		if (!make(t, spec, spec->cgroups[i].path))
			goto nomem;
	for (unsigned g = 0; g < spec->ngroups; g++) {
		const struct vm_group_spec *group = &spec->groups[g];
		if (group->cgroup && !make(t, spec, group->cgroup))
			goto nomem;
		struct memcg *cg = fleet_cgroups_of_group(t, group);
		for (unsigned i = 0; i < t->n; i++)
			if (memcg_is_descendant(cg, t->all[i].memcg))
				t->all[i].vms += group->count;
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory building the cgroup tree");
	fleet_cgroups_destroy(t);
	return -1;
}

struct memcg *fleet_cgroups_of_group(const struct fleet_cgroups *t, const struct vm_group_spec *g)
{
	struct fleet_cgroup *cg = g->cgroup ? fleet_cgroups_find(t, g->cgroup) : NULL;
	return cg ? cg->memcg : t->n ? t->all[0].memcg : NULL;
}

void fleet_cgroups_destroy(struct fleet_cgroups *t)
{
	for (unsigned i = t->n; i-- > 0;) {
		memcg_destroy(t->all[i].memcg);
		free(t->all[i].path);
	}
	free(t->all);
	memset(t, 0, sizeof(*t));
}
