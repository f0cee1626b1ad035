/*
 * arch.h - the machine context of a fiber, and the one #if ladder over CPUs.
 *
 * A suspended fiber is nothing but a stack pointer: zio__ctx_switch() pushes
 * the callee-saved state of the ABI onto the running stack, stores the stack
 * pointer in *from, loads to->sp and pops the other fiber's state. Everything
 * the ABI calls caller-saved is already spilled by the compiler around the
 * call, so the switch moves the minimum.
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

/* Where a suspended context will resume and its frame pointer, for
 * frame-pointer backtraces of fibers that are not running. */
static inline void zio__ctx_frame(const struct zio__ctx *c, void **pc, void **fp)
{
#if defined(ZIO_ARCH_UCONTEXT)
	(void)c;
	*pc = *fp = NULL;
#elif defined(__x86_64__)
	void **sp = (void **)c->sp; /* r15, r14, r13, r12, rbx, rbp, ret */
	*fp = sp[5];
	*pc = sp[6];
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
void zio__ctx_make(struct zio__ctx *ctx, void *stack_lo, void *stack_hi,
		   void (*entry)(void *), void *arg);

#endif
