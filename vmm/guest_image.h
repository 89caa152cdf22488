/*
 * guest_image.h - finding and checking a guest image.
 *
 * GUEST on the command line is either the name of a guest bundled into the
 * vmm binary (the images of guest/workloads, embedded at build time) or a
 * path to a static ELF64 file. A name containing '/' is always a path; a
 * bundled name wins over a file of the same name in the current directory.
 */
#ifndef VMM_GUEST_IMAGE_H
#define VMM_GUEST_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "elf_loader.h"

struct guest_image {
	char *name; /* "pattern" for bundled, else the path */
	bool bundled;
	uint8_t *data; /* file contents (malloc'd unless bundled) */
	size_t size;
	struct elf_image elf;
};

int guest_image_open(struct guest_image *img, const char *guest, char *err, size_t errlen);
void guest_image_close(struct guest_image *img);
/* "hello, pattern, touch, crash" */
const char *guest_image_bundled_list(void);

#endif
