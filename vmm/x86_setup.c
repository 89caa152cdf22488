/*
 * x86_setup.c - page tables, descriptor tables, stubs and initial registers.
 */
#include "x86_setup.h"

#include <stddef.h>
#include <string.h>

#include "mm/guest_memory.h"
#include "x86_arch.h"

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define RFLAGS_RESERVED (1ull << 1)
#define RFLAGS_IOPL3 (3ull << 12)

#define TWO_MIB (2ull << 20)
#define ONE_GIB (1ull << 30)

static int build_page_tables(struct guest_memory *mem, uint64_t mem_bytes)
{
	uint64_t pml4[512] = {0}, pdpt[512] = {0}, pt[512] = {0};
	uint64_t gib = (mem_bytes + ONE_GIB - 1) / ONE_GIB;
	uint64_t upper = PTE_PRESENT | PTE_WRITE | PTE_USER | PTE_ACCESSED;

	pml4[0] = GUEST_PDPT_GPA | upper;
	for (uint64_t g = 0; g < gib; g++)
		pdpt[g] = (GUEST_PD_GPA + g * GUEST_PAGE_SIZE) | upper;

	/* First 2 MiB through a 4 KiB table: page 0 absent, the boot area
	 * supervisor-only except the boot info page, the rest user. */
	for (uint64_t i = 1; i < 512; i++) {
		uint64_t gpa = i * GUEST_PAGE_SIZE;
		uint64_t user =
			(gpa >= GUEST_BOOT_AREA_END || gpa == GUEST_BOOT_INFO_GPA) ? PTE_USER : 0;
		pt[i] = gpa | PTE_PRESENT | PTE_WRITE | PTE_ACCESSED | PTE_DIRTY | user;
	}
	if (guest_memory_write(mem, GUEST_PML4_GPA, pml4, sizeof(pml4)) ||
	    guest_memory_write(mem, GUEST_PDPT_GPA, pdpt, sizeof(pdpt)) ||
	    guest_memory_write(mem, GUEST_PT_GPA, pt, sizeof(pt)))
		return -1;

	uint64_t huge = PTE_PRESENT | PTE_WRITE | PTE_USER | PTE_ACCESSED | PTE_DIRTY | PTE_HUGE;
	for (uint64_t g = 0; g < gib; g++) {
		uint64_t pd[512] = {0};
		for (uint64_t i = 0; i < 512; i++) {
			uint64_t gpa = g * ONE_GIB + i * TWO_MIB;
			if (gpa >= mem_bytes)
				break;
			pd[i] = gpa == 0 ? (GUEST_PT_GPA | upper) : (gpa | huge);
		}
		if (guest_memory_write(mem, GUEST_PD_GPA + g * GUEST_PAGE_SIZE, pd, sizeof(pd)))
			return -1;
	}
	return 0;
}

static int build_descriptor_tables(struct guest_memory *mem)
{
	/* The TSS is busy: TR is loaded directly through KVM_SET_SREGS. */
	uint64_t gdt[X86_GDT_ENTRIES];
	x86_fill_gdt(gdt, GUEST_TSS_GPA, sizeof(struct x86_tss64) - 1, X86_TSS_BUSY);

	struct x86_tss64 tss = {0};
	tss.rsp[0] = GUEST_RING0_STACK_TOP;
	/* This platform (kvm_pvm) does not keep RFLAGS.IOPL=3 for the guest:
	 * CPL-3 port access is decided by the I/O permission bitmap, so the
	 * TSS carries one that allows the guest's ports. */
	tss.iomap_base = offsetof(struct x86_tss64, io_bitmap);
	tss.io_bitmap_end = 0xff;

	struct x86_idt_gate idt[GUEST_EXCEPTION_VECTORS];
	uint8_t stubs[GUEST_EXCEPTION_VECTORS * 16];
	memset(stubs, 0xf4, sizeof(stubs)); /* hlt */
	for (unsigned v = 0; v < GUEST_EXCEPTION_VECTORS; v++) {
		uint8_t *s = stubs + v * 16;
		s[0] = 0xb8; /* mov $v, %eax */
		memcpy(s + 1, &v, 4);
		s[5] = 0x66; /* mov $port, %dx */
		s[6] = 0xba;
		uint16_t port = GUEST_PORT_EXCEPTION;
		memcpy(s + 7, &port, 2);
		s[9] = 0xef;  /* out %eax, %dx */
		s[10] = 0xf4; /* hlt */
		s[11] = 0xeb; /* jmp back to hlt */
		s[12] = 0xfd;
		uint64_t handler = GUEST_STUBS_GPA + v * 16;
		idt[v] = x86_interrupt_gate(handler, GUEST_SEL_KERNEL_CODE);
	}
	if (guest_memory_write(mem, GUEST_GDT_GPA, gdt, sizeof(gdt)) ||
	    guest_memory_write(mem, GUEST_TSS_GPA, &tss, sizeof(tss)) ||
	    guest_memory_write(mem, GUEST_IDT_GPA, idt, sizeof(idt)) ||
	    guest_memory_write(mem, GUEST_STUBS_GPA, stubs, sizeof(stubs)) ||
	    guest_memory_zero(mem, GUEST_RING0_STACK_TOP - 2 * GUEST_PAGE_SIZE,
			      2 * GUEST_PAGE_SIZE))
		return -1;
	return 0;
}

/* The interrupt frame iretq pops to reach the entry at CPL 3: rip, cs,
 * rflags, rsp, ss, at the top of the ring-0 stack. */
#define TRAMPOLINE_FRAME_GPA (GUEST_RING0_STACK_TOP - 5 * 8)

static int build_trampoline(struct guest_memory *mem, uint64_t entry, uint64_t stack_top)
{
	static const uint8_t code[] = {0x48, 0xcf, /* iretq */
				       0xf4, 0xf4, /* hlt: the address never executed */
				       0xeb, 0xfc};
	uint64_t frame[5] = {entry, GUEST_SEL_USER_CODE, RFLAGS_RESERVED | RFLAGS_IOPL3, stack_top,
			     GUEST_SEL_USER_DATA};
	if (guest_memory_write(mem, GUEST_TRAMPOLINE_GPA, code, sizeof(code)) ||
	    guest_memory_write(mem, TRAMPOLINE_FRAME_GPA, frame, sizeof(frame)))
		return -1;
	return 0;
}

int x86_build_boot_area(struct guest_memory *mem, const struct guest_boot_info *info,
			uint64_t entry)
{
	if (build_page_tables(mem, info->mem_bytes) || build_descriptor_tables(mem) ||
	    build_trampoline(mem, entry, info->stack_top))
		return -1;
	return guest_memory_write(mem, GUEST_BOOT_INFO_GPA, info, sizeof(*info));
}

void x86_cpu_ranges(struct guest_cpu_range *ranges, unsigned n)
{
	const struct guest_cpu_range r[] = {
		{0, GUEST_PAGE_SIZE, GUEST_CPU_NONE},
		{GUEST_PAGE_SIZE, GUEST_BOOT_INFO_GPA - GUEST_PAGE_SIZE, GUEST_CPU_SUPERVISOR},
		{GUEST_BOOT_INFO_GPA + GUEST_PAGE_SIZE,
		 GUEST_BOOT_AREA_END - GUEST_BOOT_INFO_GPA - GUEST_PAGE_SIZE, GUEST_CPU_SUPERVISOR},
	};
	_Static_assert(sizeof(r) / sizeof(r[0]) <= GUEST_CPU_RANGES, "too many CPU ranges");
	for (unsigned i = 0; i < n; i++)
		ranges[i] = i < sizeof(r) / sizeof(r[0]) ? r[i] : (struct guest_cpu_range){0};
}

static struct vcpu_segment segment(uint16_t selector, int code, int dpl)
{
	return (struct vcpu_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = selector,
		.type = code ? 0xb : 0x3,
		.present = 1,
		.dpl = (uint8_t)dpl,
		.db = code ? 0 : 1,
		.s = 1,
		.l = code ? 1 : 0,
		.g = 1,
	};
}

void x86_initial_state(struct vcpu_state *st, uint64_t entry, uint64_t stack_top)
{
	memset(st, 0, sizeof(*st));
	st->cs = segment(GUEST_SEL_USER_CODE, 1, 3);
	st->ss = st->ds = st->es = st->fs = st->gs = segment(GUEST_SEL_USER_DATA, 0, 3);
	st->tr = (struct vcpu_segment){
		.base = GUEST_TSS_GPA,
		.limit = sizeof(struct x86_tss64) - 1,
		.selector = GUEST_SEL_TSS,
		.type = X86_TSS_BUSY,
		.present = 1,
	};
	st->ldt = (struct vcpu_segment){.unusable = 1, .type = 2};
	st->gdt.base = GUEST_GDT_GPA;
	st->gdt.limit = X86_GDT_ENTRIES * 8 - 1;
	st->idt.base = GUEST_IDT_GPA;
	st->idt.limit = GUEST_EXCEPTION_VECTORS * sizeof(struct x86_idt_gate) - 1;
	st->cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	st->cr3 = GUEST_PML4_GPA;
	st->cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	st->efer = EFER_LME | EFER_LMA;
	st->regs.rip = entry;
	st->regs.rsp = stack_top;
	st->regs.rdi = GUEST_BOOT_INFO_GPA;
	st->regs.rflags = RFLAGS_RESERVED | RFLAGS_IOPL3;
	st->fcw = 0x37f;
	st->mxcsr = 0x1f80;
	st->trampoline_rip = GUEST_TRAMPOLINE_GPA;
	st->trampoline_rsp = TRAMPOLINE_FRAME_GPA;
	st->never_executed_rip = GUEST_BOOT_INFO_GPA + GUEST_PAGE_SIZE - 16;
}
