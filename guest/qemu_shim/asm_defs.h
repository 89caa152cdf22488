/*
 * asm_defs.h - the guest_abi.h numbers entry.S needs, as plain defines
 * (guest_abi.h itself is C). x86.c checks at compile time that they agree.
 */
#ifndef QEMU_SHIM_ASM_DEFS_H
#define QEMU_SHIM_ASM_DEFS_H

#define ASM_RING0_STACK_TOP 0x7000
#define ASM_SEL_KERNEL_CODE 0x08
#define ASM_SEL_KERNEL_DATA 0x10
#define ASM_SEL_USER_DATA 0x1b
#define ASM_SEL_USER_CODE 0x23
#define ASM_PORT_CONSOLE 0xE9
#define ASM_PORT_EXIT 0xF4

#endif
