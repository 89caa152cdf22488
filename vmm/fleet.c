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

#include "map_count.h"
#include "mm/rmap.h"
#include "vm.h"

/* Mappings a VM may need beyond its guest pages: its own boot area, vCPU
 * and KVM mappings. */
#define VMAS_PER_VM 32
#define VMAS_BASELINE 1024
#define POOL_SLACK (2ull << 20)

#define VMA_SAMPLE_MS 200

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
 * guest, plus fixed costs. */
static uint64_t estimate_vmas(const struct fleet_spec *spec)
{
	uint64_t block = memory_settings_fault_around_pages(&spec->memory) * 4096ull;
	uint64_t n = VMAS_BASELINE;
	for (unsigned g = 0; g < spec->ngroups; g++)
		n += (spec->groups[g].mem_bytes / block + VMAS_PER_VM) * spec->groups[g].count;
	return n;
}

static int prepare_pool(struct fleet *fleet, const struct fleet_spec *spec, char *err,
			size_t errlen)
{
	const struct memory_settings *m = &spec->memory;
	uint64_t bytes =
		m->host_mem_bytes ? m->host_mem_bytes : total_guest_bytes(spec) + POOL_SLACK;
	fleet->vmas_needed = estimate_vmas(spec);
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
	if (m->min_free_kbytes || m->watermark_scale_factor)
		buddy_set_watermarks(&fleet->pool->buddy, m->min_free_kbytes,
				     m->watermark_scale_factor);
	if (fault_thread_start(&fleet->faults, m->fault_spin_us)) {
		snprintf(err, errlen, "cannot start the fault thread: %s", strerror(errno));
		return -1;
	}
	fleet->faults_running = true;
	return 0;
}

int fleet_prepare(struct fleet *fleet, const struct fleet_spec *spec, char *err, size_t errlen)
{
	memset(fleet, 0, sizeof(*fleet));
	fleet->spec = spec;
	fleet->kvm.fd = -1;
	fleet->done_fd = -1;

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
	if (kvm_system_open(&fleet->kvm, err, errlen))
		return -1;
	if (spec->memory.backing == BACKING_POOL && prepare_pool(fleet, spec, err, errlen))
		return -1;
	fleet->done_fd = eventfd(0, EFD_CLOEXEC);
	unsigned total = fleet_spec_vm_count(spec);
	fleet->vms = calloc(total, sizeof(*fleet->vms));
	if (fleet->done_fd < 0 || !fleet->vms) {
		snprintf(err, errlen, "out of resources: %s", strerror(errno));
		return -1;
	}
	vcpu_install_kick_handler();
	unsigned index = 0;
	for (unsigned g = 0; g < spec->ngroups; g++) {
		for (unsigned i = 0; i < spec->groups[g].count; i++, index++) {
			struct vm_create_args args = {
				.index = index,
				.count = total,
				.group = &spec->groups[g],
				.image = &fleet->images[g],
				.kvm = &fleet->kvm,
				.quiet = spec->quiet,
				.done_fd = fleet->done_fd,
				.memory = &spec->memory,
				.pool = fleet->pool,
				.faults = &fleet->faults,
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

void fleet_run(struct fleet *fleet)
{
	sigset_t stop_signals, old;
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_signals, &old);
	int sig_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);

	double t0 = now_seconds();
	unsigned started = 0, ended = 0;
	for (unsigned i = 0; i < fleet->nvms; i++)
		if (vm_start(fleet->vms[i]) == 0)
			started++;
	while (ended < started) {
		struct pollfd fds[2] = {{fleet->done_fd, POLLIN, 0}, {sig_fd, POLLIN, 0}};
		int timeout_ms = fleet->pool ? VMA_SAMPLE_MS : -1;
		if (poll(fds, sig_fd >= 0 ? 2 : 1, timeout_ms) < 0 && errno != EINTR)
			break;
		if (fleet->pool) {
			uint64_t vmas = map_count_vmas();
			if (vmas > fleet->peak_vmas)
				fleet->peak_vmas = vmas;
		}
		if (fds[0].revents & POLLIN)
			ended += count_ended(fleet->done_fd);
		if (sig_fd >= 0 && (fds[1].revents & POLLIN)) {
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
	if (fleet->images)
		for (unsigned g = 0; g < fleet->spec->ngroups; g++)
			guest_image_close(&fleet->images[g]);
	free(fleet->images);
	if (fleet->done_fd >= 0)
		close(fleet->done_fd);
	if (fleet->faults_running)
		fault_thread_stop(&fleet->faults);
	if (fleet->pool) {
		frame_pool_destroy(fleet->pool);
		free(fleet->pool);
		rmap_exit();
	}
	map_count_restore();
	kvm_system_close(&fleet->kvm);
	memset(fleet, 0, sizeof(*fleet));
}
