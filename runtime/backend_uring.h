/*
 * backend_uring.h - what backend_uring.c (the ring) and backend_uring_ms.c
 * (multishot accept/recv with provided buffers) share. Private to the two.
 */
#ifndef ZIO_BACKEND_URING_H
#define ZIO_BACKEND_URING_H

#include "backend.h"

#include <liburing.h>

/* CQE user_data: an address with a tag in the low bits. */
#define TAG_MASK 7ull
#define TAG_OP 0ull     /* a struct zio__op: wake its waiter */
#define TAG_WAKE 1ull   /* the eventfd poll */
#define TAG_IGNORE 2ull /* cancels: nobody waits for them */
#define TAG_MS 3ull     /* a struct uring_ms: a multishot request's CQE */
#define TAG_CLOSE 4ull  /* a struct uring_close: its ASYNC_CANCEL is done */

struct uring_ms;
struct uring_bufs;

struct uring_loop {
	struct zio__loop base;
	struct io_uring ring;
	int wakefd;
	bool enabled;        /* R_DISABLED ring enabled by its thread */
	bool disabled_ring;  /* created with R_DISABLED */
	bool wake_armed;
	unsigned flags;
	uint64_t driver;     /* thread_serial() of the thread that polls it and
			      * registered the ring fd; 0 before the first */
	/* zio_close() from other threads: zio__ops of closers that wait,
	 * struct uring_close of those that do not (op.parker NULL). */
	struct zio__op *_Atomic remote;
	struct uring_close *closing; /* taken from remote, cancel in the ring */
	/* SQEs that name an fd by number are queued but not yet submitted:
	 * the kernel has not resolved their numbers (see ur_close_fd). */
	atomic_bool fd_sqes_queued;
	atomic_uint submits; /* polls that cleared fd_sqes_queued */
	uint64_t wake_buf;
	/* backend_uring_ms.c, set up on first use */
	struct uring_bufs *bufs;
	struct uring_ms *ms_free;    /* free states */
	struct uring_ms_chunk *ms_chunks;
};

/* backend_uring.c */
struct io_uring_sqe *zio__uring_sqe(struct uring_loop *l);
/* Marks l's fd_sqes_queued until its next full submit: SQEs that name an
 * fd by number (not cancels by user_data) are about to be queued. */
static inline void zio__uring_mark_fd_sqes(struct uring_loop *l)
{
	if (!atomic_load_explicit(&l->fd_sqes_queued, memory_order_relaxed))
		atomic_store_explicit(&l->fd_sqes_queued, true, memory_order_release);
}

static inline struct io_uring_sqe *zio__uring_fd_sqe(struct uring_loop *l)
{
	zio__uring_mark_fd_sqes(l);
	return zio__uring_sqe(l);
}

/* For a request a task queues again (re-armed, resubmitted) on an fd it
 * began to use before: whether ent's file was closed meanwhile. Either
 * this sees the close's incarnation bump, or the closer sees the mark
 * (both sides fence) and waits for the submit (ur_close_fd). */
static inline bool zio__uring_closed_since(struct uring_loop *l, const struct zio__fd *ent,
					   uint32_t incarnation)
{
	zio__uring_mark_fd_sqes(l);
	atomic_thread_fence(memory_order_seq_cst);
	return __atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE) != incarnation;
}

/* backend_uring_ms.c */
/* Whether the kernel does multishot accept, multishot recv and provided
 * buffer rings, tested on ring (enabled, owned by the calling thread).
 * Returns 0, or -errno if the tests could not be made (out of descriptors
 * or memory): then nothing is known yet. */
int zio__uring_ms_probe(struct io_uring *ring);
/* For warm_batch: starts loading what st's next completion reads and
 * returns the parker it would wake (NULL if none). */
struct zio__parker *zio__uring_ms_warm(struct uring_ms *st);
void zio__uring_ms_complete(struct uring_loop *l, struct io_uring_cqe *cqe);
/* zio_close(fd) on this loop's thread, before its ASYNC_CANCEL(fd). */
void zio__uring_ms_detach(struct uring_loop *l, int fd);
/* zio_close() of ent's file on another thread, which may have closed the
 * number since: detaches this loop's state for that file, whether it is
 * seen (the state ent->ms held then) or still published. */
void zio__uring_ms_detach_closed(struct uring_loop *l, struct uring_ms *seen, struct zio__fd *ent);
void zio__uring_ms_destroy(struct uring_loop *l);
/* Executor 0 stops being run (sched.c, stop_exec0): its idle states go. */
void zio__uring_ms_stop(struct uring_loop *l);
/* Whether multishot recv and accept are in use (tests). */
bool zio__uring_multishot_on(void);
ssize_t zio__uring_multishot(struct zio__loop *base, struct zio__op *op, struct zio__fd *ent,
			     uint32_t incarnation, int64_t deadline);

#endif
