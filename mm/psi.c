/*
 * psi.c - pressure stall information for memory (psi.h).
 */
#include "psi.h"

#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define PSI_PERIOD_NS 2000000000ull /* PSI_FREQ: averages move every 2 s */

static const double window_s[PSI_AVGS] = {10, 60, 300};
static pthread_mutex_t psi_lock = PTHREAD_MUTEX_INITIALIZER;

uint64_t psi_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

void psi_group_init(struct psi_group *g, struct psi_group *parent, uint64_t now_ns)
{
	memset(g, 0, sizeof(*g));
	g->parent = parent;
	g->since_ns = g->avg_ns = now_ns;
}

/* Closes the interval since the last change: its time goes to some and
 * full by the state it was in. */
static void accumulate(struct psi_group *g, uint64_t now_ns)
{
	if (now_ns <= g->since_ns)
		return;
	uint64_t dt = now_ns - g->since_ns;
	if (g->stalled) {
		g->some_ns += dt;
		if (g->stalled == g->nonidle)
			g->full_ns += dt;
	}
	g->since_ns = now_ns;
}

/* A member's contribution: non-idle if running or stalled, stalled if in a
 * stall. */
static void contribution(const struct psi_member *m, unsigned *nonidle, unsigned *stalled)
{
	*stalled = m->stall_depth > 0;
	*nonidle = m->running || *stalled;
}

static void change(struct psi_group *g, const struct psi_member *before,
		   const struct psi_member *after, uint64_t now_ns)
{
	unsigned n0, s0, n1, s1;
	contribution(before, &n0, &s0);
	contribution(after, &n1, &s1);
	if (n0 == n1 && s0 == s1)
		return;
	for (; g; g = g->parent) {
		accumulate(g, now_ns);
		g->nonidle = g->nonidle - n0 + n1;
		g->stalled = g->stalled - s0 + s1;
	}
}

void psi_stall(struct psi_group *g, struct psi_member *m, int delta, uint64_t now_ns)
{
	pthread_mutex_lock(&psi_lock);
	struct psi_member before = *m;
	if (delta < 0 && m->stall_depth == 0)
		delta = 0; /* unbalanced: ignore rather than wrap */
	m->stall_depth = (unsigned)((int)m->stall_depth + delta);
	change(g, &before, m, now_ns);
	pthread_mutex_unlock(&psi_lock);
}

void psi_running(struct psi_group *g, struct psi_member *m, bool running, uint64_t now_ns)
{
	pthread_mutex_lock(&psi_lock);
	struct psi_member before = *m;
	m->running = running;
	change(g, &before, m, now_ns);
	pthread_mutex_unlock(&psi_lock);
}

static void update_avgs(struct psi_group *g, uint64_t now_ns)
{
	if (now_ns < g->avg_ns + PSI_PERIOD_NS)
		return;
	double elapsed = (double)(now_ns - g->avg_ns);
	double some = (double)(g->some_ns - g->avg_some_ns) / elapsed;
	double full = (double)(g->full_ns - g->avg_full_ns) / elapsed;
	for (int i = 0; i < PSI_AVGS; i++) {
		double keep = exp(-elapsed / (window_s[i] * 1e9));
		g->some_avg[i] = g->some_avg[i] * keep + some * (1 - keep);
		g->full_avg[i] = g->full_avg[i] * keep + full * (1 - keep);
	}
	g->avg_ns = now_ns;
	g->avg_some_ns = g->some_ns;
	g->avg_full_ns = g->full_ns;
}

void psi_read(struct psi_group *g, uint64_t now_ns, struct psi_stats *out)
{
	pthread_mutex_lock(&psi_lock);
	accumulate(g, now_ns);
	update_avgs(g, now_ns);
	for (int i = 0; i < PSI_AVGS; i++) {
		out->some_avg[i] = g->some_avg[i] * 100;
		out->full_avg[i] = g->full_avg[i] * 100;
	}
	out->some_total_us = g->some_ns / 1000;
	out->full_total_us = g->full_ns / 1000;
	pthread_mutex_unlock(&psi_lock);
}

void psi_group_exit(struct psi_group *g, uint64_t now_ns)
{
	pthread_mutex_lock(&psi_lock);
	accumulate(g, now_ns);
	unsigned nonidle = g->nonidle, stalled = g->stalled;
	for (struct psi_group *p = g->parent; p && (nonidle || stalled); p = p->parent) {
		accumulate(p, now_ns);
		p->nonidle -= nonidle;
		p->stalled -= stalled;
	}
	g->nonidle = g->stalled = 0;
	pthread_mutex_unlock(&psi_lock);
}
