/*
 * bench_swap.c - swap throughput and latency against raw O_DIRECT I/O on the
 * same file system, and what 2x overcommit costs a working-set guest.
 *
 *   bench_swap [--dir DIR] [--mb M] [--accel auto|kvm|tcg] [--json FILE]
 *
 * Raw baseline, on a fresh preallocated file in DIR (default /var/tmp, where
 * the swap file goes too): 4 KiB O_DIRECT writes and reads through io_uring
 * at queue depth 32 (no copies, no checksums); the latency of one read at
 * depth 1, and of 8 one-page reads submitted together.
 *
 * VMM: one `touch mb=M passes=2 hot=100` guest under --memory-max M/4 with a
 * swap file in DIR. Pass 1 pushes 3/4 of its pages out (swap-out rate:
 * pages written per second of reclaim work); pass 2 reads every page back
 * (swap-in rate: pages per second of the fault path's swap-in work; latency
 * percentiles from the same; and the guest's pass, where every page read
 * at memory.max also evicts one, against a raw read plus a raw write).
 * Latency of faults that read one page comes from the same run with
 * --page-cluster 0 (no readahead), of faults that read a window of 8 from
 * the first.
 *
 * Overcommit: `touch mb=128 passes=6` with no limit and under --memory-max
 * 64M (2x), same run: the slowdown of each later pass, for a hot set that
 * fits the limit (hot=25) and one that does not (hot=50).
 *
 * Every vmm run uses --accel (default auto); the output names the
 * accelerator the runs used.
 */
#include <fcntl.h>
#include <getopt.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_accel.h"
#include "vmm_process.h"

#define PAGE 4096
#define DEPTH 32

/* Pages per second of 4 KiB O_DIRECT I/O at depth 32 over the whole file. */
static double raw_uring(int fd, uint64_t pages, int write)
{
	struct io_uring ring;
	if (io_uring_queue_init(DEPTH, &ring, 0))
		return 0;
	void *buf;
	if (posix_memalign(&buf, PAGE, (size_t)DEPTH * PAGE))
		return 0;
	memset(buf, 0x5a, (size_t)DEPTH * PAGE);
	double t0 = monotonic_seconds();
	uint64_t submitted = 0, done = 0;
	while (done < pages) {
		while (submitted < pages && submitted - done < DEPTH) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			char *b = (char *)buf + (submitted % DEPTH) * PAGE;
			if (write)
				io_uring_prep_write(sqe, fd, b, PAGE, (off_t)(submitted * PAGE));
			else
				io_uring_prep_read(sqe, fd, b, PAGE, (off_t)(submitted * PAGE));
			submitted++;
		}
		io_uring_submit(&ring);
		struct io_uring_cqe *cqe;
		if (io_uring_wait_cqe(&ring, &cqe))
			break;
		io_uring_cqe_seen(&ring, cqe);
		done++;
	}
	double t = monotonic_seconds() - t0;
	io_uring_queue_exit(&ring);
	free(buf);
	return (double)pages / t;
}

/* Latency of reading a window of w consecutive 4 KiB pages at a random place,
 * submitted together (w = 1: one read at depth 1): p50/p90/p99 and the mean,
 * in us. */
static void raw_latency(int fd, uint64_t pages, unsigned w, double pct[4])
{
	enum { SAMPLES = 4000 };
	static double lat[SAMPLES];
	struct io_uring ring;
	void *buf;
	if (io_uring_queue_init(DEPTH, &ring, 0))
		return;
	if (posix_memalign(&buf, PAGE, (size_t)w * PAGE)) {
		io_uring_queue_exit(&ring);
		return;
	}
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < SAMPLES; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint64_t first = x % (pages - w);
		double t0 = monotonic_seconds();
		for (unsigned k = 0; k < w; k++)
			io_uring_prep_read(io_uring_get_sqe(&ring), fd, (char *)buf + k * PAGE,
					   PAGE, (off_t)((first + k) * PAGE));
		io_uring_submit(&ring);
		for (unsigned k = 0; k < w; k++) {
			struct io_uring_cqe *cqe;
			if (io_uring_wait_cqe(&ring, &cqe))
				break;
			io_uring_cqe_seen(&ring, cqe);
		}
		lat[i] = (monotonic_seconds() - t0) * 1e6;
	}
	pct[3] = 0;
	for (int i = 0; i < SAMPLES; i++)
		pct[3] += lat[i] / SAMPLES;
	qsort(lat, SAMPLES, sizeof(lat[0]), compare_doubles);
	pct[0] = lat[SAMPLES / 2];
	pct[1] = lat[SAMPLES * 9 / 10];
	pct[2] = lat[SAMPLES * 99 / 100];
	io_uring_queue_exit(&ring);
	free(buf);
}

static void row(const char *label, double vmm, double raw, int decimals)
{
	printf("  %-38s %12.*f %12.*f %7.2fx\n", label, decimals, vmm, decimals, raw, vmm / raw);
}

static json_object *run(const char *const *args, struct vmm_output *o)
{
	vmm_process_run(o, VMM_BINARY, args, 1, NULL, 0);
	bench_accel_note(o->report);
	if (o->status != 0 || !o->report) {
		fprintf(stderr, "bench_swap: vmm failed: %s\n", o->err);
		exit(1);
	}
	return o->report;
}

static double pass_ms(json_object *report, int pass)
{
	char key[64];
	snprintf(key, sizeof(key), "guest_values.pass%d_ns", pass);
	return (double)json_path_int(report_vm(report, 0), key) / 1e6;
}

enum { PASSES = 6 };

struct overcommit {
	int hot;
	const char *mmu_asked; /* --tcg-mmu for both runs, or NULL */
	char mmu[16];	       /* what the runs used ("" on KVM) */
	double free_ms[PASSES + 1], tight_ms[PASSES + 1];
	double free_later, tight_later; /* passes 4..: the steady state */
	double swapped_in, refaults;
};

/* touch mb=128 with no limit, then under --memory-max 64M with swap. */
static void overcommit_run(struct overcommit *c, const char *swap_path)
{
	char hot[32], passes[32];
	snprintf(hot, sizeof(hot), "hot=%d", c->hot);
	snprintf(passes, sizeof(passes), "passes=%d", PASSES);
	const char *free_args[] = {"run", "--quiet", "--mem", "192M", "touch",
				   "--",  "mb=128",  passes,  hot,    NULL};
	const char *tight_args[] = {"run",	    "--quiet", "--mem",	 "192M",
				    "--memory-max", "64M",     "--swap", swap_path,
				    "--swap-size",  "512M",    "touch",	 "--",
				    "mb=128",	    passes,    hot,	 NULL};
	struct vmm_output of, ot;
	vmm_process_set_tcg_mmu(c->mmu_asked);
	json_object *rf = run(free_args, &of), *rt = run(tight_args, &ot);
	vmm_process_set_tcg_mmu(NULL);
	json_object *mmu = json_object_object_get(rt, "mmu");
	snprintf(c->mmu, sizeof(c->mmu), "%s", mmu ? json_object_get_string(mmu) : "");
	for (int p = 1; p <= PASSES; p++) {
		c->free_ms[p] = pass_ms(rf, p);
		c->tight_ms[p] = pass_ms(rt, p);
		if (p >= 4) {
			c->free_later += c->free_ms[p];
			c->tight_later += c->tight_ms[p];
		}
	}
	c->swapped_in = (double)json_path_int(rt, "swap.pswpin");
	c->refaults = (double)json_path_int(rt, "swap.refaults");
	vmm_output_free(&of);
	vmm_output_free(&ot);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_swap [options]\n"
		"\n"
		"Swap-out and swap-in throughput and latency against raw O_DIRECT io_uring I/O\n"
		"on the same file system, and a touch guest under 2x overcommit.\n"
		"\n"
		"  -d, --dir DIR      where the swap and raw files go (default /var/tmp)\n"
		"  -m, --mb M         MiB of the swapping guest, at least 16 (default 256)\n" BENCH_ACCEL_HELP
		"  -j, --json FILE    every figure as JSON\n"
		"  -h, --help\n");
}

int main(int argc, char **argv)
{
	const char *dir = "/var/tmp", *json_path = NULL;
	int mb = 256;
	enum { OPT_ACCEL = 256 };
	static const struct option options[] = {{"dir", required_argument, NULL, 'd'},
						{"mb", required_argument, NULL, 'm'},
						{"accel", required_argument, NULL, OPT_ACCEL},
						{"json", required_argument, NULL, 'j'},
						{"help", no_argument, NULL, 'h'},
						{NULL, 0, NULL, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "d:m:j:h", options, NULL)) != -1) {
		if (c == 'd')
			dir = optarg;
		else if (c == 'm')
			mb = atoi(optarg) >= 16 ? atoi(optarg) : 256;
		else if (c == OPT_ACCEL)
			bench_accel_option("bench_swap", optarg);
		else if (c == 'j')
			json_path = optarg;
		else {
			usage(c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	uint64_t pages = (uint64_t)mb * 256;

	/* Raw baseline on a fresh preallocated file. */
	char raw_path[256];
	snprintf(raw_path, sizeof(raw_path), "%s/bench-swap-raw-%d", dir, getpid());
	int fd = open(raw_path, O_RDWR | O_CREAT | O_EXCL | O_DIRECT, 0600);
	if (fd < 0 || fallocate(fd, 0, 0, (off_t)(pages * PAGE))) {
		perror(raw_path);
		return 1;
	}
	double raw_write = raw_uring(fd, pages, 1);
	double raw_read = raw_uring(fd, pages, 0);
	double raw_lat[4] = {0}, raw_window_lat[4] = {0};
	raw_latency(fd, pages, 1, raw_lat);
	raw_latency(fd, pages, 8, raw_window_lat);
	close(fd);
	unlink(raw_path);

	/* The VMM: pass 1 swaps 3/4 out, pass 2 reads everything back. */
	char swap_path[256], mem[32], max[32], mbarg[32];
	snprintf(swap_path, sizeof(swap_path), "%s/bench-swap-%d.swap", dir, getpid());
	snprintf(mem, sizeof(mem), "%dM", mb + 64);
	snprintf(max, sizeof(max), "%dM", mb / 4);
	snprintf(mbarg, sizeof(mbarg), "mb=%d", mb);
	const char *swap_args[] = {"run",    "--quiet",	 "--mem",	mem,  "--memory-max", max,
				   "--swap", swap_path,	 "--swap-size", "1G", "touch",	      "--",
				   mbarg,    "passes=2", "hot=100",	NULL};
	struct vmm_output o;
	json_object *r = run(swap_args, &o);
	double out_pages = (double)json_path_int(r, "swap.pswpout");
	double in_pages = (double)json_path_int(r, "swap.pswpin");
	double reclaim_s = json_path_double(r, "swap.kswapd_seconds") +
			   json_path_double(r, "swap.direct_seconds");
	double out_rate = reclaim_s > 0 ? out_pages / reclaim_s : 0;
	/* Swap-in: pages per second of the fault path's swap-in work, and the
	 * guest's view (pass 2), where at memory.max every page read also
	 * evicts one: its baseline is a raw read plus a raw write per page. */
	double swapin_s = json_path_double(r, "swap.swapin_seconds");
	double in_rate = swapin_s > 0 ? in_pages / swapin_s : 0;
	double pass2 = pass_ms(r, 2) / 1000;
	double guest_rate = pass2 > 0 ? (double)pages / pass2 : 0;
	double window_lat[3] = {json_path_double(r, "swap.readahead_latency_us.p50"),
				json_path_double(r, "swap.readahead_latency_us.p90"),
				json_path_double(r, "swap.readahead_latency_us.p99")};
	double readahead = (double)json_path_int(r, "swap.readahead_pages");
	vmm_output_free(&o);

	/* The same without readahead: every fault reads one page. */
	const char *single_args[] = {
		"run",	  "--quiet", "--mem",	    mem,	"--memory-max",	  max,
		"--swap", swap_path, "--swap-size", "1G",	"--page-cluster", "0",
		"touch",  "--",	     mbarg,	    "passes=2", "hot=100",	  NULL};
	r = run(single_args, &o);
	double lat[3] = {json_path_double(r, "swap.swapin_latency_us.p50"),
			 json_path_double(r, "swap.swapin_latency_us.p90"),
			 json_path_double(r, "swap.swapin_latency_us.p99")};
	double single_s = json_path_double(r, "swap.swapin_seconds");
	double single_rate = single_s > 0 ? (double)json_path_int(r, "swap.pswpin") / single_s : 0;
	vmm_output_free(&o);

	/* touch under 2x overcommit: a hot set that fits the limit, and one that
	 * does not (hot=50 of 128 MiB is the whole 64 MiB limit, before the
	 * guest's own pages). On TCG the first again on host mappings: ageing
	 * from the CPU's accessed bits (owned page table) against ageing from
	 * mm's write-protect access log. */
	struct overcommit cases[3] = {{.hot = 25}, {.hot = 50}, {.hot = 25, .mmu_asked = "host"}};
	int ncases = 2;
	for (int i = 0; i < ncases; i++) {
		overcommit_run(&cases[i], swap_path);
		if (i == 0 && strcmp(cases[0].mmu, "owned") == 0)
			ncases = 3;
	}
	printf("bench_swap: %d MiB guest, 4 KiB pages, files in %s\n", mb, dir);
	bench_accel_print(stdout, "  ");
	printf("  %-38s %12s %12s %8s\n", "", "vmm", "raw", "ratio");
	row("swap-out, pages/s", out_rate, raw_write, 0);
	row("swap-in, pages/s", in_rate, raw_read, 0);
	row("swap-in without readahead, pages/s", single_rate, 1e6 / raw_lat[3], 0);
	double raw_read_write = 1 / (1 / raw_read + 1 / raw_write);
	row("guest pass at memory.max, pages/s", guest_rate, raw_read_write, 0);
	static const char *const pct_names[3] = {"p50", "p90", "p99"};
	char label[64];
	for (int i = 0; i < 3; i++) {
		snprintf(label, sizeof(label), "one-page swap-in %s, us", pct_names[i]);
		row(label, lat[i], raw_lat[i], 1);
	}
	for (int i = 0; i < 3; i++) {
		snprintf(label, sizeof(label), "readahead swap-in (8) %s, us", pct_names[i]);
		row(label, window_lat[i], raw_window_lat[i], 1);
	}
	printf("  (%0.f pages out in %.3f s of reclaim work, %.0f pages in in %.3f s, %.0f by "
	       "readahead;\n   raw baseline for the guest pass: one read and one write per page; for\n"
	       "   readahead: 8 one-page reads submitted together; without readahead: reads at depth 1)\n",
	       out_pages, reclaim_s, in_pages, swapin_s, readahead);
	for (int i = 0; i < ncases; i++) {
		struct overcommit *oc = &cases[i];
		printf("  touch mb=128 hot=%d (%s%s%s), ms per pass: no limit vs --memory-max 64M\n",
		       oc->hot, oc->hot == 25 ? "hot set fits" : "hot set does not fit",
		       oc->mmu[0] ? "; mmu " : "", oc->mmu);
		for (int p = 1; p <= PASSES; p++)
			printf("    pass %d: %9.1f %9.1f  (%.2fx)\n", p, oc->free_ms[p],
			       oc->tight_ms[p], oc->tight_ms[p] / oc->free_ms[p]);
		printf("    steady state, passes 4-%d: %.1f vs %.1f ms (%.2fx); whole run, with the guest's final\n"
		       "    check of every page: %.0f pages swapped in, %.0f refaults\n",
		       PASSES, oc->free_later, oc->tight_later, oc->tight_later / oc->free_later,
		       oc->swapped_in, oc->refaults);
	}
	if (ncases == 3)
		printf("  ageing, hot set fits: accessed bits (owned) %.2fx of unconstrained, access log "
		       "(host) %.2fx: %.2fx (goal: at most 1.1x)\n",
		       cases[0].tight_later / cases[0].free_later,
		       cases[2].tight_later / cases[2].free_later,
		       (cases[0].tight_later / cases[0].free_later) /
			       (cases[2].tight_later / cases[2].free_later));
	if (json_path) {
		FILE *f = fopen(json_path, "w");
		if (f) {
			fprintf(f,
				"{%s,\n \"mb\": %d, \"raw\": {\"write_pages_s\": %.0f, \"read_pages_s\": %.0f, "
				"\"latency_us\": [%.1f, %.1f, %.1f], \"window_latency_us\": [%.1f, %.1f, %.1f]},\n \"vmm\": {\"swapout_pages_s\": "
				"%.0f, \"swapin_pages_s\": %.0f, \"swapin_single_pages_s\": %.0f, \"guest_pass_pages_s\": %.0f, \"latency_us\": [%.1f, %.1f, %.1f], \"window_latency_us\": [%.1f, %.1f, %.1f], "
				"\"pswpout\": %.0f, \"pswpin\": %.0f},\n \"overcommit\": [",
				bench_accel_json_members(), mb, raw_write, raw_read, raw_lat[0],
				raw_lat[1], raw_lat[2], raw_window_lat[0], raw_window_lat[1],
				raw_window_lat[2], out_rate, in_rate, single_rate, guest_rate,
				lat[0], lat[1], lat[2], window_lat[0], window_lat[1], window_lat[2],
				out_pages, in_pages);
			for (int i = 0; i < ncases; i++)
				fprintf(f,
					"%s{\"hot_pct\": %d, \"mmu\": \"%s\", \"free_ms\": %.1f, "
					"\"tight_ms\": %.1f, "
					"\"slowdown\": %.3f, \"pswpin\": %.0f, \"refaults\": %.0f}",
					i ? ", " : "", cases[i].hot, cases[i].mmu,
					cases[i].free_later, cases[i].tight_later,
					cases[i].tight_later / cases[i].free_later,
					cases[i].swapped_in, cases[i].refaults);
			fprintf(f, "]}\n");
			fclose(f);
		}
	}
	return 0;
}
