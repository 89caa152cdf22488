/*
 * x86.c - the guest_abi.h boot area, built in place by the shim: the same
 * page tables, GDT and TSS our VMM writes (vmm/x86_setup.c), at the same
 * guest physical addresses.
 *
 *   page tables  identity map of [0, mem_bytes): PML4 0x9000 -> PDPT 0xa000
 *                -> one PD per GiB from 0xb000, 2 MiB pages, except the first
 *                2 MiB, which go through the 4 KiB table at 0x8000 so that
 *                page 0 stays unmapped and everything below the image base
 *                is supervisor-only except the boot info page. Accessed and
 *                dirty bits are preset, as in the VMM.
 *   GDT 0x1000   null, kernel code 0x08, kernel data 0x10, user data 0x1b,
 *                user code 0x23, TSS 0x28.
 *   TSS 0x1080   RSP0 = 0x7000, and an I/O permission bitmap for ports
 *                0..0x5ff. Where the VMM's bitmap allows all of them, ours
 *                allows only GUEST_PORT_CONSOLE: the guest runs with IOPL 0,
 *                so an `out` to any other port (the hypercall port 0x500, the
 *                exit port 0xF4) raises #GP, which trap.c emulates.
 *   IDT 0x2000   48 interrupt gates (DPL 0): the 32 exceptions and the 16 PIC
 *                interrupts (remapped to 32..47 by timer.c), pointing at the
 *                stubs of entry.S. The VMM's IDT has the first 32; its stubs
 *                page at 0x3000 stays empty here, ours live in the shim image.
 *
 * Invariant: the boot area is written once, before the guest runs; the shim
 * image and its module sit above it (SHIM_BASE), below the guest image base.
 */
#include "shim.h"

#include "asm_defs.h"
#include "x86_arch.h"

_Static_assert(ASM_RING0_STACK_TOP == GUEST_RING0_STACK_TOP, "asm_defs.h");
_Static_assert(ASM_SEL_KERNEL_CODE == GUEST_SEL_KERNEL_CODE, "asm_defs.h");
_Static_assert(ASM_SEL_KERNEL_DATA == GUEST_SEL_KERNEL_DATA, "asm_defs.h");
_Static_assert(ASM_SEL_USER_DATA == GUEST_SEL_USER_DATA, "asm_defs.h");
_Static_assert(ASM_SEL_USER_CODE == GUEST_SEL_USER_CODE, "asm_defs.h");
_Static_assert(ASM_PORT_CONSOLE == GUEST_PORT_CONSOLE, "asm_defs.h");
_Static_assert(ASM_PORT_EXIT == GUEST_PORT_EXIT, "asm_defs.h");
_Static_assert(SHIM_BASE >= GUEST_PD_GPA + 4 * GUEST_PAGE_SIZE, "room for 4 PDs");

#define TWO_MIB (2ull << 20)
#define ONE_GIB (1ull << 30)

struct __attribute__((packed)) table_register {
	uint16_t limit;
	uint64_t base;
};

static uint64_t *phys(uint64_t gpa)
{
	return (uint64_t *)(uintptr_t)gpa;
}

static void build_page_tables(uint64_t mem_bytes)
{
	uint64_t gib = (mem_bytes + ONE_GIB - 1) / ONE_GIB;
	uint64_t upper = PTE_PRESENT | PTE_WRITE | PTE_USER | PTE_ACCESSED;
	uint64_t *pml4 = phys(GUEST_PML4_GPA), *pdpt = phys(GUEST_PDPT_GPA);
	uint64_t *pt = phys(GUEST_PT_GPA);

	memset(pml4, 0, GUEST_PAGE_SIZE);
	memset(pdpt, 0, GUEST_PAGE_SIZE);
	pml4[0] = GUEST_PDPT_GPA | upper;
	for (uint64_t g = 0; g < gib; g++)
		pdpt[g] = (GUEST_PD_GPA + g * GUEST_PAGE_SIZE) | upper;

	pt[0] = 0;
	for (uint64_t i = 1; i < 512; i++) {
		uint64_t gpa = i * GUEST_PAGE_SIZE;
		uint64_t user =
			(gpa >= GUEST_BOOT_AREA_END || gpa == GUEST_BOOT_INFO_GPA) ? PTE_USER : 0;
		pt[i] = gpa | PTE_PRESENT | PTE_WRITE | PTE_ACCESSED | PTE_DIRTY | user;
	}

	uint64_t huge = PTE_PRESENT | PTE_WRITE | PTE_USER | PTE_ACCESSED | PTE_DIRTY | PTE_HUGE;
	for (uint64_t g = 0; g < gib; g++) {
		uint64_t *pd = phys(GUEST_PD_GPA + g * GUEST_PAGE_SIZE);
		memset(pd, 0, GUEST_PAGE_SIZE);
		for (uint64_t i = 0; i < 512; i++) {
			uint64_t gpa = g * ONE_GIB + i * TWO_MIB;
			if (gpa >= mem_bytes)
				break;
			pd[i] = gpa == 0 ? (GUEST_PT_GPA | upper) : (gpa | huge);
		}
	}
}

static void build_descriptor_tables(void)
{
	/* The TSS is available: ltr (entry.S) marks it busy. */
	x86_fill_gdt(phys(GUEST_GDT_GPA), GUEST_TSS_GPA, sizeof(struct x86_tss64) - 1,
		     X86_TSS_AVAILABLE);

	struct x86_tss64 *tss = (struct x86_tss64 *)phys(GUEST_TSS_GPA);
	memset(tss, 0, sizeof(*tss));
	tss->rsp[0] = GUEST_RING0_STACK_TOP;
	tss->iomap_base = offsetof(struct x86_tss64, io_bitmap);
	memset(tss->io_bitmap, 0xff, sizeof(tss->io_bitmap));
	tss->io_bitmap[GUEST_PORT_CONSOLE / 8] &= (uint8_t) ~(1u << (GUEST_PORT_CONSOLE % 8));
	tss->io_bitmap_end = 0xff;

	struct x86_idt_gate *idt = (struct x86_idt_gate *)phys(GUEST_IDT_GPA);
	memset(idt, 0, GUEST_PAGE_SIZE);
	for (unsigned v = 0; v < SHIM_TRAP_VECTORS; v++) {
		uint64_t handler = (uint64_t)(uintptr_t)trap_stubs + v * 16;
		idt[v] = x86_interrupt_gate(handler, GUEST_SEL_KERNEL_CODE);
	}
	memset(phys(GUEST_STUBS_GPA), 0, GUEST_PAGE_SIZE);
}

void x86_build_boot_area(uint64_t mem_bytes)
{
	build_page_tables(mem_bytes);
	build_descriptor_tables();
}

void x86_load_boot_area(void)
{
	struct table_register gdtr = {X86_GDT_ENTRIES * 8 - 1, GUEST_GDT_GPA};
	struct table_register idtr = {SHIM_TRAP_VECTORS * sizeof(struct x86_idt_gate) - 1,
				      GUEST_IDT_GPA};
	__asm__ volatile("mov %0, %%cr3" : : "r"(GUEST_PML4_GPA) : "memory");
	__asm__ volatile("lgdt %0" : : "m"(gdtr));
	__asm__ volatile("ltr %w0" : : "r"((uint16_t)GUEST_SEL_TSS));
	__asm__ volatile("lidt %0" : : "m"(idtr));
}

void x86_set_user(uint64_t start, uint64_t end, int user)
{
	uint64_t *pt = phys(GUEST_PT_GPA);
	for (uint64_t gpa = start; gpa < end && gpa < TWO_MIB; gpa += GUEST_PAGE_SIZE) {
		if (user)
			pt[gpa / GUEST_PAGE_SIZE] |= PTE_USER;
		else
			pt[gpa / GUEST_PAGE_SIZE] &= ~PTE_USER;
	}
	__asm__ volatile("mov %0, %%cr3" : : "r"(GUEST_PML4_GPA) : "memory");
}
