/*
 * fault_inject.h - making the host operations that can fail fail, on purpose.
 *
 * One switch for every kind: VMM_FAULT=KIND:COUNT[:EVERY][,KIND:COUNT[:EVERY]...]
 * (the vmm command reads it; tests call fault_inject_set() directly) makes
 * COUNT operations of KIND fail: every EVERY-th one (default 1: the next
 * COUNT). The code that performs an operation asks fault_inject_hit(KIND)
 * just before it and, when told to, fails it the way the host would, so the
 * error paths that run are the real ones:
 *
 *   mmap           mmap() placing guest memory          ENOMEM
 *   uffd-register  UFFDIO_REGISTER                      ENOMEM
 *   uffd-wp        UFFDIO_WRITEPROTECT (arming)         ENOMEM
 *   punch-hole     fallocate(PUNCH_HOLE) of a frame     EIO (the frame is zeroed)
 *   frame-alloc    a block of frames from the pool      none: the pool seems empty
 *   alloc          an object from a slab cache          none: out of memory
 *   uring-submit   io_uring_submit()                    EBUSY
 *   write-eio      a swap write completes with          EIO  (swap_device.h)
 *   read-eio       a swap read completes with           EIO
 *   short-read     a swap read returns fewer bytes      (a truncated read)
 *   corrupt        a swap write lands with a byte flipped (checksums catch it)
 *
 * The counters are process-wide and atomic: any thread may hit them.
 * Nothing is injected unless asked for; the cost of asking is one relaxed
 * atomic load.
 *
 * This file sits in io/, the bottom library, so that mm/ and io/ can both
 * use it; it knows nothing of either.
 */
#ifndef IO_FAULT_INJECT_H
#define IO_FAULT_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fault_kind {
	FAULT_MMAP,
	FAULT_UFFD_REGISTER,
	FAULT_UFFD_WP,
	FAULT_PUNCH_HOLE,
	FAULT_FRAME_ALLOC,
	FAULT_ALLOC,
	FAULT_URING_SUBMIT,
	FAULT_WRITE_EIO,
	FAULT_READ_EIO,
	FAULT_SHORT_READ,
	FAULT_CORRUPT,
	FAULT_KINDS,
};

/* Parses a VMM_FAULT value and arms it. Returns 0, or -1 with a one-line
 * reason naming the bad part. */
int fault_inject_parse(const char *spec, char *err, size_t errlen);
/* Arms `count` failures of `kind`, every `every`-th operation (>= 1). */
void fault_inject_set(enum fault_kind kind, uint64_t count, uint64_t every);
/* Disarms everything and zeroes the counters. */
void fault_inject_reset(void);

/* The operation of `kind` about to be done must fail (counted). */
bool fault_inject_hit(enum fault_kind kind);
/* Failures injected so far, of one kind and of all. */
uint64_t fault_inject_count(enum fault_kind kind);
uint64_t fault_inject_total(void);
const char *fault_inject_name(enum fault_kind kind);

#endif
