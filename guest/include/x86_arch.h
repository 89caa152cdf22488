/*
 * x86_arch.h - the x86-64 structures and numbers that both builders of the
 * guest_abi.h boot area use: the VMM (vmm/x86_setup.c, hosted) and the QEMU
 * boot shim (guest/qemu_shim/x86.c, freestanding). Header-only, fixed-width
 * types only, so that the two agree on every bit.
 */
#ifndef X86_ARCH_H
#define X86_ARCH_H

#include <stdint.h>

/* Page-table entry bits (Intel SDM vol. 3, 4.5). */
#define PTE_PRESENT (1ull << 0)
#define PTE_WRITE (1ull << 1)
#define PTE_USER (1ull << 2)
#define PTE_ACCESSED (1ull << 5)
#define PTE_DIRTY (1ull << 6)
#define PTE_HUGE (1ull << 7)

/* The I/O permission bitmap covers ports 0 .. X86_IO_BITMAP_PORTS-1. */
#define X86_IO_BITMAP_PORTS 0x600

/* 64-bit TSS (Intel SDM vol. 3, 8.7) followed by the I/O permission bitmap
 * (a set bit traps the port, a clear bit allows it) and its terminating
 * all-ones byte. */
struct __attribute__((packed)) x86_tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
	uint8_t io_bitmap[X86_IO_BITMAP_PORTS / 8];
	uint8_t io_bitmap_end;
};

/* The GDT both builders lay out: null, kernel code (0x08), kernel data
 * (0x10), user data (0x18, DPL 3), user code (0x20, DPL 3), then a 64-bit
 * TSS descriptor in two slots (0x28). Accessed bits are preset. tss_type:
 * X86_TSS_AVAILABLE for a TSS loaded with ltr, X86_TSS_BUSY when TR is
 * set directly (KVM_SET_SREGS). */
#define X86_GDT_ENTRIES 7
#define X86_TSS_AVAILABLE 0x9
#define X86_TSS_BUSY 0xb

static inline void x86_fill_gdt(uint64_t gdt[X86_GDT_ENTRIES], uint64_t tss_base,
				uint64_t tss_limit, uint64_t tss_type)
{
	gdt[0] = 0;
	gdt[1] = 0x00af9b000000ffffull; /* kernel code, 64-bit */
	gdt[2] = 0x00cf93000000ffffull; /* kernel data */
	gdt[3] = 0x00cff3000000ffffull; /* user data, DPL 3 */
	gdt[4] = 0x00affb000000ffffull; /* user code, 64-bit, DPL 3 */
	gdt[5] = (tss_limit & 0xffff) | ((tss_base & 0xffffff) << 16) | (tss_type << 40) |
		 (1ull << 47) | (((tss_limit >> 16) & 0xf) << 48) |
		 (((tss_base >> 24) & 0xff) << 56);
	gdt[6] = tss_base >> 32;
}

/* A 64-bit IDT entry (Intel SDM vol. 3, 6.14.1). */
struct __attribute__((packed)) x86_idt_gate {
	uint16_t offset_low;
	uint16_t selector;
	uint8_t ist;
	uint8_t type_attr;
	uint16_t offset_mid;
	uint32_t offset_high;
	uint32_t reserved;
};

/* A present, DPL 0, 64-bit interrupt gate to `handler` in code segment
 * `selector`. */
static inline struct x86_idt_gate x86_interrupt_gate(uint64_t handler, uint16_t selector)
{
	return (struct x86_idt_gate){
		.offset_low = handler & 0xffff,
		.selector = selector,
		.type_attr = 0x8e,
		.offset_mid = (handler >> 16) & 0xffff,
		.offset_high = (uint32_t)(handler >> 32),
	};
}

/* Whether the CPU pushes an error code for exception `vector`. */
static inline int x86_vector_has_error_code(unsigned vector)
{
	switch (vector) {
	case 8:
	case 10:
	case 11:
	case 12:
	case 13:
	case 14:
	case 17:
	case 21:
	case 29:
	case 30:
		return 1;
	default:
		return 0;
	}
}

/* "#PF" and friends, for exception messages. */
static inline const char *x86_vector_name(unsigned vector)
{
	static const char *const names[32] = {
		"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#09", "#TS",
		"#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
		"#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31"};
	return vector < 32 ? names[vector] : "#??";
}

#endif
