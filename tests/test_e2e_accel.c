/* test_e2e_accel.c - choosing the accelerator: --accel auto|kvm|tcg and the
 * config's "accel", the fallback note, the errors when KVM is unusable (each
 * provoked through VMM_KVM_DEVICE, so they run the same with or without
 * /dev/kvm), and the accelerator named in both reports. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_support.h"

#define NOTE_MISSING                                                                       \
	"vmm: /dev/kvm not usable (/nonexistent/kvm does not exist: KVM is not available " \
	"on this host): running guests on the TCG emulator\n"

static void run_env(struct vmm_output *o, const char *device, uid_t uid, int json,
		    const char *const *argv)
{
	char env0[300];
	snprintf(env0, sizeof(env0), "VMM_KVM_DEVICE=%s", device);
	const char *const env[] = {env0, NULL};
	vmm_process_set_accel(NULL);
	vmm_process_run(o, test_vmm_binary(), argv, json, env, uid);
}

Test(e2e_accel, auto_falls_back_to_tcg_and_says_so_once)
{
	struct vmm_output o;
	const char *const argv[] = {"run", "--vms", "3", "hello", NULL};
	run_env(&o, "/nonexistent/kvm", 0, 1, argv);
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	cr_assert_str_eq(o.err, NOTE_MISSING, "the note, once: '%s'", o.err);
	cr_assert_str_eq(json_str(o.report, "accel"), "tcg");
	cr_assert_str_eq(json_str(o.report, "kvm_unusable"),
			 "/nonexistent/kvm does not exist: KVM is not available on this host");
	cr_assert_eq(json_path_int(o.report, "totals.succeeded"), 3);
	cr_assert(strstr(o.out, "vm2| hello from vm2 of 3"), "stdout: %s", o.out);
	cr_assert(strstr(o.out, ", accel tcg (mmu: owned page table)\n"),
		  "the table names the accelerator and how it reaches memory: %s", o.out);
	cr_assert_str_eq(json_str(o.report, "mmu"), "owned");
	vmm_output_free(&o);
}

Test(e2e_accel, tcg_is_used_when_asked_even_with_kvm)
{
	struct vmm_output o;
	vmm_process_set_accel(NULL);
	const char *const argv[] = {"run", "--accel", "tcg", "hello", NULL};
	vmm_process_run(&o, test_vmm_binary(), argv, 1, NULL, 0);
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	cr_assert_str_eq(o.err, "", "no note when TCG was asked for");
	cr_assert_str_eq(json_str(o.report, "accel"), "tcg");
	cr_assert_null(json_object_object_get(o.report, "kvm_unusable"));
	vmm_output_free(&o);
}

Test(e2e_accel, kvm_when_unusable_is_an_input_error)
{
	struct vmm_output o;
	const char *const argv[] = {"run", "--accel", "kvm", "hello", NULL};
	run_env(&o, "/nonexistent/kvm", 0, 0, argv);
	expect_input_error(&o, "--accel kvm: /nonexistent/kvm does not exist: KVM is not "
			       "available on this host");

	/* A file that is not a KVM device. */
	char *plain = write_temp_file("not kvm", 7, ".kvm");
	run_env(&o, plain, 0, 0, argv);
	expect_input_error(&o, "speaks KVM API -1, expected 12");

	/* No permission: a root-only device node stand-in, opened as nobody. */
	cr_assert_eq(geteuid(), 0, "the suite runs as root (README)");
	chmod(plain, 0600);
	run_env(&o, plain, 65534, 0, argv);
	char why[400];
	snprintf(why, sizeof(why), "--accel kvm: no permission to open %s", plain);
	expect_input_error(&o, why);
	unlink(plain);
	free(plain);
}

Test(e2e_accel, bad_accel_values)
{
	struct vmm_output o;
	vmm_run(&o, "run", "--accel", "qemu", "hello");
	expect_input_error(&o, "--accel: 'qemu' is not auto, kvm or tcg");
	const char *configs[] = {"{\"accel\": \"hvf\", \"groups\": [{\"guest\": \"hello\"}]}",
				 "{\"accel\": 1, \"groups\": [{\"guest\": \"hello\"}]}"};
	for (int i = 0; i < 2; i++) {
		char *path = write_temp_file(configs[i], strlen(configs[i]), ".json");
		vmm_run(&o, "run", "--config", path);
		expect_input_error(&o, ": accel: expected \"auto\", \"kvm\" or \"tcg\"");
		unlink(path);
		free(path);
	}
}

Test(e2e_accel, config_chooses_and_the_command_line_overrides)
{
	const char *config = "{\"accel\": \"kvm\", \"groups\": [{\"guest\": \"hello\"}]}";
	char *path = write_temp_file(config, strlen(config), ".json");
	struct vmm_output o;
	/* The config asks for KVM, which this device cannot give... */
	const char *const from_file[] = {"run", "--config", path, NULL};
	run_env(&o, "/nonexistent/kvm", 0, 0, from_file);
	expect_input_error(&o, "--accel kvm: /nonexistent/kvm does not exist");
	/* ...and --accel on the command line wins. */
	const char *const overridden[] = {"run", "--accel", "tcg", "--config", path, NULL};
	run_env(&o, "/nonexistent/kvm", 0, 1, overridden);
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	cr_assert_str_eq(json_str(o.report, "accel"), "tcg");
	vmm_output_free(&o);
	unlink(path);
	free(path);
}
