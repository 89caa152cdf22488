/* test_e2e_ctl.c - a running fleet read and steered through its control
 * socket with `vmm ctl` (vmm/control.h): KSM stopped, its pace changed and
 * every merged page unmerged while the guests run, and the guests still
 * verify every page. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.h"
#include "vmm/control.h"

static char name[64];

static void *run_fleet(void *arg)
{
	/* A hold long enough for every step below, also under the sanitizers. */
	vmm_run_json((struct vmm_output *)arg, "run", "--name", name, "--vms", "3", "--mem", "16M",
		     "--ksm", "--ksm-rate", "max", "pattern", "--", "mb=8", "zero=25", "shared=50",
		     "hold=5000");
	return NULL;
}

/* `vmm ctl NAME ARGS...`: its stdout, status in *status. */
static char *ctl(int *status, const char *a, const char *b, const char *c)
{
	return vmm_ctl(name, status, a, b, c);
}

static long ctl_get(const char *key)
{
	int status;
	char *out = ctl(&status, "get", key, NULL);
	cr_assert_eq(status, 0, "get %s: %s", key, out);
	long v = strtol(out, NULL, 10);
	free(out);
	return v;
}

Test(e2e_ctl, a_running_fleet_is_read_and_steered)
{
	test_deadline(120);
	snprintf(name, sizeof(name), "ctl-test-%d", (int)getpid());
	char socket[108];
	cr_assert_eq(control_socket_path(name, socket, sizeof(socket)), 0);
	remove_at_exit(socket); /* if a failed assertion ends the test (and the fleet) */
	struct vmm_output fleet;
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, run_fleet, &fleet), 0);

	/* The socket appears once the fleet is set up. */
	int status = 2;
	for (int i = 0; i < 200 && status != 0; i++) {
		free(ctl(&status, "get", "fleet/vms", NULL));
		if (status)
			usleep(50000);
	}
	cr_assert_eq(status, 0, "the fleet's control socket answers");
	cr_assert_eq(ctl_get("fleet/vms"), 3);
	cr_assert_eq(ctl_get("ksm/run"), 1);
	for (int i = 0; i < 200 && ctl_get("ksm/pages_sharing") == 0; i++)
		usleep(20000);
	cr_assert_gt(ctl_get("ksm/pages_sharing"), 0, "merging under way");

	char *out = ctl(&status, "set", "ksm/pages_to_scan", "500");
	cr_assert_eq(status, 0);
	cr_assert_str_eq(out, "500\n");
	free(out);
	cr_assert_eq(ctl_get("ksm/pages_to_scan"), 500);
	out = ctl(&status, "set", "ksm/pages_shared", "1");
	cr_assert_eq(status, 1);
	cr_assert(strstr(out, "read-only"), "%s", out);
	free(out);
	out = ctl(&status, "set", "ksm/max_page_sharing", "1");
	cr_assert_eq(status, 1, "max_page_sharing 1 is refused");
	free(out);

	/* run 0: the scanner stops (no full scan completes). */
	out = ctl(&status, "set", "ksm/run", "0");
	cr_assert_eq(status, 0);
	free(out);
	long scans = ctl_get("ksm/full_scans");
	usleep(300000);
	cr_assert_eq(ctl_get("ksm/full_scans"), scans, "stopped");

	/* run 2: every merged page gets its own frame again. */
	out = ctl(&status, "set", "ksm/run", "2");
	cr_assert_eq(status, 0, "%s", out);
	free(out);
	cr_assert_eq(ctl_get("ksm/pages_sharing"), 0);
	cr_assert_eq(ctl_get("ksm/ksm_zero_pages"), 0);

	/* stat --json: every key, as numbers. */
	out = ctl(&status, "stat", "--json", NULL);
	cr_assert_eq(status, 0);
	json_object *report = json_tokener_parse(out);
	cr_assert_not_null(report, "%s", out);
	json_object *run = NULL;
	cr_assert(json_object_object_get_ex(report, "ksm/run", &run));
	cr_assert_eq(json_object_get_int(run), 2);
	json_object_put(report);
	free(out);

	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(fleet.status, 0, "stderr: %s", fleet.err);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(json_path_int(report_vm(fleet.report, i), "guest_values.bad_pages"), 0,
			     "vm%d verified every page after the unmerge", i);
	const char *path = json_str(fleet.report, "control_socket");
	cr_assert(strstr(path, name), "%s", path);
	struct stat st;
	cr_assert_neq(stat(path, &st), 0, "the socket is removed at exit");
	cr_assert(strstr(fleet.err, "control socket"), "named: the path is on stderr");
	vmm_output_free(&fleet);
}

Test(e2e_ctl, bad_requests_are_refused_with_a_reason)
{
	snprintf(name, sizeof(name), "no-such-fleet-%d", (int)getpid());
	int status;
	char *out = ctl(&status, "stat", NULL, NULL);
	cr_assert_eq(status, 2);
	cr_assert(strstr(out, "no fleet"), "%s", out);
	free(out);
	out = ctl(&status, "frobnicate", NULL, NULL);
	cr_assert_eq(status, 2, "bad usage");
	free(out);
	struct vmm_output o;
	char long_name[160];
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = 0;
	vmm_run(&o, "run", "--name", long_name, "hello");
	expect_input_error(&o, "too long");
}

/* A socket file a fleet under the default name (vmm-PID) left when it was
 * killed: the next fleet removes it, and leaves a live one alone. */
Test(e2e_ctl, a_killed_fleets_socket_is_swept_by_the_next)
{
	/* Where sockets go: the directory of a first fleet's (its report). */
	struct vmm_output o;
	vmm_run_json(&o, "run", "--quiet", "hello");
	cr_assert_eq(o.status, 0, "%s", o.err);
	char dir[128];
	snprintf(dir, sizeof(dir), "%s", json_str(o.report, "control_socket"));
	vmm_output_free(&o);
	char *slash = strrchr(dir, '/');
	cr_assert_not_null(slash, "%s", dir);
	*slash = 0;
	pid_t dead = fork();
	cr_assert_geq(dead, 0);
	if (dead == 0)
		_exit(0);
	cr_assert_eq(waitpid(dead, NULL, 0), dead);
	mkdir(dir, 0700);
	struct sockaddr_un stale = {.sun_family = AF_UNIX}, live = {.sun_family = AF_UNIX};
	snprintf(stale.sun_path, sizeof(stale.sun_path), "%.80s/vmm-%d.sock", dir, (int)dead);
	snprintf(live.sun_path, sizeof(live.sun_path), "%.80s/vmm-%d.sock", dir, (int)getpid());
	int s = socket(AF_UNIX, SOCK_STREAM, 0), l = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert(s >= 0 && l >= 0);
	int bound = bind(s, (struct sockaddr *)&stale, sizeof(stale));
	close(s); /* bound, never listened on, not unlinked: what SIGKILL leaves */
	int listening = bind(l, (struct sockaddr *)&live, sizeof(live)) == 0 && listen(l, 1) == 0;

	vmm_run(&o, "run", "--quiet", "hello");
	struct stat st;
	int stale_left = stat(stale.sun_path, &st) == 0;
	int live_left = stat(live.sun_path, &st) == 0;
	unlink(stale.sun_path);
	close(l);
	unlink(live.sun_path);
	rmdir(dir); /* if this test made it */
	cr_assert_eq(bound, 0, "cannot make %s", stale.sun_path);
	cr_assert(listening);
	cr_assert_eq(o.status, 0, "%s", o.err);
	vmm_output_free(&o);
	cr_assert_not(stale_left, "the dead fleet's socket is removed");
	cr_assert(live_left, "a socket someone listens on stays");
}
