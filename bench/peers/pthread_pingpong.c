/*
 * pthread_pingpong - two kernel threads hand a token back and forth through
 * one mutex and two condition variables: the thread baseline for zio_chan's
 * ping-pong. Each hand-off is a futex wake + futex wait, i.e. a kernel
 * context switch when both threads share a CPU (bench/run pins to one CPU).
 *
 * usage: pthread_pingpong [round_trips=200000]
 * prints: RESULT pingpong_ns <ns per round trip (2 hand-offs)> ns
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "bench.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv_ping = PTHREAD_COND_INITIALIZER;
static pthread_cond_t cv_pong = PTHREAD_COND_INITIALIZER;
/* 0: the main thread's turn (ping), 1: the partner's turn (pong). */
static int turn;
static long rounds;

static void *partner(void *arg)
{
	pthread_mutex_lock(&mu);
	for (long i = 0; i < rounds; i++) {
		while (turn != 1)
			pthread_cond_wait(&cv_pong, &mu);
		turn = 0;
		pthread_cond_signal(&cv_ping);
	}
	pthread_mutex_unlock(&mu);
	return arg;
}

int main(int argc, char **argv)
{
	pthread_t t;
	int64_t t0, t1;

	rounds = bench_arg_count(argc, argv, 1, 200000);
	if (pthread_create(&t, NULL, partner, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	t0 = bench_now_ns();
	pthread_mutex_lock(&mu);
	for (long i = 0; i < rounds; i++) {
		turn = 1;
		pthread_cond_signal(&cv_pong);
		while (turn != 0)
			pthread_cond_wait(&cv_ping, &mu);
	}
	pthread_mutex_unlock(&mu);
	t1 = bench_now_ns();
	pthread_join(t, NULL);
	bench_result("pingpong_ns", (double)(t1 - t0) / rounds, "ns");
	return 0;
}
