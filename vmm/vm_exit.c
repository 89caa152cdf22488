/*
 * vm_exit.c - handling a vCPU's exits: the port devices of guest_abi.h
 * (console, exit, hypercalls, exception stubs) and the neutral exits of the
 * accelerator (accel.h) that end a VM.
 *
 * A guest exception is reported the same way on both accelerators: on KVM
 * the guest's IDT stub writes the vector to GUEST_PORT_EXCEPTION and the
 * frame on the ring-0 stack gives RIP and the error code; TCG sees the
 * exception in the emulator and exits with vector, RIP, CR2 and error code.
 *
 * Guest buffers named by hypercalls are read with guest_memory_read(), which
 * checks that they lie inside guest RAM; a bad pointer ends only that VM.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mm/guest_memory.h"
#include "vm.h"
#include "x86_setup.h"

#define HYPERCALL_WRITE_MAX 4096
#define SLEEP_MAX_NS (3600ull * 1000000000ull)

static uint64_t monotonic_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void record_value(struct vm *vm, const char *key, uint64_t value)
{
	struct vm_result *r = &vm->result;
	for (unsigned i = 0; i < r->nvalues; i++) {
		if (strcmp(r->values[i].key, key) == 0) {
			r->values[i].value = value;
			return;
		}
	}
	if (r->nvalues < GUEST_REPORT_MAX_KEYS) {
		snprintf(r->values[r->nvalues].key, GUEST_REPORT_KEY_MAX, "%s", key);
		r->values[r->nvalues++].value = value;
	}
}

/* Returns 1 if the VM ended. */
static int handle_hypercall(struct vm *vm, uint32_t nr)
{
	struct vcpu_regs regs;
	if (vcpu_get_regs(&vm->vcpu, &regs)) {
		vm_fail(vm, VM_STATUS_ERROR, "cannot read vCPU registers: %s", strerror(errno));
		return 1;
	}
	uint64_t ret = 0;
	switch (nr) {
	case GUEST_HC_WRITE: {
		char buf[HYPERCALL_WRITE_MAX];
		uint64_t len = regs.rsi < sizeof(buf) ? regs.rsi : sizeof(buf);
		if (guest_memory_read(vm->mem, regs.rdi, buf, len)) {
			vm_fail(vm, VM_STATUS_ERROR,
				"hypercall write: buffer 0x%llx+%llu is outside guest memory",
				(unsigned long long)regs.rdi, (unsigned long long)regs.rsi);
			return 1;
		}
		console_feed(&vm->console, buf, len);
		ret = len;
		break;
	}
	case GUEST_HC_SLEEP_NS: {
		/* A sleeping guest is idle (memory.pressure's "full"). */
		struct memcg *memcg = vm->mem ? guest_memory_memcg(vm->mem) : NULL;
		memcg_running(memcg, false);
		int stop = vcpu_sleep(&vm->vcpu, regs.rdi < SLEEP_MAX_NS ? regs.rdi : SLEEP_MAX_NS);
		memcg_running(memcg, true);
		if (stop) {
			vm_end_stopped(vm);
			return 1;
		}
		break;
	}
	case GUEST_HC_CLOCK_NS:
		ret = monotonic_ns();
		break;
	case GUEST_HC_REPORT: {
		char key[GUEST_REPORT_KEY_MAX] = {0};
		uint64_t avail = guest_memory_size(vm->mem) > regs.rdi
					 ? guest_memory_size(vm->mem) - regs.rdi
					 : 0;
		size_t len = avail < sizeof(key) - 1 ? avail : sizeof(key) - 1;
		if (len == 0 || guest_memory_read(vm->mem, regs.rdi, key, len)) {
			vm_fail(vm, VM_STATUS_ERROR,
				"hypercall report: key pointer 0x%llx is "
				"outside guest memory",
				(unsigned long long)regs.rdi);
			return 1;
		}
		key[strnlen(key, len)] = 0;
		record_value(vm, key, regs.rsi);
		break;
	}
	case GUEST_HC_DECLARE_BUFFER:
		if (regs.rdi > guest_memory_size(vm->mem) ||
		    regs.rsi > guest_memory_size(vm->mem) - regs.rdi) {
			vm_fail(vm, VM_STATUS_ERROR,
				"hypercall declare-buffer: 0x%llx+%llu is outside guest memory",
				(unsigned long long)regs.rdi, (unsigned long long)regs.rsi);
			return 1;
		}
		vm->result.buffer_gpa = regs.rdi;
		vm->result.buffer_bytes = regs.rsi;
		break;
	default:
		vm_fail(vm, VM_STATUS_ERROR, "unknown hypercall %u at rip=0x%llx", nr,
			(unsigned long long)regs.rip);
		return 1;
	}
	regs.rax = ret;
	if (vcpu_set_regs(&vm->vcpu, &regs)) {
		vm_fail(vm, VM_STATUS_ERROR, "cannot write vCPU registers: %s", strerror(errno));
		return 1;
	}
	return 0;
}

static void report_exception(struct vm *vm, unsigned vector, uint64_t rip, uint64_t cr2,
			     uint64_t error_code, bool has_error_code)
{
	if (vector == 14)
		vm_fail(vm, VM_STATUS_EXCEPTION,
			"guest exception %s at rip=0x%llx cr2=0x%llx error=0x%llx",
			x86_vector_name(vector), (unsigned long long)rip, (unsigned long long)cr2,
			(unsigned long long)error_code);
	else if (has_error_code)
		vm_fail(vm, VM_STATUS_EXCEPTION, "guest exception %s at rip=0x%llx error=0x%llx",
			x86_vector_name(vector), (unsigned long long)rip,
			(unsigned long long)error_code);
	else
		vm_fail(vm, VM_STATUS_EXCEPTION, "guest exception %s at rip=0x%llx",
			x86_vector_name(vector), (unsigned long long)rip);
}

/* The ring-0 stub reported `vector` (KVM); the CPU pushed the exception
 * frame on the ring-0 stack: [error code], rip, cs, rflags, rsp, ss. */
static void report_stub_exception(struct vm *vm, unsigned vector)
{
	struct vcpu_regs regs;
	uint64_t frame[6] = {0}, cr2 = 0;
	if (vcpu_get_regs(&vm->vcpu, &regs) || vm->vcpu.ops->vcpu_get_cr2(vm->vcpu.accel, &cr2)) {
		vm_fail(vm, VM_STATUS_EXCEPTION, "guest exception %s (registers unreadable)",
			x86_vector_name(vector));
		return;
	}
	int has_error = x86_vector_has_error_code(vector);
	if (guest_memory_read(vm->mem, regs.rsp, frame, sizeof(frame))) {
		vm_fail(vm, VM_STATUS_EXCEPTION, "guest exception %s (bad ring-0 stack 0x%llx)",
			x86_vector_name(vector), (unsigned long long)regs.rsp);
		return;
	}
	report_exception(vm, vector, frame[has_error ? 1 : 0], cr2, has_error ? frame[0] : 0,
			 has_error);
}

static int port_io(struct vm *vm, uint16_t port, void *data, unsigned size, bool out)
{
	uint32_t value = 0;
	if (!out) {
		vm_fail(vm, VM_STATUS_ERROR, "guest read from I/O port 0x%x, which has no device",
			port);
		return 1;
	}
	memcpy(&value, data, size < 4 ? size : 4);
	switch (port) {
	case GUEST_PORT_CONSOLE:
		console_feed(&vm->console, (const char *)data, size);
		return 0;
	case GUEST_PORT_EXIT:
		vm->result.status = VM_STATUS_EXITED;
		vm->result.exit_code = (int)value;
		return 1;
	case GUEST_PORT_HYPERCALL:
		return handle_hypercall(vm, value);
	case GUEST_PORT_EXCEPTION:
		report_stub_exception(vm, value);
		return 1;
	default:
		vm_fail(vm, VM_STATUS_ERROR, "guest wrote to I/O port 0x%x, which has no device",
			port);
		return 1;
	}
}

/* The handlers may wait for mm's locks (a swapped-out buffer): the vCPU
 * counts as parked meanwhile (vcpu.h). */
int vm_port_io(void *ctx, uint16_t port, void *data, unsigned size, bool out)
{
	struct vm *vm = ctx;
	vcpu_park_begin(&vm->vcpu);
	int ended = port_io(vm, port, data, size, out);
	vcpu_park_end(&vm->vcpu);
	return ended;
}

int vm_handle_exit(struct vm *vm)
{
	const struct vcpu_exit *exit = &vm->vcpu.exit;
	switch (exit->reason) {
	case VCPU_EXIT_NONE:
		return 0;
	case VCPU_EXIT_DONE:
		return 1;
	case VCPU_EXIT_EXCEPTION:
		report_exception(vm, exit->exception.vector, exit->exception.rip,
				 exit->exception.cr2, exit->exception.error_code,
				 exit->exception.has_error_code);
		return 1;
	case VCPU_EXIT_HALT:
		vm_fail(vm, VM_STATUS_ERROR, "guest halted without writing an exit code");
		return 1;
	case VCPU_EXIT_SHUTDOWN:
		vm_fail(vm, VM_STATUS_EXCEPTION, "guest triple fault (shutdown)");
		return 1;
	case VCPU_EXIT_BAD_ACCESS:
		vm_fail(vm, VM_STATUS_ERROR, "guest accessed gpa 0x%llx, outside its RAM",
			(unsigned long long)exit->access.gpa);
		return 1;
	case VCPU_EXIT_ERROR:
		vm_fail(vm, VM_STATUS_ERROR, "%s", exit->message);
		return 1;
	}
	vm_fail(vm, VM_STATUS_ERROR, "unexpected vCPU exit %d", (int)exit->reason);
	return 1;
}
