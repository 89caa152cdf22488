/*
 * fleet.c - preparing, running and tearing down a fleet of VMs.
 */
#include "fleet.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "console.h"
#include "io/fault_inject.h"
#include "io/swap_device.h"
#include "map_count.h"
#include "mm/rmap.h"
#include "vm.h"

/* Mappings a VM may need beyond its guest pages: its own boot area, vCPU
 * and KVM mappings. */
#define VMAS_PER_VM 32
#define VMAS_BASELINE 1024
#define POOL_SLACK (2ull << 20)

/* Counting VMAs reads /proc/self/maps, which costs a lot with 100k+
 * mappings and competes with KSM's remaps: sample rarely. */
#define VMA_SAMPLE_MS 2000
#define KSM_SAMPLE_MS 100
#define PROGRESS_MS 1000

static double now_seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t total_guest_bytes(const struct fleet_spec *spec)
{
	uint64_t total = 0;
	for (unsigned g = 0; g < spec->ngroups; g++)
		total += spec->groups[g].mem_bytes * spec->groups[g].count;
	return total;
}

/* The worst case of host mappings: one per fault-around block of every
 * guest (one per page with KSM), plus fixed costs. The owned page table
 * places no frame in a host mapping: fixed costs only. */
static uint64_t estimate_vmas(const struct fleet *fleet, const struct fleet_spec *spec)
{
	uint64_t block = memory_settings_fault_around_pages(&spec->memory) * 4096ull;
	bool owned = vm_realiser(&fleet->accel, &spec->memory) == GUEST_REALISER_OWNED;
	uint64_t n = VMAS_BASELINE;
	for (unsigned g = 0; g < spec->ngroups; g++) {
		const struct vm_group_spec *group = &spec->groups[g];
		/* A merged page can be a mapping of its own. */
		uint64_t unit = fleet_spec_group_ksm(spec, group) ? 4096 : block;
		n += ((owned ? 0 : group->mem_bytes / unit) + VMAS_PER_VM) * group->count;
	}
	return n;
}

static int prepare_pool(struct fleet *fleet, const struct fleet_spec *spec, char *err,
			size_t errlen)
{
	const struct memory_settings *m = &spec->memory;
	uint64_t bytes =
		m->host_mem_bytes ? m->host_mem_bytes : total_guest_bytes(spec) + POOL_SLACK;
	fleet->vmas_needed = estimate_vmas(fleet, spec);
	if (map_count_ensure(fleet->vmas_needed, err, errlen))
		return -1;
	if (rmap_init()) {
		snprintf(err, errlen, "cannot create the reverse-map caches");
		return -1;
	}
	fleet->pool = calloc(1, sizeof(*fleet->pool));
	if (!fleet->pool || frame_pool_create(fleet->pool, bytes, err, errlen)) {
		free(fleet->pool);
		fleet->pool = NULL;
		return -1;
	}
	guest_registry_init(&fleet->registry);
	if (m->min_free_kbytes || m->watermark_scale_factor)
		buddy_set_watermarks(&fleet->pool->buddy, m->min_free_kbytes,
				     m->watermark_scale_factor);
	if (fault_thread_start(&fleet->faults, m->fault_spin_us)) {
		snprintf(err, errlen, "cannot start the fault thread: %s", strerror(errno));
		return -1;
	}
	fleet->faults_running = true;
	if (fleet_spec_needs_reclaim(spec)) {
		struct reclaim_config rc;
		reclaim_config_default(&rc);
		rc.swap_path = spec->swap.path;
		rc.swap_bytes = spec->swap.bytes ? spec->swap.bytes : bytes;
		rc.keep_swap = spec->swap.keep;
		rc.zswap_bytes = spec->swap.zswap_bytes;
		rc.page_cluster = spec->swap.page_cluster;
		rc.registry = &fleet->registry;
		if (reclaim_create(&fleet->reclaim, fleet->pool, &rc, err, errlen))
			return -1;
	}
	if (fleet_cgroups_build(&fleet->cgroups, spec, err, errlen))
		return -1;
	if (fleet_spec_any_ksm(spec) && ksm_create(&fleet->ksm, fleet->pool, &spec->ksm)) {
		snprintf(err, errlen, "cannot set up KSM");
		return -1;
	}
	return 0;
}

int fleet_prepare(struct fleet *fleet, const struct fleet_spec *spec, char *err, size_t errlen)
{
	memset(fleet, 0, sizeof(*fleet));
	fleet->spec = spec;
	fleet->done_fd = -1;
	fleet->control.fd = -1;

	/* VMM_FAULT (io/fault_inject.h): make host operations fail on purpose. */
	const char *faults = getenv("VMM_FAULT");
	if (faults && *faults && fault_inject_parse(faults, err, errlen))
		return -1;

	fleet->images = calloc(spec->ngroups, sizeof(*fleet->images));
	if (!fleet->images) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (unsigned g = 0; g < spec->ngroups; g++) {
		const struct vm_group_spec *group = &spec->groups[g];
		if (guest_image_open(&fleet->images[g], group->guest, err, errlen) ||
		    elf_image_check_fits(&fleet->images[g].elf, group->mem_bytes,
					 fleet->images[g].name, err, errlen))
			return -1;
	}
	if (accel_open(&fleet->accel, spec->accel, err, errlen))
		return -1;
	/* The control socket (control.h): a name in use is bad input. */
	char name[64];
	snprintf(name, sizeof(name), "vmm-%d", (int)getpid());
	if (control_open(&fleet->control, spec->name ? spec->name : name, err, errlen))
		return -1;
	if (spec->name || isatty(STDERR_FILENO))
		fprintf(stderr, "vmm: control socket %s (vmm ctl %s stat)\n", fleet->control.path,
			spec->name ? spec->name : name);
	if (fleet->accel.kvm_unusable[0])
		fprintf(stderr,
			"vmm: /dev/kvm not usable (%s): running guests on the TCG emulator\n",
			fleet->accel.kvm_unusable);
	if (spec->memory.backing == BACKING_POOL && prepare_pool(fleet, spec, err, errlen))
		return -1;
	fleet->done_fd = eventfd(0, EFD_CLOEXEC);
	unsigned total = fleet_spec_vm_count(spec);
	fleet->vms = calloc(total, sizeof(*fleet->vms));
	if (fleet->done_fd < 0 || !fleet->vms) {
		snprintf(err, errlen, "out of resources: %s", strerror(errno));
		return -1;
	}
	unsigned index = 0;
	for (unsigned g = 0; g < spec->ngroups; g++) {
		for (unsigned i = 0; i < spec->groups[g].count; i++, index++) {
			struct vm_create_args args = {
				.index = index,
				.count = total,
				.group = &spec->groups[g],
				.image = &fleet->images[g],
				.accel = &fleet->accel,
				.quiet = spec->quiet,
				.done_fd = fleet->done_fd,
				.memory = &spec->memory,
				.pool = fleet->pool,
				.registry = &fleet->registry,
				.faults = &fleet->faults,
				.ksm = fleet_spec_group_ksm(spec, &spec->groups[g]) ? fleet->ksm
										    : NULL,
				.track_access = (fleet_spec_group_ksm(spec, &spec->groups[g]) &&
						 spec->ksm.dirty_log) ||
						fleet->reclaim != NULL,
				.reclaim = fleet->reclaim,
				.memcg = fleet_cgroups_of_group(&fleet->cgroups, &spec->groups[g]),
				.memory_image =
					fleet_spec_group_memory_image(spec, &spec->groups[g]),
				.limits =
					{
						.high_pages = fleet_spec_group_high(
								      spec, &spec->groups[g]) /
							      4096,
						.max_pages = fleet_spec_group_max(
								     spec, &spec->groups[g]) /
							     4096,
						.oom_score_adj = fleet_spec_group_oom_score_adj(
							spec, &spec->groups[g]),
					},
			};
			if (vm_create(&fleet->vms[index], &args, err, errlen))
				return -1;
			fleet->nvms++;
		}
	}
	return 0;
}

static unsigned count_ended(int done_fd)
{
	uint64_t n = 0;
	if (read(done_fd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return (unsigned)n;
}

/* The VM x VM sharing matrix, with the largest saving so far: at most once
 * a quarter second (it walks every shared frame), and only while every VM still
 * has its memory (one that ended would read as sharing nothing). */
static bool take_sharing_matrix(struct fleet *fleet, double t)
{
	unsigned n = fleet->nvms;
	if (n > FLEET_MATRIX_MAX_VMS ||
	    (fleet->sharing_matrix && t - fleet->sharing_matrix_t < 0.25))
		return false;
	uint16_t ids[FLEET_MATRIX_MAX_VMS];
	for (unsigned i = 0; i < n; i++)
		if (!(ids[i] = vm_memory_id(fleet->vms[i])))
			return false;
	if (!fleet->sharing_matrix)
		fleet->sharing_matrix = calloc((size_t)n * n, sizeof(uint64_t));
	if (!fleet->sharing_matrix)
		return false;
	frame_pool_sharing_matrix(fleet->pool, ids, n, fleet->sharing_matrix);
	fleet->sharing_matrix_t = t;
	return true;
}

static void sample_ksm(struct fleet *fleet, double t)
{
	if (fleet->nsamples == fleet->samples_cap) {
		size_t cap = fleet->samples_cap ? fleet->samples_cap * 2 : 256;
		struct ksm_sample *p = realloc(fleet->samples, cap * sizeof(*p));
		if (!p)
			return;
		fleet->samples = p;
		fleet->samples_cap = cap;
	}
	struct ksm_sample *s = &fleet->samples[fleet->nsamples];
	s->t = t;
	ksm_get_stats(fleet->ksm, &s->stats);
	s->guest_present_pages = 0;
	for (unsigned i = 0; i < fleet->nvms; i++)
		s->guest_present_pages += vm_present_pages(fleet->vms[i]);
	s->host_frames = __atomic_load_n(&fleet->pool->used_pages, __ATOMIC_RELAXED);
	uint64_t saved = s->stats.pages_sharing + s->stats.ksm_zero_pages;
	const struct ksm_stats *peak = &fleet->samples[fleet->peak_sample].stats;
	if (fleet->nsamples == 0 || saved > peak->pages_sharing + peak->ksm_zero_pages) {
		fleet->peak_sample = fleet->nsamples;
		fleet->sharing_matrix_due = true;
	}
	/* At the largest saving, once it has held for a sample (the walk
	 * stops the scanner: none while the saving is still growing), and
	 * once the throttle allows. */
	peak = &fleet->samples[fleet->peak_sample].stats;
	const struct ksm_stats *prev =
		fleet->nsamples ? &fleet->samples[fleet->nsamples - 1].stats : NULL;
	if (fleet->sharing_matrix_due && saved == peak->pages_sharing + peak->ksm_zero_pages &&
	    prev && saved == prev->pages_sharing + prev->ksm_zero_pages &&
	    take_sharing_matrix(fleet, t))
		fleet->sharing_matrix_due = false;
	fleet->nsamples++;
}

/* The live line: sharing so far, MiB saved, scan rate. */
static void show_progress(struct fleet *fleet)
{
	if (fleet->nsamples == 0)
		return;
	const struct ksm_sample *s = &fleet->samples[fleet->nsamples - 1];
	const struct ksm_sample *prev = fleet->nsamples > 10 ? s - 10 : &fleet->samples[0];
	double dt = s->t - prev->t;
	double rate =
		dt > 0 ? (double)(s->stats.pages_scanned - prev->stats.pages_scanned) / dt : 0;
	char line[256];
	snprintf(line, sizeof(line),
		 "ksm: %llu pages sharing, %llu zero, %.1f MiB saved, dedup %.2fx, %llu full "
		 "scans, %.0fk pages/s",
		 (unsigned long long)s->stats.pages_sharing,
		 (unsigned long long)s->stats.ksm_zero_pages,
		 (double)((s->stats.pages_sharing + s->stats.ksm_zero_pages) * 4096) / 1048576.0,
		 s->host_frames ? (double)s->guest_present_pages / (double)s->host_frames : 0.0,
		 (unsigned long long)s->stats.full_scans, rate / 1000.0);
	console_set_status(line);
}

void fleet_run(struct fleet *fleet)
{
	sigset_t stop_signals, old;
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_signals, &old);
	int sig_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);

	double t0 = now_seconds();
	fleet->start_ns = (uint64_t)(t0 * 1e9);
	if (fleet->ksm && ksm_start(fleet->ksm))
		fprintf(stderr, "vmm: cannot start the KSM thread; running without merging\n");
	if (fleet->reclaim && reclaim_start(fleet->reclaim))
		fprintf(stderr, "vmm: cannot start the reclaim thread; only direct reclaim\n");
	bool progress = fleet->ksm && !fleet->spec->quiet && isatty(STDOUT_FILENO);
	int sample_ms =
		fleet->spec->ksm_sample_ms ? (int)fleet->spec->ksm_sample_ms : KSM_SAMPLE_MS;
	double next_sample = 0, next_vma = 0, next_progress = 1;
	unsigned started = 0, ended = 0;
	for (unsigned i = 0; i < fleet->nvms; i++)
		if (vm_start(fleet->vms[i]) == 0)
			started++;
	while (ended < started) {
		struct pollfd fds[3] = {{fleet->done_fd, POLLIN, 0},
					{fleet->control.fd, POLLIN, 0},
					{sig_fd, POLLIN, 0}};
		int timeout_ms = fleet->ksm ? sample_ms : fleet->pool ? 500 : -1;
		if (poll(fds, sig_fd >= 0 ? 3 : 2, timeout_ms) < 0 && errno != EINTR)
			break;
		if (fds[1].revents & POLLIN)
			control_serve(&fleet->control, fleet);
		double t = now_seconds() - t0;
		if (fleet->pool && t >= next_vma) {
			uint64_t vmas = map_count_vmas();
			if (vmas > fleet->peak_vmas)
				fleet->peak_vmas = vmas;
			next_vma = t + VMA_SAMPLE_MS / 1000.0;
		}
		if (fleet->ksm && t >= next_sample) {
			sample_ksm(fleet, t);
			next_sample = t + sample_ms / 1000.0;
		}
		if (progress && t >= next_progress) {
			show_progress(fleet);
			next_progress = t + PROGRESS_MS / 1000.0;
		}
		if (fds[0].revents & POLLIN)
			ended += count_ended(fleet->done_fd);
		if (sig_fd >= 0 && (fds[2].revents & POLLIN)) {
			struct signalfd_siginfo si;
			if (read(sig_fd, &si, sizeof(si)) == sizeof(si) && !fleet->interrupted) {
				fleet->interrupted = true;
				fprintf(stderr, "vmm: %s: stopping all VMs\n",
					si.ssi_signo == SIGINT ? "interrupted" : "terminated");
				for (unsigned i = 0; i < fleet->nvms; i++)
					vm_stop(fleet->vms[i]);
			}
		}
	}
	for (unsigned i = 0; i < fleet->nvms; i++)
		vm_join(fleet->vms[i]);
	fleet->wall_seconds = now_seconds() - t0;
	if (progress)
		console_clear_status();
	if (fleet->ksm)
		ksm_get_stats(fleet->ksm, &fleet->ksm_final);
	if (fleet->reclaim)
		reclaim_get_stats(fleet->reclaim, &fleet->reclaim_final);
	if (fleet->pool) {
		buddy_drain_pcp(&fleet->pool->buddy);
		fleet->final_free_pages = buddy_free_pages(&fleet->pool->buddy);
	}
	if (sig_fd >= 0)
		close(sig_fd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int fleet_exit_status(const struct fleet *fleet)
{
	if (fleet->nvms == 0)
		return 1;
	for (unsigned i = 0; i < fleet->nvms; i++)
		if (!vm_succeeded(fleet->vms[i]))
			return 1;
	return 0;
}

void fleet_destroy(struct fleet *fleet)
{
	for (unsigned i = 0; i < fleet->nvms; i++)
		vm_destroy(fleet->vms[i]);
	free(fleet->vms);
	ksm_destroy(fleet->ksm);
	free(fleet->samples);
	free(fleet->sharing_matrix);
	control_close(&fleet->control);
	if (fleet->images)
		for (unsigned g = 0; g < fleet->spec->ngroups; g++)
			guest_image_close(&fleet->images[g]);
	free(fleet->images);
	if (fleet->done_fd >= 0)
		close(fleet->done_fd);
	if (fleet->faults_running)
		fault_thread_stop(&fleet->faults);
	reclaim_destroy(fleet->reclaim);
	fleet_cgroups_destroy(&fleet->cgroups); /* after the VMs: they charge it */
	if (fleet->pool) {
		frame_pool_destroy(fleet->pool);
		free(fleet->pool);
		guest_registry_destroy(&fleet->registry);
		rmap_exit();
	}
	map_count_restore();
	accel_close(&fleet->accel);
	memset(fleet, 0, sizeof(*fleet));
}
