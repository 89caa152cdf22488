/*
 * advisor.h - KSM's scan-time advisor: the pages_to_scan that makes a full
 * scan take a target time, within a CPU budget (Linux 6.9's
 * scan_time_advisor(), with a different rule: see advisor.c).
 *
 * The scanner calls advisor_update() when it switches the advisor on (no
 * scan measured yet) and at the end of every full scan, with its counters
 * at that moment; the advisor keeps what it needs of the last full scans.
 *
 * Locking: the KSM lock (the advisor is part of the scanner's state).
 */
#ifndef KSM_ADVISOR_H
#define KSM_ADVISOR_H

#include <stdbool.h>
#include <stdint.h>

/* The advisor's memory: full scans that looked at something and ended
 * within the last ADVISOR_MEMORY target times, at most ADVISOR_SCANS. */
#define ADVISOR_SCANS 16
#define ADVISOR_MEMORY 2

struct ksm_config;

/* The scanner's counters, now. */
struct advisor_clock {
	uint64_t now_ns;	/* CLOCK_MONOTONIC */
	uint64_t cpu_ns;	/* the scanner's CPU so far */
	uint64_t pages_scanned; /* pages looked at so far (smart scan's skips not) */
	uint64_t batches;	/* batches so far */
	uint64_t present_pages; /* the fleet's present pages (read for the first estimate) */
};

struct advisor {
	/* the current full scan's start; started false: none measured yet */
	bool started;
	struct advisor_clock start;
	/* the last ADVISOR_SCANS full scans: pages looked at, scanner CPU,
	 * time, batches */
	struct {
		uint64_t work, cpu_ns, ms, batches, end_ns;
	} scans[ADVISOR_SCANS];
	unsigned next; /* the slot the next scan fills */
	/* the last full scan, for the report */
	double scan_seconds, cpu_percent;
};

/* Forgets every measurement (the advisor was switched on). */
void advisor_reset(struct advisor *a);
/* A full scan ended (or the advisor has not measured one yet): returns the
 * pages_to_scan for the next one, from cfg's target, CPU budget and
 * min/max pages, and starts measuring the next scan at `now`. */
unsigned advisor_update(struct advisor *a, const struct ksm_config *cfg,
			const struct advisor_clock *now);

#endif
