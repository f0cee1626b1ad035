/*
 * stack.c - fiber stacks: virtual reservations, guard regions, a pool.
 *
 * A stack is a reservation of `size` bytes of address space with a guard
 * region of ZIO__GUARD_SIZE below it. Pages are committed by the kernel on
 * first touch (the mapping is MAP_NORESERVE), so a fiber that uses 3 KiB of
 * an 8 MiB stack costs one page, and a deep recursion just works.
 *
 * Stacks of the runtime's default size are carved from slabs: one mmap for
 * many slots. Guard regions are installed with MADV_GUARD_INSTALL (Linux
 * 6.13+), which marks page-table entries and creates no new VMA, so a
 * million stacks stay within vm.max_map_count. On older kernels the guards
 * are PROT_NONE mprotects, which split the mapping (two VMAs per stack); once
 * the kernel refuses more (ENOMEM near vm.max_map_count, about 32k stacks)
 * further stacks get no guard and a warning says so once. That fallback is
 * the documented loss of protection.
 *
 * Reuse, in three tiers:
 *  - hot: each executor keeps up to `cache` free stacks in a list only it
 *    touches; their pages stay committed, so a spawn costs no syscall, no
 *    lock and no page fault;
 *  - warm: a shared list (spinlock) of up to `cache` x executors stacks,
 *    also with their pages, that executors refill from and spill to in
 *    batches, so a task spawned on one executor and finished on another
 *    does not turn into a page fault per spawn;
 *  - cold: beyond that, a returned stack gets its pages handed back with
 *    MADV_DONTNEED and goes to its slab's free list.
 * Other sizes are mapped and unmapped one by one.
 *
 * A guard hit raises SIGSEGV. The handler runs on a per-thread alternate
 * stack; if the fault address is in the running fiber's guard region it
 * prints which fiber overflowed, with a backtrace, and aborts. Any other
 * SIGSEGV goes to the handler that was installed before ours.
 */
#include "internal.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

#define SLAB_SLOTS_MIN 64u
#define SLAB_SLOTS_MAX 8192u

struct slab {
	struct slab *next;
	char *base;       /* mapping: nslots * slot */
	uint32_t nslots;
	uint32_t carved;  /* slots handed out at least once */
	uint32_t nfree;   /* entries in free_idx: cold, returned slots */
	uint32_t *free_idx;
};

/* A free hot or warm stack is linked through its own top bytes. */
struct hot_node {
	struct hot_node *next;
	struct zio__stack stack;
};

struct zio__stack_pool {
	zio__spin lock;
	size_t size;       /* usable bytes per stack */
	size_t slot;       /* guard + size + COLOUR_PAD */
	unsigned cache;    /* hot stacks kept per executor */
	atomic_bool keep_pages; /* shutting down: the slabs go soon anyway */
	struct slab *slabs;
	struct slab *current; /* the slab being carved */
	struct hot_node *warm; /* free stacks that kept their pages */
	unsigned nwarm;   /* written under lock; read unlocked as a hint */
	unsigned warm_max;
	uint64_t mapped;   /* slots ever carved, plus one-off mappings live */
	uint64_t in_use;
};

/* Process-wide, learnt by whichever runtime or executor gets there first
 * (atomic: runtimes may be created on several threads at once). */
static _Atomic size_t page_size;
static _Atomic int guard_mode; /* 0 unknown, 1 MADV_GUARD_INSTALL, 2 mprotect, 3 none */

static size_t round_page(size_t n)
{
	size_t page = atomic_load_explicit(&page_size, memory_order_relaxed);
	if (!page) {
		page = (size_t)sysconf(_SC_PAGESIZE);
		atomic_store_explicit(&page_size, page, memory_order_relaxed);
	}
	return (n + page - 1) & ~(page - 1);
}

/* One untouched page above every stack (no RSS, no extra mapping). Stack
 * sizes and the guard are powers of two in practice, so without it every
 * stack top would sit at the same offset modulo the L2 way size (128 KiB
 * on an 8-way 1 MiB L2) and a thousand tasks' descriptors and hot frames
 * would share a few dozen cache sets: each resume would miss L2. With it,
 * consecutive slots (and consecutive one-off mappings, which the kernel
 * places next to each other) shift by a page, so their tops cycle through
 * every page offset of the way; fiber.c adds a colour within the page. */
#define COLOUR_PAD round_page(1)

/* Some emulators (qemu-user 7.2) answer 0 to advice they do not know and
 * do nothing, so the first guard is checked: the kernel must refuse to
 * copy from it. */
static bool guard_works(char *guard)
{
	int pfd[2];
	if (pipe(pfd) != 0)
		return true; /* cannot tell; trust the kernel */
	bool ok = write(pfd[1], guard, 1) < 0 && errno == EFAULT;
	close(pfd[0]);
	close(pfd[1]);
	return ok;
}

static void install_guard(char *guard)
{
	if (guard_mode <= 1) {
		if (madvise(guard, ZIO__GUARD_SIZE, MADV_GUARD_INSTALL) == 0 &&
		    (guard_mode == 1 || guard_works(guard))) {
			guard_mode = 1;
			return;
		}
		if (guard_mode == 0)
			zio__log(0, "MADV_GUARD_INSTALL unavailable: stack guards use mprotect");
		guard_mode = 2;
	}
	if (guard_mode == 2) {
		if (mprotect(guard, ZIO__GUARD_SIZE, PROT_NONE) == 0)
			return;
		zio__log(1, "stack guard pages disabled from here on: the kernel refused "
			    "another mapping (vm.max_map_count); raise it or use a kernel "
			    "with MADV_GUARD_INSTALL");
		guard_mode = 3;
	}
}

int zio__stack_pool_create(struct zio__stack_pool **out, size_t size, unsigned cache,
			   unsigned executors)
{
	struct zio__stack_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->size = round_page(size < ZIO__STACK_MIN ? ZIO__STACK_MIN : size);
	p->slot = p->size + ZIO__GUARD_SIZE + COLOUR_PAD;
	p->cache = cache;
	p->warm_max = cache * executors;
	*out = p;
	return 0;
}

void zio__stack_pool_destroy(struct zio__stack_pool *p)
{
	if (!p)
		return;
	struct slab *s = p->slabs;
	while (s) {
		struct slab *next = s->next;
		munmap(s->base, (size_t)s->nslots * p->slot);
		free(s->free_idx);
		free(s);
		s = next;
	}
	free(p);
}

static void slot_stack(struct zio__stack_pool *p, struct slab *s, uint32_t i, struct zio__stack *out)
{
	char *slot = s->base + (size_t)i * p->slot;
	out->lo = slot + ZIO__GUARD_SIZE;
	out->hi = out->lo + p->size;
	out->size = p->size;
	out->slab = s;
	out->pool = p;
}

/* Takes a slot from the pool: a cold returned one first, then a new one. */
static int pool_take(struct zio__stack_pool *p, struct zio__stack *out)
{
	zio__spin_lock(&p->lock);
	for (struct slab *s = p->slabs; s; s = s->next) {
		if (s->nfree) {
			slot_stack(p, s, s->free_idx[--s->nfree], out);
			p->in_use++;
			zio__spin_unlock(&p->lock);
			return 0;
		}
	}
	struct slab *s = p->current;
	if (!s || s->carved == s->nslots) {
		uint32_t n = s ? s->nslots * 2 : SLAB_SLOTS_MIN;
		if (n > SLAB_SLOTS_MAX)
			n = SLAB_SLOTS_MAX;
		s = calloc(1, sizeof(*s));
		uint32_t *idx = calloc(n, sizeof(uint32_t));
		void *base = MAP_FAILED;
		if (s && idx)
			base = mmap(NULL, (size_t)n * p->slot, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (base == MAP_FAILED) {
			int err = s && idx ? errno : ENOMEM;
			zio__spin_unlock(&p->lock);
			free(s);
			free(idx);
			return -err;
		}
		/* Huge pages would turn a 4 KiB fiber into a 2 MiB one. */
		madvise(base, (size_t)n * p->slot, MADV_NOHUGEPAGE);
		s->base = base;
		s->nslots = n;
		s->free_idx = idx;
		s->next = p->slabs;
		p->slabs = s;
		p->current = s;
	}
	uint32_t i = s->carved++;
	install_guard(s->base + (size_t)i * p->slot);
	slot_stack(p, s, i, out);
	p->mapped++;
	p->in_use++;
	zio__spin_unlock(&p->lock);
	return 0;
}

static void pool_return(struct zio__stack_pool *p, struct zio__stack *st)
{
	struct slab *s = st->slab;
	/* Hand the pages back before the slot goes cold; the guard survives. */
	if (!atomic_load_explicit(&p->keep_pages, memory_order_relaxed))
		madvise(st->lo, st->size, MADV_DONTNEED);
	uint32_t i = (uint32_t)((size_t)(st->lo - ZIO__GUARD_SIZE - s->base) / p->slot);
	zio__spin_lock(&p->lock);
	s->free_idx[s->nfree++] = i;
	p->in_use--;
	zio__spin_unlock(&p->lock);
}

static int map_single(size_t size, struct zio__stack *out)
{
	size = round_page(size);
	char *base = mmap(NULL, size + ZIO__GUARD_SIZE + COLOUR_PAD, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return -errno;
	madvise(base, size + ZIO__GUARD_SIZE + COLOUR_PAD, MADV_NOHUGEPAGE);
	install_guard(base);
	out->lo = base + ZIO__GUARD_SIZE;
	out->hi = out->lo + size;
	out->size = size;
	out->slab = NULL;
	out->pool = NULL;
	return 0;
}

#define WARM_BATCH 32u

/* Whether the warm list looks non-empty, without the lock: a stale answer
 * costs one lock round trip or one fresh slot, never correctness. */
static inline bool warm_hint(struct zio__stack_pool *p)
{
	return __atomic_load_n(&p->nwarm, __ATOMIC_RELAXED) != 0;
}

/* Moves up to WARM_BATCH warm stacks into e's empty hot list. */
static void warm_refill(struct zio__stack_pool *p, struct zio__exec *e)
{
	zio__spin_lock(&p->lock);
	for (unsigned i = 0; i < WARM_BATCH && p->warm; i++) {
		struct hot_node *n = p->warm;
		p->warm = n->next;
		__atomic_store_n(&p->nwarm, p->nwarm - 1, __ATOMIC_RELAXED);
		n->next = (struct hot_node *)e->stack_cache;
		e->stack_cache = (struct zio__stack *)n;
		e->stack_cached++;
	}
	zio__spin_unlock(&p->lock);
}

/* e's hot list is full: moves a batch to the warm list, and what the warm
 * list cannot take goes cold. */
static void warm_spill(struct zio__stack_pool *p, struct zio__exec *e)
{
	struct hot_node *cold = NULL;
	zio__spin_lock(&p->lock);
	for (unsigned i = 0; i < WARM_BATCH && e->stack_cache; i++) {
		struct hot_node *n = (struct hot_node *)e->stack_cache;
		e->stack_cache = (struct zio__stack *)n->next;
		e->stack_cached--;
		if (p->nwarm < p->warm_max) {
			n->next = p->warm;
			p->warm = n;
			__atomic_store_n(&p->nwarm, p->nwarm + 1, __ATOMIC_RELAXED);
		} else {
			n->next = cold;
			cold = n;
		}
	}
	zio__spin_unlock(&p->lock);
	while (cold) {
		struct hot_node *next = cold->next;
		struct zio__stack st = cold->stack;
		pool_return(p, &st);
		cold = next;
	}
}

int zio__stack_get(struct zio__stack_pool *p, struct zio__exec *e, size_t size,
		   struct zio__stack *out)
{
	if (size && round_page(size < ZIO__STACK_MIN ? ZIO__STACK_MIN : size) != p->size) {
		if (size > ((size_t)1 << 40))
			return -EINVAL;
		return map_single(size < ZIO__STACK_MIN ? ZIO__STACK_MIN : size, out);
	}
	if (e && !e->stack_cache && warm_hint(p))
		warm_refill(p, e);
	if (e && e->stack_cache) {
		struct hot_node *n = (struct hot_node *)e->stack_cache;
		e->stack_cache = (struct zio__stack *)n->next;
		e->stack_cached--;
		*out = n->stack;
		return 0;
	}
	if (!e && warm_hint(p)) {
		zio__spin_lock(&p->lock);
		struct hot_node *n = p->warm;
		if (n) {
			p->warm = n->next;
			__atomic_store_n(&p->nwarm, p->nwarm - 1, __ATOMIC_RELAXED);
			*out = n->stack;
		}
		zio__spin_unlock(&p->lock);
		if (n)
			return 0;
	}
	return pool_take(p, out);
}

void zio__stack_put(struct zio__exec *e, struct zio__stack *st)
{
	if (!st->slab) {
		munmap(st->lo - ZIO__GUARD_SIZE, st->size + ZIO__GUARD_SIZE + COLOUR_PAD);
		return;
	}
	struct zio__stack_pool *p = st->pool;
	struct hot_node *n = (struct hot_node *)(st->hi - sizeof(struct hot_node));
	n->stack = *st;
	if (e) {
		if (e->stack_cached >= p->cache)
			warm_spill(p, e);
		n->next = (struct hot_node *)e->stack_cache;
		e->stack_cache = (struct zio__stack *)n;
		e->stack_cached++;
		return;
	}
	zio__spin_lock(&p->lock);
	if (p->nwarm < p->warm_max) {
		n->next = p->warm;
		p->warm = n;
		__atomic_store_n(&p->nwarm, p->nwarm + 1, __ATOMIC_RELAXED);
		zio__spin_unlock(&p->lock);
		return;
	}
	zio__spin_unlock(&p->lock);
	pool_return(p, st);
}

void zio__stack_cache_flush(struct zio__exec *e)
{
	while (e->stack_cache) {
		struct hot_node *n = (struct hot_node *)e->stack_cache;
		struct zio__stack st = n->stack;
		e->stack_cache = (struct zio__stack *)n->next;
		e->stack_cached--;
		pool_return(st.pool, &st);
	}
}

void zio__stack_pool_closing(struct zio__stack_pool *p)
{
	atomic_store(&p->keep_pages, true);
}

bool zio__stack_in_guard(const struct zio__stack *s, const void *addr)
{
	const char *a = addr;
	return a < s->lo && a >= s->lo - ZIO__GUARD_SIZE;
}

void zio__stack_stats(struct zio__stack_pool *p, uint64_t *cached, uint64_t *mapped)
{
	zio__spin_lock(&p->lock);
	*mapped = p->mapped;
	*cached = p->mapped - p->in_use;
	zio__spin_unlock(&p->lock);
}

/* ------------------------------------------------------------ guard hits */

static struct sigaction previous_segv;
static atomic_int handler_installed;

static void write_str(const char *s)
{
	ssize_t r = write(STDERR_FILENO, s, strlen(s));
	(void)r;
}

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
	struct zio__exec *e = zio__exec_current();
	struct zio__fiber *f = e ? e->cur : NULL;
	if (f && zio__stack_in_guard(&f->stack, si->si_addr)) {
		char line[256];
		snprintf(line, sizeof(line),
			 "zio: fatal: task #%llu \"%s\" overflowed its stack (%zu KiB reserved; "
			 "fault at %p, %zu bytes below the stack)\n",
			 (unsigned long long)f->id, f->name[0] ? f->name : "(unnamed)",
			 f->stack.size >> 10, si->si_addr,
			 (size_t)(f->stack.lo - (char *)si->si_addr));
		write_str(line);
		write_str("zio: raise the stack size (zio_runtime_options.stack_size, "
			  "zio_spawn_options.stack_size or $ZIO_STACK_SIZE)\n");
		zio__backtrace_here(STDERR_FILENO);
		signal(SIGABRT, SIG_DFL);
		abort();
	}
	/* Not ours: behave as if we were never here. */
	if (previous_segv.sa_flags & SA_SIGINFO) {
		previous_segv.sa_sigaction(sig, si, uctx);
		return;
	}
	if (previous_segv.sa_handler == SIG_IGN)
		return;
	if (previous_segv.sa_handler != SIG_DFL) {
		previous_segv.sa_handler(sig);
		return;
	}
	/* Default action: re-raise with the default disposition on return. */
	signal(SIGSEGV, SIG_DFL);
}

void zio__guard_handler_install(void)
{
	if (atomic_exchange(&handler_installed, 1))
		return;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = segv_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &previous_segv);
}

int zio__sigaltstack_install(void **mem)
{
	/* Big enough for the report and libunwind's walk. */
	size_t size = 64 * 1024;
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -errno;
	stack_t ss = { .ss_sp = m, .ss_size = size, .ss_flags = 0 };
	if (sigaltstack(&ss, NULL) != 0) {
		int err = errno;
		munmap(m, size);
		return -err;
	}
	*mem = m;
	return 0;
}

void zio__sigaltstack_remove(void *mem)
{
	if (!mem)
		return;
	stack_t ss = { .ss_flags = SS_DISABLE };
	sigaltstack(&ss, NULL);
	munmap(mem, 64 * 1024);
}
