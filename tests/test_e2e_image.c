/* test_e2e_image.c - end-to-end: guests whose RAM starts as a memory image
 * (`vmm run --memory-image`): the guest sees the image's bytes, untouched
 * image pages cost no frame, VMs restored from one image merge, per-group
 * images in a config, and bad images are clear input errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_support.h"

#define PAGE 4096
#define IMAGE_PAGES (16 * 256) /* 16 MiB */

/* Page i of image `salt`: every fifth page zero, the others start with a word
 * unique to (salt, i) and are filled with one byte. */
static uint64_t first_word(unsigned salt, uint64_t i)
{
	return i % 5 == 0 ? 0 : ((uint64_t)(salt + 1) << 32) + 0x1000 + i;
}

static void make_image(const char *path, unsigned salt, uint64_t pages)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f, "%s", path);
	static uint8_t page[PAGE];
	for (uint64_t i = 0; i < pages; i++) {
		uint64_t w = first_word(salt, i);
		memset(page, w ? (int)(i % 7) + 1 : 0, PAGE);
		memcpy(page, &w, sizeof(w));
		cr_assert_eq(fwrite(page, 1, PAGE, f), PAGE);
	}
	cr_assert_eq(fclose(f), 0);
}

static char image_a[64], image_b[64];

static void setup(void)
{
	snprintf(image_a, sizeof(image_a), "/var/tmp/vmm-test-image-a-%d", getpid());
	snprintf(image_b, sizeof(image_b), "/var/tmp/vmm-test-image-b-%d", getpid());
	remove_at_exit(image_a);
	remove_at_exit(image_b);
	make_image(image_a, 0, IMAGE_PAGES);
	make_image(image_b, 1, IMAGE_PAGES);
}

static void teardown(void)
{
	unlink(image_a);
	unlink(image_b);
}

static int64_t vm_value(json_object *report, int vm, const char *path)
{
	return json_path_int(report_vm(report, vm), path);
}

/* What readmem should report as first_word_sum for VM vm of a run whose
 * image has salt `salt`: the words of the image pages inside its heap. */
static uint64_t expected_sum(json_object *report, int vm, unsigned salt)
{
	uint64_t first = (uint64_t)vm_value(report, vm, "memory.buffer_gpa") / PAGE;
	uint64_t pages = (uint64_t)vm_value(report, vm, "guest_values.pages"), sum = 0;
	for (uint64_t i = first; i < first + pages && i < IMAGE_PAGES; i++)
		sum += first_word(salt, i);
	return sum;
}

static uint64_t nonzero_image_pages(uint64_t from, uint64_t to)
{
	uint64_t n = 0;
	for (uint64_t i = from; i < to && i < IMAGE_PAGES; i++)
		n += first_word(0, i) != 0;
	return n;
}

Test(e2e_image, the_guest_reads_the_image, .init = setup, .fini = teardown)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--mem", "32M", "--memory-image", image_a, "readmem");
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	cr_assert_eq((uint64_t)vm_value(o.report, 0, "guest_values.first_word_sum"),
		     expected_sum(o.report, 0, 0));
	/* Every non-zero image page of the heap was copied, zero ones were not;
	 * below the heap only what the loader touched. */
	uint64_t heap = (uint64_t)vm_value(o.report, 0, "memory.buffer_gpa") / PAGE;
	uint64_t restored = (uint64_t)vm_value(o.report, 0, "memory.image_pages");
	cr_assert_geq(restored, nonzero_image_pages(heap, IMAGE_PAGES));
	cr_assert_leq(restored, nonzero_image_pages(0, IMAGE_PAGES));
	cr_assert_gt(vm_value(o.report, 0, "memory.image_zero_pages"), 0);
	int64_t sum = vm_value(o.report, 0, "guest_values.first_word_sum");
	vmm_output_free(&o);

	/* The anonymous backing reads the whole image at start: same view. */
	vmm_run_json(&o, "run", "--mem", "32M", "--backing", "anon", "--memory-image", image_a,
		     "readmem");
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	cr_assert_eq(vm_value(o.report, 0, "guest_values.first_word_sum"), sum);
	vmm_output_free(&o);
}

Test(e2e_image, untouched_image_pages_cost_no_frame, .init = setup, .fini = teardown)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--mem", "32M", "--memory-image", image_a, "hello");
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	/* hello touches its boot area, image and stack: a few hundred pages of
	 * the 4096 the image holds. */
	cr_assert_lt(vm_value(o.report, 0, "memory.image_pages"), 400);
	cr_assert_lt(vm_value(o.report, 0, "memory.rss_pages"), 600);
	vmm_output_free(&o);
}

Test(e2e_image, vms_restored_from_one_image_merge, .init = setup, .fini = teardown)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--vms", "4", "--mem", "32M", "--memory-image", image_a, "--ksm",
		     "--ksm-rate", "max", "readmem", "--", "hold=2500");
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	/* Ideal: the image's non-zero heap pages once instead of four times. */
	uint64_t heap = (uint64_t)vm_value(o.report, 0, "memory.buffer_gpa") / PAGE;
	uint64_t ideal = 3 * nonzero_image_pages(heap, IMAGE_PAGES);
	uint64_t sharing = (uint64_t)json_path_int(o.report, "ksm.peak.pages_sharing");
	cr_assert_geq(sharing, ideal * 9 / 10, "pages_sharing %lu of an ideal %lu",
		      (unsigned long)sharing, (unsigned long)ideal);
	for (int vm = 0; vm < 4; vm++)
		cr_assert_eq((uint64_t)vm_value(o.report, vm, "guest_values.first_word_sum"),
			     expected_sum(o.report, vm, 0), "vm%d", vm);
	vmm_output_free(&o);
}

Test(e2e_image, groups_start_from_their_own_images, .init = setup, .fini = teardown)
{
	char config[256], text[512];
	snprintf(config, sizeof(config), "/var/tmp/vmm-test-image-%d.json", getpid());
	remove_at_exit(config);
	snprintf(text, sizeof(text),
		 "{\"mem\": \"32M\", \"groups\": ["
		 "{\"guest\": \"readmem\", \"memory_image\": \"%s\"},"
		 "{\"guest\": \"readmem\", \"memory_image\": \"%s\"},"
		 "{\"guest\": \"readmem\"}]}",
		 image_a, image_b);
	FILE *f = fopen(config, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	struct vmm_output o;
	vmm_run_json(&o, "run", "--config", config);
	unlink(config);
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	cr_assert_eq((uint64_t)vm_value(o.report, 0, "guest_values.first_word_sum"),
		     expected_sum(o.report, 0, 0));
	cr_assert_eq((uint64_t)vm_value(o.report, 1, "guest_values.first_word_sum"),
		     expected_sum(o.report, 1, 1));
	cr_assert_eq(vm_value(o.report, 2, "guest_values.first_word_sum"), 0, "no image: zeroes");
	vmm_output_free(&o);
}

Test(e2e_image, bad_images_are_input_errors, .init = setup, .fini = teardown)
{
	struct vmm_output o;
	vmm_run(&o, "run", "--memory-image", "/nonexistent/ram.img", "hello");
	expect_input_error(&o, "memory image /nonexistent/ram.img: No such file or directory");
	vmm_run(&o, "run", "--mem", "8M", "--memory-image", image_a, "hello");
	expect_input_error(&o, "larger than group 'vm''s 8 MiB of guest memory");
	vmm_run(&o, "run", "--memory-image", "/var/tmp", "hello");
	expect_input_error(&o, "is not a regular file");
}
