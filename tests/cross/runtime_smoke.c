/*
 * runtime_smoke.c - the runtime end to end, as a plain program, on whatever
 * CPU it runs on: tools/cross-test links it against each target's libzio.a
 * and runs it under qemu-user (no Criterion there); it builds and runs
 * natively the same way.
 *
 * Every check runs in a fresh runtime (create, run, destroy) and prints one
 * "ok"/"FAIL" line, preceded by the reasons when it fails; the last line is
 * "N passed, M failed" and the exit status is 0 only if nothing failed.
 * Failures are recorded, never fatal, so one broken check does not hide the
 * others; a check that hangs is caught by a SIGALRM watchdog, which reports
 * which check it was and exits non-zero.
 *
 * Covered: the scheduler's context switches (1 and 2 executors), work
 * spreading across 2 executors, sleeps/deadline scopes/cancellation, stack
 * growth to 2 MiB, the guard page (in a forked child), mutex and channels,
 * TCP/UDP/deadlines on the epoll and poll backends, and the automatic
 * backend choice (which must fall back by itself where io_uring is missing,
 * as under qemu-user).
 *
 * Counts are modest: qemu-user is 10-30x slower than native.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <zio.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------ reporting */

static atomic_int check_failures; /* of the check in progress; tasks may fail it */
static int npassed, nfailed;
static const char *check_name = "(none)";

#define WATCHDOG_S 100u /* per check; native runs take well under 1 s each */

static void check_failed(const char *what, int line, const char *detail)
{
	atomic_fetch_add(&check_failures, 1);
	/* One printf per line: tasks on two executors may fail at once. */
	printf("    check failed: %s (runtime_smoke.c:%d)%s%s\n", what, line, detail ? ": " : "",
	       detail ? detail : "");
	fflush(stdout);
}

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			check_failed(#cond, __LINE__, NULL);                                       \
	} while (0)

/* CHECKF(cond, fmt, args...): with a formatted detail. */
#define CHECKF(cond, ...)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			char detail_[256];                                                         \
			snprintf(detail_, sizeof detail_, __VA_ARGS__);                            \
			check_failed(#cond, __LINE__, detail_);                                    \
		}                                                                                  \
	} while (0)

static void say(const char *s)
{
	ssize_t r = write(STDOUT_FILENO, s, strlen(s));
	(void)r;
}

static void watchdog(int sig)
{
	char buf[96];
	(void)sig;
	/* snprintf is not async-signal-safe in general, but the process is
	 * stuck and about to exit; the text is what matters. */
	say("    check failed: watchdog: still running after ");
	snprintf(buf, sizeof buf, "%u s\n", WATCHDOG_S);
	say(buf);
	say("FAIL ");
	say(check_name);
	say(" (hung)\n");
	snprintf(buf, sizeof buf, "%d passed, %d failed\n", npassed, nfailed + 1);
	say(buf);
	_exit(1);
}

static void begin(const char *name)
{
	check_name = name;
	atomic_store(&check_failures, 0);
	alarm(WATCHDOG_S);
}

static void end(void)
{
	alarm(0);
	int f = atomic_load(&check_failures);
	printf("%s %s\n", f ? "FAIL" : "ok  ", check_name);
	fflush(stdout);
	if (f)
		nfailed++;
	else
		npassed++;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("    ");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
}

/* Runs fn(arg) as the main task of a fresh runtime; the runtime's backend
 * is checked against opts->backend when one was asked for. Returns the
 * main task's result, or (void *)-1 if the runtime could not be made. */
static void *in_runtime(const struct zio_runtime_options *opts, zio_task_fn fn, void *arg)
{
	zio_runtime *rt = NULL;
	int r = zio_runtime_create(&rt, opts);
	CHECKF(r == 0, "zio_runtime_create: %s", strerror(-r));
	if (r != 0)
		return (void *)-1;
	if (opts && opts->executors && opts->executors != ZIO_EXECUTORS_AUTO)
		CHECKF(zio_runtime_executors(rt) == opts->executors, "executors %u, asked for %u",
		       zio_runtime_executors(rt), opts->executors);
	if (opts && opts->backend)
		CHECKF(strcmp(zio_runtime_backend(rt), opts->backend) == 0,
		       "backend \"%s\", asked for \"%s\"", zio_runtime_backend(rt), opts->backend);
	void *res = (void *)-1;
	r = zio_runtime_run(rt, fn, arg, &res);
	CHECKF(r == 0, "zio_runtime_run: %s", strerror(-r));
	zio_runtime_destroy(rt);
	return res;
}

static struct zio_runtime_options execs(unsigned n)
{
	return (struct zio_runtime_options){ .executors = n };
}

/* A deadline far enough away that only a hang reaches it (qemu is slow). */
static int64_t hang_deadline(void)
{
	return zio_deadline_after(ZIO_SEC(60));
}

/* ------------------------------------------------ 1. context switching */

#define SWITCH_TASKS 1000
#define SWITCH_YIELDS 5

static void *yielder(void *arg)
{
	uintptr_t i = (uintptr_t)arg;
	for (int k = 0; k < SWITCH_YIELDS; k++)
		if (zio_yield() != 0)
			return (void *)(uintptr_t)-2;
	return (void *)(i * 3 + 1);
}

static void *switch_main(void *arg)
{
	(void)arg;
	static zio_task *t[SWITCH_TASKS];
	int spawn_err = 0, wrong = 0, join_err = 0, spawned = 0;
	for (uintptr_t i = 0; i < SWITCH_TASKS; i++) {
		int r = zio_spawn(NULL, &t[i], yielder, (void *)i, NULL);
		if (r != 0) {
			if (!spawn_err)
				spawn_err = r;
			t[i] = NULL;
			continue;
		}
		spawned++;
	}
	for (uintptr_t i = 0; i < SWITCH_TASKS; i++) {
		if (!t[i])
			continue;
		void *res = NULL;
		int r = zio_task_join(t[i], &res);
		if (r != 0)
			join_err++;
		else if (res != (void *)(i * 3 + 1))
			wrong++;
	}
	CHECKF(spawn_err == 0, "zio_spawn: %s (%d of %d spawned)", strerror(-spawn_err), spawned,
	       SWITCH_TASKS);
	CHECKF(join_err == 0, "%d joins failed", join_err);
	CHECKF(wrong == 0, "%d of %d tasks returned a wrong value", wrong, spawned);
	/* Not a check: a yield with nothing else runnable locally does not
	 * switch, so the count depends on how the tasks were spread. */
	struct zio_stats st;
	zio_runtime_stats(zio_runtime_current(), &st);
	note("%" PRIu64 " switches, %" PRIu64 " steals", st.switches, st.steals);
	return NULL;
}

static void check_switch(unsigned executors)
{
	char name[96];
	snprintf(name, sizeof name, "1. context switch: %d tasks x %d yields, %u executor%s",
		 SWITCH_TASKS, SWITCH_YIELDS, executors, executors > 1 ? "s" : "");
	begin(name);
	struct zio_runtime_options o = execs(executors);
	in_runtime(&o, switch_main, NULL);
	end();
}

/* ------------------------------------------------- 2. work spreading */

#define CPU_TASKS 64

static pthread_t cpu_thread[CPU_TASKS];

static void *cpu_task(void *arg)
{
	uintptr_t i = (uintptr_t)arg;
	/* Read once, before any suspension point (pthread_self is "const"). */
	cpu_thread[i] = pthread_self();
	int64_t until = zio_now() + ZIO_MSEC(1);
	while (zio_now() < until)
		;
	return (void *)i;
}

static pthread_t exec0_thread;

static void *spread_main(void *arg)
{
	(void)arg;
	zio_task *t[CPU_TASKS];
	int bad = 0;
	for (uintptr_t i = 0; i < CPU_TASKS; i++) {
		int r = zio_spawn(NULL, &t[i], cpu_task, (void *)i, NULL);
		CHECKF(r == 0, "zio_spawn: %s", strerror(-r));
		if (r != 0)
			t[i] = NULL;
	}
	for (uintptr_t i = 0; i < CPU_TASKS; i++) {
		void *res = NULL;
		if (t[i] && (zio_task_join(t[i], &res) != 0 || res != (void *)i))
			bad++;
	}
	CHECKF(bad == 0, "%d tasks failed to join or returned a wrong value", bad);
	int on0 = 0, other = 0;
	for (int i = 0; i < CPU_TASKS; i++) {
		if (pthread_equal(cpu_thread[i], exec0_thread))
			on0++;
		else
			other++;
	}
	struct zio_stats st;
	zio_runtime_stats(zio_runtime_current(), &st);
	note("%d tasks ran on executor 0, %d on the other; %" PRIu64 " steals", on0, other,
	     st.steals);
	CHECKF(on0 > 0 && other > 0, "executor 0 ran %d, the other %d", on0, other);
	return NULL;
}

static void check_spread(void)
{
	begin("2. scheduler: 64 CPU-bound 1 ms tasks spread over 2 executors");
	exec0_thread = pthread_self(); /* zio_runtime_run's caller is executor 0 */
	struct zio_runtime_options o = execs(2);
	in_runtime(&o, spread_main, NULL);
	end();
}

/* ------------------------------------------------------ 3. sleep/timers */

#define SLEEPERS 1000

static int64_t sleep_deadline[SLEEPERS], sleep_woke[SLEEPERS];
static int sleep_res[SLEEPERS];

static void *sleeper(void *arg)
{
	uintptr_t i = (uintptr_t)arg;
	sleep_res[i] = zio_sleep_until(sleep_deadline[i]);
	sleep_woke[i] = zio_now();
	return NULL;
}

static void *sleep_main(void *arg)
{
	(void)arg;
	static zio_task *t[SLEEPERS];
	/* Deadlines every 200 us over 200 ms, spawned in shuffled order. */
	int perm[SLEEPERS];
	for (int i = 0; i < SLEEPERS; i++)
		perm[i] = i;
	uint32_t seed = 12345;
	for (int i = SLEEPERS - 1; i > 0; i--) {
		seed = seed * 1103515245u + 12345u;
		int j = (int)((seed >> 8) % (uint32_t)(i + 1));
		int tmp = perm[i];
		perm[i] = perm[j];
		perm[j] = tmp;
	}
	int64_t base = zio_now() + ZIO_MSEC(20);
	for (int i = 0; i < SLEEPERS; i++) {
		sleep_deadline[i] = base + (int64_t)perm[i] * ZIO_USEC(200);
		sleep_res[i] = 1;
		int r = zio_spawn(NULL, &t[i], sleeper, (void *)(uintptr_t)i, NULL);
		CHECKF(r == 0, "zio_spawn: %s", strerror(-r));
		if (r != 0)
			t[i] = NULL;
	}
	int early = 0, errs = 0;
	int64_t late_max = 0, early_worst = 0;
	for (int i = 0; i < SLEEPERS; i++) {
		if (!t[i])
			continue;
		CHECK(zio_task_join(t[i], NULL) == 0);
		if (sleep_res[i] != 0) {
			errs++;
			continue;
		}
		int64_t d = sleep_woke[i] - sleep_deadline[i];
		if (d < 0) {
			early++;
			if (d < early_worst)
				early_worst = d;
		} else if (d > late_max) {
			late_max = d;
		}
	}
	note("latest wake-up %.3f ms after its deadline", (double)late_max / 1e6);
	CHECKF(errs == 0, "%d sleeps returned an error", errs);
	CHECKF(early == 0, "%d tasks woke before their deadline (worst %" PRId64 " ns early)",
	       early, -early_worst);
	return NULL;
}

static void *timeout_scope_main(void *arg)
{
	(void)arg;
	struct zio_timeout scope;
	int64_t t0 = zio_now();
	int64_t deadline = zio_deadline_after(ZIO_MSEC(20));
	zio_timeout_begin(&scope, deadline);
	int r = zio_sleep(ZIO_SEC(30));
	int64_t woke = zio_now();
	bool expired = zio_timeout_end(&scope);
	CHECKF(r == -ETIMEDOUT, "zio_sleep returned %d (%s)", r, strerror(r < 0 ? -r : 0));
	CHECK(expired);
	CHECKF(woke >= deadline, "woke %" PRId64 " ns before the scope's deadline", deadline - woke);
	CHECKF(woke - t0 < ZIO_SEC(10), "took %.3f s", (double)(woke - t0) / 1e9);
	/* The scope is gone: a short sleep completes normally again. */
	r = zio_sleep(ZIO_MSEC(1));
	CHECKF(r == 0, "sleep after the scope ended returned %d", r);
	return NULL;
}

static void *long_sleeper(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)zio_sleep(ZIO_SEC(30));
}

static void *cancel_main(void *arg)
{
	(void)arg;
	zio_task *t;
	int r = zio_spawn(NULL, &t, long_sleeper, NULL, NULL);
	CHECKF(r == 0, "zio_spawn: %s", strerror(-r));
	if (r)
		return NULL;
	int64_t t0 = zio_now();
	CHECK(zio_sleep(ZIO_MSEC(10)) == 0);
	CHECK(!zio_task_done(t));
	zio_task_cancel(t);
	void *res = NULL;
	r = zio_task_join(t, &res);
	CHECKF(r == 0, "zio_task_join: %d", r);
	CHECKF((intptr_t)res == -ECANCELED, "the cancelled sleep returned %d",
	       (int)(intptr_t)res);
	CHECKF(zio_now() - t0 < ZIO_SEC(10), "took %.3f s", (double)(zio_now() - t0) / 1e9);
	return NULL;
}

static void check_sleep(void)
{
	struct zio_runtime_options o = execs(2);

	begin("3. timers: 1000 tasks sleep to shuffled deadlines, none wakes early (2 executors)");
	in_runtime(&o, sleep_main, NULL);
	end();

	begin("3. timers: a 20 ms zio_timeout_begin scope turns a 30 s sleep into -ETIMEDOUT");
	in_runtime(&o, timeout_scope_main, NULL);
	end();

	begin("3. timers: cancelling a sleeping task makes its sleep return -ECANCELED");
	in_runtime(&o, cancel_main, NULL);
	end();
}

/* ----------------------------------------------------- 4. stack growth */

#define DEEP_FRAME 1024
#define DEEP_DEPTH 2048 /* >= 2 MiB of frames */

static volatile uintptr_t deep_lowest;

__attribute__((noinline)) static unsigned long deep(unsigned long n)
{
	volatile char pad[DEEP_FRAME];
	pad[0] = 1;
	pad[DEEP_FRAME - 1] = 1;
	if ((uintptr_t)&pad[0] < deep_lowest)
		deep_lowest = (uintptr_t)&pad[0];
	if (n == 0)
		return 0;
	unsigned long below = deep(n - 1);
	return below + (unsigned long)pad[0]; /* used after the call: no tail call */
}

static void *deep_task(void *arg)
{
	(void)arg;
	volatile char top;
	deep_lowest = UINTPTR_MAX;
	unsigned long n = deep(DEEP_DEPTH);
	uintptr_t used = (uintptr_t)&top - deep_lowest;
	note("recursed %lu deep, %zu KiB of stack", n, (size_t)(used >> 10));
	CHECKF(n == DEEP_DEPTH, "returned %lu", n);
	CHECKF(used >= (2u << 20), "only %zu KiB used", (size_t)(used >> 10));
	return (void *)n;
}

static void *deep_main(void *arg)
{
	(void)arg;
	zio_task *t;
	int r = zio_spawn(NULL, &t, deep_task, NULL, NULL); /* the default stack */
	CHECKF(r == 0, "zio_spawn: %s", strerror(-r));
	if (r)
		return NULL;
	void *res = NULL;
	CHECK(zio_task_join(t, &res) == 0);
	CHECK(res == (void *)(uintptr_t)DEEP_DEPTH);
	return NULL;
}

static void check_stack_growth(void)
{
	begin("4. stack: a task recurses 2 MiB deep on the default 8 MiB stack");
	struct zio_runtime_options o = execs(1);
	in_runtime(&o, deep_main, NULL);
	end();
}

/* ------------------------------------------------------- 5. guard page */

static volatile unsigned long bottom = ULONG_MAX; /* never reached */

__attribute__((noinline)) static unsigned long bottomless(unsigned long n)
{
	volatile char pad[256];
	pad[0] = (char)n;
	pad[255] = (char)n;
	if (n >= bottom)
		return 0;
	return bottomless(n + 1) + (unsigned long)pad[0];
}

static void *bottomless_task(void *arg)
{
	(void)arg;
	return (void *)bottomless(0);
}

static void *overflow_main(void *arg)
{
	(void)arg;
	zio_task *t;
	struct zio_spawn_options so = { .stack_size = 256u << 10, .name = "bottomless" };
	if (zio_spawn(NULL, &t, bottomless_task, NULL, &so) != 0)
		_exit(4);
	zio_task_join(t, NULL);
	return NULL;
}

static void check_guard_page(void)
{
	begin("5. guard page: a 256 KiB task recursing forever dies with SIGABRT and a report");
	int p[2];
	if (pipe(p) != 0) {
		CHECKF(0, "pipe: %s", strerror(errno));
		end();
		return;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		CHECKF(0, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		end();
		return;
	}
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		setrlimit(RLIMIT_CORE, &no_core);
		alarm(WATCHDOG_S / 2); /* SIGALRM's default kills it if it hangs */
		signal(SIGALRM, SIG_DFL);
		close(p[0]);
		dup2(p[1], STDERR_FILENO);
		close(p[1]);
		zio_runtime *rt;
		struct zio_runtime_options o = execs(1);
		if (zio_runtime_create(&rt, &o) != 0)
			_exit(2);
		zio_runtime_run(rt, overflow_main, NULL, NULL);
		zio_runtime_destroy(rt);
		_exit(3); /* the recursion should never have returned */
	}
	close(p[1]);
	static char out[64 << 10];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(p[0], out + len, sizeof out - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof out - 1) {
			char sink[4096]; /* keep draining so the child cannot block */
			while (read(p[0], sink, sizeof sink) > 0)
				;
			break;
		}
	}
	out[len] = 0;
	close(p[0]);
	int status = 0;
	pid_t w;
	while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	CHECKF(w == pid, "waitpid: %s", strerror(errno));
	char how[64];
	if (WIFSIGNALED(status))
		snprintf(how, sizeof how, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else if (WIFEXITED(status))
		snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
	else
		snprintf(how, sizeof how, "status 0x%x", status);
	note("child %s", how);
	/* The first line of the report, as evidence. */
	const char *rep = strstr(out, "overflowed its stack");
	if (rep) {
		const char *line = rep;
		while (line > out && line[-1] != '\n')
			line--;
		const char *eol = strchr(line, '\n');
		note("child: %.*s", (int)(eol ? eol - line : (ptrdiff_t)strlen(line)), line);
	}
	bool died_right = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
	CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "child %s", how);
	if (!died_right || !rep) {
		/* Show what it said, for the diagnosis. */
		int lines = 0;
		for (const char *l = out; *l && lines < 24; lines++) {
			const char *e = strchr(l, '\n');
			int n = (int)(e ? e - l : (ptrdiff_t)strlen(l));
			note("| %.*s", n, l);
			l += n + (e != NULL);
		}
	}
	CHECKF(rep != NULL, "no \"overflowed its stack\" in the %zu bytes of the child's stderr",
	       len);
	end();
}

/* -------------------------------------------------- 6. sync + channels */

#define MUTEX_TASKS 8
#define MUTEX_ITERS 1000

static zio_mutex counter_lock = ZIO_MUTEX_INIT;
static long counter;

static void *incrementer(void *arg)
{
	(void)arg;
	for (int k = 0; k < MUTEX_ITERS; k++) {
		if (zio_mutex_lock(&counter_lock) != 0)
			return (void *)1;
		long v = counter;
		/* Now and then hold the lock across a switch, so that others
		 * really queue on it. */
		if (k % 64 == 0)
			zio_yield();
		counter = v + 1;
		if (zio_mutex_unlock(&counter_lock) != 0)
			return (void *)2;
	}
	return NULL;
}

static void *mutex_main(void *arg)
{
	(void)arg;
	zio_task *t[MUTEX_TASKS];
	counter = 0;
	for (int i = 0; i < MUTEX_TASKS; i++) {
		int r = zio_spawn(NULL, &t[i], incrementer, NULL, NULL);
		CHECKF(r == 0, "zio_spawn: %s", strerror(-r));
		if (r)
			t[i] = NULL;
	}
	for (int i = 0; i < MUTEX_TASKS; i++) {
		void *res = (void *)-1;
		if (!t[i])
			continue;
		CHECK(zio_task_join(t[i], &res) == 0);
		CHECKF(res == NULL, "task %d: lock/unlock failed (%d)", i, (int)(intptr_t)res);
	}
	CHECKF(counter == MUTEX_TASKS * MUTEX_ITERS, "counter is %ld", counter);
	CHECK(zio_mutex_destroy(&counter_lock) == 0);
	return NULL;
}

#define PINGS 1000

struct pingpong {
	zio_chan *ping, *pong;
};

static void *ponger(void *arg)
{
	struct pingpong *pp = arg;
	int out_of_order = 0;
	for (int i = 0; i < PINGS; i++) {
		int v = -1;
		int r = zio_chan_recv(pp->ping, &v, hang_deadline());
		if (r != 0)
			return (void *)(intptr_t)r;
		if (v != i)
			out_of_order++;
		r = zio_chan_send(pp->pong, &v, hang_deadline());
		if (r != 0)
			return (void *)(intptr_t)r;
	}
	return (void *)(intptr_t)out_of_order;
}

static void *pingpong_main(void *arg)
{
	(void)arg;
	struct pingpong pp;
	CHECK(zio_chan_create(&pp.ping, sizeof(int), 0, 0) == 0);
	CHECK(zio_chan_create(&pp.pong, sizeof(int), 0, 0) == 0);
	CHECK(zio_chan_cap(pp.ping) == 0);
	zio_task *t;
	int r = zio_spawn(NULL, &t, ponger, &pp, NULL);
	CHECKF(r == 0, "zio_spawn: %s", strerror(-r));
	if (r)
		return NULL;
	int bad = 0, err = 0;
	for (int i = 0; i < PINGS && !err; i++) {
		int v = i, back = -1;
		r = zio_chan_send(pp.ping, &v, hang_deadline());
		if (r == 0)
			r = zio_chan_recv(pp.pong, &back, hang_deadline());
		if (r != 0)
			err = r;
		else if (back != i)
			bad++;
	}
	CHECKF(err == 0, "send/recv: %d (%s)", err, strerror(-err));
	if (err)
		zio_task_cancel(t);
	void *res = NULL;
	CHECK(zio_task_join(t, &res) == 0);
	if (!err)
		CHECKF(res == NULL, "the other side: %d out of order, or error", (int)(intptr_t)res);
	CHECKF(bad == 0, "%d replies out of order", bad);
	CHECK(zio_chan_destroy(pp.ping) == 0);
	CHECK(zio_chan_destroy(pp.pong) == 0);
	return NULL;
}

static void *chan_close_main(void *arg)
{
	(void)arg;
	zio_chan *ch;
	int r = zio_chan_create(&ch, sizeof(int), 8, 0);
	CHECKF(r == 0, "zio_chan_create: %d", r);
	if (r)
		return NULL;
	for (int i = 0; i < 5; i++)
		CHECK(zio_chan_send(ch, &i, 0) == 0);
	CHECK(zio_chan_close(ch) == 0);
	CHECK(zio_chan_closed(ch));
	CHECKF(zio_chan_len(ch) == 5, "len %zu", zio_chan_len(ch));
	int v = 99;
	r = zio_chan_send(ch, &v, 0);
	CHECKF(r == -EPIPE, "send after close: %d", r);
	for (int i = 0; i < 5; i++) {
		v = -1;
		r = zio_chan_recv(ch, &v, hang_deadline());
		CHECKF(r == 0 && v == i, "item %d: recv %d, value %d", i, r, v);
	}
	v = 77;
	r = zio_chan_recv(ch, &v, hang_deadline());
	CHECKF(r == -EPIPE, "recv after draining: %d", r);
	CHECKF(v == 77, "a failed recv wrote %d", v);
	CHECK(zio_chan_destroy(ch) == 0);
	return NULL;
}

static void check_sync(void)
{
	struct zio_runtime_options o = execs(2);

	begin("6. sync: zio_mutex counter, 8 tasks x 1000 increments on 2 executors");
	in_runtime(&o, mutex_main, NULL);
	end();

	begin("6. channels: unbuffered ping-pong of 1000 messages in order (2 executors)");
	in_runtime(&o, pingpong_main, NULL);
	end();

	begin("6. channels: a closed bounded channel drains its 5 items, then -EPIPE");
	in_runtime(&o, chan_close_main, NULL);
	end();
}

/* --------------------------------------------------------- 7. sockets */

#define ECHO_ROUNDS 100
#define ECHO_SIZE 64

static void *echo_server(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	int fd = zio_tcp_accept(lfd, NULL, hang_deadline());
	if (fd < 0)
		return (void *)(intptr_t)fd;
	char buf[4096];
	intptr_t total = 0;
	for (;;) {
		ssize_t n = zio_read(fd, buf, sizeof buf, hang_deadline());
		if (n == 0)
			break;
		if (n < 0) {
			total = n;
			break;
		}
		ssize_t w = zio_write_all(fd, buf, (size_t)n, hang_deadline());
		if (w != n) {
			total = w < 0 ? w : -EIO;
			break;
		}
		total += n;
	}
	zio_close(fd);
	return (void *)total;
}

struct echo_client {
	zio_addr addr;
	int connect_err, io_err, mismatches;
};

static void *echo_client_task(void *arg)
{
	struct echo_client *c = arg;
	int fd = zio_tcp_connect(&c->addr, hang_deadline());
	if (fd < 0) {
		c->connect_err = fd;
		return NULL;
	}
	for (int round = 0; round < ECHO_ROUNDS; round++) {
		unsigned char msg[ECHO_SIZE], back[ECHO_SIZE];
		for (int k = 0; k < ECHO_SIZE; k++)
			msg[k] = (unsigned char)(round * 7 + k);
		ssize_t w = zio_write_all(fd, msg, sizeof msg, hang_deadline());
		if (w != (ssize_t)sizeof msg) {
			c->io_err = w < 0 ? (int)w : -EIO;
			break;
		}
		size_t got = 0;
		while (got < sizeof back) {
			ssize_t n = zio_read(fd, back + got, sizeof back - got, hang_deadline());
			if (n <= 0) {
				c->io_err = n < 0 ? (int)n : -ECONNRESET;
				break;
			}
			got += (size_t)n;
		}
		if (c->io_err)
			break;
		if (memcmp(msg, back, sizeof msg) != 0)
			c->mismatches++;
	}
	zio_close(fd);
	return NULL;
}

/* A TCP echo of ECHO_ROUNDS x ECHO_SIZE bytes on 127.0.0.1; the calling
 * task's runtime, whatever its backend. */
static void *tcp_echo_main(void *arg)
{
	(void)arg;
	zio_addr a;
	CHECK(zio_addr_parse(&a, "127.0.0.1:0") == 0);
	int lfd = zio_tcp_listen(&a, NULL);
	CHECKF(lfd >= 0, "zio_tcp_listen: %s", strerror(-lfd));
	if (lfd < 0)
		return NULL;
	struct echo_client c = { .connect_err = 0 };
	int r = zio_local_addr(lfd, &c.addr);
	CHECKF(r == 0 && zio_addr_port(&c.addr) > 0, "zio_local_addr: %d, port %d", r,
	       zio_addr_port(&c.addr));
	zio_task *srv, *cli;
	r = zio_spawn(NULL, &srv, echo_server, (void *)(intptr_t)lfd, NULL);
	CHECKF(r == 0, "zio_spawn: %s", strerror(-r));
	if (r) {
		zio_close(lfd);
		return NULL;
	}
	r = zio_spawn(NULL, &cli, echo_client_task, &c, NULL);
	CHECKF(r == 0, "zio_spawn: %s", strerror(-r));
	if (r == 0)
		CHECK(zio_task_join(cli, NULL) == 0);
	if (r != 0 || c.connect_err)
		zio_task_cancel(srv); /* it would wait for a connection forever */
	void *echoed = NULL;
	CHECK(zio_task_join(srv, &echoed) == 0);
	zio_close(lfd);
	CHECKF(c.connect_err == 0, "zio_tcp_connect: %s", strerror(-c.connect_err));
	CHECKF(c.io_err == 0, "client I/O: %s", strerror(-c.io_err));
	CHECKF(c.mismatches == 0, "%d echoes differ", c.mismatches);
	if (!c.connect_err)
		CHECKF((intptr_t)echoed == ECHO_ROUNDS * ECHO_SIZE, "server echoed %ld bytes",
		       (long)(intptr_t)echoed);
	return NULL;
}

#define UDP_ROUNDS 10

static void *udp_server(void *arg)
{
	int fd = (int)(intptr_t)arg;
	for (int i = 0; i < UDP_ROUNDS; i++) {
		char buf[64];
		zio_addr from;
		ssize_t n = zio_recvfrom(fd, buf, sizeof buf, 0, &from, hang_deadline());
		if (n < 0)
			return (void *)(intptr_t)n;
		for (ssize_t k = 0; k < n; k++)
			buf[k] = (char)(buf[k] ^ 0x20); /* swap the case back */
		ssize_t w = zio_sendto(fd, buf, (size_t)n, 0, &from, hang_deadline());
		if (w != n)
			return (void *)(intptr_t)(w < 0 ? w : -EIO);
	}
	return NULL;
}

static void *udp_main(void *arg)
{
	(void)arg;
	zio_addr any, saddr;
	CHECK(zio_addr_parse(&any, "127.0.0.1:0") == 0);
	int s = zio_udp_bind(&any), c = zio_udp_bind(&any);
	CHECKF(s >= 0 && c >= 0, "zio_udp_bind: %d, %d", s, c);
	if (s < 0 || c < 0)
		return NULL;
	int r = zio_local_addr(s, &saddr);
	CHECK(r == 0);
	zio_task *t;
	r = zio_spawn(NULL, &t, udp_server, (void *)(intptr_t)s, NULL);
	CHECKF(r == 0, "zio_spawn: %s", strerror(-r));
	if (r)
		return NULL;
	int err = 0, bad = 0;
	for (int i = 0; i < UDP_ROUNDS && !err; i++) {
		char msg[32], back[64];
		int len = snprintf(msg, sizeof msg, "datagram %d", i);
		ssize_t n = zio_sendto(c, msg, (size_t)len, 0, &saddr, hang_deadline());
		if (n != len) {
			err = n < 0 ? (int)n : -EIO;
			break;
		}
		zio_addr from;
		n = zio_recvfrom(c, back, sizeof back, 0, &from, hang_deadline());
		if (n < 0) {
			err = (int)n;
			break;
		}
		int ok = n == len && zio_addr_port(&from) == zio_addr_port(&saddr);
		for (int k = 0; ok && k < len; k++)
			ok = back[k] == (char)(msg[k] ^ 0x20);
		if (!ok)
			bad++;
	}
	CHECKF(err == 0, "client: %s", strerror(-err));
	CHECKF(bad == 0, "%d replies wrong", bad);
	if (err)
		zio_task_cancel(t);
	void *res = NULL;
	CHECK(zio_task_join(t, &res) == 0);
	if (!err)
		CHECKF(res == NULL, "server: %s", strerror(-(int)(intptr_t)res));
	zio_close(s);
	zio_close(c);
	return NULL;
}

static void *read_deadline_main(void *arg)
{
	(void)arg;
	int sv[2];
	int r = zio_socketpair(AF_UNIX, SOCK_STREAM, sv);
	CHECKF(r == 0, "zio_socketpair: %s", strerror(-r));
	if (r)
		return NULL;
	char buf[16];
	int64_t t0 = zio_now();
	int64_t deadline = zio_deadline_after(ZIO_MSEC(20));
	ssize_t n = zio_read(sv[0], buf, sizeof buf, deadline);
	int64_t t1 = zio_now();
	CHECKF(n == -ETIMEDOUT, "zio_read returned %zd", n);
	CHECKF(t1 >= deadline, "returned %" PRId64 " ns before the deadline", deadline - t1);
	CHECKF(t1 - t0 < ZIO_SEC(10), "took %.3f s", (double)(t1 - t0) / 1e9);
	/* The socket still works afterwards. */
	CHECK(zio_write(sv[1], "x", 1, hang_deadline()) == 1);
	n = zio_read(sv[0], buf, sizeof buf, hang_deadline());
	CHECKF(n == 1 && buf[0] == 'x', "read after the timeout: %zd", n);
	zio_close(sv[0]);
	zio_close(sv[1]);
	return NULL;
}

static void check_sockets(const char *backend)
{
	struct zio_runtime_options o = { .executors = 2, .backend = backend };
	char name[128];

	snprintf(name, sizeof name,
		 "7. %s: TCP echo on 127.0.0.1, %d x %d-byte round trips (2 executors)", backend,
		 ECHO_ROUNDS, ECHO_SIZE);
	begin(name);
	in_runtime(&o, tcp_echo_main, NULL);
	end();

	snprintf(name, sizeof name, "7. %s: UDP round trips on 127.0.0.1 (%d datagrams)", backend,
		 UDP_ROUNDS);
	begin(name);
	in_runtime(&o, udp_main, NULL);
	end();

	snprintf(name, sizeof name, "7. %s: read on an idle socketpair with a 20 ms deadline",
		 backend);
	begin(name);
	in_runtime(&o, read_deadline_main, NULL);
	end();
}

/* ------------------------------------------------------ 8. auto backend */

static void check_auto_backend(void)
{
	begin("8. backend: the automatic choice works here (TCP echo on it)");
	/* Does this kernel (or emulator) have io_uring at all? entries = 0 is
	 * invalid, so a kernel that has it answers EINVAL (or EPERM when it is
	 * disabled); one without it, or qemu-user, answers ENOSYS. */
	int uring_errno = 0;
#ifdef SYS_io_uring_setup
	long sr = syscall(SYS_io_uring_setup, 0u, NULL);
	uring_errno = sr < 0 ? errno : 0;
#else
	uring_errno = ENOSYS;
#endif
	zio_runtime *rt = NULL;
	int r = zio_runtime_create(&rt, NULL);
	CHECKF(r == 0, "zio_runtime_create with no backend asked for: %s", strerror(-r));
	if (r == 0) {
		const char *b = zio_runtime_backend(rt);
		note("chosen backend: %s (io_uring_setup probe: %s)", b ? b : "(null)",
		     strerror(uring_errno));
		CHECK(b && (!strcmp(b, "uring") || !strcmp(b, "epoll") || !strcmp(b, "poll")));
		if (uring_errno == ENOSYS || uring_errno == EPERM)
			CHECKF(b && strcmp(b, "uring") != 0,
			       "io_uring is not available here, yet \"%s\" was chosen", b);
		r = zio_runtime_run(rt, tcp_echo_main, NULL, NULL);
		CHECKF(r == 0, "zio_runtime_run: %s", strerror(-r));
		zio_runtime_destroy(rt);
	}
	end();
}

/* ------------------------------------------------------------------ main */

int main(void)
{
	/* The checks choose for themselves. */
	unsetenv("ZIO_BACKEND");
	unsetenv("ZIO_EXECUTORS");
	unsetenv("ZIO_STACK_SIZE");
	signal(SIGALRM, watchdog);

	int64_t t0 = zio_now();
	printf("runtime_smoke: zio %d.%d\n", ZIO_VERSION_MAJOR, ZIO_VERSION_MINOR);
	fflush(stdout);

	check_switch(1);
	check_switch(2);
	check_spread();
	check_sleep();
	check_stack_growth();
	check_guard_page();
	check_sync();
	check_sockets("epoll");
	check_sockets("poll");
	check_auto_backend();

	printf("runtime_smoke: %.2f s\n", (double)(zio_now() - t0) / 1e9);
	printf("%d passed, %d failed\n", npassed, nfailed);
	fflush(stdout);
	return nfailed != 0;
}
