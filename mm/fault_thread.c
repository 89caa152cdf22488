/*
 * fault_thread.c - the userfaultfd event loop (see fault_thread.h).
 */
#include "fault_thread.h"

#include <errno.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "guest_memory.h"

#define EVENTS_PER_WAIT 64
#define MESSAGES_PER_READ 16

static uint64_t now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000ull + (uint64_t)t.tv_nsec / 1000;
}

#define DEFER_RETRY_MS 5

/* ndeferred is written under ft->lock and read without it (to pick the
 * epoll timeout): atomic accesses, both. */
static unsigned deferred_count(const struct fault_thread *ft)
{
	return __atomic_load_n(&ft->ndeferred, __ATOMIC_RELAXED);
}

/* Keeps a fault to retry later (ft->lock held). One vCPU per VM blocks on
 * one fault at a time, so a slot never has more than one here and the list
 * cannot overflow. */
static void defer(struct fault_thread *ft, int slot, const struct uffd_msg *msg)
{
	unsigned n = deferred_count(ft);
	if (n < FAULT_THREAD_DEFERRED) {
		ft->deferred[n].slot = slot;
		ft->deferred[n].msg = *msg;
		__atomic_store_n(&ft->ndeferred, n + 1, __ATOMIC_RELAXED);
		ft->deferrals++;
	}
}

/* Retries deferred faults (ft->lock held); keeps those still waiting. */
static void retry_deferred(struct fault_thread *ft)
{
	unsigned keep = 0, n = deferred_count(ft);
	__atomic_store_n(&ft->ndeferred, 0, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < n; i++) {
		struct deferred_fault d = ft->deferred[i];
		struct guest_memory *mem = ft->slots[d.slot];
		if (mem && guest_memory_handle_fault(mem, &d.msg))
			ft->deferred[keep++] = d;
	}
	/* handle_fault may have deferred nothing new: this thread is the
	 * only one that defers, and it is here. */
	__atomic_store_n(&ft->ndeferred, keep, __ATOMIC_RELAXED);
}

/* Serves what is pending on one uffd; returns the number of messages. */
static unsigned serve(struct fault_thread *ft, int slot)
{
	struct guest_memory *mem = ft->slots[slot];
	struct uffd_msg msgs[MESSAGES_PER_READ];
	unsigned served = 0;
	for (;;) {
		ssize_t n = read(guest_memory_uffd(mem), msgs, sizeof(msgs));
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++)
			if (guest_memory_handle_fault(mem, &msgs[i]))
				defer(ft, slot, &msgs[i]);
		served += (unsigned)(n / (ssize_t)sizeof(msgs[0]));
		if ((size_t)n < sizeof(msgs))
			break;
	}
	return served;
}

static void *fault_thread_main(void *arg)
{
	struct fault_thread *ft = arg;
	pthread_setname_np(pthread_self(), "vmm-uffd");
	struct epoll_event events[EVENTS_PER_WAIT];
	uint64_t spin_until = 0;
	for (;;) {
		int timeout = now_us() < spin_until ? 0 : deferred_count(ft) ? DEFER_RETRY_MS : -1;
		int n = epoll_wait(ft->epoll_fd, events, EVENTS_PER_WAIT, timeout);
		if (n < 0 && errno != EINTR)
			break;
		if (deferred_count(ft)) {
			pthread_mutex_lock(&ft->lock);
			retry_deferred(ft);
			pthread_mutex_unlock(&ft->lock);
		}
		if (n <= 0)
			continue;
		unsigned served = 0;
		bool stop = false;
		pthread_mutex_lock(&ft->lock);
		uint64_t serve_start = now_us();
		for (int i = 0; i < n; i++) {
			uint32_t slot = events[i].data.u32;
			if (slot == 0)
				stop = true;
			else if (slot < FAULT_THREAD_SLOTS && ft->slots[slot])
				served += serve(ft, (int)slot);
		}
		ft->events += served;
		ft->serve_us += now_us() - serve_start;
		if (timeout == 0)
			ft->spin_hits += served > 0;
		else
			ft->wakeups++;
		pthread_mutex_unlock(&ft->lock);
		if (stop)
			break;
		if (served)
			spin_until = now_us() + ft->spin_us;
	}
	return NULL;
}

int fault_thread_start(struct fault_thread *ft, unsigned spin_us)
{
	memset(ft, 0, sizeof(*ft));
	ft->spin_us = spin_us;
	ft->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	ft->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (ft->epoll_fd < 0 || ft->stop_fd < 0)
		return -1;
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
	if (epoll_ctl(ft->epoll_fd, EPOLL_CTL_ADD, ft->stop_fd, &ev))
		return -1;
	pthread_mutex_init(&ft->lock, NULL);
	if (pthread_create(&ft->thread, NULL, fault_thread_main, ft))
		return -1;
	ft->running = true;
	return 0;
}

void fault_thread_get_stats(struct fault_thread *ft, struct fault_thread_stats *stats)
{
	memset(stats, 0, sizeof(*stats));
	if (!ft->running)
		return;
	pthread_mutex_lock(&ft->lock);
	stats->events = ft->events;
	stats->wakeups = ft->wakeups;
	stats->spin_hits = ft->spin_hits;
	stats->serve_us = ft->serve_us;
	stats->deferrals = ft->deferrals;
	pthread_mutex_unlock(&ft->lock);
}

void fault_thread_stop(struct fault_thread *ft)
{
	if (ft->running) {
		uint64_t one = 1;
		if (write(ft->stop_fd, &one, sizeof(one)) == sizeof(one))
			pthread_join(ft->thread, NULL);
		ft->running = false;
		pthread_mutex_destroy(&ft->lock);
	}
	if (ft->epoll_fd > 0)
		close(ft->epoll_fd);
	if (ft->stop_fd > 0)
		close(ft->stop_fd);
	ft->epoll_fd = ft->stop_fd = -1;
}

int fault_thread_add(struct fault_thread *ft, struct guest_memory *mem)
{
	int slot = -1;
	pthread_mutex_lock(&ft->lock);
	for (int i = 1; i < FAULT_THREAD_SLOTS; i++) {
		if (!ft->slots[i]) {
			slot = i;
			break;
		}
	}
	if (slot > 0) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)slot};
		if (epoll_ctl(ft->epoll_fd, EPOLL_CTL_ADD, guest_memory_uffd(mem), &ev))
			slot = -1;
		else
			ft->slots[slot] = mem;
	}
	pthread_mutex_unlock(&ft->lock);
	return slot;
}

void fault_thread_remove(struct fault_thread *ft, int slot)
{
	if (slot <= 0 || slot >= FAULT_THREAD_SLOTS)
		return;
	pthread_mutex_lock(&ft->lock);
	struct guest_memory *mem = ft->slots[slot];
	if (mem) {
		epoll_ctl(ft->epoll_fd, EPOLL_CTL_DEL, guest_memory_uffd(mem), NULL);
		ft->slots[slot] = NULL;
		unsigned keep = 0;
		for (unsigned i = 0; i < deferred_count(ft); i++)
			if (ft->deferred[i].slot != slot)
				ft->deferred[keep++] = ft->deferred[i];
		__atomic_store_n(&ft->ndeferred, keep, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&ft->lock);
}
