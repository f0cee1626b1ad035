/*
 * http_server - HTTP/1.1 "Hello, World!" with keep-alive, one task per
 * connection; good enough for wrk.
 *
 *   http_server [-p PORT] [-h ADDR]
 *
 * Requests are framed by their blank line; a Content-Length body is
 * skipped; pipelined requests are answered in one write. "Connection:
 * close" (or HTTP/1.0 without keep-alive) closes after the answer.
 * Anything that does not parse gets a 400 and the connection is closed.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zio.h>

#include "example_args.h"

static const char reply_ok[] = "HTTP/1.1 200 OK\r\n"
			       "Server: zio\r\n"
			       "Content-Type: text/plain\r\n"
			       "Content-Length: 13\r\n"
			       "\r\n"
			       "Hello, World!";
static const char reply_close[] = "HTTP/1.1 200 OK\r\n"
				  "Server: zio\r\n"
				  "Content-Type: text/plain\r\n"
				  "Content-Length: 13\r\n"
				  "Connection: close\r\n"
				  "\r\n"
				  "Hello, World!";
static const char reply_bad[] = "HTTP/1.1 400 Bad Request\r\n"
				"Content-Length: 0\r\n"
				"Connection: close\r\n"
				"\r\n";

#define BUF 8192
#define IDLE_TIMEOUT ZIO_SEC(60)

/* The first "\r\n\r\n" in [p, p + n), or NULL: hops from '\n' to '\n'
 * with memchr instead of a general substring search (the request is
 * scanned again after every short read). An empty line ended by a bare
 * "\n" ends the head too (what a person typing into a plain TCP client
 * sends): returned so that head + 4 is past it, and the request line,
 * which then lacks its "\r\n", gets a 400 rather than no answer. */
static char *find_head_end(char *p, size_t n)
{
	if (n < 4)
		return NULL;
	char *end = p + n;
	for (char *q = p + 3; q < end;) {
		char *nl = memchr(q, '\n', (size_t)(end - q));
		if (!nl)
			return NULL;
		if ((nl[-1] == '\r' && nl[-2] == '\n' && nl[-3] == '\r') || nl[-1] == '\n')
			return nl - 3;
		q = nl + 1;
	}
	return NULL;
}

/* The headers this server looks at, found in one pass over the header
 * lines [h, end) (case-insensitive names; the first of each wins). */
struct head {
	const char *clen, *conn;
	size_t clen_len, conn_len;
	bool chunked; /* any Transfer-Encoding */
};

static bool name_is(const char *p, const char *colon, const char *name, size_t nl)
{
	return (size_t)(colon - p) == nl && strncasecmp(p, name, nl) == 0;
}

static void scan_headers(const char *h, const char *end, struct head *out)
{
	*out = (struct head){ 0 };
	for (const char *p = h; p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			break;
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		if (colon) {
			const char *v = colon + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			const char *ve = eol;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
				ve--;
			switch (*p | 0x20) {
			case 'c':
				if (!out->clen && name_is(p, colon, "Content-Length", 14)) {
					out->clen = v;
					out->clen_len = (size_t)(ve - v);
				} else if (!out->conn && name_is(p, colon, "Connection", 10)) {
					out->conn = v;
					out->conn_len = (size_t)(ve - v);
				}
				break;
			case 't':
				if (name_is(p, colon, "Transfer-Encoding", 17))
					out->chunked = true;
				break;
			}
		}
		p = eol + 1;
	}
}

static bool has_token(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok);
	for (size_t i = 0; i + tl <= n; i++)
		if (strncasecmp(v + i, tok, tl) == 0)
			return true;
	return false;
}

static void *handle(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char in[BUF];
	char out[BUF];
	size_t have = 0;
	bool open = true;
	while (open) {
		ssize_t n = zio_read(fd, in + have, sizeof(in) - have, zio_deadline_after(IDLE_TIMEOUT));
		if (n <= 0)
			break;
		have += (size_t)n;
		size_t pos = 0, olen = 0;
		/* Answer every complete request in the buffer. */
		for (;;) {
			char *start = in + pos;
			char *hend = find_head_end(start, have - pos);
			if (!hend)
				break;
			char *end = hend + 4;
			char *eol = memchr(start, '\n', (size_t)(end - start));
			/* Request line: METHOD SP TARGET SP HTTP/1.x */
			bool ok = eol && eol - start >= 14;
			bool http10 = ok && memcmp(eol - 9, "HTTP/1.0", 8) == 0;
			ok = ok && (http10 || memcmp(eol - 9, "HTTP/1.1", 8) == 0);
			struct head hd = { 0 };
			if (ok)
				scan_headers(eol + 1, end, &hd);
			size_t body = 0;
			size_t vl = hd.clen_len;
			const char *v = hd.clen;
			if (v) {
				char num[24];
				if (vl == 0 || vl >= sizeof(num))
					ok = false;
				else {
					memcpy(num, v, vl);
					num[vl] = 0;
					char *e;
					unsigned long long b = strtoull(num, &e, 10);
					if (*e || b > (1u << 20))
						ok = false;
					body = (size_t)b;
				}
			}
			if (ok && hd.chunked)
				ok = false; /* no chunked request bodies here */
			if (!ok) {
				/* After the replies to the requests before it. */
				if (olen + sizeof(reply_bad) - 1 > sizeof(out) &&
				    zio_write_all(fd, out, olen, zio_deadline_after(IDLE_TIMEOUT)) >= 0)
					olen = 0;
				if (olen + sizeof(reply_bad) - 1 <= sizeof(out)) {
					memcpy(out + olen, reply_bad, sizeof(reply_bad) - 1);
					olen += sizeof(reply_bad) - 1;
				}
				open = false;
				break;
			}
			bool close_it = http10;
			v = hd.conn;
			vl = hd.conn_len;
			if (v)
				close_it = http10 ? !has_token(v, vl, "keep-alive") : has_token(v, vl, "close");
			size_t consumed = (size_t)(end - start);
			if (pos + consumed + body > have) {
				/* The body is not all here: skip what is, read the rest. */
				size_t left = pos + consumed + body - have;
				have = pos; /* drop this request from the buffer */
				char skip[1024];
				while (left > 0) {
					ssize_t k = zio_read(fd, skip, left < sizeof(skip) ? left : sizeof(skip),
							     zio_deadline_after(IDLE_TIMEOUT));
					if (k <= 0) {
						open = false;
						break;
					}
					left -= (size_t)k;
				}
				pos = have;
			} else {
				pos += consumed + body;
			}
			const char *r = close_it ? reply_close : reply_ok;
			size_t rl = close_it ? sizeof(reply_close) - 1 : sizeof(reply_ok) - 1;
			if (olen + rl > sizeof(out)) {
				if (zio_write_all(fd, out, olen, zio_deadline_after(IDLE_TIMEOUT)) < 0) {
					open = false;
					break;
				}
				olen = 0;
			}
			memcpy(out + olen, r, rl);
			olen += rl;
			if (close_it || !open) {
				open = false;
				break;
			}
		}
		if (olen && zio_write_all(fd, out, olen, zio_deadline_after(IDLE_TIMEOUT)) < 0)
			break;
		if (!open)
			break;
		/* Keep the partial request, if any, at the front. */
		if (pos < have)
			memmove(in, in + pos, have - pos);
		have -= pos < have ? pos : have;
		if (have == sizeof(in)) {
			/* Headers larger than our buffer. */
			zio_write_all(fd, reply_bad, sizeof(reply_bad) - 1, zio_deadline_after(ZIO_SEC(5)));
			break;
		}
	}
	zio_close(fd);
	return NULL;
}

struct opts {
	const char *host;
	int port;
};

static void *serve(void *arg)
{
	struct opts *o = arg;
	zio_addr addr;
	if (zio_addr_ip(&addr, o->host, (uint16_t)o->port)) {
		fprintf(stderr, "http_server: bad address %s (a numeric IPv4 or IPv6 address)\n", o->host);
		return (void *)1;
	}
	int lfd = zio_tcp_listen(&addr, NULL);
	if (lfd < 0) {
		fprintf(stderr, "http_server: listen: %s\n", strerror(-lfd));
		return (void *)1;
	}
	zio_local_addr(lfd, &addr);
	char txt[ZIO_ADDR_STRLEN];
	zio_addr_format(&addr, txt, sizeof(txt));
	zio_runtime *rt = zio_runtime_current();
	fprintf(stderr, "http_server: listening on %s (%s backend, %u executor%s)\n", txt,
		zio_runtime_backend(rt), zio_runtime_executors(rt),
		zio_runtime_executors(rt) == 1 ? "" : "s");
	struct zio_spawn_options so = { .stack_size = 128 << 10 };
	for (;;) {
		int fd = zio_tcp_accept(lfd, NULL, ZIO_FOREVER);
		if (fd < 0) {
			if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
				zio_sleep(ZIO_MSEC(10));
				continue;
			}
			if (fd == -ECONNABORTED || fd == -EINTR)
				continue;
			fprintf(stderr, "http_server: accept: %s\n", strerror(-fd));
			break;
		}
		zio_socket_set_nodelay(fd, true);
		if (zio_spawn(NULL, NULL, handle, (void *)(intptr_t)fd, &so) < 0)
			zio_close(fd);
	}
	zio_close(lfd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct opts o = { "127.0.0.1", 8080 };
	int c;
	while ((c = getopt(argc, argv, "p:h:")) != -1) {
		switch (c) {
		case 'p':
			o.port = port_arg(optarg);
			break;
		case 'h':
			o.host = optarg;
			break;
		default:
			fprintf(stderr, "usage: %s [-p PORT] [-h ADDR]\n", argv[0]);
			return 2;
		}
	}
	if (o.port < 0) {
		fprintf(stderr, "http_server: PORT must be a number from 0 to 65535\n");
		return 2;
	}
	zio_runtime *rt;
	int err = zio_runtime_create(&rt, NULL);
	if (err) {
		fprintf(stderr, "http_server: runtime: %s\n", strerror(-err));
		return 1;
	}
	void *res = NULL;
	zio_runtime_run(rt, serve, &o, &res);
	zio_runtime_destroy(rt);
	return res ? 1 : 0;
}
