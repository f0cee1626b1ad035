/*
 * backend.c - choosing a backend, the executor-side glue, and the
 * process-wide fd table.
 *
 * An explicit name must work (its error otherwise, so a typo or a
 * forbidden io_uring is not silently ignored), while the automatic choice
 * falls back from io_uring to epoll to poll and says why, because a
 * missing io_uring (old kernel, seccomp, kernel.io_uring_disabled) is a
 * normal condition, not a failure. The automatic choice is kept for the
 * process once made, unless what ruled a backend out may pass (out of
 * descriptors or memory): then the next runtime asks again.
 *
 * The fd table is a two-level array (chunks of 1024 entries, allocated on
 * first use and never freed), so a lookup is two loads and no lock, and an
 * entry's address never changes. It holds what must outlive one call and be
 * shared by executors: readiness wait lists and sequence numbers, the epoll
 * instance an fd is registered with, a hint of the fd's kind, and which
 * executors' rings may hold ops on it (for zio_close).
 */
#include "backend.h"

#include <signal.h>
#include <unistd.h>

static const struct zio__backend *const all_backends[] = {
#ifdef ZIO_HAVE_URING
	&zio__backend_uring,
#endif
	&zio__backend_epoll,
	&zio__backend_poll,
};
#define N_BACKENDS (sizeof(all_backends) / sizeof(all_backends[0]))

static const struct zio__backend *_Atomic auto_choice;

static const struct zio__backend *by_name(const char *name)
{
	for (size_t i = 0; i < N_BACKENDS; i++)
		if (strcmp(all_backends[i]->name, name) == 0)
			return all_backends[i];
	return NULL;
}

int zio__backend_choose(const char *name, const struct zio__backend **out, bool *automatic)
{
	if (!name || !*name)
		name = getenv("ZIO_BACKEND");
	*automatic = !name || !*name || strcmp(name, "auto") == 0;
	if (!*automatic) {
		const struct zio__backend *b = by_name(name);
		if (!b) {
			zio__log(1, "backend \"%s\" is unknown: uring, epoll, poll or auto", name);
			return -EINVAL;
		}
		int err = b->probe();
		if (err) {
			zio__log(1, "backend \"%s\" is not usable here: %s", name, strerror(-err));
			return err;
		}
		*out = b;
		return 0;
	}
	const struct zio__backend *b = atomic_load(&auto_choice);
	if (b) {
		*out = b;
		return 0;
	}
	/* The last failure said of each backend: a failure that may pass is
	 * asked about again by every runtime, and said again only when it
	 * changes (a lasting memlock limit logged a line per runtime). */
	static _Atomic int said[N_BACKENDS];
	int err = -ENOSYS;
	bool for_now = false;
	for (size_t i = 0; i < N_BACKENDS && !b; i++) {
		err = all_backends[i]->probe();
		if (!err) {
			b = all_backends[i];
			break;
		}
		bool transient = zio__err_transient(err);
		for_now |= transient;
		if (atomic_exchange(&said[i], err) != err)
			zio__log(1, "backend %s unavailable (%s%s), trying %s", all_backends[i]->name,
				 strerror(-err), transient ? ", asked again for each runtime" : "",
				 i + 1 < N_BACKENDS ? all_backends[i + 1]->name : "no other");
	}
	if (!b)
		return err;
	if (!for_now)
		atomic_store(&auto_choice, b);
	*out = b;
	return 0;
}

const struct zio__backend *zio__backend_after(const struct zio__backend *b)
{
	size_t i = 0;
	while (i < N_BACKENDS && all_backends[i] != b)
		i++;
	for (i++; i < N_BACKENDS; i++)
		if (all_backends[i]->probe() == 0)
			return all_backends[i];
	return NULL;
}

/* A write to a socket whose peer is gone must return -EPIPE, not kill the
 * process. A do-nothing handler rather than SIG_IGN: handlers are reset by
 * exec, so children still get the default. An application's own handler
 * or SIG_IGN is left alone. */
static void sigpipe_noop(int sig)
{
	(void)sig;
}

void zio__sigpipe_once(void)
{
	static atomic_bool done;
	if (atomic_load_explicit(&done, memory_order_relaxed) || atomic_exchange(&done, true))
		return;
	struct sigaction old;
	if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
	    !(old.sa_flags & SA_SIGINFO)) {
		struct sigaction sa = { .sa_handler = sigpipe_noop, .sa_flags = SA_RESTART };
		sigemptyset(&sa.sa_mask);
		sigaction(SIGPIPE, &sa, NULL);
	}
}

int zio__loop_create(struct zio__exec *e, const struct zio__backend *b)
{
	struct zio__loop *l;
	zio__sigpipe_once();
	int err = b->create(e, &l);
	if (err)
		return err;
	l->ops = b;
	l->exec = e;
	e->loop = l;
	return 0;
}

void zio__loop_destroy(struct zio__exec *e)
{
	e->loop->ops->destroy(e->loop);
	e->loop = NULL;
}

void zio__loop_poll(struct zio__exec *e, int64_t timeout_ns)
{
	int r = e->loop->ops->poll(e->loop, timeout_ns);
	if (r < 0 && r != -EINTR && getpid() != e->rt->pid)
		zio__panic("a runtime used in a child of fork(): its rings and epoll instances "
			   "are the parent's, and so are its executor threads (in the child, "
			   "make a runtime of its own, or exec)");
	if (r < 0 && r != -EINTR)
		zio__panic("%s backend: poll failed: %s", e->loop->ops->name, strerror(-r));
}

void zio__loop_wake(struct zio__exec *e)
{
	/* One wake in flight is enough; the executor clears it after polling. */
	if (atomic_exchange(&e->wake_pending, 1))
		return;
	e->loop->ops->wake(e->loop);
}

/* ----------------------------------------------------------------- fd table */

#define FD_CHUNK_SHIFT 10
#define FD_CHUNK (1u << FD_CHUNK_SHIFT)
#define FD_CHUNKS (1u << 16) /* 64M descriptors */

static struct zio__fd *_Atomic fd_chunks[FD_CHUNKS];

/* fork(): the child's table is a copy naming the parent's loops, which are
 * the parent's still: its epoll instances (shared with the child: a
 * zio_close() there deleted the parent's registration of the file, whose
 * waiters then never woke), its rings and their multishot states (a
 * child's own runtime waited for the parent's executor to serve it). The
 * child forgets them all; kinds and incarnations stay true. Nobody waits
 * in the child yet, and a lock some other thread held is nobody's. Only
 * entries with something to forget are written: the rest of the table's
 * pages stay shared with the parent. */
static void fd_table_forked(void)
{
	for (unsigned i = 0; i < FD_CHUNKS; i++) {
		struct zio__fd *c = atomic_load_explicit(&fd_chunks[i], memory_order_relaxed);
		for (unsigned k = 0; c && k < FD_CHUNK; k++) {
			struct zio__fd *ent = &c[k];
			if (!atomic_load_explicit(&ent->lock.locked, memory_order_relaxed) &&
			    !ent->waiters[0] && !ent->waiters[1] && ent->owner_epfd == ZIO__EPFD_NONE &&
			    !ent->ep_out && !atomic_load_explicit(&ent->rd_empty, memory_order_relaxed) &&
			    !atomic_load_explicit(&ent->execs, memory_order_relaxed) &&
			    !atomic_load_explicit(&ent->ms, memory_order_relaxed))
				continue;
			zio__spin_unlock(&ent->lock);
			ent->waiters[0] = ent->waiters[1] = NULL;
			ent->owner_epfd = ZIO__EPFD_NONE;
			ent->ep_out = 0;
			atomic_store_explicit(&ent->rd_empty, 0, memory_order_relaxed);
			atomic_store_explicit(&ent->execs, 0, memory_order_relaxed);
			atomic_store_explicit(&ent->ms, NULL, memory_order_relaxed);
		}
	}
}

static void fd_table_init(void)
{
	pthread_atfork(NULL, NULL, fd_table_forked);
}

int zio__fd_get_error(int fd)
{
	return fd < 0 || (unsigned)fd >= FD_CHUNK * FD_CHUNKS ? -EBADF : -ENOMEM;
}

struct zio__fd *zio__fd_peek(int fd)
{
	if (fd < 0 || (unsigned)fd >= FD_CHUNK * FD_CHUNKS)
		return NULL;
	struct zio__fd *c = atomic_load_explicit(&fd_chunks[(unsigned)fd >> FD_CHUNK_SHIFT],
						 memory_order_acquire);
	return c ? &c[(unsigned)fd & (FD_CHUNK - 1)] : NULL;
}

struct zio__fd *zio__fd_get(int fd)
{
	if (fd < 0 || (unsigned)fd >= FD_CHUNK * FD_CHUNKS)
		return NULL;
	unsigned i = (unsigned)fd >> FD_CHUNK_SHIFT;
	struct zio__fd *c = atomic_load_explicit(&fd_chunks[i], memory_order_acquire);
	if (zio__unlikely(!c)) {
		static pthread_once_t once = PTHREAD_ONCE_INIT;
		pthread_once(&once, fd_table_init);
		struct zio__fd *n = aligned_alloc(ZIO__CACHELINE, FD_CHUNK * sizeof(*n));
		if (!n)
			return NULL;
		memset(n, 0, FD_CHUNK * sizeof(*n));
		for (unsigned k = 0; k < FD_CHUNK; k++)
			n[k].owner_epfd = ZIO__EPFD_NONE;
		if (atomic_compare_exchange_strong_explicit(&fd_chunks[i], &c, n, memory_order_acq_rel,
							    memory_order_acquire))
			c = n;
		else
			free(n); /* someone else won; c holds theirs */
	}
	return &c[(unsigned)fd & (FD_CHUNK - 1)];
}

void zio__fd_foreach(int end, void (*fn)(int fd, struct zio__fd *ent, void *arg), void *arg)
{
	unsigned chunks = end <= 0 ? 0 : ((unsigned)end + FD_CHUNK - 1) >> FD_CHUNK_SHIFT;
	for (unsigned i = 0; i < chunks && i < FD_CHUNKS; i++) {
		struct zio__fd *c = atomic_load_explicit(&fd_chunks[i], memory_order_acquire);
		if (!c)
			continue;
		for (unsigned k = 0; k < FD_CHUNK && (int)(i * FD_CHUNK + k) < end; k++)
			fn((int)(i * FD_CHUNK + k), &c[k], arg);
	}
}

void zio__fd_link(struct zio__fd *ent, struct zio__op *op)
{
	struct zio__op **head = &ent->waiters[op->dir];
	op->prev = NULL;
	op->next = *head;
	if (*head)
		(*head)->prev = op;
	*head = op;
	__atomic_store_n(&op->linked, 1, __ATOMIC_RELAXED);
}

void zio__fd_unlink(struct zio__fd *ent, struct zio__op *op)
{
	if (!op->linked)
		return;
	if (op->prev)
		op->prev->next = op->next;
	else
		ent->waiters[op->dir] = op->next;
	if (op->next)
		op->next->prev = op->prev;
	op->next = op->prev = NULL;
	/* Atomic: the poll backend looks without the lock. */
	__atomic_store_n(&op->linked, 0, __ATOMIC_RELEASE);
}

/* Claims every wait of dir: readiness waits (POLL) with poll_events if
 * value is 0, every other with value. */
static void wake_all(struct zio__fd *ent, int dir, int value, unsigned poll_events)
{
	struct zio__op *op;
	while ((op = ent->waiters[dir])) {
		zio__fd_unlink(ent, op);
		/* The op's memory belongs to its fiber again once claimed;
		 * read what we need first. */
		struct zio__parker *p = op->parker;
		uint32_t gen = op->gen;
		int v = value == 0 && op->opcode == ZIO__OP_POLL ? (int)(poll_events & 0xffffu) : value;
		zio__unpark(p, gen, v);
	}
}

void zio__fd_ready(struct zio__fd *ent, int dir, unsigned events)
{
	wake_all(ent, dir, 0, events);
}

void zio__fd_wake(struct zio__fd *ent, int dir, int value)
{
	wake_all(ent, dir, value, 0);
}
