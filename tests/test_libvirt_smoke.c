/*
 * test_libvirt_smoke.c - the libvirt harness of bench/bench_libvirt.c, small:
 * `bench_libvirt --smoke` boots 2 QEMU (TCG) domains of `pattern mb=8` under
 * its private libvirtd with Linux's ksmd, then the same 2 guests under vmm.
 *
 * Checks that both domains ran pattern to exit 0 with every page verified,
 * that ksmd merged something (pages_sharing > 0 at some point) and so did our
 * KSM, and that the teardown left nothing behind: the daemon and every QEMU
 * process are gone (by pid, and no process names the run's temporary
 * directory), the temporary directory is removed and the KSM knobs are back
 * to what they were. Needs root, libvirt-daemon-system, qemu-system-x86 and
 * the bench_libvirt binary (libvirt-dev); scripts/test.sh installs them, and
 * a machine without them fails here with a message that says which is
 * missing.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_support.h"

#ifndef BENCH_LIBVIRT
#error "BENCH_LIBVIRT must name the bench_libvirt binary (empty if it was not built)"
#endif

static const char *const knobs[] = {"run", "pages_to_scan", "sleep_millisecs", "use_zero_pages",
				    "max_page_sharing"};
#define NKNOBS (sizeof(knobs) / sizeof(knobs[0]))

static void read_knobs(char values[NKNOBS][32])
{
	for (size_t i = 0; i < NKNOBS; i++) {
		char path[128];
		snprintf(path, sizeof(path), "/sys/kernel/mm/ksm/%s", knobs[i]);
		FILE *f = fopen(path, "r");
		values[i][0] = 0;
		if (f) {
			if (!fgets(values[i], 32, f))
				values[i][0] = 0;
			fclose(f);
		}
	}
}

static int pid_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

/* Processes whose command line mentions `needle` (the run's temp dir). */
static int processes_naming(const char *needle)
{
	int found = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0 || pid == getpid())
			continue;
		char path[64], buf[8192];
		snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		for (size_t i = 0; i < n; i++)
			if (!buf[i])
				buf[i] = ' ';
		buf[n] = 0;
		if (strstr(buf, needle)) {
			cr_log_error("left behind: pid %ld: %.200s", pid, buf);
			found++;
		}
	}
	if (d)
		closedir(d);
	return found;
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;
	if (o)
		json_object_object_get_ex(o, key, &v);
	return v;
}

static void check_prerequisites(void)
{
	if (!BENCH_LIBVIRT[0])
		cr_assert_fail("bench_libvirt was not built: libvirt-dev is missing "
			       "(scripts/install-deps.sh libvirt-dev, then rebuild)");
	if (geteuid() != 0)
		cr_assert_fail("the libvirt smoke test needs root (private libvirtd, "
			       "/sys/kernel/mm/ksm)");
	if (access("/usr/sbin/libvirtd", X_OK))
		cr_assert_fail(
			"/usr/sbin/libvirtd is missing: apt-get install libvirt-daemon-system");
	if (access("/usr/bin/qemu-system-x86_64", X_OK))
		cr_assert_fail(
			"/usr/bin/qemu-system-x86_64 is missing: apt-get install qemu-system-x86");
	if (access("/sys/kernel/mm/ksm/run", W_OK))
		cr_assert_fail("/sys/kernel/mm/ksm/run is not writable: no KSM in this kernel?");
	if (access(BENCH_LIBVIRT, X_OK))
		cr_assert_fail("%s: %s", BENCH_LIBVIRT, strerror(errno));
}

Test(libvirt_smoke, two_domains_merge_and_teardown, .timeout = 240)
{
	check_prerequisites();
	char before[NKNOBS][32], after[NKNOBS][32];
	read_knobs(before);
	char out_dir[] = "/tmp/vmm-test-libvirt-XXXXXX";
	cr_assert_not_null(mkdtemp(out_dir));
	const char *args[] = {"--smoke", "--out", out_dir, NULL};
	struct vmm_output o;
	vmm_process_run(&o, BENCH_LIBVIRT, args, 1, NULL, 0);
	read_knobs(after);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", out_dir);
	cr_expect_eq(system(cmd), 0);

	cr_assert_eq(o.status, 0, "bench_libvirt --smoke failed (status %d):\n%s\n%s", o.status,
		     o.out, o.err);
	cr_assert_not_null(o.report, "no JSON report:\n%s", o.err);
	cr_expect_lt(o.wall_seconds, 60.0, "the smoke run took %.1f s", o.wall_seconds);

	json_object *ksmd = get(o.report, "ksmd"), *vmm = get(o.report, "vmm");
	cr_assert_not_null(ksmd);
	cr_assert_not_null(vmm);

	/* Both domains ran pattern to exit 0, every page verified. */
	json_object *guests = get(ksmd, "guests");
	cr_assert_not_null(guests);
	cr_assert_eq(json_object_array_length(guests), 2);
	for (size_t i = 0; i < 2; i++) {
		json_object *g = json_object_array_get_idx(guests, i);
		cr_expect(json_object_get_boolean(get(g, "booted")), "domain %zu did not boot", i);
		cr_expect(json_object_get_boolean(get(g, "exited")), "domain %zu: no @exit", i);
		cr_expect_eq(json_int(g, "exit_code"), 0, "domain %zu exit code: %s", i,
			     json_str(g, "console_last_line"));
		cr_expect(json_object_get_boolean(get(g, "verified")),
			  "domain %zu: pattern did not verify its pages", i);
		cr_expect_eq(json_path_int(g, "guest_values.bad_pages"), 0);
		cr_expect(json_object_get_boolean(get(g, "guest_ram_mergeable")),
			  "domain %zu: guest RAM not MADV_MERGEABLE", i);
	}

	/* ksmd merged something; so did ours; both on the same content. */
	cr_expect_gt(json_int(ksmd, "max_pages_sharing"), 0, "ksmd never merged a page");
	cr_expect_gt(json_int(ksmd, "peak_saved_pages"), 0);
	cr_expect_gt(json_int(vmm, "max_pages_sharing"), 0, "our KSM never merged a page");
	cr_expect_eq(json_int(vmm, "guests_ok"), 2, "our guests did not all exit 0");
	cr_expect_gt(json_int(o.report, "ideal_pages"), 0);

	/* Teardown: no daemon, no QEMU, no temp dir, the knobs as before. */
	json_object *td = get(ksmd, "teardown");
	cr_expect(json_object_get_boolean(get(td, "temp_dir_removed")));
	pid_t daemon = (pid_t)json_int(ksmd, "daemon_pid");
	cr_expect_gt(daemon, 0);
	cr_expect_not(pid_alive(daemon), "libvirtd %d is still running", daemon);
	for (size_t i = 0; i < 2; i++) {
		pid_t q = (pid_t)json_int(json_object_array_get_idx(guests, i), "qemu_pid");
		cr_expect_gt(q, 0);
		cr_expect_not(pid_alive(q), "QEMU %d is still running", q);
	}
	const char *tmp = json_str(ksmd, "temp_dir");
	cr_expect(strncmp(tmp, "/tmp/bench-libvirt-", 19) == 0, "temp dir '%s'", tmp);
	struct stat st;
	cr_expect_neq(stat(tmp, &st), 0, "%s is still there", tmp);
	cr_expect_eq(processes_naming(tmp), 0, "processes naming %s are still running", tmp);
	for (size_t i = 0; i < NKNOBS; i++)
		cr_expect_str_eq(after[i], before[i], "/sys/kernel/mm/ksm/%s not restored",
				 knobs[i]);
	vmm_output_free(&o);
}
