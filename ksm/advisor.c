/*
 * advisor.c - the scan-time advisor (advisor.h).
 *
 * A full scan that looks at W pages (hashed or checked; smart scan's skips
 * are free) in batches every p ms (the sleep plus the batch itself,
 * measured over the scan) takes W / pages_to_scan * p, so the rate that
 * meets the target T is
 *
 *   pages = W * p / T
 *
 * capped so that the scanner's CPU stays under max_cpu percent and kept
 * between min_pages and max_pages.
 *
 * Linux scales the old rate by t / T and by the ratio of this scan's time
 * to the last one's (in whole seconds). That is the same rule while scans
 * look alike, but with smart scan a fleet's pages come back from their
 * skips in waves (a few scans of 20 ms, then one of a second), and it
 * swung the rate by 40x at each wave here. So:
 *   - W is the most any full scan of the last two target times looked at
 *     (ADVISOR_MEMORY; the latest always counts): a wave comes back about
 *     every T, so the scans of a big wave take about T and the others end
 *     sooner. (An average of W set the rate for the short scans, and the
 *     next wave took 7x the target; a memory of 16 scans kept a first
 *     scan's W, which skips nothing, for 10 s against a 2 s target, at 4x
 *     the rate.)
 *   - p and the CPU cap's cost per page are taken over the same scans: a
 *     short scan's own are mostly its fixed costs (its cost per page capped
 *     the rate to the floor; one batch of 100 ms, an idle wait included,
 *     raised it 4x).
 *   - Time is counted in milliseconds: small fleets scan in far less than
 *     a second.
 *   - Before any scan was measured, W is every present page (a first scan
 *     skips none) and p the sleep. Started from min_pages, as Linux's is, a
 *     first scan of a large fleet took many times the target (52 s for a
 *     2 s target with 8 x 64 MiB and min_pages 50).
 */
#include "advisor.h"

#include <string.h>

#include "ksm.h"

void advisor_reset(struct advisor *a)
{
	memset(a, 0, sizeof(*a));
}

/* pages between min_pages and max_pages, at least 1. */
static unsigned advisor_clamp(const struct ksm_config *cfg, double pages)
{
	if (pages > cfg->advisor_max_pages)
		pages = cfg->advisor_max_pages;
	if (pages < cfg->advisor_min_pages)
		pages = cfg->advisor_min_pages;
	return (unsigned)(pages >= 1 ? pages : 1);
}

unsigned advisor_update(struct advisor *a, const struct ksm_config *cfg,
			const struct advisor_clock *now)
{
	double target = cfg->advisor_target_scan_ms ? cfg->advisor_target_scan_ms : 1;
	unsigned pages = cfg->pages_to_scan;
	if (!a->started) {
		double sleep_ms = cfg->sleep_millisecs ? cfg->sleep_millisecs : 1;
		pages = advisor_clamp(cfg, (double)now->present_pages * sleep_ms / target);
	} else if (now->batches > a->start.batches) {
		uint64_t t_ms = (now->now_ns - a->start.now_ns) / 1000000;
		t_ms = t_ms ? t_ms : 1;
		uint64_t cpu_ns = now->cpu_ns - a->start.cpu_ns;
		uint64_t looked = now->pages_scanned - a->start.pages_scanned;
		if (looked) { /* a scan that skipped everything tells nothing */
			a->scans[a->next].work = looked;
			a->scans[a->next].cpu_ns = cpu_ns;
			a->scans[a->next].ms = t_ms;
			a->scans[a->next].batches = now->batches - a->start.batches;
			a->scans[a->next].end_ns = now->now_ns;
			a->next = (a->next + 1) % ADVISOR_SCANS;
		}
		uint64_t most = 0, work = 0, cpu = 0, ms = 0, batches = 0;
		uint64_t memory_ns = (uint64_t)(ADVISOR_MEMORY * target * 1e6);
		unsigned latest = (a->next + ADVISOR_SCANS - 1) % ADVISOR_SCANS;
		for (unsigned i = 0; i < ADVISOR_SCANS; i++) {
			if (i != latest && a->scans[i].end_ns + memory_ns < now->now_ns)
				continue;
			if (a->scans[i].work > most)
				most = a->scans[i].work;
			work += a->scans[i].work;
			cpu += a->scans[i].cpu_ns;
			ms += a->scans[i].ms;
			batches += a->scans[i].batches;
		}
		double period_ms = batches ? (double)ms / (double)batches : (double)t_ms;
		double want = (double)most * period_ms / target;
		/* a batch every period_ms at max_cpu percent of a CPU */
		double cap = cpu && work ? cfg->advisor_max_cpu / 100.0 * period_ms * 1e6 *
						   (double)work / (double)cpu
					 : want;
		pages = advisor_clamp(cfg, want > cap ? cap : want);
		a->scan_seconds = (double)t_ms * 1e-3;
		a->cpu_percent = (double)cpu_ns * 1e-4 / (double)t_ms;
	}
	a->started = true;
	a->start = *now;
	return pages;
}
