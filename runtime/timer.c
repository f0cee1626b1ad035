/*
 * timer.c - per-executor deadlines in an intrusive pairing heap.
 *
 * Insert is O(1), remove-min and arbitrary remove are O(log n) amortised,
 * and nodes live in the waiter's own frame, so arming a timer allocates
 * nothing. Only the owning executor touches its heap: a fiber that armed a
 * timer is temporarily pinned until it has resumed and removed it (wait.c).
 *
 * Node links: child is the leftmost child, sibling the next sibling to the
 * right, and prev the left sibling or, for a leftmost child, the parent.
 * A node not in a heap has prev == NULL and is not the root.
 */
#include "internal.h"

static struct zio__timer *meld(struct zio__timer *a, struct zio__timer *b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	if (b->deadline < a->deadline) {
		struct zio__timer *t = a;
		a = b;
		b = t;
	}
	/* b becomes a's leftmost child. */
	b->sibling = a->child;
	if (a->child)
		a->child->prev = b;
	b->prev = a;
	a->child = b;
	a->sibling = NULL;
	a->prev = NULL;
	return a;
}

/* Standard two-pass pairing of a sibling list. */
static struct zio__timer *merge_pairs(struct zio__timer *first)
{
	if (!first)
		return NULL;
	/* Pass 1: left to right, meld pairs, chaining results in reverse. */
	struct zio__timer *acc = NULL;
	while (first) {
		struct zio__timer *a = first, *b = first->sibling;
		first = b ? b->sibling : NULL;
		a->sibling = a->prev = NULL;
		if (b)
			b->sibling = b->prev = NULL;
		struct zio__timer *m = meld(a, b);
		m->sibling = acc;
		acc = m;
	}
	/* Pass 2: right to left, meld into one tree. */
	struct zio__timer *root = NULL;
	while (acc) {
		struct zio__timer *next = acc->sibling;
		acc->sibling = NULL;
		root = meld(root, acc);
		acc = next;
	}
	return root;
}

void zio__timer_add(struct zio__timers *h, struct zio__timer *t)
{
	t->child = t->sibling = t->prev = NULL;
	h->root = meld(h->root, t);
	h->count++;
}

void zio__timer_remove(struct zio__timers *h, struct zio__timer *t)
{
	if (t == h->root) {
		h->root = merge_pairs(t->child);
	} else {
		if (!t->prev)
			return; /* not in the heap (already fired) */
		/* Unlink t from its parent's child list. */
		if (t->prev->child == t)
			t->prev->child = t->sibling;
		else
			t->prev->sibling = t->sibling;
		if (t->sibling)
			t->sibling->prev = t->prev;
		struct zio__timer *sub = merge_pairs(t->child);
		h->root = meld(h->root, sub);
	}
	t->child = t->sibling = t->prev = NULL;
	h->count--;
}

int64_t zio__timers_run(struct zio__timers *h, int64_t now)
{
	while (h->root && h->root->deadline <= now) {
		struct zio__timer *t = h->root;
		zio__timer_remove(h, t);
		t->fire(t);
	}
	return zio__timers_next(h);
}
