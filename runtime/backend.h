/*
 * backend.h - the I/O backend interface (one instance per executor), the
 * op every I/O call is made of, and the process-wide fd table.
 *
 * A backend is a const vtable; each backend file exports exactly one
 * (zio__backend_uring, zio__backend_epoll, zio__backend_poll) and keeps
 * everything else static. The runtime picks one at creation: the name given
 * in zio_runtime_options.backend, else $ZIO_BACKEND, else the first of
 * uring -> epoll -> poll whose probe() succeeds (cached, logged once).
 *
 * An executor's loop is touched only by its own thread, except wake(),
 * which any thread may call. poll() waits up to timeout_ns (-1: forever,
 * 0: just reap) for completions or a wake(); the scheduler bounds it by the
 * executor's nearest timer.
 *
 * Two kinds of backend:
 *  - completion (io_uring): native(op) says the backend performs the op
 *    itself. submit() queues it (SQEs are batched and flushed at poll time),
 *    poll() reaps CQEs, sets op->res and claims the fiber's wait with
 *    zio__unpark(op->parker, op->gen, 0). cancel() asks the kernel to stop
 *    the op; the op still completes (with -ECANCELED or its real result) and
 *    the fiber waits for that before its stack frame goes away.
 *  - readiness (epoll, poll): the fiber performs the syscall itself,
 *    non-blocking (io.c), and on EAGAIN submit()s a readiness wait for
 *    op->fd in direction op->dir. The backend claims the wait with 0 when the
 *    fd may be ready (the fiber retries), or zio_close() claims it with
 *    -EBADF. cancel() unlinks a wait that ended by timeout or cancellation.
 * Regular-file ops on readiness backends go to the blocking pool.
 *
 * Ops live on the waiting fiber's stack; the fiber is pinned to its executor
 * (ZIO__FIBER_TEMP_PIN) while an op is in flight, because completions and
 * cancels are executor-local (the readiness wait lists are locked, but the
 * poll backend's pollfd list is not).
 */
#ifndef ZIO_BACKEND_H
#define ZIO_BACKEND_H

#include "internal.h"

#include <poll.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

struct zio__loop {
	const struct zio__backend *ops;
	struct zio__exec *exec;
	/* Completion backends: cancels by fd (zio_close()) this loop has
	 * issued, counted on its thread. An op that ends -ECANCELED with no
	 * such cancel since it was submitted was not cancelled by anyone: it
	 * is the call's own answer (a timerfd whose clock was set). */
	uint32_t fd_cancels;
};

enum zio__opcode {
	ZIO__OP_NOP,
	/* stream ops: readiness-driven on epoll/poll */
	ZIO__OP_READ,     /* rw: buf, len, off (-1: current position) */
	ZIO__OP_WRITE,
	ZIO__OP_READV,    /* vec: iov, iovcnt, off */
	ZIO__OP_WRITEV,
	ZIO__OP_RECV,     /* rw + flags */
	ZIO__OP_SEND,
	ZIO__OP_RECVMSG,  /* msg + flags */
	ZIO__OP_SENDMSG,
	ZIO__OP_ACCEPT,   /* sa: addr, addrlen (in/out), flags */
	ZIO__OP_CONNECT,  /* sa: addr, len */
	ZIO__OP_POLL,     /* poll: events in, revents out (res) */
	ZIO__OP_CANCEL_FD, /* completion backends: cancel every op on fd */
	/* file and path ops: native on io_uring, blocking pool elsewhere */
	ZIO__OP_PREAD,    /* rw with off >= 0, regular files */
	ZIO__OP_PWRITE,
	ZIO__OP_FREAD,    /* rw at the current position, regular files */
	ZIO__OP_FWRITE,
	ZIO__OP_FSYNC,    /* fsync.datasync */
	ZIO__OP_OPENAT,   /* path: dirfd, path, flags, mode */
	ZIO__OP_STATX,    /* path: dirfd, path, flags, stx */
	ZIO__OP_RENAMEAT, /* path: dirfd, path, dirfd2, path2, flags */
	ZIO__OP_UNLINKAT, /* path: dirfd, path, flags */
	ZIO__OP_MKDIRAT,  /* path: dirfd, path, mode */
	ZIO__OP_CLOSE,
	ZIO__OP_COUNT
};

/* File-like ops: they never return EAGAIN and may block on a disk. */
static inline bool zio__op_is_file(unsigned opcode)
{
	return opcode >= ZIO__OP_PREAD;
}

#define ZIO__DIR_READ 0
#define ZIO__DIR_WRITE 1

struct zio__op {
	uint8_t opcode;
	uint8_t dir;          /* ZIO__DIR_*: which readiness the op waits for */
	volatile uint8_t done; /* set by the backend with res (completion kind) */
	uint8_t linked;       /* readiness: on an fd wait list (changed under its
			       * lock, atomically: the poll backend reads it
			       * without) */
	uint8_t in_loop;      /* poll backend: on the loop's list (owner only) */
	uint8_t state;        /* io.c: connect in progress, etc. */
	int fd;
	int64_t res;          /* result or -errno, like a CQE's res */
	union {
		struct {
			void *buf;
			size_t len;
			int64_t off;
			int flags;
		} rw;
		struct {
			const struct iovec *iov;
			int iovcnt;
			int64_t off;
		} vec;
		struct {
			struct msghdr *msg;
			int flags;
		} msg;
		struct {
			struct sockaddr *addr;
			socklen_t *addrlen; /* accept */
			socklen_t len;      /* connect */
			int flags;
		} sa;
		struct {
			short events;
		} poll;
		struct {
			int dirfd, dirfd2;
			const char *path, *path2;
			int flags;
			unsigned mode;
			struct statx *stx;
		} path;
		struct {
			bool datasync;
		} fsync;
	} u;
	/* the waiter */
	struct zio__parker *parker;
	uint32_t gen;
	/* readiness backends: fd wait list (under the fd's lock) and the poll
	 * backend's per-loop list (owner executor only) */
	struct zio__op *next, *prev;
	struct zio__op *lnext, *lprev;
	uint32_t seq;         /* readiness sequence seen before the syscall */
	struct zio__loop *loop;
};

struct zio__fd;

/* How long zio_close() waits for another executor to let go of the file
 * (its ring's requests, its poll): any longer, and the executor is busy
 * computing, perhaps waiting for what the closer does next; the file then
 * closes when it next polls. */
#define ZIO__CLOSE_WAIT_MAX ZIO_MSEC(50)

struct zio__backend {
	const char *name;
	/* 0 if this backend can work in this process (kernel, seccomp, sysctl). */
	int (*probe)(void);
	int (*create)(struct zio__exec *e, struct zio__loop **out);
	void (*destroy)(struct zio__loop *l);
	/* Executor 0 stops being run until the next zio_runtime_run() (the
	 * other executors, if any, go on): let go of what this loop serves,
	 * so other executors, plain threads and other runtimes are served
	 * without it (its own waiting tasks retry when it next runs; epoll
	 * wakes them, io_uring keeps their requests). May be NULL. On the
	 * loop's thread. */
	void (*stop)(struct zio__loop *l);
	/* Returns the number of completions reaped, or -errno. */
	int (*poll)(struct zio__loop *l, int64_t timeout_ns);
	void (*wake)(struct zio__loop *l);
	/* Completion backends: does submit() perform this op itself? NULL in
	 * readiness backends. */
	bool (*native)(struct zio__loop *l, unsigned opcode);
	/* Completion: queue op. Readiness: arm a wait for op->fd/op->dir;
	 * claims the wait at once if readiness changed since op->seq. */
	void (*submit)(struct zio__loop *l, struct zio__op *op);
	/* Stops an op whose wait ended by timeout or cancellation. */
	void (*cancel)(struct zio__loop *l, struct zio__op *op);
	/* zio_close(): stop every op this executor has on fd, before the fd
	 * number can be reused (completion backends; may suspend). */
	void (*close_fd)(struct zio__loop *l, int fd);
	/* zio_close(), after it ended this loop's waits on the fd: waits
	 * until a poll of l in progress, which may hold the fd's file (as
	 * poll(2) does, until it returns), is over, so the close releases
	 * it (a listener's address free for the next listen). From another
	 * thread than l's. May be NULL. */
	void (*release_files)(struct zio__loop *l);
	/* Completion backends: before a task submits op again on the fd of
	 * ent it began with at incarnation, whether zio_close() has closed it
	 * since (then it must not: the number may name another file). */
	bool (*closed_since)(struct zio__loop *l, const struct zio__fd *ent, uint32_t incarnation);
	/* Completion backends with multishot requests (else NULL): serves op
	 * (accept on a listener, a read on a TCP socket, a POLLIN wait on one)
	 * from a multishot request kept armed on the fd, whose results queue
	 * up between calls. Returns the result, or -EOPNOTSUPP: take the
	 * plain path (nothing is queued or in flight that it could overtake).
	 * May move the calling fiber to the executor that owns the request.
	 * incarnation: ent's as the caller found the file open (read before
	 * its look at the closing mark), which a request armed must match. */
	ssize_t (*multishot)(struct zio__loop *l, struct zio__op *op, struct zio__fd *ent,
			     uint32_t incarnation, int64_t deadline);
	/* (multishot() returns ZIO__OTHER_RUNTIME when the request is
	 * another runtime's: io.c asks that runtime, run_in_owner().) */
};

#define ZIO__OTHER_RUNTIME (-EXDEV)

extern const struct zio__backend zio__backend_epoll;
extern const struct zio__backend zio__backend_poll;
#ifdef ZIO_HAVE_URING
extern const struct zio__backend zio__backend_uring;
#endif

/* ----------------------------------------------------------------- fd table
 * Process-wide, indexed by fd, grown in chunks that are never freed (so
 * readers need no lock to find an entry). An entry's state is reset by
 * zio_close(), and again when zio creates a descriptor (socket, accept,
 * pipe) under the number. An fd closed behind zio's back whose number is
 * then reused by a file zio did not create keeps the old state, including
 * "registered with epoll", which the new file is not: its waits would miss
 * their wakeups. Close fds zio has waited on with zio_close() (the preload
 * shim's close() is). */
enum zio__fd_kind {
	ZIO__FD_UNKNOWN,
	ZIO__FD_NONBLOCK,  /* a socket or pipe zio created, non-blocking */
	ZIO__FD_SOCKET,    /* a socket zio did not create: MSG_DONTWAIT */
	ZIO__FD_BLOCKING,  /* a pipe, tty or device zio did not create:
			    * RWF_NOWAIT, or where the file has none, poll
			    * first (O_NONBLOCK is its sharers' to change) */
	ZIO__FD_REGULAR,   /* regular file or block device: never EAGAIN */
};

/* Traits of an fd: STREAM, a byte stream zio created (TCP, stream
 * socketpair, pipe), where EAGAIN means "now empty"; DRAINS, a stream
 * whose read takes all that is queued (up to its length), so a short read
 * means "now empty" too: TCP and pipes, not Unix sockets, whose reads also
 * stop before a message carrying fds or other credentials; SOCK, a socket,
 * so read/write may be done as recv/send (cheaper on io_uring); TCP, a TCP
 * socket or listener zio created, whose reads may go through provided
 * buffers (no ancillary data to lose, unlike a Unix socket's SCM_RIGHTS). */
#define ZIO__FD_STREAM 1u
#define ZIO__FD_SOCK 2u
#define ZIO__FD_TCP 4u
#define ZIO__FD_DRAINS 8u
/* DGRAM: a datagram socket (SOCK_DGRAM), zio's or learnt with its kind. */
#define ZIO__FD_DGRAM 16u
/* NO_NOWAIT: a file zio did not create that refused RWF_NOWAIT (a tty). */
#define ZIO__FD_NO_NOWAIT 32u

/* zio__fd.owner_epfd besides an epoll fd: */
#define ZIO__EPFD_NONE (-1)    /* not registered */
#define ZIO__EPFD_CLOSING (-2) /* zio_close() is between forgetting the fd and
				* closing it: no new registration, waits fail
				* with EBADF */
#define ZIO__EPFD_CLOSED (-3)  /* then in its close(2), or just past it: the
				* number may name a new file before the close
				* lifts this (io.c, closing_wait) */
static inline bool zio__epfd_closing(int owner_epfd)
{
	return owner_epfd == ZIO__EPFD_CLOSING || owner_epfd == ZIO__EPFD_CLOSED;
}

struct zio__fd {
	/* One cache line per entry: every socket op on io_uring reads kind,
	 * traits and ms, and an entry that straddled two lines cost a second
	 * miss per op once there are thousands of connections. */
	_Alignas(ZIO__CACHELINE) zio__spin lock;
	uint32_t incarnation;      /* bumped when the number's file goes
				    * (zio_close, or a new file after a plain
				    * close): how an op or a wait that began
				    * on the old file tells */
	uint32_t seq[2];           /* readiness edges seen, per direction */
	struct zio__op *waiters[2]; /* readiness waits, per direction */
	int owner_epfd;            /* epoll: the instance it is registered with,
				    * or ZIO__EPFD_NONE, _CLOSING, _CLOSED;
				    * written under lock, atomically (some
				    * readers peek without the lock) */
	uint8_t kind;              /* enum zio__fd_kind, a hint */
	uint8_t traits;            /* ZIO__FD_STREAM | SOCK | TCP, hints */
	uint8_t no_hint;           /* epoll saw the read side end (RDHUP, HUP,
				    * ERR) or urgent data (PRI): what is left
				    * to read may have no edge to come */
	uint8_t ep_out;            /* epoll: registered for EPOLLOUT too */
	_Atomic uint64_t execs;    /* completion: executors (id % 64) that used it */
	/* epoll: 1 << 32 | seq[READ] when a read found the stream empty (EAGAIN
	 * or a short read) with that sequence number loaded before it; 0 if
	 * unknown. While seq[READ] has not moved, no edge has been reaped since,
	 * so a read would find it empty again and the fiber waits at once
	 * instead (data that came after has an edge on its way). Not once
	 * no_hint is set: an EOF or error that came with the edge before the
	 * short read is still to be read, and so are the bytes after TCP's
	 * urgent mark, where a read stops short; no later edge announces them. */
	_Atomic uint64_t rd_empty;
	/* io_uring: the multishot request state serving this fd, owned by one
	 * loop and set and cleared on that loop's thread only. It begins with
	 * a pointer to its struct zio__loop, which never changes. */
	void *_Atomic ms;
};
_Static_assert(sizeof(struct zio__fd) == ZIO__CACHELINE, "fd table entry: one cache line");

/* The entry for fd (fd >= 0), allocating its chunk; NULL if out of memory
 * or fd is absurdly large. */
struct zio__fd *zio__fd_get(int fd);
/* Why zio__fd_get(fd) gave NULL: -EBADF for a number no file can have
 * (negative, or beyond the table, past any sane RLIMIT_NOFILE), else
 * -ENOMEM. */
int zio__fd_get_error(int fd);
/* Existing entry or NULL: never allocates. */
struct zio__fd *zio__fd_peek(int fd);
/* The number's file went (zio_close, or a new file after a plain close)
 * since incarnation was read from ent. */
static inline bool zio__fd_replaced(const struct zio__fd *ent, uint32_t incarnation)
{
	return __atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE) != incarnation;
}
/* The file fd names as a call of several ops (or waits) begins: a
 * zio_close() of fd during one of them, and a new file under the number,
 * must end the call, not have the next op use the new file. */
struct zio__fd_mark {
	struct zio__fd *ent; /* NULL: no entry, nothing to tell */
	uint32_t incarnation;
};
static inline struct zio__fd_mark zio__fd_mark(int fd)
{
	struct zio__fd *ent = zio__fd_get(fd);
	return (struct zio__fd_mark){ ent, ent ? __atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE) : 0 };
}
static inline bool zio__fd_gone(struct zio__fd_mark m)
{
	return m.ent && zio__fd_replaced(m.ent, m.incarnation);
}
/* fd's ZIO__FD_* kind, from ent (may be NULL) or learnt with fcntl and
 * fstat and remembered there; -errno if fd is not open. */
int zio__fd_kind(int fd, struct zio__fd *ent);
/* For calls that are no single op (zio_sendfile): what an op on fd that
 * begins now gets from a zio_close() of it under way (io.h: -EBADF, or
 * a wait for the close to finish), else 0. A task's only. */
int zio__fd_not_closing(int fd, int64_t deadline);
/* Calls fn on every allocated entry below fd number end (an epoll loop's
 * stop and destruction). The table spans 64M numbers: a walk of all of it
 * reads 512 KiB of chunk pointers. */
void zio__fd_foreach(int end, void (*fn)(int fd, struct zio__fd *ent, void *arg), void *arg);
/* Readiness wait lists: under ent->lock. */
void zio__fd_link(struct zio__fd *ent, struct zio__op *op);
void zio__fd_unlink(struct zio__fd *ent, struct zio__op *op);
/* Bumps a readiness sequence number (under ent->lock; read without it). */
static inline void zio__fd_seq_bump(struct zio__fd *ent, int dir)
{
	__atomic_store_n(&ent->seq[dir], ent->seq[dir] + 1, __ATOMIC_RELEASE);
}
/* Claims every wait in direction dir with value (under ent->lock). */
void zio__fd_wake(struct zio__fd *ent, int dir, int value);
/* Wakes the waiters of dir for readiness: 0 for ops, and for a readiness
 * wait (POLL) the poll events the backend saw, which it returns if they
 * are what it waits for: some files (/proc/self/mounts) report POLLPRI to
 * one poll only, so polling again after the wake would miss it. */
void zio__fd_ready(struct zio__fd *ent, int dir, unsigned events);
/* A readiness wait's result from what its waker saw (see zio__fd_ready):
 * the events it asked for, errors and hangups, or 0 (look again). */
static inline int zio__poll_result(const struct zio__op *op, unsigned seen)
{
	return (int)(seen & ((unsigned)(unsigned short)op->u.poll.events | POLLERR | POLLHUP | POLLNVAL));
}

/* ------------------------------------------------------------------ io.c */
/* Runs op to completion from a fiber or a plain thread: the one helper
 * every I/O call goes through. Returns op's result or -errno. */
ssize_t zio__op_run(struct zio__op *op, int64_t deadline);
/* The op's syscall, once, non-blocking where that means anything. */
ssize_t zio__op_syscall(struct zio__op *op);

/* ------------------------------------------------------------ blocking.c */
/* Runs op's syscall (blocking) on the pool and waits for it; a job that has
 * not started when the wait ends is dropped, one that has is waited for.
 * Out of time already (deadline 0, or past): a regular file's read or
 * write is done in place (it never waits, it just takes its time), and
 * anything else is -EAGAIN (deadline 0) or -ETIMEDOUT, not a race between
 * the wait and a pool thread. */
ssize_t zio__blocking_op(struct zio__op *op, int64_t deadline);
/* Whether the calling task's (or thread's) deadline, its timeout scopes
 * included, is 0 or already past. */
bool zio__out_of_time(int64_t deadline);

/* A pool job that may outlive its waiter (DNS): heap-allocated,
 * reference-counted; the waiter may give up at once. */
struct zio__job {
	struct zio__job *next;
	void (*run)(struct zio__job *j);
	void (*release)(struct zio__job *j); /* frees; called on the last ref */
	/* Optional: called once by a waiter whose deadline or cancellation
	 * came while run() runs, to make run() return soon. */
	void (*abort)(struct zio__job *j);
	atomic_int refs;
	int state;             /* under the pool lock */
	struct zio__parker *parker;
	uint32_t gen;
	bool detached;         /* heap job: the pool drops a reference when done */
	bool abandoned;        /* detached, and its waiter left while it ran (pool lock) */
	/* The fds run() works on: a zio_close() of one after
	 * zio__job_watch_fd() means it is not done at all (-EBADF). With
	 * by_number, run() names them by number with no descriptor of its own
	 * (regular files, directories), so a zio_close() of one also waits
	 * while it runs. */
	struct zio__job_fd {
		int fd;
		uint32_t incarnation;
		struct zio__fd *ent;
	} fds[2];
	uint8_t n_fds;
	bool by_number;
	bool aborted;          /* abort() was called (under the pool lock) */
	long result;
};
/* Adds fd to j->fds (at most two); -errno if fd can have no entry. */
int zio__job_watch_fd(struct zio__job *j, int fd);
/* zio_blocking_call() for a job whose fn names in_fd and out_fd (a file,
 * and a file, socket or pipe) by number. */
long zio__blocking_call_on_files(long (*fn)(void *), void *arg, int64_t deadline, int in_fd,
				 int out_fd);
/* Queues j and waits for it until deadline; returns 0 if it ran, else the
 * wait's error (the job then finishes on its own). Either way the caller
 * drops its reference with zio__job_unref() when done with the result. */
int zio__blocking_wait_detached(struct zio__job *j, int64_t deadline);
void zio__job_unref(struct zio__job *j);
/* zio_close(fd), after forget_fd()'s incarnation bump and before close():
 * waits for the pool's jobs that name fd by number and are running. */
void zio__blocking_fd_quiesce(int fd);
/* backend.c: makes SIGPIPE a no-op handler, once, unless the application
 * set its own (a write to a socket whose peer is gone must fail with EPIPE,
 * not kill the process; writev and write have no MSG_NOSIGNAL). Done by the
 * first runtime, or the first I/O call from a plain thread. */
void zio__sigpipe_once(void);
/* io.c: the outcome of a non-blocking connect of fd to addr that poll says
 * is over (writable): 0, -errno, or -EAGAIN (-EINPROGRESS: a new attempt
 * began, another caller having ended the last) if it is still under way. */
int zio__connect_finish(int fd, const struct sockaddr *addr, socklen_t len);
/* io.c: a descriptor zio created non-blocking, with its ZIO__FD_* traits. */
void zio__fd_created(int fd, unsigned traits);
/* A new file zio opened at fd, of a kind (ZIO__FD_UNKNOWN: to be learnt)
 * and traits: whatever the number's last file left (closed behind zio's
 * back) is forgotten, as for zio__fd_created. */
void zio__fd_fresh(int fd, unsigned kind, unsigned traits);

#endif
