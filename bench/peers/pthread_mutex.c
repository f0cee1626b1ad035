/*
 * pthread_mutex - uncontended pthread_mutex_lock + pthread_mutex_unlock, one
 * thread, the baseline for zio_mutex's fast path. glibc's fast path is one
 * lock cmpxchg and one locked exchange (no syscall when nobody waits).
 *
 * A second thread exists (parked in pause()) while it measures: glibc drops
 * the lock prefix from those instructions while a process has one thread
 * (its single-thread optimisation), which makes a lock three times cheaper
 * than it is in any program that has a reason to use one. zio's runtime
 * always has more than one thread to reckon with, so this is the like-for-
 * like figure.
 *
 * usage: pthread_mutex [pairs=100000000]
 * prints: RESULT mutex_ns <ns per lock+unlock pair> ns
 */
#define _GNU_SOURCE
#include <pthread.h>

#include <unistd.h>

#include "bench.h"

/* A global, so the compiler must keep every call (it could not anyway:
 * the lock functions are opaque calls into libc). */
pthread_mutex_t bench_mu = PTHREAD_MUTEX_INITIALIZER;

static void *idle_thread(void *arg)
{
	for (;;)
		pause();
	return arg;
}

int main(int argc, char **argv)
{
	long n = bench_arg_count(argc, argv, 1, 100000000);
	int64_t t0, t1;
	pthread_t idle;

	if (pthread_create(&idle, NULL, idle_thread, NULL) != 0)
		return 1;

	/* Links in libpthread's real lock for old glibcs that stub it out in a
	 * single-threaded process; harmless on glibc 2.34+. */
	for (long i = 0; i < 1000; i++) {
		pthread_mutex_lock(&bench_mu);
		pthread_mutex_unlock(&bench_mu);
	}
	t0 = bench_now_ns();
	for (long i = 0; i < n; i++) {
		pthread_mutex_lock(&bench_mu);
		pthread_mutex_unlock(&bench_mu);
	}
	t1 = bench_now_ns();
	bench_result("mutex_ns", (double)(t1 - t0) / n, "ns");
	return 0;
}
