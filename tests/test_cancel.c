/* Cancellation, shields, deadline scopes.
 * ZIO_TEST_LABELS: sched */
#include "helpers.h"

static void *sleep_long(void *arg)
{
	return (void *)(intptr_t)zio_sleep(ZIO_SEC(60));
}

static void *cancel_sleeper(void *arg)
{
	zio_task *t;
	zio_spawn(NULL, &t, sleep_long, NULL, NULL);
	zio_yield(); /* let it park */
	zio_task_cancel(t);
	zio_task_cancel(t); /* idempotent */
	void *r;
	cr_assert_eq(zio_task_join(t, &r), 0);
	cr_assert_eq((intptr_t)r, -ECANCELED);
	return NULL;
}

Test(cancel, wakes_a_parked_task, .timeout = 10)
{
	run_in_runtime(1, cancel_sleeper, NULL);
	run_in_runtime(2, cancel_sleeper, NULL);
}

/* Cancelled before it ever ran: the first suspension point fails, and so
 * does every later one (cancellation is sticky). */
static void *count_failures(void *arg)
{
	int fails = 0;
	for (int i = 0; i < 3; i++)
		fails += zio_sleep(ZIO_MSEC(1)) == -ECANCELED;
	fails += zio_yield() == -ECANCELED;
	fails += zio_check_cancel() == -ECANCELED;
	return (void *)(intptr_t)fails;
}

static void *cancel_before_start(void *arg)
{
	zio_task *t;
	zio_spawn(NULL, &t, count_failures, NULL, NULL);
	zio_task_cancel(t);
	void *r;
	zio_task_join(t, &r);
	cr_assert_eq((intptr_t)r, 5);
	return NULL;
}

Test(cancel, is_sticky, .timeout = 10)
{
	run_in_runtime(1, cancel_before_start, NULL);
}

static void *shielded_cleanup(void *arg)
{
	int r = zio_sleep(ZIO_SEC(60));
	cr_assert_eq(r, -ECANCELED);
	zio_shield_begin();
	zio_shield_begin();
	cr_assert_eq(zio_check_cancel(), 0);
	cr_assert_eq(zio_sleep(ZIO_MSEC(5)), 0, "shielded sleep was cancelled");
	cr_assert_eq(zio_yield(), 0);
	zio_shield_end();
	cr_assert_eq(zio_sleep(ZIO_MSEC(1)), 0);
	zio_shield_end();
	cr_assert_eq(zio_check_cancel(), -ECANCELED, "cancellation lost after the shield");
	return (void *)1;
}

static void *shield_main(void *arg)
{
	zio_task *t;
	zio_spawn(NULL, &t, shielded_cleanup, NULL, NULL);
	zio_yield();
	zio_task_cancel(t);
	void *r;
	zio_task_join(t, &r);
	cr_assert_eq(r, (void *)1);
	return NULL;
}

Test(cancel, shield_lets_cleanup_finish, .timeout = 10)
{
	run_in_runtime(1, shield_main, NULL);
	run_in_runtime(2, shield_main, NULL);
}

/* Cancelled while being woken: exactly one outcome, and nothing hangs. */
static void *cancel_vs_timeout(void *arg)
{
	for (int i = 0; i < 2000; i++) {
		zio_task *t;
		zio_spawn(NULL, &t, sleep_long, NULL, NULL);
		if (i % 2)
			zio_yield();
		zio_task_cancel(t);
		void *r;
		zio_task_join(t, &r);
		cr_assert_eq((intptr_t)r, -ECANCELED);
	}
	return NULL;
}

Test(cancel, race_with_scheduling, .timeout = 30)
{
	run_in_runtime(2, cancel_vs_timeout, NULL);
}

/* Joining a task and then cancelling the joiner: the child is cancelled
 * and reaped; nothing leaks (the live count returns to zero). */
static atomic_int child_finished;

static void *child_sleeps(void *arg)
{
	int r = zio_sleep(ZIO_SEC(60));
	atomic_store(&child_finished, r == -ECANCELED ? 1 : 2);
	return NULL;
}

static void *joiner(void *arg)
{
	zio_task *t;
	zio_spawn(NULL, &t, child_sleeps, NULL, NULL);
	return (void *)(intptr_t)zio_task_join(t, NULL);
}

static void *cancel_joiner(void *arg)
{
	zio_task *j;
	zio_spawn(NULL, &j, joiner, NULL, NULL);
	zio_sleep(ZIO_MSEC(2));
	zio_task_cancel(j);
	void *r;
	zio_task_join(j, &r);
	cr_assert_eq((intptr_t)r, -ECANCELED);
	cr_assert_eq(atomic_load(&child_finished), 1, "child not cancelled with its joiner");
	struct zio_stats st;
	zio_runtime_stats(zio_runtime_current(), &st);
	cr_assert_eq(st.tasks_live, 1, "tasks leaked: %llu live", (unsigned long long)st.tasks_live);
	return NULL;
}

Test(cancel, cancelling_a_joiner_reaps_the_child, .timeout = 10)
{
	run_in_runtime(2, cancel_joiner, NULL);
}

static void *quick(void *arg)
{
	return arg;
}

static void *cancel_finished(void *arg)
{
	zio_task *t;
	zio_spawn(NULL, &t, quick, (void *)3, NULL);
	while (!zio_task_done(t))
		zio_yield();
	zio_task_cancel(t);
	void *r;
	cr_assert_eq(zio_task_join(t, &r), 0);
	cr_assert_eq(r, (void *)3);
	zio_task_cancel(NULL);
	return NULL;
}

Test(cancel, cancelling_a_finished_task_is_harmless, .timeout = 10)
{
	run_in_runtime(1, cancel_finished, NULL);
}

/* Deadline scopes. */
static void *scopes(void *arg)
{
	struct zio_timeout outer, inner;
	int64_t t0 = zio_now();
	zio_timeout_begin(&outer, t0 + ZIO_MSEC(20));
	cr_assert_eq(zio_sleep(ZIO_SEC(10)), -ETIMEDOUT);
	cr_assert_geq(zio_now(), t0 + ZIO_MSEC(20));
	cr_assert(zio_timeout_end(&outer));

	/* The innermost, earlier deadline wins; the outer one still bounds. */
	t0 = zio_now();
	zio_timeout_begin(&outer, t0 + ZIO_MSEC(200));
	zio_timeout_begin(&inner, t0 + ZIO_MSEC(10));
	cr_assert_eq(zio_sleep(ZIO_SEC(10)), -ETIMEDOUT);
	cr_assert_lt(zio_now(), t0 + ZIO_MSEC(200));
	cr_assert(zio_timeout_end(&inner));
	cr_assert_not(zio_timeout_end(&outer));

	/* An inner scope cannot extend an outer one. */
	t0 = zio_now();
	zio_timeout_begin(&outer, t0 + ZIO_MSEC(10));
	zio_timeout_begin(&inner, t0 + ZIO_SEC(10));
	cr_assert_eq(zio_sleep(ZIO_SEC(10)), -ETIMEDOUT);
	cr_assert_lt(zio_now(), t0 + ZIO_SEC(1));
	cr_assert_not(zio_timeout_end(&inner));
	cr_assert(zio_timeout_end(&outer));

	/* A sleep that ends before the scope is a normal sleep. */
	zio_timeout_begin(&outer, zio_now() + ZIO_SEC(10));
	cr_assert_eq(zio_sleep(ZIO_MSEC(1)), 0);
	cr_assert_not(zio_timeout_end(&outer));

	/* Shields ignore scopes, but not explicit deadlines. */
	zio_timeout_begin(&outer, zio_now() + ZIO_MSEC(1));
	zio_shield_begin();
	cr_assert_eq(zio_sleep(ZIO_MSEC(5)), 0);
	zio_shield_end();
	cr_assert_eq(zio_sleep(ZIO_MSEC(50)), -ETIMEDOUT);
	zio_timeout_end(&outer);

	/* Expired already: fail at once, a yield too (a loop of yields in a
	 * scope never ended: zio_yield said 0 past the deadline). */
	zio_timeout_begin(&outer, zio_now() - 1);
	cr_assert_eq(zio_yield(), -ETIMEDOUT);
	cr_assert_eq(zio_sleep(ZIO_MSEC(100)), -ETIMEDOUT);
	zio_shield_begin();
	cr_assert_eq(zio_yield(), 0); /* a shield ignores scopes */
	zio_shield_end();
	zio_timeout_end(&outer);
	cr_assert_eq(zio_yield(), 0);
	int64_t start = zio_now();
	struct zio_timeout loop;
	zio_timeout_begin(&loop, zio_deadline_after(ZIO_MSEC(20)));
	int r;
	while ((r = zio_yield()) == 0)
		cr_assert_lt(zio_now() - start, ZIO_SEC(5), "the yields never stopped");
	cr_assert_eq(r, -ETIMEDOUT);
	zio_timeout_end(&loop);
	cr_assert_eq(zio_sleep(-1), -EINVAL);

	/* Ended out of order (a misuse zio logs once): no deadline of an
	 * ended scope stays behind (the outer one's came back, for good, and
	 * every later wait of the task timed out). */
	struct zio_timeout a, b;
	zio_timeout_begin(&a, zio_deadline_after(ZIO_MSEC(20)));
	zio_timeout_begin(&b, zio_deadline_after(ZIO_MSEC(40)));
	zio_timeout_end(&a);
	zio_timeout_end(&b);
	cr_assert_eq(zio_sleep(ZIO_MSEC(50)), 0);
	return NULL;
}

Test(cancel, deadline_scopes_nest, .timeout = 10)
{
	run_in_runtime(1, scopes, NULL);
}

/* A relative timeout turned into a deadline: ZIO_FOREVER stays forever,
 * a spent budget (negative) is a deadline already past, which ends a wait
 * at once with -ETIMEDOUT (it used to mean "forever"). */
static void *spent_budget(void *arg)
{
	(void)arg;
	cr_assert_eq(zio_deadline_after(ZIO_FOREVER), ZIO_FOREVER);
	cr_assert_eq(zio_deadline_after(INT64_MAX), INT64_MAX);
	int64_t past = zio_deadline_after(-ZIO_MSEC(5));
	cr_assert(past > 0 && past < zio_now(), "%lld", (long long)past);
	cr_assert_gt(zio_deadline_after(INT64_MIN), 0);
	int p[2];
	cr_assert_eq(zio_pipe(p), 0);
	char c;
	int64_t t0 = zio_now();
	cr_assert_eq(zio_read(p[0], &c, 1, past), -ETIMEDOUT);
	cr_assert_eq(zio_sleep_until(past), 0);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(1));
	zio_close(p[0]);
	zio_close(p[1]);
	return NULL;
}

Test(cancel, negative_timeout_is_a_past_deadline, .timeout = 10)
{
	run_in_runtime(1, spent_budget, NULL);
}
