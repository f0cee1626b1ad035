/*
 * bench.h - the few helpers every C benchmark in bench/ shares (peers and the
 * zio_*.c programs alike), so they all time, measure memory and report the
 * same way.
 *
 * Output protocol (read by bench/run): one line per measurement on stdout,
 *	RESULT <metric-name> <value> <unit>
 * and nothing else on stdout. Human chatter goes to stderr.
 */
#ifndef ZIO_BENCH_H
#define ZIO_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CLOCK_MONOTONIC through the vDSO: about 20 ns, no syscall. */
static inline int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void bench_result(const char *metric, double value, const char *unit)
{
	printf("RESULT %s %.6g %s\n", metric, value, unit);
	fflush(stdout);
}

/*
 * A field of /proc/self/status in KiB (VmRSS, VmHWM, ...), or -1. Read with
 * stdio rather than mallinfo so that the figure covers stacks and mmaps too.
 */
static inline long bench_status_kib(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			kib = strtol(line + n + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kib;
}

static inline long bench_rss_kib(void)
{
	return bench_status_kib("VmRSS");
}

/* argv[i] as a positive count, or def when absent; accepts 1e6 style. */
static inline long bench_arg_count(int argc, char **argv, int i, long def)
{
	double v;

	if (i >= argc)
		return def;
	v = strtod(argv[i], NULL);
	if (v < 1) {
		fprintf(stderr, "%s: bad count '%s'\n", argv[0], argv[i]);
		exit(2);
	}
	return (long)v;
}

#endif
