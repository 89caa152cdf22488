/* test_fleet_config.c - JSON fleet descriptions. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "vmm/fleet_config.h"

static int parse(const char *text, struct fleet_spec *spec, char *err, size_t len)
{
	fleet_spec_init(spec);
	return fleet_config_parse(text, "test.json", spec, err, len);
}

Test(fleet_config, groups_with_comments_and_defaults)
{
	const char *text = "// a fleet\n"
			   "{\n"
			   "  \"mem\": \"32M\", /* default for all groups */\n"
			   "  \"groups\": [\n"
			   "    {\"name\": \"a\", \"guest\": \"pattern\", \"count\": 3,\n"
			   "     \"args\": [\"mb=8\", \"shared=50\"]},\n"
			   "    {\"guest\": \"hello\", \"mem\": \"128M\", \"args\": \"x=1\"}\n"
			   "  ]\n"
			   "}\n";
	struct fleet_spec spec;
	char err[512] = "";
	cr_assert_eq(parse(text, &spec, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(spec.ngroups, 2);
	cr_assert_str_eq(spec.groups[0].name, "a");
	cr_assert_eq(spec.groups[0].count, 3);
	cr_assert_eq(spec.groups[0].mem_bytes, 32ull << 20);
	cr_assert_str_eq(spec.groups[0].args, "mb=8 shared=50");
	cr_assert_str_eq(spec.groups[1].name, "group1");
	cr_assert_eq(spec.groups[1].count, 1);
	cr_assert_eq(spec.groups[1].mem_bytes, 128ull << 20);
	cr_assert_str_eq(spec.groups[1].args, "x=1");
	cr_assert_eq(fleet_spec_vm_count(&spec), 4);
	fleet_spec_free(&spec);
}

static void expect_error(const char *text, const char *why)
{
	struct fleet_spec spec;
	char err[512] = "";
	cr_assert_eq(parse(text, &spec, err, sizeof(err)), -1, "'%s' should be refused", text);
	cr_assert(strstr(err, why), "message '%s' should mention '%s'", err, why);
	fleet_spec_free(&spec);
}

Test(fleet_config, errors_name_the_problem)
{
	expect_error("{\"groups\": [{\"guest\": \"hello\", \"cuont\": 2}]}", "unknown key 'cuont'");
	expect_error("{\"groups\": [{\"count\": 2}]}", "\"guest\" is required");
	expect_error("{\"groups\": [{\"guest\": \"hello\", \"count\": 0}]}", "between 1 and");
	expect_error("{\"groups\": [{\"guest\": \"hello\", \"mem\": \"1X\"}]}", "unknown suffix");
	expect_error("{\"groups\": [{\"guest\": 7}]}", "expected a string");
	expect_error("{\"groups\": []}", "non-empty array");
	expect_error("{\"grups\": []}", "unknown top-level key 'grups'");
	expect_error("[1, 2]", "top level");
	expect_error("{\n\"groups\": [\n{\"guest\": \"hello\",,}]}", "test.json:3: invalid JSON");
}

/* Keys and values are quoted in messages; control characters in them become '?'. */
Test(fleet_config, a_message_quoting_input_stays_one_line)
{
	expect_error("{\"gr\\noups\": []}", "unknown top-level key 'gr?oups'");
	expect_error("{\"groups\": [{\"guest\": \"hello\", \"mem\": \"1\\n\"}]}", "'1?'");
}

/* The example configs shipped in configs/ load and validate. */
static void expect_config_loads(const char *name, unsigned vms)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/configs/%s", SOURCE_DIR, name);
	struct fleet_spec spec;
	char err[512] = "";
	fleet_spec_init(&spec);
	cr_assert_eq(fleet_config_load(path, &spec, err, sizeof(err)), 0, "%s: %s", name, err);
	cr_assert_eq(fleet_spec_validate(&spec, err, sizeof(err)), 0, "%s: %s", name, err);
	cr_assert_eq(fleet_spec_vm_count(&spec), vms, "%s", name);
	fleet_spec_free(&spec);
}

Test(fleet_config, shipped_configs_load)
{
	expect_config_loads("demo.json", 8);
	expect_config_loads("mixed.json", 6);
	expect_config_loads("overcommit.json", 6);
	expect_config_loads("tenants.json", 6);
}

Test(fleet_config, cgroups_by_path_and_the_groups_in_them)
{
	struct fleet_spec spec;
	char err[512] = "";
	fleet_spec_init(&spec);
	cr_assert_eq(parse("{\"cgroups\": {\"/t\": {\"memory.max\": \"1G\"},"
			   " \"t/a\": {\"memory.high\": \"64M\", \"memory.oom.group\": true,"
			   " \"memory.swap.max\": 0, \"memory.low\": \"8M\"}},"
			   " \"groups\": [{\"guest\": \"hello\", \"cgroup\": \"/t/a\"},"
			   " {\"guest\": \"hello\", \"cgroup\": \"/\"}, {\"guest\": \"hello\"}]}",
			   &spec, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(spec.ncgroups, 2);
	cr_assert_str_eq(spec.cgroups[0].path, "t", "a leading '/' is allowed");
	cr_assert_eq(spec.cgroups[0].memory_max, 1ull << 30);
	cr_assert_str_eq(spec.cgroups[1].path, "t/a");
	cr_assert_eq(spec.cgroups[1].memory_high, 64ull << 20);
	cr_assert(spec.cgroups[1].oom_group);
	cr_assert(spec.cgroups[1].memory_swap_max_set, "memory.swap.max 0 is a setting");
	cr_assert_eq(spec.cgroups[1].memory_swap_max, 0);
	cr_assert_not(spec.cgroups[0].memory_swap_max_set);
	cr_assert_eq(spec.cgroups[1].memory_low, 8ull << 20);
	cr_assert_str_eq(spec.groups[0].cgroup, "t/a");
	cr_assert_null(spec.groups[1].cgroup, "\"/\" is the root");
	cr_assert_null(spec.groups[2].cgroup);
	cr_assert(fleet_spec_needs_reclaim(&spec), "a cgroup's limit needs reclaim");
	fleet_spec_free(&spec);
}

Test(fleet_config, bad_cgroups_are_refused_by_name)
{
	expect_error(
		"{\"cgroups\": {\"a\": {\"memory.maks\": 1}}, \"groups\": [{\"guest\": \"hello\"}]}",
		"unknown key or bad value 'memory.maks'");
	expect_error("{\"cgroups\": {\"a//b\": {}}, \"groups\": [{\"guest\": \"hello\"}]}",
		     "bad cgroup path 'a//b'");
	expect_error("{\"cgroups\": {\"a/..\": {}}, \"groups\": [{\"guest\": \"hello\"}]}",
		     "bad cgroup path 'a/..'");
	expect_error("{\"cgroups\": [], \"groups\": [{\"guest\": \"hello\"}]}",
		     "expected an object of cgroup paths");
	expect_error("{\"groups\": [{\"guest\": \"hello\", \"cgroup\": \"a b\"}]}",
		     "bad cgroup path 'a b'");
	expect_error("{\"cgroups\": {\"a\": {\"memory.oom.group\": 1}}, "
		     "\"groups\": [{\"guest\": \"hello\"}]}",
		     "'memory.oom.group'");
}

Test(fleet_config, overcommit_config_sets_swap_and_limits)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/configs/overcommit.json", SOURCE_DIR);
	struct fleet_spec spec;
	char err[512] = "";
	fleet_spec_init(&spec);
	cr_assert_eq(fleet_config_load(path, &spec, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(spec.memory.host_mem_bytes, 192ull << 20);
	cr_assert_str_eq(spec.swap.path, "/var/tmp/vmm-overcommit.swap");
	cr_assert_eq(spec.swap.bytes, 512ull << 20);
	cr_assert_eq(spec.groups[1].memory_max, 48ull << 20);
	cr_assert_eq(spec.groups[2].oom_score_adj, -1000);
	fleet_spec_free(&spec);
}

/* oom_score_adj is range-checked before it becomes an int: 4294966296 is
 * -1000 once truncated, which would make a VM the OOM killer never picks. */
Test(fleet_config, oom_score_adj_out_of_range_is_refused_not_truncated)
{
	expect_error("{\"groups\": [{\"guest\": \"hello\", \"oom_score_adj\": 4294966296}]}",
		     "oom_score_adj: must be between -1000 and 1000");
	expect_error("{\"groups\": [{\"guest\": \"hello\", \"oom_score_adj\": -1001}]}",
		     "oom_score_adj: must be between -1000 and 1000");
	expect_error("{\"swap\": {\"oom_score_adj\": 4294966296}, "
		     "\"groups\": [{\"guest\": \"hello\"}]}",
		     "swap.oom_score_adj: must be between -1000 and 1000");
	expect_error("{\"swap\": {\"oom_score_adj\": 9223372036854775807}, "
		     "\"groups\": [{\"guest\": \"hello\"}]}",
		     "must be between -1000 and 1000");
}
