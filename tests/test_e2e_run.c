/* test_e2e_run.c - end-to-end: launching real guests through the vmm binary
 * (on this pass's accelerator, see test_support.h), and every bad-input case
 * of `vmm run`. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_support.h"

Test(e2e_run, hello_prints_and_exits_zero)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "hello", "--", "greeting=1");
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	cr_assert(strstr(o.out, "vm0| hello from vm0 of 1: 64 MiB of RAM, args 'greeting=1'"),
		  "stdout: %s", o.out);
	json_object *vm = report_vm(o.report, 0);
	cr_assert_str_eq(json_str(vm, "status"), "exited");
	cr_assert_eq(json_int(vm, "exit_code"), 0);
	cr_assert_eq(json_int(vm, "mem_bytes"), 64 << 20);
	cr_assert_eq(json_path_int(o.report, "totals.succeeded"), 1);
	vmm_output_free(&o);
}

Test(e2e_run, pattern_verifies_every_page)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--vms", "2", "--mem", "32M", "pattern", "--", "mb=16", "zero=25",
		     "shared=50", "volatile=10", "rounds=3");
	cr_assert_eq(o.status, 0, "stderr: %s\nstdout: %s", o.err, o.out);
	cr_assert(strstr(o.out, "vm0| pattern: all 4096 pages verified"), "%s", o.out);
	cr_assert(strstr(o.out, "vm1| pattern: all 4096 pages verified"), "%s", o.out);
	for (int i = 0; i < 2; i++) {
		json_object *vm = report_vm(o.report, i);
		cr_assert_eq(json_path_int(vm, "guest_values.pages"), 4096);
		cr_assert_eq(json_path_int(vm, "guest_values.bad_pages"), 0);
		cr_assert_gt(json_path_int(vm, "guest_values.rewritten_pages"), 0);
	}
	vmm_output_free(&o);
}

Test(e2e_run, faulting_guest_is_reported_and_others_finish)
{
	const char *config = "{\"groups\": ["
			     "{\"guest\": \"pattern\", \"args\": \"mb=8\", \"count\": 2},"
			     "{\"guest\": \"crash\", \"args\": \"kind=pf\"},"
			     "{\"guest\": \"pattern\", \"args\": \"mb=8\"}]}";
	char *path = write_temp_file(config, strlen(config), ".json");
	struct vmm_output o;
	vmm_run_json(&o, "run", "--config", path);
	cr_assert_eq(o.status, 1, "one guest failed, so the exit status is 1");
	cr_assert(strstr(o.err, "vm2: guest exception #PF at rip=0x"), "stderr: %s", o.err);
	cr_assert(strstr(o.err, "cr2=0x8 "), "the fault address is reported: %s", o.err);
	cr_assert_str_eq(json_str(report_vm(o.report, 2), "status"), "exception");
	for (int i = 0; i < 4; i++) {
		if (i == 2)
			continue;
		cr_assert_str_eq(json_str(report_vm(o.report, i), "status"), "exited");
		cr_assert_eq(json_int(report_vm(o.report, i), "exit_code"), 0);
	}
	cr_assert_eq(json_path_int(o.report, "totals.failed"), 1);
	vmm_output_free(&o);
	unlink(path);
	free(path);
}

Test(e2e_run, every_exception_kind_is_named)
{
	static const char *const kinds[][2] = {{"kind=ud", "#UD at rip=0x"},
					       {"kind=gp", "#GP at rip=0x"},
					       {"kind=de", "#DE at rip=0x"}};
	for (int i = 0; i < 3; i++) {
		struct vmm_output o;
		vmm_run(&o, "run", "--quiet", "crash", "--", kinds[i][0]);
		cr_assert_eq(o.status, 1);
		cr_assert(strstr(o.err, kinds[i][1]), "%s: stderr %s", kinds[i][0], o.err);
		vmm_output_free(&o);
	}
}

Test(e2e_run, guest_exit_code_is_reported)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "crash", "--", "kind=exit", "code=3");
	cr_assert_eq(o.status, 1);
	cr_assert_eq(json_int(report_vm(o.report, 0), "exit_code"), 3);
	vmm_output_free(&o);

	/* A guest refusing its arguments exits with 2; the VMM reports failure. */
	vmm_run(&o, "run", "pattern", "--", "mb=8", "bogus=1");
	cr_assert_eq(o.status, 1);
	cr_assert(strstr(o.out, "vm0| error: pattern: unknown argument 'bogus'"), "%s", o.out);
	vmm_output_free(&o);
}

Test(e2e_run, thirty_two_vms_at_once)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--vms", "32", "--mem", "8M", "pattern", "--", "mb=2", "shared=50");
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	cr_assert_eq(json_path_int(o.report, "totals.vms"), 32);
	cr_assert_eq(json_path_int(o.report, "totals.succeeded"), 32);
	for (int i = 0; i < 32; i++) {
		char prefix[64];
		snprintf(prefix, sizeof(prefix), "vm%d| pattern: all 512 pages verified", i);
		cr_assert(strstr(o.out, prefix), "missing '%s'", prefix);
	}
	vmm_output_free(&o);
}

Test(e2e_run, bad_input_exits_2_with_one_line)
{
	struct vmm_output o;
	vmm_run(&o, "run", "--mem", "64Q", "hello");
	expect_input_error(&o, "vmm: bad size '64Q': unknown suffix 'Q'");
	vmm_run(&o, "run", "--vms", "0", "hello");
	expect_input_error(&o, "the VM count must be at least 1");
	vmm_run(&o, "run", "no-such-guest");
	expect_input_error(&o, "unknown guest 'no-such-guest'");
	vmm_run(&o, "run", "/nonexistent/guest.elf");
	expect_input_error(&o, "cannot read guest /nonexistent/guest.elf: No such file");
	vmm_run(&o, "run", "/tmp");
	expect_input_error(&o, "guest /tmp is not a regular file");
	vmm_run(&o, "frobnicate");
	expect_input_error(&o, "unknown command 'frobnicate'");
	vmm_run(&o, "run", "--json", "/nonexistent/dir/r.json", "hello");
	expect_input_error(&o, "cannot write the JSON report /nonexistent/dir/r.json");

	const char *text = "#!/bin/sh\necho not an elf\n";
	char *path = write_temp_file(text, strlen(text), ".elf");
	vmm_run(&o, "run", path);
	expect_input_error(&o, "not an ELF file");
	unlink(path);
	free(path);

	struct crafted_elf e;
	size_t size = craft_elf(&e, 0x100000, 100ull << 20);
	path = write_temp_file(&e, size, ".elf");
	vmm_run(&o, "run", "--mem", "64M", path);
	expect_input_error(&o, "does not fit in 64 MiB of guest memory");
	unlink(path);
	free(path);
}

Test(e2e_run, crafted_guest_runs)
{
	struct crafted_elf e;
	size_t size = craft_elf(&e, 0x100000, 4096);
	char *path = write_temp_file(&e, size, ".elf");
	struct vmm_output o;
	vmm_run_json(&o, "run", path);
	cr_assert_eq(o.status, 1, "exits with 42, so the run fails");
	cr_assert_eq(json_int(report_vm(o.report, 0), "exit_code"), 42);
	vmm_output_free(&o);
	unlink(path);
	free(path);
}
