/* test_map_count.c - raising vm.max_map_count for overlapping runs: none
 * lowers the limit under another, the last one out restores the host's
 * value, and a run that died does not leave it raised for ever. Runs on a
 * stand-in sysctl file and registry (map_count_set_paths), one process per
 * simulated run. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/map_count.h"

static char dir[64], sysctl[96], registry[96];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/vmm-test-map-count-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sysctl, sizeof(sysctl), "%s/max_map_count", dir);
	snprintf(registry, sizeof(registry), "%s/run/vmm/max_map_count", dir);
	FILE *f = fopen(sysctl, "w");
	cr_assert_not_null(f);
	fputs("65530\n", f);
	fclose(f);
	map_count_set_paths(sysctl, registry);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

/* A simulated run in a child: ensure(needed), report on `ready`, then
 * restore when `go` is closed, or die without restoring if `crash`. */
struct run {
	pid_t pid;
	int go; /* write end: closing it lets the run end */
};

static struct run start_run(uint64_t needed, int crash)
{
	int ready[2], go[2];
	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(go), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* Only our own pipe ends: an earlier run's `go` write end kept
		 * open here would keep that run from ever seeing its EOF. */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != ready[1] && fd != go[0])
				close(fd);
		char err[256];
		int rc = map_count_ensure(needed, err, sizeof(err));
		char c = rc == 0 ? 'y' : 'n';
		if (write(ready[1], &c, 1) != 1)
			_exit(3);
		if (read(go[0], &c, 1) < 0)
			_exit(3);
		if (crash)
			_exit(1);
		map_count_restore();
		_exit(rc == 0 ? 0 : 2);
	}
	close(ready[1]);
	close(go[0]);
	char c = 0;
	cr_assert_eq(read(ready[0], &c, 1), 1);
	cr_assert_eq(c, 'y', "ensure(%lu) failed", (unsigned long)needed);
	close(ready[0]);
	return (struct run){pid, go[1]};
}

static void end_run(struct run *r)
{
	close(r->go);
	int status;
	cr_assert_eq(waitpid(r->pid, &status, 0), r->pid);
}

Test(map_count, overlapping_runs_never_lower_it_under_each_other, .init = setup, .fini = teardown)
{
	struct run a = start_run(80000, 0);
	cr_assert_eq(map_count_limit(), 80000);
	struct run b = start_run(70000, 0);
	cr_assert_eq(map_count_limit(), 80000, "b needs less: no change");
	end_run(&a);
	cr_assert_eq(map_count_limit(), 70000, "a ended: what b needs, not the host's value");
	struct run c = start_run(90000, 0);
	cr_assert_eq(map_count_limit(), 90000);
	end_run(&c);
	cr_assert_eq(map_count_limit(), 70000);
	end_run(&b);
	cr_assert_eq(map_count_limit(), 65530, "the last one out restores the host's value");
	struct stat st;
	cr_assert_neq(stat(registry, &st), 0, "the last one out leaves no registry behind");
}

Test(map_count, a_run_that_died_does_not_leave_it_raised, .init = setup, .fini = teardown)
{
	struct run a = start_run(100000, 1);
	end_run(&a); /* exits without restoring */
	cr_assert_eq(map_count_limit(), 100000);
	struct run b = start_run(70000, 0);
	end_run(&b);
	cr_assert_eq(map_count_limit(), 65530, "the dead run's record gave the original back");
}

Test(map_count, a_small_need_changes_nothing, .init = setup, .fini = teardown)
{
	struct run a = start_run(1000, 0);
	cr_assert_eq(map_count_limit(), 65530);
	end_run(&a);
	cr_assert_eq(map_count_limit(), 65530);
}

/* A raise that fails (here: a read-only stand-in, /proc/sys/fs/file-nr,
 * which even root cannot write) leaves no "original" record behind: a later
 * run would trust it and "restore" a value the host no longer has. */
Test(map_count, a_failed_raise_leaves_no_record, .init = setup, .fini = teardown)
{
	map_count_set_paths("/proc/sys/fs/file-nr", registry);
	uint64_t limit = map_count_limit();
	cr_assert_gt(limit, 0, "file-nr reads as a number");
	char err[512] = "", original[160];
	cr_assert_eq(map_count_ensure(limit + 100000, err, sizeof(err)), -1);
	cr_assert(strstr(err, "cannot be raised"), "%s", err);
	snprintf(original, sizeof(original), "%s/original", registry);
	cr_assert_neq(access(original, F_OK), 0, "a stale 'original' record was left behind");
	map_count_restore(); /* nothing registered: nothing to do */
}
