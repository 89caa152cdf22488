/*
 * test_support.c - helpers for the Criterion suites.
 */
#include "test_support.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef VMM_BINARY
#error "VMM_BINARY must point at the vmm executable"
#endif

static void deadline_passed(int sig)
{
	(void)sig;
	static const char message[] = "test_deadline: the test ran past its deadline (a deadlock "
				      "or a hang?)\n";
	if (write(STDERR_FILENO, message, sizeof(message) - 1) < 0) {
		/* nothing more to do: it aborts either way */
	}
	abort();
}

void test_deadline(unsigned seconds)
{
	signal(SIGALRM, deadline_passed);
	alarm(seconds);
}

const char *test_accel(void)
{
	const char *accel = getenv("VMM_TEST_ACCEL");
	return accel && *accel ? accel : NULL;
}

const char *test_tcg_mmu(void)
{
	const char *mmu = getenv("VMM_TEST_TCG_MMU");
	return mmu && *mmu ? mmu : NULL;
}

bool test_owned_page_table(void)
{
	const char *accel = test_accel(), *mmu = test_tcg_mmu();
	return accel && strcmp(accel, "tcg") == 0 && !(mmu && strcmp(mmu, "host") == 0);
}

const char *test_vmm_binary(void)
{
	const char *vmm = getenv("VMM_TEST_VMM");
	return vmm && *vmm ? vmm : VMM_BINARY;
}

void vmm_run_full(struct vmm_output *out, const char *const *argv, int json, const char *const *env,
		  uid_t uid)
{
	vmm_process_set_accel(test_accel());
	vmm_process_set_tcg_mmu(test_tcg_mmu());
	vmm_process_run(out, test_vmm_binary(), argv, json, env, uid);
}

char *vmm_ctl(const char *fleet, int *status, const char *verb, const char *key, const char *value)
{
	struct vmm_output o;
	const char *argv[] = {"ctl", fleet, verb, key, value, NULL};
	vmm_run_full(&o, argv, 0, NULL, 0);
	*status = o.status;
	char *text = strdup(o.status == 0 ? o.out : o.err);
	vmm_output_free(&o);
	return text;
}

int64_t vm_mem(json_object *report, int vm, const char *key)
{
	char path[128];
	snprintf(path, sizeof(path), "memory.%s", key);
	return json_path_int(report_vm(report, vm), path);
}

void expect_input_error(struct vmm_output *o, const char *why)
{
	cr_assert_eq(o->status, 2, "exit status for '%s' (stderr: %s)", why, o->err);
	cr_assert(strstr(o->err, why), "stderr '%s' should mention '%s'", o->err, why);
	cr_assert_eq(strchr(o->err, '\n'), o->err + strlen(o->err) - 1, "one line of error: '%s'",
		     o->err);
	vmm_output_free(o);
}

size_t craft_elf(struct crafted_elf *e, uint64_t vaddr, uint64_t mem_bytes)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->eh.e_ident, ELFMAG, SELFMAG);
	e->eh.e_ident[EI_CLASS] = ELFCLASS64;
	e->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	e->eh.e_ident[EI_VERSION] = EV_CURRENT;
	e->eh.e_type = ET_EXEC;
	e->eh.e_machine = EM_X86_64;
	e->eh.e_version = EV_CURRENT;
	e->eh.e_entry = vaddr;
	e->eh.e_phoff = offsetof(struct crafted_elf, ph);
	e->eh.e_ehsize = sizeof(Elf64_Ehdr);
	e->eh.e_phentsize = sizeof(Elf64_Phdr);
	e->eh.e_phnum = 1;
	e->ph.p_type = PT_LOAD;
	e->ph.p_flags = PF_R | PF_X;
	e->ph.p_offset = offsetof(struct crafted_elf, code);
	e->ph.p_vaddr = e->ph.p_paddr = vaddr;
	e->ph.p_filesz = sizeof(e->code);
	e->ph.p_memsz = mem_bytes;
	/* mov $42, %eax; mov $0xf4, %dx; out %eax, %dx: exit with code 42 */
	const uint8_t code[] = {0xb8, 42, 0, 0, 0, 0x66, 0xba, 0xf4, 0x00, 0xef, 0xeb, 0xfe};
	memcpy(e->code, code, sizeof(code));
	return sizeof(*e);
}
