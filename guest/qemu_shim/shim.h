/*
 * shim.h - the QEMU boot shim: shared declarations.
 *
 * The shim is a multiboot v1 kernel (a flat binary loaded at SHIM_BASE) that
 * runs one unmodified guest ELF image of this project under QEMU, in the same
 * machine state our VMM gives it (guest_abi.h). Boot sequence:
 *
 *   entry.S   32-bit multiboot entry: temporary identity map of the first
 *             GiB, long mode, then shim_main() on the ring-0 stack (0x7000).
 *   main.c    reads the multiboot info (command line, RAM, the guest ELF
 *             module), builds the guest_abi.h boot area (x86.c), calibrates
 *             the TSC (timer.c), makes guest RAM read as zeroes and loads the
 *             ELF (both at CPL 3, see main.c), writes the boot info and
 *             enters the guest at CPL 3.
 *   trap.c    everything after that: the guest's `out` to a port it may not
 *             use directly raises #GP; trap.c emulates the port (hypercalls,
 *             exit) and returns after the instruction. Other exceptions end
 *             the run with exit code 3.
 *
 * Invariants: ring-0 code runs only at boot and inside traps, always with
 * interrupts off except inside the sleep loop's `sti; hlt`; it is built with
 * -mgeneral-regs-only so it never touches the guest's SSE/x87 state, and
 * with -mno-red-zone because the timer interrupt lands on the same stack.
 */
#ifndef QEMU_SHIM_H
#define QEMU_SHIM_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "guest_abi.h"

#define SHIM_BASE 0x10000ull /* load address of the flat binary (shim.ld) */
#define SHIM_TRAP_VECTORS 48 /* 32 exceptions + 16 PIC interrupts */
#define SHIM_IRQ_BASE 32     /* vector of IRQ 0 after the PIC is remapped */

/* Exit codes the shim itself uses (the guest's own codes pass through). */
#define SHIM_EXIT_USAGE 2     /* bad shim option, missing or bad guest image */
#define SHIM_EXIT_EXCEPTION 3 /* guest exception or a hypercall it got wrong */

/* Registers as trap_common (entry.S) leaves them on the ring-0 stack. */
struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

/* --- entry.S --- */
extern uint32_t multiboot_magic, multiboot_info;
extern const uint8_t trap_stubs[];     /* SHIM_TRAP_VECTORS stubs, 16 bytes each */
extern const uint8_t __shim_bss_end[]; /* end of the shim image in memory */
__attribute__((noreturn)) void enter_guest(uint64_t entry, uint64_t stack_top, uint64_t boot_info);

/* --- main.c: what the rest of the shim needs to know about the guest --- */
extern uint64_t guest_mem_bytes;
/* Set while the shim's own boot work runs at CPL 3 (main.c); that phase
 * ends with an `out` of SHIM_HC_BOOT_DONE to the hypercall port, which
 * trap.c turns into a call of shim_boot_done(). */
extern int boot_user_phase;
#define SHIM_HC_BOOT_DONE 0x51000001u
__attribute__((noreturn)) void shim_boot_done(void);
/* Whether [gpa, gpa+len) lies in guest RAM the guest may name (not page 0). */
int guest_range_ok(uint64_t gpa, uint64_t len);

/* --- x86.c --- */
void x86_build_boot_area(uint64_t mem_bytes);
void x86_load_boot_area(void);
/* Makes the 4 KiB pages of [start, end) (below 2 MiB) user-accessible or
 * supervisor-only again, and flushes the TLB. */
void x86_set_user(uint64_t start, uint64_t end, int user);

/* --- timer.c --- */
extern uint64_t tsc_khz; /* calibrated; 0 if the PIT did not answer */
void timer_init(uint64_t tsc_at_entry);
uint64_t timer_clock_ns(void); /* since shim entry */
void timer_sleep_ns(uint64_t ns);
void timer_irq(unsigned irq);

/* --- console.c --- */
void con_write(const char *buf, size_t len);
void con_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void con_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* Starts a new line unless the console is already at the start of one. */
void con_line_start(void);

/* --- trap.c --- */
void trap_dispatch(struct trap_frame *f);
__attribute__((noreturn)) void shim_exit(uint32_t code);

/* --- port I/O and CPU helpers --- */
static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

/* The C library pieces the compiler may call (lib.c). */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
