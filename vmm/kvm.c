/*
 * kvm.c - the KVM backend of the CPU seam (accel.h).
 *
 * /dev/kvm (or $VMM_KVM_DEVICE, for tests) is opened once per process. Each
 * VM is a KVM VM with its RAM in memory slot 0 (optionally dirty-logged) and
 * one vCPU whose kvm_run page is mapped. vcpu_run() is one KVM_RUN; its
 * exits are translated into neutral ones, port I/O is handed to the io
 * callback there and then.
 *
 * Kicking: the requester sets kvm_run.immediate_exit (a KVM_RUN about to
 * start returns at once) and then sends SIGUSR1 to the vCPU thread (a
 * KVM_RUN in progress, also one blocked in a userfaultfd fault, returns
 * EINTR). The order matters. The no-op handler is installed without
 * SA_RESTART when the backend opens.
 *
 * The running kernel may be newer than Debian's headers (6.1): constants it
 * uses that the headers lack are defined here.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "accel.h"

#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT 39
#endif

#define KICK_SIGNAL SIGUSR1

struct kvm_system {
	int fd;
	int vcpu_mmap_size;
};

struct accel_vm {
	struct kvm_system *kvm;
	int fd;
};

struct accel_vcpu {
	int fd;
	struct kvm_run *run;
	int run_size;
	vcpu_io_fn io;
	void *io_ctx;
	pthread_t thread; /* the thread in vcpu_run, once armed */
	bool armed;
};

static void kick_handler(int sig)
{
	(void)sig;
}

static void kvm_close(struct accel *accel)
{
	struct kvm_system *kvm = accel->priv;
	if (kvm && kvm->fd >= 0)
		close(kvm->fd);
	free(kvm);
}

static int kvm_vm_create(struct accel *accel, struct accel_vm **out, char *err, size_t errlen)
{
	struct accel_vm *vm = calloc(1, sizeof(*vm));
	if (!vm) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	vm->kvm = accel->priv;
	vm->fd = ioctl(vm->kvm->fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0) {
		snprintf(err, errlen, "cannot create a KVM VM: %s", strerror(errno));
		free(vm);
		return -1;
	}
	*out = vm;
	return 0;
}

static void kvm_vm_destroy(struct accel_vm *vm)
{
	if (vm->fd >= 0)
		close(vm->fd);
	free(vm);
}

static int kvm_vm_set_ram(struct accel_vm *vm, void *host, uint64_t bytes, bool dirty_log,
			  char *err, size_t errlen)
{
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = bytes,
		.userspace_addr = (uint64_t)(uintptr_t)host,
		.flags = dirty_log ? KVM_MEM_LOG_DIRTY_PAGES : 0,
	};
	if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		snprintf(err, errlen, "cannot add the guest memory slot: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int kvm_vm_dirty_log(struct accel_vm *vm, uint64_t *bitmap)
{
	struct kvm_dirty_log log = {.slot = 0, .dirty_bitmap = bitmap};
	return ioctl(vm->fd, KVM_GET_DIRTY_LOG, &log) < 0 ? -1 : 0;
}

static int kvm_vcpu_create(struct accel_vm *vm, struct accel_vcpu **out, vcpu_io_fn io,
			   void *io_ctx, char *err, size_t errlen)
{
	struct accel_vcpu *vcpu = calloc(1, sizeof(*vcpu));
	if (!vcpu) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	vcpu->io = io;
	vcpu->io_ctx = io_ctx;
	vcpu->fd = ioctl(vm->fd, KVM_CREATE_VCPU, 0);
	if (vcpu->fd < 0) {
		snprintf(err, errlen, "cannot create the vCPU: %s", strerror(errno));
		free(vcpu);
		return -1;
	}
	vcpu->run_size = vm->kvm->vcpu_mmap_size;
	vcpu->run =
		mmap(NULL, (size_t)vcpu->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		snprintf(err, errlen, "cannot map the vCPU's kvm_run: %s", strerror(errno));
		close(vcpu->fd);
		free(vcpu);
		return -1;
	}
	*out = vcpu;
	return 0;
}

static void kvm_vcpu_destroy(struct accel_vcpu *vcpu)
{
	munmap(vcpu->run, (size_t)vcpu->run_size);
	close(vcpu->fd);
	free(vcpu);
}

static struct kvm_segment to_kvm_segment(const struct vcpu_segment *s)
{
	return (struct kvm_segment){
		.base = s->base,
		.limit = s->limit,
		.selector = s->selector,
		.type = s->type,
		.present = s->present,
		.dpl = s->dpl,
		.db = s->db,
		.s = s->s,
		.l = s->l,
		.g = s->g,
		.unusable = s->unusable,
	};
}

static void to_kvm_regs(const struct vcpu_regs *r, struct kvm_regs *k)
{
	*k = (struct kvm_regs){
		.rax = r->rax,
		.rbx = r->rbx,
		.rcx = r->rcx,
		.rdx = r->rdx,
		.rsi = r->rsi,
		.rdi = r->rdi,
		.rsp = r->rsp,
		.rbp = r->rbp,
		.r8 = r->r8,
		.r9 = r->r9,
		.r10 = r->r10,
		.r11 = r->r11,
		.r12 = r->r12,
		.r13 = r->r13,
		.r14 = r->r14,
		.r15 = r->r15,
		.rip = r->rip,
		.rflags = r->rflags,
	};
}

static int kvm_vcpu_set_state(struct accel_vcpu *vcpu, const struct vcpu_state *st)
{
	struct kvm_sregs sregs;
	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return -1;
	sregs.cs = to_kvm_segment(&st->cs);
	sregs.ds = to_kvm_segment(&st->ds);
	sregs.es = to_kvm_segment(&st->es);
	sregs.fs = to_kvm_segment(&st->fs);
	sregs.gs = to_kvm_segment(&st->gs);
	sregs.ss = to_kvm_segment(&st->ss);
	sregs.tr = to_kvm_segment(&st->tr);
	sregs.ldt = to_kvm_segment(&st->ldt);
	sregs.gdt.base = st->gdt.base;
	sregs.gdt.limit = st->gdt.limit;
	sregs.idt.base = st->idt.base;
	sregs.idt.limit = st->idt.limit;
	sregs.cr0 = st->cr0;
	sregs.cr3 = st->cr3;
	sregs.cr4 = st->cr4;
	sregs.efer = st->efer;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
		return -1;
	struct kvm_regs regs;
	to_kvm_regs(&st->regs, &regs);
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		return -1;
	struct kvm_fpu fpu = {0};
	fpu.fcw = st->fcw;
	fpu.mxcsr = st->mxcsr;
	return ioctl(vcpu->fd, KVM_SET_FPU, &fpu);
}

static int kvm_vcpu_get_regs(struct accel_vcpu *vcpu, struct vcpu_regs *r)
{
	struct kvm_regs k;
	if (ioctl(vcpu->fd, KVM_GET_REGS, &k) < 0)
		return -1;
	*r = (struct vcpu_regs){
		.rax = k.rax,
		.rbx = k.rbx,
		.rcx = k.rcx,
		.rdx = k.rdx,
		.rsi = k.rsi,
		.rdi = k.rdi,
		.rsp = k.rsp,
		.rbp = k.rbp,
		.r8 = k.r8,
		.r9 = k.r9,
		.r10 = k.r10,
		.r11 = k.r11,
		.r12 = k.r12,
		.r13 = k.r13,
		.r14 = k.r14,
		.r15 = k.r15,
		.rip = k.rip,
		.rflags = k.rflags,
	};
	return 0;
}

static int kvm_vcpu_set_regs(struct accel_vcpu *vcpu, const struct vcpu_regs *r)
{
	struct kvm_regs k;
	to_kvm_regs(r, &k);
	return ioctl(vcpu->fd, KVM_SET_REGS, &k) < 0 ? -1 : 0;
}

static int kvm_vcpu_get_cr2(struct accel_vcpu *vcpu, uint64_t *cr2)
{
	struct kvm_sregs sregs;
	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return -1;
	*cr2 = sregs.cr2;
	return 0;
}

static uint64_t kvm_vcpu_tsc_khz(struct accel_vcpu *vcpu)
{
	int khz = ioctl(vcpu->fd, KVM_GET_TSC_KHZ, 0);
	return khz > 0 ? (uint64_t)khz : 0;
}

static void kvm_vcpu_arm(struct accel_vcpu *vcpu)
{
	vcpu->run->immediate_exit = 0;
	vcpu->thread = pthread_self();
	vcpu->armed = true;
}

static void kvm_vcpu_kick(struct accel_vcpu *vcpu)
{
	vcpu->run->immediate_exit = 1;
	if (vcpu->armed)
		pthread_kill(vcpu->thread, KICK_SIGNAL);
}

static int exit_error(struct vcpu_exit *exit, const char *fmt, unsigned long long a)
{
	exit->reason = VCPU_EXIT_ERROR;
	snprintf(exit->message, sizeof(exit->message), fmt, a);
	return 0;
}

static int kvm_vcpu_run(struct accel_vcpu *vcpu, struct vcpu_exit *exit)
{
	struct kvm_run *run = vcpu->run;
	memset(exit, 0, sizeof(*exit));
	if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0; /* kicked */
		if (errno == EFAULT) {
			exit->reason = VCPU_EXIT_ERROR;
			snprintf(exit->message, sizeof(exit->message),
				 "KVM_RUN failed: a guest page has no usable host mapping "
				 "(EFAULT)");
			return 0;
		}
		exit->reason = VCPU_EXIT_ERROR;
		snprintf(exit->message, sizeof(exit->message), "KVM_RUN failed: %s",
			 strerror(errno));
		return 0;
	}
	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		uint8_t *data = (uint8_t *)run + run->io.data_offset;
		for (uint32_t i = 0; i < run->io.count; i++)
			if (vcpu->io(vcpu->io_ctx, run->io.port, data + (size_t)i * run->io.size,
				     run->io.size, run->io.direction == KVM_EXIT_IO_OUT)) {
				exit->reason = VCPU_EXIT_DONE;
				return 0;
			}
		return 0;
	}
	case KVM_EXIT_INTR:
		return 0;
	case KVM_EXIT_HLT:
		exit->reason = VCPU_EXIT_HALT;
		return 0;
	case KVM_EXIT_SHUTDOWN:
		exit->reason = VCPU_EXIT_SHUTDOWN;
		return 0;
	case KVM_EXIT_MMIO:
		exit->reason = VCPU_EXIT_BAD_ACCESS;
		exit->access.gpa = run->mmio.phys_addr;
		return 0;
	case KVM_EXIT_FAIL_ENTRY:
		return exit_error(
			exit, "KVM could not enter the guest (reason 0x%llx)",
			(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
	case KVM_EXIT_INTERNAL_ERROR:
		return exit_error(exit, "KVM internal error (suberror %llu)",
				  run->internal.suberror);
	case KVM_EXIT_MEMORY_FAULT:
		return exit_error(exit, "KVM memory fault exit (reason %llu)",
				  (unsigned long long)run->exit_reason);
	default:
		return exit_error(exit, "unexpected KVM exit %llu",
				  (unsigned long long)run->exit_reason);
	}
}

static const struct accel_ops kvm_ops = {
	.name = "kvm",
	.kick_ends_fault_wait = true,
	.close = kvm_close,
	.vm_create = kvm_vm_create,
	.vm_destroy = kvm_vm_destroy,
	.vm_set_ram = kvm_vm_set_ram,
	.vm_dirty_log = kvm_vm_dirty_log,
	.vcpu_create = kvm_vcpu_create,
	.vcpu_destroy = kvm_vcpu_destroy,
	.vcpu_set_state = kvm_vcpu_set_state,
	.vcpu_get_regs = kvm_vcpu_get_regs,
	.vcpu_set_regs = kvm_vcpu_set_regs,
	.vcpu_get_cr2 = kvm_vcpu_get_cr2,
	.vcpu_tsc_khz = kvm_vcpu_tsc_khz,
	.vcpu_arm = kvm_vcpu_arm,
	.vcpu_run = kvm_vcpu_run,
	.vcpu_kick = kvm_vcpu_kick,
};

int kvm_accel_open(struct accel *accel, char *err, size_t errlen)
{
	/* VMM_KVM_DEVICE lets tests point at a missing or wrong device. */
	const char *path = getenv("VMM_KVM_DEVICE") ? getenv("VMM_KVM_DEVICE") : "/dev/kvm";
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			snprintf(err, errlen,
				 "%s does not exist: KVM is not available on this host", path);
		else if (errno == EACCES || errno == EPERM)
			snprintf(err, errlen,
				 "no permission to open %s: run as root or join the kvm group",
				 path);
		else
			snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	int api = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		snprintf(err, errlen, "%s speaks KVM API %d, expected %d", path, api,
			 KVM_API_VERSION);
		close(fd);
		return -1;
	}
	int mmap_size = ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size <= 0) {
		snprintf(err, errlen, "%s: KVM_GET_VCPU_MMAP_SIZE failed: %s", path,
			 strerror(errno));
		close(fd);
		return -1;
	}
	/* A device that opens but cannot make a VM is not usable either. */
	int probe = ioctl(fd, KVM_CREATE_VM, 0);
	if (probe < 0) {
		snprintf(err, errlen, "%s cannot create a VM: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(probe);
	struct kvm_system *kvm = calloc(1, sizeof(*kvm));
	if (!kvm) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		return -1;
	}
	kvm->fd = fd;
	kvm->vcpu_mmap_size = mmap_size;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: KVM_RUN must return EINTR */
	sigaction(KICK_SIGNAL, &sa, NULL);
	accel->ops = &kvm_ops;
	accel->priv = kvm;
	return 0;
}
