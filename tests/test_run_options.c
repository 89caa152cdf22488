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
