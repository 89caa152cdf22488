/* test_vcpu.c - the pause protocol of vmm/vcpu.h against a vCPU that a
 * kick cannot get out of a userfaultfd fault (as TCG's), with real guest
 * memory and the real fault thread: a fake accelerator whose "guest" writes
 * one page of the VM's host range per run, so each run blocks in a uffd
 * fault until the fault thread serves it.
 *
 * The fault thread is held off by taking its lock, so the fault stays
 * unread; the tests then check that a pause returns while the vCPU is
 * blocked (unread, then read), that the fault thread does not wake it
 * during the pause, and that the resume does. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mm/fault_thread.h"
#include "mm/frame_pool.h"
#include "mm/guest_memory.h"
#include "mm/guest_registry.h"
#include "mm/rmap.h"
#include "vmm/vcpu.h"

static struct guest_registry registry;

#define VM_BYTES (4ull << 20)

static struct frame_pool pool;
static struct fault_thread faults;
static struct guest_memory *mem;
static pthread_t thread;

static struct vcpu vcpu;

/* --- the fake accelerator --- */

struct accel_vcpu {
	uint8_t *ram;
	uint64_t next_page;
	int runs_done;	    /* atomic: runs that got past their fault */
	int kicks, blocked; /* atomic */
	/* If set, each run first handles a port-I/O exit in the run, as TCG's
	 * hook does, whose handler takes this lock (vm_port_io waiting for an
	 * mm lock). */
	pthread_mutex_t *handler_lock;
	int in_handler; /* atomic */
};
static struct accel_vcpu fake;

static int fake_create(struct accel_vm *vm, struct accel_vcpu **out, vcpu_io_fn io, void *io_ctx,
		       char *err, size_t errlen)
{
	(void)vm, (void)io, (void)io_ctx, (void)err, (void)errlen;
	*out = &fake;
	return 0;
}

static void fake_destroy(struct accel_vcpu *v)
{
	(void)v;
}

static void fake_arm(struct accel_vcpu *v)
{
	(void)v;
}

static void fake_kick(struct accel_vcpu *v)
{
	__atomic_add_fetch(&v->kicks, 1, __ATOMIC_RELAXED);
}

/* One "instruction": a store to a page never touched, which blocks in the
 * uffd until the fault thread maps a frame and wakes this thread. */
static int fake_run(struct accel_vcpu *v, struct vcpu_exit *exit)
{
	memset(exit, 0, sizeof(*exit));
	if (v->handler_lock) {
		vcpu_park_begin(&vcpu);
		__atomic_store_n(&v->in_handler, 1, __ATOMIC_RELEASE);
		pthread_mutex_lock(v->handler_lock);
		pthread_mutex_unlock(v->handler_lock);
		__atomic_store_n(&v->in_handler, 0, __ATOMIC_RELEASE);
		if (vcpu_park_end(&vcpu))
			return 0;
	}
	volatile uint8_t *p = v->ram + v->next_page * 4096;
	v->next_page = (v->next_page + 16) % (VM_BYTES / 4096); /* a new 64K block */
	*p = 1;
	__atomic_add_fetch(&v->runs_done, 1, __ATOMIC_RELEASE);
	usleep(2000);
	return 0;
}

static const struct accel_ops fake_ops = {
	.name = "fake",
	.kick_ends_fault_wait = false,
	.vcpu_create = fake_create,
	.vcpu_destroy = fake_destroy,
	.vcpu_arm = fake_arm,
	.vcpu_run = fake_run,
	.vcpu_kick = fake_kick,
};

/* --- mm's side of the VM --- */

static void mem_fault_begin(void *ctx)
{
	vcpu_fault_begin(ctx);
}

static bool mem_may_wake(void *ctx)
{
	return vcpu_fault_may_wake(ctx);
}

static const struct guest_memory_ops mem_ops = {
	.fault_begin = mem_fault_begin,
	.may_wake = mem_may_wake,
};

static void *vcpu_loop(void *arg)
{
	(void)arg;
	while (!vcpu_enter(&vcpu))
		;
	vcpu_finish(&vcpu);
	return NULL;
}

static void setup(void)
{
	char err[256];
	cr_assert_eq(rmap_init(), 0);
	cr_assert_eq(frame_pool_create(&pool, 16ull << 20, err, sizeof(err)), 0, "%s", err);
	guest_registry_init(&registry);
	cr_assert_eq(fault_thread_start(&faults, 0), 0);
	struct guest_memory_config mc = {.bytes = VM_BYTES,
					 .backing = GUEST_MEMORY_POOL,
					 .pool = &pool,
					 .registry = &registry,
					 .faults = &faults,
					 .fault_around_pages = 16,
					 .ops = &mem_ops,
					 .ops_ctx = &vcpu};
	cr_assert_eq(guest_memory_create(&mem, &mc, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(vcpu_create(&vcpu, &fake_ops, NULL, NULL, NULL, err, sizeof(err)), 0);
	vcpu.mem = mem;
	memset(&fake, 0, sizeof(fake));
	fake.ram = guest_memory_host_base(mem);
	fake.next_page = 16;
}

static void teardown(void)
{
	vcpu_stop(&vcpu);
	pthread_join(thread, NULL);
	vcpu_destroy(&vcpu);
	guest_memory_destroy(mem);
	fault_thread_stop(&faults);
	guest_registry_destroy(&registry);
	frame_pool_destroy(&pool);
	rmap_exit();
}

TestSuite(vcpu, .init = setup, .fini = teardown, .timeout = 30);

static int runs_done(void)
{
	return __atomic_load_n(&fake.runs_done, __ATOMIC_ACQUIRE);
}

static void start_vcpu(void)
{
	vcpu.thread_started = true;
	cr_assert_eq(pthread_create(&thread, NULL, vcpu_loop, NULL), 0);
	vcpu.thread = thread;
}

/* Waits until the vCPU has made `n` runs, for at most 2 s. */
static void wait_runs(int n)
{
	for (int i = 0; i < 2000 && runs_done() < n; i++)
		usleep(1000);
	cr_assert_geq(runs_done(), n, "the vCPU made %d runs, expected %d", runs_done(), n);
}

Test(vcpu, runs_while_the_fault_thread_serves_it)
{
	start_vcpu();
	wait_runs(5);
}

Test(vcpu, a_pause_returns_while_blocked_and_the_wake_waits_for_the_resume)
{
	/* Hold the fault thread off: the vCPU's next fault stays unread. */
	pthread_mutex_lock(&faults.lock);
	start_vcpu();
	for (int i = 0; i < 2000 && !guest_memory_fault_pending(mem); i++)
		usleep(1000);
	cr_assert(guest_memory_fault_pending(mem), "the vCPU blocked in its first fault");
	cr_assert_eq(runs_done(), 0);

	/* A pause does not wait for a vCPU blocked on an unread fault. */
	vcpu_pause(&vcpu);
	pthread_mutex_unlock(&faults.lock);

	/* The fault thread now reads and serves the fault, but must not wake
	 * the vCPU during the pause: the wake is owed. */
	for (int i = 0; i < 2000; i++) {
		pthread_mutex_lock(&vcpu.lock);
		bool owed = vcpu.wake_owed;
		pthread_mutex_unlock(&vcpu.lock);
		if (owed)
			break;
		usleep(1000);
	}
	pthread_mutex_lock(&vcpu.lock);
	cr_assert(vcpu.wake_owed, "the fault thread deferred the wake");
	pthread_mutex_unlock(&vcpu.lock);
	cr_assert_eq(guest_memory_page_state(mem, 16), GUEST_PAGE_PRESENT, "the fault is served");
	usleep(50000);
	cr_assert_eq(runs_done(), 0, "still blocked: no wake during the pause");

	/* A nested pause (another pauser) returns at once too. */
	vcpu_pause(&vcpu);
	vcpu_resume(&vcpu);
	usleep(20000);
	cr_assert_eq(runs_done(), 0, "the inner resume does not end the pause");

	vcpu_resume(&vcpu);
	wait_runs(1);
}

Test(vcpu, a_pause_from_the_vcpus_own_thread_returns_at_once)
{
	pthread_mutex_lock(&vcpu.lock);
	vcpu.thread = pthread_self();
	vcpu.thread_started = true;
	vcpu.parked = false;
	vcpu.in_guest = true;
	pthread_mutex_unlock(&vcpu.lock);
	vcpu_pause(&vcpu); /* an exit handler that reclaims its own VM */
	cr_assert_eq(vcpu.pause_depth, 1);
	vcpu_resume(&vcpu);
	cr_assert_eq(vcpu.pause_depth, 0);
	cr_assert_eq(__atomic_load_n(&fake.kicks, __ATOMIC_RELAXED), 0, "no kick of itself");
	/* teardown joins `thread`: give it one that ends at once. */
	pthread_mutex_lock(&vcpu.lock);
	vcpu.in_guest = false;
	vcpu.parked = true;
	pthread_mutex_unlock(&vcpu.lock);
	start_vcpu();
}

/* A pauser that holds a lock the vCPU's exit handler waits for (kswapd
 * holds the pool's registry lock and pauses a VM whose hypercall is swapping
 * its buffer in, which needs that lock): the pause must not wait for the
 * handler, and the guest must not run on until the pause ends. */
Test(vcpu, a_pause_does_not_wait_for_an_exit_handler_blocked_on_the_pauser)
{
	static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&registry_lock);
	fake.handler_lock = &registry_lock;
	start_vcpu();
	for (int i = 0; i < 2000 && !__atomic_load_n(&fake.in_handler, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	cr_assert(__atomic_load_n(&fake.in_handler, __ATOMIC_ACQUIRE), "the handler runs");
	vcpu_pause(&vcpu); /* returns: the handler counts as parked */
	pthread_mutex_unlock(&registry_lock);
	for (int i = 0; i < 2000 && __atomic_load_n(&fake.in_handler, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	cr_assert_not(__atomic_load_n(&fake.in_handler, __ATOMIC_ACQUIRE), "the handler ended");
	usleep(50000);
	cr_assert_eq(runs_done(), 0, "the guest ran on during the pause");
	vcpu_resume(&vcpu);
	wait_runs(2);
}
