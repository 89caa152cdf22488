/*
 * test_support.h - helpers for the Criterion suites: run the vmm binary
 * (see vmm_process.h), craft ELF images.
 *
 * End-to-end suites run once per accelerator: CTest runs each with
 * VMM_TEST_ACCEL=tcg, and again with VMM_TEST_ACCEL=kvm where /dev/kvm is
 * usable (tests/kvm_pass.sh skips that pass with the reason elsewhere).
 * Every `vmm run` of a suite then gets that --accel unless it names one.
 * The TCG pass runs on the owned page table (vmm's default there); a third
 * pass, VMM_TEST_TCG_MMU=host, runs it on host mappings and userfaultfd,
 * the code KVM uses, so that code is tested on machines without KVM.
 */
#ifndef TEST_SUPPORT_H
#define TEST_SUPPORT_H

#include <elf.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm_process.h"

/* vmm_process_run() on the vmm binary under test. */
void vmm_run_full(struct vmm_output *out, const char *const *argv, int json, const char *const *env,
		  uid_t uid);
#define vmm_run(out, ...)                                        \
	do {                                                     \
		const char *const args_[] = {__VA_ARGS__, NULL}; \
		vmm_run_full((out), args_, 0, NULL, 0);          \
	} while (0)
#define vmm_run_json(out, ...)                                   \
	do {                                                     \
		const char *const args_[] = {__VA_ARGS__, NULL}; \
		vmm_run_full((out), args_, 1, NULL, 0);          \
	} while (0)

/* The accelerator of this pass ("tcg", "kvm"), or NULL (vmm's auto). */
const char *test_accel(void);
/* The --tcg-mmu of this pass ("owned", "host"), or NULL (vmm's default). */
const char *test_tcg_mmu(void);
/* Whether this pass's guests run on the owned page table (TCG, not host). */
bool test_owned_page_table(void);

/* The vmm binary under test: $VMM_TEST_VMM if set (the ThreadSanitizer
 * pass points the suites at its instrumented build), else this build's. */
const char *test_vmm_binary(void);

/* Ends the test with SIGABRT and a message on stderr if it still runs
 * `seconds` from now: a deadlock or hang fails instead of stalling the
 * suite. (Criterion's own .timeout leaks in its runner once a suite has
 * several, which LeakSanitizer reports in the sanitizer pass.) */
void test_deadline(unsigned seconds);

/* A report figure of VM vm under "memory" (e.g. "rss_pages"). */
/* `vmm ctl FLEET VERB [KEY [VALUE]]`: its stdout, or its stderr if it
 * failed (malloc'd); the exit status in *status. */
char *vmm_ctl(const char *fleet, int *status, const char *verb, const char *key, const char *value);
int64_t vm_mem(json_object *report, int vm, const char *key);

/* Asserts that a vmm run was refused as bad input: exit status 2 and one
 * line on stderr that contains `why`; then frees the output. */
void expect_input_error(struct vmm_output *o, const char *why);

/* A minimal static ELF64 x86-64 image with one executable PT_LOAD segment
 * at `vaddr` holding a few instructions (exit with code 42) and mem_bytes of
 * memory. The fields can be edited afterwards to make it bad. Returns its
 * size. */
struct crafted_elf {
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	uint8_t code[64];
};
size_t craft_elf(struct crafted_elf *e, uint64_t vaddr, uint64_t mem_bytes);

#endif
