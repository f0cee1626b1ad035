/*
 * criterion_lite/runner.c - main() and the reporting side of the Criterion
 * stand-in used by the ThreadSanitizer build (see criterion/criterion.h for
 * why: Criterion 2.4.1 aborts at startup under TSan, Snaipe/Criterion#274).
 *
 * The parent process stays single-threaded. For each selected test it forks a
 * child in its own process group, runs .init, the body and .fini there, and
 * waits for it with a timeout (the test's .timeout, else --timeout, default
 * 60 s), after which the whole group gets SIGKILL. The child records failed
 * assertions and skips in a MAP_SHARED page, so the verdict does not depend
 * on how the child ends:
 *
 *   FAIL  an assertion or expectation failed (in the child or anything it
 *         forked), or the child timed out, or it was killed by a signal other
 *         than .signal, or it exited although .signal was expected, or its
 *         exit status differs from .exit_code (ThreadSanitizer makes a process
 *         that reported a race exit with 66);
 *   SKIP  cr_skip_test() was called, or the test is .disabled;
 *   PASS  otherwise.
 *
 * Output (stderr, as Criterion): "[PASS] suite::name (0.12s)", "[FAIL] ...",
 * "[SKIP] ...", then "N passed, M failed, K skipped". Exit status 1 if any
 * test failed, 2 on a usage error, else 0.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT 60.0

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CR_LITE_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CR_LITE_TSAN 1
#endif

#ifdef CR_LITE_TSAN
/*
 * Let crashes be crashes. By default TSan catches SIGSEGV/SIGBUS/SIGFPE/SIGILL
 * itself, prints "DEADLYSIGNAL" and exits with 66, and ignores the program's
 * own SIGSEGV handler (allow_user_segv_handler=0). Then a test declared with
 * .signal = SIGSEGV could never pass, and zio's guard-page handler (which
 * turns a fiber stack overflow into a report and SIGABRT) would never run.
 * With handle_*=0 the signal reaches the program's handler or kills the test
 * process, which the runner reports as "crashed: signal N". Races are still
 * reported as usual. TSAN_OPTIONS from the environment override these.
 */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0";
}
#endif

/* Shared between the runner and the test process (and its children). */
struct shared {
	atomic_int failed;
	atomic_int skipped;
	char skip_reason[256];
};

static struct cr_lite_test *registered;
static struct shared *shared;

static bool opt_short_filename;
static int opt_verbose;
static bool opt_fail_fast;
static double opt_timeout = DEFAULT_TIMEOUT;
static const char *opt_filter;

static volatile sig_atomic_t current_child;

/* Strings compared by the last failing cr_assert_str_*, shown with it. */
static _Thread_local const char *note_a, *note_b;
static _Thread_local bool note_set;

void cr_lite_register_(struct cr_lite_test *t)
{
	t->next = registered;
	registered = t;
}

static const char *shown_file(const char *file)
{
	if (!opt_short_filename)
		return file;
	const char *slash = strrchr(file, '/');
	return slash ? slash + 1 : file;
}

/* One write(2) per report, so that lines from several threads stay whole. */
struct buf {
	char s[4096];
	size_t len;
};

__attribute__((format(printf, 2, 0)))
static void buf_vadd(struct buf *b, const char *fmt, va_list ap)
{
	if (b->len >= sizeof(b->s))
		return;
	int n = vsnprintf(b->s + b->len, sizeof(b->s) - b->len, fmt, ap);
	if (n > 0)
		b->len += (size_t)n;
	if (b->len >= sizeof(b->s)) {
		b->len = sizeof(b->s) - 1;
		b->s[b->len - 1] = '\n';
	}
}

__attribute__((format(printf, 2, 3)))
static void buf_add(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vadd(b, fmt, ap);
	va_end(ap);
}

static void buf_flush(struct buf *b)
{
	size_t off = 0;
	while (off < b->len) {
		ssize_t n = write(2, b->s + off, b->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	b->len = 0;
}

void cr_lite_show_strings_(const char *a, const char *b)
{
	note_a = a;
	note_b = b;
	note_set = true;
}

__attribute__((format(printf, 5, 0)))
static void report(const char *what, const char *file, int line, const char *expr,
		   const char *fmt, va_list ap)
{
	struct buf b = { .len = 0 };
	buf_add(&b, "%s:%d: %s: ", shown_file(file), line, what);
	if (fmt) {
		buf_vadd(&b, fmt, ap);
		buf_add(&b, "\n    expression: %s\n", expr);
	} else {
		buf_add(&b, "%s\n", expr);
	}
	if (note_set) {
		buf_add(&b, "    left:  %s%s%s\n", note_a ? "\"" : "", note_a ? note_a : "NULL",
			note_a ? "\"" : "");
		buf_add(&b, "    right: %s%s%s\n", note_b ? "\"" : "", note_b ? note_b : "NULL",
			note_b ? "\"" : "");
		note_set = false;
	}
	buf_flush(&b);
}

static void mark_failed(void)
{
	if (shared)
		atomic_store(&shared->failed, 1);
}

/* Ends the test process without running atexit handlers or .fini: other
 * threads of the test may still be running. */
__attribute__((noreturn))
static void end_test(int status)
{
	fflush(stdout);
	fflush(stderr);
	_exit(status);
}

void cr_lite_assert_failed_(const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report("Assertion failed", file, line, expr, fmt, ap);
	va_end(ap);
	mark_failed();
	end_test(1);
}

void cr_lite_expect_failed_(const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report("Expectation failed", file, line, expr, fmt, ap);
	va_end(ap);
	mark_failed();
}

void cr_lite_skip_(const char *file, int line, const char *fmt, ...)
{
	if (shared) {
		char *r = shared->skip_reason;
		size_t cap = sizeof(shared->skip_reason);
		if (fmt) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(r, cap, fmt, ap);
			va_end(ap);
		} else {
			snprintf(r, cap, "skipped at %s:%d", shown_file(file), line);
		}
		atomic_store(&shared->skipped, 1);
	}
	end_test(0);
}

void cr_log(enum criterion_severity severity, const char *msg, ...)
{
	static const char *const tag[] = { "[----] ", "[WARN] ", "[ERR ] " };
	struct buf b = { .len = 0 };
	buf_add(&b, "%s", (unsigned)severity < 3 ? tag[severity] : tag[0]);
	va_list ap;
	va_start(ap, msg);
	buf_vadd(&b, msg, ap);
	va_end(ap);
	if (b.len == 0 || b.s[b.len - 1] != '\n')
		buf_add(&b, "\n");
	buf_flush(&b);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_interrupt(int sig)
{
	pid_t pid = (pid_t)current_child;
	if (pid > 0)
		kill(-pid, SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

enum verdict { PASS, FAIL, SKIP };

/* The test process. */
__attribute__((noreturn))
static void child_main(struct cr_lite_test *t, const sigset_t *mask)
{
	setpgid(0, 0);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigprocmask(SIG_SETMASK, mask, NULL);
	if (t->opts.init)
		t->opts.init();
	t->fn();
	if (t->opts.fini)
		t->opts.fini();
	fflush(stdout);
	fflush(stderr);
	exit(0);
}

static enum verdict run_one(struct cr_lite_test *t, double *elapsed, char *why, size_t whylen)
{
	double timeout = t->opts.timeout > 0 ? t->opts.timeout : opt_timeout;
	sigset_t chld, old;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);

	atomic_store(&shared->failed, 0);
	atomic_store(&shared->skipped, 0);
	shared->skip_reason[0] = 0;
	fflush(stdout);
	fflush(stderr);

	/* SIGCHLD stays blocked while we wait, so sigtimedwait sees it. */
	sigprocmask(SIG_BLOCK, &chld, &old);
	double t0 = now();
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
		*elapsed = 0;
		return FAIL;
	}
	if (pid == 0)
		child_main(t, &old);
	setpgid(pid, pid); /* either side may win the race; both ask for the same */
	current_child = pid;

	int status = 0;
	bool timed_out = false;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			snprintf(why, whylen, "waitpid: %s", strerror(errno));
			current_child = 0;
			sigprocmask(SIG_SETMASK, &old, NULL);
			*elapsed = now() - t0;
			return FAIL;
		}
		double left = timeout > 0 ? t0 + timeout - now() : 1.0;
		if (left <= 0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			timed_out = true;
			break;
		}
		if (left > 0.25)
			left = 0.25;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)(left * 1e9) };
		sigtimedwait(&chld, NULL, &ts);
	}
	*elapsed = now() - t0;
	/* Anything the test forked and left behind goes with it. */
	kill(-pid, SIGKILL);
	current_child = 0;
	while (sigtimedwait(&chld, NULL, &(struct timespec){ 0, 0 }) > 0)
		;
	sigprocmask(SIG_SETMASK, &old, NULL);

	bool failed = atomic_load(&shared->failed);
	int expect_sig = t->opts.signal;
	if (timed_out) {
		snprintf(why, whylen, "timed out after %gs", timeout);
		return FAIL;
	}
	if (failed) {
		snprintf(why, whylen, "assertion failed");
		return FAIL;
	}
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		if (expect_sig && sig == expect_sig)
			return PASS;
		if (expect_sig)
			snprintf(why, whylen, "killed by signal %d (%s), expected signal %d (%s)", sig,
				 strsignal(sig), expect_sig, strsignal(expect_sig));
		else
			snprintf(why, whylen, "crashed: signal %d (%s)", sig, strsignal(sig));
		return FAIL;
	}
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (expect_sig) {
		snprintf(why, whylen, "exited with status %d, expected signal %d (%s)", code,
			 expect_sig, strsignal(expect_sig));
		return FAIL;
	}
	if (atomic_load(&shared->skipped)) {
		snprintf(why, whylen, "%s", shared->skip_reason);
		return SKIP;
	}
	if (code != t->opts.exit_code) {
		snprintf(why, whylen, "exit status %d, expected %d%s", code, t->opts.exit_code,
			 code == 66 ? " (66: ThreadSanitizer reported errors)" : "");
		return FAIL;
	}
	return PASS;
}

static int by_name(const void *a, const void *b)
{
	const struct cr_lite_test *x = *(struct cr_lite_test *const *)a;
	const struct cr_lite_test *y = *(struct cr_lite_test *const *)b;
	int c = strcmp(x->suite, y->suite);
	return c ? c : strcmp(x->name, y->name);
}

static bool selected(const struct cr_lite_test *t)
{
	if (!opt_filter)
		return true;
	char id[512];
	snprintf(id, sizeof(id), "%s/%s", t->suite, t->name);
	return fnmatch(opt_filter, id, 0) == 0;
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [options]\n"
		"  -l, --list             list the tests (suite/name), run none\n"
		"  --filter PATTERN       run the tests whose suite/name matches the glob\n"
		"  --timeout SECONDS      timeout of tests without .timeout (default %g, 0 = none)\n"
		"  --fail-fast            stop at the first failure\n"
		"  -S, --short-filename   show file names without directories\n"
		"  --verbose[=N]          show each test as it starts\n"
		"  -j N, --jobs N         accepted; tests always run one at a time\n"
		"criterion_lite: the Criterion stand-in for ThreadSanitizer builds.\n",
		prog, DEFAULT_TIMEOUT);
}

/* "--name=value" or "--name value"; returns the value or NULL. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);
	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] == 0 && *i + 1 < argc)
		return argv[++*i];
	return NULL;
}

int main(int argc, char **argv)
{
	bool list = false;
	const char *v;
	opt_filter = getenv("CRITERION_TEST_PATTERN");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-l") || !strcmp(a, "--list")) {
			list = true;
		} else if (!strcmp(a, "-S") || !strcmp(a, "--short-filename")) {
			opt_short_filename = true;
		} else if (!strcmp(a, "--verbose") || !strncmp(a, "--verbose=", 10)) {
			opt_verbose = a[9] ? atoi(a + 10) : 1;
		} else if (!strcmp(a, "--fail-fast")) {
			opt_fail_fast = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout, argv[0]);
			return 0;
		} else if (!strncmp(a, "-j", 2) && a[2]) {
			/* -jN: ignored */
		} else if ((v = opt_value(argc, argv, &i, "-j")) ||
			   (v = opt_value(argc, argv, &i, "--jobs"))) {
			/* ignored: one test at a time */
		} else if ((v = opt_value(argc, argv, &i, "--filter"))) {
			opt_filter = v;
		} else if ((v = opt_value(argc, argv, &i, "--timeout"))) {
			char *end;
			opt_timeout = strtod(v, &end);
			if (*end || opt_timeout < 0) {
				fprintf(stderr, "%s: bad --timeout '%s'\n", argv[0], v);
				return 2;
			}
		} else {
			fprintf(stderr, "%s: unknown option '%s'\n", argv[0], a);
			usage(stderr, argv[0]);
			return 2;
		}
	}

	size_t n = 0;
	for (struct cr_lite_test *t = registered; t; t = t->next)
		n++;
	struct cr_lite_test **all = calloc(n ? n : 1, sizeof(*all));
	if (!all) {
		perror("calloc");
		return 2;
	}
	n = 0;
	for (struct cr_lite_test *t = registered; t; t = t->next)
		all[n++] = t;
	qsort(all, n, sizeof(*all), by_name);

	if (list) {
		for (size_t i = 0; i < n; i++)
			if (selected(all[i]))
				printf("%s/%s\n", all[i]->suite, all[i]->name);
		return 0;
	}

	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		      -1, 0);
	if (shared == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	signal(SIGINT, on_interrupt);
	signal(SIGTERM, on_interrupt);

	unsigned passed = 0, failed = 0, skipped = 0;
	for (size_t i = 0; i < n; i++) {
		struct cr_lite_test *t = all[i];
		if (!selected(t))
			continue;
		if (t->opts.disabled) {
			fprintf(stderr, "[SKIP] %s::%s: disabled\n", t->suite, t->name);
			skipped++;
			continue;
		}
		if (opt_verbose) {
			fprintf(stderr, "[RUN ] %s::%s (%s:%d)\n", t->suite, t->name,
				shown_file(t->file), t->line);
			if (t->opts.description)
				fprintf(stderr, "[----]   %s\n", t->opts.description);
		}
		double elapsed;
		char why[512] = "";
		switch (run_one(t, &elapsed, why, sizeof(why))) {
		case PASS:
			fprintf(stderr, "[PASS] %s::%s (%.2fs)\n", t->suite, t->name, elapsed);
			passed++;
			break;
		case SKIP:
			fprintf(stderr, "[SKIP] %s::%s (%.2fs): %s\n", t->suite, t->name, elapsed, why);
			skipped++;
			break;
		case FAIL:
			fprintf(stderr, "[FAIL] %s::%s (%.2fs): %s\n", t->suite, t->name, elapsed, why);
			failed++;
			break;
		}
		if (failed && opt_fail_fast)
			break;
	}
	fprintf(stderr, "%u passed, %u failed, %u skipped\n", passed, failed, skipped);
	free(all);
	return failed ? 1 : 0;
}
