/* test_e2e_memory.c - end-to-end: guests on the VMM-owned frame pool.
 * Lazy allocation with fault-around, pool exhaustion, frames returning to the
 * pool, zeroed reuse across VMs, 2 MiB blocks. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test_support.h"

#define PAGE 4096

/* Runs one pattern guest of mb MiB with the given fault-around; returns the
 * parsed report (caller frees). */
static json_object *run_pattern(const char *fault_around, const char *mb)
{
	struct vmm_output o;
	char arg[32];
	snprintf(arg, sizeof(arg), "mb=%s", mb);
	vmm_run_json(&o, "run", "--fault-around", fault_around, "--fault-ahead", "off", "pattern",
		     "--", arg);
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	json_object *report = json_object_get(o.report);
	vmm_output_free(&o);
	return report;
}

Test(e2e_memory, a_guest_uses_exactly_the_frames_it_touches)
{
	/* Same guest, 8 MiB more touched: exactly 2048 more frames, whatever
	 * the fault-around block, and the number of faults follows the block. */
	static const struct {
		const char *fault_around;
		int64_t block;
	} cases[] = {{"4K", 1}, {"64K", 16}, {"256K", 64}};
	for (int i = 0; i < 3; i++) {
		json_object *small = run_pattern(cases[i].fault_around, "8");
		json_object *big = run_pattern(cases[i].fault_around, "16");
		int64_t rss8 = vm_mem(small, 0, "rss_pages"), rss16 = vm_mem(big, 0, "rss_pages");
		cr_assert_eq(rss16 - rss8, 2048, "fault-around %s: Rss %ld -> %ld",
			     cases[i].fault_around, rss8, rss16);
		cr_assert_eq(vm_mem(big, 0, "faults") - vm_mem(small, 0, "faults"),
			     2048 / cases[i].block);
		cr_assert_eq(vm_mem(big, 0, "fault_around_pages") -
				     vm_mem(small, 0, "fault_around_pages"),
			     2048 - 2048 / cases[i].block);
		/* Every page of the buffer is resident; the rest of the 64 MiB
		 * costs nothing beyond the boot area, image, stack and the
		 * partly touched blocks at their edges. */
		cr_assert_eq(vm_mem(small, 0, "buffer_resident_pages"), 2048);
		cr_assert_leq(rss8, 2048 + 64 + 4 * cases[i].block, "Rss %ld", rss8);
		json_object_put(small);
		json_object_put(big);
	}
}

Test(e2e_memory, fault_ahead_follows_sequential_touches)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "touch", "--", "mb=32", "passes=1");
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	if (test_owned_page_table()) {
		/* A CPU fault costs less than a microsecond: no speculation,
		 * one fault per 64 KiB fault-around block. */
		cr_assert_eq(vm_mem(o.report, 0, "fault_ahead_pages"), 0);
		cr_assert_geq(vm_mem(o.report, 0, "faults"), 8192 / 16);
		cr_assert_leq(vm_mem(o.report, 0, "faults"), 8192 / 16 + 64);
		cr_assert_leq(vm_mem(o.report, 0, "rss_pages"), 8192 + 64 + 64);
		vmm_output_free(&o);
		return;
	}
	/* 8192 pages touched in order: after a few faults the window reaches
	 * 2 MiB and stays ahead of the guest. */
	cr_assert_lt(vm_mem(o.report, 0, "faults"), 64, "faults %ld",
		     vm_mem(o.report, 0, "faults"));
	cr_assert_gt(vm_mem(o.report, 0, "fault_ahead_pages"), 7000);
	/* Speculation stays within one window past what was touched. */
	cr_assert_leq(vm_mem(o.report, 0, "rss_pages"), 8192 + 512 + 64 + 64);
	vmm_output_free(&o);

	/* Random first touches get no fault-ahead. */
	vmm_run_json(&o, "run", "touch", "--", "mb=8", "passes=1", "order=random");
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	cr_assert_eq(vm_mem(o.report, 0, "fault_ahead_pages"), 0);
	vmm_output_free(&o);
}

Test(e2e_memory, pattern_verifies_on_the_pool_and_frames_return)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--vms", "4", "--mem", "32M", "--host-mem", "200M", "pattern", "--",
		     "mb=16", "zero=25", "shared=50", "volatile=10", "rounds=2");
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	json_object *r = o.report;
	cr_assert_str_eq(json_str(json_object_object_get(r, "memory"), "backing"), "pool");
	cr_assert_eq(json_path_int(r, "memory.MemTotal"), 200 << 20);
	/* Every frame is back, and coalesced into 4 MiB blocks. */
	cr_assert_eq(json_path_int(r, "memory.used_bytes"), 0);
	cr_assert_eq(json_path_int(r, "memory.MemFree"), 200 << 20);
	json_object *buddy =
		json_object_object_get(json_object_object_get(r, "memory"), "buddyinfo");
	cr_assert_eq(json_object_get_int64(json_object_array_get_idx(buddy, 10)), 50);
	for (int o_ = 0; o_ < 10; o_++)
		cr_assert_eq(json_object_get_int64(json_object_array_get_idx(buddy, o_)), 0);
	/* While they ran, the four guests held their frames. */
	cr_assert_geq(json_path_int(r, "memory.peak_used_bytes"), 16 << 20);
	for (int i = 0; i < 4; i++)
		cr_assert_geq(vm_mem(r, i, "rss_pages"), 4096);
	cr_assert_gt(json_path_int(r, "memory.vmas_peak"), 0);
	cr_assert_gt(json_path_int(r, "memory.metadata_bytes_per_guest_page"), 15);
	vmm_output_free(&o);
}

Test(e2e_memory, pool_exhaustion_stops_only_the_offending_vm)
{
	/* Two small guests finish long before the big one, which sleeps first
	 * and then needs more than the whole pool. */
	const char *config = "{\"memory\": {\"host_mem\": \"32M\"}, \"groups\": ["
			     "{\"guest\": \"pattern\", \"args\": \"mb=4\", \"count\": 2},"
			     "{\"guest\": \"pattern\", \"args\": \"mb=48 delay=300\"}]}";
	char *path = write_temp_file(config, strlen(config), ".json");
	struct vmm_output o;
	vmm_run_json(&o, "run", "--config", path);
	cr_assert_eq(o.status, 1);
	cr_assert(strstr(o.err, "vm2: out of memory (pool exhausted)"), "stderr: %s", o.err);
	cr_assert_str_eq(json_str(report_vm(o.report, 2), "status"), "error");
	cr_assert_str_eq(json_str(report_vm(o.report, 2), "message"),
			 "out of memory (pool exhausted)");
	for (int i = 0; i < 2; i++) {
		cr_assert_str_eq(json_str(report_vm(o.report, i), "status"), "exited");
		cr_assert_eq(json_int(report_vm(o.report, i), "exit_code"), 0);
	}
	/* The stopped VM's frames went back too. */
	cr_assert_eq(json_path_int(o.report, "memory.used_bytes"), 0);
	vmm_output_free(&o);
	unlink(path);
	free(path);
}

Test(e2e_memory, a_vm_never_sees_an_earlier_vms_data)
{
	/* The pool holds one of these guests, not two: vm1 starts after vm0
	 * has filled its memory with data and ended, so it runs on vm0's old
	 * frames, and pattern checks its fresh memory reads as zeroes. (vm0
	 * takes about a second, 2.5 s under ThreadSanitizer on TCG: vm1 waits
	 * 4 s.) */
	const char *config = "{\"memory\": {\"host_mem\": \"64M\"}, \"groups\": ["
			     "{\"guest\": \"pattern\", \"args\": \"mb=44 shared=30\"},"
			     "{\"guest\": \"pattern\", \"args\": \"mb=44 delay=4000\"}]}";
	char *path = write_temp_file(config, strlen(config), ".json");
	struct vmm_output o;
	vmm_run_json(&o, "run", "--config", path);
	cr_assert_eq(o.status, 0, "stdout: %s\nstderr: %s", o.out, o.err);
	cr_assert(strstr(o.out, "vm1| pattern: all 11264 pages verified"), "%s", o.out);
	cr_assert_leq(json_path_int(o.report, "memory.peak_used_bytes"), 64 << 20);
	cr_assert_geq(vm_mem(o.report, 1, "rss_pages") + vm_mem(o.report, 0, "rss_pages"),
		      (64 << 20) / PAGE,
		      "together they used more than the pool: frames were reused");
	vmm_output_free(&o);
	unlink(path);
	free(path);
}

Test(e2e_memory, thp_maps_2mib_blocks)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--thp", "always", "pattern", "--", "mb=16");
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	json_object *r = o.report;
	cr_assert_eq(json_path_int(r, "memory.fault_around_pages"), 512);
	/* 16 MiB from just above 1 MiB spans 9 blocks of 2 MiB; the stack and
	 * boot area add at most 2 more. */
	if (!test_owned_page_table()) {
		cr_assert_leq(vm_mem(r, 0, "faults"), 11);
		cr_assert_eq(vm_mem(r, 0, "rss_pages") % 512, 0);
	} else {
		/* Page 0 never gets a frame (the CPU must find it absent), so
		 * the first 2 MiB is filled in smaller blocks, as touched; the
		 * 8 blocks above it whole. */
		cr_assert_leq(vm_mem(r, 0, "faults"), 11 + 9);
		cr_assert_geq(vm_mem(r, 0, "fault_around_pages"), 8 * 511);
		cr_assert_lt(vm_mem(r, 0, "rss_pages"), 10 * 512);
	}
	vmm_output_free(&o);
}

Test(e2e_memory, anonymous_backing_is_the_baseline)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--backing", "anon", "pattern", "--", "mb=8");
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	cr_assert_null(json_object_object_get(o.report, "memory"), "no pool, no pool report");
	vmm_output_free(&o);
}

Test(e2e_memory, bad_memory_options)
{
	struct vmm_output o;
	vmm_run(&o, "run", "--fault-around", "3K", "hello");
	expect_input_error(&o, "fault-around must be a power of two");
	vmm_run(&o, "run", "--fault-around", "4M", "hello");
	expect_input_error(&o, "fault-around must be a power of two");
	vmm_run(&o, "run", "--fault-ahead", "3M", "hello");
	expect_input_error(&o, "fault-ahead must be off or a power of two");
	vmm_run(&o, "run", "--thp", "sometimes", "hello");
	expect_input_error(&o, "--thp: 'sometimes' is not always or never");
	vmm_run(&o, "run", "--backing", "disk", "hello");
	expect_input_error(&o, "--backing: 'disk' is not pool or anon");
	vmm_run(&o, "run", "--host-mem", "1M", "hello");
	expect_input_error(&o, "at least 4M");
	vmm_run(&o, "run", "--backing", "anon", "--host-mem", "64M", "hello");
	expect_input_error(&o, "does not apply to the anonymous backing");
}
