/*
 * debug.c - backtraces, for crash reports and zio_runtime_dump().
 *
 * The running context is walked with libunwind (which also copes with
 * signal frames, for the guard-page report). A suspended fiber is walked
 * through its frame-pointer chain, starting from the frame its context
 * switch saved (the library is built with -fno-omit-frame-pointer); the
 * walk stops at the entry trampoline's zero frame pointer or when a frame
 * pointer leaves the fiber's stack.
 */
#include "internal.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <unistd.h>

/* Under ThreadSanitizer libunwind's symbol lookups (which allocate) inside
 * the guard-page signal handler are reported as signal-unsafe calls, so
 * that build walks frame pointers and names what dladdr can. */
#if defined(ZIO_HAVE_UNWIND) && !defined(ZIO_TSAN)
#define ZIO_USE_UNWIND 1
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#endif

/* snprintf + write rather than dprintf: dprintf allocates a stdio buffer,
 * and this also runs in the guard-page signal handler. */
__attribute__((format(printf, 2, 3))) static void out(int fd, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	if (n > 0) {
		ssize_t r = write(fd, line, (size_t)n);
		(void)r;
	}
}

static void print_frame(int fd, int n, void *pc)
{
#ifdef ZIO_USE_UNWIND
	/* libunwind reads the ELF symbol table, so static functions resolve
	 * too; a cursor pointed at pc is only used for the name lookup. */
	unw_context_t uc;
	unw_cursor_t cur;
	char name[128];
	unw_word_t off;
	if (unw_getcontext(&uc) == 0 && unw_init_local(&cur, &uc) == 0 &&
	    unw_set_reg(&cur, UNW_REG_IP, (unw_word_t)pc) == 0 &&
	    unw_get_proc_name(&cur, name, sizeof(name), &off) == 0) {
		out(fd, "  #%-2d %p %s+0x%lx\n", n, pc, name, (unsigned long)off);
		return;
	}
#endif
	Dl_info info;
	if (dladdr(pc, &info) && info.dli_sname)
		out(fd, "  #%-2d %p %s+0x%lx\n", n, pc, info.dli_sname,
			(unsigned long)((char *)pc - (char *)info.dli_saddr));
	else if (dladdr(pc, &info) && info.dli_fname)
		out(fd, "  #%-2d %p (%s+0x%lx)\n", n, pc, info.dli_fname,
			(unsigned long)((char *)pc - (char *)info.dli_fbase));
	else
		out(fd, "  #%-2d %p\n", n, pc);
}

void zio__backtrace_here(int fd)
{
#ifdef ZIO_USE_UNWIND
	unw_context_t uc;
	unw_cursor_t cur;
	if (unw_getcontext(&uc) != 0 || unw_init_local(&cur, &uc) != 0)
		return;
	for (int n = 0; n < 64 && unw_step(&cur) > 0; n++) {
		unw_word_t ip;
		unw_get_reg(&cur, UNW_REG_IP, &ip);
		char name[128];
		unw_word_t off;
		if (unw_get_proc_name(&cur, name, sizeof(name), &off) == 0)
			out(fd, "  #%-2d %p %s+0x%lx\n", n, (void *)ip, name, (unsigned long)off);
		else
			out(fd, "  #%-2d %p\n", n, (void *)ip);
	}
#else
	void **fp = __builtin_frame_address(0);
	for (int n = 0; n < 64 && fp; n++) {
		void **rec = zio__fp_record(fp);
		if (!rec[1])
			break;
		print_frame(fd, n, rec[1]);
		void **up = rec[0];
		if (up <= fp)
			break;
		fp = up;
	}
#endif
}

void zio__backtrace_fiber(struct zio__fiber *f, int fd)
{
	void *pc, *fpv;
	zio__ctx_frame(&f->ctx, &pc, &fpv);
	if (!pc)
		return;
	print_frame(fd, 0, pc);
	void **fp = fpv;
	for (int n = 1; n < 64; n++) {
		if ((char *)fp < f->stack.lo + 16 || (char *)fp >= f->stack.hi)
			break;
		void **rec = zio__fp_record(fp);
		if (!rec[1])
			break;
		print_frame(fd, n, rec[1]);
		void **up = rec[0];
		if (up <= fp)
			break;
		fp = up;
	}
}
