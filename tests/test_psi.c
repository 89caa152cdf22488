/* test_psi.c - pressure stall information (mm/psi.h), on a clock the test
 * drives: some, full, idle members, the tree, and the decaying averages. */
#include <criterion/criterion.h>
#include <math.h>

#include "mm/psi.h"

#define S 1000000000ull /* one second, ns */

static struct psi_stats read_at(struct psi_group *g, uint64_t t)
{
	struct psi_stats s;
	psi_read(g, t, &s);
	return s;
}

Test(psi, some_is_any_member_stalled_full_is_every_one)
{
	struct psi_group g;
	struct psi_member a = {0}, b = {0};
	psi_group_init(&g, NULL, 0);
	psi_running(&g, &a, true, 0);
	psi_running(&g, &b, true, 0);
	psi_stall(&g, &a, 1, 1 * S);
	psi_stall(&g, &b, 1, 2 * S);
	psi_stall(&g, &a, -1, 3 * S);
	psi_stall(&g, &b, -1, 4 * S);
	struct psi_stats s = read_at(&g, 5 * S);
	cr_assert_eq(s.some_total_us, 3000000, "1 s to 4 s");
	cr_assert_eq(s.full_total_us, 1000000, "2 s to 3 s");
}

Test(psi, an_idle_member_does_not_keep_full_away)
{
	struct psi_group g;
	struct psi_member a = {0}, b = {0};
	psi_group_init(&g, NULL, 0);
	psi_running(&g, &a, true, 0);
	psi_running(&g, &b, true, 0);
	psi_running(&g, &b, false, 1 * S); /* b's guest sleeps */
	psi_stall(&g, &a, 1, 2 * S);
	psi_running(&g, &b, true, 3 * S); /* b runs: a alone is no longer full */
	psi_stall(&g, &a, -1, 4 * S);
	struct psi_stats s = read_at(&g, 4 * S);
	cr_assert_eq(s.some_total_us, 2000000);
	cr_assert_eq(s.full_total_us, 1000000);
}

Test(psi, stalls_nest_and_an_unbalanced_end_is_ignored)
{
	struct psi_group g;
	struct psi_member a = {0};
	psi_group_init(&g, NULL, 0);
	psi_stall(&g, &a, -1, 0); /* nothing to end */
	psi_stall(&g, &a, 1, 1 * S);
	psi_stall(&g, &a, 1, 2 * S);
	psi_stall(&g, &a, -1, 3 * S);
	struct psi_stats s = read_at(&g, 4 * S);
	cr_assert_eq(s.some_total_us, 3000000, "still stalled after one of two ends");
	cr_assert_eq(s.full_total_us, 3000000, "a stalled member is not idle");
	psi_stall(&g, &a, -1, 4 * S);
	cr_assert_eq(read_at(&g, 9 * S).some_total_us, 3000000);
}

Test(psi, a_member_counts_in_every_ancestor)
{
	struct psi_group top, left, right;
	struct psi_member a = {0}, b = {0};
	psi_group_init(&top, NULL, 0);
	psi_group_init(&left, &top, 0);
	psi_group_init(&right, &top, 0);
	psi_running(&left, &a, true, 0);
	psi_running(&right, &b, true, 0);
	psi_stall(&left, &a, 1, 1 * S);
	psi_stall(&left, &a, -1, 2 * S);
	struct psi_stats l = read_at(&left, 3 * S), r = read_at(&right, 3 * S),
			 t = read_at(&top, 3 * S);
	cr_assert_eq(l.some_total_us, 1000000);
	cr_assert_eq(l.full_total_us, 1000000, "a was all of left");
	cr_assert_eq(r.some_total_us, 0);
	cr_assert_eq(t.some_total_us, 1000000);
	cr_assert_eq(t.full_total_us, 0, "b ran meanwhile");
	/* A group leaving takes its stalled member out of its ancestors. */
	psi_stall(&left, &a, 1, 3 * S);
	psi_group_exit(&left, 4 * S);
	cr_assert_eq(read_at(&top, 10 * S).some_total_us, 2000000);
	cr_assert_eq(top.stalled, 0);
	cr_assert_eq(top.nonidle, 1);
}

Test(psi, averages_follow_the_share_of_time_stalled)
{
	struct psi_group g;
	struct psi_member a = {0};
	psi_group_init(&g, NULL, 0);
	psi_running(&g, &a, true, 0);
	/* Stalled half of every second for 60 s, read every 2 s. */
	struct psi_stats s;
	for (uint64_t sec = 0; sec < 60; sec++) {
		psi_stall(&g, &a, 1, sec * S);
		psi_stall(&g, &a, -1, sec * S + S / 2);
		if (sec % 2 == 1)
			s = read_at(&g, (sec + 1) * S);
	}
	cr_assert_float_eq(s.some_avg[0], 50.0, 0.5, "avg10 %.2f", s.some_avg[0]);
	cr_assert_float_eq(s.some_avg[1], 50.0 * (1 - exp(-1.0)), 0.5, "avg60 %.2f", s.some_avg[1]);
	cr_assert_lt(s.some_avg[2], s.some_avg[1], "avg300 moves slowest");
	cr_assert_eq(s.some_total_us, 30000000);
	/* Then nothing for 30 s: avg10 decays by e^-3, read once at the end. */
	s = read_at(&g, 90 * S);
	cr_assert_float_eq(s.some_avg[0], 50.0 * exp(-3.0), 0.5, "avg10 %.2f", s.some_avg[0]);
	/* Reads closer than 2 s apart leave the averages alone. */
	struct psi_stats again = read_at(&g, 91 * S);
	cr_assert_float_eq(again.some_avg[0], s.some_avg[0], 1e-9);
}
