/*
 * frame_table.c - allocating the per-frame metadata array.
 */
#include "frame_table.h"

#include <stddef.h>
#include <sys/mman.h>

int frame_table_init(struct frame_table *table, uint64_t nframes)
{
	size_t bytes = nframes * sizeof(struct frame);
	/* mmap'd so that untouched parts of a huge table cost nothing until the
	 * loop below touches them, and so that it is page aligned. */
	void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (p == MAP_FAILED)
		return -1;
	table->frames = p;
	table->nframes = nframes;
	for (uint64_t i = 0; i < nframes; i++) {
		table->frames[i].next = FRAME_NONE;
		table->frames[i].prev = FRAME_NONE;
		table->frames[i].info = 0;
	}
	return 0;
}

void frame_table_destroy(struct frame_table *table)
{
	if (table->frames)
		munmap(table->frames, table->nframes * sizeof(struct frame) ?: 1);
	table->frames = NULL;
	table->nframes = 0;
}
