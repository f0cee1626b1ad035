/*
 * fs.c - files and the filesystem.
 *
 * Each call is one file op (backend.h): io_uring performs it natively when
 * its probe says so, otherwise (epoll, poll, older kernels) it runs on the
 * blocking pool, so a slow disk stalls a pool thread, never an executor.
 * A read or write at the position of a pipe, FIFO, tty or socket is a
 * stream's, waited for by readiness like zio_read()'s, and an open does
 * not wait for a FIFO's other end. On io_uring a read or write at a
 * regular file's position goes to the pool too (ring_unfit() in io.c):
 * the ring does not keep the position as read(2) and write(2) do; pread
 * and pwrite with their offsets are native. Deadline 0 is one try on
 * every backend: a regular file's read or write is made in place, other
 * file ops say -EAGAIN.
 * Deadlines and cancellation apply to the wait: a pool job that has not
 * started is dropped; io_uring cancels what it can (an op already running
 * in the kernel may still complete, and then its result is returned).
 *
 * zio_sendfile() copies in the kernel where it can: copy_file_range(2)
 * between files (on the pool, like any disk I/O, in 64 MiB pieces so a
 * cancel or close waits for one piece), sendfile(2) from a file into a
 * non-blocking socket or pipe (waiting for room on EAGAIN; yielding and
 * looking at the deadline between 1 MiB calls). A piece of the file not
 * all in the page cache is sent by a pool thread, which waits for the
 * disk (but a try-once call, deadline 0, and a plain thread send it
 * themselves). A pipe into a socket or pipe zio made goes by splice(2).
 * Everything else (a socket or pipe as input, an output in blocking mode,
 * an O_APPEND file) goes through a buffer with zio's reads and writes,
 * and a copy cut short leaves in its input what it did not write, except
 * from a pipe, tty or device into an output zio did not make (copy_slow).
 */
#include "backend.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <unistd.h>

static int path_op(int opcode, int dirfd, const char *path, int flags, unsigned mode,
		   int64_t deadline)
{
	if (!path)
		return -EINVAL;
	struct zio__op op = { .opcode = (uint8_t)opcode, .fd = -1 };
	op.u.path.dirfd = dirfd;
	op.u.path.path = path;
	op.u.path.flags = flags;
	op.u.path.mode = mode;
	return (int)zio__op_run(&op, deadline);
}

/* Opens non-blocking first, on every backend (io_uring's worker threads
 * too, which otherwise open blocking), so a FIFO or a device that would
 * wait for a peer or a carrier answers at once: a FIFO's reader gets its
 * fd, a writer with no reader ENXIO, instead of a wait that held a pool or
 * kernel thread past any deadline, cancel or zio_close() of its directory.
 * O_NONBLOCK is then cleared unless asked for. A lease the non-blocking
 * open will not break (EWOULDBLOCK) is waited for. */
ZIO_API int zio_file_openat(int dirfd, const char *path, int flags, mode_t mode,
			    int64_t deadline)
{
	flags |= O_CLOEXEC;
	bool at_once = !(flags & (O_NONBLOCK | O_PATH));
	int fd = path_op(ZIO__OP_OPENAT, dirfd, path, at_once ? flags | O_NONBLOCK : flags, mode,
			 deadline);
	if (fd == -EWOULDBLOCK && at_once && deadline != 0) {
		fd = path_op(ZIO__OP_OPENAT, dirfd, path, flags, mode, deadline);
	} else if (fd >= 0 && at_once) {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
			int err = -errno;
			close(fd);
			return err;
		}
	}
	if (fd >= 0)
		zio__fd_fresh(fd, ZIO__FD_UNKNOWN, 0); /* a socket's traits, say, must go */
	return fd;
}

ZIO_API int zio_file_open(const char *path, int flags, mode_t mode, int64_t deadline)
{
	return zio_file_openat(AT_FDCWD, path, flags, mode, deadline);
}

static ssize_t file_rw(int opcode, int fd, void *buf, size_t len, int64_t off, int64_t deadline)
{
	struct zio__op op = { .opcode = (uint8_t)opcode, .fd = fd };
	op.u.rw.buf = buf;
	op.u.rw.len = len > 0x7ffff000u ? 0x7ffff000u : len;
	op.u.rw.off = off;
	return zio__op_run(&op, deadline);
}

ZIO_API ssize_t zio_file_read(int fd, void *buf, size_t len, int64_t deadline)
{
	return file_rw(ZIO__OP_FREAD, fd, buf, len, -1, deadline);
}

ZIO_API ssize_t zio_file_write(int fd, const void *buf, size_t len, int64_t deadline)
{
	return file_rw(ZIO__OP_FWRITE, fd, (void *)buf, len, -1, deadline);
}

ZIO_API ssize_t zio_file_pread(int fd, void *buf, size_t len, off_t off, int64_t deadline)
{
	if (off < 0)
		return -EINVAL;
	return file_rw(ZIO__OP_PREAD, fd, buf, len, off, deadline);
}

ZIO_API ssize_t zio_file_pwrite(int fd, const void *buf, size_t len, off_t off,
				int64_t deadline)
{
	if (off < 0)
		return -EINVAL;
	return file_rw(ZIO__OP_PWRITE, fd, (void *)buf, len, off, deadline);
}

ZIO_API ssize_t zio_file_write_all(int fd, const void *buf, size_t len, off_t off,
				   int64_t deadline)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = off < 0 ? zio_file_write(fd, (const char *)buf + done, len - done, deadline)
				    : zio_file_pwrite(fd, (const char *)buf + done, len - done,
						      off + (off_t)done, deadline);
		if (r < 0)
			return r;
		if (r == 0)
			return -EIO;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

static int do_sync(int fd, bool datasync, int64_t deadline)
{
	struct zio__op op = { .opcode = ZIO__OP_FSYNC, .fd = fd };
	op.u.fsync.datasync = datasync;
	return (int)zio__op_run(&op, deadline);
}

ZIO_API int zio_file_sync(int fd, int64_t deadline)
{
	return do_sync(fd, false, deadline);
}

ZIO_API int zio_file_datasync(int fd, int64_t deadline)
{
	return do_sync(fd, true, deadline);
}

static void statx_to_stat(const struct statx *x, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_dev = makedev(x->stx_dev_major, x->stx_dev_minor);
	st->st_ino = x->stx_ino;
	st->st_mode = x->stx_mode;
	st->st_nlink = x->stx_nlink;
	st->st_uid = x->stx_uid;
	st->st_gid = x->stx_gid;
	st->st_rdev = makedev(x->stx_rdev_major, x->stx_rdev_minor);
	st->st_size = (off_t)x->stx_size;
	st->st_blksize = x->stx_blksize;
	st->st_blocks = (blkcnt_t)x->stx_blocks;
	st->st_atim.tv_sec = x->stx_atime.tv_sec;
	st->st_atim.tv_nsec = x->stx_atime.tv_nsec;
	st->st_mtim.tv_sec = x->stx_mtime.tv_sec;
	st->st_mtim.tv_nsec = x->stx_mtime.tv_nsec;
	st->st_ctim.tv_sec = x->stx_ctime.tv_sec;
	st->st_ctim.tv_nsec = x->stx_ctime.tv_nsec;
}

static int do_statx(int dirfd, const char *path, int flags, struct stat *st, int64_t deadline)
{
	if (!st)
		return -EINVAL;
	struct statx x;
	struct zio__op op = { .opcode = ZIO__OP_STATX, .fd = -1 };
	op.u.path.dirfd = dirfd;
	op.u.path.path = path;
	op.u.path.flags = flags;
	op.u.path.mode = STATX_BASIC_STATS;
	op.u.path.stx = &x;
	int r = (int)zio__op_run(&op, deadline);
	if (r == 0)
		statx_to_stat(&x, st);
	return r;
}

ZIO_API int zio_file_stat(const char *path, struct stat *st, int64_t deadline)
{
	if (!path)
		return -EINVAL;
	return do_statx(AT_FDCWD, path, 0, st, deadline);
}

ZIO_API int zio_file_fstat(int fd, struct stat *st, int64_t deadline)
{
	if (fd < 0)
		return -EBADF;
	return do_statx(fd, "", AT_EMPTY_PATH, st, deadline);
}

ZIO_API int zio_file_rename(const char *from, const char *to, int64_t deadline)
{
	if (!from || !to)
		return -EINVAL;
	struct zio__op op = { .opcode = ZIO__OP_RENAMEAT, .fd = -1 };
	op.u.path.dirfd = AT_FDCWD;
	op.u.path.path = from;
	op.u.path.dirfd2 = AT_FDCWD;
	op.u.path.path2 = to;
	return (int)zio__op_run(&op, deadline);
}

ZIO_API int zio_file_unlink(const char *path, int64_t deadline)
{
	return path_op(ZIO__OP_UNLINKAT, AT_FDCWD, path, 0, 0, deadline);
}

ZIO_API int zio_dir_remove(const char *path, int64_t deadline)
{
	return path_op(ZIO__OP_UNLINKAT, AT_FDCWD, path, AT_REMOVEDIR, 0, deadline);
}

ZIO_API int zio_dir_create(const char *path, mode_t mode, int64_t deadline)
{
	return path_op(ZIO__OP_MKDIRAT, AT_FDCWD, path, 0, mode, deadline);
}

ZIO_API int zio_file_close(int fd)
{
	return zio_close(fd);
}

/* ---------------------------------------------------------------- sendfile */

/* Into a socket or pipe: sendfile (or splice) calls of at most this much,
 * between which the task yields and looks at its deadline. */
#define SEND_PIECE (1u << 20)

struct copy_args {
	int out_fd, in_fd;
	off_t *offset;
	size_t count;
};

static long copy_range(void *arg)
{
	struct copy_args *c = arg;
	ssize_t r = copy_file_range(c->in_fd, c->offset, c->out_fd, NULL, c->count, 0);
	if (r < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP))
		r = sendfile(c->out_fd, c->in_fd, c->offset, c->count);
	return r < 0 ? -errno : r;
}

/* Between pieces of a copy whose sides never made it wait: lets the
 * executor's other tasks run, and says whether the copy stops here, out
 * of time or cancelled (what went is then the answer). */
static bool stop_between_pieces(int64_t deadline)
{
	struct zio__fiber *f = zio__fiber_current();
	if (f)
		deadline = zio__effective_deadline(f, deadline);
	if (deadline != ZIO_FOREVER && zio_now() >= deadline)
		return true;
	return zio_yield() < 0;
}

/* From a pipe into a socket or pipe zio made (non-blocking): splice(2),
 * which takes from the pipe only what the output took, so a copy cut
 * short loses nothing. Waits on whichever side stopped it: the output if
 * the pipe holds bytes, else the pipe; between pieces, as the copy into
 * a socket does, it yields and looks at the deadline. */
static ssize_t copy_spliced(int out_fd, int in_fd, size_t count, int64_t deadline)
{
	/* A cancel is seen first, as every op sees it (splice is no op). */
	struct zio__fiber *f = zio__fiber_current();
	if (f && f->shield == 0 && atomic_load_explicit(&f->cancelled, memory_order_relaxed))
		return -ECANCELED;
	size_t done = 0;
	ssize_t err = 0;
	while (done < count) {
		size_t want = count - done > SEND_PIECE ? SEND_PIECE : count - done;
		ssize_t r = splice(in_fd, NULL, out_fd, NULL, want, SPLICE_F_NONBLOCK);
		if (r > 0) {
			done += (size_t)r;
			if (done < count && stop_between_pieces(deadline))
				break;
			continue;
		}
		if (r == 0)
			break; /* end of input */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			err = -errno;
			break;
		}
		int queued = 0;
		int w = ioctl(in_fd, FIONREAD, &queued) == 0 && queued > 0
				? zio_wait_fd(out_fd, POLLOUT, deadline)
				: zio_wait_fd(in_fd, POLLIN, deadline);
		if (w < 0) {
			err = w;
			break;
		}
	}
	return done ? (ssize_t)done : err;
}

/* Takes n bytes of a socket's input that a peek found there, also in a
 * task cancelled meanwhile (they were written: taken they must be), unless
 * fd was closed since the copy began (the number may name another file). */
static void consume(int fd, struct zio__fd_mark start, char *buf, size_t n)
{
	struct zio__fiber *f = zio__fiber_current();
	if (f)
		f->shield++;
	while (n > 0 && !zio__fd_gone(start)) {
		ssize_t r = zio_recv(fd, buf, n, 0, 0);
		if (r <= 0)
			break; /* another reader took them */
		n -= (size_t)r;
	}
	if (f)
		f->shield--;
}

/* Read/write through a buffer: for pairs the kernel will not copy. The
 * count returned (and *offset) covers exactly the bytes written, and the
 * input keeps what a write cut short did not take: an input at an offset
 * is read there; one with a position is moved back over it; a socket's
 * input is peeked at and then taken as far as the write went; a pipe's
 * goes by splice(2) into a socket or pipe zio made, and into a regular
 * file the bytes read are written out whatever the deadline or a cancel
 * (a file write ends). Only a pipe, tty or device into an output zio did
 * not make (which may block, so no splice) loses what it read and could
 * not write. Every 1 MiB, as sendfile's pieces, it yields and looks at
 * the deadline: reads and writes that never wait never look. */
static ssize_t copy_slow(int out_fd, int in_fd, off_t *offset, size_t count, int64_t deadline)
{
	struct stat in_st, out_st;
	if (fstat(in_fd, &in_st) < 0 || fstat(out_fd, &out_st) < 0)
		return -errno;
	bool seek = offset || S_ISREG(in_st.st_mode) || S_ISBLK(in_st.st_mode);
	bool peek = !seek && S_ISSOCK(in_st.st_mode);
	if (!seek && !peek && S_ISFIFO(in_st.st_mode) &&
	    zio__fd_kind(out_fd, zio__fd_get(out_fd)) == ZIO__FD_NONBLOCK) {
		ssize_t s = copy_spliced(out_fd, in_fd, count, deadline);
		if (s != -EINVAL)
			return s; /* (-EINVAL: a pair splice refuses) */
	}
	bool finish = !seek && !peek && S_ISREG(out_st.st_mode);
	struct zio__fd_mark start = zio__fd_mark(in_fd);
	struct zio__fiber *f = zio__fiber_current();
	char buf[16384];
	size_t done = 0;
	while (done < count) {
		size_t want = count - done < sizeof(buf) ? count - done : sizeof(buf);
		ssize_t r = offset ? zio_file_pread(in_fd, buf, want, *offset, deadline)
			    : peek ? zio_recv(in_fd, buf, want, MSG_PEEK, deadline)
				   : zio_read(in_fd, buf, want, deadline);
		if (r <= 0) {
			if (r < 0 && done == 0)
				return r;
			break;
		}
		size_t put = 0;
		ssize_t err = 0;
		if (finish && f)
			f->shield++;
		while (put < (size_t)r) {
			ssize_t w = zio_write(out_fd, buf + put, (size_t)r - put,
					      finish ? ZIO_FOREVER : deadline);
			if (w <= 0) {
				err = w < 0 ? w : -EIO;
				break;
			}
			put += (size_t)w;
		}
		if (finish && f)
			f->shield--;
		if (offset)
			*offset += (off_t)put;
		else if (peek)
			consume(in_fd, start, buf, put);
		else if (put < (size_t)r && seek)
			(void)lseek(in_fd, -(off_t)((size_t)r - put), SEEK_CUR);
		done += put;
		if (err)
			return done ? (ssize_t)done : err;
		if (done < count && done / SEND_PIECE != (done - put) / SEND_PIECE &&
		    stop_between_pieces(deadline))
			break;
	}
	return (ssize_t)done;
}

/* File-to-file copies go to the pool in pieces of at most this much, so a
 * timeout, a cancel or a zio_close() of either fd waits for one piece, not
 * for gigabytes. */
#define COPY_PIECE (64u << 20)

#ifndef SYS_cachestat
#define SYS_cachestat 451 /* one number on every architecture (Linux 6.5) */
#endif

/* Pages of [off, end) of fd in the page cache, from cachestat(2); -1 where
 * the kernel has none (learnt once). It counts pages still being read in
 * too, which sendfile may then wait for: the disk read is under way. */
static long cached_pages(int fd, off_t off, off_t end)
{
	static atomic_bool absent;
	if (atomic_load_explicit(&absent, memory_order_relaxed))
		return -1;
	struct {
		uint64_t off, len;
	} range = { (uint64_t)off, (uint64_t)(end - off) };
	struct {
		uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
	} cs;
	if (syscall(SYS_cachestat, fd, &range, &cs, 0) == 0)
		return (long)cs.nr_cache;
	if (errno == ENOSYS || errno == EPERM)
		atomic_store_explicit(&absent, true, memory_order_relaxed);
	return -1;
}

/* Pages of [off, end) of fd in the page cache, or -1 if it cannot be
 * told: mincore(2) on a mapping never touched (dearer than cachestat: a
 * mapping made and unmade per piece). */
static long resident_pages(int fd, off_t off, off_t end)
{
	size_t span = (size_t)(end - off), page = (size_t)sysconf(_SC_PAGESIZE);
	size_t pages = (span + page - 1) / page;
	unsigned char vec[SEND_PIECE / 4096 + 2];
	if (pages > sizeof(vec))
		return -1;
	void *m = mmap(NULL, span, PROT_READ, MAP_SHARED, fd, off);
	if (m == MAP_FAILED)
		return -1;
	long in = mincore(m, span, vec) == 0 ? 0 : -1;
	for (size_t i = 0; in >= 0 && i < pages; i++)
		in += vec[i] & 1;
	munmap(m, span);
	return in;
}

/* Whether sendfile(2) of [off, off + len) from fd finds every page in the
 * page cache and so need not wait for the disk: asked of cachestat(2), or
 * before Linux 6.5 of mincore(2). Pages past the end of the file count as
 * missing, so only an answer of "no" asks for the file's size (fstat).
 * A file that can be asked neither way is taken to be cold. */
static bool in_page_cache(int fd, off_t off, size_t len)
{
	off_t page = (off_t)sysconf(_SC_PAGESIZE);
	off_t first = off - off % page, end = off + (off_t)len;
	long cached = cached_pages(fd, first, end);
	if (cached < 0)
		cached = resident_pages(fd, first, end);
	if (cached < 0)
		return false;
	if ((end - first + page - 1) / page <= cached)
		return true;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return false;
	if (off >= st.st_size)
		return true; /* nothing to read: sendfile says 0 */
	if (end > st.st_size)
		end = st.st_size;
	return (end - first + page - 1) / page <= cached;
}

static long send_piece(void *arg)
{
	struct copy_args *c = arg;
	ssize_t r = sendfile(c->out_fd, c->in_fd, c->offset, c->count);
	return r < 0 ? -errno : r;
}

/* One sendfile(2) of up to len bytes at pos into a non-blocking output:
 * in place when the page cache holds them, else on the pool, whose thread
 * then waits for the disk only (a job that started is waited for, so what
 * it sent is counted). Deadline 0 is one try, in place, and a plain
 * thread (no fiber) may wait for its disk itself. */
static ssize_t send_once(struct copy_args *c, off_t pos, int64_t deadline)
{
	if (deadline == 0 || !zio__fiber_current() || in_page_cache(c->in_fd, pos, c->count))
		return send_piece(c);
	return zio__blocking_call_on_files(send_piece, c, deadline, c->in_fd, c->out_fd);
}

ZIO_API ssize_t zio_sendfile(int out_fd, int in_fd, off_t *offset, size_t count,
			     int64_t deadline)
{
	/* sendfile(2) has no MSG_NOSIGNAL: a reader gone must be -EPIPE, also
	 * when this is a plain thread's first zio call. */
	zio__sigpipe_once();
	if (offset && *offset < 0)
		return -EINVAL; /* as sendfile(2) says (copy_file_range: EOVERFLOW) */
	int e = zio__fd_not_closing(out_fd, deadline);
	if (!e)
		e = zio__fd_not_closing(in_fd, deadline);
	if (e)
		return e;
	/* Kinds are remembered in the fd table: learnt once per file. */
	int out_kind = zio__fd_kind(out_fd, zio__fd_get(out_fd));
	int in_kind = zio__fd_kind(in_fd, zio__fd_get(in_fd));
	if (out_kind < 0)
		return out_kind;
	if (in_kind < 0)
		return in_kind;
	size_t done = 0;
	if (out_kind == ZIO__FD_REGULAR) {
		/* copy_file_range and sendfile both refuse an O_APPEND output;
		 * a socket or pipe as input would hold a pool thread (or make
		 * its EAGAIN the answer). */
		int fl = fcntl(out_fd, F_GETFL);
		if ((fl >= 0 && (fl & O_APPEND)) || in_kind != ZIO__FD_REGULAR)
			return copy_slow(out_fd, in_fd, offset, count, deadline);
		/* File to file: disk work, on the pool (or here, off-runtime;
		 * and here when out of time already, one piece: like a file's
		 * read or write then, it never waits, it takes its time). */
		bool in_place = zio__out_of_time(deadline);
		while (done < count && !(in_place && done)) {
			size_t piece = count - done < COPY_PIECE ? count - done : COPY_PIECE;
			struct copy_args c = { out_fd, in_fd, offset, piece };
			long r = in_place ? copy_range(&c)
					  : zio__blocking_call_on_files(copy_range, &c, deadline, in_fd,
									out_fd);
			if (r == -EINVAL || r == -ENOSYS || r == -EOPNOTSUPP || r == -EXDEV) {
				ssize_t s = copy_slow(out_fd, in_fd, offset, count - done, deadline);
				return s < 0 ? (done ? (ssize_t)done : s) : (ssize_t)(done + (size_t)s);
			}
			if (r < 0)
				return done ? (ssize_t)done : r;
			if (r == 0)
				break;
			done += (size_t)r;
		}
		return (ssize_t)done;
	}
	/* sendfile's EAGAIN is only the output's when the input is a file (it
	 * reads the page cache): from a socket or pipe into a pipe (Linux
	 * 5.12+) it can be the input's, which no wait for room ends. And into
	 * an output zio did not create, which may be in blocking mode (now or
	 * by the time the call runs), it would hold the executor. Those go
	 * through a buffer, with zio's waits on both sides. */
	if (in_kind != ZIO__FD_REGULAR || out_kind != ZIO__FD_NONBLOCK)
		return copy_slow(out_fd, in_fd, offset, count, deadline);
	struct zio__fiber *f = zio__fiber_current();
	if (f)
		deadline = zio__effective_deadline(f, deadline);
	/* Pieces sent in place do not look at them: a cancel or a deadline
	 * already past is seen first, as every other op sees it. */
	if (f && f->shield == 0 && atomic_load_explicit(&f->cancelled, memory_order_relaxed))
		return -ECANCELED;
	if (deadline != ZIO_FOREVER && deadline != 0 && zio_now() >= deadline)
		return -ETIMEDOUT;
	/* Where the pieces start, to ask the page cache about them. */
	off_t pos = offset ? *offset : lseek(in_fd, 0, SEEK_CUR);
	if (pos < 0)
		return -errno;
	while (done < count) {
		size_t chunk = count - done > SEND_PIECE ? SEND_PIECE : count - done;
		ssize_t r = send_once(&(struct copy_args){ out_fd, in_fd, offset, chunk }, pos,
				      deadline);
		if (r == -EAGAIN) {
			int w = zio_wait_fd(out_fd, POLLOUT, deadline);
			if (w < 0)
				return done ? (ssize_t)done : w;
			continue;
		}
		if (r == -EINVAL || r == -ENOSYS) {
			ssize_t s = copy_slow(out_fd, in_fd, offset, count - done, deadline);
			return s < 0 ? (done ? (ssize_t)done : s) : (ssize_t)(done + (size_t)s);
		}
		if (r == -EINTR)
			continue;
		if (r < 0)
			return done ? (ssize_t)done : r;
		if (r == 0)
			break;
		done += (size_t)r;
		pos += r;
		/* A reader that keeps up never makes us wait. */
		if (done < count && stop_between_pieces(deadline))
			break;
	}
	return (ssize_t)done;
}
