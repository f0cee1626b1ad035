/*
 * internal.h - every declaration shared between libzio's files (zio__*).
 *
 * The runtime in one paragraph: a zio__runtime owns N executors (OS threads).
 * Each executor owns a run queue, a timer heap, a stack cache and one I/O
 * backend instance, and runs fibers by switching stacks (arch/). A fiber that
 * waits for anything goes through the one suspension primitive in wait.c: it
 * arms its parker, registers somewhere a waker can find it, and parks. The
 * first of {wake, deadline, cancel} to claim the parker decides the result;
 * the fiber then resumes on the executor it parked on.
 */
#ifndef ZIO_INTERNAL_H
#define ZIO_INTERNAL_H

#define ZIO_BUILDING 1
#include "zio.h"
#include "../arch/arch.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_THREAD__)
#define ZIO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ZIO_TSAN 1
#endif
#endif
#ifdef ZIO_TSAN
/* ThreadSanitizer's fiber API: every switch is announced to it. */
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

#if defined(__SANITIZE_ADDRESS__)
#define ZIO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ZIO_ASAN 1
#endif
#endif
#ifdef ZIO_ASAN
/* AddressSanitizer's fiber API: it must know which stack is current. */
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
				     size_t *size_old);
void __asan_handle_no_return(void);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

#define zio__likely(x) __builtin_expect(!!(x), 1)
#define zio__unlikely(x) __builtin_expect(!!(x), 0)
#define zio__container_of(p, type, field) ((type *)((char *)(p) - offsetof(type, field)))
#define ZIO__CACHELINE 64

/* Invariant checks that survive NDEBUG: a broken invariant is a bug in zio,
 * and continuing would corrupt someone's stack. */
#define zio__check(cond)                                                      \
	do {                                                                  \
		if (zio__unlikely(!(cond)))                                   \
			zio__panic("%s:%d: invariant failed: %s", __FILE__,   \
				   __LINE__, #cond);                          \
	} while (0)

_Noreturn void zio__panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* One line to stderr, prefixed "zio: ", when ZIO_DEBUG is set or level is
 * a warning. Used for the few things an operator should see once. */
void zio__log(int warning, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct zio__exec;
struct zio__fiber;
typedef struct zio_runtime zio__runtime;

/* ------------------------------------------------------------------ spinlock
 * For the few O(1) critical sections off the hot path (global queue, stack
 * pool, task lists). Test-and-test-and-set with pause. */
typedef struct {
	atomic_int locked;
} zio__spin;
void zio__spin_lock(zio__spin *s);
static inline void zio__spin_unlock(zio__spin *s)
{
	atomic_store_explicit(&s->locked, 0, memory_order_release);
}

/* ------------------------------------------------------------------- stacks */

struct zio__stack {
	char *lo;      /* lowest usable byte (just above the guard) */
	char *hi;      /* one past the highest byte */
	size_t size;   /* hi - lo, the reservation minus the guard */
	void *slab;    /* the pool slab it came from; NULL: mapped on its own */
	struct zio__stack_pool *pool;
};

#define ZIO__STACK_DEFAULT (8u << 20)
#define ZIO__STACK_MIN (16u << 10)
#define ZIO__GUARD_SIZE (64u << 10)

struct zio__stack_pool; /* opaque, stack.c */
int zio__stack_pool_create(struct zio__stack_pool **out, size_t size, unsigned cache,
			   unsigned executors);
void zio__stack_pool_destroy(struct zio__stack_pool *p);
/* Stacks of the pool's size come from the calling executor's cache, then
 * the pool; other sizes are mapped on their own. */
int zio__stack_get(struct zio__stack_pool *p, struct zio__exec *e, size_t size, struct zio__stack *out);
void zio__stack_put(struct zio__exec *e, struct zio__stack *s);
void zio__stack_cache_flush(struct zio__exec *e);
/* The runtime is being destroyed: stop returning pages one stack at a time. */
void zio__stack_pool_closing(struct zio__stack_pool *p);
/* Does addr fall in the guard region below a stack of this runtime? */
bool zio__stack_in_guard(const struct zio__stack *s, const void *addr);
void zio__stack_stats(struct zio__stack_pool *p, uint64_t *cached, uint64_t *mapped);
/* Per-thread alternate signal stack so a guard hit can be reported. */
int zio__sigaltstack_install(void **mem);
void zio__sigaltstack_remove(void *mem);
void zio__guard_handler_install(void);

/* ------------------------------------------------------------------ parkers
 * A parker is what a waiter sleeps on: every fiber has one, and every OS
 * thread outside the runtime gets one in TLS. word = gen << 32 | status.
 * While status is ZIO__PARK_WAITING, exactly one claimer (a waker, the
 * deadline timer, a canceller) can CAS it to its result; gen makes a stale
 * waker's CAS fail once the waiter has moved on to another wait. */
#define ZIO__PARK_WAITING 0x7fffffffu
#define ZIO__PARK_NOCANCEL 1u

struct zio__parker {
	_Atomic uint64_t word;
	uint32_t gen;             /* owner-only copy of the current generation */
	uint16_t flags;           /* ZIO__PARK_* of the current wait */
	bool thread;              /* an OS thread's, not embedded in a fiber */
	atomic_uint futex;        /* threads: 1 once claimed */
};
/* The fiber a parker belongs to (it is embedded in it), or NULL for an OS
 * thread's. Derived rather than stored: 16 bytes of parker then fit in the
 * fiber's first cache line with everything else a wait touches. */
#define zio__parker_fiber(p) \
	((p)->thread ? NULL : zio__container_of((p), struct zio__fiber, park))

/* The caller's parker: its fiber's, or its thread's. */
struct zio__parker *zio__parker_self(void);
/* Arms a new wait and returns its generation, which a waker must present. */
uint32_t zio__park_prepare(struct zio__parker *p, unsigned flags);
/* Sleeps until the wait is claimed; returns the claim's value: >= 0 from a
 * waker, -ETIMEDOUT when the deadline passes first, -ECANCELED when the task
 * is cancelled first. The innermost deadline scope also applies. */
int zio__park(struct zio__parker *p, int64_t deadline);
/* The deadline a wait of f's with deadline obeys: the earlier of it and
 * f's innermost deadline scope (unless f is shielded). */
int64_t zio__effective_deadline(const struct zio__fiber *f, int64_t deadline);
/* Withdraws a prepared wait without sleeping (the condition turned out to
 * hold); consumes a wake that raced in. */
void zio__park_abandon(struct zio__parker *p);
/* Any thread: ends wait gen of p with value. False if it already ended. */
bool zio__unpark(struct zio__parker *p, uint32_t gen, int value);
/* Claims p's current wait with -ECANCELED if that wait is cancellable. */
bool zio__unpark_cancel(struct zio__parker *p);

/* A queue node for code that keeps lists of waiters (sync, channels, join). */
struct zio__waiter {
	struct zio__waiter *next, *prev;
	struct zio__parker *parker;
	uint32_t gen;
	int value; /* free for the queue's owner: what was handed over, etc. */
	void *data;
};

/* Intrusive doubly linked FIFO of waiters (the caller provides the lock). */
struct zio__waitq {
	struct zio__waiter *head, *tail;
};
void zio__waitq_push(struct zio__waitq *q, struct zio__waiter *w);
void zio__waitq_remove(struct zio__waitq *q, struct zio__waiter *w);
struct zio__waiter *zio__waitq_pop(struct zio__waitq *q);
static inline bool zio__waiter_queued(const struct zio__waiter *w)
{
	return w->prev != w; /* an unlinked waiter points at itself */
}
static inline void zio__waiter_init(struct zio__waiter *w, struct zio__parker *p, uint32_t gen)
{
	w->next = w->prev = w;
	w->parker = p;
	w->gen = gen;
	w->value = 0;
	w->data = NULL;
}
/* Pops waiters until one accepts value; false if none did. Waiters that were
 * already claimed (timed out, cancelled) are skipped, which is how a signal
 * that races with a cancel goes to the next waiter. A woken waiter's node
 * is gone the moment it is claimed: never touch it afterwards. */
bool zio__waitq_wake_one(struct zio__waitq *q, int value);

/* ------------------------------------------------------------------- timers
 * Per-executor pairing heap: O(1) insert, O(log n) amortised remove-min and
 * remove. Owner-executor only: a fiber that armed a timer resumes on that
 * executor (it is temporarily pinned) and removes the timer itself. */
struct zio__timer {
	int64_t deadline;
	struct zio__timer *child, *sibling, *prev; /* prev: parent or left sibling */
	void (*fire)(struct zio__timer *t);
};
/* The earlier of two deadlines (ZIO_FOREVER, -1, is none). */
static inline int64_t zio__earlier(int64_t a, int64_t b)
{
	return a == ZIO_FOREVER || (b != ZIO_FOREVER && b < a) ? b : a;
}

struct zio__timers {
	struct zio__timer *root;
	size_t count;
};
void zio__timer_add(struct zio__timers *h, struct zio__timer *t);
void zio__timer_remove(struct zio__timers *h, struct zio__timer *t);
/* Fires every timer due at now; returns the next deadline or ZIO_FOREVER. */
int64_t zio__timers_run(struct zio__timers *h, int64_t now);
static inline int64_t zio__timers_next(const struct zio__timers *h)
{
	return h->root ? h->root->deadline : ZIO_FOREVER;
}

/* ------------------------------------------------------------------- fibers */

enum zio__fiber_state {
	ZIO__F_RUNNING,  /* executing, or on its way out of a switch */
	ZIO__F_PARKED,   /* suspended, waiting to be claimed */
	ZIO__F_NOTIFIED, /* claimed while still RUNNING: the landing site queues it */
	ZIO__F_READY,    /* in a run queue */
	ZIO__F_DONE,
};

#define ZIO__FIBER_PINNED 1u      /* zio_task_pin(): never stolen */
#define ZIO__FIBER_TEMP_PIN 2u    /* mid-wait on executor-local state */
#define ZIO__FIBER_GROUP 4u       /* body is a zio_group_fn */
#define ZIO__FIBER_MAIN 8u        /* zio_runtime_run()'s task */
#define ZIO__FIBER_FPENV 16u      /* has its own FP environment (arch.h) */

/* What the executor does on behalf of the fiber that just switched out,
 * once its stack is no longer in use (the "landing site"). */
enum zio__landing {
	ZIO__LAND_NONE,
	ZIO__LAND_YIELD,
	ZIO__LAND_PARK,
	ZIO__LAND_EXIT,
	ZIO__LAND_MOVE, /* to the executor in move_to */
};

struct zio__fiber {
	/* hot: touched on every switch */
	struct zio__ctx ctx;
	struct zio__exec *exec;   /* executor it runs on / parked on */
	struct zio__fiber *next;  /* run-queue link (inbox, pinned list, global) */
	_Atomic uint32_t state;   /* enum zio__fiber_state */
	uint32_t flags;           /* ZIO__FIBER_* */
	int err;                  /* errno while switched out */
	uint16_t shield;          /* zio_shield_begin() depth */
	atomic_bool cancelled;
	int64_t deadline;         /* innermost deadline scope */
	struct zio__parker park;
	struct zio__fpenv fpenv;  /* saved while switched out, if FPENV */
	/* (the fields above up to park.thread share the first cache line) */

	/* cold */
	zio__runtime *rt;
	union {
		zio_task_fn fn;
		zio_group_fn gfn;
	};
	void *arg;
	void *result;
	atomic_uint refs;         /* 1 for running + 1 for the handle */
	atomic_uint join_state;   /* 0, JOIN_WAITING, JOIN_DONE */
	struct zio__parker *joiner;
	uint32_t joiner_gen;
	struct zio__stack stack;
	struct zio__fiber *all_next, *all_prev; /* runtime's list of live tasks */
	struct zio__exec *all_list;             /* whose list holds it */
	struct zio_group *group;
	struct zio__fiber *group_next, *group_prev;
	void **tls;               /* ZIO_TASK_KEYS_MAX slots, allocated on first set */
	uint64_t id;
	void *san;                /* sanitizer fiber handle (TSan), fake stack (ASan) */
	char name[32];
};

/* The n-th pause of a caller waiting for another party to finish something
 * short (a closer for a pool job or a ring's submission, a destroy for a
 * waiter still leaving): a yield (a task) or sched_yield (a plain thread)
 * for the first ZIO__PAUSE_YIELDS, then 50 us naps, so a party on the same
 * executor gets to run. A task calls it shielded, or ignores the
 * cancellation it may report. */
#define ZIO__PAUSE_YIELDS 64u
void zio__pause(unsigned n);
/* A retry's pause, for what no event announces (cancel.c): sleeps *pause,
 * cut at deadline, and doubles it up to max. 0 to try again, -ETIMEDOUT
 * once the deadline has passed, or a task's -ECANCELED. Plain threads too. */
int zio__backoff(int64_t *pause, int64_t max, int64_t deadline);

/* Starts loading the frames a suspended fiber pops first when it resumes
 * (the switch, zio__park, the op it waits in: about 1 KiB above its saved
 * stack pointer on zio_read's io_uring path). A waker that can see the
 * resume coming calls it early enough for the lines to arrive. f must be
 * alive and not running; its saved sp is read atomically all the same, as
 * a switch elsewhere may be writing it (the prefetches cannot fault, so
 * such a stale sp only wastes the hint). */
#define ZIO__RESUME_BYTES 1024

static inline void zio__fiber_warm_frames(const struct zio__fiber *f)
{
	const char *sp = __atomic_load_n(&f->ctx.sp, __ATOMIC_RELAXED);
	for (unsigned off = 0; off < ZIO__RESUME_BYTES; off += ZIO__CACHELINE)
		__builtin_prefetch(sp + off);
}

int zio__fiber_spawn(zio__runtime *rt, struct zio__fiber **out, zio_task_fn fn, void *arg,
		     const struct zio_spawn_options *opts, uint32_t flags, struct zio_group *group);
void zio__group_link(struct zio__fiber *f, struct zio_group *g);
/* Drops one reference; the last one returns the stack. */
void zio__fiber_release(struct zio__fiber *f);
/* Called on the fiber's executor after it has switched out for the last time. */
void zio__fiber_finished(struct zio__exec *e, struct zio__fiber *f);

/* ---------------------------------------------------------------- executors */

/* Go-style bounded ring: the owner pushes at tail; the owner and thieves
 * take from head with CAS. */
#define ZIO__RUNQ_SIZE 256u
struct zio__runq {
	_Alignas(ZIO__CACHELINE) atomic_uint head;
	_Alignas(ZIO__CACHELINE) atomic_uint tail;
	struct zio__fiber *_Atomic slot[ZIO__RUNQ_SIZE];
};

/* Owner-only FIFO. */
struct zio__fifo {
	struct zio__fiber *head, *tail;
};

struct zio__loop; /* backend.h */

struct zio__exec {
	/* owner-hot */
	struct zio__fiber *cur;        /* running fiber; NULL in the scheduler */
	struct zio__fiber *runnext;    /* woken here: runs next (handoff) */
	struct zio__fiber *landing;    /* fiber that just switched out */
	enum zio__landing landing_action;
	struct zio__exec *move_to;     /* ZIO__LAND_MOVE's destination */
	unsigned tick;
	unsigned passes;               /* find_work() calls: global queue fairness */
	unsigned picks;                /* pick_local() calls: run queue fairness */
	unsigned ops_unswitched;       /* I/O ops since the last switch (io.c) */
	atomic_bool driven;            /* a thread runs it (exec_enter..exec_leave) */
	int *errno_ptr;                /* this thread's errno */
	struct zio__ctx sched_ctx;     /* the executor thread's own stack */
	struct zio__fifo pinned;       /* ready fibers that must run here */
	struct zio__timers timers;
	struct zio__loop *loop;
	zio__runtime *rt;
	unsigned id;
	uint64_t rng;
	int64_t now;                   /* cached at each scheduler pass */
	struct zio__fpenv base_fpenv;  /* what tasks without their own share */

	struct zio__runq runq;

	/* shared */
	_Alignas(ZIO__CACHELINE) struct zio__fiber *_Atomic inbox; /* remote wakes, LIFO */
	atomic_int sleeping;           /* parked in the backend */
	atomic_int wake_pending;       /* a wake() is on its way */

	/* cold */
	zio__spin all_lock;            /* guards the task list below */
	struct zio__fiber *all_head;
	struct zio__stack *stack_cache; /* free stacks of the pool size */
	unsigned stack_cached;
	pthread_t thread;
	void *altstack;
	void *san;                     /* TSan: the thread's own fiber; ASan: fake stack */
	const void *stack_lo;          /* the thread's own stack, for ASan */
	size_t stack_size;
	uint64_t switches, steals, parks;
};

struct zio_runtime {
	unsigned n_exec;
	struct zio__exec **exec;
	size_t stack_size;
	unsigned stack_cache;
	struct zio__stack_pool *stacks;
	const struct zio__backend *backend;

	/* global injection queue: spawns from foreign threads, runq overflow */
	_Alignas(ZIO__CACHELINE) zio__spin global_lock;
	struct zio__fiber *global_head, *global_tail;
	atomic_uint global_len;

	_Alignas(ZIO__CACHELINE) atomic_uint n_sleeping;  /* executors parked */
	atomic_uint n_searching; /* executors looking for work */
	atomic_bool stopping;    /* destroy: executors exit once idle */
	atomic_bool main_done;
	atomic_ulong live;       /* tasks spawned and not yet finished */
	atomic_ulong spawned;
	atomic_ulong next_id;
	atomic_uint next_exec;   /* round-robin home for foreign spawns */
	struct zio_runtime *live_next; /* sched.c's list of live runtimes */
	uint64_t serial;               /* unique in the process's life */
	pid_t pid;                     /* the process that made it (fork) */
};

/* The executor the calling thread is, or NULL. Never cached across a switch:
 * a fiber may resume on another thread. */
struct zio__exec *zio__exec_current(void);
struct zio__fiber *zio__fiber_current(void);
/* For a plain thread that has run a runtime (its executor 0) and may run it
 * again: that runtime, whose executor 0 nobody else drives; else NULL. */
zio__runtime *zio__runtime_idle_here(void);
/* Makes a claimed fiber runnable (wait.c calls it after a successful claim). */
void zio__ready(struct zio__fiber *f);
/* Queues a new or runnable fiber from anywhere. */
void zio__schedule(zio__runtime *rt, struct zio__fiber *f);
/* Switches the current fiber out; action says what the landing site does. */
void zio__switch_out(struct zio__fiber *self, enum zio__landing action);
/* A yield by way of the scheduler, which then runs the executor's
 * due timers and polls its I/O (io.c's op budget: ops that never wait
 * must not hold those back either). */
void zio__yield_polling(void);
/* Moves the running fiber to executor `to` and returns there. For state
 * that one executor owns (an io_uring ring's multishot request): the
 * caller keeps ZIO__FIBER_TEMP_PIN set so it is not stolen on arrival. */
void zio__move_to(struct zio__exec *to);
/* First thing a new fiber does: finish the switch that started it. */
void zio__fiber_landed(struct zio__fiber *self);
/* Sanitizer bookkeeping after a switch lands in a context. */
#ifdef ZIO_ASAN
void zio__asan_landed(void *fake_stack);
#else
static inline void zio__asan_landed(void *fake_stack)
{
	(void)fake_stack;
}
#endif
void zio__main_finished(zio__runtime *rt);
void zio__cancel_all(zio__runtime *rt);
/* group.c: a group task has returned rc. */
void zio__group_task_done(struct zio__fiber *f, int rc);

/* ----------------------------------------------------------------- backends */
/* The backend called name (NULL or "": $ZIO_BACKEND; NULL, "" or "auto"
 * there: the best that works, *automatic set), or -errno: -EINVAL for an
 * unknown name, else why the named one cannot work here. */
int zio__backend_choose(const char *name, const struct zio__backend **out, bool *automatic);
/* The first backend after b in the automatic order that works here, or
 * NULL: where a runtime's loops of b could not be made after all. */
const struct zio__backend *zio__backend_after(const struct zio__backend *b);
/* Errors that say "not now" rather than "not here": out of descriptors or
 * memory. A probe that met one is asked again next time. */
static inline bool zio__err_transient(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOMEM || err == -ENOBUFS ||
	       err == -EAGAIN;
}
int zio__loop_create(struct zio__exec *e, const struct zio__backend *b);
void zio__loop_destroy(struct zio__exec *e);
/* Waits up to timeout_ns (-1: forever) for I/O or a wake(). */
void zio__loop_poll(struct zio__exec *e, int64_t timeout_ns);
void zio__loop_wake(struct zio__exec *e);

/* -------------------------------------------------------------------- misc */
int64_t zio__now(void);
/* xorshift64*: stealing victims, select fairness. */
static inline uint64_t zio__rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}
/* Backtrace of a suspended fiber (or the caller if f is current) to fd. */
void zio__backtrace_fiber(struct zio__fiber *f, int fd);
void zio__backtrace_here(int fd);
/* Per-fiber switch hook for the preload shim: NULL when unused. */
extern void (*zio__switch_hook)(struct zio__fiber *from, struct zio__fiber *to);

#endif
