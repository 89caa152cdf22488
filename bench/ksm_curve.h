/*
 * ksm_curve.h - sharing over time, for the benchmarks that compare merging
 * scanners: a series of samples (time, Linux's KSM counters, scanner CPU,
 * host memory), the milestones read off it (time and CPU to 50/90/99% of the
 * ideal sharing), and the conversion of a `vmm run --json` KSM timeline into
 * such a series.
 *
 * "Sharing" is what costs no page: pages_sharing + ksm_zero_pages, the
 * quantity the ideal is stated in (ksmd_ideal_pages()).
 */
#ifndef BENCH_KSM_CURVE_H
#define BENCH_KSM_CURVE_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

struct ksm_point {
	double t; /* seconds from the curve's t=0 (may be negative) */
	uint64_t pages_shared, pages_sharing, ksm_zero_pages, pages_volatile, full_scans;
	double cpu;	    /* scanner CPU seconds since t=0 */
	uint64_t pss_bytes; /* host memory of the guests' processes; 0 if not sampled */
	/* When the counters above are restricted to the guests' pattern
	 * buffers: the host-wide /sys/kernel/mm/ksm figures at the same time. */
	uint64_t sys_pages_sharing, sys_ksm_zero_pages;
};

static inline uint64_t ksm_point_saved(const struct ksm_point *p)
{
	return p->pages_sharing + p->ksm_zero_pages;
}

struct ksm_curve {
	struct ksm_point *p;
	size_t n, cap;
};

/* Runs gnuplot on `script`; its output goes to script.log, printed on
 * failure with `tool` naming the caller. Returns 0 or -1. */
int gnuplot_run(const char *script, const char *tool);

void ksm_curve_add(struct ksm_curve *c, const struct ksm_point *p);
void ksm_curve_free(struct ksm_curve *c);

struct ksm_milestones {
	double t50, t90, t99; /* first t >= 0 at which sharing >= that share of the ideal; -1 */
	double cpu50, cpu90, cpu99; /* scanner CPU at those points; -1 if not reached */
	uint64_t peak_saved;	    /* the most sharing seen, in pages */
	double t_peak;
};

/* Reads the milestones off the points with t >= 0 and t <= t_end. */
void ksm_curve_milestones(const struct ksm_curve *c, uint64_t ideal, double t_end,
			  struct ksm_milestones *m);

/* The last point with t <= t_end (NULL if none). */
const struct ksm_point *ksm_curve_at(const struct ksm_curve *c, double t_end);

/* Appends the KSM timeline of a vmm --json report, with t shifted so that
 * t_zero (seconds from the fleet's start, the timeline's own zero) becomes 0
 * and the scanner CPU taken relative to its value at t_zero. Returns the
 * number of points, -1 if the report has no timeline. */
int ksm_curve_from_vmm_report(json_object *report, double t_zero, struct ksm_curve *c);

/* The curve as a JSON array of [t, pages_sharing + ksm_zero_pages, cpu,
 * pss_bytes, sys_pages_sharing + sys_ksm_zero_pages] rows. */
json_object *ksm_curve_json(const struct ksm_curve *c);

#endif
