/*
 * pattern - fills memory with content of known sharing, holds it, rewrites a
 * volatile part, and verifies every page.
 *
 *   pattern mb=M zero=Z shared=S volatile=V rounds=R hold=T seed=X run=N delay=D
 *
 * After sleeping D ms (default 0), checks that its fresh memory reads as
 * zeroes (the VMM promises zeroed RAM: no data of an earlier VM), then fills
 * M MiB page by page with the content function of pattern_content.h
 * (Z% zero pages, S% pages identical across VMs, the rest unique to the VM,
 * classes chosen per aligned run of N pages). Then for R rounds: sleeps T ms
 * on the host and rewrites the V% volatile pages. Finally re-derives and
 * verifies every page; exits 0 if all are intact, 1 naming the first bad page.
 */
#include "guest.h"
#include "pattern_content.h"

static uint64_t arg_or(const struct guest_boot_info *bi, const char *key, uint64_t dflt)
{
	uint64_t v;
	return guest_arg_u64(bi, key, &v) == 0 ? v : dflt;
}

int guest_main(const struct guest_boot_info *bi)
{
	static const char *const allowed[] = {"mb",   "zero", "shared", "volatile", "rounds",
					      "hold", "seed", "run",	"delay",    NULL};
	guest_args_check(bi, "pattern", allowed);
	uint64_t mb = arg_or(bi, "mb", 16);
	uint64_t rounds = arg_or(bi, "rounds", 1);
	uint64_t hold_ms = arg_or(bi, "hold", 0);
	struct pattern_params p = {
		.zero_pct = (uint32_t)arg_or(bi, "zero", 0),
		.shared_pct = (uint32_t)arg_or(bi, "shared", 0),
		.volatile_pct = (uint32_t)arg_or(bi, "volatile", 0),
		.run_pages = (uint32_t)arg_or(bi, "run", 1),
		.seed = arg_or(bi, "seed", bi->vm_index),
	};
	if (p.zero_pct + p.shared_pct > 100 || p.volatile_pct > 100 || p.run_pages == 0) {
		guest_printf(
			"error: pattern: need zero+shared <= 100, volatile <= 100, run >= 1\n");
		return 2;
	}
	uint64_t pages = mb * 256;
	uint64_t free_bytes = bi->heap_end - bi->heap_start;
	if (pages == 0 || pages * GUEST_PAGE_SIZE > free_bytes) {
		guest_printf("error: pattern: mb=%lu does not fit in guest memory (%lu MiB free)\n",
			     mb, free_bytes >> 20);
		return 2;
	}
	uint64_t *buf = (uint64_t *)bi->heap_start;
	guest_declare_buffer(buf, pages * GUEST_PAGE_SIZE);
	uint64_t delay_ms = arg_or(bi, "delay", 0);
	if (delay_ms)
		guest_sleep_ns(delay_ms * 1000000ull);

	/* Each page is checked for zeroes right before it is filled, the way a
	 * guest zeroes a page just before using it. */
	uint64_t t0 = guest_clock_ns();
	for (uint64_t i = 0; i < pages; i++) {
		uint64_t *page = buf + i * PATTERN_WORDS_PER_PAGE;
		for (int w = 0; w < PATTERN_WORDS_PER_PAGE; w++) {
			if (page[w]) {
				guest_printf(
					"pattern: FAILED: fresh memory is not zero at page %lu "
					"(gpa %p)\n",
					i, (void *)&page[w]);
				return 1;
			}
		}
		pattern_fill_page(page, pattern_page_key(&p, i, 0));
	}
	uint64_t t1 = guest_clock_ns();

	uint64_t rewritten = 0;
	for (uint64_t r = 1; r <= rounds; r++) {
		if (hold_ms)
			guest_sleep_ns(hold_ms * 1000000ull);
		for (uint64_t i = 0; i < pages; i++) {
			if (!pattern_is_volatile(&p, i))
				continue;
			pattern_fill_page(buf + i * PATTERN_WORDS_PER_PAGE,
					  pattern_page_key(&p, i, r));
			rewritten++;
		}
	}

	uint64_t t2 = guest_clock_ns();
	uint64_t bad = 0, first_bad = 0, expected = 0, got = 0;
	int first_word = -1;
	for (uint64_t i = 0; i < pages; i++) {
		uint64_t want;
		const uint64_t *words = buf + i * PATTERN_WORDS_PER_PAGE;
		int w = pattern_check_page(words, pattern_page_key(&p, i, rounds), &want);
		if (w >= 0) {
			if (!bad) {
				first_bad = i;
				first_word = w;
				expected = want;
				got = words[w];
			}
			bad++;
		}
	}
	uint64_t t3 = guest_clock_ns();

	struct pattern_counts c;
	pattern_count(&p, pages, &c);
	guest_report("pages", pages);
	guest_report("bad_pages", bad);
	guest_report("fill_ns", t1 - t0);
	guest_report("fill_done_ns", t1); /* host CLOCK_MONOTONIC */
	guest_report("verify_ns", t3 - t2);
	guest_report("rewritten_pages", rewritten);
	guest_printf("pattern: %lu pages (%lu MiB): zero %lu shared %lu unique %lu volatile %lu; "
		     "fill %lu ms, verify %lu ms\n",
		     pages, mb, c.zero, c.shared, c.unique, c.volatile_pages, (t1 - t0) / 1000000,
		     (t3 - t2) / 1000000);
	if (bad) {
		guest_printf("pattern: FAILED: %lu bad pages; first bad page %lu (gpa %p) word %d: "
			     "expected 0x%lx, found 0x%lx\n",
			     bad, first_bad, (void *)(buf + first_bad * PATTERN_WORDS_PER_PAGE),
			     first_word, expected, got);
		return 1;
	}
	guest_printf("pattern: all %lu pages verified\n", pages);
	return 0;
}
