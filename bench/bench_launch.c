/*
 * bench_launch.c - what launching guests costs.
 *
 *   bench_launch [--repeat N] [--iterations N] [--accel auto|kvm|tcg] [--json FILE]
 *
 * 1. Wall time of `vmm run --vms 64 --quiet hello` (median of N runs): VM
 *    creation, guest start, exit and tear-down for 64 VMs.
 * 2. One `pattern mb=256` guest against a plain host loop that fills the same
 *    256 MiB (fresh anonymous memory, so first touch is included) with the
 *    same content function and verifies it, in the same run. The guest's own
 *    fill and verify times come from its report; the ratio is guest / host.
 * 3. Guest speed: `compute iterations=N` (default 100M) against the same loop
 *    (compute_loop.h, compiled with the guests' options) run natively in this
 *    process, in the same run: ns per iteration on both sides and the ratio
 *    guest / native; the checksums must match. On KVM the guest runs at about
 *    the host's speed; on TCG this is what emulation costs.
 *
 * Every vmm run uses --accel (default auto); the output names the
 * accelerator the runs actually used.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench_accel.h"
#include "compute_loop.h"
#include "compute_native.h"
#include "pattern_content.h"
#include "vmm_process.h"

#define PATTERN_MB 256

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), compare_doubles);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The host baseline: fill and verify PATTERN_MB of fresh anonymous memory
 * exactly as the guest does (seed 0 = the guest's VM index 0). */
static void host_fill(double *fill_s, double *verify_s)
{
	uint64_t pages = PATTERN_MB * 256ull;
	struct pattern_params p = {.run_pages = 1, .seed = 0};
	uint64_t *buf = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	double t0 = monotonic_seconds();
	for (uint64_t i = 0; i < pages; i++)
		pattern_fill_page(buf + i * PATTERN_WORDS_PER_PAGE, pattern_page_key(&p, i, 0));
	double t1 = monotonic_seconds();
	uint64_t bad = 0, want;
	for (uint64_t i = 0; i < pages; i++)
		bad += pattern_check_page(buf + i * PATTERN_WORDS_PER_PAGE,
					  pattern_page_key(&p, i, 0), &want) >= 0;
	double t2 = monotonic_seconds();
	if (bad) {
		fprintf(stderr, "bench_launch: host baseline found %llu bad pages\n",
			(unsigned long long)bad);
		exit(1);
	}
	munmap(buf, pages * 4096);
	*fill_s = t1 - t0;
	*verify_s = t2 - t1;
}

/* One `compute` guest and the same loop here: seconds each; returns the
 * checksum, which both sides must agree on. */
static uint64_t compute_once(uint64_t iterations, double *guest_s, double *native_s)
{
	char arg[48];
	snprintf(arg, sizeof(arg), "iterations=%llu", (unsigned long long)iterations);
	const char *args[] = {"run", "--quiet", "compute", "--", arg, NULL};
	struct vmm_output o;
	vmm_process_run(&o, VMM_BINARY, args, 1, NULL, 0);
	bench_accel_note(o.report);
	json_object *vm = report_vm(o.report, 0);
	if (o.status != 0 || !vm) {
		fprintf(stderr, "bench_launch: compute %s failed: %s\n", arg, o.err);
		exit(1);
	}
	*guest_s = (double)json_path_int(vm, "guest_values.compute_ns") * 1e-9;
	uint64_t guest_sum = (uint64_t)json_path_int(vm, "guest_values.checksum");
	vmm_output_free(&o);
	double t0 = monotonic_seconds();
	uint64_t native_sum = compute_native(iterations);
	*native_s = monotonic_seconds() - t0;
	if (guest_sum != native_sum) {
		fprintf(stderr,
			"bench_launch: compute %s: the guest's checksum 0x%016llx is not the "
			"host's 0x%016llx: guest and host did not run the same loop\n",
			arg, (unsigned long long)guest_sum, (unsigned long long)native_sum);
		exit(1);
	}
	return native_sum;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_launch [options]\n"
		"\n"
		"What launching guests costs, and how fast they run: vmm run --vms 64 hello;\n"
		"one pattern mb=256 guest against a host loop filling the same memory; the\n"
		"compute guest against the same loop run natively.\n"
		"\n"
		"  -r, --repeat N     runs of each measurement, medians (default 5)\n"
		"      --iterations N compute iterations=N (default 100000000)\n" BENCH_ACCEL_HELP
		"  -j, --json FILE    every figure as JSON\n"
		"  -h, --help\n");
}

int main(int argc, char **argv)
{
	int repeat = 5;
	uint64_t iterations = COMPUTE_DEFAULT_ITERATIONS;
	const char *json_path = NULL;
	enum { OPT_ACCEL = 256, OPT_ITERATIONS };
	static const struct option options[] = {
		{"repeat", required_argument, NULL, 'r'},
		{"iterations", required_argument, NULL, OPT_ITERATIONS},
		{"accel", required_argument, NULL, OPT_ACCEL},
		{"json", required_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "r:j:h", options, NULL)) != -1) {
		if (c == 'r') {
			repeat = atoi(optarg) > 0 ? atoi(optarg) : 1;
		} else if (c == OPT_ITERATIONS) {
			char *end;
			iterations = strtoull(optarg, &end, 10);
			if (*end || end == optarg || iterations == 0) {
				fprintf(stderr,
					"bench_launch: --iterations needs a positive number, not "
					"'%s'\n",
					optarg);
				return 2;
			}
		} else if (c == OPT_ACCEL) {
			bench_accel_option("bench_launch", optarg);
		} else if (c == 'j') {
			json_path = optarg;
		} else {
			usage(c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bench_launch: unexpected argument '%s' (see --help)\n",
			argv[optind]);
		return 2;
	}
	if (repeat > 64)
		repeat = 64;

	double wall64[64], fleet64[64];
	for (int i = 0; i < repeat; i++) {
		struct vmm_output o;
		const char *args[] = {"run", "--vms", "64", "--quiet", "hello", NULL};
		vmm_process_run(&o, VMM_BINARY, args, 1, NULL, 0);
		bench_accel_note(o.report);
		if (o.status != 0 || json_path_int(o.report, "totals.succeeded") != 64) {
			fprintf(stderr, "bench_launch: vmm run --vms 64 hello failed: %s\n", o.err);
			return 1;
		}
		wall64[i] = o.wall_seconds;
		fleet64[i] = json_path_double(o.report, "wall_seconds");
		vmm_output_free(&o);
	}

	double gfill[64], gverify[64], gwall[64], hfill[64], hverify[64];
	for (int i = 0; i < repeat; i++) {
		struct vmm_output o;
		const char *args[] = {"run",	 "--mem", "320M",   "--quiet",
				      "pattern", "--",	  "mb=256", NULL};
		vmm_process_run(&o, VMM_BINARY, args, 1, NULL, 0);
		bench_accel_note(o.report);
		json_object *vm = report_vm(o.report, 0);
		if (o.status != 0 || !vm) {
			fprintf(stderr, "bench_launch: pattern mb=256 failed: %s\n", o.err);
			return 1;
		}
		gfill[i] = json_path_int(vm, "guest_values.fill_ns") * 1e-9;
		gverify[i] = json_path_int(vm, "guest_values.verify_ns") * 1e-9;
		gwall[i] = o.wall_seconds;
		vmm_output_free(&o);
		host_fill(&hfill[i], &hverify[i]);
	}

	double cguest[64], cnative[64];
	uint64_t checksum = 0;
	for (int i = 0; i < repeat; i++)
		checksum = compute_once(iterations, &cguest[i], &cnative[i]);

	double w64 = median(wall64, repeat), f64 = median(fleet64, repeat);
	double gf = median(gfill, repeat), gv = median(gverify, repeat), gw = median(gwall, repeat);
	double hf = median(hfill, repeat), hv = median(hverify, repeat);
	double cg = median(cguest, repeat), cn = median(cnative, repeat);
	double cg_ns = cg * 1e9 / (double)iterations, cn_ns = cn * 1e9 / (double)iterations;
	printf("bench_launch (median of %d runs)\n", repeat);
	bench_accel_print(stdout, "  ");
	printf("  vmm run --vms 64 hello: process wall %.3f s, fleet wall %.3f s, %.2f ms per VM\n",
	       w64, f64, w64 * 1000 / 64);
	printf("  pattern mb=256, one guest vs host loop on fresh anonymous memory:\n");
	printf("    %-8s %10s %10s %8s\n", "", "guest", "host", "ratio");
	printf("    %-8s %9.3fs %9.3fs %7.2fx\n", "fill", gf, hf, gf / hf);
	printf("    %-8s %9.3fs %9.3fs %7.2fx\n", "verify", gv, hv, gv / hv);
	printf("    %-8s %9.3fs %9.3fs %7.2fx   (guest: whole vmm process)\n", "total", gw, hf + hv,
	       gw / (hf + hv));
	printf("  guest speed: compute iterations=%llu vs the same loop native in this process\n"
	       "  (compute_loop.h, both compiled with the guests' options; checksums equal, "
	       "0x%016llx):\n",
	       (unsigned long long)iterations, (unsigned long long)checksum);
	printf("    %-8s %10s %10s %8s\n", "", "guest", "native", "ratio");
	printf("    %-8s %9.3fs %9.3fs %7.2fx\n", "loop", cg, cn, cg / cn);
	printf("    %-8s %10.3f %10.3f %7.2fx\n", "ns/iter", cg_ns, cn_ns, cg_ns / cn_ns);
	if (json_path) {
		FILE *f = fopen(json_path, "w");
		if (!f) {
			perror(json_path);
			return 1;
		}
		fprintf(f,
			"{%s,\n \"repeat\": %d, \"hello64\": {\"process_wall_s\": %.6f, "
			"\"fleet_wall_s\": %.6f},\n \"pattern256\": {\"guest_fill_s\": %.6f, "
			"\"host_fill_s\": %.6f, \"fill_ratio\": %.4f, \"guest_verify_s\": %.6f, "
			"\"host_verify_s\": %.6f, \"verify_ratio\": %.4f, \"guest_process_wall_s\": "
			"%.6f, \"total_ratio\": %.4f},\n \"compute\": {\"iterations\": %llu, "
			"\"checksum\": \"0x%016llx\", \"guest_s\": %.6f, \"native_s\": %.6f, "
			"\"guest_ns_per_iteration\": %.4f, \"native_ns_per_iteration\": %.4f, "
			"\"ratio\": %.4f}}\n",
			bench_accel_json_members(), repeat, w64, f64, gf, hf, gf / hf, gv, hv,
			gv / hv, gw, gw / (hf + hv), (unsigned long long)iterations,
			(unsigned long long)checksum, cg, cn, cg_ns, cn_ns, cg_ns / cn_ns);
		fclose(f);
	}
	return 0;
}
