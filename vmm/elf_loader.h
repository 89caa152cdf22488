/*
 * elf_loader.h - validating and loading static ELF64 x86-64 guest images.
 *
 * elf_image_parse() only reads the file image in memory and checks it: magic,
 * class, machine, type, program headers inside the file, segment sizes. It is
 * pure so that it can be unit tested on crafted inputs. elf_image_check_fits()
 * checks the PT_LOAD segments against a guest memory size and the fixed
 * layout of guest_abi.h (image above the boot area, below the stack area).
 * elf_image_load() copies segments into guest memory and zeroes their bss.
 */
#ifndef VMM_ELF_LOADER_H
#define VMM_ELF_LOADER_H

#include <stddef.h>
#include <stdint.h>

#define ELF_MAX_SEGMENTS 16

struct guest_memory;

struct elf_segment {
	uint64_t gpa;
	uint64_t file_offset;
	uint64_t file_bytes;
	uint64_t mem_bytes;
};

struct elf_image {
	const uint8_t *data;
	size_t size;
	uint64_t entry;
	uint64_t lowest; /* lowest segment address */
	uint64_t end;	 /* end of the highest segment */
	unsigned nsegments;
	struct elf_segment segments[ELF_MAX_SEGMENTS];
};

int elf_image_parse(struct elf_image *img, const void *data, size_t size, const char *name,
		    char *err, size_t errlen);
int elf_image_check_fits(const struct elf_image *img, uint64_t mem_bytes, const char *name,
			 char *err, size_t errlen);
int elf_image_load(const struct elf_image *img, struct guest_memory *mem);

/* The first free guest-physical byte after the image (page aligned). */
uint64_t elf_image_heap_start(const struct elf_image *img);

#endif
