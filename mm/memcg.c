/*
 * memcg.c - memory cgroups (memcg.h): the tree, hierarchical events, and
 * which cgroup a limit or an OOM concerns.
 */
#include "memcg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t limit(uint64_t pages)
{
	return pages ? pages : PAGE_COUNTER_MAX;
}

struct memcg *memcg_create(struct memcg *parent, const char *name, uint64_t high_pages,
			   uint64_t max_pages)
{
	if (strlen(name) >= MEMCG_NAME_MAX)
		return NULL;
	struct memcg *cg = calloc(1, sizeof(*cg));
	if (!cg)
		return NULL;
	snprintf(cg->name, sizeof(cg->name), "%s", name);
	cg->parent = parent;
	page_counter_init(&cg->counter, parent ? &parent->counter : NULL);
	page_counter_init(&cg->swap, parent ? &parent->swap : NULL);
	page_counter_set_high(&cg->counter, limit(high_pages));
	page_counter_set_max(&cg->counter, limit(max_pages));
	psi_group_init(&cg->psi, parent ? &parent->psi : NULL, psi_now());
	return cg;
}

void memcg_destroy(struct memcg *cg)
{
	if (!cg)
		return;
	page_counter_release(&cg->counter);
	page_counter_release(&cg->swap);
	psi_group_exit(&cg->psi, psi_now());
	free(cg);
}

bool memcg_is_descendant(const struct memcg *cg, const struct memcg *ancestor)
{
	for (; cg; cg = cg->parent)
		if (cg == ancestor)
			return true;
	return false;
}

void memcg_path(const struct memcg *cg, char *buf, size_t len)
{
	const struct memcg *chain[32];
	unsigned n = 0;
	for (; cg && cg->parent && n < 32; cg = cg->parent)
		chain[n++] = cg;
	size_t at = 0;
	buf[0] = '\0';
	if (!n)
		snprintf(buf, len, "/");
	while (n-- && at < len) {
		int w = snprintf(buf + at, len - at, "/%s", chain[n]->name);
		if (w < 0)
			break;
		at += (size_t)w;
	}
}

static uint64_t *event_field(struct memory_events *e, enum memcg_event ev)
{
	return (uint64_t *)((char *)e + (size_t)ev);
}

void memcg_event(struct memcg *cg, enum memcg_event ev)
{
	if (!cg)
		return;
	__atomic_add_fetch(event_field(&cg->events_local, ev), 1, __ATOMIC_RELAXED);
	for (; cg; cg = cg->parent)
		__atomic_add_fetch(event_field(&cg->events, ev), 1, __ATOMIC_RELAXED);
}

static void read_events(const struct memory_events *from, struct memory_events *to)
{
	to->low = __atomic_load_n(&from->low, __ATOMIC_RELAXED);
	to->high = __atomic_load_n(&from->high, __ATOMIC_RELAXED);
	to->max = __atomic_load_n(&from->max, __ATOMIC_RELAXED);
	to->oom = __atomic_load_n(&from->oom, __ATOMIC_RELAXED);
	to->oom_kill = __atomic_load_n(&from->oom_kill, __ATOMIC_RELAXED);
	to->oom_group_kill = __atomic_load_n(&from->oom_group_kill, __ATOMIC_RELAXED);
}

void memcg_read_events(const struct memcg *cg, struct memory_events *hier,
		       struct memory_events *local)
{
	if (hier)
		read_events(&cg->events, hier);
	if (local)
		read_events(&cg->events_local, local);
}

static struct memcg *of_counter(struct page_counter *c)
{
	return c ? (struct memcg *)((char *)c - offsetof(struct memcg, counter)) : NULL;
}

struct memcg *memcg_try_charge(struct memcg *cg, uint64_t n)
{
	return cg ? of_counter(page_counter_try_charge(&cg->counter, n)) : NULL;
}

static struct memcg *of_swap_counter(struct page_counter *c)
{
	return c ? (struct memcg *)((char *)c - offsetof(struct memcg, swap)) : NULL;
}

struct memcg *memcg_try_charge_swap(struct memcg *cg, uint64_t n)
{
	return cg ? of_swap_counter(page_counter_try_charge(&cg->swap, n)) : NULL;
}

void memcg_swap_event(struct memcg *cg, bool at_max)
{
	for (; cg; cg = cg->parent) {
		if (at_max)
			__atomic_add_fetch(&cg->swap_max_events, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&cg->swap_fail_events, 1, __ATOMIC_RELAXED);
	}
}

struct memcg *memcg_over_max(struct memcg *cg, uint64_t more)
{
	return cg ? of_counter(page_counter_over_max(&cg->counter, more)) : NULL;
}

uint64_t memcg_high_excess(struct memcg *cg, struct memcg **worst)
{
	struct page_counter *c = NULL;
	uint64_t excess = cg ? page_counter_high_excess(&cg->counter, &c) : 0;
	if (worst)
		*worst = of_counter(c);
	return excess;
}

struct memcg *memcg_oom_group(struct memcg *victim, const struct memcg *domain)
{
	struct memcg *group = NULL;
	for (struct memcg *cg = victim; cg; cg = cg->parent) {
		if (memcg_oom_group_set(cg))
			group = cg;
		if (cg == domain)
			break;
	}
	return group;
}

void memcg_stall(struct memcg *cg, int delta)
{
	if (cg)
		psi_stall(&cg->psi, &cg->member, delta, psi_now());
}

void memcg_running(struct memcg *cg, bool running)
{
	if (cg)
		psi_running(&cg->psi, &cg->member, running, psi_now());
}

void memcg_pressure(struct memcg *cg, struct psi_stats *out)
{
	psi_read(&cg->psi, psi_now(), out);
}

void memcg_protection(struct memcg *cg, const struct memcg *target, uint64_t *emin, uint64_t *elow)
{
	page_counter_protection(&cg->counter, target ? &target->counter : NULL, emin, elow);
}
