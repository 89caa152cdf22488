/*
 * x86_setup.h - the machine state a guest starts in.
 *
 * x86_build_boot_area() writes the boot area of guest_abi.h into guest
 * memory: identity page tables for all of RAM (2 MiB pages, except a 4 KiB
 * table for the first 2 MiB so that page 0 stays unmapped and the boot area
 * is supervisor-only), a GDT with kernel and user 64-bit segments and a TSS
 * whose RSP0 is the ring-0 stack, an IDT of 32 interrupt gates pointing at
 * tiny ring-0 stubs, and the boot info block.
 *
 * Every accessed and dirty bit in the page tables and every descriptor's
 * accessed bit is preset, so the CPU never writes the boot area on its own:
 * those pages are static once built.
 *
 * Each exception stub is `mov $vector, %eax; mov $PORT, %dx; out %eax, %dx;
 * hlt`: a handful of ring-0 instructions, which kvm_pvm emulates. The VMM
 * then reads the exception frame from the ring-0 stack. (The TCG backend
 * sees exceptions in the emulator instead; the stubs are then never run.)
 *
 * The CPL-3 entry trampoline: an emulated CPU whose privilege level cannot
 * be set directly (TCG) starts at CPL 0 on an `iretq` in the stubs page,
 * with RSP at an interrupt frame on the ring-0 stack that leads to the ELF
 * entry at CPL 3; a `hlt` after it is the address the guest never executes.
 * KVM loads the CPL-3 state directly and ignores both.
 *
 * Port access from CPL 3: we set RFLAGS.IOPL=3, but the kvm_pvm hypervisor
 * of this platform does not keep it (the guest reads IOPL 0), so the TSS
 * also carries an I/O permission bitmap allowing ports 0..0x5ff. Either
 * alone suffices on hardware KVM; the bitmap is what works here.
 *
 * x86_initial_state() describes the vCPU in 64-bit mode at CPL 3 at the ELF
 * entry, %rdi = boot info, %rsp = top of the user stack, neutrally (accel.h)
 * for either backend.
 */
#ifndef VMM_X86_SETUP_H
#define VMM_X86_SETUP_H

#include <stdint.h>

#include "accel.h"
#include "guest_abi.h"
#include "x86_arch.h" /* x86_vector_name(), x86_vector_has_error_code() */

struct guest_memory;

/* entry: the ELF entry point, for the trampoline's interrupt frame. */
int x86_build_boot_area(struct guest_memory *mem, const struct guest_boot_info *info,
			uint64_t entry);
void x86_initial_state(struct vcpu_state *state, uint64_t entry, uint64_t stack_top);

/* What the guest's own page tables above say about RAM, for a CPU that walks
 * mm's tables instead (mm's owned realiser): page 0 absent, the boot area
 * CPL 0 only except the boot info page. */
struct guest_cpu_range;
void x86_cpu_ranges(struct guest_cpu_range *ranges, unsigned n);

#endif
