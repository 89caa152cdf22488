/*
 * fleet_cgroups.h - the fleet's cgroup tree (mm/memcg.h), built from the
 * spec before any VM exists and freed after the last one.
 *
 * Entry 0 is the root ("/"): every VM is under it, so its memory.current is
 * what the whole fleet's guests hold. Then every cgroup the spec gives
 * settings for or a group names, with the parents a path implies, each
 * after its parent. Each VM is a leaf below its group's cgroup (made by mm
 * with the VM). The tree's shape does not change while VMs run; reports and
 * the control socket look cgroups up by path.
 */
#ifndef VMM_FLEET_CGROUPS_H
#define VMM_FLEET_CGROUPS_H

#include <stddef.h>

#include "fleet_spec.h"
#include "mm/memcg.h"

struct fleet_cgroup {
	char *path; /* "/" for the root, "/a/b" below */
	struct memcg *memcg;
	unsigned vms; /* VMs directly or indirectly under it */
};

struct fleet_cgroups {
	struct fleet_cgroup *all; /* [0] is the root */
	unsigned n;
};

/* Builds the tree of `spec`; 0, or -1 with err set. */
int fleet_cgroups_build(struct fleet_cgroups *t, const struct fleet_spec *spec, char *err,
			size_t errlen);
/* The cgroup at `path` ("/", "/a/b" or "a/b"), or NULL. */
struct fleet_cgroup *fleet_cgroups_find(const struct fleet_cgroups *t, const char *path);
/* The cgroup a group's VMs go under. */
struct memcg *fleet_cgroups_of_group(const struct fleet_cgroups *t, const struct vm_group_spec *g);
/* Frees the tree, children first (after every VM is gone). */
void fleet_cgroups_destroy(struct fleet_cgroups *t);

#endif
