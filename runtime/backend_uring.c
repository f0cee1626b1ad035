/*
 * backend_uring.c - io_uring: native completions.
 *
 * One ring per executor, 256 SQ entries and a 512-entry CQ. SQEs are only
 * queued by submit(); they reach the kernel in one io_uring_enter() at poll
 * time (or earlier if the SQ fills up), together with the wait for
 * completions, bounded by the executor's nearest timer (EXT_ARG timeouts,
 * no timeout SQE). A CQE's user_data is the op's address; the low bits tag
 * the few internal requests (wake poll, cancels) whose CQEs need no waiter.
 *
 * Setup tries IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN,
 * then COOP_TASKRUN alone, then nothing, so an older kernel (EINVAL) gets a
 * plain ring. SINGLE_ISSUER binds the ring to one thread, but executors'
 * loops are created by the thread calling zio_runtime_create(); the ring is
 * therefore created disabled (R_DISABLED) and enabled by the executor's own
 * thread on first use, which then also registers the ring fd (fewer fd
 * lookups per enter). A runtime whose executor 0 is later driven by another
 * thread than the first one that ran it loses the ring (the kernel refuses
 * its submissions with EEXIST): executor 0 must stay on one thread.
 *
 * Opcode support comes from io_uring_get_probe_ring(); an op the kernel
 * lacks takes the readiness path (a POLL_ADD plus the syscall) or, for
 * files, the blocking pool (io.c). Setup flags, features and the optional
 * opcodes (MSG_RING, SOCKET, SEND_ZC) are logged once with ZIO_DEBUG.
 * Multishot accept and multishot recv with provided buffers, where the
 * kernel has them (probed once), serve accepts on zio's listeners and reads
 * on zio's TCP sockets: backend_uring_ms.c. Socket reads and writes are
 * RECV and SEND, not READ and WRITE (io.c decides, per op).
 *
 * Cross-thread wake: wake() writes an eventfd the ring watches with a
 * multishot POLL_ADD. zio_close() on an fd whose file another executor's
 * ring holds requests on (or from a plain thread) hands the file, under a
 * spare number, to that ring's thread, which cancels them all and closes
 * it (struct uring_close); the closer waits until that ring has
 * submitted the SQEs it had queued on fds, whose numbers the kernel
 * resolves at submission (await_submitted), then, while that ring's
 * executor runs, until the file is closed (ZIO__CLOSE_WAIT_MAX at most).
 *
 * CQ overflow: with FEAT_NODROP the kernel keeps overflowed CQEs; poll()
 * flushes them (io_uring_get_events) and reaps again.
 *
 * ZIO_URING_PROBE_FAIL=1 makes probe() fail, to prove the fallback
 * (=ENOMEM: with a failure that may pass, as a memlock limit's).
 */
#include "backend_uring.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SQ_ENTRIES 256

/* Which zio opcodes the kernel can do, from the probe (same for all rings). */
static bool native_op[ZIO__OP_COUNT];
static atomic_int probed; /* 0 not yet, 1 ok, -errno failure */
static _Atomic unsigned setup_flags_ok = ~0u;
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;

static const struct {
	uint8_t zop;
	uint8_t iop;
} opmap[] = {
	{ ZIO__OP_NOP, IORING_OP_NOP },
	{ ZIO__OP_READ, IORING_OP_READ },
	{ ZIO__OP_WRITE, IORING_OP_WRITE },
	{ ZIO__OP_READV, IORING_OP_READV },
	{ ZIO__OP_WRITEV, IORING_OP_WRITEV },
	{ ZIO__OP_RECV, IORING_OP_RECV },
	{ ZIO__OP_SEND, IORING_OP_SEND },
	{ ZIO__OP_RECVMSG, IORING_OP_RECVMSG },
	{ ZIO__OP_SENDMSG, IORING_OP_SENDMSG },
	{ ZIO__OP_ACCEPT, IORING_OP_ACCEPT },
	{ ZIO__OP_CONNECT, IORING_OP_CONNECT },
	{ ZIO__OP_POLL, IORING_OP_POLL_ADD },
	{ ZIO__OP_CANCEL_FD, IORING_OP_ASYNC_CANCEL },
	{ ZIO__OP_PREAD, IORING_OP_READ },
	{ ZIO__OP_PWRITE, IORING_OP_WRITE },
	{ ZIO__OP_FREAD, IORING_OP_READ },
	{ ZIO__OP_FWRITE, IORING_OP_WRITE },
	{ ZIO__OP_FSYNC, IORING_OP_FSYNC },
	{ ZIO__OP_OPENAT, IORING_OP_OPENAT },
	{ ZIO__OP_STATX, IORING_OP_STATX },
	{ ZIO__OP_RENAMEAT, IORING_OP_RENAMEAT },
	{ ZIO__OP_UNLINKAT, IORING_OP_UNLINKAT },
	{ ZIO__OP_MKDIRAT, IORING_OP_MKDIRAT },
	{ ZIO__OP_CLOSE, IORING_OP_CLOSE },
};

static int ring_init(struct io_uring *ring, unsigned *flags_used)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN |
			IORING_SETUP_R_DISABLED,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int err = -EINVAL;
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		unsigned fl = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
		if (setup_flags_ok != ~0u && tries[i] != setup_flags_ok)
			continue;
		struct io_uring_params p = { .flags = fl, .cq_entries = SQ_ENTRIES * 2 };
		err = io_uring_queue_init_params(SQ_ENTRIES, ring, &p);
		if (err == -EINVAL && (fl & IORING_SETUP_SUBMIT_ALL)) {
			p = (struct io_uring_params){ .flags = fl & ~IORING_SETUP_SUBMIT_ALL,
						      .cq_entries = SQ_ENTRIES * 2 };
			err = io_uring_queue_init_params(SQ_ENTRIES, ring, &p);
		}
		if (err == 0) {
			*flags_used = tries[i];
			setup_flags_ok = tries[i];
			return 0;
		}
		if (err != -EINVAL)
			return err; /* ENOSYS, EPERM, ENOMEM: not a flags problem */
	}
	return err;
}

/* A ring made with IORING_SETUP_R_DISABLED starts working. liburing 2.3
 * declares io_uring_enable_rings() but does not export it: the raw
 * syscall. */
static int enable_ring(struct io_uring *ring)
{
	return syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL,
		       0) < 0
		       ? -errno
		       : 0;
}

/* Two request kinds the opcode list does not show: ASYNC_CANCEL by fd
 * (Linux 5.19), which zio_close() needs, and multishot POLL_ADD (5.13), on
 * which wake() relies. On an enabled ring: a multishot poll on an eventfd
 * that nothing writes, then a cancel of everything on that fd. */
static int requests_work(struct io_uring *ring)
{
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0)
		return -errno; /* out of descriptors: not an answer */
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	io_uring_prep_poll_multishot(sqe, efd, POLLIN);
	io_uring_sqe_set_data64(sqe, 1);
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_cancel_fd(sqe, efd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, 2);
	io_uring_submit(ring);
	bool poll_done = false, cancel_done = false, ok = true;
	/* Each answers once: the poll ends (-ECANCELED if the cancel took it,
	 * -EINVAL if multishot polls are unknown), the cancel says how many
	 * it took (-EINVAL: no cancel by fd). */
	for (int i = 0; i < 4 && !(poll_done && cancel_done); i++) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts = { .tv_nsec = 100 * 1000 * 1000 };
		if (io_uring_wait_cqe_timeout(ring, &cqe, &ts) < 0)
			break;
		if (cqe->user_data == 1 && !(cqe->flags & IORING_CQE_F_MORE)) {
			poll_done = true;
			ok &= cqe->res == -ECANCELED;
		} else if (cqe->user_data == 2) {
			cancel_done = true;
			ok &= cqe->res >= 1;
		}
		io_uring_cqe_seen(ring, cqe);
		if (cancel_done && !poll_done && !ok) {
			/* The poll is still armed: end it by its address. */
			sqe = io_uring_get_sqe(ring);
			io_uring_prep_cancel64(sqe, 1, 0);
			io_uring_sqe_set_data64(sqe, 3);
			io_uring_submit(ring);
		}
	}
	close(efd);
	return ok && poll_done && cancel_done ? 0 : -ENOSYS;
}

static int do_probe(void)
{
	const char *f = getenv("ZIO_URING_PROBE_FAIL");
	if (f && *f && strcmp(f, "0") != 0)
		return strcmp(f, "ENOMEM") == 0 ? -ENOMEM : -ENOSYS;
	struct io_uring ring;
	unsigned used;
	int err = ring_init(&ring, &used);
	if (err)
		return err;
	struct io_uring_probe *pr = io_uring_get_probe_ring(&ring);
	if (!pr) {
		io_uring_queue_exit(&ring);
		return -ENOSYS;
	}
	for (size_t i = 0; i < sizeof(opmap) / sizeof(opmap[0]); i++)
		native_op[opmap[i].zop] = io_uring_opcode_supported(pr, opmap[i].iop);
	/* Vectored and plain reads share the fd kinds; without the basics
	 * io_uring is not worth using. */
	bool usable = native_op[ZIO__OP_READ] && native_op[ZIO__OP_WRITE] &&
		      native_op[ZIO__OP_POLL] && native_op[ZIO__OP_CANCEL_FD] &&
		      (ring.features & IORING_FEAT_NODROP) && (ring.features & IORING_FEAT_EXT_ARG);
	usable = usable && (!(used & IORING_SETUP_R_DISABLED) || enable_ring(&ring) == 0);
	if (usable && (err = requests_work(&ring)) != 0) {
		if (err == -ENOSYS)
			zio__log(0, "io_uring: no cancel by fd or no multishot poll (Linux < 5.19)");
		usable = false;
	}
	if (usable && native_op[ZIO__OP_RECV] && native_op[ZIO__OP_ACCEPT])
		err = zio__uring_ms_probe(&ring);
	if (zio__err_transient(err)) {
		/* Out of descriptors or memory for a probe's socket: ask
		 * again next time rather than judge io_uring by it. */
		io_uring_free_probe(pr);
		io_uring_queue_exit(&ring);
		return err;
	}
	zio__log(0,
		 "io_uring: setup flags %#x (single_issuer %d, defer_taskrun %d), features %#x: "
		 "ext_arg %d fast_poll %d nodrop %d; ops: send/recv %d accept %d connect %d "
		 "openat %d statx %d msg_ring %d socket %d send_zc %d",
		 used, !!(used & IORING_SETUP_SINGLE_ISSUER), !!(used & IORING_SETUP_DEFER_TASKRUN),
		 ring.features, !!(ring.features & IORING_FEAT_EXT_ARG),
		 !!(ring.features & IORING_FEAT_FAST_POLL), !!(ring.features & IORING_FEAT_NODROP),
		 native_op[ZIO__OP_RECV], native_op[ZIO__OP_ACCEPT], native_op[ZIO__OP_CONNECT],
		 native_op[ZIO__OP_OPENAT], native_op[ZIO__OP_STATX],
		 io_uring_opcode_supported(pr, IORING_OP_MSG_RING),
		 io_uring_opcode_supported(pr, IORING_OP_SOCKET),
		 io_uring_opcode_supported(pr, IORING_OP_SEND_ZC));
	io_uring_free_probe(pr);
	io_uring_queue_exit(&ring);
	return usable ? 0 : -ENOSYS;
}

static int ur_probe(void)
{
	int p = atomic_load(&probed);
	if (p)
		return p > 0 ? 0 : p;
	pthread_mutex_lock(&probe_lock);
	p = atomic_load(&probed);
	if (!p) {
		int err = do_probe();
		p = err ? err : 1;
		if (!zio__err_transient(err))
			atomic_store(&probed, p); /* the kernel's answer, for good */
	}
	pthread_mutex_unlock(&probe_lock);
	return p > 0 ? 0 : p;
}

static int ur_create(struct zio__exec *e, struct zio__loop **out)
{
	int err = ur_probe();
	if (err)
		return err;
	struct uring_loop *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	err = ring_init(&l->ring, &l->flags);
	if (err) {
		free(l);
		return err;
	}
	l->disabled_ring = l->flags & IORING_SETUP_R_DISABLED;
	l->enabled = !l->disabled_ring;
	l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wakefd < 0) {
		err = -errno;
		io_uring_queue_exit(&l->ring);
		free(l);
		return err;
	}
	*out = &l->base;
	return 0;
}

/* A number for the calling thread, never given to another (a pthread_t or
 * a TLS address is reused once a thread has been joined). */
static uint64_t thread_serial(void)
{
	static atomic_uint_fast64_t next;
	static __thread uint64_t serial __attribute__((tls_model("initial-exec")));
	if (zio__unlikely(!serial))
		serial = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) + 1;
	return serial;
}

/* ------------------------------------------------- closes from elsewhere */

/* zio_close() of an fd this ring may hold requests on, from a thread that
 * cannot drive the ring (a task on another executor, a plain thread). The
 * closer keeps the file open under a spare number (a dup at or above the
 * closed one, so the numbers below stay as they were) and leaves this
 * request to the ring's thread, which cancels everything on the file by
 * the spare number and then closes it. The closed number is free at once.
 * While the ring's executor runs, the closer waits for the file's close,
 * as close(2) would have closed it (a listener's port free for the next
 * listen, the peer's FIN on its way), for ZIO__CLOSE_WAIT_MAX at most: an
 * executor that computes without yielding polls late, and may itself be
 * waiting for what the closer does next. (Executor 0, stopped between
 * zio_runtime_run() calls, is not waited for: its ring's next poll is at
 * the next run or destroy.) The closer and the ring each hold a reference
 * while the closer waits: either may be last. */
struct uring_close {
	struct zio__op op;         /* on l->remote: CANCEL_FD of the spare
				    * number (-1: none), parker NULL */
	struct uring_close *next;  /* l->closing, once its cancel is queued */
	struct zio__fd *ent;       /* the closed number's entry, or NULL */
	struct uring_ms *ms;       /* the multishot state ent had, or NULL */
	/* Who waits for the close, taken (exchanged for NULL) by whichever
	 * of the ring (to wake it) and the closer (out of time) is first; a
	 * closer that finds it taken waits until the ring's wake, which
	 * reads its parker, is over (closer_left). */
	struct zio__parker *_Atomic closer;
	uint32_t closer_gen;
	atomic_bool closer_left; /* the ring is done with closer */
	atomic_uint refs;
};

static void close_unref(struct uring_close *c)
{
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
		free(c);
}

/* The closer, if it still waits, goes on. */
static void close_let_go(struct uring_close *c)
{
	uint32_t gen = c->closer_gen;
	struct zio__parker *closer = atomic_exchange_explicit(&c->closer, NULL, memory_order_acq_rel);
	if (closer) {
		zio__unpark(closer, gen, 0);
		atomic_store_explicit(&c->closer_left, true, memory_order_release);
	}
}

static void close_free(struct uring_close *c)
{
	if (c->op.fd >= 0)
		close(c->op.fd);
	close_let_go(c);
	close_unref(c);
}

/* On the ring's thread, from take_remote(). */
static void close_start(struct uring_loop *l, struct uring_close *c)
{
	zio__uring_ms_detach_closed(l, c->ms, c->ent);
	if (c->op.fd < 0) {
		close_free(c);
		return;
	}
	struct io_uring_sqe *sqe = zio__uring_sqe(l);
	io_uring_prep_cancel_fd(sqe, c->op.fd, IORING_ASYNC_CANCEL_ALL);
	l->base.fd_cancels++;
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | TAG_CLOSE);
	c->next = l->closing;
	l->closing = c;
}

/* The requests a cancel ended complete in deferred task work, run when
 * the ring is next entered for events: until then they hold the file (a
 * listener's address stays taken after the close). For a closer who
 * waits for the file's end, that is now. On the ring's thread. */
static void run_cancelled(struct uring_loop *l)
{
	io_uring_get_events(&l->ring);
}

static void close_done(struct uring_loop *l, struct uring_close *c)
{
	struct uring_close **pp = &l->closing;
	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	if (atomic_load_explicit(&c->closer, memory_order_relaxed))
		run_cancelled(l);
	close_free(c);
}

/* Hands op to l's thread, for its next poll (take_remote). */
static void push_remote(struct uring_loop *l, struct zio__op *op)
{
	struct zio__op *old = atomic_load_explicit(&l->remote, memory_order_relaxed);
	do {
		op->next = old;
	} while (!atomic_compare_exchange_weak_explicit(&l->remote, &old, op, memory_order_release,
							memory_order_relaxed));
	zio__loop_wake(l->base.exec);
}

/* Queues fd's close for l's thread and, while l's executor runs, waits
 * for it; false (nothing queued) if memory or a spare number is short,
 * and the closer must wait for the cancel instead. */
static bool close_later(struct uring_loop *l, int fd)
{
	struct uring_close *c = malloc(sizeof(*c));
	if (!c)
		return false;
	int spare = fcntl(fd, F_DUPFD_CLOEXEC, fd);
	if (spare < 0 && errno != EBADF) {
		free(c); /* EMFILE */
		return false;
	}
	/* EBADF: closed behind zio's back, nothing to name the file by;
	 * the multishot state still goes. */
	*c = (struct uring_close){ .op = { .opcode = ZIO__OP_CANCEL_FD, .fd = spare }, .refs = 1 };
	c->ent = zio__fd_peek(fd);
	struct uring_ms *ms = c->ent ? atomic_load_explicit(&c->ent->ms, memory_order_acquire) : NULL;
	/* A state's first member is its loop, fixed for the memory's life. */
	if (ms && *(struct uring_loop *const *)ms == l)
		c->ms = ms;
	struct zio__exec *e = l->base.exec;
	if (!atomic_load(&e->driven)) {
		push_remote(l, &c->op);
		return true;
	}
	struct zio__parker *p = zio__parker_self();
	c->closer_gen = zio__park_prepare(p, ZIO__PARK_NOCANCEL);
	atomic_store_explicit(&c->closer, p, memory_order_relaxed);
	c->refs = 2;
	push_remote(l, &c->op);
	if (zio__park(p, zio__now() + ZIO__CLOSE_WAIT_MAX) != 0 &&
	    !atomic_exchange_explicit(&c->closer, NULL, memory_order_acq_rel)) {
		/* Out of time just as the ring took it to wake: its
		 * zio__unpark() (which finds the wait over) reads p until
		 * it returns. */
		for (unsigned i = 0; !atomic_load_explicit(&c->closer_left, memory_order_acquire); i++)
			zio__pause(i);
	}
	close_unref(c);
	return true;
}

/* Whether the calling plain thread is the one that drives l (executor 0's
 * ring, between zio_runtime_run() calls): then nobody else polls it, and
 * the closer may. */
static bool idle_driver(struct uring_loop *l)
{
	return !zio__exec_current() && !atomic_load(&l->base.exec->driven) &&
	       __atomic_load_n(&l->driver, __ATOMIC_RELAXED) == thread_serial();
}

static void ur_destroy(struct zio__loop *base)
{
	struct uring_loop *l = (struct uring_loop *)base;
	if ((l->ring.int_flags & 1u) && l->driver != thread_serial()) {
		/* Registered by an executor thread that has exited (which
		 * dropped the registration): unregistering here would hit
		 * this thread's table at the same index. liburing's flag for
		 * "ring fd registered" is bit 0 of int_flags. */
		l->ring.int_flags &= ~1u;
		l->ring.enter_ring_fd = l->ring.ring_fd;
	}
	io_uring_queue_exit(&l->ring);
	/* The ring is gone, and with it every request that could still
	 * write into the provided buffers, or hold a closed file open. */
	zio__uring_ms_destroy(l);
	while (l->closing) {
		struct uring_close *c = l->closing;
		l->closing = c->next;
		close_free(c);
	}
	struct zio__op *op = atomic_exchange(&l->remote, NULL);
	while (op) {
		struct zio__op *next = op->next;
		if (!op->parker) {
			close_free((struct uring_close *)op);
		} else {
			op->res = -ECANCELED;
			op->done = 1;
			zio__unpark(op->parker, op->gen, 0);
		}
		op = next;
	}
	close(l->wakefd);
	free(l);
}

struct io_uring_sqe *zio__uring_sqe(struct uring_loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
	while (zio__unlikely(!sqe)) {
		/* SQ full: hand what we have to the kernel. */
		int r = io_uring_submit(&l->ring);
		if (r < 0 && r != -EAGAIN && r != -EBUSY && r != -EINTR)
			zio__panic("io_uring_submit: %s", strerror(-r));
		sqe = io_uring_get_sqe(&l->ring);
		if (!sqe && (r == -EAGAIN || r == -EBUSY)) {
			/* CQ backlog: let completions drain (they are
			 * reaped by the next poll; the kernel keeps them). */
			io_uring_get_events(&l->ring);
		}
	}
	return sqe;
}

static void arm_wake(struct uring_loop *l)
{
	struct io_uring_sqe *sqe = zio__uring_sqe(l);
	io_uring_prep_poll_multishot(sqe, l->wakefd, POLLIN);
	io_uring_sqe_set_data64(sqe, TAG_WAKE);
	l->wake_armed = true;
}

/* First use on the executor's own thread. */
static void ensure_enabled(struct uring_loop *l)
{
	if (zio__likely(l->enabled && l->wake_armed && l->driver == thread_serial()))
		return;
	if (!l->enabled) {
		int r = enable_ring(&l->ring);
		if (r < 0)
			zio__panic("io_uring: enabling the ring: %s", strerror(-r));
		l->enabled = true;
	}
	if (l->driver != thread_serial()) {
		/* A SINGLE_ISSUER ring refuses every submission from another
		 * thread than its first. */
		if (l->driver && (l->flags & IORING_SETUP_SINGLE_ISSUER))
			zio__panic("io_uring: executor 0 is driven by one thread: call "
				   "zio_runtime_run() and zio_runtime_destroy() from the thread "
				   "that first ran the runtime (or use ZIO_BACKEND=epoll)");
		/* Atomic: a closing thread asks whether it is the driver. */
		__atomic_store_n(&l->driver, thread_serial(), __ATOMIC_RELAXED);
		/* Fewer fd lookups per enter; best effort. The registration
		 * is per thread, hence the tid for destroy(). */
		io_uring_register_ring_fd(&l->ring);
	}
	if (!l->wake_armed)
		arm_wake(l);
}

static bool ur_native(struct zio__loop *base, unsigned opcode)
{
	(void)base;
	return opcode < ZIO__OP_COUNT && native_op[opcode];
}

static inline unsigned len32(size_t n)
{
	return n > 0x7ffff000u ? 0x7ffff000u : (unsigned)n;
}

static void prep(struct io_uring_sqe *sqe, struct zio__op *op)
{
	int fd = op->fd;
	switch (op->opcode) {
	case ZIO__OP_NOP:
		io_uring_prep_nop(sqe);
		break;
	case ZIO__OP_READ:
	case ZIO__OP_FREAD:
	case ZIO__OP_PREAD:
		io_uring_prep_read(sqe, fd, op->u.rw.buf, len32(op->u.rw.len),
				   (uint64_t)op->u.rw.off);
		break;
	case ZIO__OP_WRITE:
	case ZIO__OP_FWRITE:
	case ZIO__OP_PWRITE:
		io_uring_prep_write(sqe, fd, op->u.rw.buf, len32(op->u.rw.len),
				    (uint64_t)op->u.rw.off);
		break;
	case ZIO__OP_READV:
		io_uring_prep_readv(sqe, fd, op->u.vec.iov, (unsigned)op->u.vec.iovcnt,
				    (uint64_t)op->u.vec.off);
		break;
	case ZIO__OP_WRITEV:
		io_uring_prep_writev(sqe, fd, op->u.vec.iov, (unsigned)op->u.vec.iovcnt,
				     (uint64_t)op->u.vec.off);
		break;
	case ZIO__OP_RECV:
		io_uring_prep_recv(sqe, fd, op->u.rw.buf, len32(op->u.rw.len), op->u.rw.flags);
		break;
	case ZIO__OP_SEND:
		io_uring_prep_send(sqe, fd, op->u.rw.buf, len32(op->u.rw.len),
				   op->u.rw.flags | MSG_NOSIGNAL);
		break;
	case ZIO__OP_RECVMSG:
		io_uring_prep_recvmsg(sqe, fd, op->u.msg.msg, (unsigned)op->u.msg.flags);
		break;
	case ZIO__OP_SENDMSG:
		io_uring_prep_sendmsg(sqe, fd, op->u.msg.msg,
				      (unsigned)op->u.msg.flags | MSG_NOSIGNAL);
		break;
	case ZIO__OP_ACCEPT:
		io_uring_prep_accept(sqe, fd, op->u.sa.addr, op->u.sa.addrlen, op->u.sa.flags);
		break;
	case ZIO__OP_CONNECT:
		io_uring_prep_connect(sqe, fd, op->u.sa.addr, op->u.sa.len);
		break;
	case ZIO__OP_POLL:
		io_uring_prep_poll_add(sqe, fd, (unsigned)op->u.poll.events);
		break;
	case ZIO__OP_CANCEL_FD:
		io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
		break;
	case ZIO__OP_FSYNC:
		io_uring_prep_fsync(sqe, fd, op->u.fsync.datasync ? IORING_FSYNC_DATASYNC : 0);
		break;
	case ZIO__OP_OPENAT:
		io_uring_prep_openat(sqe, op->u.path.dirfd, op->u.path.path, op->u.path.flags,
				     op->u.path.mode);
		break;
	case ZIO__OP_STATX:
		io_uring_prep_statx(sqe, op->u.path.dirfd, op->u.path.path, op->u.path.flags,
				    op->u.path.mode, op->u.path.stx);
		break;
	case ZIO__OP_RENAMEAT:
		io_uring_prep_renameat(sqe, op->u.path.dirfd, op->u.path.path, op->u.path.dirfd2,
				       op->u.path.path2, (unsigned)op->u.path.flags);
		break;
	case ZIO__OP_UNLINKAT:
		io_uring_prep_unlinkat(sqe, op->u.path.dirfd, op->u.path.path, op->u.path.flags);
		break;
	case ZIO__OP_MKDIRAT:
		io_uring_prep_mkdirat(sqe, op->u.path.dirfd, op->u.path.path, op->u.path.mode);
		break;
	case ZIO__OP_CLOSE:
		io_uring_prep_close(sqe, fd);
		break;
	default:
		zio__panic("io_uring: opcode %u has no SQE", op->opcode);
	}
}

static void ur_submit(struct zio__loop *base, struct zio__op *op)
{
	struct uring_loop *l = (struct uring_loop *)base;
	ensure_enabled(l);
	struct io_uring_sqe *sqe = zio__uring_fd_sqe(l);
	prep(sqe, op);
	if (op->opcode == ZIO__OP_CANCEL_FD)
		l->base.fd_cancels++;
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | TAG_OP);
}

static void ur_cancel(struct zio__loop *base, struct zio__op *op)
{
	struct uring_loop *l = (struct uring_loop *)base;
	struct io_uring_sqe *sqe = zio__uring_sqe(l);
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op | TAG_OP, 0);
	io_uring_sqe_set_data64(sqe, TAG_IGNORE);
}

static void complete(struct uring_loop *l, struct io_uring_cqe *cqe)
{
	uint64_t data = cqe->user_data;
	switch (data & TAG_MASK) {
	case TAG_OP: {
		struct zio__op *op = (struct zio__op *)(uintptr_t)data;
		/* A zio_close()'s cancel, ours or one handed here for want of
		 * a spare number: the file is let go before its closer goes
		 * on. (-ENOENT: it found nothing to end.) */
		if (op->opcode == ZIO__OP_CANCEL_FD && cqe->res > 0)
			run_cancelled(l);
		op->res = cqe->res;
		op->done = 1;
		/* The fiber is pinned here and parked; it reads op after
		 * resuming, on this thread. */
		zio__unpark(op->parker, op->gen, 0);
		break;
	}
	case TAG_MS:
		zio__uring_ms_complete(l, cqe);
		break;
	case TAG_CLOSE:
		close_done(l, (struct uring_close *)(uintptr_t)(data & ~TAG_MASK));
		break;
	case TAG_WAKE: {
		ssize_t r = read(l->wakefd, &l->wake_buf, sizeof(l->wake_buf));
		(void)r;
		if (!(cqe->flags & IORING_CQE_F_MORE))
			l->wake_armed = false;
		break;
	}
	default:
		break; /* cancels, liburing's own timeouts */
	}
}

/* What a CQE's completion reads first: its op or multishot state, or NULL
 * for the internal ones (wake, cancels, closes). */
static void *cqe_target(uint64_t data)
{
	uint64_t tag = data & TAG_MASK;
	if (data <= TAG_MASK || (tag != TAG_OP && tag != TAG_MS))
		return NULL;
	return (void *)(uintptr_t)(data & ~TAG_MASK);
}

/* The parker a CQE's completion will wake: an op's, or a multishot state's
 * first waiter. Not a closer's, which may wait on another executor. */
static struct zio__parker *cqe_waiter(uint64_t data, void *target)
{
	if ((data & TAG_MASK) == TAG_MS)
		return zio__uring_ms_warm(target);
	struct zio__op *op = target;
	return op->opcode == ZIO__OP_CANCEL_FD ? NULL : op->parker;
}

/* Each completion wakes a fiber whose memory the other connections have
 * long evicted: the request (an op on the fiber's stack, or a multishot
 * state), the fiber's first line (its parker) and the frames it pops when
 * it resumes. On x86 a wake is a locked instruction, which no later load
 * passes, so completed one at a time those misses queue up behind each
 * other (in the 1,000-connection echo benchmark, a sixth of the server's
 * user time sat on the one load in zio__unpark). Loading each level for
 * the whole batch first lets the misses of a level overlap. The waiters
 * are fibers of this executor, suspended, so their descriptors and saved
 * stack pointers hold still. Up to WARM_MAX: more would not stay in L1. */
#define WARM_MAX 32

static void warm_batch(struct uring_loop *l)
{
	uint64_t data[WARM_MAX];
	void *target[WARM_MAX];
	struct zio__parker *waiter[WARM_MAX];
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&l->ring, head, cqe)
	{
		if (n == WARM_MAX)
			break;
		data[n] = cqe->user_data;
		if ((target[n] = cqe_target(data[n])))
			__builtin_prefetch(target[n]);
		n++;
	}
	for (unsigned i = 0; i < n; i++)
		if ((waiter[i] = target[i] ? cqe_waiter(data[i], target[i]) : NULL))
			__builtin_prefetch(waiter[i]);
	for (unsigned i = 0; i < n; i++) {
		struct zio__fiber *f = waiter[i] ? zio__parker_fiber(waiter[i]) : NULL;
		if (f)
			zio__fiber_warm_frames(f);
	}
}

static int reap(struct uring_loop *l)
{
	warm_batch(l);
	int total = 0;
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&l->ring, head, cqe)
		{
			if (cqe->user_data != LIBURING_UDATA_TIMEOUT)
				complete(l, cqe);
			n++;
		}
		io_uring_cq_advance(&l->ring, n);
		total += (int)n;
		if (n == 0 || !io_uring_cq_has_overflow(&l->ring))
			break;
		/* Overflowed CQEs wait in the kernel: flush them in. */
		io_uring_get_events(&l->ring);
	}
	return total;
}

static void take_remote(struct uring_loop *l)
{
	if (!atomic_load_explicit(&l->remote, memory_order_relaxed))
		return;
	struct zio__op *op = atomic_exchange_explicit(&l->remote, NULL, memory_order_acquire);
	while (op) {
		struct zio__op *next = op->next;
		if (!op->parker) {
			close_start(l, (struct uring_close *)op);
		} else {
			/* A closer that waits: the number is still its file. */
			zio__uring_ms_detach(l, op->fd);
			ur_submit(&l->base, op);
		}
		op = next;
	}
}

/* Everything queued has reached the kernel: SQEs that named fds by number
 * have had them resolved (a closer waiting in await_submitted may go). */
static void fd_sqes_submitted(struct uring_loop *l)
{
	if (atomic_load_explicit(&l->fd_sqes_queued, memory_order_relaxed)) {
		atomic_store_explicit(&l->fd_sqes_queued, false, memory_order_release);
		atomic_fetch_add_explicit(&l->submits, 1, memory_order_release);
	}
}

static int ur_poll(struct zio__loop *base, int64_t timeout_ns)
{
	struct uring_loop *l = (struct uring_loop *)base;
	ensure_enabled(l);
	if (!l->wake_armed)
		arm_wake(l);
	take_remote(l);
	int r;
	if (timeout_ns == 0 || io_uring_cq_ready(&l->ring)) {
		/* Submit, run deferred task work, do not wait. */
		r = io_uring_submit_and_get_events(&l->ring);
	} else {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts, *tsp = NULL;
		if (timeout_ns > 0) {
			ts.tv_sec = timeout_ns / 1000000000;
			ts.tv_nsec = timeout_ns % 1000000000;
			tsp = &ts;
		}
		r = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, tsp, NULL);
	}
	/* Before the reap, which may queue cancels by user_data. */
	bool all_in = !io_uring_sq_ready(&l->ring);
	if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY)
		return r;
	int n = reap(l);
	if ((r == -EBUSY || r == -EAGAIN) && !all_in) {
		/* What a full CQ held back: the reap made room. */
		io_uring_submit(&l->ring);
		all_in = !io_uring_sq_ready(&l->ring);
	}
	if (all_in)
		fd_sqes_submitted(l);
	return n;
}

static void ur_wake(struct zio__loop *base)
{
	struct uring_loop *l = (struct uring_loop *)base;
	uint64_t one = 1;
	ssize_t r = write(l->wakefd, &one, sizeof(one));
	(void)r;
}

/* Waits until the ring has submitted the SQEs on fds it held when we
 * looked: they name fds by number, which the kernel resolves at
 * submission, and after our close() the number may name another file.
 * Requests a task queues again after the close has begun check for it
 * (zio__uring_closed_since); a new op that races the close is the
 * caller's race, as with close(2). An undriven ring submits nothing: its
 * last poll (zio_runtime_run's) left none queued, unless the kernel
 * refused them, and then waiting would be forever. */
static void await_submitted(struct uring_loop *l)
{
	/* Orders forget_fd()'s incarnation bump before the look (see
	 * zio__uring_closed_since). */
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(&l->fd_sqes_queued, memory_order_acquire))
		return;
	unsigned seen = atomic_load_explicit(&l->submits, memory_order_acquire);
	for (unsigned i = 0; atomic_load_explicit(&l->fd_sqes_queued, memory_order_acquire) &&
			     atomic_load_explicit(&l->submits, memory_order_acquire) == seen &&
			     atomic_load(&l->base.exec->driven);
	     i++) {
		/* Its next poll submits them (a ring asleep has, and counts
		 * when it wakes); wake it, again about every ms. Directly:
		 * zio__loop_wake() says nothing while the executor's last
		 * wake is pending, which it may be. */
		if (i == 0 || (i > ZIO__PAUSE_YIELDS && i % 20 == 0))
			ur_wake(&l->base);
		zio__pause(i);
	}
}

/* zio_close(fd), before the close(): ends every request this ring holds
 * on fd's file. A task on the ring's executor, or the ring's idle driver
 * thread, cancels them itself and waits; anyone else hands the file over
 * (close_later) and goes on, once the ring has submitted what it had
 * queued (await_submitted). */
static void ur_close_fd(struct zio__loop *base, int fd)
{
	struct uring_loop *l = (struct uring_loop *)base;
	struct zio__fiber *f = zio__fiber_current();
	bool ours = f ? base == f->exec->loop : idle_driver(l);
	if (!ours) {
		await_submitted(l);
		if (close_later(l, fd))
			return;
	}
	struct zio__parker *p = zio__parker_self();
	uint32_t pin = f ? f->flags & ZIO__FIBER_TEMP_PIN : 0;
	if (f)
		f->flags |= ZIO__FIBER_TEMP_PIN;
	struct zio__op op = { .opcode = ZIO__OP_CANCEL_FD, .fd = fd };
	op.parker = p;
	op.loop = base;
	op.gen = zio__park_prepare(p, ZIO__PARK_NOCANCEL);
	if (ours) {
		zio__uring_ms_detach(l, fd);
		ur_submit(base, &op);
	} else {
		/* Out of spare numbers: that ring submits the cancel at its
		 * next poll, and its CQE wakes us. */
		push_remote(l, &op);
	}
	if (!f && ours) {
		/* The idle driver: CQEs it reaps for others wake them as any
		 * plain thread would (their executor's inbox). */
		while (!op.done) {
			int r = ur_poll(base, -1);
			if (r < 0 && r != -EINTR)
				zio__panic("io_uring: poll failed: %s", strerror(-r));
		}
		zio__park_abandon(p);
		return;
	}
	for (;;) {
		zio__park(p, ZIO_FOREVER);
		if (f)
			f->flags |= ZIO__FIBER_TEMP_PIN;
		if (op.done)
			break;
		op.gen = zio__park_prepare(p, ZIO__PARK_NOCANCEL);
	}
	if (f)
		f->flags = (f->flags & ~ZIO__FIBER_TEMP_PIN) | pin;
}

static bool ur_closed_since(struct zio__loop *base, const struct zio__fd *ent, uint32_t incarnation)
{
	return zio__uring_closed_since((struct uring_loop *)base, ent, incarnation);
}

static void ur_stop(struct zio__loop *base)
{
	struct uring_loop *l = (struct uring_loop *)base;
	zio__uring_ms_stop(l);
	/* Closers that handed a file here and wait for this ring would wait
	 * out their bound: nobody drives it until the next run. They go on;
	 * the files are let go when it runs again, or is destroyed. (One
	 * that saw it driven a moment before still waits its bound.) */
	take_remote(l);
	for (struct uring_close *c = l->closing; c; c = c->next)
		close_let_go(c);
}

const struct zio__backend zio__backend_uring = {
	.name = "uring",
	.probe = ur_probe,
	.create = ur_create,
	.destroy = ur_destroy,
	.stop = ur_stop,
	.poll = ur_poll,
	.wake = ur_wake,
	.native = ur_native,
	.submit = ur_submit,
	.cancel = ur_cancel,
	.close_fd = ur_close_fd,
	.closed_since = ur_closed_since,
	.multishot = zio__uring_multishot,
};
