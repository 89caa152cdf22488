/*
 * image_dedup.c - the exact, offline count of identical pages in a fleet
 * restored from RAM images: what KSM could save at best.
 *
 *   image_dedup [--vms N] [--range START:END] [--mem SIZE]
 *               [--max-page-sharing C] [--json FILE] IMAGE...
 *
 * `vmm run --memory-image` restores VM i of a fleet from image i % K (K
 * images, one config group each). This tool reads the same images and counts,
 * over the same guest-physical page range of every VM (by default the whole
 * of guest memory; the memory-image benchmark passes the heap range that the
 * `readmem` guest reads), every page's content exactly: all-zero pages, and
 * the distinct non-zero contents (bucketed by XXH3-64, every match confirmed
 * with memcmp, so a hash collision can never merge two different pages).
 * A page beyond the end of a shorter image reads as zeroes, as in the VMM.
 *
 * From these counts come the ideal figures under the definitions of our
 * report (vmm/report.c) and Linux's /sys/kernel/mm/ksm:
 *   ksm_zero_pages  all-zero pages (they map the zero run: no frame each)
 *   pages_shared    contents with two copies or more (one frame each)
 *   pages_sharing   the copies beyond the first
 *   saved           pages_sharing + ksm_zero_pages = pages - distinct contents
 *   host frames     distinct non-zero contents
 *   dedup ratio     guest pages / host frames
 * and the same with Linux's max_page_sharing cap (our default 256): a content
 * with m copies then needs ceil(m / C) frames.
 *
 * VMs restored from the same image hold the same pages, so each image is
 * read once and its pages weighted by the number of VMs restored from it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/xxh3.h"

#define PAGE ((uint64_t)4096)
#define MAX_IMAGES 64 /* one bit per image in a content's image mask */

struct image {
	const char *path;
	const uint8_t *map;  /* whole pages of the file */
	uint64_t size;	     /* bytes in the file */
	uint8_t *tail;	     /* the last, partial page padded with zeroes */
	uint64_t vms;	     /* VMs restored from it */
	uint64_t zero_pages; /* in the range, per VM */
	uint64_t distinct;   /* distinct non-zero contents in the range */
	uint64_t duplicates; /* non-zero pages repeating a content of this image */
};

/* One distinct non-zero content; page == NULL marks an empty slot. */
struct content {
	uint64_t hash;
	const uint8_t *page;
	uint64_t copies;     /* pages holding it, all VMs */
	uint64_t image_mask; /* images it occurs in */
	uint32_t last_image; /* the image that saw it last, for per-image counts */
};

struct table {
	struct content *slots;
	uint64_t cap, used;
};

static uint8_t zero_page[PAGE];

static void table_grow(struct table *t)
{
	uint64_t cap = t->cap ? t->cap * 2 : 1u << 16;
	struct content *slots = calloc(cap, sizeof(*slots));
	if (!slots) {
		fprintf(stderr, "image_dedup: out of memory for %" PRIu64 " contents\n", cap);
		exit(1);
	}
	for (uint64_t i = 0; i < t->cap; i++) {
		if (!t->slots[i].page)
			continue;
		uint64_t j = t->slots[i].hash & (cap - 1);
		while (slots[j].page)
			j = (j + 1) & (cap - 1);
		slots[j] = t->slots[i];
	}
	free(t->slots);
	t->slots = slots;
	t->cap = cap;
}

/* The content of page, inserted on first sight; exact: memcmp on every
 * hash match. */
static struct content *table_find(struct table *t, const uint8_t *page, bool *inserted)
{
	if ((t->used + 1) * 2 > t->cap)
		table_grow(t);
	uint64_t hash = XXH3_64bits(page, PAGE);
	uint64_t j = hash & (t->cap - 1);
	for (;; j = (j + 1) & (t->cap - 1)) {
		struct content *c = &t->slots[j];
		if (!c->page) {
			c->hash = hash;
			c->page = page;
			c->last_image = UINT32_MAX;
			t->used++;
			*inserted = true;
			return c;
		}
		if (c->hash == hash && memcmp(c->page, page, PAGE) == 0) {
			*inserted = false;
			return c;
		}
	}
}

/* Page at guest-physical address gpa of the image: NULL if all of it lies
 * beyond the end of the file (zeroes). */
static const uint8_t *image_page(const struct image *im, uint64_t gpa)
{
	if (gpa + PAGE <= im->size)
		return im->map + gpa;
	if (gpa < im->size)
		return im->tail;
	return NULL;
}

static bool is_zero(const uint8_t *page)
{
	return !page || memcmp(page, zero_page, PAGE) == 0;
}

static int open_image(struct image *im, uint64_t mem)
{
	int fd = open(im->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "image_dedup: cannot open %s: %s\n", im->path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "image_dedup: %s is not a regular file\n", im->path);
		close(fd);
		return -1;
	}
	im->size = (uint64_t)st.st_size;
	if (mem && im->size > mem) {
		fprintf(stderr,
			"image_dedup: %s has %" PRIu64
			" bytes, more than the guest memory (%" PRIu64 " bytes)\n",
			im->path, im->size, mem);
		close(fd);
		return -1;
	}
	uint64_t whole = im->size & ~(PAGE - 1);
	im->map = NULL;
	if (whole) {
		void *p = mmap(NULL, whole, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			fprintf(stderr, "image_dedup: cannot map %s: %s\n", im->path,
				strerror(errno));
			close(fd);
			return -1;
		}
		madvise(p, whole, MADV_SEQUENTIAL);
		im->map = p;
	}
	im->tail = NULL;
	if (im->size > whole) {
		im->tail = calloc(1, PAGE);
		if (!im->tail || pread(fd, im->tail, im->size - whole, (off_t)whole) !=
					 (ssize_t)(im->size - whole)) {
			fprintf(stderr, "image_dedup: cannot read %s\n", im->path);
			close(fd);
			return -1;
		}
	}
	close(fd);
	return 0;
}

/* "4096", "0x101000", "128M": bytes. */
static int parse_bytes(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	default:
		break;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

struct ideal {
	uint64_t pages_shared, pages_sharing, ksm_zero_pages, host_frames, saved_pages;
	double dedup_ratio;
};

static void ideal_finish(struct ideal *d, uint64_t total)
{
	d->saved_pages = total - d->host_frames;
	d->dedup_ratio = d->host_frames ? (double)total / (double)d->host_frames : 0.0;
}

static void print_ideal(FILE *f, const char *what, const struct ideal *d)
{
	fprintf(f,
		"  %s: pages_shared %" PRIu64 " pages_sharing %" PRIu64 " ksm_zero_pages %" PRIu64
		"\n    saved %" PRIu64 " pages (%.1f MiB), host frames %" PRIu64
		", dedup ratio %.2f\n",
		what, d->pages_shared, d->pages_sharing, d->ksm_zero_pages, d->saved_pages,
		(double)(d->saved_pages * PAGE) / 1048576.0, d->host_frames, d->dedup_ratio);
}

static void json_ideal(FILE *f, const char *name, const struct ideal *d, const char *extra)
{
	fprintf(f,
		"  \"%s\": {%s\"pages_shared\": %" PRIu64 ", \"pages_sharing\": %" PRIu64
		", \"ksm_zero_pages\": %" PRIu64 ", \"saved_pages\": %" PRIu64
		", \"saved_bytes\": %" PRIu64 ", \"host_frames\": %" PRIu64
		", \"dedup_ratio\": %.6f}",
		name, extra, d->pages_shared, d->pages_sharing, d->ksm_zero_pages, d->saved_pages,
		d->saved_pages * PAGE, d->host_frames, d->dedup_ratio);
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: image_dedup [options] IMAGE...\n"
		   "\n"
		   "Counts identical pages exactly in a fleet of N VMs restored from K raw RAM\n"
		   "images (VM i from IMAGE[i %% K]), over a guest-physical range of each VM, and\n"
		   "prints the ideal KSM figures (saving, host frames, dedup ratio).\n"
		   "\n"
		   "  -n, --vms N                 VMs in the fleet (default: one per image)\n"
		   "  -r, --range START:END       guest-physical bytes [START, END) of each VM,\n"
		   "                              page aligned, hex or decimal (default: all of\n"
		   "                              guest memory)\n"
		   "  -m, --mem SIZE              guest memory per VM (default: the largest\n"
		   "                              image, rounded up to a page); images are\n"
		   "                              zero-extended to it\n"
		   "  -s, --max-page-sharing C    mappers per shared frame for the capped\n"
		   "                              figures (default 256, as our KSM and Linux)\n"
		   "  -j, --json FILE             also write the counts as JSON ('-': stdout,\n"
		   "                              and the text goes to stderr)\n"
		   "  -h, --help\n");
}

int main(int argc, char **argv)
{
	uint64_t nvms = 0, mem = 0, start = 0, end = 0, cap = 256;
	bool have_range = false;
	const char *json_path = NULL;
	static const struct option options[] = {{"vms", required_argument, NULL, 'n'},
						{"range", required_argument, NULL, 'r'},
						{"mem", required_argument, NULL, 'm'},
						{"max-page-sharing", required_argument, NULL, 's'},
						{"json", required_argument, NULL, 'j'},
						{"help", no_argument, NULL, 'h'},
						{NULL, 0, NULL, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "n:r:m:s:j:h", options, NULL)) != -1) {
		char *colon;
		switch (c) {
		case 'n':
			if (parse_bytes(optarg, &nvms) || nvms == 0 || nvms > 1000000) {
				fprintf(stderr, "image_dedup: --vms needs a count 1..1000000\n");
				return 2;
			}
			break;
		case 'r':
			colon = strchr(optarg, ':');
			if (!colon) {
				fprintf(stderr, "image_dedup: --range needs START:END\n");
				return 2;
			}
			*colon = 0;
			if (parse_bytes(optarg, &start) || parse_bytes(colon + 1, &end) ||
			    start >= end || (start | end) & (PAGE - 1)) {
				fprintf(stderr,
					"image_dedup: --range needs page-aligned START < END, "
					"e.g. 0x101000:0x7fc0000\n");
				return 2;
			}
			have_range = true;
			break;
		case 'm':
			if (parse_bytes(optarg, &mem) || mem == 0 || mem & (PAGE - 1)) {
				fprintf(stderr,
					"image_dedup: --mem needs a size that is a multiple of "
					"4 KiB\n");
				return 2;
			}
			break;
		case 's':
			if (parse_bytes(optarg, &cap) || cap < 2) {
				fprintf(stderr,
					"image_dedup: --max-page-sharing needs a number >= 2\n");
				return 2;
			}
			break;
		case 'j':
			json_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	uint64_t nimages = (uint64_t)(argc - optind);
	if (nimages == 0 || nimages > MAX_IMAGES) {
		fprintf(stderr, "image_dedup: give 1..%d image files (see --help)\n", MAX_IMAGES);
		return 2;
	}
	if (!nvms)
		nvms = nimages;

	struct image *images = calloc(nimages, sizeof(*images));
	uint64_t largest = 0;
	for (uint64_t k = 0; k < nimages; k++) {
		images[k].path = argv[optind + (int)k];
		if (open_image(&images[k], mem))
			return 2;
		images[k].vms = nvms / nimages + (k < nvms % nimages);
		if (images[k].size > largest)
			largest = images[k].size;
	}
	if (!mem)
		mem = (largest + PAGE - 1) & ~(PAGE - 1);
	if (!have_range) {
		start = 0;
		end = mem;
	}
	if (end > mem) {
		fprintf(stderr,
			"image_dedup: the range ends at 0x%" PRIx64
			", beyond the guest memory (0x%" PRIx64 ")\n",
			end, mem);
		return 2;
	}

	FILE *text = json_path && strcmp(json_path, "-") == 0 ? stderr : stdout;
	uint64_t per_vm = (end - start) / PAGE;
	uint64_t total = per_vm * nvms, zero = 0;
	struct table t = {0};
	for (uint64_t k = 0; k < nimages; k++) {
		struct image *im = &images[k];
		if (!im->vms)
			continue;
		for (uint64_t gpa = start; gpa < end; gpa += PAGE) {
			const uint8_t *page = image_page(im, gpa);
			if (is_zero(page)) {
				im->zero_pages++;
				continue;
			}
			bool inserted;
			struct content *ct = table_find(&t, page, &inserted);
			ct->copies += im->vms;
			ct->image_mask |= 1ull << k;
			if (ct->last_image != k) {
				ct->last_image = (uint32_t)k;
				im->distinct++;
			} else {
				im->duplicates++;
			}
		}
		zero += im->zero_pages * im->vms;
	}

	/* Content classes, and the ideal with and without the sharing cap. */
	uint64_t distinct = t.used, repeated = 0, repeated_pages = 0, cross = 0, cross_pages = 0;
	uint64_t everywhere = 0, everywhere_pages = 0, used_mask = 0;
	for (uint64_t k = 0; k < nimages; k++)
		if (images[k].vms)
			used_mask |= 1ull << k;
	struct ideal exact = {.ksm_zero_pages = zero}, capped = {.ksm_zero_pages = zero};
	for (uint64_t i = 0; i < t.cap; i++) {
		const struct content *ct = &t.slots[i];
		if (!ct->page)
			continue;
		uint64_t m = ct->copies;
		if (m >= 2) {
			repeated++;
			repeated_pages += m;
			exact.pages_shared++;
			exact.pages_sharing += m - 1;
		}
		exact.host_frames++;
		uint64_t frames = (m + cap - 1) / cap;
		capped.host_frames += frames;
		capped.pages_sharing += m - frames;
		capped.pages_shared += m / cap + (m % cap >= 2);
		if (__builtin_popcountll(ct->image_mask) >= 2) {
			cross++;
			cross_pages += m;
		}
		if (ct->image_mask == used_mask && nimages > 1) {
			everywhere++;
			everywhere_pages += m;
		}
	}
	ideal_finish(&exact, total);
	ideal_finish(&capped, total);

	fprintf(text,
		"image_dedup: %" PRIu64 " VMs restored from %" PRIu64
		" image(s) (VM i from image i %% %" PRIu64 "); counted: guest-physical "
		"[0x%" PRIx64 ", 0x%" PRIx64 ") of each VM, %" PRIu64 " pages per VM\n",
		nvms, nimages, nimages, start, end, per_vm);
	for (uint64_t k = 0; k < nimages; k++)
		fprintf(text,
			"  image %" PRIu64 ": %s, %" PRIu64 " VM(s); per VM %" PRIu64
			" zero pages, %" PRIu64 " distinct non-zero contents, %" PRIu64
			" repeats within the image\n",
			k, images[k].path, images[k].vms, images[k].zero_pages, images[k].distinct,
			images[k].duplicates);
	fprintf(text,
		"  all VMs: %" PRIu64 " pages: %" PRIu64 " zero, %" PRIu64 " non-zero in %" PRIu64
		" distinct contents\n"
		"    %" PRIu64 " contents occur twice or more (%" PRIu64 " pages), %" PRIu64
		" pages are unique\n",
		total, zero, total - zero, distinct, repeated, repeated_pages, distinct - repeated);
	if (nimages > 1)
		fprintf(text,
			"    %" PRIu64 " contents occur in more than one image (%" PRIu64
			" pages), %" PRIu64 " in every image (%" PRIu64 " pages)\n",
			cross, cross_pages, everywhere, everywhere_pages);
	print_ideal(text, "ideal (exact, no sharing cap)", &exact);
	char what[64];
	snprintf(what, sizeof(what), "ideal with max_page_sharing %" PRIu64, cap);
	print_ideal(text, what, &capped);

	if (json_path) {
		FILE *f = strcmp(json_path, "-") == 0 ? stdout : fopen(json_path, "w");
		if (!f) {
			fprintf(stderr, "image_dedup: cannot write %s: %s\n", json_path,
				strerror(errno));
			return 1;
		}
		fprintf(f,
			"{\n  \"vms\": %" PRIu64 ", \"range\": {\"start\": %" PRIu64
			", \"end\": %" PRIu64 "}, \"mem_bytes\": %" PRIu64
			", \"pages_per_vm\": %" PRIu64 ",\n  \"images\": [",
			nvms, start, end, mem, per_vm);
		for (uint64_t k = 0; k < nimages; k++) {
			fprintf(f, "%s\n    {\"path\": ", k ? "," : "");
			json_string(f, images[k].path);
			fprintf(f,
				", \"bytes\": %" PRIu64 ", \"vms\": %" PRIu64
				", \"zero_pages\": %" PRIu64 ", \"distinct_nonzero\": %" PRIu64
				", \"repeats\": %" PRIu64 "}",
				images[k].size, images[k].vms, images[k].zero_pages,
				images[k].distinct, images[k].duplicates);
		}
		fprintf(f,
			"],\n  \"total_pages\": %" PRIu64 ", \"zero_pages\": %" PRIu64
			", \"nonzero_pages\": %" PRIu64 ", \"distinct_nonzero\": %" PRIu64
			",\n  \"repeated_contents\": %" PRIu64 ", \"repeated_pages\": %" PRIu64
			", \"unique_pages\": %" PRIu64 ",\n  \"cross_image_contents\": %" PRIu64
			", \"cross_image_pages\": %" PRIu64 ", \"every_image_contents\": %" PRIu64
			", \"every_image_pages\": %" PRIu64 ",\n",
			total, zero, total - zero, distinct, repeated, repeated_pages,
			distinct - repeated, cross, cross_pages, everywhere, everywhere_pages);
		json_ideal(f, "ideal", &exact, "");
		fprintf(f, ",\n");
		char extra[64];
		snprintf(extra, sizeof(extra), "\"max_page_sharing\": %" PRIu64 ", ", cap);
		json_ideal(f, "ideal_capped", &capped, extra);
		fprintf(f, "\n}\n");
		if (f != stdout && fclose(f)) {
			fprintf(stderr, "image_dedup: cannot write %s\n", json_path);
			return 1;
		}
	}
	return 0;
}
