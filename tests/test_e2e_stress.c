/* test_e2e_stress.c - everything at once, with the host failing under it.
 *
 * Twelve guests on a pool that holds about half of what they touch: KSM at
 * max rate, swap with zswap in front, memory.max on some, an OOM-immune
 * group, guests ending at different times; and injected failures of every
 * kind (io/fault_inject.h) spread over the run. Afterwards:
 *   - no guest read wrong data: every guest that ran to its end verified
 *     every page (pattern also checks that its fresh memory reads as
 *     zeroes first, so a frame leaking another guest's data fails it);
 *   - the guests the failures hit ended with a message, as errors, and
 *     nothing else (no exception, no crash of the VMM);
 *   - nothing leaked: the pool is empty again, every swap slot and zswap
 *     entry is free, no frame was lost;
 *   - the run ended, within the test's time bound. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_support.h"

#define VMS 12

/* Every kind, spread out; those that end a VM (all but punch-hole, which
 * is zeroing instead, and uring-submit, which is retried) only once or
 * twice, so that enough guests live to the end to verify their pages. */
static const char *faults =
	"mmap:1:900,uffd-register:1:1200,uffd-wp:1:600,punch-hole:50:40,frame-alloc:2:3000,"
	"alloc:2:3000,uring-submit:20:60,write-eio:1:800,read-eio:1:600,short-read:1:800,"
	"corrupt:1:900";

/* The pool's zero run (KSM's use_zero_pages) stays allocated to the end. */
#define ZERO_RUN_BYTES (512 * 4096)

Test(e2e_stress, everything_at_once_under_injected_failures, .timeout = 240)
{
	char swap[128], config[1024];
	snprintf(swap, sizeof(swap), "/var/tmp/vmm-stress-%d.swap", getpid());
	remove_at_exit(swap);
	snprintf(config, sizeof(config),
		 "{\"memory\": {\"host_mem\": \"72M\"},"
		 " \"ksm\": {\"enabled\": true, \"rate\": \"max\"},"
		 " \"swap\": {\"file\": \"%s\", \"size\": \"256M\", \"zswap\": \"8M\"},"
		 " \"mem\": \"24M\","
		 " \"groups\": ["
		 "  {\"name\": \"merge\", \"guest\": \"pattern\", \"count\": 6, \"args\":"
		 "   \"mb=12 zero=20 shared=40 volatile=10 rounds=3 hold=150\"},"
		 "  {\"name\": \"short\", \"guest\": \"pattern\", \"count\": 2, \"args\":"
		 "   \"mb=6 shared=50\"},"
		 "  {\"name\": \"limited\", \"guest\": \"touch\", \"count\": 2, \"args\":"
		 "   \"mb=16 passes=4 hot=30\", \"memory_max\": \"10M\"},"
		 "  {\"name\": \"immune\", \"guest\": \"touch\", \"count\": 2, \"args\":"
		 "   \"mb=12 passes=3 hot=50 order=random\", \"oom_score_adj\": -1000}]}",
		 swap);
	char *path = write_temp_file(config, strlen(config), ".json");
	char env[512];
	snprintf(env, sizeof(env), "VMM_FAULT=%s", faults);
	const char *const envp[] = {env, NULL};
	/* Not --quiet: a guest that finds wrong data says which page, in o.out. */
	const char *const args[] = {"run", "--config", path, NULL};
	struct vmm_output o;
	vmm_run_full(&o, args, 1, envp, 0);
	cr_assert(o.status == 0 || o.status == 1, "vmm exit status %d, stderr:\n%s", o.status,
		  o.err);
	cr_assert_not_null(o.report, "no report; stderr:\n%s", o.err);

	int verified = 0, ended = 0;
	int64_t pages = 0;
	for (int i = 0; i < VMS; i++) {
		json_object *vm = report_vm(o.report, i);
		const char *status = json_str(vm, "status");
		if (strcmp(status, "exited") == 0) {
			cr_assert_eq(
				json_int(vm, "exit_code"), 0,
				"vm%d found wrong data in its memory; stdout:\n%s\nstderr:\n%s", i,
				o.out, o.err);
			verified++;
			pages += json_path_int(vm, "memory.rss_pages");
		} else {
			cr_assert_str_eq(status, "error", "vm%d: %s", i, o.err);
			ended++;
		}
	}
	cr_assert_eq(verified + ended, VMS);
	cr_assert_geq(verified, VMS / 3, "too few guests survived to tell anything: %d", verified);
	json_object *r = o.report;
	cr_assert_gt(json_path_int(r, "swap.pswpout"), 0, "the pool was overcommitted");
	cr_assert_gt(json_path_int(r, "ksm.merges"), 0);
	/* Nothing leaked. */
	cr_assert_eq(json_path_int(r, "memory.used_bytes"), ZERO_RUN_BYTES,
		     "frames still in use besides the zero run");
	cr_assert_eq(json_path_int(r, "memory.frames_lost"), 0);
	cr_assert_eq(json_path_int(r, "swap.SwapFree"), json_path_int(r, "swap.SwapTotal"),
		     "swap slots still taken");
	cr_assert_eq(json_path_int(r, "swap.zswap_pages"), 0, "zswap entries left");
	json_object *inj = json_object_object_get(r, "faults_injected");
	cr_assert_not_null(inj, "no failure was injected");
	int64_t injected = 0;
	json_object_object_foreach (inj, kind, count) {
		(void)kind;
		injected += json_object_get_int64(count);
	}
	cr_assert_gt(injected, 10);
	cr_log_info("stress: %ld failures injected (%s), %d VMs ended by them or the OOM "
		    "killer, %d verified every page (%ld resident pages at their end), "
		    "%ld pages swapped out, %ld merges, %.1f s",
		    (long)injected, json_object_to_json_string(inj), ended, verified, (long)pages,
		    (long)json_path_int(r, "swap.pswpout"), (long)json_path_int(r, "ksm.merges"),
		    json_path_double(r, "wall_seconds"));
	vmm_output_free(&o);
	free(path);
}
