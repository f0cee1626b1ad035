/*
 * uring_echo - single-threaded io_uring TCP echo server, the hand-written
 * completion-loop baseline for zio's echo_server on its io_uring backend.
 * Written against liburing 2.3; every optional kernel feature is detected at
 * run time and has a fallback, so the same binary runs from 5.6 kernels up:
 *
 *   - ring flags: SINGLE_ISSUER|DEFER_TASKRUN (6.1), else COOP_TASKRUN
 *     (5.19), else none; each tried in turn at io_uring_queue_init_params;
 *   - accept: multishot (5.19) until the kernel answers -EINVAL, then one
 *     accept SQE re-armed per connection;
 *   - receive, mode "multishot": one multishot recv per connection (6.0)
 *     drawing from a provided-buffer ring (5.19); the buffer is echoed with a
 *     send and returned to the ring when the send completes. Both features
 *     are probed once at start on a socketpair;
 *   - receive, mode "single": recv -> send -> recv on a per-connection
 *     buffer, which needs only IORING_OP_RECV/SEND (io_uring_get_probe).
 *
 * The multishot mode relies on at most one request in flight per connection
 * (bench/loadgen is a closed loop): with pipelined input two sends of one
 * connection could complete out of order after a short write.
 *
 * usage: uring_echo [-p port=7000] [-a 127.0.0.1] [-m auto|multishot|single]
 * prints nothing on stdout; runs until killed.
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <signal.h>
#include <sys/mman.h>

#include "server.h"

#define BUF_SIZE 2048
#define BR_ENTRIES 4096 /* provided buffers; power of two, one per request */
#define BGID 7

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND };

/* user_data: op in bits 0-7, fd in 8-39, buffer id in 40-55. */
static inline uint64_t ud(unsigned op, int fd, unsigned bid)
{
	return op | (uint64_t)(uint32_t)fd << 8 | (uint64_t)bid << 40;
}
#define UD_OP(u) ((unsigned)((u) & 0xff))
#define UD_FD(u) ((int)(uint32_t)((u) >> 8))
#define UD_BID(u) ((unsigned)(((u) >> 40) & 0xffff))

/* Per-connection state of the single-shot mode. */
struct conn {
	uint32_t off, len;
	char buf[BUF_SIZE];
};

static struct io_uring ring;
static int lfd;
static int ms_accept = 1;
static int ms_recv;
static struct io_uring_buf_ring *br;
static char *bufs;
static uint32_t sent[BR_ENTRIES]; /* bytes of each buffer already sent */
static uint32_t blen[BR_ENTRIES]; /* bytes received into each buffer */
static struct conn **conns;	  /* indexed by fd, single-shot mode */
static long max_fd;

static struct io_uring_sqe *sqe_get(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	if (!sqe) { /* SQ full: hand the batch to the kernel and retry */
		io_uring_submit(&ring);
		sqe = io_uring_get_sqe(&ring);
	}
	return sqe;
}

static void arm_accept(void)
{
	struct io_uring_sqe *sqe = sqe_get();

	if (ms_accept)
		io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	else
		io_uring_prep_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud(OP_ACCEPT, lfd, 0));
}

static void arm_recv(int fd)
{
	struct io_uring_sqe *sqe = sqe_get();

	if (ms_recv) {
		io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = BGID;
	} else {
		io_uring_prep_recv(sqe, fd, conns[fd]->buf, BUF_SIZE, 0);
	}
	io_uring_sqe_set_data64(sqe, ud(OP_RECV, fd, 0));
}

static void arm_send(int fd, const char *p, uint32_t len, unsigned bid)
{
	struct io_uring_sqe *sqe = sqe_get();

	io_uring_prep_send(sqe, fd, p, len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud(OP_SEND, fd, bid));
}

static void buf_recycle(unsigned bid)
{
	io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
			      io_uring_buf_ring_mask(BR_ENTRIES), 0);
	io_uring_buf_ring_advance(br, 1);
}

static void conn_close(int fd)
{
	if (conns[fd]) {
		free(conns[fd]);
		conns[fd] = NULL;
	}
	close(fd);
}

/* Registers the provided-buffer ring; 0 on success, -errno if unsupported. */
static int setup_buf_ring(void)
{
	struct io_uring_buf_reg reg;
	size_t rlen = BR_ENTRIES * sizeof(struct io_uring_buf);
	void *mem = mmap(NULL, rlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int r;

	if (mem == MAP_FAILED)
		return -errno;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)mem;
	reg.ring_entries = BR_ENTRIES;
	reg.bgid = BGID;
	r = io_uring_register_buf_ring(&ring, &reg, 0);
	if (r < 0) {
		munmap(mem, rlen);
		return r;
	}
	br = mem;
	io_uring_buf_ring_init(br);
	bufs = malloc((size_t)BR_ENTRIES * BUF_SIZE);
	if (!bufs)
		return -ENOMEM;
	for (unsigned i = 0; i < BR_ENTRIES; i++)
		io_uring_buf_ring_add(br, bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
				      io_uring_buf_ring_mask(BR_ENTRIES), (int)i);
	io_uring_buf_ring_advance(br, BR_ENTRIES);
	return 0;
}

/*
 * Does this kernel take a multishot, buffer-selecting recv? Arm one on a
 * socketpair, write a byte into it and look at the completion. The buffer
 * it used goes back to the ring; the other end's close ends the multishot.
 */
static int probe_ms_recv(void)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int sv[2], ok = 0, done = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return 0;
	sqe = sqe_get();
	io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, 1);
	io_uring_submit(&ring);
	if (write(sv[1], "x", 1) != 1)
		goto out;
	close(sv[1]);
	sv[1] = -1;
	/* Completions: the byte (F_MORE set when multishot works), then EOF. */
	while (!done && io_uring_wait_cqe(&ring, &cqe) == 0) {
		if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_MORE))
			ok = 1;
		if (cqe->flags & IORING_CQE_F_BUFFER)
			buf_recycle(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		if (!(cqe->flags & IORING_CQE_F_MORE))
			done = 1;
		io_uring_cqe_seen(&ring, cqe);
	}
out:
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	return ok;
}

static void on_accept(struct io_uring_cqe *cqe)
{
	int fd = cqe->res;

	if (fd >= 0) {
		if (fd >= max_fd) {
			close(fd);
		} else {
			server_nodelay(fd);
			if (!ms_recv) {
				conns[fd] = malloc(sizeof(struct conn));
				if (!conns[fd]) {
					close(fd);
					goto rearm;
				}
			}
			arm_recv(fd);
		}
	} else if (fd == -EINVAL && ms_accept) {
		ms_accept = 0;
		fprintf(stderr, "uring_echo: no multishot accept, re-arming per connection\n");
		arm_accept();
		return;
	}
rearm:
	if (!ms_accept || !(cqe->flags & IORING_CQE_F_MORE))
		arm_accept();
}

static void on_recv(struct io_uring_cqe *cqe, int fd)
{
	if (ms_recv) {
		if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
			unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

			sent[bid] = 0;
			blen[bid] = (uint32_t)cqe->res;
			arm_send(fd, bufs + (size_t)bid * BUF_SIZE, blen[bid], bid);
		}
		if (cqe->flags & IORING_CQE_F_MORE)
			return;
		/* The multishot ended: by EOF/error (close), or because the
		 * kernel ran out of buffers or CQ space (re-arm). */
		if (cqe->res > 0 || cqe->res == -ENOBUFS)
			arm_recv(fd);
		else
			conn_close(fd);
		return;
	}
	if (cqe->res <= 0) {
		conn_close(fd);
		return;
	}
	conns[fd]->off = 0;
	conns[fd]->len = (uint32_t)cqe->res;
	arm_send(fd, conns[fd]->buf, conns[fd]->len, 0);
}

static void on_send(struct io_uring_cqe *cqe, int fd, unsigned bid)
{
	if (ms_recv) {
		if (cqe->res > 0 && sent[bid] + (uint32_t)cqe->res < blen[bid]) {
			sent[bid] += (uint32_t)cqe->res; /* short send: the rest */
			arm_send(fd, bufs + (size_t)bid * BUF_SIZE + sent[bid],
				 blen[bid] - sent[bid], bid);
			return;
		}
		/* Done, or failed (the recv side sees the error and closes). */
		buf_recycle(bid);
		return;
	}
	if (cqe->res <= 0) {
		conn_close(fd);
		return;
	}
	conns[fd]->off += (uint32_t)cqe->res;
	if (conns[fd]->off < conns[fd]->len)
		arm_send(fd, conns[fd]->buf + conns[fd]->off, conns[fd]->len - conns[fd]->off, 0);
	else
		arm_recv(fd);
}

static const char *ring_init(void)
{
	static const struct {
		unsigned flags;
		const char *name;
	} tries[] = {
		{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "SINGLE_ISSUER|DEFER_TASKRUN" },
		{ IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN" },
		{ 0, "no setup flags" },
	};

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p;

		memset(&p, 0, sizeof(p));
		p.flags = tries[i].flags | IORING_SETUP_CQSIZE;
		p.cq_entries = 16384;
		if (io_uring_queue_init_params(1024, &ring, &p) == 0)
			return tries[i].name;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct server_opts o = server_parse(argc, argv);
	const char *mode = o.mode ? o.mode : "auto";
	const char *flags;
	struct io_uring_probe *probe;

	signal(SIGPIPE, SIG_IGN);
	if (strcmp(mode, "auto") && strcmp(mode, "multishot") && strcmp(mode, "single"))
		server_usage(argv[0]);
	max_fd = server_raise_nofile();
	conns = calloc((size_t)max_fd, sizeof(*conns));
	flags = ring_init();
	if (!conns || !flags) {
		fprintf(stderr, "uring_echo: io_uring unavailable\n");
		return 1;
	}
	probe = io_uring_get_probe_ring(&ring);
	if (!probe || !io_uring_opcode_supported(probe, IORING_OP_ACCEPT) ||
	    !io_uring_opcode_supported(probe, IORING_OP_RECV) ||
	    !io_uring_opcode_supported(probe, IORING_OP_SEND)) {
		fprintf(stderr, "uring_echo: kernel lacks IORING_OP_ACCEPT/RECV/SEND\n");
		return 1;
	}
	io_uring_free_probe(probe);
	if (strcmp(mode, "single") != 0) {
		int r = setup_buf_ring();

		if (r == 0)
			ms_recv = probe_ms_recv();
		else
			fprintf(stderr, "uring_echo: no provided-buffer ring (%s)\n", strerror(-r));
		if (!ms_recv && !strcmp(mode, "multishot")) {
			fprintf(stderr, "uring_echo: multishot recv not supported here\n");
			return 1;
		}
	}
	lfd = server_listen(&o, 0);
	arm_accept();
	fprintf(stderr, "uring_echo: listening on %s:%d (%s; recv %s)\n", o.addr, o.port, flags,
		ms_recv ? "multishot + buffer ring" : "single-shot, per-connection buffers");
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;

		io_uring_submit_and_wait(&ring, 1);
		io_uring_for_each_cqe(&ring, head, cqe) {
			uint64_t u = io_uring_cqe_get_data64(cqe);

			switch (UD_OP(u)) {
			case OP_ACCEPT:
				on_accept(cqe);
				break;
			case OP_RECV:
				on_recv(cqe, UD_FD(u));
				break;
			case OP_SEND:
				on_send(cqe, UD_FD(u), UD_BID(u));
				break;
			}
			seen++;
		}
		io_uring_cq_advance(&ring, seen);
	}
}
