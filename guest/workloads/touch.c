/*
 * touch - a working-set workload for reclaim.
 *
 *   touch mb=M passes=P hot=H order=seq|random
 *
 * Pass 1 writes every page of M MiB, in ascending order or (order=random) in
 * a pseudo-random permutation, to measure first-touch cost without any
 * sequential pattern to exploit. Passes 2..P touch (read, check, write)
 * only the hot pages, H% of the pages chosen by a hash of the page index.
 * Each page's first word holds a signature of (page, last pass that wrote
 * it), so a lost or stale page is detected. Reports each pass's time.
 */
#include "guest.h"
#include "pattern_content.h"

static uint64_t arg_or(const struct guest_boot_info *bi, const char *key, uint64_t dflt)
{
	uint64_t v;
	return guest_arg_u64(bi, key, &v) == 0 ? v : dflt;
}

/* Unique to (VM, page, pass): a working set is no one else's data. */
static uint64_t vm_salt;

static uint64_t signature(uint64_t page, uint64_t pass)
{
	return pattern_mix(vm_salt ^ (page * 0x10001ull + pass)) | 1;
}

static int arg_is(const struct guest_boot_info *bi, const char *key, const char *value)
{
	const char *v = guest_arg_str(bi, key);
	size_t n = strlen(value);
	return v && strncmp(v, value, n) == 0 && (v[n] == 0 || v[n] == ' ');
}

static int guest_arg_present(const struct guest_boot_info *bi, const char *key)
{
	return guest_arg_str(bi, key) != NULL;
}

static int is_hot(uint64_t page, uint64_t hot_pct)
{
	return pattern_mix(page ^ 0x686f74ull) % 100 < hot_pct;
}

int guest_main(const struct guest_boot_info *bi)
{
	static const char *const allowed[] = {"mb", "passes", "hot", "order", NULL};
	guest_args_check(bi, "touch", allowed);
	vm_salt = pattern_mix(bi->vm_index + 0x746f756368ull);
	uint64_t mb = arg_or(bi, "mb", 16);
	uint64_t passes = arg_or(bi, "passes", 4);
	uint64_t hot = arg_or(bi, "hot", 20);
	uint64_t pages = mb * 256;
	if (hot > 100 || passes == 0) {
		guest_printf("error: touch: need hot <= 100 and passes >= 1\n");
		return 2;
	}
	if (pages == 0 || pages * GUEST_PAGE_SIZE > bi->heap_end - bi->heap_start) {
		guest_printf("error: touch: mb=%lu does not fit in guest memory (%lu MiB free)\n",
			     mb, (bi->heap_end - bi->heap_start) >> 20);
		return 2;
	}
	int random_order = arg_is(bi, "order", "random");
	if (!random_order && guest_arg_present(bi, "order") && !arg_is(bi, "order", "seq")) {
		guest_printf("error: touch: order must be seq or random\n");
		return 2;
	}
	uint64_t span = 1;
	while (span < pages)
		span <<= 1;
	uint64_t *buf = (uint64_t *)bi->heap_start;
	guest_declare_buffer(buf, pages * GUEST_PAGE_SIZE);
	uint64_t hot_pages = 0;
	for (uint64_t pass = 1; pass <= passes; pass++) {
		uint64_t t0 = guest_clock_ns();
		for (uint64_t n = 0; n < (pass == 1 ? span : pages); n++) {
			/* An odd multiplier permutes [0, span); pages beyond the
			 * buffer are skipped. */
			uint64_t i =
				pass == 1 && random_order
					? (n * 0x9e3779b97f4a7c15ull + 0x5bd1e995ull) & (span - 1)
					: n;
			if (i >= pages)
				continue;
			uint64_t *w = buf + i * PATTERN_WORDS_PER_PAGE;
			if (pass == 1) {
				w[0] = signature(i, 1);
				hot_pages += is_hot(i, hot);
				continue;
			}
			if (!is_hot(i, hot))
				continue;
			if (w[0] != signature(i, pass - 1)) {
				guest_printf("touch: FAILED: page %lu lost its data in pass %lu\n",
					     i, pass);
				return 1;
			}
			w[0] = signature(i, pass);
		}
		uint64_t ns = guest_clock_ns() - t0;
		char key[GUEST_REPORT_KEY_MAX];
		guest_snprintf(key, sizeof(key), "pass%lu_ns", pass);
		if (pass <= 8 || pass == passes)
			guest_report(key, ns);
		guest_printf("touch: pass %lu: %lu pages in %lu us\n", pass,
			     pass == 1 ? pages : hot_pages, ns / 1000);
	}
	for (uint64_t i = 0; i < pages; i++) {
		uint64_t last = (passes > 1 && is_hot(i, hot)) ? passes : 1;
		if (buf[i * PATTERN_WORDS_PER_PAGE] != signature(i, last)) {
			guest_printf("touch: FAILED: page %lu holds stale data at the end\n", i);
			return 1;
		}
	}
	guest_report("pages", pages);
	guest_report("hot_pages", hot_pages);
	guest_printf("touch: %lu pages, %lu hot, %lu passes: all verified\n", pages, hot_pages,
		     passes);
	return 0;
}
