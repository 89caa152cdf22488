/*
 * ksmd.h - driving Linux's own KSM (the ksmd kernel thread) through
 * /sys/kernel/mm/ksm, for the benchmarks that compare our scanner with it.
 *
 * Every knob this module may change (run, pages_to_scan, sleep_millisecs,
 * use_zero_pages, max_page_sharing, and where the kernel has them the
 * advisor's advisor_mode, advisor_target_scan_time, advisor_max_cpu,
 * advisor_min_pages_to_scan) is read once by ksmd_save()
 * and written back by ksmd_restore(): the pacing knobs, then the saved run value. Only a change of
 * max_page_sharing needs everything unmerged first (run=2, which unmerges every KSM page on the
 * host, not only the benchmark's), so that is done only when its value really changes. The
 * benchmark's own merged pages go when its processes exit. The restore uses only open/write/close,
 * so it may be called from a signal handler; ksmd_restore_on_signals() installs one for
 * SIGINT/SIGTERM (restore, then die of the signal) and an atexit() hook. Between the two, the
 * process holds an exclusive flock on /sys/kernel/mm/ksm/run: two benchmarks that drive ksmd wait
 * for each other instead of restoring each other's settings.
 *
 * Counters are Linux's names (pages_shared, pages_sharing, ...). ksmd's CPU
 * time is utime+stime of the ksmd kernel thread from /proc/PID/stat.
 *
 * The host-process baseline (ksmd_merge_host_content) is bench_ksm's method,
 * shared with bench_scaling: a child process fills N anonymous regions with
 * exactly the content of N `pattern` guests (pattern_content.h, seeds
 * 0..N-1), marks them MADV_MERGEABLE, and ksmd is started and timed until it
 * reaches 99% of the ideal sharing.
 */
#ifndef BENCH_KSMD_H
#define BENCH_KSMD_H

#include <stdint.h>
#include <sys/types.h>

#include "pattern_content.h"

#define KSMD_SYSFS "/sys/kernel/mm/ksm/"

/* The knobs a benchmark sets. */
struct ksmd_settings {
	unsigned pages_to_scan;
	unsigned sleep_millisecs;
	unsigned use_zero_pages; /* 0 or 1 */
	unsigned max_page_sharing;
};

/* Max rate, as bench_ksm has always used it: pages_to_scan 100000,
 * sleep_millisecs 0, use_zero_pages 1, max_page_sharing 256. */
extern const struct ksmd_settings ksmd_max_rate;
/* Linux's default pacing (pages_to_scan 100, sleep_millisecs 20), with
 * use_zero_pages 1 and max_page_sharing 256. */
extern const struct ksmd_settings ksmd_normal_rate;

struct ksmd_counters {
	uint64_t pages_shared, pages_sharing, pages_unshared, pages_volatile, ksm_zero_pages;
	uint64_t full_scans;
	int64_t general_profit;
};

/* Reads a knob or counter into buf (newline stripped). 0 on success. */
int ksmd_read_knob(const char *name, char *buf, size_t len);
/* A counter's value, 0 if it cannot be read. */
uint64_t ksmd_read_counter(const char *name);
/* Writes a knob. 0 on success. */
int ksmd_write_knob(const char *name, const char *value);

/* Remembers every knob this module changes. 0 on success; -1 with a
 * message on stderr (no KSM in this kernel). */
int ksmd_save(void);
/* Stops ksmd and unmerges everything (run=2), then writes the settings.
 * ksmd stays stopped until ksmd_set_run(1). Needs ksmd_save() first.
 * 0 on success; -1 with a message (not root). */
int ksmd_apply(const struct ksmd_settings *s);
int ksmd_set_run(int run);
/* Writes the saved knobs back (see above). Idempotent, async-signal-safe. */
void ksmd_restore(void);
/* SIGINT/SIGTERM restore the knobs and then end the process with the same
 * signal; atexit() restores them too. */
void ksmd_restore_on_signals(void);

int ksmd_read(struct ksmd_counters *c);
/* pages_sharing + ksm_zero_pages: the pages that do not cost a page. */
static inline uint64_t ksmd_saved_pages(const struct ksmd_counters *c)
{
	return c->pages_sharing + c->ksm_zero_pages;
}

/* The ksmd kernel thread's pid, or -1. */
pid_t ksmd_pid(void);
/* CPU time of a process or thread, in seconds (0 if gone): its scheduler
 * run time, or utime + stime where there is no schedstat. */
double proc_cpu_seconds(pid_t pid);
/* Where proc_cpu_seconds read its last figure, for a table's footnote. */
const char *proc_cpu_source(void);
/* ksmd's CPU seconds so far (0 if there is no ksmd). */
double ksmd_cpu_seconds(void);

/* Ideal sharing of N guests of `pattern` with these parameters over `pages`
 * pages each: (N-1) x shared + N x zero pages (the zero pages on Linux's
 * zero page or our zero run). */
uint64_t ksmd_ideal_pages(const struct pattern_params *p, uint64_t pages, int nguests);

struct ksmd_merge_result {
	double t50, t90, t99; /* seconds from run=1 to that share of the ideal; -1: not reached */
	double cpu50, cpu90;  /* ksmd CPU seconds from run=1 to 50% and 90% */
	double cpu99;	      /* ksmd CPU seconds from run=1 to 99% (0 if not reached) */
	double cpu_end;	      /* ksmd CPU seconds from run=1 to the stop */
	double seconds;	      /* from run=1 to the stop */
	uint64_t reached;     /* sharing when the run stopped */
	/* ksmd_merge_host_fill only: sharing over time, every ~10 ms (the
	 * caller frees tl_t and tl_saved) */
	double *tl_t;
	uint64_t *tl_saved;
	size_t tl_n;
};

/* The host-process baseline: fills nregions x mb MiB with the content of
 * nregions pattern guests (p with seeds 0..nregions-1) in a child process,
 * madvise(MADV_MERGEABLE), applies the settings, starts ksmd and polls every
 * 2 ms until 99% of `ideal` or timeout_s. Saves the knobs first if not yet
 * saved and restores them before returning. 0 on success; -1 with a message
 * on stderr (no ksmd, not root). */
int ksmd_merge_host_content(int nregions, int mb, const struct pattern_params *p,
			    const struct ksmd_settings *s, uint64_t ideal, double timeout_s,
			    struct ksmd_merge_result *r);

/* The same with any content: a child fills region v (0..nregions-1, `bytes`
 * each) with fill(ctx, v, region, bytes) (0 on success) before madvise. */
typedef int (*ksmd_fill_fn)(void *ctx, int v, uint8_t *region, size_t bytes);
int ksmd_merge_host_fill(int nregions, size_t bytes, ksmd_fill_fn fill, void *ctx,
			 const struct ksmd_settings *s, uint64_t ideal, double timeout_s,
			 struct ksmd_merge_result *r);

/* The host process alone, for a caller that drives ksmd itself: filled by
 * fill() and MADV_MERGEABLE when this returns its pid (-1 with a message on
 * stderr); ksmd_host_stop() kills and reaps it. */
pid_t ksmd_host_start(int nregions, size_t bytes, ksmd_fill_fn fill, void *ctx);
void ksmd_host_stop(pid_t child);
/* A fill of region v with the content of pattern guest v (ctx: the
 * struct pattern_params, its seed replaced by v). */
int ksmd_fill_pattern(void *ctx, int v, uint8_t *region, size_t bytes);

#endif
