/*
 * cancel.c - cancellation, shields and deadline scopes.
 *
 * Cancellation is a sticky state of a task, not an event: once
 * zio_task_cancel() has been called, the task's current suspension (if it
 * allows cancellation) and every later one return -ECANCELED, until the
 * task finishes. Code that must finish its cleanup wraps it in a shield;
 * shields nest, and while one is active suspensions ignore cancellation and
 * the enclosing deadline scopes (explicit deadlines passed to a call still
 * apply). The waker side of this is zio__unpark_cancel() in wait.c.
 *
 * A deadline scope sets the task's innermost deadline; zio__park() uses the
 * earlier of it and the deadline passed to the call. Nested scopes can only
 * shorten it: an inner scope with a later deadline than its enclosing one
 * does not extend the outer bound.
 */
#include "internal.h"

ZIO_API void zio_task_cancel(zio_task *t)
{
	struct zio__fiber *f = (struct zio__fiber *)t;
	if (!f)
		return;
	/* seq_cst: pairs with zio__park_prepare()/zio__park(). */
	if (atomic_exchange(&f->cancelled, true))
		return;
	zio__unpark_cancel(&f->park);
}

ZIO_API int zio_check_cancel(void)
{
	struct zio__fiber *f = zio__fiber_current();
	if (f && f->shield == 0 && atomic_load_explicit(&f->cancelled, memory_order_relaxed))
		return -ECANCELED;
	return 0;
}

ZIO_API void zio_shield_begin(void)
{
	struct zio__fiber *f = zio__fiber_current();
	if (f)
		f->shield++;
}

ZIO_API void zio_shield_end(void)
{
	struct zio__fiber *f = zio__fiber_current();
	if (f) {
		zio__check(f->shield > 0);
		f->shield--;
	}
}

ZIO_API void zio_timeout_begin(struct zio_timeout *scope, int64_t deadline)
{
	struct zio__fiber *f = zio__fiber_current();
	scope->deadline = deadline;
	scope->outer = f ? f->deadline : ZIO_FOREVER;
	if (f)
		f->deadline = zio__earlier(f->deadline, deadline);
}

ZIO_API bool zio_timeout_end(struct zio_timeout *scope)
{
	struct zio__fiber *f = zio__fiber_current();
	if (f) {
		/* What this scope left in force: its deadline or an earlier
		 * outer one. Anything else means an enclosing scope ended
		 * first (out of order): restoring this one's outer deadline
		 * would bring the ended scope's back, for good. */
		if (f->deadline == zio__earlier(scope->outer, scope->deadline)) {
			f->deadline = scope->outer;
		} else {
			static atomic_bool said;
			if (!atomic_exchange(&said, true))
				zio__log(1, "zio_timeout_end: scopes ended out of order (they must end "
					    "innermost first)");
		}
	}
	return scope->deadline != ZIO_FOREVER && zio__now() >= scope->deadline;
}

ZIO_API int zio_sleep_until(int64_t deadline)
{
	struct zio__parker *p = zio__parker_self();
	zio__park_prepare(p, 0);
	int r = zio__park(p, deadline);
	/* Nobody wakes a sleeper: reaching the deadline is success, unless it
	 * was an enclosing scope's deadline that ended the sleep early. */
	if (r == -ETIMEDOUT && (deadline == ZIO_FOREVER || zio__now() < deadline))
		return -ETIMEDOUT;
	return r == -ETIMEDOUT ? 0 : r;
}

int zio__backoff(int64_t *pause, int64_t max, int64_t deadline)
{
	int64_t now = zio__now();
	if (deadline != ZIO_FOREVER && now >= deadline)
		return -ETIMEDOUT;
	int r = zio_sleep_until(deadline != ZIO_FOREVER && deadline - now < *pause ? deadline
										 : now + *pause);
	*pause = *pause * 2 > max ? max : *pause * 2;
	return r;
}

ZIO_API int zio_sleep(int64_t ns)
{
	if (ns < 0)
		return -EINVAL;
	return zio_sleep_until(zio_deadline_after(ns));
}
