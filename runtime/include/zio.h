/*
 * zio.h - fibers on a work-stealing runtime, with I/O that looks blocking.
 *
 * Conventions shared by every function here:
 *  - Functions return int or ssize_t: >= 0 is success, -errno is failure.
 *    -ECANCELED: the calling task was cancelled; -ETIMEDOUT: a deadline
 *    passed; -EAGAIN: a try-variant would have had to wait; -EINVAL: bad
 *    arguments. errno is never used to report errors.
 *  - Time is int64_t nanoseconds. Deadlines are absolute on CLOCK_MONOTONIC
 *    (see zio_now()); ZIO_FOREVER never expires and 0 means "try once".
 *  - In a task, every function that may suspend is a cancellation point and
 *    honours the innermost deadline scope (zio_timeout_begin()). On a plain
 *    thread such calls block the thread; cancellation and deadline scopes
 *    are a task's, and only each call's own deadline applies there.
 *  - Handles (zio_runtime, zio_task, zio_group) are opaque.
 *
 * A program creates a runtime, runs its main function as the first task and
 * spawns more from there:
 *
 *	static void *hello(void *arg) { printf("hi %s\n", (char *)arg); return NULL; }
 *	zio_runtime *rt;
 *	zio_runtime_create(&rt, NULL);
 *	zio_runtime_run(rt, hello, "there", NULL);
 *	zio_runtime_destroy(rt);
 */
#ifndef ZIO_H
#define ZIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(ZIO_BUILDING) && defined(__GNUC__)
#define ZIO_API __attribute__((visibility("default")))
#else
#define ZIO_API
#endif

#define ZIO_VERSION_MAJOR 0
#define ZIO_VERSION_MINOR 1

#define ZIO_FOREVER ((int64_t)-1)
#define ZIO_NSEC(n) ((int64_t)(n))
#define ZIO_USEC(n) ((int64_t)(n) * 1000)
#define ZIO_MSEC(n) ((int64_t)(n) * 1000000)
#define ZIO_SEC(n) ((int64_t)(n) * 1000000000)

typedef struct zio_runtime zio_runtime;
typedef struct zio_task zio_task;
typedef struct zio_group zio_group;

/* A task's body. Its return value is what zio_task_join() hands back. */
typedef void *(*zio_task_fn)(void *arg);

/* ------------------------------------------------------------------ runtime */

/* executors: every executor is an OS thread running fibers. */
#define ZIO_EXECUTORS_AUTO 0xffffffffu /* one per CPU in our affinity mask */

struct zio_runtime_options {
	/* Number of executors, at most 256, or ZIO_EXECUTORS_AUTO. 0 means
	 * $ZIO_EXECUTORS (1 to 256 in decimal, or "auto"; any other text is
	 * zio_runtime_create's -EINVAL), else 1: a single-threaded runtime
	 * has no cross-thread traffic at all, and is the fastest choice until
	 * one core is saturated. The thread that calls zio_runtime_run() is
	 * always executor 0. */
	unsigned executors;
	/* Virtual stack size reserved per task, 16 KiB to 64 GiB (default 8
	 * MiB, or $ZIO_STACK_SIZE: bytes in decimal, or with k, m or g).
	 * Pages are committed only when touched, so the reservation costs
	 * address space, not memory. For 100k+ connections 256 KiB keeps page
	 * tables small (see README). */
	size_t stack_size;
	/* Stacks kept warm for reuse, per executor: a spawn that finds one
	 * costs no syscall and no page fault. Stacks returned beyond this get
	 * their pages handed back to the kernel (default 1024). */
	unsigned stack_cache;
	/* I/O backend: "uring", "epoll", "poll", or NULL for $ZIO_BACKEND;
	 * "auto" or unset: the best that works here (a fallback is logged).
	 * A named backend that cannot work here is zio_runtime_create()'s
	 * error (-EPERM: forbidden, -ENOSYS: missing, -EMFILE, ...). */
	const char *backend;
};

/* A runtime belongs to the process that made it: a child of fork() does not
 * have its executor threads and shares its io_uring rings and epoll
 * instances with the parent, so it must not run it (zio stops with a
 * message if the kernel refuses). The child makes a runtime of its own;
 * until then its zio calls are a plain thread's (also in a task that
 * forked, which in the child must not return), and none of them touches
 * the parent's rings or epoll registrations: zio_close() of an inherited
 * fd closes the child's. */
ZIO_API int zio_runtime_create(zio_runtime **out, const struct zio_runtime_options *opts);
/* Runs fn(arg) as a task on the calling thread (executor 0) and returns when
 * it has returned, storing its result in *result if result is non-NULL.
 * Other tasks keep running on the other executors: runnable tasks, tasks
 * spawned from other threads and fds executor 0 was serving go to them,
 * and with one executor too, its fds are served to plain threads and
 * other runtimes without it (but on io_uring, a socket whose input
 * executor 0's ring has already taken in, bytes, EOF or connections, is
 * read there, when it runs again).
 * Tasks suspended on executor 0 in a wait with a deadline, pinned to it, or
 * in an I/O call its io_uring ring holds, continue on the next
 * zio_runtime_run() or zio_runtime_destroy(), which must come from the same
 * thread on the io_uring backend (its ring accepts submissions from one
 * thread; zio stops with a message otherwise). */
ZIO_API int zio_runtime_run(zio_runtime *rt, zio_task_fn fn, void *arg, void **result);
/* Cancels every task still alive, waits for all of them to finish, stops
 * the executors and frees everything. Must not be called from a task, nor
 * while another thread uses the runtime (zio_close of its fds included). */
ZIO_API void zio_runtime_destroy(zio_runtime *rt);
/* The runtime the calling task runs on, or NULL outside tasks. */
ZIO_API zio_runtime *zio_runtime_current(void);
ZIO_API unsigned zio_runtime_executors(const zio_runtime *rt);
/* Name of the I/O backend in use ("uring", "epoll", "poll"). */
ZIO_API const char *zio_runtime_backend(const zio_runtime *rt);

/* -------------------------------------------------------------------- tasks */

struct zio_spawn_options {
	size_t stack_size; /* 0: the runtime's default */
	const char *name;  /* copied (up to 31 bytes); shown in crash reports */
	bool pinned;       /* never migrate to another executor */
	/* Give the task its own floating-point environment (rounding mode,
	 * MXCSR flush-to-zero, exception masks), starting as a copy of the
	 * spawner's. Tasks without it share their executor's, so one that
	 * changes it (fesetround, _MM_SET_FLUSH_ZERO_MODE) must ask for its
	 * own. Costs a few ns on switches into and out of such tasks only. */
	bool fp_env;
};

/* Starts fn(arg) as a new task. With out == NULL the task is detached;
 * otherwise *out must later be passed to zio_task_join() or
 * zio_task_detach(). Callable from a task (rt may be NULL: the current
 * runtime) or from any thread outside the runtime. */
ZIO_API int zio_spawn(zio_runtime *rt, zio_task **out, zio_task_fn fn, void *arg,
		      const struct zio_spawn_options *opts);
/* Waits for the task to finish and frees the handle. If the joining task is
 * cancelled while waiting, the child is cancelled too and still waited for
 * (so nothing leaks), and -ECANCELED is returned. */
ZIO_API int zio_task_join(zio_task *t, void **result);
/* Gives up the handle: the task frees itself when it finishes. */
ZIO_API void zio_task_detach(zio_task *t);
/* Requests cancellation: the task's current and every later suspension
 * point returns -ECANCELED, except inside shields. Idempotent; safe on a
 * finished task whose handle is still held. */
ZIO_API void zio_task_cancel(zio_task *t);
ZIO_API bool zio_task_done(const zio_task *t);
/* The calling task, or NULL on a thread that is not running a task. */
ZIO_API zio_task *zio_task_self(void);
ZIO_API const char *zio_task_name(const zio_task *t);
ZIO_API uint64_t zio_task_id(const zio_task *t);
/* Keeps the calling task on its current executor from now on.
 * errno is saved and restored per task on every switch. On a runtime with
 * more than one executor a task may resume on another thread, and compilers
 * cache errno's thread-local address across calls (glibc declares
 * __errno_location const): a task that reads errno after suspending should
 * pin itself, as should code that caches other thread-local addresses. */
ZIO_API void zio_task_pin(void);

/* From now on the calling task keeps its own floating-point environment
 * (see zio_spawn_options.fp_env); call it before changing the environment. */
ZIO_API void zio_task_own_fpenv(void);

/* Lets other runnable tasks run. A cancellation point, and -ETIMEDOUT
 * once the innermost deadline scope has passed. Tasks are not preempted:
 * one that computes for long without a call that suspends holds its
 * executor, and with it the task it last woke (which runs next there),
 * its timers, and the events of the fds that executor watches (on epoll,
 * those it registered first; on io_uring, those its ring holds requests
 * for), also for tasks waiting on other executors. Yield in long loops,
 * or hand the work to zio_blocking_call(). (I/O calls that never have to
 * wait yield once every 128 on their own: zio/io.h.) */
ZIO_API int zio_yield(void);
/* 0 once the time is up; -ECANCELED, or -ETIMEDOUT if a deadline scope
 * ends first. A negative ns is -EINVAL, ZIO_FOREVER too: to sleep until
 * cancelled, zio_sleep_until(ZIO_FOREVER). A deadline already past is 0 at
 * once. */
ZIO_API int zio_sleep(int64_t ns);
ZIO_API int zio_sleep_until(int64_t deadline);
/* CLOCK_MONOTONIC in nanoseconds. */
ZIO_API int64_t zio_now(void);
/* Turns a relative timeout into a deadline: ZIO_FOREVER stays forever, any
 * other negative time is a deadline already past (not 0, "try once"). */
ZIO_API int64_t zio_deadline_after(int64_t ns);

/* Task-local storage: keys shared by all tasks, a value per task. */
typedef unsigned zio_task_key;
#define ZIO_TASK_KEYS_MAX 128
ZIO_API int zio_task_key_create(zio_task_key *key, void (*destructor)(void *));
ZIO_API int zio_task_key_delete(zio_task_key key);
ZIO_API int zio_task_set(zio_task_key key, const void *value);
ZIO_API void *zio_task_get(zio_task_key key);

/* ------------------------------------------------------------- cancellation */

/* -ECANCELED if the calling task has been cancelled (and is not shielded). */
ZIO_API int zio_check_cancel(void);
/* Shields nest; while any is active, suspension points ignore cancellation
 * (deadlines still apply), so cleanup can finish. */
ZIO_API void zio_shield_begin(void);
ZIO_API void zio_shield_end(void);

/* A deadline scope: every suspension inside returns -ETIMEDOUT once the
 * deadline has passed. Scopes nest and the innermost one is in force;
 * zio_timeout_end() restores the enclosing scope and tells whether this
 * scope's deadline expired. Scopes must end in reverse order. */
struct zio_timeout {
	int64_t deadline;
	int64_t outer; /* private */
};
ZIO_API void zio_timeout_begin(struct zio_timeout *scope, int64_t deadline);
ZIO_API bool zio_timeout_end(struct zio_timeout *scope);

/* ---------------------------------------------------- structured concurrency */

/* A group task returns 0 or -errno. */
typedef int (*zio_group_fn)(void *arg);
#define ZIO_GROUP_FAIL_FAST 1u /* first error cancels the rest */

/* A group's tasks run in the runtime of the task that made it or last
 * spawned into it; a plain thread's zio_group_spawn starts one there
 * (-EINVAL while no task has touched the group). */
ZIO_API int zio_group_create(zio_group **out, unsigned flags);
ZIO_API int zio_group_spawn(zio_group *g, zio_group_fn fn, void *arg,
			    const struct zio_spawn_options *opts);
/* Waits for every task in the group. Returns 0, the first error a task
 * returned, or -ECANCELED / -ETIMEDOUT if the waiter was cancelled or its
 * deadline scope ran out (then the group's tasks are cancelled and waited
 * for). The group is then empty and starts afresh: tasks spawned next
 * are not cancelled, and the next wait reports only their errors. */
ZIO_API int zio_group_wait(zio_group *g);
/* Cancels every task in the group and waits for them; the group starts
 * afresh, as after a wait. (zio_group_wait from a task of the group is
 * -EDEADLK; a task of the group that cancels it waits for the others.) */
ZIO_API void zio_group_cancel(zio_group *g);
/* Cancels and waits for whatever is left, then frees the group (called
 * by a task of the group: when that task returns). */
ZIO_API void zio_group_destroy(zio_group *g);

/* -------------------------------------------------------------- diagnostics */

/* Writes every live task with its state and backtrace to fd. */
ZIO_API void zio_runtime_dump(zio_runtime *rt, int fd);

struct zio_stats {
	uint64_t tasks_live, tasks_spawned, switches, steals, parks;
	uint64_t stacks_cached, stacks_mapped;
};
ZIO_API void zio_runtime_stats(zio_runtime *rt, struct zio_stats *out);

/* Synchronization primitives; channels, select and broadcast channels. */
#include "zio/sync.h"
#include "zio/chan.h"

#ifdef __cplusplus
}
#endif
#include "zio/io.h"

#endif
