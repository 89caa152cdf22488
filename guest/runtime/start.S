/*
 * start.S - guest entry point. The VMM enters here at CPL 3 with %rdi
 * pointing at the boot info and %rsp at the top of the user stack.
 */
	.section .text.start, "ax"
	.globl _start
_start:
	xor %rbp, %rbp
	and $-16, %rsp
	call guest_runtime_start
1:	jmp 1b
	.section .note.GNU-stack, "", @progbits
