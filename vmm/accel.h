/*
 * accel.h - the CPU-backend seam: one interface, two accelerators.
 *
 * Guests run on KVM where /dev/kvm is usable and on unicorn (QEMU's TCG as a
 * library) where it is not, as QEMU's `-accel kvm:tcg` chooses. Only the two
 * backends (vmm/kvm.c, vmm/tcg.c) know KVM or unicorn; everything else sees
 * the neutral vCPU below: x86 state in, neutral exits out.
 *
 *   accel_open()        picks the backend (auto: KVM, else TCG with a note)
 *   vm_create()         one VM; vm_set_ram() gives it guest RAM: guest
 *                       physical 0..bytes at one host range (mm/ owns it)
 *   vcpu_create()       its vCPU; vcpu_set_state() loads the initial state
 *   vcpu_run()          runs the guest until a neutral exit (below)
 *   vcpu_kick()         from another thread: make vcpu_run() return soon
 *
 * Port I/O goes to the `io` callback given at vcpu_create(), on the vCPU
 * thread, with the guest stopped at the instruction, like kvmtool's
 * kvm__emulate_io(port, data, size, direction, count). It returns 0 to go on
 * and 1 when the VM has ended (the exit port, a fatal device error); the run
 * then returns VCPU_EXIT_DONE. KVM calls it after KVM_RUN returns an I/O
 * exit; TCG calls it from inside the emulator's instruction hook and keeps
 * running, because leaving the emulator flushes its translated code.
 *
 * Kicks: vcpu_kick() may be lost if it lands while the vCPU enters or
 * leaves the guest (unicorn drops a stop request then); callers that wait
 * for the vCPU to leave must repeat it (vmm/vcpu.c does, every millisecond).
 *
 * Guest memory faults: with guest RAM as a host range (vm_set_ram), the
 * vCPU's loads and stores reach that range, so a page mm has not placed yet
 * blocks the vCPU thread in a userfaultfd fault (both backends).
 * `kick_ends_fault_wait` says whether a kick ends such a wait: KVM_RUN
 * returns EINTR on a signal; a TCG vCPU blocked in a host page fault cannot
 * be interrupted and goes on only when the fault is resolved.
 *
 * Guest RAM as a page table (vm_set_page_table, TCG only): the CPU's linear
 * addresses are guest-physical addresses, translated by 4-level tables mm
 * keeps in `phys` (mm's owned realiser, mm/realiser.h); CR3 holds `root`
 * whatever the vCPU state says. A #PF those tables raise goes to the
 * `fault` callback on the vCPU thread with the guest stopped at the
 * faulting instruction, which runs again if the callback says so. mm asks
 * for a TLB flush (vcpu_flush_tlb) from any thread while the vCPU is
 * paused or from its own thread; it takes effect before the guest runs
 * another instruction.
 */
#ifndef VMM_ACCEL_H
#define VMM_ACCEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum accel_choice { ACCEL_AUTO = 0, ACCEL_KVM, ACCEL_TCG };

/* General registers, instruction pointer and flags. */
struct vcpu_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags;
};

/* A segment register as the CPU caches it (Intel SDM vol. 3, 3.4.5). */
struct vcpu_segment {
	uint64_t base;
	uint32_t limit;
	uint16_t selector;
	uint8_t type, present, dpl, db, s, l, g, unusable;
};

/* The whole initial state of an x86-64 vCPU (vmm/x86_setup.c fills it). */
struct vcpu_state {
	struct vcpu_regs regs;
	struct vcpu_segment cs, ds, es, fs, gs, ss, tr, ldt;
	struct {
		uint64_t base;
		uint16_t limit;
	} gdt, idt;
	uint64_t cr0, cr3, cr4, efer;
	uint16_t fcw;
	uint32_t mxcsr;
	/* A CPU whose privilege level cannot be set directly (TCG) starts at
	 * CPL 0 at `trampoline_rip` with RSP = `trampoline_rsp`: an iretq
	 * whose frame on that stack leads to regs.rip at CPL 3. */
	uint64_t trampoline_rip, trampoline_rsp;
	/* An address the guest never executes but its page tables map
	 * executable (TCG stops there; see vmm/tcg.c). */
	uint64_t never_executed_rip;
};

enum vcpu_exit_reason {
	VCPU_EXIT_NONE = 0,   /* kicked, or interrupted: nothing happened */
	VCPU_EXIT_DONE,	      /* the io callback ended the VM */
	VCPU_EXIT_EXCEPTION,  /* a guest exception the VMM reports */
	VCPU_EXIT_HALT,	      /* hlt in ring 0 */
	VCPU_EXIT_SHUTDOWN,   /* triple fault */
	VCPU_EXIT_BAD_ACCESS, /* an access outside guest RAM */
	VCPU_EXIT_ERROR,      /* the accelerator failed: see message */
};

struct vcpu_exit {
	enum vcpu_exit_reason reason;
	union {
		struct {
			unsigned vector;
			uint64_t rip, cr2, error_code;
			bool has_error_code;
		} exception;
		struct {
			uint64_t gpa;
		} access;
	};
	char message[160];
};

/* Port I/O, as a device sees it: `size` bytes (1, 2, 4) at `data`. Returns
 * 0 to go on, 1 if the VM has ended. */
typedef int (*vcpu_io_fn)(void *ctx, uint16_t port, void *data, unsigned size, bool out);

/* What the page-table fault callback made of a #PF at `address`. */
enum vcpu_fault_result {
	VCPU_FAULT_RETRY = 0, /* resolved: run the instruction again */
	VCPU_FAULT_GUEST,     /* the guest's own #PF: an exception exit */
	VCPU_FAULT_OUTSIDE,   /* outside guest RAM: a bad-access exit */
	VCPU_FAULT_ENDED,     /* the VM is being stopped: a VCPU_EXIT_NONE */
};
typedef enum vcpu_fault_result (*vcpu_fault_fn)(void *ctx, uint64_t address);

struct accel_page_table {
	void *phys;	     /* emulator-physical 0.. */
	uint64_t phys_bytes; /* a multiple of 4 KiB */
	uint64_t root;	     /* CR3 */
	vcpu_fault_fn fault;
	void *fault_ctx;
};

struct accel;
struct accel_vm;
struct accel_vcpu;

struct accel_ops {
	const char *name; /* "kvm", "tcg" */
	bool kick_ends_fault_wait;
	void (*close)(struct accel *accel);
	int (*vm_create)(struct accel *accel, struct accel_vm **out, char *err, size_t errlen);
	void (*vm_destroy)(struct accel_vm *vm);
	/* dirty_log: keep a log of written pages for vm_dirty_log(). */
	int (*vm_set_ram)(struct accel_vm *vm, void *host, uint64_t bytes, bool dirty_log,
			  char *err, size_t errlen);
	/* Guest RAM as a page table (above); NULL where the accelerator
	 * cannot walk mm's tables (KVM). Instead of vm_set_ram. */
	int (*vm_set_page_table)(struct accel_vm *vm, const struct accel_page_table *pt, char *err,
				 size_t errlen);
	/* Pages written since the previous call, bit g of word g/64; NULL
	 * where the accelerator has no dirty log. */
	int (*vm_dirty_log)(struct accel_vm *vm, uint64_t *bitmap);
	int (*vcpu_create)(struct accel_vm *vm, struct accel_vcpu **out, vcpu_io_fn io,
			   void *io_ctx, char *err, size_t errlen);
	void (*vcpu_destroy)(struct accel_vcpu *vcpu);
	int (*vcpu_set_state)(struct accel_vcpu *vcpu, const struct vcpu_state *state);
	int (*vcpu_get_regs)(struct accel_vcpu *vcpu, struct vcpu_regs *regs);
	int (*vcpu_set_regs)(struct accel_vcpu *vcpu, const struct vcpu_regs *regs);
	int (*vcpu_get_cr2)(struct accel_vcpu *vcpu, uint64_t *cr2);
	/* The guest TSC rate, 0 if unknown. */
	uint64_t (*vcpu_tsc_khz)(struct accel_vcpu *vcpu);
	/* Called on the vCPU thread before each run, under the vCPU lock:
	 * forget earlier kicks. */
	void (*vcpu_arm)(struct accel_vcpu *vcpu);
	/* Runs until an exit; returns 0 and fills `exit`. */
	int (*vcpu_run)(struct accel_vcpu *vcpu, struct vcpu_exit *exit);
	void (*vcpu_kick)(struct accel_vcpu *vcpu);
	/* Page-table RAM: flush the TLB before the next guest instruction. */
	void (*vcpu_flush_tlb)(struct accel_vcpu *vcpu);
};

struct accel {
	const struct accel_ops *ops;
	void *priv;
	/* Why KVM was not used, when `auto` fell back to TCG ("" otherwise). */
	char kvm_unusable[256];
};

/* Opens the accelerator. auto: KVM if /dev/kvm can be used, else TCG, and
 * the reason goes to accel->kvm_unusable. kvm: a one-line error when KVM is
 * unusable. Returns 0 or -1 with err set. */
int accel_open(struct accel *accel, enum accel_choice choice, char *err, size_t errlen);
void accel_close(struct accel *accel);
const char *accel_name(const struct accel *accel);
/* "auto", "kvm", "tcg"; and back (-1 if unknown). */
const char *accel_choice_name(enum accel_choice choice);
int accel_choice_parse(const char *text, enum accel_choice *out);

/* The backends' entry points (vmm/kvm.c, vmm/tcg.c): open or write why not. */
int kvm_accel_open(struct accel *accel, char *err, size_t errlen);
int tcg_accel_open(struct accel *accel, char *err, size_t errlen);

#endif
