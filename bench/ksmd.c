/*
 * ksmd.c - driving Linux's KSM through /sys/kernel/mm/ksm (see ksmd.h).
 *
 * Knobs are files holding one decimal number. The saved values live in a
 * static table so that a signal handler can write them back with plain
 * open/write/close. ksmd is found by scanning /proc for the kernel thread
 * named "ksmd"; its CPU time is fields 14 and 15 of /proc/PID/stat.
 */
#include "ksmd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm_process.h"

#define PAGE 4096

const struct ksmd_settings ksmd_max_rate = {100000, 0, 1, 256};
const struct ksmd_settings ksmd_normal_rate = {100, 20, 1, 256};

/* run first (restored last); the advisor's are optional (Linux >= 6.9),
 * and advisor_mode is switched off before the others are written and
 * restored after them (ksmd_restore). */
static const char *const knobs[] = {"run",
				    "advisor_mode",
				    "advisor_target_scan_time",
				    "advisor_max_cpu",
				    "advisor_min_pages_to_scan",
				    "pages_to_scan",
				    "sleep_millisecs",
				    "use_zero_pages",
				    "max_page_sharing"};
#define NKNOBS (sizeof(knobs) / sizeof(knobs[0]))
#define ADVISOR_MODE_KNOB 1
#define FIRST_REQUIRED_KNOB 5 /* pages_to_scan */
static char saved[NKNOBS][32];
static char knob_missing[NKNOBS];
static volatile sig_atomic_t knobs_saved;
static int lock_fd = -1;

/* "/sys/kernel/mm/ksm/" + name, without snprintf (used from signal handlers). */
static void knob_path(char *path, size_t len, const char *name)
{
	size_t n = strlen(KSMD_SYSFS), m = strlen(name);
	if (n + m + 1 > len)
		m = len - n - 1;
	memcpy(path, KSMD_SYSFS, n);
	memcpy(path + n, name, m);
	path[n + m] = 0;
}

int ksmd_read_knob(const char *name, char *buf, size_t len)
{
	char path[128];
	knob_path(path, sizeof(path), name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

uint64_t ksmd_read_counter(const char *name)
{
	char buf[32];
	return ksmd_read_knob(name, buf, sizeof(buf)) == 0 ? strtoull(buf, NULL, 10) : 0;
}

int ksmd_write_knob(const char *name, const char *value)
{
	char path[128];
	knob_path(path, sizeof(path), name);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = strlen(value);
	ssize_t n = write(fd, value, len);
	int ok = n == (ssize_t)len;
	return close(fd) == 0 && ok ? 0 : -1;
}

/* One benchmark drives ksmd at a time: two that overlap would each restore
 * what the other had set. An exclusive flock on the run knob itself (no
 * file of our own to leave behind), released by ksmd_restore() or at exit. */
static int lock_knobs(void)
{
	if (lock_fd >= 0)
		return 0;
	lock_fd = open(KSMD_SYSFS "run", O_RDONLY | O_CLOEXEC);
	if (lock_fd < 0) {
		fprintf(stderr, "%s: cannot open " KSMD_SYSFS "run: %s\n",
			program_invocation_short_name, strerror(errno));
		return -1;
	}
	if (flock(lock_fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	fprintf(stderr, "%s: another benchmark is driving ksmd; waiting for it to finish\n",
		program_invocation_short_name);
	/* Polled, so that a signal (Ctrl-C) ends the wait: nanosleep returns
	 * EINTR even where a blocking flock would be restarted. */
	for (;;) {
		struct timespec pause = {0, 100 * 1000 * 1000};
		if (flock(lock_fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (nanosleep(&pause, NULL) && errno == EINTR) {
			fprintf(stderr, "%s: interrupted while waiting for ksmd\n",
				program_invocation_short_name);
			close(lock_fd);
			lock_fd = -1;
			return -1;
		}
	}
}

/* max_page_sharing can only change with nothing merged (the kernel says
 * EBUSY): unmerge everything (run=2) then, and only then, since it unmerges
 * every KSM page on the host, not only the benchmark's. */
static int set_max_page_sharing(const char *value)
{
	char now[32];
	if (ksmd_read_knob("max_page_sharing", now, sizeof(now)) == 0 && strcmp(now, value) == 0)
		return 0;
	if (ksmd_write_knob("run", "2"))
		return -1;
	return ksmd_write_knob("max_page_sharing", value);
}

int ksmd_save(void)
{
	if (knobs_saved)
		return 0;
	if (lock_knobs())
		return -1;
	for (size_t i = 0; i < NKNOBS; i++) {
		knob_missing[i] = 0;
		if (ksmd_read_knob(knobs[i], saved[i], sizeof(saved[i]))) {
			if (i > 0 && i < FIRST_REQUIRED_KNOB) {
				knob_missing[i] = 1;
				continue;
			}
			fprintf(stderr, "%s: cannot read " KSMD_SYSFS "%s\n",
				program_invocation_short_name, knobs[i]);
			return -1;
		}
		/* A choice reads as "[none] scan-time": keep the chosen one. */
		char *open = strchr(saved[i], '['), *close = open ? strchr(open, ']') : NULL;
		if (close) {
			*close = 0;
			memmove(saved[i], open + 1, strlen(open + 1) + 1);
		}
	}
	knobs_saved = 1;
	return 0;
}

int ksmd_set_run(int run)
{
	return ksmd_write_knob("run", run == 0 ? "0" : run == 1 ? "1" : "2");
}

/* The advisor off: while it is on, the kernel refuses pages_to_scan
 * (EINVAL). A kernel without it has no such file. */
static void advisor_off(void)
{
	if (!knob_missing[ADVISOR_MODE_KNOB])
		ksmd_write_knob("advisor_mode", "none");
}

int ksmd_apply(const struct ksmd_settings *s)
{
	char pts[16], sleep_ms[16], mps[16];
	snprintf(pts, sizeof(pts), "%u", s->pages_to_scan);
	snprintf(sleep_ms, sizeof(sleep_ms), "%u", s->sleep_millisecs);
	snprintf(mps, sizeof(mps), "%u", s->max_page_sharing);
	advisor_off();
	if (ksmd_write_knob("use_zero_pages", s->use_zero_pages ? "1" : "0") ||
	    set_max_page_sharing(mps) || ksmd_write_knob("pages_to_scan", pts) ||
	    ksmd_write_knob("sleep_millisecs", sleep_ms)) {
		fprintf(stderr, "%s: cannot configure " KSMD_SYSFS " (root needed)\n",
			program_invocation_short_name);
		return -1;
	}
	return 0;
}

void ksmd_restore(void)
{
	if (!knobs_saved)
		return;
	int saved_errno = errno;
	/* knobs_saved is cleared only at the end: a signal arriving meanwhile
	 * restores again (every write is idempotent) instead of leaving half
	 * the knobs. The advisor is off while the others are written (it makes
	 * the kernel refuse pages_to_scan); its own setting comes last but run. */
	advisor_off();
	for (size_t i = 1; i < NKNOBS; i++) {
		if (knob_missing[i] || i == ADVISOR_MODE_KNOB)
			continue;
		if (strcmp(knobs[i], "max_page_sharing") == 0)
			set_max_page_sharing(saved[i]);
		else
			ksmd_write_knob(knobs[i], saved[i]);
	}
	if (!knob_missing[ADVISOR_MODE_KNOB])
		ksmd_write_knob("advisor_mode", saved[ADVISOR_MODE_KNOB]);
	ksmd_write_knob("run", saved[0]);
	knobs_saved = 0;
	if (lock_fd >= 0) {
		close(lock_fd); /* releases the flock */
		lock_fd = -1;
	}
	errno = saved_errno;
}

static void restore_and_die(int sig)
{
	ksmd_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

void ksmd_restore_on_signals(void)
{
	static int installed;
	signal(SIGINT, restore_and_die);
	signal(SIGTERM, restore_and_die);
	if (!installed)
		atexit(ksmd_restore);
	installed = 1;
}

int ksmd_read(struct ksmd_counters *c)
{
	char buf[32];
	if (ksmd_read_knob("pages_sharing", buf, sizeof(buf)))
		return -1;
	c->pages_sharing = strtoull(buf, NULL, 10);
	c->pages_shared = ksmd_read_counter("pages_shared");
	c->pages_unshared = ksmd_read_counter("pages_unshared");
	c->pages_volatile = ksmd_read_counter("pages_volatile");
	c->ksm_zero_pages = ksmd_read_counter("ksm_zero_pages");
	c->full_scans = ksmd_read_counter("full_scans");
	c->general_profit =
		ksmd_read_knob("general_profit", buf, sizeof(buf)) ? 0 : strtoll(buf, NULL, 10);
	return 0;
}

pid_t ksmd_pid(void)
{
	static pid_t cached = -1;
	if (cached > 0)
		return cached;
	DIR *d = opendir("/proc");
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		char path[64], comm[32] = "";
		snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		int ok = fgets(comm, sizeof(comm), f) != NULL;
		fclose(f);
		if (ok && strcmp(comm, "ksmd\n") == 0) {
			cached = (pid_t)pid;
			break;
		}
	}
	closedir(d);
	return cached;
}

/* From schedstat's run time in ns where the kernel has it: /proc/PID/stat
 * counts in ticks (10 ms here), which is all of ksmd's CPU for a small
 * fleet. */
static int cpu_from_ticks; /* schedstat missing: the last read used ticks */

const char *proc_cpu_source(void)
{
	return cpu_from_ticks ? "/proc/PID/stat, in clock ticks" : "/proc/PID/schedstat, in ns";
}

double proc_cpu_seconds(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/schedstat", pid);
	FILE *f = fopen(path, "r");
	unsigned long long run_ns;
	if (f) {
		int ok = fscanf(f, "%llu", &run_ns) == 1;
		fclose(f);
		if (ok)
			return (double)run_ns * 1e-9;
	}
	cpu_from_ticks = 1;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	unsigned long long utime = 0, stime = 0;
	/* fields after the command: state ppid ... utime(14) stime(15) */
	if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
			&stime) == 2)
		return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
	return 0;
}

double ksmd_cpu_seconds(void)
{
	pid_t pid = ksmd_pid();
	return pid > 0 ? proc_cpu_seconds(pid) : 0;
}

uint64_t ksmd_ideal_pages(const struct pattern_params *p, uint64_t pages, int nguests)
{
	struct pattern_counts c;
	pattern_count(p, pages, &c);
	return (uint64_t)(nguests - 1) * c.shared + (uint64_t)nguests * c.zero;
}

/* The child of ksmd_merge_host_content: fills, marks mergeable, says so, waits. */
static void host_fill_child(int nregions, size_t bytes, ksmd_fill_fn fill, void *ctx, int ready)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	close(lock_fd); /* the parent's; it alone holds the lock */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	uint8_t *regions[64];
	for (int v = 0; v < nregions; v++) {
		regions[v] = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				  -1, 0);
		if (regions[v] == MAP_FAILED)
			_exit(1);
	}
	for (int v = 0; v < nregions; v++)
		if (fill(ctx, v, regions[v], bytes))
			_exit(1);
	for (int v = 0; v < nregions; v++)
		madvise(regions[v], bytes, MADV_MERGEABLE);
	char c = 1;
	if (write(ready, &c, 1) != 1)
		_exit(1);
	pause();
	_exit(0);
}

pid_t ksmd_host_start(int nregions, size_t bytes, ksmd_fill_fn fill, void *ctx)
{
	if (nregions < 1 || nregions > 64) {
		fprintf(stderr, "%s: host content: 1 to 64 regions, not %d\n",
			program_invocation_short_name, nregions);
		return -1;
	}
	int ready[2];
	if (pipe2(ready, O_CLOEXEC))
		return -1;
	pid_t child = fork();
	if (child == 0)
		host_fill_child(nregions, bytes, fill, ctx, ready[1]);
	close(ready[1]);
	char c;
	if (child < 0 || read(ready[0], &c, 1) != 1) {
		fprintf(stderr, "%s: the host process could not fill its %d x %zu MiB\n",
			program_invocation_short_name, nregions, bytes >> 20);
		close(ready[0]);
		ksmd_host_stop(child);
		return -1;
	}
	close(ready[0]);
	return child;
}

void ksmd_host_stop(pid_t child)
{
	if (child <= 0)
		return;
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
}

int ksmd_fill_pattern(void *ctx, int v, uint8_t *region, size_t bytes)
{
	struct pattern_params pv = *(const struct pattern_params *)ctx;
	pv.seed = (uint64_t)v;
	for (uint64_t i = 0; i < bytes / PAGE; i++)
		pattern_fill_page((uint64_t *)(region + i * PAGE), pattern_page_key(&pv, i, 0));
	return 0;
}

int ksmd_merge_host_content(int nregions, int mb, const struct pattern_params *p,
			    const struct ksmd_settings *s, uint64_t ideal, double timeout_s,
			    struct ksmd_merge_result *r)
{
	int rc = ksmd_merge_host_fill(nregions, (size_t)mb << 20, ksmd_fill_pattern, (void *)p, s,
				      ideal, timeout_s, r);
	free(r->tl_t);
	free(r->tl_saved);
	r->tl_t = NULL;
	r->tl_saved = NULL;
	r->tl_n = 0;
	return rc;
}

int ksmd_merge_host_fill(int nregions, size_t bytes, ksmd_fill_fn fill, void *ctx,
			 const struct ksmd_settings *s, uint64_t ideal, double timeout_s,
			 struct ksmd_merge_result *r)
{
	r->t50 = r->t90 = r->t99 = -1;
	r->cpu50 = r->cpu90 = r->cpu99 = r->cpu_end = r->seconds = 0;
	r->tl_t = NULL;
	r->tl_saved = NULL;
	r->tl_n = 0;
	size_t tl_cap = 0;
	double tl_next = 0;
	r->reached = 0;
	pid_t ksmd = ksmd_pid();
	if (ksmd < 0) {
		fprintf(stderr, "%s: ksmd not found; skipping the Linux side\n",
			program_invocation_short_name);
		return -1;
	}
	if (ksmd_save())
		return -1;
	if (ksmd_apply(s)) {
		ksmd_restore();
		return -1;
	}
	pid_t child = ksmd_host_start(nregions, bytes, fill, ctx);
	if (child < 0) {
		ksmd_restore();
		return -1;
	}
	double cpu0 = proc_cpu_seconds(ksmd);
	ksmd_set_run(1);
	double t0 = monotonic_seconds();
	for (;;) {
		uint64_t sharing =
			ksmd_read_counter("pages_sharing") + ksmd_read_counter("ksm_zero_pages");
		double t = monotonic_seconds() - t0;
		if (t >= tl_next) {
			if (r->tl_n == tl_cap) {
				size_t cap = tl_cap ? tl_cap * 2 : 1024;
				double *tt = realloc(r->tl_t, cap * sizeof(*tt));
				uint64_t *ts = tt ? realloc(r->tl_saved, cap * sizeof(*ts)) : NULL;
				if (tt)
					r->tl_t = tt;
				if (ts) {
					r->tl_saved = ts;
					tl_cap = cap;
				}
			}
			if (r->tl_n < tl_cap) {
				r->tl_t[r->tl_n] = t;
				r->tl_saved[r->tl_n++] = sharing;
			}
			tl_next = t + 0.01;
		}
		if (r->t50 < 0 && sharing >= ideal / 2) {
			r->t50 = t;
			r->cpu50 = proc_cpu_seconds(ksmd) - cpu0;
		}
		if (r->t90 < 0 && sharing >= ideal * 9 / 10) {
			r->t90 = t;
			r->cpu90 = proc_cpu_seconds(ksmd) - cpu0;
		}
		if (sharing >= ideal * 99 / 100) {
			r->t99 = t;
			r->cpu99 = proc_cpu_seconds(ksmd) - cpu0;
			r->reached = sharing;
			break;
		}
		if (t > timeout_s) {
			r->reached = sharing;
			break;
		}
		usleep(2000);
	}
	r->cpu_end = proc_cpu_seconds(ksmd) - cpu0;
	r->seconds = monotonic_seconds() - t0;
	ksmd_host_stop(child);
	ksmd_restore();
	return 0;
}
