/*
 * zio_mutex - what a zio_mutex costs; bench/run prints it beside the
 * peers bench/peers/pthread_mutex.c and bench/peers/go/mutex.go.
 *
 * mutex_ns: one task locks and unlocks an uncontended mutex: the fast
 * path, one CAS to lock and one to unlock (compare pthread_mutex_lock +
 * unlock, and Go's sync.Mutex Lock + Unlock).
 *
 * mutex_handoff_ns: two tasks on one executor pass the mutex back and
 * forth, and every acquisition is contended: each task does
 *	lock; yield; unlock; yield
 * so the other task always finds the mutex held, parks on it, and gets it
 * only after the holder's unlock woke it. The figure is per acquisition:
 * one park, one wake (a claim and a run-queue insert) and the switches
 * around them. stderr shows how many acquisitions parked, to check that
 * the handoffs really happened.
 *
 * usage: zio_mutex [seconds per measurement, default 1]
 * prints: RESULT mutex_ns <ns> ns
 *         RESULT mutex_handoff_ns <ns> ns
 */
#include <zio.h>

#include "bench.h"

static double budget_ns = 1e9;

static zio_mutex bench_mu = ZIO_MUTEX_INIT; /* global: the calls stay */
static long counter;

static void uncontended(long n)
{
	for (long i = 0; i < n; i++) {
		zio_mutex_lock(&bench_mu);
		counter++;
		zio_mutex_unlock(&bench_mu);
	}
}

/* Runs f(n) for about budget_ns, calibrated on a short first run. */
static double ns_per_op(void (*f)(long), long first)
{
	int64_t t0 = bench_now_ns();
	f(first);
	double per = (double)(bench_now_ns() - t0) / first;
	long n = (long)(budget_ns / (per > 0.1 ? per : 0.1));
	if (n < first)
		n = first;
	t0 = bench_now_ns();
	f(n);
	return (double)(bench_now_ns() - t0) / n;
}

static zio_mutex handoff_mu = ZIO_MUTEX_INIT;
static long handoff_rounds;

static void *handoff_side(void *arg)
{
	for (long i = 0; i < handoff_rounds; i++) {
		zio_mutex_lock(&handoff_mu);
		zio_yield();
		zio_mutex_unlock(&handoff_mu);
		zio_yield();
	}
	return arg;
}

static zio_runtime *rt_now;

static void handoff(long rounds)
{
	zio_task *a, *b;
	struct zio_stats s0, s1;
	handoff_rounds = rounds;
	zio_runtime_stats(rt_now, &s0);
	zio_spawn(NULL, &a, handoff_side, NULL, NULL);
	zio_spawn(NULL, &b, handoff_side, NULL, NULL);
	zio_task_join(a, NULL);
	zio_task_join(b, NULL);
	zio_runtime_stats(rt_now, &s1);
	fprintf(stderr, "zio_mutex: handoff: %ld acquisitions, %llu parks\n", 2 * rounds,
		(unsigned long long)(s1.parks - s0.parks));
}

static void handoff_per_acquisition(long n)
{
	handoff(n / 2 > 0 ? n / 2 : 1);
}

static void *bench_main(void *arg)
{
	zio_runtime *rt = arg;
	rt_now = rt;
	zio_task_pin();
	uncontended(100000); /* warm up */
	bench_result("mutex_ns", ns_per_op(uncontended, 1000000), "ns");
	bench_result("mutex_handoff_ns", ns_per_op(handoff_per_acquisition, 20000), "ns");
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		budget_ns = atof(argv[1]) * 1e9;
	zio_runtime *rt;
	int err = zio_runtime_create(&rt, &(struct zio_runtime_options){ .executors = 1 });
	if (err) {
		fprintf(stderr, "zio_runtime_create: %d\n", err);
		return 1;
	}
	zio_runtime_run(rt, bench_main, rt, NULL);
	zio_runtime_destroy(rt);
	fprintf(stderr, "zio_mutex: counter %ld\n", counter);
	return 0;
}
