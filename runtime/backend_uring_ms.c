/*
 * backend_uring_ms.c - multishot accept and multishot recv with provided
 * buffers, behind the blocking-looking zio_accept() and zio_read().
 *
 * A multishot request stays armed on its fd and posts a CQE per result:
 * one per accepted connection, or one per provided buffer the kernel filled
 * with stream data. Nobody has to be waiting when it does, so results queue
 * up in the fd's state (struct uring_ms, one per fd, owned by the loop that
 * armed it) and a call takes the next one, parking only when the queue is
 * empty. A connection's task that reads, writes and reads again costs no
 * SQE per read, and data that arrives before the read is asked for is
 * handed over without a park at all.
 *
 * What is served here (io.c asks, through the backend's multishot()):
 *  - ACCEPT on a listener zio made: the accepted fds, in order. The peer
 *    address, which a multishot accept cannot report per connection, comes
 *    from getpeername() when the caller wants it (from SO_PEERNAME for a
 *    TCP connection reset since, which accept4() still returns; a Unix
 *    one's peer gone is -ECONNABORTED, as accept4() says).
 *  - reads (read, recv, readv, recvmsg) on a TCP socket zio made: bytes
 *    copied out of the provided buffers, each buffer going back to the
 *    ring once read to its end. A plain recv into a buffer starts the
 *    request; once there is one, every read of the stream is served from
 *    it, so none can overtake queued bytes: MSG_PEEK, MSG_DONTWAIT,
 *    MSG_WAITALL and MSG_TRUNC (discard) are honoured, and ancillary data
 *    is not available (msg_controllen 0, also for a recvmsg that passes a
 *    control buffer). MSG_OOB and MSG_ERRQUEUE read other queues and take
 *    the plain path. TCP only: a Unix socket's SCM_RIGHTS would be lost in
 *    a provided buffer.
 *  - POLLIN waits on such a socket or listener: ready while something is
 *    queued (with POLLERR|POLLHUP for a queued error, POLLRDHUP for EOF,
 *    and the other events asked for as poll(2) sees them then). With
 *    nothing queued a wait stops the request first, then asks the kernel,
 *    so no input is taken from under it: what comes next is in the
 *    socket for a read(2) of the caller's own.
 *  - EOF and errors are delivered in order, after the bytes before them.
 *  - zio_close() (from a task or a plain thread) ends it: callers waiting
 *    get -EBADF, and none arms a new request for a closed fd (the fd
 *    entry's incarnation tells).
 *
 * Backpressure: a state never arms a request until a caller would have to
 * wait, and cancels it when its queue grows past a bound (32 KiB of data
 * or 16 buffers, 64 connections) with nobody taking from it; the kernel
 * then keeps the rest in the socket or the listen backlog, as without
 * multishot. The bound is soft: what the kernel posted before the cancel
 * took effect (a burst of connections: a few hundred) joins the queue,
 * and queued connections hold descriptors. The ring
 * of provided buffers (256 x 2 KiB per loop, mapped on first use) can run
 * dry: the kernel ends the starved requests with -ENOBUFS, and a reader
 * that finds fewer than 1/8 of the buffers free reads with a plain RECV
 * into its own buffer instead.
 *
 * Ownership: a state belongs to the loop whose ring holds its request, and
 * only that loop's thread touches it (a plain thread's read, or another
 * runtime's task's, is made by a task there: io.c, run_in_owner). A fiber on another executor that
 * calls in moves to the owner first (zio__move_to) and stays pinned there
 * for the call; a task pinned elsewhere (zio_task_pin) goes back after.
 * Two loops that start a state for one fd at once race to publish it
 * (compare-and-swap); the loser uses the winner's. zio_close() detaches
 * the state before the ASYNC_CANCEL(fd) that ends the request (waiters get
 * -EBADF); the request's last CQE frees it, recycling queued buffers and closing queued connections. States are
 * never returned to malloc while the loop lives, so a pointer read from the
 * fd table on another thread always leads to a state of the same loop.
 *
 * Support is probed once on the probe ring (a socketpair and a Unix
 * listener); ZIO_URING_MULTISHOT=0 turns it off.
 */
#include "backend_uring.h"

#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <unistd.h>

#define BUF_COUNT 256u       /* provided buffers per loop (power of two) */
#define BUF_SIZE 2048u
#define BUF_GROUP 0
#define BUF_LOW (BUF_COUNT / 8) /* fewer free: plain reads instead */
#define RECV_BACKLOG (32u << 10) /* queued bytes that stop a recv request */
#define RECV_BACKLOG_BUFS 16u    /* or queued buffers */
#define ACCEPT_BACKLOG 64u   /* queued connections that stop an accept */
#define CHUNK_STATES 64u

#define NO_RESULT INT32_MIN

static atomic_bool ms_recv_ok, ms_accept_ok;

struct buf_meta {
	uint32_t len, off; /* bytes the kernel put in, bytes read out */
	int32_t next;      /* next buffer of the same fd's queue, or -1 */
};

struct uring_bufs {
	struct io_uring_buf_ring *ring;
	char *mem;          /* BUF_COUNT * BUF_SIZE */
	unsigned nfree;     /* buffers the kernel may pick */
	struct buf_meta meta[BUF_COUNT];
};

struct uring_ms {
	/* The first line holds what a recv completion and a read touch. */
	_Alignas(ZIO__CACHELINE) struct uring_loop *loop; /* owner; fixed for the
							   * memory's life (first) */
	struct zio__fd *ent;
	/* Who waits: the first waiter in the state itself (a connection has
	 * one reader; waking it touches no line of its stack), others in a
	 * queue of nodes on their stacks. */
	struct zio__parker *waiter;
	uint32_t waiter_gen;
	int fd;
	/* recv: queued buffers, linked through buf_meta.next */
	int32_t qhead, qtail;
	size_t queued;
	int32_t result; /* EOF (0) or -errno to report after the queue */
	uint16_t nbufs; /* queued buffers */
	bool in_use;
	bool accept;
	bool armed;    /* a multishot request is live in the ring */
	bool stopping; /* we asked the kernel to end it */
	bool detached; /* the fd was closed: the last CQE frees the state */
	bool letting_go; /* zio__uring_ms_stop() is ending it */
	/* the rest */
	struct uring_ms *next_free;
	struct zio__waitq waiters;
	int accept_flags;
	uint32_t incarnation; /* the fd entry's, for the file it serves */
	/* accept: queued connections, fds[head..n) */
	int *fds;
	unsigned fhead, fn, fcap;
};
_Static_assert(offsetof(struct uring_ms, detached) < ZIO__CACHELINE, "hot fields in one line");

struct uring_ms_chunk {
	struct uring_ms states[CHUNK_STATES];
	struct uring_ms_chunk *next;
};

/* ------------------------------------------------------------------ probe */

/* Ends the probe's multishot request (user_data 1) and reaps what is left:
 * its last CQE and the cancel's. */
static void probe_end(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	io_uring_prep_cancel64(sqe, 1, 0);
	io_uring_sqe_set_data64(sqe, 2);
	io_uring_submit(ring);
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = { .tv_sec = 1 };
	for (int seen = 0; seen < 2 && io_uring_wait_cqe_timeout(ring, &cqe, &ts) == 0; seen++)
		io_uring_cqe_seen(ring, cqe);
}

/* The probes: 1 if the kernel serves the request, 0 if not, or -errno if
 * what they need could not be had (a descriptor, memory): no answer. */
static int probe_recv(struct io_uring *ring)
{
	struct io_uring_buf_ring *br = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (br == MAP_FAILED)
		return -errno;
	char buf[64];
	int ok = 0;
	int sv[2] = { -1, -1 };
	io_uring_buf_ring_init(br);
	struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)br, .ring_entries = 1,
					.bgid = BUF_GROUP };
	if (io_uring_register_buf_ring(ring, &reg, 0) != 0)
		goto out_unmap;
	io_uring_buf_ring_add(br, buf, sizeof(buf), 0, io_uring_buf_ring_mask(1), 0);
	io_uring_buf_ring_advance(br, 1);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		ok = -errno;
		goto out_unreg;
	}
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUF_GROUP;
	io_uring_sqe_set_data64(sqe, 1);
	if (write(sv[1], "z", 1) != 1 || io_uring_submit(ring) != 1)
		goto out_close;
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = { .tv_sec = 1 };
	if (io_uring_wait_cqe_timeout(ring, &cqe, &ts) == 0) {
		ok = cqe->res == 1 && (cqe->flags & IORING_CQE_F_MORE) &&
		     (cqe->flags & IORING_CQE_F_BUFFER);
		io_uring_cqe_seen(ring, cqe);
	}
	/* Before its buffer (on this stack) goes away. */
	probe_end(ring);
out_close:
	close(sv[0]);
	close(sv[1]);
out_unreg:
	io_uring_unregister_buf_ring(ring, BUF_GROUP);
out_unmap:
	munmap(br, 4096);
	return ok;
}

static int probe_accept(struct io_uring *ring)
{
	int ok = 0;
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len = sizeof(sa_family_t); /* autobind an abstract name */
	if (lfd < 0 || cfd < 0) {
		ok = -errno;
		goto out;
	}
	if (bind(lfd, (struct sockaddr *)&sa, len) != 0 || listen(lfd, 4) != 0)
		goto out;
	len = sizeof(sa);
	if (getsockname(lfd, (struct sockaddr *)&sa, &len) != 0)
		goto out;
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, 1);
	if (connect(cfd, (struct sockaddr *)&sa, len) != 0 || io_uring_submit(ring) != 1)
		goto out;
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = { .tv_sec = 1 };
	if (io_uring_wait_cqe_timeout(ring, &cqe, &ts) == 0) {
		ok = cqe->res >= 0 && (cqe->flags & IORING_CQE_F_MORE);
		if (cqe->res >= 0)
			close(cqe->res);
		io_uring_cqe_seen(ring, cqe);
	}
	probe_end(ring);
out:
	if (lfd >= 0)
		close(lfd);
	if (cfd >= 0)
		close(cfd);
	return ok;
}

int zio__uring_ms_probe(struct io_uring *ring)
{
	const char *env = getenv("ZIO_URING_MULTISHOT");
	if (env && strcmp(env, "0") == 0) {
		zio__log(0, "io_uring: multishot accept/recv off (ZIO_URING_MULTISHOT=0)");
		return 0;
	}
	int recv = probe_recv(ring), accept = recv < 0 ? recv : probe_accept(ring);
	if (recv < 0 || accept < 0)
		return recv < 0 ? recv : accept;
	atomic_store(&ms_recv_ok, recv == 1);
	atomic_store(&ms_accept_ok, accept == 1);
	zio__log(0, "io_uring: multishot recv with provided buffers %d, multishot accept %d",
		 recv, accept);
	return 0;
}

bool zio__uring_multishot_on(void)
{
	return atomic_load(&ms_recv_ok) && atomic_load(&ms_accept_ok);
}

/* -------------------------------------------------------- provided buffers */

static struct uring_bufs *bufs_get(struct uring_loop *l)
{
	if (zio__likely(l->bufs != NULL))
		return l->bufs;
	struct uring_bufs *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	size_t ring_len = BUF_COUNT * sizeof(struct io_uring_buf);
	b->ring = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	b->mem = mmap(NULL, (size_t)BUF_COUNT * BUF_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct io_uring_buf_reg reg = { .ring_entries = BUF_COUNT, .bgid = BUF_GROUP };
	if (b->ring == MAP_FAILED || b->mem == MAP_FAILED)
		goto fail;
	io_uring_buf_ring_init(b->ring);
	reg.ring_addr = (uintptr_t)b->ring;
	if (io_uring_register_buf_ring(&l->ring, &reg, 0) != 0)
		goto fail;
	for (unsigned i = 0; i < BUF_COUNT; i++)
		io_uring_buf_ring_add(b->ring, b->mem + (size_t)i * BUF_SIZE, BUF_SIZE, (uint16_t)i,
				      io_uring_buf_ring_mask(BUF_COUNT), (int)i);
	io_uring_buf_ring_advance(b->ring, BUF_COUNT);
	b->nfree = BUF_COUNT;
	l->bufs = b;
	return b;
fail:
	if (b->ring != MAP_FAILED)
		munmap(b->ring, ring_len);
	if (b->mem != MAP_FAILED)
		munmap(b->mem, (size_t)BUF_COUNT * BUF_SIZE);
	free(b);
	/* Not worth retrying per read: no provided buffers on this loop. */
	atomic_store(&ms_recv_ok, false);
	return NULL;
}

static void buf_put(struct uring_bufs *b, unsigned bid)
{
	io_uring_buf_ring_add(b->ring, b->mem + (size_t)bid * BUF_SIZE, BUF_SIZE, (uint16_t)bid,
			      io_uring_buf_ring_mask(BUF_COUNT), 0);
	io_uring_buf_ring_advance(b->ring, 1);
	b->nfree++;
}

/* ------------------------------------------------------------------ states */

static struct uring_ms *ms_new(struct uring_loop *l, struct zio__fd *ent, int fd,
			       uint32_t incarnation, bool accept)
{
	struct uring_ms *st = l->ms_free;
	if (!st) {
		struct uring_ms_chunk *c = aligned_alloc(ZIO__CACHELINE, sizeof(*c));
		if (!c)
			return NULL;
		memset(c, 0, sizeof(*c));
		c->next = l->ms_chunks;
		l->ms_chunks = c;
		for (unsigned i = CHUNK_STATES; i-- > 0;) {
			c->states[i].loop = l;
			c->states[i].next_free = l->ms_free;
			l->ms_free = &c->states[i];
		}
		st = l->ms_free;
	}
	l->ms_free = st->next_free;
	int *fds = st->fds;
	unsigned fcap = st->fcap;
	/* Everything but loop, which other threads may be reading. */
	memset(&st->ent, 0, sizeof(*st) - offsetof(struct uring_ms, ent));
	st->ent = ent;
	st->fd = fd;
	st->incarnation = incarnation;
	st->in_use = true;
	st->accept = accept;
	st->result = NO_RESULT;
	st->qhead = st->qtail = -1;
	st->fds = fds;
	st->fcap = fcap;
	return st;
}

/* Makes st the fd's state, unless another loop's got there first: then st
 * goes back to the free list and the caller uses that one. */
static bool ms_publish(struct uring_ms *st)
{
	void *expected = NULL;
	if (atomic_compare_exchange_strong_explicit(&st->ent->ms, &expected, st,
						    memory_order_acq_rel, memory_order_acquire))
		return true;
	struct uring_loop *l = st->loop;
	st->in_use = false;
	st->next_free = l->ms_free;
	l->ms_free = st;
	return false;
}

/* Drops what is queued: buffers back to the ring, connections closed. */
static void ms_drop_queue(struct uring_ms *st)
{
	struct uring_bufs *b = st->loop->bufs;
	while (st->qhead >= 0) {
		int32_t bid = st->qhead;
		st->qhead = b->meta[bid].next;
		buf_put(b, (unsigned)bid);
	}
	st->qtail = -1;
	st->queued = 0;
	st->nbufs = 0;
	while (st->fhead < st->fn)
		close(st->fds[st->fhead++]);
	st->fhead = st->fn = 0;
}

static void ms_wake_all(struct uring_ms *st, int value);

/* Back to the free list. Waiters are woken first: they look again, and
 * never touch the state after being woken. */
static void ms_release(struct uring_ms *st)
{
	struct uring_loop *l = st->loop;
	ms_wake_all(st, 0);
	ms_drop_queue(st);
	void *expected = st;
	atomic_compare_exchange_strong(&st->ent->ms, &expected, NULL);
	st->in_use = false;
	st->next_free = l->ms_free;
	l->ms_free = st;
}

static void ms_wake_all(struct uring_ms *st, int value)
{
	if (st->waiter) {
		zio__unpark(st->waiter, st->waiter_gen, value);
		st->waiter = NULL;
	}
	while (zio__waitq_wake_one(&st->waiters, value))
		;
}

/* Asks the kernel to end st's request; its last CQE says when it has. */
static void ms_stop(struct uring_ms *st)
{
	if (!st->armed || st->stopping)
		return;
	struct io_uring_sqe *sqe = zio__uring_sqe(st->loop);
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)st | TAG_MS, 0);
	io_uring_sqe_set_data64(sqe, TAG_IGNORE);
	st->stopping = true;
}

static bool ms_arm(struct uring_ms *st)
{
	struct uring_loop *l = st->loop;
	struct io_uring_sqe *sqe;
	if (st->accept) {
		sqe = zio__uring_fd_sqe(l);
		io_uring_prep_multishot_accept(sqe, st->fd, NULL, NULL, st->accept_flags);
	} else {
		if (!l->bufs || l->bufs->nfree < BUF_LOW)
			return false;
		sqe = zio__uring_fd_sqe(l);
		io_uring_prep_recv_multishot(sqe, st->fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = BUF_GROUP;
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)st | TAG_MS);
	st->armed = true;
	return true;
}

static void queue_fd(struct uring_ms *st, int fd)
{
	if (st->fhead == st->fn)
		st->fhead = st->fn = 0;
	if (st->fn == st->fcap) {
		if (st->fhead > 0) {
			memmove(st->fds, st->fds + st->fhead, (st->fn - st->fhead) * sizeof(int));
			st->fn -= st->fhead;
			st->fhead = 0;
		} else {
			/* A burst beyond the bound: rare, and the request is
			 * being stopped; the array keeps its size after. */
			unsigned cap = st->fcap ? st->fcap * 2 : ACCEPT_BACKLOG;
			int *fds = realloc(st->fds, cap * sizeof(int));
			if (!fds) {
				close(fd); /* the peer sees a reset, as on EMFILE */
				return;
			}
			st->fds = fds;
			st->fcap = cap;
		}
	}
	st->fds[st->fn++] = fd;
}

struct zio__parker *zio__uring_ms_warm(struct uring_ms *st)
{
	__builtin_prefetch(st->ent); /* its completion checks the fd entry */
	__builtin_prefetch(&st->waiters); /* and wakes the queue, line 2 */
	return st->waiter;
}

void zio__uring_ms_complete(struct uring_loop *l, struct io_uring_cqe *cqe)
{
	struct uring_ms *st = (struct uring_ms *)(uintptr_t)(cqe->user_data & ~TAG_MASK);
	int res = cqe->res;
	bool more = cqe->flags & IORING_CQE_F_MORE;
	/* A state whose fd was closed behind zio's back (plain close()) and
	 * then reused is detached here, lazily. */
	bool gone = st->detached || atomic_load_explicit(&st->ent->ms, memory_order_relaxed) != st;
	if (!more) {
		st->armed = false;
		st->stopping = false;
	}
	if (st->accept) {
		if (res >= 0) {
			if (gone)
				close(res);
			else
				queue_fd(st, res);
		} else if (!more && res != -ECANCELED && res != -EINTR && !gone) {
			st->result = res; /* EMFILE and friends: the caller decides */
		}
		if (st->fn - st->fhead >= ACCEPT_BACKLOG)
			ms_stop(st);
	} else {
		struct uring_bufs *b = l->bufs;
		if (cqe->flags & IORING_CQE_F_BUFFER) {
			unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
			b->nfree--;
			if (res > 0 && !gone) {
				b->meta[bid] = (struct buf_meta){ .len = (uint32_t)res, .next = -1 };
				if (st->qtail >= 0)
					b->meta[st->qtail].next = (int32_t)bid;
				else
					st->qhead = (int32_t)bid;
				st->qtail = (int32_t)bid;
				st->queued += (size_t)res;
				st->nbufs++;
			} else {
				buf_put(b, bid);
			}
		} else if (!gone && (res == 0 || (res < 0 && res != -ENOBUFS && res != -ECANCELED &&
						       res != -EINTR))) {
			st->result = res; /* EOF or a socket error, after the data */
		}
		/* Bytes or buffers: a peer sending tiny segments nobody reads
		 * must not take the whole ring. */
		if (st->queued >= RECV_BACKLOG || st->nbufs >= RECV_BACKLOG_BUFS)
			ms_stop(st);
	}
	if (gone) {
		if (!st->armed) {
			st->detached = true;
			ms_release(st);
		} else {
			ms_stop(st);
		}
		return;
	}
	ms_wake_all(st, 0);
}

/* The fd of st was closed: waiters get -EBADF, queued input goes, and the
 * state is freed now or, if its request is armed, by the request's last
 * CQE. The request is cancelled by user_data here, as well as by the
 * ASYNC_CANCEL of the file that follows: a request armed on the number
 * after it named another file (or with no spare to name it by) would
 * escape the second. */
static void ms_detach(struct uring_ms *st)
{
	st->detached = true;
	void *expected = st;
	atomic_compare_exchange_strong(&st->ent->ms, &expected, NULL);
	ms_wake_all(st, -EBADF);
	ms_drop_queue(st);
	if (!st->armed)
		ms_release(st);
	else
		ms_stop(st); /* also if the request names no file we can */
}

/* Whether st, read from the fd table, is one of l's states. Asked by
 * address, not of st->loop: another loop's state may be freed meanwhile
 * (its runtime destroyed once the zio_close() that reached it woke its
 * waiters). */
static bool ms_of(const struct uring_loop *l, const struct uring_ms *st)
{
	for (const struct uring_ms_chunk *c = l->ms_chunks; c && st; c = c->next)
		if (st >= c->states && st < c->states + CHUNK_STATES)
			return true;
	return false;
}

void zio__uring_ms_detach(struct uring_loop *l, int fd)
{
	struct zio__fd *ent = zio__fd_peek(fd);
	struct uring_ms *st = ent ? atomic_load_explicit(&ent->ms, memory_order_acquire) : NULL;
	if (ms_of(l, st))
		ms_detach(st);
}

/* Whether st is this loop's live state for a file of ent's that has been
 * closed since (zio_close bumped the incarnation). */
static bool serves_closed_file(struct uring_loop *l, struct uring_ms *st, struct zio__fd *ent)
{
	return ms_of(l, st) && st->in_use && !st->detached && st->ent == ent &&
	       st->incarnation != __atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE);
}

void zio__uring_ms_detach_closed(struct uring_loop *l, struct uring_ms *seen, struct zio__fd *ent)
{
	if (!ent)
		return;
	/* The number may name a new file by now, whose state (if any) is
	 * left alone; the closed file's may already be unpublished. */
	if (serves_closed_file(l, seen, ent))
		ms_detach(seen);
	struct uring_ms *now = atomic_load_explicit(&ent->ms, memory_order_acquire);
	if (serves_closed_file(l, now, ent))
		ms_detach(now);
}

void zio__uring_ms_destroy(struct uring_loop *l)
{
	struct uring_ms_chunk *c = l->ms_chunks;
	while (c) {
		struct uring_ms_chunk *next = c->next;
		for (unsigned i = 0; i < CHUNK_STATES; i++) {
			struct uring_ms *st = &c->states[i];
			if (st->in_use) {
				st->detached = true;
				ms_release(st);
			}
			free(st->fds);
		}
		free(c);
		c = next;
	}
	l->ms_chunks = NULL;
	l->ms_free = NULL;
	if (l->bufs) {
		munmap(l->bufs->ring, BUF_COUNT * sizeof(struct io_uring_buf));
		munmap(l->bufs->mem, (size_t)BUF_COUNT * BUF_SIZE);
		free(l->bufs);
		l->bufs = NULL;
	}
}

static bool ms_idle(const struct uring_ms *st)
{
	return !st->waiter && !st->waiters.head && st->qhead < 0 && st->fhead == st->fn &&
	       st->result == NO_RESULT;
}

/* Executor 0 stops being run until the next zio_runtime_run(), the others
 * go on. A task of theirs that reads or accepts on an fd whose state is
 * here would move here and wait for that run, so the states with nothing
 * queued and nobody waiting end their requests (the last CQEs are reaped
 * here, at once: a cancel ends a multishot request in the kernel) and go;
 * the next caller starts one on its own loop. One that ends with something
 * queued stays, as do those a task of this executor waits in. */
void zio__uring_ms_stop(struct uring_loop *l)
{
	for (struct uring_ms_chunk *c = l->ms_chunks; c; c = c->next)
		for (unsigned i = 0; i < CHUNK_STATES; i++) {
			struct uring_ms *st = &c->states[i];
			if (st->in_use && !st->detached && ms_idle(st)) {
				st->letting_go = true;
				ms_stop(st);
			}
		}
	/* Until every request asked to end has ended (a second at most):
	 * the states still idle then go. */
	for (unsigned tries = 0;; tries++) {
		unsigned ending = 0;
		for (struct uring_ms_chunk *c = l->ms_chunks; c; c = c->next)
			for (unsigned i = 0; i < CHUNK_STATES; i++) {
				struct uring_ms *st = &c->states[i];
				if (!st->letting_go)
					continue;
				if (st->armed && tries < 1000) {
					ending++;
					continue;
				}
				st->letting_go = false;
				if (st->in_use && !st->detached && !st->armed && ms_idle(st))
					ms_release(st);
			}
		if (!ending)
			break;
		l->base.ops->poll(&l->base, tries ? ZIO_MSEC(1) : 0);
	}
}

/* ----------------------------------------------------------------- serving */

/* The peer address of an accepted connection, as accept4() reports it.
 * getpeername() refuses a TCP connection reset since it was queued, whose
 * address SO_PEERNAME still gives (it asks as accept4() does), for exactly
 * the length of its family's address. */
static bool peer_name(int fd, struct sockaddr *addr, socklen_t *len)
{
	if (getpeername(fd, addr, len) == 0)
		return true;
	if (errno != ENOTCONN)
		return false;
	struct sockaddr_storage ss;
	socklen_t n = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &n) != 0)
		return false;
	n = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	  : ss.ss_family == AF_INET  ? sizeof(struct sockaddr_in)
				     : 0;
	if (!n || getsockopt(fd, SOL_SOCKET, SO_PEERNAME, &ss, &n) != 0)
		return false;
	memcpy(addr, &ss, n < *len ? n : *len);
	*len = n;
	return true;
}

/* The iovec an op reads into (recv: one), or NULL if it is not a read this
 * file serves. */
static const struct iovec *read_iov(struct zio__op *op, struct iovec *one, int *n, int *flags)
{
	switch (op->opcode) {
	case ZIO__OP_READ:
		if (op->u.rw.off >= 0)
			return NULL;
		*flags = 0;
		break;
	case ZIO__OP_RECV:
		*flags = op->u.rw.flags;
		break;
	case ZIO__OP_READV:
		/* Beyond what readv(2) takes, it answers: -EINVAL. */
		if (op->u.vec.off >= 0 || op->u.vec.iovcnt < 0 || op->u.vec.iovcnt > IOV_MAX)
			return NULL;
		*flags = 0;
		*n = op->u.vec.iovcnt;
		return op->u.vec.iov;
	case ZIO__OP_RECVMSG: {
		struct msghdr *m = op->u.msg.msg;
		/* With a control buffer too: once a state serves the
		 * stream, a plain recvmsg would overtake its queue. (Only a
		 * plain recv starts one.) Beyond what recvmsg(2) takes, it
		 * answers: -EMSGSIZE. */
		if (m->msg_iovlen > IOV_MAX)
			return NULL;
		*flags = op->u.msg.flags;
		*n = (int)m->msg_iovlen;
		return m->msg_iov;
	}
	default:
		return NULL;
	}
	one->iov_base = op->u.rw.buf;
	one->iov_len = op->u.rw.len;
	*n = 1;
	return one;
}

/* Copies queued bytes into iov, from byte `skip` of it on; consumes them
 * unless peek; discard (MSG_TRUNC) consumes without copying. Returns the
 * bytes taken. */
static size_t take_bytes(struct uring_ms *st, const struct iovec *iov, int n, size_t skip, bool peek,
			 bool discard)
{
	struct uring_bufs *b = st->loop->bufs;
	size_t got = 0;
	int32_t bid = st->qhead;
	uint32_t off = bid >= 0 ? b->meta[bid].off : 0;
	for (int i = 0; i < n && bid >= 0; i++) {
		size_t done = 0;
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		done = skip;
		skip = 0;
		while (done < iov[i].iov_len && bid >= 0) {
			struct buf_meta *m = &b->meta[bid];
			size_t k = m->len - off;
			if (k > iov[i].iov_len - done)
				k = iov[i].iov_len - done;
			if (!discard)
				memcpy((char *)iov[i].iov_base + done,
				       b->mem + (size_t)bid * BUF_SIZE + off, k);
			done += k;
			got += k;
			off += (uint32_t)k;
			if (off == m->len) {
				int32_t next = m->next;
				if (!peek) {
					st->qhead = next;
					if (next < 0)
						st->qtail = -1;
					st->nbufs--;
					buf_put(b, (unsigned)bid);
				}
				bid = next;
				off = bid >= 0 ? b->meta[bid].off : 0;
			}
		}
	}
	if (!peek) {
		if (bid >= 0)
			b->meta[bid].off = off;
		st->queued -= got;
	}
	return got;
}

static size_t iov_total(const struct iovec *iov, int n)
{
	size_t t = 0;
	for (int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* Reads of other queues than the stream's, which a state never holds. */
#define OTHER_QUEUES (MSG_OOB | MSG_ERRQUEUE)

enum ms_call { CALL_ACCEPT, CALL_POLL, CALL_READ };

ssize_t zio__uring_multishot(struct zio__loop *base, struct zio__op *op, struct zio__fd *ent,
			     uint32_t incarnation, int64_t deadline)
{
	uint8_t traits = __atomic_load_n(&ent->traits, __ATOMIC_RELAXED);
	struct iovec one;
	const struct iovec *iov = NULL;
	int iovcnt = 0, flags = 0;
	enum ms_call call;
	short events = 0;

	if (!(traits & ZIO__FD_TCP))
		return -EOPNOTSUPP;
	if (op->opcode == ZIO__OP_ACCEPT) {
		call = CALL_ACCEPT;
	} else if (op->opcode == ZIO__OP_POLL) {
		events = op->u.poll.events;
		if (!(events & (POLLIN | POLLRDNORM)))
			return -EOPNOTSUPP;
		call = CALL_POLL;
	} else {
		iov = read_iov(op, &one, &iovcnt, &flags);
		if (!iov || (flags & OTHER_QUEUES))
			return -EOPNOTSUPP;
		/* The kernel would say EFAULT; a copy out of the queue would
		 * crash. (Other bad pointers are the caller's, as with memcpy.) */
		for (int i = 0; i < iovcnt && !(flags & MSG_TRUNC); i++)
			if (!iov[i].iov_base && iov[i].iov_len)
				return -EFAULT;
		call = CALL_READ;
	}
	if (!atomic_load_explicit(&ent->ms, memory_order_acquire)) {
		/* Nothing armed or queued: only a plain accept, or a plain
		 * recv into a buffer, starts a request; anything else may use
		 * the plain path, as nothing can be overtaken. */
		if (call == CALL_POLL ||
		    (call == CALL_ACCEPT && !atomic_load_explicit(&ms_accept_ok, memory_order_relaxed)) ||
		    (call == CALL_READ &&
		     (!atomic_load_explicit(&ms_recv_ok, memory_order_relaxed) ||
		      op->opcode != ZIO__OP_RECV || flags != 0 || !(traits & ZIO__FD_STREAM) ||
		      op->u.rw.len == 0)))
			return -EOPNOTSUPP;
	}

	struct zio__fiber *f = zio__fiber_current();
	struct zio__exec *home = f->exec;
	uint32_t pin = f->flags & ZIO__FIBER_TEMP_PIN;
	f->flags |= ZIO__FIBER_TEMP_PIN;
	/* zio_close() bumps the incarnation before it detaches the state: a
	 * caller that wakes or arrives after that must not arm a new request.
	 * The caller's, read before it looked at the closing mark: one read
	 * here could already be the close's, which would then find nothing
	 * of ours to detach. */
	struct uring_loop *l = (struct uring_loop *)base;
	size_t want = call == CALL_READ ? iov_total(iov, iovcnt) : 0;
	bool peek = flags & MSG_PEEK;
	bool waitall = (flags & MSG_WAITALL) && !peek;
	ssize_t r;
	size_t got = 0; /* MSG_WAITALL: bytes already copied */
	bool looked = false; /* a try-once call polled the ring */
	bool retried = false; /* an accept asked again after a stale EMFILE */
	for (;;) {
		if (__atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE) != incarnation) {
			r = got ? (ssize_t)got : -EBADF;
			break;
		}
		struct uring_ms *st = atomic_load_explicit(&ent->ms, memory_order_acquire);
		if (st && st->loop != l && st->loop->base.exec->rt != home->rt) {
			/* Another runtime's: no task moves there. */
			r = got ? (ssize_t)got : ZIO__OTHER_RUNTIME;
			break;
		}
		if (st && st->loop != l) {
			/* Its loop's state: go there (loop never changes). */
			zio__move_to(st->loop->base.exec);
			f->flags |= ZIO__FIBER_TEMP_PIN;
			l = st->loop;
			continue; /* it may be gone by now: look again */
		}
		if (st && call != CALL_POLL && st->accept != (call == CALL_ACCEPT)) {
			/* accept on a connection, or a read on a listener: the
			 * kernel has the answer (EINVAL, ENOTCONN). */
			r = got ? (ssize_t)got : -EOPNOTSUPP;
			break;
		}
		if (!st) {
			/* After a try-once look at the ring (looked), a state
			 * that went meanwhile leaves the socket to the plain
			 * syscall: nothing can be on its way. */
			if (call == CALL_POLL || got || looked || (call == CALL_READ && !bufs_get(l)) ||
			    !(st = ms_new(l, ent, op->fd, incarnation, call == CALL_ACCEPT))) {
				r = got ? (ssize_t)got : -EOPNOTSUPP;
				break;
			}
			st->accept_flags = call == CALL_ACCEPT ? op->u.sa.flags : 0;
			if (!ms_publish(st))
				continue; /* another loop's came first: use that */
			if (__atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE) != incarnation) {
				/* Closed meanwhile: the entry may be a new
				 * file's, where this state must not stay. */
				ms_release(st);
				r = -EBADF;
				break;
			}
		}
		if (call == CALL_ACCEPT) {
			if (st->fhead < st->fn) {
				int fd = st->fds[st->fhead++];
				if (op->u.sa.addr && !peer_name(fd, op->u.sa.addr, op->u.sa.addrlen)) {
					close(fd);
					r = -ECONNABORTED;
					break;
				}
				r = fd;
				break;
			}
			if (st->result != NO_RESULT) {
				r = st->result;
				st->result = NO_RESULT;
				/* Out of fds or memory when the kernel last
				 * tried, which may be long ago (the caller may
				 * have freed some since): ask it again, once. */
				if (!retried && !st->armed && deadline != 0 &&
				    (r == -EMFILE || r == -ENFILE || r == -ENOMEM || r == -ENOBUFS)) {
					retried = true;
					if (!zio__uring_closed_since(l, ent, incarnation) && ms_arm(st))
						goto wait;
				}
				break;
			}
		} else if (call == CALL_POLL) {
			bool ready = st->accept ? st->fhead < st->fn : st->qhead >= 0;
			if (ready || st->result != NO_RESULT) {
				r = events & (POLLIN | POLLRDNORM);
				/* What poll(2) would add: the error the
				 * request took from the socket, or the end of
				 * input (the bytes before it still queued). */
				/* (A listener's error, EMFILE say, is the
				 * accepting caller's, not the socket's.) */
				if (!st->accept && st->result < 0 && st->result != NO_RESULT)
					r |= POLLERR | POLLHUP;
				else if (st->result == 0)
					r |= events & POLLRDHUP;
				/* The rest (POLLOUT, POLLPRI) is the socket's
				 * to say, now. */
				struct pollfd other = { .fd = op->fd,
							.events = events & ~(POLLIN | POLLRDNORM | POLLRDHUP) };
				if (other.events && poll(&other, 1, 0) > 0)
					r |= other.revents & ~(POLLIN | POLLRDNORM | POLLNVAL);
				break;
			}
			/* Nothing queued: the kernel's poll answers, once no
			 * request of ours can take the input it would see (a
			 * caller that waits for readiness may read with
			 * read(2) itself, and must find the bytes in the
			 * socket; and a recv armed for it here would report a
			 * listener's or an unconnected socket's recv error as
			 * POLLERR). Stop ours and wait for its last CQE. */
			if (!st->armed) {
				r = -EOPNOTSUPP;
				break;
			}
			ms_stop(st);
		} else {
			if (want == 0 && (op->opcode == ZIO__OP_READV || op->opcode == ZIO__OP_READ ||
					  st->qhead >= 0 || st->result != NO_RESULT)) {
				/* A zero-length recv returns 0 once there is
				 * something to read, as recv(2) does; read(2)
				 * and readv(2) at once. */
				r = 0;
				break;
			}
			got += want ? take_bytes(st, iov, iovcnt, got, peek, (flags & MSG_TRUNC) != 0) : 0;
			if (got && (!waitall || got == want)) {
				r = (ssize_t)got;
				break;
			}
			if (st->qhead < 0 && st->result != NO_RESULT) {
				r = got ? (ssize_t)got : st->result;
				if (!peek && !got)
					st->result = NO_RESULT;
				break;
			}
		}
		if (deadline == 0 || (flags & MSG_DONTWAIT)) {
			/* Try once. What the request has taken from the socket
			 * but not posted yet (deferred task work runs when the
			 * ring is entered), or posted and not reaped, is there
			 * as much as bytes in a socket are: look at the ring
			 * once. With no request armed nothing can be on its
			 * way, so the plain syscall looks at the socket itself. */
			if (!got && st->armed && !looked) {
				looked = true;
				zio__loop_poll(l->base.exec, 0);
				continue; /* the state may have changed, or gone */
			}
			r = got ? (ssize_t)got : st->armed ? -EAGAIN : -EOPNOTSUPP;
			break;
		}
		if (!st->armed && zio__uring_closed_since(l, ent, incarnation)) {
			r = got ? (ssize_t)got : -EBADF;
			break;
		}
		if (call == CALL_READ && !st->armed && !got && !waitall && st->qhead < 0 &&
		    st->result == NO_RESULT && op->opcode != ZIO__OP_RECVMSG) {
			/* Nothing queued and no request in flight (a POLLIN
			 * wait stopped it: code that waits with zio_wait_fd
			 * reads next): bytes already in the socket are one
			 * non-blocking syscall away, not an armed request's
			 * round trip (a fifth of a round trip more). None
			 * can be overtaken. (A recvmsg keeps the queue's
			 * rules: no ancillary data.) */
			r = zio__op_syscall(op);
			if (r != -EAGAIN && r != -EWOULDBLOCK)
				break;
		}
		if (!st->armed && !ms_arm(st)) {
			/* Out of provided buffers: nothing queued, nothing in
			 * flight, so a plain read cannot overtake anything. */
			ms_release(st);
			r = got ? (ssize_t)got : -EOPNOTSUPP;
			break;
		}
	wait:;
		struct zio__waiter w;
		uint32_t gen = zio__park_prepare(&f->park, 0);
		zio__waiter_init(&w, &f->park, gen);
		if (!st->waiter) {
			st->waiter = &f->park;
			st->waiter_gen = gen;
		} else {
			zio__waitq_push(&st->waiters, &w);
		}
		int woke = zio__park(&f->park, deadline);
		f->flags |= ZIO__FIBER_TEMP_PIN;
		/* Timed out or cancelled: leave. (A woken waiter was removed
		 * by its waker, and the state may have been reused since.) */
		if (woke == -EBADF &&
		    __atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE) == incarnation)
			continue; /* a stale state of the number's last file */
		if (woke != 0) {
			if (zio__waiter_queued(&w))
				zio__waitq_remove(&st->waiters, &w);
			else if (st->waiter == &f->park && st->waiter_gen == gen)
				st->waiter = NULL;
			/* Time ran out (perhaps before the call: a stream
			 * call with a deadline already past still takes what
			 * is ready, io.h): what the ring took in and this
			 * loop has not reaped is here, as for deadline 0. */
			if (woke == -ETIMEDOUT && !got && !looked) {
				looked = true;
				zio__loop_poll(l->base.exec, 0);
				continue;
			}
			/* Bytes already copied are the caller's: return them,
			 * and a cancel stays pending for the next call. */
			r = got ? (ssize_t)got : woke;
			break;
		}
	}
	if (r >= 0 && op->opcode == ZIO__OP_RECVMSG) {
		/* Served here (bytes or EOF): connected TCP has no name, and
		 * ancillary data does not survive a provided buffer. */
		op->u.msg.msg->msg_namelen = 0;
		op->u.msg.msg->msg_controllen = 0;
		op->u.msg.msg->msg_flags = 0;
	}
	f->flags = (f->flags & ~ZIO__FIBER_TEMP_PIN) | pin;
	/* A pinned task goes back to the executor it is pinned to. */
	if ((f->flags & ZIO__FIBER_PINNED) && f->exec != home)
		zio__move_to(home);
	return r;
}
