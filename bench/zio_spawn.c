/*
 * zio_spawn - spawn + join per task, like Go's `go f()` + WaitGroup: the
 * main task spawns N tasks that do nothing and waits for all of them, in
 * batches of 1000 (so the comparison with Go, whose spawner runs ahead of
 * its goroutines, is like for like). ZIO_EXECUTORS selects 1 or 2
 * executors. Reports ns per task.
 */
#include "bench.h"

#include <zio.h>

#define BATCH 1000

static long n;

static void *nothing(void *arg)
{
	return arg;
}

static void *bench_main(void *arg)
{
	static zio_task *t[BATCH];
	for (int round = 0; round < 2; round++) {
		long total = round == 0 ? n / 10 : n;
		int64_t t0 = bench_now_ns();
		for (long done = 0; done < total; done += BATCH) {
			for (int i = 0; i < BATCH; i++)
				zio_spawn(NULL, &t[i], nothing, NULL, NULL);
			for (int i = 0; i < BATCH; i++)
				zio_task_join(t[i], NULL);
		}
		int64_t t1 = bench_now_ns();
		if (round == 1)
			bench_result("spawn_join_ns", (double)(t1 - t0) / (double)total, "ns");
	}
	return NULL;
}

int main(int argc, char **argv)
{
	n = bench_arg_count(argc, argv, 1, getenv("ZIO_BENCH_QUICK") ? 200000 : 2000000);
	zio_runtime *rt;
	if (zio_runtime_create(&rt, NULL))
		return 1;
	zio_runtime_run(rt, bench_main, NULL, NULL);
	zio_runtime_destroy(rt);
	return 0;
}
