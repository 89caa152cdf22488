/*
 * swap_io.c - the swap I/O engine: io_uring rings with registered bounce
 * buffers over the shared swap device. See swap_io.h for the design.
 */
#include "swap_io.h"

#include "fault_inject.h"

#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define SWAP_IO_MAX_DEPTH 4096
#define NO_BUF UINT32_MAX
#define NO_OP UINT32_MAX

/* Fixed file indexes. */
enum { FILE_DEV, FILE_FAULT_READ, FILE_FAULT_WRITE, FILE_NR };

enum op_kind { OP_FREE, OP_WRITE, OP_READ };

struct swap_io_op {
	struct swap_cache_entry cache; /* writes: the slot's swap cache entry */
	uint64_t cookie;
	uint64_t slot;
	void *dst;	      /* reads */
	const uint64_t *tags; /* reads: the owner tag expected of each slot */
	uint64_t tag;	      /* writes: the page's owner tag */
	uint32_t buf;	      /* first bounce buffer */
	uint32_t n;	      /* slots (= buffers held from buf) */
	uint32_t extra;	      /* FAULT_CORRUPT: the buffer holding the flipped copy */
	uint32_t next_free;
	uint8_t kind;
	bool sync;  /* issued by a *_sync call */
	bool faked; /* no fault descriptor: a no-op completing with fake_res */
	int fake_res;
};

struct swap_io_completion {
	uint64_t cookie;
	int status;
};

struct swap_io {
	struct swap_device *dev;
	uint64_t *counters;
	struct io_uring ring;
	bool ring_ready;

	uint8_t *bufs; /* nbufs * SWAP_PAGE_SIZE, registered as fixed buffer 0 */
	uint32_t nbufs;
	uint64_t *buf_busy; /* bitmap */

	struct swap_io_op *ops; /* nbufs of them: each op holds at least one buffer */
	uint32_t free_op;
	uint32_t last_op; /* the operation queued last */

	unsigned queued;    /* prepared SQEs not yet submitted */
	unsigned submitted; /* submitted, completion not yet processed */

	/* Completions kept by *_sync calls for the next reap. */
	struct swap_io_completion *deferred;
	unsigned ndeferred, deferred_cap;

	bool corrupt_owed; /* FAULT_CORRUPT: the next write lands corrupted */

	/* The *_sync call's own operation. */
	bool sync_done;
	int sync_status;
};

/* ---- Bounce buffers: a first-fit bitmap ---- */

static inline uint8_t *buf_addr(const struct swap_io *io, uint32_t buf)
{
	return io->bufs + (size_t)buf * SWAP_PAGE_SIZE;
}

static inline bool buf_is_busy(const struct swap_io *io, uint32_t b)
{
	return io->buf_busy[b / 64] & (1ull << (b % 64));
}

static void buf_mark(struct swap_io *io, uint32_t first, uint32_t n, bool busy)
{
	for (uint32_t b = first; b < first + n; b++) {
		if (busy)
			io->buf_busy[b / 64] |= 1ull << (b % 64);
		else
			io->buf_busy[b / 64] &= ~(1ull << (b % 64));
	}
}

/* First run of n free buffers, marked busy, or NO_BUF. */
static uint32_t buf_alloc(struct swap_io *io, uint32_t n)
{
	uint32_t run = 0;

	if (n == 1) {
		for (uint32_t w = 0; w < (io->nbufs + 63) / 64; w++) {
			uint64_t free_bits = ~io->buf_busy[w];
			uint32_t b;

			if (!free_bits)
				continue;
			b = w * 64 + (uint32_t)__builtin_ctzll(free_bits);
			if (b >= io->nbufs)
				break;
			buf_mark(io, b, 1, true);
			return b;
		}
		return NO_BUF;
	}
	for (uint32_t b = 0; b < io->nbufs; b++) {
		run = buf_is_busy(io, b) ? 0 : run + 1;
		if (run == n) {
			buf_mark(io, b + 1 - n, n, true);
			return b + 1 - n;
		}
	}
	return NO_BUF;
}

/* ---- Operations ---- */

static struct swap_io_op *op_alloc(struct swap_io *io)
{
	struct swap_io_op *op;

	if (io->free_op == NO_OP)
		return NULL;
	op = &io->ops[io->free_op];
	io->free_op = op->next_free;
	memset(op, 0, sizeof(*op));
	op->buf = NO_BUF;
	op->extra = NO_BUF;
	return op;
}

static void op_release(struct swap_io *io, struct swap_io_op *op)
{
	if (op->buf != NO_BUF)
		buf_mark(io, op->buf, op->n, false);
	if (op->extra != NO_BUF)
		buf_mark(io, op->extra, 1, false);
	op->kind = OP_FREE;
	op->next_free = io->free_op;
	io->free_op = (uint32_t)(op - io->ops);
}

/* Room for one more operation: an op, an SQE. */
static bool have_room(struct swap_io *io)
{
	return io->free_op != NO_OP && io_uring_sq_space_left(&io->ring) > 0;
}

static void prep(struct swap_io *io, struct swap_io_op *op, bool write, int file, uint32_t buf,
		 unsigned len, uint64_t offset)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring); /* have_room() said yes */

	if (op->faked) {
		io_uring_prep_nop(sqe);
	} else if (write) {
		io_uring_prep_write_fixed(sqe, file, buf_addr(io, buf), len, offset, 0);
		sqe->flags |= IOSQE_FIXED_FILE;
	} else {
		io_uring_prep_read_fixed(sqe, file, buf_addr(io, buf), len, offset, 0);
		sqe->flags |= IOSQE_FIXED_FILE;
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)(op - io->ops));
	io->last_op = (uint32_t)(op - io->ops);
	io->queued++;
}

int swap_io_queue_write(struct swap_io *io, uint64_t slot, const void *src, uint64_t tag,
			uint64_t cookie)
{
	struct swap_device *dev = io->dev;
	struct swap_io_op *op;
	int file = FILE_DEV, ret;
	uint32_t write_buf;

	if (slot >= swap_device_slots(dev))
		return -EINVAL;
	if (!have_room(io))
		return -EAGAIN;
	/* Whether this write lands corrupted (FAULT_CORRUPT) is decided once
	 * per write and owed until a write is queued: one refused here
	 * (-EAGAIN, -EBUSY) or failed by FAULT_WRITE_EIO hands it on. */
	bool corrupt = io->corrupt_owed || fault_inject_hit(FAULT_CORRUPT);
	io->corrupt_owed = corrupt;
	op = op_alloc(io);
	op->buf = buf_alloc(io, 1);
	if (op->buf == NO_BUF)
		goto again;
	op->n = 1;
	/* A corrupting write writes a flipped copy from a second buffer. */
	if (corrupt) {
		op->extra = buf_alloc(io, 1);
		if (op->extra == NO_BUF)
			goto again;
	}

	op->kind = OP_WRITE;
	op->cookie = cookie;
	op->slot = slot;
	op->tag = tag;
	memcpy(buf_addr(io, op->buf), src, SWAP_PAGE_SIZE);
	op->cache.slot = slot;
	op->cache.data = buf_addr(io, op->buf);
	ret = swap_cache_add(dev, &op->cache);
	if (ret) {
		op_release(io, op);
		return ret;
	}
	/* Only now: a refused write must not change the checksum of the slot's data. */
	swap_device_set_checksum(dev, slot, buf_addr(io, op->buf), tag);

	write_buf = op->buf;
	if (fault_inject_hit(FAULT_WRITE_EIO)) {
		file = FILE_FAULT_WRITE;
		if (swap_device_fault_write_fd(dev) < 0) {
			op->faked = true;
			op->fake_res = -EIO;
		}
	} else if (corrupt) {
		uint8_t *copy = buf_addr(io, op->extra);

		io->corrupt_owed = false;
		memcpy(copy, buf_addr(io, op->buf), SWAP_PAGE_SIZE);
		copy[(slot * 2654435761u) % SWAP_PAGE_SIZE] ^= 0xff;
		write_buf = op->extra;
	}
	if (op->extra != NO_BUF && write_buf != op->extra) {
		buf_mark(io, op->extra, 1, false);
		op->extra = NO_BUF;
	}
	prep(io, op, true, file, write_buf, SWAP_PAGE_SIZE, slot * SWAP_PAGE_SIZE);
	return 0;

again:
	op_release(io, op);
	return -EAGAIN;
}

int swap_io_queue_read(struct swap_io *io, uint64_t slot, unsigned n, void *dst,
		       const uint64_t *tags, uint64_t cookie)
{
	struct swap_device *dev = io->dev;
	uint64_t nslots = swap_device_slots(dev), offset = slot * SWAP_PAGE_SIZE;
	unsigned len = n * SWAP_PAGE_SIZE;
	struct swap_io_op *op;
	int file = FILE_DEV;

	if (n == 0 || n > io->nbufs || slot >= nslots || n > nslots - slot)
		return -EINVAL;
	if (!have_room(io))
		return -EAGAIN;
	op = op_alloc(io);
	op->buf = buf_alloc(io, n);
	if (op->buf == NO_BUF) {
		op_release(io, op);
		return -EAGAIN;
	}
	op->n = n;
	op->kind = OP_READ;
	op->cookie = cookie;
	op->slot = slot;
	op->dst = dst;
	op->tags = tags;

	if (fault_inject_hit(FAULT_READ_EIO)) {
		file = FILE_FAULT_READ;
		offset = 0;
		if (swap_device_fault_read_fd(dev) < 0) {
			op->faked = true;
			op->fake_res = -EIO;
		}
	} else if (fault_inject_hit(FAULT_SHORT_READ)) {
		/* Across the end of the file: only n - 1 slots' worth comes back. */
		offset = swap_device_size(dev) - (uint64_t)(n - 1) * SWAP_PAGE_SIZE;
	}
	prep(io, op, false, file, op->buf, len, offset);
	return 0;
}

int swap_io_submit(struct swap_io *io)
{
	int ret;

	if (!io->queued)
		return 0;
	if (fault_inject_hit(FAULT_URING_SUBMIT))
		return -EBUSY;
	ret = io_uring_submit(&io->ring);
	if (ret < 0)
		return ret;
	io->queued -= (unsigned)ret;
	io->submitted += (unsigned)ret;
	return ret;
}

/* Checks a completed read and copies it out. Returns the status. */
static int complete_read(struct swap_io *io, struct swap_io_op *op, int res)
{
	struct swap_device *dev = io->dev;
	unsigned len = op->n * SWAP_PAGE_SIZE, hits = 0;

	if (res < 0 || (unsigned)res < len) {
		swap_device_count(io->counters, SWAP_STAT_READ_ERRORS, 1);
		return res < 0 ? res : -ENODATA;
	}
	for (uint32_t i = 0; i < op->n; i++) {
		uint8_t *data = buf_addr(io, op->buf + i);
		uint64_t tag = op->tags ? op->tags[i] : 0;

		if (swap_device_checksum_ok(dev, op->slot + i, data, tag))
			continue;
		/* Written again since the read was issued: the swap cache has it. */
		if (swap_cache_lookup(dev, op->slot + i, data) &&
		    swap_device_checksum_ok(dev, op->slot + i, data, tag)) {
			hits++;
			continue;
		}
		swap_device_count(io->counters, SWAP_STAT_CHECKSUM_ERRORS, 1);
		return -EBADMSG;
	}
	memcpy(op->dst, buf_addr(io, op->buf), len);
	swap_device_count(io->counters, SWAP_STAT_READS, op->n - hits);
	swap_device_count(io->counters, SWAP_STAT_BYTES_READ, (uint64_t)res);
	return 0;
}

static int complete_write(struct swap_io *io, struct swap_io_op *op, int res)
{
	int status = res == SWAP_PAGE_SIZE ? 0 : res < 0 ? res : -EIO;

	if (status) {
		swap_device_count(io->counters, SWAP_STAT_WRITE_ERRORS, 1);
	} else {
		swap_device_count(io->counters, SWAP_STAT_WRITES, 1);
		swap_device_count(io->counters, SWAP_STAT_BYTES_WRITTEN, SWAP_PAGE_SIZE);
	}
	/* The file has the data now (or never will): the buffer leaves the swap cache. */
	swap_cache_del(io->dev, &op->cache);
	return status;
}

/*
 * Processes one completion: op and its buffers are free afterwards. A *_sync
 * operation's status goes to io->sync_status; others are returned in *c.
 * Returns true if *c holds a completion for the caller.
 */
static bool process_cqe(struct swap_io *io, uint64_t user_data, int res,
			struct swap_io_completion *c)
{
	struct swap_io_op *op = &io->ops[user_data];
	int status;
	bool sync = op->sync;

	if (op->faked)
		res = op->fake_res;
	status = op->kind == OP_WRITE ? complete_write(io, op, res) : complete_read(io, op, res);
	c->cookie = op->cookie;
	c->status = status;
	op_release(io, op);
	io->submitted--;
	if (sync) {
		io->sync_done = true;
		io->sync_status = status;
		return false;
	}
	return true;
}

/* Takes the next completion if one is ready (wait: block for one). */
static int next_cqe(struct swap_io *io, bool wait, uint64_t *user_data, int *res)
{
	struct io_uring_cqe *cqe;
	int ret;

	do {
		ret = wait ? io_uring_wait_cqe(&io->ring, &cqe)
			   : io_uring_peek_cqe(&io->ring, &cqe);
	} while (ret == -EINTR);
	if (ret)
		return ret;
	*user_data = io_uring_cqe_get_data64(cqe);
	*res = cqe->res;
	io_uring_cqe_seen(&io->ring, cqe);
	return 0;
}

int swap_io_reap(struct swap_io *io, unsigned min_complete,
		 void (*done)(void *ctx, uint64_t cookie, int status), void *ctx)
{
	struct swap_io_completion c;
	unsigned count = 0;
	uint64_t user_data;
	int res, ret;

	/* Kept by *_sync calls (done cannot add to them: it may not call those). */
	for (unsigned i = 0; i < io->ndeferred; i++) {
		if (done)
			done(ctx, io->deferred[i].cookie, io->deferred[i].status);
		count++;
	}
	io->ndeferred = 0;
	for (;;) {
		bool wait = count < min_complete && io->submitted > 0;

		if (!io->submitted)
			break;
		ret = next_cqe(io, wait, &user_data, &res);
		if (ret == -EAGAIN && !wait)
			break;
		if (ret)
			return count ? (int)count : ret;
		if (process_cqe(io, user_data, res, &c)) {
			if (done)
				done(ctx, c.cookie, c.status);
			count++;
		}
	}
	return (int)count;
}

static int defer_completion(struct swap_io *io, const struct swap_io_completion *c)
{
	if (io->ndeferred == io->deferred_cap) {
		unsigned cap = io->deferred_cap ? 2 * io->deferred_cap : io->nbufs;
		struct swap_io_completion *d = realloc(io->deferred, cap * sizeof(*d));

		if (!d)
			return -ENOMEM;
		io->deferred = d;
		io->deferred_cap = cap;
	}
	io->deferred[io->ndeferred++] = *c;
	return 0;
}

/* Waits for one completion, keeping other operations' for the next reap. */
static int wait_one(struct swap_io *io)
{
	struct swap_io_completion c;
	uint64_t user_data;
	int res, ret;

	ret = swap_io_submit(io);
	if (ret < 0)
		return ret;
	if (!io->submitted)
		return -EAGAIN; /* nothing can complete */
	ret = next_cqe(io, true, &user_data, &res);
	if (ret)
		return ret;
	if (process_cqe(io, user_data, res, &c))
		return defer_completion(io, &c);
	return 0;
}

/* Waits for the *_sync operation just queued. */
static int wait_sync(struct swap_io *io, struct swap_io_op *op)
{
	int ret;

	op->sync = true;
	io->sync_done = false;
	while (!io->sync_done) {
		ret = wait_one(io);
		/* Our operation is queued: an error here leaves it to swap_io_destroy. */
		if (ret && ret != -ENOMEM)
			return ret;
	}
	return io->sync_status;
}

static struct swap_io_op *last_op(struct swap_io *io)
{
	return &io->ops[io->last_op];
}

int swap_io_write_sync(struct swap_io *io, uint64_t slot, const void *src, uint64_t tag)
{
	int ret;

	while ((ret = swap_io_queue_write(io, slot, src, tag, 0)) == -EAGAIN) {
		ret = wait_one(io);
		if (ret && ret != -ENOMEM)
			return ret;
	}
	if (ret)
		return ret;
	return wait_sync(io, last_op(io));
}

int swap_io_read_sync(struct swap_io *io, uint64_t slot, unsigned n, void *dst,
		      const uint64_t *tags)
{
	while (n) {
		unsigned chunk = n < io->nbufs ? n : io->nbufs;
		int ret;

		while ((ret = swap_io_queue_read(io, slot, chunk, dst, tags, 0)) == -EAGAIN) {
			ret = wait_one(io);
			if (ret && ret != -ENOMEM)
				return ret;
		}
		if (ret)
			return ret;
		ret = wait_sync(io, last_op(io));
		if (ret)
			return ret;
		slot += chunk;
		if (tags)
			tags += chunk;
		dst = (uint8_t *)dst + (size_t)chunk * SWAP_PAGE_SIZE;
		n -= chunk;
	}
	return 0;
}

int swap_io_drain(struct swap_io *io, void (*done)(void *ctx, uint64_t cookie, int status),
		  void *ctx)
{
	int failures = 0;
	while (swap_io_in_flight(io)) {
		int progress = 0;
		if (io->queued && swap_io_submit(io) > 0)
			progress = 1;
		if (io->submitted) {
			int n = swap_io_reap(io, 1, done, ctx);
			progress |= n > 0;
		}
		if (progress) {
			failures = 0;
			continue;
		}
		if (++failures >= SWAP_IO_DRAIN_TRIES)
			return -EIO;
		usleep(1000);
	}
	return 0;
}

unsigned swap_io_in_flight(const struct swap_io *io)
{
	return io->queued + io->submitted;
}

unsigned swap_io_depth(const struct swap_io *io)
{
	return io->nbufs;
}

/* ---- Creation and destruction ---- */

int swap_io_create(struct swap_device *dev, unsigned depth, struct swap_io **out)
{
	struct io_uring_params params;
	struct swap_io *io;
	struct iovec iov;
	int files[FILE_NR], ret;

	*out = NULL;
	if (depth == 0 || depth > SWAP_IO_MAX_DEPTH)
		return -EINVAL;
	io = calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	io->dev = dev;
	io->counters = swap_device_counters(dev);
	io->nbufs = depth;
	io->free_op = NO_OP;
	io->ops = calloc(depth, sizeof(*io->ops));
	io->buf_busy = calloc((depth + 63) / 64, sizeof(*io->buf_busy));
	if (!io->ops || !io->buf_busy ||
	    posix_memalign((void **)&io->bufs, SWAP_PAGE_SIZE, (size_t)depth * SWAP_PAGE_SIZE)) {
		io->bufs = NULL;
		ret = -ENOMEM;
		goto fail;
	}
	memset(io->bufs, 0, (size_t)depth * SWAP_PAGE_SIZE);
	for (uint32_t i = depth; i-- > 0;) {
		io->ops[i].next_free = io->free_op;
		io->free_op = i;
	}

	/* Completions are run when this thread enters the kernel anyway (reaping). */
	memset(&params, 0, sizeof(params));
	params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
	params.cq_entries = 2 * depth;
	ret = io_uring_queue_init_params(depth, &io->ring, &params);
	if (ret == -EINVAL) {
		memset(&params, 0, sizeof(params));
		params.flags = IORING_SETUP_CQSIZE;
		params.cq_entries = 2 * depth;
		ret = io_uring_queue_init_params(depth, &io->ring, &params);
	}
	if (ret)
		goto fail;
	io->ring_ready = true;

	files[FILE_DEV] = swap_device_fd(dev);
	files[FILE_FAULT_READ] = swap_device_fault_read_fd(dev);
	files[FILE_FAULT_WRITE] = swap_device_fault_write_fd(dev);
	ret = io_uring_register_files(&io->ring, files, FILE_NR);
	if (ret)
		goto fail;
	iov.iov_base = io->bufs;
	iov.iov_len = (size_t)depth * SWAP_PAGE_SIZE;
	ret = io_uring_register_buffers(&io->ring, &iov, 1);
	if (ret)
		goto fail;
	*out = io;
	return 0;

fail:
	swap_io_destroy(io);
	return ret;
}

void swap_io_destroy(struct swap_io *io)
{
	struct swap_io_completion c;
	uint64_t user_data;
	int res;

	if (!io)
		return;
	if (io->ring_ready) {
		/* The kernel must be done with every buffer before they are freed. */
		while (io->queued && swap_io_submit(io) > 0)
			;
		while (io->submitted && !next_cqe(io, true, &user_data, &res))
			process_cqe(io, user_data, res, &c);
		/* Waiting failed with operations still in the kernel: it may
		 * yet write into their buffers, which must then never be
		 * reused: they are left allocated. */
		if (io->submitted)
			io->bufs = NULL;
		/* Never submitted (submission failed): undo them. */
		for (uint32_t i = 0; i < io->nbufs; i++) {
			struct swap_io_op *op = &io->ops[i];

			if (op->kind == OP_WRITE)
				swap_cache_del(io->dev, &op->cache);
		}
		io_uring_queue_exit(&io->ring);
	}
	free(io->bufs);
	free(io->buf_busy);
	free(io->ops);
	free(io->deferred);
	free(io);
}
