/*
 * bench_accel.h - the accelerator of a benchmark's vmm runs: the --accel
 * option every benchmark that launches vmm takes, and what the runs used.
 *
 * The option only asks; vmm decides (auto falls back to TCG where /dev/kvm is
 * not usable), so a benchmark reports what the runs' JSON reports say, each
 * run noted with bench_accel_note(), and says so when runs disagree.
 */
#ifndef BENCH_ACCEL_H
#define BENCH_ACCEL_H

#include <json-c/json.h>
#include <stdio.h>

/* The --help line, for the benchmarks' usage texts. */
#define BENCH_ACCEL_HELP                                                                \
	"      --accel auto|kvm|tcg  the accelerator of every vmm run (default auto:\n" \
	"                     KVM where /dev/kvm is usable, else TCG)\n"

/* Takes --accel's argument: auto, kvm or tcg, passed on to every later vmm
 * run (vmm_process_set_accel); anything else exits 2 with one line naming
 * `prog`. */
void bench_accel_option(const char *prog, const char *arg);
/* Records the accelerator a vmm JSON report names ("accel", "kvm_unusable");
 * a NULL report is ignored. */
void bench_accel_note(json_object *report);
/* One line after `indent`: "accelerator: tcg (--accel auto; KVM not usable: ...)". */
void bench_accel_print(FILE *f, const char *indent);
/* The same for --json: "accel" (kvm, tcg, mixed; unknown before any report),
 * "accel_requested", "accel_runs" {name: runs} and, if auto fell back,
 * "kvm_unusable". */
void bench_accel_json_add(json_object *root);
/* Those fields as JSON object members without the braces, for benchmarks
 * that print their JSON with fprintf. */
const char *bench_accel_json_members(void);

#endif
