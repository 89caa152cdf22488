/*
 * vm.c - VM creation, the vCPU thread, and tear-down.
 */
#include "vm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accel.h"
#include "fleet_spec.h"
#include "guest_image.h"
#include "mm/frame_pool.h"
#include "mm/guest_memory.h"
#include "x86_setup.h"

#define VCPU_THREAD_STACK (256 * 1024)

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) * 1e-9;
}

static int setup_guest(struct vm *vm, const struct vm_create_args *args, char *err, size_t errlen)
{
	const struct elf_image *elf = &args->image->elf;
	uint64_t mem_bytes = args->group->mem_bytes;
	struct guest_boot_info *info = calloc(1, sizeof(*info));
	if (!info) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	info->magic = GUEST_BOOT_MAGIC;
	info->mem_bytes = mem_bytes;
	info->heap_start = elf_image_heap_start(elf);
	info->heap_end = mem_bytes - GUEST_STACK_BYTES;
	info->stack_top = mem_bytes;
	info->vm_index = args->index;
	info->vm_count = args->count;
	info->tsc_khz = vm->vcpu.ops->vcpu_tsc_khz(vm->vcpu.accel);
	snprintf(info->args, sizeof(info->args), "%s", args->group->args);

	struct vcpu_state state;
	x86_initial_state(&state, elf->entry, info->stack_top);
	int rc = -1;
	if (elf_image_load(elf, vm->mem)) {
		snprintf(err, errlen, "cannot load %s into guest memory", args->image->name);
	} else if (x86_build_boot_area(vm->mem, info, elf->entry)) {
		snprintf(err, errlen, "cannot write the boot area into guest memory");
	} else if (vm->vcpu.ops->vcpu_set_state(vm->vcpu.accel, &state)) {
		snprintf(err, errlen, "cannot set the vCPU registers: %s", strerror(errno));
	} else {
		rc = 0;
	}
	free(info);
	return rc;
}

/* --- what mm needs from a VM --- */

static void memory_pause(void *ctx)
{
	vcpu_pause(&((struct vm *)ctx)->vcpu);
}

static void memory_resume(void *ctx)
{
	vcpu_resume(&((struct vm *)ctx)->vcpu);
}

/* Pages written since the previous call: the accelerator's dirty log. */
static int memory_dirty_log(void *ctx, uint64_t *bitmap)
{
	struct vm *vm = ctx;
	return vm->accel->ops->vm_dirty_log(vm->accel_vm, bitmap);
}

static void memory_fault_begin(void *ctx)
{
	vcpu_fault_begin(&((struct vm *)ctx)->vcpu);
}

static bool memory_may_wake(void *ctx)
{
	return vcpu_fault_may_wake(&((struct vm *)ctx)->vcpu);
}

/* Guest memory cannot go on (pool exhausted, no host mappings left). */
static void memory_fatal(void *ctx, const char *message)
{
	vm_stop_with_error(ctx, VM_STATUS_ERROR, message);
}

/* memory.high: hold the vCPU back for a while. */
static void memory_throttle(void *ctx, uint64_t ns)
{
	vcpu_throttle(&((struct vm *)ctx)->vcpu, ns);
}

/* mm changed entries the vCPU may have cached (owned page table). */
static void memory_tlb_flush(void *ctx)
{
	struct vm *vm = ctx;
	if (vm->vcpu.accel)
		vm->vcpu.ops->vcpu_flush_tlb(vm->vcpu.accel);
}

/* A #PF of the owned page table, on the vCPU thread inside the run: mm
 * serves it while the vCPU counts as parked (it may reclaim, and pausers
 * must not wait for it), and the guest goes on once no pause is pending. */
static enum vcpu_fault_result memory_cpu_fault(void *ctx, uint64_t address)
{
	struct vm *vm = ctx;
	vcpu_park_begin(&vm->vcpu);
	enum guest_cpu_fault f = guest_memory_cpu_fault(vm->mem, address);
	int stop = vcpu_park_end(&vm->vcpu);
	switch (f) {
	case GUEST_CPU_FAULT_RETRY:
		return stop ? VCPU_FAULT_ENDED : VCPU_FAULT_RETRY;
	case GUEST_CPU_FAULT_GUEST:
		return VCPU_FAULT_GUEST;
	case GUEST_CPU_FAULT_OUTSIDE:
		return VCPU_FAULT_OUTSIDE;
	case GUEST_CPU_FAULT_ENDED:
		break;
	}
	return VCPU_FAULT_ENDED;
}

static const struct guest_memory_ops memory_ops = {
	.pause = memory_pause,
	.resume = memory_resume,
	.dirty_log = memory_dirty_log,
	.fatal = memory_fatal,
	.throttle = memory_throttle,
	.fault_begin = memory_fault_begin,
	.may_wake = memory_may_wake,
	.tlb_flush = memory_tlb_flush,
};

enum guest_realiser vm_realiser(const struct accel *accel, const struct memory_settings *memory)
{
	return accel->ops->vm_set_page_table && memory->backing == BACKING_POOL &&
			       memory->tcg_mmu == TCG_MMU_OWNED
		       ? GUEST_REALISER_OWNED
		       : GUEST_REALISER_HOST;
}

static enum guest_realiser realiser(const struct vm_create_args *args)
{
	return vm_realiser(args->accel, args->memory);
}

/* How mm learns which pages the guest accessed: the CPU's accessed and
 * dirty bits in mm's own page table (TCG, owned), the accelerator's dirty
 * log (KVM), else mm write-protects clean pages itself (TCG, host). */
static enum guest_access_log access_log(const struct vm_create_args *args)
{
	if (!args->track_access)
		return GUEST_ACCESS_LOG_NONE;
	if (realiser(args) == GUEST_REALISER_OWNED)
		return GUEST_ACCESS_LOG_ACCESSED_BITS;
	return args->accel->ops->vm_dirty_log ? GUEST_ACCESS_LOG_DIRTY_LOG
					      : GUEST_ACCESS_LOG_WRITE_PROTECT;
}

int vm_create(struct vm **out, const struct vm_create_args *args, char *err, size_t errlen)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	vm->index = args->index;
	vm->group = args->group;
	vm->image = args->image;
	vm->memory_image = args->memory_image;
	vm->accel = args->accel;
	vm->result.exit_code = -1;
	vm->done_fd = args->done_fd;
	pthread_mutex_init(&vm->stop_lock, NULL);
	pthread_mutex_init(&vm->mem_lock, NULL);
	snprintf(vm->name, sizeof(vm->name), "vm%u", args->index);
	console_init(&vm->console, vm->name, args->quiet);

	char why[256];
	const struct accel_ops *ops = args->accel->ops;
	if (ops->vm_create((struct accel *)args->accel, &vm->accel_vm, why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", vm->name, why);
		goto fail;
	}
	struct guest_memory_config mc = {
		.bytes = args->group->mem_bytes,
		.backing = args->memory->backing == BACKING_POOL ? GUEST_MEMORY_POOL
								 : GUEST_MEMORY_ANON,
		.pool = args->pool,
		.registry = args->registry,
		.faults = args->faults,
		.fault_around_pages = memory_settings_fault_around_pages(args->memory),
		.fault_ahead_pages = (unsigned)(args->memory->fault_ahead_bytes / 4096),
		.pinned_bytes = GUEST_BOOT_AREA_END,
		.ops = &memory_ops,
		.ops_ctx = vm,
		.access_log = access_log(args),
		.reclaim = args->reclaim,
		.limits = args->limits,
		.memcg = args->memcg,
		.image_path = args->memory_image,
		.realiser = realiser(args),
	};
	x86_cpu_ranges(mc.cpu_ranges, GUEST_CPU_RANGES);
	if (guest_memory_create(&vm->mem, &mc, why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", vm->name, why);
		goto fail;
	}
	struct guest_page_table gpt;
	if (guest_memory_page_table(vm->mem, &gpt) == 0) {
		struct accel_page_table pt = {gpt.phys, gpt.phys_bytes, gpt.root, memory_cpu_fault,
					      vm};
		if (ops->vm_set_page_table(vm->accel_vm, &pt, why, sizeof(why))) {
			snprintf(err, errlen, "%s: %s", vm->name, why);
			goto fail;
		}
	} else if (ops->vm_set_ram(vm->accel_vm, guest_memory_host_base(vm->mem),
				   guest_memory_size(vm->mem),
				   access_log(args) == GUEST_ACCESS_LOG_DIRTY_LOG, why,
				   sizeof(why))) {
		snprintf(err, errlen, "%s: %s", vm->name, why);
		goto fail;
	}
	if (vcpu_create(&vm->vcpu, ops, vm->accel_vm, vm_port_io, vm, why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", vm->name, why);
		goto fail;
	}
	if (args->memory->backing == BACKING_POOL)
		vm->vcpu.mem = vm->mem;
	if (setup_guest(vm, args, why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", vm->name, why);
		goto fail;
	}
	if (args->ksm) {
		if (ksm_add_vm(args->ksm, vm->mem)) {
			snprintf(err, errlen, "%s: cannot register with KSM", vm->name);
			goto fail;
		}
		vm->ksm = args->ksm;
	}
	*out = vm;
	return 0;
fail:
	vm_destroy(vm);
	return -1;
}

/* The VM has ended: keep its memory statistics and give its frames back to
 * the pool at once, so running VMs can use them. */
static void release_memory(struct vm *vm)
{
	if (!vm->mem)
		return;
	/* KSM first: after this it will not pause the VM or touch its memory.
	 * Its metadata for the VM is counted before (the arrays go with the
	 * VM) from the statistics taken after (one walk of the sEPT). */
	uint64_t ksm_bytes = 0;
	if (vm->ksm) {
		ksm_bytes = ksm_vm_array_bytes(vm->ksm, vm->mem);
		ksm_remove_vm(vm->ksm, vm->mem);
	}
	vm->ksm = NULL;
	guest_memory_get_stats(vm->mem, &vm->result.memory);
	if (guest_memory_memcg(vm->mem))
		memcg_read_events(guest_memory_memcg(vm->mem), &vm->result.events, NULL);
	if (ksm_bytes)
		vm->result.ksm_metadata_bytes =
			ksm_bytes + ksm_mapper_bytes(vm->result.memory.ksm_merging_pages);
	vm->result.throttled_seconds = (double)vm->vcpu.throttled_ns * 1e-9;
	if (vm->result.buffer_bytes)
		guest_memory_range_stats(vm->mem, vm->result.buffer_gpa, vm->result.buffer_bytes,
					 &vm->result.buffer);
	pthread_mutex_lock(&vm->mem_lock);
	struct guest_memory *mem = vm->mem;
	vm->mem = NULL;
	pthread_mutex_unlock(&vm->mem_lock);
	if (vm->vcpu.accel) {
		pthread_mutex_lock(&vm->vcpu.lock);
		vm->vcpu.mem = NULL;
		pthread_mutex_unlock(&vm->vcpu.lock);
	}
	guest_memory_destroy(mem);
}

uint16_t vm_memory_id(struct vm *vm)
{
	pthread_mutex_lock(&vm->mem_lock);
	uint16_t id = vm->mem ? guest_memory_id(vm->mem) : 0;
	pthread_mutex_unlock(&vm->mem_lock);
	return id;
}

uint64_t vm_present_pages(struct vm *vm)
{
	pthread_mutex_lock(&vm->mem_lock);
	uint64_t n = vm->mem ? guest_memory_present_count(vm->mem) : 0;
	pthread_mutex_unlock(&vm->mem_lock);
	return n;
}

/* Whether mm (or the OOM killer) failed the VM. Its vCPU may then exit for
 * another reason first, an exception on the throwaway memory an abandoned
 * VM runs on (mm/guest_memory.h) say: the failure is the reason it ends. */
static bool failed(struct vm *vm)
{
	pthread_mutex_lock(&vm->stop_lock);
	bool f = vm->stop_status != VM_STATUS_CREATED && vm->stop_status != VM_STATUS_STOPPED;
	pthread_mutex_unlock(&vm->stop_lock);
	return f;
}

static void *vcpu_thread(void *arg)
{
	struct vm *vm = arg;
	char name[16];
	snprintf(name, sizeof(name), "vcpu-%.10s", vm->name);
	pthread_setname_np(pthread_self(), name);
	memcg_running(vm->mem ? guest_memory_memcg(vm->mem) : NULL, true);
	for (;;) {
		if (vcpu_enter(&vm->vcpu) || failed(vm)) {
			vm_end_stopped(vm);
			break;
		}
		if (vm_handle_exit(vm))
			break;
	}
	console_flush(&vm->console);
	vm->result.wall_seconds = seconds_since(&vm->started);
	vcpu_finish(&vm->vcpu);
	memcg_running(vm->mem ? guest_memory_memcg(vm->mem) : NULL, false);
	release_memory(vm);
	uint64_t one = 1;
	if (vm->done_fd >= 0 && write(vm->done_fd, &one, sizeof(one)) != sizeof(one))
		perror("vmm: eventfd");
	return NULL;
}

int vm_start(struct vm *vm)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, VCPU_THREAD_STACK);
	clock_gettime(CLOCK_MONOTONIC, &vm->started);
	vm->result.status = VM_STATUS_RUNNING;
	/* thread and thread_started are read under the vCPU's lock by pausers
	 * (vcpu_pause): written under it too, the thread waiting for them. */
	pthread_mutex_lock(&vm->vcpu.lock);
	pthread_t thread;
	int rc = pthread_create(&thread, &attr, vcpu_thread, vm);
	if (!rc) {
		vm->vcpu.thread = thread;
		vm->vcpu.thread_started = true;
	}
	pthread_mutex_unlock(&vm->vcpu.lock);
	pthread_attr_destroy(&attr);
	if (rc) {
		vm->result.status = VM_STATUS_ERROR;
		snprintf(vm->result.message, sizeof(vm->result.message),
			 "cannot start the vCPU thread: %s", strerror(rc));
		return -1;
	}
	return 0;
}

void vm_join(struct vm *vm)
{
	if (vm->vcpu.thread_started) {
		pthread_join(vm->vcpu.thread, NULL);
		vm->vcpu.thread_started = false;
	}
}

void vm_stop(struct vm *vm)
{
	vcpu_stop(&vm->vcpu);
}

void vm_end_stopped(struct vm *vm)
{
	/* Ended already (a hypercall's sleep cut short by the stop, then the
	 * vCPU thread seeing it): told once. Only a guest's own exit gives way
	 * to the failure (failed()). */
	if (vm->result.status != VM_STATUS_RUNNING && vm->result.status != VM_STATUS_EXITED)
		return;
	pthread_mutex_lock(&vm->stop_lock);
	enum vm_status status = vm->stop_status;
	char message[sizeof(vm->stop_message)];
	memcpy(message, vm->stop_message, sizeof(message));
	pthread_mutex_unlock(&vm->stop_lock);
	if (status != VM_STATUS_CREATED)
		vm_fail(vm, status, "%s", message);
	else
		vm_fail(vm, VM_STATUS_STOPPED, "stopped");
}

void vm_stop_with_error(struct vm *vm, enum vm_status status, const char *message)
{
	pthread_mutex_lock(&vm->stop_lock);
	if (vm->stop_status == VM_STATUS_CREATED) {
		vm->stop_status = status;
		snprintf(vm->stop_message, sizeof(vm->stop_message), "%s", message);
	}
	pthread_mutex_unlock(&vm->stop_lock);
	vcpu_stop(&vm->vcpu);
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	vm_join(vm);
	release_memory(vm);
	vcpu_destroy(&vm->vcpu);
	if (vm->accel_vm)
		vm->accel->ops->vm_destroy(vm->accel_vm);
	pthread_mutex_destroy(&vm->stop_lock);
	pthread_mutex_destroy(&vm->mem_lock);
	free(vm);
}

void vm_fail(struct vm *vm, enum vm_status status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(vm->result.message, sizeof(vm->result.message), fmt, ap);
	va_end(ap);
	vm->result.status = status;
	if (status == VM_STATUS_STOPPED)
		return;
	console_flush(&vm->console);
	console_lock();
	fprintf(stderr, "%s: %s\n", vm->name, vm->result.message);
	fflush(stderr);
	console_unlock();
}

const char *vm_status_name(enum vm_status status)
{
	switch (status) {
	case VM_STATUS_CREATED:
		return "created";
	case VM_STATUS_RUNNING:
		return "running";
	case VM_STATUS_EXITED:
		return "exited";
	case VM_STATUS_EXCEPTION:
		return "exception";
	case VM_STATUS_ERROR:
		return "error";
	case VM_STATUS_STOPPED:
		return "stopped";
	}
	return "unknown";
}

bool vm_succeeded(const struct vm *vm)
{
	return vm->result.status == VM_STATUS_EXITED && vm->result.exit_code == 0;
}
