/*
 * zio_switch - the raw context switch the scheduler uses: two contexts
 * ping-pong through zio__ctx_switch_inline (on x86_64 inline assembly that
 * keeps every callee-saved register by declaring it clobbered). Reports ns
 * per single switch (a round trip is two). Peers: Boost.Context
 * jump_fcontext and a bare register swap, run by bench/run.
 */
#include "bench.h"
#include "../arch/arch.h"

#include <sys/mman.h>

static struct zio__ctx main_ctx, fiber_ctx;
static long rounds;

static void bounce(void *arg)
{
	for (;;)
		zio__ctx_switch_inline(&fiber_ctx, &main_ctx);
}

int main(int argc, char **argv)
{
	long n = bench_arg_count(argc, argv, 1, getenv("ZIO_BENCH_QUICK") ? 5000000 : 50000000);
	size_t size = 64 << 10;
	char *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	zio__ctx_make(&fiber_ctx, stack, stack + size, bounce, NULL);
	for (long i = 0; i < n / 10; i++) /* warm up */
		zio__ctx_switch_inline(&main_ctx, &fiber_ctx);
	int64_t t0 = bench_now_ns();
	for (rounds = 0; rounds < n; rounds++)
		zio__ctx_switch_inline(&main_ctx, &fiber_ctx);
	int64_t t1 = bench_now_ns();
	bench_result("switch_ns", (double)(t1 - t0) / (2.0 * n), "ns");
	return 0;
}
