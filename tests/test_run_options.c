/* test_run_options.c - the `vmm run` command line. */
#include <criterion/criterion.h>

#include "vmm/run_options.h"

#define PARSE(spec, err, ...)                                                                 \
	({                                                                                    \
		char *argv_[] = {"run", __VA_ARGS__, NULL};                                   \
		run_options_parse(sizeof(argv_) / sizeof(argv_[0]) - 1, argv_, (spec), (err), \
				  sizeof(err));                                               \
	})

static void expect_error(const char *why, enum run_options_result r, const char *err)
{
	cr_assert_eq(r, RUN_OPTIONS_ERROR, "expected an error mentioning '%s'", why);
	cr_assert(strstr(err, why), "message '%s' should mention '%s'", err, why);
}

Test(run_options, defaults)
{
	struct fleet_spec spec;
	char err[512] = "";
	cr_assert_eq(PARSE(&spec, err, "hello"), RUN_OPTIONS_OK, "%s", err);
	cr_assert_eq(spec.ngroups, 1);
	cr_assert_eq(spec.groups[0].count, 1);
	cr_assert_eq(spec.groups[0].mem_bytes, 64ull << 20);
	cr_assert_str_eq(spec.groups[0].guest, "hello");
	cr_assert_str_eq(spec.groups[0].args, "");
	cr_assert_null(spec.json_path);
	cr_assert_not(spec.quiet);
	fleet_spec_free(&spec);
}

Test(run_options, vms_mem_and_guest_args)
{
	struct fleet_spec spec;
	char err[512] = "";
	cr_assert_eq(PARSE(&spec, err, "--vms", "4", "-m", "128M", "--quiet", "--json", "r.json",
			   "pattern", "--", "mb=16", "zero=25"),
		     RUN_OPTIONS_OK, "%s", err);
	cr_assert_eq(spec.groups[0].count, 4);
	cr_assert_eq(spec.groups[0].mem_bytes, 128ull << 20);
	cr_assert_str_eq(spec.groups[0].guest, "pattern");
	cr_assert_str_eq(spec.groups[0].args, "mb=16 zero=25");
	cr_assert_str_eq(spec.json_path, "r.json");
	cr_assert(spec.quiet);
	cr_assert_eq(fleet_spec_vm_count(&spec), 4);
	fleet_spec_free(&spec);
}

Test(run_options, bad_input)
{
	struct fleet_spec spec;
	char err[512];
	expect_error("at least 1", PARSE(&spec, err, "--vms", "0", "hello"), err);
	fleet_spec_free(&spec);
	expect_error("bad VM count 'x'", PARSE(&spec, err, "--vms", "x", "hello"), err);
	fleet_spec_free(&spec);
	expect_error("unknown suffix 'Q'", PARSE(&spec, err, "--mem", "64Q", "hello"), err);
	fleet_spec_free(&spec);
	expect_error("between 4 MiB", PARSE(&spec, err, "--mem", "2M", "hello"), err);
	fleet_spec_free(&spec);
	expect_error("multiple of 2 MiB", PARSE(&spec, err, "--mem", "5M", "hello"), err);
	fleet_spec_free(&spec);
	expect_error("unknown option '--frobnicate'", PARSE(&spec, err, "--frobnicate", "hello"),
		     err);
	fleet_spec_free(&spec);
	expect_error("needs a value", PARSE(&spec, err, "hello", "--vms"), err);
	fleet_spec_free(&spec);
	expect_error("no guest given", PARSE(&spec, err, "--vms", "2"), err);
	fleet_spec_free(&spec);
	expect_error("not allowed with it", PARSE(&spec, err, "--config", "x.json", "hello"), err);
	fleet_spec_free(&spec);
	expect_error("do not combine", PARSE(&spec, err, "--config", "x.json", "--vms", "2"), err);
	fleet_spec_free(&spec);
	expect_error("cannot read config", PARSE(&spec, err, "--config", "/nonexistent.json"), err);
	fleet_spec_free(&spec);
}

/* Every option of the table lands in its own field, whatever its width, and
 * the last occurrence wins. */
Test(run_options, every_table_option_sets_its_field)
{
	struct fleet_spec spec;
	char err[512] = "";
	cr_assert_eq(
		PARSE(&spec, err, "--backing", "pool", "--host-mem", "96M", "--fault-around", "16K",
		      "--fault-ahead", "off", "--thp", "always", "--min-free-kbytes", "4096",
		      "--watermark-scale-factor", "150", "--fault-spin-us", "7", "--tcg-mmu",
		      "host", "--ksm", "--ksm-pages-to-scan", "1234", "--ksm-sleep-ms", "3",
		      "--ksm-rate", "max", "--ksm-max-page-sharing", "77", "--ksm-zero-pages",
		      "off", "--ksm-dirty-log", "off", "--ksm-start-ms", "5", "--ksm-sample-ms",
		      "0", "--ksm-advisor", "scan-time", "--ksm-advisor-target-scan-time", "30",
		      "--ksm-advisor-max-cpu", "40", "--ksm-advisor-min-pages", "64",
		      "--ksm-advisor-max-pages", "9000", "--swap", "/tmp/s", "--swap-size", "1G",
		      "--keep-swap", "--zswap", "8M", "--page-cluster", "3", "--memory-high", "24M",
		      "--memory-max", "32M", "--oom-score-adj", "-500", "--memory-image",
		      "/etc/passwd", "--accel", "tcg", "--accel", "kvm", "hello"),
		RUN_OPTIONS_OK, "%s", err);
	cr_assert_eq(spec.memory.backing, BACKING_POOL);
	cr_assert_eq(spec.memory.host_mem_bytes, 96ull << 20);
	cr_assert_eq(spec.memory.fault_around_bytes, 16ull << 10);
	cr_assert_eq(spec.memory.fault_ahead_bytes, 0);
	cr_assert(spec.memory.thp);
	cr_assert_eq(spec.memory.min_free_kbytes, 4096);
	cr_assert_eq(spec.memory.watermark_scale_factor, 150);
	cr_assert_eq(spec.memory.fault_spin_us, 7);
	cr_assert_eq(spec.memory.tcg_mmu, TCG_MMU_HOST);
	cr_assert(spec.ksm_default);
	cr_assert_eq(spec.ksm.pages_to_scan, 1234);
	cr_assert_eq(spec.ksm.sleep_millisecs, 3);
	cr_assert(spec.ksm.max_rate);
	cr_assert_eq(spec.ksm.max_page_sharing, 77);
	cr_assert_not(spec.ksm.use_zero_pages);
	cr_assert_not(spec.ksm.dirty_log);
	cr_assert_eq(spec.ksm.start_delay_ms, 5);
	cr_assert_eq(spec.ksm_sample_ms, 1, "0 is taken as 1 ms");
	cr_assert(spec.ksm.advisor);
	cr_assert_eq(spec.ksm.advisor_target_scan_ms, 30000, "seconds, kept in ms");
	cr_assert_eq(spec.ksm.advisor_max_cpu, 40);
	cr_assert_eq(spec.ksm.advisor_min_pages, 64);
	cr_assert_eq(spec.ksm.advisor_max_pages, 9000);
	cr_assert_str_eq(spec.swap.path, "/tmp/s");
	cr_assert_eq(spec.swap.bytes, 1ull << 30);
	cr_assert(spec.swap.keep);
	cr_assert_eq(spec.swap.zswap_bytes, 8ull << 20);
	cr_assert_eq(spec.swap.page_cluster, 3);
	cr_assert_eq(spec.swap.memory_high, 24ull << 20);
	cr_assert_eq(spec.swap.memory_max, 32ull << 20);
	cr_assert_eq(spec.swap.oom_score_adj, -500);
	cr_assert_str_eq(spec.memory_image, "/etc/passwd");
	cr_assert_eq(spec.accel, ACCEL_KVM, "the last --accel wins");
	fleet_spec_free(&spec);
}
