/*
 * arch.h - the machine context of a fiber, and the one #if ladder over CPUs.
 *
 * A suspended fiber is nothing but a stack pointer: zio__ctx_switch() pushes
 * the callee-saved state of the ABI onto the running stack, stores the stack
 * pointer in *from, loads to->sp and pops the other fiber's state. Everything
 * the ABI calls caller-saved is already spilled by the compiler around the
 * call, so the switch moves the minimum.
 *
 * Floating-point control state (x86 MXCSR and x87 control word, aarch64 FPCR,
 * riscv fcsr, loongarch fcsr0) is callee-saved too, but reloading it is the
 * expensive part of a switch (it serialises the pipeline). Each port saves it
 * on every switch (a cheap store) and reloads it only when the incoming fiber's
 * saved value differs from the outgoing one's, which in practice is never.
 * The effect is per-fiber control state at the price of a compare.
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
	void **sp = (void **)c->sp; /* mxcsr/cw, r15, r14, r13, r12, rbx, rbp, ret */
	*fp = sp[6];
	*pc = sp[7];
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
