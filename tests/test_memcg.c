/* test_memcg.c - hierarchical page counters and memory cgroups (mm/page_counter.h,
 * mm/memcg.h); their use by reclaim and the OOM killer is in test_reclaim.c. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "mm/memcg.h"
#include "mm/page_counter.h"

#define THREADS 2
#define ROUNDS 200000

Test(page_counter, a_charge_reaches_every_ancestor_and_raises_the_peaks)
{
	struct page_counter root, mid, leaf, other;
	page_counter_init(&root, NULL);
	page_counter_init(&mid, &root);
	page_counter_init(&leaf, &mid);
	page_counter_init(&other, &root);
	page_counter_charge(&leaf, 10);
	page_counter_charge(&other, 5);
	page_counter_charge(&leaf, -4);
	cr_assert_eq(page_counter_read(&leaf), 6);
	cr_assert_eq(page_counter_read(&mid), 6);
	cr_assert_eq(page_counter_read(&root), 11);
	cr_assert_eq(page_counter_peak(&leaf), 10);
	cr_assert_eq(page_counter_peak(&root), 15);
	page_counter_reset_peak(&root);
	cr_assert_eq(page_counter_peak(&root), 11);
	page_counter_charge(NULL, 3); /* no counter: nothing counted, no crash */
}

Test(page_counter, over_max_names_the_lowest_counter_at_its_limit)
{
	struct page_counter root, mid, leaf;
	page_counter_init(&root, NULL);
	page_counter_init(&mid, &root);
	page_counter_init(&leaf, &mid);
	page_counter_set_max(&root, 100);
	page_counter_set_max(&mid, 50);
	page_counter_charge(&leaf, 45);
	cr_assert_null(page_counter_over_max(&leaf, 5), "50 is allowed");
	cr_assert_eq(page_counter_over_max(&leaf, 6), &mid);
	page_counter_set_max(&leaf, 40); /* lowered below usage */
	cr_assert_eq(page_counter_over_max(&leaf, 1), &leaf);
	cr_assert_eq(page_counter_over_max(&leaf, 0), &leaf, "already above");
	page_counter_set_max(&leaf, PAGE_COUNTER_MAX);
	page_counter_set_max(&mid, PAGE_COUNTER_MAX);
	cr_assert_eq(page_counter_over_max(&leaf, 56), &root);
}

Test(page_counter, high_excess_is_the_largest_on_the_path)
{
	struct page_counter root, mid, leaf, *worst;
	page_counter_init(&root, NULL);
	page_counter_init(&mid, &root);
	page_counter_init(&leaf, &mid);
	page_counter_charge(&leaf, 30);
	cr_assert_eq(page_counter_high_excess(&leaf, &worst), 0);
	cr_assert_null(worst);
	page_counter_set_high(&leaf, 25);
	page_counter_set_high(&root, 10);
	cr_assert_eq(page_counter_high_excess(&leaf, &worst), 20);
	cr_assert_eq(worst, &root);
	cr_assert_eq(page_counter_high_excess(&mid, NULL), 20);
}

static void *churn(void *arg)
{
	struct page_counter *c = arg;
	for (int i = 0; i < ROUNDS; i++) {
		page_counter_charge(c, 3);
		page_counter_charge(c, -2);
	}
	return NULL;
}

Test(page_counter, concurrent_charges_in_siblings_add_up)
{
	struct page_counter root, leaf[THREADS];
	page_counter_init(&root, NULL);
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++) {
		page_counter_init(&leaf[i], &root);
		cr_assert_eq(pthread_create(&t[i], NULL, churn, &leaf[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(page_counter_read(&root), (uint64_t)THREADS * ROUNDS);
	cr_assert_geq(page_counter_peak(&root), page_counter_read(&root));
	cr_assert_leq(page_counter_peak(&root), (uint64_t)THREADS * ROUNDS + 3 * THREADS);
}

Test(page_counter, try_charge_refuses_without_charging_anything)
{
	struct page_counter root, mid, leaf;
	page_counter_init(&root, NULL);
	page_counter_init(&mid, &root);
	page_counter_init(&leaf, &mid);
	page_counter_set_max(&mid, 10);
	cr_assert_null(page_counter_try_charge(&leaf, 8));
	cr_assert_eq(page_counter_try_charge(&leaf, 3), &mid);
	cr_assert_eq(page_counter_read(&leaf), 8, "the leaf's part was undone");
	cr_assert_eq(page_counter_read(&root), 8);
	cr_assert_null(page_counter_try_charge(&leaf, 2));
	cr_assert_eq(page_counter_read(&mid), 10);
	cr_assert_eq(page_counter_peak(&mid), 10);
}

struct racer {
	struct page_counter *leaf;
	uint64_t got;
};

static void *charge_until_refused(void *arg)
{
	struct racer *r = arg;
	while (!page_counter_try_charge(r->leaf, 1))
		r->got++;
	return NULL;
}

Test(page_counter, racing_try_charges_never_pass_max_together)
{
	for (int round = 0; round < 50; round++) {
		struct page_counter parent, leaf[THREADS];
		page_counter_init(&parent, NULL);
		page_counter_set_max(&parent, 20000);
		struct racer r[THREADS];
		pthread_t t[THREADS];
		for (int i = 0; i < THREADS; i++) {
			page_counter_init(&leaf[i], &parent);
			r[i] = (struct racer){&leaf[i], 0};
			cr_assert_eq(pthread_create(&t[i], NULL, charge_until_refused, &r[i]), 0);
		}
		uint64_t got = 0;
		for (int i = 0; i < THREADS; i++) {
			pthread_join(t[i], NULL);
			got += r[i].got;
		}
		cr_assert_eq(page_counter_read(&parent), got);
		cr_assert_leq(got, 20000);
		cr_assert_geq(got, 20000 - THREADS + 1,
			      "a refusal means the limit was (nearly) reached");
		cr_assert_leq(page_counter_peak(&parent), 20000);
	}
}

Test(memcg, paths_descendants_and_limits_from_pages)
{
	struct memcg *root = memcg_create(NULL, "", 0, 0);
	struct memcg *a = memcg_create(root, "tenants", 100, 200);
	struct memcg *b = memcg_create(a, "web", 0, 0);
	char path[64];
	memcg_path(root, path, sizeof(path));
	cr_assert_str_eq(path, "/");
	memcg_path(b, path, sizeof(path));
	cr_assert_str_eq(path, "/tenants/web");
	cr_assert(memcg_is_descendant(b, a));
	cr_assert(memcg_is_descendant(b, b));
	cr_assert_not(memcg_is_descendant(a, b));
	cr_assert_eq(page_counter_high(&a->counter), 100);
	cr_assert_eq(page_counter_max(&a->counter), 200);
	cr_assert_eq(page_counter_max(&b->counter), PAGE_COUNTER_MAX, "0 means no limit");
	char longname[MEMCG_NAME_MAX + 1];
	memset(longname, 'x', MEMCG_NAME_MAX);
	longname[MEMCG_NAME_MAX] = '\0';
	cr_assert_null(memcg_create(a, longname, 0, 0));
	memcg_destroy(b);
	memcg_destroy(a);
	memcg_destroy(root);
}

Test(memcg, events_count_locally_and_up_the_tree)
{
	struct memcg *root = memcg_create(NULL, "", 0, 0);
	struct memcg *a = memcg_create(root, "a", 0, 0);
	struct memcg *vm = memcg_create(a, "vm", 0, 0);
	memcg_event(vm, MEMCG_MAX);
	memcg_event(a, MEMCG_MAX);
	memcg_event(a, MEMCG_OOM_GROUP_KILL);
	struct memory_events hier, local;
	memcg_read_events(a, &hier, &local);
	cr_assert_eq(local.max, 1);
	cr_assert_eq(hier.max, 2);
	cr_assert_eq(hier.oom_group_kill, 1);
	memcg_read_events(root, &hier, &local);
	cr_assert_eq(hier.max, 2);
	cr_assert_eq(local.max, 0);
	memcg_read_events(vm, &hier, &local);
	cr_assert_eq(hier.max, 1);
	cr_assert_eq(hier.oom_group_kill, 0);
	memcg_destroy(vm);
	memcg_destroy(a);
	memcg_destroy(root);
}

Test(memcg, the_oom_group_is_the_highest_within_the_domain)
{
	struct memcg *root = memcg_create(NULL, "", 0, 0);
	struct memcg *a = memcg_create(root, "a", 0, 0);
	struct memcg *b = memcg_create(a, "b", 0, 0);
	struct memcg *vm = memcg_create(b, "vm", 0, 0);
	cr_assert_null(memcg_oom_group(vm, NULL));
	memcg_set_oom_group(b, true);
	memcg_set_oom_group(root, true);
	cr_assert_eq(memcg_oom_group(vm, NULL), root, "a pool OOM: up to the top");
	cr_assert_eq(memcg_oom_group(vm, a), b, "a's OOM: not above a");
	memcg_set_oom_group(a, true);
	cr_assert_eq(memcg_oom_group(vm, a), a);
	memcg_destroy(vm);
	memcg_destroy(b);
	memcg_destroy(a);
	memcg_destroy(root);
}

Test(memcg, freeing_a_leaf_uncharges_its_ancestors)
{
	struct memcg *a = memcg_create(NULL, "a", 0, 0);
	struct memcg *vm1 = memcg_create(a, "vm", 0, 0);
	struct memcg *vm2 = memcg_create(a, "vm", 0, 0);
	page_counter_charge(&vm1->counter, 7);
	page_counter_charge(&vm2->counter, 5);
	cr_assert_eq(memcg_usage(a), 12);
	memcg_destroy(vm1);
	cr_assert_eq(memcg_usage(a), 5);
	cr_assert_eq(page_counter_peak(&a->counter), 12, "the peak stays");
	memcg_destroy(vm2);
	cr_assert_eq(memcg_usage(a), 0);
	memcg_destroy(a);
}

Test(memcg, the_high_excess_names_its_cgroup)
{
	struct memcg *a = memcg_create(NULL, "a", 8, 0);
	struct memcg *vm = memcg_create(a, "vm", 0, 0);
	struct memcg *worst;
	page_counter_charge(&vm->counter, 10);
	cr_assert_eq(memcg_high_excess(vm, &worst), 2);
	cr_assert_eq(worst, a);
	cr_assert_null(memcg_over_max(vm, 100));
	memcg_destroy(vm);
	memcg_destroy(a);
}

/* --- memory.min and memory.low (page_counter_protection) --- */

Test(page_counter, a_top_level_counter_has_its_own_protection)
{
	struct page_counter root, a, b;
	page_counter_init(&root, NULL);
	page_counter_init(&a, &root);
	page_counter_init(&b, &root);
	page_counter_set_low(&a, 100);
	page_counter_set_min(&a, 30);
	page_counter_charge(&a, 80);
	page_counter_charge(&b, 50);
	uint64_t emin, elow;
	page_counter_protection(&a, NULL, &emin, &elow);
	cr_assert_eq(emin, 30);
	cr_assert_eq(elow, 100, "the setting, even above the usage");
	page_counter_protection(&b, NULL, &emin, &elow);
	cr_assert_eq(emin + elow, 0);
	page_counter_protection(&root, NULL, &emin, &elow);
	cr_assert_eq(emin + elow, 0, "the root of a reclaim is never held back");
	page_counter_protection(&a, &a, &emin, &elow);
	cr_assert_eq(emin + elow, 0, "nor is a counter reclaimed from itself");
	cr_assert_eq(root.children_low_usage, 80, "a claims min(usage, low)");
	cr_assert_eq(root.children_min_usage, 30);
}

Test(page_counter, unclaimed_protection_goes_to_children_by_their_usage)
{
	/* A parent protects 120 pages; its children set nothing (VMs): they
	 * share it in proportion to their usage (recursive protection). */
	struct page_counter root, parent, vm1, vm2;
	page_counter_init(&root, NULL);
	page_counter_init(&parent, &root);
	page_counter_init(&vm1, &parent);
	page_counter_init(&vm2, &parent);
	page_counter_set_low(&parent, 120);
	page_counter_charge(&vm1, 150);
	page_counter_charge(&vm2, 50);
	uint64_t emin, elow;
	page_counter_protection(&vm1, NULL, &emin, &elow);
	cr_assert_eq(elow, 90, "3/4 of 120");
	page_counter_protection(&vm2, NULL, &emin, &elow);
	cr_assert_eq(elow, 30);
	/* Reclaim from the parent itself: its own protection does not count. */
	page_counter_protection(&vm1, &parent, &emin, &elow);
	cr_assert_eq(elow, 0);
}

Test(page_counter, children_claiming_more_than_the_parent_get_shares_of_it)
{
	struct page_counter root, parent, a, b;
	page_counter_init(&root, NULL);
	page_counter_init(&parent, &root);
	page_counter_init(&a, &parent);
	page_counter_init(&b, &parent);
	page_counter_set_min(&parent, 60);
	page_counter_set_min(&a, 80);
	page_counter_set_min(&b, 40);
	page_counter_charge(&a, 100);
	page_counter_charge(&b, 40);
	uint64_t emin, elow;
	page_counter_protection(&a, NULL, &emin, &elow);
	cr_assert_eq(emin, 40, "80 of 120 claimed, of the parent's 60");
	page_counter_protection(&b, NULL, &emin, &elow);
	cr_assert_eq(emin, 20);
	/* Claims follow usage, and leave with the counter. */
	page_counter_charge(&a, -90);
	cr_assert_eq(parent.children_min_usage, 50);
	page_counter_release(&a);
	cr_assert_eq(parent.children_min_usage, 40);
	cr_assert_eq(page_counter_read(&parent), 40);
}
