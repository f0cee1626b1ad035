/*
 * test_stream.c - buffered readers and writers: over memory (every edge of
 * the buffer logic), over a socket under every backend, a user-defined
 * source, and the FILE * bridge (fprintf/fgets on a socket in a task).
 */
/* ZIO_TEST_BACKENDS */
/* ZIO_TEST_LABELS: io */
#include "helpers.h"

#include <unistd.h>

#include <string.h>
#include <sys/socket.h>

static void mem_reader(zio_reader *r, struct zio_mem *m, const char *text, char *buf, size_t cap)
{
	m->data = (char *)text;
	m->len = strlen(text);
	m->pos = 0;
	zio_reader_init(r, &zio_mem_source, m, buf, cap);
}

Test(stream, take_delim, .timeout = 10)
{
	struct zio_mem m;
	zio_reader r;
	char buf[8], line[32];
	mem_reader(&r, &m, "ab\ncdef\n\nlong-line-here\ntail", buf, sizeof(buf));
	cr_assert_eq(zio_reader_take_delim(&r, '\n', true, line, sizeof(line)), 3);
	cr_assert_eq(memcmp(line, "ab\n", 3), 0);
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, line, sizeof(line)), 4);
	cr_assert_eq(memcmp(line, "cdef", 4), 0);
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, line, sizeof(line)), 0); /* empty line */
	/* Longer than the reader's 8-byte buffer, still fits in out. */
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, line, sizeof(line)), 14);
	cr_assert_eq(memcmp(line, "long-line-here", 14), 0);
	/* Partial last line at EOF, then EOF. */
	cr_assert_eq(zio_reader_take_delim(&r, '\n', true, line, sizeof(line)), 4);
	cr_assert_eq(memcmp(line, "tail", 4), 0);
	cr_assert_eq(zio_reader_take_delim(&r, '\n', true, line, sizeof(line)), 0);

	/* Too long for out: -EMSGSIZE, nothing consumed when it fits the buffer. */
	char big[64];
	mem_reader(&r, &m, "abcdef\nx", big, sizeof(big));
	cr_assert_eq(zio_reader_take_delim(&r, '\n', true, line, 3), -EMSGSIZE);
	cr_assert_eq(zio_reader_take_delim(&r, '\n', true, line, sizeof(line)), 7);
	/* By reference. */
	mem_reader(&r, &m, "k=v;rest", big, sizeof(big));
	const char *p;
	cr_assert_eq(zio_reader_take_delim_ref(&r, ';', false, &p), 3);
	cr_assert_eq(memcmp(p, "k=v", 3), 0);
	cr_assert_eq(zio_reader_take_delim_ref(&r, ';', false, &p), 4);
	mem_reader(&r, &m, "no-delimiter-in-eight", buf, sizeof(buf));
	cr_assert_eq(zio_reader_take_delim_ref(&r, ';', false, &p), -EMSGSIZE);
}

/* Without the delimiter an empty line is 0, so the end of input is -EPIPE
 * (it was 0 too: a loop over the lines stopped at the first empty one). */
Test(stream, exclusive_lines_end_with_epipe, .timeout = 10)
{
	struct zio_mem m;
	zio_reader r;
	char buf[8], line[16];
	const char *p;
	for (int by_ref = 0; by_ref < 2; by_ref++) {
		mem_reader(&r, &m, "a\n\nlast", buf, sizeof(buf));
		ssize_t want[] = { 1, 0, 4, -EPIPE, -EPIPE };
		for (int i = 0; i < 5; i++) {
			ssize_t n = by_ref ? zio_reader_take_delim_ref(&r, '\n', false, &p)
					   : zio_reader_take_delim(&r, '\n', false, line, sizeof(line));
			cr_assert_eq(n, want[i], "%s, line %d: %zd", by_ref ? "ref" : "copy", i, n);
		}
		/* Inclusive: 0 at the end, as before (no line is empty). */
		mem_reader(&r, &m, "a\n", buf, sizeof(buf));
		cr_assert_eq(by_ref ? zio_reader_take_delim_ref(&r, '\n', true, &p)
				    : zio_reader_take_delim(&r, '\n', true, line, sizeof(line)), 2);
		cr_assert_eq(by_ref ? zio_reader_take_delim_ref(&r, '\n', true, &p)
				    : zio_reader_take_delim(&r, '\n', true, line, sizeof(line)), 0);
	}
	/* A line longer than the buffer, then the end. */
	mem_reader(&r, &m, "0123456789abc\n", buf, sizeof(buf));
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, line, sizeof(line)), 13);
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, line, sizeof(line)), -EPIPE);
}

/* A reader without a buffer reads straight from its source; what needs a
 * buffer says -EINVAL and takes nothing (read_all of exactly max bytes
 * failed for good after taking them, take_delim said -ENOBUFS). */
Test(stream, a_reader_without_a_buffer, .timeout = 10)
{
	struct zio_mem m;
	zio_reader r;
	char out[8];
	const char *p;
	mem_reader(&r, &m, "abcdef", NULL, 0);
	cr_assert_eq(zio_reader_read_all(&r, out, 6), -EINVAL);
	cr_assert_eq(zio_reader_take_delim(&r, 'c', true, out, sizeof(out)), -EINVAL);
	cr_assert_eq(zio_reader_take_delim_ref(&r, 'c', true, &p), -EINVAL);
	cr_assert_eq(zio_reader_discard(&r, 2), -EINVAL);
	cr_assert_eq(zio_reader_peek(&r, 1, &p), -EINVAL);
	cr_assert_eq(m.pos, 0u, "nothing was taken from the source");
	cr_assert_eq(zio_reader_read(&r, out, 2), 2);
	cr_assert_eq(zio_reader_read_exact(&r, out, 4), 4);
	cr_assert_eq(memcmp(out, "cdef", 4), 0);
	cr_assert_eq(zio_reader_read(&r, out, 2), 0);
	cr_assert_eq(r.err, 0);
}

Test(stream, exact_peek_discard_all, .timeout = 10)
{
	struct zio_mem m;
	zio_reader r;
	char buf[4], out[64];
	mem_reader(&r, &m, "0123456789", buf, sizeof(buf));
	const char *p;
	cr_assert_eq(zio_reader_peek(&r, 3, &p), 3);
	cr_assert_eq(memcmp(p, "012", 3), 0);
	cr_assert_eq(zio_reader_peek(&r, 5, &p), -EINVAL); /* more than the buffer */
	cr_assert_eq(zio_reader_read_exact(&r, out, 6), 6);
	cr_assert_eq(memcmp(out, "012345", 6), 0);
	cr_assert_eq(zio_reader_discard(&r, 2), 2);
	cr_assert_eq(zio_reader_read_all(&r, out, sizeof(out)), 2);
	cr_assert_eq(memcmp(out, "89", 2), 0);
	cr_assert_eq(zio_reader_read(&r, out, 1), 0);
	cr_assert_eq(zio_reader_read_exact(&r, out, 1), -EPIPE);

	mem_reader(&r, &m, "0123456789", buf, sizeof(buf));
	cr_assert_eq(zio_reader_read_all(&r, out, 5), -EMSGSIZE);
	mem_reader(&r, &m, "01234", buf, sizeof(buf));
	cr_assert_eq(zio_reader_read_all(&r, out, 5), 5);
	mem_reader(&r, &m, "0123", buf, sizeof(buf));
	cr_assert_eq(zio_reader_discard(&r, 100), 4);
	/* A read larger than the buffer bypasses it. */
	mem_reader(&r, &m, "abcdefghij", buf, sizeof(buf));
	cr_assert_eq(zio_reader_read(&r, out, 10), 10);
}

Test(stream, writer, .timeout = 10)
{
	char store[64], wb[8];
	struct zio_mem m = { .data = store, .cap = sizeof(store) };
	zio_writer w;
	zio_writer_init(&w, &zio_mem_sink, &m, wb, sizeof(wb));
	cr_assert_eq(zio_writer_write(&w, "abc", 3), 3);
	cr_assert_eq(m.len, 0u); /* buffered */
	cr_assert_eq(zio_writer_print(&w, "%d-%s", 42, "x"), 4);
	cr_assert_eq(zio_writer_print(&w, "[%s]", "a long formatted string"), 25);
	cr_assert_eq(zio_writer_putc(&w, '!'), 0);
	cr_assert_eq(zio_writer_write(&w, "0123456789", 10), 10);
	cr_assert_eq(zio_writer_flush(&w), 0);
	store[m.len] = 0;
	cr_assert_str_eq(store, "abc42-x[a long formatted string]!0123456789");
	/* A sink that fills up: the error sticks. */
	m.len = 0;
	m.cap = 5;
	zio_writer_init(&w, &zio_mem_sink, &m, wb, sizeof(wb));
	zio_writer_write(&w, "123456", 6);
	cr_assert_eq(zio_writer_flush(&w), -ENOSPC);
	cr_assert_eq(zio_writer_write(&w, "x", 1), -ENOSPC);
}

/* A user-defined source: yields one byte per call. */
static ssize_t trickle(void *ctx, void *buf, size_t len, int64_t deadline)
{
	const char **s = ctx;
	if (!**s)
		return 0;
	*(char *)buf = *(*s)++;
	return 1;
}

Test(stream, user_source, .timeout = 10)
{
	static const struct zio_source_vtable vt = { trickle };
	const char *text = "line one\nline two\n";
	zio_reader r;
	char buf[16], line[32];
	zio_reader_init(&r, &vt, &text, buf, sizeof(buf));
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, line, sizeof(line)), 8);
	cr_assert_eq(memcmp(line, "line one", 8), 0);
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, line, sizeof(line)), 8);
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, line, sizeof(line)), -EPIPE);
}

/* A scripted source: each call returns the next chunk; TIMEOUT_CHUNK is
 * one -ETIMEDOUT, NULL the end of input. */
#define TIMEOUT_CHUNK ((const char *)1)

static ssize_t scripted(void *ctx, void *buf, size_t len, int64_t deadline)
{
	(void)deadline;
	const char ***next = ctx;
	const char *c = **next;
	if (!c)
		return 0;
	(*next)++;
	if (c == TIMEOUT_CHUNK)
		return -ETIMEDOUT;
	size_t n = strlen(c);
	cr_assert_leq(n, len, "the script's chunks fit the buffer");
	memcpy(buf, c, n);
	return (ssize_t)n;
}

Test(stream, timeout_mid_long_line_is_sticky, .timeout = 10)
{
	static const struct zio_source_vtable vt = { scripted };
	/* A timeout within a line that fits the buffer loses nothing. */
	const char *short_script[] = { "abc", TIMEOUT_CHUNK, "d\n", NULL };
	const char **next = short_script;
	zio_reader r;
	char buf[8], line[32];
	zio_reader_init(&r, &vt, &next, buf, sizeof(buf));
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, line, sizeof(line)), -ETIMEDOUT);
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, line, sizeof(line)), 4);
	cr_assert_eq(memcmp(line, "abcd", 4), 0);
	/* Past the buffer, the line's first 8 bytes have left it: the
	 * timeout must not let a retry return "ij" as if it were the line. */
	const char *long_script[] = { "abcdefgh", TIMEOUT_CHUNK, "ij\n", NULL };
	next = long_script;
	zio_reader_init(&r, &vt, &next, buf, sizeof(buf));
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, line, sizeof(line)), -ETIMEDOUT);
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, line, sizeof(line)), -ETIMEDOUT);
	char c;
	cr_assert_eq(zio_reader_read(&r, &c, 1), -ETIMEDOUT);
}

/* Calls that consume what they cannot give back: an error after the first
 * bytes sticks, or a retry would return the rest as if it were all. */
Test(stream, errors_after_progress_stick, .timeout = 10)
{
	static const struct zio_source_vtable vt = { scripted };
	zio_reader r;
	char buf[8], out[32];
	const char **next;
	/* read_exact within the buffer's size gathers first: nothing lost. */
	const char *exact[] = { "abc", TIMEOUT_CHUNK, "defgh", NULL };
	next = exact;
	zio_reader_init(&r, &vt, &next, buf, sizeof(buf));
	cr_assert_eq(zio_reader_read_exact(&r, out, 5), -ETIMEDOUT);
	cr_assert_eq(zio_reader_read_exact(&r, out, 5), 5);
	cr_assert_eq(memcmp(out, "abcde", 5), 0);
	/* Beyond it, the first bytes are gone: the timeout sticks. */
	const char *exact_big[] = { "abcdefgh", TIMEOUT_CHUNK, "ij", NULL };
	next = exact_big;
	zio_reader_init(&r, &vt, &next, buf, sizeof(buf));
	cr_assert_eq(zio_reader_read_exact(&r, out, 10), -ETIMEDOUT);
	cr_assert_eq(zio_reader_read_exact(&r, out, 2), -ETIMEDOUT);
	/* read_all: a timeout before any byte is the caller's; after, sticks. */
	const char *all[] = { TIMEOUT_CHUNK, "abc", TIMEOUT_CHUNK, "d", NULL };
	next = all;
	zio_reader_init(&r, &vt, &next, buf, sizeof(buf));
	cr_assert_eq(zio_reader_read_all(&r, out, sizeof(out)), -ETIMEDOUT);
	cr_assert_eq(zio_reader_read_all(&r, out, sizeof(out)), -ETIMEDOUT);
	cr_assert_eq(r.err, -ETIMEDOUT);
	/* ... and -EMSGSIZE after max bytes were taken. */
	struct zio_mem m;
	mem_reader(&r, &m, "0123456789", buf, sizeof(buf));
	cr_assert_eq(zio_reader_read_all(&r, out, 5), -EMSGSIZE);
	cr_assert_eq(zio_reader_read(&r, out, 1), -EMSGSIZE);
	mem_reader(&r, &m, "0123456789", buf, sizeof(buf));
	cr_assert_eq(zio_reader_read_all(&r, out, 0), -EMSGSIZE); /* took nothing */
	cr_assert_eq(zio_reader_read_all(&r, out, sizeof(out)), 10);
	/* discard: a short count would mean end of input; a timeout is not. */
	const char *skip[] = { "abcd", TIMEOUT_CHUNK, "efgh", NULL };
	next = skip;
	zio_reader_init(&r, &vt, &next, buf, sizeof(buf));
	cr_assert_eq(zio_reader_discard(&r, 6), -ETIMEDOUT);
	cr_assert_eq(zio_reader_discard(&r, 2), -ETIMEDOUT);
	/* A line too long for out, once its start has left the 8-byte
	 * buffer, does not come back as a line made of its end (here "ijk"
	 * is buffered when out is full). */
	mem_reader(&r, &m, "abcdefghijk\nX\n", buf, sizeof(buf));
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, out, 10), -EMSGSIZE);
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, out, 10), -EMSGSIZE);
	cr_assert_eq(zio_reader_read(&r, out, 1), -EMSGSIZE);
	/* One that fits the buffer is still all there for a larger out. */
	mem_reader(&r, &m, "abcdef\nX\n", buf, sizeof(buf));
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, out, 4), -EMSGSIZE);
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, out, 10), 6);
}

/* A scripted sink: each call takes what the next step says: a byte count,
 * or SINK_TIMEOUT. */
#define SINK_TIMEOUT -1

struct script_sink {
	const int *steps;
	char got[64];
	size_t len;
};

static ssize_t scripted_write(void *ctx, const void *buf, size_t len, int64_t deadline)
{
	(void)deadline;
	struct script_sink *s = ctx;
	int step = *s->steps++;
	if (step == SINK_TIMEOUT)
		return -ETIMEDOUT;
	size_t n = (size_t)step < len ? (size_t)step : len;
	memcpy(s->got + s->len, buf, n);
	s->len += n;
	return (ssize_t)n;
}

Test(stream, writer_timeouts, .timeout = 10)
{
	static const struct zio_sink_vtable vt = { scripted_write, NULL };
	char wb[8];
	zio_writer w;
	/* Nothing went out: try again, nothing lost or doubled. */
	const int retry[] = { SINK_TIMEOUT, 64 };
	struct script_sink s = { .steps = retry };
	zio_writer_init(&w, &vt, &s, wb, sizeof(wb));
	cr_assert_eq(zio_writer_write(&w, "hello", 5), 5);
	cr_assert_eq(zio_writer_flush(&w), -ETIMEDOUT);
	cr_assert_eq(w.err, 0);
	cr_assert_eq(zio_writer_flush(&w), 0);
	cr_assert_eq(s.len, 5u);
	cr_assert_eq(memcmp(s.got, "hello", 5), 0);
	/* Part went out: the rest stays buffered and goes with the next
	 * call, once (the timeout used to end the stream). */
	const int partial[] = { 2, SINK_TIMEOUT, 64 };
	s = (struct script_sink){ .steps = partial };
	zio_writer_init(&w, &vt, &s, wb, sizeof(wb));
	cr_assert_eq(zio_writer_write(&w, "hello", 5), 5);
	cr_assert_eq(zio_writer_flush(&w), -ETIMEDOUT);
	cr_assert_eq(w.err, 0);
	cr_assert_eq(w.len, 3u);
	cr_assert_eq(zio_writer_flush(&w), 0);
	cr_assert_eq(s.len, 5u);
	cr_assert_eq(memcmp(s.got, "hello", 5), 0);
	/* Written through (too big to buffer): nothing sent is a retry... */
	const int through[] = { SINK_TIMEOUT, 4, SINK_TIMEOUT, 64 };
	s = (struct script_sink){ .steps = through };
	zio_writer_init(&w, &vt, &s, wb, sizeof(wb));
	cr_assert_eq(zio_writer_write(&w, "0123456789", 10), -ETIMEDOUT);
	cr_assert_eq(w.err, 0);
	cr_assert_eq(w.len, 0u);
	/* ... a rest that fits the buffer waits there... */
	cr_assert_eq(zio_writer_write(&w, "0123456789", 10), 10);
	cr_assert_eq(w.err, 0);
	cr_assert_eq(zio_writer_flush(&w), 0);
	cr_assert_eq(s.len, 10u);
	cr_assert_eq(memcmp(s.got, "0123456789", 10), 0);
	/* ... and a longer one cannot be kept: the stream fails. */
	const int too_long[] = { 4, SINK_TIMEOUT, 64 };
	s = (struct script_sink){ .steps = too_long };
	zio_writer_init(&w, &vt, &s, wb, sizeof(wb));
	cr_assert_eq(zio_writer_write(&w, "0123456789abcdefghij", 20), -ETIMEDOUT);
	cr_assert_eq(zio_writer_write(&w, "x", 1), -ETIMEDOUT);
	cr_assert_eq(s.len, 4u);
	/* A sink that takes nothing is an I/O error. */
	const int stuck[] = { 0 };
	s = (struct script_sink){ .steps = stuck };
	zio_writer_init(&w, &vt, &s, wb, sizeof(wb));
	cr_assert_eq(zio_writer_write(&w, "0123456789", 10), -EIO);
}

/* The sink's own flush timing out is the caller's too: it used to end
 * the stream. */
static int flush_calls;

static int timing_out_flush(void *ctx, int64_t deadline)
{
	(void)ctx;
	(void)deadline;
	return flush_calls++ == 0 ? -ETIMEDOUT : 0;
}

Test(stream, sink_flush_timeout_is_retryable, .timeout = 10)
{
	static const struct zio_sink_vtable vt = { scripted_write, timing_out_flush };
	const int steps[] = { 64, 64 };
	struct script_sink s = { .steps = steps };
	char wb[8];
	zio_writer w;
	zio_writer_init(&w, &vt, &s, wb, sizeof(wb));
	flush_calls = 0;
	cr_assert_eq(zio_writer_write(&w, "ab", 2), 2);
	cr_assert_eq(zio_writer_flush(&w), -ETIMEDOUT);
	cr_assert_eq(w.err, 0);
	cr_assert_eq(zio_writer_flush(&w), 0);
	cr_assert_eq(zio_writer_write(&w, "c", 1), 1);
}

/* Zero lengths with NULL buffers are no-ops (they passed NULL to memcpy:
 * undefined, and UBSan says so). */
Test(stream, zero_lengths_with_null_buffers, .timeout = 10)
{
	struct zio_mem m;
	zio_reader r;
	char rb[8];
	mem_reader(&r, &m, "\nab", rb, sizeof(rb));
	cr_assert_eq(zio_reader_read_exact(&r, NULL, 0), 0);
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, NULL, 0), 0); /* the empty line */
	cr_assert_eq(zio_reader_buffered(&r), 2u);
	char wb[8], store[8];
	struct zio_mem out = { .data = store, .cap = sizeof(store) };
	zio_writer w;
	zio_writer_init(&w, &zio_mem_sink, &out, wb, sizeof(wb));
	cr_assert_eq(zio_writer_write(&w, NULL, 0), 0);
	cr_assert_eq(w.len, 0u);
}

/* A sink that sets errno on the way, as a real one may. */
static ssize_t errno_setting_write(void *ctx, const void *buf, size_t len, int64_t deadline)
{
	errno = EPIPE;
	return zio_mem_sink.write(ctx, buf, len, deadline);
}

/* print leaves errno alone: %m prints the caller's, also when the text
 * must be formatted again after the buffer is written out. (It set errno
 * to 0 first: %m printed "Success" and the caller's errno was gone.) */
Test(stream, print_keeps_errno, .timeout = 10)
{
	static const struct zio_sink_vtable vt = { errno_setting_write, NULL };
	char wb[32], store[128];
	struct zio_mem out = { .data = store, .cap = sizeof(store) };
	zio_writer w;
	zio_writer_init(&w, &vt, &out, wb, sizeof(wb));
	const char *msg = strerror(ENOENT);
	char want[96];
	snprintf(want, sizeof(want), "open: %s|", msg);
	errno = ENOENT;
	cr_assert_eq(zio_writer_print(&w, "open: %m|"), (ssize_t)strlen(want));
	cr_assert_eq(errno, ENOENT);
	/* Does not fit after the first: the buffer goes out (the sink sets
	 * EPIPE), then the text is formatted again. */
	cr_assert_eq(zio_writer_print(&w, "open: %m|"), (ssize_t)strlen(want));
	cr_assert_eq(errno, ENOENT);
	cr_assert_eq(zio_writer_flush(&w), 0);
	errno = 0;
	store[out.len] = 0;
	char both[200];
	snprintf(both, sizeof(both), "%s%s", want, want);
	cr_assert_str_eq(store, both);
}

/* A FILE over a writer whose sink follows steps, and an empty reader. */
struct scripted_file {
	struct script_sink sink;
	char wb[16], rb[8];
	struct zio_mem m;
	zio_reader r;
	zio_writer w;
};

static FILE *scripted_fopen(struct scripted_file *sf, const int *steps, const char *mode)
{
	static const struct zio_sink_vtable vt = { scripted_write, NULL };
	*sf = (struct scripted_file){ .sink.steps = steps };
	mem_reader(&sf->r, &sf->m, "", sf->rb, sizeof(sf->rb));
	zio_writer_init(&sf->w, &vt, &sf->sink, sf->wb, sizeof(sf->wb));
	FILE *f = zio_stream_fopen(&sf->r, &sf->w, mode);
	cr_assert_not_null(f);
	return f;
}

/* stdio over a writer whose sink times out with nothing sent: the write
 * fails and a retry sends the bytes once (the writer kept them, so the
 * retry sent them twice, and without one they went out behind stdio's
 * back). */
Test(stream, stdio_write_timeout_then_retry_sends_once, .timeout = 10)
{
	const char *modes[] = { "r+", "w" };
	for (int i = 0; i < 2; i++) {
		const int steps[] = { SINK_TIMEOUT, 64, 64 };
		struct scripted_file sf;
		FILE *f = scripted_fopen(&sf, steps, modes[i]);
		struct script_sink *s = &sf.sink;
		errno = 0;
		int first = fputs("hello\n", f);
		if (first != EOF)
			first = fflush(f);
		cr_assert_eq(first, EOF, "%s: the timeout is an error", modes[i]);
		cr_assert_eq(errno, ETIMEDOUT);
		clearerr(f);
		cr_assert_neq(fputs("hello\n", f), EOF);
		cr_assert_eq(fflush(f), 0);
		cr_assert_eq(fclose(f), 0);
		cr_assert_eq(s->len, 6u, "%s: sent %zu bytes", modes[i], s->len);
		cr_assert_eq(memcmp(s->got, "hello\n", 6), 0);
	}
}

/* stdio writing more than the writer's buffer holds, cut short by a
 * timeout: the write fails with what went out counted, and the FILE keeps
 * working (the writer ended the stream for good: every later fprintf
 * failed). In "w" mode stdio hands over its whole buffer at once. */
Test(stream, stdio_big_write_cut_by_a_timeout_is_not_the_end, .timeout = 10)
{
	const char *modes[] = { "r+", "w" };
	for (int i = 0; i < 2; i++) {
		const int steps[] = { 5, SINK_TIMEOUT, 64, 64, 64 };
		struct scripted_file sf;
		FILE *f = scripted_fopen(&sf, steps, modes[i]);
		struct script_sink *s = &sf.sink;
		errno = 0;
		int first = fputs("0123456789abcdefghijklmnop\n", f); /* 27 bytes */
		if (first != EOF)
			first = fflush(f);
		cr_assert_eq(first, EOF, "%s: the timeout is an error", modes[i]);
		cr_assert_eq(errno, ETIMEDOUT);
		cr_assert_eq(sf.w.err, 0, "%s: the stream did not end", modes[i]);
		clearerr(f);
		cr_assert_neq(fputs("again\n", f), EOF, "%s", modes[i]);
		cr_assert_eq(fflush(f), 0, "%s", modes[i]);
		cr_assert_eq(fclose(f), 0);
		/* What went out went once; stdio dropped or resent the rest,
		 * and the retry came after it. */
		cr_assert_geq(s->len, 11u);
		cr_assert_eq(memcmp(s->got, "01234", 5), 0, "%s: %.*s", modes[i], (int)s->len, s->got);
		cr_assert_eq(memcmp(s->got + s->len - 6, "again\n", 6), 0, "%s: %.*s", modes[i],
			     (int)s->len, s->got);
	}
}

/* fgets over a source that times out mid-line returns the part it has, as
 * over a socket with SO_RCVTIMEO (EAGAIN); the rest comes next. It
 * returned NULL and the part was lost. */
Test(stream, stdio_fgets_keeps_a_line_cut_by_a_timeout, .timeout = 10)
{
	static const struct zio_source_vtable vt = { scripted };
	const char *modes[] = { "r+", "r" };
	for (int i = 0; i < 2; i++) {
		const char *script[] = { "abc", TIMEOUT_CHUNK, "def\n", NULL };
		const char **next = script;
		zio_reader r;
		char rb[8], wb[8], line[32];
		struct zio_mem out = { .data = wb, .cap = 0 };
		zio_writer w;
		zio_reader_init(&r, &vt, &next, rb, sizeof(rb));
		zio_writer_init(&w, &zio_mem_sink, &out, wb, sizeof(wb));
		FILE *f = zio_stream_fopen(&r, &w, modes[i]);
		cr_assert_not_null(f);
		errno = 0;
		cr_assert_not_null(fgets(line, sizeof(line), f), "%s", modes[i]);
		cr_assert_str_eq(line, "abc");
		cr_assert_eq(errno, EAGAIN);
		cr_assert_not_null(fgets(line, sizeof(line), f));
		cr_assert_str_eq(line, "def\n");
		cr_assert_null(fgets(line, sizeof(line), f));
		cr_assert(feof(f));
		fclose(f);
	}
}

/* A FILE in "r+" over a reader of input in memory and a writer into
 * store. */
struct rplus {
	struct zio_mem in, out;
	zio_reader r;
	zio_writer w;
	char rb[16], wb[16], store[64];
	FILE *f;
};

static void rplus_open(struct rplus *p, const char *input)
{
	mem_reader(&p->r, &p->in, input, p->rb, sizeof(p->rb));
	p->out = (struct zio_mem){ .data = p->store, .cap = sizeof(p->store) };
	zio_writer_init(&p->w, &zio_mem_sink, &p->out, p->wb, sizeof(p->wb));
	p->f = zio_stream_fopen(&p->r, &p->w, "r+");
	cr_assert_not_null(p->f);
}

/* In an update mode, a write after fscanf (which reads one byte past the
 * number and gives it back) works: stdio seeks back over that byte, which
 * the reader still holds. The seek failed, and the write with it. */
Test(stream, stdio_write_after_fscanf, .timeout = 10)
{
	struct rplus p;
	rplus_open(&p, "42\nnext\n");
	FILE *f = p.f;
	char line[16];
	int x = 0;
	cr_assert_eq(fscanf(f, "%d", &x), 1);
	cr_assert_eq(x, 42);
	cr_assert_eq(fprintf(f, "got %d\n", x), 7);
	cr_assert_not_null(fgets(line, sizeof(line), f));
	cr_assert_str_eq(line, "\n");
	cr_assert_not_null(fgets(line, sizeof(line), f));
	cr_assert_str_eq(line, "next\n");
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(p.out.len, 7u);
	cr_assert_eq(memcmp(p.store, "got 42\n", 7), 0);
}

/* Once the program takes from the reader itself, stdio's step back over
 * its look-ahead fails, as does the write that needs it: it used to step
 * the reader back over the last byte that call took (here the '\n'),
 * which came out twice. */
Test(stream, stdio_no_step_back_after_a_direct_take, .timeout = 10)
{
	struct rplus p;
	rplus_open(&p, "12 rest\nnext\n");
	char line[32];
	int x = 0;
	cr_assert_eq(fscanf(p.f, "%d", &x), 1); /* stdio holds the ' ' after 12 */
	cr_assert_eq(zio_reader_take_delim(&p.r, '\n', true, line, sizeof(line)), 5);
	cr_assert_eq(memcmp(line, "rest\n", 5), 0);
	errno = 0;
	cr_assert_lt(fprintf(p.f, "ok\n"), 0);
	cr_assert_eq(errno, ESPIPE);
	cr_assert_eq(zio_reader_take_delim(&p.r, '\n', true, line, sizeof(line)), 5);
	cr_assert_eq(memcmp(line, "next\n", 5), 0);
	fclose(p.f);
	cr_assert_eq(p.out.len, 0u);
}

/* A step back over bytes the reader's buffer no longer holds (stdio's
 * read went around it) fails: it used to rewind onto older bytes. */
Test(stream, stdio_seek_back_only_over_buffered_input, .timeout = 10)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	static char rb[4096];
	zio_reader r;
	zio_reader_init_fd(&r, p[0], rb, sizeof(rb));
	cr_assert_eq(write(p[1], "HELLO\n", 6), 6);
	char line[16];
	cr_assert_eq(zio_reader_take_delim(&r, '\n', true, line, sizeof(line)), 6);
	cr_assert_eq(write(p[1], "abc", 3), 3);
	close(p[1]);
	FILE *f = zio_stream_fopen(&r, NULL, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fgetc(f), 'a');
	errno = 0;
	if (fseek(f, 0, SEEK_CUR) != 0)
		cr_assert_eq(errno, ESPIPE);
	cr_assert_eq(fgetc(f), 'b');
	cr_assert_eq(fgetc(f), 'c');
	cr_assert_eq(fgetc(f), EOF);
	fclose(f);
	close(p[0]);
	/* Over a reader whose buffer held them, the step back is served:
	 * C's fseek(f, 0, SEEK_CUR) gives the unused bytes back. */
	struct zio_mem m;
	char small[64];
	zio_reader_init(&r, &zio_mem_source, &m, small, sizeof(small));
	m = (struct zio_mem){ .data = "xyz", .len = 3 };
	f = zio_stream_fopen(&r, NULL, "r");
	cr_assert_not_null(f);
	static char stdio_buf[16]; /* stdio's reads: smaller than the reader's buffer */
	cr_assert_eq(setvbuf(f, stdio_buf, _IOFBF, sizeof(stdio_buf)), 0);
	cr_assert_eq(fgetc(f), 'x');
	cr_assert_eq(fseek(f, 0, SEEK_CUR), 0);
	cr_assert_eq(zio_reader_buffered(&r), 2u);
	cr_assert_eq(fgetc(f), 'y');
	fclose(f);
}

/* The sink's own flush failing for good fails stdio's flush, though every
 * byte went out (it said 0). */
static int failing_flush(void *ctx, int64_t deadline)
{
	(void)ctx;
	(void)deadline;
	return -EIO;
}

Test(stream, stdio_flush_reports_the_sinks_flush_error, .timeout = 10)
{
	static const struct zio_sink_vtable vt = { scripted_write, failing_flush };
	const int steps[] = { 64, 64 };
	struct script_sink s = { .steps = steps };
	char wb[8];
	zio_writer w;
	zio_writer_init(&w, &vt, &s, wb, sizeof(wb));
	FILE *f = zio_stream_fopen(NULL, &w, "w");
	cr_assert_not_null(f);
	fputs("ab", f);
	errno = 0;
	cr_assert_eq(fflush(f), EOF);
	cr_assert_eq(errno, EIO);
	fclose(f);
	cr_assert_eq(s.len, 2u);
}

Test(stream, fopen_modes, .timeout = 10)
{
	struct zio_mem m;
	zio_reader r;
	zio_writer w;
	char rb[8], wb[8], store[16];
	mem_reader(&r, &m, "abc", rb, sizeof(rb));
	struct zio_mem out = { .data = store, .cap = sizeof(store) };
	zio_writer_init(&w, &zio_mem_sink, &out, wb, sizeof(wb));
	/* A mode that names a side not given, or no mode: EINVAL. */
	errno = 0;
	cr_assert_null(zio_stream_fopen(NULL, &w, "r"));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(zio_stream_fopen(&r, NULL, "w"));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(zio_stream_fopen(&r, NULL, "r+"));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(zio_stream_fopen(&r, &w, NULL));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(zio_stream_fopen(&r, &w, "x"));
	cr_assert_eq(errno, EINVAL);
	/* A stream has no position. */
	FILE *f = zio_stream_fopen(&r, NULL, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fgetc(f), 'a');
	errno = 0;
	cr_assert_eq(ftell(f), -1);
	cr_assert_eq(errno, ESPIPE);
	errno = 0;
	cr_assert_eq(fseek(f, 0, SEEK_SET), -1);
	cr_assert_eq(errno, ESPIPE);
	cr_assert_eq(fclose(f), 0);
	/* fclose reports a flush that fails. */
	out.cap = 2;
	f = zio_stream_fopen(NULL, &w, "w");
	cr_assert_not_null(f);
	fputs("too long", f);
	errno = 0;
	cr_assert_eq(fclose(f), EOF);
	cr_assert_eq(errno, ENOSPC);
}

Test(stream, last_line_filling_the_buffer, .timeout = 10)
{
	struct zio_mem m;
	zio_reader r;
	char buf[8], line[32];
	const char *p;
	/* By copy: an unterminated last line of exactly cap bytes is a line. */
	mem_reader(&r, &m, "abcdefgh", buf, sizeof(buf));
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, line, sizeof(line)), 8);
	cr_assert_eq(memcmp(line, "abcdefgh", 8), 0);
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, line, sizeof(line)), -EPIPE);
	/* By reference, a full buffer without a delimiter cannot be told
	 * from a longer line: -EMSGSIZE, nothing consumed. */
	mem_reader(&r, &m, "abcdefgh", buf, sizeof(buf));
	cr_assert_eq(zio_reader_take_delim_ref(&r, '\n', false, &p), -EMSGSIZE);
	cr_assert_eq(zio_reader_take_delim(&r, '\n', false, line, sizeof(line)), 8);
	/* With the delimiter, a line of cap bytes is fine by reference. */
	mem_reader(&r, &m, "abcdefg\n", buf, sizeof(buf));
	cr_assert_eq(zio_reader_take_delim_ref(&r, '\n', true, &p), 8);
}

/* ----------------------------------------------------- over a socket */

static void *line_echo(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char rb[64], wb[64], line[128];
	zio_reader r;
	zio_writer w;
	zio_reader_init_fd(&r, fd, rb, sizeof(rb));
	zio_writer_init_fd(&w, fd, wb, sizeof(wb));
	ssize_t n;
	while ((n = zio_reader_take_delim(&r, '\n', true, line, sizeof(line))) > 0) {
		zio_writer_print(&w, "echo: ");
		zio_writer_write(&w, line, (size_t)n);
		zio_writer_flush(&w);
	}
	zio_close(fd);
	return NULL;
}

static void *socket_streams(void *arg)
{
	int sv[2];
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	zio_task *t;
	zio_spawn(NULL, &t, line_echo, (void *)(intptr_t)sv[1], NULL);
	char rb[32], wb[32];
	zio_reader r;
	zio_writer w;
	zio_reader_init_fd(&r, sv[0], rb, sizeof(rb));
	zio_writer_init_fd(&w, sv[0], wb, sizeof(wb));
	/* stdio on top */
	FILE *f = zio_stream_fopen(&r, &w, "r+");
	cr_assert_not_null(f);
	for (int i = 0; i < 100; i++) {
		fprintf(f, "message %d with some padding to cross buffers\n", i);
		fflush(f);
		char line[128], want[128];
		cr_assert_not_null(fgets(line, sizeof(line), f));
		snprintf(want, sizeof(want), "echo: message %d with some padding to cross buffers\n", i);
		cr_assert_str_eq(line, want);
	}
	/* A read timeout through the stream's deadline leaves it usable. */
	r.deadline = zio_deadline_after(ZIO_MSEC(10));
	char c;
	cr_assert_eq(zio_reader_read(&r, &c, 1), -ETIMEDOUT);
	cr_assert_eq(r.err, 0);
	r.deadline = ZIO_FOREVER;
	fclose(f);
	zio_shutdown(sv[0], SHUT_WR);
	zio_task_join(t, NULL);
	cr_assert_eq(zio_reader_read(&r, &c, 1), 0);
	zio_close(sv[0]);
	return NULL;
}

/* One FILE both ways with input read ahead: two lines in one segment, a
 * reply between them. Buffered, stdio would write the reply over the
 * second line and then fail to seek back. */
static void *stdio_both_ways(void *arg)
{
	(void)arg;
	int sv[2];
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	char rb[32], wb[32], line[16];
	zio_reader r;
	zio_writer w;
	zio_reader_init_fd(&r, sv[0], rb, sizeof(rb));
	zio_writer_init_fd(&w, sv[0], wb, sizeof(wb));
	FILE *f = zio_stream_fopen(&r, &w, "r+");
	cr_assert_not_null(f);
	cr_assert_eq(zio_write_all(sv[1], "a\nb\n", 4, ZIO_FOREVER), 4);
	cr_assert_not_null(fgets(line, sizeof(line), f));
	cr_assert_str_eq(line, "a\n");
	cr_assert_eq(fprintf(f, "x\n"), 2);
	cr_assert_eq(fflush(f), 0);
	cr_assert_not_null(fgets(line, sizeof(line), f));
	cr_assert_str_eq(line, "b\n");
	char got[4];
	cr_assert_eq(zio_read(sv[1], got, sizeof(got), zio_deadline_after(ZIO_SEC(5))), 2);
	cr_assert_eq(memcmp(got, "x\n", 2), 0);
	cr_assert_eq(fclose(f), 0);
	zio_close(sv[0]);
	zio_close(sv[1]);
	return NULL;
}

Test(stream, stdio_both_ways_with_input_ahead, .timeout = 20)
{
	run_in_runtime(1, stdio_both_ways, NULL);
}

Test(stream, socket_and_stdio, .timeout = 20)
{
	run_in_runtime(1, socket_streams, NULL);
	run_in_runtime(2, socket_streams, NULL);
}
