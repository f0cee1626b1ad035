/*
 * fiber.c - tasks: spawn, the entry trampoline, exit, join, detach,
 * task-local storage.
 *
 * A task's bookkeeping (struct zio__fiber) lives at the top of its own
 * stack, so an idle task touches one page for both its metadata and its
 * innermost frames, and spawning allocates nothing beyond the stack.
 *
 * Lifetime: a task holds one reference while it runs and its handle holds
 * another (none if spawned detached). The stack goes back to the pool when
 * both are gone: the running reference is dropped by the executor's landing
 * site after the task's last switch, the handle's by join or detach.
 * join_state publishes completion: the finishing task swaps it to DONE and
 * wakes a joiner that registered first.
 */
#include "internal.h"
#include "backend.h"


enum { JOIN_NONE, JOIN_WAITING, JOIN_DONE };

/* ------------------------------------------------------------ task keys */

static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;
static bool key_used[ZIO_TASK_KEYS_MAX];
static void (*key_dtor[ZIO_TASK_KEYS_MAX])(void *);

ZIO_API int zio_task_key_create(zio_task_key *key, void (*destructor)(void *))
{
	if (!key)
		return -EINVAL;
	pthread_mutex_lock(&keys_lock);
	for (unsigned i = 0; i < ZIO_TASK_KEYS_MAX; i++) {
		if (!key_used[i]) {
			key_used[i] = true;
			__atomic_store_n(&key_dtor[i], destructor, __ATOMIC_RELEASE);
			pthread_mutex_unlock(&keys_lock);
			*key = i;
			return 0;
		}
	}
	pthread_mutex_unlock(&keys_lock);
	return -EAGAIN;
}

ZIO_API int zio_task_key_delete(zio_task_key key)
{
	if (key >= ZIO_TASK_KEYS_MAX)
		return -EINVAL;
	pthread_mutex_lock(&keys_lock);
	int err = key_used[key] ? 0 : -EINVAL;
	key_used[key] = false;
	__atomic_store_n(&key_dtor[key], NULL, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&keys_lock);
	return err;
}

ZIO_API int zio_task_set(zio_task_key key, const void *value)
{
	struct zio__fiber *f = zio__fiber_current();
	if (!f)
		return -EPERM;
	if (key >= ZIO_TASK_KEYS_MAX)
		return -EINVAL;
	if (!f->tls) {
		if (!value)
			return 0;
		f->tls = calloc(ZIO_TASK_KEYS_MAX, sizeof(void *));
		if (!f->tls)
			return -ENOMEM;
	}
	f->tls[key] = (void *)value;
	return 0;
}

ZIO_API void *zio_task_get(zio_task_key key)
{
	struct zio__fiber *f = zio__fiber_current();
	if (!f || !f->tls || key >= ZIO_TASK_KEYS_MAX)
		return NULL;
	return f->tls[key];
}

static void run_key_destructors(struct zio__fiber *f)
{
	/* Like pthread: a destructor may set values again; give up after 4. */
	for (int round = 0; round < 4 && f->tls; round++) {
		bool again = false;
		for (unsigned i = 0; i < ZIO_TASK_KEYS_MAX; i++) {
			void *v = f->tls[i];
			void (*d)(void *) = __atomic_load_n(&key_dtor[i], __ATOMIC_ACQUIRE);
			if (v && d) {
				f->tls[i] = NULL;
				d(v);
				again = true;
			}
		}
		if (!again)
			break;
	}
}

/* ------------------------------------------------------------ live tasks */

static void list_add(struct zio__exec *e, struct zio__fiber *f)
{
	zio__spin_lock(&e->all_lock);
	f->all_list = e;
	f->all_prev = NULL;
	f->all_next = e->all_head;
	if (e->all_head)
		e->all_head->all_prev = f;
	e->all_head = f;
	zio__spin_unlock(&e->all_lock);
}

static void list_remove(struct zio__fiber *f)
{
	struct zio__exec *e = f->all_list;
	zio__spin_lock(&e->all_lock);
	if (f->all_prev)
		f->all_prev->all_next = f->all_next;
	else
		e->all_head = f->all_next;
	if (f->all_next)
		f->all_next->all_prev = f->all_prev;
	zio__spin_unlock(&e->all_lock);
}

void zio__cancel_all(zio__runtime *rt)
{
	for (unsigned i = 0; i < rt->n_exec; i++) {
		struct zio__exec *e = rt->exec[i];
		zio__spin_lock(&e->all_lock);
		for (struct zio__fiber *f = e->all_head; f; f = f->all_next)
			zio_task_cancel((zio_task *)f);
		zio__spin_unlock(&e->all_lock);
	}
}

ZIO_API void zio_runtime_dump(zio_runtime *rt, int fd)
{
	static const char *const states[] = { "running", "parked", "waking", "runnable", "done" };
	if (!rt)
		return;
	dprintf(fd, "zio: %lu live task(s) on %u executor(s), %s backend\n",
		(unsigned long)atomic_load(&rt->live), rt->n_exec, rt->backend->name);
	struct zio__fiber *self = zio__fiber_current();
	for (unsigned i = 0; i < rt->n_exec; i++) {
		struct zio__exec *e = rt->exec[i];
		zio__spin_lock(&e->all_lock);
		for (struct zio__fiber *f = e->all_head; f; f = f->all_next) {
			unsigned s = atomic_load(&f->state);
			dprintf(fd, "task #%llu \"%s\": %s%s\n", (unsigned long long)f->id,
				f->name[0] ? f->name : "(unnamed)", s < 5 ? states[s] : "?",
				atomic_load(&f->cancelled) ? ", cancelled" : "");
			if (f == self)
				zio__backtrace_here(fd);
			else if (s == ZIO__F_PARKED || s == ZIO__F_READY)
				zio__backtrace_fiber(f, fd);
		}
		zio__spin_unlock(&e->all_lock);
	}
}

/* ------------------------------------------------------- spawn and exit */

static _Noreturn void fiber_exit(struct zio__fiber *f)
{
	run_key_destructors(f);
	free(f->tls);
	f->tls = NULL;
	if (f->flags & ZIO__FIBER_GROUP)
		zio__group_task_done(f, (int)(intptr_t)f->result);
	if (atomic_exchange_explicit(&f->join_state, JOIN_DONE, memory_order_acq_rel) == JOIN_WAITING)
		zio__unpark(f->joiner, f->joiner_gen, 0);
#ifdef ZIO_ASAN
	/* The frames above us never return: clear their redzones so the
	 * stack's next task does not trip over them. */
	__asan_handle_no_return();
#endif
	zio__switch_out(f, ZIO__LAND_EXIT);
	zio__panic("finished task #%llu was resumed", (unsigned long long)f->id);
}

static void fiber_entry(void *arg)
{
	struct zio__fiber *f = arg;
	zio__fiber_landed(f);
	if (f->flags & ZIO__FIBER_GROUP)
		f->result = (void *)(intptr_t)f->gfn(f->arg);
	else
		f->result = f->fn(f->arg);
	fiber_exit(f);
}

/* A park and a switch touch ctx, exec, next, state, flags, err, shield,
 * cancelled, deadline and the parker's word, gen and flags: one line. */
_Static_assert(offsetof(struct zio__fiber, park) + offsetof(struct zio__parker, futex) <=
		       ZIO__CACHELINE,
	       "a fiber's hot fields fit its first cache line");

int zio__fiber_spawn(zio__runtime *rt, struct zio__fiber **out, zio_task_fn fn, void *arg,
		     const struct zio_spawn_options *opts, uint32_t flags, struct zio_group *group)
{
	struct zio__exec *e = zio__exec_current();
	if (!rt)
		rt = e ? e->rt : NULL;
	if (!rt || !fn)
		return -EINVAL;
	if (e && e->rt != rt)
		e = NULL;

	struct zio__stack st;
	int err = zio__stack_get(rt->stacks, e, opts ? opts->stack_size : 0, &st);
	if (err)
		return err;
	/* Cache colouring within the page: stack.c already shifts each
	 * stack's top by whole pages, and 32 colours of 64 bytes from a
	 * counter spread the descriptors over the page's lines too. At most
	 * 2 KiB, so an idle task's descriptor and frames still fit in the one
	 * page it touches. */
	static atomic_uint colour;
	size_t off = 0;
	if (st.size >= 8 * 4096)
		off = (atomic_fetch_add_explicit(&colour, 1, memory_order_relaxed) * 7u % 32u) * 64u;
	struct zio__fiber *f = (struct zio__fiber *)(((uintptr_t)st.hi - off -
						      sizeof(struct zio__fiber)) & ~(uintptr_t)63);
	memset(f, 0, sizeof(*f));
	f->stack = st;
	f->rt = rt;
	f->fn = fn;
	f->arg = arg;
	f->flags = flags | (opts && opts->pinned ? ZIO__FIBER_PINNED : 0);
	if (opts && opts->fp_env) {
		/* Like a thread, a task starts with its creator's environment. */
		f->flags |= ZIO__FIBER_FPENV;
		zio__fpenv_save(&f->fpenv);
	}
	f->deadline = ZIO_FOREVER;
	atomic_init(&f->refs, out ? 2 : 1);
	f->id = atomic_fetch_add_explicit(&rt->next_id, 1, memory_order_relaxed);
	if (opts && opts->name) {
		strncpy(f->name, opts->name, sizeof(f->name) - 1);
	}
#ifdef ZIO_TSAN
	f->san = __tsan_create_fiber(0);
#endif
	zio__ctx_make(&f->ctx, st.lo, (char *)f, fiber_entry, f);
	list_add(e ? e : rt->exec[0], f);
	atomic_fetch_add_explicit(&rt->live, 1, memory_order_relaxed);
	if (atomic_load_explicit(&rt->stopping, memory_order_relaxed))
		atomic_store(&f->cancelled, true);
	if (group)
		zio__group_link(f, group);
	if (out)
		*out = f;
	if (!(flags & ZIO__FIBER_MAIN))
		zio__schedule(rt, f);
	return 0;
}

void zio__fiber_release(struct zio__fiber *f)
{
	if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
		return;
#ifdef ZIO_TSAN
	__tsan_destroy_fiber(f->san);
#endif
	struct zio__stack st = f->stack; /* f lives inside the stack */
	struct zio__exec *e = zio__exec_current();
	zio__stack_put(e && e->rt == f->rt ? e : NULL, &st);
}

void zio__fiber_finished(struct zio__exec *e, struct zio__fiber *f)
{
	zio__runtime *rt = f->rt;
	bool is_main = f->flags & ZIO__FIBER_MAIN;
	atomic_store_explicit(&f->state, ZIO__F_DONE, memory_order_release);
#ifdef ZIO_ASAN
	/* The frames of the task's last switch (below where fiber_exit cleared
	 * them) never returned; their redzones would trip the stack's next
	 * task. They all lie within a few KiB under the task's metadata. */
	size_t dirty = f->stack.size < 65536 ? f->stack.size : 65536;
	__asan_unpoison_memory_region((char *)f - dirty, dirty);
#endif
	list_remove(f);
	zio__fiber_release(f);
	if (is_main)
		zio__main_finished(rt);
	/* The last task out tells a destroying executor 0. Executor threads
	 * are joined before the runtime is freed, so rt is still valid here. */
	if (atomic_fetch_sub_explicit(&rt->live, 1, memory_order_acq_rel) == 1 &&
	    atomic_load(&rt->stopping) && e != rt->exec[0])
		zio__loop_wake(rt->exec[0]);
}

/* ------------------------------------------------------------ public API */

ZIO_API int zio_spawn(zio_runtime *rt, zio_task **out, zio_task_fn fn, void *arg,
		      const struct zio_spawn_options *opts)
{
	struct zio__fiber *f;
	int err = zio__fiber_spawn(rt, out ? &f : NULL, fn, arg, opts, 0, NULL);
	if (!err && out)
		*out = (zio_task *)f;
	return err;
}

ZIO_API int zio_task_join(zio_task *t, void **result)
{
	struct zio__fiber *f = (struct zio__fiber *)t;
	if (!f)
		return -EINVAL;
	if (f == zio__fiber_current())
		return -EDEADLK;
	int ret = 0;
	if (atomic_load_explicit(&f->join_state, memory_order_acquire) != JOIN_DONE) {
		struct zio__parker *p = zio__parker_self();
		f->joiner = p;
		f->joiner_gen = zio__park_prepare(p, 0);
		unsigned expect = JOIN_NONE;
		if (!atomic_compare_exchange_strong(&f->join_state, &expect, JOIN_WAITING)) {
			/* Finished meanwhile: withdraw the wait, so a cancel that
			 * claims it cannot leave a stray wake for a later one. */
			zio__park_abandon(p);
		} else {
			int r = zio__park(p, ZIO_FOREVER);
			if (r < 0) {
				/* Cancelled (or a deadline scope expired): take the child
				 * down with us, and wait for it so nothing leaks. */
				ret = r;
				zio_task_cancel(t);
				expect = JOIN_WAITING;
				if (atomic_compare_exchange_strong(&f->join_state, &expect, JOIN_NONE)) {
					f->joiner_gen = zio__park_prepare(p, ZIO__PARK_NOCANCEL);
					expect = JOIN_NONE;
					zio_shield_begin();
					if (atomic_compare_exchange_strong(&f->join_state, &expect,
									   JOIN_WAITING))
						zio__park(p, ZIO_FOREVER);
					else
						zio__park_abandon(p);
					zio_shield_end();
				}
			}
		}
	}
	/* Pairs with the exchange in fiber_exit(): result is visible. */
	zio__check(atomic_load_explicit(&f->join_state, memory_order_acquire) == JOIN_DONE);
	if (result)
		*result = f->result;
	zio__fiber_release(f);
	return ret;
}

ZIO_API void zio_task_detach(zio_task *t)
{
	if (t)
		zio__fiber_release((struct zio__fiber *)t);
}

ZIO_API bool zio_task_done(const zio_task *t)
{
	const struct zio__fiber *f = (const struct zio__fiber *)t;
	return f && atomic_load_explicit(&((struct zio__fiber *)f)->join_state,
					 memory_order_acquire) == JOIN_DONE;
}

ZIO_API zio_task *zio_task_self(void)
{
	return (zio_task *)zio__fiber_current();
}

ZIO_API const char *zio_task_name(const zio_task *t)
{
	return t ? ((const struct zio__fiber *)t)->name : NULL;
}

ZIO_API uint64_t zio_task_id(const zio_task *t)
{
	return t ? ((const struct zio__fiber *)t)->id : 0;
}
