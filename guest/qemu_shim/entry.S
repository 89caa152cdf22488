/*
 * entry.S - multiboot header, 32-bit entry into long mode, trap entry stubs
 * and the drop to the guest at CPL 3.
 *
 * Boot: QEMU's multiboot loader copies this flat binary to SHIM_BASE (the
 * header's address fields, flags bit 16, say where), zeroes the bss and jumps
 * to multiboot_entry in 32-bit protected mode, paging off, interrupts off,
 * %eax = 0x2BADB002, %ebx = the multiboot info. We save both, check for long
 * mode, identity-map the first GiB with 2 MiB pages from page tables in our
 * own bss (the final guest tables at 0x8000.. cannot be built yet: QEMU put
 * the multiboot info and memory map at 0x9000), enable PAE, EFER.LME and
 * paging, far-jump into the 64-bit code segment of a small boot GDT, and
 * call shim_main() on the ring-0 stack (top GUEST_RING0_STACK_TOP, 0x7000).
 * main.c later switches to the guest_abi.h GDT, which uses the same kernel
 * selectors (0x08 code, 0x10 data), so no segment needs reloading then.
 * (guest_abi.h is C; asm_defs.h repeats the numbers this file needs.)
 *
 * Traps: every vector 0..47 has a 16-byte stub at trap_stubs + 16 * vector
 * that pushes a zero error code if the CPU did not push one, then the vector,
 * and jumps to trap_common, which saves the general registers into a struct
 * trap_frame (shim.h) and calls trap_dispatch(frame). Whatever the handler
 * changed in the frame (rip, rax) is restored, then iretq. The frame keeps
 * %rsp 16-byte aligned at the call: the CPU aligns before pushing its five
 * words, the stub makes error+vector two words, and there are 15 registers.
 */
#include "asm_defs.h"

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00010003 /* page-aligned modules, memory info, address fields */

	.section .multiboot, "a"
	.balign 4
multiboot_header:
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)
	.long multiboot_header /* header_addr */
	.long __shim_start     /* load_addr */
	.long __shim_load_end  /* load_end_addr */
	.long __shim_bss_end   /* bss_end_addr */
	.long multiboot_entry  /* entry_addr */

	.section .text.boot, "ax"
	.code32
	.globl multiboot_entry
multiboot_entry:
	cli
	cld
	movl $ASM_RING0_STACK_TOP, %esp
	movl %eax, multiboot_magic
	movl %ebx, multiboot_info

	/* Long mode available? (CPUID 0x80000001 EDX bit 29) */
	movl $0x80000000, %eax
	cpuid
	cmpl $0x80000001, %eax
	jb no_long_mode
	movl $0x80000001, %eax
	cpuid
	btl $29, %edx
	jnc no_long_mode

	/* PML4[0] -> PDPT, PDPT[0] -> PD, PD[i] = 2 MiB page i. */
	movl $boot_pdpt + 3, boot_pml4
	movl $boot_pd + 3, boot_pdpt
	xorl %ecx, %ecx
1:	movl %ecx, %eax
	shll $21, %eax
	orl $0x83, %eax /* present, writable, 2 MiB */
	movl %eax, boot_pd(, %ecx, 8)
	incl %ecx
	cmpl $512, %ecx
	jb 1b

	movl %cr4, %eax
	orl $(1 << 5) | (1 << 9) | (1 << 10), %eax /* PAE, OSFXSR, OSXMMEXCPT */
	movl %eax, %cr4
	movl $boot_pml4, %eax
	movl %eax, %cr3
	movl $0xC0000080, %ecx /* EFER */
	rdmsr
	orl $(1 << 8), %eax /* LME */
	wrmsr
	/* PG, WP, NE, ET, MP, PE; EM and TS clear so SSE works. */
	movl $0x80010033, %eax
	movl %eax, %cr0
	lgdt boot_gdtr
	ljmp $ASM_SEL_KERNEL_CODE, $long_entry

no_long_mode:
	movl $no_long_mode_msg, %esi
2:	lodsb
	testb %al, %al
	jz 3f
	outb %al, $ASM_PORT_CONSOLE
	jmp 2b
3:	movl $2, %eax
	outl %eax, $ASM_PORT_EXIT
4:	hlt
	jmp 4b

	.code64
long_entry:
	movw $ASM_SEL_KERNEL_DATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	xorw %ax, %ax
	movw %ax, %fs
	movw %ax, %gs
	movq $ASM_RING0_STACK_TOP, %rsp
	call shim_main
5:	cli
	hlt
	jmp 5b

/* Trap entry stubs: one per vector, 16 bytes apart. */
	.text
	.balign 16
	.globl trap_stubs
trap_stubs:
	.set vec, 0
	.rept 48
	.balign 16
	/* Vectors 8, 10-14, 17, 21, 29 and 30 come with an error code. */
	.if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushq $0
	.endif
	pushq $vec
	jmp trap_common
	.set vec, vec + 1
	.endr

trap_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	cld
	movq %rsp, %rdi
	call trap_dispatch
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp /* vector and error code */
	iretq

/* enter_guest(entry %rdi, stack_top %rsi, boot_info %rdx): CPL 3, interrupts
 * off, IOPL 0 (port access is decided by the TSS bitmap), a clean x87/SSE
 * state and zeroed registers except %rdi = boot info, as our VMM does.
 * (No ldmxcsr: KVM's instruction emulator, which runs ring 0 on this
 * platform, cannot execute it; MXCSR keeps its reset value 0x1f80.) */
	.globl enter_guest
enter_guest:
	fninit /* MXCSR is still at its reset value 0x1f80 (nothing here uses SSE) */
	movw $ASM_SEL_USER_DATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %fs
	movw %ax, %gs
	pushq $ASM_SEL_USER_DATA /* ss */
	pushq %rsi                 /* rsp */
	pushq $0x2                 /* rflags: IF=0, IOPL=0 */
	pushq $ASM_SEL_USER_CODE /* cs */
	pushq %rdi                 /* rip */
	movq %rdx, %rdi
	xorl %eax, %eax
	xorl %ebx, %ebx
	xorl %ecx, %ecx
	xorl %edx, %edx
	xorl %esi, %esi
	xorl %ebp, %ebp
	xorl %r8d, %r8d
	xorl %r9d, %r9d
	xorl %r10d, %r10d
	xorl %r11d, %r11d
	xorl %r12d, %r12d
	xorl %r13d, %r13d
	xorl %r14d, %r14d
	xorl %r15d, %r15d
	iretq

	.section .rodata
no_long_mode_msg:
	.asciz "qemu_shim: this CPU has no long mode (use qemu-system-x86_64)\n@exit 2\n"

	.data
	.balign 8
boot_gdt:
	.quad 0
	.quad 0x00af9b000000ffff /* 0x08: kernel code, 64-bit */
	.quad 0x00cf93000000ffff /* 0x10: kernel data */
boot_gdtr:
	.word boot_gdtr - boot_gdt - 1
	.long boot_gdt
	.globl multiboot_magic, multiboot_info
multiboot_magic:
	.long 0
multiboot_info:
	.long 0

	.bss
	.balign 4096
boot_pml4:
	.skip 4096
boot_pdpt:
	.skip 4096
boot_pd:
	.skip 4096

	.section .note.GNU-stack, "", @progbits
