/*
 * io.c - the op helper every I/O call goes through, and the generic fd calls
 * (read, write, vectors, wait for readiness, close, pipes).
 *
 * zio__op_run(op, deadline) makes one syscall look blocking to the fiber:
 *
 *  - completion backend (io_uring) and an op it performs natively: pin the
 *    fiber to its executor, submit, park with the deadline. If the wait ends
 *    by timeout or cancellation, ask the kernel to cancel and wait, shielded
 *    and without a deadline, for the op's real completion: its memory is on
 *    this stack. If the op finished anyway its result is returned (bytes
 *    read are never lost, nor an error such as a reset, which the kernel
 *    reports once) and the cancellation stays pending, because it is
 *    sticky: the next suspension point reports it.
 *  - readiness backend (epoll, poll), or an op io_uring cannot do: try the
 *    syscall non-blocking; on EAGAIN arm a readiness wait and park; retry
 *    when woken. Timeout or cancellation unlinks the wait; nothing was
 *    consumed, so nothing is lost.
 *  - regular-file and path ops without native support go to the blocking
 *    pool (blocking.c).
 *  - a plain thread outside any runtime performs the call itself: the
 *    syscall, then poll() with the deadline, then the syscall again; but a
 *    read of a socket whose input an io_uring multishot request takes in
 *    is made by a task of that request's runtime (run_in_owner), and a
 *    blocking socket's connect waits on the pool, as a task's does.
 *
 * Deadlines: ZIO_FOREVER, an absolute CLOCK_MONOTONIC time, or 0, which
 * means "try once": a stream op that would have to wait returns -EAGAIN.
 * Deadline scopes (zio_timeout_begin) apply through zio__park().
 *
 * Non-blocking attempts on fds zio did not create, whose O_NONBLOCK is
 * neither changed (the file description may be shared) nor trusted (its
 * sharers may change it): sockets get MSG_DONTWAIT; pipes and devices are
 * read and written with RWF_NOWAIT, or, where a file cannot (ttys), polled
 * before the call. A connect on such a socket in blocking mode runs on the
 * pool. The kind of an fd is learned once (fstat) and cached in the fd
 * table until zio_close(); zio's own descriptors are recorded at creation.
 */
#include "backend.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_RW 0x7ffff000u /* what Linux transfers in one call at most */
#define OP_BUDGET 128u     /* ops a task makes without a switch before it yields */

static inline size_t clamp_len(size_t n)
{
	return n > MAX_RW ? MAX_RW : n;
}

ssize_t zio__op_syscall(struct zio__op *op)
{
	ssize_t r;
	int fd = op->fd;
	switch (op->opcode) {
	case ZIO__OP_NOP:
		r = 0;
		break;
	case ZIO__OP_READ:
	case ZIO__OP_FREAD:
	case ZIO__OP_PREAD:
		r = op->u.rw.off < 0 ? read(fd, op->u.rw.buf, op->u.rw.len)
				     : pread(fd, op->u.rw.buf, op->u.rw.len, op->u.rw.off);
		break;
	case ZIO__OP_WRITE:
	case ZIO__OP_FWRITE:
	case ZIO__OP_PWRITE:
		r = op->u.rw.off < 0 ? write(fd, op->u.rw.buf, op->u.rw.len)
				     : pwrite(fd, op->u.rw.buf, op->u.rw.len, op->u.rw.off);
		break;
	case ZIO__OP_READV:
		r = op->u.vec.off < 0 ? readv(fd, op->u.vec.iov, op->u.vec.iovcnt)
				      : preadv(fd, op->u.vec.iov, op->u.vec.iovcnt, op->u.vec.off);
		break;
	case ZIO__OP_WRITEV:
		r = op->u.vec.off < 0 ? writev(fd, op->u.vec.iov, op->u.vec.iovcnt)
				      : pwritev(fd, op->u.vec.iov, op->u.vec.iovcnt, op->u.vec.off);
		break;
	/* Socket calls never block, whatever the socket's mode: a number
	 * closed behind zio's back and reused by a blocking socket would hold
	 * the executor (its cached kind says "non-blocking"). */
	case ZIO__OP_RECV:
		r = recv(fd, op->u.rw.buf, op->u.rw.len, op->u.rw.flags | MSG_DONTWAIT);
		break;
	case ZIO__OP_SEND:
		r = send(fd, op->u.rw.buf, op->u.rw.len, op->u.rw.flags | MSG_DONTWAIT | MSG_NOSIGNAL);
		break;
	case ZIO__OP_RECVMSG:
		r = recvmsg(fd, op->u.msg.msg, op->u.msg.flags | MSG_DONTWAIT);
		break;
	case ZIO__OP_SENDMSG:
		r = sendmsg(fd, op->u.msg.msg, op->u.msg.flags | MSG_DONTWAIT | MSG_NOSIGNAL);
		break;
	case ZIO__OP_ACCEPT:
		r = accept4(fd, op->u.sa.addr, op->u.sa.addrlen, op->u.sa.flags);
		break;
	case ZIO__OP_CONNECT:
		r = connect(fd, op->u.sa.addr, op->u.sa.len);
		break;
	case ZIO__OP_POLL: {
		struct pollfd p = { .fd = fd, .events = op->u.poll.events };
		r = poll(&p, 1, 0);
		if (r > 0)
			return p.revents & POLLNVAL ? -EBADF : p.revents;
		else if (r == 0)
			return -EAGAIN;
		break;
	}
	case ZIO__OP_FSYNC:
		r = op->u.fsync.datasync ? fdatasync(fd) : fsync(fd);
		break;
	case ZIO__OP_OPENAT:
		r = openat(op->u.path.dirfd, op->u.path.path, op->u.path.flags, op->u.path.mode);
		break;
	case ZIO__OP_STATX:
		r = statx(op->u.path.dirfd, op->u.path.path, op->u.path.flags, op->u.path.mode,
			  op->u.path.stx);
		break;
	case ZIO__OP_RENAMEAT:
		r = renameat2(op->u.path.dirfd, op->u.path.path, op->u.path.dirfd2, op->u.path.path2,
			      (unsigned)op->u.path.flags);
		break;
	case ZIO__OP_UNLINKAT:
		r = unlinkat(op->u.path.dirfd, op->u.path.path, op->u.path.flags);
		break;
	case ZIO__OP_MKDIRAT:
		r = mkdirat(op->u.path.dirfd, op->u.path.path, op->u.path.mode);
		break;
	case ZIO__OP_CLOSE:
		r = close(fd);
		break;
	default:
		return -EINVAL;
	}
	return r < 0 ? -errno : r;
}

/* ------------------------------------------------------------- fd kinds */

int zio__fd_kind(int fd, struct zio__fd *ent)
{
	int k = ent ? __atomic_load_n(&ent->kind, __ATOMIC_RELAXED) : ZIO__FD_UNKNOWN;
	if (k != ZIO__FD_UNKNOWN)
		return k;
	/* What fstat() says is remembered only for the file the number named
	 * throughout: not during a zio_close() (whose forget_fd() cleared the
	 * entry, and whose next file would inherit the old one's kind), nor
	 * across one (the incarnation moved), nor over a file zio made
	 * meanwhile (its kind is already set). */
	uint32_t incarnation = ent ? __atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE) : 0;
	bool keep = ent && !zio__epfd_closing(__atomic_load_n(&ent->owner_epfd, __ATOMIC_ACQUIRE));
	/* A file zio did not create: its O_NONBLOCK is not relied on, as
	 * whoever shares the description may change it (a shell, or a child
	 * sharing a tty or pipe, clears it), and then a plain read(2) would
	 * hold the executor. Each try asks for no wait itself instead. */
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode))
		k = ZIO__FD_REGULAR;
	else if (S_ISSOCK(st.st_mode))
		k = ZIO__FD_SOCKET;
	else
		k = ZIO__FD_BLOCKING;
	if (keep) {
		uint8_t traits = 0;
		if (S_ISSOCK(st.st_mode)) {
			int type = 0;
			socklen_t tl = sizeof(type);
			bool dgram = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
				     type == SOCK_DGRAM;
			traits = (uint8_t)(ZIO__FD_SOCK | (dgram ? ZIO__FD_DGRAM : 0));
		}
		/* (forget_fd() bumps the incarnation and sets the mark under
		 * this lock.) */
		zio__spin_lock(&ent->lock);
		if (ent->incarnation == incarnation && !zio__epfd_closing(ent->owner_epfd) &&
		    ent->kind == ZIO__FD_UNKNOWN) {
			__atomic_or_fetch(&ent->traits, traits, __ATOMIC_RELAXED);
			__atomic_store_n(&ent->kind, (uint8_t)k, __ATOMIC_RELAXED);
		}
		zio__spin_unlock(&ent->lock);
	}
	return k;
}

static inline int op_dir(const struct zio__op *op)
{
	switch (op->opcode) {
	case ZIO__OP_WRITE:
	case ZIO__OP_WRITEV:
	case ZIO__OP_SEND:
	case ZIO__OP_SENDMSG:
	case ZIO__OP_CONNECT:
		return ZIO__DIR_WRITE;
	case ZIO__OP_POLL: /* urgent data and the peer's shutdown are on the read side */
		return (op->u.poll.events & (POLLIN | POLLRDHUP)) || !(op->u.poll.events & POLLOUT)
			       ? ZIO__DIR_READ
			       : ZIO__DIR_WRITE;
	default:
		return ZIO__DIR_READ;
	}
}

/* A send on a datagram socket: refused when the receiver is full, which
 * readiness does not always tell (see ready_run()). */
static inline bool dgram_send(const struct zio__op *op, struct zio__fd *ent)
{
	return ent && op_dir(op) == ZIO__DIR_WRITE && op->opcode != ZIO__OP_CONNECT &&
	       (__atomic_load_n(&ent->traits, __ATOMIC_RELAXED) & ZIO__FD_DGRAM);
}

/* A send io_uring is not given: it waits for room by readiness and is
 * tried again. On a datagram socket the kernel's Unix datagram send takes
 * the payload in before it says EAGAIN, and the ring's retry of it sent an
 * empty datagram. On any socket but TCP's: a Unix stream send the ring
 * retried after its poll and still found no room (other writers took it)
 * goes to io_uring's worker thread, which said -EAGAIN to a call that
 * waits, or blocked in the kernel past the request's cancel and the fd's
 * close (found by a stress test with several writers per socket). */
static inline bool send_by_readiness(const struct zio__op *op, struct zio__fd *ent)
{
	return ent && op_dir(op) == ZIO__DIR_WRITE && op->opcode != ZIO__OP_CONNECT &&
	       (__atomic_load_n(&ent->traits, __ATOMIC_RELAXED) & (ZIO__FD_SOCK | ZIO__FD_TCP)) ==
		       ZIO__FD_SOCK;
}

static bool poll_now(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	return poll(&p, 1, 0) > 0;
}

/* The MSG_* flags a socket op carries (read, write and their vectors:
 * none). */
static int msg_flags_of(const struct zio__op *op)
{
	switch (op->opcode) {
	case ZIO__OP_RECV:
	case ZIO__OP_SEND:
		return op->u.rw.flags;
	case ZIO__OP_RECVMSG:
	case ZIO__OP_SENDMSG:
		return op->u.msg.flags;
	default:
		return 0;
	}
}

/* A socket shut down for reading, in the middle of a receive that found
 * nothing: a datagram socket says EAGAIN, not 0, though poll reports
 * POLLIN|POLLRDHUP (a blocking recv(2) returns 0), so the receive would
 * wait, or spin, for good. Its end of input is 0. (A byte stream's
 * receive says 0 itself.) */
static bool input_shut_down(const struct zio__op *op)
{
	switch (op->opcode) {
	case ZIO__OP_READ:
	case ZIO__OP_READV:
	case ZIO__OP_RECV:
	case ZIO__OP_RECVMSG:
		break;
	default:
		return false;
	}
	struct pollfd p = { .fd = op->fd, .events = POLLRDHUP };
	return poll(&p, 1, 0) > 0 && (p.revents & POLLRDHUP);
}

/* A connect on a socket zio did not create that is in blocking mode now:
 * connect(2) would wait for the handshake (for minutes). */
static bool connect_blocks(const struct zio__op *op, int kind)
{
	if (op->opcode != ZIO__OP_CONNECT || kind != ZIO__FD_SOCKET)
		return false;
	int fl = fcntl(op->fd, F_GETFL);
	return fl >= 0 && !(fl & O_NONBLOCK);
}

/* A connect's EAGAIN, unlike its EINPROGRESS, is a Unix listener's full
 * backlog: nothing about this socket will become ready when it has room,
 * so it is not waited for here but retried by zio_connect(). */
#define CONNECT_BACKLOG_FULL 2

/* POLLOUT on a blocking pipe or tty promises room for PIPE_BUF bytes, not
 * for a whole large write, which would then block the executor until a
 * reader drained the rest. A write to one is cut to PIPE_BUF bytes (the
 * first buffer of a writev): a short write, as a non-blocking fd gives.
 * Fills *o (and *first) and returns true if op needed cutting. */
static bool write_room_bound(const struct zio__op *op, struct zio__op *o, struct iovec *first)
{
	if (op->opcode == ZIO__OP_WRITE || op->opcode == ZIO__OP_SEND) {
		if (op->u.rw.len <= PIPE_BUF)
			return false;
		*o = *op;
		o->u.rw.len = PIPE_BUF;
		return true;
	}
	if (op->opcode != ZIO__OP_WRITEV)
		return false;
	size_t total = 0;
	for (int i = 0; i < op->u.vec.iovcnt && total <= PIPE_BUF; i++)
		total += op->u.vec.iov[i].iov_len;
	if (total <= PIPE_BUF)
		return false;
	int i = 0;
	while (op->u.vec.iov[i].iov_len == 0)
		i++;
	*first = op->u.vec.iov[i];
	if (first->iov_len > PIPE_BUF)
		first->iov_len = PIPE_BUF;
	*o = *op;
	o->u.vec.iov = first;
	o->u.vec.iovcnt = 1;
	return true;
}

int zio__connect_finish(int fd, const struct sockaddr *addr, socklen_t len)
{
	int err = 0;
	socklen_t elen = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		return -errno;
	/* connect(2) once more leaves the socket as a blocking connect
	 * would: connected (a later connect says EISCONN; left "connecting",
	 * it said 0 again) or, after a failure, unconnected (a later connect
	 * starts afresh). With the error taken (SO_ERROR), it starts nothing:
	 * the socket is still "connecting". Without, it says how it ended:
	 * 0, or the error another caller's SO_ERROR took (ECONNABORTED). */
	int r = connect(fd, addr, len) < 0 ? -errno : 0;
	if (err)
		return -err;
	return r == -EISCONN ? 0 : r == -EALREADY ? -EAGAIN : r;
}

/* try_op() of a connect. */
static ssize_t try_connect(struct zio__op *op)
{
	if (op->state == 0) {
		ssize_t r = zio__op_syscall(op);
		if (r == -EINPROGRESS) {
			op->state = 1;
			return -EAGAIN;
		}
		if (r == -EAGAIN)
			op->state = CONNECT_BACKLOG_FULL;
		return r;
	}
	/* In progress: done once writable. */
	if (!poll_now(op->fd, POLLOUT))
		return -EAGAIN;
	int r = zio__connect_finish(op->fd, op->u.sa.addr, op->u.sa.len);
	return r == -EINPROGRESS ? -EAGAIN : r; /* a new attempt: wait on */
}

/* A read or write at the position of a pipe, tty or device zio did not
 * create, with RWF_NOWAIT: one call that cannot block whatever the
 * description's O_NONBLOCK says, and no poll before it, which another
 * reader could make stale (the data taken between the poll and the read,
 * which then blocked). -EOPNOTSUPP where the file or kernel cannot do it
 * (ttys, timerfds; before Linux 5.9 for pipes), remembered per fd. */
static ssize_t rw_nowait(struct zio__op *op)
{
	struct zio__fd *ent = zio__fd_peek(op->fd);
	if (ent && (__atomic_load_n(&ent->traits, __ATOMIC_RELAXED) & ZIO__FD_NO_NOWAIT))
		return -EOPNOTSUPP;
	struct iovec one;
	const struct iovec *iov;
	int n;
	bool write;
	switch (op->opcode) {
	case ZIO__OP_READ:
	case ZIO__OP_WRITE:
		if (op->u.rw.off >= 0)
			return -EOPNOTSUPP;
		one.iov_base = op->u.rw.buf;
		one.iov_len = op->u.rw.len;
		iov = &one;
		n = 1;
		write = op->opcode == ZIO__OP_WRITE;
		break;
	case ZIO__OP_READV:
	case ZIO__OP_WRITEV:
		if (op->u.vec.off >= 0)
			return -EOPNOTSUPP;
		iov = op->u.vec.iov;
		n = op->u.vec.iovcnt;
		write = op->opcode == ZIO__OP_WRITEV;
		break;
	default:
		return -EOPNOTSUPP;
	}
	ssize_t r = write ? pwritev2(op->fd, iov, n, -1, RWF_NOWAIT)
			  : preadv2(op->fd, iov, n, -1, RWF_NOWAIT);
	if (r >= 0)
		return r;
	r = -errno;
	if (r == -EOPNOTSUPP && ent)
		__atomic_or_fetch(&ent->traits, (uint8_t)ZIO__FD_NO_NOWAIT, __ATOMIC_RELAXED);
	/* EINVAL: the call's own error (an eventfd read under 8 bytes), or a
	 * kernel without RWF_NOWAIT; the plain call tells which. */
	if (r == -EOPNOTSUPP || r == -EINVAL)
		return -EOPNOTSUPP;
	return r == -EWOULDBLOCK ? -EAGAIN : r;
}

/* try_op() on an fd zio did not create (whose O_NONBLOCK is not ours to
 * set or to trust): its copies of op stay out of the frame of the usual
 * try. */
static __attribute__((noinline)) ssize_t try_blocking(struct zio__op *op, int kind)
{
	if (kind == ZIO__FD_SOCKET) {
		/* A socket: its read and write as recv and send, which
		 * zio__op_syscall() makes MSG_DONTWAIT: one call that cannot
		 * block, without touching the shared description. */
		struct zio__op o = *op;
		switch (op->opcode) {
		case ZIO__OP_READ:
		case ZIO__OP_WRITE:
			o.opcode = op->opcode == ZIO__OP_READ ? ZIO__OP_RECV : ZIO__OP_SEND;
			o.u.rw.flags = 0;
			return zio__op_syscall(&o);
		case ZIO__OP_READV:
		case ZIO__OP_WRITEV: {
			struct msghdr m = { .msg_iov = (struct iovec *)op->u.vec.iov,
					    .msg_iovlen = (size_t)op->u.vec.iovcnt };
			o.opcode = op->opcode == ZIO__OP_READV ? ZIO__OP_RECVMSG : ZIO__OP_SENDMSG;
			o.u.msg.msg = &m;
			o.u.msg.flags = 0;
			return zio__op_syscall(&o);
		}
		case ZIO__OP_RECV:
		case ZIO__OP_SEND:
		case ZIO__OP_RECVMSG:
		case ZIO__OP_SENDMSG:
			return zio__op_syscall(op);
		default:
			break; /* accept, poll: poll first, below */
		}
	} else {
		ssize_t r = rw_nowait(op);
		if (r != -EOPNOTSUPP)
			return r;
	}
	/* Without RWF_NOWAIT: poll first, and a write no larger than the room
	 * poll promises. */
	if (op->opcode != ZIO__OP_POLL &&
	    !poll_now(op->fd, op_dir(op) == ZIO__DIR_READ ? POLLIN : POLLOUT))
		return -EAGAIN;
	struct zio__op capped;
	struct iovec first;
	if (write_room_bound(op, &capped, &first))
		op = &capped;
	ssize_t r = zio__op_syscall(op);
	return r == -EWOULDBLOCK ? -EAGAIN : r;
}

/* One non-blocking attempt; -EAGAIN if it would have to wait. */
static ssize_t try_op(struct zio__op *op, int kind)
{
	if (op->opcode == ZIO__OP_CONNECT)
		return try_connect(op);
	if (kind == ZIO__FD_SOCKET || kind == ZIO__FD_BLOCKING)
		return try_blocking(op, kind);
	ssize_t r = zio__op_syscall(op);
	return r == -EWOULDBLOCK ? -EAGAIN : r;
}

/* ---------------------------------------------------- plain threads */

struct op_task {
	struct zio__op *op;
	int64_t deadline;
	ssize_t result;
	atomic_bool done; /* result is set; the task touches nothing more */
};

static void *run_op_task(void *arg)
{
	struct op_task *t = arg;
	t->result = zio__op_run(t->op, t->deadline);
	atomic_store_explicit(&t->done, true, memory_order_release);
	return NULL;
}

/* A read, accept or readiness wait on a socket whose input an io_uring
 * multishot request takes in, from a plain thread or a task of another
 * runtime: only the loop that owns the request may take from its queue,
 * and a read(2) of its own would overtake it. So the call is made by a
 * task of the owner's runtime, one try at a time: a task that waited in
 * the request's state would keep it there (executor 0 keeps a state a task
 * waits in when it stops, and would hold the caller until it ran again).
 * Between tries the caller sleeps, pauses growing to 10 ms; once no state
 * serves the socket, it is read as any other (-EOPNOTSUPP). A plain thread
 * that ran executor 0, stopped now, runs it again for the call instead;
 * another has nobody to ask. */
static ssize_t run_in_owner(struct zio__op *op, struct zio__fd *ent, int64_t deadline)
{
	struct op_task t = { .op = op };
	int64_t pause = ZIO_USEC(100);
	for (;;) {
		void *ms = atomic_load_explicit(&ent->ms, memory_order_acquire);
		if (!ms)
			return -EOPNOTSUPP;
		struct zio__exec *owner = (*(struct zio__loop *const *)ms)->exec;
		zio__runtime *rt = owner->rt;
		struct zio__fiber *self = zio__fiber_current();
		if (self && self->rt == rt)
			return -EOPNOTSUPP; /* its own: multishot() serves it, or will not */
		ssize_t r;
		int err;
		if (owner->id == 0 && !atomic_load(&owner->driven)) {
			/* Executor 0, stopped: the thread that ran it runs it
			 * for the call; anyone else waits for it to run again
			 * (what it took in is read there, zio.h). */
			if (!self && zio__runtime_idle_here() == rt) {
				t.deadline = deadline;
				err = zio_runtime_run(rt, run_op_task, &t, NULL);
				return err ? err : t.result;
			}
			r = -EAGAIN;
		} else {
			t.deadline = 0;
			t.result = -ECANCELED;
			atomic_store_explicit(&t.done, false, memory_order_relaxed);
			if (self) {
				/* A task of another runtime looks for the result
				 * instead of being woken: the waker, on the
				 * other runtime's thread, would touch this
				 * runtime's executor after the push, when this
				 * runtime may be gone. Shielded: the op is on
				 * this stack until the try is done (a cancel
				 * stays pending). */
				if ((err = zio_spawn(rt, NULL, run_op_task, &t, NULL)))
					return err;
				zio_shield_begin();
				for (int64_t nap = ZIO_USEC(10);
				     !atomic_load_explicit(&t.done, memory_order_acquire);
				     nap = nap * 2 > ZIO_MSEC(1) ? ZIO_MSEC(1) : nap * 2)
					zio_sleep(nap);
				zio_shield_end();
				err = 0;
			} else {
				zio_task *task;
				if ((err = zio_spawn(rt, &task, run_op_task, &t, NULL)))
					return err;
				err = zio_task_join(task, NULL);
			}
			/* What the try took is the caller's. */
			if (t.result >= 0)
				return t.result;
			if (err < 0)
				return err;
			r = t.result;
		}
		if (r != -EAGAIN || deadline == 0)
			return r;
		if ((err = zio__backoff(&pause, ZIO_MSEC(10), deadline)) < 0)
			return err;
	}
}

/* At the position of a pipe, tty or socket, a file read or write is a
 * stream's: deadline, multishot queue, readiness. (An fd that cannot be
 * told stays a file op, which then says what is wrong.) */
static void file_rw_as_stream(struct zio__op *op, struct zio__fd *ent)
{
	if (op->opcode != ZIO__OP_FREAD && op->opcode != ZIO__OP_FWRITE)
		return;
	int kind = zio__fd_kind(op->fd, ent);
	if (kind > ZIO__FD_UNKNOWN && kind != ZIO__FD_REGULAR)
		op->opcode = op->opcode == ZIO__OP_FREAD ? ZIO__OP_READ : ZIO__OP_WRITE;
}

static ssize_t thread_run(struct zio__op *op, int64_t deadline)
{
	zio__sigpipe_once(); /* no runtime need ever have been created */
	file_rw_as_stream(op, zio__fd_get(op->fd));
	if (zio__op_is_file(op->opcode) || op->opcode == ZIO__OP_CANCEL_FD)
		return op->opcode == ZIO__OP_CANCEL_FD ? 0 : zio__op_syscall(op);
	struct zio__fd *ent = zio__fd_get(op->fd);
	if (ent && atomic_load_explicit(&ent->ms, memory_order_relaxed) && op_dir(op) == ZIO__DIR_READ) {
		ssize_t r = run_in_owner(op, ent, deadline);
		if (r != -EOPNOTSUPP)
			return r;
	}
	int kind = zio__fd_kind(op->fd, ent);
	if (kind < 0)
		return kind;
	if (kind == ZIO__FD_REGULAR && op->opcode != ZIO__OP_POLL)
		return zio__op_syscall(op);
	/* A blocking socket's connect waits on the pool, where the deadline
	 * and a zio_close() can cut it short (SYN retries take minutes). */
	if (connect_blocks(op, kind))
		return zio__blocking_op(op, deadline);
	short ev = op->opcode == ZIO__OP_POLL ? op->u.poll.events
					      : (op_dir(op) == ZIO__DIR_READ ? POLLIN : POLLOUT);
	/* As in ready_run(): ppoll is level-triggered, so a socket kept
	 * "ready" by what the op cannot take (an error queue's POLLERR, an
	 * unconnected datagram send's full receiver) is retried after a
	 * growing pause, not at once. */
	bool woke = false;
	unsigned refused = 0, pause_after = dgram_send(op, ent) ? 1 : 2;
	int64_t pause = ZIO_USEC(50);
	/* As in ready_run(): a zio_close() of fd during a wait, and a new
	 * file under its number, must not get the retry. */
	uint32_t incarnation = ent ? __atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE) : 0;
	for (;;) {
		if (ent && zio__fd_replaced(ent, incarnation))
			return -EBADF;
		ssize_t r = try_op(op, kind);
		if (r != -EAGAIN || op->state == CONNECT_BACKLOG_FULL)
			return r;
		if (woke && input_shut_down(op))
			return 0;
		if (deadline == 0)
			return -EAGAIN;
		if (woke && ++refused >= pause_after) {
			int w = zio__backoff(&pause, ZIO_MSEC(10), deadline);
			if (w)
				return w;
			woke = false;
			continue;
		}
		struct timespec ts, *tsp = NULL;
		if (deadline != ZIO_FOREVER) {
			int64_t now = zio__now();
			if (deadline <= now) /* (before subtracting: INT64_MIN) */
				return -ETIMEDOUT;
			int64_t left = deadline - now;
			ts.tv_sec = left / 1000000000;
			ts.tv_nsec = left % 1000000000;
			tsp = &ts;
		}
		struct pollfd p = { .fd = op->fd, .events = ev };
		int n = ppoll(&p, 1, tsp, NULL);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0 && (p.revents & POLLNVAL))
			return -EBADF;
		/* A wait's events are its answer: some (a mount table's
		 * change) are reported to one poll only. */
		if (n > 0 && op->opcode == ZIO__OP_POLL && (p.revents & (ev | POLLERR | POLLHUP)))
			return p.revents & (ev | POLLERR | POLLHUP);
		woke = n > 0;
	}
}

/* ------------------------------------------------------------ fibers */

#define PIN ZIO__FIBER_TEMP_PIN

/* An op interrupted in the kernel: EINTR, or the "restart" codes that a
 * blocking call io_uring's worker made posts as they are when a cancel
 * interrupts it (ERESTARTSYS 512, ERESTARTNOINTR 513, ERESTARTNOHAND 514,
 * ERESTART_RESTARTBLOCK 516; not 515, ENOIOCTLCMD). */
static inline bool interrupted(int64_t res)
{
	return res == -EINTR || res == -512 || res == -513 || res == -514 || res == -516;
}

/* Completion path: the backend performs op. Inlined into zio__op_run: one
 * stack frame less to bring back into the cache at every resume. */
static inline __attribute__((always_inline)) ssize_t
native_run(struct zio__loop *l, struct zio__fiber *f, struct zio__op *op, int64_t deadline)
{
	uint32_t pin = f->flags & PIN;
	ssize_t r;
	f->flags |= PIN;
	op->loop = l;
	op->parker = &f->park;
	/* Which file op->fd names now: a cancel we did not ask for is
	 * zio_close(), of this fd or of another that shares its file (a
	 * dup: the kernel cancels by file), and only the first is ours. */
	struct zio__fd *ent = zio__fd_peek(op->fd);
	uint32_t incarnation = ent ? __atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE) : 0;
again:
	op->done = 0;
	uint32_t fd_cancels = l->fd_cancels;
	/* Submit before arming the wait: nothing completes before this
	 * executor polls, which is after we have parked. */
	l->ops->submit(l, op);
	op->gen = zio__park_prepare(&f->park, 0);
	int w = zio__park(&f->park, deadline);
	f->flags |= PIN; /* zio__park drops it after a timed wait */
	if (op->done) {
		r = op->res;
		/* Interrupted, or cancelled without our asking: zio_close()
		 * on another fiber, of this fd or of a dup of it, which leaves
		 * ours open. Again, unless ours was closed. With no close on
		 * this ring since the submit, -ECANCELED is the call's own. */
		if (interrupted(r) || (r == -ECANCELED && l->fd_cancels != fd_cancels)) {
			bool closed = ent ? l->ops->closed_since(l, ent, incarnation)
					  : r == -ECANCELED;
			if (!closed)
				goto again;
			r = -EBADF;
		} else if (op->opcode == ZIO__OP_POLL && ent && zio__fd_replaced(ent, incarnation)) {
			r = -EBADF; /* events of a file the number no longer names */
		}
	} else {
		l->ops->cancel(l, op);
		f->shield++;
		while (!op->done) {
			op->gen = zio__park_prepare(&f->park, ZIO__PARK_NOCANCEL);
			zio__park(&f->park, ZIO_FOREVER);
			f->flags |= PIN;
		}
		f->shield--;
		/* Finished anyway: its bytes, or its own error (a reset the
		 * kernel reports once), are the answer. -ECANCELED and -EINTR
		 * (or a restart code) are our cancel's doing. */
		r = op->res == -ECANCELED || interrupted(op->res) ? w : op->res;
	}
	f->flags = (f->flags & ~PIN) | pin;
	return r;
}

/* Waits until op's fd may be ready in op's direction, or the wait ends.
 * Returns 0 (retry), the events seen (a POLL op on epoll or poll), or the
 * wait's error. */
static int wait_ready(struct zio__loop *l, struct zio__fiber *f, struct zio__op *op,
		      int64_t deadline)
{
	if (l->ops->native) {
		/* io_uring without native support for op: a one-shot poll. */
		struct zio__op p = { .opcode = ZIO__OP_POLL, .fd = op->fd };
		p.u.poll.events = op->opcode == ZIO__OP_POLL ? op->u.poll.events
			: (op->dir == ZIO__DIR_READ ? POLLIN : POLLOUT);
		ssize_t r = native_run(l, f, &p, deadline);
		return r < 0 ? (int)r : 0;
	}
	op->loop = l;
	op->parker = &f->park;
	/* Arm before publishing: another executor's epoll may wake us as
	 * soon as the op is on the fd's list. */
	op->gen = zio__park_prepare(&f->park, 0);
	l->ops->submit(l, op);
	int w = zio__park(&f->park, deadline);
	f->flags |= PIN;
	/* Also when woken "ready" while still on the poll backend's list:
	 * by an epoll runtime's edge on the same fd (every waiter of an fd is
	 * woken), not by our loop, which takes it off first. */
	if (w != 0 || op->in_loop)
		l->ops->cancel(l, op);
	return w;
}

/* A read that consumes what it sees of a byte stream: after EAGAIN, or
 * a short read, the stream was empty. Not MSG_PEEK (consumes nothing),
 * MSG_OOB or MSG_ERRQUEUE (other queues than the stream's). */
#define NOT_STREAM_READ (MSG_PEEK | MSG_OOB | MSG_ERRQUEUE)
static inline bool drains(const struct zio__op *op)
{
	switch (op->opcode) {
	case ZIO__OP_READ:
		return op->u.rw.off < 0;
	case ZIO__OP_READV:
		return op->u.vec.off < 0;
	case ZIO__OP_RECV:
		return !(op->u.rw.flags & NOT_STREAM_READ);
	case ZIO__OP_RECVMSG:
		return !(op->u.msg.flags & NOT_STREAM_READ);
	default:
		return false;
	}
}

/* Records whether the read that just returned r left the stream empty as
 * of op->seq (loaded before it). EOF and errors are not "empty": no edge
 * would end a wait for them. */
static inline void note_empty(struct zio__fd *ent, const struct zio__op *op, ssize_t r)
{
	bool empty = r == -EAGAIN ||
		     (r > 0 && (op->opcode == ZIO__OP_READ || op->opcode == ZIO__OP_RECV) &&
		      (size_t)r < op->u.rw.len &&
		      (__atomic_load_n(&ent->traits, __ATOMIC_RELAXED) & ZIO__FD_DRAINS));
	uint64_t v = empty ? 1ull << 32 | op->seq : 0;
	if (atomic_load_explicit(&ent->rd_empty, memory_order_relaxed) != v)
		atomic_store_explicit(&ent->rd_empty, v, memory_order_relaxed);
}

/* read/write on a socket as recv/send: the same for a socket, without the
 * file layer (VFS read/write and fdget_pos for the syscalls; fd flags and
 * fsnotify for io_uring's READ/WRITE): about 0.5 us of an echo round trip
 * on epoll, 0.7 us on io_uring. */
static inline void as_socket_op(struct zio__op *op)
{
	/* Not a read of 0 bytes: read(2) returns 0 at once, where recv(2)
	 * waits for data on a byte stream, and takes a datagram and drops it. */
	if (op->opcode == ZIO__OP_READ && op->u.rw.off < 0 && op->u.rw.len > 0) {
		op->opcode = ZIO__OP_RECV;
		op->u.rw.flags = 0;
	} else if (op->opcode == ZIO__OP_WRITE && op->u.rw.off < 0) {
		op->opcode = ZIO__OP_SEND;
		op->u.rw.flags = 0;
	}
}

/* A wait for what a file cannot report (POLLPRI on a file without a poll
 * method): as with poll(2), it lasts until the deadline or a cancel. */
static int wait_for_nothing(int64_t deadline)
{
	int w = zio_sleep_until(deadline);
	return w ? w : -ETIMEDOUT;
}

/* An op on an fd whose zio_close() is under way. Before the close(2)
 * (ZIO__EPFD_CLOSING, while the close waits for the rings and the pool to
 * let go of the file) the number still names the file being closed: the
 * op fails with -EBADF at once, as a wait on it would. From the close(2)
 * to the lift of the mark just after it (ZIO__EPFD_CLOSED) the number may
 * already name a new file that another thread opened (eventfd(2), say:
 * zio did not make it, so nothing reset the entry), which must work: the
 * op waits for the lift, pinned to its executor (its loop is its own),
 * for at most ZIO__CLOSE_WAIT_MAX (a closer preempted between the two on
 * a loaded machine takes milliseconds), then -EBADF. If the call's own
 * time runs out first, it ends as out of time (-EAGAIN for a try-once
 * call, after a few yields, else -ETIMEDOUT): the number may well name an
 * open file. -ECANCELED for a cancelled task. 0 once the mark is lifted. */
static int closing_wait(struct zio__fiber *f, struct zio__fd *ent, int64_t deadline)
{
	int64_t own = zio__effective_deadline(f, deadline);
	int64_t bound = zio__now() + ZIO__CLOSE_WAIT_MAX;
	int64_t until = zio__earlier(own, bound);
	uint32_t pin = f->flags & PIN;
	f->flags |= PIN;
	int r = 0;
	for (unsigned i = 0;; i++) {
		int mark = __atomic_load_n(&ent->owner_epfd, __ATOMIC_ACQUIRE);
		if (mark == ZIO__EPFD_CLOSING) {
			r = -EBADF;
			break;
		}
		if (mark != ZIO__EPFD_CLOSED)
			break;
		/* (A cancelled task's yields and naps return at once.) */
		if (f->shield == 0 && atomic_load_explicit(&f->cancelled, memory_order_relaxed)) {
			r = -ECANCELED;
			break;
		}
		/* (Out of time, it still yields a few times, without a
		 * nap: a try-once call's way to let the close finish.) */
		if (zio__now() >= until && i >= ZIO__PAUSE_YIELDS) {
			if (until == bound)
				r = -EBADF;
			else
				r = own == 0 ? -EAGAIN : -ETIMEDOUT;
			break;
		}
		zio__pause(i);
	}
	f->flags = (f->flags & ~PIN) | pin;
	return r;
}

/* closing_wait() if a zio_close() of ent's file is under way; else 0. */
static inline int wait_if_closing(struct zio__fiber *f, struct zio__fd *ent, int64_t deadline)
{
	if (zio__likely(!zio__epfd_closing(__atomic_load_n(&ent->owner_epfd, __ATOMIC_RELAXED))))
		return 0;
	return closing_wait(f, ent, deadline);
}

int zio__fd_not_closing(int fd, int64_t deadline)
{
	struct zio__fiber *f = zio__fiber_current();
	struct zio__fd *ent = f ? zio__fd_peek(fd) : NULL;
	return ent ? wait_if_closing(f, ent, deadline) : 0;
}

/* Readiness path: try, wait, retry. */
static ssize_t ready_run(struct zio__loop *l, struct zio__fiber *f, struct zio__op *op,
			 int64_t deadline)
{
	struct zio__fd *ent = zio__fd_get(op->fd);
	if (!ent)
		return zio__fd_get_error(op->fd);
	int e = wait_if_closing(f, ent, deadline);
	if (e)
		return e;
	int kind = zio__fd_kind(op->fd, ent);
	if (kind < 0)
		return kind;
	if (kind == ZIO__FD_REGULAR && op->opcode == ZIO__OP_POLL) {
		short ready = op->u.poll.events & (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM);
		if (ready)
			return ready; /* always ready */
		/* POLLPRI: how /proc/self/mounts, cgroup.events and sysfs
		 * attributes announce a change. Waited for like a socket's. */
	} else if (kind == ZIO__FD_REGULAR || connect_blocks(op, kind)) {
		return zio__blocking_op(op, deadline);
	}
	/* Input an io_uring runtime's multishot request takes in (this is an
	 * epoll or poll runtime, or an op the ring lacks): asked of it. */
	if (atomic_load_explicit(&ent->ms, memory_order_relaxed) && op_dir(op) == ZIO__DIR_READ) {
		ssize_t r = run_in_owner(op, ent, deadline);
		if (r != -EOPNOTSUPP)
			return r;
	}
	unsigned traits = __atomic_load_n(&ent->traits, __ATOMIC_RELAXED);
	if (traits & ZIO__FD_SOCK)
		as_socket_op(op);
	op->dir = (uint8_t)op_dir(op);
	uint32_t pin = f->flags & PIN;
	f->flags |= PIN;
	ssize_t r;
	/* On epoll (edge-triggered, seq bumped per reaped edge), a byte stream
	 * seen empty at the current seq need not be read again before its
	 * next edge: this saves the EAGAIN read an echo-style loop pays after
	 * every write. Never for a try-once call (deadline 0), which must
	 * look; a deadline that passes (perhaps before the call) looks once
	 * more before it says so. */
	bool empty_hint = deadline != 0 && l->ops == &zio__backend_epoll &&
			  (__atomic_load_n(&ent->traits, __ATOMIC_RELAXED) & ZIO__FD_STREAM) &&
			  drains(op);
	/* A wait that ends "ready" may be followed, before this task runs,
	 * by a zio_close() of fd and a new file under its number: neither a
	 * retry nor a poll's answer may then be about that file. */
	uint32_t incarnation = __atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE);
	/* Wakes after which the op still found nothing to do are followed by
	 * a growing pause, then readiness again, where a wait would return
	 * at once: from the first for a datagram send (an unconnected
	 * socket's full receiver, which no poll reports: its own buffer has
	 * room); from the second in a row on a level-triggered backend (poll,
	 * the ring's poll requests), where a state that keeps the fd "ready"
	 * without letting the op proceed (a socket's error queue: POLLERR)
	 * would spin a core. */
	bool woke_ready = false;
	/* A send on a Unix stream or seqpacket socket cannot see its end by
	 * readiness: its own SHUT_WR, or the peer's SHUT_RD, ends a blocking
	 * send(2) with EPIPE, but poll reports neither (TCP reports POLLOUT).
	 * Its waits are cut at growing intervals, 1 to 50 ms, to try again. */
	bool blind_end = send_by_readiness(op, ent) && !(traits & ZIO__FD_DGRAM);
	int64_t blind_check = ZIO_MSEC(1);
	int64_t pause = ZIO_USEC(50);
	unsigned refused = 0,
		 pause_after = dgram_send(op, ent) ? 1 : l->ops == &zio__backend_epoll ? UINT_MAX : 2;
	bool hinted = false;
	for (;;) {
		op->seq = __atomic_load_n(&ent->seq[op->dir], __ATOMIC_ACQUIRE);
		hinted = empty_hint &&
			 atomic_load_explicit(&ent->rd_empty, memory_order_relaxed) ==
				 (1ull << 32 | op->seq) &&
			 !__atomic_load_n(&ent->no_hint, __ATOMIC_RELAXED);
		if (hinted) {
			r = -EAGAIN;
		} else {
			r = try_op(op, kind);
			if (empty_hint)
				note_empty(ent, op, r);
		}
		if (r != -EAGAIN || op->state == CONNECT_BACKLOG_FULL)
			break;
		/* Asked after a wait that ended "ready", or on epoll after
		 * the read side's end was seen: the shutdown is one edge,
		 * and the receives after the one that took it get none. */
		if ((woke_ready || ((traits & ZIO__FD_DGRAM) &&
				    __atomic_load_n(&ent->no_hint, __ATOMIC_RELAXED))) &&
		    (traits & ZIO__FD_SOCK) && input_shut_down(op)) {
			r = 0;
			break;
		}
		if (deadline == 0)
			break;
		if (woke_ready && ++refused >= pause_after) {
			if ((r = zio__backoff(&pause, ZIO_MSEC(10), deadline)) != 0)
				break;
			if (zio__fd_replaced(ent, incarnation)) {
				r = -EBADF; /* closed meanwhile: not the next file's */
				break;
			}
			/* Then readiness again, in case it does tell. */
			woke_ready = false;
			continue;
		}
		int64_t until = blind_end ? zio__earlier(deadline, zio__now() + blind_check) : deadline;
		int w = wait_ready(l, f, op, until);
		if (w == -ETIMEDOUT && until != deadline && zio__now() >= until) {
			/* The cut, not the call's deadline: look again. */
			blind_check = zio__earlier(2 * blind_check, ZIO_MSEC(50));
			woke_ready = false;
			if (zio__fd_replaced(ent, incarnation)) {
				r = -EBADF;
				break;
			}
			continue;
		}
		woke_ready = w == 0;
		if (w >= 0 && zio__fd_replaced(ent, incarnation)) {
			r = -EBADF; /* also a poll: the events were the old file's */
			break;
		}
		if (w == -EPERM && !l->ops->native) {
			f->flags = (f->flags & ~PIN) | pin;
			/* A file epoll refuses has no poll method: what it
			 * lacks now (POLLPRI) never comes, as with poll(2). */
			if (op->opcode == ZIO__OP_POLL)
				return wait_for_nothing(deadline);
			/* Otherwise it cannot block for long, so a pool
			 * thread may. */
			return zio__blocking_op(op, deadline);
		}
		if (w > 0 && op->opcode == ZIO__OP_POLL) {
			/* Woken with the events seen: they may not come twice. */
			if ((r = zio__poll_result(op, (unsigned)w)))
				break;
			continue;
		}
		if (w == -ETIMEDOUT && hinted) {
			/* The hint skipped the look, and the edge of what
			 * came since may not be reaped yet: one look, at the
			 * same file. */
			r = zio__fd_replaced(ent, incarnation) ? -EBADF : try_op(op, kind);
			if (r == -EAGAIN)
				r = w;
			break;
		}
		if (w != 0) {
			r = w;
			break;
		}
	}
	f->flags = (f->flags & ~PIN) | pin;
	return r;
}

/* Completion backend, before the ring: socket ops that are cheaper another
 * way. read/write on a socket become recv/send (as_socket_op). Writes are
 * tried at once, non-blocking, as the epoll path and Go's netpoller do: a
 * socket with room in its send buffer (the usual case) takes the bytes
 * now, which saves the ring round trip and a second resume of the task per
 * request (sending through the ring measured no cheaper: the ring's send
 * costs what the syscall's entry does); a full one says EAGAIN and the op
 * goes to the ring. Returns the result, or -EAGAIN for "use the ring". */
static ssize_t socket_shortcut(struct zio__fd *ent, struct zio__op *op)
{
	if (!(__atomic_load_n(&ent->traits, __ATOMIC_RELAXED) & ZIO__FD_SOCK)) {
		if (__atomic_load_n(&ent->kind, __ATOMIC_RELAXED) != ZIO__FD_UNKNOWN)
			return -EAGAIN;
		/* First op on an fd zio did not create: learn its kind once
		 * (this also finds an fd that is not open at all). */
		int k = zio__fd_kind(op->fd, ent);
		if (k < 0)
			return k;
		if (!(__atomic_load_n(&ent->traits, __ATOMIC_RELAXED) & ZIO__FD_SOCK))
			return -EAGAIN;
	}
	as_socket_op(op);
	switch (op->opcode) {
	case ZIO__OP_SEND:
	case ZIO__OP_SENDMSG:
	case ZIO__OP_WRITEV:
		return try_op(op, __atomic_load_n(&ent->kind, __ATOMIC_RELAXED));
	default:
		return -EAGAIN;
	}
}

/* Ops the ring gets wrong, left to the pool's syscalls as on epoll. A
 * read or write at a regular file's position: io_uring takes no position
 * lock, as read(2) and write(2) do, so a short write left the position
 * behind (the next one wrote over it) and two executors' rings wrote at
 * one position. A pread or pwrite of what has no offsets: the ring reads
 * a pipe as a stream (pread(2) says ESPIPE). */
static bool ring_unfit(struct zio__op *op, struct zio__fd *ent)
{
	bool at_position;
	switch (op->opcode) {
	case ZIO__OP_READ:
	case ZIO__OP_WRITE:
	case ZIO__OP_FREAD:
	case ZIO__OP_FWRITE:
		at_position = op->u.rw.off < 0;
		break;
	case ZIO__OP_READV:
	case ZIO__OP_WRITEV:
		at_position = op->u.vec.off < 0;
		break;
	case ZIO__OP_PREAD:
	case ZIO__OP_PWRITE:
		at_position = false;
		break;
	default:
		return false;
	}
	int kind = zio__fd_kind(op->fd, ent);
	if (kind < 0)
		return false; /* the op says what is wrong */
	return at_position == (kind == ZIO__FD_REGULAR);
}

/* MSG_DONTWAIT asks for one non-blocking attempt, whatever the deadline;
 * so does MSG_ERRQUEUE (recvmsg(2) never waits for the error queue). */
static inline bool dont_wait(const struct zio__op *op)
{
	switch (op->opcode) {
	case ZIO__OP_RECV:
	case ZIO__OP_SEND:
		return op->u.rw.flags & (MSG_DONTWAIT | MSG_ERRQUEUE);
	case ZIO__OP_RECVMSG:
	case ZIO__OP_SENDMSG:
		return op->u.msg.flags & (MSG_DONTWAIT | MSG_ERRQUEUE);
	default:
		return false;
	}
}

ssize_t zio__op_run(struct zio__op *op, int64_t deadline)
{
	struct zio__fiber *f = zio__fiber_current();
	if (dont_wait(op))
		deadline = 0;
	if (!f)
		return thread_run(op, deadline);
	/* An op whose fd is always ready (input always there, room always)
	 * never switches: a task making such ops in a loop held the executor,
	 * its other tasks and its I/O poll for as long as it went on. After
	 * OP_BUDGET ops without a switch it yields first, by way of the
	 * executor's timers and I/O poll (which otherwise come every 64
	 * switches: long apart if such tasks compute between their ops). */
	if (zio__unlikely(++f->exec->ops_unswitched >= OP_BUDGET)) {
		f->exec->ops_unswitched = 0;
		zio__yield_polling(); /* (a cancel is seen below) */
	}
	if (f->shield == 0 && atomic_load_explicit(&f->cancelled, memory_order_relaxed))
		return -ECANCELED;
	struct zio__loop *l = f->exec->loop;
	if (l->ops->native && l->ops->native(l, op->opcode)) {
		struct zio__fd *ent = op->fd >= 0 && op->opcode != ZIO__OP_CANCEL_FD
					      ? zio__fd_get(op->fd) : NULL;
		if (ent)
			file_rw_as_stream(op, ent);
		/* The file fd names as the call begins: the paths below take
		 * their own look, and one that gives up after a wait (the
		 * multishot path) must not hand the op to the next file.
		 * Read before the closing mark, as zio_close() bumps it
		 * before it sets the mark. */
		uint32_t incarnation = ent ? __atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE) : 0;
		bool stream_op = !zio__op_is_file(op->opcode) && op->opcode != ZIO__OP_CANCEL_FD;
		/* zio_close() of fd is under way: a request now would hold
		 * the file open past its close() (epoll and poll refuse too). */
		if (ent && zio__epfd_closing(__atomic_load_n(&ent->owner_epfd, __ATOMIC_RELAXED))) {
			int e = closing_wait(f, ent, deadline);
			if (e)
				return e;
			/* The number's file now (a new file zio made under it
			 * bumped the incarnation again). */
			incarnation = __atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE);
		}
		/* (f->exec->rt, not f->rt: f->rt is on the descriptor's
		 * second line, which this path does not otherwise touch.) */
		if (ent && f->exec->rt->n_exec > 1) {
			/* Remember that this executor's ring may hold ops on
			 * fd (file ops too: their SQEs name it by number), so
			 * zio_close() knows whom to ask. With one executor
			 * there is nobody else to ask, and forget_fd() always
			 * asks it. */
			uint64_t bit = 1ull << (f->exec->id & 63);
			if (!(atomic_load_explicit(&ent->execs, memory_order_relaxed) & bit))
				atomic_fetch_or(&ent->execs, bit);
		}
		if (ent && stream_op) {
			ssize_t r = socket_shortcut(ent, op);
			if (r != -EAGAIN)
				return r;
			if (l->ops->multishot) {
				/* Also for a try-once call: a read must not
				 * overtake bytes a multishot recv has queued. */
				r = l->ops->multishot(l, op, ent, incarnation, deadline);
				if (r == ZIO__OTHER_RUNTIME)
					r = run_in_owner(op, ent, deadline);
				if (r != -EOPNOTSUPP)
					return r;
				l = f->exec->loop; /* it may have moved us */
				if (zio__fd_replaced(ent, incarnation))
					return -EBADF;
			}
		}
		if (ent && ring_unfit(op, ent))
			return zio__blocking_op(op, deadline);
		/* One try, as on epoll; and a file op out of time already
		 * (deadline 0 or past, or a timeout scope's) is what the pool
		 * does then, not an SQE cancelled before it ran (or after it
		 * wrote). */
		if (deadline == 0 && stream_op)
			return ready_run(l, f, op, 0);
		if (!stream_op && op->opcode != ZIO__OP_CANCEL_FD && zio__out_of_time(deadline))
			return zio__blocking_op(op, deadline);
		if (stream_op && send_by_readiness(op, ent))
			return ready_run(l, f, op, deadline);
		ssize_t r = native_run(l, f, op, deadline);
		/* -EAGAIN to a call that may wait: the ring retried the op
		 * after its poll, found nothing again (another reader took
		 * the datagram), and gave it to its worker thread, where a
		 * readv or writev honours the file's O_NONBLOCK; or a
		 * datagram socket shut down for reading, whose recvmsg says
		 * so. Waited for by readiness instead, as on epoll, which
		 * also tells that end of input (0); not if fd was closed
		 * meanwhile (the number may name another file by now). */
		if (zio__unlikely(r == -EAGAIN) && stream_op && !(msg_flags_of(op) & MSG_DONTWAIT))
			return ent && zio__fd_replaced(ent, incarnation) ? -EBADF
									 : ready_run(l, f, op, deadline);
		return r;
	}
	if (op->opcode == ZIO__OP_FREAD || op->opcode == ZIO__OP_FWRITE) {
		/* At the current position, as read(2) and write(2): a pipe,
		 * FIFO or tty used as a file is waited for by readiness (on the
		 * pool its wait held a thread past any deadline or cancel), and
		 * ready_run() sends a regular file to the pool. */
		op->opcode = op->opcode == ZIO__OP_FREAD ? ZIO__OP_READ : ZIO__OP_WRITE;
		return ready_run(l, f, op, deadline);
	}
	if (zio__op_is_file(op->opcode))
		return zio__blocking_op(op, deadline);
	if (op->opcode == ZIO__OP_CANCEL_FD)
		return 0;
	return ready_run(l, f, op, deadline);
}

/* ------------------------------------------------------------ public calls */

ZIO_API ssize_t zio_read(int fd, void *buf, size_t len, int64_t deadline)
{
	struct zio__op op = { .opcode = ZIO__OP_READ, .fd = fd };
	op.u.rw.buf = buf;
	op.u.rw.len = clamp_len(len);
	op.u.rw.off = -1;
	return zio__op_run(&op, deadline);
}

ZIO_API ssize_t zio_write(int fd, const void *buf, size_t len, int64_t deadline)
{
	struct zio__op op = { .opcode = ZIO__OP_WRITE, .fd = fd };
	op.u.rw.buf = (void *)buf;
	op.u.rw.len = clamp_len(len);
	op.u.rw.off = -1;
	return zio__op_run(&op, deadline);
}

ZIO_API ssize_t zio_readv(int fd, const struct iovec *iov, int iovcnt, int64_t deadline)
{
	if (iovcnt < 0 || iovcnt > IOV_MAX)
		return -EINVAL;
	struct zio__op op = { .opcode = ZIO__OP_READV, .fd = fd };
	op.u.vec.iov = iov;
	op.u.vec.iovcnt = iovcnt;
	op.u.vec.off = -1;
	return zio__op_run(&op, deadline);
}

ZIO_API ssize_t zio_writev(int fd, const struct iovec *iov, int iovcnt, int64_t deadline)
{
	if (iovcnt < 0 || iovcnt > IOV_MAX)
		return -EINVAL;
	struct zio__op op = { .opcode = ZIO__OP_WRITEV, .fd = fd };
	op.u.vec.iov = iov;
	op.u.vec.iovcnt = iovcnt;
	op.u.vec.off = -1;
	return zio__op_run(&op, deadline);
}

ZIO_API ssize_t zio_write_all(int fd, const void *buf, size_t len, int64_t deadline)
{
	struct zio__fd_mark start = zio__fd_mark(fd);
	size_t done = 0;
	while (done < len) {
		if (done && zio__fd_gone(start))
			return -EBADF;
		ssize_t r = zio_write(fd, (const char *)buf + done, len - done, deadline);
		if (r < 0)
			return r;
		if (r == 0)
			return -EIO; /* a write that moves nothing would loop forever */
		done += (size_t)r;
	}
	return (ssize_t)done;
}

ZIO_API ssize_t zio_writev_all(int fd, struct iovec *iov, int iovcnt, int64_t deadline)
{
	if (iovcnt < 0)
		return -EINVAL;
	if (!iov && iovcnt > 0)
		return -EFAULT;
	struct zio__fd_mark start = zio__fd_mark(fd);
	size_t total = 0;
	while (iovcnt > 0 && iov->iov_len == 0) {
		iov++;
		iovcnt--;
	}
	while (iovcnt > 0) {
		if (total && zio__fd_gone(start))
			return -EBADF;
		ssize_t r = zio_writev(fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt, deadline);
		if (r < 0)
			return r;
		if (r == 0)
			return -EIO;
		total += (size_t)r;
		size_t n = (size_t)r;
		/* Advance past what went out; iov is the caller's to modify. */
		while (iovcnt > 0 && n >= iov->iov_len) {
			n -= iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= n;
		}
	}
	return (ssize_t)total;
}

/* A wait for a socket's urgent data (POLLPRI) on io_uring, whose poll
 * request is not woken by urgent data that comes while it waits (TCP's
 * signal of it, not by the ring's poll): asked of poll(2) at growing
 * intervals, 50 us to 10 ms, until the deadline. */
static int urgent_wait(int fd, struct zio__fd *ent, short events, int64_t deadline)
{
	uint32_t incarnation = __atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE);
	int64_t pause = ZIO_USEC(50);
	for (;;) {
		if (zio__fd_replaced(ent, incarnation))
			return -EBADF;
		struct zio__op op = { .opcode = ZIO__OP_POLL, .fd = fd };
		op.u.poll.events = events;
		int r = (int)zio__op_syscall(&op);
		if (r != -EAGAIN)
			return r;
		if (deadline == 0)
			return -EAGAIN;
		if ((r = zio__backoff(&pause, ZIO_MSEC(10), deadline)) < 0)
			return r;
	}
}

ZIO_API int zio_wait_fd(int fd, short events, int64_t deadline)
{
	if (!(events & (POLLIN | POLLOUT | POLLPRI)))
		return -EINVAL;
	struct zio__fiber *f = zio__fiber_current();
	if (f && (events & (POLLIN | POLLPRI | POLLRDHUP)) && (events & POLLOUT)) {
		struct zio__loop *l = f->exec->loop;
		if (!(l->ops->native && l->ops->native(l, ZIO__OP_POLL))) {
			/* Readiness lists are per direction: wait on both with
			 * one parker; the first edge ends the wait. */
			if (f->shield == 0 && atomic_load(&f->cancelled))
				return -ECANCELED;
			struct zio__fd *ent = zio__fd_get(fd);
			if (!ent)
				return zio__fd_get_error(fd);
			int e = wait_if_closing(f, ent, deadline);
			if (e)
				return e;
			int kind = zio__fd_kind(fd, ent);
			if (kind < 0)
				return kind;
			uint32_t pin = f->flags & PIN;
			f->flags |= PIN;
			int r;
			/* As in ready_run: nothing about a file the number
			 * came to name while we waited. */
			uint32_t incarnation = __atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE);
			for (;;) {
				struct zio__op rd = { .opcode = ZIO__OP_POLL, .fd = fd, .dir = ZIO__DIR_READ };
				struct zio__op wr = { .opcode = ZIO__OP_POLL, .fd = fd, .dir = ZIO__DIR_WRITE };
				rd.u.poll.events = wr.u.poll.events = events;
				rd.seq = __atomic_load_n(&ent->seq[0], __ATOMIC_ACQUIRE);
				wr.seq = __atomic_load_n(&ent->seq[1], __ATOMIC_ACQUIRE);
				/* (A file with no poll method is ready for both
				 * at once; one with one, /proc/self/mounts say,
				 * is waited for like a socket.) */
				r = (int)zio__op_syscall(&rd);
				if (r != -EAGAIN || deadline == 0)
					break;
				rd.loop = wr.loop = l;
				rd.parker = wr.parker = &f->park;
				rd.gen = wr.gen = zio__park_prepare(&f->park, 0);
				l->ops->submit(l, &rd);
				l->ops->submit(l, &wr);
				int w = zio__park(&f->park, deadline);
				f->flags |= PIN;
				l->ops->cancel(l, &rd);
				l->ops->cancel(l, &wr);
				if (w >= 0 && zio__fd_replaced(ent, incarnation)) {
					r = -EBADF;
					break;
				}
				if (w > 0) {
					/* The events seen: they may not come twice. */
					if ((r = zio__poll_result(&rd, (unsigned)w)))
						break;
					continue;
				}
				if (w != 0) {
					r = w;
					break;
				}
			}
			f->flags = (f->flags & ~PIN) | pin;
			return r;
		}
	}
	if (f && (events & POLLPRI) && f->exec->loop->ops->native &&
	    f->exec->loop->ops->native(f->exec->loop, ZIO__OP_POLL)) {
		struct zio__fd *ent = zio__fd_get(fd);
		int kind = ent ? zio__fd_kind(fd, ent) : 0;
		if (kind < 0)
			return kind;
		/* (A socket a multishot request serves has lost its urgent
		 * data to it: io.h; its input is in the request's queue.) */
		if (ent && (__atomic_load_n(&ent->traits, __ATOMIC_RELAXED) & ZIO__FD_SOCK) &&
		    !atomic_load_explicit(&ent->ms, memory_order_acquire))
			return urgent_wait(fd, ent, events, deadline);
	}
	struct zio__op op = { .opcode = ZIO__OP_POLL, .fd = fd };
	op.u.poll.events = events;
	int r = (int)zio__op_run(&op, deadline);
	struct stat st;
	if (r == -EINVAL && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		/* io_uring will not poll a file that has no poll method for
		 * what it lacks now (POLLPRI), which therefore never comes:
		 * as with poll(2), the wait lasts until the deadline. */
		return wait_for_nothing(deadline);
	}
	/* poll(2)'s revents, as the readiness paths give them (io_uring's
	 * poll says POLLRDHUP unasked; a wake for nothing but that still
	 * says it, rather than a 0 no caller expects). */
	int asked = r > 0 ? zio__poll_result(&op, (unsigned)r) : 0;
	return asked ? asked : r;
}

/* The fd table forgets fd, waking its readiness waiters with -EBADF, and
 * every ring that may hold ops on it cancels them, all before the number
 * can be reused by the close below. */
static void forget_fd(int fd)
{
	struct zio__fd *ent = zio__fd_peek(fd);
	struct zio__fiber *f = zio__fiber_current();
	zio__runtime *rt = f ? f->rt : zio__runtime_idle_here();
	uint64_t execs = 0, polled_by = 0;
	if (!ent)
		goto rings;
	zio__spin_lock(&ent->lock);
	/* Read without the lock by multishot callers (see backend_uring_ms.c). */
	__atomic_store_n(&ent->incarnation, ent->incarnation + 1, __ATOMIC_RELEASE);
	zio__fd_seq_bump(ent, ZIO__DIR_READ);
	zio__fd_seq_bump(ent, ZIO__DIR_WRITE);
	/* Executors of this runtime whose waits on fd are woken here may
	 * still be in a poll that holds the file. (Another runtime's loop
	 * may be gone by the time we would ask it.) */
	for (int dir = ZIO__DIR_READ; dir <= ZIO__DIR_WRITE; dir++)
		for (struct zio__op *op = ent->waiters[dir]; op; op = op->next)
			if (op->loop && op->loop->exec->rt == rt && op->loop->ops->release_files)
				polled_by |= 1ull << (op->loop->exec->id & 63);
	zio__fd_wake(ent, ZIO__DIR_READ, -EBADF);
	zio__fd_wake(ent, ZIO__DIR_WRITE, -EBADF);
	if (ent->owner_epfd >= 0) {
		/* Needed even though close() would do it when this is the
		 * last reference: a dup elsewhere keeps a registration alive
		 * that would report events under a reused number. */
		epoll_ctl(ent->owner_epfd, EPOLL_CTL_DEL, fd, NULL);
		ent->ep_out = 0;
	}
	/* Until close() below: a wait that starts now (a task on another
	 * executor) fails instead of registering with epoll, which the close
	 * would silently undo. zio_close() lifts it. */
	__atomic_store_n(&ent->owner_epfd, ZIO__EPFD_CLOSING, __ATOMIC_RELAXED);
	/* Atomic, like zio__fd_created()'s stores: the next file with this
	 * number may be made on another thread, ordered only by the kernel. */
	__atomic_store_n(&ent->kind, (uint8_t)ZIO__FD_UNKNOWN, __ATOMIC_RELAXED);
	__atomic_store_n(&ent->traits, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&ent->no_hint, 0, __ATOMIC_RELAXED);
	atomic_store_explicit(&ent->rd_empty, 0, memory_order_relaxed);
	execs = atomic_exchange(&ent->execs, 0);
	zio__spin_unlock(&ent->lock);
rings:;
	/* Shielded: a close must finish even in a cancelled task, or one out
	 * of time, whose waits below would otherwise end at once (and whose
	 * pauses would spin). */
	if (f)
		f->shield++;
	/* A multishot request on fd names its loop, which may be another
	 * runtime's (or, for a plain thread, any), and would keep the socket
	 * open and its waiters waiting. (Single requests on fd in a ring of
	 * a runtime other than the caller's stay: nothing names their loop.) */
	void *ms = ent ? atomic_load_explicit(&ent->ms, memory_order_acquire) : NULL;
	struct zio__loop *owner = ms ? *(struct zio__loop *const *)ms : NULL;
	if (owner && owner->exec->rt != rt)
		owner->ops->close_fd(owner, fd);
	if (rt) {
		for (unsigned i = 0; polled_by && i < rt->n_exec; i++) {
			struct zio__exec *x = rt->exec[i];
			if ((polled_by & (1ull << (x->id & 63))) && x != zio__exec_current())
				x->loop->ops->release_files(x->loop);
		}
		if (rt->exec[0]->loop->ops->close_fd) {
			if (rt->n_exec == 1) /* not tracked per op, see zio__op_run */
				execs |= 1ull << (rt->exec[0]->id & 63);
			for (unsigned i = 0; execs && i < rt->n_exec; i++) {
				struct zio__exec *x = rt->exec[i];
				if (execs & (1ull << (x->id & 63)))
					x->loop->ops->close_fd(x->loop, fd);
			}
		}
	}
	if (f)
		f->shield--;
}

void zio__pause(unsigned n)
{
	bool task = zio__fiber_current() != NULL;
	if (n < ZIO__PAUSE_YIELDS)
		task ? (void)zio_yield() : (void)sched_yield();
	else if (task)
		zio_sleep(ZIO_USEC(50));
	else
		nanosleep(&(struct timespec){ .tv_nsec = 50000 }, NULL);
}

/* ent's closing mark from -> to, unless the number already names a new
 * file, which reset it. */
static void move_mark(struct zio__fd *ent, int from, int to)
{
	zio__spin_lock(&ent->lock);
	if (ent->owner_epfd == from)
		__atomic_store_n(&ent->owner_epfd, to, __ATOMIC_RELEASE);
	zio__spin_unlock(&ent->lock);
}

ZIO_API int zio_close(int fd)
{
	if (fd < 0)
		return -EBADF;
	forget_fd(fd);
	zio__blocking_fd_quiesce(fd);
	/* From here the number may be reused before the lift below (see
	 * closing_wait). */
	struct zio__fd *ent = zio__fd_peek(fd);
	if (ent)
		move_mark(ent, ZIO__EPFD_CLOSING, ZIO__EPFD_CLOSED);
	/* close() is never retried: on Linux the fd is gone even on EINTR. */
#ifdef ZIO_TSAN
	/* A zio op on fd in another thread may be inside its syscall now:
	 * zio_close() allows that (the op ends with EBADF), but TSan's model
	 * of descriptors, fed by its close() interceptor, calls it a race. */
	int r = (int)syscall(SYS_close, fd);
#else
	int r = close(fd);
#endif
	int err = r < 0 && errno != EINTR ? -errno : 0;
	if (ent)
		move_mark(ent, ZIO__EPFD_CLOSED, ZIO__EPFD_NONE);
	return err;
}

/* A new file under a number whose last file was closed behind zio's back
 * while registered with epoll (the new file is not registered, and events
 * still queued, or from a dup of the old file, carry the old incarnation),
 * or whose zio_close() has yet to lift ZIO__EPFD_CLOSED after its close(). */
static void disown_stale(struct zio__fd *ent)
{
	zio__spin_lock(&ent->lock);
	__atomic_store_n(&ent->incarnation, ent->incarnation + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&ent->owner_epfd, ZIO__EPFD_NONE, __ATOMIC_RELAXED);
	ent->ep_out = 0;
	zio__spin_unlock(&ent->lock);
}

/* Records a descriptor zio created non-blocking, so its first op needs
 * no fcntl/fstat. */
void zio__fd_created(int fd, unsigned traits)
{
	zio__fd_fresh(fd, ZIO__FD_NONBLOCK, traits);
}

void zio__fd_fresh(int fd, unsigned kind, unsigned traits)
{
	struct zio__fd *ent = zio__fd_get(fd);
	if (ent) {
		__atomic_store_n(&ent->kind, (uint8_t)kind, __ATOMIC_RELAXED);
		__atomic_store_n(&ent->traits, (uint8_t)traits, __ATOMIC_RELAXED);
		__atomic_store_n(&ent->no_hint, 0, __ATOMIC_RELAXED);
		/* Left over only if the number's last file was closed behind
		 * zio's back: its owner sees the change and lets it go. */
		if (atomic_load_explicit(&ent->ms, memory_order_relaxed))
			atomic_store_explicit(&ent->ms, NULL, memory_order_release);
		atomic_store_explicit(&ent->rd_empty, 0, memory_order_relaxed);
		if (zio__unlikely(__atomic_load_n(&ent->owner_epfd, __ATOMIC_RELAXED) !=
				  ZIO__EPFD_NONE))
			disown_stale(ent);
	}
}

ZIO_API int zio_pipe(int fds[2])
{
	if (!fds)
		return -EINVAL;
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return -errno;
	zio__fd_created(fds[0], ZIO__FD_STREAM | ZIO__FD_DRAINS);
	zio__fd_created(fds[1], ZIO__FD_STREAM | ZIO__FD_DRAINS);
	return 0;
}
