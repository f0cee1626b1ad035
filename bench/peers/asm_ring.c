/*
 * asm_ring - the floor for a user-space context switch, and what memory does
 * to it. A bare x86_64 switch saves only the six callee-saved GPRs (no
 * MXCSR/x87 control word) and leaves with pop + jmp rather than ret, so the
 * return-stack predictor is never wrong-footed. K contexts (the main one plus
 * K-1 fibers on 64 KiB stacks) pass control around a ring: each switches to
 * the next, the last back to main.
 *
 * With K=2 this is a symmetric ping-pong: the cheapest a switch can be here
 * (compare zio_switch). With K=100000 every switch lands on a stack page and
 * a slot of the sp array that have long left the caches and the TLB: the cost
 * of a switch in a runtime with that many live fibers (compare zio_ring).
 *
 * Stacks are carved out of one mapping (one VMA, so vm.max_map_count does
 * not limit K) at a 68 KiB stride: 64 KiB of stack and a 4 KiB gap where a
 * runtime would put its guard page, so the stack tops alias in the caches the
 * way separately mapped stacks do. Huge pages are refused, as they would be
 * for real 68 KiB stack mappings. One untimed lap touches every stack first.
 *
 * usage: asm_ring [K=2] [switches=200M for K<=1000, else 20M]
 * prints: RESULT switch_ns <ns per switch> ns       (K=2)
 *         RESULT ring_switch_ns <ns per switch> ns  (K>2)
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "bench.h"

#if defined(__x86_64__)

/*
 * void asm_switch(void **save_sp, void *load_sp)
 * Push callee-saved GPRs, save rsp, load the other rsp, pop its GPRs, pop its
 * resume address and jump there.
 */
void asm_switch(void **save_sp, void *load_sp);
__asm__(
	".text\n"
	".globl asm_switch\n"
	".type asm_switch,@function\n"
	"asm_switch:\n"
	"	pushq %rbp\n"
	"	pushq %rbx\n"
	"	pushq %r12\n"
	"	pushq %r13\n"
	"	pushq %r14\n"
	"	pushq %r15\n"
	"	movq %rsp, (%rdi)\n"
	"	movq %rsi, %rsp\n"
	"	popq %r15\n"
	"	popq %r14\n"
	"	popq %r13\n"
	"	popq %r12\n"
	"	popq %rbx\n"
	"	popq %rbp\n"
	"	popq %r8\n"
	"	jmp *%r8\n"
	".size asm_switch, .-asm_switch\n"
	/* First entry of a fiber: r12 holds its argument, r13 its function. */
	".globl asm_fiber_start\n"
	".type asm_fiber_start,@function\n"
	"asm_fiber_start:\n"
	"	movq %r12, %rdi\n"
	"	callq *%r13\n"
	"	ud2\n"
	".size asm_fiber_start, .-asm_fiber_start\n");
void asm_fiber_start(void);

#define STACK_SIZE (64 * 1024)
#define STRIDE (STACK_SIZE + 4096)

/* sps[i]: saved stack pointer of context i; 0 is main. */
static void **sps;
static long ring_k;

static void fiber_fn(long i)
{
	void **mine = &sps[i];
	long next = i + 1 == ring_k ? 0 : i + 1;

	for (;;)
		asm_switch(mine, sps[next]);
}

int main(int argc, char **argv)
{
	long k = bench_arg_count(argc, argv, 1, 2);
	long switches, laps;
	size_t len;
	char *mem;
	int64_t t0, t1;

	if (k < 2) {
		fprintf(stderr, "asm_ring: K must be >= 2\n");
		return 2;
	}
	switches = bench_arg_count(argc, argv, 2, k <= 1000 ? 200000000 : 20000000);
	laps = switches / k;
	if (laps < 1)
		laps = 1;
	ring_k = k;
	sps = calloc((size_t)k, sizeof(*sps));
	len = (size_t)(k - 1) * STRIDE;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!sps || mem == MAP_FAILED) {
		perror("asm_ring: mmap");
		return 1;
	}
	madvise(mem, len, MADV_NOHUGEPAGE);
	for (long i = 1; i < k; i++) {
		/* Stack top of fiber i, 16-byte aligned; the frame below it is
		 * what asm_switch pops: r15 r14 r13 r12 rbx rbp, resume address.
		 * After those 7 pops rsp is 16-aligned, so the call in
		 * asm_fiber_start enters fiber_fn with the ABI's alignment. */
		uintptr_t hi = (uintptr_t)(mem + (size_t)(i - 1) * STRIDE + STACK_SIZE);
		void **sp = (void **)(hi - 72);

		sp[0] = NULL;				/* r15 */
		sp[1] = NULL;				/* r14 */
		sp[2] = (void *)fiber_fn;		/* r13: function */
		sp[3] = (void *)(uintptr_t)i;		/* r12: argument */
		sp[4] = NULL;				/* rbx */
		sp[5] = NULL;				/* rbp: ends frame walks */
		sp[6] = (void *)asm_fiber_start;	/* resume address */
		sps[i] = sp;
	}
	asm_switch(&sps[0], sps[1]); /* untimed lap: faults every stack in */
	t0 = bench_now_ns();
	for (long l = 0; l < laps; l++)
		asm_switch(&sps[0], sps[1]);
	t1 = bench_now_ns();
	fprintf(stderr, "asm_ring: K=%ld, %ld laps, %ld switches, RSS %ld KiB\n",
		k, laps, laps * k, bench_rss_kib());
	bench_result(k == 2 ? "switch_ns" : "ring_switch_ns",
		     (double)(t1 - t0) / ((double)laps * k), "ns");
	return 0;
}

#else

int main(void)
{
	/* No RESULT line: bench/run shows the row as n/a. */
	fprintf(stderr, "asm_ring: only written for x86_64\n");
	return 0;
}

#endif
