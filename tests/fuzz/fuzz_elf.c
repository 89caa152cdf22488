/* fuzz_elf.c - libFuzzer target: a guest image through the ELF checks
 * (elf_image_parse, elf_image_check_fits), as the loader takes it. Besides
 * what the sanitizers catch: a refusal says why in one line, and an
 * accepted image's segments lie inside the file, do not wrap, and one of
 * them holds the entry point. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/elf_loader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reason(const char *err)
{
	if (!err[0] || strchr(err, '\n'))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The loader gets the file in a buffer of its own, as here. */
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	struct elf_image img;
	char err[512] = "";
	if (elf_image_parse(&img, copy, size, "fuzz.elf", err, sizeof(err)) != 0) {
		check_reason(err);
	} else {
		int entry_in = 0;
		for (unsigned i = 0; i < img.nsegments; i++) {
			const struct elf_segment *s = &img.segments[i];
			if (s->file_offset > size || size - s->file_offset < s->file_bytes ||
			    s->file_bytes > s->mem_bytes || s->gpa + s->mem_bytes < s->gpa)
				abort();
			entry_in |= img.entry >= s->gpa && img.entry < s->gpa + s->mem_bytes;
		}
		if (!entry_in)
			abort();
		static const uint64_t sizes[] = {4ull << 20, 64ull << 20, 64ull << 30};
		for (int k = 0; k < 3; k++) {
			err[0] = 0;
			if (elf_image_check_fits(&img, sizes[k], "fuzz.elf", err, sizeof(err)))
				check_reason(err);
		}
	}
	free(copy);
	return 0;
}
