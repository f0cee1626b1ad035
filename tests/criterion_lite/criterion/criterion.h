/*
 * criterion_lite/criterion/criterion.h - a small stand-in for the subset of
 * the Criterion API that zio's tests use, for ThreadSanitizer builds only.
 *
 * Why this exists: Criterion 2.4.1 cannot start under ThreadSanitizer. Its
 * runner maps a large "inheritable arena" at startup and, under TSan, that
 * fails with "criterion: Could not initialize inheritable arena: Resource
 * temporarily unavailable" before any test runs (upstream issue
 * Snaipe/Criterion#274, still open). The CI's TSan job (tools/test step 3)
 * would otherwise have nothing to run. When ZIO_SANITIZE contains "thread",
 * tests/CMakeLists.txt puts tests/criterion_lite first on the include path
 * and links runner.c (which provides main) instead of libcriterion; every
 * other build uses the real Criterion.
 *
 * What it does, like Criterion: each Test() runs in its own forked process
 * with a timeout; a crash fails the test unless .signal names it; an exit
 * status other than .exit_code fails it. What it does not do: parallel jobs
 * (--jobs is accepted and ignored), TestSuite() options, parameterized tests,
 * theories, the "new" assertion API, redirections, TAP/XML reports. A failed
 * cr_assert ends the test process at once (_exit): .fini does not run after
 * it. Assertion messages show the expression text, not operand values, as
 * Criterion's old-style cr_assert_* macros do.
 *
 * Needs GNU C (gnu11, as the project builds): the optional message of the
 * assertion macros relies on the ", ##__VA_ARGS__" comma elision.
 *
 * The includes mirror what <criterion/criterion.h> pulls in for C, so a test
 * that compiles here also compiles against the real thing.
 */
#ifndef CRITERION_LITE_CRITERION_H
#define CRITERION_LITE_CRITERION_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CRITERION_LITE 1

/* Test options: Test(suite, name, .timeout = 10, .signal = SIGABRT). */
struct cr_lite_options {
	int cr_lite_unused_;       /* lets Test() take no options at all */
	void (*init)(void);        /* run in the test process before the body */
	void (*fini)(void);        /* run after the body returns */
	int signal;                /* the test passes only if killed by it */
	int exit_code;             /* expected exit status (default 0) */
	bool disabled;             /* listed, reported as skipped, never run */
	const char *description;   /* shown with --verbose */
	double timeout;            /* seconds; 0 = the runner's default */
	void *data;                /* unused, as in Criterion */
};

struct cr_lite_test {
	const char *suite;
	const char *name;
	const char *file;
	int line;
	void (*fn)(void);
	struct cr_lite_options opts;
	struct cr_lite_test *next;
};

void cr_lite_register_(struct cr_lite_test *t);

#define CR_LITE_ID_(Suite, Name, What) cr_lite_##What##_##Suite##_##Name

#define Test(Suite, Name, ...)                                                          \
	static void CR_LITE_ID_(Suite, Name, fn)(void);                                 \
	static struct cr_lite_test CR_LITE_ID_(Suite, Name, test) = {                   \
		.suite = #Suite,                                                        \
		.name = #Name,                                                          \
		.file = __FILE__,                                                       \
		.line = __LINE__,                                                       \
		.fn = CR_LITE_ID_(Suite, Name, fn),                                     \
		.opts = { .cr_lite_unused_ = 0, __VA_ARGS__ },                          \
	};                                                                              \
	__attribute__((constructor)) static void CR_LITE_ID_(Suite, Name, reg)(void)    \
	{                                                                               \
		cr_lite_register_(&CR_LITE_ID_(Suite, Name, test));                     \
	}                                                                               \
	static void CR_LITE_ID_(Suite, Name, fn)(void)

/* Failure reporting. fmt may be NULL (no user message): expr is shown. */
__attribute__((noreturn, format(printf, 4, 5)))
void cr_lite_assert_failed_(const char *file, int line, const char *expr, const char *fmt, ...);
__attribute__((format(printf, 4, 5)))
void cr_lite_expect_failed_(const char *file, int line, const char *expr, const char *fmt, ...);
__attribute__((noreturn, format(printf, 3, 4)))
void cr_lite_skip_(const char *file, int line, const char *fmt, ...);

#define CR_LITE_CAT_(a, b) CR_LITE_CAT2_(a, b)
#define CR_LITE_CAT2_(a, b) a##b
#define CR_LITE_ARG40_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14,   \
		       _15, _16, _17, _18, _19, _20, _21, _22, _23, _24, _25, _26, _27, \
		       _28, _29, _30, _31, _32, _33, _34, _35, _36, _37, _38, _39, _40, \
		       N, ...) N
/* 0 if the list is just the placeholder, M if a message follows it. */
#define CR_LITE_MSG_(...) CR_LITE_ARG40_(__VA_ARGS__, M, M, M, M, M, M, M, M, M, M, M, M, \
	M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, 0, _)

/* kind: assert (fatal) or expect (the test goes on). */
#define CR_LITE_REPORT_(kind, expr, ...) \
	CR_LITE_CAT_(CR_LITE_REPORT_, CR_LITE_MSG_(_, ##__VA_ARGS__))(kind, expr, ##__VA_ARGS__)
#define CR_LITE_REPORT_0(kind, expr) cr_lite_##kind##_failed_(__FILE__, __LINE__, expr, NULL)
#define CR_LITE_REPORT_M(kind, expr, ...) \
	cr_lite_##kind##_failed_(__FILE__, __LINE__, expr, __VA_ARGS__)

#define CR_LITE_CHECK_(kind, cond, expr, ...)                     \
	do {                                                      \
		if (!(cond))                                      \
			CR_LITE_REPORT_(kind, expr, ##__VA_ARGS__); \
	} while (0)

#define CR_LITE_STR_CHECK_(kind, a, op, b, expr, ...)                                      \
	do {                                                                               \
		const char *cr_lite_s1_ = (a), *cr_lite_s2_ = (b);                         \
		if (!cr_lite_s1_ || !cr_lite_s2_ || !(strcmp(cr_lite_s1_, cr_lite_s2_) op 0)) { \
			cr_lite_show_strings_(cr_lite_s1_, cr_lite_s2_);                   \
			CR_LITE_REPORT_(kind, expr, ##__VA_ARGS__);                        \
		}                                                                          \
	} while (0)
void cr_lite_show_strings_(const char *a, const char *b);

/* Fatal assertions. The message (format and arguments) is optional. */
#define cr_assert(cond, ...) CR_LITE_CHECK_(assert, (cond), #cond, ##__VA_ARGS__)
#define cr_assert_not(cond, ...) CR_LITE_CHECK_(assert, !(cond), "!(" #cond ")", ##__VA_ARGS__)
#define cr_assert_fail(...) CR_LITE_REPORT_(assert, "cr_assert_fail()", ##__VA_ARGS__)
#define cr_assert_eq(a, b, ...) CR_LITE_CHECK_(assert, (a) == (b), #a " == " #b, ##__VA_ARGS__)
#define cr_assert_neq(a, b, ...) CR_LITE_CHECK_(assert, (a) != (b), #a " != " #b, ##__VA_ARGS__)
#define cr_assert_lt(a, b, ...) CR_LITE_CHECK_(assert, (a) < (b), #a " < " #b, ##__VA_ARGS__)
#define cr_assert_leq(a, b, ...) CR_LITE_CHECK_(assert, (a) <= (b), #a " <= " #b, ##__VA_ARGS__)
#define cr_assert_gt(a, b, ...) CR_LITE_CHECK_(assert, (a) > (b), #a " > " #b, ##__VA_ARGS__)
#define cr_assert_geq(a, b, ...) CR_LITE_CHECK_(assert, (a) >= (b), #a " >= " #b, ##__VA_ARGS__)
#define cr_assert_null(p, ...) CR_LITE_CHECK_(assert, (p) == NULL, #p " == NULL", ##__VA_ARGS__)
#define cr_assert_not_null(p, ...) \
	CR_LITE_CHECK_(assert, (p) != NULL, #p " != NULL", ##__VA_ARGS__)
#define cr_assert_zero(x, ...) CR_LITE_CHECK_(assert, (x) == 0, #x " == 0", ##__VA_ARGS__)
#define cr_assert_not_zero(x, ...) CR_LITE_CHECK_(assert, (x) != 0, #x " != 0", ##__VA_ARGS__)
#define cr_assert_arr_eq(a, b, size, ...) \
	CR_LITE_CHECK_(assert, memcmp((a), (b), (size)) == 0, #a " == " #b, ##__VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) \
	CR_LITE_STR_CHECK_(assert, a, ==, b, #a " == " #b, ##__VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) \
	CR_LITE_STR_CHECK_(assert, a, !=, b, #a " != " #b, ##__VA_ARGS__)
#define cr_assert_str_empty(s, ...) \
	CR_LITE_CHECK_(assert, (s)[0] == '\0', #s " is empty", ##__VA_ARGS__)
#define cr_assert_str_not_empty(s, ...) \
	CR_LITE_CHECK_(assert, (s)[0] != '\0', #s " is not empty", ##__VA_ARGS__)

/* Non-fatal expectations: the failure is recorded and the test goes on. */
#define cr_expect(cond, ...) CR_LITE_CHECK_(expect, (cond), #cond, ##__VA_ARGS__)
#define cr_expect_not(cond, ...) CR_LITE_CHECK_(expect, !(cond), "!(" #cond ")", ##__VA_ARGS__)
#define cr_expect_fail(...) CR_LITE_REPORT_(expect, "cr_expect_fail()", ##__VA_ARGS__)
#define cr_expect_eq(a, b, ...) CR_LITE_CHECK_(expect, (a) == (b), #a " == " #b, ##__VA_ARGS__)
#define cr_expect_neq(a, b, ...) CR_LITE_CHECK_(expect, (a) != (b), #a " != " #b, ##__VA_ARGS__)
#define cr_expect_lt(a, b, ...) CR_LITE_CHECK_(expect, (a) < (b), #a " < " #b, ##__VA_ARGS__)
#define cr_expect_leq(a, b, ...) CR_LITE_CHECK_(expect, (a) <= (b), #a " <= " #b, ##__VA_ARGS__)
#define cr_expect_gt(a, b, ...) CR_LITE_CHECK_(expect, (a) > (b), #a " > " #b, ##__VA_ARGS__)
#define cr_expect_geq(a, b, ...) CR_LITE_CHECK_(expect, (a) >= (b), #a " >= " #b, ##__VA_ARGS__)
#define cr_expect_null(p, ...) CR_LITE_CHECK_(expect, (p) == NULL, #p " == NULL", ##__VA_ARGS__)
#define cr_expect_not_null(p, ...) \
	CR_LITE_CHECK_(expect, (p) != NULL, #p " != NULL", ##__VA_ARGS__)
#define cr_expect_zero(x, ...) CR_LITE_CHECK_(expect, (x) == 0, #x " == 0", ##__VA_ARGS__)
#define cr_expect_not_zero(x, ...) CR_LITE_CHECK_(expect, (x) != 0, #x " != 0", ##__VA_ARGS__)
#define cr_expect_str_eq(a, b, ...) \
	CR_LITE_STR_CHECK_(expect, a, ==, b, #a " == " #b, ##__VA_ARGS__)
#define cr_expect_str_neq(a, b, ...) \
	CR_LITE_STR_CHECK_(expect, a, !=, b, #a " != " #b, ##__VA_ARGS__)

/* Ends the test at once and reports it as skipped (not passed). */
#define cr_skip_test(...) \
	CR_LITE_CAT_(CR_LITE_SKIP_, CR_LITE_MSG_(_, ##__VA_ARGS__))(_, ##__VA_ARGS__)
#define CR_LITE_SKIP_0(_) cr_lite_skip_(__FILE__, __LINE__, NULL)
#define CR_LITE_SKIP_M(_, ...) cr_lite_skip_(__FILE__, __LINE__, __VA_ARGS__)

/* Logging, to stderr of the test process. */
enum criterion_severity {
	CR_LOG_INFO,
	CR_LOG_WARNING,
	CR_LOG_ERROR,
};
__attribute__((format(printf, 2, 3)))
void cr_log(enum criterion_severity severity, const char *msg, ...);
#define cr_log_info(...) cr_log(CR_LOG_INFO, __VA_ARGS__)
#define cr_log_warn(...) cr_log(CR_LOG_WARNING, __VA_ARGS__)
#define cr_log_error(...) cr_log(CR_LOG_ERROR, __VA_ARGS__)

#endif
