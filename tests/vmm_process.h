/*
 * vmm_process.h - running the vmm binary as a child process, for tests and
 * benchmarks: exit status, stdout, stderr, and the parsed --json report.
 */
#ifndef VMM_PROCESS_H
#define VMM_PROCESS_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vmm_output {
	int status; /* exit status, or 128+signal */
	char *out;
	char *err;
	json_object *report; /* parsed --json report, if requested */
	double wall_seconds; /* of the whole process */
};

/* Runs `binary` with the NULL-terminated argv (without the program name).
 * If `json` is set, adds --json TMPFILE after the subcommand and parses it
 * into out->report. Extra environment entries ("KEY=value") may be passed in
 * env (NULL ok). If uid is not 0, the child drops to that uid/gid first. */
void vmm_process_run(struct vmm_output *out, const char *binary, const char *const *argv, int json,
		     const char *const *env, uid_t uid);
/* Every later `run` that does not choose its accelerator gets --accel
 * `accel` (kvm, tcg; NULL: vmm's own default, auto). */
void vmm_process_set_accel(const char *accel);
const char *vmm_process_accel(void);
/* Every later `run` that does not choose gets --tcg-mmu `mmu` (NULL: none). */
void vmm_process_set_tcg_mmu(const char *mmu);
void vmm_output_free(struct vmm_output *out);

/* Report accessors: the VM at index i, and fields by key or "a.b.c" path. */
json_object *report_vm(json_object *report, int i);
int64_t json_int(json_object *obj, const char *key);
int64_t json_path_int(json_object *root, const char *path);
double json_path_double(json_object *root, const char *path);
const char *json_str(json_object *obj, const char *key);

/* CLOCK_MONOTONIC in seconds; a qsort comparator for doubles. */
double monotonic_seconds(void);
int compare_doubles(const void *a, const void *b);

/* Writes data to a new temporary file; returns its malloc'd path. The file
 * is also removed when the process exits (remove_at_exit). */
char *write_temp_file(const void *data, size_t len, const char *suffix);

/* Removes `path` when this process exits, also when an assertion ends a
 * test (or its suite's set-up) before its own clean-up could run. Call it
 * before creating the file. */
void remove_at_exit(const char *path);

#endif
