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

#include "vm.h"

static double now_seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
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
		if (poll(fds, sig_fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
			break;
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
	kvm_system_close(&fleet->kvm);
	memset(fleet, 0, sizeof(*fleet));
}
