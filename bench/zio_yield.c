/*
 * zio_yield - zio_yield() through the scheduler with two tasks on one
 * executor: each yield switches to the other task. Reports ns per yield,
 * the same unit as Go's runtime.Gosched loop with 2 goroutines.
 */
#include "bench.h"

#include <zio.h>

static long n;

static void *yielder(void *arg)
{
	for (long i = 0; i < n; i++)
		zio_yield();
	return NULL;
}

static void *bench_main(void *arg)
{
	zio_task *a, *b;
	/* warm-up round */
	long real = n;
	n = real / 10;
	zio_spawn(NULL, &a, yielder, NULL, NULL);
	zio_spawn(NULL, &b, yielder, NULL, NULL);
	zio_task_join(a, NULL);
	zio_task_join(b, NULL);
	n = real;
	int64_t t0 = bench_now_ns();
	zio_spawn(NULL, &a, yielder, NULL, NULL);
	zio_spawn(NULL, &b, yielder, NULL, NULL);
	zio_task_join(a, NULL);
	zio_task_join(b, NULL);
	int64_t t1 = bench_now_ns();
	bench_result("yield_ns", (double)(t1 - t0) / (2.0 * n), "ns");
	return NULL;
}

int main(int argc, char **argv)
{
	n = bench_arg_count(argc, argv, 1, getenv("ZIO_BENCH_QUICK") ? 2000000 : 20000000);
	zio_runtime *rt;
	if (zio_runtime_create(&rt, NULL))
		return 1;
	zio_runtime_run(rt, bench_main, NULL, NULL);
	zio_runtime_destroy(rt);
	return 0;
}
