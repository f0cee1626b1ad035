/*
 * test_chan.c - zio/chan.h channels (bounded, unbuffered, unbounded) and
 * broadcast channels.
 *
 * Basics, ordering, close semantics, waiters that time out or are
 * cancelled (nothing lost, nothing delivered twice, buffers untouched on
 * failure), tasks and plain threads on the same channel, a sequential
 * model check of random try-operations, and a concurrent conservation
 * check: producers and consumers (tasks on two executors and plain
 * threads) with random deadlines and cancellations, after which every item
 * whose send succeeded was received exactly once and no other item was.
 *
 * ZIO_TEST_LABELS: sync
 */
#include "sync_test.h"

#include "chan_impl.h"

static zio_chan *mkchan(size_t esize, size_t cap, unsigned flags)
{
	zio_chan *ch;
	int err = zio_chan_create(&ch, esize, cap, flags);
	cr_assert_eq(err, 0, "zio_chan_create: %d", err);
	return ch;
}

static void rmchan(zio_chan *ch)
{
	cr_assert_eq(zio_chan_destroy(ch), 0);
}

/* ----------------------------------------------------------------- basics */

Test(chan, create_arguments, .timeout = 5)
{
	zio_chan *ch;
	cr_assert_eq(zio_chan_create(&ch, 0, 1, 0), -EINVAL);
	cr_assert_eq(zio_chan_create(&ch, 8, 1, 0x10), -EINVAL);
	cr_assert_eq(zio_chan_create(NULL, 8, 1, 0), -EINVAL);
	cr_assert_eq(zio_chan_create(&ch, SIZE_MAX / 2, 4, 0), -EINVAL);
	ch = mkchan(8, 0, 0);
	cr_assert_eq(zio_chan_cap(ch), 0);
	cr_assert_eq(zio_chan_len(ch), 0);
	rmchan(ch);
	ch = mkchan(8, 5, 0);
	cr_assert_eq(zio_chan_cap(ch), 5);
	rmchan(ch);
	ch = mkchan(8, 0, ZIO_CHAN_UNBOUNDED);
	cr_assert_eq(zio_chan_cap(ch), SIZE_MAX);
	rmchan(ch);
	cr_assert_eq(zio_chan_send(NULL, &ch, 0), -EINVAL);
	cr_assert_eq(zio_chan_recv(NULL, &ch, 0), -EINVAL);
}

Test(chan, bounded_fifo_and_try, .timeout = 5)
{
	/* No runtime needed: try-operations never wait. */
	zio_chan *ch = mkchan(sizeof(int), 3, 0);
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 3; i++) {
			int v = round * 10 + i;
			cr_assert_eq(zio_chan_try_send(ch, &v), 0);
			cr_assert_eq(zio_chan_len(ch), (size_t)i + 1);
		}
		int v = -1;
		cr_assert_eq(zio_chan_try_send(ch, &v), -EAGAIN);
		cr_assert_eq(zio_chan_send(ch, &v, 0), -EAGAIN);
		for (int i = 0; i < 3; i++) {
			cr_assert_eq(zio_chan_try_recv(ch, &v), 0);
			cr_assert_eq(v, round * 10 + i);
		}
		cr_assert_eq(zio_chan_try_recv(ch, &v), -EAGAIN);
	}
	rmchan(ch);
}

static void unbounded_case(size_t esize, int n)
{
	zio_chan *ch = mkchan(esize, 0, ZIO_CHAN_UNBOUNDED);
	unsigned char *buf = malloc(esize);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < n; i++) {
			memset(buf, (i + round) & 0xff, esize);
			memcpy(buf, &i, esize < sizeof(i) ? esize : sizeof(i));
			cr_assert_eq(zio_chan_try_send(ch, buf), 0);
		}
		cr_assert_eq(zio_chan_len(ch), (size_t)n);
		for (int i = 0; i < n; i++) {
			cr_assert_eq(zio_chan_try_recv(ch, buf), 0);
			int got = 0;
			memcpy(&got, buf, esize < sizeof(got) ? esize : sizeof(got));
			int want = i;
			if (esize < sizeof(int))
				want &= (1 << (8 * esize)) - 1;
			cr_assert_eq(got, want, "esize %zu item %d", esize, i);
			cr_assert_eq(buf[esize - 1], esize <= sizeof(int) ? buf[esize - 1]
								      : (unsigned char)((i + round) & 0xff));
		}
		cr_assert_eq(zio_chan_try_recv(ch, buf), -EAGAIN);
		cr_assert_eq(zio_chan_len(ch), 0);
	}
	free(buf);
	rmchan(ch);
}

Test(chan, unbounded_segments, .timeout = 20)
{
	unbounded_case(1, 10000);
	unbounded_case(sizeof(int), 50000);
	unbounded_case(24, 5000);
	unbounded_case(5000, 300); /* larger than a segment */
}

/* ------------------------------------------------------------ rendezvous */

struct pp {
	zio_chan *ping, *pong;
	int rounds;
};

static void *pp_echo(void *arg)
{
	struct pp *p = arg;
	for (int i = 0; i < p->rounds; i++) {
		long v;
		cr_assert_eq(zio_chan_recv(p->ping, &v, ZIO_FOREVER), 0);
		cr_assert_eq(zio_chan_send(p->pong, &v, ZIO_FOREVER), 0);
	}
	return NULL;
}

static void *pp_main(void *arg)
{
	struct pp p = { mkchan(sizeof(long), 0, 0), mkchan(sizeof(long), 0, 0), 20000 };
	long v = 7;
	cr_assert_eq(zio_chan_try_send(p.ping, &v), -EAGAIN, "no receiver yet");
	zio_task *t = go(pp_echo, &p);
	for (long i = 0; i < p.rounds; i++) {
		cr_assert_eq(zio_chan_send(p.ping, &i, ZIO_FOREVER), 0);
		cr_assert_eq(zio_chan_recv(p.pong, &v, ZIO_FOREVER), 0);
		cr_assert_eq(v, i);
	}
	join(t);
	rmchan(p.ping);
	rmchan(p.pong);
	return NULL;
}

Test(chan, unbuffered_ping_pong, .timeout = 30)
{
	run_in_runtime(1, pp_main, NULL);
	run_in_runtime(2, pp_main, NULL);
}

/* A plain thread on one end, a task on the other, both directions. */
static void *pp_thread(void *arg)
{
	return pp_echo(arg);
}

static void *pp_thread_main(void *arg)
{
	struct pp p = { mkchan(sizeof(long), 0, 0), mkchan(sizeof(long), 1, 0), 5000 };
	thread_t th = thread_start(pp_thread, &p);
	for (long i = 0; i < p.rounds; i++) {
		long v;
		cr_assert_eq(zio_chan_send(p.ping, &i, ZIO_FOREVER), 0);
		cr_assert_eq(zio_chan_recv(p.pong, &v, ZIO_FOREVER), 0);
		cr_assert_eq(v, i);
	}
	thread_join(th);
	rmchan(p.ping);
	rmchan(p.pong);
	return NULL;
}

Test(chan, task_and_thread, .timeout = 30)
{
	run_in_runtime(1, pp_thread_main, NULL);
	run_in_runtime(2, pp_thread_main, NULL);
}

/* ------------------------------------------------------------------ close */

struct op {
	zio_chan *ch;
	long v;
	int64_t deadline;
};

static void *op_send(void *arg)
{
	struct op *o = arg;
	return RC(zio_chan_send(o->ch, &o->v, o->deadline));
}

static void *op_recv(void *arg)
{
	struct op *o = arg;
	return RC(zio_chan_recv(o->ch, &o->v, o->deadline));
}

#define CHQ(ch, q) qlen(&(ch)->lock, &(ch)->q)

static void *close_main(void *arg)
{
	/* Buffered items drain after close, then -EPIPE. */
	zio_chan *ch = mkchan(sizeof(long), 4, 0);
	long v = 1;
	zio_chan_try_send(ch, &v);
	v = 2;
	zio_chan_try_send(ch, &v);
	cr_assert_eq(zio_chan_close(ch), 0);
	cr_assert(zio_chan_closed(ch));
	cr_assert_eq(zio_chan_close(ch), -EPIPE);
	cr_assert_eq(zio_chan_try_send(ch, &v), -EPIPE);
	cr_assert_eq(zio_chan_send(ch, &v, ZIO_FOREVER), -EPIPE);
	cr_assert_eq(zio_chan_recv(ch, &v, ZIO_FOREVER), 0);
	cr_assert_eq(v, 1);
	cr_assert_eq(zio_chan_recv(ch, &v, ZIO_FOREVER), 0);
	cr_assert_eq(v, 2);
	cr_assert_eq(zio_chan_recv(ch, &v, ZIO_FOREVER), -EPIPE);
	cr_assert_eq(zio_chan_try_recv(ch, &v), -EPIPE);
	rmchan(ch);

	/* Blocked senders (full channel) and receivers (empty) are woken. */
	ch = mkchan(sizeof(long), 1, 0);
	v = 10;
	zio_chan_try_send(ch, &v);
	struct op s1 = { ch, 11, ZIO_FOREVER }, s2 = { ch, 12, ZIO_FOREVER };
	zio_task *a = go(op_send, &s1), *b = go(op_send, &s2);
	WAIT_FOR(CHQ(ch, sendq) == 2);
	cr_assert_eq(zio_chan_destroy(ch), -EBUSY);
	zio_chan_close(ch);
	cr_assert_eq(join(a), -EPIPE);
	cr_assert_eq(join(b), -EPIPE);
	cr_assert_eq(zio_chan_recv(ch, &v, ZIO_FOREVER), 0);
	cr_assert_eq(v, 10); /* only what was buffered */
	cr_assert_eq(zio_chan_recv(ch, &v, ZIO_FOREVER), -EPIPE);
	rmchan(ch);

	ch = mkchan(sizeof(long), 0, 0);
	struct op r1 = { ch, -1, ZIO_FOREVER };
	a = go(op_recv, &r1);
	WAIT_FOR(CHQ(ch, recvq) == 1);
	zio_chan_close(ch);
	cr_assert_eq(join(a), -EPIPE);
	cr_assert_eq(r1.v, -1, "buffer untouched");
	rmchan(ch);
	return NULL;
}

Test(chan, close_semantics, .timeout = 10)
{
	run_in_runtime(1, close_main, NULL);
	run_in_runtime(2, close_main, NULL);
}

/* -------------------------------------------------- timeouts and cancels */

static void *timeout_main(void *arg)
{
	zio_chan *kinds[3] = { mkchan(sizeof(long), 0, 0), mkchan(sizeof(long), 2, 0),
			       mkchan(sizeof(long), 0, ZIO_CHAN_UNBOUNDED) };
	for (int k = 0; k < 3; k++) {
		zio_chan *ch = kinds[k];
		struct op r = { ch, 0x5a5a, zio_deadline_after(ZIO_MSEC(3)) };
		cr_assert_eq(join(go(op_recv, &r)), -ETIMEDOUT);
		cr_assert_eq(r.v, 0x5a5a, "a failed receive leaves the buffer alone");
		cr_assert_eq(CHQ(ch, recvq), 0);
		r.deadline = 1; /* already past */
		cr_assert_eq(join(go(op_recv, &r)), -ETIMEDOUT);
	}
	/* A send that times out on a full (or receiver-less) channel did not
	 * send. */
	long v = 1;
	zio_chan_try_send(kinds[1], &v);
	zio_chan_try_send(kinds[1], &v);
	for (int k = 0; k < 2; k++) {
		struct op s = { kinds[k], 99, zio_deadline_after(ZIO_MSEC(3)) };
		cr_assert_eq(join(go(op_send, &s)), -ETIMEDOUT);
		cr_assert_eq(CHQ(kinds[k], sendq), 0);
	}
	cr_assert_eq(zio_chan_len(kinds[1]), 2);
	cr_assert_eq(zio_chan_try_recv(kinds[0], &v), -EAGAIN);
	for (int k = 0; k < 3; k++)
		rmchan(kinds[k]);
	return NULL;
}

Test(chan, timeouts, .timeout = 10)
{
	run_in_runtime(1, timeout_main, NULL);
	run_in_runtime(2, timeout_main, NULL);
}

static void *cancel_main(void *arg)
{
	for (int cap = 0; cap < 2; cap++) {
		zio_chan *ch = mkchan(sizeof(long), (size_t)cap, 0);
		/* Receivers a, b queued; a is cancelled, then an item comes:
		 * it must reach b, and a's buffer stays as it was. */
		struct op ra = { ch, -1, ZIO_FOREVER }, rb = { ch, -1, ZIO_FOREVER };
		zio_task *a = go(op_recv, &ra);
		WAIT_FOR(CHQ(ch, recvq) == 1);
		zio_task *b = go(op_recv, &rb);
		WAIT_FOR(CHQ(ch, recvq) == 2);
		zio_task_cancel(a);
		long v = 42;
		if (cap)
			cr_assert_eq(zio_chan_try_send(ch, &v), 0);
		else
			cr_assert_eq(zio_chan_send(ch, &v, ZIO_FOREVER), 0);
		cr_assert_eq(join(a), -ECANCELED);
		cr_assert_eq(join(b), 0);
		cr_assert_eq(ra.v, -1);
		cr_assert_eq(rb.v, 42);
		cr_assert_eq(zio_chan_len(ch), 0);

		/* The only receiver cancelled: a buffered item stays put. */
		if (cap) {
			a = go(op_recv, &ra);
			WAIT_FOR(CHQ(ch, recvq) == 1);
			zio_task_cancel(a);
			cr_assert_eq(zio_chan_try_send(ch, &v), 0);
			cr_assert_eq(join(a), -ECANCELED);
			cr_assert_eq(zio_chan_len(ch), 1);
			cr_assert_eq(zio_chan_try_recv(ch, &v), 0);
		}

		/* A cancelled sender delivers nothing. */
		if (cap) {
			v = 1;
			zio_chan_try_send(ch, &v); /* full */
		}
		struct op s = { ch, 77, ZIO_FOREVER };
		zio_task *t = go(op_send, &s);
		WAIT_FOR(CHQ(ch, sendq) == 1);
		zio_task_cancel(t);
		cr_assert_eq(join(t), -ECANCELED);
		if (cap) {
			cr_assert_eq(zio_chan_try_recv(ch, &v), 0);
			cr_assert_eq(v, 1);
		}
		cr_assert_eq(zio_chan_try_recv(ch, &v), -EAGAIN, "the cancelled item arrived");

		/* A sender cancelled while its receive peer was arriving: the
		 * receiver finds it claimed and takes nothing from it. */
		if (cap) {
			v = 1;
			zio_chan_try_send(ch, &v); /* full */
		}
		t = go(op_send, &s);
		WAIT_FOR(CHQ(ch, sendq) == 1);
		zio_task_cancel(t);
		if (cap) {
			cr_assert_eq(zio_chan_try_recv(ch, &v), 0);
			cr_assert_eq(v, 1);
			cr_assert_eq(zio_chan_len(ch), 0, "no refill from a cancelled sender");
		}
		cr_assert_eq(zio_chan_try_recv(ch, &v), -EAGAIN);
		cr_assert_eq(join(t), -ECANCELED);
		rmchan(ch);
	}
	return NULL;
}

Test(chan, cancel_loses_nothing, .timeout = 10)
{
	run_in_runtime(1, cancel_main, NULL);
}

/* A full bounded channel with queued senders: receiving refills the buffer
 * from the oldest sender, so items stay in send order. */
static void *refill_main(void *arg)
{
	zio_chan *ch = mkchan(sizeof(long), 2, 0);
	struct op s[4];
	zio_task *t[4];
	for (long i = 0; i < 2; i++)
		zio_chan_try_send(ch, &i);
	for (int i = 0; i < 4; i++) {
		s[i] = (struct op){ ch, 2 + i, ZIO_FOREVER };
		t[i] = go(op_send, &s[i]);
		WAIT_FOR(CHQ(ch, sendq) == i + 1);
	}
	for (long i = 0; i < 6; i++) {
		long v;
		cr_assert_eq(zio_chan_recv(ch, &v, ZIO_FOREVER), 0);
		cr_assert_eq(v, i);
	}
	for (int i = 0; i < 4; i++)
		cr_assert_eq(join(t[i]), 0);
	rmchan(ch);
	return NULL;
}

Test(chan, bounded_refill_order, .timeout = 10)
{
	run_in_runtime(1, refill_main, NULL);
	run_in_runtime(2, refill_main, NULL);
}

/* ------------------------------------------------ sequential model check */

struct model {
	long *buf;
	size_t head, len, cap; /* cap SIZE_MAX: unbounded (grows) */
	size_t room;
};

static void model_check(zio_chan *ch, size_t cap, uint64_t seed)
{
	struct model m = { malloc(64 * sizeof(long)), 0, 0, cap, 64 };
	uint64_t rs = seed;
	long next = 0;
	for (int step = 0; step < 200000; step++) {
		unsigned op = rnd_below(&rs, 10);
		if (op < 5) {
			int r = zio_chan_try_send(ch, &next);
			/* An unbuffered channel with no receiver never takes it. */
			bool fits = cap == SIZE_MAX || m.len < cap;
			cr_assert_eq(r, fits ? 0 : -EAGAIN, "step %d send (seed %llu)", step,
				     (unsigned long long)seed);
			if (r == 0) {
				if (m.len == m.room) {
					long *nb = malloc(2 * m.room * sizeof(long));
					for (size_t i = 0; i < m.len; i++)
						nb[i] = m.buf[(m.head + i) % m.room];
					free(m.buf);
					m.buf = nb;
					m.head = 0;
					m.room *= 2;
				}
				m.buf[(m.head + m.len++) % m.room] = next;
			}
			next++;
		} else if (op < 9) {
			long v = -1;
			int r = zio_chan_try_recv(ch, &v);
			cr_assert_eq(r, m.len ? 0 : -EAGAIN, "step %d recv (seed %llu)", step,
				     (unsigned long long)seed);
			if (r == 0) {
				cr_assert_eq(v, m.buf[m.head], "step %d (seed %llu)", step,
					     (unsigned long long)seed);
				m.head = (m.head + 1) % m.room;
				m.len--;
			}
		} else {
			cr_assert_eq(zio_chan_len(ch), m.len, "step %d (seed %llu)", step,
				     (unsigned long long)seed);
		}
	}
	free(m.buf);
}

Test(chan, sequential_model, .timeout = 20)
{
	uint64_t seed = test_seed();
	size_t caps[] = { 0, 1, 3, 17, SIZE_MAX };
	for (int i = 0; i < 5; i++) {
		zio_chan *ch = mkchan(sizeof(long), caps[i] == SIZE_MAX ? 0 : caps[i],
				      caps[i] == SIZE_MAX ? ZIO_CHAN_UNBOUNDED : 0);
		model_check(ch, caps[i], seed + (uint64_t)i);
		rmchan(ch);
	}
}

/* ------------------------------------------- concurrent conservation check
 * Items are (producer << 32 | seq). Producers record which sends succeeded;
 * consumers count every item they get and check that each producer's
 * items reach them in increasing order. After the producers stop, the
 * channel is closed and drained. Then received == sent, exactly. */

enum { NPROD = 5, NCONS = 5, MAXSEQ = 1 << 16 };

struct cons_model {
	zio_chan *ch;
	int64_t end;
	uint64_t seed;
	atomic_uint next_id, next_cid;
	atomic_uchar sent[NPROD][MAXSEQ];
	atomic_uchar got[NPROD][MAXSEQ];
	atomic_long nsent, nrecv, ntimeout, ncancel;
};

struct child_op {
	struct cons_model *m;
	long item;
};

static void *child_send(void *arg)
{
	struct child_op *c = arg;
	return RC(zio_chan_send(c->m->ch, &c->item, ZIO_FOREVER));
}

static void *child_recv(void *arg)
{
	struct child_op *c = arg;
	return RC(zio_chan_recv(c->m->ch, &c->item, ZIO_FOREVER));
}

static void note_result(struct cons_model *m, int r)
{
	if (r == -ETIMEDOUT)
		atomic_fetch_add(&m->ntimeout, 1);
	else if (r == -ECANCELED)
		atomic_fetch_add(&m->ncancel, 1);
	else
		cr_assert(r == 0 || r == -EAGAIN || r == -EPIPE, "unexpected %d (seed %llu)", r,
			  (unsigned long long)m->seed);
}

/* Runs op either directly with a random deadline or in a child that may be
 * cancelled at a random point. */
static int random_op(struct cons_model *m, uint64_t *rs, bool send, long *item)
{
	bool task = zio_task_self() != NULL;
	switch (rnd_below(rs, task ? 4 : 3)) {
	case 0:
		return send ? zio_chan_send(m->ch, item, ZIO_FOREVER) : zio_chan_recv(m->ch, item, ZIO_FOREVER);
	case 1: {
		int64_t d = zio_deadline_after(rnd_below(rs, 30000));
		return send ? zio_chan_send(m->ch, item, d) : zio_chan_recv(m->ch, item, d);
	}
	case 2:
		return send ? zio_chan_try_send(m->ch, item) : zio_chan_try_recv(m->ch, item);
	default: {
		struct child_op c = { m, *item };
		zio_task *t = go(send ? child_send : child_recv, &c);
		for (unsigned k = rnd_below(rs, 4); k; k--)
			zio_yield();
		if (rnd_below(rs, 2))
			zio_task_cancel(t);
		int r = join(t);
		*item = c.item;
		return r;
	}
	}
}

static void *producer(void *arg)
{
	struct cons_model *m = arg;
	unsigned id = atomic_fetch_add(&m->next_id, 1);
	uint64_t rs = m->seed * 0x9E3779B97F4A7C15ULL + id;
	for (long seq = 0; seq < MAXSEQ && zio_now() < m->end; seq++) {
		long item = (long)id << 32 | seq;
		int r = random_op(m, &rs, true, &item);
		note_result(m, r);
		if (r == -EAGAIN)
			zio_yield();
		if (r == 0) {
			atomic_store(&m->sent[id][seq], 1);
			atomic_fetch_add(&m->nsent, 1);
		}
	}
	return NULL;
}

static void *consumer(void *arg)
{
	struct cons_model *m = arg;
	uint64_t rs = m->seed * 0xD1B54A32D192ED03ULL + atomic_fetch_add(&m->next_cid, 1);
	long last[NPROD];
	for (int i = 0; i < NPROD; i++)
		last[i] = -1;
	for (;;) {
		long item = -1;
		int r = random_op(m, &rs, false, &item);
		if (r == -EPIPE)
			return NULL;
		note_result(m, r);
		if (r == -EAGAIN)
			zio_yield();
		if (r != 0)
			continue;
		unsigned p = (unsigned)(item >> 32);
		long seq = item & 0xffffffff;
		cr_assert(p < NPROD && seq < MAXSEQ, "garbage item %#lx (seed %llu)", item,
			  (unsigned long long)m->seed);
		cr_assert_gt(seq, last[p], "producer %u: %ld after %ld (seed %llu)", p, seq, last[p],
			     (unsigned long long)m->seed);
		last[p] = seq;
		unsigned char was = atomic_fetch_add(&m->got[p][seq], 1);
		cr_assert_eq(was, 0, "item %#lx received twice (seed %llu)", item,
			     (unsigned long long)m->seed);
		atomic_fetch_add(&m->nrecv, 1);
	}
}

static void *conservation_main(void *arg)
{
	struct cons_model *m = arg;
	thread_t pth, cth;
	zio_task *p[NPROD - 1], *c[NCONS - 1];
	pth = thread_start(producer, m);
	cth = thread_start(consumer, m);
	for (int i = 0; i < NPROD - 1; i++)
		p[i] = go(producer, m);
	for (int i = 0; i < NCONS - 1; i++)
		c[i] = go(consumer, m);
	for (int i = 0; i < NPROD - 1; i++)
		join(p[i]);
	thread_join(pth);
	zio_chan_close(m->ch);
	for (int i = 0; i < NCONS - 1; i++)
		join(c[i]);
	thread_join(cth);
	return NULL;
}

static void conservation(size_t cap, unsigned flags)
{
	static struct cons_model m;
	memset(&m, 0, sizeof(m));
	m.seed = test_seed();
	m.ch = mkchan(sizeof(long), cap, flags);
	m.end = zio_now() + ZIO_MSEC(700);
	run_in_runtime(2, conservation_main, &m);
	for (int p = 0; p < NPROD; p++)
		for (int s = 0; s < MAXSEQ; s++)
			cr_assert_eq(atomic_load(&m.got[p][s]), atomic_load(&m.sent[p][s]),
				     "cap %zu: item %d/%d sent %d received %d (seed %llu)", cap, p, s,
				     atomic_load(&m.sent[p][s]), atomic_load(&m.got[p][s]),
				     (unsigned long long)m.seed);
	cr_assert_gt(atomic_load(&m.nsent), 0);
	cr_log_info("cap %zu flags %u: %ld sent, %ld received, %ld timeouts, %ld cancels (seed %llu)",
		    cap, flags, atomic_load(&m.nsent), atomic_load(&m.nrecv),
		    atomic_load(&m.ntimeout), atomic_load(&m.ncancel), (unsigned long long)m.seed);
	rmchan(m.ch);
}

Test(chan, conservation_unbuffered, .timeout = 30)
{
	conservation(0, 0);
}

Test(chan, conservation_bounded, .timeout = 30)
{
	conservation(3, 0);
}

Test(chan, conservation_unbounded, .timeout = 30)
{
	conservation(0, ZIO_CHAN_UNBOUNDED);
}

/* ------------------------------------------------------------- broadcast */

static zio_bcast *mkbcast(size_t esize, size_t cap)
{
	zio_bcast *b;
	int err = zio_bcast_create(&b, esize, cap);
	cr_assert_eq(err, 0, "zio_bcast_create: %d", err);
	return b;
}

Test(bcast, every_subscriber_gets_everything, .timeout = 5)
{
	zio_bcast *b = mkbcast(sizeof(int), 16);
	int v = -1;
	cr_assert_eq(zio_bcast_send(b, &v), 0); /* before anyone subscribed */
	struct zio_bcast_rx rx[3];
	for (int i = 0; i < 3; i++)
		cr_assert_eq(zio_bcast_subscribe(b, &rx[i]), 0);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(zio_bcast_send(b, &i), 0);
	for (int s = 0; s < 3; s++) {
		for (int i = 0; i < 10; i++) {
			uint64_t missed = 99;
			cr_assert_eq(zio_bcast_try_recv(&rx[s], &v, &missed), 0);
			cr_assert_eq(v, i);
			cr_assert_eq(missed, 0);
		}
		cr_assert_eq(zio_bcast_try_recv(&rx[s], &v, NULL), -EAGAIN);
	}
	cr_assert_eq(zio_bcast_close(b), 0);
	cr_assert_eq(zio_bcast_close(b), -EPIPE);
	cr_assert_eq(zio_bcast_send(b, &v), -EPIPE);
	cr_assert_eq(zio_bcast_try_recv(&rx[0], &v, NULL), -EPIPE);
	cr_assert_eq(zio_bcast_destroy(b), 0);
	cr_assert_eq(zio_bcast_create(&b, 4, 0), -EINVAL);
}

Test(bcast, lagging_subscriber_learns_missed, .timeout = 5)
{
	zio_bcast *b = mkbcast(sizeof(int), 4);
	struct zio_bcast_rx fast, slow;
	zio_bcast_subscribe(b, &fast);
	zio_bcast_subscribe(b, &slow);
	int v;
	uint64_t missed;
	for (int i = 0; i < 10; i++) {
		zio_bcast_send(b, &i);
		cr_assert_eq(zio_bcast_try_recv(&fast, &v, &missed), 0);
		cr_assert_eq(v, i);
		cr_assert_eq(missed, 0);
	}
	cr_assert_eq(zio_bcast_try_recv(&slow, &v, &missed), 0);
	cr_assert_eq(v, 6);
	cr_assert_eq(missed, 6);
	for (int i = 7; i < 10; i++) {
		cr_assert_eq(zio_bcast_try_recv(&slow, &v, &missed), 0);
		cr_assert_eq(v, i);
		cr_assert_eq(missed, 0);
	}
	/* Closed: what is left drains first. */
	v = 10;
	zio_bcast_send(b, &v);
	zio_bcast_close(b);
	cr_assert_eq(zio_bcast_try_recv(&slow, &v, &missed), 0);
	cr_assert_eq(v, 10);
	cr_assert_eq(zio_bcast_try_recv(&slow, &v, &missed), -EPIPE);
	zio_bcast_destroy(b);
}

struct bsub {
	zio_bcast *b;
	struct zio_bcast_rx rx;
	int64_t deadline;
	atomic_int n;
};

static void *bsub_recv_all(void *arg)
{
	struct bsub *s = arg;
	for (;;) {
		int v;
		uint64_t missed;
		int r = zio_bcast_recv(&s->rx, &v, &missed, s->deadline);
		if (r == -EPIPE)
			return NULL;
		if (r < 0)
			return RC(r);
		cr_assert_eq(missed, 0);
		cr_assert_eq(v, atomic_load(&s->n));
		atomic_fetch_add(&s->n, 1);
	}
}

static void *bcast_wait_main(void *arg)
{
	zio_bcast *b = mkbcast(sizeof(int), 64);
	struct bsub s[3];
	zio_task *t[2];
	for (int i = 0; i < 3; i++) {
		s[i] = (struct bsub){ .b = b, .deadline = ZIO_FOREVER };
		zio_bcast_subscribe(b, &s[i].rx);
	}
	for (int i = 0; i < 2; i++)
		t[i] = go(bsub_recv_all, &s[i]);
	thread_t th = thread_start(bsub_recv_all, &s[2]);
	for (int i = 0; i < 1000; i++) {
		zio_bcast_send(b, &i);
		if (i % 16 == 0) /* keep the slowest within the ring */
			WAIT_FOR(s[0].n > i && s[1].n > i && s[2].n > i);
	}
	WAIT_FOR(s[0].n == 1000 && s[1].n == 1000 && s[2].n == 1000);
	zio_bcast_close(b);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(join(t[i]), 0);
	cr_assert_eq(thread_join(th), 0);

	/* Timeout and cancel leave the cursor where it was. */
	zio_bcast_destroy(b);
	b = mkbcast(sizeof(int), 4);
	struct bsub w = { .b = b, .deadline = zio_deadline_after(ZIO_MSEC(3)) };
	zio_bcast_subscribe(b, &w.rx);
	cr_assert_eq(join(go(bsub_recv_all, &w)), -ETIMEDOUT);
	w.deadline = ZIO_FOREVER;
	zio_task *c = go(bsub_recv_all, &w);
	WAIT_FOR(qlen(&b->lock, &b->q) == 1);
	cr_assert_eq(zio_bcast_destroy(b), -EBUSY);
	zio_task_cancel(c);
	cr_assert_eq(join(c), -ECANCELED);
	int v = 0;
	zio_bcast_send(b, &v);
	uint64_t missed;
	cr_assert_eq(zio_bcast_try_recv(&w.rx, &v, &missed), 0);
	cr_assert_eq(v, 0);
	zio_bcast_destroy(b);
	return NULL;
}

Test(bcast, waiting_timeout_cancel, .timeout = 20)
{
	run_in_runtime(1, bcast_wait_main, NULL);
	run_in_runtime(2, bcast_wait_main, NULL);
}

/* Receivers woken by a close come back for the channel's lock: destroy()
 * right after close() waits for them (it freed the channel under them: a
 * use after free, which reused memory turned into a hang or a crash). */
struct bcast_rx_arg {
	zio_bcast *b;
	atomic_int *waiting;
};

static void *bcast_waiting_rx(void *arg)
{
	struct bcast_rx_arg *a = arg;
	struct zio_bcast_rx rx;
	cr_assert_eq(zio_bcast_subscribe(a->b, &rx), 0);
	atomic_fetch_add(a->waiting, 1);
	int v;
	return (void *)(intptr_t)zio_bcast_recv(&rx, &v, NULL, ZIO_FOREVER);
}

/* Receivers queued on b's wait queue. */
static int bcast_queued(zio_bcast *b)
{
	int n = 0;
	slock(&b->lock);
	for (struct zio__waiter *w = b->q.head; w; w = w->next)
		n++;
	sunlock(&b->lock);
	return n;
}

static void *bcast_destroy_after_close(void *arg)
{
	(void)arg;
	for (int round = 0; round < 500; round++) {
		zio_bcast *b;
		cr_assert_eq(zio_bcast_create(&b, sizeof(int), 4), 0);
		atomic_int waiting = 0;
		struct bcast_rx_arg a = { b, &waiting };
		zio_task *t[4];
		for (int i = 0; i < 4; i++)
			cr_assert_eq(zio_spawn(NULL, &t[i], bcast_waiting_rx, &a, NULL), 0);
		/* They wait (a 50 us nap was short under ThreadSanitizer: a
		 * receiver came to its recv after the destroy). */
		while (atomic_load(&waiting) < 4 || bcast_queued(b) < 4)
			zio_sleep(ZIO_USEC(50));
		cr_assert_eq(zio_bcast_close(b), 0);
		cr_assert_eq(zio_bcast_destroy(b), 0);
		for (int i = 0; i < 4; i++) {
			void *res;
			zio_task_join(t[i], &res);
			cr_assert_eq((intptr_t)res, -EPIPE);
		}
	}
	return NULL;
}

Test(bcast, destroyed_right_after_close, .timeout = 30)
{
	run_in_runtime(1, bcast_destroy_after_close, NULL);
	run_in_runtime(2, bcast_destroy_after_close, NULL);
}
