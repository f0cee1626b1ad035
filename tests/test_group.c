/* Task groups.
 * ZIO_TEST_LABELS: sched */
#include "helpers.h"

#include <pthread.h>

static atomic_int ran;

static int ok_task(void *arg)
{
	zio_sleep((int64_t)(intptr_t)arg);
	atomic_fetch_add(&ran, 1);
	return 0;
}

static int failing_task(void *arg)
{
	zio_sleep(ZIO_MSEC(2));
	return -EIO;
}

static int sleeper(void *arg)
{
	int r = zio_sleep(ZIO_SEC(60));
	if (r == -ECANCELED)
		atomic_fetch_add(&ran, 100);
	return r;
}

static void *wait_all(void *arg)
{
	zio_group *g;
	cr_assert_eq(zio_group_create(&g, 0), 0);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(zio_group_spawn(g, ok_task, (void *)(intptr_t)(i * 10000), NULL), 0);
	cr_assert_eq(zio_group_wait(g), 0);
	cr_assert_eq(atomic_load(&ran), 100);
	/* Reusable, and waiting on an empty group returns at once. */
	cr_assert_eq(zio_group_wait(g), 0);
	zio_group_destroy(g);
	return NULL;
}

Test(group, waits_for_all, .timeout = 10)
{
	atomic_store(&ran, 0);
	run_in_runtime(2, wait_all, NULL);
}

static void *fail_fast(void *arg)
{
	zio_group *g;
	cr_assert_eq(zio_group_create(&g, ZIO_GROUP_FAIL_FAST), 0);
	for (int i = 0; i < 10; i++)
		zio_group_spawn(g, sleeper, NULL, NULL);
	zio_group_spawn(g, failing_task, NULL, NULL);
	int64_t t0 = zio_now();
	cr_assert_eq(zio_group_wait(g), -EIO);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(5));
	cr_assert_eq(atomic_load(&ran), 1000, "the others were not cancelled");
	zio_group_destroy(g);
	return NULL;
}

Test(group, fail_fast_cancels_the_rest, .timeout = 10)
{
	atomic_store(&ran, 0);
	run_in_runtime(2, fail_fast, NULL);
}

static void *no_fail_fast(void *arg)
{
	zio_group *g;
	zio_group_create(&g, 0);
	zio_group_spawn(g, failing_task, NULL, NULL);
	zio_group_spawn(g, ok_task, (void *)(intptr_t)ZIO_MSEC(10), NULL);
	cr_assert_eq(zio_group_wait(g), -EIO);
	cr_assert_eq(atomic_load(&ran), 1, "a task was cut short without fail-fast");
	zio_group_destroy(g);
	return NULL;
}

Test(group, first_error_is_reported, .timeout = 10)
{
	atomic_store(&ran, 0);
	run_in_runtime(1, no_fail_fast, NULL);
}

static void *destroy_cancels(void *arg)
{
	zio_group *g;
	zio_group_create(&g, 0);
	for (int i = 0; i < 50; i++)
		zio_group_spawn(g, sleeper, NULL, NULL);
	zio_yield();
	zio_group_destroy(g); /* out of scope: cancel and join */
	cr_assert_eq(atomic_load(&ran), 5000);
	/* Every member has finished; the last ones' descriptors are freed by
	 * their executors once off their stacks, a moment after the join
	 * (with two executors, perhaps after this look). */
	struct zio_stats st;
	for (int tries = 0; tries < 1000; tries++) {
		zio_runtime_stats(zio_runtime_current(), &st);
		if (st.tasks_live == 1)
			break;
		zio_sleep(ZIO_MSEC(1));
	}
	cr_assert_eq(st.tasks_live, 1);
	return NULL;
}

Test(group, destroy_cancels_and_joins, .timeout = 10)
{
	atomic_store(&ran, 0);
	run_in_runtime(2, destroy_cancels, NULL);
}

static int waits_on_group(void *arg)
{
	return zio_group_wait((zio_group *)arg);
}

static void *cancel_waiter(void *arg)
{
	zio_group *g, *outer;
	zio_group_create(&g, 0);
	zio_group_create(&outer, 0);
	for (int i = 0; i < 5; i++)
		zio_group_spawn(g, sleeper, NULL, NULL);
	zio_group_spawn(outer, waits_on_group, g, NULL);
	zio_sleep(ZIO_MSEC(2));
	zio_group_cancel(outer);
	/* The waiter's cancellation cancelled the inner group too. */
	cr_assert_eq(atomic_load(&ran), 500);
	zio_group_destroy(g);
	zio_group_destroy(outer);
	return NULL;
}

Test(group, cancelled_waiter_cancels_the_group, .timeout = 10)
{
	atomic_store(&ran, 0);
	run_in_runtime(2, cancel_waiter, NULL);
}

/* After a wait or a cancel has seen the group empty, it starts afresh: an
 * old error or fail-fast cancellation does not carry over. */
static void *reuse_after_error(void *arg)
{
	(void)arg;
	zio_group *g;
	cr_assert_eq(zio_group_create(&g, ZIO_GROUP_FAIL_FAST), 0);
	zio_group_spawn(g, failing_task, NULL, NULL);
	cr_assert_eq(zio_group_wait(g), -EIO);
	atomic_store(&ran, 0);
	cr_assert_eq(zio_group_spawn(g, ok_task, (void *)(intptr_t)ZIO_MSEC(1), NULL), 0);
	cr_assert_eq(zio_group_wait(g), 0, "the last round's error carried over");
	cr_assert_eq(atomic_load(&ran), 1, "spawned into a group still cancelling");
	/* After a cancel, the cancelled tasks' -ECANCELED is not the next
	 * round's error either. */
	zio_group_spawn(g, sleeper, NULL, NULL);
	zio_group_cancel(g);
	cr_assert_eq(zio_group_spawn(g, ok_task, (void *)(intptr_t)ZIO_MSEC(1), NULL), 0);
	cr_assert_eq(zio_group_wait(g), 0);
	cr_assert_eq(atomic_load(&ran), 102);
	zio_group_destroy(g);
	return NULL;
}

/* Every waiter of a round reads its error, not just the first to wake. */
static void *wait_group(void *arg)
{
	return (void *)(intptr_t)zio_group_wait(arg);
}

static void *two_waiters(void *arg)
{
	(void)arg;
	zio_group *g;
	cr_assert_eq(zio_group_create(&g, 0), 0);
	zio_group_spawn(g, failing_task, NULL, NULL);
	zio_task *w[2];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(zio_spawn(NULL, &w[i], wait_group, g, NULL), 0);
	for (int i = 0; i < 2; i++) {
		void *r;
		zio_task_join(w[i], &r);
		cr_assert_eq((int)(intptr_t)r, -EIO, "waiter %d", i);
	}
	zio_group_destroy(g);
	return NULL;
}

Test(group, every_waiter_reads_the_error, .timeout = 10)
{
	run_in_runtime(1, two_waiters, NULL);
}

Test(group, reusable_after_an_error_or_a_cancel, .timeout = 10)
{
	run_in_runtime(1, reuse_after_error, NULL);
}

Test(group, bad_arguments, .timeout = 10)
{
	zio_group *g;
	cr_assert_eq(zio_group_create(&g, 0x80), -EINVAL);
	cr_assert_eq(zio_group_create(NULL, 0), -EINVAL);
	cr_assert_eq(zio_group_create(&g, 0), 0);
	cr_assert_eq(zio_group_spawn(g, NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(zio_group_spawn(g, ok_task, NULL, NULL), -EINVAL); /* no runtime */
	cr_assert_eq(zio_group_wait(g), 0);
	zio_group_destroy(g);
	cr_assert_eq(zio_group_wait(NULL), -EINVAL);
}

/* A task of a group that waits for, cancels or destroys its own group:
 * the wait is -EDEADLK, the cancel ends the others and returns, and the
 * destroy frees the group once that task returns (each waited for itself,
 * for good, and a runtime destroy after them too). */
static zio_group *own_group;
static atomic_int own_wait;

static int waits_for_own_group(void *arg)
{
	(void)arg;
	atomic_store(&own_wait, zio_group_wait(own_group));
	return 0;
}

static int cancels_own_group(void *arg)
{
	(void)arg;
	zio_group_cancel(own_group); /* returns once the sleepers are gone */
	return zio_yield() == -ECANCELED ? 0 : -EIO; /* itself cancelled too */
}

static int destroys_own_group(void *arg)
{
	(void)arg;
	zio_group_destroy(own_group);
	return 0;
}

static void *own_group_main(void *arg)
{
	(void)arg;
	cr_assert_eq(zio_group_create(&own_group, 0), 0);
	cr_assert_eq(zio_group_spawn(own_group, waits_for_own_group, NULL, NULL), 0);
	cr_assert_eq(zio_group_wait(own_group), 0);
	cr_assert_eq(atomic_load(&own_wait), -EDEADLK);

	for (int i = 0; i < 3; i++)
		cr_assert_eq(zio_group_spawn(own_group, sleeper, NULL, NULL), 0);
	cr_assert_eq(zio_group_spawn(own_group, cancels_own_group, NULL, NULL), 0);
	int r = zio_group_wait(own_group);
	cr_assert(r == 0 || r == -ECANCELED, "after a member's cancel: %d", r);

	for (int i = 0; i < 3; i++)
		cr_assert_eq(zio_group_spawn(own_group, sleeper, NULL, NULL), 0);
	cr_assert_eq(zio_group_spawn(own_group, destroys_own_group, NULL, NULL), 0);
	return NULL; /* the group frees itself; the runtime's destroy finds nobody */
}

Test(group, a_task_of_the_group_waits_cancels_or_destroys_it, .timeout = 10)
{
	run_in_runtime(1, own_group_main, NULL);
	run_in_runtime(2, own_group_main, NULL);
}

/* A plain thread spawns into a group a task made: the task runs in that
 * task's runtime and the group's wait sees it (it was -EINVAL). A group
 * made on a plain thread, with no task ever near it, has no runtime. */
static zio_group *shared_group;
static atomic_int thread_spawned;

static int counts(void *arg)
{
	(void)arg;
	atomic_fetch_add(&ran, 1);
	return 0;
}

static void *spawn_from_a_thread(void *arg)
{
	(void)arg;
	atomic_store(&thread_spawned, zio_group_spawn(shared_group, counts, NULL, NULL) == 0 ? 1 : -1);
	return NULL;
}

static void *group_fed_by_a_thread(void *arg)
{
	(void)arg;
	atomic_store(&ran, 0);
	atomic_store(&thread_spawned, 0);
	cr_assert_eq(zio_group_create(&shared_group, 0), 0);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, spawn_from_a_thread, NULL), 0);
	while (!atomic_load(&thread_spawned))
		zio_sleep(ZIO_MSEC(1));
	pthread_join(t, NULL);
	cr_assert_eq(atomic_load(&thread_spawned), 1);
	cr_assert_eq(zio_group_wait(shared_group), 0);
	cr_assert_eq(atomic_load(&ran), 1);
	zio_group_destroy(shared_group);
	return NULL;
}

Test(group, a_plain_thread_spawns_into_a_tasks_group, .timeout = 10)
{
	run_in_runtime(1, group_fed_by_a_thread, NULL);
	zio_group *g;
	cr_assert_eq(zio_group_create(&g, 0), 0);
	cr_assert_eq(zio_group_spawn(g, counts, NULL, NULL), -EINVAL);
	zio_group_destroy(g);
}
