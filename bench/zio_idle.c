/*
 * zio_idle N - memory per idle task: N tasks each parked in a wait, then
 * (VmRSS now - VmRSS before) / N. Stacks are the configuration the README
 * recommends for many connections (256 KiB reservations, $ZIO_STACK_SIZE
 * overrides). Also reports the page tables the stacks cost (VmPTE), which
 * RSS does not include.
 */
#include "bench.h"

#include <zio.h>

static long n;
static long parked;

static void *park(void *arg)
{
	__atomic_fetch_add(&parked, 1, __ATOMIC_RELAXED);
	zio_sleep(ZIO_SEC(3600));
	return NULL;
}

static void *bench_main(void *arg)
{
	long rss0 = bench_rss_kib(), pte0 = bench_status_kib("VmPTE");
	for (long i = 0; i < n; i++) {
		if (zio_spawn(NULL, NULL, park, NULL, NULL)) {
			fprintf(stderr, "zio_idle: spawn failed at %ld\n", i);
			exit(1);
		}
		if (i % 4096 == 0)
			zio_yield();
	}
	while (__atomic_load_n(&parked, __ATOMIC_RELAXED) < n)
		zio_sleep(ZIO_MSEC(1));
	long rss1 = bench_rss_kib(), pte1 = bench_status_kib("VmPTE");
	bench_result("idle_rss_kib", (double)(rss1 - rss0) / (double)n, "KiB");
	bench_result("idle_pte_kib", (double)(pte1 - pte0) / (double)n, "KiB");
	return NULL;
}

int main(int argc, char **argv)
{
	n = bench_arg_count(argc, argv, 1, 100000);
	struct zio_runtime_options o = { .stack_size = getenv("ZIO_STACK_SIZE") ? 0 : 256 << 10 };
	zio_runtime *rt;
	if (zio_runtime_create(&rt, &o))
		return 1;
	zio_runtime_run(rt, bench_main, NULL, NULL);
	zio_runtime_destroy(rt);
	return 0;
}
