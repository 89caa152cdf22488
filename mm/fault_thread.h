/*
 * fault_thread.h - the thread that serves every VM's userfaultfd.
 *
 * One thread waits on an epoll set holding each VM's uffd. For each ready
 * uffd it reads the pending fault messages (non-blocking, in batches) and
 * hands each to guest_memory_handle_fault(), which resolves it and wakes the
 * blocked vCPU.
 *
 * Latency: a vCPU blocked on a fault waits for this thread to wake up. After
 * serving events the thread keeps polling without sleeping for `spin_us`
 * microseconds (default 50) before it blocks in epoll_wait again, since
 * first-touch faults come in bursts; the machine notes measure a blocking
 * handler at about twice the latency of a spinning one.
 *
 * Each watched guest memory has a slot; epoll events carry the slot number,
 * and the thread looks the slot up under fault_thread.lock before serving it.
 * fault_thread_remove() clears the slot under the same lock, so once it
 * returns the thread will not touch that guest memory again, even for events
 * epoll had already returned. fault_thread.lock is the outermost lock of
 * mm (mm/lock_order.h): a fault takes everything below it.
 */
#ifndef MM_FAULT_THREAD_H
#define MM_FAULT_THREAD_H

#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct guest_memory;

#define FAULT_THREAD_SLOTS 4096
#define FAULT_THREAD_DEFERRED FAULT_THREAD_SLOTS

struct fault_thread {
	int epoll_fd;
	int stop_fd; /* eventfd */
	pthread_t thread;
	bool running;
	unsigned spin_us;
	pthread_mutex_t lock;
	uint64_t events;				/* fault messages served */
	uint64_t wakeups;				/* returns from epoll_wait with work */
	uint64_t spin_hits;				/* work found while spinning */
	uint64_t serve_us;				/* time spent serving events */
	struct guest_memory *slots[FAULT_THREAD_SLOTS]; /* slot 0: the stop event */
	struct deferred_fault {
		int slot;
		struct uffd_msg msg;
	} deferred[FAULT_THREAD_DEFERRED];
	unsigned ndeferred;
	uint64_t deferrals;
};

struct fault_thread_stats {
	uint64_t events, wakeups, spin_hits, serve_us, deferrals;
};

int fault_thread_start(struct fault_thread *ft, unsigned spin_us);
/* The counters, read under the thread's lock (it keeps running). */
void fault_thread_get_stats(struct fault_thread *ft, struct fault_thread_stats *stats);
void fault_thread_stop(struct fault_thread *ft);
/* Returns the slot (> 0), or -1. */
int fault_thread_add(struct fault_thread *ft, struct guest_memory *mem);
void fault_thread_remove(struct fault_thread *ft, int slot);

#endif
