/*
 * zio_chan - unbuffered channel ping-pong, the zio side of
 * bench/peers/go/chan.go (and of bench/peers/pthread_pingpong.c, the same
 * exchange between kernel threads with a mutex and two condvars).
 *
 * Two tasks and two unbuffered channels: the main task sends i on ping and
 * receives it back on pong; the echo task receives on ping and sends on
 * pong. One round trip is two rendezvous, each a direct hand-over to a
 * parked receiver (claim, copy, wake) followed by the sender parking on
 * its next receive.
 *
 * chan_pingpong_ns: both tasks on one executor (Go: GOMAXPROCS=1), so
 * every wake is a local run-queue handoff.
 * chan_pingpong_2exec_ns: the tasks pinned to different executors, so
 * every wake crosses threads (inbox push, and a backend wake when the
 * other executor has gone to sleep).
 *
 * usage: zio_chan [seconds per measurement, default 1]
 * prints: RESULT chan_pingpong_ns <ns per round trip> ns
 *         RESULT chan_pingpong_2exec_ns <ns per round trip> ns
 */
#include <zio.h>

#include "bench.h"
#include "internal.h" /* which executor a task is on, to place them */

static double budget_ns = 1e9;

struct pp {
	zio_chan *ping, *pong;
	long rounds;
	bool spread; /* echo must run on another executor than main */
};

static void *echo(void *arg)
{
	struct pp *p = arg;
	if (p->spread) {
		/* Runnable on executor 0's queue until executor 1 steals it. */
		while (zio__exec_current()->id == 0)
			zio_yield();
		zio_task_pin();
	}
	long v;
	while (zio_chan_recv(p->ping, &v, ZIO_FOREVER) == 0)
		zio_chan_send(p->pong, &v, ZIO_FOREVER);
	return NULL;
}

static double run(struct pp *p)
{
	zio_task *t;
	zio_spawn(NULL, &t, echo, p, NULL);
	long v = 0;
	/* Warm-up: the echo task exists, has settled, and runs. */
	for (int i = 0; i < 1000; i++) {
		zio_chan_send(p->ping, &v, ZIO_FOREVER);
		zio_chan_recv(p->pong, &v, ZIO_FOREVER);
	}
	int64_t t0 = bench_now_ns();
	for (long i = 0; i < p->rounds; i++) {
		zio_chan_send(p->ping, &i, ZIO_FOREVER);
		zio_chan_recv(p->pong, &v, ZIO_FOREVER);
		if (v != i) {
			fprintf(stderr, "zio_chan: got %ld, want %ld\n", v, i);
			exit(1);
		}
	}
	double per = (double)(bench_now_ns() - t0) / p->rounds;
	zio_chan_close(p->ping);
	zio_task_join(t, NULL);
	return per;
}

static double measure(bool spread)
{
	struct pp p = { .spread = spread, .rounds = 20000 };
	double per = 0;
	for (int pass = 0; pass < 2; pass++) {
		/* Pass 0 calibrates the number of rounds for the budget. */
		zio_chan_create(&p.ping, sizeof(long), 0, 0);
		zio_chan_create(&p.pong, sizeof(long), 0, 0);
		per = run(&p);
		zio_chan_destroy(p.ping);
		zio_chan_destroy(p.pong);
		long n = (long)(budget_ns / per);
		p.rounds = n > 20000 ? n : 20000;
	}
	return per;
}

static void *bench_main(void *arg)
{
	zio_task_pin();
	bench_result(arg ? "chan_pingpong_2exec_ns" : "chan_pingpong_ns", measure(arg != NULL), "ns");
	return NULL;
}

static int with_runtime(unsigned executors)
{
	zio_runtime *rt;
	int err = zio_runtime_create(&rt, &(struct zio_runtime_options){ .executors = executors });
	if (err) {
		fprintf(stderr, "zio_runtime_create: %d\n", err);
		return 1;
	}
	zio_runtime_run(rt, bench_main, executors > 1 ? rt : NULL, NULL);
	struct zio_stats st;
	zio_runtime_stats(rt, &st);
	fprintf(stderr, "zio_chan: %u executor(s): %llu switches, %llu parks\n", executors,
		(unsigned long long)st.switches, (unsigned long long)st.parks);
	zio_runtime_destroy(rt);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		budget_ns = atof(argv[1]) * 1e9;
	return with_runtime(1) || with_runtime(2);
}
