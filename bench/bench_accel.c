/*
 * bench_accel.c - the accelerator of a benchmark's vmm runs (bench_accel.h).
 */
#include "bench_accel.h"

#include <stdlib.h>
#include <string.h>

#include "vmm_process.h"

#define BENCH_ACCEL_NAMES 4

static const char *requested = "auto";
static struct {
	char name[16];
	int runs;
} seen[BENCH_ACCEL_NAMES];
static int nseen;
static char kvm_unusable[512];

void bench_accel_option(const char *prog, const char *arg)
{
	if (strcmp(arg, "auto") && strcmp(arg, "kvm") && strcmp(arg, "tcg")) {
		fprintf(stderr, "%s: --accel is auto, kvm or tcg, not '%s'\n", prog, arg);
		exit(2);
	}
	requested = arg;
	/* auto: no --accel at all, so that vmm's own default decides. */
	vmm_process_set_accel(strcmp(arg, "auto") ? arg : NULL);
}

void bench_accel_note(json_object *report)
{
	json_object *v;
	if (!report || !json_object_object_get_ex(report, "accel", &v))
		return;
	const char *name = json_object_get_string(v);
	int i = 0;
	while (i < nseen && strcmp(seen[i].name, name))
		i++;
	if (i == nseen) {
		if (nseen == BENCH_ACCEL_NAMES)
			return;
		snprintf(seen[nseen++].name, sizeof(seen[0].name), "%s", name);
	}
	seen[i].runs++;
	if (!kvm_unusable[0] && json_object_object_get_ex(report, "kvm_unusable", &v))
		snprintf(kvm_unusable, sizeof(kvm_unusable), "%s", json_object_get_string(v));
}

static const char *bench_accel_name(void)
{
	return nseen == 0 ? "unknown" : nseen == 1 ? seen[0].name : "mixed";
}

void bench_accel_print(FILE *f, const char *indent)
{
	fprintf(f, "%saccelerator: %s (--accel %s", indent, bench_accel_name(), requested);
	if (nseen == 0)
		fprintf(f, "; no vmm report named one");
	if (nseen > 1) {
		fprintf(f, "; the vmm runs disagree:");
		for (int i = 0; i < nseen; i++)
			fprintf(f, "%s %d on %s", i ? "," : "", seen[i].runs, seen[i].name);
	}
	if (kvm_unusable[0])
		fprintf(f, "; KVM not usable: %s", kvm_unusable);
	fprintf(f, ")\n");
}

void bench_accel_json_add(json_object *root)
{
	json_object_object_add(root, "accel", json_object_new_string(bench_accel_name()));
	json_object_object_add(root, "accel_requested", json_object_new_string(requested));
	json_object *runs = json_object_new_object();
	for (int i = 0; i < nseen; i++)
		json_object_object_add(runs, seen[i].name, json_object_new_int(seen[i].runs));
	json_object_object_add(root, "accel_runs", runs);
	if (kvm_unusable[0])
		json_object_object_add(root, "kvm_unusable", json_object_new_string(kvm_unusable));
}

const char *bench_accel_json_members(void)
{
	static char text[2048];
	json_object *o = json_object_new_object();
	bench_accel_json_add(o);
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED |
								  JSON_C_TO_STRING_NOSLASHESCAPE);
	/* "{ members }": drop the braces and the spaces next to them. */
	size_t n = strlen(s);
	snprintf(text, sizeof(text), "%.*s", n > 4 ? (int)(n - 4) : 0, s + 2);
	json_object_put(o);
	return text;
}
