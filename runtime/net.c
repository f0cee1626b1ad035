/*
 * net.c - sockets: creation, options, accept/connect, datagrams and
 * messages, and the TCP/UDP/Unix conveniences.
 *
 * Everything that waits is one zio__op through zio__op_run() (io.c), so it
 * gets the backend's native path or readiness emulation, deadlines and
 * cancellation for free. Sockets made here are SOCK_NONBLOCK|SOCK_CLOEXEC
 * and recorded as such in the fd table, so their first op costs no probe.
 */
#include "backend.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <unistd.h>

ZIO_API int zio_socket(int domain, int type, int protocol)
{
	int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
	if (fd < 0)
		return -errno;
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	bool stream = base == SOCK_STREAM;
	bool tcp = stream && (domain == AF_INET || domain == AF_INET6) &&
		   (protocol == 0 || protocol == IPPROTO_TCP);
	zio__fd_created(fd, ZIO__FD_SOCK | (stream ? ZIO__FD_STREAM : 0) |
				    (tcp ? ZIO__FD_TCP | ZIO__FD_DRAINS : 0) |
				    (base == SOCK_DGRAM ? ZIO__FD_DGRAM : 0));
	return fd;
}

ZIO_API int zio_bind(int fd, const zio_addr *addr)
{
	if (!addr)
		return -EINVAL;
	return bind(fd, &addr->sa, addr->len) < 0 ? -errno : 0;
}

ZIO_API int zio_listen(int fd, int backlog)
{
	return listen(fd, backlog) < 0 ? -errno : 0;
}

/* The length to keep of an address the kernel reported in ss: a Unix
 * path that fills sun_path is reported one byte longer than struct
 * sockaddr_un (the NUL the kernel adds beyond it), which no call takes
 * back (zio_connect said -EINVAL to zio_local_addr's answer). */
static socklen_t reported_len(const struct sockaddr_storage *ss, socklen_t len)
{
	if (len > sizeof(*ss))
		len = sizeof(*ss);
	if (ss->ss_family == AF_UNIX && len > sizeof(struct sockaddr_un))
		len = sizeof(struct sockaddr_un);
	return len;
}

ZIO_API int zio_accept(int fd, zio_addr *peer, int64_t deadline)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct zio__op op = { .opcode = ZIO__OP_ACCEPT, .fd = fd };
	op.u.sa.addr = peer ? (struct sockaddr *)&ss : NULL;
	op.u.sa.addrlen = peer ? &len : NULL;
	op.u.sa.flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
	int r = (int)zio__op_run(&op, deadline);
	if (r < 0)
		return r;
	/* A connection is a stream if its listener is (not SEQPACKET). */
	struct zio__fd *lent = zio__fd_peek(fd);
	unsigned inherited = lent ? __atomic_load_n(&lent->traits, __ATOMIC_RELAXED) &
					    (ZIO__FD_STREAM | ZIO__FD_TCP | ZIO__FD_DRAINS)
				  : 0;
	zio__fd_created(r, ZIO__FD_SOCK | inherited);
	if (peer) {
		memset(peer, 0, sizeof(*peer));
		peer->len = reported_len(&ss, len);
		memcpy(&peer->ss, &ss, peer->len);
	}
	return r;
}

ZIO_API int zio_connect(int fd, const zio_addr *addr, int64_t deadline)
{
	if (!addr)
		return -EINVAL;
	/* The waits below are no op's: a zio_close() of fd meanwhile must
	 * end the call (the number may name another socket by then, which
	 * must not be connected instead). */
	struct zio__fd_mark start = zio__fd_mark(fd);
	int64_t pause = ZIO_MSEC(1);
	for (;;) {
		struct zio__op op = { .opcode = ZIO__OP_CONNECT, .fd = fd };
		op.u.sa.addr = (struct sockaddr *)&addr->sa;
		op.u.sa.len = addr->len;
		int r = (int)zio__op_run(&op, deadline);
		if (r == -EALREADY) {
			/* A connect of fd is under way already (a try-once call
			 * left it so, or a ring's connect was cut short by the
			 * close of a dup): wait for it, as connect(2) does, and
			 * take its outcome, which connect(2) again tells. A
			 * try-once call only looks: -EAGAIN while under way. */
			if (deadline != 0) {
				int ev = zio_wait_fd(fd, POLLOUT, deadline);
				if (ev < 0)
					return ev;
				if (zio__fd_gone(start))
					return -EBADF;
			}
			r = zio__connect_finish(fd, &addr->sa, addr->len);
			if (r != -EAGAIN && r != -EINPROGRESS)
				return r;
			if (deadline == 0)
				return -EAGAIN;
			continue; /* still (or again) connecting: wait on */
		}
		/* A Unix listener with a full backlog: connect(2) on a blocking
		 * socket sleeps until it accepts, but a non-blocking one gets
		 * EAGAIN and no event when there is room. Retry after a pause
		 * that doubles up to 50 ms, until the deadline. */
		if (r != -EAGAIN || deadline == 0 || addr->sa.sa_family != AF_UNIX)
			return r;
		int w = zio__backoff(&pause, ZIO_MSEC(50), deadline);
		if (w < 0)
			return w;
		if (zio__fd_gone(start))
			return -EBADF;
	}
}

ZIO_API int zio_shutdown(int fd, int how)
{
	return shutdown(fd, how) < 0 ? -errno : 0;
}

ZIO_API int zio_socketpair(int domain, int type, int fds[2])
{
	if (!fds)
		return -EINVAL;
	if (socketpair(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
		return -errno;
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	unsigned traits = ZIO__FD_SOCK | (base == SOCK_STREAM ? ZIO__FD_STREAM : 0) |
			  (base == SOCK_DGRAM ? ZIO__FD_DGRAM : 0);
	zio__fd_created(fds[0], traits);
	zio__fd_created(fds[1], traits);
	return 0;
}

static int name_of(int fd, zio_addr *out, int peer)
{
	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	socklen_t len = sizeof(out->ss);
	int r = peer ? getpeername(fd, &out->sa, &len) : getsockname(fd, &out->sa, &len);
	if (r < 0)
		return -errno;
	out->len = reported_len(&out->ss, len);
	return 0;
}

ZIO_API int zio_local_addr(int fd, zio_addr *out)
{
	return name_of(fd, out, 0);
}

ZIO_API int zio_peer_addr(int fd, zio_addr *out)
{
	return name_of(fd, out, 1);
}

/* ------------------------------------------------------------------ options */

static int setopt(int fd, int level, int name, int v)
{
	return setsockopt(fd, level, name, &v, sizeof(v)) < 0 ? -errno : 0;
}

static int getopt_int(int fd, int level, int name)
{
	int v = 0;
	socklen_t len = sizeof(v);
	if (getsockopt(fd, level, name, &v, &len) < 0)
		return -errno;
	return v;
}

ZIO_API int zio_socket_set_nodelay(int fd, bool on)
{
	return setopt(fd, IPPROTO_TCP, TCP_NODELAY, on);
}

ZIO_API int zio_socket_set_keepalive(int fd, bool on)
{
	return setopt(fd, SOL_SOCKET, SO_KEEPALIVE, on);
}

ZIO_API int zio_socket_set_reuseaddr(int fd, bool on)
{
	return setopt(fd, SOL_SOCKET, SO_REUSEADDR, on);
}

ZIO_API int zio_socket_set_reuseport(int fd, bool on)
{
	return setopt(fd, SOL_SOCKET, SO_REUSEPORT, on);
}

ZIO_API int zio_socket_set_sndbuf(int fd, int bytes)
{
	return bytes < 0 ? -EINVAL : setopt(fd, SOL_SOCKET, SO_SNDBUF, bytes);
}

ZIO_API int zio_socket_set_rcvbuf(int fd, int bytes)
{
	return bytes < 0 ? -EINVAL : setopt(fd, SOL_SOCKET, SO_RCVBUF, bytes);
}

ZIO_API int zio_socket_sndbuf(int fd)
{
	return getopt_int(fd, SOL_SOCKET, SO_SNDBUF);
}

ZIO_API int zio_socket_rcvbuf(int fd)
{
	return getopt_int(fd, SOL_SOCKET, SO_RCVBUF);
}

/* ------------------------------------------------------------- conveniences */

static bool valid_addr(const zio_addr *a)
{
	return a && (a->sa.sa_family == AF_INET || a->sa.sa_family == AF_INET6 ||
		     a->sa.sa_family == AF_UNIX) && a->len >= sizeof(sa_family_t) &&
	       a->len <= sizeof(a->ss);
}

ZIO_API int zio_tcp_listen(const zio_addr *addr, const struct zio_listen_options *opts)
{
	if (!valid_addr(addr))
		return -EINVAL;
	struct zio_listen_options o = { 0 };
	if (opts)
		o = *opts;
	int fd = zio_socket(addr->sa.sa_family, SOCK_STREAM, 0);
	if (fd < 0)
		return fd;
	int err = 0;
	if (addr->sa.sa_family != AF_UNIX) {
		if (!o.no_reuse_addr)
			err = zio_socket_set_reuseaddr(fd, true);
		if (!err && o.reuse_port)
			err = zio_socket_set_reuseport(fd, true);
	}
	if (!err)
		err = zio_bind(fd, addr);
	if (!err)
		err = zio_listen(fd, o.backlog > 0 ? o.backlog : SOMAXCONN);
	if (err) {
		zio_close(fd);
		return err;
	}
	return fd;
}

ZIO_API int zio_tcp_accept(int lfd, zio_addr *peer, int64_t deadline)
{
	return zio_accept(lfd, peer, deadline);
}

ZIO_API int zio_tcp_connect(const zio_addr *addr, int64_t deadline)
{
	if (!valid_addr(addr))
		return -EINVAL;
	int fd = zio_socket(addr->sa.sa_family, SOCK_STREAM, 0);
	if (fd < 0)
		return fd;
	if (addr->sa.sa_family != AF_UNIX)
		zio_socket_set_nodelay(fd, true);
	int err = zio_connect(fd, addr, deadline);
	if (err) {
		zio_close(fd);
		return err;
	}
	return fd;
}

/* How much an attempt's error says about the host rather than about our
 * side's routes or address families; connect_addrs reports the highest. */
static int error_rank(int err)
{
	switch (err) {
	case -ECONNREFUSED:
	case -ETIMEDOUT:
	case -ECONNRESET:
	case -EHOSTUNREACH:
		return 2;
	case -ENETUNREACH:
	case -EAFNOSUPPORT:
	case -EADDRNOTAVAIL:
		return 0;
	default:
		return 1;
	}
}

/* A connect attempt's share of the time left: the overall deadline split
 * evenly over the addresses still to try, but at least 2 s (as Go's dialer
 * does), and never past the deadline itself. */
#define ATTEMPT_MIN ZIO_SEC(2)

static int64_t attempt_deadline(int64_t deadline, int left)
{
	if (deadline == ZIO_FOREVER || left <= 1)
		return deadline;
	int64_t now = zio_now();
	if (deadline <= now)
		return deadline;
	int64_t share = (deadline - now) / left;
	if (share < ATTEMPT_MIN)
		share = ATTEMPT_MIN;
	return now + share < deadline ? now + share : deadline;
}

ZIO_API int zio_tcp_connect_addrs(const zio_addr *addrs, int n, int64_t deadline)
{
	if (!addrs || n <= 0)
		return -EINVAL;
	struct zio__fiber *f = zio__fiber_current();
	if (f)
		deadline = zio__effective_deadline(f, deadline);
	int err = 0;
	for (int i = 0; i < n; i++) {
		int fd = zio_tcp_connect(&addrs[i], attempt_deadline(deadline, n - i));
		if (fd >= 0)
			return fd;
		if (i == 0 || error_rank(fd) > error_rank(err))
			err = fd;
		/* Cancelled or out of time: the next address would fail the same
		 * way. But -ETIMEDOUT is also the kernel giving up on an address
		 * (SYN retries), or the end of this address's share: then try
		 * the next. */
		if (fd == -ECANCELED)
			return fd;
		/* (Deadline 0 is a try of each address, not a time run out.) */
		if (deadline != ZIO_FOREVER && deadline != 0 && zio_now() >= deadline) {
			/* Out of time for the rest: their error is a timeout,
			 * reported as the others are (a refusal seen first stays). */
			if (i + 1 < n && error_rank(-ETIMEDOUT) > error_rank(err))
				err = -ETIMEDOUT;
			return err;
		}
	}
	return err;
}

ZIO_API int zio_tcp_connect_host(const char *host, uint16_t port, int64_t deadline)
{
	zio_addr addrs[16];
	int n = zio_dns_resolve(host, port, AF_UNSPEC, addrs, 16, deadline);
	if (n < 0)
		return n;
	return zio_tcp_connect_addrs(addrs, n, deadline);
}

ZIO_API int zio_udp_socket(int family)
{
	if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
		return -EINVAL;
	return zio_socket(family, SOCK_DGRAM, 0);
}

ZIO_API int zio_udp_bind(const zio_addr *addr)
{
	if (!valid_addr(addr))
		return -EINVAL;
	int fd = zio_udp_socket(addr->sa.sa_family);
	if (fd < 0)
		return fd;
	int err = zio_bind(fd, addr);
	if (err) {
		zio_close(fd);
		return err;
	}
	return fd;
}

/* ---------------------------------------------------------------- transfers */

/* MSG_WAITALL on a stream socket: the readiness backends' non-blocking
 * calls return what is there (io_uring's recv waits itself), so a short
 * read is continued here until the buffers are full, or EOF, an error, the
 * deadline or a cancel; the bytes so far are the caller's either way. A
 * datagram is whole as it is. */
static bool byte_stream(int fd)
{
	int type = 0;
	socklen_t tl = sizeof(type);
	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM;
}

/* The flags the receive is made with. MSG_WAITALL only for a byte stream
 * and without MSG_PEEK (which is what recv(2) waits for): io_uring's own
 * MSG_WAITALL receive reads on past a SOCK_SEQPACKET message's end (two
 * messages in one answer) and past a peek (the same bytes again). */
static int receive_flags(int fd, int flags)
{
	if ((flags & MSG_WAITALL) && ((flags & MSG_PEEK) || !byte_stream(fd)))
		return flags & ~MSG_WAITALL;
	return flags;
}

/* Whether a receive made with receive_flags() stopped short of len. */
static bool wants_rest(ssize_t r, size_t len, int op_flags)
{
	return r > 0 && (size_t)r < len && (op_flags & MSG_WAITALL);
}

/* The file a MSG_WAITALL receive begins with, for recv_rest (the others
 * are one op, which looks for itself: no lookup for them). */
static struct zio__fd_mark waitall_mark(int fd, int op_flags)
{
	return op_flags & MSG_WAITALL ? zio__fd_mark(fd) : (struct zio__fd_mark){ 0 };
}

static size_t iov_total(const struct iovec *iov, size_t n)
{
	size_t t = 0;
	for (size_t i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* Fills iov[0..n) past its first got bytes; returns the new total. An
 * error that ends it is left for the next call, as recv(2) leaves it: a
 * receive would take the socket's pending error (and drop it, the bytes so
 * far being the answer), so each one waits first for readiness and stops
 * at POLLERR. (io_uring's own MSG_WAITALL receive, which continues in the
 * kernel, takes it there.) A close of fd since start ends it too (the
 * ring's receive, cancelled by the close, returned what it had). */
static size_t recv_rest(int fd, struct zio__fd_mark start, const struct iovec *iov, size_t n,
			size_t got, int flags, int64_t deadline)
{
	size_t i = 0, off = got;
	for (;;) {
		if (zio__fd_gone(start))
			return got;
		while (i < n && off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			i++;
		}
		if (i == n)
			return got;
		int ev = zio_wait_fd(fd, POLLIN, flags & MSG_DONTWAIT ? 0 : deadline);
		if (ev < 0 || (ev & POLLERR))
			return got;
		struct iovec part = { (char *)iov[i].iov_base + off, iov[i].iov_len - off };
		struct msghdr m = { .msg_iov = off ? &part : (struct iovec *)&iov[i],
				    .msg_iovlen = off ? 1 : n - i };
		struct zio__op op = { .opcode = ZIO__OP_RECVMSG, .fd = fd };
		op.u.msg.msg = &m;
		op.u.msg.flags = flags;
		ssize_t r = zio__op_run(&op, deadline);
		if (r <= 0)
			return got;
		got += (size_t)r;
		off += (size_t)r;
	}
}

ZIO_API ssize_t zio_recv(int fd, void *buf, size_t len, int flags, int64_t deadline)
{
	struct zio__op op = { .opcode = ZIO__OP_RECV, .fd = fd };
	op.u.rw.buf = buf;
	op.u.rw.len = len > 0x7ffff000u ? 0x7ffff000u : len;
	op.u.rw.flags = receive_flags(fd, flags);
	struct zio__fd_mark start = waitall_mark(fd, op.u.rw.flags);
	ssize_t r = zio__op_run(&op, deadline);
	if (!wants_rest(r, op.u.rw.len, op.u.rw.flags))
		return r;
	struct iovec iov = { buf, op.u.rw.len };
	return (ssize_t)recv_rest(fd, start, &iov, 1, (size_t)r, flags, deadline);
}

ZIO_API ssize_t zio_send(int fd, const void *buf, size_t len, int flags, int64_t deadline)
{
	struct zio__op op = { .opcode = ZIO__OP_SEND, .fd = fd };
	op.u.rw.buf = (void *)buf;
	op.u.rw.len = len > 0x7ffff000u ? 0x7ffff000u : len;
	op.u.rw.flags = flags;
	return zio__op_run(&op, deadline);
}

ZIO_API ssize_t zio_recvmsg(int fd, struct msghdr *msg, int flags, int64_t deadline)
{
	if (!msg)
		return -EINVAL;
	struct zio__op op = { .opcode = ZIO__OP_RECVMSG, .fd = fd };
	op.u.msg.msg = msg;
	op.u.msg.flags = receive_flags(fd, flags);
	/* With a control buffer the rest is not waited for: a later message's
	 * fds would have nowhere to go. */
	bool control = msg->msg_controllen > 0;
	struct zio__fd_mark start = waitall_mark(fd, op.u.msg.flags);
	ssize_t r = zio__op_run(&op, deadline);
	if (control || !msg->msg_iov || !wants_rest(r, iov_total(msg->msg_iov, msg->msg_iovlen), op.u.msg.flags))
		return r;
	return (ssize_t)recv_rest(fd, start, msg->msg_iov, msg->msg_iovlen, (size_t)r, flags, deadline);
}

ZIO_API ssize_t zio_sendmsg(int fd, const struct msghdr *msg, int flags, int64_t deadline)
{
	if (!msg)
		return -EINVAL;
	struct zio__op op = { .opcode = ZIO__OP_SENDMSG, .fd = fd };
	op.u.msg.msg = (struct msghdr *)msg;
	op.u.msg.flags = flags;
	return zio__op_run(&op, deadline);
}

ZIO_API ssize_t zio_recvfrom(int fd, void *buf, size_t len, int flags, zio_addr *from,
			     int64_t deadline)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct sockaddr_storage ss;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (from) {
		m.msg_name = &ss;
		m.msg_namelen = sizeof(ss);
	}
	ssize_t r = zio_recvmsg(fd, &m, flags, deadline);
	if (r >= 0 && from) {
		memset(from, 0, sizeof(*from));
		from->len = reported_len(&ss, m.msg_namelen);
		memcpy(&from->ss, &ss, from->len);
		/* An unbound Unix sender has no name (length 0): it is the
		 * unnamed Unix address, "unix:", not no address at all. */
		struct sockaddr_storage own;
		socklen_t ol = sizeof(own);
		if (m.msg_namelen == 0 && getsockname(fd, (struct sockaddr *)&own, &ol) == 0 &&
		    own.ss_family == AF_UNIX) {
			from->un.sun_family = AF_UNIX;
			from->len = sizeof(sa_family_t);
		}
	}
	return r;
}

ZIO_API ssize_t zio_sendto(int fd, const void *buf, size_t len, int flags, const zio_addr *to,
			   int64_t deadline)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (to) {
		m.msg_name = (void *)&to->sa;
		m.msg_namelen = to->len;
	}
	return zio_sendmsg(fd, &m, flags, deadline);
}
