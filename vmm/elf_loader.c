/*
 * elf_loader.c - ELF64 guest image validation and loading.
 */
#include "elf_loader.h"

#include <elf.h>
#include <stdio.h>
#include <string.h>

#include "guest_abi.h"
#include "message.h"
#include "mm/guest_memory.h"

#define PAGE_ALIGN_UP(x) (((x) + GUEST_PAGE_SIZE - 1) & ~(GUEST_PAGE_SIZE - 1))

static int elf_image_parse_data(struct elf_image *img, const void *data, size_t size,
				const char *name, char *err, size_t errlen)
{
	const Elf64_Ehdr *eh = data;
	memset(img, 0, sizeof(*img));
	if (size < EI_NIDENT || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0) {
		snprintf(err, errlen, "%s: not an ELF file", name);
		return -1;
	}
	if (size < sizeof(*eh) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64) {
		snprintf(err, errlen, "%s: not a 64-bit x86-64 ELF file", name);
		return -1;
	}
	if (eh->e_type != ET_EXEC) {
		snprintf(err, errlen,
			 "%s: not a static executable (ELF type %u; build with -static -no-pie)",
			 name, eh->e_type);
		return -1;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 || eh->e_phoff > size ||
	    (size - eh->e_phoff) / sizeof(Elf64_Phdr) < eh->e_phnum) {
		snprintf(err, errlen, "%s: program headers are missing or truncated", name);
		return -1;
	}
	/* The headers may sit at any offset: each is copied out, not read in
	 * place through a misaligned pointer. */
	const uint8_t *headers = (const uint8_t *)data + eh->e_phoff;
	img->data = data;
	img->size = size;
	img->entry = eh->e_entry;
	img->lowest = UINT64_MAX;
	int entry_ok = 0;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, headers + (size_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (img->nsegments == ELF_MAX_SEGMENTS) {
			snprintf(err, errlen, "%s: more than %d loadable segments", name,
				 ELF_MAX_SEGMENTS);
			return -1;
		}
		if (ph.p_filesz > ph.p_memsz || ph.p_offset > size ||
		    size - ph.p_offset < ph.p_filesz) {
			snprintf(err, errlen, "%s: segment %u lies outside the file", name, i);
			return -1;
		}
		if (ph.p_vaddr + ph.p_memsz < ph.p_vaddr) {
			snprintf(err, errlen, "%s: segment %u wraps around the address space", name,
				 i);
			return -1;
		}
		struct elf_segment *s = &img->segments[img->nsegments++];
		s->gpa = ph.p_vaddr;
		s->file_offset = ph.p_offset;
		s->file_bytes = ph.p_filesz;
		s->mem_bytes = ph.p_memsz;
		if (s->gpa < img->lowest)
			img->lowest = s->gpa;
		if (s->gpa + s->mem_bytes > img->end)
			img->end = s->gpa + s->mem_bytes;
		if (img->entry >= s->gpa && img->entry < s->gpa + s->mem_bytes &&
		    (ph.p_flags & PF_X))
			entry_ok = 1;
	}
	if (img->nsegments == 0) {
		snprintf(err, errlen, "%s: no loadable segments", name);
		return -1;
	}
	if (!entry_ok) {
		snprintf(err, errlen, "%s: entry point 0x%llx is not in an executable segment",
			 name, (unsigned long long)img->entry);
		return -1;
	}
	return 0;
}

static int elf_image_check_size(const struct elf_image *img, uint64_t mem_bytes, const char *name,
				char *err, size_t errlen)
{
	if (img->lowest < GUEST_IMAGE_BASE) {
		snprintf(err, errlen,
			 "%s: loads at 0x%llx, below the guest image base 0x%llx (link with "
			 "guest/runtime/guest.ld)",
			 name, (unsigned long long)img->lowest,
			 (unsigned long long)GUEST_IMAGE_BASE);
		return -1;
	}
	uint64_t limit = mem_bytes - GUEST_STACK_BYTES;
	if (img->end > limit || PAGE_ALIGN_UP(img->end) >= limit) {
		snprintf(err, errlen,
			 "%s: image ends at 0x%llx and does not fit in %llu MiB of guest memory "
			 "(the stack takes the top %llu KiB)",
			 name, (unsigned long long)img->end, (unsigned long long)(mem_bytes >> 20),
			 (unsigned long long)(GUEST_STACK_BYTES >> 10));
		return -1;
	}
	return 0;
}

int elf_image_load(const struct elf_image *img, struct guest_memory *mem)
{
	for (unsigned i = 0; i < img->nsegments; i++) {
		const struct elf_segment *s = &img->segments[i];
		if (guest_memory_write(mem, s->gpa, img->data + s->file_offset, s->file_bytes))
			return -1;
		if (guest_memory_zero(mem, s->gpa + s->file_bytes, s->mem_bytes - s->file_bytes))
			return -1;
	}
	return 0;
}

uint64_t elf_image_heap_start(const struct elf_image *img)
{
	return PAGE_ALIGN_UP(img->end);
}

int elf_image_parse(struct elf_image *img, const void *data, size_t size, const char *name,
		    char *err, size_t errlen)
{
	int rc = elf_image_parse_data(img, data, size, name, err, errlen);
	if (rc)
		message_one_line(err);
	return rc;
}

int elf_image_check_fits(const struct elf_image *img, uint64_t mem_bytes, const char *name,
			 char *err, size_t errlen)
{
	int rc = elf_image_check_size(img, mem_bytes, name, err, errlen);
	if (rc)
		message_one_line(err);
	return rc;
}
