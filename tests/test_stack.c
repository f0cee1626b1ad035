/* Stacks: a million live tasks, VMA usage, reuse, trimming.
 * ZIO_TEST_LABELS: sched long */
#include "helpers.h"

#include "internal.h"

#include <stdio.h>
#include <string.h>

static long count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

struct crowd {
	atomic_long parked;
	long target;
	long maps;
	long rss_before, rss_after;
};

static void *park_forever(void *arg)
{
	struct crowd *c = arg;
	atomic_fetch_add(&c->parked, 1);
	int r = zio_sleep(ZIO_SEC(3600));
	return (void *)(intptr_t)r;
}

static void *gather(void *arg)
{
	struct crowd *c = arg;
	c->rss_before = rss_kib();
	for (long i = 0; i < c->target; i++) {
		int err = zio_spawn(NULL, NULL, park_forever, c, NULL);
		cr_assert_eq(err, 0, "spawn %ld failed: %d", i, err);
		if (i % 4096 == 0)
			zio_yield();
	}
	while (atomic_load(&c->parked) < c->target)
		zio_sleep(ZIO_MSEC(5));
	c->maps = count_maps();
	c->rss_after = rss_kib();
	return NULL; /* destroy cancels and joins the crowd */
}

/* 100k tasks with the default 8 MiB reservation each: more stacks than
 * vm.max_map_count (65,530) allows mappings, so the guards must not cost a
 * mapping each. */
Test(stack, more_stacks_than_max_map_count, .timeout = 120)
{
	struct crowd c = { .target = 100000 };
	run_with(&(struct zio_runtime_options){ .executors = 2 }, gather, &c);
	cr_assert_lt(c.maps, 10000, "%ld mappings for 100k stacks", c.maps);
	cr_log_info("100k tasks (8 MiB stacks): %ld mappings, %.2f KiB RSS per task", c.maps,
		    (double)(c.rss_after - c.rss_before) / c.target);
}

/* The headline: a million live tasks on this machine. */
Test(stack, one_million_live_tasks, .timeout = 300)
{
	struct crowd c = { .target = 1000000 };
	run_with(&(struct zio_runtime_options){ .executors = 2, .stack_size = 256 << 10 }, gather, &c);
	cr_assert_eq(atomic_load(&c.parked), 1000000);
	double per = (double)(c.rss_after - c.rss_before) / c.target;
	cr_log_info("1M tasks (256 KiB stacks): %ld mappings, %.2f KiB RSS per task", c.maps, per);
	cr_assert_lt(per, 4.5, "%.2f KiB per idle task (target: 4.5)", per);
}

/* Returned stacks are reused hot, and those beyond the cache give their
 * pages back. */
static void *touch_deep(void *arg)
{
	volatile char buf[512 << 10];
	memset((char *)buf, 1, sizeof(buf));
	return NULL;
}

static void *reuse(void *arg)
{
	zio_runtime *rt = zio_runtime_current();
	struct zio_stats a, b;
	zio_task *t;
	zio_spawn(NULL, &t, touch_deep, NULL, NULL);
	zio_task_join(t, NULL);
	zio_runtime_stats(rt, &a);
	for (int i = 0; i < 1000; i++) {
		zio_spawn(NULL, &t, touch_deep, NULL, NULL);
		zio_task_join(t, NULL);
	}
	zio_runtime_stats(rt, &b);
	cr_assert_eq(a.stacks_mapped, b.stacks_mapped, "stacks not reused");

	/* 200 at once, cache of 8: 192 come back cold, pages returned. */
	zio_task *many[200];
	for (int i = 0; i < 200; i++)
		zio_spawn(NULL, &many[i], touch_deep, NULL, NULL);
	for (int i = 0; i < 200; i++)
		zio_task_join(many[i], NULL);
	long rss = rss_kib();
	cr_assert_lt(rss, 60 * 1024, "RSS %ld KiB: pages of cold stacks were kept", rss);
	return NULL;
}

Test(stack, pool_reuses_and_trims, .timeout = 60)
{
	run_with(&(struct zio_runtime_options){ .executors = 1, .stack_cache = 8 }, reuse, NULL);
}
