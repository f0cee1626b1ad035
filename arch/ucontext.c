/*
 * ucontext.c - the portable context switch: getcontext/makecontext/
 * swapcontext, for CPUs without an assembly port (arch.h selects it by
 * itself) or when forced with -DZIO_ARCH_UCONTEXT (CMake: ZIO_UCONTEXT=ON).
 * It is several times slower than the assembly ports: swapcontext saves the
 * whole register file and makes a sigprocmask system call per switch.
 *
 * Semantics, and where the ucontext_t lives:
 *
 * - A suspended context's ucontext_t is a local variable of the
 *   zio__ctx_switch() call that suspended it, i.e. it lives on that
 *   context's own stack, and ctx->sp points at it. This mirrors the assembly
 *   ports (the saved state is pushed on the running stack) and is why a
 *   context that was never made - the scheduler's, or a thread's main
 *   stack - needs no storage of its own: the first zio__ctx_switch() *from*
 *   it creates the save area in its own frame. Nothing is allocated, there is
 *   no thread-local state, and a context may be resumed on another thread.
 *   The price is sizeof(ucontext_t) bytes of stack per suspended context
 *   (about 1 KiB on x86_64 and riscv64, 4.5 KiB on aarch64), which fiber
 *   stacks must allow for.
 *
 * - zio__ctx_make() only writes a small start record (entry, arg, the stack
 *   bounds) just below hi and points ctx->sp at it with the low bit set,
 *   which no ucontext_t pointer has. The first switch into such a context
 *   runs getcontext/makecontext on the switching stack and enters it. So the
 *   top of a fiber stack holds a few dozen bytes, well inside
 *   ZIO_ARCH_CTX_RESERVE, even where ucontext_t is 4.5 KiB, and a fiber
 *   starts with the signal mask and floating-point environment of the thread
 *   that first switches into it (the assembly ports start it with the default
 *   FP environment instead).
 *
 * - makecontext passes only int arguments, so the start record's address is
 *   split into two 32-bit halves and joined again in the trampoline; the
 *   double shift keeps that well-defined where uintptr_t is 32 bits wide.
 *
 * - swapcontext restores each context's signal mask and (on the common libcs)
 *   its FP control state, so both are per fiber.
 *
 * - entry must not return; if it does, the process aborts rather than
 *   following uc_link into nowhere.
 */
#include <stdint.h>
#include <stdlib.h>
#include <ucontext.h>

#include "arch.h"

#define ZIO_UC_EXPORT __attribute__((visibility("hidden")))

/* The low bit of ctx->sp marks a made context that has not run yet. */
#define START_TAG ((uintptr_t)1)

struct start {
	void (*entry)(void *);
	void *arg;
	void *lo;
	size_t size;
};

#define START_SPACE ((sizeof(struct start) + 15) & ~(size_t)15)
_Static_assert(START_SPACE + 16 <= ZIO_ARCH_CTX_RESERVE,
	       "the start record must fit in ZIO_ARCH_CTX_RESERVE");

static void trampoline(int hi, int lo)
{
	uintptr_t p = ((uintptr_t)(unsigned)hi << 16 << 16) | (uintptr_t)(unsigned)lo;
	struct start *s = (struct start *)p;

	s->entry(s->arg);
	abort();
}

ZIO_UC_EXPORT void zio__ctx_make(struct zio__ctx *ctx, void *stack_lo, void *stack_hi,
				 void (*entry)(void *), void *arg)
{
	uintptr_t top = (uintptr_t)stack_hi & ~(uintptr_t)15;
	struct start *s = (struct start *)(top - START_SPACE);

	s->entry = entry;
	s->arg = arg;
	s->lo = stack_lo;
	s->size = (size_t)((char *)s - (char *)stack_lo);
	ctx->sp = (void *)((uintptr_t)s | START_TAG);
}

/*
 * The first switch into a made context. Kept out of line so that only this
 * rare path pays for the second ucontext_t in its frame. The new context's
 * stack is [lo, start record), so makecontext's own writes (the trampoline's
 * initial frame) never touch the record.
 */
static __attribute__((noinline)) void first_switch(ucontext_t *self, struct zio__ctx *to)
{
	struct start *s = (struct start *)((uintptr_t)to->sp & ~START_TAG);
	uintptr_t p = (uintptr_t)s;
	ucontext_t fresh;

	if (getcontext(&fresh) != 0)
		abort();
	fresh.uc_stack.ss_sp = s->lo;
	fresh.uc_stack.ss_size = s->size;
	fresh.uc_stack.ss_flags = 0;
	fresh.uc_link = NULL;
	makecontext(&fresh, (void (*)(void))trampoline, 2,
		    (int)(unsigned)(p >> 16 >> 16), (int)(unsigned)(p & 0xffffffffu));
	if (swapcontext(self, &fresh) != 0)
		abort();
}

ZIO_UC_EXPORT void zio__ctx_switch(struct zio__ctx *from, struct zio__ctx *to)
{
	ucontext_t self;

	from->sp = &self;
	if ((uintptr_t)to->sp & START_TAG)
		first_switch(&self, to);
	else if (swapcontext(&self, (ucontext_t *)to->sp) != 0)
		abort();
}
