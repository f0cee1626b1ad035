/* The pairing heap under random insert/remove/pop against a sorted model. */
#include "helpers.h"

#include "internal.h"

static int fired[4096];
static int nfired;

static void on_fire(struct zio__timer *t)
{
	fired[nfired++] = (int)t->deadline;
}

Test(timer, random_against_model, .timeout = 20)
{
	enum { N = 4096 };
	static struct zio__timer t[N];
	static bool in[N];
	struct zio__timers h = { 0 };
	unsigned seed = 12345;
	for (int round = 0; round < 200; round++) {
		for (int i = 0; i < N; i++) {
			unsigned r = rand_r(&seed);
			if (!in[i] && r % 3 == 0) {
				t[i].deadline = (int64_t)(rand_r(&seed) % 100000);
				t[i].fire = on_fire;
				zio__timer_add(&h, &t[i]);
				in[i] = true;
			} else if (in[i] && r % 5 == 0) {
				zio__timer_remove(&h, &t[i]);
				in[i] = false;
			}
		}
		size_t count = 0;
		int64_t min = INT64_MAX;
		for (int i = 0; i < N; i++)
			if (in[i]) {
				count++;
				if (t[i].deadline < min)
					min = t[i].deadline;
			}
		cr_assert_eq(h.count, count);
		cr_assert_eq(zio__timers_next(&h), count ? min : ZIO_FOREVER);
		/* Fire everything due by a random time, in order. */
		int64_t now = (int64_t)(rand_r(&seed) % 100000);
		nfired = 0;
		zio__timers_run(&h, now);
		for (int i = 1; i < nfired; i++)
			cr_assert_leq(fired[i - 1], fired[i]);
		for (int i = 0; i < N; i++)
			if (in[i] && t[i].deadline <= now)
				in[i] = false;
		for (int i = 0; i < N; i++)
			if (in[i])
				cr_assert_gt(t[i].deadline, now);
		/* Removing a fired timer is harmless. */
		for (int i = 0; i < N; i++)
			if (!in[i])
				zio__timer_remove(&h, &t[i]);
	}
}
