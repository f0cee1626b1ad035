/*
 * pthread_spawn - the kernel-thread baseline for zio_spawn: pthread_create
 * followed at once by pthread_join, one thread at a time, so each task pays
 * the full clone + stack setup + exit + join path that a thread-per-task
 * design pays.
 *
 * usage: pthread_spawn [tasks=50000] [stack_kib=0 (glibc default, 8 MiB)]
 * prints: RESULT spawn_join_us <µs per task> us
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "bench.h"

static void *task(void *arg)
{
	return arg;
}

int main(int argc, char **argv)
{
	long n = bench_arg_count(argc, argv, 1, 50000);
	long stack_kib = argc > 2 ? atol(argv[2]) : 0;
	pthread_attr_t attr;
	int64_t t0, t1;

	pthread_attr_init(&attr);
	if (stack_kib > 0 && pthread_attr_setstacksize(&attr, (size_t)stack_kib * 1024) != 0) {
		fprintf(stderr, "pthread_spawn: bad stack size %ld KiB\n", stack_kib);
		return 2;
	}
	/* One untimed round so the first mmap of a stack and the lazy binding of
	 * the pthread symbols are not charged to the measurement. */
	for (long i = 0; i < 100; i++) {
		pthread_t t;

		if (pthread_create(&t, &attr, task, NULL) != 0)
			return 1;
		pthread_join(t, NULL);
	}
	t0 = bench_now_ns();
	for (long i = 0; i < n; i++) {
		pthread_t t;

		if (pthread_create(&t, &attr, task, NULL) != 0) {
			perror("pthread_create");
			return 1;
		}
		pthread_join(t, NULL);
	}
	t1 = bench_now_ns();
	fprintf(stderr, "pthread_spawn: %ld tasks, stack %s\n", n,
		stack_kib > 0 ? "custom" : "default");
	bench_result("spawn_join_us", (double)(t1 - t0) / n / 1000.0, "us");
	return 0;
}
