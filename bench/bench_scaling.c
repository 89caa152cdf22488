/*
 * bench_scaling.c - our KSM from 1 to 64 VMs: the dedup ratio it reaches and
 * the scanner CPU it spends, each next to a baseline from the same run.
 *
 *   bench_scaling [--max-vms N] [--counts LIST] [--mb M] [--accel auto|kvm|tcg]
 *                 [--json FILE] [--out DIR] [--no-ksmd]
 *
 * For every VM count N (default 1, 2, 4, 8, 16, 32, 64):
 *
 *   vmm   `vmm run --vms N --mem 16M --ksm --ksm-rate max --ksm-start-ms S
 *         pattern -- mb=8 zero=25 shared=50 hold=H`. The scanner starts (S)
 *         after every guest has filled its memory (checked against the
 *         guests' fill_done_ns) and t=0 is that start. From the report's KSM
 *         timeline: the sharing reached (pages_sharing + ksm_zero_pages at
 *         the largest saving) and the scanner CPU seconds to 99% of the ideal
 *         and over the whole hold. On TCG the run is made twice: on the
 *         owned page table (the default there) and on host mappings
 *         (--tcg-mmu host, the realiser KVM uses: a merge is an mmap and a
 *         uffd registration per run of pages).
 *   ideal the exact dedup ratio of that content: N guests of P pages each
 *         hold N x P pages, of which (N-1) x shared + N x zero need no page of
 *         their own (pattern_content.h counts them exactly), so
 *         ideal ratio = N x P / (N x P - ideal sharing). The measured ratio
 *         is computed the same way from the sharing reached. The report's own
 *         ratio (resident guest pages / pool frames in use, which also counts
 *         each guest's image, stack and page tables and the 512-frame zero
 *         run) is listed too.
 *   ksmd  Linux's ksmd at max rate (pages_to_scan 100000, sleep_millisecs 0)
 *         merging the same content in a host process (bench_ksm's method,
 *         ksmd.c): its CPU seconds to 99% of the same ideal.
 *
 * One table, ratios vmm/baseline, a gnuplot PNG of both series (--out), and
 * --json with every row. Every vmm run uses --accel (default auto); the
 * output names the accelerator the runs used.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_accel.h"
#include "ksm_curve.h"
#include "ksmd.h"
#include "pattern_content.h"
#include "vmm_process.h"

#define MAX_COUNTS 16
#define ZERO_PCT 25
#define SHARED_PCT 50

struct row {
	int vms;
	uint64_t content_pages, ideal_pages, saved_pages;
	double ideal_ratio, ratio, report_ratio;
	double vmm_t99, vmm_cpu99, vmm_cpu_hold, fill_margin_s;
	char mmu[16];	    /* the realiser of that run: "owned" or "host" */
	double host_cpu99;  /* on TCG, the same run on host mappings (KVM's); -1: none */
	double ns_per_page; /* scanner CPU per page scanned, over the whole run */
	/* scan() alone (hashing, lookups, the walk; not merging), per page it
	 * looked at (scanned or skipped by smart scan), and per page scanned */
	double scan_ns_per_seen, scan_ns_per_scanned;
	int guests_ok;
	int ksmd_ran;
	double ksmd_t99, ksmd_cpu99;
	uint64_t ksmd_reached;
};

static int run_vmm(int nvms, int mb, int mem_mb, uint64_t ideal, struct row *r)
{
	/* After every guest has filled, and by more than the 100 ms our
	 * scanner leaves a page alone after a write (stable_age_ms). */
	int start_ms = 1200 + nvms * mb * 4;
	int hold_ms = start_ms + 1500 + nvms * 60; /* the scan, with room to spare */
	char vms[16], mem[16], start[16], mbarg[32], hold[32], zero[16], shared[16];
	snprintf(vms, sizeof(vms), "%d", nvms);
	snprintf(mem, sizeof(mem), "%dM", mem_mb);
	snprintf(start, sizeof(start), "%d", start_ms);
	snprintf(mbarg, sizeof(mbarg), "mb=%d", mb);
	snprintf(hold, sizeof(hold), "hold=%d", hold_ms);
	snprintf(zero, sizeof(zero), "zero=%d", ZERO_PCT);
	snprintf(shared, sizeof(shared), "shared=%d", SHARED_PCT);
	const char *args[] = {"run",   "--quiet",
			      "--vms", vms,
			      "--mem", mem,
			      "--ksm", "--ksm-rate",
			      "max",   "--ksm-start-ms",
			      start,   "--ksm-sample-ms",
			      "2",     "pattern",
			      "--",    mbarg,
			      zero,    shared,
			      hold,    NULL};
	fprintf(stderr,
		"bench_scaling: vmm run --vms %d --mem %s --ksm --ksm-rate max "
		"--ksm-start-ms %s pattern -- %s %s %s %s\n",
		nvms, mem, start, mbarg, zero, shared, hold);
	struct vmm_output o;
	vmm_process_run(&o, VMM_BINARY, args, 1, NULL, 0);
	bench_accel_note(o.report);
	if (!o.report || (o.status != 0 && o.status != 1)) {
		fprintf(stderr, "bench_scaling: vmm failed (status %d): %s\n", o.status, o.err);
		vmm_output_free(&o);
		return -1;
	}
	double start_s = start_ms / 1000.0;
	struct ksm_curve c = {0};
	ksm_curve_from_vmm_report(o.report, start_s, &c);
	struct ksm_milestones m;
	ksm_curve_milestones(&c, ideal, 1e9, &m);
	r->vmm_t99 = m.t99;
	r->vmm_cpu99 = m.cpu99;
	json_object *mmu = json_object_object_get(o.report, "mmu");
	snprintf(r->mmu, sizeof(r->mmu), "%s", mmu ? json_object_get_string(mmu) : "");
	r->vmm_cpu_hold = c.n ? c.p[c.n - 1].cpu : -1;
	ksm_curve_free(&c);
	double cpu_all = json_path_double(o.report, "ksm.cpu_seconds");
	int64_t scanned = json_path_int(o.report, "ksm.pages_scanned");
	r->ns_per_page = scanned > 0 ? cpu_all * 1e9 / (double)scanned : -1;
	double scan_s = json_path_double(o.report, "ksm.seconds.scan");
	int64_t skipped = json_path_int(o.report, "ksm.pages_skipped");
	r->scan_ns_per_seen =
		scanned + skipped > 0 ? scan_s * 1e9 / (double)(scanned + skipped) : -1;
	r->scan_ns_per_scanned = scanned > 0 ? scan_s * 1e9 / (double)scanned : -1;
	json_object *ksm, *peak;
	if (json_object_object_get_ex(o.report, "ksm", &ksm) &&
	    json_object_object_get_ex(ksm, "peak", &peak)) {
		r->saved_pages = (uint64_t)json_int(peak, "pages_sharing") +
				 (uint64_t)json_int(peak, "ksm_zero_pages");
		r->report_ratio = json_path_double(peak, "dedup_ratio");
	}
	/* Every guest exited 0 with its pages intact, and had filled before
	 * the scanner started. */
	double fleet_start = (double)json_path_int(o.report, "ksm.start_monotonic_ns") * 1e-9;
	r->guests_ok = 0;
	r->fill_margin_s = 1e9;
	for (int i = 0; i < nvms; i++) {
		json_object *vm = report_vm(o.report, i);
		r->guests_ok += strcmp(json_str(vm, "status"), "exited") == 0 &&
				json_int(vm, "exit_code") == 0 &&
				json_path_int(vm, "guest_values.bad_pages") == 0;
		double done = (double)json_path_int(vm, "guest_values.fill_done_ns") * 1e-9;
		if (start_s - (done - fleet_start) < r->fill_margin_s)
			r->fill_margin_s = start_s - (done - fleet_start);
	}
	if (r->fill_margin_s < 0.1)
		fprintf(stderr,
			"bench_scaling: warning: with %d VMs a guest filled until %.2f s before "
			"the scanner started (it leaves pages written in the last 0.1 s alone)\n",
			nvms, r->fill_margin_s);
	if (r->guests_ok != nvms)
		fprintf(stderr, "bench_scaling: %d of %d guests did not exit 0 verified:\n%s\n",
			nvms - r->guests_ok, nvms, o.err);
	vmm_output_free(&o);
	return 0;
}

static void print_value(double v, const char *fmt, int width)
{
	char buf[32] = "-";
	if (v >= 0)
		snprintf(buf, sizeof(buf), fmt, v);
	printf(" %*s", width, buf);
}

static void print_ratio(double a, double b, int width)
{
	char buf[32] = "-";
	if (a >= 0 && b > 0)
		snprintf(buf, sizeof(buf), "%.2fx", a / b);
	printf(" %*s", width, buf);
}

static json_object *jnum(double v)
{
	return v < 0 || isnan(v) ? NULL : json_object_new_double(v);
}

static int write_plot(const char *dir, const struct row *rows, int n, int have_ksmd, char *png,
		      size_t len)
{
	char dat[4096], gp[4096];
	snprintf(dat, sizeof(dat), "%s/scaling.dat", dir);
	snprintf(gp, sizeof(gp), "%s/scaling.gp", dir);
	snprintf(png, len, "%s/scaling.png", dir);
	FILE *f = fopen(dat, "w");
	if (!f) {
		fprintf(stderr, "bench_scaling: cannot write %s: %s\n", dat, strerror(errno));
		return -1;
	}
	fprintf(f, "# vms dedup_ratio ideal_ratio report_ratio vmm_cpu99_s ksmd_cpu99_s\n");
	for (int i = 0; i < n; i++)
		fprintf(f, "%d %.4f %.4f %.4f %.4f %.4f\n", rows[i].vms, rows[i].ratio,
			rows[i].ideal_ratio, rows[i].report_ratio, rows[i].vmm_cpu99,
			rows[i].ksmd_ran ? rows[i].ksmd_cpu99 : -1);
	fclose(f);
	f = fopen(gp, "w");
	if (!f)
		return -1;
	fprintf(f,
		"set terminal pngcairo noenhanced size 1100,500\n"
		"set output '%s'\n"
		"set multiplot layout 1,2 title 'vmm KSM at max rate, N VMs x pattern mb=8 zero=%d "
		"shared=%d'\n"
		"set logscale x 2\n"
		"set xlabel 'VMs'\n"
		"set grid\n"
		"set key top left\n"
		"set datafile missing '-1.0000'\n"
		"set title 'dedup ratio (guest pages / host pages)'\n"
		"plot '%s' using 1:2 with linespoints lw 2 title 'vmm, reached', \\\n"
		"     '%s' using 1:3 with linespoints dt 2 title 'ideal for the content'\n"
		"set title 'scanner CPU seconds to 99%% of the ideal'\n"
		"set logscale y 10\n"
		"plot '%s' using 1:5 with linespoints lw 2 title 'vmm scanner'%s%s%s\n"
		"unset multiplot\n",
		png, ZERO_PCT, SHARED_PCT, dat, dat, dat, have_ksmd ? ", \\\n     '" : "",
		have_ksmd ? dat : "",
		have_ksmd
			? "' using 1:($6 > 0 ? $6 : 1/0) with linespoints dt 2 title 'Linux ksmd, "
			  "same content in a host process'"
			: "");
	fclose(f);
	return gnuplot_run(gp, "bench_scaling");
}

static int parse_int(const char *opt, const char *arg, int lo, int hi)
{
	char *end;
	errno = 0;
	long v = strtol(arg, &end, 10);
	if (errno || *end || end == arg || v < lo || v > hi) {
		fprintf(stderr, "bench_scaling: %s needs a number from %d to %d, not '%s'\n", opt,
			lo, hi, arg);
		exit(2);
	}
	return (int)v;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_scaling [options]\n"
		   "\n"
		   "Our KSM at 1..64 VMs of `pattern mb=8 zero=25 shared=50`: dedup ratio\n"
		   "reached against the exact ideal, scanner CPU against Linux's ksmd\n"
		   "merging the same content in a host process (root needed for ksmd).\n"
		   "\n"
		   "  --counts LIST   VM counts, comma-separated (default 1,2,4,8,16,32,64)\n"
		   "  --max-vms N     only the counts up to N\n"
		   "  --mb M          MiB each guest fills (default 8; guest RAM M + 8 MiB)\n"
		   "  --no-ksmd       skip the Linux ksmd baseline\n"
		   "  --accel auto|kvm|tcg  the accelerator of every vmm run (default auto:\n"
		   "                  KVM where /dev/kvm is usable, else TCG)\n"
		   "  -j, --json FILE every row as JSON\n"
		   "  -o, --out DIR   where scaling.png and its data go (default .)\n"
		   "  -h, --help\n");
}

int main(int argc, char **argv)
{
	int counts[MAX_COUNTS] = {1, 2, 4, 8, 16, 32, 64}, ncounts = 7, max_vms = 64, mb = 8;
	int with_ksmd = 1;
	const char *json_path = NULL, *out_dir = ".";
	enum { OPT_COUNTS = 256, OPT_MAX, OPT_MB, OPT_NO_KSMD, OPT_ACCEL };
	static const struct option options[] = {{"counts", required_argument, NULL, OPT_COUNTS},
						{"max-vms", required_argument, NULL, OPT_MAX},
						{"mb", required_argument, NULL, OPT_MB},
						{"no-ksmd", no_argument, NULL, OPT_NO_KSMD},
						{"accel", required_argument, NULL, OPT_ACCEL},
						{"json", required_argument, NULL, 'j'},
						{"out", required_argument, NULL, 'o'},
						{"help", no_argument, NULL, 'h'},
						{NULL, 0, NULL, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "j:o:h", options, NULL)) != -1) {
		switch (c) {
		case OPT_COUNTS: {
			ncounts = 0;
			char *list = strdup(optarg), *save = NULL;
			for (char *tok = strtok_r(list, ",", &save); tok;
			     tok = strtok_r(NULL, ",", &save)) {
				if (ncounts == MAX_COUNTS) {
					fprintf(stderr, "bench_scaling: at most %d counts\n",
						MAX_COUNTS);
					return 2;
				}
				counts[ncounts++] = parse_int("--counts", tok, 1, 64);
			}
			free(list);
			if (!ncounts) {
				fprintf(stderr, "bench_scaling: --counts needs a list such as "
						"1,2,4\n");
				return 2;
			}
			break;
		}
		case OPT_MAX:
			max_vms = parse_int("--max-vms", optarg, 1, 64);
			break;
		case OPT_MB:
			mb = parse_int("--mb", optarg, 1, 256);
			break;
		case OPT_NO_KSMD:
			with_ksmd = 0;
			break;
		case OPT_ACCEL:
			bench_accel_option("bench_scaling", optarg);
			break;
		case 'j':
			json_path = optarg;
			break;
		case 'o':
			out_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bench_scaling: unexpected argument '%s' (see --help)\n",
			argv[optind]);
		return 2;
	}
	struct stat st;
	if ((stat(out_dir, &st) || !S_ISDIR(st.st_mode)) && mkdir(out_dir, 0755)) {
		fprintf(stderr, "bench_scaling: --out %s: %s\n", out_dir, strerror(errno));
		return 2;
	}
	if (with_ksmd && geteuid() != 0) {
		fprintf(stderr, "bench_scaling: the ksmd baseline needs root (or --no-ksmd)\n");
		return 2;
	}
	ksmd_restore_on_signals();
	int mem_mb = (mb + 8 + 1) & ~1;

	struct row rows[MAX_COUNTS];
	int n = 0, failed = 0, have_ksmd = 0;
	for (int i = 0; i < ncounts; i++) {
		if (counts[i] > max_vms)
			continue;
		struct row *r = &rows[n++];
		memset(r, 0, sizeof(*r));
		r->vms = counts[i];
		struct pattern_params p = {
			.zero_pct = ZERO_PCT, .shared_pct = SHARED_PCT, .run_pages = 1};
		r->content_pages = (uint64_t)r->vms * (uint64_t)mb * 256;
		r->ideal_pages = ksmd_ideal_pages(&p, (uint64_t)mb * 256, r->vms);
		r->ideal_ratio =
			(double)r->content_pages / (double)(r->content_pages - r->ideal_pages);
		r->vmm_t99 = r->vmm_cpu99 = r->vmm_cpu_hold = r->ksmd_t99 = r->ksmd_cpu99 = -1;
		r->host_cpu99 = -1;
		if (run_vmm(r->vms, mb, mem_mb, r->ideal_pages, r)) {
			failed = 1;
			r->ratio = r->report_ratio = -1; /* printed "-", not a result */
			continue;
		}
		/* On TCG the same again on host mappings, the realiser KVM uses. */
		if (strcmp(r->mmu, "owned") == 0) {
			struct row h = *r;
			vmm_process_set_tcg_mmu("host");
			if (run_vmm(r->vms, mb, mem_mb, r->ideal_pages, &h) || h.guests_ok != h.vms)
				failed = 1;
			else
				r->host_cpu99 = h.vmm_cpu99;
			vmm_process_set_tcg_mmu(NULL);
		}
		uint64_t saved = r->saved_pages < r->content_pages ? r->saved_pages : 0;
		r->ratio = (double)r->content_pages / (double)(r->content_pages - saved);
		if (r->guests_ok != r->vms)
			failed = 1;
		if (with_ksmd) {
			struct ksmd_merge_result k;
			fprintf(stderr,
				"bench_scaling: ksmd on the same content, %d x %d MiB in a host "
				"process\n",
				r->vms, mb);
			if (ksmd_merge_host_content(r->vms, mb, &p, &ksmd_max_rate, r->ideal_pages,
						    60, &k) == 0) {
				r->ksmd_ran = have_ksmd = 1;
				r->ksmd_t99 = k.t99;
				r->ksmd_cpu99 = k.t99 >= 0 ? k.cpu99 : -1;
				r->ksmd_reached = k.reached;
			} else {
				with_ksmd = 0; /* no ksmd here: say so once */
			}
		}
		fprintf(stderr,
			"bench_scaling: %d VMs: dedup %.3f (ideal %.3f), vmm CPU to 99%% %.3f s, "
			"ksmd %.3f s\n",
			r->vms, r->ratio, r->ideal_ratio, r->vmm_cpu99, r->ksmd_cpu99);
	}

	printf("bench_scaling: N VMs x `pattern mb=%d zero=%d shared=%d` (%d MiB guest RAM), "
	       "KSM at max rate\n",
	       mb, ZERO_PCT, SHARED_PCT, mem_mb);
	bench_accel_print(stdout, "  ");
	printf("  dedup ratio = guest pattern pages / host pages needed for them; ideal: exact, "
	       "from pattern_content.h\n");
	printf("  report ratio: vmm's own (resident guest pages / pool frames, incl. images, "
	       "page tables, zero run)\n");
	printf("  CPU: scanner CPU seconds from the scanner's start to 99%% of the ideal sharing; "
	       "ksmd: pages_to_scan 100000,\n       sleep_millisecs 0, the same content in a host "
	       "process\n");
	printf("  %4s %9s %9s %7s %9s %8s %10s %10s %10s %9s %10s %10s\n", "VMs", "dedup", "ideal",
	       "of", "report", "vmm t99", "vmm CPU99", "ksmd CPU99", "vmm/ksmd", "vmm ns",
	       "host CPU99", "host/ksmd");
	printf("  %4s %9s %9s %7s %9s %8s %10s %10s %10s %9s %10s %10s\n", "", "reached", "",
	       "ideal", "ratio", "(s)", "(s)", "(s)", "CPU", "per page", "(s)", "CPU");
	for (int i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		printf("  %4d", r->vms);
		print_value(r->ratio, "%.3f", 9);
		print_value(r->ideal_ratio, "%.3f", 9);
		print_ratio(r->ratio, r->ideal_ratio, 7);
		print_value(r->report_ratio, "%.3f", 9);
		print_value(r->vmm_t99, "%.2f", 8);
		print_value(r->vmm_cpu99, "%.3f", 10);
		print_value(r->ksmd_cpu99, "%.3f", 10);
		print_ratio(r->vmm_cpu99, r->ksmd_cpu99, 10);
		print_value(r->ns_per_page, "%.0f", 9);
		print_value(r->host_cpu99, "%.3f", 10);
		print_ratio(r->host_cpu99, r->ksmd_cpu99, 10);
		putchar('\n');
	}
	printf("  (ns per page: the scanner's CPU over the whole run / pages it scanned, smart "
	       "scan's skips not counted\n   (merging included; the JSON splits out the scan "
	       "alone per page seen and per page scanned);\n   host: the same run on host "
	       "mappings (--tcg-mmu host, KVM's realiser), TCG only;\n   ksmd's CPU time comes "
	       "from %s; "
	       "sharing reached can pass the "
	       "ideal by the few\n   guest image and stack pages that also merge)\n",
	       proc_cpu_source());
	char png[4096] = "";
	if (n && write_plot(out_dir, rows, n, have_ksmd, png, sizeof(png)) == 0)
		printf("  plot: %s\n", png);
	else
		png[0] = 0;

	if (json_path) {
		json_object *root = json_object_new_object(), *a = json_object_new_array();
		bench_accel_json_add(root);
		json_object_object_add(root, "mb", json_object_new_int(mb));
		json_object_object_add(root, "mem_mib", json_object_new_int(mem_mb));
		json_object_object_add(root, "zero_pct", json_object_new_int(ZERO_PCT));
		json_object_object_add(root, "shared_pct", json_object_new_int(SHARED_PCT));
		json_object_object_add(root, "rate",
				       json_object_new_string("max (vmm --ksm-rate max; ksmd "
							      "pages_to_scan 100000, "
							      "sleep_millisecs 0)"));
		for (int i = 0; i < n; i++) {
			const struct row *r = &rows[i];
			json_object *o = json_object_new_object();
			json_object_object_add(o, "vms", json_object_new_int(r->vms));
			json_object_object_add(o, "content_pages",
					       json_object_new_int64((int64_t)r->content_pages));
			json_object_object_add(o, "ideal_sharing_pages",
					       json_object_new_int64((int64_t)r->ideal_pages));
			json_object_object_add(o, "sharing_pages",
					       json_object_new_int64((int64_t)r->saved_pages));
			json_object_object_add(o, "dedup_ratio", jnum(r->ratio));
			json_object_object_add(o, "ideal_dedup_ratio", jnum(r->ideal_ratio));
			json_object_object_add(
				o, "dedup_of_ideal",
				jnum(r->ideal_ratio > 0 ? r->ratio / r->ideal_ratio : -1));
			json_object_object_add(o, "report_dedup_ratio", jnum(r->report_ratio));
			json_object_object_add(o, "vmm_t99_s", jnum(r->vmm_t99));
			json_object_object_add(o, "vmm_cpu99_s", jnum(r->vmm_cpu99));
			json_object_object_add(o, "mmu", json_object_new_string(r->mmu));
			json_object_object_add(o, "host_mappings_cpu99_s", jnum(r->host_cpu99));
			json_object_object_add(o, "vmm_ns_per_scanned_page", jnum(r->ns_per_page));
			json_object_object_add(o, "scan_ns_per_page_seen",
					       jnum(r->scan_ns_per_seen));
			json_object_object_add(o, "scan_ns_per_scanned_page",
					       jnum(r->scan_ns_per_scanned));
			json_object_object_add(o, "vmm_cpu_to_last_sample_s",
					       jnum(r->vmm_cpu_hold));
			json_object_object_add(o, "fill_margin_s", jnum(r->fill_margin_s));
			json_object_object_add(o, "guests_ok", json_object_new_int(r->guests_ok));
			json_object_object_add(o, "ksmd_ran", json_object_new_boolean(r->ksmd_ran));
			json_object_object_add(o, "ksmd_t99_s", jnum(r->ksmd_t99));
			json_object_object_add(o, "ksmd_cpu99_s", jnum(r->ksmd_cpu99));
			json_object_object_add(o, "ksmd_reached_pages",
					       json_object_new_int64((int64_t)r->ksmd_reached));
			json_object_object_add(o, "cpu99_vmm_over_ksmd",
					       jnum(r->vmm_cpu99 >= 0 && r->ksmd_cpu99 > 0
							    ? r->vmm_cpu99 / r->ksmd_cpu99
							    : -1));
			json_object_array_add(a, o);
		}
		json_object_object_add(root, "rows", a);
		json_object_object_add(root, "plot", json_object_new_string(png));
		if (json_object_to_file_ext(json_path, root, JSON_C_TO_STRING_PRETTY)) {
			fprintf(stderr, "bench_scaling: cannot write %s\n", json_path);
			failed = 1;
		}
		json_object_put(root);
	}
	return failed ? 1 : 0;
}
