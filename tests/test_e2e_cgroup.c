/* test_e2e_cgroup.c - end-to-end memory cgroups above the VMs (mm/memcg.h):
 * a group's memory.max shared by its VMs, its OOM, memory.oom.group, the
 * report's cgroup figures, and the cgroup files of the control socket. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_support.h"
#include "vmm/control.h"

/* The report's entry for the cgroup at `path`. */
static json_object *report_cgroup(json_object *report, const char *path)
{
	json_object *all = json_object_object_get(report, "cgroups");
	for (size_t i = 0; all && i < json_object_array_length(all); i++) {
		json_object *cg = json_object_array_get_idx(all, i);
		if (strcmp(json_str(cg, "path"), path) == 0)
			return cg;
	}
	cr_assert_fail("no cgroup %s in the report", path);
	return NULL;
}

static int64_t cgroup_event(json_object *report, const char *path, const char *file,
			    const char *key)
{
	return json_int(json_object_object_get(report_cgroup(report, path), file), key);
}

/* A swap file path of this test's process (each test runs in its own),
 * removed by the VMM, or at exit if the test fails first. */
static const char *swap_path(void)
{
	static char path[128];
	if (!path[0]) {
		snprintf(path, sizeof(path), "/var/tmp/vmm-e2e-cgroup-%d.swap", getpid());
		remove_at_exit(path);
	}
	return path;
}

/* Runs the fleet of the JSON config `text`. */
static void run_config(struct vmm_output *o, const char *text)
{
	char *path = write_temp_file(text, strlen(text), ".json");
	vmm_run_json(o, "run", "--config", path);
	unlink(path);
	free(path);
}

Test(e2e_cgroup, a_groups_memory_max_holds_across_its_vms)
{
	struct vmm_output o;
	/* Two VMs of 16 MiB data each, held together for a while, under one
	 * 24 MiB limit, with swap; a third VM outside it. */
	const char *swap = swap_path();
	char config[1024];
	snprintf(config, sizeof(config),
		 "{\"swap\": {\"file\": \"%s\", \"size\": \"256M\"},"
		 " \"cgroups\": {\"pair\": {\"memory.max\": \"24M\"}},"
		 " \"groups\": [{\"guest\": \"pattern\", \"args\": \"mb=16 hold=300\","
		 " \"mem\": \"32M\", \"count\": 2, \"cgroup\": \"pair\"},"
		 " {\"guest\": \"pattern\", \"args\": \"mb=16\", \"mem\": \"32M\"}]}",
		 swap);
	run_config(&o, config);
	cr_assert_eq(o.status, 0, "stdout: %s\nstderr: %s", o.out, o.err);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(json_path_int(report_vm(o.report, i), "guest_values.bad_pages"), 0);
	json_object *pair = report_cgroup(o.report, "/pair");
	cr_assert_eq(json_int(pair, "vms"), 2);
	cr_assert_eq(json_int(pair, "memory.max"), 24 << 20);
	cr_assert_leq(json_int(pair, "memory.peak"), 24 << 20, "memory.max held");
	cr_assert_gt(json_int(pair, "memory.peak"), 20 << 20);
	cr_assert_gt(cgroup_event(o.report, "/pair", "memory.events.local", "max"), 0);
	cr_assert_eq(cgroup_event(o.report, "/pair", "memory.events", "oom_kill"), 0);
	int64_t swapped = json_path_int(report_vm(o.report, 0), "memory.pswpout") +
			  json_path_int(report_vm(o.report, 1), "memory.pswpout");
	cr_assert_gt(swapped, 2048, "the pair swapped (%lld pages) to stay under its limit",
		     (long long)swapped);
	cr_assert_eq(json_path_int(report_vm(o.report, 2), "memory.pswpout"), 0,
		     "vm2 has no limit");
	/* Their faults waited for reclaim: memory.pressure (in us). */
	json_object *pressure = json_object_object_get(pair, "memory.pressure");
	int64_t some = json_path_int(pressure, "some.total");
	cr_assert_gt(some, 0, "the pair stalled on memory");
	cr_assert_leq(json_path_int(pressure, "full.total"), some);
	json_object *root = report_cgroup(o.report, "/");
	cr_assert_geq(json_path_int(json_object_object_get(root, "memory.pressure"), "some.total"),
		      some);
	cr_assert_eq(json_int(root, "vms"), 3);
	cr_assert_gt(json_int(root, "memory.peak"), json_int(pair, "memory.peak"));
	cr_assert(strstr(o.out, "cgroup /pair: 2 VMs"), "%s", o.out);
	vmm_output_free(&o);
}

static const char *const oom_config =
	"{\"cgroups\": {\"pair\": {\"memory.max\": \"24M\"%s}},"
	" \"groups\": [{\"guest\": \"pattern\", \"args\": \"mb=16 hold=500\", \"mem\": \"32M\","
	"              \"count\": 2, \"cgroup\": \"pair\"},"
	"             {\"guest\": \"pattern\", \"args\": \"mb=8\", \"mem\": \"32M\"}]}";

Test(e2e_cgroup, without_swap_a_groups_oom_ends_one_of_its_vms)
{
	struct vmm_output o;
	char config[1024];
	snprintf(config, sizeof(config), oom_config, "");
	run_config(&o, config);
	cr_assert_eq(o.status, 1, "stdout: %s\nstderr: %s", o.out, o.err);
	int killed = 0;
	for (int i = 0; i < 2; i++)
		if (strcmp(json_str(report_vm(o.report, i), "status"), "error") == 0) {
			killed++;
			cr_assert(strstr(json_str(report_vm(o.report, i), "message"),
					 "in cgroup /pair at memory.max: killed by the OOM killer"),
				  "%s", json_str(report_vm(o.report, i), "message"));
		}
	cr_assert_eq(killed, 1, "one victim frees enough for the other");
	cr_assert_str_eq(json_str(report_vm(o.report, 2), "status"), "exited");
	cr_assert_eq(cgroup_event(o.report, "/pair", "memory.events.local", "oom"), 1);
	cr_assert_eq(cgroup_event(o.report, "/pair", "memory.events", "oom_kill"), 1);
	cr_assert_eq(cgroup_event(o.report, "/pair", "memory.events", "oom_group_kill"), 0);
	vmm_output_free(&o);
}

Test(e2e_cgroup, memory_oom_group_ends_every_vm_of_the_cgroup)
{
	struct vmm_output o;
	char config[1024];
	snprintf(config, sizeof(config), oom_config, ", \"memory.oom.group\": true");
	run_config(&o, config);
	cr_assert_eq(o.status, 1, "stdout: %s\nstderr: %s", o.out, o.err);
	for (int i = 0; i < 2; i++)
		cr_assert_str_eq(json_str(report_vm(o.report, i), "status"), "error", "vm%d", i);
	cr_assert(strstr(o.err, "with its cgroup /pair (memory.oom.group)"), "%s", o.err);
	cr_assert_str_eq(json_str(report_vm(o.report, 2), "status"), "exited");
	cr_assert_eq(cgroup_event(o.report, "/pair", "memory.events", "oom_kill"), 2);
	cr_assert_eq(cgroup_event(o.report, "/pair", "memory.events.local", "oom_group_kill"), 1);
	cr_assert_eq(json_path_int(o.report, "swap.oom_kills"), 2);
	cr_assert(json_object_get_boolean(
		json_object_object_get(report_cgroup(o.report, "/pair"), "memory.oom.group")));
	vmm_output_free(&o);
}

Test(e2e_cgroup, a_bad_cgroup_path_is_refused_by_name)
{
	struct vmm_output o;
	run_config(&o, "{\"cgroups\": {\"a/../b\": {}}, \"groups\": [{\"guest\": \"hello\"}]}");
	cr_assert_eq(o.status, 2, "stderr: %s", o.err);
	cr_assert(strstr(o.err, "bad cgroup path 'a/../b'"), "%s", o.err);
	vmm_output_free(&o);
}

/* --- the cgroup files of a running fleet (vmm/control_cgroup.h) --- */

struct live_fleet {
	char name[64], config[1024];
	struct vmm_output out;
};

static void *run_live(void *arg)
{
	struct live_fleet *f = arg;
	char *path = write_temp_file(f->config, strlen(f->config), ".json");
	vmm_run_json(&f->out, "run", "--name", f->name, "--config", path);
	unlink(path);
	free(path);
	return NULL;
}

static long long ctl_number(const char *fleet, const char *verb, const char *key, const char *value)
{
	int status;
	char *text = vmm_ctl(fleet, &status, verb, key, value);
	cr_assert_eq(status, 0, "%s %s: %s", verb, key, text);
	long long v = strtoll(text, NULL, 10);
	free(text);
	return v;
}

Test(e2e_cgroup, a_running_groups_limits_are_read_changed_and_reclaimed)
{
	test_deadline(120);
	static struct live_fleet f;
	snprintf(f.name, sizeof(f.name), "cgroup-test-%d", (int)getpid());
	char socket[108];
	cr_assert_eq(control_socket_path(f.name, socket, sizeof(socket)), 0);
	remove_at_exit(socket); /* if a failed assertion ends the test (and the fleet) */
	const char *swap = swap_path();
	/* Two VMs of 12 MiB data each, held long enough for every step. */
	snprintf(f.config, sizeof(f.config),
		 "{\"swap\": {\"file\": \"%s\", \"size\": \"256M\"},"
		 " \"cgroups\": {\"pair\": {\"memory.max\": \"64M\"}},"
		 " \"groups\": [{\"guest\": \"pattern\", \"args\": \"mb=12 hold=3000\","
		 " \"mem\": \"32M\", \"count\": 2, \"cgroup\": \"pair\"}]}",
		 swap);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, run_live, &f), 0);
	int status = 2;
	for (int i = 0; i < 400 && status != 0; i++) {
		free(vmm_ctl(f.name, &status, "get", "cgroup/pair/memory.current", NULL));
		if (status)
			usleep(50000);
	}
	cr_assert_eq(status, 0, "the fleet's control socket answers");
	for (int i = 0; i < 400 && ctl_number(f.name, "get", "cgroup/pair/memory.current", NULL) <
					   (24ll << 20);
	     i++)
		usleep(20000);
	long long current = ctl_number(f.name, "get", "cgroup/pair/memory.current", NULL);
	cr_assert_geq(current, 24ll << 20, "both VMs filled their memory");
	cr_assert_geq(ctl_number(f.name, "get", "cgroup/memory.current", NULL), current,
		      "the root holds the pair");

	/* Lowering memory.max reclaims down to it. */
	cr_assert_eq(ctl_number(f.name, "set", "cgroup/pair/memory.max", "16M"), 16ll << 20);
	cr_assert_leq(ctl_number(f.name, "get", "cgroup/pair/memory.current", NULL), 16ll << 20);
	/* Proactive reclaim takes what it is asked for. */
	long long before = ctl_number(f.name, "get", "cgroup/pair/memory.current", NULL);
	cr_assert_eq(ctl_number(f.name, "set", "cgroup/pair/memory.reclaim", "4M"), 4ll << 20);
	cr_assert_leq(ctl_number(f.name, "get", "cgroup/pair/memory.current", NULL),
		      before - (4ll << 20) + (1ll << 20), "(a guest may fault some back)");
	/* The peak, reset to now. */
	cr_assert_geq(ctl_number(f.name, "get", "cgroup/pair/memory.peak", NULL), 24ll << 20);
	cr_assert_leq(ctl_number(f.name, "set", "cgroup/pair/memory.peak", "0"), 16ll << 20);
	cr_assert_eq(ctl_number(f.name, "set", "cgroup/pair/memory.oom.group", "1"), 1);

	char *text = vmm_ctl(f.name, &status, "get", "cgroup/pair/memory.reclaim", NULL);
	cr_assert_eq(status, 1);
	cr_assert(strstr(text, "write-only"), "%s", text);
	free(text);
	text = vmm_ctl(f.name, &status, "set", "cgroup/pair/memory.high", "lots");
	cr_assert_eq(status, 1);
	cr_assert(strstr(text, "bad value 'lots'"), "%s", text);
	free(text);
	text = vmm_ctl(f.name, &status, "get", "cgroup/other/memory.max", NULL);
	cr_assert_eq(status, 1);
	cr_assert(strstr(text, "no such cgroup"), "%s", text);
	free(text);
	text = vmm_ctl(f.name, &status, "get", "cgroup/pair/memory.pressure", NULL);
	cr_assert_eq(status, 0, "%s", text);
	cr_assert(strncmp(text, "some avg10=", 11) == 0 && strstr(text, " full avg10="), "%s",
		  text);
	free(text);
	text = vmm_ctl(f.name, &status, "stat", "--json", NULL);
	cr_assert_eq(status, 0, "%s", text);
	cr_assert(strstr(text, "\"cgroup/pair/memory.max\":16777216"), "%s", text);
	json_object *stat = json_tokener_parse(text);
	cr_assert_not_null(stat, "%s", text);
	cr_assert_geq(json_path_int(json_object_object_get(stat, "cgroup/pair/memory.pressure"),
				    "some.total"),
		      0);
	cr_assert_not_null(json_object_object_get(
		json_object_object_get(stat, "cgroup/pair/memory.pressure"), "full"));
	json_object_put(stat);
	free(text);

	pthread_join(t, NULL);
	cr_assert_eq(f.out.status, 0, "stdout: %s\nstderr: %s", f.out.out, f.out.err);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(json_path_int(report_vm(f.out.report, i), "guest_values.bad_pages"),
			     0);
	json_object *pair = report_cgroup(f.out.report, "/pair");
	cr_assert_eq(json_int(pair, "memory.max"), 16 << 20);
	cr_assert_gt(json_path_int(json_object_object_get(pair, "memory.pressure"), "some.total"),
		     0, "verifying 24 MiB under 16 MiB waited for swap-ins");
	cr_assert(json_object_get_boolean(json_object_object_get(pair, "memory.oom.group")));
	vmm_output_free(&f.out);
}

Test(e2e_cgroup, memory_low_keeps_a_tenants_memory_under_pool_pressure)
{
	struct vmm_output o;
	const char *swap = swap_path();
	char config[1024];
	/* 16 + 2 x 24 MiB of data on a 48 MiB pool: the "kept" tenant's 16
	 * MiB is within its memory.low, so the pool's reclaim takes from the
	 * other one. */
	snprintf(config, sizeof(config),
		 "{\"memory\": {\"host_mem\": \"48M\"},"
		 " \"swap\": {\"file\": \"%s\", \"size\": \"256M\"},"
		 " \"cgroups\": {\"kept\": {\"memory.low\": \"24M\"}},"
		 " \"groups\": [{\"guest\": \"pattern\", \"args\": \"mb=16 hold=300\","
		 " \"mem\": \"32M\", \"cgroup\": \"kept\"},"
		 " {\"guest\": \"pattern\", \"args\": \"mb=24 hold=300\", \"mem\": \"32M\","
		 " \"count\": 2, \"cgroup\": \"other\"}]}",
		 swap);
	run_config(&o, config);
	cr_assert_eq(o.status, 0, "stdout: %s\nstderr: %s", o.out, o.err);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(json_path_int(report_vm(o.report, i), "guest_values.bad_pages"), 0);
	cr_assert_gt(json_path_int(report_vm(o.report, 1), "memory.pswpout") +
			     json_path_int(report_vm(o.report, 2), "memory.pswpout"),
		     1024, "the pool was short: the other tenant swapped");
	cr_assert_eq(json_path_int(report_vm(o.report, 0), "memory.pswpout"), 0,
		     "memory.low kept the tenant's memory");
	cr_assert_eq(json_int(report_cgroup(o.report, "/kept"), "memory.low"), 24 << 20);
	vmm_output_free(&o);
}

Test(e2e_cgroup, a_group_at_max_with_no_victim_ends_the_vm_that_faults)
{
	/* No swap and no VM the OOM killer may choose (-1000): the VM whose
	 * fault finds the group at memory.max ends, saying why. */
	struct vmm_output o;
	run_config(&o, "{\"cgroups\": {\"pair\": {\"memory.max\": \"24M\"}},"
		       " \"groups\": [{\"guest\": \"pattern\", \"args\": \"mb=16 hold=500\","
		       " \"mem\": \"32M\", \"count\": 2, \"cgroup\": \"pair\","
		       " \"oom_score_adj\": -1000}]}");
	cr_assert_eq(o.status, 1, "stdout: %s\nstderr: %s", o.out, o.err);
	cr_assert(strstr(o.err, "memory.max of cgroup /pair (6144 pages) reached and nothing "
				"left to reclaim or kill"),
		  "%s", o.err);
	cr_assert_eq(cgroup_event(o.report, "/pair", "memory.events", "oom_kill"), 0);
	vmm_output_free(&o);
}

Test(e2e_cgroup, memory_swap_max_0_keeps_a_group_out_of_swap)
{
	struct vmm_output o;
	const char *swap = swap_path();
	char config[1024];
	/* The same VM under the same memory.max twice: allowed to swap, it
	 * finishes; with memory.swap.max 0 it is out of memory. */
	snprintf(config, sizeof(config),
		 "{\"swap\": {\"file\": \"%s\", \"size\": \"256M\"},"
		 " \"cgroups\": {\"swaps\": {\"memory.max\": \"16M\"},"
		 " \"noswap\": {\"memory.max\": \"16M\", \"memory.swap.max\": 0}},"
		 " \"groups\": [{\"guest\": \"pattern\", \"args\": \"mb=24\", \"mem\": \"32M\","
		 " \"cgroup\": \"swaps\"}, {\"guest\": \"pattern\", \"args\": \"mb=24\","
		 " \"mem\": \"32M\", \"cgroup\": \"noswap\"}]}",
		 swap);
	run_config(&o, config);
	cr_assert_eq(o.status, 1, "stdout: %s\nstderr: %s", o.out, o.err);
	cr_assert_str_eq(json_str(report_vm(o.report, 0), "status"), "exited");
	cr_assert_eq(json_path_int(report_vm(o.report, 0), "guest_values.bad_pages"), 0);
	cr_assert_str_eq(json_str(report_vm(o.report, 1), "status"), "error");
	cr_assert(strstr(json_str(report_vm(o.report, 1), "message"), "out of memory"), "%s",
		  json_str(report_vm(o.report, 1), "message"));
	json_object *swaps = report_cgroup(o.report, "/swaps"),
		    *noswap = report_cgroup(o.report, "/noswap");
	cr_assert_gt(json_int(swaps, "memory.swap.peak"), 4 << 20);
	cr_assert_eq(json_int(noswap, "memory.swap.peak"), 0);
	cr_assert_eq(json_int(noswap, "memory.swap.max"), 0);
	cr_assert_gt(json_path_int(json_object_object_get(noswap, "memory.swap.events"), "max"), 0);
	vmm_output_free(&o);
}
