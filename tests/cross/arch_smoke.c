/*
 * arch_smoke.c - the checks of tests/test_arch.c as a plain program, for
 * targets that run under qemu-user without Criterion (tools/cross-test).
 *
 * Runs every case in tests/cross/arch_cases.h in one process, prints one
 * "ok"/"FAIL" line per case, then "N passed, M failed", and exits non-zero
 * if anything failed. Built with -DARCH_CASES_NOLIBC it needs no libc at all
 * (tests/cross/nolibc.h), which is how it runs on loongarch64 here.
 */
#ifdef ARCH_CASES_NOLIBC
#include "nolibc.h"
#else
#include <unistd.h>
#endif

#include <stddef.h>

static int case_failures;

static void say(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	long r = (long)write(1, s, n);
	(void)r; /* a failed write to stdout has no better place to be reported */
}

static void say_num(long v)
{
	char buf[24];
	int i = (int)sizeof buf - 1;
	int neg = v < 0;
	unsigned long u = neg ? 0ul - (unsigned long)v : (unsigned long)v;

	buf[i] = 0;
	do {
		buf[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (neg)
		buf[--i] = '-';
	say(&buf[i]);
}

static void check_failed(const char *msg, int line)
{
	case_failures++;
	say("    check failed: ");
	say(msg);
	say(" (arch_cases.h:");
	say_num(line);
	say(")\n");
}

#define ACHECK(cond, msg)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			check_failed(msg, __LINE__);                                               \
	} while (0)

#define ARCH_CASES_TABLE 1
#include "arch_cases.h"

int main(void)
{
	int passed = 0, failed = 0;

	say("arch_smoke: context switch \"" ZIO_ARCH_NAME "\"\n");
	for (size_t i = 0; i < sizeof arch_cases / sizeof arch_cases[0]; i++) {
		case_failures = 0;
		arch_cases[i].fn();
		say(case_failures ? "FAIL " : "ok   ");
		say(arch_cases[i].name);
		say("\n");
		if (case_failures)
			failed++;
		else
			passed++;
	}
	say("arch: ");
	say_num(passed);
	say(" passed, ");
	say_num(failed);
	say(" failed\n");
	return failed != 0;
}
