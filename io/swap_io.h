/*
 * swap_io.h - the swap I/O engine: one io_uring ring per submitting thread
 * over a shared swap device (io/swap_device.h).
 *
 * Each swap_io owns a ring with the device's O_DIRECT file registered (fixed
 * file 0, IOSQE_FIXED_FILE) and one 4 KiB-aligned region of `depth` bounce
 * buffers of 4 KiB, registered as a single fixed buffer, so every operation is
 * IORING_OP_WRITE_FIXED or IORING_OP_READ_FIXED with no per-I/O page pinning.
 * Fixed files 1 and 2 are the device's fault-injection descriptors.
 *
 * Operations:
 *  - A write takes one free buffer, copies the caller's page into it (the
 *    caller may reuse its page at once), records the page's XXH3-64, seeded
 *    with the page's owner tag, as the slot's checksum and enters the slot
 *    in the device's swap cache, pointing at the buffer. Reaping its
 *    completion removes the slot from the swap cache (the file now holds
 *    the data) and frees the buffer.
 *  - A read of n consecutive slots takes n consecutive free buffers (first
 *    fit in a bitmap) and is one n * 4 KiB read. On completion each slot's
 *    data is checked against its checksum under the tag the reader expects
 *    (io/swap_device.h: whose page it is); only if the whole read succeeded
 *    and every slot matches is the data copied to the caller's dst (any
 *    alignment). A slot that mismatches but is in the swap cache (its write
 *    was queued before the read completed) is taken from there.
 *  - Buffers bound the operations: at most `depth` are queued or in flight,
 *    and the ring has `depth` SQEs and 2 * depth CQEs, so the completion queue
 *    never overflows. When no buffer (or no run of n for a read) or SQE is
 *    free, queueing returns -EAGAIN: reap first.
 *
 * Statuses passed to the done callback: 0; -EIO (or another negative errno
 * from the kernel) for a failed operation, -EIO also for a short write;
 * -ENODATA for a short read; -EBADMSG for a read whose data does not match a
 * slot's checksum. A failed read leaves dst untouched.
 *
 * The *_sync calls submit everything queued, wait for their own operation
 * and keep the completions of other operations that arrive meanwhile; the
 * next swap_io_reap() delivers those first.
 *
 * Not thread-safe: one thread uses a swap_io at a time (create and use may
 * happen in different threads). Different swap_io on different threads share
 * the device safely.
 */
#ifndef IO_SWAP_IO_H
#define IO_SWAP_IO_H

#include <stdint.h>

#include "swap_device.h"

struct swap_io;

/*
 * A ring of `depth` entries (1..4096) and `depth` bounce buffers. Returns 0 or
 * a negative errno (e.g. from io_uring_queue_init or buffer registration).
 */
int swap_io_create(struct swap_device *dev, unsigned depth, struct swap_io **out);
/*
 * Submits what is queued and waits for everything in flight; their statuses,
 * and completions not yet delivered, are discarded. Reap first to see them.
 */
void swap_io_destroy(struct swap_io *io);

/*
 * Queues a 4 KiB write of src to slot, which must be allocated (-EINVAL
 * otherwise) and have no write in flight (-EBUSY). Returns 0, or -EAGAIN when
 * no buffer or SQE is free. Nothing is submitted until swap_io_submit().
 */
int swap_io_queue_write(struct swap_io *io, uint64_t slot, const void *src, uint64_t tag,
			uint64_t cookie);
/*
 * Queues a read of slots [slot, slot + n) into dst (n * 4096 bytes, any
 * alignment), each slot verified under tags[i] (NULL: tag 0 for all); dst and
 * tags must stay valid until the read is reaped. n must be 1..depth and the
 * range inside the device (-EINVAL). Returns 0 or -EAGAIN (no run of n free
 * buffers, or no SQE).
 */
int swap_io_queue_read(struct swap_io *io, uint64_t slot, unsigned n, void *dst,
		       const uint64_t *tags, uint64_t cookie);
/* Submits everything queued. Returns how many were submitted, or a negative errno. */
int swap_io_submit(struct swap_io *io);
/*
 * Calls done(ctx, cookie, status) (done may be NULL) for each completed
 * operation, waiting until at least min_complete have completed (capped at
 * what is deliverable: completions kept by a *_sync call plus submitted
 * operations). Returns how many completed, or a negative errno if waiting
 * failed. done must not call swap_io_reap or the *_sync calls.
 */
int swap_io_reap(struct swap_io *io, unsigned min_complete,
		 void (*done)(void *ctx, uint64_t cookie, int status), void *ctx);
/* Operations queued or submitted and not yet reaped. */
unsigned swap_io_in_flight(const struct swap_io *io);

/*
 * Submits what is queued and reaps (calling done) until nothing is in
 * flight. A submission or a wait that fails is retried, a millisecond
 * apart; after SWAP_IO_DRAIN_TRIES in a row without progress it gives up
 * and returns -EIO: the ring is stuck, and the operations left keep their
 * buffers (a write's page stays readable from the swap cache). Else 0.
 */
#define SWAP_IO_DRAIN_TRIES 1000
int swap_io_drain(struct swap_io *io, void (*done)(void *ctx, uint64_t cookie, int status),
		  void *ctx);
/* The depth given at creation: the most operations (and slots of one read). */
unsigned swap_io_depth(const struct swap_io *io);

/* Queue, submit, wait: returns the status (or -EINVAL / -EBUSY as above). */
int swap_io_write_sync(struct swap_io *io, uint64_t slot, const void *src, uint64_t tag);
/*
 * Any n: reads of more than depth slots are done depth slots at a time; if a
 * later piece fails, the earlier (verified) pieces are already in dst.
 */
int swap_io_read_sync(struct swap_io *io, uint64_t slot, unsigned n, void *dst,
		      const uint64_t *tags);

#endif
