/* test_e2e_swap.c - end-to-end swap: overcommitted guests (KVM or TCG) with a
 * swap file, working sets, injected I/O failures, OOM, per-VM limits. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.h"

/* A swap file path unique to this test process, removed by the VMM. */
static const char *swap_path(void)
{
	static char path[128];
	if (!path[0]) {
		snprintf(path, sizeof(path), "/var/tmp/vmm-e2e-%d.swap", getpid());
		remove_at_exit(path); /* --keep-swap tests, and runs that fail */
	}
	return path;
}

static int64_t vm_event(json_object *report, int vm, const char *key)
{
	json_object *mem = json_object_object_get(report_vm(report, vm), "memory");
	json_object *ev = mem ? json_object_object_get(mem, "memory.events") : NULL;
	return json_int(ev, key);
}

static int count_status(json_object *report, int n, const char *status)
{
	int c = 0;
	for (int i = 0; i < n; i++)
		c += strcmp(json_str(report_vm(report, i), "status"), status) == 0;
	return c;
}

Test(e2e_swap, overcommitted_guests_verify_every_page)
{
	struct vmm_output o;
	/* 4 x 32 MiB of data in a 64 MiB pool, held together for a while: a
	 * VM that raced ahead and ended early would leave the others room (a
	 * run of this test once swapped fewer than 10000 pages so). */
	vmm_run_json(&o, "run", "--vms", "4", "--mem", "48M", "--host-mem", "64M", "--swap",
		     swap_path(), "--swap-size", "512M", "pattern", "--", "mb=32", "zero=10",
		     "shared=20", "hold=200");
	cr_assert_eq(o.status, 0, "stdout: %s\nstderr: %s", o.out, o.err);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(json_path_int(report_vm(o.report, i), "guest_values.bad_pages"), 0);
	cr_assert_gt(json_path_int(o.report, "swap.pswpout"), 10000);
	cr_assert_gt(json_path_int(o.report, "swap.pswpin"), 1000);
	cr_assert_eq(json_path_int(o.report, "swap.SwapTotal"), 512 << 20);
	cr_assert_leq(json_path_int(o.report, "memory.peak_used_bytes"), 64 << 20);
	struct stat st;
	cr_assert_neq(stat(swap_path(), &st), 0, "the swap file is removed at exit");
	vmm_output_free(&o);
}

static int64_t touch_swapins(const char *passes, int64_t *hot_pages)
{
	char arg[32];
	snprintf(arg, sizeof(arg), "passes=%s", passes);
	struct vmm_output o;
	vmm_run_json(&o, "run", "--mem", "48M", "--memory-max", "16M", "--swap", swap_path(),
		     "--swap-size", "256M", "touch", "--", "mb=32", "hot=20", arg);
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	*hot_pages = json_path_int(report_vm(o.report, 0), "guest_values.hot_pages");
	int64_t n = vm_mem(o.report, 0, "pswpin");
	vmm_output_free(&o);
	return n;
}

Test(e2e_swap, a_hot_set_that_fits_stays_resident)
{
	/* 32 MiB touched once, a 20% hot set (~6.5 MiB) touched every pass,
	 * under a 16 MiB limit: after warming up, passes refault little. */
	int64_t hot, hot2;
	int64_t early = touch_swapins("4", &hot);
	int64_t late = touch_swapins("12", &hot2);
	cr_assert_gt(hot, 1500);
	cr_assert_eq(hot, hot2);
	cr_assert_lt(late - early, hot,
		     "8 more passes over %ld hot pages swapped in %ld more pages (%ld vs %ld)", hot,
		     late - early, late, early);
}

static void injected_failure(const char *fault, const char *message)
{
	char env[64];
	snprintf(env, sizeof(env), "VMM_FAULT=%s", fault);
	const char *const envp[] = {env, NULL};
	const char *const args[] = {"run",	    "--vms",   "2",	 "--mem",     "80M",
				    "--memory-max", "24M",     "--swap", swap_path(), "--swap-size",
				    "256M",	    "pattern", "--",	 "mb=40",     NULL};
	struct vmm_output o;
	vmm_run_full(&o, args, 1, envp, 0);
	cr_assert_eq(o.status, 1);
	cr_assert(strstr(o.err, message), "%s: stderr %s", fault, o.err);
	cr_assert_eq(count_status(o.report, 2, "error"), 1, "exactly one VM ends");
	cr_assert_eq(count_status(o.report, 2, "exited"), 1, "the other goes on");
	for (int i = 0; i < 2; i++)
		if (strcmp(json_str(report_vm(o.report, i), "status"), "exited") == 0)
			cr_assert_eq(json_int(report_vm(o.report, i), "exit_code"), 0);
	vmm_output_free(&o);
}

Test(e2e_swap, a_write_error_ends_only_its_vm)
{
	injected_failure("write-eio:1", "failed (Input/output error): guest data lost");
}

Test(e2e_swap, a_corrupted_slot_ends_only_its_vm)
{
	injected_failure("corrupt:1", "checksum mismatch (corrupted swap data)");
}

Test(e2e_swap, a_read_error_ends_only_its_vm)
{
	injected_failure("read-eio:1", "failed: Input/output error");
}

Test(e2e_swap, swap_full_kills_the_highest_badness_only)
{
	/* 58 MiB wanted, 32 MiB pool + 12 MiB swap: someone must go. The
	 * biggest guest cannot be chosen (-1000); the small one counts for
	 * almost nothing (-999); the medium one is killed. */
	char config[1024];
	snprintf(config, sizeof(config),
		 "{\"memory\": {\"host_mem\": \"32M\"}, \"swap\": {\"file\": \"%s\", \"size\": "
		 "\"12M\"}, \"groups\": ["
		 "{\"name\": \"big\", \"guest\": \"pattern\", \"mem\": \"48M\", \"args\": \"mb=30 "
		 "hold=3000\", \"oom_score_adj\": -1000},"
		 "{\"name\": \"medium\", \"guest\": \"pattern\", \"args\": \"mb=20 hold=3000\"},"
		 "{\"name\": \"small\", \"guest\": \"pattern\", \"args\": \"mb=8 hold=3000\", "
		 "\"oom_score_adj\": -999}]}",
		 swap_path());
	char *path = write_temp_file(config, strlen(config), ".json");
	struct vmm_output o;
	vmm_run_json(&o, "run", "--config", path);
	cr_assert_eq(o.status, 1);
	const char *killed = strstr(o.err, "vm1: out of memory: killed by the OOM killer");
	cr_assert(killed, "stderr: %s", o.err);
	cr_assert_null(strstr(killed + 1, "vm1: "), "told once: %s", o.err);
	cr_assert_str_eq(json_str(report_vm(o.report, 1), "status"), "error");
	cr_assert_eq(vm_event(o.report, 1, "oom_kill"), 1);
	for (int i = 0; i < 3; i += 2) {
		cr_assert_str_eq(json_str(report_vm(o.report, i), "status"), "exited");
		cr_assert_eq(json_int(report_vm(o.report, i), "exit_code"), 0);
	}
	cr_assert_eq(json_path_int(o.report, "swap.oom_kills"), 1);
	vmm_output_free(&o);
	unlink(path);
	free(path);
}

Test(e2e_swap, memory_max_holds)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--vms", "2", "--mem", "48M", "--memory-max", "16M", "--swap",
		     swap_path(), "--swap-size", "256M", "pattern", "--", "mb=24");
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	for (int i = 0; i < 2; i++) {
		cr_assert_leq(vm_mem(o.report, i, "Rss"), 16 << 20);
		cr_assert_gt(vm_mem(o.report, i, "Swap"), 4 << 20);
		cr_assert_gt(vm_event(o.report, i, "max"), 0);
		cr_assert_eq(vm_event(o.report, i, "oom_kill"), 0);
	}
	vmm_output_free(&o);
}

Test(e2e_swap, memory_max_without_swap_is_an_oom)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--mem", "80M", "--memory-max", "24M", "pattern", "--", "mb=40");
	cr_assert_eq(o.status, 1);
	cr_assert(strstr(o.err, "memory.max (6144 pages) reached and nothing left to reclaim"),
		  "stderr: %s", o.err);
	cr_assert_eq(vm_event(o.report, 0, "oom_kill"), 1);
	vmm_output_free(&o);
}

Test(e2e_swap, memory_high_throttles_and_trims)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--mem", "80M", "--memory-high", "24M", "--swap", swap_path(),
		     "--swap-size", "256M", "pattern", "--", "mb=40", "hold=500");
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	cr_assert_gt(vm_event(o.report, 0, "high"), 0);
	cr_assert_gt(json_path_double(report_vm(o.report, 0), "memory.throttled_seconds"), 0.0);
	cr_assert_gt(vm_mem(o.report, 0, "pswpout"), 0, "kswapd trimmed it");
	vmm_output_free(&o);
}

Test(e2e_swap, zswap_serves_compressible_pages)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--mem", "80M", "--memory-max", "24M", "--swap", swap_path(),
		     "--swap-size", "256M", "--zswap", "64M", "pattern", "--", "mb=40", "zero=60");
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	cr_assert_gt(json_path_int(o.report, "swap.zswap_hits"), 1000);
	vmm_output_free(&o);
}

Test(e2e_swap, bad_swap_options)
{
	struct vmm_output o;
	vmm_run(&o, "run", "--swap-size", "64M", "hello");
	expect_input_error(&o, "--swap-size given without --swap FILE");
	vmm_run(&o, "run", "--zswap", "64M", "hello");
	expect_input_error(&o, "it needs --swap FILE");
	vmm_run(&o, "run", "--memory-high", "64M", "--memory-max", "32M", "hello");
	expect_input_error(&o, "memory.high is above memory.max");
	vmm_run(&o, "run", "--oom-score-adj", "2000", "hello");
	expect_input_error(&o, "expected -1000..1000");
	vmm_run(&o, "run", "--swap", "/nonexistent/dir/swap", "hello");
	expect_input_error(&o, "/nonexistent/dir/swap");
	char *existing = write_temp_file("x", 1, ".swap");
	vmm_run(&o, "run", "--swap", existing, "hello");
	expect_input_error(&o, "exists");
	unlink(existing);
	free(existing);
}

/* SIGTERM at any moment, set-up included (creating the swap file, raising
 * vm.max_map_count), leaves neither behind: the signal waits until the
 * fleet exists and then tears it down. Found by review: signals were only
 * handled once the guests ran. */
Test(e2e_swap, a_signal_during_set_up_leaves_nothing_behind)
{
	static const int delays_ms[] = {0, 1, 3, 6, 10, 20, 40, 80};
	for (size_t d = 0; d < sizeof(delays_ms) / sizeof(delays_ms[0]); d++) {
		unlink(swap_path());
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);
			dup2(null, 1);
			dup2(null, 2);
			const char *accel = test_accel() ? test_accel() : "auto";
			execl(test_vmm_binary(), test_vmm_binary(), "run", "--accel", accel,
			      "--quiet", "--vms", "32", "--mem", "64M", "--ksm", "--swap",
			      swap_path(), "--swap-size", "1G", "pattern", "--", "mb=32",
			      (char *)NULL);
			_exit(127);
		}
		usleep((useconds_t)delays_ms[d] * 1000);
		kill(pid, SIGTERM);
		int status;
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFSIGNALED(status) || WEXITSTATUS(status) == 130 ||
				  WEXITSTATUS(status) == 1,
			  "after %d ms: exit status %d", delays_ms[d], WEXITSTATUS(status));
		struct stat st;
		cr_assert_neq(stat(swap_path(), &st), 0, "after %d ms: the swap file is left",
			      delays_ms[d]);
		char entry[64];
		snprintf(entry, sizeof(entry), "/run/vmm/max_map_count/%d", (int)pid);
		cr_assert_neq(stat(entry, &st), 0,
			      "after %d ms: the vm.max_map_count registry still has the run",
			      delays_ms[d]);
	}
}
