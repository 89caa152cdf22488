/*
 * fleet.h - running many VMs in one process.
 *
 * fleet_prepare() does everything that can fail because of bad input before
 * any guest runs: it opens the accelerator (KVM, or the TCG emulator: see
 * accel.h; with `auto` a fallback to TCG is said once on stderr), resolves
 * and checks every group's guest image
 * against its memory size, and creates every VM. fleet_run() starts all vCPU
 * threads and waits until every VM has ended; SIGINT or SIGTERM stops the
 * remaining VMs cleanly (they are reported as "stopped").
 *
 * Waiting: the main thread blocks SIGINT/SIGTERM and polls a signalfd plus an
 * eventfd that each vCPU thread writes once when its VM ends.
 *
 * With the pool backing the fleet owns the frame pool and the fault thread;
 * they outlive every VM. The pool defaults to every guest's memory plus
 * slack, so nothing is overcommitted unless --host-mem says so.
 */
#ifndef VMM_FLEET_H
#define VMM_FLEET_H

#include <stdbool.h>
#include <stddef.h>

#include "accel.h"
#include "control.h"
#include "fleet_cgroups.h"
#include "fleet_spec.h"
#include "guest_image.h"
#include "ksm/ksm.h"
#include "mm/fault_thread.h"
#include "mm/frame_pool.h"
#include "mm/guest_registry.h"
#include "mm/reclaim.h"

struct vm;

/* One sample of the merging state, taken every KSM_SAMPLE_MS. */
struct ksm_sample {
	double t; /* seconds since the fleet started */
	struct ksm_stats stats;
	uint64_t guest_present_pages; /* pages the guests have, all VMs */
	uint64_t host_frames;	      /* pool frames in use */
};

#define FLEET_MATRIX_MAX_VMS 64

struct fleet {
	const struct fleet_spec *spec;
	struct accel accel;
	struct guest_image *images; /* one per group */
	struct vm **vms;
	unsigned nvms;
	int done_fd; /* eventfd: one count per ended VM */
	double wall_seconds;
	bool interrupted;

	/* pool backing */
	struct frame_pool *pool;
	struct guest_registry registry; /* the VMs, by id (mm/guest_registry.h) */
	struct fault_thread faults;
	bool faults_running;
	uint64_t vmas_needed;	   /* worst-case estimate checked at start */
	uint64_t peak_vmas;	   /* VMA count sampled while the fleet ran */
	uint64_t final_free_pages; /* MemFree after every VM ended */

	struct fleet_cgroups cgroups; /* the cgroup tree (pool backing) */
	struct ksm *ksm;	      /* when any VM merges */
	struct reclaim *reclaim;      /* swap and limits */
	struct reclaim_stats reclaim_final;
	struct ksm_sample *samples;
	size_t nsamples, samples_cap;
	size_t peak_sample; /* the sample with the largest saving */
	struct ksm_stats ksm_final;
	struct control control; /* the control socket (control.h) */
	/* Who shares with whom (frame_pool_sharing_matrix), fleets of at most
	 * FLEET_MATRIX_MAX_VMS: taken with the largest saving once it has held
	 * for a sample, at most every 0.25 s; NULL if never. */
	uint64_t *sharing_matrix;
	double sharing_matrix_t;
	bool sharing_matrix_due; /* a larger saving since it was taken */
	uint64_t start_ns;	 /* CLOCK_MONOTONIC at start, to align guest clocks */
};

int fleet_prepare(struct fleet *fleet, const struct fleet_spec *spec, char *err, size_t errlen);
void fleet_run(struct fleet *fleet);
/* 0 if every guest exited with code 0, else 1. */
int fleet_exit_status(const struct fleet *fleet);
void fleet_destroy(struct fleet *fleet);

#endif
