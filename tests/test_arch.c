/*
 * test_arch.c - the context switch (arch/arch.h) on its own, below the
 * runtime: ping-pong between contexts, callee-saved integer and FP registers
 * kept across switches while other fibers scribble over them, per-fiber FP
 * rounding mode, ABI stack alignment at entry, deep recursion on a 1 MiB
 * mmap'd stack, a million switches, zio__ctx_frame on a parked context, and
 * unwinders stopping at the entry trampoline.
 *
 * The cases live in tests/cross/arch_cases.h, shared with the plain program
 * tests/cross/arch_smoke.c that tools/cross-test runs under qemu-user for the
 * other CPUs. Checks only happen on the thread's own stack (fibers record what
 * they see), so a failing cr_assert never unwinds from inside a fiber.
 */
/* ZIO_TEST_LABELS: arch sched */
#include <criterion/criterion.h>

#define ACHECK(cond, msg) cr_assert((cond), "%s", (msg))
#include "tests/cross/arch_cases.h"

Test(arch, ping_pong)
{
	case_ping_pong();
}

Test(arch, callee_saved)
{
	case_callee_saved();
}

Test(arch, fp_control)
{
	case_fp_control();
}

Test(arch, alignment)
{
	case_alignment();
}

Test(arch, deep_recursion)
{
	case_deep_recursion();
}

Test(arch, many_switches)
{
	case_many_switches();
}

Test(arch, ctx_frame)
{
	case_ctx_frame();
}

Test(arch, unwind_stops)
{
	case_unwind_stops();
}
