/*
 * vcpu.h - a vCPU and the protocol that parks it, over either accelerator.
 *
 * One thread runs each vCPU: it calls vcpu_enter() in a loop and handles the
 * exits. Other threads (the KSM scanner, reclaim, the fault thread, the fleet
 * on Ctrl-C) may need the vCPU out of the guest:
 *
 *   vcpu_pause()   returns once the vCPU cannot touch guest memory: parked
 *                  (not in the guest, not handling an exit) or blocked in a
 *                  guest-memory fault that will not be woken before the
 *                  pause ends; it will not run guest code until every pause
 *                  is matched by vcpu_resume(). Pauses nest. From the vCPU's
 *                  own thread (an exit handler that reclaims) it returns at
 *                  once: the guest is not running while its thread is here.
 *   vcpu_stop()    asks the vCPU thread to leave its loop for good.
 *
 * Kicking (accel.h) makes the accelerator return from the guest. A kick can
 * be lost while the vCPU enters or leaves the guest (TCG), so a pause that
 * is not answered within a millisecond kicks again.
 *
 * Blocked in a fault. A vCPU whose access to a page mm has not placed yet is
 * blocked in a userfaultfd fault until the fault thread wakes it. With KVM a
 * kick ends that wait (KVM_RUN returns EINTR). A TCG vCPU blocked in a host
 * page fault cannot be kicked out, so the pause protocol counts it as parked
 * and mm's fault thread gates its wake-up:
 *   - a message the fault thread has not read yet (guest_memory_fault_pending)
 *     or one it has read and is serving (vcpu_fault_begin) means the vCPU is
 *     blocked;
 *   - before waking a blocked vCPU mm asks vcpu_fault_may_wake(): during a
 *     pause the answer is no, the wake is owed, and the last vcpu_resume()
 *     wakes it (guest_memory_wake);
 * so nothing that pauses (direct reclaim on the fault thread, KSM, the OOM
 * killer) ever waits for a vCPU that waits for it.
 *
 * A vCPU sleeping in a hypercall (vcpu_sleep) also counts as parked, so a
 * pause never waits for a guest's sleep to end. So does one handling a
 * port-I/O exit (vcpu_park_begin/end, around vm_port_io): the handler
 * touches guest memory only through mm (guest_memory_read, under the VM's
 * lock), and it may wait for locks a pauser holds while it waits for the
 * pause (a hypercall's buffer is swapped out and its swap-in reclaims, which
 * takes the pool's registry lock that kswapd holds while it pauses this VM).
 * On TCG the handler runs inside the emulator's hook, the vCPU in the
 * guest: vcpu_park_end() does not return while a pause is pending, so the
 * guest goes on only once the pausers are done.
 *
 * Lock: vcpu->lock protects the state below; it is never held while running
 * the guest or waiting for another lock (guest_memory_wake is one ioctl).
 */
#ifndef VMM_VCPU_H
#define VMM_VCPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "accel.h"

struct guest_memory;

struct vcpu {
	const struct accel_ops *ops;
	struct accel_vcpu *accel;
	struct guest_memory *mem; /* for the blocked-in-fault checks; may be NULL */
	struct vcpu_exit exit;	  /* the last vcpu_enter()'s */
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned pause_depth;
	bool parked;	     /* not in the guest, and waiting or sleeping */
	bool in_guest;	     /* armed and (about to be) running the guest */
	bool in_fault;	     /* blocked in a fault the fault thread has read */
	bool wake_owed;	     /* that fault was resolved during a pause */
	bool stop_requested; /* leave the loop */
	bool finished;
	uint64_t throttle_until_ns; /* memory.high: do not enter before */
	uint64_t throttled_ns;	    /* time spent throttled */
	uint64_t kicks;		    /* for the report: pause kicks sent */
};

/* Creates the accelerator's vCPU (io: port I/O, see accel.h). */
int vcpu_create(struct vcpu *vcpu, const struct accel_ops *ops, struct accel_vm *vm, vcpu_io_fn io,
		void *io_ctx, char *err, size_t errlen);
void vcpu_destroy(struct vcpu *vcpu);

/* vCPU thread: waits while paused or throttled, then runs the guest until an
 * exit (in vcpu->exit). Returns 1 if a stop was requested, else 0. */
int vcpu_enter(struct vcpu *vcpu);
/* vCPU thread: sleeps ns nanoseconds while counting as parked. Returns 1 if
 * a stop was requested, else 0. */
int vcpu_sleep(struct vcpu *vcpu, uint64_t ns);
/* vCPU thread, around an exit handler that may block (see above): counts
 * as parked in between. vcpu_park_end() returns once no pause is pending:
 * 1 if a stop was requested meanwhile, else 0. */
void vcpu_park_begin(struct vcpu *vcpu);
int vcpu_park_end(struct vcpu *vcpu);
/* vCPU thread: the loop has ended; pausers stop waiting. */
void vcpu_finish(struct vcpu *vcpu);

/* memory.high: the vCPU leaves the guest and waits ns before it goes on. */
void vcpu_throttle(struct vcpu *vcpu, uint64_t ns);

void vcpu_pause(struct vcpu *vcpu);
void vcpu_resume(struct vcpu *vcpu);
void vcpu_stop(struct vcpu *vcpu);

/* mm's fault thread: it read a fault of this vCPU (it is blocked on it). */
void vcpu_fault_begin(struct vcpu *vcpu);
/* mm's fault thread, before it wakes the vCPU: false during a pause (the
 * last vcpu_resume() wakes it instead). */
bool vcpu_fault_may_wake(struct vcpu *vcpu);

/* Register access for exit handlers, on the vCPU thread. */
int vcpu_get_regs(struct vcpu *vcpu, struct vcpu_regs *regs);
int vcpu_set_regs(struct vcpu *vcpu, const struct vcpu_regs *regs);

#endif
