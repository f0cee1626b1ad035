/*
 * blocking.c - a bounded pool of OS threads for what cannot be made
 * asynchronous: regular-file I/O on epoll/poll, getaddrinfo, and user code
 * that must call something blocking (zio_blocking_call).
 *
 * The pool is process-wide and starts empty. A job is queued FIFO; a thread
 * is started when the queue holds more jobs than threads are idle and fewer
 * than the limit run
 * ($ZIO_BLOCKING_THREADS, default 64); a thread idle for 10 s
 * ($ZIO_BLOCKING_IDLE_MS) exits. Pool threads block every asynchronous
 * signal, so those keep going to the application's threads; a fault
 * (SIGSEGV, SIGBUS, ...) in a job goes to the application's handler.
 *
 * Jobs live on the waiting fiber's stack, so a waiter can only leave once
 * its job can no longer touch it: a job still queued when the wait ends (by
 * timeout or cancellation) is unqueued and never runs; a job that is running
 * is waited for, shielded, and its result returned, bytes or its own error
 * (the cancellation stays pending, as everywhere). Jobs that may be abandoned
 * while running (DNS lookups) are heap-allocated and reference-counted
 * instead (zio__blocking_wait_detached): the waiter returns at once and the
 * job frees itself when it finishes. Such an abandoned job holds its
 * thread for nobody (a lookup the resolver never answers, for seconds), so
 * it does not count against the limit: up to as many threads again may be
 * started beside abandoned ones, or lookups that time out would starve
 * every other job.
 *
 * The completion is published under the pool lock, and the waiter checks
 * the job's state under the same lock after a timeout, so a worker never
 * touches a job whose waiter has gone.
 *
 * A job's syscall names its fds by number, later and on another thread,
 * so a zio_close() in between must not let the number's next file be
 * used. A job not yet started when one of its fds is zio_close()d is not
 * done (-EBADF: the fd's incarnation changed). One that runs on a pipe,
 * socket or device works on a descriptor of its own (a dup). One on a
 * regular file (whose record locks closing any descriptor would drop), a
 * copy between files, or a path op relative to a directory fd names them
 * by number, and zio_close() of one waits until the job is over
 * (running_by_number). A connect on a descriptor of its own is cut short
 * by the close (abort), and its waiter gets -EBADF: the connection it may
 * have made is not the closed number's. What user code does in
 * zio_blocking_call() is its own business.
 */
#include "backend.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static struct zio__job *q_head, *q_tail;
static unsigned n_threads, n_idle, max_threads;
/* Jobs in the queue. An idle thread that was signalled still counts as idle
 * until it wakes, so "someone idle" is not "someone free for this job": a
 * job gets a new thread when the queue holds more jobs than there are idle
 * threads to take them. */
static unsigned n_queued;
/* Running detached jobs whose waiters have gone (see the top). */
static unsigned n_abandoned;
static int64_t idle_ns;

/* Under pool_lock: how many threads may run now (see the top). */
static unsigned thread_limit(void)
{
	return max_threads + (n_abandoned < max_threads ? n_abandoned : max_threads);
}

/* Under pool_lock: whether a job queued now starts at once. */
static bool room_now(void)
{
	return n_queued < n_idle || n_threads < thread_limit();
}

/* Running jobs that name their fds by number (by_number), or that can be
 * cut short (abort: a connect), linked through their `next`: zio_close()
 * of such an fd aborts the latter and waits for them all
 * (zio__blocking_fd_quiesce). How many of their fds fall in each bucket
 * (fd % RUNNING_BUCKETS), read without the lock: a close of a socket
 * does not take the lock because a file is being read somewhere. */
#define RUNNING_BUCKETS 64u
static struct zio__job *running_by_number;
static atomic_uint running_in_bucket[RUNNING_BUCKETS];

static atomic_uint *bucket_of(int fd)
{
	return &running_in_bucket[(unsigned)fd % RUNNING_BUCKETS];
}

static void count_running(const struct zio__job *j, int delta)
{
	for (unsigned i = 0; i < j->n_fds; i++)
		atomic_fetch_add(bucket_of(j->fds[i].fd), (unsigned)delta);
}

static void pool_cond_init(void)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&pool_cond, &a);
	pthread_condattr_destroy(&a);
}

/* Set on pool threads: a job that calls zio (a lookup inside
 * zio_blocking_call()) must not queue another job behind busy threads and
 * wait for it, which may never start if every thread is so waiting; it
 * queues one only when a thread takes it at once (room_now()). */
static __thread bool in_pool;

/* fork(): the child has none of the pool's threads, so it starts with an
 * empty pool (jobs queued or running in the parent are the parent's: their
 * waiters did not come along either). Without this a child that runs a
 * runtime of its own queued its jobs for threads counted but gone. The lock
 * is held across the fork so that the child's copy is in one piece. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&pool_lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&pool_lock);
}

static void fork_child(void)
{
	pthread_mutex_unlock(&pool_lock); /* the forking thread's, in the child too */
	pool_cond_init();
	q_head = q_tail = NULL;
	n_threads = n_idle = n_queued = n_abandoned = 0;
	running_by_number = NULL;
	for (unsigned i = 0; i < RUNNING_BUCKETS; i++)
		atomic_store(&running_in_bucket[i], 0);
	in_pool = false; /* a job that forked: the child's thread is no pool's */
}

#define IDLE_MS_MAX (7L * 24 * 3600 * 1000)

static void pool_init(void)
{
	pool_cond_init();
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	const char *v = getenv("ZIO_BLOCKING_THREADS");
	char *end;
	long n = v && *v ? strtol(v, &end, 10) : 64;
	if (v && *v && (*end || n < 1 || n > 4096)) {
		zio__log(1, "ZIO_BLOCKING_THREADS=%s: not a number from 1 to 4096; using 64", v);
		n = 64;
	}
	max_threads = (unsigned)n;
	/* At most a week: an idle thread's wake-up time must not overflow
	 * (the timed wait then failed at once, and spun holding the lock). */
	v = getenv("ZIO_BLOCKING_IDLE_MS");
	n = v && *v ? strtol(v, &end, 10) : 10000;
	if (v && *v && (*end || n < 1 || n > IDLE_MS_MAX)) {
		zio__log(1, "ZIO_BLOCKING_IDLE_MS=%s: not a number of milliseconds from 1 to %ld; "
			    "using 10000", v, IDLE_MS_MAX);
		n = 10000;
	}
	idle_ns = n * 1000000LL;
}

void zio__job_unref(struct zio__job *j)
{
	if (atomic_fetch_sub(&j->refs, 1) == 1)
		j->release(j);
}

int zio__job_watch_fd(struct zio__job *j, int fd)
{
	zio__check(j->n_fds < sizeof(j->fds) / sizeof(j->fds[0]));
	struct zio__fd *ent = zio__fd_get(fd);
	if (!ent)
		return zio__fd_get_error(fd);
	struct zio__job_fd *w = &j->fds[j->n_fds++];
	w->fd = fd;
	w->ent = ent;
	w->incarnation = __atomic_load_n(&ent->incarnation, __ATOMIC_ACQUIRE);
	return 0;
}

/* One of j's fds was zio_close()d since j was queued. The fence pairs with
 * zio__blocking_fd_quiesce's. */
static bool fds_closed(const struct zio__job *j)
{
	atomic_thread_fence(memory_order_seq_cst);
	for (unsigned i = 0; i < j->n_fds; i++)
		if (zio__fd_replaced(j->fds[i].ent, j->fds[i].incarnation))
			return true;
	return false;
}

static void *worker(void *arg)
{
	(void)arg;
	in_pool = true;
	pthread_mutex_lock(&pool_lock);
	for (;;) {
		if (n_threads > thread_limit()) {
			/* Started beside an abandoned job that has ended. */
			n_threads--;
			pthread_mutex_unlock(&pool_lock);
			return NULL;
		}
		while (!q_head) {
			struct timespec ts;
			int64_t until = zio__now() + idle_ns;
			ts.tv_sec = until / 1000000000;
			ts.tv_nsec = until % 1000000000;
			n_idle++;
			int rc = pthread_cond_timedwait(&pool_cond, &pool_lock, &ts);
			n_idle--;
			if (rc == ETIMEDOUT && !q_head) {
				n_threads--;
				pthread_mutex_unlock(&pool_lock);
				return NULL;
			}
		}
		struct zio__job *j = q_head;
		q_head = j->next;
		if (!q_head)
			q_tail = NULL;
		n_queued--;
		j->state = JOB_RUNNING;
		if (j->by_number || j->abort) {
			/* Before the look at the fds' incarnations: see
			 * zio__blocking_fd_quiesce. */
			j->next = running_by_number;
			running_by_number = j;
			count_running(j, 1);
		}
		pthread_mutex_unlock(&pool_lock);

		if (fds_closed(j))
			j->result = -EBADF;
		else
			j->run(j);

		pthread_mutex_lock(&pool_lock);
		if (j->abandoned)
			n_abandoned--;
		if (j->by_number || j->abort) {
			struct zio__job **pp = &running_by_number;
			while (*pp != j)
				pp = &(*pp)->next;
			*pp = j->next;
			count_running(j, -1);
		}
		j->state = JOB_DONE;
		bool detached = j->detached;
		if (j->parker)
			zio__unpark(j->parker, j->gen, 0);
		if (detached) {
			pthread_mutex_unlock(&pool_lock);
			zio__job_unref(j);
			pthread_mutex_lock(&pool_lock);
		}
	}
}

static int grow(void);

/* Under pool_lock. */
static int enqueue(struct zio__job *j)
{
	j->next = NULL;
	j->state = JOB_QUEUED;
	if (q_tail)
		q_tail->next = j;
	else
		q_head = j;
	q_tail = j;
	n_queued++;
	if (n_idle > 0)
		pthread_cond_signal(&pool_cond);
	int rc = grow();
	if (rc == 0 || n_threads > 0)
		return 0; /* a running thread will get to it */
	/* No thread at all: take the job back. */
	q_head = q_tail = NULL;
	n_queued = 0;
	return -rc;
}

/* Under pool_lock: starts a thread if the queue holds more jobs than idle
 * threads will take and the limit allows; 0 or pthread_create's error. */
static int grow(void)
{
	if (n_queued <= n_idle)
		return 0;
	if (n_threads >= thread_limit())
		return 0; /* it waits for a busy thread */
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	sigset_t all, old;
	sigfillset(&all);
	/* A fault in a job is the job's own: blocked, the kernel kills the
	 * process instead of running the application's handler (a SIGBUS
	 * handler around a mapped file, say). */
	static const int synchronous[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS };
	for (size_t i = 0; i < sizeof(synchronous) / sizeof(synchronous[0]); i++)
		sigdelset(&all, synchronous[i]);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited by the thread */
	pthread_t t;
	int rc = pthread_create(&t, &a, worker, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
	if (rc == 0)
		n_threads++;
	return rc;
}

/* Under pool_lock: removes a queued job. */
static void unqueue(struct zio__job *j)
{
	struct zio__job **pp = &q_head, *prev = NULL;
	while (*pp && *pp != j) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return;
	*pp = j->next;
	if (q_tail == j)
		q_tail = prev;
	n_queued--;
}

struct op_job {
	struct zio__job job;
	struct zio__op *op;
};

static void run_op(struct zio__job *j)
{
	j->result = zio__op_syscall(((struct op_job *)j)->op);
}

/* A connect on a blocking TCP socket may wait minutes for SYN retries:
 * shutdown() of a socket still connecting disconnects it, which ends the
 * connect(2) at once (ECONNABORTED), and the waiter reports its deadline
 * or cancellation. The socket is then unusable, as after any failed
 * connect (also if the connect won the race). Not for a Unix socket, which
 * does not wake for it: a blocking one waiting for room in a listener's
 * backlog ends its connect when the listener accepts. */
static void abort_connect(struct zio__job *j)
{
	struct op_job *oj = (struct op_job *)j;
	shutdown(oj->op->fd, SHUT_RDWR);
}

/* The pool has no thread and cannot start one (RLIMIT_NPROC, out of
 * memory). A plain thread does the work itself, as it may block; a task
 * gets the error (run on its executor, the work could wait for a task
 * behind it, for good). Said once. */
static void no_thread_at_all(int err)
{
	static atomic_bool said;
	if (!atomic_exchange(&said, true))
		zio__log(1, "blocking pool: cannot start a thread (%s): tasks' blocking work fails, "
			    "plain threads do theirs themselves",
			 strerror(-err));
}

/* Runs j (on the caller's stack) and waits as described at the top. */
static long run_stack_job(struct zio__job *j, int64_t deadline, bool *ran)
{
	struct zio__fiber *f = zio__fiber_current();
	*ran = false;
	if (!f && (!j->abort || in_pool)) {
		/* A plain thread just blocks, as would a pool thread waiting
		 * on one of its own (with every thread so waiting, the job
		 * would never start). But a plain thread's job that the
		 * deadline can cut short (a connect) goes to the pool, and
		 * the thread waits on its parker with the deadline. */
		j->run(j);
		*ran = true;
		return j->result;
	}
	if (f && f->shield == 0 && atomic_load(&f->cancelled))
		return -ECANCELED;
	pthread_once(&pool_once, pool_init);
	struct zio__parker *p = zio__parker_self();
	j->parker = p;
	j->detached = false;
	pthread_mutex_lock(&pool_lock);
	if (!f && !room_now()) {
		/* A plain thread does not queue behind busy jobs (one of
		 * them may wait for it): with no thread free it makes the
		 * call itself, and the kernel's timeout is the deadline. */
		pthread_mutex_unlock(&pool_lock);
		j->run(j);
		*ran = true;
		return j->result;
	}
	j->gen = zio__park_prepare(p, 0);
	int err = enqueue(j);
	pthread_mutex_unlock(&pool_lock);
	if (err) {
		/* Armed but nobody will claim it: claim it ourselves, and do
		 * the work here, as a pool thread would have. */
		zio__unpark(p, j->gen, 0);
		zio__park(p, ZIO_FOREVER);
		no_thread_at_all(err);
		if (f)
			return err;
		j->run(j);
		*ran = true;
		return j->result;
	}
	int w = zio__park(p, deadline);
	bool aborted = false;
	pthread_mutex_lock(&pool_lock);
	if (j->state == JOB_QUEUED) {
		unqueue(j);
		pthread_mutex_unlock(&pool_lock);
		return w;
	}
	if (j->state == JOB_RUNNING) {
		/* Running: its memory is ours, wait for it (cut short if the
		 * job knows how). */
		if (w != 0 && j->abort && !j->aborted) {
			j->aborted = true;
			j->abort(j);
		}
		if (f)
			f->shield++;
		while (j->state != JOB_DONE) {
			j->gen = zio__park_prepare(p, ZIO__PARK_NOCANCEL);
			pthread_mutex_unlock(&pool_lock);
			zio__park(p, ZIO_FOREVER);
			pthread_mutex_lock(&pool_lock);
		}
		if (f)
			f->shield--;
	}
	aborted = j->aborted;
	pthread_mutex_unlock(&pool_lock);
	*ran = true;
	/* Woken with 0 means it ran; a timeout that lost the race to the
	 * job's completion keeps the job's result (its bytes or its own
	 * error, as on io_uring), unless the job was aborted (whatever it then
	 * returned, its work is undone). */
	if (w != 0 && aborted)
		return w;
	/* Cut short by a zio_close() of its fd (or done on a descriptor of
	 * its own after that close): what it did is not the caller's fd's. */
	if (j->abort && fds_closed(j))
		return -EBADF;
	return j->result;
}

bool zio__out_of_time(int64_t deadline)
{
	struct zio__fiber *f = zio__fiber_current();
	if (f)
		deadline = zio__effective_deadline(f, deadline);
	return deadline == 0 || (deadline != ZIO_FOREVER && deadline <= zio__now());
}

ssize_t zio__blocking_op(struct zio__op *op, int64_t deadline)
{
	if (zio__out_of_time(deadline)) {
		int k;
		/* Try once, or what is ready at a deadline already past (the
		 * wait would race a pool thread for the job). Reading or
		 * writing a regular file never has to wait (page cache or
		 * disk, the call just takes its time), so it is done here
		 * rather than handed to a thread the deadline would not wait
		 * for. Anything else may wait for good (a connect, an open on
		 * a hung mount). */
		int none = deadline == 0 ? -EAGAIN : -ETIMEDOUT;
		switch (op->opcode) {
		case ZIO__OP_READ:
		case ZIO__OP_WRITE:
		case ZIO__OP_READV:
		case ZIO__OP_WRITEV:
		case ZIO__OP_PREAD:
		case ZIO__OP_PWRITE:
		case ZIO__OP_FREAD:
		case ZIO__OP_FWRITE:
			/* (A tty or device read as a file may wait for good.) */
			if ((k = zio__fd_kind(op->fd, zio__fd_get(op->fd))) < 0)
				return k;
			return k == ZIO__FD_REGULAR ? zio__op_syscall(op) : none;
		default:
			return none;
		}
	}
	struct op_job oj = { .op = op };
	int fd = op->fd, own = -1;
	if (fd >= 0) {
		/* The job names the file on another thread (see the top): a
		 * regular file by its number; anything else by a descriptor of
		 * its own (at or above fd: the numbers below stay as they
		 * were). Out of descriptors, that is the number too, but not
		 * waited for: a read of a pipe or socket may never end, and
		 * zio_close() must. */
		int err = zio__job_watch_fd(&oj.job, fd);
		int kind = err ? err : zio__fd_kind(fd, oj.job.fds[0].ent);
		if (kind < 0)
			return kind;
		if (kind == ZIO__FD_REGULAR)
			oj.job.by_number = true;
		else if ((own = fcntl(fd, F_DUPFD_CLOEXEC, fd)) >= 0)
			op->fd = own;
	} else if (op->opcode >= ZIO__OP_OPENAT && op->opcode <= ZIO__OP_MKDIRAT) {
		/* Relative to directories (or, for fstat, any file), named
		 * by number; not AT_FDCWD. */
		int dirs[2] = { op->u.path.dirfd,
				op->opcode == ZIO__OP_RENAMEAT ? op->u.path.dirfd2 : -1 };
		for (int i = 0; i < 2; i++) {
			int err = dirs[i] >= 0 ? zio__job_watch_fd(&oj.job, dirs[i]) : 0;
			if (err)
				return err;
		}
		oj.job.by_number = oj.job.n_fds > 0;
	}
	oj.job.run = run_op;
	if (op->opcode == ZIO__OP_CONNECT && op->u.sa.addr->sa_family != AF_UNIX)
		oj.job.abort = abort_connect;
	bool ran;
	long r = run_stack_job(&oj.job, deadline, &ran);
	if (own >= 0) {
		op->fd = fd;
		close(own);
	}
	return r;
}

void zio__blocking_fd_quiesce(int fd)
{
	/* Dekker with fds_closed(): either the worker's look sees forget_fd()'s
	 * incarnation bump, or this sees the job counted (its fence comes
	 * after). */
	atomic_thread_fence(memory_order_seq_cst);
	atomic_uint *bucket = bucket_of(fd);
	if (atomic_load_explicit(bucket, memory_order_acquire) == 0)
		return;
	struct zio__fiber *f = zio__fiber_current();
	if (f)
		f->shield++; /* a close finishes, also in a cancelled task */
	for (unsigned n = 0;; n++) {
		bool running = false;
		if (atomic_load_explicit(bucket, memory_order_acquire)) {
			pthread_mutex_lock(&pool_lock);
			for (struct zio__job *j = running_by_number; j; j = j->next)
				for (unsigned i = 0; i < j->n_fds; i++) {
					if (j->fds[i].fd != fd)
						continue;
					running = true;
					/* One that can be cut short is: its
					 * waiter then reports the close. */
					if (j->abort && !j->aborted) {
						j->aborted = true;
						j->abort(j);
					}
				}
			pthread_mutex_unlock(&pool_lock);
		}
		if (!running)
			break;
		zio__pause(n);
	}
	if (f)
		f->shield--;
}

struct call_job {
	struct zio__job job;
	long (*fn)(void *);
	void *arg;
};

static void run_call(struct zio__job *j)
{
	struct call_job *c = (struct call_job *)j;
	j->result = c->fn(c->arg);
}

static long blocking_call(struct call_job *c, int64_t deadline)
{
	c->job.run = run_call;
	bool ran;
	long r = run_stack_job(&c->job, deadline, &ran);
	if (ran)
		return c->job.result; /* fn's own value, even if the wait ended */
	return r;
}

ZIO_API long zio_blocking_call(long (*fn)(void *), void *arg, int64_t deadline)
{
	if (!fn)
		return -EINVAL;
	return blocking_call(&(struct call_job){ .fn = fn, .arg = arg }, deadline);
}

long zio__blocking_call_on_files(long (*fn)(void *), void *arg, int64_t deadline, int in_fd,
				 int out_fd)
{
	struct call_job c = { .fn = fn, .arg = arg };
	int err = zio__job_watch_fd(&c.job, in_fd);
	if (err || (err = zio__job_watch_fd(&c.job, out_fd)))
		return err;
	c.job.by_number = true;
	return blocking_call(&c, deadline);
}

int zio__blocking_wait_detached(struct zio__job *j, int64_t deadline)
{
	struct zio__fiber *f = zio__fiber_current();
	atomic_store(&j->refs, 1); /* the waiter's */
	if (in_pool && deadline == ZIO_FOREVER) {
		j->run(j); /* already a thread that may block */
		return 0;
	}
	if (f && f->shield == 0 && atomic_load(&f->cancelled))
		return -ECANCELED;
	pthread_once(&pool_once, pool_init);
	/* A plain thread waits on its own parker: the deadline holds there
	 * too (it used to run the lookup inline, for as long as it took). */
	struct zio__parker *p = zio__parker_self();
	pthread_mutex_lock(&pool_lock);
	if (in_pool && !room_now()) {
		/* So does a pool thread's, if a thread takes the job at once;
		 * queued behind busy ones, it could wait for threads that
		 * all wait the same way (with one thread, for ever), so it
		 * makes the call itself, and its deadline is not kept. */
		pthread_mutex_unlock(&pool_lock);
		j->run(j);
		return 0;
	}
	atomic_store(&j->refs, 2); /* the waiter's and the pool's */
	j->parker = p;
	j->detached = true;
	j->gen = zio__park_prepare(p, 0);
	int err = enqueue(j);
	pthread_mutex_unlock(&pool_lock);
	if (err) {
		zio__unpark(p, j->gen, 0);
		zio__park(p, ZIO_FOREVER);
		atomic_store(&j->refs, 1);
		no_thread_at_all(err);
		if (f)
			return err;
		j->run(j);
		return 0;
	}
	int w = zio__park(p, deadline);
	pthread_mutex_lock(&pool_lock);
	bool done = j->state == JOB_DONE;
	j->parker = NULL; /* the worker must not wake us any more */
	if (j->state == JOB_QUEUED) {
		unqueue(j);
		atomic_fetch_sub(&j->refs, 1); /* the pool's: it never ran */
	} else if (!done) {
		j->abandoned = true;
		n_abandoned++;
		grow(); /* for jobs queued behind it */
	}
	pthread_mutex_unlock(&pool_lock);
	if (done)
		return 0; /* the waiter still holds its reference */
	return w ? w : -EINTR;
}
