/*
 * vcpu.c - the vCPU loop and the park/kick protocol (see vcpu.h).
 */
#include "vcpu.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mm/guest_memory.h"

#define REKICK_NS 1000000 /* a pause not answered within 1 ms kicks again */

int vcpu_create(struct vcpu *vcpu, const struct accel_ops *ops, struct accel_vm *vm, vcpu_io_fn io,
		void *io_ctx, char *err, size_t errlen)
{
	memset(vcpu, 0, sizeof(*vcpu));
	if (ops->vcpu_create(vm, &vcpu->accel, io, io_ctx, err, errlen))
		return -1;
	vcpu->parked = true; /* until its thread first enters the guest */
	pthread_mutex_init(&vcpu->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&vcpu->cond, &attr);
	pthread_condattr_destroy(&attr);
	/* Published last, with release: mm's fault thread reaches the vCPU
	 * when it first faults, synchronised with this thread only through
	 * the kernel's uffd, which ThreadSanitizer cannot see. */
	__atomic_store_n(&vcpu->ops, ops, __ATOMIC_RELEASE);
	return 0;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (!vcpu->accel)
		return;
	vcpu->ops->vcpu_destroy(vcpu->accel);
	vcpu->accel = NULL;
	pthread_mutex_destroy(&vcpu->lock);
	pthread_cond_destroy(&vcpu->cond);
}

static uint64_t monotonic_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static struct timespec deadline_in(uint64_t ns)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += (time_t)(ns / 1000000000ull);
	t.tv_nsec += (long)(ns % 1000000000ull);
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

/* Lock held: make the vCPU leave the guest soon. */
static void kick_locked(struct vcpu *vcpu)
{
	if (vcpu->in_guest && !vcpu->parked) {
		vcpu->ops->vcpu_kick(vcpu->accel);
		vcpu->kicks++;
	}
}

/* Lock held: park while a pause is pending. */
static void park_while_paused(struct vcpu *vcpu)
{
	while (vcpu->pause_depth > 0 && !vcpu->stop_requested) {
		vcpu->parked = true;
		pthread_cond_broadcast(&vcpu->cond);
		pthread_cond_wait(&vcpu->cond, &vcpu->lock);
	}
	vcpu->parked = false;
}

int vcpu_enter(struct vcpu *vcpu)
{
	pthread_mutex_lock(&vcpu->lock);
	uint64_t now = monotonic_ns();
	if (vcpu->throttle_until_ns > now) {
		uint64_t wait = vcpu->throttle_until_ns - now;
		vcpu->throttle_until_ns = 0;
		vcpu->throttled_ns += wait;
		struct memcg *memcg = vcpu->mem ? guest_memory_memcg(vcpu->mem) : NULL;
		pthread_mutex_unlock(&vcpu->lock);
		/* Held back for memory: a stall (memory.pressure). */
		memcg_stall(memcg, 1);
		int stop = vcpu_sleep(vcpu, wait);
		memcg_stall(memcg, -1);
		if (stop)
			return 1;
		pthread_mutex_lock(&vcpu->lock);
	}
	park_while_paused(vcpu);
	if (vcpu->stop_requested) {
		pthread_mutex_unlock(&vcpu->lock);
		return 1;
	}
	vcpu->ops->vcpu_arm(vcpu->accel);
	vcpu->in_guest = true;
	pthread_mutex_unlock(&vcpu->lock);

	int rc = vcpu->ops->vcpu_run(vcpu->accel, &vcpu->exit);

	pthread_mutex_lock(&vcpu->lock);
	vcpu->in_guest = false;
	vcpu->in_fault = false; /* it is here, so it is not blocked in one */
	pthread_mutex_unlock(&vcpu->lock);
	if (rc) {
		vcpu->exit.reason = VCPU_EXIT_ERROR;
		snprintf(vcpu->exit.message, sizeof(vcpu->exit.message),
			 "the %s accelerator failed to run the vCPU", vcpu->ops->name);
	}
	return 0;
}

int vcpu_sleep(struct vcpu *vcpu, uint64_t ns)
{
	struct timespec deadline = deadline_in(ns);
	pthread_mutex_lock(&vcpu->lock);
	bool in_park = vcpu->parked; /* between vcpu_park_begin and _end */
	vcpu->parked = true;
	pthread_cond_broadcast(&vcpu->cond);
	while (!vcpu->stop_requested) {
		if (pthread_cond_timedwait(&vcpu->cond, &vcpu->lock, &deadline) == ETIMEDOUT)
			break;
	}
	park_while_paused(vcpu);
	vcpu->parked = in_park;
	int stop = vcpu->stop_requested;
	pthread_mutex_unlock(&vcpu->lock);
	return stop;
}

void vcpu_park_begin(struct vcpu *vcpu)
{
	pthread_mutex_lock(&vcpu->lock);
	vcpu->parked = true;
	pthread_cond_broadcast(&vcpu->cond);
	pthread_mutex_unlock(&vcpu->lock);
}

int vcpu_park_end(struct vcpu *vcpu)
{
	pthread_mutex_lock(&vcpu->lock);
	park_while_paused(vcpu); /* leaves parked false */
	int stop = vcpu->stop_requested;
	/* A stop while parked sent no kick; inside the emulator's hook the
	 * guest would run on: kick now. */
	if (stop)
		kick_locked(vcpu);
	pthread_mutex_unlock(&vcpu->lock);
	return stop;
}

void vcpu_finish(struct vcpu *vcpu)
{
	pthread_mutex_lock(&vcpu->lock);
	vcpu->finished = true;
	vcpu->parked = true;
	pthread_cond_broadcast(&vcpu->cond);
	pthread_mutex_unlock(&vcpu->lock);
}

void vcpu_throttle(struct vcpu *vcpu, uint64_t ns)
{
	pthread_mutex_lock(&vcpu->lock);
	uint64_t until = monotonic_ns() + ns;
	if (until > vcpu->throttle_until_ns)
		vcpu->throttle_until_ns = until;
	kick_locked(vcpu);
	pthread_mutex_unlock(&vcpu->lock);
}

/* Lock held: the vCPU cannot touch guest memory now (vcpu.h). */
static bool quiet(struct vcpu *vcpu)
{
	if (vcpu->parked || vcpu->finished)
		return true;
	if (vcpu->ops->kick_ends_fault_wait)
		return false;
	return vcpu->in_fault || (vcpu->mem && guest_memory_fault_pending(vcpu->mem));
}

void vcpu_pause(struct vcpu *vcpu)
{
	pthread_mutex_lock(&vcpu->lock);
	vcpu->pause_depth++;
	if (vcpu->thread_started && pthread_equal(pthread_self(), vcpu->thread)) {
		/* An exit handler of this vCPU: the guest is not running. */
		pthread_mutex_unlock(&vcpu->lock);
		return;
	}
	if (!quiet(vcpu))
		kick_locked(vcpu);
	while (!quiet(vcpu)) {
		struct timespec deadline = deadline_in(REKICK_NS);
		if (pthread_cond_timedwait(&vcpu->cond, &vcpu->lock, &deadline) == ETIMEDOUT &&
		    !quiet(vcpu))
			kick_locked(vcpu);
	}
	pthread_mutex_unlock(&vcpu->lock);
}

void vcpu_resume(struct vcpu *vcpu)
{
	pthread_mutex_lock(&vcpu->lock);
	if (vcpu->pause_depth > 0 && --vcpu->pause_depth == 0) {
		pthread_cond_broadcast(&vcpu->cond);
		if (vcpu->wake_owed) {
			vcpu->wake_owed = false;
			vcpu->in_fault = false;
			if (vcpu->mem && !vcpu->finished)
				guest_memory_wake(vcpu->mem);
		}
	}
	pthread_mutex_unlock(&vcpu->lock);
}

void vcpu_stop(struct vcpu *vcpu)
{
	pthread_mutex_lock(&vcpu->lock);
	vcpu->stop_requested = true;
	kick_locked(vcpu);
	pthread_cond_broadcast(&vcpu->cond);
	pthread_mutex_unlock(&vcpu->lock);
}

/* The ops, read on a thread that may have seen nothing of the vCPU's
 * creation but a userfaultfd message (vcpu_create). */
static const struct accel_ops *ops_of(struct vcpu *vcpu)
{
	return __atomic_load_n(&vcpu->ops, __ATOMIC_ACQUIRE);
}

void vcpu_fault_begin(struct vcpu *vcpu)
{
	if (ops_of(vcpu)->kick_ends_fault_wait)
		return; /* a kick gets it out; a flag could go stale */
	pthread_mutex_lock(&vcpu->lock);
	vcpu->in_fault = true;
	pthread_cond_broadcast(&vcpu->cond);
	pthread_mutex_unlock(&vcpu->lock);
}

bool vcpu_fault_may_wake(struct vcpu *vcpu)
{
	if (ops_of(vcpu)->kick_ends_fault_wait)
		return true;
	pthread_mutex_lock(&vcpu->lock);
	bool may = vcpu->pause_depth == 0 || vcpu->finished;
	if (may)
		vcpu->in_fault = false;
	else
		vcpu->wake_owed = true;
	pthread_mutex_unlock(&vcpu->lock);
	return may;
}

int vcpu_get_regs(struct vcpu *vcpu, struct vcpu_regs *regs)
{
	return vcpu->ops->vcpu_get_regs(vcpu->accel, regs);
}

int vcpu_set_regs(struct vcpu *vcpu, const struct vcpu_regs *regs)
{
	return vcpu->ops->vcpu_set_regs(vcpu->accel, regs);
}
