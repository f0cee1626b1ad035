/*
 * zio/io.h - I/O that looks blocking to the task: sockets, addresses, DNS,
 * files, readiness waits, the blocking pool, buffered streams.
 *
 * Included by zio.h. The conventions of zio.h hold: -errno results, and
 * every call that may wait takes an absolute deadline (ZIO_FOREVER, a
 * zio_deadline_after() value, or 0 = try once: a stream call that would
 * have to wait returns -EAGAIN; with a deadline already past it still
 * takes what is ready, then says -ETIMEDOUT) and honours deadline scopes
 * and cancellation. While a call waits, the executor runs other tasks;
 * a task whose calls never have to wait (input always there) yields once
 * every 128 of them, so that it does not hold the executor.
 *
 * Descriptors are plain ints. Sockets and pipes made here are non-blocking
 * and close-on-exec. fds made elsewhere work too, blocking or not (their
 * O_NONBLOCK flag is never changed). Close every fd you use with zio calls
 * through zio_close(): it wakes other tasks waiting on it (they get -EBADF)
 * and drops the backend's registration before the number can be reused.
 * On io_uring a TCP socket or listener that zio_read() or zio_accept()
 * served keeps a request armed that takes input in ahead of the next call
 * (README, multishot): what it took is read only by zio calls on that fd
 * number, not by read(2) of the same file (a dup, a TLS library, another
 * process). To hand such a socket on, first read what zio holds (zio_recv
 * with MSG_DONTWAIT until -EAGAIN: a zio_wait_fd() reports those bytes as
 * input, which read(2) never sees), then a zio_wait_fd() for input lets
 * go of the socket while nothing is queued, so that what comes next stays
 * in the socket; $ZIO_URING_MULTISHOT=0 turns the requests off (do so for
 * TCP urgent data, MSG_OOB: a request reads past it, which drops it,
 * unless the socket has SO_OOBINLINE).
 *
 * Cancellation of a call in flight really cancels it (io_uring
 * ASYNC_CANCEL, or the readiness wait is removed) and returns -ECANCELED;
 * if the operation completed anyway, its result is returned instead (no
 * bytes are lost, nor its own error, such as a reset) and the cancellation
 * stays pending for the next call. A deadline is the same: -ETIMEDOUT only
 * when the operation did not finish.
 *
 * Called from a thread that is not running a task, these calls block the
 * thread (poll() with the deadline), so libraries can use them anywhere.
 *
 * Regular files: use zio_file_*: io_uring does them natively, except reads
 * and writes at the file's own position (the ring does not keep it as
 * read(2) and write(2) do: use zio_file_pread/pwrite for native speed);
 * those, and everything on the epoll and poll backends, run on the
 * blocking pool, so a slow disk never stalls an executor.
 */
#ifndef ZIO_IO_H
#define ZIO_IO_H

#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <sys/un.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- addresses */

/* An IPv4, IPv6 or Unix socket address, with its length. */
typedef struct zio_addr {
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
		struct sockaddr_un un;
		struct sockaddr_storage ss;
	};
	socklen_t len;
} zio_addr;

/* Longest text zio_addr_format() writes, NUL included: "unix:" and a
 * 108-byte Unix path (or "unix:@" and a 107-byte abstract name) of control
 * bytes, each escaped as \xNN: 438. */
#define ZIO_ADDR_STRLEN 440

/* Parses "1.2.3.4:80", "[::1]:80", "[fe80::1%eth0]:80", "1.2.3.4", "::1"
 * (port 0), "unix:/path", "unix:@abstract", or "/path" / "@abstract" (a
 * Unix socket; '@' is the abstract namespace), or "unix:" (the unnamed
 * Unix address; bind() to it autobinds). In Unix names "\\" is a
 * backslash and "\xNN" the byte NN (an abstract name may hold NULs).
 * -EINVAL for anything else: garbage, ports over 65535, unknown
 * interfaces, names too long, bad escapes. */
ZIO_API int zio_addr_parse(zio_addr *out, const char *text);
/* An IP address (no port in text) with port. */
ZIO_API int zio_addr_ip(zio_addr *out, const char *ip, uint16_t port);
/* A Unix address from a raw name (no escapes); a leading '@' means the
 * abstract namespace. */
ZIO_API int zio_addr_unix(zio_addr *out, const char *path);
/* From a kernel sockaddr, length-checked. */
ZIO_API int zio_addr_from_sockaddr(zio_addr *out, const struct sockaddr *sa, socklen_t len);
/* The text zio_addr_parse() reads back. Returns its length or -ENOSPC. */
ZIO_API int zio_addr_format(const zio_addr *a, char *buf, size_t size);
ZIO_API int zio_addr_port(const zio_addr *a); /* -EINVAL for Unix addresses */
ZIO_API int zio_addr_set_port(zio_addr *a, uint16_t port);
ZIO_API bool zio_addr_is_loopback(const zio_addr *a);

/* ------------------------------------------------------------------ sockets */

/* socket(2), always non-blocking and close-on-exec. */
ZIO_API int zio_socket(int domain, int type, int protocol);
ZIO_API int zio_bind(int fd, const zio_addr *addr);
ZIO_API int zio_listen(int fd, int backlog);
/* Returns the new connection (non-blocking, close-on-exec); *peer (may be
 * NULL) gets its address. */
ZIO_API int zio_accept(int fd, zio_addr *peer, int64_t deadline);
/* Waits as connect(2) on a blocking socket does, also for room in a Unix
 * listener's full backlog (retried after short pauses: the kernel has no
 * event for it). On -ETIMEDOUT or -ECANCELED the socket is left
 * half-connected or shut down: close it. A connection made and then reset
 * before the call returns is an error, as connect(2) says it: -ECONNRESET,
 * or -EPIPE if the peer had closed it first (a listener closed, say). */
ZIO_API int zio_connect(int fd, const zio_addr *addr, int64_t deadline);
ZIO_API int zio_shutdown(int fd, int how);
ZIO_API int zio_socketpair(int domain, int type, int fds[2]);
ZIO_API int zio_local_addr(int fd, zio_addr *out);
ZIO_API int zio_peer_addr(int fd, zio_addr *out);

struct zio_listen_options {
	int backlog;        /* 0: SOMAXCONN */
	bool no_reuse_addr; /* SO_REUSEADDR is on unless this is set */
	bool reuse_port;    /* SO_REUSEPORT */
};
/* Stream listener on addr (TCP, or a Unix stream socket for a Unix
 * address; a stale socket file is not removed). opts may be NULL. */
ZIO_API int zio_tcp_listen(const zio_addr *addr, const struct zio_listen_options *opts);
ZIO_API int zio_tcp_accept(int lfd, zio_addr *peer, int64_t deadline);
/* Stream connection to addr (TCP with TCP_NODELAY, or Unix): the new
 * connected fd, or -errno (no fd is left open then). Deadline 0 is one
 * try: a TCP handshake seldom completes within it (-EAGAIN, loopback
 * too), so give it time; for a connect that goes on while the task does
 * other work, zio_socket, then zio_connect in a task of its own. */
ZIO_API int zio_tcp_connect(const zio_addr *addr, int64_t deadline);
/* Tries each of n addresses in turn until one connects, all within
 * deadline: with a finite deadline each attempt gets an equal share of the
 * time left (at least 2 s of it), so an address that silently drops
 * packets cannot use up the time of the ones after it; with deadline 0
 * each address gets one try (-EAGAIN: a connect that would have had to
 * wait). Returns the fd, or the error that says most about the host (a
 * refusal or timeout rather than, say, no route for that address family);
 * the first such error. */
ZIO_API int zio_tcp_connect_addrs(const zio_addr *addrs, int n, int64_t deadline);
/* Resolves host (zio_dns_resolve), then zio_tcp_connect_addrs on the first
 * 16 addresses, in the resolver's order (RFC 6724: the likeliest first). */
ZIO_API int zio_tcp_connect_host(const char *host, uint16_t port, int64_t deadline);

/* Datagram socket bound to addr (UDP, or a Unix datagram socket). */
ZIO_API int zio_udp_bind(const zio_addr *addr);
/* Unbound datagram socket of a family (AF_INET, AF_INET6, AF_UNIX). */
ZIO_API int zio_udp_socket(int family);

ZIO_API int zio_socket_set_nodelay(int fd, bool on);
ZIO_API int zio_socket_set_keepalive(int fd, bool on);
ZIO_API int zio_socket_set_reuseaddr(int fd, bool on);
ZIO_API int zio_socket_set_reuseport(int fd, bool on);
ZIO_API int zio_socket_set_sndbuf(int fd, int bytes);
ZIO_API int zio_socket_set_rcvbuf(int fd, int bytes);
ZIO_API int zio_socket_sndbuf(int fd); /* current size, or -errno */
ZIO_API int zio_socket_rcvbuf(int fd);

/* ---------------------------------------------------------------- transfers */

/* Any fd: sockets, pipes, ttys, eventfds... read returns 0 at EOF, and
 * for len 0 at once, as read(2) does (zio_recv of 0 bytes on a stream
 * waits for input, as recv(2) does). */
ZIO_API ssize_t zio_read(int fd, void *buf, size_t len, int64_t deadline);
ZIO_API ssize_t zio_write(int fd, const void *buf, size_t len, int64_t deadline);
ZIO_API ssize_t zio_readv(int fd, const struct iovec *iov, int iovcnt, int64_t deadline);
ZIO_API ssize_t zio_writev(int fd, const struct iovec *iov, int iovcnt, int64_t deadline);
/* Writes everything (len on success). On an error part may have gone out.
 * A zio_close() of fd between its writes ends it with -EBADF: the rest
 * never goes to a new file under the number. */
ZIO_API ssize_t zio_write_all(int fd, const void *buf, size_t len, int64_t deadline);
/* Like zio_write_all over an iovec array. It uses the array as scratch:
 * after an error the element it stopped in has been cut to what remained
 * of it, but the elements before are left as they were, so the array does
 * not tell how much went out. */
ZIO_API ssize_t zio_writev_all(int fd, struct iovec *iov, int iovcnt, int64_t deadline);

/* Sockets: send/recv flags as in send(2)/recv(2); MSG_NOSIGNAL is implied.
 * MSG_WAITALL on a stream waits for the whole buffer on every backend
 * (recvmsg: unless it has a control buffer, which a later message's fds
 * would need); on EOF, error, deadline, cancel or a zio_close() of fd it
 * returns what came. */
ZIO_API ssize_t zio_recv(int fd, void *buf, size_t len, int flags, int64_t deadline);
ZIO_API ssize_t zio_send(int fd, const void *buf, size_t len, int flags, int64_t deadline);
ZIO_API ssize_t zio_recvfrom(int fd, void *buf, size_t len, int flags, zio_addr *from,
			     int64_t deadline);
ZIO_API ssize_t zio_sendto(int fd, const void *buf, size_t len, int flags, const zio_addr *to,
			   int64_t deadline);
ZIO_API ssize_t zio_recvmsg(int fd, struct msghdr *msg, int flags, int64_t deadline);
ZIO_API ssize_t zio_sendmsg(int fd, const struct msghdr *msg, int flags, int64_t deadline);

/* Waits until fd is ready for events (at least one of POLLIN, POLLOUT,
 * POLLPRI, else -EINVAL); returns the ready events (poll revents,
 * POLLHUP/POLLERR included), -ETIMEDOUT, -ECANCELED or -EBADF (not open,
 * or closed by zio_close meanwhile). For code that owns its own fds and
 * does its own non-blocking calls. A regular file is always readable and
 * writable; POLLPRI on one (/proc/self/mounts, cgroup.events, sysfs
 * attributes) waits for its change notice. POLLPRI on a socket, on
 * io_uring, is asked of poll(2) every 10 ms at most (the ring's poll
 * misses TCP urgent data that comes during the wait). */
ZIO_API int zio_wait_fd(int fd, short events, int64_t deadline);

/* Wakes every task waiting on fd (-EBADF), cancels its backend ops, then
 * closes it; the number is free when it returns, and so is the file (a
 * listener's address, for the next listen) unless noted here. On io_uring,
 * requests on fd in another executor's ring end at that executor's next
 * poll, and the file with them: the caller waits up to 50 ms for that poll
 * (then goes on, and the file closes at it), for each such executor, and
 * in any case until it has handed the kernel what it had queued on fd (or,
 * out of descriptors, until it has cancelled); on poll, likewise up to 50
 * ms for each other executor's poll(2) that holds the file until it
 * returns (a caller outside the runtime, a plain thread or another
 * runtime's task, does not wait for those: the file closes a moment
 * after). A busy executor polls when it next yields; executor 0, after
 * zio_runtime_run() has returned, at once if zio_close is called on the
 * thread that ran it, else at the next run or destroy (not waited for).
 * Call it from a task, or from the thread that runs the runtime: another
 * plain thread, or a task of another runtime, cannot reach the single
 * io_uring requests tasks have in flight on fd (multishot requests
 * excepted), which then end only with their tasks. File work zio does on
 * the blocking pool (file and path ops on epoll and poll, reads and writes
 * at a file's position on io_uring too, zio_sendfile between files
 * everywhere) that names fd by number is waited for while it runs: on a
 * regular file or a directory (fd as a dirfd); one not yet started is not
 * done (-EBADF). What user code does in zio_blocking_call() is not waited
 * for. A call on fd that begins while the close is under way fails with
 * -EBADF; one that begins as the close(2) itself runs, when another thread
 * may already have made a new file under the number, waits for the close
 * to finish and then works on what the number names, or ends with -EAGAIN
 * (deadline 0) or -ETIMEDOUT if its own time runs out first, or -EBADF
 * after 50 ms. */
ZIO_API int zio_close(int fd);
/* pipe2(O_NONBLOCK | O_CLOEXEC). */
ZIO_API int zio_pipe(int fds[2]);

/* ---------------------------------------------------------------------- DNS */

/* Up to max addresses of host (a name, a numeric address, or an IPv6 one in
 * brackets) with port set, in getaddrinfo order, and never more than the
 * first 64; family is AF_UNSPEC, AF_INET or AF_INET6. Returns how many
 * were stored (> 0), or -errno: -ENOENT for an unknown name (also one the
 * resolver finds malformed), -EAGAIN for a temporary failure or, with
 * deadline 0, for a name (numeric addresses need no wait), -EINVAL for a
 * bad argument. The lookup runs on the blocking pool; a timeout or
 * cancellation returns at once even if the lookup is still running (it
 * finishes and is thrown away). Called inside a zio_blocking_call() job
 * when no pool thread is free to take the lookup at once, the job's own
 * thread makes it, and then the deadline is not kept (waiting for a
 * thread could deadlock a full pool). */
ZIO_API int zio_dns_resolve(const char *host, uint16_t port, int family, zio_addr *out, int max,
			    int64_t deadline);

/* -------------------------------------------------------------------- files */

/* open(2)/openat(2): O_CLOEXEC is added. The open does not wait for the
 * other end of a FIFO or a device's carrier (as io_uring opens, on every
 * backend): a FIFO's reader gets its fd at once, a writer with no reader
 * -ENXIO; O_NONBLOCK is left as the flags say. */
ZIO_API int zio_file_open(const char *path, int flags, mode_t mode, int64_t deadline);
ZIO_API int zio_file_openat(int dirfd, const char *path, int flags, mode_t mode,
			    int64_t deadline);
/* At the file position (read/write) or at off (pread/pwrite). */
ZIO_API ssize_t zio_file_read(int fd, void *buf, size_t len, int64_t deadline);
ZIO_API ssize_t zio_file_write(int fd, const void *buf, size_t len, int64_t deadline);
ZIO_API ssize_t zio_file_pread(int fd, void *buf, size_t len, off_t off, int64_t deadline);
ZIO_API ssize_t zio_file_pwrite(int fd, const void *buf, size_t len, off_t off,
				int64_t deadline);
/* Writes all of buf at off (or at the position if off < 0). */
ZIO_API ssize_t zio_file_write_all(int fd, const void *buf, size_t len, off_t off,
				   int64_t deadline);
ZIO_API int zio_file_sync(int fd, int64_t deadline);
ZIO_API int zio_file_datasync(int fd, int64_t deadline);
ZIO_API int zio_file_stat(const char *path, struct stat *st, int64_t deadline);
ZIO_API int zio_file_fstat(int fd, struct stat *st, int64_t deadline);
ZIO_API int zio_file_rename(const char *from, const char *to, int64_t deadline);
ZIO_API int zio_file_unlink(const char *path, int64_t deadline);
ZIO_API int zio_dir_create(const char *path, mode_t mode, int64_t deadline);
ZIO_API int zio_dir_remove(const char *path, int64_t deadline);
/* zio_close(), under the files' prefix. */
ZIO_API int zio_file_close(int fd);
/* Copies up to count bytes from in_fd (at *offset, advanced, or at its
 * position if offset is NULL) to out_fd, a socket, pipe or file (O_APPEND
 * too), in the kernel where it can (sendfile/copy_file_range). What is
 * not in the page cache is read from the disk by a pool thread, not by the
 * executor (a try-once call, deadline 0, reads it in place; it looks with
 * cachestat(2) per 1 MiB piece, or mincore(2) before Linux 6.5). Returns
 * bytes copied, short at EOF or when an error or the deadline cut it
 * short (what was written is counted, and *offset moved by it), or -errno
 * if nothing was. What a copy cut short did not write stays in its input
 * (of a datagram, the part not written is dropped with it), unless that
 * is a pipe, tty or device and out_fd is not a socket or pipe
 * zio made (nor a regular file, which is written to the end of what was
 * read, whatever the deadline): then what was read and not written is
 * lost, as with read(2) and write(2). */
ZIO_API ssize_t zio_sendfile(int out_fd, int in_fd, off_t *offset, size_t count,
			     int64_t deadline);

/* ------------------------------------------------------------ blocking pool */

/* Runs fn(arg) on a thread of the bounded blocking pool and returns its
 * value; the executor keeps running other tasks meanwhile. If the wait
 * ends (deadline, cancellation) before fn has started, fn never runs and
 * -ETIMEDOUT / -ECANCELED is returned; once started, fn is waited for
 * (it may use the caller's stack) and its value is returned. From a plain
 * thread fn simply runs there. Where the pool has no thread and cannot
 * start one (RLIMIT_NPROC), a task's call fails with that error (-EAGAIN,
 * logged once) and a plain thread's pool work (DNS) runs on the thread.
 * The pool has up to 64 threads ($ZIO_BLOCKING_THREADS); idle ones exit
 * after 10 s ($ZIO_BLOCKING_IDLE_MS). */
ZIO_API long zio_blocking_call(long (*fn)(void *arg), void *arg, int64_t deadline);

#ifdef __cplusplus
}
#endif

#include "zio/stream.h"

#endif
