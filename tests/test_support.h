/*
 * test_support.h - helpers for end-to-end tests: run the vmm binary as a
 * child process, capture its exit status, stdout and stderr, and read its
 * JSON report.
 */
#ifndef TEST_SUPPORT_H
#define TEST_SUPPORT_H

#include <json-c/json.h>
#include <stdint.h>
#include <sys/types.h>

struct vmm_output {
	int status; /* exit status, or 128+signal */
	char *out;
	char *err;
	json_object *report; /* parsed --json report, if requested */
};

/* Runs VMM_BINARY with the NULL-terminated argv (without the program name).
 * If `json` is set, adds --json TMPFILE and parses it into out->report.
 * Extra environment entries ("KEY=value") may be passed in env (NULL ok).
 * If uid is not 0, the child drops to that uid/gid before exec. */
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
void vmm_output_free(struct vmm_output *out);

/* Report accessors: the VM at index i, and integer fields by path. */
json_object *report_vm(json_object *report, int i);
int64_t json_int(json_object *obj, const char *key);
int64_t json_path_int(json_object *root, const char *path); /* "a.b.c" */
const char *json_str(json_object *obj, const char *key);

/* Writes data to a new temporary file; returns its malloc'd path. */
char *write_temp_file(const void *data, size_t len, const char *suffix);

/* Whether /dev/kvm can be used; end-to-end suites skip with a reason if not. */
int kvm_usable(void);

#endif

/* A minimal static ELF64 x86-64 image with one executable PT_LOAD segment
 * at `vaddr` holding `code` (code_len bytes) and mem_bytes of memory. The
 * fields can be edited afterwards to make it bad. Returns its size. */
#include <elf.h>
struct crafted_elf {
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	uint8_t code[64];
};
size_t craft_elf(struct crafted_elf *e, uint64_t vaddr, uint64_t mem_bytes);
