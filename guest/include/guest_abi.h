/*
 * guest_abi.h - the contract between the VMM and its guests.
 *
 * Guests are static freestanding ELF64 images. The VMM enters them directly in
 * 64-bit mode at CPL 3 with IOPL 3 and a TSS I/O permission bitmap that
 * allows ports 0..0x5ff (so `out` works from user mode), on
 * identity page tables it builds itself (guest virtual == guest physical).
 * The entry point receives a pointer to a struct guest_boot_info in %rdi.
 *
 * Guest physical layout (all numbers are guest physical addresses):
 *
 *   0x000000  not mapped (null-pointer guard)
 *   0x001000  GDT, then the TSS and its I/O bitmap   supervisor only
 *   0x002000  IDT (32 interrupt gates)               supervisor only
 *   0x003000  exception stubs (ring 0, tiny), and    supervisor only
 *             the CPL-3 entry trampoline (TCG)
 *   0x004000  boot info + argument string            user readable
 *   0x005000  ring-0 stack (two pages, top 0x7000)   supervisor only
 *   0x008000  page table for the first 2 MiB          supervisor only
 *   0x009000  PML4, 0x00a000 PDPT, 0x00b000.. PDs     supervisor only
 *   0x100000  the guest image (ELF PT_LOAD segments)
 *   ........  heap: free RAM for the workload, [heap_start, heap_end)
 *   top       user stack (GUEST_STACK_BYTES below the end of RAM)
 *
 * Devices are x86 I/O ports:
 *   GUEST_PORT_CONSOLE    outb: one byte of console output; the VMM prints
 *                         whole lines prefixed with the VM name.
 *   GUEST_PORT_EXIT       outl: the guest's exit code; the VM ends.
 *   GUEST_PORT_HYPERCALL  outl: the hypercall number in %eax, arguments in
 *                         %rdi, %rsi, %rcx; the result comes back in %rax.
 *                         (%dx holds the port number.)
 *   GUEST_PORT_EXCEPTION  written only by the ring-0 exception stubs: the
 *                         vector number. The VMM reads RIP from the ring-0
 *                         stack and CR2 from the vCPU and ends the VM.
 *
 * This header is included by both the VMM (hosted C) and the guests
 * (freestanding C), so it uses only fixed-width types.
 */
#ifndef GUEST_ABI_H
#define GUEST_ABI_H

#include <stdint.h>

#define GUEST_PAGE_SIZE 4096ull

#define GUEST_PORT_CONSOLE 0xE9
#define GUEST_PORT_EXIT 0xF4
#define GUEST_PORT_HYPERCALL 0x500
#define GUEST_PORT_EXCEPTION 0x501

#define GUEST_GDT_GPA 0x1000ull
#define GUEST_TSS_GPA 0x1080ull
#define GUEST_IDT_GPA 0x2000ull
#define GUEST_STUBS_GPA 0x3000ull
/* iretq from CPL 0 to the entry, then hlt (never reached): see x86_setup.h */
#define GUEST_TRAMPOLINE_GPA 0x3800ull
#define GUEST_BOOT_INFO_GPA 0x4000ull
#define GUEST_RING0_STACK_TOP 0x7000ull
#define GUEST_PT_GPA 0x8000ull
#define GUEST_PML4_GPA 0x9000ull
#define GUEST_PDPT_GPA 0xa000ull
#define GUEST_PD_GPA 0xb000ull
#define GUEST_IMAGE_BASE 0x100000ull
#define GUEST_STACK_BYTES (256ull * 1024)
/* Everything below the image base belongs to the VMM: the boot area. */
#define GUEST_BOOT_AREA_END GUEST_IMAGE_BASE
/* One PD page per GiB; 64 of them fit below the image base. */
#define GUEST_MAX_MEM_BYTES (64ull << 30)
#define GUEST_MIN_MEM_BYTES (4ull << 20)

/* Segment selectors of the GDT the VMM builds. */
#define GUEST_SEL_KERNEL_CODE 0x08
#define GUEST_SEL_KERNEL_DATA 0x10
#define GUEST_SEL_USER_DATA 0x1b
#define GUEST_SEL_USER_CODE 0x23
#define GUEST_SEL_TSS 0x28

#define GUEST_EXCEPTION_VECTORS 32

#define GUEST_BOOT_MAGIC 0x544f4f424d4d5655ull /* "UVMMBOOT" */
#define GUEST_ARGS_MAX 2048

struct guest_boot_info {
	uint64_t magic;
	uint64_t mem_bytes;  /* guest RAM size */
	uint64_t heap_start; /* first free byte after the image, page aligned */
	uint64_t heap_end;   /* end of free RAM (start of the stack area) */
	uint64_t stack_top;
	uint32_t vm_index; /* 0-based index of this VM in the fleet */
	uint32_t vm_count;
	uint64_t tsc_khz;	   /* 0 if unknown */
	char args[GUEST_ARGS_MAX]; /* NUL-terminated "key=value key=value" */
};

/* Hypercall numbers (value of %eax written to GUEST_PORT_HYPERCALL). */
enum guest_hypercall {
	/* rdi = buffer, rsi = length: console output, whole buffer at once. */
	GUEST_HC_WRITE = 1,
	/* rdi = nanoseconds: the vCPU sleeps on the host. */
	GUEST_HC_SLEEP_NS = 2,
	/* returns the host's CLOCK_MONOTONIC in nanoseconds. */
	GUEST_HC_CLOCK_NS = 3,
	/* rdi = NUL-terminated key (at most 31 chars), rsi = value: a named
	 * figure the VMM adds to this VM's report under "guest". */
	GUEST_HC_REPORT = 4,
	/* rdi = gpa, rsi = length: the workload's main buffer; the VMM uses
	 * it to break statistics down (e.g. pages merged inside it). */
	GUEST_HC_DECLARE_BUFFER = 5,
};

#define GUEST_REPORT_KEY_MAX 32
#define GUEST_REPORT_MAX_KEYS 16

#endif
