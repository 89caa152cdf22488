/*
 * report.c - the run report, as a table and as JSON (json-c).
 */
#include "report.h"

#include <json-c/json.h>
#include <string.h>

#include "fleet.h"
#include "io/fault_inject.h"
#include "map_count.h"
#include "mm/frame_table.h"
#include "mm/slab.h"
#include "size.h"
#include "version.h"
#include "vm.h"

struct pool_summary {
	struct frame_pool_stats pool;
	uint64_t rss_pages, sept_bytes;
	double metadata_per_page;
};

static void summarise_pool(const struct fleet *fleet, struct pool_summary *s)
{
	memset(s, 0, sizeof(*s));
	frame_pool_get_stats(fleet->pool, &s->pool);
	for (unsigned i = 0; i < fleet->nvms; i++) {
		s->rss_pages += fleet->vms[i]->result.memory.rss_pages;
		s->sept_bytes += fleet->vms[i]->result.memory.sept_bytes;
	}
	/* Per guest page: its frame's entry in the frame table plus its share
	 * of the software EPT tables (reverse maps of private frames are inline). */
	if (s->rss_pages)
		s->metadata_per_page =
			(double)sizeof(struct frame) + (double)s->sept_bytes / (double)s->rss_pages;
}

/* How the vCPUs reached pool memory, where there is a choice (TCG). */
static const char *mmu_note(const struct fleet *fleet)
{
	if (!fleet->pool || !fleet->accel.ops->vm_set_page_table)
		return "";
	return vm_realiser(&fleet->accel, &fleet->spec->memory) == GUEST_REALISER_OWNED
		       ? " (mmu: owned page table)"
		       : " (mmu: host mappings)";
}

static void print_pool(const struct fleet *fleet, FILE *out)
{
	struct pool_summary s;
	char a[32], b[32], c[32];
	summarise_pool(fleet, &s);
	const struct frame_pool_stats *p = &s.pool;
	fprintf(out, "pool: MemTotal %s, MemFree %s after the run, peak used %s\n",
		size_format(p->total_pages * FRAME_SIZE, a, sizeof(a)),
		size_format(p->free_pages * FRAME_SIZE, b, sizeof(b)),
		size_format(p->peak_used_pages * FRAME_SIZE, c, sizeof(c)));
	fprintf(out,
		"watermarks: min %llu low %llu high %llu pages (min_free_kbytes %llu, "
		"watermark_scale_factor %u)\n",
		(unsigned long long)p->wmark.min, (unsigned long long)p->wmark.low,
		(unsigned long long)p->wmark.high, (unsigned long long)p->wmark.min_free_kbytes,
		p->wmark.watermark_scale_factor);
	fprintf(out, "buddyinfo: Node 0, zone     Pool");
	for (int o = 0; o < BUDDY_ORDERS; o++)
		fprintf(out, " %6llu", (unsigned long long)p->nr_free[o]);
	fputc('\n', out);
	fprintf(out, "metadata: %.2f bytes per guest page (frame table %zu B/frame, sEPT %s)\n",
		s.metadata_per_page, sizeof(struct frame), size_format(s.sept_bytes, a, sizeof(a)));
	fprintf(out,
		"mappings: peak %llu VMAs sampled every 2 s (estimate %llu, vm.max_map_count %llu)\n",
		(unsigned long long)fleet->peak_vmas, (unsigned long long)fleet->vmas_needed,
		(unsigned long long)map_count_limit());
	struct slab_info slabs[16];
	size_t n = slab_caches_info(slabs, 16);
	for (size_t i = 0; i < n; i++)
		fprintf(out,
			"slabinfo: %-14s active %6llu total %6llu objsize %4zu objperslab %4u "
			"pages %llu\n",
			slabs[i].name, (unsigned long long)slabs[i].active_objects,
			(unsigned long long)slabs[i].total_objects, slabs[i].object_size,
			slabs[i].objects_per_slab, (unsigned long long)slabs[i].pages);
}

static json_object *u64(uint64_t v)
{
	return json_object_new_int64((int64_t)v);
}

static json_object *pool_json(const struct fleet *fleet)
{
	struct pool_summary s;
	summarise_pool(fleet, &s);
	const struct frame_pool_stats *p = &s.pool;
	const struct memory_settings *m = &fleet->spec->memory;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "backing", json_object_new_string("pool"));
	json_object_object_add(o, "fault_around_pages", u64(memory_settings_fault_around_pages(m)));
	json_object_object_add(o, "fault_ahead_max_pages", u64(m->fault_ahead_bytes / 4096));
	json_object_object_add(o, "thp", json_object_new_boolean(m->thp));
	json_object_object_add(o, "MemTotal", u64(p->total_pages * FRAME_SIZE));
	json_object_object_add(o, "MemFree", u64(p->free_pages * FRAME_SIZE));
	json_object_object_add(o, "peak_used_bytes", u64(p->peak_used_pages * FRAME_SIZE));
	json_object_object_add(o, "used_bytes", u64(p->used_pages * FRAME_SIZE));
	json_object_object_add(o, "frames_lost", u64(p->frames_lost));
	json_object *buddy = json_object_new_array();
	for (int i = 0; i < BUDDY_ORDERS; i++)
		json_object_array_add(buddy, u64(p->nr_free[i]));
	json_object_object_add(o, "buddyinfo", buddy);
	json_object *w = json_object_new_object();
	json_object_object_add(w, "min_free_kbytes", u64(p->wmark.min_free_kbytes));
	json_object_object_add(w, "watermark_scale_factor", u64(p->wmark.watermark_scale_factor));
	json_object_object_add(w, "min", u64(p->wmark.min));
	json_object_object_add(w, "low", u64(p->wmark.low));
	json_object_object_add(w, "high", u64(p->wmark.high));
	json_object_object_add(o, "watermarks", w);
	json_object_object_add(o, "frame_table_bytes_per_frame", u64(sizeof(struct frame)));
	json_object_object_add(o, "sept_bytes", u64(s.sept_bytes));
	json_object_object_add(o, "metadata_bytes_per_guest_page",
			       json_object_new_double(s.metadata_per_page));
	json_object_object_add(o, "vmas_peak", u64(fleet->peak_vmas));
	json_object_object_add(o, "vmas_estimate", u64(fleet->vmas_needed));
	json_object_object_add(o, "max_map_count", u64(map_count_limit()));
	json_object *ft = json_object_new_object();
	struct fault_thread_stats fs;
	fault_thread_get_stats((struct fault_thread *)&fleet->faults, &fs);
	json_object_object_add(ft, "events", u64(fs.events));
	json_object_object_add(ft, "wakeups", u64(fs.wakeups));
	json_object_object_add(ft, "spin_hits", u64(fs.spin_hits));
	json_object_object_add(ft, "serve_us", u64(fs.serve_us));
	json_object_object_add(ft, "deferrals", u64(fs.deferrals));
	json_object_object_add(o, "fault_thread", ft);
	json_object *slabs = json_object_new_array();
	struct slab_info info[16];
	size_t n = slab_caches_info(info, 16);
	for (size_t i = 0; i < n; i++) {
		json_object *sl = json_object_new_object();
		json_object_object_add(sl, "name", json_object_new_string(info[i].name));
		json_object_object_add(sl, "active_objs", u64(info[i].active_objects));
		json_object_object_add(sl, "num_objs", u64(info[i].total_objects));
		json_object_object_add(sl, "objsize", u64(info[i].object_size));
		json_object_object_add(sl, "objperslab", u64(info[i].objects_per_slab));
		json_object_object_add(sl, "pagesperslab", u64(info[i].pages_per_slab));
		json_object_object_add(sl, "pages", u64(info[i].pages));
		json_object_array_add(slabs, sl);
	}
	json_object_object_add(o, "slabinfo", slabs);
	return o;
}

/* memory.events, as the VM and cgroup objects give them. */
static json_object *events_json(const struct memory_events *ev)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "low", u64(ev->low));
	json_object_object_add(o, "high", u64(ev->high));
	json_object_object_add(o, "max", u64(ev->max));
	json_object_object_add(o, "oom", u64(ev->oom));
	json_object_object_add(o, "oom_kill", u64(ev->oom_kill));
	json_object_object_add(o, "oom_group_kill", u64(ev->oom_group_kill));
	return o;
}

static json_object *vm_memory_json(const struct vm *vm)
{
	const struct guest_memory_stats *m = &vm->result.memory;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "Rss", u64(m->rss_pages * FRAME_SIZE));
	json_object_object_add(o, "rss_pages", u64(m->rss_pages));
	json_object_object_add(o, "pinned_pages", u64(m->pinned_pages));
	json_object_object_add(o, "faults", u64(m->faults));
	json_object_object_add(o, "fault_around_pages", u64(m->fault_around_pages));
	json_object_object_add(o, "fault_ahead_pages", u64(m->fault_ahead_pages));
	json_object_object_add(o, "wp_faults", u64(m->wp_faults));
	json_object_object_add(o, "access_faults", u64(m->access_faults));
	json_object_object_add(o, "access_protected", u64(m->access_protected));
	json_object_object_add(o, "cow_pages", u64(m->cow_pages));
	json_object_object_add(o, "spurious_faults", u64(m->spurious_faults));
	json_object_object_add(o, "maps", u64(m->maps));
	json_object_object_add(o, "sept_bytes", u64(m->sept_bytes));
	json_object_object_add(o, "buffer_gpa", u64(vm->result.buffer_gpa));
	json_object_object_add(o, "buffer_bytes", u64(vm->result.buffer_bytes));
	json_object_object_add(o, "buffer_resident_pages", u64(vm->result.buffer.present));
	json_object_object_add(o, "buffer_ksm_pages", u64(vm->result.buffer.shared));
	json_object_object_add(o, "buffer_zero_pages", u64(vm->result.buffer.zero));
	json_object_object_add(o, "image_pages", u64(m->image_pages));
	json_object_object_add(o, "image_zero_pages", u64(m->image_zero_pages));
	json_object_object_add(o, "Pss", u64(m->pss_bytes));
	json_object_object_add(o, "Shared", u64(m->shared_bytes));
	json_object_object_add(o, "ksm_merging_pages", u64(m->ksm_merging_pages));
	json_object_object_add(o, "ksm_zero_pages", u64(m->ksm_zero_pages));
	/* /proc/PID/ksm_stat's figures: KSM's own memory for the VM in place of
	 * ksm_rmap_items, and the profit net of it. */
	json_object_object_add(o, "ksm_metadata_bytes", u64(vm->result.ksm_metadata_bytes));
	json_object_object_add(
		o, "ksm_process_profit",
		json_object_new_int64(
			(int64_t)((m->ksm_merging_pages + m->ksm_zero_pages) * FRAME_SIZE) -
			(int64_t)vm->result.ksm_metadata_bytes));
	json_object *cow = json_object_new_object();
	uint64_t cows = 0;
	for (int b = 0; b < 24; b++)
		cows += m->cow_latency.count[b];
	json_object_object_add(cow, "count", u64(cows));
	json_object_object_add(cow, "p50",
			       json_object_new_double(latency_percentile(&m->cow_latency, 0.50)));
	json_object_object_add(cow, "p90",
			       json_object_new_double(latency_percentile(&m->cow_latency, 0.90)));
	json_object_object_add(cow, "p99",
			       json_object_new_double(latency_percentile(&m->cow_latency, 0.99)));
	json_object *buckets = json_object_new_array();
	for (int b = 0; b < 24; b++)
		json_object_array_add(buckets, u64(m->cow_latency.count[b]));
	json_object_object_add(cow, "log2_us_buckets", buckets);
	json_object_object_add(o, "cow_latency_us", cow);
	json_object_object_add(o, "Swap", u64(m->swap_pages * FRAME_SIZE));
	json_object_object_add(o, "pswpin", u64(m->pswpin));
	json_object_object_add(o, "pswpout", u64(m->pswpout));
	json_object_object_add(o, "throttled_seconds",
			       json_object_new_double(vm->result.throttled_seconds));
	json_object_object_add(o, "memory.events", events_json(&vm->result.events));
	return o;
}

/* --- swap and reclaim --- */

static void print_reclaim(const struct fleet *fleet, FILE *out)
{
	const struct reclaim_stats *s = &fleet->reclaim_final;
	char a[32], b[32];
	if (s->swap_total_pages)
		fprintf(out,
			"swap: SwapTotal %s, SwapFree %s, pswpout %llu, pswpin %llu, refaults %llu "
			"(%llu protected), readahead %llu, swap cache hits %llu, one-page swap-in p50 "
			"%.0f us p99 %.0f us\n",
			size_format(s->swap_total_pages * 4096, a, sizeof(a)),
			size_format(s->swap_free_pages * 4096, b, sizeof(b)),
			(unsigned long long)s->pswpout, (unsigned long long)s->pswpin,
			(unsigned long long)s->refaults, (unsigned long long)s->refaults_protected,
			(unsigned long long)s->readahead_pages,
			(unsigned long long)s->swap_cache_hits,
			latency_percentile(&s->swapin_latency, 0.5),
			latency_percentile(&s->swapin_latency, 0.99));
	fprintf(out,
		"reclaim: pgscan %llu, pgsteal %llu (%llu untouched frames dropped), kswapd %llu runs "
		"%.3f s, direct %llu %.3f s, oom_kill %llu, age threshold %u ms\n",
		(unsigned long long)s->pgscan, (unsigned long long)s->pgsteal,
		(unsigned long long)s->dropped_untouched, (unsigned long long)s->kswapd_runs,
		s->kswapd_seconds, (unsigned long long)s->direct_reclaims, s->direct_seconds,
		(unsigned long long)s->oom_kills, s->age_threshold_ms);
	if (s->zswap_hits || s->zswap_pages)
		fprintf(out, "zswap: %llu pages in %s, %llu hits\n",
			(unsigned long long)s->zswap_pages,
			size_format(s->zswap_bytes, a, sizeof(a)),
			(unsigned long long)s->zswap_hits);
}

/* --- cgroups --- */

static const char *limit_text(uint64_t pages, char *buf, size_t len)
{
	if (pages == PAGE_COUNTER_MAX)
		return "max";
	return size_format(pages * FRAME_SIZE, buf, len);
}

static void print_cgroups(const struct fleet *fleet, FILE *out)
{
	for (unsigned i = 0; i < fleet->cgroups.n; i++) {
		const struct fleet_cgroup *cg = &fleet->cgroups.all[i];
		const struct page_counter *c = &cg->memcg->counter;
		struct memory_events ev;
		memcg_read_events(cg->memcg, &ev, NULL);
		struct psi_stats ps;
		memcg_pressure(cg->memcg, &ps);
		char peak[32], min[32], low[32], high[32], max[32], swap_peak[32], swap_max[32];
		fprintf(out,
			"cgroup %s: %u VMs, memory.peak %s, memory.min %s, memory.low %s, "
			"memory.high %s, memory.max %s, oom.group %d, events low %llu high %llu "
			"max %llu oom %llu oom_kill %llu oom_group_kill %llu, pressure some %.1f ms "
			"full %.1f ms, swap peak %s max %s\n",
			cg->path, cg->vms, size_format(page_counter_peak(c) * FRAME_SIZE, peak, 32),
			limit_text(page_counter_min(c), min, 32),
			limit_text(page_counter_low(c), low, 32),
			limit_text(page_counter_high(c), high, 32),
			limit_text(page_counter_max(c), max, 32), memcg_oom_group_set(cg->memcg),
			(unsigned long long)ev.low, (unsigned long long)ev.high,
			(unsigned long long)ev.max, (unsigned long long)ev.oom,
			(unsigned long long)ev.oom_kill, (unsigned long long)ev.oom_group_kill,
			(double)ps.some_total_us / 1e3, (double)ps.full_total_us / 1e3,
			size_format(page_counter_peak(&cg->memcg->swap) * FRAME_SIZE, swap_peak,
				    32),
			limit_text(page_counter_max(&cg->memcg->swap), swap_max, 32));
	}
}

static json_object *limit_json(uint64_t pages)
{
	return pages == PAGE_COUNTER_MAX ? json_object_new_string("max") : u64(pages * FRAME_SIZE);
}

static json_object *pressure_line(const double avg[PSI_AVGS], uint64_t total_us)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "avg10", json_object_new_double(avg[0]));
	json_object_object_add(o, "avg60", json_object_new_double(avg[1]));
	json_object_object_add(o, "avg300", json_object_new_double(avg[2]));
	json_object_object_add(o, "total", u64(total_us));
	return o;
}

/* memory.pressure: Linux's two lines, total in microseconds. */
static json_object *pressure_json(struct memcg *cg)
{
	struct psi_stats ps;
	memcg_pressure(cg, &ps);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "some", pressure_line(ps.some_avg, ps.some_total_us));
	json_object_object_add(o, "full", pressure_line(ps.full_avg, ps.full_total_us));
	return o;
}

static json_object *cgroups_json(const struct fleet *fleet)
{
	json_object *all = json_object_new_array();
	for (unsigned i = 0; i < fleet->cgroups.n; i++) {
		const struct fleet_cgroup *cg = &fleet->cgroups.all[i];
		const struct page_counter *c = &cg->memcg->counter;
		struct memory_events hier, local;
		memcg_read_events(cg->memcg, &hier, &local);
		json_object *o = json_object_new_object();
		json_object_object_add(o, "path", json_object_new_string(cg->path));
		json_object_object_add(o, "vms", json_object_new_int((int)cg->vms));
		json_object_object_add(o, "memory.peak", u64(page_counter_peak(c) * FRAME_SIZE));
		json_object_object_add(o, "memory.min", limit_json(page_counter_min(c)));
		json_object_object_add(o, "memory.low", limit_json(page_counter_low(c)));
		json_object_object_add(o, "memory.high", limit_json(page_counter_high(c)));
		json_object_object_add(o, "memory.max", limit_json(page_counter_max(c)));
		json_object_object_add(o, "memory.oom.group",
				       json_object_new_boolean(memcg_oom_group_set(cg->memcg)));
		json_object_object_add(o, "memory.events", events_json(&hier));
		json_object_object_add(o, "memory.events.local", events_json(&local));
		json_object_object_add(o, "memory.pressure", pressure_json(cg->memcg));
		json_object_object_add(o, "memory.swap.peak",
				       u64(page_counter_peak(&cg->memcg->swap) * FRAME_SIZE));
		json_object_object_add(o, "memory.swap.max",
				       limit_json(page_counter_max(&cg->memcg->swap)));
		json_object *swap_events = json_object_new_object();
		json_object_object_add(
			swap_events, "max",
			u64(__atomic_load_n(&cg->memcg->swap_max_events, __ATOMIC_RELAXED)));
		json_object_object_add(
			swap_events, "fail",
			u64(__atomic_load_n(&cg->memcg->swap_fail_events, __ATOMIC_RELAXED)));
		json_object_object_add(o, "memory.swap.events", swap_events);
		json_object_array_add(all, o);
	}
	return all;
}

static json_object *percentiles(const struct latency_histogram *h)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "p50", json_object_new_double(latency_percentile(h, 0.50)));
	json_object_object_add(o, "p90", json_object_new_double(latency_percentile(h, 0.90)));
	json_object_object_add(o, "p99", json_object_new_double(latency_percentile(h, 0.99)));
	return o;
}

static json_object *reclaim_json(const struct fleet *fleet)
{
	const struct reclaim_stats *s = &fleet->reclaim_final;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "SwapTotal", u64(s->swap_total_pages * 4096));
	json_object_object_add(o, "SwapFree", u64(s->swap_free_pages * 4096));
	json_object_object_add(o, "pswpout", u64(s->pswpout));
	json_object_object_add(o, "pswpin", u64(s->pswpin));
	json_object_object_add(o, "refaults", u64(s->refaults));
	json_object_object_add(o, "refaults_protected", u64(s->refaults_protected));
	json_object_object_add(o, "readahead_pages", u64(s->readahead_pages));
	json_object_object_add(o, "swap_cache_hits", u64(s->swap_cache_hits));
	json_object_object_add(o, "zswap_hits", u64(s->zswap_hits));
	json_object_object_add(o, "zswap_pages", u64(s->zswap_pages));
	json_object_object_add(o, "zswap_bytes", u64(s->zswap_bytes));
	json_object_object_add(o, "dropped_untouched", u64(s->dropped_untouched));
	json_object_object_add(o, "pgscan", u64(s->pgscan));
	json_object_object_add(o, "pgsteal", u64(s->pgsteal));
	json_object_object_add(o, "kswapd_wakeups", u64(s->kswapd_wakeups));
	json_object_object_add(o, "kswapd_runs", u64(s->kswapd_runs));
	json_object_object_add(o, "kswapd_seconds", json_object_new_double(s->kswapd_seconds));
	json_object_object_add(o, "direct_reclaims", u64(s->direct_reclaims));
	json_object_object_add(o, "direct_seconds", json_object_new_double(s->direct_seconds));
	json_object_object_add(o, "oom_kills", u64(s->oom_kills));
	json_object_object_add(o, "io_errors", u64(s->io_errors));
	json_object_object_add(o, "checksum_errors", u64(s->checksum_errors));
	json_object_object_add(o, "age_threshold_ms", u64(s->age_threshold_ms));
	json_object_object_add(o, "swapin_latency_us", percentiles(&s->swapin_latency));
	json_object_object_add(o, "readahead_latency_us", percentiles(&s->readahead_latency));
	json_object_object_add(o, "swapin_seconds", json_object_new_double(s->swapin_seconds));
	return o;
}

/* --- KSM --- */

static double dedup_ratio(const struct ksm_sample *s)
{
	return s->host_frames ? (double)s->guest_present_pages / (double)s->host_frames : 0.0;
}

static void print_ksm(const struct fleet *fleet, FILE *out)
{
	const struct ksm_stats *f = &fleet->ksm_final;
	if (fleet->nsamples == 0) {
		fprintf(out, "ksm: no sample taken\n");
		return;
	}
	const struct ksm_sample *p = &fleet->samples[fleet->peak_sample];
	char a[32];
	fprintf(out,
		"ksm (at the largest saving, t=%.1fs): pages_shared %llu pages_sharing %llu "
		"pages_unshared %llu pages_volatile %llu ksm_zero_pages %llu\n",
		p->t, (unsigned long long)p->stats.pages_shared,
		(unsigned long long)p->stats.pages_sharing,
		(unsigned long long)p->stats.pages_unshared,
		(unsigned long long)p->stats.pages_volatile,
		(unsigned long long)p->stats.ksm_zero_pages);
	fprintf(out,
		"ksm: saved %s, general_profit %s, dedup ratio %.2f (%llu guest pages in %llu "
		"host frames)\n",
		size_format((p->stats.pages_sharing + p->stats.ksm_zero_pages) * 4096, a,
			    sizeof(a)),
		size_format(p->stats.general_profit > 0 ? (uint64_t)p->stats.general_profit : 0, a,
			    sizeof(a)),
		dedup_ratio(p), (unsigned long long)p->guest_present_pages,
		(unsigned long long)p->host_frames);
	fprintf(out,
		"ksm: full_scans %llu pages_scanned %llu pages_skipped %llu merges %llu (%.0f per "
		"scanner CPU-second) hash_mismatches %llu scanner CPU %.3f s, %llu pauses (%.3f s, "
		"longest %.2f ms)\n",
		(unsigned long long)f->full_scans, (unsigned long long)f->pages_scanned,
		(unsigned long long)f->pages_skipped, (unsigned long long)f->merges,
		f->cpu_seconds > 0 ? (double)f->merges / f->cpu_seconds : 0,
		(unsigned long long)f->hash_mismatches, f->cpu_seconds,
		(unsigned long long)f->pauses, f->pause_seconds, f->max_pause_ms);
}

static json_object *ksm_stats_json(const struct ksm_stats *s)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "pages_shared", u64(s->pages_shared));
	json_object_object_add(o, "pages_sharing", u64(s->pages_sharing));
	json_object_object_add(o, "pages_unshared", u64(s->pages_unshared));
	json_object_object_add(o, "pages_volatile", u64(s->pages_volatile));
	json_object_object_add(o, "ksm_zero_pages", u64(s->ksm_zero_pages));
	json_object_object_add(o, "general_profit", json_object_new_int64(s->general_profit));
	json_object_object_add(o, "stable_nodes", u64(s->stable_nodes));
	json_object_object_add(o, "stable_node_chains", u64(s->stable_node_chains));
	json_object_object_add(o, "stable_node_dups", u64(s->stable_node_dups));
	return o;
}

static json_object *ksm_json(const struct fleet *fleet)
{
	const struct ksm_config *c = &fleet->spec->ksm;
	const struct ksm_stats *f = &fleet->ksm_final;
	json_object *o = json_object_new_object();
	json_object *settings = json_object_new_object();
	json_object_object_add(settings, "pages_to_scan", u64(c->pages_to_scan));
	json_object_object_add(settings, "sleep_millisecs", u64(c->sleep_millisecs));
	json_object_object_add(settings, "max_rate", json_object_new_boolean(c->max_rate));
	json_object_object_add(settings, "max_page_sharing", u64(c->max_page_sharing));
	json_object_object_add(settings, "use_zero_pages",
			       json_object_new_boolean(c->use_zero_pages));
	json_object_object_add(settings, "dirty_log", json_object_new_boolean(c->dirty_log));
	json_object_object_add(settings, "smart_scan", json_object_new_boolean(c->smart_scan));
	json_object_object_add(settings, "advisor",
			       json_object_new_string(c->advisor ? "scan-time" : "none"));
	json_object_object_add(settings, "advisor_target_scan_time",
			       json_object_new_double(c->advisor_target_scan_ms / 1000.0));
	json_object_object_add(settings, "advisor_max_cpu", u64(c->advisor_max_cpu));
	json_object_object_add(settings, "advisor_min_pages_to_scan", u64(c->advisor_min_pages));
	json_object_object_add(settings, "advisor_max_pages_to_scan", u64(c->advisor_max_pages));
	json_object_object_add(o, "settings", settings);
	json_object_object_add(o, "full_scans", u64(f->full_scans));
	json_object_object_add(o, "pages_scanned", u64(f->pages_scanned));
	json_object_object_add(o, "pages_skipped", u64(f->pages_skipped));
	json_object_object_add(o, "merges", u64(f->merges));
	json_object_object_add(o, "merge_failures", u64(f->merge_failures));
	json_object_object_add(o, "hash_mismatches", u64(f->hash_mismatches));
	/* The rate in force at the end (the advisor's choice, with it on). */
	json_object_object_add(o, "pages_to_scan", u64(f->pages_to_scan));
	json_object_object_add(o, "advisor_scan_seconds",
			       json_object_new_double(f->advisor_scan_seconds));
	json_object_object_add(o, "advisor_cpu_percent",
			       json_object_new_double(f->advisor_cpu_percent));
	json_object_object_add(o, "merges_per_cpu_second",
			       json_object_new_double(f->cpu_seconds > 0
							      ? (double)f->merges / f->cpu_seconds
							      : 0));
	json_object_object_add(o, "cpu_seconds", json_object_new_double(f->cpu_seconds));
	json_object_object_add(o, "pauses", u64(f->pauses));
	json_object_object_add(o, "pause_seconds", json_object_new_double(f->pause_seconds));
	json_object_object_add(o, "max_pause_ms", json_object_new_double(f->max_pause_ms));
	json_object_object_add(o, "dirty_harvests", u64(f->dirty_harvests));
	json_object *where = json_object_new_object();
	json_object_object_add(where, "scan", json_object_new_double(f->scan_seconds));
	json_object_object_add(where, "pause_wait", json_object_new_double(f->pause_wait_seconds));
	json_object_object_add(where, "verify", json_object_new_double(f->verify_seconds));
	json_object_object_add(where, "remap", json_object_new_double(f->remap_seconds));
	json_object_object_add(where, "promote", json_object_new_double(f->promote_seconds));
	json_object_object_add(o, "seconds", where);
	json_object_object_add(o, "batches", u64(f->batches));
	json_object_object_add(o, "start_monotonic_ns", u64(fleet->start_ns));
	if (fleet->sharing_matrix) {
		/* [a][a]: VM a's pages on KSM frames; [a][b]: frames both map. */
		json_object *sm = json_object_new_object(), *rows = json_object_new_array();
		json_object_object_add(sm, "t", json_object_new_double(fleet->sharing_matrix_t));
		json_object *names = json_object_new_array();
		for (unsigned a = 0; a < fleet->nvms; a++) {
			json_object_array_add(names, json_object_new_string(fleet->vms[a]->name));
			json_object *row = json_object_new_array();
			for (unsigned b = 0; b < fleet->nvms; b++)
				json_object_array_add(
					row, u64(fleet->sharing_matrix[a * fleet->nvms + b]));
			json_object_array_add(rows, row);
		}
		json_object_object_add(sm, "vms", names);
		json_object_object_add(sm, "frames", rows);
		json_object_object_add(o, "sharing_matrix", sm);
	}
	if (fleet->nsamples) {
		const struct ksm_sample *p = &fleet->samples[fleet->peak_sample];
		json_object *peak = ksm_stats_json(&p->stats);
		json_object_object_add(peak, "t", json_object_new_double(p->t));
		json_object_object_add(
			peak, "saved_bytes",
			u64((p->stats.pages_sharing + p->stats.ksm_zero_pages) * 4096));
		json_object_object_add(peak, "guest_present_pages", u64(p->guest_present_pages));
		json_object_object_add(peak, "host_frames", u64(p->host_frames));
		json_object_object_add(peak, "dedup_ratio", json_object_new_double(dedup_ratio(p)));
		json_object_object_add(o, "peak", peak);
	}
	/* [t, pages_shared, pages_sharing, ksm_zero_pages, pages_volatile,
	 *  pages_scanned, cpu_seconds, guest_present_pages, host_frames,
	 *  full_scans, pages_to_scan] */
	json_object *timeline = json_object_new_array();
	for (size_t i = 0; i < fleet->nsamples; i++) {
		const struct ksm_sample *s = &fleet->samples[i];
		json_object *row = json_object_new_array();
		json_object_array_add(row, json_object_new_double(s->t));
		json_object_array_add(row, u64(s->stats.pages_shared));
		json_object_array_add(row, u64(s->stats.pages_sharing));
		json_object_array_add(row, u64(s->stats.ksm_zero_pages));
		json_object_array_add(row, u64(s->stats.pages_volatile));
		json_object_array_add(row, u64(s->stats.pages_scanned));
		json_object_array_add(row, json_object_new_double(s->stats.cpu_seconds));
		json_object_array_add(row, u64(s->guest_present_pages));
		json_object_array_add(row, u64(s->host_frames));
		json_object_array_add(row, u64(s->stats.full_scans));
		json_object_array_add(row, u64(s->stats.pages_to_scan));
		json_object_array_add(timeline, row);
	}
	json_object_object_add(o, "timeline_columns",
			       json_tokener_parse("[\"t\", \"pages_shared\", \"pages_sharing\", "
						  "\"ksm_zero_pages\", \"pages_volatile\", "
						  "\"pages_scanned\", \"cpu_seconds\", "
						  "\"guest_present_pages\", \"host_frames\", "
						  "\"full_scans\", \"pages_to_scan\"]"));
	json_object_object_add(o, "timeline", timeline);
	return o;
}

void report_print_table(const struct fleet *fleet, FILE *out)
{
	unsigned ok = 0;
	uint64_t mem = 0;
	char size[32];
	bool pool = fleet->pool != NULL;
	fprintf(out, "%-8s %-12s %-9s %5s %10s %9s", "VM", "GUEST", "STATUS", "EXIT", "MEM",
		"WALL");
	if (pool)
		fprintf(out, " %10s %8s %9s", "RSS", "FAULTS", "AROUND");
	fputc('\n', out);
	for (unsigned i = 0; i < fleet->nvms; i++) {
		const struct vm *vm = fleet->vms[i];
		ok += vm_succeeded(vm);
		mem += vm->group->mem_bytes;
		char code[16] = "-";
		if (vm->result.status == VM_STATUS_EXITED)
			snprintf(code, sizeof(code), "%d", vm->result.exit_code);
		fprintf(out, "%-8s %-12.12s %-9s %5s %10s %8.3fs", vm->name, vm->image->name,
			vm_status_name(vm->result.status), code,
			size_format(vm->group->mem_bytes, size, sizeof(size)),
			vm->result.wall_seconds);
		if (pool) {
			const struct guest_memory_stats *m = &vm->result.memory;
			fprintf(out, " %10s %8llu %9llu",
				size_format(m->rss_pages * FRAME_SIZE, size, sizeof(size)),
				(unsigned long long)m->faults,
				(unsigned long long)m->fault_around_pages);
		}
		fputc('\n', out);
	}
	fprintf(out,
		"total: %u VMs, %u succeeded, %u failed, %s of guest memory, wall %.3f s%s, "
		"accel %s%s\n",
		fleet->nvms, ok, fleet->nvms - ok, size_format(mem, size, sizeof(size)),
		fleet->wall_seconds, fleet->interrupted ? " (interrupted)" : "",
		accel_name(&fleet->accel), mmu_note(fleet));
	if (pool)
		print_pool(fleet, out);
	if (fleet->ksm)
		print_ksm(fleet, out);
	if (fleet->reclaim)
		print_reclaim(fleet, out);
	if (fleet->spec->ncgroups || fleet->cgroups.n > 1)
		print_cgroups(fleet, out);
}

static json_object *vm_json(const struct vm *vm)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(vm->name));
	json_object_object_add(o, "index", json_object_new_int(vm->index));
	json_object_object_add(o, "group", json_object_new_string(vm->group->name));
	json_object_object_add(o, "guest", json_object_new_string(vm->image->name));
	json_object_object_add(o, "args", json_object_new_string(vm->group->args));
	json_object_object_add(o, "status",
			       json_object_new_string(vm_status_name(vm->result.status)));
	json_object_object_add(o, "exit_code", json_object_new_int(vm->result.exit_code));
	json_object_object_add(o, "message", json_object_new_string(vm->result.message));
	json_object_object_add(o, "mem_bytes",
			       json_object_new_int64((int64_t)vm->group->mem_bytes));
	json_object_object_add(o, "wall_seconds", json_object_new_double(vm->result.wall_seconds));
	json_object *values = json_object_new_object();
	for (unsigned i = 0; i < vm->result.nvalues; i++)
		json_object_object_add(values, vm->result.values[i].key,
				       json_object_new_int64((int64_t)vm->result.values[i].value));
	json_object_object_add(o, "guest_values", values);
	if (vm->memory_image)
		json_object_object_add(o, "memory_image", json_object_new_string(vm->memory_image));
	if (vm->result.memory.rss_pages || vm->result.memory.faults)
		json_object_object_add(o, "memory", vm_memory_json(vm));
	return o;
}

int report_write_json(const struct fleet *fleet, FILE *out)
{
	json_object *root = json_object_new_object();
	json_object_object_add(root, "vmm_version", json_object_new_string(VMM_VERSION));
	json_object_object_add(root, "accel", json_object_new_string(accel_name(&fleet->accel)));
	if (fleet->pool)
		json_object_object_add(root, "mmu",
				       json_object_new_string(guest_realiser_name(
					       vm_realiser(&fleet->accel, &fleet->spec->memory))));
	if (fleet->accel.kvm_unusable[0])
		json_object_object_add(root, "kvm_unusable",
				       json_object_new_string(fleet->accel.kvm_unusable));
	json_object_object_add(root, "wall_seconds", json_object_new_double(fleet->wall_seconds));
	if (fleet->control.path[0])
		json_object_object_add(root, "control_socket",
				       json_object_new_string(fleet->control.path));
	json_object_object_add(root, "interrupted", json_object_new_boolean(fleet->interrupted));
	json_object *vms = json_object_new_array();
	unsigned ok = 0;
	uint64_t mem = 0;
	for (unsigned i = 0; i < fleet->nvms; i++) {
		json_object_array_add(vms, vm_json(fleet->vms[i]));
		ok += vm_succeeded(fleet->vms[i]);
		mem += fleet->vms[i]->group->mem_bytes;
	}
	json_object_object_add(root, "vms", vms);
	json_object *totals = json_object_new_object();
	json_object_object_add(totals, "vms", json_object_new_int(fleet->nvms));
	json_object_object_add(totals, "succeeded", json_object_new_int(ok));
	json_object_object_add(totals, "failed", json_object_new_int(fleet->nvms - ok));
	json_object_object_add(totals, "mem_bytes", json_object_new_int64((int64_t)mem));
	json_object_object_add(root, "totals", totals);
	if (fleet->pool)
		json_object_object_add(root, "memory", pool_json(fleet));
	if (fleet->ksm)
		json_object_object_add(root, "ksm", ksm_json(fleet));
	if (fleet->reclaim)
		json_object_object_add(root, "swap", reclaim_json(fleet));
	if (fleet->cgroups.n > 1)
		json_object_object_add(root, "cgroups", cgroups_json(fleet));
	if (fault_inject_total()) {
		json_object *inj = json_object_new_object();
		for (int k = 0; k < FAULT_KINDS; k++)
			if (fault_inject_count((enum fault_kind)k))
				json_object_object_add(inj, fault_inject_name((enum fault_kind)k),
						       u64(fault_inject_count((enum fault_kind)k)));
		json_object_object_add(root, "faults_injected", inj);
	}
	const char *text = json_object_to_json_string_ext(
		root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	int rc = fputs(text, out) < 0 || fputc('\n', out) < 0 ? -1 : 0;
	json_object_put(root);
	return rc;
}
