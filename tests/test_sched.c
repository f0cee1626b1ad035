/* Scheduler: yields, stealing, cross-executor wakes, stress.
 * ZIO_TEST_LABELS: sched */
#include "helpers.h"

#include "internal.h"

static void *return_arg(void *arg)
{
	return arg;
}

/* Round-robin order on one executor: yield lets every other task run. */
static int order[64];
static int order_len;

static void *yielder(void *arg)
{
	for (int i = 0; i < 4; i++) {
		order[order_len++] = (int)(intptr_t)arg;
		zio_yield();
	}
	return NULL;
}

static void *yield_main(void *arg)
{
	zio_task *t[3];
	for (intptr_t i = 0; i < 3; i++)
		zio_spawn(NULL, &t[i], yielder, (void *)i, NULL);
	for (int i = 0; i < 3; i++)
		zio_task_join(t[i], NULL);
	return NULL;
}

Test(sched, yield_is_fair_round_robin, .timeout = 10)
{
	run_in_runtime(1, yield_main, NULL);
	cr_assert_eq(order_len, 12);
	for (int i = 0; i < 12; i++)
		cr_assert_eq(order[i], i % 3, "position %d ran task %d", i, order[i]);
}

/* CPU-bound tasks spread over both executors (someone must steal them).
 * Each spins for 2 ms, and on until executor 1 has run one of them (at
 * most 5 s): the executor that ends up running the main task may spawn so
 * slowly (TSan) that the other one, stealing as they come, runs them all. */
static atomic_int where[2];

static void *spin_a_while(void *arg)
{
	struct zio__exec *e = zio__exec_current();
	atomic_fetch_add(&where[e->id], 1);
	int64_t start = zio_now();
	while (zio_now() < start + ZIO_MSEC(2) ||
	       (atomic_load(&where[1]) == 0 && zio_now() < start + ZIO_SEC(5)))
		;
	return NULL;
}

static void *steal_main(void *arg)
{
	enum { N = 64 };
	zio_task *t[N];
	for (int i = 0; i < N; i++)
		zio_spawn(NULL, &t[i], spin_a_while, NULL, NULL);
	for (int i = 0; i < N; i++)
		zio_task_join(t[i], NULL);
	return NULL;
}

/* More tasks than the local run queue holds spill to the global queue;
 * the main task then yields until all have run, each after yielding so
 * many times itself. */
struct spill {
	int tasks, yields;
	atomic_int done;
};

static void *yield_then_count(void *arg)
{
	struct spill *sp = arg;
	for (int i = 0; i < sp->yields; i++)
		zio_yield();
	atomic_fetch_add(&sp->done, 1);
	return NULL;
}

static void *spill_then_yield(void *arg)
{
	struct spill *sp = arg;
	for (int i = 0; i < sp->tasks; i++)
		cr_assert_eq(zio_spawn(NULL, NULL, yield_then_count, sp, NULL), 0);
	while (atomic_load(&sp->done) < sp->tasks)
		zio_yield();
	return NULL;
}

/* A task that only yields must not keep the spilled tasks from running
 * (on one executor the global queue's turn used to fall on a tick the
 * yield path never reached: a livelock). */
Test(sched, yield_does_not_starve_the_global_queue, .timeout = 10)
{
	struct spill sp = { .tasks = 4 * ZIO__RUNQ_SIZE };
	run_in_runtime(1, spill_then_yield, &sp);
}

/* The global queue's turn while the local queue is full: the tasks taken
 * from it must fit (a spill back took the global lock its taker held: the
 * executor deadlocked on itself). Tasks that yield keep the local queue
 * full across many turns. */
Test(sched, global_turn_with_a_full_local_queue, .timeout = 20)
{
	struct spill one = { .tasks = 3 * ZIO__RUNQ_SIZE, .yields = 100 };
	run_in_runtime(1, spill_then_yield, &one);
	struct spill two = { .tasks = 3 * ZIO__RUNQ_SIZE, .yields = 100 };
	run_in_runtime(2, spill_then_yield, &two);
}

/* A task woken from another thread (here the blocking pool's, as every
 * file op on epoll and poll is) runs while other tasks keep yielding:
 * such wakes were taken only once the local queue ran dry, which yielding
 * tasks never let it do (with six of them, on one or two executors, a
 * job that returns at once came back when they stopped). */
struct yielders {
	atomic_bool stop;
};

static void *yield_until_stopped(void *arg)
{
	struct yielders *y = arg;
	while (!atomic_load(&y->stop))
		zio_yield();
	return NULL;
}

static long return_at_once(void *arg)
{
	(void)arg;
	return 42;
}

static void *remote_wake_among_yielders(void *arg)
{
	(void)arg;
	struct yielders y = { 0 };
	zio_task *t[6];
	for (int i = 0; i < 6; i++)
		cr_assert_eq(zio_spawn(NULL, &t[i], yield_until_stopped, &y, NULL), 0);
	for (int round = 0; round < 20; round++) {
		int64_t t0 = zio_now();
		long r = zio_blocking_call(return_at_once, NULL, zio_deadline_after(ZIO_SEC(2)));
		int64_t took = zio_now() - t0;
		cr_assert_eq(r, 42, "round %d: %ld", round, r);
		cr_assert_lt(took, ZIO_MSEC(500), "round %d took %lld ms", round,
			     (long long)(took / 1000000));
	}
	atomic_store(&y.stop, true);
	for (int i = 0; i < 6; i++)
		zio_task_join(t[i], NULL);
	return NULL;
}

Test(sched, a_remote_wake_runs_among_yielding_tasks, .timeout = 30)
{
	run_in_runtime(1, remote_wake_among_yielders, NULL);
	run_in_runtime(2, remote_wake_among_yielders, NULL);
}

Test(sched, idle_executor_steals_work, .timeout = 20)
{
	zio_runtime *rt;
	cr_assert_eq(zio_runtime_create(&rt, &(struct zio_runtime_options){ .executors = 2 }), 0);
	zio_runtime_run(rt, steal_main, NULL, NULL);
	struct zio_stats st;
	zio_runtime_stats(rt, &st);
	zio_runtime_destroy(rt);
	cr_assert_gt(atomic_load(&where[1]), 0, "executor 1 ran nothing");
	cr_assert_gt(atomic_load(&where[0]), 0, "executor 0 ran nothing");
	cr_assert_gt(st.steals, 0);
}

/* Ping-pong between tasks pinned to different executors: every wake crosses
 * threads, through the inbox and the backend's wake(). */
struct pingpong {
	struct zio__parker *parker[2];
	_Atomic uint32_t gen[2];
	atomic_int turn;
	atomic_int ready;
};

static void *pinger(void *arg)
{
	struct pingpong *pp = arg;
	zio_task_pin();
	int me = atomic_fetch_add(&pp->ready, 1);
	struct zio__parker *p = zio__parker_self();
	for (int i = 0; i < 20000; i++) {
		/* Wait for our turn. */
		for (;;) {
			uint32_t g = zio__park_prepare(p, 0);
			atomic_store(&pp->gen[me], g);
			atomic_store(&pp->parker[me], p);
			if (atomic_load(&pp->turn) == me) {
				zio__park_abandon(p);
				break;
			}
			zio__park(p, ZIO_FOREVER);
		}
		atomic_store(&pp->turn, 1 - me);
		struct zio__parker *other;
		while (!(other = atomic_load(&pp->parker[1 - me])))
			zio_yield();
		zio__unpark(other, atomic_load(&pp->gen[1 - me]), 0);
	}
	return NULL;
}

static void *cross_main(void *arg)
{
	struct pingpong pp = { 0 };
	zio_task *a, *b;
	zio_spawn(NULL, &a, pinger, &pp, &(struct zio_spawn_options){ .pinned = true });
	zio_spawn(NULL, &b, pinger, &pp, NULL);
	zio_task_join(a, NULL);
	zio_task_join(b, NULL);
	return NULL;
}

Test(sched, cross_executor_wake_pingpong, .timeout = 60)
{
	run_in_runtime(2, cross_main, NULL);
}

/* Wake before park: the waker claims the wait before the waiter has
 * switched out. Run many times on 2 executors so the window is hit. */
struct early {
	struct zio__parker *p;
	_Atomic uint32_t gen;
	atomic_int armed;
};

static void *early_waker(void *arg)
{
	struct early *ev = arg;
	while (!atomic_load(&ev->armed))
		;
	zio__unpark(ev->p, atomic_load(&ev->gen), 7);
	return NULL;
}

static void *early_main(void *arg)
{
	for (int i = 0; i < STRESS(20000); i++) {
		struct early ev = { 0 };
		struct zio__parker *p = zio__parker_self();
		ev.p = p;
		ev.gen = zio__park_prepare(p, 0);
		zio_task *t;
		zio_spawn(NULL, &t, early_waker, &ev, NULL);
		atomic_store(&ev.armed, 1);
		cr_assert_eq(zio__park(p, ZIO_FOREVER), 7);
		zio_task_join(t, NULL);
	}
	return NULL;
}

Test(sched, wake_before_park, .timeout = 60)
{
	run_in_runtime(2, early_main, NULL);
}

/* A stale waker (old generation) cannot end a later wait. */
static void *stale_main(void *arg)
{
	struct zio__parker *p = zio__parker_self();
	uint32_t old = zio__park_prepare(p, 0);
	cr_assert(zio__unpark(p, old, 1));
	cr_assert_eq(zio__park(p, ZIO_FOREVER), 1);
	cr_assert_not(zio__unpark(p, old, 2), "claimed twice");
	zio__park_prepare(p, 0);
	cr_assert_not(zio__unpark(p, old, 3), "old generation ended a new wait");
	cr_assert_eq(zio__park(p, zio_now() + ZIO_MSEC(5)), -ETIMEDOUT);
	return NULL;
}

Test(sched, stale_wake_is_ignored, .timeout = 10)
{
	run_in_runtime(1, stale_main, NULL);
}

/* Plain OS threads use the same primitive and block on a futex. */
static void *thread_waker(void *arg)
{
	struct early *ev = arg;
	while (!atomic_load(&ev->armed))
		;
	zio__unpark(ev->p, atomic_load(&ev->gen), 5);
	return NULL;
}

Test(sched, thread_parker, .timeout = 10)
{
	struct zio__parker *p = zio__parker_self();
	cr_assert_null(zio__parker_fiber(p));
	for (int i = 0; i < 1000; i++) {
		struct early ev = { .p = p };
		ev.gen = zio__park_prepare(p, 0);
		pthread_t th;
		pthread_create(&th, NULL, thread_waker, &ev);
		atomic_store(&ev.armed, 1);
		cr_assert_eq(zio__park(p, ZIO_FOREVER), 5);
		pthread_join(th, NULL);
	}
	zio__park_prepare(p, 0);
	int64_t t0 = zio_now();
	cr_assert_eq(zio__park(p, t0 + ZIO_MSEC(20)), -ETIMEDOUT);
	cr_assert_geq(zio_now() - t0, ZIO_MSEC(20));
}

/* Stress: a million spawn+join. */
static void *million_spawn(void *arg)
{
	for (int i = 0; i < STRESS(1000000); i++) {
		zio_task *t;
		cr_assert_eq(zio_spawn(NULL, &t, return_arg, NULL, NULL), 0);
		zio_task_join(t, NULL);
	}
	return NULL;
}

Test(sched, million_spawn_join, .timeout = 120)
{
	run_in_runtime(1, million_spawn, NULL);
	run_in_runtime(2, million_spawn, NULL);
}

/* Stress: 100,000 tasks sleeping at once, each woken by its own deadline. */
static atomic_int slept;

static void *sleep_once(void *arg)
{
	int64_t deadline = (int64_t)(intptr_t)arg;
	cr_assert_eq(zio_sleep_until(deadline), 0);
	cr_assert_geq(zio_now(), deadline);
	atomic_fetch_add(&slept, 1);
	return NULL;
}

static void *many_sleepers(void *arg)
{
	const int N = STRESS(100000);
	int64_t base = zio_now() + ZIO_MSEC(200);
	for (int i = 0; i < N; i++) {
		/* Deadlines spread over 100 ms, in shuffled order. */
		int64_t d = base + (int64_t)((i * 7919) % N) * 1000;
		cr_assert_eq(zio_spawn(NULL, NULL, sleep_once, (void *)(intptr_t)d, NULL), 0);
	}
	while (atomic_load(&slept) < N)
		zio_sleep(ZIO_MSEC(10));
	return NULL;
}

Test(sched, hundred_thousand_sleepers, .timeout = 120)
{
	run_with(&(struct zio_runtime_options){ .executors = 2, .stack_size = 64 << 10 },
		 many_sleepers, NULL);
	cr_assert_eq(atomic_load(&slept), STRESS(100000));
}

/* Destroying a runtime with tasks still alive cancels and joins them. */
static atomic_int cleaned;

static void *sleeps_forever(void *arg)
{
	int r = zio_sleep(ZIO_SEC(3600));
	cr_assert_eq(r, -ECANCELED);
	atomic_fetch_add(&cleaned, 1);
	return NULL;
}

static void *leave_tasks_behind(void *arg)
{
	for (int i = 0; i < 1000; i++)
		zio_spawn(NULL, NULL, sleeps_forever, NULL, NULL);
	zio_task *t;
	zio_spawn(NULL, &t, sleeps_forever, NULL, NULL);
	zio_task_detach(t);
	zio_yield();
	return NULL;
}

Test(sched, destroy_cancels_and_joins_live_tasks, .timeout = 30)
{
	run_in_runtime(2, leave_tasks_behind, NULL);
	cr_assert_eq(atomic_load(&cleaned), 1001);
}

/* The runtime can be run again, and tasks left runnable continue. */
static void *count_up(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
	return NULL;
}

static void *spawn_one(void *arg)
{
	return (void *)(intptr_t)zio_spawn(NULL, NULL, count_up, arg, NULL);
}

Test(sched, run_twice, .timeout = 10)
{
	atomic_int n = 0;
	zio_runtime *rt;
	cr_assert_eq(zio_runtime_create(&rt, NULL), 0);
	cr_assert_eq(zio_runtime_run(rt, spawn_one, &n, NULL), 0);
	cr_assert_eq(zio_runtime_run(rt, spawn_one, &n, NULL), 0);
	zio_runtime_destroy(rt);
	cr_assert_eq(atomic_load(&n), 2);
}

static void *nested_run(void *arg)
{
	return (void *)(intptr_t)zio_runtime_run((zio_runtime *)arg, return_arg, NULL, NULL);
}

Test(sched, run_inside_a_task_is_refused, .timeout = 10)
{
	zio_runtime *inner;
	cr_assert_eq(zio_runtime_create(&inner, NULL), 0);
	cr_assert_eq((intptr_t)run_in_runtime(1, nested_run, inner), -EDEADLK);
	zio_runtime_destroy(inner);
}

/* $ZIO_EXECUTORS is a count in decimal, 1 to 256, or "auto"; anything else
 * is refused, not read as something else (010 was 8 executors, k and -1
 * one per CPU, 4294967297 one). $ZIO_STACK_SIZE likewise, with k, m, g. */
static int executors_from_env(const char *v)
{
	setenv("ZIO_EXECUTORS", v, 1);
	zio_runtime *rt;
	int r = zio_runtime_create(&rt, NULL);
	unsetenv("ZIO_EXECUTORS");
	if (r)
		return r;
	r = (int)zio_runtime_executors(rt);
	zio_runtime_destroy(rt);
	return r;
}

static int stack_size_env_refused(const char *v)
{
	setenv("ZIO_STACK_SIZE", v, 1);
	zio_runtime *rt;
	int r = zio_runtime_create(&rt, NULL);
	unsetenv("ZIO_STACK_SIZE");
	if (!r)
		zio_runtime_destroy(rt);
	return r == -EINVAL;
}

Test(sched, environment_numbers_are_decimal_and_checked, .timeout = 10)
{
	cr_assert_eq(executors_from_env("2"), 2);
	cr_assert_eq(executors_from_env("010"), 10);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int any = executors_from_env("auto");
	cr_assert(any >= 1 && any <= (cpus > 256 ? 256 : cpus), "auto: %d", any);
	const char *bad[] = { "0", "-1", "k", "2k", "0x2", "257", "4294967295", "4294967297", "99999999999999999999999", "two", " 2" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(executors_from_env(bad[i]), -EINVAL, "ZIO_EXECUTORS=%s", bad[i]);
	cr_assert_not(stack_size_env_refused("64k"));
	cr_assert_not(stack_size_env_refused("1m"));
	cr_assert_not(stack_size_env_refused("65536"));
	const char *bad_stack[] = { "1", "64q", "0x10000", "k", "-64k", "65g", "64kk" };
	for (size_t i = 0; i < sizeof(bad_stack) / sizeof(bad_stack[0]); i++)
		cr_assert(stack_size_env_refused(bad_stack[i]), "ZIO_STACK_SIZE=%s", bad_stack[i]);
}
