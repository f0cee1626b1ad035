/* Tasks: spawn, join, detach, results, names, task-local storage, errno.
 * ZIO_TEST_LABELS: sched */
#include "helpers.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <sys/wait.h>

static void *return_arg(void *arg)
{
	return arg;
}

static void *spawn_and_join(void *arg)
{
	zio_task *t;
	cr_assert_eq(zio_spawn(NULL, &t, return_arg, (void *)0x1234, NULL), 0);
	void *r = NULL;
	cr_assert_eq(zio_task_join(t, &r), 0);
	cr_assert_eq(r, (void *)0x1234);
	return (void *)1;
}

Test(fiber, join_returns_result, .timeout = 10)
{
	cr_assert_eq(run_in_runtime(1, spawn_and_join, NULL), (void *)1);
	cr_assert_eq(run_in_runtime(2, spawn_and_join, NULL), (void *)1);
}

static void *many(void *arg)
{
	enum { N = 1000 };
	zio_task *t[N];
	for (intptr_t i = 0; i < N; i++)
		cr_assert_eq(zio_spawn(NULL, &t[i], return_arg, (void *)i, NULL), 0);
	for (intptr_t i = 0; i < N; i++) {
		void *r;
		cr_assert_eq(zio_task_join(t[i], &r), 0);
		cr_assert_eq((intptr_t)r, i);
	}
	return NULL;
}

Test(fiber, many_children, .timeout = 20)
{
	run_in_runtime(1, many, NULL);
	run_in_runtime(2, many, NULL);
}

static atomic_int detached_ran;

static void *detached_body(void *arg)
{
	zio_yield();
	atomic_fetch_add(&detached_ran, 1);
	return NULL;
}

static void *spawn_detached(void *arg)
{
	for (int i = 0; i < 100; i++)
		cr_assert_eq(zio_spawn(NULL, NULL, detached_body, NULL, NULL), 0);
	zio_task *t;
	zio_spawn(NULL, &t, detached_body, NULL, NULL);
	zio_task_detach(t);
	while (atomic_load(&detached_ran) < 101)
		zio_yield();
	return NULL;
}

Test(fiber, detached_tasks_run_and_free_themselves, .timeout = 10)
{
	run_in_runtime(2, spawn_detached, NULL);
	cr_assert_eq(atomic_load(&detached_ran), 101);
}

static void *check_identity(void *arg)
{
	zio_task *self = zio_task_self();
	cr_assert_not_null(self);
	cr_assert_str_eq(zio_task_name(self), (const char *)arg);
	cr_assert_gt(zio_task_id(self), 0);
	cr_assert_not_null(zio_runtime_current());
	return NULL;
}

static void *names(void *arg)
{
	zio_task *t;
	struct zio_spawn_options o = { .name = "a-rather-long-task-name-that-gets-cut-at-31" };
	cr_assert_eq(zio_spawn(NULL, &t, check_identity, "a-rather-long-task-name-that-ge", &o), 0);
	cr_assert_eq(zio_task_join(t, NULL), 0);
	return NULL;
}

Test(fiber, names_and_ids, .timeout = 10)
{
	run_in_runtime(1, names, NULL);
	cr_assert_null(zio_task_self());
	cr_assert_null(zio_runtime_current());
}

static zio_task_key key;
static atomic_int dtor_calls;

static void dtor(void *v)
{
	cr_assert_eq(v, (void *)7);
	atomic_fetch_add(&dtor_calls, 1);
}

static void *tls_body(void *arg)
{
	cr_assert_null(zio_task_get(key));
	cr_assert_eq(zio_task_set(key, arg), 0);
	zio_yield();
	cr_assert_eq(zio_task_get(key), arg);
	if (arg == (void *)7)
		return NULL;
	cr_assert_eq(zio_task_set(key, NULL), 0);
	return NULL;
}

static void *tls_main(void *arg)
{
	zio_task *a, *b;
	zio_spawn(NULL, &a, tls_body, (void *)7, NULL);
	zio_spawn(NULL, &b, tls_body, (void *)9, NULL);
	zio_task_join(a, NULL);
	zio_task_join(b, NULL);
	cr_assert_eq(zio_task_set(ZIO_TASK_KEYS_MAX, NULL), -EINVAL);
	return NULL;
}

Test(fiber, task_local_storage, .timeout = 10)
{
	cr_assert_eq(zio_task_key_create(&key, dtor), 0);
	run_in_runtime(2, tls_main, NULL);
	cr_assert_eq(atomic_load(&dtor_calls), 1);
	cr_assert_eq(zio_task_set(key, NULL), -EPERM); /* not in a task */
	cr_assert_eq(zio_task_key_delete(key), 0);
	cr_assert_eq(zio_task_key_delete(key), -EINVAL);
}

static void *errno_body(void *arg)
{
	/* Pinned: compilers cache errno's thread-local address across calls
	 * (__errno_location is const), so a task that migrates would read the
	 * old thread's errno. zio_task_pin() is the documented remedy. */
	zio_task_pin();
	errno = (int)(intptr_t)arg;
	for (int i = 0; i < 100; i++) {
		zio_yield();
		cr_assert_eq(errno, (int)(intptr_t)arg);
	}
	return NULL;
}

static void *errno_main(void *arg)
{
	zio_task *t[4];
	for (intptr_t i = 0; i < 4; i++)
		zio_spawn(NULL, &t[i], errno_body, (void *)(i + 100), NULL);
	for (int i = 0; i < 4; i++)
		zio_task_join(t[i], NULL);
	return NULL;
}

Test(fiber, errno_is_per_task, .timeout = 10)
{
	run_in_runtime(1, errno_main, NULL);
	run_in_runtime(2, errno_main, NULL);
}

static void *self_join(void *arg)
{
	cr_assert_eq(zio_task_join(zio_task_self(), NULL), -EDEADLK);
	return NULL;
}

Test(fiber, bad_arguments, .timeout = 10)
{
	zio_runtime *rt;
	cr_assert_eq(zio_runtime_create(NULL, NULL), -EINVAL);
	cr_assert_eq(zio_runtime_create(&rt, &(struct zio_runtime_options){ .stack_size = 100 }), -EINVAL);
	cr_assert_eq(zio_runtime_create(&rt, &(struct zio_runtime_options){ .backend = "nope" }), -EINVAL);
	cr_assert_eq(zio_spawn(NULL, NULL, return_arg, NULL, NULL), -EINVAL); /* no runtime */
	cr_assert_eq(zio_runtime_create(&rt, NULL), 0);
	cr_assert_eq(zio_spawn(rt, NULL, NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(zio_runtime_run(rt, NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(zio_runtime_run(rt, self_join, NULL, NULL), 0);
	cr_assert_eq(zio_task_join(NULL, NULL), -EINVAL);
	zio_runtime_destroy(rt);
	zio_runtime_destroy(NULL);
}

/* Spawning from a thread that is not in the runtime, and joining there. */
static zio_runtime *foreign_rt;
static atomic_int foreign_done;

static void *foreign_thread(void *arg)
{
	for (intptr_t i = 0; i < 50; i++) {
		zio_task *t;
		cr_assert_eq(zio_spawn(foreign_rt, &t, return_arg, (void *)i, NULL), 0);
		void *r;
		cr_assert_eq(zio_task_join(t, &r), 0);
		cr_assert_eq((intptr_t)r, i);
	}
	atomic_store(&foreign_done, 1);
	return NULL;
}

static void *wait_for_foreign(void *arg)
{
	while (!atomic_load(&foreign_done))
		zio_sleep(ZIO_MSEC(1));
	return NULL;
}

Test(fiber, spawn_from_foreign_thread, .timeout = 20)
{
	for (unsigned n = 1; n <= 2; n++) {
		atomic_store(&foreign_done, 0);
		cr_assert_eq(zio_runtime_create(&foreign_rt, &(struct zio_runtime_options){ .executors = n }), 0);
		pthread_t th;
		pthread_create(&th, NULL, foreign_thread, NULL);
		cr_assert_eq(zio_runtime_run(foreign_rt, wait_for_foreign, NULL, NULL), 0);
		pthread_join(th, NULL);
		zio_runtime_destroy(foreign_rt);
	}
}

static void *recurse(int depth)
{
	volatile char buf[1024];
	buf[0] = 1;
	if (depth == 0)
		return NULL;
	void *r = recurse(depth - 1);
	__asm__ __volatile__("" ::: "memory");
	return (void *)((intptr_t)r + (buf[0] != 0));
}

static void *deep(void *arg)
{
	/* About 4 MiB of stack: far beyond what any one page could hold. */
	return recurse(4000);
}

static void *deep_main(void *arg)
{
	zio_task *t;
	cr_assert_eq(zio_spawn(NULL, &t, deep, NULL, NULL), 0);
	void *r;
	zio_task_join(t, &r);
	return r;
}

Test(fiber, deep_recursion_grows_the_stack, .timeout = 20)
{
	cr_assert_eq((intptr_t)run_in_runtime(1, deep_main, NULL), 4000);
}

static void *per_spawn_stack(void *arg)
{
	zio_task *t;
	struct zio_spawn_options o = { .stack_size = 16 << 20 };
	cr_assert_eq(zio_spawn(NULL, &t, deep, NULL, &o), 0);
	void *r;
	zio_task_join(t, &r);
	cr_assert_eq((intptr_t)r, 4000);
	o.stack_size = (size_t)1 << 50;
	cr_assert_eq(zio_spawn(NULL, &t, deep, NULL, &o), -EINVAL);
	return NULL;
}

Test(fiber, per_spawn_stack_size, .timeout = 20)
{
	run_with(&(struct zio_runtime_options){ .stack_size = 64 << 10 }, per_spawn_stack, NULL);
}

static volatile int keep_going = 1;

static void overflow_forever(volatile char *p)
{
	volatile char buf[4096];
	buf[0] = p ? p[0] : 0;
	if (keep_going)
		overflow_forever(buf);
	__asm__ __volatile__("" ::: "memory");
}

static void *overflow(void *arg)
{
	overflow_forever(NULL);
	return NULL;
}

static void *overflow_main(void *arg)
{
	zio_task *t;
	zio_spawn(NULL, &t, overflow, NULL, &(struct zio_spawn_options){ .name = "deep-diver" });
	zio_task_join(t, NULL);
	return NULL;
}

/* The guard region stops the overflow: the process aborts with a report. */
Test(fiber, stack_overflow_hits_guard_and_aborts, .timeout = 20, .signal = SIGABRT)
{
	run_with(&(struct zio_runtime_options){ .stack_size = 256 << 10 }, overflow_main, NULL);
}

Test(fiber, stack_overflow_report_names_the_task, .timeout = 30)
{
	/* Run the overflow in a child and read what it printed. */
	int pipefd[2];
	cr_assert_eq(pipe(pipefd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pipefd[1], 2);
		run_with(&(struct zio_runtime_options){ .stack_size = 256 << 10 }, overflow_main, NULL);
		_exit(0);
	}
	close(pipefd[1]);
	/* Keep the first 8 KiB, but drain everything so the child never
	 * blocks on a full pipe. */
	char out[8192], sink[4096];
	size_t len = 0;
	ssize_t n;
	while ((n = read(pipefd[0], len < sizeof(out) - 1 ? out + len : sink,
			 len < sizeof(out) - 1 ? sizeof(out) - 1 - len : sizeof(sink))) > 0)
		if (len < sizeof(out) - 1)
			len += (size_t)n;
	out[len] = 0;
	close(pipefd[0]);
	int status;
	waitpid(pid, &status, 0);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %x: %s", status, out);
	cr_assert(strstr(out, "\"deep-diver\" overflowed its stack (256 KiB"), "got: %s", out);
#if defined(__SANITIZE_THREAD__)
	/* That build names only exported symbols (see runtime/debug.c). */
	cr_assert(strstr(out, "  #1 "), "no backtrace: %s", out);
#else
	cr_assert(strstr(out, "overflow_forever"), "no backtrace: %s", out);
#endif
}

/* A SIGSEGV that is not a guard hit goes to the previous handler. */
static void *null_deref(void *arg)
{
	volatile int *p = (volatile int *)arg;
	return (void *)(intptr_t)*p;
}

static void *segv_main(void *arg)
{
	zio_task *t;
	zio_spawn(NULL, &t, null_deref, NULL, NULL);
	zio_task_join(t, NULL);
	return NULL;
}

#if defined(__SANITIZE_ADDRESS__)
#define SEGV_CHAINED 0 /* AddressSanitizer's own handler reports and exits */
#else
#define SEGV_CHAINED SIGSEGV
#endif

Test(fiber, other_segv_is_not_reported_as_overflow, .timeout = 20, .signal = SEGV_CHAINED,
     .exit_code = SEGV_CHAINED ? 0 : 1)
{
	run_in_runtime(1, segv_main, NULL);
}

/* Tasks that own their FP environment keep it across switches, and do not
 * leak it to tasks that share the executor's. */
#include <fenv.h>

static volatile double one = 1.0, three = 3.0;

static void *rounds_up(void *arg)
{
	zio_task_own_fpenv();
	fesetround(FE_UPWARD);
	double up = one / three;
	for (int i = 0; i < 100; i++) {
		zio_yield();
		cr_assert_eq(fegetround(), FE_UPWARD, "lost its rounding mode");
		cr_assert(one / three == up);
	}
	return NULL;
}

static void *rounds_default(void *arg)
{
	for (int i = 0; i < 100; i++) {
		zio_yield();
		cr_assert_eq(fegetround(), FE_TONEAREST, "saw another task's rounding mode");
	}
	return NULL;
}

static void *inherits(void *arg)
{
	return (void *)(intptr_t)fegetround();
}

static void *fpenv_main(void *arg)
{
	zio_task *a, *b, *c;
	zio_spawn(NULL, &a, rounds_up, NULL, NULL);
	zio_spawn(NULL, &b, rounds_default, NULL, NULL);
	zio_task_join(a, NULL);
	zio_task_join(b, NULL);
	cr_assert_eq(fegetround(), FE_TONEAREST);
	/* A spawn with fp_env starts with the spawner's environment. */
	zio_task_own_fpenv();
	fesetround(FE_DOWNWARD);
	zio_spawn(NULL, &c, inherits, NULL, &(struct zio_spawn_options){ .fp_env = true });
	void *r;
	zio_task_join(c, &r);
	cr_assert_eq((int)(intptr_t)r, FE_DOWNWARD);
	fesetround(FE_TONEAREST);
	return NULL;
}

Test(fiber, own_fp_environment, .timeout = 10)
{
	run_in_runtime(1, fpenv_main, NULL);
	run_in_runtime(2, fpenv_main, NULL);
}

/* zio_runtime_dump lists every task with its state and a backtrace. */
#include <sys/mman.h>

static void *park_named(void *arg)
{
	zio_sleep(ZIO_SEC(60));
	return NULL;
}

static void *dump_main(void *arg)
{
	zio_task *t;
	zio_spawn(NULL, &t, park_named, NULL, &(struct zio_spawn_options){ .name = "sleepy" });
	zio_yield();
	int fd = memfd_create("dump", 0);
	zio_runtime_dump(zio_runtime_current(), fd);
	char out[16384];
	ssize_t n = pread(fd, out, sizeof(out) - 1, 0);
	close(fd);
	cr_assert_gt(n, 0);
	out[n] = 0;
	cr_assert(strstr(out, "2 live task(s)"), "%s", out);
	cr_assert(strstr(out, "\"main\": running"), "%s", out);
	cr_assert(strstr(out, "\"sleepy\": parked"), "%s", out);
#if defined(__SANITIZE_THREAD__)
	cr_assert(strstr(out, "\"sleepy\": parked\n  #0 "), "no backtrace of the parked task: %s", out);
#else
	cr_assert(strstr(out, "park_named"), "no backtrace of the parked task: %s", out);
#endif
	zio_task_cancel(t);
	zio_task_join(t, NULL);
	return NULL;
}

Test(fiber, dump_lists_tasks_with_backtraces, .timeout = 10)
{
	run_in_runtime(1, dump_main, NULL);
}
