/*
 * psi.h - pressure stall information, as Linux's kernel/sched/psi.c, for
 * memory: how much of the time the members of a group (VMs) lost waiting for
 * memory.
 *
 * A member is stalled while it waits for memory it needs (its fault makes
 * room by reclaim or waits for an OOM kill to free some, it waits for a
 * swap-in, or it is throttled above memory.high) and non-idle while it runs
 * or is stalled (not while its guest sleeps). For each group:
 *   some  the time at least one member under it was stalled;
 *   full  the time every non-idle member under it was stalled at once (and
 *         at least one was): time in which no guest made progress.
 * Totals are kept exactly, as each state change closes the interval since
 * the last; the averages over 10, 60 and 300 s are exponentially decayed
 * shares of time, updated when read (at most every 2 s, Linux's PSI_FREQ):
 * each update decays them by the time elapsed and adds that time's share.
 *
 * Groups form a tree (a member's state counts in its group and every
 * ancestor). One lock serialises every change and read; changes happen
 * only when a member starts or stops stalling or sleeping, never per page.
 * Times are passed in (ns, monotonic) so that tests can drive the clock.
 */
#ifndef MM_PSI_H
#define MM_PSI_H

#include <stdbool.h>
#include <stdint.h>

#define PSI_AVGS 3 /* avg10, avg60, avg300 */

struct psi_group {
	struct psi_group *parent;
	unsigned nonidle, stalled; /* members under it now */
	uint64_t since_ns;	   /* when those counts last changed */
	uint64_t some_ns, full_ns; /* totals */
	/* the averages, as shares of time (0..1), and where they stand */
	double some_avg[PSI_AVGS], full_avg[PSI_AVGS];
	uint64_t avg_ns, avg_some_ns, avg_full_ns;
};

/* One member's state (a VM's, in its own group). */
struct psi_member {
	bool running;	      /* not idle */
	unsigned stall_depth; /* stalls in progress (they nest) */
};

struct psi_stats {
	double some_avg[PSI_AVGS], full_avg[PSI_AVGS]; /* percent, 0..100 */
	uint64_t some_total_us, full_total_us;
};

void psi_group_init(struct psi_group *g, struct psi_group *parent, uint64_t now_ns);
/* The member of group g starts (+1) or stops (-1) a stall. */
void psi_stall(struct psi_group *g, struct psi_member *m, int delta, uint64_t now_ns);
/* The member of group g runs or goes idle (its guest sleeps, or it ended). */
void psi_running(struct psi_group *g, struct psi_member *m, bool running, uint64_t now_ns);
/* The figures of g as of now_ns (updating its averages). */
void psi_read(struct psi_group *g, uint64_t now_ns, struct psi_stats *out);
/* A group going away: its members' states leave its ancestors. */
void psi_group_exit(struct psi_group *g, uint64_t now_ns);

/* CLOCK_MONOTONIC, ns. */
uint64_t psi_now(void);

#endif
