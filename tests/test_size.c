/* test_size.c - byte size parsing and formatting. */
#include <criterion/criterion.h>

#include "vmm/size.h"

static uint64_t parse_ok(const char *text)
{
	uint64_t v = 0;
	char err[200];
	cr_assert_eq(size_parse(text, &v, err, sizeof(err)), 0, "'%s' should parse: %s", text, err);
	return v;
}

static void parse_fails(const char *text, const char *why)
{
	uint64_t v;
	char err[200] = "";
	cr_assert_eq(size_parse(text, &v, err, sizeof(err)), -1, "'%s' should not parse", text);
	cr_assert(strstr(err, why), "message for '%s' is '%s', expected it to mention '%s'", text,
		  err, why);
}

Test(size, plain_and_suffixes)
{
	cr_assert_eq(parse_ok("4096"), 4096);
	cr_assert_eq(parse_ok("2K"), 2048);
	cr_assert_eq(parse_ok("2k"), 2048);
	cr_assert_eq(parse_ok("64M"), 64ull << 20);
	cr_assert_eq(parse_ok("1G"), 1ull << 30);
	cr_assert_eq(parse_ok("3T"), 3ull << 40);
	cr_assert_eq(parse_ok("1MiB"), 1ull << 20);
	cr_assert_eq(parse_ok("1MB"), 1ull << 20);
	cr_assert_eq(parse_ok("0"), 0);
}

Test(size, errors_name_the_problem)
{
	parse_fails("", "expected a number");
	parse_fails("M", "expected a number");
	parse_fails("-1", "expected a number");
	parse_fails("64Q", "unknown suffix 'Q'");
	parse_fails("1.5G", "unknown suffix '.5G'");
	parse_fails("12MX", "unexpected 'X'");
	parse_fails("99999999999999999999", "too large");
	parse_fails("20000000T", "too large");
}

/* Input is quoted in the message; a newline in it must not split the line. */
Test(size, a_message_quoting_input_stays_one_line)
{
	parse_fails("18\n", "bad size '18?': unknown suffix '?'");
	parse_fails("1\x1b[2J", "unknown suffix '?[2J'");
}

Test(size, format)
{
	char buf[32];
	cr_assert_str_eq(size_format(64ull << 20, buf, sizeof(buf)), "64 MiB");
	cr_assert_str_eq(size_format(1536ull << 20, buf, sizeof(buf)), "1.5 GiB");
	cr_assert_str_eq(size_format(100, buf, sizeof(buf)), "100 B");
	cr_assert_str_eq(size_format(4096, buf, sizeof(buf)), "4 KiB");
}
