/*
 * vm.h - one VM: an accelerator VM (KVM or TCG, accel.h) with its guest RAM,
 * one vCPU thread, a console, and its result.
 *
 * Life cycle: vm_create() builds everything (the VM, guest memory, the guest
 * image and boot area, the vCPU registers) without running anything;
 * vm_start() starts the vCPU thread; vm_join() waits for it; vm_destroy()
 * frees it all. A VM ends when its guest writes the exit port, takes an
 * exception, does something the VMM cannot serve, or is stopped; only that
 * VM ends, and its result says why.
 */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "console.h"
#include "guest_abi.h"
#include "mm/guest_memory.h"
#include "vcpu.h"

struct fault_thread;
struct frame_pool;
struct ksm;
struct guest_image;
struct accel;
struct memory_settings;
struct vm_group_spec;

enum vm_status {
	VM_STATUS_CREATED = 0,
	VM_STATUS_RUNNING,
	VM_STATUS_EXITED,    /* the guest wrote its exit code */
	VM_STATUS_EXCEPTION, /* the guest took a CPU exception */
	VM_STATUS_ERROR,     /* the VMM could not go on with this VM */
	VM_STATUS_STOPPED,   /* stopped from outside (Ctrl-C) */
};

struct vm_guest_value {
	char key[GUEST_REPORT_KEY_MAX];
	uint64_t value;
};

struct vm_result {
	enum vm_status status;
	int exit_code; /* the guest's exit code, -1 if it did not exit itself */
	char message[256];
	double wall_seconds;
	unsigned nvalues;
	struct vm_guest_value values[GUEST_REPORT_MAX_KEYS];
	uint64_t buffer_gpa, buffer_bytes; /* GUEST_HC_DECLARE_BUFFER */
	/* Guest memory statistics, taken when the VM ended (its memory is
	 * released then). */
	struct guest_memory_stats memory;
	struct memory_events events;	 /* memory.events of the VM's own cgroup */
	struct guest_range_stats buffer; /* pages of the declared buffer */
	double throttled_seconds;	 /* memory.high */
	uint64_t ksm_metadata_bytes;	 /* KSM's own memory for this VM, at its end */
};

struct vm {
	unsigned index;
	char name[32];
	const struct vm_group_spec *group;
	const struct guest_image *image;
	const char *memory_image; /* the RAM image it started from, or NULL */
	const struct accel *accel;
	struct accel_vm *accel_vm;
	struct vcpu vcpu;
	struct guest_memory *mem;
	struct console console;
	struct vm_result result;
	struct timespec started;
	int done_fd; /* eventfd written once when the VM ends */

	/* Set by another thread (e.g. the fault thread on out-of-memory) before
	 * it stops the vCPU: the reason the VM ends. */
	pthread_mutex_t stop_lock;
	enum vm_status stop_status;
	char stop_message[256];

	struct ksm *ksm; /* when this VM takes part in merging */
	/* Guards `mem` against release while another thread reads it. */
	pthread_mutex_t mem_lock;
};

struct vm_create_args {
	unsigned index, count;
	const struct vm_group_spec *group;
	const struct guest_image *image;
	const struct accel *accel;
	bool quiet;
	int done_fd;
	const struct memory_settings *memory;
	struct frame_pool *pool; /* pool backing */
	struct guest_registry *registry;
	struct fault_thread *faults; /* pool backing */
	struct ksm *ksm;	     /* NULL: no merging for this VM */
	bool track_access;	     /* mm keeps an access log (KSM, reclaim) */
	struct reclaim *reclaim;     /* swap and limits, or NULL */
	struct memory_limits limits;
	struct memcg *memcg;	  /* the cgroup the VM's own goes under */
	const char *memory_image; /* guest RAM starts as this file; NULL: zeroes */
};

int vm_create(struct vm **out, const struct vm_create_args *args, char *err, size_t errlen);
/* Which realiser (mm/realiser.h) a VM's pool memory uses: the owned page
 * table where the accelerator can walk it (TCG) unless --tcg-mmu host;
 * host mappings otherwise (KVM). */
struct accel;
struct memory_settings;
enum guest_realiser vm_realiser(const struct accel *accel, const struct memory_settings *memory);
int vm_start(struct vm *vm);
void vm_join(struct vm *vm);
void vm_stop(struct vm *vm);
/* vCPU thread: a stop was requested; end with the recorded reason (an
 * error from mm, or "stopped"). */
void vm_end_stopped(struct vm *vm);
/* Stops the VM from another thread, recording why; safe from any thread. */
void vm_stop_with_error(struct vm *vm, enum vm_status status, const char *message);
void vm_destroy(struct vm *vm);

/* Ends the VM with a status and a message printed as "vm3: message". */
void vm_fail(struct vm *vm, enum vm_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Handles the exit in vm->vcpu.exit; returns 1 if the VM has ended. */
int vm_handle_exit(struct vm *vm);
/* The port devices (accel.h's vcpu_io_fn; ctx is the VM). */
int vm_port_io(void *ctx, uint16_t port, void *data, unsigned size, bool out);

/* Pages the guest has present now (private, shared or zero), 0 once its
 * memory is released. Safe from any thread. */
uint64_t vm_present_pages(struct vm *vm);
/* The VM's id in mm (reverse maps name VMs by it), 0 once its memory is gone. */
uint16_t vm_memory_id(struct vm *vm);

const char *vm_status_name(enum vm_status status);
/* true if the VM ended well: the guest exited with code 0. */
bool vm_succeeded(const struct vm *vm);

#endif
