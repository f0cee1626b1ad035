/*
 * http_server - HTTP/1.1 "Hello, World!" with keep-alive, one task per
 * connection; good enough for wrk.
 *
 *   http_server [-p PORT] [-h ADDR] [-t SECONDS]
 *   curl -i http://127.0.0.1:8080/
 *
 * Requests are framed by their blank line; a Content-Length body (up to
 * MAX_BODY) is read and skipped; pipelined requests are answered in one
 * write. HEAD gets the headers alone. HTTP/1.1 keeps the connection unless
 * "Connection: close"; HTTP/1.0 closes unless "Connection: keep-alive",
 * which the answer then confirms. Anything that does not parse gets a 400
 * (a body over MAX_BODY a 413) and the connection is closed.
 *
 * Empty lines before a request line are skipped (RFC 9112 2.2: some
 * clients send a CRLF after a body). When the server ends a connection
 * itself (an error answer, "Connection: close") it shuts down its sending
 * side first and reads what the client still sends for a moment, so the
 * kernel does not answer unread input with a reset that can destroy the
 * answer on its way.
 *
 * Timeouts: a connection may sit idle between requests for IDLE_TIMEOUT;
 * a request, once its first byte is in, must arrive whole (head and body)
 * within -t seconds (default 10), so a client trickling bytes cannot hold
 * its task for ever. Each pipelined request has its own -t.
 *
 * SIGINT or SIGTERM stop the server (the listener is closed, connections
 * are cut; exit status 0).
 */
#define _GNU_SOURCE /* the examples use Linux's and glibc's extensions */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zio.h>

#include "example_util.h"

#define BODY "Hello, World!"
#define HEADERS "Server: zio\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"

/* The answers; a HEAD's is the same without the body, its last bytes. */
static const char reply_keep[] = "HTTP/1.1 200 OK\r\n" HEADERS "\r\n" BODY;
static const char reply_keep10[] = "HTTP/1.1 200 OK\r\n" HEADERS "Connection: keep-alive\r\n\r\n" BODY;
static const char reply_close[] = "HTTP/1.1 200 OK\r\n" HEADERS "Connection: close\r\n\r\n" BODY;
static const char reply_400[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
				"Connection: close\r\n\r\n";
static const char reply_413[] = "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n"
				"Connection: close\r\n\r\n";
static const char reply_continue[] = "HTTP/1.1 100 Continue\r\n\r\n";

#define BUF 8192               /* a request head must fit */
#define MAX_BODY (1u << 20)    /* bodies are skipped, but not without end */
#define IDLE_TIMEOUT ZIO_SEC(60)
#define LINGER ZIO_SEC(1)      /* reading on after the server's last answer */

static int64_t request_timeout = ZIO_SEC(10);

/* The end of the head in [p, p + n), just past its blank line, or NULL if
 * none has come: hops from '\n' to '\n' with memchr instead of a general
 * substring search (the request is scanned again after every short read).
 * A blank line is "\r\n" or a bare "\n" after any line end (what a person
 * typing into a plain TCP client sends), so such a head is answered: a
 * request line without its "\r\n" gets a 400 (header lines may end in a
 * bare "\n", RFC 9112 2.2). */
static char *find_head_end(char *p, size_t n)
{
	char *end = p + n;
	for (char *q = p; q < end;) {
		char *nl = memchr(q, '\n', (size_t)(end - q));
		if (!nl)
			return NULL;
		size_t at = (size_t)(nl - p);
		if ((at >= 1 && nl[-1] == '\n') || (at >= 2 && nl[-1] == '\r' && nl[-2] == '\n'))
			return nl + 1;
		q = nl + 1;
	}
	return NULL;
}

/* Whether the comma-separated header value [v, v + n) lists tok (any case). */
static bool has_token(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok);
	const char *end = v + n;
	while (v < end) {
		while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
			v++;
		const char *t = v;
		while (v < end && *v != ',')
			v++;
		const char *te = v;
		while (te > t && (te[-1] == ' ' || te[-1] == '\t'))
			te--;
		if ((size_t)(te - t) == tl && strncasecmp(t, tok, tl) == 0)
			return true;
	}
	return false;
}

/* What the server needs of one request. */
struct request {
	int status;     /* 200, or the error to answer (400, 413) */
	size_t body;    /* Content-Length */
	bool head;      /* HEAD: the answer has no body */
	bool http10;
	bool close;     /* answer, then close */
	bool expect_continue;
};

/* A Content-Length value: digits only (400 otherwise), at most MAX_BODY
 * (413 otherwise). */
static int parse_length(const char *v, size_t n, size_t *out)
{
	if (n == 0)
		return 400;
	size_t b = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return 400;
		if (b <= MAX_BODY) /* beyond, only the digits matter */
			b = b * 10 + (size_t)(v[i] - '0');
	}
	*out = b;
	return b > MAX_BODY ? 413 : 200;
}

/* Parses the head [p, end) that find_head_end() delimited. */
static void parse_request(const char *p, const char *end, struct request *rq)
{
	*rq = (struct request){ .status = 400 };
	/* Request line: METHOD SP TARGET SP HTTP/1.x CRLF, at least
	 * "X / HTTP/1.1\r" before the '\n'. */
	const char *eol = memchr(p, '\n', (size_t)(end - p));
	if (!eol || eol - p < 13 || eol[-1] != '\r')
		return;
	const char *version = eol - 10;
	rq->http10 = memcmp(version, " HTTP/1.0", 9) == 0;
	if (!rq->http10 && memcmp(version, " HTTP/1.1", 9) != 0)
		return;
	rq->head = memcmp(p, "HEAD ", 5) == 0;
	bool has_length = false, keep_alive = false, close = false;
	/* Header lines: "Name: value"; names any case, no space before ':'. */
	for (const char *h = eol + 1; h < end;) {
		const char *hl = memchr(h, '\n', (size_t)(end - h));
		if (!hl)
			break;
		if (hl == h || (hl == h + 1 && h[0] == '\r'))
			break; /* the blank line */
		/* A line that starts with white space (an obsolete folded
		 * value, or spaces posing as the blank line) is refused. */
		if (h[0] == ' ' || h[0] == '\t')
			return;
		const char *ve = hl;
		while (ve > h && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		const char *colon = memchr(h, ':', (size_t)(ve - h));
		if (!colon || colon == h || colon[-1] == ' ' || colon[-1] == '\t')
			return; /* not a header line */
		const char *v = colon + 1;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		size_t nl = (size_t)(colon - h), vl = (size_t)(ve - v);
		if (nl == 14 && strncasecmp(h, "Content-Length", 14) == 0) {
			if (has_length)
				return; /* two lengths: which one frames the body? */
			has_length = true;
			int st = parse_length(v, vl, &rq->body);
			if (st != 200) {
				rq->status = st;
				return;
			}
		} else if (nl == 17 && strncasecmp(h, "Transfer-Encoding", 17) == 0) {
			return; /* no chunked request bodies here */
		} else if (nl == 10 && strncasecmp(h, "Connection", 10) == 0) {
			keep_alive |= has_token(v, vl, "keep-alive");
			close |= has_token(v, vl, "close");
		} else if (nl == 6 && strncasecmp(h, "Expect", 6) == 0) {
			if (!has_token(v, vl, "100-continue"))
				return;
			rq->expect_continue = !rq->http10; /* 1.0 has no 100 */
		}
		h = hl + 1;
	}
	rq->close = rq->http10 ? !keep_alive || close : close;
	rq->status = 200;
}

/* The answer to rq, and its length. */
static const char *answer(const struct request *rq, size_t *len)
{
	const char *r;
	size_t n;
	if (rq->status == 413) {
		*len = sizeof(reply_413) - 1;
		return reply_413;
	}
	if (rq->status != 200) {
		*len = sizeof(reply_400) - 1;
		return reply_400;
	}
	if (rq->close)
		r = reply_close, n = sizeof(reply_close) - 1;
	else if (rq->http10)
		r = reply_keep10, n = sizeof(reply_keep10) - 1;
	else
		r = reply_keep, n = sizeof(reply_keep) - 1;
	*len = rq->head ? n - (sizeof(BODY) - 1) : n;
	return r;
}

/* Reads and drops n bytes of a body, by deadline. */
static bool skip_body(int fd, size_t n, int64_t deadline)
{
	char skip[1024];
	while (n > 0) {
		ssize_t k = zio_read(fd, skip, n < sizeof(skip) ? n : sizeof(skip), deadline);
		if (k <= 0)
			return false;
		n -= (size_t)k;
	}
	return true;
}

/* Closes a connection the server ends while the client may still be
 * sending: a close() with input unread sends a reset, and a reset that
 * reaches the client before it has read the answer destroys the answer.
 * So: end our side (the client sees EOF after the answer), read and drop
 * what still comes for up to LINGER, then close. */
static void close_gently(int fd)
{
	char skip[1024];
	int64_t deadline = zio_deadline_after(LINGER);
	zio_shutdown(fd, SHUT_WR);
	while (zio_read(fd, skip, sizeof(skip), deadline) > 0)
		;
	zio_close(fd);
}

/* Empty lines (CRLF or a bare LF) at the start of [p, p + n): how many
 * bytes they take. */
static size_t empty_lines(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && (p[i] == '\n' || (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')))
		i += p[i] == '\n' ? 1 : 2;
	return i;
}

static void *handle(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char in[BUF], out[BUF];
	size_t have = 0;           /* bytes in `in`: the start of the next request */
	int64_t request_deadline = 0; /* while a request is partly in */
	bool open = true;
	while (open) {
		int64_t deadline = have ? request_deadline : zio_deadline_after(IDLE_TIMEOUT);
		ssize_t n = zio_read(fd, in + have, sizeof(in) - have, deadline);
		if (n <= 0)
			break;
		if (have == 0)
			request_deadline = zio_deadline_after(request_timeout);
		have += (size_t)n;
		size_t pos = 0, olen = 0;
		/* Answer every complete request in the buffer. */
		for (;;) {
			pos += empty_lines(in + pos, have - pos);
			/* A request that starts after another in this read
			 * began with this read: its time starts now. */
			if (pos > 0)
				request_deadline = zio_deadline_after(request_timeout);
			char *start = in + pos;
			char *end = find_head_end(start, have - pos);
			if (!end)
				break;
			struct request rq;
			parse_request(start, end, &rq);
			size_t rl;
			const char *r = answer(&rq, &rl);
			if (rq.status != 200)
				open = false;
			size_t consumed = (size_t)(end - start);
			if (open && pos + consumed + rq.body > have) {
				/* The body is not all here: send what is answered so
				 * far (and a 100 Continue, if asked), skip the rest. */
				if (olen && zio_write_all(fd, out, olen, zio_deadline_after(IDLE_TIMEOUT)) < 0)
					goto done;
				olen = 0;
				if (rq.expect_continue &&
				    zio_write_all(fd, reply_continue, sizeof(reply_continue) - 1,
						  request_deadline) < 0)
					goto done;
				if (!skip_body(fd, pos + consumed + rq.body - have, request_deadline))
					goto done;
				pos = have; /* the body's end was the end of what came */
			} else {
				pos += consumed + rq.body;
			}
			if (olen + rl > sizeof(out)) {
				if (zio_write_all(fd, out, olen, zio_deadline_after(IDLE_TIMEOUT)) < 0)
					goto done;
				olen = 0;
			}
			memcpy(out + olen, r, rl);
			olen += rl;
			if (rq.close || !open) {
				open = false;
				break;
			}
		}
		if (olen && zio_write_all(fd, out, olen, zio_deadline_after(IDLE_TIMEOUT)) < 0)
			break;
		if (!open)
			break;
		/* Keep the partial request, if any, at the front. */
		memmove(in, in + pos, have - pos);
		have -= pos;
		if (have == sizeof(in)) {
			/* A head larger than our buffer. */
			zio_write_all(fd, reply_400, sizeof(reply_400) - 1, zio_deadline_after(ZIO_SEC(5)));
			open = false;
		}
	}
done:
	if (open)
		zio_close(fd); /* the client left, broke off or ran out of time */
	else
		close_gently(fd);
	return NULL;
}

/* Serves on the address arg points to until cancelled. */
static void *serve(void *arg)
{
	zio_addr addr = *(zio_addr *)arg;
	char txt[ZIO_ADDR_STRLEN];
	int lfd = zio_tcp_listen(&addr, NULL);
	if (lfd < 0) {
		zio_addr_format(&addr, txt, sizeof(txt));
		fprintf(stderr, "http_server: listen on %s: %s\n", txt, strerror(-lfd));
		return (void *)1;
	}
	zio_local_addr(lfd, &addr);
	zio_addr_format(&addr, txt, sizeof(txt));
	zio_runtime *rt = zio_runtime_current();
	fprintf(stderr, "http_server: listening on %s (%s backend, %u executor%s)\n", txt,
		zio_runtime_backend(rt), zio_runtime_executors(rt),
		zio_runtime_executors(rt) == 1 ? "" : "s");
	/* Two 8 KiB buffers and shallow calls: 128 KiB of stack is plenty,
	 * and 10,000 connections then reserve 1.3 GiB, not 80. */
	struct zio_spawn_options so = { .stack_size = 128 << 10 };
	int fd;
	for (;;) {
		fd = zio_tcp_accept(lfd, NULL, ZIO_FOREVER);
		if (fd < 0) {
			if (accept_goes_on(fd))
				continue;
			break;
		}
		zio_socket_set_nodelay(fd, true);
		if (zio_spawn(NULL, NULL, handle, (void *)(intptr_t)fd, &so) < 0)
			zio_close(fd);
	}
	zio_close(lfd);
	if (fd == -ECANCELED)
		return NULL; /* SIGINT or SIGTERM (run_stoppable) */
	fprintf(stderr, "http_server: accept: %s\n", strerror(-fd));
	return (void *)1;
}

static const char synopsis[] = "[-p PORT] [-h ADDR] [-t SECONDS]";
static const char help[] =
	"An HTTP/1.1 server that answers every request with \"Hello, World!\",\n"
	"keeping connections alive; one task per connection.\n\n"
	"  -p PORT  the port to listen on (default 8080; 0 picks a free one, which\n"
	"           the banner on stderr names)\n"
	"  -h ADDR  the numeric IPv4 or IPv6 address to listen on (default\n"
	"           127.0.0.1; 0.0.0.0 or :: for every interface)\n"
	"  -t SECONDS  how long a request, once begun, may take to arrive whole\n"
	"           (1 to 3600; default 10)\n\n" EXAMPLE_ENV_HELP
	"SIGINT or SIGTERM stop it (exit status 0).\n";

int main(int argc, char **argv)
{
	if (!std_fds_open())
		return 1;
	const char *host = "127.0.0.1";
	int port = 8080, c;
	long secs;
	bool bad = false;
	help_exits(argc, argv, synopsis, help);
	while ((c = getopt(argc, argv, "p:h:t:")) != -1) {
		switch (c) {
		case 'p':
			port = port_arg(optarg);
			break;
		case 'h':
			host = optarg;
			break;
		case 't':
			if ((secs = num_arg(optarg, 1, 3600)) < 0) {
				fprintf(stderr, "http_server: -t takes seconds, 1 to 3600\n");
				return 2;
			}
			request_timeout = ZIO_SEC(secs);
			break;
		default:
			bad = true;
		}
	}
	if (bad || optind != argc)
		return usage_error(argv[0], synopsis);
	zio_addr addr;
	int err = listen_addr(&addr, "http_server", host, port);
	if (err)
		return err;
	struct stoppable s = { .prog = "http_server", .fn = serve, .arg = &addr,
			       .sigfd = stop_signals_block() };
	if (s.sigfd < 0) {
		fprintf(stderr, "http_server: signals: %s\n", strerror(-s.sigfd));
		return 1;
	}
	zio_runtime *rt;
	err = zio_runtime_create(&rt, NULL);
	if (err) {
		fprintf(stderr, "http_server: cannot start the zio runtime: %s\n", strerror(-err));
		return 1;
	}
	void *res = NULL;
	zio_runtime_run(rt, run_stoppable, &s, &res);
	zio_runtime_destroy(rt);
	return res ? 1 : 0;
}
