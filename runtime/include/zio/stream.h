/*
 * zio/stream.h - buffered readers and writers over any byte source or sink
 * (the C counterpart of Zig's std.Io.Reader / std.Io.Writer).
 *
 * A source or sink is a small vtable plus a context pointer; zio provides
 * ones for fds (sockets, pipes: zio_read/zio_write; files: zio_file_*) and
 * memory, and users can write their own. Readers and writers are structs
 * the caller embeds, with caller-provided buffers, so nothing is allocated.
 *
 * Every call takes no deadline of its own: the stream's `deadline` field
 * (ZIO_FOREVER by default) applies to each underlying call; set it, or use
 * a zio_timeout scope. Errors are -errno; a stream remembers its first
 * error (`err`) and returns it from then on. A timeout or cancellation
 * (-ETIMEDOUT, -ECANCELED, -EAGAIN) is the exception while nothing is lost:
 * the call can simply be made again. Once a reader's call has consumed
 * input it cannot give back (a line longer than the reader's buffer,
 * read_exact of more than the buffer, read_all, discard), any error ends
 * the stream, as a retry could only return the rest. A writer cut short
 * part way keeps what did not go out in its buffer, for the next write or
 * flush to send once and in order; only a write too big to buffer whose
 * unsent rest is still more than the buffer holds ends the stream.
 * End of input is a short result, not an error, except where a call
 * promises an exact amount (zio_reader_read_exact: -EPIPE) or where 0 is a
 * result (a line without its delimiter: -EPIPE).
 *
 * zio_stream_fopen() wraps a reader and/or writer in a stdio FILE * (via
 * fopencookie), so fprintf/fgets work on a socket inside a task without
 * blocking the executor.
 */
#ifndef ZIO_STREAM_H
#define ZIO_STREAM_H

#include <stdarg.h>
#include <stdio.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A byte source: read up to len bytes, 0 at end, or -errno. */
struct zio_source_vtable {
	ssize_t (*read)(void *ctx, void *buf, size_t len, int64_t deadline);
};
/* A byte sink: write up to len bytes (at least 1), or -errno. */
struct zio_sink_vtable {
	ssize_t (*write)(void *ctx, const void *buf, size_t len, int64_t deadline);
	int (*flush)(void *ctx, int64_t deadline); /* may be NULL */
};

/* Ready-made: ctx is (void *)(intptr_t)fd. */
ZIO_API extern const struct zio_source_vtable zio_fd_source;   /* zio_read */
ZIO_API extern const struct zio_sink_vtable zio_fd_sink;       /* zio_write */
ZIO_API extern const struct zio_source_vtable zio_file_source; /* zio_file_read */
ZIO_API extern const struct zio_sink_vtable zio_file_sink;     /* zio_file_write */

/* Memory: a reader over a fixed buffer, a writer into one (full: -ENOSPC). */
struct zio_mem {
	char *data;
	size_t len; /* reader: bytes available; writer: bytes written */
	size_t cap; /* writer: capacity */
	size_t pos; /* reader: bytes consumed */
};
ZIO_API extern const struct zio_source_vtable zio_mem_source;
ZIO_API extern const struct zio_sink_vtable zio_mem_sink;

typedef struct zio_reader {
	const struct zio_source_vtable *vt;
	void *ctx;
	char *buf;
	size_t cap, start, end; /* buffered bytes are buf[start, end) */
	int64_t deadline;
	int err;                /* first error, sticky */
	bool eof;
	bool kept;              /* zio_stream_fopen: its last read's bytes lie
				 * just before start (nothing taken since) */
} zio_reader;

typedef struct zio_writer {
	const struct zio_sink_vtable *vt;
	void *ctx;
	char *buf;
	size_t cap, len;
	int64_t deadline;
	int err;
} zio_writer;

/* cap may be 0: a reader without a buffer reads straight from its source
 * (zio_reader_read, read_exact), and the calls that need a buffer (peek,
 * discard, take_delim, read_all) say -EINVAL; a writer without one writes
 * straight to its sink. */
ZIO_API void zio_reader_init(zio_reader *r, const struct zio_source_vtable *vt, void *ctx,
			     void *buf, size_t cap);
ZIO_API void zio_writer_init(zio_writer *w, const struct zio_sink_vtable *vt, void *ctx,
			     void *buf, size_t cap);
/* Convenience: over an fd with zio_read / zio_write. */
ZIO_API void zio_reader_init_fd(zio_reader *r, int fd, void *buf, size_t cap);
ZIO_API void zio_writer_init_fd(zio_writer *w, int fd, void *buf, size_t cap);

/* Up to len bytes: buffered ones first, else one read from the source.
 * 0 at end of input. */
ZIO_API ssize_t zio_reader_read(zio_reader *r, void *buf, size_t len);
/* Exactly len bytes: len, or -EPIPE if the input ended first (the bytes
 * read so far are consumed), or -errno. Up to the buffer's size, the bytes
 * are gathered in the buffer first, so a timeout consumes nothing. */
ZIO_API ssize_t zio_reader_read_exact(zio_reader *r, void *buf, size_t len);
/* Makes n bytes (n <= cap) available without consuming them; *out points
 * into the buffer. Returns how many are available: n, fewer at end of
 * input, or -errno. */
ZIO_API ssize_t zio_reader_peek(zio_reader *r, size_t n, const char **out);
/* Skips n bytes; returns how many were skipped (fewer only at end of
 * input), or -errno. */
ZIO_API ssize_t zio_reader_discard(zio_reader *r, size_t n);
/* Bytes up to the first delim, copied into out (size max): with the
 * delimiter if inclusive, without it (but consumed) otherwise. Returns the
 * length stored; at end of input with nothing read, 0 if inclusive, and
 * -EPIPE if not (where 0 is an empty line); -EMSGSIZE if no
 * delimiter came within max bytes (with max below the reader's buffer
 * size nothing is consumed then, and the call may be made again with more
 * room; with a larger max the line's first parts have left the buffer,
 * and the error sticks). If the
 * input ends in the middle of a line, that partial line is returned like fgets()
 * does (inclusive mode: it is the one result not ending in delim).
 * A line longer than the reader's buffer leaves it part by part; an error
 * after the first part, even a timeout, is then sticky, as the reader can
 * no longer return that line whole. */
ZIO_API ssize_t zio_reader_take_delim(zio_reader *r, int delim, bool inclusive, char *out,
				      size_t max);
/* Like take_delim but returns a pointer into the reader's buffer (valid
 * until the next call): the line can be at most cap bytes, its delimiter
 * included, or -EMSGSIZE (nothing consumed). A last line without a
 * delimiter that fills the whole buffer is -EMSGSIZE too: with no room to
 * read on, the reader cannot tell it from a longer line (take_delim can). */
ZIO_API ssize_t zio_reader_take_delim_ref(zio_reader *r, int delim, bool inclusive,
					  const char **out);
/* Everything up to end of input into out (at most max bytes): the length,
 * or -EMSGSIZE if there was more than max (which, like any error after the
 * first bytes, sticks). */
ZIO_API ssize_t zio_reader_read_all(zio_reader *r, char *out, size_t max);
/* Bytes buffered and not yet consumed. */
static inline size_t zio_reader_buffered(const zio_reader *r)
{
	return r->end - r->start;
}

/* Buffers and writes; returns len or -errno. */
ZIO_API ssize_t zio_writer_write(zio_writer *w, const void *buf, size_t len);
ZIO_API int zio_writer_putc(zio_writer *w, int c);
ZIO_API ssize_t zio_writer_print(zio_writer *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
ZIO_API ssize_t zio_writer_vprint(zio_writer *w, const char *fmt, va_list ap);
/* Writes out everything buffered, then flushes the sink. */
ZIO_API int zio_writer_flush(zio_writer *w);

/* A stdio stream over a reader (mode "r"), a writer ("w", "a") or both
 * ("r+", "w+", "a+"); NULL with errno EINVAL if the mode names a side not
 * given. In "r" and "w" stdio buffers on its own, on top of the reader's
 * and writer's buffers, and bytes stdio has read ahead are not seen by
 * zio_reader_* calls. In the update modes the FILE is unbuffered (leave it
 * so), which lets fgets and fprintf alternate on a socket without the
 * fseek that C requires between input and output: stdio holds nothing,
 * the reader and writer buffer. Each write is flushed to the sink; one
 * that fails gives back to stdio what did not go out, which, as with stdio
 * over a socket, goes out only if written again. A read timeout is errno
 * EAGAIN, as with SO_RCVTIMEO, so fgets returns the part of a line it got;
 * a cancellation is ECANCELED, and fgets drops that part (glibc keeps it
 * only for EAGAIN, and a cancelled task must not be told to try again).
 * A write bigger than the writer's buffer goes straight to the sink, and
 * what a timeout cut off is stdio's to write again, as for a small one.
 * ftell and fseek fail with ESPIPE, except a step back over input stdio
 * read ahead and did not use (fseek(f, 0, SEEK_CUR), or stdio's own before
 * a write after fscanf or ungetc) while the reader still holds it, that
 * is, until a zio_reader_* call of the program's own on the same reader
 * takes bytes or refills the buffer: after one, that step back fails with
 * ESPIPE (and so does a write that needs it) instead of handing out again
 * what the call took.
 * fclose() flushes the writer (EOF and errno if that fails) but does not
 * close the underlying fd. */
ZIO_API FILE *zio_stream_fopen(zio_reader *r, zio_writer *w, const char *mode);

#ifdef __cplusplus
}
#endif
#endif
