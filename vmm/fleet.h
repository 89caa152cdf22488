/*
 * fleet.h - running many VMs in one process.
 *
 * fleet_prepare() does everything that can fail because of bad input before
 * any guest runs: it opens KVM, resolves and checks every group's guest image
 * against its memory size, and creates every VM. fleet_run() starts all vCPU
 * threads and waits until every VM has ended; SIGINT or SIGTERM stops the
 * remaining VMs cleanly (they are reported as "stopped").
 *
 * Waiting: the main thread blocks SIGINT/SIGTERM and polls a signalfd plus an
 * eventfd that each vCPU thread writes once when its VM ends.
 */
#ifndef VMM_FLEET_H
#define VMM_FLEET_H

#include <stdbool.h>
#include <stddef.h>

#include "fleet_spec.h"
#include "guest_image.h"
#include "kvm.h"

struct vm;

struct fleet {
	const struct fleet_spec *spec;
	struct kvm_system kvm;
	struct guest_image *images; /* one per group */
	struct vm **vms;
	unsigned nvms;
	int done_fd; /* eventfd: one count per ended VM */
	double wall_seconds;
	bool interrupted;
};

int fleet_prepare(struct fleet *fleet, const struct fleet_spec *spec, char *err, size_t errlen);
void fleet_run(struct fleet *fleet);
/* 0 if every guest exited with code 0, else 1. */
int fleet_exit_status(const struct fleet *fleet);
void fleet_destroy(struct fleet *fleet);

#endif
