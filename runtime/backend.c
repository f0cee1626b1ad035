/*
 * backend.c - choosing a backend and the executor-side glue.
 *
 * The choice is made once per name: an explicit name must work (an error
 * otherwise, so a typo is not silently ignored), while the automatic choice
 * falls back from io_uring to epoll to poll and says so once, because a
 * missing io_uring (old kernel, seccomp, kernel.io_uring_disabled) is a
 * normal condition, not a failure.
 */
#include "backend.h"

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

const struct zio__backend *zio__backend_choose(const char *name)
{
	if (!name || !*name)
		name = getenv("ZIO_BACKEND");
	if (name && *name && strcmp(name, "auto") != 0) {
		const struct zio__backend *b = by_name(name);
		if (!b) {
			zio__log(1, "unknown backend \"%s\" (have: uring, epoll, poll)", name);
			return NULL;
		}
		int err = b->probe();
		if (err) {
			zio__log(1, "backend \"%s\" is not usable here: %s", name, strerror(-err));
			return NULL;
		}
		return b;
	}
	const struct zio__backend *b = atomic_load(&auto_choice);
	if (b)
		return b;
	for (size_t i = 0; i < N_BACKENDS; i++) {
		int err = all_backends[i]->probe();
		if (!err) {
			b = all_backends[i];
			break;
		}
		zio__log(1, "backend %s unavailable (%s), falling back",
			 all_backends[i]->name, strerror(-err));
	}
	if (b)
		atomic_store(&auto_choice, b);
	return b;
}

int zio__loop_create(struct zio__exec *e, const struct zio__backend *b)
{
	struct zio__loop *l;
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
