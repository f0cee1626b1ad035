/*
 * util.c - the small things every module uses: panics and logs that an
 * operator can read, the clock, and a spinlock for short off-hot-path
 * critical sections.
 */
#include "internal.h"

#include <stdarg.h>
#include <time.h>
#include <unistd.h>

static void vwrite_line(const char *prefix, const char *fmt, va_list ap)
{
	/* One write() per line so lines from several threads do not interleave,
	 * and no stdio: this also runs from a signal handler and in the shim. */
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "%s", prefix);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	ssize_t r = write(STDERR_FILENO, buf, (size_t)n);
	(void)r;
}

_Noreturn void zio__panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwrite_line("zio: fatal: ", fmt, ap);
	va_end(ap);
	zio__backtrace_here(STDERR_FILENO);
	abort();
}

void zio__log(int warning, const char *fmt, ...)
{
	static _Atomic int verbose = -1; /* runtimes may start on two threads */
	int on = atomic_load_explicit(&verbose, memory_order_relaxed);
	if (on < 0) {
		const char *v = getenv("ZIO_DEBUG");
		on = v && *v && strcmp(v, "0") != 0;
		atomic_store_explicit(&verbose, on, memory_order_relaxed);
	}
	if (!warning && !on)
		return;
	va_list ap;
	va_start(ap, fmt);
	vwrite_line("zio: ", fmt, ap);
	va_end(ap);
}

void zio__spin_lock(zio__spin *s)
{
	for (;;) {
		if (!atomic_exchange_explicit(&s->locked, 1, memory_order_acquire))
			return;
		while (atomic_load_explicit(&s->locked, memory_order_relaxed))
			zio__cpu_relax();
	}
}

int64_t zio__now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

ZIO_API int64_t zio_now(void)
{
	return zio__now();
}

ZIO_API int64_t zio_deadline_after(int64_t ns)
{
	if (ns == ZIO_FOREVER)
		return ZIO_FOREVER;
	int64_t now = zio__now();
	if (ns < 0) /* a budget already spent: a deadline already past (not 0) */
		return now + ns > 0 ? now + ns : 1;
	return ns > INT64_MAX - now ? INT64_MAX : now + ns;
}
