/*
 * tcg.c - the TCG backend of the CPU seam (accel.h): guests on unicorn,
 * QEMU's TCG as a C library, where /dev/kvm is not usable.
 *
 * One unicorn engine per vCPU (x86-64). Guest RAM is the VM's host range
 * itself (uc_mem_map_ptr at guest physical 0), so the emulated CPU's loads
 * and stores are host accesses to the same uffd-watched range KVM uses: a
 * page mm has not placed blocks the vCPU thread in an ordinary userfaultfd
 * fault, served by the same fault thread (mm/). The softmmu TLB caches host
 * virtual addresses only, so mm replacing the frame behind a guest page is
 * seen at the next access without a flush. The guest's own 4-level page
 * tables are walked by the emulated MMU (unicorn >= 2.1 honours the frame
 * address in an entry; Debian 12's 2.0.1 does not).
 *
 * Entering CPL 3: unicorn cannot load a CPL-3 code segment directly, so the
 * vCPU's first run starts at CPL 0 on the boot area's trampoline (vcpu_state:
 * an iretq whose frame on the ring-0 stack leads to the ELF entry at CPL 3)
 * and goes on into the guest. The privilege level survives every later
 * uc_emu_start().
 *
 * Where a run stops. unicorn's uc_emu_stop() takes effect at the next block
 * start or after the next guest load or store, and in the second case RIP
 * is left at the block start, so that restarting there executes some
 * instructions twice (measured). It is therefore only called from a
 * UC_HOOK_BLOCK hook (exact: RIP is the block start), or when the VM is
 * ending anyway (a device ended it, an exception). Port I/O is served inside
 * the emulator's IN/OUT hooks and the emulator keeps running. A kick only
 * sets a flag, which the block hook turns into a stop (2-3 ns per block);
 * a kick is never lost and never lands in the middle of a block.
 *
 * uc_emu_start() translates the instruction before its `until` address on
 * every return: that address must be in a present, user, executable page
 * without code (vcpu_state.never_executed_rip), or the failed fetch leaves
 * the emulator's nested-exception state set and the guest's next exception
 * arrives as #DF. Nothing here uses the `count` or `timeout` arguments: both
 * disturb that state or the guest's registers.
 *
 * Exceptions are not delivered through the guest IDT: the interrupt hook
 * sees the vector with RIP at the faulting instruction (after it, for int3)
 * and CR2 set; #UD ends the run with UC_ERR_INSN_INVALID instead. unicorn's
 * API has no error code: it is read from the engine's saved context at the
 * offset tcg_error_code_offset() finds once per process by raising two known
 * #PFs in a scratch engine (the layout of that blob is unicorn's, not an
 * API); if that fails, a #PF's error code is derived from the guest's page
 * tables and says so in the exit message.
 *
 * A vCPU blocked in a userfaultfd fault inside the emulator cannot be
 * kicked out (accel.h: kick_ends_fault_wait is false).
 *
 * Guest RAM as a page table (mm's owned realiser). The engine maps mm's
 * whole frame pool at emulator-physical 0 and CR3 holds the sEPT root, so
 * the emulated MMU translates the guest's (physical = linear) addresses
 * through mm's entries, with the permissions and accessed/dirty bits of
 * x86 (unicorn >= 2.1 honours the frame in an entry). A #PF reaches the
 * interrupt hook with CR2 set and RIP at the faulting instruction; the
 * hook hands it to mm (the `fault` callback) and, if mm resolved it,
 * returns: the instruction runs again. unicorn never resets its nested-
 * exception state after an exception a hook consumed (QEMU resets it on
 * delivery through the IDT, which a hook skips), so the next #PF would
 * become #DF and the third a triple fault: the hook writes it back to "none"
 * through a saved context, at the offset the calibration below finds
 * (about 0.4 us). A TLB flush is a CR3 write (uc_ctl_flush_tlb flushes
 * translated code, not the TLB): asked for from any thread, it is made
 * before the guest's next block, after a port-I/O or fault hook, and at
 * the start of a run.
 *
 * Each engine reserves its translation buffer up front, 1 GiB by default,
 * and a flush then clears it all (seconds): small guests get 8 MiB. unicorn
 * asks for transparent huge pages on that buffer, which would cost each
 * engine 2 MiB of RSS; the process opts out of THP (prctl), which only
 * touches memory that asked for it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unicorn/unicorn.h>

#include "accel.h"
#include "x86_arch.h"

#define TCG_BUFFER_BYTES (8u << 20)
#define MSR_EFER 0xc0000080u
#define EFER_LME (1u << 8)
#define EFER_LMA (1u << 10)

struct accel_vm {
	void *ram;
	uint64_t bytes;
	bool page_table; /* guest RAM as mm's page table (pt) */
	struct accel_page_table pt;
};

struct accel_vcpu {
	struct accel_vm *vm;
	uc_engine *uc;
	uc_context *saved; /* the context at the last exception */
	vcpu_io_fn io;
	void *io_ctx;
	struct vcpu_exit *exit; /* the run in progress */
	int kicked;		/* atomic */
	int flush_pending;	/* atomic: the TLB must be flushed */
	bool entered;		/* the trampoline has run */
	uint64_t trampoline_rip, stop_rip;
	uint64_t bad_gpa;     /* the memory hook's last unmapped access */
	uint64_t invalid_rip; /* where the last #UD was */
};

#ifdef VMM_SANITIZE
/* unicorn 2.1.1 leaks 32 bytes per engine (an array uc_init_engine makes
 * with its bundled g_array_new and uc_close never frees), and, when the
 * guest writes a page it has run code from, the page's 512-byte code
 * bitmap (QEMU's tb_invalidate_phys_page_fast builds it, uc_close does not
 * free it): not ours to fix, so LeakSanitizer is told. unicorn is built
 * without frame pointers, so each leak's stack ends in unicorn's own code. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:g_array_new\nleak:tb_invalidate_phys_page_fast\n";
}
/* ...and does not list the suppression on stderr, which tests read. */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
	return "print_suppressions=0";
}
#endif

static uint64_t reg(uc_engine *uc, int id)
{
	uint64_t value = 0;
	uc_reg_read(uc, id, &value);
	return value;
}

/* --- the #PF error code (see the top of the file) --- */

/* The scratch machine: 64 KiB of RAM, identity-mapped 4 KiB pages. */
#define CAL_RAM 0x10000u
#define CAL_PML4 0x1000u
#define CAL_PT 0x4000u
#define CAL_GDT 0x5000u
#define CAL_CODE 0x6000u  /* user: the two faulting instructions */
#define CAL_STACK 0x8000u /* top of the ring-0 stack (iretq frame) */
#define CAL_ABSENT 0xa000u
#define CAL_KERNEL 0xb000u /* present, supervisor only */
#define CAL_STOP 0xcff0u   /* user, never executed */

struct calibration {
	pthread_once_t once;
	long error_code;    /* offset in a saved uc_context, or -1 */
	long old_exception; /* the nested-exception state's, or -1 */
};
static struct calibration calibration = {PTHREAD_ONCE_INIT, -1, -1};

static void cal_intr(uc_engine *uc, uint32_t intno, void *user)
{
	(void)intno;
	uc_context_save(uc, user);
	uc_emu_stop(uc);
}

/* Runs `code` (one faulting instruction) at CPL 3 in a fresh scratch
 * engine and saves the context at its exception into `blob` (size bytes).
 * With `code` NULL, saves the context at CPL 3 before any exception. */
static int cal_run(const uint8_t *code, size_t len, uint8_t *blob, size_t *size)
{
	uint8_t *ram = aligned_alloc(4096, CAL_RAM);
	uc_engine *uc = NULL;
	uc_context *ctx = NULL;
	int rc = -1;
	if (!ram || uc_open(UC_ARCH_X86, UC_MODE_64, &uc) != UC_ERR_OK)
		goto out;
	memset(ram, 0, CAL_RAM);
	uint64_t *pml4 = (uint64_t *)(ram + CAL_PML4), *pt = (uint64_t *)(ram + CAL_PT);
	uint64_t upper = PTE_PRESENT | PTE_WRITE | PTE_USER | PTE_ACCESSED;
	pml4[0] = (CAL_PML4 + 0x1000) | upper;					  /* PDPT */
	((uint64_t *)(ram + CAL_PML4 + 0x1000))[0] = (CAL_PML4 + 0x2000) | upper; /* PD */
	((uint64_t *)(ram + CAL_PML4 + 0x2000))[0] = CAL_PT | upper;
	for (uint64_t a = 0x1000; a < CAL_RAM; a += 0x1000)
		pt[a >> 12] = a | PTE_PRESENT | PTE_WRITE | PTE_ACCESSED | PTE_DIRTY |
			      (a == CAL_KERNEL || a < CAL_CODE ? 0 : PTE_USER);
	pt[CAL_ABSENT >> 12] = 0;
	uint64_t gdt[X86_GDT_ENTRIES];
	x86_fill_gdt(gdt, 0, 0, X86_TSS_AVAILABLE);
	memcpy(ram + CAL_GDT, gdt, sizeof(gdt));
	static const uint8_t iretq[] = {0x48, 0xcf};
	memcpy(ram + CAL_STACK, iretq, sizeof(iretq)); /* the stub sits above the stack */
	uint64_t frame[5] = {CAL_CODE, 0x23, 0x3002, CAL_CODE + 0x800, 0x1b};
	memcpy(ram + CAL_STACK - sizeof(frame), frame, sizeof(frame));
	static const uint8_t nop[] = {0x90};
	memcpy(ram + CAL_CODE, code ? code : nop, code ? len : sizeof(nop));
	uc_x86_mmr gdtr = {0, CAL_GDT, X86_GDT_ENTRIES * 8 - 1, 0};
	uc_x86_msr efer = {MSR_EFER, EFER_LME | EFER_LMA};
	uint64_t cr3 = CAL_PML4, cr4 = 1u << 5, cr0 = 0x80010033, rsp = CAL_STACK - sizeof(frame);
	uc_hook h;
	if (uc_mem_map_ptr(uc, 0, CAL_RAM, UC_PROT_ALL, ram) || uc_context_alloc(uc, &ctx) ||
	    uc_reg_write(uc, UC_X86_REG_GDTR, &gdtr) || uc_reg_write(uc, UC_X86_REG_MSR, &efer) ||
	    uc_reg_write(uc, UC_X86_REG_CR3, &cr3) || uc_reg_write(uc, UC_X86_REG_CR4, &cr4) ||
	    uc_reg_write(uc, UC_X86_REG_CR0, &cr0) || uc_reg_write(uc, UC_X86_REG_RSP, &rsp) ||
	    uc_hook_add(uc, &h, UC_HOOK_INTR, cal_intr, ctx, 1, 0))
		goto out;
	if (code) {
		if (uc_emu_start(uc, CAL_STACK, CAL_STOP, 0, 0) != UC_ERR_OK)
			goto out;
	} else {
		/* The state before any fault: after the user code's nop (the
		 * instruction before `until` must be user code, see above). */
		if (uc_emu_start(uc, CAL_STACK, CAL_CODE + 1, 0, 0) != UC_ERR_OK ||
		    uc_context_save(uc, ctx) != UC_ERR_OK)
			goto out;
	}
	*size = uc_context_size(uc);
	memcpy(blob, ctx, *size);
	rc = 0;
out:
	if (ctx)
		uc_context_free(ctx);
	if (uc)
		uc_close(uc);
	free(ram);
	return rc;
}

/* The offset of the error code in a saved context: the only 32-bit field
 * that reads 6 after a user write to an absent page and 5 after a user read
 * of a supervisor page, and neither before. The nested-exception state's:
 * the only one that reads -1 (none) before and 14 (#PF) after both. */
static void calibrate(void)
{
	/* movq $1, CAL_ABSENT / mov CAL_KERNEL, %rax (absolute 32-bit addresses) */
	static const uint8_t write_absent[] = {0x48, 0xc7, 0x04, 0x25, 0x00, 0xa0,
					       0x00, 0x00, 0x01, 0x00, 0x00, 0x00};
	static const uint8_t read_kernel[] = {0x48, 0x8b, 0x04, 0x25, 0x00, 0xb0, 0x00, 0x00};
	size_t n0 = 0, n1 = 0, n2 = 0;
	enum { BLOB_MAX = 1 << 20 };
	uint8_t *b = malloc(3 * (size_t)BLOB_MAX);
	if (!b)
		return;
	if (cal_run(NULL, 0, b, &n0) == 0 && n0 <= BLOB_MAX &&
	    cal_run(write_absent, sizeof(write_absent), b + BLOB_MAX, &n1) == 0 && n1 == n0 &&
	    cal_run(read_kernel, sizeof(read_kernel), b + 2 * BLOB_MAX, &n2) == 0 && n2 == n0) {
		long found = -1, old = -1;
		int olds = 0;
		for (size_t o = 0; o + 4 <= n0; o += 4) {
			int32_t before, w, r;
			memcpy(&before, b + o, 4);
			memcpy(&w, b + BLOB_MAX + o, 4);
			memcpy(&r, b + 2 * BLOB_MAX + o, 4);
			if (before == -1 && w == 14 && r == 14) {
				old = (long)o;
				olds++;
			}
		}
		calibration.old_exception = olds == 1 ? old : -1;
		for (size_t o = 0; o + 4 <= n0; o += 4) {
			int32_t before, w, r;
			memcpy(&before, b + o, 4);
			memcpy(&w, b + BLOB_MAX + o, 4);
			memcpy(&r, b + 2 * BLOB_MAX + o, 4);
			if (w == 6 && r == 5 && before != 5 && before != 6) {
				if (found >= 0) {
					found = -1; /* not unique: do not guess */
					break;
				}
				found = (long)o;
			}
		}
		calibration.error_code = found;
	}
	free(b);
}

/* Fills exit->exception.error_code from the context saved at the exception,
 * or for a #PF without calibration from the guest's page tables. */
static void read_error_code(struct accel_vcpu *v, struct vcpu_exit *exit)
{
	pthread_once(&calibration.once, calibrate);
	long off = calibration.error_code;
	if (off >= 0 && (size_t)off + 4 <= uc_context_size(v->uc)) {
		int32_t code;
		memcpy(&code, (const uint8_t *)v->saved + off, 4);
		exit->exception.error_code = (uint32_t)code;
		return;
	}
	if (exit->exception.vector != 14)
		return;
	/* Present and user from the walk; write when the page is present,
	 * user and read-only; fetch when the fault is at RIP. */
	uint64_t cr2 = exit->exception.cr2, table = reg(v->uc, UC_X86_REG_CR3) & ~0xfffull;
	bool present = true, user = true, writable = true;
	for (int level = 3; level >= 0 && present; level--) {
		uint64_t entry = 0;
		if (uc_mem_read(v->uc, table + ((cr2 >> (12 + 9 * level)) & 511) * 8, &entry, 8))
			entry = 0;
		present = entry & PTE_PRESENT;
		user = user && (entry & PTE_USER);
		writable = writable && (entry & PTE_WRITE);
		if (level == 1 && (entry & PTE_HUGE))
			break;
		table = entry & 0x000ffffffffff000ull;
	}
	exit->exception.error_code = PTE_USER | (present ? 1 : 0) |
				     (cr2 == exit->exception.rip ? 0x10 : 0) |
				     (present && user && !writable ? 2 : 0);
	snprintf(exit->message, sizeof(exit->message),
		 "error code derived from the page tables (the write bit may be missing)");
}

/* --- accelerator and VM --- */

static void tcg_close(struct accel *accel)
{
	(void)accel;
}

static int tcg_vm_create(struct accel *accel, struct accel_vm **out, char *err, size_t errlen)
{
	(void)accel;
	struct accel_vm *vm = calloc(1, sizeof(*vm));
	if (!vm) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*out = vm;
	return 0;
}

static void tcg_vm_destroy(struct accel_vm *vm)
{
	free(vm);
}

static int tcg_vm_set_page_table(struct accel_vm *vm, const struct accel_page_table *pt, char *err,
				 size_t errlen)
{
	pthread_once(&calibration.once, calibrate);
	if (calibration.old_exception < 0) {
		snprintf(err, errlen,
			 "cannot use mm's page table on this unicorn build: its nested-exception "
			 "state was not found (use --tcg-mmu host)");
		return -1;
	}
	vm->page_table = true;
	vm->pt = *pt;
	return 0;
}

static int tcg_vm_set_ram(struct accel_vm *vm, void *host, uint64_t bytes, bool dirty_log,
			  char *err, size_t errlen)
{
	if (dirty_log) {
		snprintf(err, errlen, "the TCG emulator keeps no dirty log");
		return -1;
	}
	vm->ram = host;
	vm->bytes = bytes;
	return 0;
}

/* --- hooks, on the vCPU thread inside uc_emu_start() --- */

/* A flush asked for (vcpu_flush_tlb): rewriting CR3 drops every cached
 * translation (and the per-address jump cache of translated code). */
static void apply_flush(struct accel_vcpu *v)
{
	if (__atomic_load_n(&v->flush_pending, __ATOMIC_ACQUIRE) &&
	    __atomic_exchange_n(&v->flush_pending, 0, __ATOMIC_ACQ_REL)) {
		uint64_t cr3 = v->vm->pt.root;
		uc_reg_write(v->uc, UC_X86_REG_CR3, &cr3);
	}
}

static void hook_block(uc_engine *uc, uint64_t address, uint32_t size, void *user)
{
	(void)address;
	(void)size;
	struct accel_vcpu *v = user;
	if (__atomic_load_n(&v->kicked, __ATOMIC_ACQUIRE))
		uc_emu_stop(uc);
	apply_flush(v);
}

/* A device ended the VM: where exactly the emulator stops does not matter. */
static void end_run(struct accel_vcpu *v)
{
	v->exit->reason = VCPU_EXIT_DONE;
	uc_emu_stop(v->uc);
}

static void hook_out(uc_engine *uc, uint32_t port, int size, uint32_t value, void *user)
{
	(void)uc;
	struct accel_vcpu *v = user;
	if (v->io(v->io_ctx, (uint16_t)port, &value, (unsigned)size, true))
		end_run(v);
	apply_flush(v);
}

static uint32_t hook_in(uc_engine *uc, uint32_t port, int size, void *user)
{
	(void)uc;
	struct accel_vcpu *v = user;
	uint32_t value = 0;
	if (v->io(v->io_ctx, (uint16_t)port, &value, (unsigned)size, false))
		end_run(v);
	apply_flush(v);
	return value;
}

/* The exception was consumed by this hook: back to "no exception being
 * delivered" (see the top of the file). */
static void reset_exception_state(struct accel_vcpu *v)
{
	int32_t none = -1;
	uc_context_save(v->uc, v->saved);
	memcpy((uint8_t *)v->saved + calibration.old_exception, &none, sizeof(none));
	uc_context_restore(v->uc, v->saved);
}

/* A #PF of mm's page table: mm serves it. Returns true if the guest goes
 * on (the instruction runs again) or the run was ended here. */
static bool page_table_fault(struct accel_vcpu *v)
{
	uint64_t cr2 = reg(v->uc, UC_X86_REG_CR2);
	enum vcpu_fault_result r = v->vm->pt.fault(v->vm->pt.fault_ctx, cr2);
	if (r == VCPU_FAULT_GUEST)
		return false;
	reset_exception_state(v);
	if (r == VCPU_FAULT_RETRY) {
		apply_flush(v);
		return true;
	}
	if (r == VCPU_FAULT_OUTSIDE) {
		v->exit->reason = VCPU_EXIT_BAD_ACCESS;
		v->exit->access.gpa = cr2;
	}
	uc_emu_stop(v->uc); /* ENDED: VCPU_EXIT_NONE, the VMM stops the VM */
	return true;
}

static void hook_intr(uc_engine *uc, uint32_t intno, void *user)
{
	struct accel_vcpu *v = user;
	struct vcpu_exit *exit = v->exit;
	if (exit->reason != VCPU_EXIT_NONE)
		return; /* the run is ending: keep the first account */
	if (intno == 14 && v->vm->page_table && page_table_fault(v))
		return;
	exit->reason = VCPU_EXIT_EXCEPTION;
	exit->exception.vector = intno;
	exit->exception.rip = reg(uc, UC_X86_REG_RIP);
	exit->exception.cr2 = reg(uc, UC_X86_REG_CR2);
	exit->exception.has_error_code = x86_vector_has_error_code(intno);
	if (exit->exception.has_error_code)
		uc_context_save(uc, v->saved);
	uc_emu_stop(uc);
}

static bool hook_invalid(uc_engine *uc, void *user)
{
	((struct accel_vcpu *)user)->invalid_rip = reg(uc, UC_X86_REG_RIP);
	return false; /* stop with UC_ERR_INSN_INVALID: the guest's #UD */
}

static bool hook_unmapped(uc_engine *uc, uc_mem_type type, uint64_t address, int size,
			  int64_t value, void *user)
{
	(void)uc, (void)type, (void)size, (void)value;
	((struct accel_vcpu *)user)->bad_gpa = address;
	return false;
}

/* --- the vCPU --- */

static int tcg_vcpu_create(struct accel_vm *vm, struct accel_vcpu **out, vcpu_io_fn io,
			   void *io_ctx, char *err, size_t errlen)
{
	struct accel_vcpu *v = calloc(1, sizeof(*v));
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	v->vm = vm;
	v->io = io;
	v->io_ctx = io_ctx;
	const char *what = "uc_open";
	uc_err e = uc_open(UC_ARCH_X86, UC_MODE_64, &v->uc);
	if (e == UC_ERR_OK) {
		what = "setting the translation buffer size";
		e = uc_ctl_set_tcg_buffer_size(v->uc, TCG_BUFFER_BYTES);
	}
	if (e == UC_ERR_OK) {
		what = "mapping guest RAM";
		e = vm->page_table
			    ? uc_mem_map_ptr(v->uc, 0, vm->pt.phys_bytes, UC_PROT_ALL, vm->pt.phys)
			    : uc_mem_map_ptr(v->uc, 0, vm->bytes, UC_PROT_ALL, vm->ram);
	}
	if (e == UC_ERR_OK) {
		what = "allocating a context";
		e = uc_context_alloc(v->uc, &v->saved);
	}
	/* Hooks are compiled into translated code: all of them now. */
	uc_hook h;
	if (e == UC_ERR_OK) {
		what = "adding the emulator hooks";
		e = uc_hook_add(v->uc, &h, UC_HOOK_BLOCK, hook_block, v, 1, 0);
	}
	if (e == UC_ERR_OK)
		e = uc_hook_add(v->uc, &h, UC_HOOK_INSN, hook_out, v, 1, 0, UC_X86_INS_OUT);
	if (e == UC_ERR_OK)
		e = uc_hook_add(v->uc, &h, UC_HOOK_INSN, hook_in, v, 1, 0, UC_X86_INS_IN);
	if (e == UC_ERR_OK)
		e = uc_hook_add(v->uc, &h, UC_HOOK_INTR, hook_intr, v, 1, 0);
	if (e == UC_ERR_OK)
		e = uc_hook_add(v->uc, &h, UC_HOOK_INSN_INVALID, hook_invalid, v, 1, 0);
	if (e == UC_ERR_OK)
		e = uc_hook_add(v->uc, &h, UC_HOOK_MEM_UNMAPPED, hook_unmapped, v, 1, 0);
	if (e != UC_ERR_OK) {
		snprintf(err, errlen, "TCG: %s failed: %s", what, uc_strerror(e));
		if (v->saved)
			uc_context_free(v->saved);
		if (v->uc)
			uc_close(v->uc);
		free(v);
		return -1;
	}
	*out = v;
	return 0;
}

static void tcg_vcpu_destroy(struct accel_vcpu *v)
{
	uc_context_free(v->saved);
	uc_close(v->uc);
	free(v);
}

static const int gpr_ids[18] = {
	UC_X86_REG_RAX, UC_X86_REG_RBX,	   UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RSI,
	UC_X86_REG_RDI, UC_X86_REG_RSP,	   UC_X86_REG_RBP, UC_X86_REG_R8,  UC_X86_REG_R9,
	UC_X86_REG_R10, UC_X86_REG_R11,	   UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14,
	UC_X86_REG_R15, UC_X86_REG_RFLAGS, UC_X86_REG_RIP,
};

/* struct vcpu_regs is 18 uint64_t: the general registers in the order of
 * gpr_ids, then rip and rflags (swapped here so RIP can be left out). */
_Static_assert(sizeof(struct vcpu_regs) == 18 * 8, "vcpu_regs layout");

static int tcg_vcpu_get_regs(struct accel_vcpu *v, struct vcpu_regs *regs)
{
	uint64_t values[18];
	void *ptrs[18];
	for (int i = 0; i < 18; i++)
		ptrs[i] = &values[i];
	if (uc_reg_read_batch(v->uc, (int *)gpr_ids, ptrs, 18) != UC_ERR_OK)
		return -1;
	memcpy(regs, values, 16 * 8);
	regs->rflags = values[16];
	regs->rip = values[17];
	return 0;
}

/* Inside a hook RIP reads as the start of the block being emulated, and
 * writing RIP there restarts emulation at the value written: RIP is only
 * written when the caller changed it. */
static int tcg_vcpu_set_regs(struct accel_vcpu *v, const struct vcpu_regs *regs)
{
	uint64_t values[18];
	void *ptrs[18];
	memcpy(values, regs, 16 * 8);
	values[16] = regs->rflags;
	values[17] = regs->rip;
	for (int i = 0; i < 18; i++)
		ptrs[i] = &values[i];
	int n = regs->rip == reg(v->uc, UC_X86_REG_RIP) ? 17 : 18;
	return uc_reg_write_batch(v->uc, (int *)gpr_ids, (void *const *)ptrs, n) == UC_ERR_OK ? 0
											      : -1;
}

static int tcg_vcpu_set_state(struct accel_vcpu *v, const struct vcpu_state *st)
{
	uc_engine *uc = v->uc;
	uc_x86_mmr gdtr = {0, st->gdt.base, st->gdt.limit, 0};
	uc_x86_mmr idtr = {0, st->idt.base, st->idt.limit, 0};
	/* TR's flags are its access rights as QEMU keeps them: descriptor
	 * bits 8..15 of the high dword (type, S, DPL, P). */
	uc_x86_mmr tr = {st->tr.selector, st->tr.base, st->tr.limit,
			 ((uint32_t)st->tr.type << 8) | ((uint32_t)st->tr.present << 15)};
	uc_x86_msr efer = {MSR_EFER, st->efer};
	uint64_t cr3 = v->vm->page_table ? v->vm->pt.root : st->cr3, cr4 = st->cr4, cr0 = st->cr0;
	uint64_t rsp = st->trampoline_rsp, rip = st->trampoline_rip;
	uint64_t mxcsr = st->mxcsr, fcw = st->fcw;
	if (uc_reg_write(uc, UC_X86_REG_GDTR, &gdtr) || uc_reg_write(uc, UC_X86_REG_IDTR, &idtr) ||
	    uc_reg_write(uc, UC_X86_REG_TR, &tr) || uc_reg_write(uc, UC_X86_REG_MSR, &efer) ||
	    uc_reg_write(uc, UC_X86_REG_CR3, &cr3) || uc_reg_write(uc, UC_X86_REG_CR4, &cr4) ||
	    uc_reg_write(uc, UC_X86_REG_CR0, &cr0) || uc_reg_write(uc, UC_X86_REG_MXCSR, &mxcsr) ||
	    uc_reg_write(uc, UC_X86_REG_FPCW, &fcw))
		return -1;
	/* The state's general registers, then the trampoline's stack and
	 * entry: its iretq loads RIP, CS, RFLAGS, RSP and SS of the state. */
	if (tcg_vcpu_set_regs(v, &st->regs) || uc_reg_write(uc, UC_X86_REG_RSP, &rsp) ||
	    uc_reg_write(uc, UC_X86_REG_RIP, &rip))
		return -1;
	v->trampoline_rip = st->trampoline_rip;
	v->stop_rip = st->never_executed_rip;
	v->entered = false;
	return 0;
}

static int tcg_vcpu_get_cr2(struct accel_vcpu *v, uint64_t *cr2)
{
	*cr2 = reg(v->uc, UC_X86_REG_CR2);
	return 0;
}

static uint64_t tcg_vcpu_tsc_khz(struct accel_vcpu *v)
{
	(void)v;
	return 0; /* the emulated TSC has no fixed rate */
}

static void tcg_vcpu_arm(struct accel_vcpu *v)
{
	__atomic_store_n(&v->kicked, 0, __ATOMIC_RELEASE);
}

static void tcg_vcpu_kick(struct accel_vcpu *v)
{
	__atomic_store_n(&v->kicked, 1, __ATOMIC_RELEASE); /* hook_block stops */
}

static void tcg_vcpu_flush_tlb(struct accel_vcpu *v)
{
	__atomic_store_n(&v->flush_pending, 1, __ATOMIC_RELEASE);
}

static int tcg_vcpu_run(struct accel_vcpu *v, struct vcpu_exit *exit)
{
	memset(exit, 0, sizeof(*exit));
	v->exit = exit;
	if (__atomic_load_n(&v->kicked, __ATOMIC_ACQUIRE))
		return 0;
	if (v->vm->page_table)
		apply_flush(v);
	/* The first run starts at CPL 0 on the trampoline's iretq. */
	uint64_t rip = v->entered ? reg(v->uc, UC_X86_REG_RIP) : v->trampoline_rip;
	v->entered = true;
	uc_err e = uc_emu_start(v->uc, rip, v->stop_rip, 0, 0);
	if (exit->reason == VCPU_EXIT_EXCEPTION && exit->exception.has_error_code)
		read_error_code(v, exit);
	if (exit->reason != VCPU_EXIT_NONE)
		return 0; /* a hook ended the run */
	switch (e) {
	case UC_ERR_OK:
		if (reg(v->uc, UC_X86_REG_RIP) == v->stop_rip) {
			exit->reason = VCPU_EXIT_ERROR;
			snprintf(exit->message, sizeof(exit->message),
				 "guest jumped into its boot information at 0x%llx",
				 (unsigned long long)v->stop_rip);
		}
		return 0;	  /* kicked */
	case UC_ERR_INSN_INVALID: /* the guest's #UD */
		exit->reason = VCPU_EXIT_EXCEPTION;
		exit->exception.vector = 6;
		exit->exception.rip = v->invalid_rip;
		return 0;
	case UC_ERR_READ_UNMAPPED:
	case UC_ERR_WRITE_UNMAPPED:
	case UC_ERR_FETCH_UNMAPPED:
		exit->reason = VCPU_EXIT_BAD_ACCESS;
		exit->access.gpa = v->bad_gpa;
		return 0;
	default:
		exit->reason = VCPU_EXIT_ERROR;
		snprintf(exit->message, sizeof(exit->message),
			 "the TCG emulator stopped at rip=0x%llx: %s",
			 (unsigned long long)reg(v->uc, UC_X86_REG_RIP), uc_strerror(e));
		return 0;
	}
}

static const struct accel_ops tcg_ops = {
	.name = "tcg",
	.kick_ends_fault_wait = false,
	.close = tcg_close,
	.vm_create = tcg_vm_create,
	.vm_destroy = tcg_vm_destroy,
	.vm_set_ram = tcg_vm_set_ram,
	.vm_set_page_table = tcg_vm_set_page_table,
	.vm_dirty_log = NULL,
	.vcpu_create = tcg_vcpu_create,
	.vcpu_destroy = tcg_vcpu_destroy,
	.vcpu_set_state = tcg_vcpu_set_state,
	.vcpu_get_regs = tcg_vcpu_get_regs,
	.vcpu_set_regs = tcg_vcpu_set_regs,
	.vcpu_get_cr2 = tcg_vcpu_get_cr2,
	.vcpu_tsc_khz = tcg_vcpu_tsc_khz,
	.vcpu_arm = tcg_vcpu_arm,
	.vcpu_run = tcg_vcpu_run,
	.vcpu_kick = tcg_vcpu_kick,
	.vcpu_flush_tlb = tcg_vcpu_flush_tlb,
};

int tcg_accel_open(struct accel *accel, char *err, size_t errlen)
{
	unsigned major = 0, minor = 0;
	uc_version(&major, &minor);
	if (major < 2 || (major == 2 && minor < 1) || !uc_arch_supported(UC_ARCH_X86)) {
		snprintf(err, errlen,
			 "the TCG emulator needs unicorn 2.1 or newer with x86 (found %u.%u)",
			 major, minor);
		return -1;
	}
	prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
	accel->ops = &tcg_ops;
	accel->priv = NULL;
	return 0;
}
