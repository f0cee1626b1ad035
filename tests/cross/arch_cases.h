/*
 * arch_cases.h - checks of zio__ctx_switch/zio__ctx_make, shared by
 * tests/test_arch.c (Criterion, native) and tests/cross/arch_smoke.c (a plain
 * program run under qemu-user, and without any libc where the target has no
 * sysroot here, e.g. loongarch64).
 *
 * The includer defines ACHECK(cond, msg), which records a failure. It is
 * only ever used on the thread's own stack, never inside a fiber, so a
 * failing check may longjmp or exit: fibers note what they saw in globals and
 * the main side checks after switching back. Defining ARCH_CASES_NOLIBC
 * makes the includer responsible for mmap, munmap, mprotect and the PROT_ and
 * MAP_ constants (tests/cross/nolibc.h), and drops the unwinder check.
 *
 * Everything only needs arch/arch.h: these are tests of the switch itself,
 * independent of the runtime built on it.
 */
#ifndef ZIO_ARCH_CASES_H
#define ZIO_ARCH_CASES_H

#include <stddef.h>
#include <stdint.h>

#include "arch/arch.h"

#ifndef ARCH_CASES_NOLIBC
#include <sys/mman.h>
#include <unwind.h>
#endif

#define AC_NOINLINE __attribute__((noinline))

/* Hides a value from the optimiser, so that e.g. the low bits of the address
 * of a 16-aligned local are really computed rather than folded to 0. */
#define AC_LAUNDER(x) __asm__ volatile("" : "+r"(x))

/* ------------------------------------------------------------------ stacks */

/* 64 KiB guard: a multiple of every page size Linux uses, so mprotect works
 * whatever the target's page size. An overflow faults instead of scribbling. */
#define AC_GUARD ((size_t)64 << 10)

struct ac_stack {
	void *base;
	size_t len;
	void *lo, *hi;
};

static int ac_stack_new(struct ac_stack *s, size_t usable)
{
	s->len = usable + AC_GUARD;
	s->base = mmap(NULL, s->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->base == MAP_FAILED)
		return -1;
	if (mprotect(s->base, AC_GUARD, PROT_NONE) != 0)
		return -1;
	s->lo = (char *)s->base + AC_GUARD;
	s->hi = (char *)s->base + s->len;
	return 0;
}

static void ac_stack_free(struct ac_stack *s)
{
	munmap(s->base, s->len);
}

/* The thread's own context: never made, only switched from and back to. */
static struct zio__ctx ac_main;

#if !defined(ZIO_ARCH_UCONTEXT)
static void ac_never_entered(void *arg)
{
	(void)arg;
}
#endif

/*
 * Whether the switch linked in is arch/ucontext.c. Usually the compile-time
 * ZIO_ARCH_UCONTEXT says so, but a test compiled without it may still be
 * linked against a libzio built with ZIO_UCONTEXT=ON. The assembly ports'
 * zio__ctx_make leaves sp pointing at a 16-aligned initial frame; the
 * ucontext port tags it with the low bit.
 */
static __attribute__((unused)) int ac_is_ucontext(void)
{
#if defined(ZIO_ARCH_UCONTEXT)
	return 1;
#else
	static _Alignas(16) char stack[2048];
	struct zio__ctx c;

	zio__ctx_make(&c, stack, stack + sizeof stack, ac_never_entered, NULL);
	return ((uintptr_t)c.sp & 15) != 0;
#endif
}

/* --------------------------------------------------------------- ping-pong */

#define PP_ROUNDS 1000

static struct zio__ctx pp_a, pp_b, pp_solo;
static long pp_count_a, pp_count_b, pp_errs, pp_solo_count, pp_final_returns;

/* A and B hand control back and forth directly, without the main context in
 * between; each checks that the other ran exactly once in between. */
static void pp_a_main(void *arg)
{
	(void)arg;
	for (long i = 0; i < PP_ROUNDS; i++) {
		pp_count_a++;
		if (pp_count_b != i)
			pp_errs++;
		zio__ctx_switch(&pp_a, &pp_b);
	}
	for (;;) {
		pp_final_returns++;
		zio__ctx_switch(&pp_a, &ac_main);
	}
}

static void pp_b_main(void *arg)
{
	(void)arg;
	for (;;) {
		pp_count_b++;
		if (pp_count_a != pp_count_b)
			pp_errs++;
		zio__ctx_switch(&pp_b, &pp_a);
	}
}

/* The simplest case: main <-> fiber, the fiber counting its resumptions. */
static void pp_solo_main(void *arg)
{
	long *seen = arg;
	for (;;) {
		*seen = ++pp_solo_count;
		zio__ctx_switch(&pp_solo, &ac_main);
	}
}

static void case_ping_pong(void)
{
	struct ac_stack sa, sb, ss;
	long seen = 0;

	ACHECK(ac_stack_new(&sa, 256 << 10) == 0, "mmap stack");
	ACHECK(ac_stack_new(&sb, 256 << 10) == 0, "mmap stack");
	ACHECK(ac_stack_new(&ss, 256 << 10) == 0, "mmap stack");

	zio__ctx_make(&pp_solo, ss.lo, ss.hi, pp_solo_main, &seen);
	for (long i = 1; i <= 100; i++) {
		zio__ctx_switch(&ac_main, &pp_solo);
		if (seen != i)
			break;
	}
	ACHECK(seen == 100, "main <-> fiber: fiber ran once per switch");

	zio__ctx_make(&pp_a, sa.lo, sa.hi, pp_a_main, NULL);
	zio__ctx_make(&pp_b, sb.lo, sb.hi, pp_b_main, NULL);
	zio__ctx_switch(&ac_main, &pp_a);
	ACHECK(pp_count_a == PP_ROUNDS, "fiber A ran every round");
	ACHECK(pp_count_b == PP_ROUNDS, "fiber B ran every round");
	ACHECK(pp_errs == 0, "A and B strictly alternated");
	ACHECK(pp_final_returns == 1, "A came back to main once");
	/* A context that switched to main can be resumed again and again. */
	zio__ctx_switch(&ac_main, &pp_a);
	zio__ctx_switch(&ac_main, &pp_a);
	ACHECK(pp_final_returns == 3, "A resumed from main twice more");

	ac_stack_free(&sa);
	ac_stack_free(&sb);
	ac_stack_free(&ss);
}

/* ----------------------------------------------------- callee-saved state */

/*
 * Writes garbage into every callee-saved register the compiler lets asm name
 * (not the frame pointer, which -fno-omit-frame-pointer reserves). The
 * clobber list makes the *enclosing* fiber function save and restore them in
 * its own prologue/epilogue, but between this asm and the next switch the
 * registers really hold garbage, which the switch must not hand to the
 * context it resumes.
 */
static inline __attribute__((always_inline)) void ac_scribble(void)
{
#if defined(__x86_64__)
	__asm__ volatile("movq $0x5a5a5a5a11111111, %%rbx\n\t"
			 "movq $0x5a5a5a5a12121212, %%r12\n\t"
			 "movq $0x5a5a5a5a13131313, %%r13\n\t"
			 "movq $0x5a5a5a5a14141414, %%r14\n\t"
			 "movq $0x5a5a5a5a15151515, %%r15\n\t"
			 ::: "rbx", "r12", "r13", "r14", "r15");
#elif defined(__aarch64__)
	__asm__ volatile("mov x19, #0x5a19\n\tmov x20, #0x5a20\n\tmov x21, #0x5a21\n\t"
			 "mov x22, #0x5a22\n\tmov x23, #0x5a23\n\tmov x24, #0x5a24\n\t"
			 "mov x25, #0x5a25\n\tmov x26, #0x5a26\n\tmov x27, #0x5a27\n\t"
			 "mov x28, #0x5a28\n\t"
			 "fmov d8, x19\n\tfmov d9, x20\n\tfmov d10, x21\n\tfmov d11, x22\n\t"
			 "fmov d12, x23\n\tfmov d13, x24\n\tfmov d14, x25\n\tfmov d15, x26\n\t"
			 ::: "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27",
			     "x28", "d8", "d9", "d10", "d11", "d12", "d13", "d14", "d15");
#elif defined(__riscv) && __riscv_xlen == 64
	__asm__ volatile("li s1, 0x5a01\n\tli s2, 0x5a02\n\tli s3, 0x5a03\n\t"
			 "li s4, 0x5a04\n\tli s5, 0x5a05\n\tli s6, 0x5a06\n\t"
			 "li s7, 0x5a07\n\tli s8, 0x5a08\n\tli s9, 0x5a09\n\t"
			 "li s10, 0x5a0a\n\tli s11, 0x5a0b\n\t"
			 ::: "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11");
#if defined(__riscv_flen) && __riscv_flen >= 64
	__asm__ volatile("fmv.d.x fs0, s1\n\tfmv.d.x fs1, s1\n\tfmv.d.x fs2, s1\n\t"
			 "fmv.d.x fs3, s1\n\tfmv.d.x fs4, s1\n\tfmv.d.x fs5, s1\n\t"
			 "fmv.d.x fs6, s1\n\tfmv.d.x fs7, s1\n\tfmv.d.x fs8, s1\n\t"
			 "fmv.d.x fs9, s1\n\tfmv.d.x fs10, s1\n\tfmv.d.x fs11, s1\n\t"
			 ::: "fs0", "fs1", "fs2", "fs3", "fs4", "fs5", "fs6", "fs7",
			     "fs8", "fs9", "fs10", "fs11");
#endif
#elif defined(__loongarch64)
	__asm__ volatile("addi.d $s0, $zero, -1\n\taddi.d $s1, $zero, -2\n\t"
			 "addi.d $s2, $zero, -3\n\taddi.d $s3, $zero, -4\n\t"
			 "addi.d $s4, $zero, -5\n\taddi.d $s5, $zero, -6\n\t"
			 "addi.d $s6, $zero, -7\n\taddi.d $s7, $zero, -8\n\t"
			 "addi.d $s8, $zero, -9\n\t"
			 ::: "$s0", "$s1", "$s2", "$s3", "$s4", "$s5", "$s6", "$s7", "$s8");
#if !defined(__loongarch_frlen) || __loongarch_frlen >= 64
	__asm__ volatile("addi.d $t0, $zero, -1\n\t"
			 "movgr2fr.d $fs0, $t0\n\tmovgr2fr.d $fs1, $t0\n\t"
			 "movgr2fr.d $fs2, $t0\n\tmovgr2fr.d $fs3, $t0\n\t"
			 "movgr2fr.d $fs4, $t0\n\tmovgr2fr.d $fs5, $t0\n\t"
			 "movgr2fr.d $fs6, $t0\n\tmovgr2fr.d $fs7, $t0\n\t"
			 ::: "$t0", "$fs0", "$fs1", "$fs2", "$fs3", "$fs4", "$fs5", "$fs6", "$fs7");
#endif
#endif
}

#define CS_ROUNDS 1000

static struct zio__ctx cs_scribbler, cs_holder;
static long cs_holder_errs, cs_holder_rounds;
static volatile long cs_seed = 7;
static volatile double cs_dseed = 1.5;

/* Scribbles every callee-saved register, then passes control to the holder
 * (not back to main), so that what main finds in its registers afterwards
 * went through two switches with garbage in between. */
static void cs_scribbler_main(void *arg)
{
	(void)arg;
	for (;;) {
		ac_scribble();
		zio__ctx_switch(&cs_scribbler, &cs_holder);
	}
}

/* Keeps its own long-lived values across switches (in callee-saved registers:
 * it does not scribble itself), threatened by main's values and by the
 * scribbler it passes through. */
static void cs_holder_main(void *arg)
{
	(void)arg;
	long h0 = cs_seed * 101, h1 = cs_seed * 103, h2 = cs_seed * 107, h3 = cs_seed * 109,
	     h4 = cs_seed * 113, h5 = cs_seed * 127, h6 = cs_seed * 131, h7 = cs_seed * 137;
	double g0 = cs_dseed * 3.25, g1 = cs_dseed * 5.5, g2 = cs_dseed * 7.75,
	       g3 = cs_dseed * 9.125, g4 = cs_dseed * 11.0625, g5 = cs_dseed * 13.5;
	for (;;) {
		zio__ctx_switch(&cs_holder, &ac_main);
		zio__ctx_switch(&cs_holder, &cs_scribbler);
		cs_holder_rounds++;
		if (h0 != cs_seed * 101 || h1 != cs_seed * 103 || h2 != cs_seed * 107 ||
		    h3 != cs_seed * 109 || h4 != cs_seed * 113 || h5 != cs_seed * 127 ||
		    h6 != cs_seed * 131 || h7 != cs_seed * 137)
			cs_holder_errs++;
		if (g0 != cs_dseed * 3.25 || g1 != cs_dseed * 5.5 || g2 != cs_dseed * 7.75 ||
		    g3 != cs_dseed * 9.125 || g4 != cs_dseed * 11.0625 || g5 != cs_dseed * 13.5)
			cs_holder_errs++;
	}
}

/*
 * Main keeps 12 integers and 8 doubles live across every switch: more than
 * fit in the callee-saved registers of any port, so all of x19-x28/d8-d15,
 * s1-s11/fs0-fs11, etc. hold main's values while the fibers scribble.
 */
static AC_NOINLINE void case_callee_saved(void)
{
	struct ac_stack s1, s2;
	long errs = 0, fp_errs = 0;

	ACHECK(ac_stack_new(&s1, 256 << 10) == 0, "mmap stack");
	ACHECK(ac_stack_new(&s2, 256 << 10) == 0, "mmap stack");
	zio__ctx_make(&cs_scribbler, s1.lo, s1.hi, cs_scribbler_main, NULL);
	zio__ctx_make(&cs_holder, s2.lo, s2.hi, cs_holder_main, NULL);
	zio__ctx_switch(&ac_main, &cs_holder); /* let it set up its values */

	void *frame = __builtin_frame_address(0);
	long v0 = cs_seed * 3 + 1, v1 = cs_seed * 5 + 2, v2 = cs_seed * 7 + 3, v3 = cs_seed * 11 + 4,
	     v4 = cs_seed * 13 + 5, v5 = cs_seed * 17 + 6, v6 = cs_seed * 19 + 7,
	     v7 = cs_seed * 23 + 8, v8 = cs_seed * 29 + 9, v9 = cs_seed * 31 + 10,
	     v10 = cs_seed * 37 + 11, v11 = cs_seed * 41 + 12;
	double d0 = cs_dseed * 1.25, d1 = cs_dseed * 2.5, d2 = cs_dseed * 3.75, d3 = cs_dseed * 4.125,
	       d4 = cs_dseed * 5.0625, d5 = cs_dseed * 6.5, d6 = cs_dseed * 7.25, d7 = cs_dseed * 8.875;

	for (int i = 0; i < CS_ROUNDS; i++) {
		zio__ctx_switch(&ac_main, &cs_holder);
		if (v0 != cs_seed * 3 + 1 || v1 != cs_seed * 5 + 2 || v2 != cs_seed * 7 + 3 ||
		    v3 != cs_seed * 11 + 4 || v4 != cs_seed * 13 + 5 || v5 != cs_seed * 17 + 6 ||
		    v6 != cs_seed * 19 + 7 || v7 != cs_seed * 23 + 8 || v8 != cs_seed * 29 + 9 ||
		    v9 != cs_seed * 31 + 10 || v10 != cs_seed * 37 + 11 || v11 != cs_seed * 41 + 12)
			errs++;
		if (d0 != cs_dseed * 1.25 || d1 != cs_dseed * 2.5 || d2 != cs_dseed * 3.75 ||
		    d3 != cs_dseed * 4.125 || d4 != cs_dseed * 5.0625 || d5 != cs_dseed * 6.5 ||
		    d6 != cs_dseed * 7.25 || d7 != cs_dseed * 8.875)
			fp_errs++;
		if (__builtin_frame_address(0) != frame)
			errs++;
	}
	ACHECK(errs == 0, "main's integer callee-saved values and frame pointer survived");
	ACHECK(fp_errs == 0, "main's FP callee-saved values survived");
	ACHECK(cs_holder_rounds == CS_ROUNDS, "holder fiber ran every round");
	ACHECK(cs_holder_errs == 0, "holder fiber's values survived the scribbler");
	ac_stack_free(&s1);
	ac_stack_free(&s2);
}

/* ------------------------------------------------------ FP control state */

/*
 * Rounding mode, read and written straight from the control register the
 * port saves, so the test needs no libm and sees exactly what the switch
 * does. Modes are numbered 0 nearest, 1 toward zero, 2 up, 3 down.
 */
enum { AC_RN, AC_RZ, AC_RU, AC_RD };

#if defined(__x86_64__)
/* MXCSR RC (bits 14:13) and the x87 CW RC (11:10): 0 RN, 1 RD, 2 RU, 3 RZ. */
static const unsigned ac_x86_rc[4] = { 0, 3, 2, 1 };

static int ac_round_get(void)
{
	unsigned m;
	__asm__ volatile("stmxcsr %0" : "=m"(m));
	m = (m >> 13) & 3;
	for (int i = 0; i < 4; i++)
		if (ac_x86_rc[i] == m)
			return i;
	return -1;
}

/* The x87 half, checked separately: the port saves both. */
static int ac_round_get_x87(void)
{
	unsigned short cw;
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	unsigned m = (cw >> 10) & 3;
	for (int i = 0; i < 4; i++)
		if (ac_x86_rc[i] == m)
			return i;
	return -1;
}

static void ac_round_set(int mode)
{
	unsigned m;
	unsigned short cw;
	__asm__ volatile("stmxcsr %0" : "=m"(m));
	m = (m & ~(3u << 13)) | ac_x86_rc[mode] << 13;
	__asm__ volatile("ldmxcsr %0" : : "m"(m));
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	cw = (unsigned short)((cw & ~(3u << 10)) | ac_x86_rc[mode] << 10);
	__asm__ volatile("fldcw %0" : : "m"(cw));
}
#define AC_HAVE_ROUND 1
#elif defined(__aarch64__)
/* FPCR RMode (bits 23:22): 0 RN, 1 RP (up), 2 RM (down), 3 RZ. */
static const unsigned ac_a64_rm[4] = { 0, 3, 1, 2 };

static int ac_round_get(void)
{
	unsigned long v;
	__asm__ volatile("mrs %0, fpcr" : "=r"(v));
	v = (v >> 22) & 3;
	for (int i = 0; i < 4; i++)
		if (ac_a64_rm[i] == v)
			return i;
	return -1;
}

static void ac_round_set(int mode)
{
	unsigned long v;
	__asm__ volatile("mrs %0, fpcr" : "=r"(v));
	v = (v & ~(3ul << 22)) | (unsigned long)ac_a64_rm[mode] << 22;
	__asm__ volatile("msr fpcr, %0" : : "r"(v));
}
#define AC_HAVE_ROUND 1
#elif defined(__riscv) && defined(__riscv_flen) && __riscv_flen >= 64
/* frm: 0 RNE, 1 RTZ, 2 RDN (down), 3 RUP (up). */
static const unsigned ac_rv_frm[4] = { 0, 1, 3, 2 };

static int ac_round_get(void)
{
	unsigned long v;
	__asm__ volatile("frrm %0" : "=r"(v));
	for (int i = 0; i < 4; i++)
		if (ac_rv_frm[i] == v)
			return i;
	return -1;
}

static void ac_round_set(int mode)
{
	unsigned long v = ac_rv_frm[mode];
	__asm__ volatile("fsrm %0" : : "r"(v));
}
#define AC_HAVE_ROUND 1
#elif defined(__loongarch64) && (!defined(__loongarch_frlen) || __loongarch_frlen >= 64)
/* fcsr0 RM (bits 9:8): 0 RNE, 1 RZ, 2 RP (up), 3 RM (down). */
static int ac_round_get(void)
{
	unsigned long v;
	__asm__ volatile("movfcsr2gr %0, $fcsr0" : "=r"(v));
	return (int)((v >> 8) & 3);
}

static void ac_round_set(int mode)
{
	unsigned long v;
	__asm__ volatile("movfcsr2gr %0, $fcsr0" : "=r"(v));
	v = (v & ~(3ul << 8)) | (unsigned long)mode << 8;
	__asm__ volatile("movgr2fcsr $fcsr0, %0" : : "r"(v));
}
#define AC_HAVE_ROUND 1
#else
#define AC_HAVE_ROUND 0
#endif

#if AC_HAVE_ROUND
static struct zio__ctx fp_a;
#endif
#if AC_HAVE_ROUND && ZIO_ARCH_SWITCH_KEEPS_FPENV
static int fp_a_start_mode = -1, fp_a_resume_mode = -1, fp_a_same = 0;
static double fp_a_up;
static volatile double fp_one = 1.0, fp_three = 3.0;

static void fp_a_main(void *arg)
{
	(void)arg;
	fp_a_start_mode = ac_round_get();
	ac_round_set(AC_RU);
	fp_a_up = fp_one / fp_three;
	zio__ctx_switch(&fp_a, &ac_main);
	fp_a_resume_mode = ac_round_get();
#if defined(__x86_64__)
	if (ac_round_get_x87() != fp_a_resume_mode)
		fp_a_resume_mode = -2;
#endif
	fp_a_same = (fp_one / fp_three == fp_a_up);
	ac_round_set(AC_RN);
	for (;;)
		zio__ctx_switch(&fp_a, &ac_main);
}

static struct zio__ctx fp_fresh;
static int fp_fresh_mode = -1;

static void fp_fresh_main(void *arg)
{
	(void)arg;
	fp_fresh_mode = ac_round_get();
	for (;;)
		zio__ctx_switch(&fp_fresh, &ac_main);
}
#endif

#if AC_HAVE_ROUND && !ZIO_ARCH_SWITCH_KEEPS_FPENV
static int fp_shared_seen = -1;

static void fp_shared_main(void *arg)
{
	(void)arg;
	fp_shared_seen = ac_round_get();
	ac_round_set(AC_RU);
	for (;;)
		zio__ctx_switch(&fp_a, &ac_main);
}
#endif

static void case_fp_control(void)
{
#if AC_HAVE_ROUND && !ZIO_ARCH_SWITCH_KEEPS_FPENV
	/* This port's switch leaves the FP environment to the scheduler
	 * (arch.h): the switch must not touch it, and zio__fpenv_save/load
	 * must move all of it. */
	struct ac_stack ss;
	struct zio__fpenv env;

	ACHECK(ac_stack_new(&ss, 256 << 10) == 0, "mmap stack");
	ac_round_set(AC_RD);
	zio__ctx_make(&fp_a, ss.lo, ss.hi, fp_shared_main, NULL);
	zio__ctx_switch(&ac_main, &fp_a);
	ACHECK(fp_shared_seen == AC_RD, "the switch changed the FP environment on the way in");
	ACHECK(ac_round_get() == AC_RU, "the switch changed the FP environment on the way out");
	zio__fpenv_save(&env);
	ac_round_set(AC_RN);
	zio__fpenv_load(&env);
	ACHECK(ac_round_get() == AC_RU, "zio__fpenv_load did not restore SSE rounding");
#if defined(__x86_64__)
	ACHECK(ac_round_get_x87() == AC_RU, "zio__fpenv_load did not restore x87 rounding");
#endif
	ac_round_set(AC_RN);
	ac_stack_free(&ss);
#elif AC_HAVE_ROUND
	struct ac_stack sa;

	ACHECK(ac_stack_new(&sa, 256 << 10) == 0, "mmap stack");
	ac_round_set(AC_RN);
	zio__ctx_make(&fp_a, sa.lo, sa.hi, fp_a_main, NULL);
	zio__ctx_switch(&ac_main, &fp_a);
	ACHECK(fp_a_start_mode == AC_RN, "fiber started rounding to nearest");
	ACHECK(ac_round_get() == AC_RN, "fiber A's upward rounding did not leak into main");
	ac_round_set(AC_RD);
	double down = fp_one / fp_three;
	zio__ctx_switch(&ac_main, &fp_a);
	ACHECK(fp_a_resume_mode == AC_RU, "fiber A got its upward rounding back on resume");
	ACHECK(fp_a_same, "fiber A's division rounded up again after resume");
	ACHECK(ac_round_get() == AC_RD, "main got its downward rounding back");
#if defined(__x86_64__)
	ACHECK(ac_round_get_x87() == AC_RD, "main got its x87 rounding back");
#endif
	ACHECK(fp_one / fp_three == down, "main's division rounded down again");
	ACHECK(fp_a_up > down, "upward and downward results differ as they should");

	/* The assembly ports start every fiber with the default control state
	 * whatever its creator runs with; ucontext inherits the state of the
	 * context that first switches into it. */
	struct ac_stack sf;

	ACHECK(ac_stack_new(&sf, 256 << 10) == 0, "mmap stack");
	zio__ctx_make(&fp_fresh, sf.lo, sf.hi, fp_fresh_main, NULL);
	zio__ctx_switch(&ac_main, &fp_fresh);
	ACHECK(fp_fresh_mode == (ac_is_ucontext() ? AC_RD : AC_RN),
	       "a new fiber starts with default rounding (ucontext: the switcher's)");
	ACHECK(ac_round_get() == AC_RD, "main keeps its rounding after a fresh fiber ran");
	ac_stack_free(&sf);
	ac_round_set(AC_RN);
	ac_stack_free(&sa);
#endif
}

/* ---------------------------------------------------------- stack alignment */

typedef int ac_v4si __attribute__((vector_size(16)));

static struct zio__ctx al_ctx;
static uintptr_t al_local_mis, al_frame_mis, al_entry_mis;
static long al_vec_sum;

/* A 16-aligned local is placed relative to sp on the assumption that sp was
 * aligned at the call, so its address exposes a misaligned stack; on x86_64
 * the vector store may also fault outright (movaps). */
static AC_NOINLINE void al_probe(void)
{
	_Alignas(16) volatile char buf[16];
	volatile ac_v4si v = { 1, 2, 3, 4 };
	uintptr_t a = (uintptr_t)buf;

	AC_LAUNDER(a);
	buf[0] = 1;
	v = v + v;
	al_vec_sum = v[0] + v[1] + v[2] + v[3];
	al_local_mis |= a & 15;
#if defined(__x86_64__) || defined(__aarch64__) || defined(__riscv) || defined(__loongarch64)
	/* On these ABIs the frame address (rbp after the push, x29, s0, fp) is a
	 * 16-aligned sp value whenever the caller's sp was. */
	uintptr_t f = (uintptr_t)__builtin_frame_address(0);
	AC_LAUNDER(f);
	al_frame_mis |= f & 15;
#endif
}

static void al_main(void *arg)
{
	_Alignas(16) volatile char here[16];
	uintptr_t a = (uintptr_t)here;

	(void)arg;
	AC_LAUNDER(a);
	here[0] = 0;
	al_entry_mis |= a & 15;
	al_probe();
	for (;;)
		zio__ctx_switch(&al_ctx, &ac_main);
}

/* Every misalignment of hi (and an odd lo) must still give entry an ABI
 * aligned stack. */
static void case_alignment(void)
{
	struct ac_stack s;

	ACHECK(ac_stack_new(&s, 256 << 10) == 0, "mmap stack");
	for (int off = 0; off < 16; off++) {
		al_vec_sum = 0;
		zio__ctx_make(&al_ctx, (char *)s.lo + 3, (char *)s.hi - off, al_main, NULL);
		zio__ctx_switch(&ac_main, &al_ctx);
		if (al_vec_sum != 20)
			al_local_mis |= 0x100;
	}
	ACHECK(al_entry_mis == 0, "16-aligned local in entry is aligned");
	ACHECK(al_local_mis == 0, "16-aligned local one call deeper is aligned");
	ACHECK(al_frame_mis == 0, "frame address is 16-aligned");
	ac_stack_free(&s);
}

/* ------------------------------------------------------- deep recursion */

#define DR_DEPTH 2000

static struct zio__ctx dr_ctx;
static uintptr_t dr_lowest;
static unsigned long dr_result;

/* ~300 bytes a frame; switches away from the deepest one and is resumed
 * there, so 2000 suspended frames must survive a round trip. */
static AC_NOINLINE unsigned long dr_recurse(unsigned depth)
{
	volatile unsigned char pad[256];

	pad[0] = (unsigned char)depth;
	pad[255] = (unsigned char)(depth >> 8);
	if (depth == 0) {
		dr_lowest = (uintptr_t)pad;
		zio__ctx_switch(&dr_ctx, &ac_main);
		return 1;
	}
	unsigned long r = dr_recurse(depth - 1);
	return r + pad[0] + ((unsigned long)pad[255] << 8);
}

static void dr_main(void *arg)
{
	(void)arg;
	dr_result = dr_recurse(DR_DEPTH);
	for (;;)
		zio__ctx_switch(&dr_ctx, &ac_main);
}

static void case_deep_recursion(void)
{
	struct ac_stack s;
	unsigned long want = 1;

	for (unsigned d = 1; d <= DR_DEPTH; d++)
		want += d;
	ACHECK(ac_stack_new(&s, 1 << 20) == 0, "mmap 1 MiB stack");
	zio__ctx_make(&dr_ctx, s.lo, s.hi, dr_main, NULL);
	zio__ctx_switch(&ac_main, &dr_ctx);
	ACHECK(dr_lowest > (uintptr_t)s.lo && dr_lowest < (uintptr_t)s.hi,
	       "recursion ran on the fiber's stack");
	ACHECK((uintptr_t)s.hi - dr_lowest > (size_t)DR_DEPTH * 256,
	       "recursion went DR_DEPTH frames deep");
	zio__ctx_switch(&ac_main, &dr_ctx);
	ACHECK(dr_result == want, "every frame came back intact");
	ac_stack_free(&s);
}

/* --------------------------------------------------------- many switches */

#define MS_SWITCHES 1000000L
#define RING_FIBERS 16
#define RING_ROUNDS 1000

static struct zio__ctx ms_ctx;
static long ms_count;

static void ms_main(void *arg)
{
	(void)arg;
	for (;;) {
		ms_count++;
		zio__ctx_switch(&ms_ctx, &ac_main);
	}
}

static struct zio__ctx ring_ctx[RING_FIBERS];
static long ring_count[RING_FIBERS];
static long ring_errs;

/* Fiber i passes control to fiber i+1; the last one goes back to main. */
static void ring_main(void *arg)
{
	long i = (long)(intptr_t)arg;
	for (;;) {
		ring_count[i]++;
		if (i > 0 && ring_count[i - 1] != ring_count[i])
			ring_errs++;
		zio__ctx_switch(&ring_ctx[i], i + 1 < RING_FIBERS ? &ring_ctx[i + 1] : &ac_main);
	}
}

/* 1M switches (500k round trips) through one fiber, then 16 fibers in a
 * ring, each resumed 1000 times from a different context than main. */
static void case_many_switches(void)
{
	struct ac_stack s, rs[RING_FIBERS];

	ACHECK(ac_stack_new(&s, 64 << 10) == 0, "mmap stack");
	zio__ctx_make(&ms_ctx, s.lo, s.hi, ms_main, NULL);
	for (long i = 0; i < MS_SWITCHES / 2; i++)
		zio__ctx_switch(&ac_main, &ms_ctx);
	ACHECK(ms_count == MS_SWITCHES / 2, "fiber resumed 500k times");
	ac_stack_free(&s);

	for (long i = 0; i < RING_FIBERS; i++) {
		ACHECK(ac_stack_new(&rs[i], 64 << 10) == 0, "mmap stack");
		zio__ctx_make(&ring_ctx[i], rs[i].lo, rs[i].hi, ring_main, (void *)(intptr_t)i);
	}
	for (int r = 0; r < RING_ROUNDS; r++)
		zio__ctx_switch(&ac_main, &ring_ctx[0]);
	long total = 0;
	for (int i = 0; i < RING_FIBERS; i++)
		total += ring_count[i];
	ACHECK(total == (long)RING_FIBERS * RING_ROUNDS, "every ring fiber ran every round");
	ACHECK(ring_errs == 0, "ring order was kept");
	for (int i = 0; i < RING_FIBERS; i++)
		ac_stack_free(&rs[i]);
}

/* ------------------------------------------------- suspended-frame peek */

static struct zio__ctx cf_ctx;
static void *cf_fp;

/* Records its own frame address, then suspends: that frame pointer and a
 * return address inside this function are what zio__ctx_frame must report. */
static AC_NOINLINE void cf_suspend(void)
{
	cf_fp = __builtin_frame_address(0);
	zio__ctx_switch(&cf_ctx, &ac_main);
	__asm__ volatile(""); /* keep the call from becoming a tail call */
}

static void cf_main(void *arg)
{
	(void)arg;
	for (;;)
		cf_suspend();
}

/* zio__ctx_frame (arch.h) reads a suspended context's saved frame pointer
 * and resume address, for backtraces of parked fibers. Ports where it is not
 * implemented report NULL for both, which passes. */
static void case_ctx_frame(void)
{
	struct ac_stack s;
	void *pc, *fp;

	ACHECK(ac_stack_new(&s, 64 << 10) == 0, "mmap stack");
	zio__ctx_make(&cf_ctx, s.lo, s.hi, cf_main, NULL);
	zio__ctx_frame(&cf_ctx, &pc, &fp);
	int implemented = pc != NULL;
	if (implemented)
		ACHECK(fp == NULL, "a fresh context has no frame pointer yet");
	else
		ACHECK(fp == NULL, "not implemented: both NULL");
	zio__ctx_switch(&ac_main, &cf_ctx);
	zio__ctx_frame(&cf_ctx, &pc, &fp);
	if (implemented) {
		uintptr_t f = (uintptr_t)cf_suspend, p = (uintptr_t)pc;
		ACHECK(fp == cf_fp, "saved frame pointer is the suspended function's");
		ACHECK(p > f && p < f + 256, "saved pc is inside the suspended function");
	}
	ac_stack_free(&s);
}

/* ------------------------------------------------------------- unwinding */

#ifndef ARCH_CASES_NOLIBC
static struct zio__ctx bt_ctx;
static int bt_frames;
static _Unwind_Reason_Code bt_reason = _URC_NO_REASON;

static _Unwind_Reason_Code bt_step(struct _Unwind_Context *uc, void *arg)
{
	(void)uc;
	(void)arg;
	return ++bt_frames >= 64 ? _URC_NORMAL_STOP : _URC_NO_REASON;
}

static AC_NOINLINE void bt_leaf(void)
{
	bt_reason = _Unwind_Backtrace(bt_step, NULL);
}

/*
 * The DWARF unwinder walks from here up and must end at the entry trampoline,
 * whose return address is marked undefined: _URC_END_OF_STACK after a few
 * frames. Without that mark it would take the trampoline's own return
 * address register and loop (aarch64, riscv64), run off the top of the fiber
 * stack, or crash. glibc's backtrace() hides the loop, so it is not used.
 */
static void bt_main(void *arg)
{
	(void)arg;
	bt_leaf();
	for (;;)
		zio__ctx_switch(&bt_ctx, &ac_main);
}

static void case_unwind_stops(void)
{
	struct ac_stack s;

	ACHECK(ac_stack_new(&s, 256 << 10) == 0, "mmap stack");
	zio__ctx_make(&bt_ctx, s.lo, s.hi, bt_main, NULL);
	zio__ctx_switch(&ac_main, &bt_ctx);
	ACHECK(bt_frames >= 2, "the unwinder saw the fiber's frames");
	ACHECK(bt_reason == _URC_END_OF_STACK, "the unwinder ended at the entry trampoline");
	ACHECK(bt_frames < 16, "the unwinder stopped after a few frames");
	ac_stack_free(&s);
}
#endif

/* ------------------------------------------------------------------ table */

#ifdef ARCH_CASES_TABLE
static const struct {
	const char *name;
	void (*fn)(void);
} arch_cases[] = {
	{ "ping_pong", case_ping_pong },
	{ "callee_saved", case_callee_saved },
	{ "fp_control", case_fp_control },
	{ "alignment", case_alignment },
	{ "deep_recursion", case_deep_recursion },
	{ "many_switches", case_many_switches },
	{ "ctx_frame", case_ctx_frame },
#ifndef ARCH_CASES_NOLIBC
	{ "unwind_stops", case_unwind_stops },
#endif
};
#endif

#endif
