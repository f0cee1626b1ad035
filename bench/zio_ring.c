/*
 * zio_ring N - switch cost when N tasks are live and each runs in turn:
 * every task yields in a loop, so the scheduler walks a ring of N stacks
 * and their metadata, and the cost is dominated by cache and TLB misses.
 * Reports ns per switch. Peer: a bare register swap over N 64 KiB stacks.
 */
#include "bench.h"

#include <zio.h>

static long n, laps;

static void *lap(void *arg)
{
	for (long i = 0; i < laps; i++)
		zio_yield();
	return NULL;
}

static void *bench_main(void *arg)
{
	/* Spawning is not timed: each task's first run is its first switch. */
	zio_task **t = calloc((size_t)n, sizeof(*t));
	for (long i = 0; i < n; i++)
		zio_spawn(NULL, &t[i], lap, NULL, NULL);
	zio_yield(); /* one lap to start everyone */
	int64_t t0 = bench_now_ns();
	for (long i = 0; i < n; i++)
		zio_task_join(t[i], NULL);
	int64_t t1 = bench_now_ns();
	bench_result("ring_switch_ns", (double)(t1 - t0) / ((double)n * (double)laps), "ns");
	free(t);
	return NULL;
}

int main(int argc, char **argv)
{
	n = bench_arg_count(argc, argv, 1, 100000);
	laps = getenv("ZIO_BENCH_QUICK") ? 10 : 50;
	struct zio_runtime_options o = { .stack_size = 64 << 10 };
	zio_runtime *rt;
	if (zio_runtime_create(&rt, &o))
		return 1;
	zio_runtime_run(rt, bench_main, NULL, NULL);
	zio_runtime_destroy(rt);
	return 0;
}
