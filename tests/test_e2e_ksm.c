/* test_e2e_ksm.c - end-to-end KSM: real guests (KVM or TCG), exact expectations
 * computed from the pattern content function. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pattern_content.h"
#include "test_support.h"

/* Pages outside the pattern buffer that may merge too (image text, stack),
 * per VM: a bound, not an expectation. */
#define OTHER_PAGES 64

static int64_t peak(json_object *report, const char *key)
{
	char path[128];
	snprintf(path, sizeof(path), "ksm.peak.%s", key);
	return json_path_int(report, path);
}

/* Exact class counts of a pattern buffer of mb MiB. */
static struct pattern_counts counts(unsigned mb, unsigned zero, unsigned shared,
				    unsigned volatile_pct)
{
	struct pattern_params p = {.zero_pct = zero,
				   .shared_pct = shared,
				   .volatile_pct = volatile_pct,
				   .run_pages = 1};
	struct pattern_counts c;
	pattern_count(&p, mb * 256ull, &c);
	return c;
}

static void expect_all_verified(struct vmm_output *o, int nvms)
{
	cr_assert_eq(o->status, 0, "stderr: %s", o->err);
	for (int i = 0; i < nvms; i++) {
		cr_assert_str_eq(json_str(report_vm(o->report, i), "status"), "exited");
		cr_assert_eq(json_path_int(report_vm(o->report, i), "guest_values.bad_pages"), 0);
	}
}

Test(e2e_ksm, merges_exactly_the_ideal)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--vms", "4", "--mem", "16M", "--ksm", "--ksm-rate", "max",
		     "pattern", "--", "mb=8", "zero=25", "shared=50", "hold=3000");
	expect_all_verified(&o, 4);
	struct pattern_counts c = counts(8, 25, 50, 0);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(vm_mem(o.report, i, "buffer_ksm_pages"), (int64_t)c.shared,
			     "vm%d: every shared-class page is merged", i);
		cr_assert_eq(vm_mem(o.report, i, "buffer_zero_pages"), (int64_t)c.zero,
			     "vm%d: every zero page maps the zero run", i);
		/* The buffer is never written after merging; a page of the guest's
		 * own (its stack, read all the time and written now and then)
		 * may be: volatility is judged by writes. */
		cr_assert_leq(vm_mem(o.report, i, "cow_pages"), OTHER_PAGES);
	}
	/* Each shared page exists in 4 VMs: one frame, 3 more mappers. */
	int64_t ideal = 3 * (int64_t)c.shared;
	cr_assert_geq(peak(o.report, "pages_sharing"), ideal);
	cr_assert_leq(peak(o.report, "pages_sharing"), ideal + 3 * OTHER_PAGES);
	cr_assert_geq(peak(o.report, "pages_shared"), (int64_t)c.shared);
	cr_assert_geq(peak(o.report, "ksm_zero_pages"), 4 * (int64_t)c.zero);
	cr_assert_leq(peak(o.report, "ksm_zero_pages"), 4 * (int64_t)(c.zero + OTHER_PAGES));
	cr_assert_gt(json_path_double(o.report, "ksm.peak.dedup_ratio"), 1.5);
	cr_assert_gt(json_path_int(o.report, "ksm.full_scans"), 0);
	/* Smart scan is on by default: the unique pages, hashed in vain on
	 * each visit, are skipped on later ones. */
	cr_assert(json_path_int(o.report, "ksm.settings.smart_scan"));
	cr_assert_gt(json_path_int(o.report, "ksm.pages_skipped"), 0);
	cr_assert_gt(json_path_double(o.report, "ksm.merges_per_cpu_second"), 0);
	/* Who shares with whom: every shared-class page is in all 4 VMs. */
	json_object *rows = json_object_object_get(
		json_object_object_get(json_object_object_get(o.report, "ksm"), "sharing_matrix"),
		"frames");
	cr_assert_not_null(rows, "a sharing matrix for 4 VMs");
	cr_assert_eq(json_object_array_length(rows), 4);
	for (int a = 0; a < 4; a++)
		for (int b = 0; b < 4; b++) {
			int64_t v = json_object_get_int64(json_object_array_get_idx(
				json_object_array_get_idx(rows, (size_t)a), (size_t)b));
			cr_assert_geq(v, (int64_t)c.shared, "[%d][%d] = %lld", a, b, (long long)v);
			cr_assert_leq(v, (int64_t)c.shared + OTHER_PAGES, "[%d][%d]", a, b);
		}
	/* Per VM, as /proc/PID/ksm_stat: the profit is what merging saved
	 * the VM, net of KSM's own memory for it. */
	for (int i = 0; i < 4; i++) {
		int64_t meta = vm_mem(o.report, i, "ksm_metadata_bytes");
		cr_assert_gt(meta, 0);
		cr_assert_eq(vm_mem(o.report, i, "ksm_process_profit"),
			     (vm_mem(o.report, i, "ksm_merging_pages") +
			      vm_mem(o.report, i, "ksm_zero_pages")) *
					     4096 -
				     meta);
	}
	/* Pss counts a shared page 1/n to each of its n mappers. Each VM's
	 * figures are taken when it ends, so the first to end still shares. */
	int sharing = 0;
	for (int i = 0; i < 4; i++) {
		cr_assert_leq(vm_mem(o.report, i, "Pss"), vm_mem(o.report, i, "Rss"));
		sharing += vm_mem(o.report, i, "Pss") < vm_mem(o.report, i, "Rss");
	}
	cr_assert_gt(sharing, 0);
	vmm_output_free(&o);
}

Test(e2e_ksm, written_pages_are_copied_and_every_guest_verifies)
{
	struct vmm_output o;
	/* The volatile pages are merged during the first hold, then rewritten:
	 * copy-on-write, and the guests must still read exactly their data. */
	vmm_run_json(&o, "run", "--vms", "3", "--mem", "16M", "--ksm", "--ksm-rate", "max",
		     "pattern", "--", "mb=8", "zero=25", "shared=50", "volatile=30", "rounds=2",
		     "hold=2500");
	expect_all_verified(&o, 3);
	struct pattern_counts c = counts(8, 25, 50, 30);
	for (int i = 0; i < 3; i++) {
		cr_assert_gt(vm_mem(o.report, i, "cow_pages"), 0, "vm%d copied on write", i);
		/* Each copy's service time is in the VM's histogram. */
		cr_assert_eq(vm_mem(o.report, i, "cow_latency_us.count"),
			     vm_mem(o.report, i, "cow_pages"));
		cr_assert_gt(json_path_double(report_vm(o.report, i), "memory.cow_latency_us.p99"),
			     0);
		cr_assert_eq(vm_mem(o.report, i, "buffer_ksm_pages"), (int64_t)c.stable_shared,
			     "vm%d: the rewritten pages are private again", i);
		cr_assert_eq(vm_mem(o.report, i, "buffer_zero_pages"), (int64_t)c.stable_zero);
	}
	vmm_output_free(&o);
}

Test(e2e_ksm, pages_that_keep_changing_are_not_merged)
{
	struct vmm_output o;
	/* Half the pages are rewritten every 50 ms: the dirty log shows them
	 * changing, so KSM leaves them alone while they change. */
	vmm_run_json(&o, "run", "--vms", "2", "--mem", "16M", "--ksm", "--ksm-rate", "max",
		     "pattern", "--", "mb=4", "zero=25", "shared=50", "volatile=50", "rounds=30",
		     "hold=50");
	expect_all_verified(&o, 2);
	struct pattern_counts c = counts(4, 25, 50, 50);
	int64_t max_volatile = 0;
	json_object *timeline =
		json_object_object_get(json_object_object_get(o.report, "ksm"), "timeline");
	for (size_t i = 0; i < json_object_array_length(timeline); i++) {
		int64_t v = json_object_get_int64(
			json_object_array_get_idx(json_object_array_get_idx(timeline, i), 4));
		if (v > max_volatile)
			max_volatile = v;
	}
	cr_assert_geq(max_volatile, (int64_t)c.volatile_pages / 2,
		      "the scanner saw the changing pages as volatile (%ld)", max_volatile);
	/* A changing page may be merged once, before it starts changing;
	 * after that each rewrite would be a copy-on-write if KSM kept merging
	 * it. 30 rounds of rewrites, at most one copy per page: under 5%. */
	for (int i = 0; i < 2; i++) {
		int64_t rewrites =
			json_path_int(report_vm(o.report, i), "guest_values.rewritten_pages");
		cr_assert_eq(rewrites, 30 * (int64_t)c.volatile_pages);
		cr_assert_lt(vm_mem(o.report, i, "cow_pages"), rewrites / 20,
			     "vm%d: %ld copies for %ld rewrites: changing pages were merged", i,
			     vm_mem(o.report, i, "cow_pages"), rewrites);
	}
	vmm_output_free(&o);
}

Test(e2e_ksm, vms_without_ksm_are_never_touched)
{
	const char *config =
		"{\"ksm\": {\"rate\": \"max\"}, \"groups\": ["
		"{\"name\": \"on\", \"guest\": \"pattern\", \"ksm\": true, \"count\": 2,"
		" \"mem\": \"16M\", \"args\": \"mb=4 zero=25 shared=50 hold=2500\"},"
		"{\"name\": \"off\", \"guest\": \"pattern\", \"count\": 2, \"mem\": "
		"\"16M\", \"args\": \"mb=4 zero=25 shared=50 hold=2500\"}]}";
	char *path = write_temp_file(config, strlen(config), ".json");
	struct vmm_output o;
	vmm_run_json(&o, "run", "--config", path);
	expect_all_verified(&o, 4);
	struct pattern_counts c = counts(4, 25, 50, 0);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(
			vm_mem(o.report, i, "buffer_ksm_pages"), (int64_t)c.shared,
			"vm%d: %ld buffer pages on KSM frames, not %ld (%ld merges, %ld failed; "
			"%ld cow, %ld wp faults, %ld merging, %ld zero pages; %ld full scans)\n%s",
			i, vm_mem(o.report, i, "buffer_ksm_pages"), (long)c.shared,
			json_path_int(o.report, "ksm.merges"),
			json_path_int(o.report, "ksm.merge_failures"),
			vm_mem(o.report, i, "cow_pages"), vm_mem(o.report, i, "wp_faults"),
			vm_mem(o.report, i, "ksm_merging_pages"),
			vm_mem(o.report, i, "ksm_zero_pages"),
			json_path_int(o.report, "ksm.full_scans"), o.out);
	for (int i = 2; i < 4; i++) {
		cr_assert_eq(vm_mem(o.report, i, "ksm_merging_pages"), 0);
		cr_assert_eq(vm_mem(o.report, i, "ksm_zero_pages"), 0);
		cr_assert_eq(vm_mem(o.report, i, "wp_faults"), 0);
	}
	vmm_output_free(&o);
	unlink(path);
	free(path);
}

Test(e2e_ksm, max_page_sharing_is_honoured)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--vms", "4", "--mem", "16M", "--ksm", "--ksm-rate", "max",
		     "--ksm-max-page-sharing", "2", "pattern", "--", "mb=4", "shared=100",
		     "hold=3000");
	expect_all_verified(&o, 4);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(vm_mem(o.report, i, "buffer_ksm_pages"), 1024);
	/* 4 copies of each page, 2 per frame: 2 frames and 2 more mappers. */
	cr_assert_geq(peak(o.report, "pages_shared"), 2 * 1024);
	cr_assert_geq(peak(o.report, "pages_sharing"), 2 * 1024);
	cr_assert_leq(peak(o.report, "pages_sharing"), 2 * 1024 + 3 * OTHER_PAGES);
	vmm_output_free(&o);
}

Test(e2e_ksm, without_the_dirty_log_merging_still_completes)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--vms", "3", "--mem", "16M", "--ksm", "--ksm-rate", "max",
		     "--ksm-dirty-log", "off", "pattern", "--", "mb=4", "zero=25", "shared=50",
		     "hold=3000");
	expect_all_verified(&o, 3);
	struct pattern_counts c = counts(4, 25, 50, 0);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(vm_mem(o.report, i, "buffer_ksm_pages"), (int64_t)c.shared);
		cr_assert_eq(vm_mem(o.report, i, "buffer_zero_pages"), (int64_t)c.zero);
	}
	cr_assert_eq(json_path_int(o.report, "ksm.dirty_harvests"), 0);
	vmm_output_free(&o);
}

Test(e2e_ksm, bad_ksm_options)
{
	struct vmm_output o;
	vmm_run(&o, "run", "--ksm", "--backing", "anon", "hello");
	expect_input_error(&o, "does not work with --backing anon");
	vmm_run(&o, "run", "--ksm-rate", "fast", "hello");
	expect_input_error(&o, "--ksm-rate: 'fast' is not max or normal");
	vmm_run(&o, "run", "--ksm-max-page-sharing", "1", "hello");
	expect_input_error(&o, "max_page_sharing >= 2");
	vmm_run(&o, "run", "--ksm-dirty-log", "maybe", "hello");
	expect_input_error(&o, "--ksm-dirty-log: 'maybe' is not on or off");
	vmm_run(&o, "run", "--ksm-smart-scan", "maybe", "hello");
	expect_input_error(&o, "--ksm-smart-scan: 'maybe' is not on or off");
	vmm_run(&o, "run", "--ksm-advisor", "fast", "hello");
	expect_input_error(&o, "--ksm-advisor: 'fast' is not none or scan-time");
	vmm_run(&o, "run", "--ksm-advisor-target-scan-time", "0", "hello");
	expect_input_error(&o, "expected 1..86400 seconds");
}
