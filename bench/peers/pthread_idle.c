/*
 * pthread_idle - memory held by idle kernel threads: N threads with 64 KiB
 * stacks, each blocked on one shared condition variable, the thread baseline
 * for zio_idle. The figure is VmRSS after all N are parked minus VmRSS
 * before the first is created, divided by N. The kernel also keeps a 16 KiB
 * kernel stack (plus task_struct and other slab) per thread that RSS does
 * not show; KernelStack from /proc/meminfo is system-wide and so only
 * approximate, but it is printed as a second metric so the hidden cost is
 * measured rather than assumed.
 *
 * usage: pthread_idle [threads=10000]
 * prints: RESULT idle_rss_kib <KiB per thread> KiB
 *         RESULT idle_kstack_kib <KiB of kernel stack per thread> KiB
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "bench.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv_park = PTHREAD_COND_INITIALIZER;
static pthread_cond_t cv_started = PTHREAD_COND_INITIALIZER;
static long started;
static int release;

static void *idle(void *arg)
{
	pthread_mutex_lock(&mu);
	started++;
	pthread_cond_signal(&cv_started);
	while (!release)
		pthread_cond_wait(&cv_park, &mu);
	pthread_mutex_unlock(&mu);
	return arg;
}

static long meminfo_kib(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long kib = -1;
	FILE *f = fopen("/proc/meminfo", "r");

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

int main(int argc, char **argv)
{
	long n = bench_arg_count(argc, argv, 1, 10000);
	pthread_t *t = calloc((size_t)n, sizeof(*t));
	pthread_attr_t attr;
	long rss0, rss1, ks0, ks1, made = 0;

	if (!t)
		return 1;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	/* The thread array is touched now so its pages are in the baseline. */
	memset(t, 0, (size_t)n * sizeof(*t));
	rss0 = bench_rss_kib();
	ks0 = meminfo_kib("KernelStack");
	for (; made < n; made++) {
		if (pthread_create(&t[made], &attr, idle, NULL) != 0) {
			perror("pthread_create");
			break;
		}
	}
	pthread_mutex_lock(&mu);
	while (started < made)
		pthread_cond_wait(&cv_started, &mu);
	pthread_mutex_unlock(&mu);
	rss1 = bench_rss_kib();
	ks1 = meminfo_kib("KernelStack");

	pthread_mutex_lock(&mu);
	release = 1;
	pthread_cond_broadcast(&cv_park);
	pthread_mutex_unlock(&mu);
	for (long i = 0; i < made; i++)
		pthread_join(t[i], NULL);
	if (made < n) {
		fprintf(stderr, "pthread_idle: only %ld of %ld threads started\n", made, n);
		return 1;
	}
	fprintf(stderr, "pthread_idle: %ld threads, RSS %ld -> %ld KiB\n", n, rss0, rss1);
	bench_result("idle_rss_kib", (double)(rss1 - rss0) / n, "KiB");
	if (ks0 >= 0 && ks1 >= 0)
		bench_result("idle_kstack_kib", (double)(ks1 - ks0) / n, "KiB");
	free(t);
	return 0;
}
