/* test_fleet_config.c - JSON fleet descriptions. */
#include <criterion/criterion.h>

#include "vmm/fleet_config.h"

static int parse(const char *text, struct fleet_spec *spec, char *err, size_t len)
{
	memset(spec, 0, sizeof(*spec));
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
