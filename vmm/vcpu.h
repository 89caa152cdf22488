/*
 * vcpu.h - a vCPU and the protocol that parks it.
 *
 * One thread runs each vCPU: it calls vcpu_enter() in a loop and handles the
 * exits. Other threads (the KSM scanner, reclaim, the fleet on Ctrl-C) may
 * need the vCPU out of the guest:
 *
 *   vcpu_pause()   returns once the vCPU is parked: not in KVM_RUN and not
 *                  handling an exit, and it will not re-enter until every
 *                  pause is matched by vcpu_resume(). Pauses nest.
 *   vcpu_stop()    asks the vCPU thread to leave its loop for good.
 *
 * Kicking: the requester sets kvm_run.immediate_exit (so a KVM_RUN that is
 * about to start returns at once) and then sends SIGUSR1 to the thread (so a
 * KVM_RUN in progress, including one blocked on a userfaultfd fault, returns
 * with EINTR). The order matters: immediate_exit is set before the signal.
 *
 * A vCPU sleeping in a hypercall (vcpu_sleep) counts as parked, so a pause
 * never waits for a guest's sleep to end.
 *
 * Lock: vcpu->lock protects the pause, stop and parked state only; it is
 * never held while calling into KVM or while waiting for another lock.
 */
#ifndef VMM_VCPU_H
#define VMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct vcpu {
	int fd;
	struct kvm_run *run;
	int run_size;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned pause_depth;
	bool parked;
	bool stop_requested;
	bool finished;
	uint64_t throttle_until_ns; /* memory.high: do not enter before */
	uint64_t throttled_ns;	    /* time spent throttled */
};

int vcpu_create(struct vcpu *vcpu, int vm_fd, int run_size);
void vcpu_destroy(struct vcpu *vcpu);

/* Installs the no-op SIGUSR1 handler used for kicks. Call once per process. */
void vcpu_install_kick_handler(void);

/* vCPU thread: waits while paused, then runs KVM_RUN once. Returns 1 if a
 * stop was requested, 0 after KVM_RUN returned normally, -1 with errno set
 * when KVM_RUN failed (EINTR from a kick is returned as 0 with
 * run->exit_reason = KVM_EXIT_INTR). */
int vcpu_enter(struct vcpu *vcpu);
/* vCPU thread: sleeps ns nanoseconds while counting as parked. Returns 1 if
 * a stop was requested, else 0. */
int vcpu_sleep(struct vcpu *vcpu, uint64_t ns);
/* vCPU thread: the loop has ended; pausers stop waiting. */
void vcpu_finish(struct vcpu *vcpu);

/* memory.high: the vCPU leaves the guest and waits ns before it goes on. */
void vcpu_throttle(struct vcpu *vcpu, uint64_t ns);

void vcpu_pause(struct vcpu *vcpu);
void vcpu_resume(struct vcpu *vcpu);
void vcpu_stop(struct vcpu *vcpu);

#endif
