/*
 * test_select.c - zio_select() over channel sends and receives.
 *
 * Ready cases, the non-blocking default (deadline 0), disabled (NULL)
 * cases, deadlines, closed channels, a select completed by a peer that
 * arrives later (in both directions), uniform choice among ready cases,
 * and above all cancellation: a select that is cancelled or times out
 * never consumes an item (zio issue #700 was an item taken and dropped).
 * Then a randomized conservation test where selects, plain operations,
 * deadlines and cancels mix across two executors and a plain thread.
 *
 * ZIO_TEST_LABELS: sync
 */
#include "sync_test.h"

#include "chan_impl.h"

#define CHQ(ch, q) qlen(&(ch)->lock, &(ch)->q)

static zio_chan *mkchan(size_t cap, unsigned flags)
{
	zio_chan *ch;
	int err = zio_chan_create(&ch, sizeof(long), cap, flags);
	cr_assert_eq(err, 0, "zio_chan_create: %d", err);
	return ch;
}

static struct zio_select_case recv_case(zio_chan *ch, long *v)
{
	return (struct zio_select_case){ .chan = ch, .op = ZIO_SELECT_RECV, .elem = v };
}

static struct zio_select_case send_case(zio_chan *ch, long *v)
{
	return (struct zio_select_case){ .chan = ch, .op = ZIO_SELECT_SEND, .elem = v };
}

/* ----------------------------------------------------------------- basics */

Test(select, ready_default_and_invalid, .timeout = 5)
{
	zio_chan *a = mkchan(2, 0), *b = mkchan(2, 0);
	long va = -1, vb = -1, x = 5;
	struct zio_select_case c[3] = { recv_case(a, &va), recv_case(b, &vb), recv_case(NULL, &x) };
	cr_assert_eq(zio_select(c, 3, 0), -EAGAIN, "nothing ready: the default case");
	cr_assert_eq(va, -1);
	cr_assert_eq(vb, -1);
	zio_chan_try_send(b, &x);
	cr_assert_eq(zio_select(c, 3, 0), 1);
	cr_assert_eq(c[1].res, 0);
	cr_assert_eq(vb, 5);
	cr_assert_eq(va, -1, "an unchosen case's buffer is not written");
	/* Send cases. */
	struct zio_select_case s[2] = { send_case(a, &x), recv_case(b, &vb) };
	cr_assert_eq(zio_select(s, 2, 0), 0);
	cr_assert_eq(zio_chan_len(a), 1);
	/* Bad arguments. */
	struct zio_select_case bad = { .chan = a, .op = 3, .elem = &x };
	cr_assert_eq(zio_select(&bad, 1, 0), -EINVAL);
	bad.op = ZIO_SELECT_RECV;
	bad.elem = NULL;
	cr_assert_eq(zio_select(&bad, 1, 0), -EINVAL);
	cr_assert_eq(zio_select(c, ZIO_SELECT_MAX + 1, 0), -EINVAL);
	cr_assert_eq(zio_select(NULL, 0, 0), -EAGAIN);
	zio_chan_destroy(a);
	zio_chan_destroy(b);
}

static void *deadline_main(void *arg)
{
	zio_chan *a = mkchan(0, 0), *b = mkchan(1, 0);
	long va = -1, vb = -1;
	struct zio_select_case c[2] = { recv_case(a, &va), recv_case(b, &vb) };
	int64_t t0 = zio_now();
	cr_assert_eq(zio_select(c, 2, zio_deadline_after(ZIO_MSEC(5))), -ETIMEDOUT);
	cr_assert_geq(zio_now() - t0, ZIO_MSEC(4));
	cr_assert_eq(CHQ(a, recvq) + CHQ(b, recvq), 0, "waiters left behind");
	/* No cases: waits for the deadline like Go's select {}. */
	cr_assert_eq(zio_select(NULL, 0, zio_deadline_after(ZIO_MSEC(2))), -ETIMEDOUT);
	zio_chan_destroy(a);
	zio_chan_destroy(b);
	return NULL;
}

Test(select, deadline, .timeout = 10)
{
	run_in_runtime(1, deadline_main, NULL);
}

/* A select that waits, completed by a peer that comes later. */
struct peer {
	zio_chan *ch;
	long v;
};

static void *peer_recv(void *arg)
{
	struct peer *p = arg;
	return RC(zio_chan_recv(p->ch, &p->v, ZIO_FOREVER));
}

struct sel {
	struct zio_select_case c[4];
	size_t n;
	int64_t deadline;
	int rc;
};

static void *do_select(void *arg)
{
	struct sel *s = arg;
	s->rc = zio_select(s->c, s->n, s->deadline);
	return RC(s->rc);
}

static void *wakeup_main(void *arg)
{
	zio_chan *a = mkchan(0, 0), *b = mkchan(0, 0), *c = mkchan(3, 0);
	long va = -1, vb = -1, out = 33;
	/* Receive completed by a sender. */
	struct sel s = { { recv_case(a, &va), recv_case(b, &vb) }, 2, ZIO_FOREVER, 0 };
	zio_task *t = go(do_select, &s);
	WAIT_FOR(CHQ(a, recvq) == 1 && CHQ(b, recvq) == 1);
	struct peer p = { b, 9 };
	cr_assert_eq(zio_chan_send(b, &p.v, ZIO_FOREVER), 0);
	cr_assert_eq(join(t), 1);
	cr_assert_eq(vb, 9);
	cr_assert_eq(va, -1);
	cr_assert_eq(CHQ(a, recvq), 0, "the other waiter was unlinked");
	/* Send completed by a receiver; a send into a full buffer waits. */
	long full = 0;
	for (int i = 0; i < 3; i++)
		zio_chan_try_send(c, &full);
	s = (struct sel){ { send_case(a, &out), send_case(c, &out) }, 2, ZIO_FOREVER, 0 };
	t = go(do_select, &s);
	WAIT_FOR(CHQ(a, sendq) == 1 && CHQ(c, sendq) == 1);
	p = (struct peer){ a, -1 };
	zio_task *r = go(peer_recv, &p);
	cr_assert_eq(join(r), 0);
	cr_assert_eq(p.v, 33);
	cr_assert_eq(join(t), 0);
	cr_assert_eq(zio_chan_len(c), 3);
	/* A select's send handed straight to a receiver already waiting. */
	p = (struct peer){ a, -1 };
	r = go(peer_recv, &p);
	WAIT_FOR(CHQ(a, recvq) == 1);
	struct zio_select_case one = send_case(a, &out);
	cr_assert_eq(zio_select(&one, 1, 0), 0);
	cr_assert_eq(join(r), 0);
	cr_assert_eq(p.v, 33);
	/* Woken by close. */
	s = (struct sel){ { recv_case(a, &va), recv_case(b, &vb) }, 2, ZIO_FOREVER, 0 };
	t = go(do_select, &s);
	WAIT_FOR(CHQ(a, recvq) == 1);
	zio_chan_close(b);
	cr_assert_eq(join(t), 1);
	cr_assert_eq(s.c[1].res, -EPIPE);
	/* Ready on a closed channel: receive and send both complete with
	 * -EPIPE. */
	struct zio_select_case cl = recv_case(b, &vb);
	cr_assert_eq(zio_select(&cl, 1, 0), 0);
	cr_assert_eq(cl.res, -EPIPE);
	cl = send_case(b, &out);
	cr_assert_eq(zio_select(&cl, 1, ZIO_FOREVER), 0);
	cr_assert_eq(cl.res, -EPIPE);
	zio_chan_destroy(a);
	zio_chan_destroy(b);
	zio_chan_destroy(c);
	return NULL;
}

Test(select, completed_by_peer, .timeout = 10)
{
	run_in_runtime(1, wakeup_main, NULL);
	run_in_runtime(2, wakeup_main, NULL);
}

/* The same channel in a send and a receive case. */
static void *same_chan_main(void *arg)
{
	zio_chan *ch = mkchan(1, 0);
	long in = -1, out = 4;
	struct zio_select_case c[2] = { recv_case(ch, &in), send_case(ch, &out) };
	cr_assert_eq(zio_select(c, 2, ZIO_FOREVER), 1, "only the send is ready");
	cr_assert_eq(zio_select(c, 2, ZIO_FOREVER), 0, "only the receive is ready");
	cr_assert_eq(in, 4);
	zio_chan_destroy(ch);
	/* Unbuffered: a select never matches itself; it waits for a peer. */
	ch = mkchan(0, 0);
	struct sel s = { { recv_case(ch, &in), send_case(ch, &out) }, 2,
			 zio_deadline_after(ZIO_MSEC(3)), 0 };
	cr_assert_eq(join(go(do_select, &s)), -ETIMEDOUT);
	zio_chan_destroy(ch);
	return NULL;
}

Test(select, same_channel_both_ways, .timeout = 10)
{
	run_in_runtime(1, same_chan_main, NULL);
}

/* ---------------------------------------------------------------- fairness */

Test(select, fairness_uniform, .timeout = 10)
{
	enum { N = 30000 };
	zio_chan *ch[3];
	for (int i = 0; i < 3; i++)
		ch[i] = mkchan(0, ZIO_CHAN_UNBOUNDED);
	long v = 0;
	for (int i = 0; i < N; i++)
		for (int k = 0; k < 3; k++)
			zio_chan_try_send(ch[k], &v);
	/* Case 0 is never ready; 1..3 always are. */
	zio_chan *never = mkchan(0, 0);
	struct zio_select_case c[4] = { recv_case(never, &v), recv_case(ch[0], &v),
					recv_case(ch[1], &v), recv_case(ch[2], &v) };
	int count[4] = { 0 };
	for (int i = 0; i < N; i++) {
		int r = zio_select(c, 4, 0);
		cr_assert(r >= 1 && r <= 3);
		count[r]++;
	}
	for (int k = 1; k <= 3; k++)
		cr_assert(count[k] > N / 3 * 0.93 && count[k] < N / 3 * 1.07, "case %d chosen %d of %d",
			  k, count[k], N);
	for (int i = 0; i < 3; i++)
		zio_chan_destroy(ch[i]);
	zio_chan_destroy(never);
}

/* ------------------------------------------------------------ cancellation */

static void *cancel_main(void *arg)
{
	for (int cap = 0; cap < 2; cap++) {
		zio_chan *ch = mkchan((size_t)cap, 0), *other = mkchan(0, 0);
		long v = -1, w = -1;
		/* A select and then a plain receiver wait on ch; the select is
		 * cancelled; the next item must reach the receiver (or, with a
		 * buffer and no receiver, stay in the channel). */
		struct sel s = { { recv_case(other, &w), recv_case(ch, &v) }, 2, ZIO_FOREVER, 0 };
		zio_task *t = go(do_select, &s);
		WAIT_FOR(CHQ(ch, recvq) == 1);
		struct peer p = { ch, -1 };
		zio_task *r = go(peer_recv, &p);
		WAIT_FOR(CHQ(ch, recvq) == 2);
		zio_task_cancel(t);
		long item = 1234;
		cr_assert_eq(zio_chan_send(ch, &item, ZIO_FOREVER), 0);
		cr_assert_eq(join(t), -ECANCELED);
		cr_assert_eq(join(r), 0);
		cr_assert_eq(p.v, 1234, "the item went to the live receiver");
		cr_assert_eq(v, -1, "the cancelled select's buffer was written");
		cr_assert_eq(CHQ(other, recvq), 0);

		if (cap) {
			t = go(do_select, &s);
			WAIT_FOR(CHQ(ch, recvq) == 1);
			zio_task_cancel(t);
			cr_assert_eq(zio_chan_try_send(ch, &item), 0);
			cr_assert_eq(join(t), -ECANCELED);
			cr_assert_eq(zio_chan_len(ch), 1, "the item stays in the channel");
			cr_assert_eq(zio_chan_try_recv(ch, &item), 0);
		}

		/* A cancelled select with a send case delivers nothing. */
		if (cap)
			zio_chan_try_send(ch, &item); /* full */
		long out = 777;
		s = (struct sel){ { send_case(ch, &out) }, 1, ZIO_FOREVER, 0 };
		t = go(do_select, &s);
		WAIT_FOR(CHQ(ch, sendq) == 1);
		zio_task_cancel(t);
		long got = -1;
		if (cap) {
			cr_assert_eq(zio_chan_try_recv(ch, &got), 0);
			cr_assert_eq(got, 1234);
		}
		cr_assert_eq(zio_chan_try_recv(ch, &got), -EAGAIN, "the cancelled send arrived");
		cr_assert_eq(join(t), -ECANCELED);
		zio_chan_destroy(ch);
		zio_chan_destroy(other);
	}
	return NULL;
}

Test(select, cancel_never_consumes, .timeout = 10)
{
	run_in_runtime(1, cancel_main, NULL);
}

/* Many rounds of a select whose deadline races with a sender on the other
 * executor: whatever the outcome, the item is either the select's or still
 * in the channel. */
struct race {
	zio_chan *ch;
	atomic_int go_round, sent_round;
	int rounds;
};

static void *race_sender(void *arg)
{
	struct race *x = arg;
	uint64_t rs = test_seed() ^ 0x5555;
	for (int i = 0; i < x->rounds; i++) {
		WAIT_FOR(atomic_load(&x->go_round) > i);
		/* Arrive at a random point of the select's 0-20 us deadline. */
		int64_t until = zio_now() + rnd_below(&rs, 25000);
		while (zio_now() < until)
			zio__cpu_relax();
		long item = i;
		cr_assert_eq(zio_chan_send(x->ch, &item, ZIO_FOREVER), 0);
		atomic_store(&x->sent_round, i + 1);
	}
	return NULL;
}

static void *race_main(void *arg)
{
	static struct race x;
	memset(&x, 0, sizeof(x));
	x.ch = mkchan(1, 0);
	x.rounds = 3000;
	zio_task *t = go_pinned(race_sender, &x);
	uint64_t rs = test_seed();
	int selected = 0;
	for (int i = 0; i < x.rounds; i++) {
		long v = -1;
		struct zio_select_case c = recv_case(x.ch, &v);
		atomic_store(&x.go_round, i + 1);
		int r = zio_select(&c, 1, zio_deadline_after(rnd_below(&rs, 20000)));
		WAIT_FOR(atomic_load(&x.sent_round) == i + 1);
		if (r == 0) {
			cr_assert_eq(v, i);
			cr_assert_eq(zio_chan_len(x.ch), 0);
			selected++;
		} else {
			cr_assert_eq(r, -ETIMEDOUT);
			cr_assert_eq(v, -1);
			long got;
			cr_assert_eq(zio_chan_try_recv(x.ch, &got), 0, "round %d: item lost", i);
			cr_assert_eq(got, i);
		}
	}
	join(t);
	cr_log_info("select/deadline race: %d of %d selected", selected, x.rounds);
	zio_chan_destroy(x.ch);
	return NULL;
}

Test(select, deadline_race_loses_nothing, .timeout = 30)
{
	run_in_runtime(2, race_main, NULL);
}

/* ------------------------------------------- randomized conservation check
 * Three channels (unbuffered, bounded 2, unbounded). Producers send tagged
 * items with selects over random subsets of the channels or plain sends;
 * consumers receive with selects or plain receives; random deadlines and
 * cancels throughout; tasks on two executors and a plain thread on each
 * side. After the producers stop, every channel is closed and drained:
 * each successfully sent item must have been received exactly once. */

enum { NPROD = 4, NCONS = 4, MAXSEQ = 1 << 15, NCH = 3 };

struct smodel {
	zio_chan *ch[NCH];
	int64_t end;
	uint64_t seed;
	atomic_uint next_p, next_c;
	atomic_uchar sent[NPROD][MAXSEQ];
	atomic_uchar got[NPROD][MAXSEQ];
	atomic_long nsel, ncancel, ntimeout;
	atomic_int closed;
};

struct sjob {
	struct smodel *m;
	bool send;
	long item;
	int64_t deadline;
	struct zio_select_case c[NCH];
	size_t n;
};

/* One operation: a select over a random non-empty subset, or a plain op. */
static int sjob_run(struct sjob *j)
{
	if (j->n == 1 && j->c[0].chan) {
		zio_chan *ch = j->c[0].chan;
		return j->send ? zio_chan_send(ch, &j->item, j->deadline)
			       : zio_chan_recv(ch, &j->item, j->deadline);
	}
	int r = zio_select(j->c, j->n, j->deadline);
	if (r >= 0)
		return j->c[r].res;
	return r;
}

static void *sjob_child(void *arg)
{
	return RC(sjob_run(arg));
}

static void sjob_prepare(struct sjob *j, uint64_t *rs, bool send)
{
	struct smodel *m = j->m;
	j->send = send;
	unsigned mask = 1 + rnd_below(rs, (1 << NCH) - 1);
	j->n = 0;
	bool single = rnd_below(rs, 3) == 0;
	for (int k = 0; k < NCH; k++) {
		if (!(mask >> k & 1))
			continue;
		j->c[j->n++] = (struct zio_select_case){
			.chan = m->ch[k], .op = send ? ZIO_SELECT_SEND : ZIO_SELECT_RECV, .elem = &j->item
		};
		if (single)
			break;
	}
	/* No ZIO_FOREVER: with several channels, every producer could wait on
	 * one channel while every consumer waits on another. */
	switch (rnd_below(rs, 3)) {
	case 0: j->deadline = zio_deadline_after(ZIO_MSEC(2)); break;
	case 1: j->deadline = zio_deadline_after(rnd_below(rs, 30000)); break;
	default: j->deadline = 0; break;
	}
}

static int sjob_random(struct sjob *j, uint64_t *rs)
{
	if (zio_task_self() && rnd_below(rs, 3) == 0) {
		zio_task *t = go(sjob_child, j);
		for (unsigned k = rnd_below(rs, 4); k; k--)
			zio_yield();
		if (rnd_below(rs, 2))
			zio_task_cancel(t);
		return join(t);
	}
	return sjob_run(j);
}

static void note(struct smodel *m, int r)
{
	if (r == -ECANCELED)
		atomic_fetch_add(&m->ncancel, 1);
	else if (r == -ETIMEDOUT)
		atomic_fetch_add(&m->ntimeout, 1);
	else
		cr_assert(r == 0 || r == -EAGAIN || r == -EPIPE, "unexpected %d (seed %llu)", r,
			  (unsigned long long)m->seed);
	if (r == -EAGAIN)
		zio_yield();
}

static void *sprod(void *arg)
{
	struct smodel *m = arg;
	unsigned id = atomic_fetch_add(&m->next_p, 1);
	uint64_t rs = m->seed * 0x9E3779B97F4A7C15ULL + id;
	struct sjob j = { .m = m };
	for (long seq = 0; seq < MAXSEQ && zio_now() < m->end; seq++) {
		sjob_prepare(&j, &rs, true);
		j.item = (long)id << 32 | seq;
		int r = sjob_random(&j, &rs);
		note(m, r);
		cr_assert(r != -EPIPE, "sent after close (seed %llu)", (unsigned long long)m->seed);
		if (r == 0)
			atomic_store(&m->sent[id][seq], 1);
	}
	return NULL;
}

static void record(struct smodel *m, long item)
{
	unsigned p = (unsigned)(item >> 32);
	long seq = item & 0xffffffff;
	cr_assert(p < NPROD && seq < MAXSEQ, "garbage %#lx (seed %llu)", item,
		  (unsigned long long)m->seed);
	unsigned char was = atomic_fetch_add(&m->got[p][seq], 1);
	cr_assert_eq(was, 0, "%#lx received twice (seed %llu)", item, (unsigned long long)m->seed);
}

static void *scons(void *arg)
{
	struct smodel *m = arg;
	uint64_t rs = m->seed * 0xD1B54A32D192ED03ULL + atomic_fetch_add(&m->next_c, 1);
	struct sjob j = { .m = m };
	for (;;) {
		sjob_prepare(&j, &rs, false);
		j.item = -1;
		int r = sjob_random(&j, &rs);
		note(m, r);
		if (r == 0) {
			record(m, j.item);
		} else if (r == -EPIPE && atomic_load(&m->closed)) {
			/* One channel is closed and drained; are they all? */
			bool all = true;
			for (int k = 0; k < NCH; k++) {
				long v;
				int rr = zio_chan_try_recv(m->ch[k], &v);
				if (rr == 0)
					record(m, v);
				if (rr != -EPIPE)
					all = false;
			}
			if (all)
				return NULL;
		}
	}
}

static void *smodel_main(void *arg)
{
	struct smodel *m = arg;
	thread_t pth = thread_start(sprod, m);
	thread_t cth = thread_start(scons, m);
	zio_task *p[NPROD - 1], *c[NCONS - 1];
	for (int i = 0; i < NPROD - 1; i++)
		p[i] = go(sprod, m);
	for (int i = 0; i < NCONS - 1; i++)
		c[i] = go(scons, m);
	for (int i = 0; i < NPROD - 1; i++)
		join(p[i]);
	thread_join(pth);
	atomic_store(&m->closed, 1);
	for (int k = 0; k < NCH; k++)
		zio_chan_close(m->ch[k]);
	for (int i = 0; i < NCONS - 1; i++)
		join(c[i]);
	thread_join(cth);
	return NULL;
}

Test(select, randomized_conservation, .timeout = 30)
{
	static struct smodel m;
	memset(&m, 0, sizeof(m));
	m.seed = test_seed();
	m.ch[0] = mkchan(0, 0);
	m.ch[1] = mkchan(2, 0);
	m.ch[2] = mkchan(0, ZIO_CHAN_UNBOUNDED);
	m.end = zio_now() + ZIO_MSEC(1500);
	run_in_runtime(2, smodel_main, &m);
	long n = 0;
	for (int p = 0; p < NPROD; p++)
		for (int s = 0; s < MAXSEQ; s++) {
			cr_assert_eq(atomic_load(&m.got[p][s]), atomic_load(&m.sent[p][s]),
				     "item %d/%d sent %d received %d (seed %llu)", p, s,
				     atomic_load(&m.sent[p][s]), atomic_load(&m.got[p][s]),
				     (unsigned long long)m.seed);
			n += atomic_load(&m.sent[p][s]);
		}
	cr_assert_gt(n, 0);
	cr_log_info("select model: %ld items, %ld cancels, %ld timeouts (seed %llu)", n,
		    atomic_load(&m.ncancel), atomic_load(&m.ntimeout), (unsigned long long)m.seed);
	for (int k = 0; k < NCH; k++)
		cr_assert_eq(zio_chan_destroy(m.ch[k]), 0);
}

/* A zeroed case (chan NULL, op 0) is a disabled one, as chan.h says of a
 * NULL chan: it was -EINVAL for the whole select. */
static void *zeroed_case(void *arg)
{
	(void)arg;
	zio_chan *ch;
	cr_assert_eq(zio_chan_create(&ch, sizeof(int), 1, 0), 0);
	int v = 7, got = 0;
	cr_assert_eq(zio_chan_send(ch, &v, ZIO_FOREVER), 0);
	struct zio_select_case cases[2] = { { 0 }, { .chan = ch, .op = ZIO_SELECT_RECV, .elem = &got } };
	cr_assert_eq(zio_select(cases, 2, ZIO_FOREVER), 1);
	cr_assert_eq(got, 7);
	cr_assert_eq(zio_select(cases, 1, 0), -EAGAIN);
	zio_chan_destroy(ch);
	return NULL;
}

Test(select, zeroed_case_is_disabled, .timeout = 10)
{
	run_in_runtime(1, zeroed_case, NULL);
}
