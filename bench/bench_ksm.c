/*
 * bench_ksm.c - our KSM against Linux's ksmd on identical content, in one run.
 *
 *   bench_ksm [--vms N] [--mb M] [--run-pages R] [--accel auto|kvm|tcg] [--json FILE]
 *             [--no-ksmd]
 *
 * 1. ksmd: a host process fills N regions of M MiB with exactly the pattern
 *    content of N guests (pattern_content.h, seeds 0..N-1), then calls
 *    madvise(MADV_MERGEABLE); /sys/kernel/mm/ksm is set to max rate
 *    (pages_to_scan 100000, sleep_millisecs 0, use_zero_pages 1) and every
 *    knob is restored afterwards (also on Ctrl-C). Time and ksmd CPU are
 *    measured from madvise to 50/90/99% of the ideal.
 * 2. vmm: N guests of `pattern mb=M` with --ksm --ksm-rate max; scanning
 *    starts after every guest has filled its memory (--ksm-start-ms), and
 *    time and scanner CPU are measured from that start. On TCG twice: on
 *    the owned page table (vmm's default there) and on host mappings
 *    (--tcg-mmu host, KVM's way), each with its peak VMA count and the
 *    remap cost per merged page.
 *    Ideal (both): (N-1) * shared pages + N * zero pages, the zero pages on
 *    Linux's zero page or our zero run.
 * 3. Scan throughput when nothing merges (all pages unique) against raw
 *    XXH3 over the same pages on the host, with smart scan off (on, most
 *    visits to such pages are skipped, not scanned).
 * 4. What the dirty log costs the guest: `touch` rewriting a hot set, with
 *    KSM off, KSM with the dirty log, KSM without it.
 *
 * Every vmm run uses --accel (default auto); the output names the
 * accelerator the runs used. ksmd's side runs on the host either way.
 */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_accel.h"
#include "io/xxh3.h"
#include "ksmd.h"
#include "pattern_content.h"
#include "vmm_process.h"

#define PAGE 4096

struct result {
	double t50, t90, t99; /* seconds from start; -1 if not reached */
	double cpu99;	      /* scanner CPU seconds at 99% */
	uint64_t reached;     /* sharing at the end */
	/* vmm only */
	char mmu[16];		  /* "owned", "host"; "" on KVM */
	uint64_t vmas_peak;	  /* host mappings, sampled */
	double remap_us_per_page; /* changing the mappings, per merged page */
};

static void fill_regions(uint8_t **regions, int nvms, int mb, int run_pages)
{
	for (int v = 0; v < nvms; v++) {
		struct pattern_params p = {.zero_pct = 25,
					   .shared_pct = 50,
					   .run_pages = (uint32_t)run_pages,
					   .seed = (uint64_t)v};
		for (uint64_t i = 0; i < (uint64_t)mb * 256; i++)
			pattern_fill_page((uint64_t *)(regions[v] + i * PAGE),
					  pattern_page_key(&p, i, 0));
	}
}

/* Linux's ksmd at max rate on the same content in a host process (ksmd.c). */
static int bench_ksmd(int nvms, int mb, int run_pages, uint64_t ideal, struct result *r)
{
	struct pattern_params p = {
		.zero_pct = 25, .shared_pct = 50, .run_pages = (uint32_t)run_pages};
	struct ksmd_merge_result m;
	if (ksmd_merge_host_content(nvms, mb, &p, &ksmd_max_rate, ideal, 120, &m))
		return -1;
	r->t50 = m.t50;
	r->t90 = m.t90;
	r->t99 = m.t99;
	if (m.t99 >= 0)
		r->cpu99 = m.cpu99;
	r->reached = m.reached;
	return 0;
}

/* Runs the guests and reads the KSM timeline; times are from KSM's start. */
static int bench_vmm(int nvms, int mb, int run_pages, uint64_t ideal, struct result *r,
		     double *fill_end, double *start)
{
	char vms[16], mem[16], mbarg[32], runarg[32], hold[32], startms[16];
	int start_ms = 1500 + nvms * mb * 4; /* well after every guest has filled */
	snprintf(vms, sizeof(vms), "%d", nvms);
	snprintf(mem, sizeof(mem), "%dM", ((mb + 34) + 1) & ~1);
	snprintf(mbarg, sizeof(mbarg), "mb=%d", mb);
	snprintf(runarg, sizeof(runarg), "run=%d", run_pages);
	snprintf(hold, sizeof(hold), "hold=%d", start_ms + 8000);
	snprintf(startms, sizeof(startms), "%d", start_ms);
	const char *args[] = {"run",   "--quiet",	  "--vms",	vms,	   "--mem",
			      mem,     "--ksm",		  "--ksm-rate", "max",	   "--ksm-start-ms",
			      startms, "--ksm-sample-ms", "5",		"pattern", "--",
			      mbarg,   "zero=25",	  "shared=50",	runarg,	   hold,
			      NULL};
	struct vmm_output o;
	vmm_process_run(&o, VMM_BINARY, args, 1, NULL, 0);
	bench_accel_note(o.report);
	if (o.status != 0 || !o.report) {
		fprintf(stderr, "bench_ksm: vmm failed: %s\n", o.err);
		return -1;
	}
	double t_start_ns = (double)json_path_int(o.report, "ksm.start_monotonic_ns");
	*fill_end = 0;
	for (int i = 0; i < nvms; i++) {
		double done =
			(double)json_path_int(report_vm(o.report, i), "guest_values.fill_done_ns");
		double rel = (done - t_start_ns) * 1e-9;
		if (rel > *fill_end)
			*fill_end = rel;
	}
	*start = start_ms / 1000.0;
	json_object *mmu = json_object_object_get(o.report, "mmu");
	snprintf(r->mmu, sizeof(r->mmu), "%s", mmu ? json_object_get_string(mmu) : "");
	r->vmas_peak = (uint64_t)json_path_int(o.report, "memory.vmas_peak");
	int64_t merges = json_path_int(o.report, "ksm.merges");
	json_object *remap = NULL;
	json_object_object_get_ex(
		json_object_object_get(json_object_object_get(o.report, "ksm"), "seconds"), "remap",
		&remap);
	r->remap_us_per_page =
		merges > 0 && remap ? json_object_get_double(remap) * 1e6 / (double)merges : 0;
	json_object *timeline =
		json_object_object_get(json_object_object_get(o.report, "ksm"), "timeline");
	r->t50 = r->t90 = r->t99 = -1;
	r->reached = 0;
	for (size_t i = 0; i < json_object_array_length(timeline); i++) {
		json_object *row = json_object_array_get_idx(timeline, i);
		double t = json_object_get_double(json_object_array_get_idx(row, 0)) - *start;
		uint64_t s = (uint64_t)json_object_get_int64(json_object_array_get_idx(row, 2)) +
			     (uint64_t)json_object_get_int64(json_object_array_get_idx(row, 3));
		if (s > r->reached)
			r->reached = s;
		if (r->t50 < 0 && s >= ideal / 2)
			r->t50 = t;
		if (r->t90 < 0 && s >= ideal * 9 / 10)
			r->t90 = t;
		if (r->t99 < 0 && s >= ideal * 99 / 100) {
			r->t99 = t;
			r->cpu99 = json_object_get_double(json_object_array_get_idx(row, 6));
		}
	}
	vmm_output_free(&o);
	return 0;
}

/* Raw XXH3, the scanner's (io/xxh3.h), over one guest's worth of pages (mb
 * MiB, the same pattern content), in pages per second over a second. */
static double raw_xxh3_rate(int mb)
{
	size_t bytes = (size_t)mb << 20;
	uint8_t *buf =
		mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *regions[1] = {buf};
	fill_regions(regions, 1, mb, 1);
	uint64_t sink = 0;
	double t0 = monotonic_seconds();
	int rounds = 0;
	do {
		for (size_t off = 0; off < bytes; off += PAGE)
			sink ^= XXH3_64bits(buf + off, PAGE);
		rounds++;
	} while (monotonic_seconds() - t0 < 1.0);
	double rate = (double)rounds * (double)(bytes / PAGE) / (monotonic_seconds() - t0);
	if (sink == 42)
		putchar(' ');
	munmap(buf, bytes);
	return rate;
}

/* Pages per scanner CPU-second when nothing merges, against raw XXH3. */
static void bench_throughput(int nvms, int mb, double *scan_rate, double *xxh3_rate)
{
	double xxh3_before = raw_xxh3_rate(mb);
	char vms[16], mem[16], mbarg[32];
	snprintf(vms, sizeof(vms), "%d", nvms);
	snprintf(mem, sizeof(mem), "%dM", ((mb + 34) + 1) & ~1);
	snprintf(mbarg, sizeof(mbarg), "mb=%d", mb);
	/* Smart scan off: every visit hashes, which is what is measured. */
	const char *args[] = {"run", "--quiet",	       "--vms",	     vms,	"--mem",
			      mem,   "--ksm",	       "--ksm-rate", "max",	"--ksm-smart-scan",
			      "off", "--ksm-start-ms", "2000",	     "pattern", "--",
			      mbarg, "hold=6000",      NULL};
	struct vmm_output o;
	vmm_process_run(&o, VMM_BINARY, args, 1, NULL, 0);
	bench_accel_note(o.report);
	*scan_rate = 0;
	json_object *timeline =
		json_object_object_get(json_object_object_get(o.report, "ksm"), "timeline");
	size_t n = timeline ? json_object_array_length(timeline) : 0;
	/* Between 3 s and the end of the hold: steady rescanning. */
	json_object *a = NULL, *b = NULL;
	for (size_t i = 0; i < n; i++) {
		json_object *row = json_object_array_get_idx(timeline, i);
		double t = json_object_get_double(json_object_array_get_idx(row, 0));
		if (!a && t >= 3.0)
			a = row;
		if (t <= 7.0)
			b = row;
	}
	if (a && b && a != b) {
		double pages = (double)(json_object_get_int64(json_object_array_get_idx(b, 5)) -
					json_object_get_int64(json_object_array_get_idx(a, 5)));
		double cpu = json_object_get_double(json_object_array_get_idx(b, 6)) -
			     json_object_get_double(json_object_array_get_idx(a, 6));
		*scan_rate = cpu > 0 ? pages / cpu : 0;
	}
	vmm_output_free(&o);

	/* This machine's memory bandwidth moves by a third from one minute
	 * to the next: the baseline is the mean of one second before the
	 * run and one after. */
	*xxh3_rate = (xxh3_before + raw_xxh3_rate(mb)) / 2;
}

/* Median pass time of `touch` (passes 2..) with a KSM setting. */
static double touch_pass_ms(const char *const *ksm_args)
{
	const char *args[24] = {"run", "--quiet", "--vms", "2", "--mem", "96M"};
	int n = 6;
	for (int i = 0; ksm_args[i]; i++)
		args[n++] = ksm_args[i];
	args[n++] = "touch";
	args[n++] = "--";
	args[n++] = "mb=64";
	args[n++] = "passes=8";
	args[n++] = "hot=50";
	args[n] = NULL;
	struct vmm_output o;
	vmm_process_run(&o, VMM_BINARY, args, 1, NULL, 0);
	bench_accel_note(o.report);
	double sum = 0;
	int count = 0;
	for (int v = 0; v < 2; v++) {
		for (int p = 3; p <= 8; p++) {
			char key[64];
			snprintf(key, sizeof(key), "guest_values.pass%d_ns", p);
			int64_t ns = json_path_int(report_vm(o.report, v), key);
			if (ns > 0) {
				sum += (double)ns;
				count++;
			}
		}
	}
	vmm_output_free(&o);
	return count ? sum / count / 1e6 : -1;
}

static void print_row(const char *name, const struct result *r, double cpu)
{
	printf("  %-22s %8.3f %8.3f %8.3f %10.3f\n", name, r->t50, r->t90, r->t99, cpu);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_ksm [options]\n"
		   "\n"
		   "Our KSM against Linux's ksmd (at max rate, root) on identical content, in one\n"
		   "run: time and CPU to 50/90/99%% of the ideal sharing, scan throughput against\n"
		   "raw XXH3, and what the dirty log costs a guest.\n"
		   "\n"
		   "  -n, --vms N        guests (default 8, at most 64)\n"
		   "  -m, --mb M         MiB each guest fills (default 128)\n"
		   "  -r, --run-pages R  draw page classes in runs of R pages (default 1)\n"
		   "  -k, --no-ksmd      skip the Linux ksmd baseline\n" BENCH_ACCEL_HELP
		   "  -j, --json FILE    every figure as JSON\n"
		   "  -h, --help\n");
}

int main(int argc, char **argv)
{
	int nvms = 8, mb = 128, run_pages = 1, with_ksmd = 1;
	const char *json_path = NULL;
	enum { OPT_ACCEL = 256 };
	static const struct option options[] = {{"vms", required_argument, NULL, 'n'},
						{"mb", required_argument, NULL, 'm'},
						{"run-pages", required_argument, NULL, 'r'},
						{"accel", required_argument, NULL, OPT_ACCEL},
						{"json", required_argument, NULL, 'j'},
						{"no-ksmd", no_argument, NULL, 'k'},
						{"help", no_argument, NULL, 'h'},
						{NULL, 0, NULL, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "n:m:r:j:kh", options, NULL)) != -1) {
		if (c == 'n')
			nvms = atoi(optarg) > 0 && atoi(optarg) <= 64 ? atoi(optarg) : 8;
		else if (c == 'm')
			mb = atoi(optarg) > 0 ? atoi(optarg) : 128;
		else if (c == 'r')
			run_pages = atoi(optarg) > 0 ? atoi(optarg) : 1;
		else if (c == 'j')
			json_path = optarg;
		else if (c == 'k')
			with_ksmd = 0;
		else if (c == OPT_ACCEL)
			bench_accel_option("bench_ksm", optarg);
		else {
			usage(c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	ksmd_restore_on_signals();

	struct pattern_params p = {
		.zero_pct = 25, .shared_pct = 50, .run_pages = (uint32_t)run_pages};
	struct pattern_counts cnt;
	pattern_count(&p, (uint64_t)mb * 256, &cnt);
	uint64_t ideal = (uint64_t)(nvms - 1) * cnt.shared + (uint64_t)nvms * cnt.zero;

	struct result linux_r = {.t50 = -1, .t90 = -1, .t99 = -1};
	struct result ours = linux_r, host = linux_r;
	int have_linux = with_ksmd && bench_ksmd(nvms, mb, run_pages, ideal, &linux_r) == 0;
	double fill_end = 0, start = 0, host_fill_end = 0, host_start = 0;
	if (bench_vmm(nvms, mb, run_pages, ideal, &ours, &fill_end, &start))
		return 1;
	/* On TCG the same again on host mappings, the realiser KVM uses. */
	int have_host = strcmp(ours.mmu, "owned") == 0;
	if (have_host) {
		vmm_process_set_tcg_mmu("host");
		have_host = bench_vmm(nvms, mb, run_pages, ideal, &host, &host_fill_end,
				      &host_start) == 0;
		vmm_process_set_tcg_mmu(NULL);
	}
	double scan_rate, xxh3_rate;
	bench_throughput(nvms, mb / 2 ? mb / 2 : 1, &scan_rate, &xxh3_rate);
	const char *no_ksm[] = {NULL};
	const char *ksm_dirty[] = {"--ksm", "--ksm-rate", "max", NULL};
	const char *ksm_checksum[] = {"--ksm", "--ksm-rate", "max", "--ksm-dirty-log", "off", NULL};
	double pass_off = touch_pass_ms(no_ksm), pass_dirty = touch_pass_ms(ksm_dirty),
	       pass_checksum = touch_pass_ms(ksm_checksum);

	printf("bench_ksm: %d VMs x %d MiB, 25%% zero, 50%% shared, 25%% unique, class runs of %d "
	       "page(s)\n",
	       nvms, mb, run_pages);
	bench_accel_print(stdout, "  ");
	printf("  ideal sharing: %llu pages ((N-1) x %llu shared + N x %llu zero)\n",
	       (unsigned long long)ideal, (unsigned long long)cnt.shared,
	       (unsigned long long)cnt.zero);
	printf("  guests finished filling %.2f s after start; scanning started at %.2f s\n",
	       fill_end, start);
	printf("  %-22s %8s %8s %8s %10s\n", "seconds to ideal:", "50%", "90%", "99%", "CPU-s@99%");
	if (have_linux)
		print_row("Linux ksmd (max rate)", &linux_r, linux_r.cpu99);
	print_row(have_host ? "vmm KSM, owned table" : "vmm KSM (max rate)", &ours, ours.cpu99);
	if (have_host)
		print_row("vmm KSM, host mappings", &host, host.cpu99);
	if (have_linux && ours.t99 > 0 && linux_r.t99 > 0)
		printf("  ratio vmm/ksmd: time %.2fx, CPU %.2fx (goal: 0.5x both)\n",
		       ours.t99 / linux_r.t99, ours.cpu99 / linux_r.cpu99);
	if (have_linux && have_host && host.t99 > 0 && linux_r.t99 > 0)
		printf("  ratio vmm (host mappings)/ksmd: time %.2fx, CPU %.2fx (goal: 1.0x)\n",
		       host.t99 / linux_r.t99, host.cpu99 / linux_r.cpu99);
	printf("  %-22s %10s %14s\n", "host mappings:", "peak VMAs", "remap us/page");
	printf("  %-22s %10llu %14.3f\n", ours.mmu[0] ? ours.mmu : "vmm",
	       (unsigned long long)ours.vmas_peak, ours.remap_us_per_page);
	if (have_host)
		printf("  %-22s %10llu %14.3f\n", host.mmu, (unsigned long long)host.vmas_peak,
		       host.remap_us_per_page);
	printf("  scan throughput with nothing to merge: %.0f pages per scanner CPU-second; raw "
	       "XXH3 %.0f pages/s (%.2fx)\n",
	       scan_rate, xxh3_rate, xxh3_rate > 0 ? scan_rate / xxh3_rate : 0);
	printf("  touch pass (ms, hot pages rewritten): KSM off %.1f, KSM + dirty log %.1f "
	       "(%.2fx), KSM + checksums %.1f (%.2fx)\n",
	       pass_off, pass_dirty, pass_dirty / pass_off, pass_checksum,
	       pass_checksum / pass_off);
	if (json_path) {
		FILE *f = fopen(json_path, "w");
		if (f) {
			fprintf(f,
				"{%s,\n \"vms\": %d, \"mb\": %d, \"run_pages\": %d, \"ideal_pages\": "
				"%llu,\n"
				" \"ksmd\": {\"available\": %s, \"t50\": %.4f, \"t90\": %.4f, \"t99\": "
				"%.4f, \"cpu99\": %.4f},\n"
				" \"vmm\": {\"mmu\": \"%s\", \"t50\": %.4f, \"t90\": %.4f, \"t99\": "
				"%.4f, \"cpu99\": %.4f, "
				"\"fill_end_s\": %.3f, \"start_s\": %.3f, \"vmas_peak\": %llu, "
				"\"remap_us_per_page\": %.4f},\n"
				" \"vmm_host_mappings\": {\"available\": %s, \"t50\": %.4f, \"t90\": "
				"%.4f, \"t99\": %.4f, \"cpu99\": %.4f, \"vmas_peak\": %llu, "
				"\"remap_us_per_page\": %.4f},\n"
				" \"scan_pages_per_cpu_second\": %.0f, \"xxh3_pages_per_second\": %.0f,\n"
				" \"touch_pass_ms\": {\"ksm_off\": %.2f, \"dirty_log\": %.2f, "
				"\"checksums\": %.2f}}\n",
				bench_accel_json_members(), nvms, mb, run_pages,
				(unsigned long long)ideal, have_linux ? "true" : "false",
				linux_r.t50, linux_r.t90, linux_r.t99, linux_r.cpu99, ours.mmu,
				ours.t50, ours.t90, ours.t99, ours.cpu99, fill_end, start,
				(unsigned long long)ours.vmas_peak, ours.remap_us_per_page,
				have_host ? "true" : "false", host.t50, host.t90, host.t99,
				host.cpu99, (unsigned long long)host.vmas_peak,
				host.remap_us_per_page, scan_rate, xxh3_rate, pass_off, pass_dirty,
				pass_checksum);
			fclose(f);
		}
	}
	return 0;
}
