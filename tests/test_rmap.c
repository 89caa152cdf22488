/* test_rmap.c - reverse maps of private and shared frames. */
#include <criterion/criterion.h>

#include "mm/rmap.h"

static void setup(void)
{
	cr_assert_eq(rmap_init(), 0);
}

static void teardown(void)
{
	rmap_exit();
}

Test(rmap, private_frames_map_inline)
{
	struct frame f = {FRAME_NONE, FRAME_NONE, 0};
	frame_set_flag(&f, FRAME_FLAG_PINNED);
	frame_set_private(&f, 4095, 0xfffffffful);
	cr_assert_eq(frame_state(&f), FRAME_PRIVATE);
	cr_assert_eq(frame_owner_vm(&f), 4095);
	cr_assert_eq(frame_owner_gfn(&f), 0xfffffffful);
	cr_assert(frame_test_flag(&f, FRAME_FLAG_PINNED), "flags survive");
}

Test(rmap, shared_frames_list_their_mappers, .init = setup, .fini = teardown)
{
	struct rmap_shared *s = rmap_shared_create(77);
	cr_assert_not_null(s);
	for (uint16_t vm = 1; vm <= 64; vm++)
		cr_assert_eq(rmap_shared_add(s, vm, 1000 + vm), 0);
	cr_assert_eq(s->count, 64);
	cr_assert(rmap_shared_contains(s, 10, 1010));
	cr_assert_not(rmap_shared_contains(s, 10, 1011));
	cr_assert_eq(rmap_shared_remove(s, 10, 1010), 0);
	cr_assert_eq(rmap_shared_remove(s, 10, 1010), -1, "already gone");
	cr_assert_not(rmap_shared_contains(s, 10, 1010));
	cr_assert_eq(s->count, 63);
	unsigned n = 0;
	for (struct rmap_mapper *m = s->mappers; m; m = m->next) {
		cr_assert_eq(m->gfn, 1000u + m->vm_id);
		n++;
	}
	cr_assert_eq(n, 63);

	struct frame f = {FRAME_NONE, FRAME_NONE, 0};
	frame_set_shared(&f, s);
	cr_assert_eq(frame_state(&f), FRAME_SHARED);
	cr_assert_eq(frame_shared(&f), s);
	rmap_shared_destroy(s);
}
