/*
 * backend.h - the I/O backend interface (one instance per executor).
 *
 * A backend is a const vtable; each backend file exports exactly one
 * (zio__backend_uring, zio__backend_epoll, zio__backend_poll) and keeps
 * everything else static. The runtime picks one at creation: the name given
 * in zio_runtime_options.backend, else $ZIO_BACKEND, else the first of
 * uring -> epoll -> poll whose probe() succeeds (cached, logged once).
 *
 * An executor's loop is touched only by its own thread, except wake(),
 * which any thread may call. poll() waits up to timeout_ns (-1: forever,
 * 0: just reap) for completions or a wake(); the scheduler bounds it by the
 * executor's nearest timer.
 *
 * Operations are completion-based: the fiber fills a struct zio__op on its
 * own stack, submit()s it, and parks (wait.c); the backend sets op->res
 * (result or -errno, like a CQE) and calls zio__op_complete(), which claims
 * the fiber's wait. epoll and poll emulate completions: try the syscall,
 * arm readiness on EAGAIN, retry when ready.
 */
#ifndef ZIO_BACKEND_H
#define ZIO_BACKEND_H

#include "internal.h"

struct zio__loop {
	const struct zio__backend *ops;
	struct zio__exec *exec;
};

struct zio__op;

struct zio__backend {
	const char *name;
	/* 0 if this backend can work in this process (kernel, seccomp, sysctl). */
	int (*probe)(void);
	int (*create)(struct zio__exec *e, struct zio__loop **out);
	void (*destroy)(struct zio__loop *l);
	/* Returns the number of completions reaped, or -errno. */
	int (*poll)(struct zio__loop *l, int64_t timeout_ns);
	void (*wake)(struct zio__loop *l);
	/* I/O operations; NULL in a backend that only parks. */
	void (*submit)(struct zio__loop *l, struct zio__op *op);
	void (*cancel)(struct zio__loop *l, struct zio__op *op);
};

extern const struct zio__backend zio__backend_epoll;
extern const struct zio__backend zio__backend_poll;
#ifdef ZIO_HAVE_URING
extern const struct zio__backend zio__backend_uring;
#endif

#endif
