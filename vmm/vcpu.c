/*
 * vcpu.c - vCPU creation and the park/kick protocol (see vcpu.h).
 */
#include "vcpu.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define KICK_SIGNAL SIGUSR1

int vcpu_create(struct vcpu *vcpu, int vm_fd, int run_size)
{
	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
	if (vcpu->fd < 0)
		return -1;
	vcpu->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		int e = errno;
		close(vcpu->fd);
		errno = e;
		return -1;
	}
	vcpu->run_size = run_size;
	vcpu->parked = true; /* until its thread first enters the guest */
	pthread_mutex_init(&vcpu->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&vcpu->cond, &attr);
	pthread_condattr_destroy(&attr);
	return 0;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (vcpu->run && vcpu->run != MAP_FAILED)
		munmap(vcpu->run, vcpu->run_size);
	if (vcpu->fd > 0)
		close(vcpu->fd);
	pthread_mutex_destroy(&vcpu->lock);
	pthread_cond_destroy(&vcpu->cond);
	vcpu->run = NULL;
	vcpu->fd = -1;
}

static void kick_handler(int sig)
{
	(void)sig;
}

void vcpu_install_kick_handler(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: KVM_RUN must return EINTR */
	sigaction(KICK_SIGNAL, &sa, NULL);
}

/* Called with the lock held. */
static void kick_locked(struct vcpu *vcpu)
{
	vcpu->run->immediate_exit = 1;
	if (vcpu->thread_started && !vcpu->finished && !vcpu->parked)
		pthread_kill(vcpu->thread, KICK_SIGNAL);
}

/* Called with the lock held: park while a pause is pending. */
static void park_while_paused(struct vcpu *vcpu)
{
	while (vcpu->pause_depth > 0 && !vcpu->stop_requested) {
		vcpu->parked = true;
		pthread_cond_broadcast(&vcpu->cond);
		pthread_cond_wait(&vcpu->cond, &vcpu->lock);
	}
	vcpu->parked = false;
}

static uint64_t monotonic_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int vcpu_enter(struct vcpu *vcpu)
{
	pthread_mutex_lock(&vcpu->lock);
	uint64_t now = monotonic_ns();
	if (vcpu->throttle_until_ns > now) {
		uint64_t wait = vcpu->throttle_until_ns - now;
		vcpu->throttle_until_ns = 0;
		vcpu->throttled_ns += wait;
		pthread_mutex_unlock(&vcpu->lock);
		if (vcpu_sleep(vcpu, wait))
			return 1;
		pthread_mutex_lock(&vcpu->lock);
	}
	park_while_paused(vcpu);
	if (vcpu->stop_requested) {
		pthread_mutex_unlock(&vcpu->lock);
		return 1;
	}
	vcpu->run->immediate_exit = 0;
	pthread_mutex_unlock(&vcpu->lock);

	if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
		if (errno == EINTR || errno == EAGAIN) {
			vcpu->run->exit_reason = KVM_EXIT_INTR;
			return 0;
		}
		return -1;
	}
	return 0;
}

int vcpu_sleep(struct vcpu *vcpu, uint64_t ns)
{
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += (time_t)(ns / 1000000000ull);
	deadline.tv_nsec += (long)(ns % 1000000000ull);
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&vcpu->lock);
	vcpu->parked = true;
	pthread_cond_broadcast(&vcpu->cond);
	while (!vcpu->stop_requested) {
		if (pthread_cond_timedwait(&vcpu->cond, &vcpu->lock, &deadline) == ETIMEDOUT)
			break;
	}
	park_while_paused(vcpu);
	int stop = vcpu->stop_requested;
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

void vcpu_pause(struct vcpu *vcpu)
{
	pthread_mutex_lock(&vcpu->lock);
	vcpu->pause_depth++;
	if (vcpu->pause_depth == 1)
		kick_locked(vcpu);
	while (!vcpu->parked && !vcpu->finished)
		pthread_cond_wait(&vcpu->cond, &vcpu->lock);
	pthread_mutex_unlock(&vcpu->lock);
}

void vcpu_resume(struct vcpu *vcpu)
{
	pthread_mutex_lock(&vcpu->lock);
	if (vcpu->pause_depth > 0 && --vcpu->pause_depth == 0)
		pthread_cond_broadcast(&vcpu->cond);
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
