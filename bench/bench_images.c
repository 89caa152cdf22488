/*
 * bench_images.c - KSM on fleets restored from RAM images of real Linux
 * systems, against the exact offline count of identical pages.
 *
 *   bench_images [--vms LIST] [--images LIST] [--dir DIR] [--hold-ms T]
 *                [--mem MIB] [--kaslr on|off] [--force] [--vmm-arg ARG]...
 *                [--accel auto|kvm|tcg] [--json FILE]
 *
 * 1. bench/linux_images.sh makes (or reuses) K RAM images: Debian's 6.1
 *    cloud kernel + a busybox initramfs booted under QEMU TCG, each boot
 *    running a small workload seeded by its index, frozen after it.
 * 2. For each (N, K) of the grid (default N = 4, 8 and K = 1, 2, 4), one
 *    `vmm run` of N `readmem hold=T` guests in K config groups, group k
 *    restored from image k (`memory_image`; counts as even as possible),
 *    with --ksm --ksm-rate max. readmem reads one word of every page of its
 *    heap, so every heap page is restored from the image, then holds it
 *    still for T ms while KSM merges.
 * 3. bench/image_dedup counts the identical pages of the same heap range
 *    (the buffer readmem declares, from the run's report) of the same N VMs
 *    exactly: the ideal saving and dedup ratio.
 * 4. Linux's ksmd on the same content: a host process restores the same
 *    heap range of the same images into N anonymous regions (region i from
 *    VM i's image), madvise(MADV_MERGEABLE), ksmd at max rate (ksmd.c), timed
 *    to 50/90/99% of the same exact saving. Our scanner starts once the
 *    guests have read their heaps (--ksm-start-ms 1000 + 500 per VM; "read s"
 *    shows it held) and is timed from its start, from the report's timeline
 *    (whose saving also counts the few "other" pages). Time and scanner CPU
 *    to each share of the ideal, both sides, in one table; --out DIR plots
 *    the saving over time of the largest run, both sides.
 *
 * Ours is what the report says at the largest saving: saved = pages_sharing
 * + ksm_zero_pages, dedup ratio = guest pages resident / host frames used.
 * Those figures cover every resident guest page (the heap plus the few
 * pages of boot area, guest ELF and stack, counted as "other pages"), and
 * our host frames include the 512-frame zero run; the ideal covers the heap
 * only and counts zero pages as free. "heap merged" is exact on both sides:
 * heap pages mapping a KSM frame or the zero run (per-VM buffer_ksm_pages +
 * buffer_zero_pages at the end of the run) against the heap pages that could
 * (zero pages and pages whose content occurs twice or more).
 *
 * Every vmm run uses --accel (default auto); the output names the
 * accelerator the runs used. (The images themselves are always made under
 * QEMU's TCG, whatever --accel says.)
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_accel.h"
#include "ksm_curve.h"
#include "ksmd.h"
#include "vmm_process.h"

#define MAX_GRID 8
#define MAX_IMAGES 64
#define PAGE 4096.0
#define MAX_EXTRA 16

/* --vmm-arg: more options for every `vmm run` (e.g. --ksm-dirty-log off). */
static const char *extra_args[MAX_EXTRA];
static int nextra;

struct run {
	int vms, images;
	/* ours, at the largest saving */
	double t_peak, saved_mib, dedup, t90, max_read_s, wall_s;
	int64_t pages_shared, pages_sharing, zero_pages, present, frames;
	int64_t heap_resident, heap_ksm, heap_zero, other_pages, image_pages;
	int still_rising;
	double *tl_t; /* the KSM timeline: t (from the scanner's start), saved pages, CPU */
	int64_t *tl_saved;
	double *tl_cpu;
	double start_s; /* when our scanner started (--ksm-start-ms) */
	/* to 50/90/99% of the ideal: ours from the scanner's start, and ksmd */
	double t_x[3], cpu_x[3];
	struct ksmd_merge_result ksmd;
	int have_ksmd;
	size_t tl_n;
	/* ideal, over the heap */
	double ideal_saved_mib, ideal_dedup;
	int64_t ideal_saved_pages, mergeable_pages, heap_pages;
	uint64_t range_start, range_end;
	json_object *ideal; /* image_dedup's JSON */
};

static double saved_ratio(const struct run *r)
{
	return r->ideal_saved_mib > 0 ? r->saved_mib / r->ideal_saved_mib : 0;
}

static double merged_fraction(const struct run *r)
{
	return r->mergeable_pages
		       ? (double)(r->heap_ksm + r->heap_zero) / (double)r->mergeable_pages
		       : 0;
}

static int parse_list(const char *text, int *out, int max, int lo, int hi)
{
	int n = 0;
	char *copy = strdup(text), *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		long v = strtol(tok, &end, 10);
		if (*end || v < lo || v > hi || n == max) {
			free(copy);
			return -1;
		}
		out[n++] = (int)v;
	}
	free(copy);
	return n;
}

/* Runs linux_images.sh with its progress on our stderr; its stdout lists
 * the image paths. */
static int make_images(const char *dir, int count, int mem_mib, const char *kaslr, int force,
		       char **paths)
{
	char count_s[16], mem_s[16];
	snprintf(count_s, sizeof(count_s), "%d", count);
	snprintf(mem_s, sizeof(mem_s), "%d", mem_mib);
	const char *argv[] = {"/bin/sh",
			      LINUX_IMAGES_SCRIPT,
			      "--dir",
			      dir,
			      "--count",
			      count_s,
			      "--mem",
			      mem_s,
			      "--kaslr",
			      kaslr,
			      force ? "--force" : NULL,
			      NULL};
	int fds[2];
	if (pipe(fds))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	FILE *f = fdopen(fds[0], "r");
	char line[4096];
	int n = 0;
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (n < MAX_IMAGES && line[0])
			paths[n++] = strdup(line);
	}
	if (f)
		fclose(f);
	int status;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench_images: %s failed (status %d)\n", LINUX_IMAGES_SCRIPT,
			WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		return -1;
	}
	if (n != count) {
		fprintf(stderr, "bench_images: %s printed %d image paths, expected %d\n",
			LINUX_IMAGES_SCRIPT, n, count);
		return -1;
	}
	return 0;
}

/* boot_seconds= from the image's stamp file (written by linux_images.sh). */
static double boot_seconds(const char *image)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s", image);
	char *dot = strrchr(path, '.');
	if (!dot || strcmp(dot, ".ram") != 0)
		return -1;
	strcpy(dot, ".stamp");
	FILE *f = fopen(path, "r");
	double s = -1;
	char line[4096];
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "boot_seconds=%lf", &s) == 1)
			break;
	if (f)
		fclose(f);
	return s;
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;
	if (o)
		json_object_object_get_ex(o, key, &v);
	return v;
}

static int64_t row_int(json_object *row, size_t i)
{
	return json_object_get_int64(json_object_array_get_idx(row, i));
}

static char *write_config(const struct run *r, char **paths, int mem_mib, int hold_ms)
{
	json_object *cfg = json_object_new_object();
	char mem[16], args[32];
	snprintf(mem, sizeof(mem), "%dM", mem_mib);
	snprintf(args, sizeof(args), "hold=%d", hold_ms);
	json_object_object_add(cfg, "mem", json_object_new_string(mem));
	json_object *groups = json_object_new_array();
	for (int k = 0; k < r->images; k++) {
		json_object *g = json_object_new_object();
		char name[16];
		snprintf(name, sizeof(name), "boot%d", k);
		json_object_object_add(g, "name", json_object_new_string(name));
		json_object_object_add(g, "guest", json_object_new_string("readmem"));
		json_object_object_add(
			g, "count",
			json_object_new_int(r->vms / r->images + (k < r->vms % r->images)));
		json_object_object_add(g, "args", json_object_new_string(args));
		json_object_object_add(g, "memory_image", json_object_new_string(paths[k]));
		json_object_array_add(groups, g);
	}
	json_object_object_add(cfg, "groups", groups);
	const char *text = json_object_to_json_string_ext(cfg, JSON_C_TO_STRING_PRETTY);
	char *path = write_temp_file(text, strlen(text), ".json");
	json_object_put(cfg);
	return path;
}

/* One vmm run: our figures. */
static int run_vmm(struct run *r, char **paths, int mem_mib, int hold_ms)
{
	int start_ms = 1000 + 500 * r->vms; /* after the guests read their heaps */
	r->start_s = start_ms / 1000.0;
	char *cfg = write_config(r, paths, mem_mib, start_ms + hold_ms);
	char start[16];
	snprintf(start, sizeof(start), "%d", start_ms);
	/* Sampled every 5 ms: ksmd's side is polled every 2 ms. */
	const char *args[12 + MAX_EXTRA] = {
		"run",	 "--quiet",	    "--config", cfg,
		"--ksm", "--ksm-rate",	    "max",	"--ksm-start-ms",
		start,	 "--ksm-sample-ms", "5"};
	for (int i = 0; i < nextra; i++)
		args[11 + i] = extra_args[i];
	args[11 + nextra] = NULL;
	struct vmm_output o;
	vmm_process_run(&o, VMM_BINARY, args, 1, NULL, 0);
	bench_accel_note(o.report);
	unlink(cfg);
	free(cfg);
	if (o.status != 0 || !o.report) {
		fprintf(stderr, "bench_images: vmm run (N=%d, K=%d) failed with status %d: %s\n",
			r->vms, r->images, o.status, o.err);
		vmm_output_free(&o);
		return -1;
	}
	r->wall_s = o.wall_seconds;
	json_object *peak = get(get(o.report, "ksm"), "peak");
	if (!peak) {
		fprintf(stderr, "bench_images: the report has no ksm.peak (no KSM sample)\n");
		vmm_output_free(&o);
		return -1;
	}
	r->t_peak = json_object_get_double(get(peak, "t"));
	r->saved_mib = (double)json_object_get_int64(get(peak, "saved_bytes")) / 1048576.0;
	r->dedup = json_object_get_double(get(peak, "dedup_ratio"));
	r->pages_shared = json_object_get_int64(get(peak, "pages_shared"));
	r->pages_sharing = json_object_get_int64(get(peak, "pages_sharing"));
	r->zero_pages = json_object_get_int64(get(peak, "ksm_zero_pages"));
	r->present = json_object_get_int64(get(peak, "guest_present_pages"));
	r->frames = json_object_get_int64(get(peak, "host_frames"));
	r->max_read_s = 0;
	for (int i = 0; i < r->vms; i++) {
		json_object *vm = report_vm(o.report, i);
		json_object *mem = get(vm, "memory");
		uint64_t gpa = (uint64_t)json_int(mem, "buffer_gpa"),
			 bytes = (uint64_t)json_int(mem, "buffer_bytes");
		if (i == 0) {
			r->range_start = gpa;
			r->range_end = gpa + bytes;
		} else if (gpa != r->range_start || gpa + bytes != r->range_end) {
			fprintf(stderr, "bench_images: VMs declared different heaps\n");
			vmm_output_free(&o);
			return -1;
		}
		r->heap_resident += json_int(mem, "buffer_resident_pages");
		r->heap_ksm += json_int(mem, "buffer_ksm_pages");
		r->heap_zero += json_int(mem, "buffer_zero_pages");
		r->image_pages += json_int(mem, "image_pages");
		/* Resident at the end: pages on a frame (Rss) or on the zero run. */
		r->other_pages += json_int(mem, "rss_pages") + json_int(mem, "ksm_zero_pages") -
				  json_int(mem, "buffer_resident_pages");
		double read_s = (double)json_path_int(vm, "guest_values.read_ns") * 1e-9;
		if (read_s > r->max_read_s)
			r->max_read_s = read_s;
	}
	/* The timeline: [t, pages_shared, pages_sharing, ksm_zero_pages, ...]. */
	json_object *timeline = get(get(o.report, "ksm"), "timeline");
	size_t n = timeline ? json_object_array_length(timeline) : 0;
	r->still_rising = 0;
	r->tl_t = calloc(n + 1, sizeof(*r->tl_t));
	r->tl_saved = calloc(n + 1, sizeof(*r->tl_saved));
	r->tl_cpu = calloc(n + 1, sizeof(*r->tl_cpu));
	for (size_t i = 0; i < n; i++) {
		json_object *row = json_object_array_get_idx(timeline, i);
		r->tl_t[i] = json_object_get_double(json_object_array_get_idx(row, 0)) - r->start_s;
		r->tl_saved[i] = row_int(row, 2) + row_int(row, 3);
		r->tl_cpu[i] = json_object_get_double(json_object_array_get_idx(row, 6));
	}
	r->tl_n = n;
	if (n >= 2) {
		json_object *last = json_object_array_get_idx(timeline, n - 1);
		double t_end = json_object_get_double(json_object_array_get_idx(last, 0));
		int64_t s_end = row_int(last, 2) + row_int(last, 3), s_before = s_end;
		for (size_t i = 0; i < n; i++) {
			json_object *row = json_object_array_get_idx(timeline, i);
			if (json_object_get_double(json_object_array_get_idx(row, 0)) <=
			    t_end - 1.0)
				s_before = row_int(row, 2) + row_int(row, 3);
		}
		r->still_rising = s_end > s_before;
	}
	r->heap_pages = (int64_t)((r->range_end - r->range_start) / 4096) * r->vms;
	vmm_output_free(&o);
	return 0;
}

/* The exact count of the same pages. */
static int run_image_dedup(struct run *r, char **paths, int mem_mib)
{
	char vms[16], range[64], mem[16];
	snprintf(vms, sizeof(vms), "%d", r->vms);
	snprintf(range, sizeof(range), "0x%" PRIx64 ":0x%" PRIx64, r->range_start, r->range_end);
	snprintf(mem, sizeof(mem), "%dM", mem_mib);
	const char *args[16 + MAX_IMAGES] = {"--vms", vms, "--range", range,
					     "--mem", mem, "--json",  "-"};
	int n = 8;
	for (int k = 0; k < r->images; k++)
		args[n++] = paths[k];
	args[n] = NULL;
	struct vmm_output o;
	vmm_process_run(&o, IMAGE_DEDUP_BINARY, args, 0, NULL, 0);
	json_object *j = o.status == 0 ? json_tokener_parse(o.out) : NULL;
	if (!j) {
		fprintf(stderr, "bench_images: image_dedup failed with status %d: %s\n", o.status,
			o.err);
		vmm_output_free(&o);
		return -1;
	}
	vmm_output_free(&o);
	r->ideal = j;
	json_object *ideal = get(j, "ideal");
	r->ideal_saved_pages = json_object_get_int64(get(ideal, "saved_pages"));
	r->ideal_saved_mib = (double)r->ideal_saved_pages * PAGE / 1048576.0;
	r->ideal_dedup = json_object_get_double(get(ideal, "dedup_ratio"));
	r->mergeable_pages = json_object_get_int64(get(j, "zero_pages")) +
			     json_object_get_int64(get(j, "repeated_pages"));
	/* Time and CPU to 50/90/99% of the ideal saving, from the scanner's
	 * start. */
	static const int pct[3] = {50, 90, 99};
	for (int x = 0; x < 3; x++) {
		r->t_x[x] = r->cpu_x[x] = -1;
		for (size_t i = 0; i < r->tl_n && r->ideal_saved_pages > 0; i++) {
			if (r->tl_saved[i] * 100 >= r->ideal_saved_pages * pct[x]) {
				r->t_x[x] = r->tl_t[i];
				r->cpu_x[x] = r->tl_cpu[i];
				break;
			}
		}
	}
	r->t90 = r->t_x[1];
	return 0;
}

/* Linux's ksmd on the same heaps in a host process. */
struct image_fill {
	const struct run *r;
	char **paths;
};

static int fill_from_image(void *ctx, int v, uint8_t *region, size_t bytes)
{
	const struct image_fill *f = ctx;
	/* VM v's group: the config's groups are in order, sizes as even as
	 * possible (write_config). */
	int k = 0, first = 0;
	for (; k < f->r->images; k++) {
		int count = f->r->vms / f->r->images + (k < f->r->vms % f->r->images);
		if (v < first + count)
			break;
		first += count;
	}
	FILE *img = fopen(f->paths[k], "rb");
	if (!img)
		return -1;
	size_t got = 0;
	if (fseeko(img, (off_t)f->r->range_start, SEEK_SET) == 0)
		got = fread(region, 1, bytes, img);
	fclose(img);
	memset(region + got, 0, bytes - got); /* past the image: zeroes, as restored */
	return 0;
}

static void run_ksmd(struct run *r, char **paths)
{
	struct image_fill f = {r, paths};
	r->have_ksmd = ksmd_merge_host_fill(r->vms, r->range_end - r->range_start, fill_from_image,
					    &f, &ksmd_max_rate, (uint64_t)r->ideal_saved_pages, 120,
					    &r->ksmd) == 0;
}

/* Saving over time, both sides, for one run (gnuplot). */
static int write_curve_plot(const char *dir, const struct run *r, char *png, size_t len)
{
	char dat[4096], dat2[4096], gp[4096];
	snprintf(dat, sizeof(dat), "%s/images-vmm.dat", dir);
	snprintf(dat2, sizeof(dat2), "%s/images-ksmd.dat", dir);
	snprintf(gp, sizeof(gp), "%s/images.gp", dir);
	snprintf(png, len, "%s/images.png", dir);
	FILE *f = fopen(dat, "w"), *g = fopen(dat2, "w");
	if (!f || !g) {
		if (f)
			fclose(f);
		if (g)
			fclose(g);
		return -1;
	}
	/* Ours until the guests start ending (the saving falls from its
	 * largest by more than 5%). */
	int64_t most = 0;
	for (size_t i = 0; i < r->tl_n; i++) {
		if (r->tl_saved[i] > most)
			most = r->tl_saved[i];
		if (r->tl_saved[i] * 20 < most * 19)
			break;
		if (r->tl_t[i] >= 0)
			fprintf(f, "%.4f %.3f\n", r->tl_t[i],
				100.0 * (double)r->tl_saved[i] / (double)r->ideal_saved_pages);
	}
	for (size_t i = 0; r->have_ksmd && i < r->ksmd.tl_n; i++)
		fprintf(g, "%.4f %.3f\n", r->ksmd.tl_t[i],
			100.0 * (double)r->ksmd.tl_saved[i] / (double)r->ideal_saved_pages);
	fclose(f);
	fclose(g);
	f = fopen(gp, "w");
	if (!f)
		return -1;
	fprintf(f,
		"set terminal pngcairo noenhanced size 900,500\n"
		"set output '%s'\n"
		"set title 'Saving over time, %d VMs from %d Linux RAM image(s), KSM at max rate'\n"
		"set xlabel 'seconds from the scanner start'\n"
		"set ylabel '%% of the exact saving'\n"
		"set grid\n"
		"set key bottom right\n"
		"set yrange [0:105]\n"
		"plot '%s' using 1:2 with lines lw 2 title 'vmm', \\\n"
		"     '%s' using 1:2 with lines lw 2 dt 2 title 'Linux ksmd (host process)'\n",
		png, r->vms, r->images, dat, dat2);
	fclose(f);
	return gnuplot_run(gp, "bench_images");
}

/* "--ksm --ksm-rate max" and the --vmm-arg arguments. */
static const char *vmm_args_text(void)
{
	static char text[1024];
	int n = snprintf(text, sizeof(text), "--ksm --ksm-rate max");
	for (int i = 0; i < nextra && n > 0 && (size_t)n < sizeof(text); i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, " %s", extra_args[i]);
	return text;
}

static json_object *u64(int64_t v)
{
	return json_object_new_int64(v);
}

static json_object *dbl(double v)
{
	return json_object_new_double(v);
}

static json_object *int_list(const int *v, int n)
{
	json_object *a = json_object_new_array();
	for (int i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_int(v[i]));
	return a;
}

static int write_json(const char *path, struct run *runs, int nruns, char **paths, int kmax,
		      const int *vms_list, int nvms, const int *images_list, int nimg, int hold_ms,
		      int mem_mib, const char *kaslr)
{
	json_object *root = json_object_new_object();
	bench_accel_json_add(root);
	json_object *settings = json_object_new_object();
	json_object_object_add(settings, "vms", int_list(vms_list, nvms));
	json_object_object_add(settings, "images", int_list(images_list, nimg));
	json_object_object_add(settings, "hold_ms", json_object_new_int(hold_ms));
	json_object_object_add(settings, "mem_mib", json_object_new_int(mem_mib));
	json_object_object_add(settings, "kaslr", json_object_new_string(kaslr));
	json_object_object_add(settings, "vmm_args", json_object_new_string(vmm_args_text()));
	json_object_object_add(root, "settings", settings);
	json_object_object_add(
		root, "counted",
		json_object_new_string(
			"ideal: the readmem heap of every VM (runs[].heap); ours: every resident "
			"guest page, host frames including the zero run"));
	json_object *images = json_object_new_array();
	for (int k = 0; k < kmax; k++) {
		struct stat st;
		json_object *im = json_object_new_object();
		json_object_object_add(im, "path", json_object_new_string(paths[k]));
		json_object_object_add(im, "disk_bytes",
				       u64(stat(paths[k], &st) == 0 ? st.st_blocks * 512 : -1));
		json_object_object_add(im, "boot_seconds", dbl(boot_seconds(paths[k])));
		json_object_array_add(images, im);
	}
	json_object_object_add(root, "images", images);
	json_object *arr = json_object_new_array();
	for (int i = 0; i < nruns; i++) {
		struct run *r = &runs[i];
		json_object *o = json_object_new_object(), *heap = json_object_new_object(),
			    *ours = json_object_new_object();
		json_object_object_add(o, "vms", json_object_new_int(r->vms));
		json_object_object_add(o, "images", json_object_new_int(r->images));
		json_object_object_add(heap, "start", u64((int64_t)r->range_start));
		json_object_object_add(heap, "end", u64((int64_t)r->range_end));
		json_object_object_add(heap, "pages", u64(r->heap_pages));
		json_object_object_add(o, "heap", heap);
		json_object_object_add(ours, "t_peak", dbl(r->t_peak));
		json_object_object_add(ours, "saved_bytes",
				       u64((r->pages_sharing + r->zero_pages) * 4096));
		json_object_object_add(ours, "dedup_ratio", dbl(r->dedup));
		json_object_object_add(ours, "pages_shared", u64(r->pages_shared));
		json_object_object_add(ours, "pages_sharing", u64(r->pages_sharing));
		json_object_object_add(ours, "ksm_zero_pages", u64(r->zero_pages));
		json_object_object_add(ours, "guest_present_pages", u64(r->present));
		json_object_object_add(ours, "host_frames", u64(r->frames));
		json_object_object_add(ours, "other_pages", u64(r->other_pages));
		json_object_object_add(ours, "heap_resident_pages", u64(r->heap_resident));
		json_object_object_add(ours, "heap_ksm_pages", u64(r->heap_ksm));
		json_object_object_add(ours, "heap_zero_pages", u64(r->heap_zero));
		json_object_object_add(ours, "image_pages", u64(r->image_pages));
		json_object_object_add(ours, "t90", r->t90 >= 0 ? dbl(r->t90) : NULL);
		json_object_object_add(ours, "max_read_seconds", dbl(r->max_read_s));
		json_object_object_add(ours, "still_rising",
				       json_object_new_boolean(r->still_rising));
		json_object_object_add(ours, "wall_seconds", dbl(r->wall_s));
		json_object_object_add(ours, "scanner_start_seconds", dbl(r->start_s));
		static const char *const names[3] = {"50", "90", "99"};
		json_object *to = json_object_new_object(), *lto = json_object_new_object();
		for (int x = 0; x < 3; x++) {
			json_object *p = json_object_new_object();
			json_object_object_add(p, "seconds",
					       r->t_x[x] >= 0 ? dbl(r->t_x[x]) : NULL);
			json_object_object_add(p, "cpu_seconds",
					       r->cpu_x[x] >= 0 ? dbl(r->cpu_x[x]) : NULL);
			json_object_object_add(to, names[x], p);
		}
		json_object_object_add(ours, "to_ideal_pct", to);
		json_object_object_add(o, "ours", ours);
		if (r->have_ksmd) {
			double kt[3] = {r->ksmd.t50, r->ksmd.t90, r->ksmd.t99};
			double kc[3] = {r->ksmd.cpu50, r->ksmd.cpu90, r->ksmd.cpu99};
			for (int x = 0; x < 3; x++) {
				json_object *p = json_object_new_object();
				json_object_object_add(p, "seconds",
						       kt[x] >= 0 ? dbl(kt[x]) : NULL);
				json_object_object_add(p, "cpu_seconds",
						       kt[x] >= 0 ? dbl(kc[x]) : NULL);
				json_object_object_add(lto, names[x], p);
			}
			json_object *ks = json_object_new_object();
			json_object_object_add(ks, "to_ideal_pct", lto);
			json_object_object_add(ks, "reached_pages", u64((int64_t)r->ksmd.reached));
			json_object_object_add(o, "ksmd", ks);
		} else {
			json_object_put(lto);
		}
		json_object_object_add(o, "ideal", json_object_get(r->ideal));
		json_object_object_add(o, "ours_over_ideal_saved", dbl(saved_ratio(r)));
		json_object_object_add(o, "heap_merged_fraction", dbl(merged_fraction(r)));
		json_object_array_add(arr, o);
	}
	json_object_object_add(root, "runs", arr);
	const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY);
	FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
	int rc = f && fprintf(f, "%s\n", text) >= 0 ? 0 : -1;
	if (f && f != stdout && fclose(f))
		rc = -1;
	if (rc)
		fprintf(stderr, "bench_images: cannot write %s: %s\n", path, strerror(errno));
	json_object_put(root);
	return rc;
}

int main(int argc, char **argv)
{
	int vms_list[MAX_GRID] = {4, 8}, nvms = 2, images_list[MAX_GRID] = {1, 2, 4}, nimg = 3;
	int hold_ms = 5000, mem_mib = 128, force = 0;
	const char *dir = "/var/tmp/vmm-images", *kaslr = "on", *json_path = NULL, *out_dir = NULL;
	int with_ksmd = 1;
	static const struct option options[] = {{"vms", required_argument, NULL, 'n'},
						{"images", required_argument, NULL, 'k'},
						{"dir", required_argument, NULL, 'd'},
						{"hold-ms", required_argument, NULL, 't'},
						{"mem", required_argument, NULL, 'm'},
						{"kaslr", required_argument, NULL, 'a'},
						{"force", no_argument, NULL, 'f'},
						{"json", required_argument, NULL, 'j'},
						{"vmm-arg", required_argument, NULL, 'x'},
						{"accel", required_argument, NULL, 'A'},
						{"out", required_argument, NULL, 'o'},
						{"no-ksmd", no_argument, NULL, 'K'},
						{"help", no_argument, NULL, 'h'},
						{NULL, 0, NULL, 0}};
	const char *usage =
		"usage: bench_images [--vms LIST] [--images LIST] [--dir DIR] [--hold-ms T]\n"
		"                    [--mem MIB] [--kaslr on|off] [--force] [--vmm-arg ARG]...\n"
		"                    [--accel auto|kvm|tcg] [--json FILE] [--out DIR] [--no-ksmd]\n"
		"\n"
		"KSM on N VMs restored from K RAM images of real Linux boots (made by\n"
		"bench/linux_images.sh), against the exact count of identical pages\n"
		"(bench/image_dedup) over the same heap pages.\n"
		"\n"
		"  -n, --vms LIST      fleet sizes N (default 4,8)\n"
		"  -k, --images LIST   numbers of different boots K (default 1,2,4)\n"
		"  -d, --dir DIR       image directory (default /var/tmp/vmm-images)\n"
		"  -t, --hold-ms T     how long each guest holds its memory for KSM (5000)\n"
		"  -m, --mem MIB       guest RAM and image size in MiB (default 128)\n"
		"      --kaslr on|off  boot the images with or without KASLR (default on)\n"
		"  -f, --force         remake the images\n"
		"  -x, --vmm-arg ARG   one more argument for every vmm run (repeatable),\n"
		"                      e.g. -x --ksm-dirty-log -x off\n"
		"      --accel auto|kvm|tcg  the accelerator of every vmm run (default auto:\n"
		"                      KVM where /dev/kvm is usable, else TCG)\n"
		"  -j, --json FILE     write every figure as JSON ('-': stdout)\n"
		"  -o, --out DIR       plot the saving over time of the largest run, both sides\n"
		"      --no-ksmd       skip Linux's ksmd on the same content\n";
	int c;
	while ((c = getopt_long(argc, argv, "n:k:d:t:m:fx:j:o:h", options, NULL)) != -1) {
		switch (c) {
		case 'n':
			nvms = parse_list(optarg, vms_list, MAX_GRID, 1, 256);
			break;
		case 'k':
			nimg = parse_list(optarg, images_list, MAX_GRID, 1, MAX_IMAGES);
			break;
		case 'd':
			dir = optarg;
			break;
		case 't':
			hold_ms = atoi(optarg);
			break;
		case 'm':
			mem_mib = atoi(optarg);
			break;
		case 'a':
			kaslr = optarg;
			break;
		case 'f':
			force = 1;
			break;
		case 'j':
			json_path = optarg;
			break;
		case 'x':
			if (nextra == MAX_EXTRA) {
				fprintf(stderr, "bench_images: at most %d --vmm-arg\n", MAX_EXTRA);
				return 2;
			}
			extra_args[nextra++] = optarg;
			break;
		case 'A':
			bench_accel_option("bench_images", optarg);
			break;
		case 'o':
			out_dir = optarg;
			break;
		case 'K':
			with_ksmd = 0;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (nvms <= 0 || nimg <= 0 || hold_ms < 0 || mem_mib < 64 || mem_mib % 2 ||
	    (strcmp(kaslr, "on") && strcmp(kaslr, "off")) || optind != argc) {
		fprintf(stderr, "bench_images: bad arguments\n%s", usage);
		return 2;
	}
	int kmax = 0;
	for (int i = 0; i < nimg; i++)
		if (images_list[i] > kmax)
			kmax = images_list[i];

	char *paths[MAX_IMAGES] = {0};
	if (make_images(dir, kmax, mem_mib, kaslr, force, paths))
		return 1;
	FILE *text = json_path && strcmp(json_path, "-") == 0 ? stderr : stdout;

	struct run runs[MAX_GRID * MAX_GRID];
	int nruns = 0;
	for (int a = 0; a < nvms; a++) {
		for (int b = 0; b < nimg; b++) {
			struct run *r = &runs[nruns];
			memset(r, 0, sizeof(*r));
			r->vms = vms_list[a];
			r->images = images_list[b];
			if (r->images > r->vms)
				continue;
			fprintf(stderr, "bench_images: N=%d VMs from K=%d image(s)...\n", r->vms,
				r->images);
			if (run_vmm(r, paths, mem_mib, hold_ms) ||
			    run_image_dedup(r, paths, mem_mib))
				return 1;
			if (with_ksmd) {
				fprintf(stderr, "bench_images: ksmd on the same heaps...\n");
				ksmd_restore_on_signals();
				run_ksmd(r, paths);
			}
			nruns++;
		}
	}
	fprintf(text,
		"bench_images: N VMs restored from K RAM images (Debian cloud kernel + busybox "
		"initramfs booted under QEMU TCG, kaslr %s, %d MiB, a workload per boot), "
		"readmem hold=%d, vmm run %s\n",
		kaslr, mem_mib, hold_ms, vmm_args_text());
	bench_accel_print(text, "  ");
	/* Per image, over the heap range: from a run that used every image. */
	json_object *per_image = NULL;
	for (int i = 0; i < nruns; i++)
		if (runs[i].images == kmax)
			per_image = get(runs[i].ideal, "images");
	for (int k = 0; k < kmax; k++) {
		struct stat st;
		double alloc =
			stat(paths[k], &st) == 0 ? (double)st.st_blocks * 512 / 1048576.0 : 0;
		fprintf(text, "  image %d: %s (%.0f MiB on disk, boot to marker %.2f s)", k,
			paths[k], alloc, boot_seconds(paths[k]));
		json_object *im =
			per_image ? json_object_array_get_idx(per_image, (size_t)k) : NULL;
		int64_t heap =
			nruns ? (int64_t)(runs[0].range_end - runs[0].range_start) / 4096 : 0;
		if (im && heap > 0)
			fprintf(text,
				"; heap: %" PRId64 " zero pages (%.0f%%), %" PRId64
				" distinct non-zero, %" PRId64 " repeats",
				json_int(im, "zero_pages"),
				100.0 * (double)json_int(im, "zero_pages") / (double)heap,
				json_int(im, "distinct_nonzero"), json_int(im, "repeats"));
		fputc('\n', text);
	}
	if (nruns)
		fprintf(text,
			"  ideal: exact count over the readmem heap of every VM, guest-physical "
			"[0x%" PRIx64 ", 0x%" PRIx64 "), %" PRIu64 " pages per VM\n",
			runs[0].range_start, runs[0].range_end,
			(runs[0].range_end - runs[0].range_start) / 4096);
	fprintf(text, "  ours: the report at the largest saving, all resident guest pages (heap + "
		      "other pages); host frames include the 512-frame zero run\n");
	fprintf(text, "  %3s %3s | %10s %6s %6s | %10s %6s | %7s | %13s | %6s %6s %6s\n", "N", "K",
		"saved MiB", "dedup", "other", "ideal MiB", "dedup", "ours/id", "heap merged",
		"read s", "t90 s", "peak s");
	for (int i = 0; i < nruns; i++) {
		const struct run *r = &runs[i];
		char t90[16];
		if (r->t90 >= 0)
			snprintf(t90, sizeof(t90), "%.1f", r->t90);
		else
			snprintf(t90, sizeof(t90), "-");
		fprintf(text,
			"  %3d %3d | %10.1f %6.2f %6" PRId64 " | %10.1f %6.2f | %7.3f | %12.1f%% | "
			"%6.2f %6s %6.1f%s\n",
			r->vms, r->images, r->saved_mib, r->dedup, r->other_pages,
			r->ideal_saved_mib, r->ideal_dedup, saved_ratio(r),
			100.0 * merged_fraction(r), r->max_read_s, t90, r->t_peak,
			r->still_rising ? "  (still rising)" : "");
	}
	fprintf(text,
		"  saved = pages_sharing + ksm_zero_pages; dedup = guest pages / host frames; other "
		"= pages resident outside the heaps at the end (boot area, guest ELF, stacks);\n"
		"  ours/id = our saved / ideal saved; heap merged = heap pages on a KSM frame or "
		"the zero run / heap pages that are zero or repeated;\n"
		"  read s = slowest guest's read of its heap (the scanner started at %.1f + 0.5 s "
		"per VM); t90 = first sample with 90%% of the ideal saving, peak = sample of the "
		"largest saving (s from the scanner's start)\n",
		1.0);
	/* Time and CPU to 50/90/99% of the exact saving, both sides. */
	fprintf(text, "  to the exact saving, from each scanner's start (ksmd: the same heaps in "
		      "a host process, max rate):\n");
	fprintf(text, "  %3s %3s | %-29s | %-29s | %-17s\n", "", "", "seconds to 50/90/99%",
		"scanner CPU-s to 50/90/99%", "vmm/ksmd at 99%");
	fprintf(text, "  %3s %3s | %-14s %-14s | %-14s %-14s | %8s %8s\n", "N", "K", "vmm", "ksmd",
		"vmm", "ksmd", "time", "CPU");
	for (int i = 0; i < nruns; i++) {
		const struct run *r = &runs[i];
		const struct ksmd_merge_result *k = &r->ksmd;
		double kt[3] = {k->t50, k->t90, k->t99}, kc[3] = {k->cpu50, k->cpu90, k->cpu99};
		char vt[32], vc[32], lt[32], lc[32], rt[16] = "-", rc[16] = "-";
		snprintf(vt, sizeof(vt), "%.2f/%.2f/%.2f", r->t_x[0], r->t_x[1], r->t_x[2]);
		snprintf(vc, sizeof(vc), "%.2f/%.2f/%.2f", r->cpu_x[0], r->cpu_x[1], r->cpu_x[2]);
		if (r->have_ksmd) {
			snprintf(lt, sizeof(lt), "%.2f/%.2f/%.2f", kt[0], kt[1], kt[2]);
			snprintf(lc, sizeof(lc), "%.2f/%.2f/%.2f", kc[0], kc[1], kc[2]);
			if (kt[2] > 0 && r->t_x[2] >= 0)
				snprintf(rt, sizeof(rt), "%.2fx", r->t_x[2] / kt[2]);
			if (kc[2] > 0 && r->cpu_x[2] >= 0)
				snprintf(rc, sizeof(rc), "%.2fx", r->cpu_x[2] / kc[2]);
		} else {
			snprintf(lt, sizeof(lt), "-");
			snprintf(lc, sizeof(lc), "-");
		}
		fprintf(text, "  %3d %3d | %-14s %-14s | %-14s %-14s | %8s %8s\n", r->vms,
			r->images, vt, lt, vc, lc, rt, rc);
	}
	fprintf(text,
		"  (-1: not reached within the hold or 120 s; ksmd's CPU time comes from %s)\n",
		proc_cpu_source());
	if (out_dir && nruns) {
		char png[4096];
		const struct run *big = &runs[nruns - 1];
		if (write_curve_plot(out_dir, big, png, sizeof(png)) == 0)
			fprintf(text, "  plot: %s\n", png);
	}
	if (json_path && write_json(json_path, runs, nruns, paths, kmax, vms_list, nvms,
				    images_list, nimg, hold_ms, mem_mib, kaslr))
		return 1;
	return 0;
}
