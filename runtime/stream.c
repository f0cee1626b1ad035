/*
 * stream.c - buffered readers and writers over a small source/sink vtable,
 * and a stdio FILE * over them.
 *
 * The reader keeps buf[start, end) buffered; it refills by compacting to
 * the front and reading once into the free space, so a read never asks the
 * source for more than one call's worth. Large reads with an empty buffer
 * go straight to the caller's memory. The writer buffers up to cap and
 * writes through when a write would not fit. Both remember their first
 * error: a stream that failed stays failed (like std.Io's err field),
 * except for a timeout or cancellation (retryable()) that lost nothing,
 * which the caller may simply retry (zio/stream.h says which calls): a
 * reader's call that consumed nothing, a writer whose unsent bytes are
 * all still in its buffer.
 */
#include "internal.h"

#include <zio/io.h>

#include <limits.h>

/* A timeout or cancellation is the caller's, not the stream's. */
static inline bool retryable(ssize_t err)
{
	return err == -ETIMEDOUT || err == -ECANCELED || err == -EAGAIN;
}

/* ------------------------------------------------------------ sources/sinks */

static ssize_t fd_read(void *ctx, void *buf, size_t len, int64_t deadline)
{
	return zio_read((int)(intptr_t)ctx, buf, len, deadline);
}

static ssize_t fd_write(void *ctx, const void *buf, size_t len, int64_t deadline)
{
	return zio_write((int)(intptr_t)ctx, buf, len, deadline);
}

static ssize_t file_read(void *ctx, void *buf, size_t len, int64_t deadline)
{
	return zio_file_read((int)(intptr_t)ctx, buf, len, deadline);
}

static ssize_t file_write(void *ctx, const void *buf, size_t len, int64_t deadline)
{
	return zio_file_write((int)(intptr_t)ctx, buf, len, deadline);
}

static ssize_t mem_read(void *ctx, void *buf, size_t len, int64_t deadline)
{
	(void)deadline;
	struct zio_mem *m = ctx;
	size_t n = m->len - m->pos;
	if (n > len)
		n = len;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static ssize_t mem_write(void *ctx, const void *buf, size_t len, int64_t deadline)
{
	(void)deadline;
	struct zio_mem *m = ctx;
	size_t n = m->cap - m->len;
	if (n == 0)
		return -ENOSPC;
	if (n > len)
		n = len;
	memcpy(m->data + m->len, buf, n);
	m->len += n;
	return (ssize_t)n;
}

ZIO_API const struct zio_source_vtable zio_fd_source = { fd_read };
ZIO_API const struct zio_sink_vtable zio_fd_sink = { fd_write, NULL };
ZIO_API const struct zio_source_vtable zio_file_source = { file_read };
ZIO_API const struct zio_sink_vtable zio_file_sink = { file_write, NULL };
ZIO_API const struct zio_source_vtable zio_mem_source = { mem_read };
ZIO_API const struct zio_sink_vtable zio_mem_sink = { mem_write, NULL };

/* ------------------------------------------------------------------ reader */

ZIO_API void zio_reader_init(zio_reader *r, const struct zio_source_vtable *vt, void *ctx,
			     void *buf, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->vt = vt;
	r->ctx = ctx;
	r->buf = buf;
	r->cap = cap;
	r->deadline = ZIO_FOREVER;
}

ZIO_API void zio_reader_init_fd(zio_reader *r, int fd, void *buf, size_t cap)
{
	zio_reader_init(r, &zio_fd_source, (void *)(intptr_t)fd, buf, cap);
}

/* Hands out the next n buffered bytes. */
static inline void take(zio_reader *r, size_t n)
{
	r->start += n;
	r->kept = false; /* what the FILE read last is no longer just before start */
}

/* Reads once more into the free space; >0 bytes added, 0 at EOF, -errno. */
static ssize_t fill(zio_reader *r)
{
	if (r->err)
		return r->err;
	if (r->eof)
		return 0;
	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
		r->kept = false; /* the bytes before start are gone */
	}
	if (r->end == r->cap)
		return -ENOBUFS;
	ssize_t n = r->vt->read(r->ctx, r->buf + r->end, r->cap - r->end, r->deadline);
	if (n < 0) {
		if (!retryable(n))
			r->err = (int)n;
		return n;
	}
	if (n == 0)
		r->eof = true;
	r->end += (size_t)n;
	return n;
}

/* An error after the call consumed bytes it cannot give back: the reader
 * can no longer return what was asked for, whole, so a retry would return
 * the rest as if it were all. Even a timeout ends the stream then, and
 * what is still buffered (the rest, or after it) goes too. */
static ssize_t fail_after_progress(zio_reader *r, ssize_t err)
{
	if (!r->err)
		r->err = (int)err;
	take(r, r->end - r->start);
	return err;
}

ZIO_API ssize_t zio_reader_read(zio_reader *r, void *buf, size_t len)
{
	if (len == 0)
		return 0;
	size_t have = r->end - r->start;
	if (have == 0) {
		if (r->err)
			return r->err;
		if (r->eof)
			return 0;
		if (len >= r->cap) {
			/* Bypass the buffer: no point copying twice. */
			ssize_t n = r->vt->read(r->ctx, buf, len, r->deadline);
			if (n == 0)
				r->eof = true;
			else if (n < 0 && !retryable(n))
				r->err = (int)n;
			return n;
		}
		ssize_t n = fill(r);
		if (n <= 0)
			return n;
		have = r->end - r->start;
	}
	if (have > len)
		have = len;
	memcpy(buf, r->buf + r->start, have);
	take(r, have);
	return (ssize_t)have;
}

ZIO_API ssize_t zio_reader_read_exact(zio_reader *r, void *buf, size_t len)
{
	if (len > SSIZE_MAX)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (len <= r->cap) {
		/* Gathered in the buffer first: a timeout consumes nothing. */
		const char *p;
		ssize_t n = zio_reader_peek(r, len, &p);
		if (n < 0)
			return n;
		memcpy(buf, p, (size_t)n);
		take(r, (size_t)n);
		return (size_t)n == len ? n : -EPIPE;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t n = zio_reader_read(r, (char *)buf + done, len - done);
		if (n < 0)
			return done ? fail_after_progress(r, n) : n;
		if (n == 0)
			return -EPIPE;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

ZIO_API ssize_t zio_reader_peek(zio_reader *r, size_t n, const char **out)
{
	if (n > r->cap)
		return -EINVAL;
	while (r->end - r->start < n) {
		ssize_t k = fill(r);
		if (k < 0)
			return k;
		if (k == 0)
			break;
	}
	*out = r->buf + r->start;
	size_t have = r->end - r->start;
	return (ssize_t)(have < n ? have : n);
}

ZIO_API ssize_t zio_reader_discard(zio_reader *r, size_t n)
{
	if (!r->cap && n)
		return -EINVAL; /* no buffer to read into */
	size_t done = 0;
	while (done < n) {
		size_t have = r->end - r->start;
		if (have == 0) {
			ssize_t k = fill(r);
			if (k < 0)
				return done ? fail_after_progress(r, k) : k;
			if (k == 0)
				break;
			continue;
		}
		if (have > n - done)
			have = n - done;
		take(r, have);
		done += have;
	}
	return (ssize_t)done;
}

ZIO_API ssize_t zio_reader_take_delim_ref(zio_reader *r, int delim, bool inclusive,
					  const char **out)
{
	if (!r->cap)
		return -EINVAL; /* no buffer to find the delimiter in */
	size_t scanned = 0;
	for (;;) {
		char *base = r->buf + r->start;
		size_t have = r->end - r->start;
		char *p = memchr(base + scanned, delim, have - scanned);
		if (p) {
			size_t len = (size_t)(p - base);
			*out = base;
			take(r, len + 1);
			return (ssize_t)(inclusive ? len + 1 : len);
		}
		scanned = have;
		if (have == r->cap)
			return -EMSGSIZE;
		ssize_t k = fill(r);
		if (k < 0)
			return k;
		if (k == 0) {
			/* End of input: the partial line, like fgets. */
			base = r->buf + r->start;
			have = r->end - r->start;
			if (!have && !inclusive)
				return -EPIPE; /* (0 is an empty line) */
			*out = base;
			take(r, r->end - r->start);
			return (ssize_t)have;
		}
	}
}

ZIO_API ssize_t zio_reader_take_delim(zio_reader *r, int delim, bool inclusive, char *out,
				      size_t max)
{
	if (!r->cap)
		return -EINVAL; /* no buffer to find the delimiter in */
	size_t got = 0;     /* already moved to out (only for lines > cap) */
	size_t scanned = 0; /* buffered bytes known to hold no delimiter */
	for (;;) {
		char *base = r->buf + r->start;
		size_t have = r->end - r->start;
		char *p = memchr(base + scanned, delim, have - scanned);
		if (p) {
			size_t len = (size_t)(p - base);
			size_t store = inclusive ? len + 1 : len;
			if (got + store > max)
				return got ? fail_after_progress(r, -EMSGSIZE) : -EMSGSIZE;
			if (store) /* (out may be NULL for max 0) */
				memcpy(out + got, base, store);
			take(r, len + 1);
			return (ssize_t)(got + store);
		}
		if (got + have > max)
			return got ? fail_after_progress(r, -EMSGSIZE) : -EMSGSIZE;
		if (have == r->cap) {
			/* A line longer than our buffer: move what we have
			 * out (it is consumed from here on) and go on. */
			memcpy(out + got, base, have);
			got += have;
			take(r, r->end - r->start);
			scanned = 0;
		} else {
			scanned = have;
		}
		ssize_t k = fill(r);
		if (k < 0)
			return got ? fail_after_progress(r, k) : k;
		if (k == 0) {
			/* End of input: the partial line, like fgets. */
			base = r->buf + r->start;
			have = r->end - r->start;
			if (!got && !have && !inclusive)
				return -EPIPE; /* (0 is an empty line) */
			if (got + have > max)
				return got ? fail_after_progress(r, -EMSGSIZE) : -EMSGSIZE;
			if (have)
				memcpy(out + got, base, have);
			take(r, r->end - r->start);
			return (ssize_t)(got + have);
		}
	}
}

ZIO_API ssize_t zio_reader_read_all(zio_reader *r, char *out, size_t max)
{
	/* (Without a buffer it could not look past max without taking.) */
	if (max > SSIZE_MAX || !r->cap)
		return -EINVAL;
	size_t done = 0;
	for (;;) {
		ssize_t n;
		if (done == max) {
			/* Full: is there more? */
			const char *p;
			n = zio_reader_peek(r, 1, &p);
			if (n == 0)
				return (ssize_t)done;
			if (n > 0)
				n = -EMSGSIZE;
			return done ? fail_after_progress(r, n) : n;
		}
		n = zio_reader_read(r, out + done, max - done);
		if (n < 0)
			return done ? fail_after_progress(r, n) : n;
		if (n == 0)
			return (ssize_t)done;
		done += (size_t)n;
	}
}

/* ------------------------------------------------------------------ writer */

ZIO_API void zio_writer_init(zio_writer *w, const struct zio_sink_vtable *vt, void *ctx,
			     void *buf, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->vt = vt;
	w->ctx = ctx;
	w->buf = buf;
	w->cap = cap;
	w->deadline = ZIO_FOREVER;
}

ZIO_API void zio_writer_init_fd(zio_writer *w, int fd, void *buf, size_t cap)
{
	zio_writer_init(w, &zio_fd_sink, (void *)(intptr_t)fd, buf, cap);
}

/* Writes p[0, n) until all of it went out or an error (*err, else 0);
 * returns how much went out. */
static size_t sink_some(zio_writer *w, const char *p, size_t n, int *err)
{
	size_t done = 0;
	*err = 0;
	while (done < n) {
		ssize_t k = w->vt->write(w->ctx, p + done, n - done, w->deadline);
		if (k <= 0) {
			*err = k < 0 ? (int)k : -EIO; /* 0 would loop forever */
			break;
		}
		done += (size_t)k;
	}
	return done;
}

/* Writes the buffer out. What went out leaves it, so after a timeout or
 * cancellation part way the rest goes with the next call, once and in
 * order; any other error sticks. */
static int drain(zio_writer *w)
{
	int e;
	size_t done = sink_some(w, w->buf, w->len, &e);
	if (done) {
		memmove(w->buf, w->buf + done, w->len - done);
		w->len -= done;
	}
	if (e && !retryable(e))
		w->err = e;
	return e;
}

ZIO_API ssize_t zio_writer_write(zio_writer *w, const void *buf, size_t len)
{
	if (w->err)
		return w->err;
	if (len > SSIZE_MAX)
		return -EINVAL;
	if (len <= w->cap - w->len) {
		if (len)
			memcpy(w->buf + w->len, buf, len);
		w->len += len;
		return (ssize_t)len;
	}
	int e = drain(w);
	if (e)
		return e;
	if (len < w->cap) {
		memcpy(w->buf, buf, len);
		w->len = len;
		return (ssize_t)len;
	}
	/* Too big to buffer: straight to the sink. Cut short by a timeout
	 * or cancellation, nothing sent is a retry; a rest that fits the
	 * (now empty) buffer waits there, as if buffered; a longer rest
	 * cannot be kept, so the stream fails. */
	size_t done = sink_some(w, buf, len, &e);
	if (!e)
		return (ssize_t)len;
	if (retryable(e) && done == 0)
		return e;
	if (retryable(e) && len - done <= w->cap) {
		memcpy(w->buf, (const char *)buf + done, len - done);
		w->len = len - done;
		return (ssize_t)len;
	}
	w->err = e;
	return e;
}

ZIO_API int zio_writer_putc(zio_writer *w, int c)
{
	char ch = (char)c;
	ssize_t r = zio_writer_write(w, &ch, 1);
	return r < 0 ? (int)r : 0;
}

ZIO_API ssize_t zio_writer_vprint(zio_writer *w, const char *fmt, va_list ap)
{
	if (w->err)
		return w->err;
	/* errno is the caller's: %m prints it, in both passes (the sink
	 * may set it in between), and it is as it was on return. */
	int caller_errno = errno;
	va_list ap2;
	va_copy(ap2, ap);
	size_t room = w->cap - w->len;
	ssize_t r;
	int n = vsnprintf(w->buf + w->len, room, fmt, ap);
	if (n < 0) {
		r = errno ? -errno : -EINVAL; /* EOVERFLOW, EILSEQ */
	} else if ((size_t)n < room || n == 0) {
		w->len += (size_t)n;
		r = n;
	} else if ((r = drain(w)) == 0) {
		/* Did not fit: formatted again into the emptied buffer, or
		 * into a temporary written like a big zio_writer_write(). */
		errno = caller_errno;
		if ((size_t)n < w->cap) {
			vsnprintf(w->buf, w->cap, fmt, ap2);
			w->len = (size_t)n;
			r = n;
		} else {
			char *tmp = malloc((size_t)n + 1);
			if (!tmp) {
				r = -ENOMEM;
			} else {
				errno = caller_errno;
				vsnprintf(tmp, (size_t)n + 1, fmt, ap2);
				r = zio_writer_write(w, tmp, (size_t)n);
				free(tmp);
			}
		}
	}
	va_end(ap2);
	errno = caller_errno;
	return r;
}

ZIO_API ssize_t zio_writer_print(zio_writer *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ssize_t r = zio_writer_vprint(w, fmt, ap);
	va_end(ap);
	return r;
}

ZIO_API int zio_writer_flush(zio_writer *w)
{
	if (w->err)
		return w->err;
	int e = drain(w);
	if (e)
		return e;
	if (w->vt->flush) {
		e = w->vt->flush(w->ctx, w->deadline);
		if (e < 0 && !retryable(e))
			w->err = e;
	}
	return e;
}

/* ------------------------------------------------------------- FILE * glue */

struct cookie {
	zio_reader *r;
	zio_writer *w;
	size_t last_read; /* the bytes ck_read last took; r->kept says whether
			   * they still lie just before r's start */
};

static ssize_t ck_read(void *c, char *buf, size_t size)
{
	struct cookie *k = c;
	if (!k->r) {
		errno = EBADF;
		return -1;
	}
	/* (A read that finds the buffer empty and asks for at least its
	 * size bypasses it: those bytes cannot be stepped back over.) */
	bool buffered = k->r->end > k->r->start || size < k->r->cap;
	ssize_t n = zio_reader_read(k->r, buf, size);
	k->last_read = n > 0 ? (size_t)n : 0;
	k->r->kept = n > 0 && buffered;
	if (n < 0) {
		/* A timeout reads as EAGAIN, as SO_RCVTIMEO's does: then fgets
		 * returns the part of a line it has (with any other errno it
		 * returns NULL and the part is lost). */
		errno = n == -ETIMEDOUT ? EAGAIN : (int)-n;
		return -1;
	}
	return n;
}

/* A write the writer's buffer cannot hold (stdio's own 8 KiB buffer, say):
 * what is buffered goes first, then these bytes straight to the sink, and
 * the count that went out is stdio's answer. zio_writer_write() could only
 * end the stream when such a write was cut short by a timeout (it has no
 * short count to give); stdio takes a short count and keeps the rest. */
static ssize_t ck_write_through(zio_writer *w, const char *buf, size_t size)
{
	int e = w->err ? w->err : drain(w);
	size_t done = e ? 0 : sink_some(w, buf, size, &e);
	if (!e && w->vt->flush)
		e = w->vt->flush(w->ctx, w->deadline);
	if (e < 0 && !retryable(e))
		w->err = e;
	if (e)
		errno = -e;
	/* All out but the sink's flush failed for good: still an error. */
	return done == size && w->err ? 0 : (ssize_t)done;
}

static ssize_t ck_write(void *c, const char *buf, size_t size)
{
	struct cookie *k = c;
	if (!k->w) {
		errno = EBADF;
		return 0;
	}
	if (size >= k->w->cap)
		return ck_write_through(k->w, buf, size);
	ssize_t n = zio_writer_write(k->w, buf, size);
	if (n < 0) {
		errno = (int)-n;
		return 0; /* stdio: a short count is an error */
	}
	/* stdio flushes its own buffer when it thinks the data should go
	 * out (fflush, line buffering): push ours too. */
	int e = zio_writer_flush(k->w);
	if (e) {
		/* stdio takes the count as what went out: what of these bytes
		 * the writer still holds is given back, so that they go out
		 * once if stdio's caller writes them again, and not behind
		 * its back if it does not (as with stdio over a socket). */
		size_t unsent = k->w->len < (size_t)n ? k->w->len : (size_t)n;
		k->w->len -= unsent;
		errno = -e;
		/* All of them out, but the stream failed for good after (the
		 * sink's flush): still an error for stdio. */
		return unsent == 0 && k->w->err ? 0 : n - (ssize_t)unsent;
	}
	return n;
}

static int ck_close(void *c)
{
	struct cookie *k = c;
	int e = k->w ? zio_writer_flush(k->w) : 0;
	free(k);
	if (e) {
		errno = -e;
		return -1;
	}
	return 0;
}

/* A stream has no position: ftell/fseek fail with ESPIPE, as on a pipe
 * (without this stdio fails them with whatever errno was). One seek is
 * served: stdio giving back input it read but did not use (ungetc,
 * fscanf's look-ahead before a write, fseek(f, 0, SEEK_CUR)), a step back
 * over the bytes its last read took, while the reader's buffer holds them
 * just before its start: not once a zio_reader_* call of the program's
 * own has taken bytes since (the step back would hand out again bytes
 * that call took) or moved the buffer. */
static int ck_seek(void *c, off64_t *off, int whence)
{
	struct cookie *k = c;
	if (whence == SEEK_CUR && *off < 0 && k->r && k->r->kept &&
	    (uint64_t)-*off <= k->last_read) {
		k->r->start -= (size_t)-*off;
		k->r->kept = false;
		*off = 0; /* (no position to report: stdio keeps none) */
		return 0;
	}
	errno = ESPIPE;
	return -1;
}

ZIO_API FILE *zio_stream_fopen(zio_reader *r, zio_writer *w, const char *mode)
{
	if (!mode || !*mode) {
		errno = EINVAL;
		return NULL;
	}
	/* Read and write as fopencookie() parses the mode ("r+", "rb+"). */
	bool update = mode[1] == '+' || (mode[1] == 'b' && mode[2] == '+');
	bool reads = mode[0] == 'r' || update, writes = mode[0] != 'r' || update;
	if ((reads && !r) || (writes && !w) || !strchr("rwa", mode[0])) {
		errno = EINVAL;
		return NULL;
	}
	struct cookie *k = malloc(sizeof(*k));
	if (!k)
		return NULL;
	k->r = reads ? r : NULL;
	k->w = writes ? w : NULL;
	k->last_read = 0;
	cookie_io_functions_t io = { .read = ck_read, .write = ck_write, .seek = ck_seek,
				     .close = ck_close };
	FILE *f = fopencookie(k, mode, io);
	if (!f) {
		free(k);
		return NULL;
	}
	/* One FILE both ways: stdio would write its output over the input
	 * it has read ahead, and then ask to seek back over it (C wants an
	 * fseek between reading and writing; a socket has none). Unbuffered,
	 * stdio holds nothing: the reader and writer do the buffering. */
	if (update)
		setvbuf(f, NULL, _IONBF, 0);
	return f;
}
