/*
 * ksm_curve.c - sharing over time and its milestones (see ksm_curve.h).
 *
 * The vmm report's timeline rows are [t, pages_shared, pages_sharing,
 * ksm_zero_pages, pages_volatile, pages_scanned, cpu_seconds,
 * guest_present_pages, host_frames] (its "timeline_columns"); the columns are
 * looked up by name so that a new column does not break the reader.
 */
#include "ksm_curve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ksm_curve_add(struct ksm_curve *c, const struct ksm_point *p)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		struct ksm_point *np = realloc(c->p, cap * sizeof(*np));
		if (!np)
			abort();
		c->p = np;
		c->cap = cap;
	}
	c->p[c->n++] = *p;
}

void ksm_curve_free(struct ksm_curve *c)
{
	free(c->p);
	memset(c, 0, sizeof(*c));
}

void ksm_curve_milestones(const struct ksm_curve *c, uint64_t ideal, double t_end,
			  struct ksm_milestones *m)
{
	m->t50 = m->t90 = m->t99 = -1;
	m->cpu50 = m->cpu90 = m->cpu99 = -1;
	m->peak_saved = 0;
	m->t_peak = -1;
	for (size_t i = 0; i < c->n; i++) {
		const struct ksm_point *p = &c->p[i];
		if (p->t < 0 || p->t > t_end)
			continue;
		uint64_t s = ksm_point_saved(p);
		if (s > m->peak_saved || m->t_peak < 0) {
			m->peak_saved = s;
			m->t_peak = p->t;
		}
		if (m->t50 < 0 && s >= ideal / 2) {
			m->t50 = p->t;
			m->cpu50 = p->cpu;
		}
		if (m->t90 < 0 && s >= ideal * 9 / 10) {
			m->t90 = p->t;
			m->cpu90 = p->cpu;
		}
		if (m->t99 < 0 && s >= ideal * 99 / 100) {
			m->t99 = p->t;
			m->cpu99 = p->cpu;
		}
	}
}

const struct ksm_point *ksm_curve_at(const struct ksm_curve *c, double t_end)
{
	const struct ksm_point *last = NULL;
	for (size_t i = 0; i < c->n; i++)
		if (c->p[i].t <= t_end)
			last = &c->p[i];
	return last;
}

static int column(json_object *columns, const char *name)
{
	size_t n = columns ? json_object_array_length(columns) : 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(json_object_get_string(json_object_array_get_idx(columns, i)), name) ==
		    0)
			return (int)i;
	return -1;
}

static double cell(json_object *row, int col)
{
	return col >= 0 ? json_object_get_double(json_object_array_get_idx(row, (size_t)col)) : 0;
}

int ksm_curve_from_vmm_report(json_object *report, double t_zero, struct ksm_curve *c)
{
	json_object *ksm, *timeline, *columns;
	if (!report || !json_object_object_get_ex(report, "ksm", &ksm) ||
	    !json_object_object_get_ex(ksm, "timeline", &timeline) ||
	    !json_object_object_get_ex(ksm, "timeline_columns", &columns))
		return -1;
	int ct = column(columns, "t"), cshared = column(columns, "pages_shared"),
	    csharing = column(columns, "pages_sharing"), czero = column(columns, "ksm_zero_pages"),
	    cvol = column(columns, "pages_volatile"), ccpu = column(columns, "cpu_seconds");
	if (ct < 0 || csharing < 0 || czero < 0)
		return -1;
	size_t n = json_object_array_length(timeline);
	/* The scanner's CPU at t_zero: the last row at or before it. */
	double cpu0 = 0;
	for (size_t i = 0; i < n; i++) {
		json_object *row = json_object_array_get_idx(timeline, i);
		if (cell(row, ct) <= t_zero)
			cpu0 = cell(row, ccpu);
	}
	for (size_t i = 0; i < n; i++) {
		json_object *row = json_object_array_get_idx(timeline, i);
		struct ksm_point p = {
			.t = cell(row, ct) - t_zero,
			.pages_shared = (uint64_t)cell(row, cshared),
			.pages_sharing = (uint64_t)cell(row, csharing),
			.ksm_zero_pages = (uint64_t)cell(row, czero),
			.pages_volatile = (uint64_t)cell(row, cvol),
			.cpu = cell(row, ccpu) - cpu0,
		};
		ksm_curve_add(c, &p);
	}
	return (int)n;
}

json_object *ksm_curve_json(const struct ksm_curve *c)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < c->n; i++) {
		const struct ksm_point *p = &c->p[i];
		json_object *row = json_object_new_array();
		json_object_array_add(row, json_object_new_double(p->t));
		json_object_array_add(row, json_object_new_int64((int64_t)ksm_point_saved(p)));
		json_object_array_add(row, json_object_new_double(p->cpu));
		json_object_array_add(row, json_object_new_int64((int64_t)p->pss_bytes));
		json_object_array_add(row, json_object_new_int64((int64_t)(p->sys_pages_sharing +
									   p->sys_ksm_zero_pages)));
		json_object_array_add(a, row);
	}
	return a;
}

int gnuplot_run(const char *script, const char *tool)
{
	if (strchr(script, '\'')) {
		fprintf(stderr, "%s: cannot plot into a path with a quote: %s\n", tool, script);
		return -1;
	}
	char cmd[3 * 4096 + 128];
	snprintf(cmd, sizeof(cmd), "gnuplot '%s' > '%s.log' 2>&1 || { cat '%s.log' >&2; exit 1; }",
		 script, script, script);
	if (system(cmd) != 0) {
		fprintf(stderr, "%s: gnuplot failed (is gnuplot-nox installed?)\n", tool);
		return -1;
	}
	return 0;
}
