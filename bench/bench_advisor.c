/*
 * bench_advisor.c - the KSM advisor (scan-time) against Linux's, on the same
 * content in the same run.
 *
 *   bench_advisor [--vms N] [--mb M] [--targets LIST] [--seconds D]
 *                 [--accel auto|kvm|tcg] [--json FILE] [--no-ksmd]
 *
 * For every target scan time T (default 1, 2 and 4 s):
 *
 *   vmm   `vmm run --vms N --ksm --ksm-advisor scan-time
 *         --ksm-advisor-target-scan-time T --ksm-start-ms S pattern -- mb=M
 *         zero=25 shared=50 hold=S+D`: the scanner starts once the guests
 *         have filled and runs D seconds (default 40) with the advisor in
 *         charge of pages_to_scan (sleep_millisecs 20, max CPU 70%, at most
 *         30000 pages, smart scan on: the defaults, as Linux's; at least 50
 *         pages, not 500, see MIN_PAGES_TEXT).
 *   ksmd  Linux's ksmd with advisor_mode scan-time and the same target on
 *         the same content in a host process (ksmd.c), for the same D
 *         seconds, sampled every 20 ms, after a warm-up (run_ksmd).
 *
 * Both are judged over the second half of the D seconds, when the advisor
 * has had a few full scans to settle: the rate it settled on (pages_to_scan
 * at the end), the mean time of the full scans that ended in that half
 * (from the times full_scans moved, to a sample period), and the scanner's
 * CPU in percent of one CPU. A good advisor meets T within its CPU budget
 * and does not swing. The sharing reached is listed as a check that both
 * merged the content.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_accel.h"
#include "ksmd.h"
#include "vmm_process.h"

#define ZERO_PCT 25
#define SHARED_PCT 50
#define MAX_TARGETS 8
#define PAGE_SIZE 4096
/* Below the default 500: with smart scan skipping what never merges, a
 * full scan of this content at 500 pages per batch is shorter than the
 * targets, and the advisor could only sit at its floor. */
#define MIN_PAGES_TEXT "50"

/* One side over the judged half: what the advisor settled on. */
struct judged {
	double scan_s;	/* mean full-scan time; -1: none ended */
	double longest; /* the longest full scan; 0: none measured */
	double cpu_pct; /* scanner CPU, percent of one CPU */
	uint64_t pages_to_scan, full_scans, saved;
	int ok;
};

/* Full scans that ended in the judged half: its length over their number,
 * and the longest (with smart scan, scans come in waves: a few short ones,
 * then one that looks at the pages back from their skips; the longest is
 * the one the target is about). To a sample period. */
struct scan_clock {
	double from, to;
	uint64_t prev, ended;
	double changed_t, longest;
};

static void scan_clock_see(struct scan_clock *c, double t, uint64_t full_scans)
{
	if (full_scans == c->prev)
		return;
	if (t > c->from && t <= c->to) {
		c->ended += full_scans - c->prev;
		if (full_scans == c->prev + 1 && c->changed_t >= 0 && t - c->changed_t > c->longest)
			c->longest = t - c->changed_t;
	}
	c->prev = full_scans;
	c->changed_t = t;
}

static double scan_clock_mean(const struct scan_clock *c)
{
	return c->ended ? (c->to - c->from) / (double)c->ended : -1;
}

static double row_double(json_object *row, size_t i)
{
	return json_object_get_double(json_object_array_get_idx(row, i));
}

static int column(json_object *columns, const char *name)
{
	for (size_t i = 0; i < json_object_array_length(columns); i++)
		if (strcmp(json_object_get_string(json_object_array_get_idx(columns, i)), name) ==
		    0)
			return (int)i;
	return -1;
}

static int run_vmm(int nvms, int mb, int target_s, int seconds, struct judged *j)
{
	int start_ms = 1200 + nvms * mb * 4; /* after every guest has filled */
	char vms[16], mem[16], target[16], start[16], mbarg[32], hold[32];
	snprintf(vms, sizeof(vms), "%d", nvms);
	snprintf(mem, sizeof(mem), "%dM", ((mb + 34) + 1) & ~1);
	snprintf(target, sizeof(target), "%d", target_s);
	snprintf(start, sizeof(start), "%d", start_ms);
	snprintf(mbarg, sizeof(mbarg), "mb=%d", mb);
	snprintf(hold, sizeof(hold), "hold=%d", start_ms + seconds * 1000);
	const char *args[] = {"run",	      "--quiet",
			      "--vms",	      vms,
			      "--mem",	      mem,
			      "--ksm",	      "--ksm-advisor",
			      "scan-time",    "--ksm-advisor-target-scan-time",
			      target,	      "--ksm-advisor-min-pages",
			      MIN_PAGES_TEXT, "--ksm-start-ms",
			      start,	      "--ksm-sample-ms",
			      "20",	      "pattern",
			      "--",	      mbarg,
			      "zero=25",      "shared=50",
			      hold,	      NULL};
	fprintf(stderr, "bench_advisor: vmm, target %d s\n", target_s);
	struct vmm_output o;
	vmm_process_run(&o, VMM_BINARY, args, 1, NULL, 0);
	bench_accel_note(o.report);
	j->ok = 0;
	json_object *ksm = o.report ? json_object_object_get(o.report, "ksm") : NULL;
	json_object *timeline = ksm ? json_object_object_get(ksm, "timeline") : NULL;
	json_object *columns = ksm ? json_object_object_get(ksm, "timeline_columns") : NULL;
	int c_fs = columns ? column(columns, "full_scans") : -1;
	int c_pts = columns ? column(columns, "pages_to_scan") : -1;
	int c_cpu = columns ? column(columns, "cpu_seconds") : -1;
	if (o.status != 0 || !timeline || c_fs < 0 || c_pts < 0 || c_cpu < 0) {
		fprintf(stderr, "bench_advisor: vmm failed (status %d): %s\n", o.status, o.err);
		vmm_output_free(&o);
		return -1;
	}
	double from = start_ms / 1000.0 + seconds / 2.0, to = start_ms / 1000.0 + seconds;
	struct scan_clock clock = {from, to, 0, 0, -1, 0};
	double cpu_from = -1, t_from = 0, cpu_to = 0, t_to = 0;
	for (size_t i = 0; i < json_object_array_length(timeline); i++) {
		json_object *row = json_object_array_get_idx(timeline, i);
		double t = row_double(row, 0);
		if (t > to)
			break;
		uint64_t fs = (uint64_t)row_double(row, (size_t)c_fs);
		scan_clock_see(&clock, t, fs);
		if (t >= from && cpu_from < 0) {
			cpu_from = row_double(row, (size_t)c_cpu);
			t_from = t;
		}
		cpu_to = row_double(row, (size_t)c_cpu);
		t_to = t;
		j->pages_to_scan = (uint64_t)row_double(row, (size_t)c_pts);
		j->full_scans = fs;
		j->saved = (uint64_t)row_double(row, 2) + (uint64_t)row_double(row, 3);
	}
	j->scan_s = scan_clock_mean(&clock);
	j->longest = clock.longest;
	j->cpu_pct =
		t_to > t_from && cpu_from >= 0 ? 100 * (cpu_to - cpu_from) / (t_to - t_from) : -1;
	j->ok = 1;
	vmm_output_free(&o);
	return 0;
}

static int run_ksmd(int nvms, int mb, int target_s, int seconds, struct judged *j)
{
	j->ok = 0;
	pid_t ksmd = ksmd_pid();
	if (ksmd < 0 || ksmd_save())
		return -1;
	char target[16];
	snprintf(target, sizeof(target), "%d", target_s);
	if (ksmd_apply(&ksmd_normal_rate) || ksmd_write_knob("advisor_mode", "scan-time") ||
	    ksmd_write_knob("advisor_target_scan_time", target) ||
	    ksmd_write_knob("advisor_max_cpu", "70") ||
	    ksmd_write_knob("advisor_min_pages_to_scan", MIN_PAGES_TEXT)) {
		fprintf(stderr, "bench_advisor: this kernel's KSM has no scan-time advisor "
				"(Linux >= 6.9), or this is not root\n");
		ksmd_restore();
		return -1;
	}
	fprintf(stderr, "bench_advisor: ksmd, target %d s\n", target_s);
	struct pattern_params p = {.zero_pct = ZERO_PCT, .shared_pct = SHARED_PCT, .run_pages = 1};
	/* Linux's advisor starts from a zeroed context, so its first advice
	 * takes all of ksmd's CPU time since boot as that one scan's: on a
	 * host where ksmd has worked before, pages_to_scan drops to
	 * advisor_max_cpu (70) and the next full scan takes minutes. Two full
	 * scans over one mergeable page first give it a real CPU baseline. */
	pid_t warm = ksmd_host_start(1, PAGE_SIZE, ksmd_fill_pattern, &p);
	if (warm < 0) {
		ksmd_restore();
		return -1;
	}
	uint64_t warm0 = ksmd_read_counter("full_scans");
	ksmd_set_run(1);
	for (int i = 0; i < 300 && ksmd_read_counter("full_scans") < warm0 + 2; i++)
		usleep(10000);
	ksmd_set_run(0);
	ksmd_host_stop(warm);
	pid_t child = ksmd_host_start(nvms, (size_t)mb << 20, ksmd_fill_pattern, &p);
	if (child < 0) {
		ksmd_restore();
		return -1;
	}
	uint64_t fs0 = ksmd_read_counter("full_scans");
	double cpu0 = proc_cpu_seconds(ksmd), t0 = monotonic_seconds();
	ksmd_set_run(1);
	struct scan_clock clock = {seconds / 2.0, seconds, fs0, 0, -1, 0};
	double cpu_from = -1, t_from = 0;
	for (;;) {
		usleep(20000);
		double t = monotonic_seconds() - t0;
		uint64_t fs = ksmd_read_counter("full_scans");
		scan_clock_see(&clock, t, fs);
		double cpu = proc_cpu_seconds(ksmd) - cpu0;
		if (t >= seconds / 2.0 && cpu_from < 0) {
			cpu_from = cpu;
			t_from = t;
		}
		if (t >= seconds) {
			j->cpu_pct = 100 * (cpu - cpu_from) / (t - t_from);
			j->full_scans = fs - fs0;
			break;
		}
	}
	j->pages_to_scan = ksmd_read_counter("pages_to_scan");
	j->saved = ksmd_read_counter("pages_sharing") + ksmd_read_counter("ksm_zero_pages");
	j->scan_s = scan_clock_mean(&clock);
	j->longest = clock.longest;
	j->ok = 1;
	ksmd_host_stop(child);
	ksmd_restore();
	return 0;
}

static void print_judged(const struct judged *j, const char *fmt, double v, int width)
{
	if (!j->ok || v < 0)
		printf(" %*s", width, "-");
	else
		printf(" %*.*f", width, strcmp(fmt, "%.0f") == 0 ? 0 : 2, v);
}

static json_object *judged_json(const struct judged *j)
{
	if (!j->ok)
		return NULL;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "full_scan_seconds", json_object_new_double(j->scan_s));
	json_object_object_add(o, "longest_full_scan_seconds", json_object_new_double(j->longest));
	json_object_object_add(o, "cpu_percent", json_object_new_double(j->cpu_pct));
	json_object_object_add(o, "pages_to_scan",
			       json_object_new_int64((int64_t)j->pages_to_scan));
	json_object_object_add(o, "full_scans", json_object_new_int64((int64_t)j->full_scans));
	json_object_object_add(o, "saved_pages", json_object_new_int64((int64_t)j->saved));
	return o;
}

int main(int argc, char **argv)
{
	int nvms = 8, mb = 64, seconds = 40, no_ksmd = 0, ntargets = 0;
	int targets[MAX_TARGETS];
	const char *json_path = NULL;
	static const struct option options[] = {{"vms", required_argument, NULL, 'n'},
						{"mb", required_argument, NULL, 'm'},
						{"targets", required_argument, NULL, 't'},
						{"seconds", required_argument, NULL, 's'},
						{"accel", required_argument, NULL, 'a'},
						{"json", required_argument, NULL, 'j'},
						{"no-ksmd", no_argument, NULL, 'k'},
						{"help", no_argument, NULL, 'h'},
						{0, 0, 0, 0}};
	const char *usage =
		"usage: bench_advisor [--vms N] [--mb M] [--targets LIST] [--seconds D]\n"
		"                     [--accel auto|kvm|tcg] [--json FILE] [--no-ksmd]\n\n"
		"The KSM advisor (scan-time) against Linux's on the same content: for each\n"
		"target scan time, the pages_to_scan it settles on, the full-scan time it\n"
		"reaches and its CPU, over the second half of D seconds.\n\n"
		"  -n, --vms N         guests (default 8, at most 64)\n"
		"  -m, --mb M          MiB each guest fills (default 64)\n"
		"  -t, --targets LIST  target scan times in whole seconds (default 1,2,4)\n"
		"  -s, --seconds D     how long each side runs (default 40)\n" BENCH_ACCEL_HELP
		"  -j, --json FILE     every figure as JSON\n"
		"  -k, --no-ksmd       skip Linux's ksmd\n";
	int c;
	while ((c = getopt_long(argc, argv, "n:m:t:s:j:kh", options, NULL)) != -1) {
		switch (c) {
		case 'n':
			nvms = atoi(optarg);
			break;
		case 'm':
			mb = atoi(optarg);
			break;
		case 't':
			for (char *tok = strtok(optarg, ","); tok && ntargets < MAX_TARGETS;
			     tok = strtok(NULL, ","))
				targets[ntargets++] = atoi(tok);
			break;
		case 's':
			seconds = atoi(optarg);
			break;
		case 'a':
			bench_accel_option("bench_advisor", optarg);
			break;
		case 'j':
			json_path = optarg;
			break;
		case 'k':
			no_ksmd = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (!ntargets) {
		targets[ntargets++] = 1;
		targets[ntargets++] = 2;
		targets[ntargets++] = 4;
	}
	for (int i = 0; i < ntargets; i++)
		if (targets[i] < 1 || targets[i] > 600) {
			fprintf(stderr, "bench_advisor: a target is 1 to 600 seconds, not %d\n",
				targets[i]);
			return 2;
		}
	if (nvms < 1 || nvms > 64 || mb < 1 || seconds < 4) {
		fprintf(stderr, "bench_advisor: --vms 1..64, --mb >= 1, --seconds >= 4\n");
		return 2;
	}
	if (!no_ksmd)
		ksmd_restore_on_signals();
	struct judged ours[MAX_TARGETS], theirs[MAX_TARGETS];
	int failed = 0;
	for (int i = 0; i < ntargets; i++) {
		if (run_vmm(nvms, mb, targets[i], seconds, &ours[i]))
			failed = 1;
		theirs[i].ok = 0;
		if (!no_ksmd && run_ksmd(nvms, mb, targets[i], seconds, &theirs[i]))
			no_ksmd = 1; /* said why; the rest without it */
	}

	printf("bench_advisor: %d VMs x %d MiB `pattern` (zero=%d shared=%d), KSM advisor "
	       "scan-time (min pages %s), %d s per run, judged over the last %d s\n",
	       nvms, mb, ZERO_PCT, SHARED_PCT, MIN_PAGES_TEXT, seconds, seconds / 2);
	bench_accel_print(stdout, "  ");
	printf("  target | mean full scan s | longest scan s   | CPU %%            | pages_to_scan "
	       "   | full scans       | saved pages\n");
	printf("       s |    vmm     ksmd  |    vmm     ksmd  |    vmm     ksmd  |    vmm     "
	       "ksmd  |    vmm     ksmd  |    vmm     ksmd\n");
	for (int i = 0; i < ntargets; i++) {
		const struct judged *a = &ours[i], *b = &theirs[i];
		printf("  %6d |", targets[i]);
		print_judged(a, "%.2f", a->scan_s, 6);
		print_judged(b, "%.2f", b->scan_s, 8);
		printf("  |");
		print_judged(a, "%.2f", a->longest > 0 ? a->longest : -1, 6);
		print_judged(b, "%.2f", b->longest > 0 ? b->longest : -1, 8);
		printf("  |");
		print_judged(a, "%.2f", a->cpu_pct, 6);
		print_judged(b, "%.2f", b->cpu_pct, 8);
		printf("  |");
		print_judged(a, "%.0f", (double)a->pages_to_scan, 6);
		print_judged(b, "%.0f", (double)b->pages_to_scan, 8);
		printf("  |");
		print_judged(a, "%.0f", (double)a->full_scans, 6);
		print_judged(b, "%.0f", (double)b->full_scans, 8);
		printf("  |");
		print_judged(a, "%.0f", (double)a->saved, 6);
		print_judged(b, "%.0f", (double)b->saved, 8);
		printf("\n");
	}
	printf("  (mean: the judged half's length / the full scans that ended in it; longest: "
	       "to the\n   20 ms sample period; -: none measured; ksmd's CPU from %s)\n",
	       proc_cpu_source());

	if (json_path) {
		json_object *root = json_object_new_object();
		json_object_object_add(root, "vms", json_object_new_int(nvms));
		json_object_object_add(root, "mb", json_object_new_int(mb));
		json_object_object_add(root, "seconds", json_object_new_int(seconds));
		bench_accel_json_add(root);
		json_object *rows = json_object_new_array();
		for (int i = 0; i < ntargets; i++) {
			json_object *row = json_object_new_object();
			json_object_object_add(row, "target_seconds",
					       json_object_new_int(targets[i]));
			json_object_object_add(row, "vmm", judged_json(&ours[i]));
			json_object_object_add(row, "ksmd", judged_json(&theirs[i]));
			json_object_array_add(rows, row);
		}
		json_object_object_add(root, "targets", rows);
		if (json_object_to_file_ext(json_path, root, JSON_C_TO_STRING_PRETTY)) {
			fprintf(stderr, "bench_advisor: cannot write %s\n", json_path);
			failed = 1;
		}
		json_object_put(root);
	}
	return failed;
}
