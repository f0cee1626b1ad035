/*
 * helpers.h - shared by the Criterion tests: run a body as the main task of
 * a fresh runtime, and small utilities.
 */
#ifndef ZIO_TEST_HELPERS_H
#define ZIO_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zio.h>

/* Runs fn(arg) as the main task of a runtime made with the given options
 * and returns its result; every failure along the way fails the test. */
/* Sets the soft RLIMIT_NOFILE to the lowest free descriptor number, so
 * that no new descriptor can be had; returns the limits to restore. */
static inline struct rlimit no_descriptor_free(void)
{
	struct rlimit old;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	int lowest = dup(0);
	cr_assert_geq(lowest, 0);
	close(lowest);
	struct rlimit none = { (rlim_t)lowest, old.rlim_max };
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &none), 0);
	return old;
}

/* Waits (up to 5 s) until thread tid of this process sleeps in the
 * kernel: for a thread whose next step is a blocking call, that it is
 * in it. */
static inline void wait_until_asleep(pid_t tid)
{
	char path[64], stat[256];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	for (int i = 0; i < 5000; i++) {
		FILE *f = fopen(path, "r");
		cr_assert_not_null(f);
		size_t n = fread(stat, 1, sizeof(stat) - 1, f);
		fclose(f);
		stat[n] = 0;
		const char *state = strrchr(stat, ')'); /* after "pid (comm)" */
		if (state && state[1] == ' ' && state[2] == 'S')
			return;
		usleep(1000);
	}
	cr_assert_fail("thread %d never slept", (int)tid);
}

static inline void *run_with(const struct zio_runtime_options *o, zio_task_fn fn, void *arg)
{
	zio_runtime *rt;
	int err = zio_runtime_create(&rt, o);
	cr_assert_eq(err, 0, "zio_runtime_create: %d", err);
	void *res = NULL;
	err = zio_runtime_run(rt, fn, arg, &res);
	cr_assert_eq(err, 0, "zio_runtime_run: %d", err);
	zio_runtime_destroy(rt);
	return res;
}

/* The same with n executors and every other option at its default. */
static inline void *run_in_runtime(unsigned n, zio_task_fn fn, void *arg)
{
	return run_with(&(struct zio_runtime_options){ .executors = n }, fn, arg);
}

/* In a task: runs n (at most 64) tasks of fn(arg) and joins them all. */
static inline void spawn_join_all(unsigned n, zio_task_fn fn, void *arg)
{
	zio_task *t[64];
	cr_assert_leq(n, 64u);
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(zio_spawn(NULL, &t[i], fn, arg, NULL), 0);
	for (unsigned i = 0; i < n; i++)
		zio_task_join(t[i], NULL);
}

/* A blocking-pool job (zio_blocking_call(hold_pool_thread, &hold, ...))
 * that occupies its pool thread until released; `started` says it runs. */
struct pool_hold {
	atomic_int started, release;
};

static inline long hold_pool_thread(void *arg)
{
	struct pool_hold *h = arg;
	atomic_store(&h->started, 1);
	while (!atomic_load(&h->release))
		usleep(1000);
	return 0;
}

static inline void *hold_pool_thread_task(void *arg)
{
	return (void *)zio_blocking_call(hold_pool_thread, arg, ZIO_FOREVER);
}

#define TEST_MS(n) ZIO_MSEC(n)

/* Stress sizes shrink under ThreadSanitizer: it creates its own state for
 * every task (about 0.4 ms each) and allows at most 8128 live fibers. */
#if defined(__SANITIZE_THREAD__)
#define STRESS(n) ((n) / 200 > 1000 ? 1000 : ((n) / 200 ? (n) / 200 : 1))
#else
#define STRESS(n) (n)
#endif

#endif
