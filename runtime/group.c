/*
 * group.c - task groups: structured concurrency.
 *
 * A group owns the tasks spawned into it: it can wait for all of them,
 * cancel all of them, and it never lets one outlive it (destroy cancels and
 * waits). With ZIO_GROUP_FAIL_FAST the first task to return an error
 * cancels the rest; the group reports the first error any task returned.
 *
 * Group tasks are detached runtime tasks linked into the group's list; a
 * task unlinks itself (under the group lock) as it finishes, so every task
 * on the list is alive and can be cancelled. The group is never touched by
 * a task after it has unlinked, so destroy may free it as soon as the count
 * reaches zero.
 *
 * A group is reusable: once a wait (or a cancel) has seen it empty, its
 * first error and a fail-fast cancellation are over, and tasks spawned
 * after that start a fresh round. The old round is cleared by that next
 * spawn, not by the wait: every waiter of the round reads its error.
 */
#include "internal.h"

struct zio_group {
	zio__spin lock;
	unsigned flags;
	unsigned count;        /* tasks spawned and not finished */
	bool cancelling;       /* new spawns start cancelled */
	bool seen_empty;       /* a wait or cancel saw count 0: the next spawn starts afresh */
	int first_error;
	struct zio__fiber *head;
	struct zio__waitq waiters; /* zio_group_wait() callers */
	zio__runtime *_Atomic rt;  /* where its tasks run: a plain thread's spawns go there */
	bool freed_by_last; /* destroyed by a task of its own: the last one frees it */
};

ZIO_API int zio_group_create(zio_group **out, unsigned flags)
{
	if (!out || (flags & ~ZIO_GROUP_FAIL_FAST))
		return -EINVAL;
	zio_group *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->flags = flags;
	atomic_init(&g->rt, zio_runtime_current()); /* NULL on a plain thread */
	*out = g;
	return 0;
}

static void cancel_locked(zio_group *g)
{
	for (struct zio__fiber *f = g->head; f; f = f->group_next)
		zio_task_cancel((zio_task *)f);
}

ZIO_API int zio_group_spawn(zio_group *g, zio_group_fn fn, void *arg,
			    const struct zio_spawn_options *opts)
{
	if (!g || !fn)
		return -EINVAL;
	/* A task's spawn runs in its runtime, which the group then knows; a
	 * plain thread's goes to the runtime the group's tasks run in (none
	 * known yet: -EINVAL, as zio_spawn with no runtime). */
	zio__runtime *rt = zio_runtime_current();
	if (rt)
		atomic_store(&g->rt, rt);
	else if (!(rt = atomic_load(&g->rt)))
		return -EINVAL;
	/* zio__fiber_spawn() links the task (zio__group_link) before it can run. */
	return zio__fiber_spawn(rt, NULL, (zio_task_fn)(void (*)(void))fn, arg, opts,
				ZIO__FIBER_GROUP, g);
}

void zio__group_link(struct zio__fiber *f, zio_group *g)
{
	zio__spin_lock(&g->lock);
	g->count++;
	f->group = g;
	f->group_prev = NULL;
	f->group_next = g->head;
	if (g->head)
		g->head->group_prev = f;
	g->head = f;
	if (g->seen_empty) {
		g->seen_empty = false;
		g->cancelling = false;
		g->first_error = 0;
	}
	if (g->cancelling)
		zio_task_cancel((zio_task *)f);
	zio__spin_unlock(&g->lock);
}

void zio__group_task_done(struct zio__fiber *f, int rc)
{
	zio_group *g = f->group;
	zio__spin_lock(&g->lock);
	if (f->group_prev)
		f->group_prev->group_next = f->group_next;
	else
		g->head = f->group_next;
	if (f->group_next)
		f->group_next->group_prev = f->group_prev;
	if (rc < 0 && g->first_error == 0) {
		g->first_error = rc;
		if (g->flags & ZIO_GROUP_FAIL_FAST) {
			g->cancelling = true;
			cancel_locked(g);
		}
	}
	/* At 1 too: a task of the group waits for the others (cancel). */
	if (--g->count <= 1)
		while (zio__waitq_wake_one(&g->waiters, 0))
			;
	bool last = g->count == 0 && g->freed_by_last;
	zio__spin_unlock(&g->lock);
	if (last)
		free(g);
}

/* Whether the caller is a task of g: it cannot wait for g to empty. */
static bool member(const zio_group *g)
{
	struct zio__fiber *f = zio__fiber_current();
	return f && f->group == g;
}

/* Waits until the group holds no task but the caller's (none, if it is
 * not one of them); cancellable unless nocancel. Returns 0 with g->lock
 * held, so what the caller reads of the round is the round it saw end (a
 * spawn in between would have joined it), or -errno without the lock. */
static int wait_empty_locked(zio_group *g, bool nocancel)
{
	struct zio__parker *p = zio__parker_self();
	unsigned self = member(g);
	for (;;) {
		zio__spin_lock(&g->lock);
		if (g->count <= self)
			return 0;
		struct zio__waiter w;
		zio__waiter_init(&w, p, zio__park_prepare(p, nocancel ? ZIO__PARK_NOCANCEL : 0));
		zio__waitq_push(&g->waiters, &w);
		zio__spin_unlock(&g->lock);
		if (nocancel)
			zio_shield_begin();
		int r = zio__park(p, ZIO_FOREVER);
		if (nocancel)
			zio_shield_end();
		if (r < 0) {
			zio__spin_lock(&g->lock);
			zio__waitq_remove(&g->waiters, &w);
			zio__spin_unlock(&g->lock);
			return r;
		}
	}
}

/* A wait or cancel saw the group empty (unless a spawn came first): its
 * next task starts a fresh round, neither cancelled nor inheriting an old
 * error. */
static void round_over_locked(zio_group *g)
{
	if (g->count == 0)
		g->seen_empty = true;
}

ZIO_API void zio_group_cancel(zio_group *g)
{
	if (!g)
		return;
	zio__spin_lock(&g->lock);
	g->cancelling = true;
	cancel_locked(g);
	zio__spin_unlock(&g->lock);
	if (wait_empty_locked(g, true) < 0)
		return; /* not reached: a shielded wait for ever ends only by a wake */
	round_over_locked(g);
	zio__spin_unlock(&g->lock);
}

ZIO_API int zio_group_wait(zio_group *g)
{
	if (!g)
		return -EINVAL;
	if (member(g))
		return -EDEADLK; /* it would wait for itself */
	int r = wait_empty_locked(g, false);
	if (r < 0) {
		zio_group_cancel(g);
		return r;
	}
	r = g->first_error;
	round_over_locked(g);
	zio__spin_unlock(&g->lock);
	return r;
}

ZIO_API void zio_group_destroy(zio_group *g)
{
	if (!g)
		return;
	zio_group_cancel(g);
	if (member(g)) {
		/* The caller is the group's last task: it frees the group
		 * when it returns. */
		zio__spin_lock(&g->lock);
		g->freed_by_last = true;
		zio__spin_unlock(&g->lock);
		return;
	}
	free(g);
}
