/*
 * arch.h - the machine context of a fiber, and the one #if ladder over CPUs.
 *
 * A suspended fiber is nothing but a stack pointer: switching saves what the
 * ABI says must survive a call onto the running stack, stores the stack
 * pointer in *from, loads to->sp and resumes the other context from its
 * stack. zio__ctx_switch() is an ordinary function per CPU (assembly);
 * zio__ctx_switch_inline() is what the scheduler uses, inline where the CPU
 * has an inline version (x86_64) and the function elsewhere.
 *
 * Floating-point control state (rounding mode, flush-to-zero, exception
 * masks) is callee-saved by every ABI here, and it is kept per fiber in two
 * ways, depending on what reading it costs:
 *  - aarch64 (FPCR), riscv64 (fcsr), loongarch64 (fcsr0) and ucontext save
 *    it in the switch and rewrite it only when the incoming fiber's value
 *    differs (ZIO_ARCH_SWITCH_KEEPS_FPENV = 1);
 *  - on x86_64 merely reading MXCSR (stmxcsr) costs more than the rest of
 *    the switch, and reading back the x87 control word stalls store
 *    forwarding, so the switch moves general registers only. Tasks share
 *    their executor's FP environment unless they ask for their own
 *    (zio_spawn_options.fp_env, zio_task_own_fpenv()); the scheduler then
 *    saves and restores it with zio__fpenv_save/load around switches that
 *    involve such a task, and no other switch pays anything.
 *
 * zio__ctx_make() lays out a fresh context so the first switch into it calls
 * entry(arg) on a correctly aligned stack whose frame ends the unwinder's walk.
 * entry must never return; it switches away for the last time instead.
 *
 * Each port is one assembly file selected here. ZIO_ARCH_UCONTEXT (or a CPU
 * without a port) selects arch/ucontext.c, which is portable and slow.
 */
#ifndef ZIO_ARCH_H
#define ZIO_ARCH_H

#include <stddef.h>

struct zio__ctx {
	void *sp; /* saved stack pointer; for ucontext, a ucontext_t pointer */
};

#if defined(ZIO_ARCH_UCONTEXT)
#define ZIO_ARCH_NAME "ucontext"
#elif defined(__x86_64__)
#define ZIO_ARCH_NAME "x86_64"
#elif defined(__aarch64__)
#define ZIO_ARCH_NAME "aarch64"
#elif defined(__riscv) && __riscv_xlen == 64
#define ZIO_ARCH_NAME "riscv64"
#elif defined(__loongarch64)
#define ZIO_ARCH_NAME "loongarch64"
#else
#define ZIO_ARCH_UCONTEXT 1
#define ZIO_ARCH_NAME "ucontext"
#endif

/* Bytes zio__ctx_make() needs at the top of the stack (the initial frame). */
#if defined(ZIO_ARCH_UCONTEXT)
#define ZIO_ARCH_CTX_RESERVE 256 /* a small start record; see arch/ucontext.c */
#else
#define ZIO_ARCH_CTX_RESERVE 256
#endif

#include <stdint.h>

#if defined(__x86_64__) && !defined(ZIO_ARCH_UCONTEXT)
#define ZIO_ARCH_SWITCH_KEEPS_FPENV 0
struct zio__fpenv {
	uint32_t mxcsr;   /* control bits matter; status bits are caller-saved */
	uint16_t x87cw;
};
static inline void zio__fpenv_save(struct zio__fpenv *env)
{
	__asm__ __volatile__("stmxcsr %0\n\tfnstcw %1" : "=m"(env->mxcsr), "=m"(env->x87cw));
}
static inline void zio__fpenv_load(const struct zio__fpenv *env)
{
	__asm__ __volatile__("ldmxcsr %0\n\tfldcw %1" : : "m"(env->mxcsr), "m"(env->x87cw));
}
#else
#define ZIO_ARCH_SWITCH_KEEPS_FPENV 1
struct zio__fpenv {
	char unused; /* the switch itself keeps the FP environment */
};
static inline void zio__fpenv_save(struct zio__fpenv *env)
{
	(void)env;
}
static inline void zio__fpenv_load(const struct zio__fpenv *env)
{
	(void)env;
}
#endif

/* Frame-pointer records: where a frame's {caller's fp, return address}
 * pair sits relative to its frame pointer. x86_64 and aarch64 point fp at
 * the pair; riscv64 and loongarch64 point it just above. */
static inline void **zio__fp_record(void **fp)
{
#if defined(__riscv) || defined(__loongarch64)
	return fp - 2;
#else
	return fp;
#endif
}

/* Spin-wait hint. */
static inline void zio__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

#if defined(__x86_64__) && !defined(ZIO_ARCH_UCONTEXT)
/* The resume address zio__ctx_switch() saves (x86_64.S). */
extern const char zio__ctx_switch_resume[] __attribute__((visibility("hidden")));
#endif

/* Where a suspended context will resume and its frame pointer, for
 * frame-pointer backtraces of fibers that are not running. */
static inline void zio__ctx_frame(const struct zio__ctx *c, void **pc, void **fp)
{
#if defined(ZIO_ARCH_UCONTEXT)
	(void)c;
	*pc = *fp = NULL;
#elif defined(__x86_64__)
	void **sp = (void **)c->sp; /* resume address, rbp, ... (x86_64.S) */
	*fp = sp[1];
	*pc = sp[0] == (void *)zio__ctx_switch_resume ? sp[7] : sp[0];
#elif defined(__aarch64__)
	void **sp = (void **)c->sp; /* x29, x30, x19..x28, d8..d15, fpcr */
	register void *lr __asm__("x30") = sp[1];
	__asm__("hint #7" : "+r"(lr)); /* xpaclri: strip a PAC signature; no-op without PAC */
	*fp = sp[0];
	*pc = lr;
#elif defined(__riscv) || defined(__loongarch64)
	void **sp = (void **)c->sp; /* ra, s0/fp, ... */
	*pc = sp[0];
	*fp = sp[1];
#else
	(void)c;
	*pc = *fp = NULL;
#endif
}

void zio__ctx_switch(struct zio__ctx *from, struct zio__ctx *to);

/*
 * zio__ctx_switch_inline(): the switch the scheduler uses. On x86_64 it is
 * inline assembly that saves a resume address and rbp, switches stacks and
 * jumps; every other register is declared clobbered, so the compiler spills
 * only what is live across the switch, and there is no call/ret pair whose
 * return-stack prediction a switch would break (a ret-based switch
 * mispredicts every return above it in the resumed fiber, which cost 20 ns
 * per yield here). The frame it leaves ([resume address][rbp]) is the one
 * zio__ctx_switch() leaves, so each resumes the other's contexts. The
 * 128-byte red zone below rsp is stepped over before anything is pushed.
 * Other CPUs call their assembly switch.
 */
#if defined(__x86_64__) && !defined(ZIO_ARCH_UCONTEXT)
static inline __attribute__((always_inline)) void
zio__ctx_switch_inline(struct zio__ctx *from, struct zio__ctx *to)
{
	__asm__ __volatile__(
		"leaq -128(%%rsp), %%rsp\n\t"
		"pushq %%rbp\n\t"
		"leaq 1f(%%rip), %%rax\n\t"
		"pushq %%rax\n\t"
		"movq %%rsp, (%0)\n\t"
		"movq (%1), %%rsp\n\t"
		"popq %%rax\n\t"
		"jmp *%%rax\n"
		"1:\n\t"
		"popq %%rbp\n\t"
		"leaq 128(%%rsp), %%rsp\n\t"
		: "+D"(from), "+S"(to)
		:
		: "rax", "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
		  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
		  "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "st", "st(1)", "st(2)",
		  "st(3)", "st(4)", "st(5)", "st(6)", "st(7)", "mm0", "mm1", "mm2", "mm3", "mm4",
		  "mm5", "mm6", "mm7", "cc", "memory");
}
#else
static inline void zio__ctx_switch_inline(struct zio__ctx *from, struct zio__ctx *to)
{
	zio__ctx_switch(from, to);
}
#endif
void zio__ctx_make(struct zio__ctx *ctx, void *stack_lo, void *stack_hi,
		   void (*entry)(void *), void *arg);

#endif
