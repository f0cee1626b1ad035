/*
 * sched.c - executors, run queues, work stealing, parking.
 *
 * Each executor is an OS thread with:
 *  - runnext: the fiber most recently woken here; it runs next, so a wake
 *    followed by a park is a direct fiber-to-fiber handoff (Go's runnext);
 *  - pinned: a FIFO of runnable fibers that must not move (zio_task_pin(),
 *    or a fiber resuming from a wait that armed executor-local state);
 *  - runq: a 256-slot ring the owner pushes to and anyone may steal half of;
 *  - inbox: a lock-free LIFO where other threads drop fibers that must run
 *    here, drained by the owner.
 * The runtime has a global injection queue for spawns from foreign threads
 * and for runq overflow.
 *
 * A fiber switches out through zio__switch_out(). The executor picks the
 * next runnable fiber itself and switches to it directly; only every 64th
 * pick, or when nothing local is runnable, does it return to the scheduler
 * context (the thread's own stack), which fires timers, polls I/O, takes
 * from the global queue, steals, or parks in the backend.
 *
 * Whoever runs next on the executor finishes the previous fiber's switch
 * (the "landing site"): requeue after a yield, publish PARKED after a park,
 * free after an exit. Until then the fiber's registers are not saved and no
 * other thread may resume it; a wake that arrives in that window sets
 * NOTIFIED instead and the landing site requeues it.
 *
 * Wakes: a fiber woken on its own executor goes to runnext; woken from
 * another executor of the same runtime, it moves to the waker's executor
 * unless pinned (locality with the waker; stealing rebalances); otherwise
 * it goes to its executor's inbox and the executor is woken if it sleeps.
 *
 * Idle executors park in their backend's poll, bounded by their nearest
 * timer. A pusher wakes one sleeping executor when work is queued and
 * nobody is already searching, so a burst of work wakes executors one at a
 * time and an idle runtime costs no CPU.
 */
#include "internal.h"
#include "backend.h"

#include <sched.h>
#include <unistd.h>


#define TICKS_PER_POLL 64u

void (*zio__switch_hook)(struct zio__fiber *from, struct zio__fiber *to);

static __thread struct zio__exec *tls_exec __attribute__((tls_model("initial-exec")));
/* The serial of the runtime whose executor 0 this thread ran last
 * (between its zio_runtime_run() calls and until zio_runtime_destroy()),
 * or 0. Looked up among the live runtimes: another thread may have
 * destroyed it (allowed on epoll), and a new one may have its address. */
static __thread uint64_t tls_idle_serial;
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static zio__runtime *live_head;
static uint64_t live_serial;

/* fork(): in the child the forking thread runs no executor (a task that
 * forked is, in the child, a plain thread on the task's stack) and no
 * runtime of the parent's is idle here: zio calls there are a plain
 * thread's and leave the parent's loops alone. The list is held across the
 * fork so that the child's copy is whole. */
static void live_fork_prepare(void)
{
	pthread_mutex_lock(&live_lock);
}

static void live_fork_parent(void)
{
	pthread_mutex_unlock(&live_lock);
}

static void live_fork_child(void)
{
	pthread_mutex_unlock(&live_lock);
	tls_exec = NULL;
	tls_idle_serial = 0;
}

static void live_init(void)
{
	pthread_atfork(live_fork_prepare, live_fork_parent, live_fork_child);
}

/* Not inlined, and opaque to the optimiser: a fiber that called this before
 * a switch may be on another thread after it, and GCC otherwise keeps the
 * thread pointer for the whole function. */
__attribute__((noinline)) struct zio__exec *zio__exec_current(void)
{
	struct zio__exec *e = tls_exec;
	__asm__ __volatile__("" : "+r"(e));
	return e;
}

zio__runtime *zio__runtime_idle_here(void)
{
	if (tls_exec || !tls_idle_serial)
		return NULL;
	pthread_mutex_lock(&live_lock);
	zio__runtime *rt = live_head;
	while (rt && rt->serial != tls_idle_serial)
		rt = rt->live_next;
	pthread_mutex_unlock(&live_lock);
	if (!rt)
		tls_idle_serial = 0;
	return rt;
}

__attribute__((noinline)) struct zio__fiber *zio__fiber_current(void)
{
	struct zio__exec *e = tls_exec;
	__asm__ __volatile__("" : "+r"(e));
	return e ? e->cur : NULL;
}

/* ------------------------------------------------------------------- queues */

/* Statistics: written only by the owning executor, read by anyone. A
 * relaxed store is a plain mov on every CPU we support. */
#define STAT_INC(field) __atomic_store_n(&(field), (field) + 1, __ATOMIC_RELAXED)

static void fifo_push(struct zio__fifo *q, struct zio__fiber *f)
{
	f->next = NULL;
	if (q->tail)
		q->tail->next = f;
	else
		q->head = f;
	q->tail = f;
}

static struct zio__fiber *fifo_pop(struct zio__fifo *q)
{
	struct zio__fiber *f = q->head;
	if (f) {
		q->head = f->next;
		if (!q->head)
			q->tail = NULL;
	}
	return f;
}

static void global_push_list(zio__runtime *rt, struct zio__fiber *head, struct zio__fiber *tail,
			     unsigned n)
{
	tail->next = NULL;
	zio__spin_lock(&rt->global_lock);
	if (rt->global_tail)
		rt->global_tail->next = head;
	else
		rt->global_head = head;
	rt->global_tail = tail;
	atomic_fetch_add(&rt->global_len, n);
	zio__spin_unlock(&rt->global_lock);
}

/* Moves half of a full ring plus f to the global queue (Go's runqputslow). */
static bool runq_spill(struct zio__exec *e, struct zio__fiber *f, unsigned h, unsigned t)
{
	struct zio__runq *q = &e->runq;
	unsigned n = (t - h) / 2;
	struct zio__fiber *batch[ZIO__RUNQ_SIZE / 2 + 1];
	for (unsigned i = 0; i < n; i++)
		batch[i] = atomic_load_explicit(&q->slot[(h + i) % ZIO__RUNQ_SIZE], memory_order_relaxed);
	if (!atomic_compare_exchange_strong_explicit(&q->head, &h, h + n, memory_order_release,
						     memory_order_relaxed))
		return false;
	batch[n] = f;
	for (unsigned i = 0; i < n; i++)
		batch[i]->next = batch[i + 1];
	global_push_list(e->rt, batch[0], f, n + 1);
	return true;
}

static void runq_push(struct zio__exec *e, struct zio__fiber *f)
{
	struct zio__runq *q = &e->runq;
	for (;;) {
		unsigned h = atomic_load_explicit(&q->head, memory_order_acquire);
		unsigned t = atomic_load_explicit(&q->tail, memory_order_relaxed);
		if (t - h < ZIO__RUNQ_SIZE) {
			atomic_store_explicit(&q->slot[t % ZIO__RUNQ_SIZE], f, memory_order_relaxed);
			atomic_store_explicit(&q->tail, t + 1, memory_order_release);
			return;
		}
		if (runq_spill(e, f, h, t))
			return;
	}
}

static struct zio__fiber *runq_pop(struct zio__exec *e)
{
	struct zio__runq *q = &e->runq;
	unsigned h = atomic_load_explicit(&q->head, memory_order_acquire);
	if (e->rt->n_exec == 1) {
		/* No thieves in a single-executor runtime: no locked instruction,
		 * which would also drain the store buffer the switch just filled. */
		if (atomic_load_explicit(&q->tail, memory_order_relaxed) == h)
			return NULL;
		struct zio__fiber *f =
			atomic_load_explicit(&q->slot[h % ZIO__RUNQ_SIZE], memory_order_relaxed);
		atomic_store_explicit(&q->head, h + 1, memory_order_relaxed);
		return f;
	}
	for (;;) {
		unsigned t = atomic_load_explicit(&q->tail, memory_order_relaxed);
		if (t == h)
			return NULL;
		struct zio__fiber *f =
			atomic_load_explicit(&q->slot[h % ZIO__RUNQ_SIZE], memory_order_relaxed);
		if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + 1, memory_order_release,
							  memory_order_acquire))
			return f;
	}
}

static unsigned runq_len(struct zio__exec *e)
{
	unsigned h = atomic_load_explicit(&e->runq.head, memory_order_acquire);
	unsigned t = atomic_load_explicit(&e->runq.tail, memory_order_acquire);
	return t - h;
}

/* Takes half of victim's ring into thief's; returns one fiber to run. */
static struct zio__fiber *runq_steal(struct zio__exec *thief, struct zio__exec *victim)
{
	struct zio__runq *q = &victim->runq;
	struct zio__fiber *batch[ZIO__RUNQ_SIZE / 2];
	unsigned n;
	for (;;) {
		unsigned h = atomic_load_explicit(&q->head, memory_order_acquire);
		unsigned t = atomic_load_explicit(&q->tail, memory_order_acquire);
		n = t - h;
		n -= n / 2;
		if (n == 0)
			return NULL;
		if (n > ZIO__RUNQ_SIZE / 2)
			continue; /* inconsistent snapshot */
		for (unsigned i = 0; i < n; i++)
			batch[i] = atomic_load_explicit(&q->slot[(h + i) % ZIO__RUNQ_SIZE],
							memory_order_relaxed);
		if (atomic_compare_exchange_strong_explicit(&q->head, &h, h + n, memory_order_acq_rel,
							    memory_order_relaxed))
			break;
	}
	for (unsigned i = 1; i < n; i++) {
		batch[i]->exec = thief;
		runq_push(thief, batch[i]);
	}
	batch[0]->exec = thief;
	STAT_INC(thief->steals);
	return batch[0];
}

static void inbox_push(struct zio__exec *e, struct zio__fiber *f)
{
	struct zio__fiber *old = atomic_load_explicit(&e->inbox, memory_order_relaxed);
	do {
		f->next = old;
	} while (!atomic_compare_exchange_weak_explicit(&e->inbox, &old, f, memory_order_release,
							memory_order_relaxed));
}

static void queue_local(struct zio__exec *e, struct zio__fiber *f, bool handoff);

static bool inbox_drain(struct zio__exec *e)
{
	if (!atomic_load_explicit(&e->inbox, memory_order_relaxed))
		return false;
	struct zio__fiber *list = atomic_exchange_explicit(&e->inbox, NULL, memory_order_acquire);
	/* LIFO to FIFO. */
	struct zio__fiber *fifo = NULL;
	while (list) {
		struct zio__fiber *next = list->next;
		list->next = fifo;
		fifo = list;
		list = next;
	}
	while (fifo) {
		struct zio__fiber *next = fifo->next;
		fifo->exec = e;
		queue_local(e, fifo, false);
		fifo = next;
	}
	return true;
}

/* ------------------------------------------------------------ waking peers */

static void wake_one_sleeper(zio__runtime *rt)
{
	for (unsigned i = 0; i < rt->n_exec; i++) {
		struct zio__exec *x = rt->exec[i];
		if (atomic_load_explicit(&x->sleeping, memory_order_relaxed)) {
			zio__loop_wake(x);
			return;
		}
	}
}

/* Called after queueing stealable work: someone idle should come and get it. */
static inline void notify_work(zio__runtime *rt)
{
	if (rt->n_exec == 1)
		return;
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&rt->n_sleeping, memory_order_relaxed) &&
	    !atomic_load_explicit(&rt->n_searching, memory_order_relaxed))
		wake_one_sleeper(rt);
}

static void remote_push(struct zio__exec *e, struct zio__fiber *f)
{
	inbox_push(e, f);
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&e->sleeping, memory_order_relaxed))
		zio__loop_wake(e);
}

static inline bool must_stay(const struct zio__fiber *f)
{
	return f->flags & (ZIO__FIBER_PINNED | ZIO__FIBER_TEMP_PIN);
}

static void queue_local(struct zio__exec *e, struct zio__fiber *f, bool handoff)
{
	atomic_store_explicit(&f->state, ZIO__F_READY, memory_order_relaxed);
	if (handoff) {
		struct zio__fiber *old = e->runnext;
		e->runnext = f;
		if (!old)
			return;
		f = old;
	}
	if (must_stay(f)) {
		fifo_push(&e->pinned, f);
	} else {
		runq_push(e, f);
		notify_work(e->rt);
	}
}

/* Executor 0 runs only inside zio_runtime_run() and zio_runtime_destroy();
 * executors 1.. run from creation to destruction. Between runs, a task
 * that may move is not sent to executor 0, where it would wait for the
 * next run while the others idle. */
static inline bool stopped(const struct zio__exec *e)
{
	return e->id == 0 && e->rt->n_exec > 1 &&
	       !atomic_load_explicit(&e->driven, memory_order_relaxed);
}

static struct zio__exec *running_peer(zio__runtime *rt)
{
	unsigned i = atomic_fetch_add_explicit(&rt->next_exec, 1, memory_order_relaxed);
	return rt->exec[1 + i % (rt->n_exec - 1)];
}

/* Hands on what reached executor 0's inbox while it was stopping: tasks
 * that may move go to a running executor, the others wait there. The
 * inbox is taken by exchange, so this may race its own executor's drain. */
static void pass_on_inbox(struct zio__exec *e0)
{
	struct zio__fiber *list = atomic_exchange_explicit(&e0->inbox, NULL, memory_order_acquire);
	while (list) {
		struct zio__fiber *f = list;
		list = f->next;
		f->exec = must_stay(f) ? e0 : running_peer(e0->rt);
		remote_push(f->exec, f);
	}
}

/* A task queued from another thread than its executor's. */
static void remote_deliver(struct zio__exec *to, struct zio__fiber *f)
{
	/* Read before the push: from then on f may run, and change them. */
	bool may_move = !must_stay(f);
	if (may_move && stopped(to))
		to = running_peer(to->rt);
	f->exec = to;
	atomic_store_explicit(&f->state, ZIO__F_READY, memory_order_relaxed);
	remote_push(to, f);
	/* A task that may move, sent to executor 0 as it stopped: remote_push's
	 * fence orders the push before this look, and executor 0 stops by
	 * clearing `driven`, then passing on its inbox (stop_exec0). */
	if (may_move && stopped(to))
		pass_on_inbox(to);
}

void zio__schedule(zio__runtime *rt, struct zio__fiber *f)
{
	struct zio__exec *e = zio__exec_current();
	if (e && e->rt == rt) {
		f->exec = e;
		queue_local(e, f, false);
		return;
	}
	/* From a foreign thread: a new task goes round-robin to an executor's
	 * inbox, which wakes it if it sleeps. */
	unsigned i = atomic_fetch_add_explicit(&rt->next_exec, 1, memory_order_relaxed) % rt->n_exec;
	struct zio__exec *to = rt->exec[i];
	/* Not yet run, a task asked to be pinned is pinned where it starts. */
	remote_deliver(stopped(to) ? running_peer(rt) : to, f);
}

static void schedule_woken(struct zio__fiber *f)
{
	struct zio__exec *home = f->exec;
	struct zio__exec *e = zio__exec_current();
	if (e == home) {
		queue_local(e, f, true);
	} else if (e && e->rt == f->rt && !must_stay(f) && e->cur) {
		f->exec = e;
		queue_local(e, f, false);
	} else {
		remote_deliver(home, f);
	}
}

void zio__ready(struct zio__fiber *f)
{
	/* Woken on the executor it parked on, by someone else running there:
	 * that executor finished f's park before running anything else, so f
	 * is PARKED and nobody else may touch its state (only the claim's
	 * winner calls this). No locked instruction needed. */
	struct zio__exec *e = zio__exec_current();
	if (e && e == f->exec && f != e->cur) {
		zio__check(atomic_load_explicit(&f->state, memory_order_relaxed) == ZIO__F_PARKED);
		queue_local(e, f, true);
		return;
	}
	uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
	for (;;) {
		if (s == ZIO__F_PARKED) {
			if (atomic_compare_exchange_weak_explicit(&f->state, &s, ZIO__F_READY,
								  memory_order_acq_rel,
								  memory_order_acquire)) {
				schedule_woken(f);
				return;
			}
		} else if (s == ZIO__F_RUNNING) {
			if (atomic_compare_exchange_weak_explicit(&f->state, &s, ZIO__F_NOTIFIED,
								  memory_order_acq_rel,
								  memory_order_acquire))
				return;
		} else {
			zio__panic("woke task #%llu in state %u", (unsigned long long)f->id, s);
		}
	}
}

/* -------------------------------------------------------------- switching */

/* Only switches that involve a task with its own FP environment get here. */
static void fpenv_switch(struct zio__exec *e, struct zio__fiber *from, struct zio__fiber *to)
{
	bool from_own = from && (from->flags & ZIO__FIBER_FPENV);
	if (from_own)
		zio__fpenv_save(&from->fpenv);
	if (to && (to->flags & ZIO__FIBER_FPENV))
		zio__fpenv_load(&to->fpenv);
	else if (from_own)
		zio__fpenv_load(&e->base_fpenv);
}

#ifdef ZIO_ASAN
void zio__asan_landed(void *fake_stack)
{
	__sanitizer_finish_switch_fiber(fake_stack, NULL, NULL);
}
#endif

static inline void switch_to(struct zio__exec *e, struct zio__ctx *from, struct zio__fiber *from_f,
			     struct zio__fiber *to)
{
	if (zio__unlikely(zio__switch_hook != NULL))
		zio__switch_hook(from_f, to);
	if (!ZIO_ARCH_SWITCH_KEEPS_FPENV &&
	    zio__unlikely(((from_f ? from_f->flags : 0) | (to ? to->flags : 0)) & ZIO__FIBER_FPENV))
		fpenv_switch(e, from_f, to);
#ifdef ZIO_TSAN
	__tsan_switch_to_fiber(to ? to->san : e->san, 0);
#endif
#ifdef ZIO_ASAN
	/* A fiber that exits passes no save slot: ASan frees its fake stack. */
	void **fake = !from_f ? &e->san
		      : e->landing == from_f && e->landing_action == ZIO__LAND_EXIT ? NULL
		      : &from_f->san;
	if (to)
		__sanitizer_start_switch_fiber(fake, to->stack.lo, (size_t)((char *)to - to->stack.lo));
	else
		__sanitizer_start_switch_fiber(fake, e->stack_lo, e->stack_size);
#endif
	if (to) {
		to->exec = e;
		e->cur = to;
		zio__ctx_switch_inline(from, &to->ctx);
	} else {
		e->cur = NULL;
		zio__ctx_switch_inline(from, &e->sched_ctx);
	}
}

/* Finishes the switch of whatever fiber switched out on e last. */
static void land(struct zio__exec *e)
{
	e->ops_unswitched = 0;
	struct zio__fiber *f = e->landing;
	if (!f)
		return;
	e->landing = NULL;
	switch (e->landing_action) {
	case ZIO__LAND_YIELD:
		queue_local(e, f, false);
		break;
	case ZIO__LAND_PARK: {
		uint32_t s = ZIO__F_RUNNING;
		if (!atomic_compare_exchange_strong_explicit(&f->state, &s, ZIO__F_PARKED,
							     memory_order_acq_rel, memory_order_acquire)) {
			/* Claimed before it got here: run it again. */
			zio__check(s == ZIO__F_NOTIFIED);
			queue_local(e, f, false);
		}
		STAT_INC(e->parks);
		break;
	}
	case ZIO__LAND_EXIT:
		zio__fiber_finished(e, f);
		break;
	case ZIO__LAND_MOVE:
		f->exec = e->move_to;
		atomic_store_explicit(&f->state, ZIO__F_READY, memory_order_relaxed);
		remote_push(f->exec, f);
		break;
	case ZIO__LAND_NONE:
		break;
	}
}

/* runnext and the pinned list come first (hand-offs and I/O wakes: warm,
 * and this executor's alone), but not always: with enough tasks in I/O
 * the pinned list never empties, and what the run queue holds (spawned,
 * yielded, woken by a join) would never run. Every RUNQ_TURN-th pick
 * looks there first. */
#define RUNQ_TURN 16u

static inline struct zio__fiber *pick_local(struct zio__exec *e)
{
	struct zio__fiber *f;
	if (zio__unlikely(++e->picks % RUNQ_TURN == 0) && (f = runq_pop(e)))
		return f;
	f = e->runnext;
	if (f) {
		e->runnext = NULL;
		return f;
	}
	if ((f = fifo_pop(&e->pinned)))
		return f;
	return runq_pop(e);
}

/* Warms what the fiber after the one about to run touches first: its saved
 * frames, which with thousands of tasks are a cache miss on every resume.
 * One task's run (usually a syscall or two) is time enough for them to
 * arrive. The address of those frames is in the fiber's descriptor, and the
 * wake that queued it may be a whole batch of syscalls ago, long evicted;
 * so when it comes from the pinned list, the descriptor of the one after it
 * is warmed too, one run ahead of its turn. Only runnext and the pinned list
 * are this executor's alone: a run-queue fiber may be stolen, run and
 * freed meanwhile. */
static inline void prefetch_after(struct zio__exec *e)
{
	struct zio__fiber *f = e->runnext;
	if (!f && (f = e->pinned.head) && f->next)
		__builtin_prefetch(f->next);
	if (f)
		zio__fiber_warm_frames(f);
}

/* Entry point of every fiber's first run: like the code after a switch. */
void zio__fiber_landed(struct zio__fiber *self)
{
	zio__asan_landed(NULL);
	struct zio__exec *e = self->exec;
	land(e);
	*e->errno_ptr = 0;
}

void zio__switch_out(struct zio__fiber *self, enum zio__landing action)
{
	struct zio__exec *e = self->exec;
	struct zio__fiber *next = NULL;
	if (zio__likely(++e->tick % TICKS_PER_POLL != 0)) {
		next = pick_local(e);
		if (!next && inbox_drain(e))
			next = pick_local(e);
		prefetch_after(e);
		/* A yield with nobody else to run is over before it started. */
		if (!next && action == ZIO__LAND_YIELD)
			return;
	}
	e->landing = self;
	e->landing_action = action;
	self->err = *e->errno_ptr;
	STAT_INC(e->switches);
	if (next)
		atomic_store_explicit(&next->state, ZIO__F_RUNNING, memory_order_relaxed);
	switch_to(e, &self->ctx, self, next);
	/* Resumed, possibly on another executor. */
	zio__asan_landed(self->san);
	e = self->exec;
	land(e);
	*e->errno_ptr = self->err;
}

void zio__move_to(struct zio__exec *to)
{
	struct zio__fiber *self = zio__fiber_current();
	struct zio__exec *e = self->exec;
	if (e == to)
		return;
	zio__check(to->rt == e->rt);
	e->move_to = to;
	zio__switch_out(self, ZIO__LAND_MOVE);
}

/* --------------------------------------------------------------- the loop */

static struct zio__fiber *take_global(struct zio__exec *e)
{
	zio__runtime *rt = e->rt;
	if (!atomic_load_explicit(&rt->global_len, memory_order_relaxed))
		return NULL;
	zio__spin_lock(&rt->global_lock);
	unsigned len = atomic_load_explicit(&rt->global_len, memory_order_relaxed);
	unsigned n = len / rt->n_exec + 1;
	if (n > len)
		n = len;
	if (n > ZIO__RUNQ_SIZE / 2)
		n = ZIO__RUNQ_SIZE / 2;
	/* All but the first go to the local queue, which must not spill: a
	 * spill takes this lock (thieves only make more room meanwhile). */
	unsigned room = ZIO__RUNQ_SIZE - runq_len(e);
	if (n > room + 1)
		n = room + 1;
	struct zio__fiber *first = NULL;
	for (unsigned i = 0; i < n; i++) {
		struct zio__fiber *f = rt->global_head;
		rt->global_head = f->next;
		if (!rt->global_head)
			rt->global_tail = NULL;
		f->exec = e;
		if (!first)
			first = f;
		else
			runq_push(e, f);
	}
	atomic_fetch_sub(&rt->global_len, n);
	zio__spin_unlock(&rt->global_lock);
	return first;
}

static struct zio__fiber *steal(struct zio__exec *e)
{
	zio__runtime *rt = e->rt;
	if (rt->n_exec == 1)
		return NULL;
	unsigned start = (unsigned)(zio__rand(&e->rng) % rt->n_exec);
	for (unsigned i = 0; i < rt->n_exec; i++) {
		struct zio__exec *v = rt->exec[(start + i) % rt->n_exec];
		if (v == e)
			continue;
		struct zio__fiber *f = runq_steal(e, v);
		if (f)
			return f;
	}
	return NULL;
}

static struct zio__fiber *find_work(struct zio__exec *e)
{
	struct zio__fiber *f;
	/* Now and then the global queue goes first, so it cannot starve. Its
	 * own count: e->tick reaches here at one residue only when tasks
	 * switch among themselves (switch_out comes every TICKS_PER_POLL),
	 * which a yielding task once used to starve the global queue. */
	if (++e->passes % (TICKS_PER_POLL * 4) == 0 && (f = take_global(e)))
		return f;
	/* Wakes from other threads (the blocking pool, plain threads, other
	 * executors) join the local queue's tail here, at the latest every
	 * TICKS_PER_POLL switches: taken only once the local queue ran dry,
	 * they waited as long as tasks that yield in a loop kept it full
	 * (a zio_blocking_call that returned at once, for ever). */
	inbox_drain(e);
	if ((f = pick_local(e)))
		return f;
	if ((f = take_global(e)))
		return f;
	atomic_fetch_add(&e->rt->n_searching, 1);
	f = steal(e);
	atomic_fetch_sub(&e->rt->n_searching, 1);
	return f;
}

static bool work_visible(struct zio__exec *e)
{
	zio__runtime *rt = e->rt;
	if (atomic_load(&e->inbox) || atomic_load(&rt->global_len))
		return true;
	for (unsigned i = 0; i < rt->n_exec; i++)
		if (runq_len(rt->exec[i]))
			return true;
	return false;
}

static void run_timers_and_io(struct zio__exec *e, bool block, bool (*done)(struct zio__exec *))
{
	e->now = zio__now();
	int64_t next = zio__timers_run(&e->timers, e->now);
	if (!block) {
		zio__loop_poll(e, 0);
		return;
	}
	zio__runtime *rt = e->rt;
	atomic_fetch_add(&rt->n_sleeping, 1);
	atomic_store(&e->sleeping, 1);
	/* Clear before the last look: a wake() that finds it set knows its
	 * news was published before this point, so the look below sees it;
	 * any later wake() writes to the backend and ends the poll. */
	atomic_store(&e->wake_pending, 0);
	if (!work_visible(e) && !done(e) && !e->runnext && !e->pinned.head) {
		int64_t timeout = -1;
		if (next != ZIO_FOREVER)
			timeout = next > e->now ? next - e->now : 0;
		zio__loop_poll(e, timeout);
	}
	atomic_store(&e->sleeping, 0);
	atomic_fetch_sub(&rt->n_sleeping, 1);
	e->now = zio__now();
	zio__timers_run(&e->timers, e->now);
}

/* Runs fibers until done(e) says stop. */
static void exec_loop(struct zio__exec *e, bool (*done)(struct zio__exec *))
{
	while (!done(e)) {
		e->tick++;
		struct zio__fiber *f = find_work(e);
		if (f) {
			prefetch_after(e);
			atomic_store_explicit(&f->state, ZIO__F_RUNNING, memory_order_relaxed);
			switch_to(e, &e->sched_ctx, NULL, f);
			zio__asan_landed(e->san);
			land(e);
			/* Every pass through here: timers due, I/O ready, no wait. */
			if (e->tick % 8 == 0 || e->timers.root)
				run_timers_and_io(e, false, done);
			continue;
		}
		run_timers_and_io(e, true, done);
	}
}

static bool main_finished(struct zio__exec *e)
{
	return atomic_load(&e->rt->main_done);
}

static bool all_finished(struct zio__exec *e)
{
	return atomic_load(&e->rt->live) == 0;
}

static bool shutting_down(struct zio__exec *e)
{
	return atomic_load(&e->rt->stopping) && atomic_load(&e->rt->live) == 0;
}

static void exec_enter(struct zio__exec *e)
{
	atomic_store(&e->driven, true);
	tls_exec = e;
	e->errno_ptr = &errno;
#ifdef ZIO_ASAN
	pthread_attr_t attr;
	void *lo;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		pthread_attr_getstack(&attr, &lo, &e->stack_size);
		e->stack_lo = lo;
		pthread_attr_destroy(&attr);
	}
#endif
	zio__fpenv_save(&e->base_fpenv);
#ifdef ZIO_TSAN
	e->san = __tsan_get_current_fiber();
#endif
	if (!e->altstack)
		zio__sigaltstack_install(&e->altstack);
}

static void exec_leave(struct zio__exec *e)
{
	zio__sigaltstack_remove(e->altstack);
	e->altstack = NULL;
	tls_exec = NULL;
	atomic_store(&e->driven, false);
}

static void *worker_main(void *arg)
{
	struct zio__exec *e = arg;
	exec_enter(e);
	exec_loop(e, shutting_down);
	exec_leave(e);
	return NULL;
}

/* ------------------------------------------------------------------ runtime */

static unsigned cpu_count(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		return (unsigned)CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/* A decimal number from the environment variable name (dflt if unset),
 * with k, m or g after it where scale is true; 0 for anything else (not
 * decimal digits, too large): the caller refuses it. */
static uint64_t env_number(const char *name, uint64_t dflt, bool scale)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return dflt;
	uint64_t n = 0;
	const char *c = v;
	for (; *c >= '0' && *c <= '9'; c++) {
		if (n > (UINT64_MAX - 9) / 10)
			return 0;
		n = n * 10 + (uint64_t)(*c - '0');
	}
	unsigned shift = 0;
	if (scale && c > v && *c && c[1] == '\0') {
		switch (*c) {
		case 'k': case 'K': shift = 10; c++; break;
		case 'm': case 'M': shift = 20; c++; break;
		case 'g': case 'G': shift = 30; c++; break;
		}
	}
	if (c == v || *c || n > (UINT64_MAX >> shift))
		return 0;
	return n << shift;
}

static void exec_free(struct zio__exec *e)
{
	if (!e)
		return;
	if (e->loop)
		zio__loop_destroy(e);
	if (e->rt->stacks)
		zio__stack_cache_flush(e);
	free(e);
}

/* A loop of backend b for each executor, or none and -errno. */
static int create_loops(zio_runtime *rt, const struct zio__backend *b)
{
	for (unsigned i = 0; i < rt->n_exec; i++) {
		int err = zio__loop_create(rt->exec[i], b);
		if (err) {
			while (i-- > 0)
				zio__loop_destroy(rt->exec[i]);
			return err;
		}
	}
	return 0;
}

ZIO_API int zio_runtime_create(zio_runtime **out, const struct zio_runtime_options *opts)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	struct zio_runtime_options o = { 0 };
	if (opts)
		o = *opts;
	unsigned n = o.executors;
	if (n == 0) {
		const char *v = getenv("ZIO_EXECUTORS");
		uint64_t e = env_number("ZIO_EXECUTORS", 1, false);
		if (v && strcmp(v, "auto") == 0) {
			n = ZIO_EXECUTORS_AUTO;
		} else if (e == 0 || e > 256) {
			zio__log(1, "ZIO_EXECUTORS=%s: must be 1 to 256, or auto (one per CPU)", v);
			return -EINVAL;
		} else {
			n = (unsigned)e;
		}
	}
	if (n == ZIO_EXECUTORS_AUTO) {
		unsigned cpus = cpu_count();
		n = cpus < 256 ? cpus : 256;
	}
	if (n > 256) {
		zio__log(1, "%u executors asked for (zio_runtime_options.executors): at most 256", n);
		return -EINVAL;
	}
	size_t stack = o.stack_size ? o.stack_size
				    : (size_t)env_number("ZIO_STACK_SIZE", ZIO__STACK_DEFAULT, true);
	if (stack < ZIO__STACK_MIN || stack > ((size_t)1 << 36)) {
		if (o.stack_size)
			zio__log(1, "a stack size of %zu bytes asked for: 16 KiB to 64 GiB", stack);
		else
			zio__log(1, "ZIO_STACK_SIZE=%s: must be 16k to 64g (bytes, or k, m, g for KiB, MiB, GiB)",
				 getenv("ZIO_STACK_SIZE"));
		return -EINVAL;
	}

	const struct zio__backend *backend;
	bool automatic;
	int err = zio__backend_choose(o.backend, &backend, &automatic);
	if (err)
		return err;

	zio_runtime *rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	rt->n_exec = n;
	rt->stack_size = stack;
	rt->stack_cache = o.stack_cache ? o.stack_cache : 1024;
	atomic_init(&rt->next_id, 1);
	err = -ENOMEM;
	rt->exec = calloc(n, sizeof(*rt->exec));
	if (!rt->exec)
		goto fail;
	err = zio__stack_pool_create(&rt->stacks, stack, rt->stack_cache, n);
	if (err)
		goto fail;
	for (unsigned i = 0; i < n; i++) {
		struct zio__exec *e;
		err = -ENOMEM;
		if (posix_memalign((void **)&e, ZIO__CACHELINE, sizeof(*e)))
			goto fail;
		memset(e, 0, sizeof(*e));
		e->rt = rt;
		e->id = i;
		e->rng = 0x9E3779B97F4A7C15ULL * (i + 1);
		rt->exec[i] = e;
	}
	while ((err = create_loops(rt, backend)) != 0) {
		/* A backend chosen automatically may still not make this
		 * runtime's loops: io_uring's rings count against the
		 * unprivileged user's RLIMIT_MEMLOCK, and a sysctl may
		 * forbid them since the probe. The next one may. (Not out
		 * of descriptors: every backend needs them.) */
		bool fds = err == -EMFILE || err == -ENFILE;
		const struct zio__backend *next = automatic && !fds ? zio__backend_after(backend) : NULL;
		if (!next)
			goto fail;
		zio__log(1, "%s backend: cannot make this runtime's loops (%s%s), falling back to %s",
			 backend->name, strerror(-err),
			 err == -ENOMEM && strcmp(backend->name, "uring") == 0
				 ? "; io_uring's memory counts against ulimit -l"
				 : "",
			 next->name);
		backend = next;
	}
	rt->backend = backend;
	zio__guard_handler_install();
	for (unsigned i = 1; i < n; i++) {
		err = -pthread_create(&rt->exec[i]->thread, NULL, worker_main, rt->exec[i]);
		if (err) {
			/* Stop the ones already started. */
			atomic_store(&rt->stopping, 1);
			for (unsigned j = 1; j < i; j++) {
				zio__loop_wake(rt->exec[j]);
				pthread_join(rt->exec[j]->thread, NULL);
			}
			goto fail;
		}
	}
	static pthread_once_t live_once = PTHREAD_ONCE_INIT;
	pthread_once(&live_once, live_init);
	pthread_mutex_lock(&live_lock);
	rt->serial = ++live_serial;
	rt->pid = getpid();
	rt->live_next = live_head;
	live_head = rt;
	pthread_mutex_unlock(&live_lock);
	zio__log(0, "runtime: %u executor(s), %s backend, %zu KiB stacks", n, backend->name,
		 stack >> 10);
	*out = rt;
	return 0;
fail:
	if (rt->exec)
		for (unsigned i = 0; i < n; i++)
			exec_free(rt->exec[i]);
	zio__stack_pool_destroy(rt->stacks);
	free(rt->exec);
	free(rt);
	return err;
}

/* zio_runtime_run() returns while executors 1.. go on: what only executor
 * 0 would serve until the next run is handed on. Tasks that may move go to
 * the others (the run queue now, the inbox once `driven` is clear, and
 * whatever arrives after by its sender, see remote_deliver); its backend
 * lets go of fds it serves for everyone (epoll registrations, idle
 * multishot requests). Tasks that must stay here wait for the next run, as
 * do timers and I/O of tasks suspended here. With one executor only the
 * backend's part applies. */
static void stop_exec0(struct zio__exec *e)
{
	if (e->loop->ops->stop)
		e->loop->ops->stop(e->loop);
	if (e->runnext && !must_stay(e->runnext)) {
		runq_push(e, e->runnext);
		e->runnext = NULL;
	}
	struct zio__fiber *f;
	while ((f = runq_pop(e))) {
		f->exec = running_peer(e->rt);
		remote_push(f->exec, f);
	}
	atomic_store(&e->driven, false);
	pass_on_inbox(e);
}

ZIO_API int zio_runtime_run(zio_runtime *rt, zio_task_fn fn, void *arg, void **result)
{
	if (!rt || !fn)
		return -EINVAL;
	if (zio__exec_current())
		return -EDEADLK; /* already inside a runtime on this thread */
	struct zio__fiber *f;
	atomic_store(&rt->main_done, 0);
	int err = zio__fiber_spawn(rt, &f, fn, arg, &(struct zio_spawn_options){ .name = "main" },
				   ZIO__FIBER_MAIN, NULL);
	if (err)
		return err;
	struct zio__exec *e = rt->exec[0];
	exec_enter(e);
	f->exec = e;
	queue_local(e, f, false);
	/* Whatever reached executor 0 while nobody ran it (completions,
	 * closes from other threads) is taken in before the main task runs,
	 * however briefly. */
	run_timers_and_io(e, false, main_finished);
	exec_loop(e, main_finished);
	/* Hand the kernel what the last tasks queued: a ring left with
	 * requests it has not seen would name their fds only later, when a
	 * closed number may name another file (see ur_close_fd). */
	run_timers_and_io(e, false, main_finished);
	if (rt->n_exec > 1)
		stop_exec0(e);
	else if (e->loop->ops->stop)
		e->loop->ops->stop(e->loop);
	exec_leave(e);
	tls_idle_serial = rt->serial;
	/* The main task is done; collect it without blocking. */
	zio__check(zio_task_done((zio_task *)f));
	void *res = f->result;
	zio__fiber_release(f);
	if (result)
		*result = res;
	return 0;
}

/* Called by fiber.c when the main task finishes, on whichever executor. */
void zio__main_finished(zio__runtime *rt)
{
	atomic_store(&rt->main_done, 1);
	struct zio__exec *e0 = rt->exec[0];
	if (zio__exec_current() != e0)
		zio__loop_wake(e0);
}

ZIO_API void zio_runtime_destroy(zio_runtime *rt)
{
	if (!rt)
		return;
	zio__check(zio__exec_current() == NULL);
	pthread_mutex_lock(&live_lock);
	zio__runtime **pp = &live_head;
	while (*pp != rt)
		pp = &(*pp)->live_next;
	*pp = rt->live_next;
	pthread_mutex_unlock(&live_lock);
	atomic_store(&rt->stopping, 1);
	zio__stack_pool_closing(rt->stacks);
	zio__cancel_all(rt);
	struct zio__exec *e0 = rt->exec[0];
	exec_enter(e0);
	exec_loop(e0, all_finished);
	exec_leave(e0);
	if (tls_idle_serial == rt->serial)
		tls_idle_serial = 0;
	for (unsigned i = 1; i < rt->n_exec; i++) {
		zio__loop_wake(rt->exec[i]);
		pthread_join(rt->exec[i]->thread, NULL);
	}
	for (unsigned i = 0; i < rt->n_exec; i++)
		exec_free(rt->exec[i]);
	zio__stack_pool_destroy(rt->stacks);
	free(rt->exec);
	free(rt);
}

ZIO_API zio_runtime *zio_runtime_current(void)
{
	struct zio__exec *e = zio__exec_current();
	return e ? e->rt : NULL;
}

ZIO_API unsigned zio_runtime_executors(const zio_runtime *rt)
{
	return rt ? rt->n_exec : 0;
}

ZIO_API const char *zio_runtime_backend(const zio_runtime *rt)
{
	return rt ? rt->backend->name : NULL;
}

ZIO_API void zio_runtime_stats(zio_runtime *rt, struct zio_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->tasks_live = atomic_load(&rt->live);
	out->tasks_spawned = atomic_load(&rt->spawned);
	for (unsigned i = 0; i < rt->n_exec; i++) {
		/* Racy reads of counters: good enough for statistics. */
		out->switches += __atomic_load_n(&rt->exec[i]->switches, __ATOMIC_RELAXED);
		out->steals += __atomic_load_n(&rt->exec[i]->steals, __ATOMIC_RELAXED);
		out->parks += __atomic_load_n(&rt->exec[i]->parks, __ATOMIC_RELAXED);
	}
	zio__stack_stats(rt->stacks, &out->stacks_cached, &out->stacks_mapped);
}

/* ------------------------------------------------------------ public calls */

/* What a yield says, as every suspension point: a cancel, or a deadline
 * scope that has run out (a loop of yields in a scope ends with it). */
static inline int yield_verdict(struct zio__fiber *f)
{
	if (f->shield)
		return 0;
	if (atomic_load_explicit(&f->cancelled, memory_order_relaxed))
		return -ECANCELED;
	if (f->deadline != ZIO_FOREVER && zio__now() >= f->deadline)
		return -ETIMEDOUT;
	return 0;
}

ZIO_API int zio_yield(void)
{
	/* The thread pointer is read once, before any switch: afterwards only
	 * f, which moves with the task, is used. */
	struct zio__exec *e = tls_exec;
	struct zio__fiber *f = e ? e->cur : NULL;
	if (!f) {
		sched_yield();
		return 0;
	}
	int r = yield_verdict(f);
	if (r)
		return r;
	zio__switch_out(f, ZIO__LAND_YIELD);
	return yield_verdict(f);
}

void zio__yield_polling(void)
{
	/* No verdict first: the op budget's turn is owed to the others even
	 * when a cancel or a spent deadline scope is pending (ops that never
	 * wait still succeed there, and a loop of them would hold the
	 * executor); the op that follows says the verdict. */
	struct zio__exec *e = tls_exec;
	struct zio__fiber *f = e ? e->cur : NULL;
	if (!f)
		return;
	e->tick |= TICKS_PER_POLL - 1; /* the next switch_out is a poll tick */
	zio__switch_out(f, ZIO__LAND_YIELD);
}

ZIO_API void zio_task_own_fpenv(void)
{
	struct zio__fiber *f = zio__fiber_current();
	if (f)
		f->flags |= ZIO__FIBER_FPENV;
}

ZIO_API void zio_task_pin(void)
{
	struct zio__fiber *f = zio__fiber_current();
	if (f)
		f->flags |= ZIO__FIBER_PINNED;
}
